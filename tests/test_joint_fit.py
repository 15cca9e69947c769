"""The joint fit recovers known maps from images rendered at several acquisitions."""

import numpy as np
import pytest

from napari_mr_reparam import physics
from napari_mr_reparam.joint_fit import AcquisitionValues, acquisition_values, fit_maps, free_parameters, joint_maps
from napari_mr_reparam.simulate import Acquisition


def _maps(shape=(2, 24, 24), seed=0):
    rng = np.random.default_rng(seed)
    pd = rng.uniform(0.5, 1.0, shape).astype(np.float32)
    t1 = np.exp(rng.uniform(np.log(300), np.log(2500), shape)).astype(np.float32)
    t2 = np.exp(rng.uniform(np.log(30), np.log(300), shape)).astype(np.float32)
    for m in (pd, t1, t2):
        m[:, :3] = 0  # background rows
    return pd, t1, t2


def _render(acqs, pd, t1, t2):
    values = [acquisition_values(a) for a in acqs]
    return [np.asarray(physics.render(a.sequence, pd, t1, t2, a.te, a.tr, ti=a.ti, flip_deg=a.flip_deg),
                       np.float32) * 1000 for a in values]


def _median_error(fit, truth, body):
    return float(np.median(np.abs(fit[body] / truth[body] - 1)))


def test_dual_echo_and_t1_weighted_recover_all_three_maps():
    pd, t1, t2 = _maps()
    acqs = [Acquisition(15, 3000), Acquisition(100, 3000), Acquisition(15, 500)]
    maps = fit_maps(_render(acqs, pd, t1, t2), acqs)
    body = pd > 0
    assert _median_error(maps.t1, t1, body) < 0.01
    assert _median_error(maps.t2, t2, body) < 0.01
    assert _median_error(maps.pd / 1000, pd, body) < 0.01
    assert maps.determined["t2"][body].mean() > 0.5 and maps.determined["t1"][body].mean() > 0.5
    assert (maps.pd[~body] == 0).all() and not maps.determined["t1"][~body].any()
    # renders at a new acquisition match the truth
    new = Acquisition(60, 2000)
    truth = _render([new], pd, t1, t2)[0]
    assert np.abs(maps.render(60, 2000) - truth)[body].max() < 0.05 * truth.max()


def test_inversion_recovery_magnitude_gives_t1():
    pd, t1, t2 = _maps(seed=1)
    acqs = [Acquisition(10, 3000, "inversion_recovery", ti) for ti in (50, 200, 600, 1500)]
    maps = fit_maps(_render(acqs, pd, t1, t2), acqs)
    body = pd > 0
    assert _median_error(maps.t1, t1, body) < 0.01
    assert maps.free == {"t1": True, "t2": False}
    assert not maps.determined["t2"].any()


def test_determined_parameters_follow_the_acquisitions():
    se = Acquisition(15, 3000)
    assert free_parameters([se]) == {"t1": False, "t2": False}
    assert free_parameters([se, Acquisition(100, 3000)]) == {"t1": False, "t2": True}
    assert free_parameters([se, Acquisition(15, 500)]) == {"t1": True, "t2": False}
    assert free_parameters([se, Acquisition(100, 3000), Acquisition(15, 500)]) == {"t1": True, "t2": True}
    pd, t1, t2 = _maps()
    acqs = [se, Acquisition(100, 3000)]
    maps = fit_maps(_render(acqs, pd, t1, t2), acqs)
    body = pd > 0
    assert not maps.determined["t1"].any()
    assert maps.determined_bits[body].max() == 4  # T2 alone
    # T1 left open stays at the prior
    assert np.median(np.abs(maps.t1[body] / 1000.0 - 1)) < 0.05


def test_per_input_gain_is_estimated_from_the_prior():
    pd, t1, t2 = _maps()
    acqs = [Acquisition(15, 3000), Acquisition(100, 3000), Acquisition(15, 500)]
    images = _render(acqs, pd, t1, t2)
    images[2] = images[2] * 3.0
    maps = fit_maps(images, acqs, prior={"t1": t1 + (t1 == 0), "t2": t2 + (t2 == 0)}, scale="per_input")
    assert maps.scales[2] == pytest.approx(3.0, rel=0.02)
    assert _median_error(maps.t1, t1, pd > 0) < 0.02


