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


@pytest.mark.parametrize("shape", [(3, 40, 50), (7, 9), (2, 3, 3), (20, 64, 64)])
def test_sustained_peak_is_the_maximum_of_the_3x3_median(shape, monkeypatch):
    from scipy.ndimage import median_filter

    rng = np.random.default_rng(3)
    images = rng.random(shape).astype(np.float32)
    if shape[0] == 20:  # a plateau of noise, with ties, spread over threads: far more
        images = np.round(images * 50) / 50  # candidate windows than are taken exactly
        monkeypatch.setattr(peaks, "MEDIAN_CANDIDATES", 64)
    elif shape[-1] > 20:
        images[..., 10:20, 10:20] += 2.0  # a bright patch: found among the brightest voxels
        images[0] = 0.0
        images[0, 5:30, 5:30] = rng.random((25, 25))  # scattered: found by the wider searches
    medians = median_filter(images, size=(1,) * (len(shape) - 2) + (3, 3))[..., 1:-1, 1:-1]
    np.testing.assert_allclose(peaks.sustained_peak(images), medians.max(axis=(-2, -1)))


def test_clip_overshoot_takes_single_voxels_down_to_their_region_and_keeps_the_rest():
    image = np.full((2, 20, 20), 0.2, np.float32)
    image[:, 5:10, 5:10] = 1.0  # a bright region of 25 voxels
    image[0, 7, 7] = 1.3  # fit noise: one voxel above it
    image[1, 15, 15] = 3.0  # a lone voxel elsewhere
    image[1, 0, 0] = np.nan
    out = peaks.clip_overshoot(image)
    assert out[0, 7, 7] == pytest.approx(1.0) and out[1, 15, 15] == pytest.approx(1.0)
    assert np.isnan(out[1, 0, 0])
    kept = np.isfinite(image) & (image <= 1.0)
    np.testing.assert_array_equal(out[kept], image[kept])


def test_clip_overshoot_leaves_blank_and_tiny_images():
    blank = np.zeros((4, 4), np.float32)
    np.testing.assert_array_equal(peaks.clip_overshoot(blank), blank)
    tiny = np.array([[0.0, 5.0]], np.float32)
    np.testing.assert_array_equal(peaks.clip_overshoot(tiny), tiny)
    assert np.isnan(peaks.sustained_peak(np.full((1, 4, 4), np.nan))).all()
    assert peaks.sustained_peak(np.zeros((0, 4, 4))).shape == (0,)  # an empty stack
    assert np.isnan(peaks.sustained_peak(np.zeros((2, 0, 4)))).all()


def test_clip_overshoot_lowers_a_voxel_by_at_most_the_standard_errors_given():
    image = np.full((1, 12, 12), 1.0, np.float32)
    image[0, 4, 4], image[0, 8, 8] = 1.05, 2.0  # noise; a structure the error cannot explain
    seen = []

    def spread(where):
        seen.extend(where.tolist())
        return np.full(where.size, 0.06 / peaks.OVERSHOOT_SDS)

    out = peaks.clip_overshoot(image, spread=spread)
    assert sorted(seen) == [4 * 12 + 4, 8 * 12 + 8]
    assert out[0, 4, 4] == pytest.approx(1.0)  # within what its error allows: down to the level
    assert out[0, 8, 8] == pytest.approx(2.0 - 0.06)


def test_the_gain_leaves_out_background_the_maps_read_as_tissue_and_voxels_not_measured():
    signal = np.ones((3, 20, 20))
    image = np.full((3, 20, 20), 5.0)
    image[:, :, :10] = 0.01  # background (an inversion recovery's null, say) the maps hold bright
    assert peaks.input_gain(signal, image) == 5.0  # not the background's ratio, 0.01
    assert peaks.gain_voxels(signal, image).sum() == 3 * 20 * 10
    image[0] = np.nan  # not measured: tells nothing
    signal[1, :, 10:] = 0.05  # held dark by the maps: tells nothing either
    assert peaks.input_gain(signal, image) == 5.0 and peaks.gain_voxels(signal, image).sum() == 20 * 10


def test_the_gain_and_its_voxels_together_are_each_alone():
    rng = np.random.default_rng(3)
    signal = rng.uniform(0, 1, (30, 150, 150))  # more voxels than the gain's sample
    image = 4 * signal * rng.uniform(0.9, 1.1, signal.shape)
    image[:, :20] = 0.001  # background the maps hold bright
    gain, use = peaks.gain_and_voxels(signal, image)
    assert gain == peaks.input_gain(signal, image) and np.array_equal(use, peaks.gain_voxels(signal, image))
