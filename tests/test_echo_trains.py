"""Multi-echo trains among a joint fit's inputs, put in the ideal equation's form."""

import numpy as np
import pytest

from napari_mr_reparam import epg
from napari_mr_reparam.echo_trains import echo_trains, ideal_form
from napari_mr_reparam.fit_information import acquisition_values
from napari_mr_reparam.simulate import Acquisition


def test_a_train_is_found_among_the_inputs_and_other_inputs_are_not_part_of_it():
    echoes = [Acquisition(10.0 * k, 2000) for k in range(1, 9)]
    others = [Acquisition(15, 500), Acquisition(100, 9000, "inversion_recovery", 2500)]
    [(members, spacing, numbers)] = echo_trains(others[:1] + echoes + others[1:])
    assert members == list(range(1, 9)) and spacing == 10.0
    np.testing.assert_array_equal(numbers, np.arange(1, 9))
    assert echo_trains(echoes[:2] + others) == []  # a dual echo is no train
    assert echo_trains([Acquisition(10.0 * k, 2000 + k) for k in range(1, 9)]) == []  # echoes of several TRs


def test_the_ideal_form_makes_a_trains_echoes_decay_as_its_t2():
    n, esp, t2 = 8, 10.0, 60.0
    amplitudes = np.mean([epg.cpmg_echoes(n, esp, np.array([t2]), 0.8 * p) for p in epg.slice_profile()], axis=0)
    images = [np.full((1, 4, 4), 1000.0 * a, np.float32) for a in amplitudes[0]]
    acqs = [acquisition_values(Acquisition(esp * k, 3000)) for k in range(1, n + 1)]
    body = np.ones((1, 4, 4), bool)
    out, b1, excess = ideal_form(images, acqs, body)
    values = np.array([o[0, 0, 0] for o in out])
    tes = esp * np.arange(1, n + 1)
    slope = np.polyfit(tes, np.log(values), 1)[0]
    assert abs(-1 / slope / t2 - 1) < 0.03  # the raw echoes decay more slowly (stimulated echoes)
    assert abs(np.polyfit(tes, np.log(1000.0 * amplitudes[0]), 1)[0] * -t2 - 1) > 0.05
    assert np.nanmedian(b1) == pytest.approx(0.8, abs=0.05)


def _train_beside_inversion_recovery(t1=60.0, flip_scale=1.1, shape=(2, 6, 6), t2=40.0):
    """A sample of T1 near its T2 (a NiCl2 sphere): an 8-echo train through its phase graph
    at its own T1, and five inversion times, as images with their acquisitions."""
    from napari_mr_reparam import epg, physics
    from napari_mr_reparam.simulate import Acquisition

    it = int(np.abs(epg.t2_grid() - t2).argmin())
    js = int(np.abs(epg.scale_grid() - flip_scale).argmin())
    t2 = float(epg.t2_grid()[it])
    body = np.zeros(shape, np.float32)
    body[:, 1:5, 1:5] = 1
    train = [body * 1000 * float(a) for a in epg.train_dictionary(8, 10.0, t1)[it, js]]
    tis = (30, 60, 120, 240, 480)
    ir = [np.asarray(physics.inversion_recovery(1000 * body, np.full(shape, t1), np.full(shape, t2), 10, 1000, ti),
                     np.float32) for ti in tis]
    acqs = [Acquisition(10, 1000, "inversion_recovery", ti) for ti in tis] + \
        [Acquisition(10.0 * (k + 1), 2000) for k in range(8)]
    return t2, ir + train, acqs, body > 0


def test_a_train_beside_inversion_times_is_fitted_at_the_t1_they_measure():
    from napari_mr_reparam.joint_fit import fit_maps, joint_work_units

    t2, images, acqs, inside = _train_beside_inversion_recovery()
    counted = []
    maps = fit_maps(images, acqs, scale=[0] * 5 + [1] * 8, smooth=False, progress=counted.append)
    assert np.median(maps.t2[inside]) == pytest.approx(t2, rel=0.02)
    assert np.median(maps.t1[inside]) == pytest.approx(60.0, rel=0.02)
    # the two passes count the slices once, and the gain search its trial fits
    assert sum(counted) == joint_work_units(images[0].shape, series=2)
    # the train alone leaves T1 open: at the storage T1 of tissue its T2 reads short
    alone = fit_maps(images[5:], acqs[5:], smooth=False)
    assert np.median(alone.t2[inside]) < 0.93 * t2


def test_a_train_that_departs_from_its_phase_graph_more_than_its_noise_leaves_a_long_t2_open():
    """Long T2 from a short train beside inversion times that measure T1: marked where the
    echoes follow their phase graph to within the noise; not where they depart from it by
    many noise levels (GE's train, say), whose T2 the departure, not the noise, limits."""
    from napari_mr_reparam.echo_trains import misfit_excess
    from napari_mr_reparam.joint_fit import fit_maps

    t2, images, acqs, inside = _train_beside_inversion_recovery(t1=400.0, t2=300.0)
    rng = np.random.default_rng(1)
    marked = {}
    for departure in (0.0, 0.03):
        noisy = [a * (1 + departure * (-1) ** k) if k >= 5 else a for k, a in enumerate(images)]
        noisy = [a + rng.standard_normal(a.shape).astype(np.float32) for a in noisy]  # 0.1 % of 1000
        maps = fit_maps(noisy, acqs, scale=[0] * 5 + [1] * 8, smooth=False, noise=0.001)
        marked[departure] = maps.determined["t2"][inside].mean(), maps.determined["t1"][inside].mean()
    assert marked[0.0] == (1.0, 1.0)
    assert marked[0.03] == (0.0, 1.0)  # T1, from the inversion times, stays
    assert misfit_excess(np.zeros(3), np.ones((3, 3)), 0.1).tolist() == [1.0] * 3  # no echo beyond the fit's
