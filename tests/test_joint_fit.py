"""The joint fit recovers known maps from images rendered at several acquisitions."""

import numpy as np
import pytest
from helpers import inversion_series, random_maps, render_inputs, tissue_blocks

from napari_mr_reparam import physics
from napari_mr_reparam.fit_information import AcquisitionValues
from napari_mr_reparam.joint_fit import fit_maps, joint_maps
from napari_mr_reparam.simulate import Acquisition


def _median_error(fit, truth, body):
    return float(np.median(np.abs(fit[body] / truth[body] - 1)))


def test_dual_echo_and_t1_weighted_recover_all_three_maps():
    pd, t1, t2 = random_maps()
    acqs = [Acquisition(15, 3000), Acquisition(100, 3000), Acquisition(15, 500)]
    maps = fit_maps(render_inputs(acqs, pd, t1, t2), acqs)
    body = pd > 0
    assert _median_error(maps.t1, t1, body) < 0.01
    assert _median_error(maps.t2, t2, body) < 0.01
    assert _median_error(maps.pd / 1000, pd, body) < 0.01
    assert maps.determined["t2"][body].mean() > 0.5 and maps.determined["t1"][body].mean() > 0.5
    assert (maps.pd[~body] == 0).all() and not maps.determined["t1"][~body].any()
    # renders at a new acquisition match the truth
    new = Acquisition(60, 2000)
    truth = render_inputs([new], pd, t1, t2)[0]
    assert np.abs(maps.render(60, 2000) - truth)[body].max() < 0.05 * truth.max()


def test_inversion_recovery_magnitude_gives_t1():
    pd, t1, t2 = random_maps(seed=1)
    acqs = [Acquisition(10, 3000, "inversion_recovery", ti) for ti in (50, 200, 600, 1500)]
    maps = fit_maps(render_inputs(acqs, pd, t1, t2), acqs)
    body = pd > 0
    assert _median_error(maps.t1, t1, body) < 0.01
    assert maps.free == {"t1": True, "t2": False}
    assert not maps.determined["t2"].any()


def test_determined_parameters_follow_the_acquisitions():
    se = Acquisition(15, 3000)
    pd, t1, t2 = random_maps()
    acqs = [se, Acquisition(100, 3000)]
    maps = fit_maps(render_inputs(acqs, pd, t1, t2), acqs)
    body = pd > 0
    assert not maps.determined["t1"].any()
    assert maps.determined_bits[body].max() == 4  # T2 alone
    # T1 left open stays at the prior
    assert np.median(np.abs(maps.t1[body] / 1000.0 - 1)) < 0.05


def test_per_input_gain_is_estimated_from_the_prior():
    pd, t1, t2 = random_maps()
    acqs = [Acquisition(15, 3000), Acquisition(100, 3000), Acquisition(15, 500)]
    images = render_inputs(acqs, pd, t1, t2)
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
    with pytest.raises(ValueError, match="^input 2 holds no image: every voxel is NaN or infinite$"):
        fit_maps([a, np.full((4, 4), np.nan, np.float32)], [Acquisition(15, 3000), Acquisition(90, 3000)])
    with pytest.raises(ValueError, match="cannot be 'double_inversion_recovery'"):
        fit_maps([a], [AcquisitionValues("double_inversion_recovery", 20, 11000, 3400, None)])
    with pytest.raises(ValueError, match="^input 1 holds no image: no voxel is above 0$"):  # an empty scan
        fit_maps([np.zeros_like(a), a], [Acquisition(15, 3000), Acquisition(90, 3000)])
    with pytest.raises(ValueError, match="^input 1 has 4 dimensions, shape \\(1, 1, 4, 4\\): joint maps take"):
        fit_maps([a[None, None], a[None, None]], [Acquisition(15, 3000), Acquisition(90, 3000)])


def test_single_input_gives_the_network_maps_as_today():
    from napari_mr_reparam.inference import Reparameterizer
    from napari_mr_reparam.joint_result import network_maps, network_render

    engine = Reparameterizer("physics", device="cpu")
    pd, t1, t2 = random_maps(shape=(1, 32, 32))
    acq = Acquisition(50, 4500)
    image = render_inputs([acq], pd, t1, t2)[0]
    maps = joint_maps([image], [acq], engine=engine)
    today = network_maps(engine, image, acq)
    assert np.array_equal(maps.render(100, 3000), network_render(engine, today, 100, 3000).reshape(image.shape))
    assert not maps.determined["t1"].any()
    # a double inversion recovery from one input, as the widget renders it
    dir_target = Acquisition(25, 11000, "double_inversion_recovery", 3400, None, 325)
    assert np.array_equal(maps.render(25, 11000, "double_inversion_recovery", 3400, ti2_ms=325),
                          engine.render(today, dir_target).reshape(image.shape))
    with pytest.raises(ValueError, match="need two or more inversion-recovery inputs"):
        maps.render(20, 3000, "inversion_recovery", 300, inversion=0.9)