def test_bad_inputs_are_refused():
    a = np.ones((4, 4), np.float32)
    with pytest.raises(ValueError, match="one shape"):
        fit_maps([a, np.ones((4, 5), np.float32)], [Acquisition(15, 3000), Acquisition(90, 3000)])
    with pytest.raises(ValueError, match="2 images but 1 acquisitions"):
        fit_maps([a, a], [Acquisition(15, 3000)])
    with pytest.raises(ValueError, match="cannot be 'mprage'"):
        fit_maps([a], [AcquisitionValues("mprage", 3, 2300, 900, 9)])


def test_single_input_gives_the_network_maps_as_today():
    from napari_mr_reparam.inference import Reparameterizer
    from napari_mr_reparam.joint_fit import network_maps, network_render

    engine = Reparameterizer("physics", device="cpu")
    pd, t1, t2 = _maps(shape=(1, 32, 32))
    acq = Acquisition(50, 4500)
    image = _render([acq], pd, t1, t2)[0]
    maps = joint_maps([image], [acq], engine=engine)
    today = network_maps(engine, image, acq)
    assert np.array_equal(maps.render(100, 3000), network_render(engine, today, 100, 3000).reshape(image.shape))
    assert not maps.determined["t1"].any()


def test_multi_echo_train_with_imperfect_refocusing_gives_t2_and_flip_angle():
    from napari_mr_reparam import epg

    rng = np.random.default_rng(5)
    shape = (1, 20, 20)
    pd = np.full(shape, 1000.0)
    pd[:, :2] = 0  # background rows
    t2 = np.exp(rng.uniform(np.log(30), np.log(200), shape))
    scale = rng.uniform(0.65, 0.9, shape)
    n, esp = 16, 10.0
    echoes = np.mean([epg.cpmg_echoes(n, esp, t2, scale * p) for p in epg.slice_profile()], axis=0)
    images = [(pd * echoes[..., k] + rng.normal(0, 0.5, shape)).astype(np.float32) for k in range(n)]
    acqs = [Acquisition(esp * (k + 1), 3000) for k in range(n)]
    body = pd > 0
    maps = fit_maps(images, acqs)
    assert maps.echo_train == "epg" and maps.summary()["echo_train"] == "epg"
    assert _median_error(maps.t2, t2, body) < 0.02
    assert np.median(np.abs(maps.b1[body] - scale[body])) < 0.03
    ideal = fit_maps(images, acqs, echo_train="ideal")
    assert ideal.b1 is None and ideal.echo_train == "ideal"
    assert np.median(ideal.t2[body] / t2[body] - 1) > 0.1  # stimulated echoes lengthen it
    # two echoes are no train: the ideal equation, no flip angle
    assert fit_maps(images[:2], acqs[:2]).b1 is None
    with pytest.raises(ValueError, match="echo_train"):
        fit_maps(images, acqs, echo_train="bloch")


def test_incomplete_inversion_is_estimated_and_t1_recovered():
    from napari_mr_reparam.joint_fit import inversion_efficiency

    pd, t1, t2 = _maps(seed=4)
    tis, tr, te, k = (50, 100, 200, 400, 600, 800), 1000, 10, 0.8
    acqs = [Acquisition(te, tr, "inversion_recovery", ti) for ti in tis]
    images = [(1000 * pd * np.abs(1 - (1 + k) * np.exp(-ti / np.maximum(t1, 1e-3))
                                  + k * np.exp(-tr / np.maximum(t1, 1e-3)))
               * np.exp(-te / np.maximum(t2, 1e-3))).astype(np.float32) for ti in tis]
    body = pd > 0
    assert inversion_efficiency(images, acqs) == pytest.approx(k, abs=0.021)
    maps = fit_maps(images, acqs)
    assert maps.inversion_efficiency == pytest.approx(k, abs=0.021)
    short = t1 < 1500  # within reach of TIs up to 800 ms at TR 1000
    assert np.median(np.abs(maps.t1[body & short] / t1[body & short] - 1)) < 0.03
    perfect = fit_maps(images, acqs, inversion=1.0)
    assert perfect.inversion_efficiency == 1.0
    assert np.median(1 - perfect.t1[body & short] / t1[body & short]) > 0.1  # a perfect inversion assumed: T1 short
    # two TIs are too few to tell the efficiency: a perfect inversion is assumed
    assert inversion_efficiency(images[:2], acqs[:2]) == 1.0


