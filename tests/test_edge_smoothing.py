"""Edge-preserving smoothing of co-registered inputs: which neighbours, how alike, in chunks."""

import numpy as np
import pytest

from napari_mr_reparam.edge_smoothing import SMOOTH_RADIUS, smooth_inputs, smoothing_offsets


def test_smoothing_leaves_voxels_out_of_it_as_they_are():
    rng = np.random.default_rng(7)
    images = [np.full((1, 12, 12), 100.0, np.float32) + rng.normal(0, 1, (1, 12, 12)).astype(np.float32)
              for _ in range(2)]
    keep = np.ones((1, 12, 12), bool)
    keep[0, 5, 5] = False
    images[0][0, 5, 5] = 0.0  # a missing value, held at 0
    sigma = [100.0, 100.0]  # noise so large that the held 0 would look alike
    out, _ = smooth_inputs(images, sigma, keep=keep)
    assert out[0][0, 5, 5] == 0.0  # left as it was
    assert abs(out[0][0, 5, 6] - 100) < 1.5  # its neighbours are not pulled down by it
    assert np.std(out[1][keep]) < 0.7 * np.std(images[1][keep])  # the rest is smoothed
    assert smooth_inputs(images, sigma)[0][0][0, 5, 6] < 98  # (taking part, it would pull them)


def test_smoothing_averages_over_a_disc_of_the_radius():
    image = np.zeros((1, 15, 15), np.float32)
    image[0, 7, 7] = 1.0
    out = smooth_inputs([image], [1e6], radius=3.2)[0][0][0]  # noise so large that every neighbour is alike
    reached = {(dy, dx) for dy in range(-7, 8) for dx in range(-7, 8) if out[7 + dy, 7 + dx] > 0}
    assert reached == {(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4) if dy * dy + dx * dx <= 3.2 ** 2}
    assert (3, 1) in reached and (3, 2) not in reached
    assert SMOOTH_RADIUS == 3.2


def test_smoothing_counts_how_many_voxels_each_was_averaged_over():
    image = np.zeros((1, 20, 20), np.float32)
    image[0, 5:15, 5:15] = 100.0
    image[0, 2, 2] = 50.0  # alike to nothing around it
    out, weights = smooth_inputs([image], [1.0], radius=3.2)
    assert weights.shape == image.shape and weights[0, 2, 2] == pytest.approx(1.0)
    assert weights[0, 10, 10] == pytest.approx(37, abs=0.5)  # the disc's voxels, all alike
    np.testing.assert_array_equal(out[0], smooth_inputs([image], [1.0], radius=3.2)[0][0])


def test_near_isotropic_slices_are_smoothed_across_within_the_ball():
    assert len(smoothing_offsets(3.2)) == 18 and all(dz == 0 for dz, _, _ in smoothing_offsets(3.2))
    ball = smoothing_offsets(3.2, (1.0, 1.0, 1.0))
    assert max(dz for dz, _, _ in ball) == 3 and len(ball) == 73  # half of the 147 voxels, less itself
    assert all(dz * dz + dy * dy + dx * dx <= 3.2**2 for dz, dy, dx in ball)
    assert smoothing_offsets(3.2, (5.0, 1.0, 1.0)) == smoothing_offsets(3.2)  # slabs: in-plane only
    assert len(smoothing_offsets(None, (1.0, 1.0, 1.0))) == 40  # the default ball, radius 2.5: 81 voxels
    assert smoothing_offsets(None, (float("nan"), 1.0, 1.0)) == smoothing_offsets()  # unknown: in-plane
    with pytest.raises(ValueError, match="spacing must be three numbers"):
        smoothing_offsets(None, (1.0, 1.0))
    rng = np.random.default_rng(3)
    image = np.full((12, 16, 16), 100.0, np.float32)
    image[6:] = 200.0  # an edge between slices: kept
    noisy = image + rng.normal(0, 1.0, image.shape).astype(np.float32)
    flat, flat_w = smooth_inputs([noisy], [1.0])
    ball_out, ball_w = smooth_inputs([noisy], [1.0], spacing=(1.0, 1.0, 1.0), chunk_voxels=3 * 16 * 16)
    inner = (slice(1, 4), slice(4, 12), slice(4, 12))

    def spread(out):
        return np.median(np.abs((out[0] - image)[inner]))

    assert ball_w[2, 8, 8] > 1.6 * flat_w[2, 8, 8]  # neighbouring slices averaged in
    assert spread(ball_out) < 0.8 * spread(flat)
    assert np.abs(ball_out[0][5] - 100).max() < 5 and np.abs(ball_out[0][6] - 200).max() < 5  # the edge kept
    whole, _ = smooth_inputs([noisy], [1.0], spacing=(1.0, 1.0, 1.0))  # chunks with a halo: as in one piece
    np.testing.assert_allclose(ball_out[0], whole[0], rtol=1e-5)
    given = noisy.copy()
    thin, _ = smooth_inputs([noisy], [1.0], spacing=(1.0, 1.0, 1.0), chunk_voxels=16 * 16)  # one slice, halo 2
    np.testing.assert_allclose(thin[0], whole[0], rtol=1e-5)
    np.testing.assert_array_equal(noisy, given)  # the input itself is left as it was


