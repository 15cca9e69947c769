"""benchmarks/bench_representation_ceiling.py: the maps and intensity-lookup oracles."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_representation_ceiling as brc  # noqa: E402

TARGETS = [brc.ext.Acq(15.0, 500.0), brc.ext.Acq(100.0, 5000.0), brc.ext.Acq(400.0, 8000.0)]


def _raw(pd_t1_t2: list[tuple], fractions: np.ndarray, targets=TARGETS) -> np.ndarray:
    """(targets, h, w) renders of a mix of tissues (fractions: (h, w, tissues))."""
    per = np.array([[float(brc.ext.signal(t, pd, t1, t2)) for pd, t1, t2 in pd_t1_t2] for t in targets])
    return np.einsum("tk,hwk->thw", per, fractions)


def test_pure_tissue_on_the_grid_is_fitted_exactly():
    t1, t2 = brc.T1_GRID_MS[30], brc.T2_GRID_MS[40]
    fractions = np.zeros((4, 4, 2))
    fractions[:2, :, 0], fractions[2:, :, 1] = 1.0, 0.5  # the second tissue at half the PD
    raw = _raw([(1.0, t1, t2), (1.0, t1, t2)], fractions)
    fit = brc.fit_maps(raw, brc.dictionary(TARGETS))
    truth = raw / raw.reshape(3, -1).max(axis=1)[:, None, None]
    assert np.abs(fit - truth).max() < 1e-9


def test_a_mix_of_two_tissues_is_not_one_tissue():
    fractions = np.zeros((1, 3, 2))
    fractions[0, 0, 0], fractions[0, 1, 1], fractions[0, 2] = 1.0, 1.0, 0.5  # pure, pure, mixed
    targets = [brc.ext.Acq(te, tr) for te in (15.0, 60.0, 200.0, 800.0) for tr in (500.0, 8000.0)]
    raw = _raw([(0.7, 800.0, 70.0), (1.0, 4000.0, 2000.0)], fractions, targets)
    fit = brc.fit_maps(raw, brc.dictionary(targets))
    truth = raw / raw.reshape(len(targets), -1).max(axis=1)[:, None, None]
    error = np.abs(fit - truth)[:, 0]
    assert error[:, 2].max() > 0.02  # no single (T1, T2) decays like the mix
    assert error[:, 2].max() > 3 * error[:, :2].max()


def test_training_truth_maps_mix_a_slabs_times_by_each_voxels_share_of_the_water():
    from types import SimpleNamespace

    values = np.array([[0.0, 0.8, 1.0], [1.0, 1400.0, 4000.0], [1.0, 90.0, 1600.0]])  # PD, T1, T2 per class
    classes = np.zeros((1, 4, 1, 2), int)
    classes[0, :, 0, 0] = 1  # pure grey matter
    classes[0, :3, 0, 1], classes[0, 3, 0, 1] = 1, 2  # three voxels of grey matter, one of CSF
    subject = SimpleNamespace(values=values, classes=classes, bias=np.ones(classes.shape))
    pd, t1, t2 = brc.truth_maps(subject)
    np.testing.assert_allclose([pd[0, 0, 0], t1[0, 0, 0], t2[0, 0, 0]], [0.8, 1400.0, 90.0])
    share = 1.0 / (3 * 0.8 + 1.0)  # the CSF voxel's share of the water
    assert pd[0, 0, 1] == pytest.approx((3 * 0.8 + 1.0) / 4)
    assert t2[0, 0, 1] == pytest.approx(np.exp((1 - share) * np.log(90.0) + share * np.log(1600.0)))
    # matched: the slab's one T2 decays at the reference as its voxels' water does
    _, t1m, t2m = brc.truth_maps(subject, "matched")
    ref = brc.MATCHED_REFERENCE_MS["t2"]
    assert np.exp(-ref / t2m[0, 0, 1]) == pytest.approx((1 - share) * np.exp(-ref / 90.0) + share * np.exp(-ref / 1600.0))
    assert t1m[0, 0, 0] == pytest.approx(1400.0) and t2m[0, 0, 0] == pytest.approx(90.0)


def test_the_lookup_is_exact_where_the_target_is_a_function_of_intensity():
    image = np.random.default_rng(0).uniform(0, 1, (2, 16, 16)).astype(np.float32)
    index = np.clip((image * 8).astype(int), 0, 7)
    truth = (1.0 - index / 8.0).astype(np.float32)  # inverted contrast, constant per bin
    assert np.allclose(brc.lookup(image, truth, 8), truth)
    noisy = truth + np.random.default_rng(1).normal(0, 0.1, truth.shape).astype(np.float32)
    assert np.abs(brc.lookup(image, noisy, 8) - truth).max() < np.abs(noisy - truth).max()


def test_run_gives_the_maps_row_and_a_lookup_row_per_input(tmp_path, capsys):
    from test_bench_external import _label_map

    path = _label_map(tmp_path / "s.nii.gz")
    summaries = brc.run([path], 2, 3, 16, log=lambda *a, **k: None)
    assert set(summaries) == {brc.MAPS_LABEL, brc.TRUTH_LABEL, brc.MATCHED_LABEL, *brc.ext.INPUT_NAMES}
    assert summaries[brc.MAPS_LABEL]["count"] == summaries[brc.MATCHED_LABEL]["count"] == 2 * 3
    # fitted to the targets, the maps do at least as well as training's truth maps
    assert summaries[brc.MAPS_LABEL]["psnr_mean"] >= summaries[brc.TRUTH_LABEL]["psnr_mean"] - 0.5
    assert summaries[brc.MAPS_LABEL]["psnr_mean"] > max(summaries[n]["psnr_mean"] for n in brc.ext.INPUT_NAMES)
    text = brc.table(summaries, 16)
    assert text.count("intensity lookup, 16 bins") == len(brc.ext.INPUT_NAMES)


def test_the_sample_heads_rows_name_each_ground_truth(monkeypatch):
    from napari_mr_reparam import sample_head

    monkeypatch.setattr(sample_head, "SLICES", 2)
    monkeypatch.setattr(sample_head, "SIZE", 48)
    rows = brc.sample_rows(2)
    assert [label.split(" (")[0] for label, _ in rows] == [brc.MAPS_LABEL, brc.TRUTH_LABEL, brc.MATCHED_LABEL]
    assert all(len(values) == len(sample_head.TRUTH_ACQS) and min(values) > 15 for _, values in rows)
    text = brc.sample_table(rows)
    assert "TE 120/TR 6000" in text and text.count("\n") == 4


def test_too_few_bins_are_refused(capsys):
    with pytest.raises(SystemExit):
        brc.main(["--bins", "1"])
    assert "--bins must be at least 2" in capsys.readouterr().err
