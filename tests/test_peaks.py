import numpy as np
import pytest
import torch

from napari_mr_reparam import peaks


def test_candidate_counts_are_powers_of_two_up_to_the_share():
    assert peaks.candidate_counts(10) == [1]
    assert peaks.candidate_counts(1024) == [1, 2, 4, 8, 16, 32]
    assert peaks.candidate_counts(100 * 100)[-1] == 256


def test_peak_is_the_mean_of_the_brightest_voxels_per_image():
    rng = np.random.default_rng(0)
    images = rng.random((3, 2, 8, 8)).astype(np.float32)
    counts = np.array([[1, 3], [5, 1], [2, 64]])
    got = peaks.peak(images, counts)
    flat = np.sort(images.reshape(3, 2, -1), axis=-1)[..., ::-1]
    want = np.array([[flat[i, j, :counts[i, j]].mean() for j in range(2)] for i in range(3)])
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(peaks.peak(images), images.max(axis=(-2, -1)))
    as_torch = peaks.peak(torch.from_numpy(images), torch.from_numpy(counts))
    np.testing.assert_allclose(as_torch.numpy(), want, rtol=1e-5)


def test_normalize_leaves_blank_images_at_zero():
    images = np.zeros((2, 4, 4), np.float32)
    images[1, 0, 0] = 2.0
    out = peaks.normalize(images, 1)
    assert out[0].max() == 0 and out[1].max() == pytest.approx(1.0)


def plateau_image(rng, noise):
    """A true image whose maximum is shared by a patch of 64 voxels, and a render of it
    at another scale whose errors scatter those voxels."""
    truth = np.full((32, 32), 0.4, np.float32)
    truth[:8, :8] = 1.0
    render = 3.0 * truth * (1 + noise * rng.standard_normal(truth.shape)).astype(np.float32)
    return truth, render


@pytest.mark.parametrize("to_tensor", [np.asarray, torch.from_numpy])
def test_calibration_on_a_plateau_picks_a_count_that_undoes_the_bright_outlier(to_tensor):
    rng = np.random.default_rng(1)
    truth, render = plateau_image(rng, 0.05)
    count = int(peaks.calibrated_count(to_tensor(render[None]), to_tensor(truth[None]))[0])
    assert count > 1
    err = lambda c: float(((peaks.normalize(render, c).clip(max=1) - truth) ** 2).mean())
    assert err(count) < err(1)


def test_calibration_keeps_the_maximum_where_the_render_is_exact():
    rng = np.random.default_rng(2)
    truth = rng.random((1, 32, 32)).astype(np.float32)
    truth /= truth.max()
    assert peaks.calibrated_count(2.5 * truth, truth).tolist() == [1]