def test_single_input_of_another_sequence_is_read_by_the_network_not_refused_by_the_fit():
    from napari_mr_reparam.inference import Reparameterizer
    from napari_mr_reparam.joint_result import network_maps

    engine = Reparameterizer("physics", device="cpu")  # the bundled model reads MPRAGE inputs
    pd, t1, t2 = random_maps(shape=(1, 32, 32))
    acq = Acquisition(3, 2300, "mprage", 900, 9)
    image = render_inputs([acq], pd, t1, t2)[0]
    maps = joint_maps([image], [acq], engine=engine)
    np.testing.assert_array_equal(maps.t1, network_maps(engine, image, acq).at_input_size()["t1"].reshape(image.shape))
    joint = joint_maps([image, image], [acq, Acquisition(50, 4500)], engine=engine)  # two: the fit
    assert joint.t1.shape == image.shape and np.isfinite(joint.t1).all()


def test_mprage_with_two_spin_echoes_gives_t1_and_t2():
    pd, t1, t2 = random_maps(shape=(1, 24, 24), seed=3)
    acqs = [Acquisition(3, 2300, "mprage", 900, 9), Acquisition(100, 5000), Acquisition(15, 5000)]
    rng = np.random.default_rng(4)  # noise 0.05 % of the brightest signal
    maps = fit_maps([im + rng.normal(0, 0.5, im.shape).astype(np.float32) for im in render_inputs(acqs, pd, t1, t2)], acqs)
    body = pd > 0
    assert _median_error(maps.t1, t1, body) < 0.03 and _median_error(maps.t2, t2, body) < 0.01
    assert maps.determined["t1"][body].mean() > 0.8  # the long-TR pair alone leaves T1 open


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


def test_a_short_train_leaves_a_long_t2_undetermined_where_its_flip_angle_and_t1_are_free():
    # 8 echoes to 80 ms at 85 % refocusing: a T2 of 40 ms decays within the train, one of
    # 800 ms barely, and its slow decay is long T2 or the stimulated echoes' storage alike
    # (T1, which no input measures, and the flip-angle scale fitted per voxel)
    from napari_mr_reparam import epg

    rng = np.random.default_rng(7)
    shape = (1, 16, 16)
    pd = np.full(shape, 1000.0)
    pd[:, :2] = 0  # background rows
    t2 = np.where(np.arange(16) < 8, 40.0, 800.0) * np.ones(shape)
    n, esp = 8, 10.0
    echoes = np.mean([epg.cpmg_echoes(n, esp, t2, 0.85 * p) for p in epg.slice_profile()], axis=0)
    single = epg.single_echo_amplitude(0.85 * epg.slice_profile())
    images = [(pd * echoes[..., k] / single + rng.normal(0, 3.0, shape)).astype(np.float32) for k in range(n)]
    maps = fit_maps(images, [Acquisition(esp * (k + 1), 3000) for k in range(n)], noise=0.003, smooth=False)
    short, long = (pd > 0) & (t2 == 40.0), (pd > 0) & (t2 == 800.0)
    assert _median_error(maps.t2, t2, short | long) < 0.03  # the fit itself holds both
    assert maps.determined["t2"][short].all()
    assert not maps.determined["t2"][long].any()  # a flip angle held would pin it to 5 %


def test_incomplete_inversion_is_estimated_and_t1_recovered():
    from napari_mr_reparam.inversion import inversion_efficiency

    pd, t1, t2 = random_maps(seed=4)
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


def test_clipped_and_missing_values():
    pd, t1, acqs, images = inversion_series(1.0, (50, 200, 400, 800))
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


def test_long_t1_fluid_from_three_inputs_is_steadied_by_smoothing_and_edges_are_kept():
    pd, t1, t2 = tissue_blocks()
    acqs = [Acquisition(15, 3000), Acquisition(100, 3000), Acquisition(15, 500)]
    rng = np.random.default_rng(1)
    images = [im + rng.normal(0, 0.005 * im.max(), im.shape).astype(np.float32) for im in render_inputs(acqs, pd, t1, t2)]
    csf = t1 == 3800
    inner = np.zeros_like(csf)
    inner[:, 6:42, 32:42] = True  # CSF away from its edges
    spread = {}
    for smooth in (False, True):
        maps = fit_maps(images, acqs, smooth=smooth)
        spread[smooth] = float(np.std(np.log(maps.t1[inner & csf])))
        assert abs(float(np.median(maps.t1[inner & csf])) / 3800 - 1) < 0.03
    assert spread[True] < 0.5 * spread[False]
    # the columns next to each edge keep their own tissue's values
    for col, value in ((15, 600), (16, 1100), (29, 1100), (30, 3800)):
        assert np.median(maps.t1[0, 6:42, col]) == pytest.approx(value, rel=0.05)
    # a render far from the inputs (long TE and TR) has its brightest voxel near the truth's
    truth = physics.spin_echo(pd, t1, t2, 200, 6000) * 1000
    assert float(maps.render(200, 6000).max()) == pytest.approx(float(truth.max()), rel=0.02)