def _bilateral_float64(images, sigma, radius):
    """The joint bilateral filter written out in float64 with exact weights (no floor)."""
    stack = np.stack([np.asarray(a, np.float64)[0] / s for a, s in zip(images, sigma)])
    n, h, w = stack.shape
    num, den = np.zeros_like(stack), np.zeros((h, w))
    r = int(radius)
    for y in range(h):
        for x in range(w):
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    yy, xx = y + dy, x + dx
                    if dy * dy + dx * dx > radius**2 or not (0 <= yy < h and 0 <= xx < w):
                        continue
                    d2 = float(((stack[:, y, x] - stack[:, yy, xx]) ** 2).sum())
                    weight = np.exp(-d2 / (2 * 2.0**2 * n))
                    num[:, y, x] += weight * stack[:, yy, xx]
                    den[y, x] += weight
    return [num[i] / den * s for i, s in enumerate(sigma)], den


def test_far_unlike_neighbours_weigh_nothing_as_exact_weights_would():
    # edges hundreds of noise levels high: exact weights of exp(-1e4) and less, which the
    # filter floors (WEIGHT_EXPONENT_FLOOR) so that no float is subnormal; the result is
    # the exact filter's to float32 rounding
    from napari_mr_reparam.edge_smoothing import WEIGHT_EXPONENT_FLOOR

    rng = np.random.default_rng(11)
    image = np.zeros((1, 14, 14), np.float32)
    image[0, :, 7:] = 1000.0
    image[0, 3:6, 2:5] = 0.05  # a faint patch beside the empty background
    images = [image + rng.normal(0, 1.0, image.shape).astype(np.float32),
              0.5 * image + rng.normal(0, 1.0, image.shape).astype(np.float32)]
    out, weights = smooth_inputs(images, [1.0, 1.0], radius=3.2)
    exact, den = _bilateral_float64(images, [1.0, 1.0], 3.2)
    for got, want in zip(out, exact):
        np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(weights[0], den, rtol=1e-5)
    assert np.exp(WEIGHT_EXPONENT_FLOOR) * 1e-10 > np.finfo(np.float32).tiny  # a product stays normal


def test_smoothing_in_place_gives_what_a_copy_gives_and_leaves_inputs_alone_otherwise():
    rng = np.random.default_rng(5)
    image = np.full((6, 18, 18), 100.0, np.float32)
    image[:, 9:] = 300.0
    images = [image + rng.normal(0, 2.0, image.shape).astype(np.float32) for _ in range(2)]
    before = [a.copy() for a in images]
    body = np.zeros(image.shape, bool)
    body[1:5, 2:16, 3:15] = True  # the box it smooths: the rest stays as it was
    copied, weights = smooth_inputs(images, [2.0, 2.0], body=body, spacing=(1.0, 1.0, 1.0), chunk_voxels=18 * 18)
    for a, b in zip(images, before):
        np.testing.assert_array_equal(a, b)  # the inputs are not touched
    in_place, same_weights = smooth_inputs(images, [2.0, 2.0], body=body, spacing=(1.0, 1.0, 1.0),
                                           chunk_voxels=18 * 18, overwrite=True)
    for a, b, c in zip(in_place, images, copied):
        assert a is b or np.shares_memory(a, b)  # the inputs themselves, smoothed
        np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(same_weights, weights)
    assert not np.array_equal(copied[0][2], before[0][2]) and np.array_equal(copied[0][0], before[0][0])
    with pytest.raises(ValueError, match="overwrite needs"):
        smooth_inputs([image.astype(np.float64)], [1.0], overwrite=True)