def _inversion_series(k, tis, tr=1000, te=10, seed=4):
    pd, t1, t2 = _maps(seed=seed)
    acqs = [Acquisition(te, tr, "inversion_recovery", ti) for ti in tis]
    images = [np.asarray(physics.inversion_recovery(1000 * pd, t1, t2, te, tr, ti, efficiency=k), np.float32)
              for ti in tis]
    return pd, t1, acqs, images


def test_inversion_efficiency_from_three_tis_and_held_out_ti_rendered_with_it():
    from napari_mr_reparam.joint_fit import inversion_efficiency

    k = 0.85
    pd, t1, acqs, images = _inversion_series(k, (100, 200, 400, 800))
    body = pd > 0
    three, held = [0, 1, 3], 2
    assert inversion_efficiency([images[i] for i in three], [acqs[i] for i in three]) == pytest.approx(k, abs=0.021)
    maps = fit_maps([images[i] for i in three], [acqs[i] for i in three])
    assert maps.inversion_efficiency == pytest.approx(k, abs=0.021)
    a = acqs[held]
    real = images[held][body]
    pred = maps.render(a.te_ms, a.tr_ms, "inversion_recovery", ti_ms=a.ti_ms)[body]
    assert np.linalg.norm(pred - real) / np.linalg.norm(real) < 0.02
    ideal = maps.render(a.te_ms, a.tr_ms, "inversion_recovery", ti_ms=a.ti_ms, inversion=1.0)[body]
    assert np.linalg.norm(ideal - real) > 2 * np.linalg.norm(pred - real)  # the series' own inversion renders it
    # no inversion-recovery input: a perfect inversion
    se = [Acquisition(15, 3000), Acquisition(100, 3000)]
    spin = fit_maps([np.ones((4, 4), np.float32), 0.5 * np.ones((4, 4), np.float32)], se)
    assert spin.inversion_efficiency is None
    np.testing.assert_allclose(spin.render(10, 1000, "inversion_recovery", ti_ms=100),
                               physics.inversion_recovery(spin.pd, spin.t1, spin.t2, 10, 1000, 100), rtol=1e-5)


def test_clipped_and_missing_values():
    pd, t1, acqs, images = _inversion_series(1.0, (50, 200, 400, 800))
    body = pd > 0
    top = np.percentile(images[1][body], 80)
    clipped = images[1] >= top
    images[1] = np.minimum(images[1], top)  # the scanner's stored range ends at `top`
    exact = fit_maps(images, acqs, inversion=1.0)
    bounded = fit_maps(images, acqs, inversion=1.0, clipped=[None, clipped, None, None])
    near = body & clipped & (t1 < 1500)
    err_exact = np.median(np.abs(exact.t1[near] / t1[near] - 1))
    err_bounded = np.median(np.abs(bounded.t1[near] / t1[near] - 1))
    assert err_bounded < 0.02 and err_bounded < err_exact / 2
    # a NaN is a value not measured: the voxel is fitted to the other inputs
    holes = [im.copy() for im in images]
    holes[1][clipped] = np.nan
    missing = fit_maps(holes, acqs, inversion=1.0)
    assert np.isfinite(missing.t1[body]).all()
    assert np.median(np.abs(missing.t1[near] / t1[near] - 1)) < 0.02
    nowhere = [im.copy() for im in images]
    for im in nowhere:
        im[0, 5, 5] = np.nan
    assert np.isnan(fit_maps(nowhere, acqs, inversion=1.0).t1[0, 5, 5])
    with pytest.raises(ValueError, match="clipped"):
        fit_maps(images, acqs, clipped=[clipped])