def test_a_wrong_prior_does_not_pull_what_the_inputs_measure():
    pd, t1, t2 = random_maps(seed=2)
    acqs = [Acquisition(15, 3000), Acquisition(100, 3000), Acquisition(15, 500)]
    body = pd > 0
    wrong = {"t1": np.where(body, 0.5 * t1, 1000).astype(np.float32),
             "t2": np.where(body, 2 * t2, 100).astype(np.float32)}
    maps = fit_maps(render_inputs(acqs, pd, t1, t2), acqs, prior=wrong)
    assert _median_error(maps.t1, t1, body) < 0.01
    assert _median_error(maps.t2, t2, body) < 0.01
    # a parameter the inputs cannot measure (T1 from one TR) follows the prior (a prior
    # whose times are not tied: with a tie, it follows the prior given the measured T2)
    two = fit_maps(render_inputs(acqs[:2], pd, t1, t2), acqs[:2], prior={**wrong, "correlation": 0.0})
    assert _median_error(two.t1, wrong["t1"], body) < 0.05


def test_a_prior_that_reads_both_times_long_is_corrected_through_the_time_measured():
    pd, t1, t2 = random_maps(seed=4)
    body = pd > 0
    long = {"t1": np.where(body, 1.5 * t1, 1000).astype(np.float32),
            "t2": np.where(body, 1.5 * t2, 100).astype(np.float32)}
    dual = [Acquisition(15, 3000), Acquisition(100, 3000)]
    images = render_inputs(dual, pd, t1, t2)
    # no smoothing: these noise-free maps change from voxel to voxel, and the fit assumes 1 %
    # noise where it can measure none, so it would average unlike voxels; the tie is the test
    apart = fit_maps(images, dual, prior={**long, "correlation": 0.0}, smooth=False)
    tied = fit_maps(images, dual, prior=long, smooth=False)  # the default tie of a prior from maps
    assert _median_error(apart.t1, t1, body) > 0.4
    assert _median_error(tied.t1, t1, body) < _median_error(apart.t1, t1, body) - 0.05
    assert _median_error(tied.t2, t2, body) < 0.01  # what the inputs measure stays measured
    # a T1- and a T2-weighted image (three unknowns, two images): the tie keeps the times
    # from buying the fit by moving apart
    pair = [Acquisition(15, 500), Acquisition(100, 3000)]
    images = render_inputs(pair, pd, t1, t2)
    apart = fit_maps(images, pair, prior={**long, "correlation": 0.0})
    tied = fit_maps(images, pair, prior=long)
    assert _median_error(tied.t2, t2, body) < _median_error(apart.t2, t2, body)
    with pytest.raises(ValueError, match="correlation"):
        fit_maps(images, pair, prior={**long, "correlation": 1.0})


class _Engine:
    """Stands in for the physics engine and records which input it was asked for."""

    renders = True

    def __init__(self):
        self.calls = []

    def reads_input(self, sequence):
        return True

    def compute_maps(self, image, acq, **_):
        self.calls.append((acq.te_ms, acq.tr_ms))

        class Maps:
            def at_input_size(self_inner):
                shape = np.asarray(image).shape
                return {"pd": np.ones(shape, np.float32), "t1": np.full(shape, 900.0, np.float32),
                        "t2": np.full(shape, 90.0, np.float32)}

        return Maps()


class _Knowing(_Engine):
    """An engine whose single-image maps are the true ones (PD in its own units)."""

    def __init__(self, pd, t1, t2):
        super().__init__()
        self.truth = {"pd": 0.7 * pd, "t1": np.where(pd > 0, t1, 1000), "t2": np.where(pd > 0, t2, 100)}

    def compute_maps(self, image, acq, progress=None, **_):
        self.calls.append((acq.te_ms, acq.tr_ms))
        if progress is not None:
            progress(np.shape(image)[0])  # a slice at a time, as the engine counts
        truth = {k: v.astype(np.float32) for k, v in self.truth.items()}

        class Maps:
            def at_input_size(self_inner):
                return truth

        return Maps()


