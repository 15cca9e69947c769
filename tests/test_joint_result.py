"""Renders of joint maps: lone voxels of fit noise, and a slice of the maps."""

import numpy as np
from helpers import random_maps, render_inputs

from napari_mr_reparam.joint_fit import fit_maps
from napari_mr_reparam.simulate import Acquisition


def test_render_takes_fit_noise_off_lone_voxels_and_keeps_an_exact_fit():
    """Fluid measured loosely (T1 4000 ms from TR 500 and 3000): noise lifts single voxels
    of a render at TR 6000 above the rest, and an image shown at its maximum darkens. The
    default render lowers them by what the fit's noise explains; noise-free inputs keep
    their render (their noise, measured in the background, is tiny)."""
    shape = (1, 40, 40)
    pd, t1, t2 = np.zeros(shape, np.float32), np.full(shape, 1000.0, np.float32), np.full(shape, 100.0, np.float32)
    pd[:, 5:35, 5:35] = 1.0
    t1[:, 5:35, 5:35], t2[:, 5:35, 5:35] = 4000.0, 2000.0
    acqs = [Acquisition(15, 3000), Acquisition(100, 3000), Acquisition(15, 500)]
    clean = render_inputs(acqs, pd, t1, t2)
    truth = render_inputs([Acquisition(20, 6000)], pd, t1, t2)[0]
    rng = np.random.default_rng(5)
    noisy = [np.abs(c + rng.normal(0, 0.01 * c.max(), shape)).astype(np.float32) for c in clean]
    maps = fit_maps(noisy, acqs)
    raw, shown = maps.render(20, 6000, clip_overshoot=False), maps.render(20, 6000)
    assert raw.max() > 1.01 * truth.max()  # a lone voxel above the fluid
    assert shown.max() < raw.max() and (shown <= raw).all() and np.mean(shown != raw) < 0.05
    assert maps.averaged[0, 20, 20] > 20 and maps.averaged[0, 0, 0] == 1  # the fluid was averaged
    exact = fit_maps([c + rng.normal(0, 1e-4 * c.max(), shape).astype(np.float32) for c in clean], acqs)
    np.testing.assert_allclose(exact.render(20, 6000), exact.render(20, 6000, clip_overshoot=False), rtol=1e-3)


def test_a_slice_of_the_maps_renders_as_that_slice_of_the_volume():
    pd, t1, t2 = random_maps(shape=(3, 24, 24), seed=6)
    acqs = [Acquisition(15, 3000), Acquisition(100, 3000), Acquisition(15, 500)]
    rng = np.random.default_rng(6)
    images = [i + rng.normal(0, 0.01 * i.max(), i.shape).astype(np.float32) for i in render_inputs(acqs, pd, t1, t2)]
    maps = fit_maps(images, acqs)
    one = maps.slices(slice(1, 2))
    assert one.pd.shape == (1, 24, 24) and one.averaged.shape == (1, 24, 24) and one.determined["t1"].shape == (1, 24, 24)
    for kw in ({"te_ms": 20, "tr_ms": 6000}, {"te_ms": 120, "tr_ms": 9000, "sequence": "inversion_recovery", "ti_ms": 2500}):
        np.testing.assert_allclose(one.render(**kw), maps.render(**kw)[1:2], rtol=1e-5)


def test_a_render_at_impossible_times_or_seconds_is_refused_in_one_line():
    import pytest

    pd, t1, t2 = random_maps(shape=(1, 16, 16), seed=2)
    acqs = [Acquisition(15, 3000), Acquisition(100, 3000), Acquisition(15, 500)]
    maps = fit_maps(render_inputs(acqs, pd, t1, t2), acqs)
    for args, kwargs, says in [((40, 2.0), {}, "TR 2 looks like seconds"),
                               ((120, 9000, "inversion_recovery"), {"ti_ms": 2.5}, "TI 2.5 looks like seconds"),
                               ((40, -2000), {}, "TR must be a positive number of milliseconds"),
                               ((float("nan"), 2000), {}, "TE must be a positive number of milliseconds")]:
        with pytest.raises(ValueError, match=says):
            maps.render(*args, **kwargs)


def test_the_network_reads_voxels_not_measured_nan_or_infinite_as_0():
    from napari_mr_reparam.joint_result import network_maps

    seen = []

    class Engine:
        def compute_maps(self, image, acq, **calls):
            seen.append(image)

    image = np.ones((2, 4, 4), np.float32)
    image[0, 0, :3] = np.nan, np.inf, -np.inf  # an infinity as the largest float would set the slice's scale
    network_maps(Engine(), image, Acquisition(20, 600))
    assert np.array_equal(seen[0][0, 0], [0, 0, 0, 1]) and np.isfinite(image[0, 0, :3]).sum() == 0


def test_joint_maps_say_what_they_hold_in_a_line_not_their_arrays():
    pd, t1, t2 = random_maps(shape=(2, 16, 16), seed=3)
    acqs = [Acquisition(15, 3000), Acquisition(100, 3000), Acquisition(15, 500)]
    text = repr(fit_maps(render_inputs(acqs, pd, t1, t2), acqs))
    assert text.startswith("JointMaps(shape (2, 16, 16), 3 input(s)") and len(text) < 300 and "\n" not in text
