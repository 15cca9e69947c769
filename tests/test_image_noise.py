"""The noise of an image, measured in its background or from two inputs' difference."""

import numpy as np
import pytest
from helpers import tissue_blocks

from napari_mr_reparam import physics
from napari_mr_reparam.image_noise import DEFAULT_NOISE, bright_level, estimate_noise
from napari_mr_reparam.simulate import Acquisition


def test_noise_is_measured_in_the_background_of_signed_magnitude_and_multi_coil_images():
    pd, t1, t2 = tissue_blocks(shape=(2, 64, 64))
    acqs = [Acquisition(15, 3000), Acquisition(100, 3000)]
    clean = [np.asarray(physics.spin_echo(pd, t1, t2, a.te_ms, a.tr_ms), np.float32) * 1000 for a in acqs]
    rng = np.random.default_rng(3)
    sd = 0.02 * clean[0].max()
    signed = [im + rng.normal(0, sd, im.shape).astype(np.float32) for im in clean]
    magnitude = [np.abs(im + rng.normal(0, sd, im.shape) + 1j * rng.normal(0, sd, im.shape)).astype(np.float32)
                 for im in clean]
    # eight coils, each with noise sd and an eighth of the signal's power, summed in squares:
    # the background's level is about four times sd, its spread still about sd
    coils, coil_sd = 8, 0.005 * clean[0].max()
    sum_of_squares = [np.sqrt(sum(np.abs(im / np.sqrt(coils) + rng.normal(0, coil_sd, im.shape)
                                         + 1j * rng.normal(0, coil_sd, im.shape)) ** 2 for _ in range(coils)))
                      .astype(np.float32) for im in clean]
    for images, noise_sd, rel in ((signed, sd, 0.05), (magnitude, sd, 0.1), (sum_of_squares, coil_sd, 0.12)):
        found = estimate_noise(images)
        peaks = [np.percentile(im, 99.5) for im in images]
        assert found == pytest.approx([noise_sd / p for p in peaks], rel=rel)
    # a masked background (exactly 0): measured inside the object, from the inputs' difference,
    # and at most the default (structure left in the difference would read as noise)
    low_sd = 0.004 * clean[0].max()
    masked = [np.where(pd > 0, np.abs(im + rng.normal(0, low_sd, im.shape) + 1j * rng.normal(0, low_sd, im.shape)), 0)
              .astype(np.float32) for im in clean]
    peaks = [np.percentile(im, 99.5) for im in masked]
    assert estimate_noise(masked) == pytest.approx([low_sd / p for p in peaks], rel=0.15)
    assert estimate_noise([np.where(pd > 0, im, 0) for im in magnitude]) == pytest.approx([DEFAULT_NOISE] * 2)
    assert estimate_noise(masked[:1]) is None  # one input: nothing to measure
    assert estimate_noise(clean) is None  # a clean one: nothing to measure


def test_the_bright_level_is_the_99_5th_percentile_of_the_finite_values():
    image = np.arange(1000, dtype=np.float32).reshape(10, 100)
    image[0, :5] = np.nan
    assert bright_level(image) == pytest.approx(np.percentile(image[np.isfinite(image)], 99.5))
    assert bright_level(np.full((4, 4), np.nan, np.float32)) == 0.0


def test_values_not_measured_count_as_zero_and_the_inputs_are_left_as_they_are():
    pd, t1, t2 = tissue_blocks(shape=(2, 64, 64))
    rng = np.random.default_rng(4)
    images = [np.asarray(physics.spin_echo(pd, t1, t2, te, 3000), np.float32) * 1000 for te in (15, 100)]
    images = [np.abs(im + rng.normal(0, 10.0, im.shape)).astype(np.float32) for im in images]
    holed = [im.copy() for im in images]
    holed[0][0, :4, :4] = np.nan
    holed[1][1, -3:, -3:] = np.inf
    kept = [im.copy() for im in holed]
    assert estimate_noise(holed) == estimate_noise([np.nan_to_num(im) for im in holed])
    for im, before in zip(holed, kept):
        np.testing.assert_array_equal(im, before)  # NaN and infinities still there
    assert estimate_noise(images) == estimate_noise([im.copy() for im in images])