def test_voxels_outside_the_further_inputs_fields_of_view_take_the_network_read_of_the_first():
    from napari_mr_reparam.joint_fit import joint_work_units, partly_measured

    pd, t1, t2 = random_maps(shape=(2, 24, 24), seed=3)
    body = pd > 0
    three = [Acquisition(15, 500), Acquisition(15, 3000), Acquisition(100, 3000)]
    images = render_inputs(three, pd, t1, t2)
    for image in images[1:]:
        image[:, 16:] = np.nan  # the later scans' slices end before the first's do
    images[2][:, 13:16] = np.nan  # and the third's before the second's
    part = partly_measured(images)
    assert part[:, 13:].all() and not part[:, :13].any()
    alone = joint_maps(images, three, engine=None)
    engine = _Knowing(pd, t1, t2)
    counted = []
    filled = joint_maps(images, three, engine=engine, progress=counted.append)
    assert engine.calls == [(15, 500)]  # one read, of the first input: the only one measured there
    assert sum(counted) == joint_work_units(pd.shape, engine=engine)  # the read counted as the network's share
    outside = body & part
    # the broad default prior gave every voxel there T1 1000 ms and T2 100 ms
    assert _median_error(alone.t1, t1, outside) > 0.3
    assert _median_error(filled.t1, t1, outside) < 0.02 and _median_error(filled.t2, t2, outside) < 0.02
    pd_like = render_inputs([Acquisition(20, 6000)], pd, t1, t2)[0]
    miss = [np.abs(m.render(20, 6000) - pd_like)[outside].mean() for m in (alone, filled)]
    assert miss[1] < 0.1 * miss[0]
    # where the first two reach, T1w + PDw: T1 measured, T2 the network's
    two = body.copy()
    two[:, 16:] = False
    two &= part
    assert _median_error(filled.t1, t1, two) < 0.02 and _median_error(filled.t2, t2, two) < 0.02
    for key in ("pd", "t1", "t2"):  # voxels every input measured are the fit's as before
        np.testing.assert_array_equal(getattr(filled, key)[:, :13], getattr(alone, key)[:, :13])
    assert filled.summary()["partly_measured_fraction"] == pytest.approx(outside.sum() / body.sum(), abs=1e-3)
    assert alone.summary()["partly_measured_fraction"] == filled.summary()["partly_measured_fraction"]
    assert (alone.partly_prior, filled.partly_prior) == ("default", "network")
    # every input measured everywhere: no network runs, as before
    engine.calls.clear()
    joint_maps(render_inputs(three, pd, t1, t2), three, engine=engine)
    assert engine.calls == []


class _ReadingZeros(_Knowing):
    """The true maps, but where the image it reads is 0 (NaN read as 0) the short times a
    network gives a dark background."""

    def compute_maps(self, image, acq, progress=None, **_):
        maps = super().compute_maps(image, acq, progress)
        truth = maps.at_input_size()
        dark = np.asarray(image) == 0
        truth["t1"], truth["t2"] = np.where(dark, 100.0, truth["t1"]), np.where(dark, 6.0, truth["t2"])
        return maps


def test_voxels_the_network_read_unmeasured_take_no_prior_from_it():
    # a dual echo whose first input (the one the network reads) has a patch of NaN: there the
    # second input alone measures, and the network's read of 0 once made T2 6 ms and PD 1e11
    pd, t1, t2 = random_maps(shape=(1, 24, 24), seed=4)
    pair = [Acquisition(50, 4500), Acquisition(120, 6000)]
    images = render_inputs(pair, pd, t1, t2)
    images[0][:, 10:16, 10:16] = np.nan
    patch = np.zeros(pd.shape, bool)
    patch[:, 10:16, 10:16] = True
    engine = _ReadingZeros(pd, t1, t2)
    maps = joint_maps(images, pair, engine=engine)
    assert engine.calls == [(50, 4500)]
    fitted = patch & (maps.pd > 0)
    assert fitted.sum() > 0.8 * patch.sum()
    assert maps.pd[fitted].max() < 3 * 1000 * pd.max() and maps.t2[fitted].min() > 20
    assert _median_error(maps.t2, t2, (pd > 0) & ~patch) < 0.05  # where both measure, as before


def test_an_image_without_noise_is_fitted_as_one_at_the_least_noise():
    from napari_mr_reparam.fit_information import per_input_noise
    from napari_mr_reparam.image_noise import MIN_NOISE

    assert per_input_noise([1e-6, 0.02], 2) == [MIN_NOISE, 0.02]
    # noiseless images, one voxel patch measured by the second input alone: the default
    # prior, not single precision's roundoff, chooses its times
    pd, t1, t2 = random_maps(shape=(1, 24, 24), seed=4)
    pair = [Acquisition(50, 4500), Acquisition(120, 6000)]
    images = render_inputs(pair, pd, t1, t2)
    images[0][:, 10:16, 10:16] = np.nan
    maps = fit_maps(images, pair, noise=1e-6)
    assert maps.summary()["noise"] == [MIN_NOISE, MIN_NOISE]
    fitted = maps.pd[:, 10:16, 10:16] > 0
    assert fitted.mean() > 0.8 and maps.t2[:, 10:16, 10:16][fitted].min() > 20
    assert np.nanmax(maps.pd) < 3 * 1000 * pd.max()


