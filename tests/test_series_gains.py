"""Receiver gains of inputs from several series (series_gains.py, through the joint fit)."""

import numpy as np
import pytest
from helpers import random_maps, render_inputs

from napari_mr_reparam.joint_fit import fit_maps
from napari_mr_reparam.series_gains import series_of
from napari_mr_reparam.simulate import Acquisition


def _error(fit, truth, body):
    return float(np.median(np.abs(fit[body] / truth[body] - 1)))


def _off(fit, truth, body, by=0.1):
    """The share of the voxels ``by`` or more off."""
    return float(np.mean(np.abs(fit[body] / truth[body] - 1) >= by))


def test_series_are_numbered_in_order_and_need_one_label_per_image():
    assert series_of(["ir", "ir", "me", "ir", "x"], 5) == [0, 0, 1, 0, 2]
    with pytest.raises(ValueError, match="3 series labels but 2 images: give one per image"):
        series_of(["a", "b", "c"], 2)


def test_an_inversion_set_and_an_echo_train_of_other_gains_give_t1_and_t2():
    pd, t1, t2 = random_maps()
    ir = [Acquisition(10, 1000, "inversion_recovery", ti) for ti in (50, 200, 600)]
    echoes = [Acquisition(te, 2000) for te in (20, 60, 120)]
    images = render_inputs(ir + echoes, pd, t1, t2)
    images[3:] = [2.6 * im for im in images[3:]]  # the train's series stored at another gain
    labels = ["ir"] * 3 + ["train"] * 3
    body = pd > 0
    kw = {"echo_train": "ideal", "smooth": False, "inversion": 1.0}
    shared = fit_maps(images, ir + echoes, **kw)
    assert _off(shared.t1, t1, body) > 0.2  # one gain for both: T1 takes up the difference
    maps = fit_maps(images, ir + echoes, scale=labels, **kw)
    assert maps.gains_found == ("first", "misfit")
    assert maps.scales[:3] == [1.0] * 3 and maps.scales[3] == pytest.approx(2.6, rel=0.05)
    assert _error(maps.t1, t1, body) < 0.03 and _error(maps.t2, t2, body) < 0.03
    assert _off(maps.t1, t1, body) < 0.05
    assert maps.summary()["series_gains_found"] == ["first", "misfit"]
    # known gains are taken as given
    given = fit_maps(images, ir + echoes, gains=[1.0] * 3 + [2.6] * 3, **kw)
    assert _error(given.t1, t1, body) < 0.01 and not given.gains_found


def test_a_lone_images_gain_is_held_by_the_prior_where_its_data_trade_it_against_t1():
    pd, t1, t2 = random_maps()
    acqs = [Acquisition(15, 3000), Acquisition(100, 3000), Acquisition(15, 500)]
    images = render_inputs(acqs, pd, t1, t2)
    images[2] = 3.0 * images[2]  # a lone T1-weighted image of another series
    prior = {"t1": t1 + (t1 == 0), "t2": t2 + (t2 == 0)}
    maps = fit_maps(images, acqs, prior=prior, scale=["dual", "dual", "t1w"], echo_train="ideal", smooth=False)
    assert maps.scales[2] == pytest.approx(3.0, rel=0.02)


def test_a_flat_misfit_leaves_the_gain_to_the_fallback(monkeypatch):
    from types import SimpleNamespace

    from napari_mr_reparam import series_gains

    monkeypatch.setattr(series_gains, "misfit", lambda problem, gains, sample, fit: 1.0)
    problem = SimpleNamespace(index=np.arange(50))
    gains, found = series_gains.profile_gains([0, 1, 1], problem, fit=None, fallback=lambda members: 1.7)
    assert gains == [1.0, 1.7, 1.7] and found == ["first", "prior"]
    # a clear minimum at 4 times the start is found
    monkeypatch.setattr(series_gains, "misfit",
                        lambda problem, gains, sample, fit: 1.0 + (np.log2(gains[1] / 1.7) - 2.0) ** 2)
    gains, found = series_gains.profile_gains([0, 1, 1], problem, fit=None, fallback=lambda members: 1.7)
    assert gains[1] == pytest.approx(6.8, rel=0.01) and found == ["first", "misfit"]


def test_a_cancel_during_the_gain_search_stops_it():
    from napari_mr_reparam.cancellation import Cancelled

    pd, t1, t2 = random_maps()
    acqs = [Acquisition(10, 1000, "inversion_recovery", ti) for ti in (50, 200, 600)] + [
        Acquisition(te, 2000) for te in (20, 60, 120)]
    asked = []

    def cancelled():
        asked.append(1)
        return len(asked) > 2  # the fit's preparation asks first; then the search's trial fits

    with pytest.raises(Cancelled):
        fit_maps(render_inputs(acqs, pd, t1, t2), acqs, scale=["ir"] * 3 + ["train"] * 3, echo_train="ideal",
                 smooth=False, inversion=1.0, cancelled=cancelled)
    assert len(asked) == 3


