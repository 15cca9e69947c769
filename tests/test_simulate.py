import numpy as np
import pytest
from helpers import tiny_phantom

from napari_mr_reparam import physics
from napari_mr_reparam.simulate import (
    Acquisition, add_rician_noise, choose_slices, normalize_to_max, pad_to_square,
    quantize_8bit, render_slices, simulate_images, validate_times,
)


def test_render_matches_signal_equation():
    ph = tiny_phantom()
    acq = Acquisition(80.0, 3000.0)
    out = render_slices(ph, acq, [1, 2])
    expected = physics.spin_echo(ph.pd[[1, 2]], ph.t1[[1, 2]], ph.t2[[1, 2]], 80.0, 3000.0)
    assert out.shape == (2, 24, 20) and out.dtype == np.float32
    assert np.allclose(out, expected)


def test_pipeline_normalizes_resizes_and_quantizes():
    ph = tiny_phantom()
    images = simulate_images(ph, Acquisition(50, 4500), [0, 3], size=64)
    assert images.shape == (2, 64, 64) and images.dtype == np.uint8
    assert images.max() == 255
    floats = simulate_images(ph, Acquisition(50, 4500), [0], size=None, quantize=False)
    assert floats.dtype == np.float32 and floats.max() == pytest.approx(1.0)


def test_normalize_keeps_blank_images_blank():
    images = np.zeros((2, 4, 4), np.float32)
    images[1, 0, 0] = 4.0
    out = normalize_to_max(images)
    assert out[0].max() == 0 and out[1].max() == 1


def test_quantize_and_pad():
    assert quantize_8bit(np.array([0.0, 0.5, 1.0, 1.2])).tolist() == [0, 128, 255, 255]
    padded = pad_to_square(np.ones((1, 3, 5)))
    assert padded.shape == (1, 5, 5) and padded.sum() == 15


def test_rician_noise_is_seeded_and_positive():
    image = np.zeros((8, 8), np.float32)
    a = add_rician_noise(image, 0.1, np.random.default_rng(1))
    b = add_rician_noise(image, 0.1, np.random.default_rng(1))
    assert np.array_equal(a, b) and (a >= 0).all() and a.mean() > 0.05


def test_choose_slices_stays_in_brain():
    ph = tiny_phantom(n=30)
    idx = choose_slices(ph, 5)
    assert len(idx) == 5 and idx.min() >= 0 and idx.max() < 30


@pytest.mark.parametrize("te,tr,ti,message", [
    (50, 40, None, "shorter than TR"),
    (-1, 400, None, "positive"),
    (0, 400, None, "positive"),
    (float("nan"), 400, None, "positive"),
    (10, 400, 500, "TI"),
])
def test_bad_times_are_refused(te, tr, ti, message):
    with pytest.raises(ValueError, match=message):
        validate_times(te, tr, ti)


def test_unknown_sequence():
    with pytest.raises(ValueError, match="unknown sequence"):
        Acquisition(10, 100, sequence="epi")
