import numpy as np
import pytest
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from napari_mr_reparam import metrics


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    target = rng.uniform(0, 255, (3, 40, 40))
    pred = np.clip(target + rng.normal(0, 10, target.shape), 0, 255)
    return pred, target


def test_against_scikit_image(pair):
    pred, target = pair
    per = metrics.batch_metrics(pred, target)
    for i in range(3):
        assert per["psnr"][i] == pytest.approx(peak_signal_noise_ratio(target[i], pred[i], data_range=255))
        assert per["ssim"][i] == pytest.approx(structural_similarity(target[i], pred[i], data_range=255))
        assert per["mae"][i] == pytest.approx(np.abs(pred[i] - target[i]).mean())
        assert metrics.psnr(pred[i], target[i]) == pytest.approx(per["psnr"][i])
        assert 10 * np.log10(255**2 / mean_squared_error(target[i], pred[i])) == pytest.approx(per["psnr"][i])


def test_masked_metrics_use_only_masked_voxels(pair):
    pred, target = pair
    mask = np.zeros(target.shape, bool)
    mask[:, 10:20, 10:20] = True
    pred2 = pred.copy()
    pred2[~mask] = 0  # damage outside the mask only
    per = metrics.batch_metrics(pred2, target, mask)
    for i in range(3):
        assert per["psnr_brain"][i] == pytest.approx(metrics.psnr(pred[i], target[i], mask[i]))
        assert per["mae_brain"][i] == pytest.approx(np.abs(pred[i] - target[i])[mask[i]].mean())
    assert (per["psnr"] < per["psnr_brain"]).all()


def test_identity_baseline_is_always_reported(pair):
    pred, target = pair
    report = metrics.evaluation_report(pred, target, target * 0.5)
    for key in ("psnr_mean", "psnr_std", "mae_mean", "mae_std", "ssim_mean"):
        assert key in report and key in report["identity"]
    assert report["identity"]["psnr_mean"] < report["psnr_mean"]
    assert "identity" in metrics.format_report({"m": report, "identity": report["identity"]})


def test_identical_images_cap_psnr():
    image = np.full((8, 8), 100.0)
    assert metrics.psnr(image, image) == metrics.PSNR_CAP_DB


def test_to_255_clips():
    assert metrics.to_255(np.array([-0.5, 0.5, 2.0])).tolist() == [0.0, 127.5, 255.0]


def test_shape_mismatch_and_empty_mask():
    with pytest.raises(ValueError, match="shape"):
        metrics.psnr(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="no voxels"):
        metrics.mae(np.zeros((4, 4)), np.zeros((4, 4)), np.zeros((4, 4), bool))


def test_band_means_split_values_by_band_and_leave_empty_bands_out():
    values = np.array([1.0, 3.0, 10.0, 20.0, 7.0])
    te = np.array([20.0, 49.9, 50.0, 1000.0, 60.0])
    bands = metrics.band_means(values, te, (20, 50, 100, 500, 1000))
    assert bands == [{"range": [20.0, 50.0], "count": 2, "mean": 2.0},
                     {"range": [50.0, 100.0], "count": 2, "mean": 8.5},
                     {"range": [500.0, 1000.0], "count": 1, "mean": 20.0}]  # last band closed
    assert sum(b["count"] for b in bands) == values.size
    with pytest.raises(ValueError, match="length"):
        metrics.band_means(values, te[:3], (0, 1))


def test_a_stack_is_scored_image_by_image_whether_or_not_the_work_is_threaded(monkeypatch):
    rng = np.random.default_rng(4)
    targets = rng.uniform(0, 255, (10, 32, 32))
    preds = np.clip(targets + rng.normal(0, 20, targets.shape), 0, 255)
    threaded = metrics.batch_metrics(preds, targets)
    assert len(preds) >= metrics.SSIM_THREADS_FROM
    for k in range(len(preds)):
        assert threaded["ssim"][k] == metrics.ssim(preds[k], targets[k])
    monkeypatch.setattr(metrics, "SSIM_THREADS_FROM", 10**9)
    np.testing.assert_array_equal(metrics.batch_metrics(preds, targets)["ssim"], threaded["ssim"])


def test_a_long_model_name_keeps_the_report_columns_aligned(pair):
    pred, target = pair
    report = metrics.evaluation_report(pred, target, target * 0.5)
    long_name = "runs/a_rather_long_run_folder_name/checkpoint.pt (p2p)"
    lines = metrics.format_report({long_name: report, "identity": report["identity"]}).splitlines()
    head, row, identity = lines[0], lines[2], lines[3]
    assert len(head) == len(row) == len(identity) and row.startswith(long_name)
    assert [line.rstrip().endswith(str(report["count"])) for line in (row, identity)] == [True, True]