def test_a_pd_prior_settles_what_a_t1_and_a_t2_weighted_image_leave_open():
    pd, t1, t2 = random_maps(seed=5)
    body = pd > 0
    pair = [Acquisition(15, 500), Acquisition(100, 3000)]
    images = render_inputs(pair, pd, t1, t2)
    # a prior that reads T1 long and T2 short (errors the tie between them does not mend)
    long = {"t1": np.where(body, 1.4 * t1, 1000).astype(np.float32),
            "t2": np.where(body, 0.75 * t2, 100).astype(np.float32)}
    without = fit_maps(images, pair, prior=long)
    with_pd = fit_maps(images, pair, prior={**long, "pd": 1000 * pd})  # in the images' units
    assert _median_error(with_pd.pd, 1000 * pd, body) < 0.4 * _median_error(without.pd, 1000 * pd, body)
    pd_like = render_inputs([Acquisition(20, 6000)], pd, t1, t2)[0]
    miss = [np.abs(m.render(20, 6000) - pd_like)[body].mean() for m in (without, with_pd)]
    assert miss[1] < 0.4 * miss[0]
    with pytest.raises(ValueError, match="pd_sd"):
        fit_maps(images, pair, prior={**long, "pd": 1000 * pd, "pd_sd": 0})
    # gains of their own: a PD map in the second input's units is brought to the first's
    gained = [images[0], 2.5 * images[1]]
    exact = {"t1": np.where(body, t1, 1000).astype(np.float32), "t2": np.where(body, t2, 100).astype(np.float32)}
    right = fit_maps(gained, pair, scale="per_input", prior={**exact, "pd": 2500 * pd, "pd_input": 1})
    wrong = fit_maps(gained, pair, scale="per_input", prior={**exact, "pd": 2500 * pd})
    assert right.scales[1] == pytest.approx(2.5, rel=0.02)
    assert _median_error(right.pd, 1000 * pd, body) < 0.02 < _median_error(wrong.pd, 1000 * pd, body)


def test_the_network_is_run_only_where_the_inputs_leave_a_parameter_open():
    from napari_mr_reparam.joint_fit import prior_input_of

    pd, t1, t2 = random_maps(shape=(1, 16, 16))
    three = [Acquisition(15, 3000), Acquisition(100, 3000), Acquisition(15, 500)]
    engine = _Engine()
    maps = joint_maps(render_inputs(three, pd, t1, t2), three, engine=engine)
    assert engine.calls == []  # T1 and T2 both measured: no network
    assert maps.summary()["prior_source"] == "default"
    joint_maps(render_inputs(three, pd, t1, t2), three, engine=engine, scale="per_input")
    assert engine.calls == [(100, 3000)]  # per-input gains are estimated against its maps
    # a PD/T2 dual echo leaves T1 open: the network reads the echo nearest TE 50 / TR 4500 ms
    assert prior_input_of(three[:2]) == 1
    engine.calls.clear()
    maps = joint_maps(render_inputs(three[:2], pd, t1, t2), three[:2], engine=engine)
    assert engine.calls == [(100, 3000)]
    assert maps.summary()["prior_source"] == "network"
    # the network took part: the maps name it, so an output records its weights
    from types import SimpleNamespace

    assert maps.engine is engine
    engine.info = SimpleNamespace(sha256="ab" * 32)
    assert maps.weights_sha256 == "ab" * 32
    three_maps = joint_maps(render_inputs(three, pd, t1, t2), three, engine=engine)
    assert three_maps.engine is None and three_maps.weights_sha256 is None  # no network in these


def test_the_network_pd_is_a_prior_only_where_the_inputs_measure_neither_time(monkeypatch):
    from napari_mr_reparam import joint_fit

    priors = []
    real = joint_fit.fit_maps
    monkeypatch.setattr(joint_fit, "fit_maps", lambda *a, prior=None, **k: priors.append(prior) or real(*a, prior=prior, **k))
    pd, t1, t2 = random_maps(shape=(1, 16, 16))
    dual, pair = [Acquisition(15, 3000), Acquisition(100, 3000)], [Acquisition(15, 500), Acquisition(100, 3000)]
    for acqs in (dual, pair):
        joint_maps(render_inputs(acqs, pd, t1, t2), acqs, engine=_Engine())
    assert "pd" not in priors[0] and "pd" in priors[1]
    maps = real(render_inputs(pair, pd, t1, t2), pair, prior=priors[1])
    assert maps.summary()["prior_parameters"] == ["pd", "t1", "t2"]
    joint_maps(render_inputs(pair, pd, t1, t2), pair, engine=_Engine(), scale="per_input")
    assert priors[-1]["pd_input"] == 1  # the network read the T2w image: its PD is in that image's units
    with pytest.raises(ValueError, match="pd_input"):
        real(render_inputs(pair, pd, t1, t2), pair, prior={**priors[1], "pd_input": 2})