def test_the_gain_search_counts_its_trial_fits_in_the_progress():
    from napari_mr_reparam.joint_fit import joint_work_units
    from napari_mr_reparam.series_gains import SEARCH_FITS, series_count

    pd, t1, t2 = random_maps()
    acqs = [Acquisition(10, 1000, "inversion_recovery", ti) for ti in (50, 200, 600)] + [
        Acquisition(te, 2000) for te in (20, 60, 120)]
    labels = ["ir"] * 3 + ["train"] * 3
    counted = []
    fit_maps(render_inputs(acqs, pd, t1, t2), acqs, scale=labels, echo_train="ideal", smooth=False,
             inversion=1.0, progress=counted.append)
    assert series_count(labels) == 2 and series_count("shared") == 1
    assert sum(counted) == joint_work_units(pd.shape, series=2) == pd.shape[0] + SEARCH_FITS
    assert counted[:SEARCH_FITS] == [1] * SEARCH_FITS  # the search's fits come first, one unit each


def test_scans_whose_sidecars_name_separate_series_take_a_gain_each():
    from napari_mr_reparam.series_gains import by_source, series_label

    t1w, t2w, e1, e2 = (series_label({"series_id": s}, f"{name}.nii.gz")
                        for s, name in (("3", "t1w"), ("7", "t2w"), ("5", "dual_e1"), ("5", "dual_e2")))
    assert by_source([t1w, t2w]) == "per_input"  # lone scans of separate series
    assert by_source([e1, e2]) == "shared"  # one series' echoes saved apart (dcm2niix)
    assert by_source([e1, e2, t1w]) == [e1, e2, t1w]  # a gain per series
    assert by_source(["pdw.nii.gz", "t2w.nii.gz"]) == "shared"  # no sidecar names them: one gain
    assert by_source([t1w, "t2w.nii.gz"]) == "shared"
    assert series_label({}, "a.nii.gz") == "a.nii.gz" and series_label(None, "a.nii.gz") == "a.nii.gz"


def test_one_protocols_set_saved_as_series_apart_keeps_one_gain():
    from napari_mr_reparam.acquisition import Acquisition
    from napari_mr_reparam.series_gains import by_source, one_gain_across_files, one_protocol, series_label

    # an inversion-recovery set as dcm2niix writes it: each TI its own series, TR following TI
    tis = [(50, 1000), (100, 1000), (200, 1000), (400, 1260), (600, 1860), (800, 2460)]
    ir = [Acquisition(12, tr, "inversion_recovery", ti_ms=ti) for ti, tr in tis]
    labels = [series_label({"series_id": str(k)}, f"ti{ti}.nii.gz") for k, (ti, _) in enumerate(tis)]
    assert one_protocol(ir) and by_source(labels, ir) == "shared"
    assert by_source(labels) == "per_input"  # acquisitions not known: as before
    echoes = [Acquisition(te, 3000) for te in (15, 100)]  # a dual echo's echoes as two series
    assert one_protocol(echoes) and by_source(labels[:2], echoes) == "shared"
    pair = [Acquisition(15, 500), Acquisition(100, 4000)]  # T1w and T2w: two protocols
    assert not one_protocol(pair) and by_source(labels[:2], pair) == "per_input"
    same_te = [Acquisition(15, 500), Acquisition(15, 3000)]  # T1w and PDw spin echoes: two protocols too
    assert not one_protocol(same_te) and by_source(labels[:2], same_te) == "per_input"
    assert not one_protocol([ir[0], Acquisition(12, 1000)])  # two sequences
    files = [f"ti{ti}.nii.gz" for ti, _ in tis]  # no sidecar names a series: one gain, and no notice for a set
    assert one_gain_across_files(files) and not one_gain_across_files(files, ir)


def test_sources_of_one_protocols_set_take_one_gain_beside_another_series():
    from napari_mr_reparam.acquisition import Acquisition
    from napari_mr_reparam.series_gains import by_source, series_label

    ir = [Acquisition(12, 1000 + ti, "inversion_recovery", ti_ms=ti) for ti in (50, 100, 200, 400)]
    train = [Acquisition(10 * k, 2000) for k in range(1, 7)]
    acqs = ir + train
    # dcm2niix: a series per TI, one for the train's echoes: two gains, not five
    named = [series_label({"series_id": str(k)}, f"ir{k}.nii.gz") for k in range(4)] + \
        [series_label({"series_id": "9"}, f"train_e{k}.nii.gz") for k in range(6)]
    assert by_source(named, acqs) == [named[0]] * 4 + [named[4]] * 6
    # the TIs as files that name no series, beside the train's folder: two gains too
    files = [f"ir{k}.nii.gz" for k in range(4)] + ["train"] * 6
    assert by_source(files, acqs) == ["ir0.nii.gz"] * 4 + ["train"] * 6
    # lone files that name no series, of two protocols: one gain, as before
    lone = [Acquisition(15, 3000), Acquisition(100, 3000), Acquisition(15, 500)]
    assert by_source(["pdw.nii", "t2w.nii", "t1w.nii"], lone) == "shared"