def test_the_fit_takes_the_noise_measured_in_its_inputs_or_the_default():
    from napari_mr_reparam.image_noise import DEFAULT_NOISE, estimate_noise

    pd, t1, t2 = tissue_blocks(shape=(2, 64, 64))
    acqs = [Acquisition(15, 3000), Acquisition(100, 3000)]
    clean = render_inputs(acqs, pd, t1, t2)
    rng = np.random.default_rng(3)
    signed = [im + rng.normal(0, 0.02 * clean[0].max(), im.shape).astype(np.float32) for im in clean]
    assert fit_maps(signed, acqs).summary()["noise"] == pytest.approx(estimate_noise(signed), rel=1e-3)
    assert fit_maps(clean, acqs).summary()["noise"] == [DEFAULT_NOISE, DEFAULT_NOISE]  # nothing to measure
    with pytest.raises(ValueError, match="noise"):
        fit_maps(clean, acqs, noise=[0.01])


def test_a_voxel_at_the_noise_floor_in_the_later_echo_is_not_extrapolated_a_billionfold():
    rng = np.random.default_rng(0)
    t2 = np.zeros((32, 32), np.float32)
    t2[4:28, 4:28] = 80.0  # the object, with a background to measure the noise in
    t2[10:16, 10:16] = 17.0  # a short-T2 patch: the TE 88 ms echo falls to the noise floor
    pd = (t2 > 0).astype(np.float32)
    acqs = [Acquisition(56.0, 3000.0), Acquisition(88.0, 3000.0)]
    images = [physics.spin_echo(pd, np.full_like(t2, 1000.0), np.maximum(t2, 1.0), a.te_ms, a.tr_ms)
              for a in acqs]
    images = [np.abs(im + rng.normal(0, 0.003, im.shape)).astype(np.float32) for im in images]
    images[1][10:16, 10:16] = 0.0  # stored as 0, as a scanner's integer scale leaves it
    maps = fit_maps(images, acqs)
    shorter = maps.render(24.0, 3000.0)  # extrapolated to a shorter TE
    assert np.all(np.isfinite(shorter))
    assert shorter[10:16, 10:16].max() < 10 * max(im.max() for im in images)  # not a billionfold
    assert np.median(maps.t2[10:16, 10:16]) > 4.0  # the prior chose among the T2s that fit


def _preset_acquisition(name):
    from napari_mr_reparam.presets import get_preset

    kw = get_preset(name).render_arguments()
    return Acquisition(kw["te_ms"], kw["tr_ms"], kw["sequence"], kw["ti_ms"], kw["flip_deg"])


def test_without_a_spin_echo_the_network_reads_the_mprage_of_an_mprage_and_flair():
    from napari_mr_reparam.joint_fit import prior_input_of

    flair, mprage = _preset_acquisition("FLAIR"), _preset_acquisition("MPRAGE")
    assert prior_input_of([flair, mprage], reads=lambda sequence: True) == 1
    assert prior_input_of([flair, mprage], reads=lambda sequence: sequence == "inversion_recovery") == 0
    assert prior_input_of([flair, mprage], reads=lambda sequence: sequence == "spin_echo") is None
    assert prior_input_of([flair, mprage]) is None  # no engine to ask
    pd, t1, t2 = random_maps(shape=(1, 16, 16))
    engine = _Engine()
    maps = joint_maps(render_inputs([flair, mprage], pd, t1, t2), [flair, mprage], engine=engine)
    assert engine.calls == [(3, 2300)]
    assert maps.summary()["prior_source"] == "network"


def test_a_pair_that_measures_neither_time_is_searched_with_the_pd_prior_not_started_at_the_prior():
    # fat (T1 378, T2 70 ms) in an MPRAGE and a FLAIR, read by the network as fluid: started at
    # that prior, the fit kept the branch past the FLAIR's null with a PD about fourteen times
    # the prior's; searched with the PD prior's cost, it finds the tissue
    acqs = [_preset_acquisition("MPRAGE"), _preset_acquisition("FLAIR")]
    shape = (1, 16, 16)
    pd, t1, t2 = np.full(shape, 0.97, np.float32), np.full(shape, 378.0, np.float32), np.full(shape, 70.0, np.float32)
    prior = {"t1": np.full(shape, 3000.0, np.float32), "t2": np.full(shape, 850.0, np.float32),
             "pd": np.full(shape, 0.7 * 1000, np.float32), "pd_input": 0}
    maps = fit_maps(render_inputs(acqs, pd, t1, t2), acqs, prior=prior, noise=0.005)
    body = pd > 0
    assert np.median(maps.pd[body]) / 1000 < 1.5
    assert np.median(maps.t1[body]) < 1000


def test_a_short_t2_tissue_beside_a_flair_is_fitted_to_the_end_of_its_valley():
    # muscle-like tissue (T1 1437, T2 39 ms) from a T1w, a T2w and a FLAIR image: six steps from
    # the grid's start left it at T1 542, T2 46 ms (its cost 30 times the noise's)
    acqs = [_preset_acquisition(name) for name in ("T1w", "T2w", "FLAIR")]
    shape = (1, 16, 16)
    pd, t1, t2 = np.full(shape, 0.82, np.float32), np.full(shape, 1437.0, np.float32), np.full(shape, 39.0, np.float32)
    pd[0, :8] = 0.96  # and fluid beside it, so the images are not of one tissue
    t1[0, :8], t2[0, :8] = 3547.0, 2205.0
    maps = fit_maps(render_inputs(acqs, pd, t1, t2), acqs, noise=0.005)
    tissue = np.zeros(shape, bool)
    tissue[0, 8:] = True
    assert _median_error(maps.t1, t1, tissue) < 0.02
    assert _median_error(maps.t2, t2, tissue) < 0.02


def test_with_a_flair_among_inputs_that_measure_both_times_the_network_pd_picks_the_side_of_its_null():
    # T1w, T2w and FLAIR of the MNI152 head: some fluid fits the far side of the FLAIR's null
    # (T1 past 4 s, PD two to three times the truth) as well as the near side; the network's
    # PD (here the truth, read from the T2w input) tells the two apart
    from napari_mr_reparam.phantoms import load_phantom

    head = load_phantom("mni152")
    mid = head.pd.shape[0] // 2
    pd, t1, t2 = (np.asarray(getattr(head, k)[mid - 2:mid + 2], np.float32) for k in ("pd", "t1", "t2"))
    acqs = [_preset_acquisition(name) for name in ("T1w", "T2w", "FLAIR")]
    rng = np.random.default_rng(0)
    images = [np.abs(im) + rng.normal(0, 0.005 * np.abs(im).max(), im.shape).astype(np.float32)
              for im in render_inputs(acqs, pd, t1, t2)]

    class Network(_Engine):
        def compute_maps(self, image, acq, **_):
            self.calls.append((acq.te_ms, acq.tr_ms))

            class Maps:
                def at_input_size(self_inner):
                    return {"pd": 1000 * pd, "t1": np.where(pd > 0, 1500.0, 0).astype(np.float32),
                            "t2": np.where(pd > 0, 150.0, 0).astype(np.float32)}

            return Maps()

    fluid = t1 > 2000
    plain = fit_maps(images, acqs)
    engine = Network()
    joint = joint_maps(images, acqs, engine=engine)
    assert engine.calls == [(100, 4000)]  # run although the inputs measure both times
    assert joint.summary()["prior_parameters"] == ["pd", "t1", "t2"]

    def far_side(maps):
        return int(((maps.t1 > 1.5 * t1) & fluid).sum())

    assert far_side(plain) > 50 and far_side(joint) < far_side(plain) / 5


def test_the_network_pd_is_brought_to_the_units_of_the_image_it_read():
    # the network gives the tissue's PD (0-1 whatever the image's scale); a scan's values run
    # to the thousands: as a prior in its own units, it dragged a T1w + T2w pair's PD a
    # thousandfold down (the demo head's pair rendered at 13.9 dB, below its single image)
    from napari_mr_reparam.joint_fit import pd_in_input_units

    pd, t1, t2 = random_maps(shape=(2, 16, 16), seed=7)
    pair = [Acquisition(15, 500), Acquisition(100, 3000)]
    images = render_inputs(pair, pd, t1, t2)  # 1000 times the PD

    class Network(_Engine):
        def compute_maps(self, image, acq, **_):
            self.calls.append((acq.te_ms, acq.tr_ms))

            class Maps:
                def at_input_size(self_inner):
                    return {"pd": pd / pd.max(), "t1": t1, "t2": t2}

            return Maps()

    body = pd > 0
    units = pd_in_input_units(pd / pd.max(), t1, t2, images[1], pair[1])
    assert _median_error(units, 1000 * pd, body) < 1e-3
    half = images[1].copy()
    half[:, 6:] = np.nan  # an image that covers part of the grid: its unmeasured voxels tell nothing
    assert _median_error(pd_in_input_units(pd / pd.max(), t1, t2, half, pair[1]), 1000 * pd, body) < 1e-3
    maps = joint_maps(images, pair, engine=Network())
    assert maps.summary()["prior_parameters"] == ["pd", "t1", "t2"]
    assert _median_error(maps.pd, 1000 * pd, body) < 0.02


def test_a_scan_resampled_onto_another_grid_keeps_the_noise_it_was_measured_with_on_its_own(tmp_path):
    """A PD/T2 dual echo shifted by half a voxel against a T1-weighted scan: resampled, its
    background noise is averaged down and reads far quieter than it is; measured on its
    own grid it reads what it holds, and joint_maps takes a None as "measure it here"."""
    import nibabel as nib

    from napari_mr_reparam.grids import on_one_grid
    from napari_mr_reparam.image_noise import estimate_noise, noise_on_own_grids
    from napari_mr_reparam.io import load_volume

    rng = np.random.default_rng(0)
    shape = (24, 24, 6)
    pd = np.zeros(shape, np.float32)
    pd[6:18, 6:18] = 0.8  # a block of tissue in air
    t1, t2 = np.full(shape, 900, np.float32), np.full(shape, 80, np.float32)
    shifted = np.eye(4)
    shifted[:3, 3] = 0.5  # half a voxel along every axis
    paths = []
    for name, te, tr, affine in (("t1w", 15, 500, np.eye(4)), ("pdw", 15, 3000, shifted), ("t2w", 100, 3000, shifted)):
        clean = np.asarray(physics.spin_echo(pd, t1, t2, te, tr), np.float32)
        sd = 0.01 * clean.max()
        noisy = np.hypot(clean + rng.normal(0, sd, shape), rng.normal(0, sd, shape)).astype(np.float32)
        nib.save(nib.Nifti1Image(noisy, affine), tmp_path / f"{name}.nii.gz")
        paths.append(tmp_path / f"{name}.nii.gz")
    volumes = [load_volume(str(p)) for p in paths]
    own = noise_on_own_grids(volumes)
    assert own == pytest.approx([0.01, 0.01, 0.01], rel=0.35)
    resampled, moved = on_one_grid(volumes)
    assert moved == [1, 2]
    after = estimate_noise([v.data for v in resampled])
    assert max(after[1:]) < 0.6 * min(own[1:])  # averaged down by the resampling
    maps = joint_maps([v.data for v in resampled], [Acquisition(15, 500), Acquisition(15, 3000),
                                                     Acquisition(100, 3000)], noise=[None, *own[1:]])
    assert maps.noise[1:] == pytest.approx(own[1:]) and maps.noise[0] == pytest.approx(after[0])


def test_a_many_coil_background_above_zero_is_left_out_of_the_object():
    """A magnitude image combined from 16 receive coils has a background near 5.7 noise
    levels above 0 (a chi distribution): it is not the object, and the fit leaves it (0)."""
    from napari_mr_reparam.image_noise import background_levels

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    disc = (yy - 32) ** 2 + (xx - 32) ** 2 < 15 ** 2
    pd, t1, t2 = (np.where(disc, v, 0.0).astype(np.float32)[None] for v in (1.0, 900.0, 90.0))
    acqs = [Acquisition(15, 3000), Acquisition(100, 3000), Acquisition(15, 500)]
    sigma = 0.01
    images = []
    for clean in render_inputs(acqs, pd, np.where(disc, t1, 1000.0), np.where(disc, t2, 100.0)):
        noise = rng.normal(0, sigma, clean.shape + (16, 2))  # each coil's real and imaginary part
        real, imaginary = clean[..., None] / 4 + noise[..., 0], noise[..., 1]
        images.append(np.sqrt((real ** 2 + imaginary ** 2).sum(-1)).astype(np.float32))  # root sum of squares
    levels = background_levels(images)
    assert all(4.5 * sigma < level < 7 * sigma for level in levels)
    maps = fit_maps(images, acqs, echo_train="ideal", smooth=False)
    outside = ~disc[None]
    assert float(np.mean(maps.pd[outside] > 0)) < 0.01 and float(np.mean(maps.pd[~outside] > 0)) > 0.99


@pytest.mark.parametrize("kind", ["inversion times at one TE", "an echo train at one TR"])
def test_what_a_series_measures_is_reported_determined_everywhere_not_at_random(kind):
    """Inversion times at one TE leave T2 (and so PD) open and measure T1; an echo train at
    one TR leaves T1 (and PD) open and measures T2. The one they measure is determined in
    every voxel of even contrast, not in a random half of them (a singular information
    matrix left to single precision's roundoff)."""
    rng = np.random.default_rng(3)
    pd, t1, t2 = (np.full((1, 24, 24), v, np.float32) for v in (1.0, 900.0, 90.0))
    if kind.startswith("inversion"):
        acqs, measured, open_ = [Acquisition(12, 2000, "inversion_recovery", ti) for ti in
                                 (50, 100, 200, 400, 800, 1600)], "t1", "t2"
    else:
        acqs, measured, open_ = [Acquisition(te, 2000) for te in (10, 20, 40, 80, 120, 160)], "t2", "t1"
    images = [im + rng.normal(0, 0.002, im.shape).astype(np.float32) for im in render_inputs(acqs, pd, t1, t2)]
    maps = fit_maps([np.abs(im) for im in images], acqs, echo_train="ideal", smooth=False, noise=0.002,
                    inversion=1.0)
    assert maps.determined[measured].mean() == 1.0
    assert not maps.determined[open_].any() and not maps.determined["pd"].any()
