"""The plugin widget driven as a person would: pick layers, drag TE/TR, run, cancel."""

import numpy as np
import pytest

from napari_mr_reparam import DEFAULT_CONSISTENCY

from napari_mr_reparam._sample_data import make_sample_all
from napari_mr_reparam._widget import ReparamWidget
from napari_mr_reparam.widget_logic import compare_volumes, layer_names


@pytest.fixture
def demo(make_napari_viewer, tiny_weights):
    viewer = make_napari_viewer()
    for data, kwargs, _ in make_sample_all():
        viewer.add_image(data[:6], **kwargs)  # six slices keep the tests quick
    widget = ReparamWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.reset_choices()
    widget.image.value = viewer.layers[0]
    assert widget.model.value == "physics"  # the default
    widget.model.value = "d2p"  # the tests below start from the paper's model
    return viewer, widget


def _idle(widget):
    return widget.is_idle()

def _cancel_once_started(qtbot, viewer, widget, started, seen):
    """Run, cancel once the job has started, and check it stopped with nothing added."""
    widget.run.clicked.emit()
    _until(qtbot, started.is_set)
    widget.cancel_work()
    _until(qtbot, lambda: _idle(widget))
    assert seen == [True] and widget.status.value == "Cancelled" and not _outputs(viewer, "prediction")



def _outputs(viewer, role):
    return [l for l in viewer.layers if (l.metadata or {}).get("mr_reparam_role") == role]


def _until(qtbot, condition, timeout=60000):
    qtbot.waitUntil(lambda: bool(condition()), timeout=timeout)


def _ramp(shape):
    """An image with something in it (a layer of one value holds none: it is refused)."""
    return np.arange(np.prod(shape), dtype=np.float32).reshape(shape) % 97 + 1


def test_run_makes_one_prediction_and_one_difference(demo, qtbot):
    viewer, widget = demo
    truth = viewer.layers["head TE120 TR6000"]
    widget.ground_truth.value = truth
    widget.te.value, widget.tr.value = 120.0, 6000.0
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "difference"))
    (pred,), (diff,) = _outputs(viewer, "prediction"), _outputs(viewer, "difference")
    assert pred.name == "prediction d2p TE120 TR6000"
    assert pred.data.shape == viewer.layers[0].data.shape
    assert np.allclose(pred.scale, viewer.layers[0].scale)
    assert diff.name.startswith("|difference|") and (diff.data >= 0).all()
    assert "PSNR" in widget.metrics.value and "volume" in widget.metrics.value
    # a second run at another setting updates the same layers in place
    widget.te.value = 30.0
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and "TE30" in _outputs(viewer, "prediction")[0].name)
    assert len(_outputs(viewer, "prediction")) == 1 and len(_outputs(viewer, "difference")) == 1


def test_dragging_previews_the_current_slice_and_keeps_the_newest(demo, qtbot):
    viewer, widget = demo
    viewer.dims.set_current_step(0, 3)
    for te in np.linspace(20, 200, 25):  # a fast drag: many changes, few predictions
        widget.te.value = float(te)
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction")
                    and _outputs(viewer, "prediction")[0].metadata.get("te_ms") == 200.0)
    pred = _outputs(viewer, "prediction")[0]
    assert pred.data[3].any(), "the slice on screen was predicted"
    assert pred.name == "prediction d2p TE200 TR3000"


@pytest.mark.parametrize("view", ["transposed", "3d"])
def test_a_slider_drag_previews_no_axial_slice_where_the_view_shows_none(demo, qtbot, view):
    viewer, widget = demo
    widget.model.value = "d2p"
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    if view == "3d":
        viewer.dims.ndisplay = 3
    else:
        viewer.dims.order = (2, 0, 1)  # sagittal planes on screen: no one axial slice is
    before = np.array(_outputs(viewer, "prediction")[0].data)
    widget.te.value = 60.0
    widget._preview_timer.timeout.emit()
    assert _idle(widget) and np.array_equal(_outputs(viewer, "prediction")[0].data, before)  # no stripe
    widget._volume_timer.timeout.emit()  # the sliders at rest: the whole volume
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction")[0].metadata.get("te_ms") == 60.0)
    assert all(not np.array_equal(a, b) for a, b in zip(_outputs(viewer, "prediction")[0].data, before))
    widget.model.value = "physics"  # maps at hand: a preview renders the whole volume, the plane on screen with it
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction")[0].metadata.get("model") == "physics")
    before = np.array(_outputs(viewer, "prediction")[0].data)
    widget.te.value = 90.0
    widget._preview_timer.timeout.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction")[0].metadata.get("te_ms") == 90.0)
    assert all(not np.array_equal(a, b) for a, b in zip(_outputs(viewer, "prediction")[0].data, before))


@pytest.mark.parametrize("model", ["d2p", "physics"])
def test_an_input_with_nan_voxels_says_they_are_nan_in_the_result(demo, qtbot, model):
    viewer, widget = demo
    data = np.array(viewer.layers[0].data, np.float32)
    data[:, 10:20, 10:20] = np.nan
    holed = viewer.add_image(data, name="holed", metadata=dict(viewer.layers[0].metadata))
    widget.reset_choices()
    widget.image.value, widget.model.value = holed, model
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and any(l.metadata.get("mr_reparam_source") is holed.data
                                                 for l in _outputs(viewer, "prediction")))
    count = data.shape[0] * 100
    assert widget.status.value.endswith(f"holed: {count} voxels NaN or infinite (not measured): read as 0, "
                                        "NaN in the result")


def test_runs_at_many_settings_keep_no_more_maps_alive_than_the_cache_holds(demo, qtbot):
    """napari keeps every worker it made: what a run held is let go once it ends."""
    import gc
    import warnings

    from napari_mr_reparam.inference import QuantitativeMaps
    from napari_mr_reparam.widget_logic import MAX_CACHED_MAPS

    viewer, widget = demo
    widget.model.value, widget.live.value = "physics", False
    for k in range(MAX_CACHED_MAPS + 3):
        widget.consistency.value = 0.05 * (k + 1)
        widget.run.clicked.emit()
        _until(qtbot, lambda: _idle(widget) and widget.status.value.startswith("Rendered"))
    qtbot.wait(50)
    gc.collect()
    with warnings.catch_warnings():  # isinstance on every object touches modules' deprecated names
        warnings.simplefilter("ignore")
        alive = [o for o in gc.get_objects() if isinstance(o, QuantitativeMaps)]
    assert len(alive) <= MAX_CACHED_MAPS + 1


def test_choosing_an_input_for_default_to_param_says_what_it_reads_it_as(demo):
    viewer, widget = demo
    widget.model.value = "d2p"
    plain = viewer.add_image(np.asarray(viewer.layers[0].data), name="plain scan")
    widget.reset_choices()
    widget.image.value = plain
    assert widget.status.value == ("plain scan: Default-to-Param reads every input as a spin echo at "
                                   "TE 50 / TR 4500 ms; a Preset or TE/TR predicts from it")
    widget.model.value = "physics"  # the line said how the model before read it: this one's follows
    assert widget.status.value == ("plain scan: no TE/TR in its metadata; taken as TE 50 / TR 4500 ms (name its "
                                   "acquisition with Input preset)")
    widget.model.value = "d2p"
    assert widget.status.value.startswith("plain scan: Default-to-Param reads every input")
    widget.image.value = viewer.layers["head TE20 TR600"]  # stated otherwise: refused, as before
    assert "Default-to-Param reads inputs at TE 50 / TR 4500 ms only" in widget.status.value


def test_tab_reaches_an_added_inputs_row_where_it_shows(demo):
    viewer, widget = demo
    widget.model.value = "physics"
    row = widget.add_input_row()
    passed, step = [], widget.input_sequence.native
    while step is not widget.add_input.native and len(passed) < 500:
        step = step.nextInFocusChain()
        passed.append(step)
    assert row.layer.native in passed and row.te.native in passed  # between Input sequence and + Add
    assert widget.run.native not in passed


def test_with_live_preview_off_settings_moved_back_say_the_prediction_shown_is_theirs(demo, qtbot):
    viewer, widget = demo
    widget.live.value = False
    widget.model.value = "physics"
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    current = "The prediction shown is at these settings: spin echo, TE 100 / TR 3000 ms"
    widget.model.value = "d2p"
    assert widget.status.value.startswith("The model changed: press Run all slices")
    widget.model.value = "physics"  # back to the model whose prediction shows: nothing to run
    assert widget.status.value == current
    widget.te.value = 50.0
    assert widget.status.value.startswith("Live preview is off: press Run all slices for spin echo, TE 50")
    widget.te.value = 100.0
    assert widget.status.value == current
    widget.consistency.value = 0.9  # an option of the maps: not what the prediction shown was made with
    assert widget.status.value.startswith("Live preview is off: press Run all slices")


def test_param_to_param_reads_input_times_from_metadata(demo):
    viewer, widget = demo
    widget.model.value = "p2p"
    assert not widget.input_te.native.isHidden() and not widget.input_tr.native.isHidden()
    widget.image.value = viewer.layers["head TE20 TR600"]
    assert (widget.input_te.value, widget.input_tr.value) == (20.0, 600.0)
    widget.model.value = "d2p"
    assert widget.input_te.native.isHidden()


def test_an_input_without_times_does_not_keep_those_of_the_image_before(demo, monkeypatch):
    from napari_mr_reparam import weights

    viewer, widget = demo
    monkeypatch.setattr(weights, "BUNDLED_DIR", weights.BUNDLED_DIR.parent)  # no classifier: no guess
    widget.model.value = "physics"
    widget.image.value = viewer.layers["head TE20 TR600"]
    assert (widget.input_te.value, widget.input_tr.value) == (20.0, 600.0)
    plain = viewer.add_image(np.asarray(viewer.layers[0].data), name="scan without sidecar")
    widget.reset_choices()
    widget.image.value = plain
    assert (widget.input_te.value, widget.input_tr.value) == (50.0, 4500.0)
    assert "scan without sidecar: no TE/TR in its metadata; taken as TE 50 / TR 4500 ms" in widget.status.value
    half = viewer.add_image(np.asarray(viewer.layers[0].data), name="TE only", metadata={"te_ms": 30.0})
    widget.reset_choices()
    widget.image.value = half  # one time is not guessed from the other (as the command line refuses to)
    assert (widget.input_te.value, widget.input_tr.value) == (30.0, 0.0) and widget.input_tr.native.text() == "?"
    assert widget.status.value == "TE only: no TR known for its spin echo acquisition; type it in Input TR"


def test_an_mprage_dicom_whose_tr_tag_is_the_readout_spacing_is_read_as_mprage(demo, tmp_path):
    """GE and Philips store the readout's pulse spacing as RepetitionTime: the input is an
    MPRAGE whose cycle is the preset's until typed, and the status says so."""
    from dicom_helpers import ramp, write_series

    viewer, widget = demo
    widget.model.value = "physics"
    write_series(tmp_path / "bravo", [ramp(2, 8, 8)], te=(3.2,), tr=8.2, ti=(450.0,), flip=12.0, scanning="GR",
                 variant=["SS", "MP"])
    [layer] = viewer.open(str(tmp_path / "bravo"), plugin="napari-mr-reparam")
    widget.reset_choices()
    widget.image.value = layer
    assert widget.input_sequence.value == "mprage"
    assert (widget.input_te.value, widget.input_tr.value, widget.input_ti.value, widget.input_flip.value) == (
        3.2, 2300.0, 450.0, 12.0)
    assert "RepetitionTime (8.2 ms) is the readout's pulse spacing" in widget.status.value
    assert "taken as 2300 ms (type it in Input TR)" in widget.status.value


def _plain_layer_that_looks_like(demo, monkeypatch, preset: str, probability: float, name: str):
    """A layer of the demo's data without metadata, and the classifier stubbed to call it ``preset``."""
    from napari_mr_reparam import contrast

    viewer, widget = demo
    widget.model.value = "physics"
    monkeypatch.setattr(contrast, "guess_input", lambda volume, weights=None, classifier=None:
                        contrast.ContrastGuess(preset, probability, {preset: probability}))
    plain = viewer.add_image(np.asarray(viewer.layers[0].data), name=name)
    widget.reset_choices()
    return plain


def test_an_input_that_names_nothing_gets_the_preset_it_looks_like(demo, monkeypatch):
    viewer, widget = demo
    plain = _plain_layer_that_looks_like(demo, monkeypatch, "MPRAGE", 0.7, "template")
    widget.image.value = plain
    assert widget.input_preset.value == "MPRAGE" and widget.input_sequence.value == "mprage"
    assert (widget.input_te.value, widget.input_tr.value, widget.input_ti.value) == (3.0, 2300.0, 900.0)
    assert "template: no acquisition in its metadata; it looks like MPRAGE (70 %)" in widget.status.value
    widget.model.value = "p2p"  # reads spin echo only: an MPRAGE-looking image is not read as one
    widget.image.value = viewer.layers[0]
    widget.image.value = plain
    assert widget.input_sequence.value == "spin_echo" and "looks like" not in widget.status.value


def test_a_prediction_from_a_guessed_input_records_it_as_guessed(demo, monkeypatch):
    from napari_mr_reparam._widget_outputs import input_record_of

    viewer, widget = demo
    plain = _plain_layer_that_looks_like(demo, monkeypatch, "MPRAGE", 0.7, "template")
    widget.image.value = plain
    record = input_record_of(widget.current_request(whole=True))["Input"]
    assert (record["Source"], record["Preset"]) == ("guessed", "MPRAGE")  # as predict records a guess
    widget.input_te.value = 4.0  # typed: the acquisition is the user's own now
    assert input_record_of(widget.current_request(whole=True))["Input"]["Source"] == "given"
    widget.image.value = viewer.layers[0]  # its metadata state its times
    assert input_record_of(widget.current_request(whole=True))["Input"]["Source"] == "layer metadata"


def test_another_input_that_names_nothing_gets_the_preset_it_looks_like(demo, monkeypatch):
    viewer, widget = demo
    plain = _plain_layer_that_looks_like(demo, monkeypatch, "T2w", 0.8, "scan without sidecar")
    row = widget.add_input_row()
    row.layer.value = plain
    assert (row.sequence.value, row.te.value, row.tr.value) == ("spin_echo", 100.0, 4000.0)  # the T2w preset
    assert "looks like T2w (80 %): read as the T2w preset (edit its row if it is not)" in row.layer.tooltip
    assert widget.status.value == row.layer.tooltip  # said on the status line too, not only on hovering
    assert row.spec().guessed == "T2w"  # recorded as guessed in a prediction's sidecar
    row.te.value = 90.0
    assert row.spec().guessed is None  # edited: the user's own
    row.layer.value = viewer.layers["head TE20 TR600"]  # its metadata name its times: no guess
    assert (row.te.value, row.tr.value) == (20.0, 600.0) and "looks like" not in row.layer.tooltip
    assert row.spec().guessed is None


def test_out_of_range_warning_and_bad_times(demo):
    _, widget = demo
    widget.live.value = False
    widget.te.value = 5.0
    assert "outside the trained range" in widget.range_warning.value
    widget.te.value = 100.0
    assert widget.range_warning.value == ""
    widget.te.value, widget.tr.value = 4.0, 20.0
    assert "TR 20 ms is outside the trained range" in widget.range_warning.value
    widget.model.value = "physics"  # it renders any TE/TR from its maps, gradient echo included
    assert widget.range_warning.value == ""
    widget.sequence.value = "gradient_echo"
    widget.preset.value = "MPRAGE"
    assert widget.range_warning.value == ""
    widget.sequence.value = "spin_echo"
    widget.model.value = "d2p"
    widget.te.value, widget.tr.value = 100.0, 3000.0
    assert widget.range_warning.value == ""
    widget.tr.value = 200.0  # TE 100 >= TR 200 is fine, TE 300 is not
    widget.te.value = 300.0
    assert "shorter than TR" in widget.status.value


def test_cancel_stops_work_and_leaves_the_viewer_usable(demo, qtbot):
    viewer, widget = demo
    widget.run.clicked.emit()
    widget.cancel_work()
    _until(qtbot, lambda: _idle(widget))
    assert widget.status.value in ("Cancelled",) or widget.status.value.startswith("Done")
    if widget.status.value == "Cancelled":  # the bar is not left part-way
        assert widget.progress.value == 0
    widget.run.clicked.emit()  # still works afterwards
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))


def test_cancel_takes_back_slices_previewed_at_a_setting_whose_volume_never_came(demo, qtbot):
    from napari_mr_reparam.widget_logic import Request

    viewer, widget = demo
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    (pred,) = _outputs(viewer, "prediction")
    volume, name, te = np.array(pred.data), pred.name, pred.metadata["te_ms"]
    source = widget.image.value
    preview = Request(source, "physics", "cpu", te=te + 30, tr=pred.metadata["tr_ms"], slice_index=1)
    limits = pred.contrast_limits
    brighter = np.full(volume.shape[1:], 2 * limits[1], np.float32)
    widget._outputs.write_prediction(preview, brighter)  # as a slider's preview, brighter than the volume
    assert pred.contrast_limits == [limits[0], 2 * limits[1]]  # shown, not saturated
    widget._outputs.write_prediction(preview, np.ones(volume.shape[1:], np.float32))  # darker: limits kept
    assert pred.contrast_limits == [limits[0], 2 * limits[1]]
    assert pred.name != name and not np.array_equal(pred.data, volume)
    widget.cancel_work()  # its whole volume is not to come: the layer holds one setting, as named
    assert pred.name == name and pred.metadata["te_ms"] == te and np.array_equal(pred.data, volume)
    assert pred.contrast_limits == list(limits)  # the preview's widening taken back too
    assert widget.status.value == "Cancelled: the slices previewed at the new settings are taken back"
    viewer.layers.remove(pred)  # a preview that made the layer: the layer goes
    widget._outputs.write_prediction(preview, np.ones(volume.shape[1:], np.float32))
    assert len(_outputs(viewer, "prediction")) == 1
    widget.cancel_work()
    assert _outputs(viewer, "prediction") == []


def test_errors_become_notifications_not_crashes(demo, qtbot, monkeypatch):
    viewer, widget = demo
    widget.model.value = "p2p"
    import napari.utils.notifications as notifications

    from napari_mr_reparam import weights

    shown = []
    monkeypatch.setattr(notifications, "show_error", shown.append)
    monkeypatch.setattr(weights, "BUNDLED_DIR", weights.BUNDLED_DIR / "nowhere")
    widget._engines = type(widget._engines)()
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and widget.status.value.startswith("Error"))
    assert "unknown model" in widget.status.value and "unknown model" in shown[0]
    assert len(viewer.layers) == 4  # nothing added, nothing lost


def test_physics_maps_once_then_instant_renders(demo, qtbot):
    viewer, widget = demo
    widget.model.value = "physics"
    assert not widget.sequence.native.isHidden() and widget.ti.native.isHidden()
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    assert widget.status.value.startswith("Rendered from the maps")
    shown = widget._slice_on_screen(widget.image.value)
    for te in (30.0, 60.0, 90.0):  # a slider move re-renders the slice on screen, no worker needed
        pred = _outputs(viewer, "prediction")[0]
        before = np.array(pred.data)
        widget.te.value = te
        widget._preview_timer.timeout.emit()
        assert not widget._predictions.busy
        pred = _outputs(viewer, "prediction")[0]
        changed = [k for k in range(len(before)) if not np.array_equal(pred.data[k], before[k])]
        assert pred.metadata["te_ms"] == te and changed == [shown] and widget.status.value.endswith(f"slice {shown}")
    preview = np.array(pred.data[shown])
    widget._volume_timer.timeout.emit()  # the sliders at rest: the whole volume, its slice as previewed
    assert widget.status.value.startswith("Rendering the whole volume")  # in a worker: the GUI goes on
    _until(qtbot, lambda: _idle(widget))
    pred = _outputs(viewer, "prediction")[0]
    assert not np.array_equal(pred.data, before) and np.allclose(pred.data[shown], preview)
    assert all(pred.data[k].any() for k in range(6)) and widget.status.value.startswith("Rendered from the maps")
    widget.sequence.value = "inversion_recovery"
    assert not widget.ti.native.isHidden()
    widget.ti.value = 1800.0
    widget._preview_timer.timeout.emit()
    assert "IR" in _outputs(viewer, "prediction")[0].name and "TI1800" in _outputs(viewer, "prediction")[0].name
    widget.add_maps.clicked.emit()
    maps = [l for l in viewer.layers if str((l.metadata or {}).get("mr_reparam_role", "")).startswith("map_")]
    assert len(maps) == 3 and any("T1 map (ms)" in l.name for l in maps)
    t1 = next(l for l in maps if "T1" in l.name).data
    assert np.nanmin(t1) >= 50 and np.nanmax(t1) <= 6000


def test_a_map_layer_saves_with_its_quantity_and_unit(demo, qtbot, tmp_path):
    import json

    import pydicom

    viewer, widget = demo
    widget.model.value = "physics"
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    widget.add_maps.clicked.emit()
    t1 = next(l for l in viewer.layers if (l.metadata or {}).get("mr_reparam_role") == "map_t1")
    pd = next(l for l in viewer.layers if (l.metadata or {}).get("mr_reparam_role") == "map_pd")
    assert pd.metadata["unit"] == "fraction of water's proton density (the network's estimate)"  # one input
    viewer.layers.selection = {t1}
    viewer.layers.save(str(tmp_path / "t1.nii.gz"), selected=True, plugin="napari-mr-reparam")
    sidecar = json.loads((tmp_path / "t1.json").read_text())
    assert (sidecar["Quantity"], sidecar["Units"], sidecar["GeneratedBy"][0]["Model"]) == ("T1", "ms", "physics")
    from napari_mr_reparam.weights import bundled_sha256

    assert sidecar["GeneratedBy"][0]["WeightsSHA256"] == bundled_sha256("physics")  # the very weights
    viewer.layers.save(str(tmp_path / "t1.dcm"), selected=True, plugin="napari-mr-reparam")
    first = pydicom.dcmread(sorted((tmp_path / "t1.dcm").iterdir())[0])
    assert first.SeriesDescription == "T1 map (ms)" and "EchoTime" not in first
    assert float(first.RescaleSlope) * first.pixel_array.max() == pytest.approx(np.nanmax(t1.data[0]), rel=1e-3)


def test_a_whole_volume_renders_off_the_gui_thread_and_a_preview_drops_it(demo, qtbot, monkeypatch):
    """At rest the volume renders in a worker; a slice previewed meanwhile is not covered
    by the older volume when it comes, and its comparison is shown at once."""
    import threading

    from napari_mr_reparam import _widget

    viewer, widget = demo
    widget.model.value = "physics"
    widget.ground_truth.value = viewer.layers["head TE120 TR6000"]
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and "volume: PSNR" in widget.metrics.value)
    gui, release, threads = threading.current_thread(), threading.Event(), []
    real = _widget.render_request

    def slow(engine, maps, request):
        threads.append(threading.current_thread() is gui)
        if request.slice_index is None:
            release.wait(30)
        return real(engine, maps, request)

    monkeypatch.setattr(_widget, "render_request", slow)
    shown = widget._slice_on_screen(widget.image.value)
    widget.te.value = 40.0
    widget._volume_timer.timeout.emit()  # the volume at TE 40: waits in its worker
    try:
        assert widget.status.value.startswith("Rendering the whole volume")
        _until(qtbot, lambda: threads)
        assert threads == [False]
        widget.te.value = 80.0
        widget._preview_timer.timeout.emit()  # a preview meanwhile: on the GUI thread, at once
        pred = _outputs(viewer, "prediction")[0]
        assert threads == [False, True] and pred.metadata["te_ms"] == 80.0
        assert f"slice {shown}: PSNR" in widget.metrics.value
        assert "volume: once the whole volume is re-rendered" in widget.metrics.value  # mixed targets
        previewed = np.array(pred.data[shown])
    finally:
        release.set()
    _until(qtbot, lambda: _idle(widget))
    pred = _outputs(viewer, "prediction")[0]
    assert pred.metadata["te_ms"] == 80.0 and np.array_equal(pred.data[shown], previewed)  # TE 40 dropped
    widget._volume_timer.timeout.emit()
    _until(qtbot, lambda: _idle(widget) and "volume: PSNR" in widget.metrics.value)
    assert _outputs(viewer, "prediction")[0].name == "prediction physics TE80 TR3000"


def test_two_volumes_do_not_share_maps(demo, qtbot):
    viewer, widget = demo
    widget.model.value = "physics"
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    other = viewer.layers["head TE20 TR600"]
    widget.image.value = other
    request = widget.current_request(whole=True)
    assert widget._maps.get(request) is None  # a new volume needs its own maps
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and len(_outputs(viewer, "prediction")) == 2)
    viewer.layers.remove(other)
    assert widget._maps.get(request) is None


def test_consistency_weight_recomputes_the_maps(demo, qtbot):
    viewer, widget = demo
    assert widget.consistency.native.isHidden()  # the paper's models have no maps to correct
    widget.model.value = "physics"
    assert not widget.consistency.native.isHidden()
    widget.consistency.value = 0.0
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    plain = _outputs(viewer, "prediction")[0].data.copy()
    plain_request = widget.current_request(whole=True)
    widget.consistency.value = 1.0
    request = widget.current_request(whole=True)
    assert request.consistency == 1.0 and widget._maps.get(request) is None
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and widget._maps.get(request) is not None)
    engine, _ = widget._maps.get(request)
    assert engine.consistency == DEFAULT_CONSISTENCY  # the request carried its weight; the shared engine keeps its own
    assert not np.allclose(_outputs(viewer, "prediction")[0].data, plain)
    assert widget._maps.get(plain_request) is not None  # going back costs no new maps


def test_flip_averaging_is_a_physics_option_with_its_own_maps(demo, qtbot):
    viewer, widget = demo
    assert widget.flip_average.native.isHidden()
    widget.model.value = "physics"
    assert not widget.flip_average.native.isHidden()
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    plain_request = widget.current_request(whole=True)
    widget.flip_average.value = True
    request = widget.current_request(whole=True)
    assert request.flip_average and widget._maps.get(request) is None
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and widget._maps.get(request) is not None)
    engine, flipped = widget._maps.get(request)
    assert widget._maps.get(plain_request) is not None  # the plain maps are kept
    _, plain = widget._maps.get(plain_request)
    assert not np.allclose(flipped.t2, plain.t2)
    assert not engine.flip_average  # the request carried it; the shared engine keeps its own
    widget.model.value = "d2p"
    assert not widget.current_request(whole=True).flip_average  # the paper's models ignore it


def test_closing_the_input_mid_run_cancels(demo, qtbot):
    viewer, widget = demo
    widget.run.clicked.emit()
    viewer.layers.remove(viewer.layers[0])
    _until(qtbot, lambda: _idle(widget))
    assert not _outputs(viewer, "prediction")


def test_compare_volumes_and_names():
    truth = np.random.default_rng(0).uniform(0, 10, (3, 16, 16))
    diff, metrics = compare_volumes(truth * 2, truth)  # same up to scale
    assert diff.max() < 1e-9 and metrics["volume"]["psnr"] == 100.0
    assert layer_names("d2p", 80, 3000)["prediction"] == "prediction d2p TE80 TR3000"


def test_a_thousand_slider_changes_leave_no_backlog(demo, qtbot, monkeypatch):
    from napari_mr_reparam.inference import Reparameterizer

    calls = []
    real = Reparameterizer.predict

    def counting(self, *args, **kwargs):
        calls.append(len(args[0]))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Reparameterizer, "predict", counting)
    viewer, widget = demo
    values = np.round(np.linspace(20, 400, 1000), 1)
    for te in values:
        widget.te.value = float(te)
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction")
                    and _outputs(viewer, "prediction")[0].metadata.get("te_ms") == float(values[-1]))
    assert len(calls) < 50, f"{len(calls)} predictions for 1000 slider changes: a backlog"
    assert _outputs(viewer, "prediction")[0].name == f"prediction d2p TE{values[-1]:g} TR3000"


def test_one_engine_call_per_job_with_progress_and_cancel_hooks(demo, qtbot, monkeypatch):
    from napari_mr_reparam.inference import Reparameterizer

    calls = []
    real = Reparameterizer.predict

    def recording(self, volume, *args, **kwargs):
        calls.append((np.shape(volume), kwargs))
        return real(self, volume, *args, **kwargs)

    monkeypatch.setattr(Reparameterizer, "predict", recording)
    viewer, widget = demo
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    assert len(calls) == 1 and calls[0][0] == viewer.layers[0].data.shape
    assert callable(calls[0][1]["progress"]) and callable(calls[0][1]["cancelled"])
    assert widget.progress.value == widget.progress.max == 6
    assert widget.status.value.startswith("Done (volume)")


def test_cancel_reaches_the_engine(demo, qtbot, monkeypatch):
    import threading

    from napari_mr_reparam.inference import Reparameterizer

    started, seen = threading.Event(), []
    real = Reparameterizer._predict_normalized

    def slow(self, images, target, given, progress, cancelled):
        started.set()
        for _ in range(500):  # wait, inside the engine call, until the cancel arrives
            if cancelled():
                break
            threading.Event().wait(0.01)
        seen.append(cancelled())
        return real(self, images, target, given, progress, cancelled)

    monkeypatch.setattr(Reparameterizer, "_predict_normalized", slow)
    viewer, widget = demo
    _cancel_once_started(qtbot, viewer, widget, started, seen)


def test_clearing_the_ground_truth_removes_its_difference(demo, qtbot):
    viewer, widget = demo
    viewer.canvas.grid.enabled = True  # side by side, as the demo shows them
    widget.ground_truth.value = viewer.layers["head TE120 TR6000"]
    widget.te.value, widget.tr.value = 120.0, 6000.0
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "difference"))
    names = [l.name for l in viewer.layers]
    assert names.index("prediction d2p TE120 TR6000") == 1  # outputs sit beside what they belong to
    assert names.index("|difference| d2p TE120 TR6000") == names.index("head TE120 TR6000") + 1
    assert widget.truth_hint.value == ""
    widget.ground_truth.value = None
    assert not _outputs(viewer, "difference") and widget.metrics.value == ""


def test_in_one_view_the_prediction_is_on_top_and_its_difference_under_it(demo, qtbot):
    viewer, widget = demo  # no grid: only the top visible layer is seen
    widget.ground_truth.value = viewer.layers["head TE120 TR6000"]
    widget.te.value, widget.tr.value = 120.0, 6000.0
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "difference"))
    names = [l.name for l in viewer.layers]
    assert names[-1] == "prediction d2p TE120 TR6000"
    assert names[-2] == "|difference| d2p TE120 TR6000"


def test_the_metrics_of_one_input_are_not_shown_for_another(demo, qtbot):
    viewer, widget = demo
    widget.ground_truth.value = viewer.layers["head TE120 TR6000"]
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and "volume: PSNR" in widget.metrics.value)
    deeper = viewer.add_image(np.ones((9, 32, 32), np.float32), name="deeper")
    widget.reset_choices()
    widget.image.value = deeper
    viewer.dims.set_current_step(0, 8)  # a slice the compared volume does not have
    assert widget.metrics.value == ""


def test_a_ground_truth_at_other_times_gets_a_hint(demo, qtbot):
    viewer, widget = demo
    truth = viewer.layers["head TE20 TR600"]
    truth.metadata.clear()  # the times then come from the name
    widget.ground_truth.value = truth
    widget.te.value, widget.tr.value = 120.0, 6000.0
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and "PSNR" in widget.metrics.value)
    assert "ground truth is at TE 20 / TR 600 ms, the prediction at TE 120 / TR 6000 ms" in widget.truth_hint.value


def test_a_long_warning_wraps_instead_of_widening_the_dock(demo):
    _, widget = demo
    widget.live.value = False
    before = widget.native.minimumSizeHint().width()
    widget.te.value, widget.tr.value = 5.0, 15000.0  # both outside the trained range: a long warning
    assert "outside the trained range" in widget.range_warning.value
    assert not widget.range_warning.native.isHidden()  # a note shows while it says something
    assert widget.range_warning.native.wordWrap()
    assert widget.native.minimumSizeHint().width() <= before
    widget.te.value, widget.tr.value = 100.0, 3000.0
    assert widget.range_warning.value == "" and widget.range_warning.native.isHidden()  # no blank row


def test_input_times_in_seconds_are_refused(demo):
    viewer, widget = demo
    widget.model.value = "p2p"
    widget.image.value = viewer.layers["head TE120 TR6000"]
    layer = viewer.layers["head TE20 TR600"]
    layer.metadata.update(te_ms=0.02, tr_ms=0.6)  # seconds written where ms belong (a DICOM tag)
    widget.image.value = layer
    said = widget.status.value
    assert "input TE 0.02 looks like seconds" in said and said.startswith("head TE20 TR600: ")
    # the fields hold what the metadata state, not the image's before (TE 120 / TR 6000), and nothing runs
    assert (widget.input_te.value, widget.input_tr.value) == (pytest.approx(0.02), pytest.approx(0.6))
    widget.run.clicked.emit()
    assert _idle(widget) and not _outputs(viewer, "prediction") and "looks like seconds" in widget.status.value


def test_saved_prediction_records_its_sequence(demo, qtbot, tmp_path):
    import json

    viewer, widget = demo
    widget.model.value = "physics"
    widget.sequence.value = "inversion_recovery"
    widget.te.value, widget.tr.value, widget.ti.value = 100.0, 9000.0, 2500.0
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    (pred,) = _outputs(viewer, "prediction")
    viewer.layers.selection = {pred}
    viewer.layers.save(str(tmp_path / "flair.nii.gz"), selected=True, plugin="napari-mr-reparam")
    sidecar = json.loads((tmp_path / "flair.json").read_text())
    assert sidecar["ScanningSequence"] == "IR" and sidecar["InversionTime"] == 2.5


# ---------------------------------------------------------------- presets and several inputs

def test_a_preset_fills_the_sliders_and_editing_makes_it_custom(demo):
    _, widget = demo
    widget.model.value = "physics"
    widget.preset.value = "FLAIR"
    assert widget.sequence.value == "inversion_recovery"
    assert (widget.te.value, widget.tr.value, widget.ti.value) == (120.0, 9000.0, 2500.0)
    assert not widget.ti.native.isHidden()  # the preset's values stay visible and editable
    widget.preset.value = "DIR"
    assert widget.sequence.value == "double_inversion_recovery" and widget.ti2.value == 400.0
    assert not widget.ti2.native.isHidden()
    widget.ti.value = 3000.0
    assert widget.preset.value == "Custom"
    widget.ti.value = 3400.0  # back to the preset's values: named again
    assert widget.preset.value == "DIR"


def test_a_preset_the_model_cannot_render_is_refused(demo):
    _, widget = demo
    widget.preset.value = "T2w"  # spin echo: every model renders it
    assert (widget.te.value, widget.tr.value) == (100.0, 4000.0) and widget.preset.value == "T2w"
    widget.preset.value = "FLAIR"
    assert widget.preset.value == "Custom" and "only the physics model" in widget.status.value
    assert widget.te.value == 100.0  # the sliders were left as they were


def test_an_input_preset_fills_the_input_controls_and_editing_makes_it_custom(demo):
    viewer, widget = demo
    assert widget.input_preset.native.isHidden()  # d2p reads no input times
    widget.model.value = "physics"
    assert not widget.input_preset.native.isHidden() and widget.input_preset.value == "Custom"
    widget.input_preset.value = "MPRAGE"
    assert widget.input_sequence.value == "mprage"
    assert (widget.input_te.value, widget.input_tr.value, widget.input_ti.value, widget.input_flip.value) == (
        3.0, 2300.0, 900.0, 9.0)
    assert not widget.input_ti.native.isHidden() and not widget.input_flip.native.isHidden()
    request = widget.current_request(whole=True)
    assert (request.input_sequence, request.input_te, request.input_ti, request.input_flip) == ("mprage", 3.0,
                                                                                                 900.0, 9.0)
    widget.input_ti.value = 1000.0
    assert widget.input_preset.value == "Custom" and widget.input_ti.value == 1000.0
    widget.input_ti.value = 900.0  # the preset's values again: named again
    assert widget.input_preset.value == "MPRAGE"
    widget.model.value = "p2p"  # reads spin-echo inputs only: back to Custom, with the reason
    assert widget.input_preset.value == "Custom" and "only the physics model reads" in widget.status.value
    widget.input_preset.value = "FLAIR"
    assert widget.input_preset.value == "Custom" and widget.input_te.value == 3.0
    # a layer whose metadata match a preset names it
    viewer.add_image(viewer.layers[0].data, name="pd scan", metadata={"te_ms": 15.0, "tr_ms": 3000.0})
    widget.reset_choices()
    widget.image.value = viewer.layers["pd scan"]
    assert (widget.input_te.value, widget.input_tr.value) == (15.0, 3000.0) and widget.input_preset.value == "PDw"
    # a preset chosen over the times the file states says which it replaces, and Custom takes them back
    widget.input_preset.value = "T2w"
    assert (widget.input_te.value, widget.input_tr.value) == (100.0, 4000.0)
    assert widget.status.value == ("pd scan: Input preset T2w replaces what its file states (TE 15 -> 100 ms, "
                                   "TR 3000 -> 4000 ms); Input preset Custom takes the file's values back")
    widget.input_preset.value = "Custom"
    assert (widget.input_te.value, widget.input_tr.value) == (15.0, 3000.0) and widget.input_preset.value == "PDw"
    assert widget.status.value == "pd scan: the acquisition its file states is back in the Input fields"
    widget.model.value = "physics"  # (p2p reads one input only)
    widget.input_preset.value = "T2w"
    widget.input_preset.value = "Custom"
    widget.add_input_row()  # news of the input's file gives way to what several inputs need
    assert widget.status.value.startswith("2 inputs: press Run all slices")
    widget._remove_input_row(widget.inputs[0])
    widget.input_preset.value = "PDw"  # what the file states: nothing to say
    assert "replaces" not in widget.status.value
    widget.model.value = "d2p"
    assert widget.input_preset.native.isHidden()


def test_a_preset_renders_from_the_maps_and_saves(demo, qtbot, tmp_path):
    import json

    viewer, widget = demo
    widget.model.value = "physics"
    widget.preset.value = "MPRAGE"
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    (pred,) = _outputs(viewer, "prediction")
    assert "MPRAGE" in pred.name and np.isfinite(pred.data).any()
    viewer.layers.selection = {pred}
    viewer.layers.save(str(tmp_path / "mprage.nii.gz"), selected=True, plugin="napari-mr-reparam")
    sidecar = json.loads((tmp_path / "mprage.json").read_text())
    assert sidecar["PulseSequenceType"] == "MPRAGE" and sidecar["InversionTime"] == 0.9
    assert sidecar["Preset"] == "MPRAGE"  # the target preset, as predict --preset names it
    from napari_mr_reparam.weights import bundled_sha256

    assert sidecar["GeneratedBy"][0]["WeightsSHA256"] == bundled_sha256("physics")  # the weights that made it
    # the input as the model read it, as predict records it (the demo's head: TE 50 / TR 4500 ms)
    assert {k: sidecar["Input"][k] for k in ("EchoTime", "RepetitionTime", "Source")} == {
        "EchoTime": 0.05, "RepetitionTime": 4.5, "Source": "layer metadata"}


def test_two_inputs_give_joint_maps_from_one_call_opened_from_the_plugins_menu(
        make_napari_viewer, tiny_weights, qtbot, monkeypatch):
    from napari_mr_reparam import joint_fit

    calls = []
    real = joint_fit.joint_maps

    def recording(volumes, acquisitions, **kwargs):
        calls.append((len(volumes), [a.te_ms for a in acquisitions], kwargs))
        return real(volumes, acquisitions, **kwargs)

    monkeypatch.setattr(joint_fit, "joint_maps", recording)
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-mr-reparam", "MR Re-parameterization")
    for data, kwargs, _ in make_sample_all():
        viewer.add_image(data[:6], **kwargs)
    widget.reset_choices()
    widget.image.value = viewer.layers["head TE50 TR4500"]
    widget.model.value = "physics"
    assert not widget.input_sequence.native.isHidden()  # the physics model reads the input's sequence
    assert widget.inputs.native.isHidden()  # one input: no list of further ones
    assert widget.gain_per_input.native.isHidden()
    row = widget.add_input_row()
    row.layer.value = viewer.layers["head TE120 TR6000"]
    assert (row.te.value, row.tr.value, row.sequence.value) == (120.0, 6000.0, "spin_echo")  # from metadata
    assert not widget.input_sequence.native.isHidden()
    before = [l.name for l in viewer.layers]
    widget.preset.value = "T2w"
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    assert len(calls) == 1 and calls[0][:2] == (2, [50.0, 120.0])
    assert callable(calls[0][2]["progress"]) and callable(calls[0][2]["cancelled"])
    assert widget.progress.value == widget.progress.max == 12  # network maps, then the fit
    assert calls[0][2]["scale"] == "shared"  # two images of one subject share one gain unless told
    assert not widget.gain_per_input.native.isHidden()
    (pred,) = _outputs(viewer, "prediction")
    assert pred.name == "prediction joint(2) TE100 TR4000" and np.isfinite(pred.data).all()
    assert widget.joint_status.value.startswith(("The inputs determine", "Fewer images than unknowns"))
    assert "T2" in widget.joint_status.value
    assert [l.name for l in viewer.layers if l is not pred] == before
    # every slider move re-renders from the joint maps, with no new fit
    widget.preset.value = "FLAIR"
    widget._preview_timer.timeout.emit()
    assert not widget._predictions.busy and len(calls) == 1
    assert "IR TE120 TR9000 TI2500" in _outputs(viewer, "prediction")[0].name
    # images of separate series: a gain each, a new fit
    widget.gain_per_input.value = True
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and len(calls) == 2)
    assert calls[1][2]["scale"] == "per_input" and calls[1][2]["echo_train"] == "epg"
    # echo trains as exponentials, as predict --echo-train ideal: a new fit
    assert not widget.ideal_echoes.native.isHidden()
    widget.ideal_echoes.value = True
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and len(calls) == 3)
    assert calls[2][2]["echo_train"] == "ideal"


def test_joint_maps_job_can_be_cancelled(demo, qtbot, monkeypatch):
    import threading

    from napari_mr_reparam import joint_fit

    started, seen = threading.Event(), []
    real = joint_fit.fit_maps

    def slow(*args, cancelled=None, **kwargs):
        started.set()
        for _ in range(500):
            if cancelled():
                break
            threading.Event().wait(0.01)
        seen.append(cancelled())
        return real(*args, cancelled=cancelled, **kwargs)

    monkeypatch.setattr(joint_fit, "fit_maps", slow)
    viewer, widget = demo
    widget.model.value = "physics"
    widget.add_input_row().layer.value = viewer.layers["head TE20 TR600"]
    _cancel_once_started(qtbot, viewer, widget, started, seen)


def test_mismatched_inputs_give_one_message_and_change_nothing(demo, qtbot):
    viewer, widget = demo
    widget.model.value = "physics"
    odd = viewer.add_image(_ramp((4, 32, 32)), name="odd", metadata={"te_ms": 90, "tr_ms": 3000})
    before = [(l.name, l.data.shape) for l in viewer.layers]
    row = widget.add_input_row()
    row.layer.value = odd
    widget.run.clicked.emit()
    assert not widget._predictions.busy
    assert widget.status.value.startswith("the inputs are on different grids")
    assert "4x32x32) and odd has no affine" in widget.status.value
    row.layer.value = viewer.layers["head TE20 TR600"]
    row.tr.value = 0  # an acquisition value not known
    widget.run.clicked.emit()
    assert widget.status.value == "head TE20 TR600: no TR known; type the value(s) in its row"
    assert [(l.name, l.data.shape) for l in viewer.layers] == before
    row.remove.clicked.emit()  # back to one input: as before
    assert len(widget.inputs) == 0 and widget.inputs.native.isHidden()


def test_a_paper_model_refuses_an_input_it_cannot_read_and_runs_nothing(demo, qtbot):
    viewer, widget = demo
    widget.live.value = False
    widget.image.value = viewer.layers["head TE20 TR600"]
    widget.run.clicked.emit()
    assert widget.status.value == ("head TE20 TR600 is at TE 20 / TR 600 ms: Default-to-Param reads inputs at "
                                   "TE 50 / TR 4500 ms only; choose Param-to-Param or Physics")
    assert _idle(widget) and not _outputs(viewer, "prediction")
    widget.model.value = "p2p"
    widget.input_sequence.value = "inversion_recovery"  # as an inversion-recovery input's metadata set it
    widget.run.clicked.emit()
    assert "Param-to-Param reads spin-echo inputs only" in widget.status.value
    assert _idle(widget) and not _outputs(viewer, "prediction")


def test_a_colour_layer_is_refused_with_a_status_message(demo):
    viewer, widget = demo
    widget.model.value = "physics"
    photo = viewer.add_image(np.zeros((16, 16, 3), np.uint8) + np.arange(16, dtype=np.uint8)[:, None, None],
                             name="photo", rgb=True)
    widget.reset_choices()
    widget.image.value = photo
    assert widget.status.value.startswith("photo is an RGB(A) colour image; the models take grey-level images")
    widget.status.value = ""
    widget.run.clicked.emit()
    assert widget.status.value.startswith("photo is an RGB(A) colour image")
    assert _idle(widget) and not _outputs(viewer, "prediction")


def test_a_layer_too_small_for_a_loaded_model_is_refused_when_picked(demo, tiny_weights):
    from napari_mr_reparam import weights
    from napari_mr_reparam.models.physics_net import PhysicsNet

    viewer, widget = demo
    card = {"arch": "physics", "task": "p2p", "base": 4, "depth": 3, "name": "physics", "native_input": True}
    weights.save_weights(PhysicsNet(base=4, depth=3).state_dict(), card, tiny_weights / "physics.safetensors")
    widget.model.value = "physics"
    widget._engines.get("physics", widget.device.value)  # as an earlier run left it loaded
    tiny = viewer.add_image(np.random.default_rng(0).random((3, 3, 3), np.float32) + 1, name="tiny")
    widget.reset_choices()
    widget.image.value = tiny
    assert widget.status.value == ("tiny: the slices are 3 x 3 pixels: too thin for physics, which needs 4 "
                                   "pixels or more along each side of a slice; choose another layer")
    widget.status.value = ""
    widget.run.clicked.emit()  # and again, in the status line, if asked to run
    assert widget.status.value.startswith("tiny: the slices are 3 x 3 pixels: too thin")
    assert _idle(widget) and not _outputs(viewer, "prediction")
    widget.image.value = viewer.layers[0]  # a layer that fits clears it
    assert "too thin" not in widget.status.value


def test_a_time_typed_in_seconds_gets_a_hint_and_runs_nothing(demo):
    viewer, widget = demo
    widget.live.value = False
    widget.tr.value = 2.3
    assert widget.tr.value == pytest.approx(2.3, abs=1e-4)  # the field takes it, to say what it looks like
    assert widget.status.value == "TR 2.3 looks like seconds; times are in milliseconds (did you mean 2300 ms?)"
    widget.status.value = ""
    widget.run.clicked.emit()
    assert widget.status.value.startswith("TR 2.3 looks like seconds") and _idle(widget)
    assert not _outputs(viewer, "prediction")
    widget.tr.value = 3000.0
    widget.model.value = "p2p"
    widget.input_tr.value = 4.5
    assert widget.status.value == ("input TR 4.5 looks like seconds; times are in milliseconds (did you mean "
                                   "4500 ms?)")
    widget.model.value = "physics"
    widget.input_tr.value, widget.input_sequence.value = 9000.0, "inversion_recovery"
    widget.input_ti.value = 2.5
    assert widget.status.value.startswith("input TI 2.5 looks like seconds")


def test_a_ground_truth_of_another_sequence_gets_a_hint(demo, qtbot):
    viewer, widget = demo
    widget.model.value = "physics"
    widget.ground_truth.value = viewer.layers["head TE120 TR6000"]  # a spin echo
    widget.preset.value = "FLAIR"
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and "PSNR" in widget.metrics.value)
    assert widget.truth_hint.value == ("⚠ the ground truth is spin echo, the prediction inversion recovery: the "
                                       "difference and PSNR/SSIM compare different contrasts")


def test_target_sliders_move_by_their_step_and_reach_their_whole_range(demo):
    from qtpy.QtWidgets import QAbstractSlider, QSlider

    _, widget = demo
    widget.live.value = False
    act = QAbstractSlider.SliderAction
    for name, low, high, step in (("te", 0.01, 1500, 1), ("tr", 0.01, 15000, 10), ("ti", 0.01, 5000, 10),
                                  ("ti2", 10, 5000, 5), ("flip", 1, 90, 1)):
        slider = getattr(widget, name)
        bar = slider.native.findChild(QSlider)
        assert (slider.min, slider.max, slider.step) == (low, high, step), name
        for value in (low, high, (low + high) / 2, 30.0):  # set in code: kept as given
            slider.value = value
            assert slider.value == pytest.approx(value, abs=1e-4), name
        slider.value = 30.0
        bar.triggerAction(act.SliderSingleStepAdd)  # an arrow key
        assert slider.value == pytest.approx(30 + step), name
        bar.triggerAction(act.SliderPageStepAdd)
        assert slider.value == pytest.approx(30 + 11 * step), name
        for fraction in (0.1, 0.333, 0.77):  # a drag lands on a multiple of the step
            bar.setSliderDown(True)
            bar.setSliderPosition(int(bar.minimum() + fraction * (bar.maximum() - bar.minimum())))
            bar.setSliderDown(False)
            assert slider.value / step == pytest.approx(round(slider.value / step)), (name, slider.value)
        bar.triggerAction(act.SliderToMaximum)
        assert slider.value == pytest.approx(high), name
        bar.triggerAction(act.SliderToMinimum)
        assert slider.value == pytest.approx(max(step, low)), name


def test_a_new_input_row_takes_an_image_not_a_prediction(demo, qtbot):
    viewer, widget = demo
    widget.model.value = "physics"
    widget.ground_truth.value = viewer.layers["head TE120 TR6000"]
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction") and _outputs(viewer, "difference"))
    viewer.layers.move(viewer.layers.index(_outputs(viewer, "prediction")[0]), 1)  # right above the input
    widget.reset_choices()
    first, second = widget.add_input_row(), widget.add_input_row()
    assert first.layer.value is viewer.layers["head TE20 TR600"]
    assert second.layer.value is viewer.layers["head TE20 TR6000"]


def _scans_opened(make_napari_viewer, tmp_path, scans):
    """Each (name, stack (z, y, x), TE, TR, affine) written as NIfTI with its BIDS sidecar and
    opened through the reader, as a person opens them: the viewer, the widget, the layers."""
    import json

    import nibabel as nib

    for name, image, te, tr, affine in scans:
        nib.save(nib.Nifti1Image(np.ascontiguousarray(image.transpose(2, 1, 0)), affine), tmp_path / f"{name}.nii.gz")
        (tmp_path / f"{name}.json").write_text(json.dumps({"EchoTime": te / 1000, "RepetitionTime": tr / 1000}))
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-mr-reparam", "MR Re-parameterization")
    layers = [viewer.open(str(tmp_path / f"{scan[0]}.nii.gz"), plugin="napari-mr-reparam")[0] for scan in scans]
    return (viewer, widget, *layers)


def _joint_prediction(qtbot, viewer, widget, layers, preset):
    """The physics model's joint prediction of ``preset`` from ``layers`` (the first the
    widget's input, the others further inputs), run as a person runs it."""
    widget.reset_choices()
    widget.image.value = layers[0]
    widget.model.value = "physics"
    for layer in layers[1:]:
        widget.add_input_row().layer.value = layer
    widget.preset.value = preset
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    (pred,) = _outputs(viewer, "prediction")
    return pred


def test_scans_on_other_grids_opened_from_files_are_resampled_for_joint_maps(
        make_napari_viewer, tiny_weights, qtbot, tmp_path):
    """A 1 mm and a 2 mm scan of one head, opened through the reader as a person opens them:
    the joint fit runs on the first's grid and says which input it resampled."""
    from napari_mr_reparam import physics
    from napari_mr_reparam.phantoms import load_phantom

    p = load_phantom("mni152")
    middle = p.pd.shape[0] // 2
    pd, t1, t2 = (np.asarray(getattr(p, k)[middle - 2:middle + 2, ::2, ::2], np.float32) for k in ("pd", "t1", "t2"))
    scans = [(name, np.asarray(physics.spin_echo(pd, t1, t2, te, tr), np.float32)[:, ::step, ::step] * 1000, te, tr,
              np.diag([step, step, 1.0, 1.0])) for name, te, tr, step in (("pdw", 15, 3000, 1), ("t2w", 100, 3000, 2))]
    viewer, widget, first, second = _scans_opened(make_napari_viewer, tmp_path, scans)
    assert first.data.shape != second.data.shape
    pred = _joint_prediction(qtbot, viewer, widget, [first, second], "T1w")
    assert pred.data.shape == first.data.shape and np.isfinite(pred.data).any()
    assert "resampled onto the first input's grid by their affines: t2w" in widget.joint_status.value


def test_a_further_scan_outside_the_inputs_field_of_view_is_refused_as_its_row_is_chosen(
        make_napari_viewer, tiny_weights, tmp_path):
    """Slices 40 mm apart: said on the status line when the row is chosen, before any Run."""
    image = np.tile(np.linspace(10, 1000, 16, dtype=np.float32), (1, 16, 1))
    far = np.diag([1.0, 1.0, 5.0, 1.0])
    far[2, 3] = 40.0
    scans = [("plate5", image, 10, 1000, np.diag([1.0, 1.0, 5.0, 1.0])), ("plate4", image / 2, 25, 2000, far)]
    viewer, widget, first, second = _scans_opened(make_napari_viewer, tmp_path, scans)
    widget.reset_choices()
    widget.image.value = first
    widget.model.value = "physics"
    widget.add_input_row().layer.value = second
    assert widget.status.value.startswith("plate4 lies outside the field of view of plate5 by their affines")
    assert len(viewer.layers) == 2 and _idle(widget)


def test_a_joint_prediction_saves_with_the_sidecar_the_command_line_writes(make_napari_viewer, tiny_weights, qtbot,
                                                                           tmp_path):
    """Two scans opened from files, predicted together in the widget and saved through the
    plugin's writer: its sidecar names the joint maps and the inputs as ``predict --joint``
    does for the same scans."""
    import json

    from napari_mr_reparam import physics
    from napari_mr_reparam.cli import main
    from napari_mr_reparam.phantoms import load_phantom

    p = load_phantom("mni152")
    middle = p.pd.shape[0] // 2
    pd, t1, t2 = (np.asarray(getattr(p, k)[middle - 2:middle + 2, ::4, ::4], np.float32) for k in ("pd", "t1", "t2"))
    scans = [(name, np.asarray(physics.spin_echo(pd, t1, t2, te, tr), np.float32) * 1000, te, tr, np.eye(4))
             for name, te, tr in (("pdw", 15, 3000), ("t2w", 100, 3000))]
    viewer, widget, first, second = _scans_opened(make_napari_viewer, tmp_path, scans)
    pred = _joint_prediction(qtbot, viewer, widget, [first, second], "T1w")
    viewer.layers.selection = {pred}
    viewer.layers.save(str(tmp_path / "out" / "gui.nii.gz"), selected=True, plugin="napari-mr-reparam")
    gui = json.loads((tmp_path / "out" / "gui.json").read_text())
    assert main(["predict", "--joint", str(tmp_path / "pdw.nii.gz"), str(tmp_path / "t2w.nii.gz"), "--preset",
                 "T1w", "-o", str(tmp_path / "out" / "cli.nii.gz")]) == 0  # the preset the widget rendered
    cli = json.loads((tmp_path / "out" / "cli.json").read_text())
    assert cli["GeneratedBy"][0]["Model"] == "joint maps" and [r["File"] for r in cli["Inputs"]] == [
        "pdw.nii.gz", "t2w.nii.gz"]
    assert gui == cli


def test_an_inputs_record_says_where_its_times_came_from():
    from types import SimpleNamespace

    from napari_mr_reparam._widget_outputs import times_source_of
    from napari_mr_reparam.acquisition import Acquisition
    from napari_mr_reparam.io import Volume

    acq = Acquisition(20.0, 600.0)
    dicom = Volume(np.zeros((1, 2, 2), np.float32), kind="dicom")
    mgz = Volume(np.zeros((1, 2, 2), np.float32), extra={"times_from": "FreeSurfer header"})
    cases = [({"te_ms": 20.0, "tr_ms": 600.0, "volume": dicom}, "DICOM tags"),
             ({"te_ms": 20.0, "tr_ms": 600.0, "volume": mgz}, "FreeSurfer header"),
             ({"te_ms": 20.0, "tr_ms": 600.0, "volume": Volume(np.zeros((1, 2, 2)))}, "BIDS sidecar"),
             ({"te_ms": 20.0, "tr_ms": 600.0}, "layer metadata"),
             ({"te_ms": 30.0, "tr_ms": 600.0, "volume": dicom}, "given"),  # typed over the tags
             ({}, "given")]
    assert [times_source_of(SimpleNamespace(metadata=meta), acq) for meta, _ in cases] == [s for _, s in cases]


def test_the_inputs_record_names_a_file_where_the_layer_was_read_from_one():
    from types import SimpleNamespace

    from napari_mr_reparam._widget_outputs import inputs_record
    from napari_mr_reparam.widget_logic import InputSpec

    layers = [SimpleNamespace(metadata={"source": f"/scans/{kind}/site4/plate5"}) for kind in ("T1", "T2")]
    specs = [InputSpec(layers[0], "inversion_recovery", 10.0, 3000.0, 900.0),
             InputSpec(layers[1], "spin_echo", 80.0, 3000.0),
             InputSpec(SimpleNamespace(metadata={}), "spin_echo", 20.0, 600.0)]  # a layer of no file
    records = inputs_record(specs)["Inputs"]
    assert [r.get("File") for r in records] == ["T1/site4/plate5", "T2/site4/plate5", None]
    guessed = inputs_record([InputSpec(layers[1], "spin_echo", 100.0, 4000.0, guessed="T2w")])["Inputs"][0]
    assert (guessed["Source"], guessed["Preset"]) == ("guessed", "T2w")
    assert (records[0]["InversionTime"], records[1]["EchoTime"], records[2]["RepetitionTime"]) == (0.9, 0.08, 0.6)


def test_scans_of_fewer_slices_leave_the_first_input_and_the_network_there(make_napari_viewer, tiny_weights, qtbot,
                                                                            tmp_path):
    """A T1-weighted scan of 8 slices, then a PD/T2 dual echo of its middle 4: the joint fit
    says how much of the head only the first reached, and counts the network's read of it."""
    from napari_mr_reparam import physics
    from napari_mr_reparam.phantoms import load_phantom

    p = load_phantom("mni152")
    middle = p.pd.shape[0] // 2
    pd, t1, t2 = (np.asarray(getattr(p, k)[middle - 4:middle + 4, ::2, ::2], np.float32) for k in ("pd", "t1", "t2"))
    later = np.diag([1.0, 1.0, 1.0, 1.0])
    later[2, 3] = 2.0  # its first slice is the first scan's third

    def scan(te, tr, part):
        return np.asarray(physics.spin_echo(pd, t1, t2, te, tr), np.float32)[part] * 1000

    scans = [("t1w", scan(15, 500, np.s_[:]), 15, 500, np.eye(4)),
             ("pdw", scan(15, 3000, np.s_[2:6]), 15, 3000, later), ("t2w", scan(100, 3000, np.s_[2:6]), 100, 3000, later)]
    viewer, widget, first, second, third = _scans_opened(make_napari_viewer, tmp_path, scans)
    pred = _joint_prediction(qtbot, viewer, widget, [first, second, third], "PDw")
    assert pred.data.shape == first.data.shape and np.isfinite(pred.data).all()
    assert "of the object is not measured by every input (outside some input's field of view, or NaN or " \
           "infinite in it): fitted there to the inputs that measure it, the network's maps of the first input " \
           "filling in what they leave open" in widget.joint_status.value
    assert widget.progress.value == widget.progress.max == 2 * 8  # the network's read of the first, the fit


def _moved_scans_to_register(make_napari_viewer, tmp_path):
    """Two scans of one head opened through the reader, the second's head turned 3 degrees
    and shifted, both inputs of the widget with "Register onto the first image" ticked."""
    from napari_mr_reparam import physics
    from napari_mr_reparam.phantoms import load_phantom

    p = load_phantom("mni152")
    middle = p.pd.shape[0] // 2
    pd, t1, t2 = (np.asarray(getattr(p, k)[middle - 8:middle + 8], np.float32) for k in ("pd", "t1", "t2"))
    angle = np.radians(3.0)
    moved = np.eye(4)
    moved[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    moved[:3, 3] = [2.0, -1.0, 0.0]
    centred = np.diag([2.0, 2.0, 2.0, 1.0])
    centred[:3, 3] = -np.array(pd.shape[::-1]) + 1.0
    scans = [(name, np.asarray(physics.spin_echo(pd, t1, t2, te, tr), np.float32) * 1000, te, tr, affine)
             for name, te, tr, affine in (("t1w", 15, 500, centred), ("t2w", 100, 3000, moved @ centred))]
    viewer, widget, first, second = _scans_opened(make_napari_viewer, tmp_path, scans)
    widget.reset_choices()
    widget.image.value = first
    widget.model.value = "physics"
    assert widget.register.native.isHidden()
    widget.add_input_row().layer.value = second
    assert not widget.register.native.isHidden() and not widget.register.value
    widget.register.value = True
    widget.preset.value = "PDw"
    return viewer, widget


def test_scans_that_moved_are_registered_for_joint_maps_when_asked(make_napari_viewer, tiny_weights, qtbot,
                                                                   tmp_path):
    """With "Register onto the first image" ticked, the joint fit says how far the second
    scan moved, and the progress bar counts the registration."""
    viewer, widget = _moved_scans_to_register(make_napari_viewer, tmp_path)
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    assert "t2w registered onto the first input: moved 3." in widget.joint_status.value
    assert widget.progress.value == widget.progress.max == 3 * 16  # the registration, the network's maps, the fit


def test_cancel_reaches_the_registration(make_napari_viewer, tiny_weights, qtbot, tmp_path, monkeypatch):
    import threading

    from napari_mr_reparam import registration

    started, seen = threading.Event(), []
    real = registration.find_motion

    def slow(reference, moved, cancelled=None):
        started.set()
        for _ in range(500):  # wait, inside the registration, until the cancel arrives
            if cancelled():
                break
            threading.Event().wait(0.01)
        seen.append(cancelled())
        return real(reference, moved, cancelled=cancelled)

    monkeypatch.setattr(registration, "find_motion", slow)
    viewer, widget = _moved_scans_to_register(make_napari_viewer, tmp_path)
    _cancel_once_started(qtbot, viewer, widget, started, seen)


def test_the_other_images_of_the_inputs_series_are_added_in_one_click(make_napari_viewer, tiny_weights, qtbot,
                                                                      tmp_path):
    import json

    import nibabel as nib

    rng = np.random.default_rng(3)
    echoes = np.abs(rng.normal(100, 20, (24, 24, 4, 4))).astype(np.float32)
    nib.save(nib.Nifti1Image(echoes, np.eye(4)), tmp_path / "train.nii.gz")
    (tmp_path / "train.json").write_text(json.dumps({"EchoTime": [0.02, 0.04, 0.06, 0.08], "RepetitionTime": 3.0}))
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-mr-reparam", "MR Re-parameterization")
    layers = viewer.open(str(tmp_path / "train.nii.gz"), plugin="napari-mr-reparam")
    other = viewer.add_image(echoes[..., 0].transpose(2, 1, 0), name="another scan")
    widget.reset_choices()
    widget.model.value = "physics"
    widget.image.value = layers[1]
    assert not widget.add_series.native.isHidden() and widget.add_series.text == "+ The other 3 images of its series"
    rows = widget.add_series_rows()
    assert [row.layer.value for row in rows] == [layers[0], layers[2], layers[3]]
    assert [row.te.value for row in rows] == [20.0, 60.0, 80.0]  # each from its volume's times
    assert other not in [row.layer.value for row in widget.inputs]
    assert widget.add_series.native.isHidden()  # nothing of the series left to add
    # a second series: once one of its images is a row, the button offers the rest of it
    nib.save(nib.Nifti1Image(echoes[..., :3], np.eye(4)), tmp_path / "second.nii.gz")
    (tmp_path / "second.json").write_text(json.dumps({"EchoTime": [0.03, 0.05, 0.07], "RepetitionTime": 2.0}))
    second = viewer.open(str(tmp_path / "second.nii.gz"), plugin="napari-mr-reparam")
    widget.reset_choices()
    row = widget.add_input_row()
    row.layer.value = second[0]
    widget._show_series_button()
    assert widget.add_series.text == "+ The other 2 images of their series"
    assert [r.layer.value for r in widget.add_series_rows()] == [second[1], second[2]]
    assert widget.add_series.native.isHidden()
    widget.image.value = other  # the train's image left over (the input before) is offered, from its rows
    assert widget.add_series.text == "+ The other image of their series"
    widget.model.value = "p2p"
    widget.image.value = layers[0]
    assert widget.add_series.native.isHidden()  # one input only for this model


def test_what_the_status_said_of_one_input_goes_when_another_is_chosen(demo):
    viewer, widget = demo
    odd = viewer.add_image(_ramp((6, 8, 8)), name="t1_ms",
                           metadata={"sidecar_times_ignored": "the times in t1_ms.json are ignored"})
    widget.model.value = "physics"
    widget.reset_choices()
    widget.image.value = odd
    assert widget.status.value.startswith("t1_ms: the times in t1_ms.json are ignored")
    assert widget.input_te.value == 0 and widget.input_tr.value == 0  # "?": typed, not the default
    widget.model.value = "d2p"  # reads no input times
    widget.model.value = "p2p"  # they are still "?": said, not a blank line until Run
    assert "t1_ms" in widget.status.value and "type" in widget.status.value
    widget.model.value = "physics"
    widget.run.clicked.emit()
    assert _idle(widget) and not _outputs(viewer, "prediction")
    widget.image.value = viewer.layers["head TE50 TR4500"]  # its metadata state its TE/TR: what it is read as
    assert widget.status.value == ("head TE50 TR4500: read as spin echo, TE 50 / TR 4500 ms (from its metadata); "
                                   "a Preset or TE/TR predicts from it")


@pytest.mark.parametrize("data, said", [
    (np.full((6, 16, 16), np.nan, np.float32), "holds no image: every voxel is NaN or infinite; choose another layer"),
    (np.full((6, 16, 16), np.inf, np.float32), "holds no image: every voxel is NaN or infinite; choose another layer"),
    (np.zeros((6, 16, 16), np.float32), "holds no image: every voxel is 0; choose another layer"),
    (np.full((6, 16, 16), 7.0, np.float32), "holds no image: every voxel is 7; choose another layer"),
    (np.random.default_rng(0).random((2, 6, 16, 16)).astype(np.float32),
     ("has 4 dimensions (2, 6, 16, 16); the models take a 2-D image or a 3-D volume: split it into volumes "
      "(right-click the layer > Split Stack) and choose one")),
])
def test_a_layer_no_model_reads_is_refused_in_the_status_as_it_is_chosen(demo, qtbot, data, said):
    viewer, widget = demo
    widget.model.value = "physics"
    bad = viewer.add_image(data, name="bad")
    widget.reset_choices()
    widget.image.value = bad  # nothing raised in the selection callback
    assert widget.status.value == f"bad {said}"
    widget.status.value = ""
    widget.run.clicked.emit()
    assert widget.status.value == f"bad {said}" and _idle(widget) and not _outputs(viewer, "prediction")


def test_a_further_input_no_model_reads_is_named_in_the_status(demo, qtbot):
    viewer, widget = demo
    widget.model.value = "physics"
    nan = viewer.add_image(np.full((6, 64, 64), np.nan, np.float32), name="nan scan",
                           metadata={"te_ms": 50.0, "tr_ms": 2000.0})
    widget.reset_choices()
    row = widget.add_input_row()
    row.layer.value = nan  # nothing raised as the row fills itself in
    assert widget.status.value == "nan scan holds no image: every voxel is NaN or infinite; choose another layer"
    widget.status.value = ""
    widget.run.clicked.emit()
    assert widget.status.value.startswith("nan scan holds no image") and _idle(widget)
    assert not _outputs(viewer, "prediction")


@pytest.mark.parametrize("box, said", [
    ("input_ti", "head TE50 TR4500: no TI known for its MPRAGE acquisition; type it in Input TI"),
    ("input_flip", "head TE50 TR4500: no flip angle known for its MPRAGE acquisition; type it in Input flip"),
])
def test_an_mprage_input_without_its_ti_or_flip_asks_for_it_and_runs_nothing(demo, qtbot, box, said):
    viewer, widget = demo
    widget.model.value = "physics"
    widget.input_preset.value = "MPRAGE"
    getattr(widget, box).value = 0  # "?": not known
    widget.run.clicked.emit()
    assert widget.status.value == said and _idle(widget) and not _outputs(viewer, "prediction")


def test_an_input_te_longer_than_its_tr_is_a_status_line_naming_the_input(demo, qtbot, monkeypatch):
    from napari.utils import notifications

    shown = []
    monkeypatch.setattr(notifications, "show_error", shown.append)
    viewer, widget = demo
    widget.model.value = "physics"
    widget.input_preset.value = "T2w"
    widget.input_tr.value, widget.input_te.value = 40.0, 50.0
    widget.run.clicked.emit()
    assert widget.status.value == ("head TE50 TR4500's acquisition (Input TE/TR): TE (50 ms) must be shorter than "
                                   "TR (40 ms)")
    assert _idle(widget) and not shown and not _outputs(viewer, "prediction")


def test_a_time_typed_in_seconds_in_a_row_keeps_its_digits_for_the_hint(demo, qtbot):
    viewer, widget = demo
    widget.model.value = "physics"
    row = widget.add_input_row()
    row.layer.value = viewer.layers["head TE20 TR600"]
    row.te.value = 0.03856
    assert row.te.native.text() == "TE 0.03856 ms"
    row.te.value = 38.56  # shown as typed, no trailing zeros
    assert row.te.native.text() == "TE 38.56 ms"
    row.te.value = 0.03856
    widget.run.clicked.emit()
    assert widget.status.value == ("head TE20 TR600: TE 0.03856 looks like seconds; times are in milliseconds "
                                   "(did you mean 38.56 ms?)")
    widget.input_te.value = 0.03856  # the input's own field too
    assert widget.status.value.endswith("(did you mean 38.56 ms?)")


def _slow_until(event, real):
    """``real`` (an engine method) called once ``event`` is set, not before, cancelled or not."""
    import threading

    started = threading.Event()

    def slow(*args, **kwargs):
        started.set()
        event.wait(30)
        return real(*args, **kwargs)

    return started, slow


@pytest.mark.parametrize("close", ["the ✕ button", "the dock closed", "the window closed"])
def test_closing_the_dock_mid_run_stops_the_work_and_adds_no_layer(make_napari_viewer, tiny_weights, qtbot,
                                                                  monkeypatch, close):
    import threading

    from napari_mr_reparam.inference import Reparameterizer

    closed = threading.Event()
    started, slow = _slow_until(closed, Reparameterizer.compute_maps)
    monkeypatch.setattr(Reparameterizer, "compute_maps", slow)
    viewer = make_napari_viewer()
    dock, widget = viewer.window.add_plugin_dock_widget("napari-mr-reparam", "MR Re-parameterization")
    viewer.add_image(make_sample_all()[0][0][:6], **make_sample_all()[0][1])
    widget.reset_choices()
    widget.image.value = viewer.layers[0]
    widget.run.clicked.emit()
    _until(qtbot, started.is_set)
    job = widget._predictions.job
    if close == "the window closed":  # napari quitting: the work is stopped and its thread waited for
        from qtpy.QtCore import QThreadPool

        threading.Timer(0.3, closed.set).start()
        viewer.window._qt_window.close()
        assert job.cancelled() and QThreadPool.globalInstance().activeThreadCount() == 0
        return
    dock.destroyOnClose() if close == "the ✕ button" else dock.close()
    closed.set()
    assert job.cancelled()
    _until(qtbot, lambda: _idle(widget))
    qtbot.wait(100)
    assert [l.name for l in viewer.layers] == ["head TE50 TR4500"]


def test_a_render_done_while_newer_maps_are_fitted_says_they_are(demo, qtbot, monkeypatch):
    import threading

    from napari_mr_reparam import DEFAULT_CONSISTENCY
    from napari_mr_reparam.inference import Reparameterizer

    viewer, widget = demo
    widget.live.value = False
    widget.model.value = "physics"
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and widget.status.value.startswith("Rendered"))
    release = threading.Event()
    started, slow = _slow_until(release, Reparameterizer.compute_maps)
    monkeypatch.setattr(Reparameterizer, "compute_maps", slow)
    try:
        widget.consistency.value = 0.9
        widget.run.clicked.emit()  # newer maps: their fit waits
        _until(qtbot, started.is_set)
        widget.consistency.value = DEFAULT_CONSISTENCY  # the maps at hand: rendered while the other fit runs
        widget.run.clicked.emit()
        _until(qtbot, lambda: widget.status.value.startswith("Rendered"))
        assert widget.status.value.endswith("; the maps of other settings are still being fitted...")
    finally:
        release.set()
    _until(qtbot, lambda: _idle(widget))


def test_a_preset_chosen_fits_the_maps_once_though_the_preview_and_the_volume_both_ask(demo, qtbot, monkeypatch):
    import threading

    from napari_mr_reparam._widget import VOLUME_DELAY_MS
    from napari_mr_reparam.inference import Reparameterizer

    viewer, widget = demo
    fitted = threading.Event()
    started, slow = _slow_until(fitted, Reparameterizer.compute_maps)
    calls = []
    monkeypatch.setattr(Reparameterizer, "compute_maps", lambda *a, **k: calls.append(1) or slow(*a, **k))
    widget.model.value = "physics"
    widget.preset.value = "T2w"  # live preview: the slice preview asks for the maps, then the volume
    _until(qtbot, started.is_set)
    qtbot.wait(VOLUME_DELAY_MS + 300)  # the volume's request made while the maps are being fitted
    fitted.set()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    (pred,) = _outputs(viewer, "prediction")
    assert len(calls) == 1 and (pred.metadata["te_ms"], pred.metadata["tr_ms"]) == (100.0, 4000.0)


def test_closing_the_only_image_mid_run_says_it_was_closed(make_napari_viewer, tiny_weights, qtbot, monkeypatch):
    import threading

    from napari_mr_reparam.inference import Reparameterizer

    closed = threading.Event()
    started, slow = _slow_until(closed, Reparameterizer.compute_maps)
    monkeypatch.setattr(Reparameterizer, "compute_maps", slow)
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-mr-reparam", "MR Re-parameterization")
    scan = viewer.add_image(make_sample_all()[0][0][:6], **make_sample_all()[0][1])
    widget.reset_choices()
    widget.image.value = scan
    widget.run.clicked.emit()
    _until(qtbot, started.is_set)
    viewer.layers.remove(scan)  # the Input box falls on nothing
    closed.set()
    _until(qtbot, lambda: _idle(widget))
    assert widget.image.value is None and not _outputs(viewer, "prediction")
    assert widget.status.value == "head TE50 TR4500 was closed: choose the image to predict from (Input)"


def test_a_job_that_finishes_after_a_refusal_leaves_the_refusal_shown(demo, qtbot, monkeypatch):
    import threading

    from napari_mr_reparam.inference import Reparameterizer

    refused = threading.Event()
    started, slow = _slow_until(refused, Reparameterizer.predict)
    monkeypatch.setattr(Reparameterizer, "predict", slow)
    viewer, widget = demo
    widget.live.value = False
    widget.run.clicked.emit()
    _until(qtbot, started.is_set)
    widget.preset.value = "FLAIR"  # d2p renders no inversion recovery
    refusal = widget.status.value
    assert refusal.startswith("FLAIR is inversion recovery: only the physics model renders it")
    refused.set()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    assert widget.status.value == refusal
    widget.run.clicked.emit()  # a request taken: its news shows again
    _until(qtbot, lambda: _idle(widget) and widget.status.value.startswith("Done (volume)"))
    assert widget.status.value.endswith(": spin echo, TE 100 / TR 3000 ms")


def _flair_rendered(viewer, widget, qtbot):
    """The physics model's FLAIR of the whole volume, rendered: its prediction layer."""
    widget.model.value = "physics"
    widget.preset.value = "FLAIR"
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    (flair,) = _outputs(viewer, "prediction")
    return flair


def test_the_status_names_the_contrast_rendered(demo, qtbot):
    viewer, widget = demo
    _flair_rendered(viewer, widget, qtbot)
    assert widget.status.value.startswith("Rendered from the maps on ")
    assert widget.status.value.endswith(": FLAIR, TE 120 / TR 9000 / TI 2500 ms")


def test_a_map_layer_opens_with_a_contrast_that_tells_its_tissues_apart(demo, qtbot):
    from napari_mr_reparam._widget_outputs import map_contrast_limits

    rng = np.random.default_rng(0)
    t1 = np.full((4, 40, 40), 10000.0, np.float32)  # air: pinned at the fit's cap
    t1[:, 10:30, 10:30] = rng.uniform(300, 1500, (4, 20, 20))  # the spheres
    t1[0, 0, :3] = (0.0, np.nan, np.inf)
    t1[1, :8, :] = rng.uniform(9950, 9999, (8, 40))  # and the spheres' rims, next to the cap
    low, high = map_contrast_limits(t1)
    assert 300 <= low < 330 and 1470 < high <= 1500 and np.nanmax(np.where(np.isinf(t1), 0, t1)) == 10000
    assert map_contrast_limits(np.zeros((2, 3, 3))) == (0.0, 1.0)
    viewer, widget = demo
    widget.model.value = "physics"
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    widget.add_maps.clicked.emit()
    for role in ("map_pd", "map_t1", "map_t2"):
        (layer,) = _outputs(viewer, role)
        data = np.asarray(layer.data)
        assert tuple(layer.contrast_limits) == pytest.approx(map_contrast_limits(data)), role
        assert tuple(layer.contrast_limits) != pytest.approx((np.nanmin(data), np.nanmax(data))), role


@pytest.mark.parametrize("order", ["as napari calls them", "choices reset first", "no reset"])
def test_closing_the_first_input_makes_its_first_further_input_the_first(demo, order):
    from types import SimpleNamespace

    from napari_mr_reparam.widget_logic import joint_acquisitions

    viewer, widget = demo
    if order == "no reset":  # a widget not docked: its own handler alone
        viewer.layers.events.removed.disconnect(widget.reset_choices)
    if order == "choices reset first":  # the Input box falls on another layer before the widget hears of it
        viewer.layers.events.removed.disconnect(widget._on_layer_removed)

    def remove(layer):
        viewer.layers.remove(layer)
        if order == "choices reset first":
            widget._on_layer_removed(SimpleNamespace(value=layer))

    widget.model.value = "physics"
    first = widget.image.value
    rows = [widget.add_input_row(), widget.add_input_row()]
    second, third = (row.layer.value for row in rows)
    rows[0].te.value, rows[0].sequence.value = 33.0, "inversion_recovery"  # typed in the row
    rows[0].ti.value = 300.0
    remove(first)
    assert widget.image.value is second and [row.layer.value for row in widget.inputs] == [third]
    assert (widget.input_te.value, widget.input_sequence.value, widget.input_ti.value) == (
        33.0, "inversion_recovery", 300.0)
    request = widget.current_request(whole=True)
    assert len(joint_acquisitions(request.inputs)) == 2  # no layer twice
    remove(second)  # the last further input up: one input left, no rows
    assert widget.image.value is third and len(widget.inputs) == 0


def _pixels(pixmap):
    """A widget's grabbed picture as bytes (RGB32)."""
    image = pixmap.toImage().convertToFormat(pixmap.toImage().Format.Format_RGB32)
    bits = image.constBits()
    bits.setsize(image.sizeInBytes())
    return np.frombuffer(bits, np.uint8).copy()


def test_rows_of_an_echo_train_show_the_echo_that_tells_them_apart(demo, qtbot):
    # an echo train's names differ mid-name (TE and echo number), before a shared TR
    from qtpy.QtWidgets import QApplication

    from napari_mr_reparam._widget_controls import shown_text

    viewer, widget = demo
    widget.model.value = "physics"
    for k in range(1, 7):
        viewer.add_image(_ramp((6, 32, 32)), name=f"plate4 TE {8 * k} (echo {k}) / TR 2000 ms",
                         metadata={"te_ms": 8.0 * k, "tr_ms": 2000.0, "sequence": "spin_echo"})
    widget.reset_choices()
    rows = [widget.add_input_row() for _ in range(6)]
    for row, layer in zip(rows, list(viewer.layers)[-6:]):
        row.layer.value = layer
    widget.native.window().show()
    QApplication.processEvents()
    for row in rows:
        row.layer.native.resize(row.layer.native.minimumSizeHint())
    shown = [shown_text(row.layer) for row in rows]
    assert all("…" in text for text in shown) and len(set(shown)) == 6, shown


def test_rows_of_one_series_show_the_end_of_their_names_under_a_label_at_the_top(demo, qtbot):
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QApplication

    from napari_mr_reparam._widget_controls import shown_text

    viewer, widget = demo
    widget.model.value = "physics"
    for ti in (50, 100, 200, 400, 800, 1600):
        viewer.add_image(_ramp((6, 32, 32)), name=f"plate5 TE 10 / TR 1000 / TI {ti}",
                         metadata={"te_ms": 10.0, "tr_ms": 1000.0, "ti_ms": float(ti),
                                   "sequence": "inversion_recovery"})
    widget.reset_choices()
    rows = [widget.add_input_row() for _ in range(6)]
    for row, layer in zip(rows, list(viewer.layers)[-6:]):
        row.layer.value = layer
    widget.native.window().show()  # the viewer's window, with the dock
    QApplication.processEvents()
    for row in rows:  # as narrow as a laptop's dock makes them
        row.layer.native.resize(row.layer.native.minimumSizeHint())
    shown = [shown_text(row.layer) for row in rows]
    assert all("…" in text for text in shown) and len(set(shown)) == 6  # cut, yet told apart
    assert shown[-1].endswith("TI 1600") and rows[-1].layer.tooltip == "plate5 TE 10 / TR 1000 / TI 1600"
    widget.image.value = viewer.layers[-1]  # the input's box cuts a name at its start too
    assert shown_text(widget.image).endswith("TI 1600") or "…" not in shown_text(widget.image)
    assert [c for c in widget.image.native.children() if type(c).__name__ == "_Elided"]
    combo = rows[-1].layer.native
    [elider] = [c for c in combo.children() if type(c).__name__ == "_Elided"]
    painted = _pixels(combo.grab())  # painted as shown_text says, not as Qt cuts it at its end
    combo.removeEventFilter(elider)
    assert (_pixels(combo.grab()) != painted).any()
    _until(qtbot, lambda: widget.inputs.native.height() > 200)  # the six rows laid out
    label = widget.inputs.native.parentWidget().layout().itemAt(0).widget()
    assert label.text() == "More inputs"
    top = widget.inputs.native.mapTo(widget.native, widget.inputs.native.rect().topLeft()).y()
    assert abs(label.mapTo(widget.native, label.rect().topLeft()).y() - top) < 20  # beside the first row
    # however far the rows push the controls, Run and the status line stay out of the scroll area, in sight
    assert widget._scroll.isAncestorOf(widget.te.native) and widget._scroll.isAncestorOf(widget.inputs.native)
    assert not any(widget._scroll.isAncestorOf(w.native) for w in (widget.run, widget.cancel, widget.status,
                                                                    widget.metrics))
    sequence = rows[0].sequence  # cut with an ellipsis ("Inversi…"), not mid-letter
    sequence.native.resize(sequence.native.minimumSizeHint())
    text, full = shown_text(sequence, Qt.TextElideMode.ElideRight), sequence.native.currentText()
    assert full == "Inversion recovery" and text.endswith("…") and full.startswith(text[:-1]), text
    assert [c for c in sequence.native.children() if type(c).__name__ == "_Elided"]


def test_a_ground_truth_of_another_shape_leaves_no_figures_of_the_one_before(demo, qtbot):
    viewer, widget = demo
    widget.ground_truth.value = viewer.layers["head TE20 TR600"]  # at other times: a hint
    widget.te.value, widget.tr.value = 120.0, 6000.0
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and "volume: PSNR" in widget.metrics.value)
    assert widget.truth_hint.value and _outputs(viewer, "difference")
    small = viewer.add_image(_ramp((3, 16, 16)), name="small", metadata={"te_ms": 120.0, "tr_ms": 6000.0})
    widget.reset_choices()
    widget.ground_truth.value = small
    said = ("small: shape (3, 16, 16) differs from the input's (6, 256, 256); choose a ground truth of the "
            "input's shape")
    assert widget.metrics.value == said
    assert widget.truth_hint.value == "" and not _outputs(viewer, "difference")
    viewer.dims.set_current_step(0, 4)  # another slice: no figures of the ground truth before
    widget.te.value = 110.0  # a preview of the slice on screen: compared with none
    _until(qtbot, lambda: _idle(widget) and "TE110" in _outputs(viewer, "prediction")[0].name)
    assert widget.metrics.value == said and not _outputs(viewer, "difference") and widget.truth_hint.value == ""
    widget.ground_truth.value = viewer.layers["head TE120 TR6000"]  # of the input's shape: compared again
    _until(qtbot, lambda: _idle(widget) and "volume: PSNR" in widget.metrics.value)
    assert len(_outputs(viewer, "difference")) == 1


def test_a_refusal_goes_once_the_settings_are_valid_with_live_preview_off(demo):
    viewer, widget = demo
    widget.live.value = False
    widget.input_preset.value = "MPRAGE"  # d2p reads no such input
    assert widget.status.value.startswith("MPRAGE: only the physics model reads such an input")
    widget.model.value = "p2p"
    widget.input_preset.value = "T2w"
    widget.input_te.value = 33.0  # no refusal: what was said of the input stays
    assert widget.status.value.startswith("head TE50 TR4500: Input preset T2w replaces what its file states")
    assert widget.input_preset.value == "Custom"
    widget.tr.value = 50.0  # shorter than TE: refused, then valid again
    assert widget.status.value == "TE must be shorter than TR"
    widget.tr.value = 3000.0
    assert widget.status.value == ""
    widget.model.value = "d2p"
    widget.image.value = viewer.layers["head TE20 TR600"]
    widget.run.clicked.emit()
    assert widget.status.value.startswith("head TE20 TR600 is at TE 20 / TR 600 ms: Default-to-Param reads")
    widget.image.value = viewer.layers["head TE50 TR4500"]  # an input it reads: the refusal goes
    assert widget.status.value.endswith("Default-to-Param reads every input as a spin echo at TE 50 / TR 4500 ms; "
                                        "a Preset or TE/TR predicts from it")
    assert _idle(widget) and not _outputs(viewer, "prediction")


@pytest.mark.parametrize("live", [True, False])
def test_rows_added_say_how_their_joint_maps_are_fitted(demo, qtbot, live):
    viewer, widget = demo
    widget.model.value = "physics"
    widget.live.value = live
    row = widget.add_input_row()
    row.layer.value = viewer.layers["head TE20 TR600"]
    slider = " (or move a slider)" if live else ""
    hint = f"2 inputs: press Run all slices{slider} to fit their joint maps"
    assert widget.status.value == hint and _idle(widget)  # as a row's TE changed: nothing runs by itself
    row.te.value = 0  # "?": the row's TE is to be typed
    assert widget.status.value == "head TE20 TR600: no TE known; type the value(s) in its row"
    row.te.value = 20.0
    assert widget.status.value == hint
    row.remove.clicked.emit()  # one input: nothing to fit jointly
    assert widget.status.value == ""
    widget.add_input_row().layer.value = viewer.layers["head TE20 TR600"]
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    assert widget.status.value.startswith("Rendered from the joint maps of 2 inputs")
    widget.inputs[0].remove.clicked.emit()  # back to one input: the line of two goes
    if live:
        _until(qtbot, lambda: _idle(widget) and widget.status.value.startswith("Rendered from the maps"))
    else:
        assert widget.status.value.startswith("Live preview is off: press Run all slices for")
    assert widget.joint_status.value == ""


def test_an_input_whose_metadata_lack_its_te_asks_for_it_and_runs_nothing(demo, qtbot):
    viewer, widget = demo
    widget.model.value = "physics"
    no_te = viewer.add_image(np.asarray(viewer.layers[0].data), name="no EchoTime", metadata={"tr_ms": 2000.0})
    widget.reset_choices()
    widget.image.value = no_te
    assert (widget.input_te.value, widget.input_tr.value) == (0.0, 2000.0) and widget.input_te.native.text() == "?"
    said = "no EchoTime: no TE known for its spin echo acquisition; type it in Input TE"
    assert widget.status.value == said
    widget.run.clicked.emit()
    assert widget.status.value == said and _idle(widget) and not _outputs(viewer, "prediction")
    widget.model.value = "p2p"
    widget.run.clicked.emit()
    assert widget.status.value == said and _idle(widget) and not _outputs(viewer, "prediction")
    widget.input_te.value = 20.0  # typed: it runs
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    assert widget.status.value.startswith("Done (volume)")


def test_target_readouts_show_no_needless_decimals_and_the_devices_are_the_command_lines(demo, qtbot):
    from napari_mr_reparam._widget_controls import _TrimmedSpinBox
    from napari_mr_reparam.devices import DEVICE_CHOICES

    _, widget = demo
    widget.live.value = False
    readout = widget.te.native.findChild(_TrimmedSpinBox)
    widget.te.value = 120.0
    assert readout.text() == "120" and readout.isVisibleTo(widget.native)
    _type(qtbot, widget.te, "120.5")  # typed in the readout: sets the slider
    assert widget.te.value == pytest.approx(120.5)
    _type(qtbot, widget.tr, "2.3")
    tr = widget.tr.native.findChild(_TrimmedSpinBox)
    assert tr.text() == "2.3" and widget.status.value.startswith("TR 2.3 looks like seconds")
    assert tuple(widget.device.choices) == DEVICE_CHOICES


def _type(qtbot, control, text):
    """Type ``text`` into a field (a slider's readout, a time box) as a person does, then Enter."""
    from qtpy.QtCore import Qt

    from napari_mr_reparam._widget_controls import _TrimmedSpinBox

    box = control.native if isinstance(control.native, _TrimmedSpinBox) else control.native.findChild(_TrimmedSpinBox)
    box.setFocus()
    box.selectAll()
    qtbot.keyClicks(box, text)
    qtbot.keyClick(box, Qt.Key.Key_Return)


def test_a_number_typed_beyond_a_fields_range_is_taken_as_its_end_and_said(demo, qtbot):
    _, widget = demo
    widget.live.value = False
    widget.model.value = "physics"
    row = widget.add_input_row()
    _type(qtbot, widget.tr, "20000")  # Qt's own field kept 2000, without a word
    assert widget.tr.value == 15000.0
    assert "TR 20000 ms is above the 0.01-15000 ms this field takes: set to 15000 ms" in widget.range_warning.value
    _type(qtbot, widget.te, "1e3")  # an exponent is a number too (Qt's field made it 13)
    assert widget.te.value == 1000.0 and widget.range_warning.value == ""
    _type(qtbot, widget.te, "12,5")  # a comma decimal, as typed in a comma locale (Qt's field made it 125)
    assert widget.te.value == 12.5
    _type(qtbot, widget.input_te, "2,5")
    assert widget.input_te.value == 2.5
    _type(qtbot, widget.input_flip, "200")
    assert widget.input_flip.value == 180.0 and "Input flip 200° is above the 0-180°" in widget.range_warning.value
    _type(qtbot, row.tr, "30000")  # a further input's field: the line names it, and only the latest
    assert row.tr.value == 20000.0 and widget.range_warning.value.count("⚠") == 1
    assert "TR 30000 ms is above the 0-20000 ms" in widget.range_warning.value
    assert widget.range_warning.value.startswith(f"⚠ {row.layer.value.name}: TR 30000 ms")  # the row's image named
    held = row.te.value
    _type(qtbot, row.te, "abc")  # no number: the field keeps what it held
    assert row.te.value == held and "TR 30000" in widget.range_warning.value
    _type(qtbot, row.tr, "1e3")  # the row's TR typed again within its range: its line goes
    assert row.tr.value == 1000.0 and widget.range_warning.value == ""
    widget.te.value = 60.0
    _type(qtbot, widget.te, "1e")  # an unfinished number keeps the value before (Qt's field made it 1)
    assert widget.te.value == 60.0
    _type(qtbot, widget.te, "-5")  # below the range: no time; the value before kept, not 0.01 ms
    assert widget.te.value == 60.0
    assert "TE -5 ms is below the 0.01-1500 ms this field takes: kept 60 ms" in widget.range_warning.value
    _type(qtbot, widget.te, "0.05")  # within range: the seconds hint, as before
    assert widget.status.value.startswith("TE 0.05 looks like seconds")


@pytest.mark.parametrize("order", ["as napari calls them", "choices reset first"])
def test_closing_a_further_inputs_layer_removes_its_row(demo, order):
    from types import SimpleNamespace

    viewer, widget = demo
    if order == "choices reset first":
        viewer.layers.events.removed.disconnect(widget._on_layer_removed)
    widget.model.value = "physics"
    rows = [widget.add_input_row(), widget.add_input_row()]
    second, third = (row.layer.value for row in rows)
    viewer.layers.remove(second)
    if order == "choices reset first":
        widget._on_layer_removed(SimpleNamespace(value=second))
    assert [row.layer.value for row in widget.inputs] == [third]  # not moved onto the first input
    assert widget.status.value == f"{second.name} was closed: its row among the inputs is removed"


def test_closing_the_input_chooses_an_image_not_a_prediction(demo, qtbot):
    viewer, widget = demo
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    (pred,) = _outputs(viewer, "prediction")
    viewer.layers.move(viewer.layers.index(pred), 0)  # napari's list would fall on it
    first = widget.image.value
    viewer.layers.remove(first)
    assert widget.image.value is not pred and "mr_reparam_role" not in widget.image.value.metadata
    for layer in [l for l in viewer.layers if l is not pred]:  # only the prediction left
        viewer.layers.remove(layer)
    assert widget.image.value is pred
    assert widget.status.value.endswith("was closed: choose the image to predict from (Input)")
    before = np.array(pred.data)
    widget.run.clicked.emit()  # nothing runs from the output napari's list fell on
    assert _idle(widget) and np.array_equal(pred.data, before) and widget.status.value.endswith("(Input)")
    widget.image.native.activated.emit(widget.image.native.currentIndex())  # picked by hand: chosen
    assert not widget.status.value.endswith("(Input)")
    assert "Default-to-Param reads inputs at TE 50 / TR 4500 ms only" in widget.status.value  # its own refusal
    widget.model.value = "physics"
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and len(_outputs(viewer, "prediction")) == 2)
    for layer in [l for l in viewer.layers if l is not pred]:
        viewer.layers.remove(layer)
    viewer.layers.remove(pred)  # every layer closed, then a scan opened: it is the input, and runs
    scan = viewer.add_image(before.copy(), name="scan", metadata={"te_ms": 50.0, "tr_ms": 4500.0})
    assert widget.image.value is scan and not widget.status.value.endswith("(Input)")
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))


def test_the_maps_asked_for_before_they_are_fitted_are_added_when_they_are(demo, qtbot):
    viewer, widget = demo
    widget.model.value = "physics"
    widget.add_maps.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and len(_maps(viewer)) == 3)
    assert all(l.metadata["model"] == "physics" for l in _maps(viewer))


def test_map_layers_refitted_from_several_inputs_say_so(demo, qtbot):
    viewer, widget = demo
    widget.model.value = "physics"
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    widget.add_maps.clicked.emit()
    pd = next(l for l in _maps(viewer) if l.metadata["quantity"] == "PD")
    assert pd.metadata["model"] == "physics" and "network" in pd.metadata["unit"]
    widget.add_input_row()
    widget.add_maps.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and pd.metadata["model"] == "joint maps")
    assert "network" not in pd.metadata["unit"] and len(_maps(viewer)) == 3


def test_the_metrics_line_follows_the_input_chosen(demo, qtbot):
    viewer, widget = demo
    widget.ground_truth.value = viewer.layers["head TE120 TR6000"]
    head = widget.image.value
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and "volume: PSNR" in widget.metrics.value)
    shown = widget.metrics.value
    deeper = viewer.add_image(_ramp((9, 32, 32)), name="deeper")
    widget.reset_choices()
    widget.image.value = deeper
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and "differs from the input's" in widget.metrics.value)
    widget.image.value = head  # back: its own figures again, not the other's message
    _until(qtbot, lambda: _idle(widget) and widget.metrics.value == shown)


def test_closing_the_viewer_mid_run_delivers_nothing_to_the_deleted_widget(demo, qtbot, monkeypatch):
    import threading

    from napari_mr_reparam.inference import Reparameterizer

    closed = threading.Event()
    started, slow = _slow_until(closed, Reparameterizer.predict)
    monkeypatch.setattr(Reparameterizer, "predict", slow)
    viewer, widget = demo
    widget.run.clicked.emit()
    _until(qtbot, started.is_set)
    jobs = widget._predictions
    job = jobs.job
    widget.close_work()  # as the widget's deletion calls it
    closed.set()
    assert job.cancelled() and jobs.closed
    _until(qtbot, lambda: jobs.job is None)
    widget.run.clicked.emit()  # nothing starts once closed
    assert jobs.job is None and not _outputs(viewer, "prediction")


def _maps(viewer):
    return [l for l in viewer.layers if str((l.metadata or {}).get("mr_reparam_role", "")).startswith("map_")]


def test_a_preset_chosen_under_a_paper_model_holds_when_physics_is_chosen_again(demo):
    viewer, widget = demo
    widget.model.value = "physics"
    widget.preset.value = "FLAIR"
    widget.model.value = "d2p"
    widget.preset.value = "T2w"
    widget.model.value = "physics"
    request = widget.current_request(whole=True)
    assert widget.preset.value == "T2w" and request.sequence == "spin_echo" and request.ti is None


def test_closing_the_input_while_its_volume_renders_says_so(demo, qtbot):
    viewer, widget = demo
    widget.model.value = "physics"
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    widget.te.value = 40.0
    widget._volume_timer.timeout.emit()  # the whole volume rendered in a worker
    assert widget.status.value.startswith("Rendering the whole volume")
    viewer.layers.remove(widget.image.value)
    _until(qtbot, lambda: _idle(widget))
    assert not widget.status.value.startswith("Rendering")


def test_a_slider_moved_with_live_preview_off_says_how_to_render(demo, qtbot):
    viewer, widget = demo
    widget.live.value = False
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    widget.te.value = 60.0
    assert widget.status.value == "Live preview is off: press Run all slices for spin echo, TE 60 / TR 3000 ms"
    assert _idle(widget)


def test_no_row_is_added_where_only_the_widgets_outputs_are_free(demo, qtbot):
    viewer, widget = demo
    widget.model.value = "physics"
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    rows = [widget.add_input_row() for _ in range(3)]  # the three other heads
    assert all(rows) and widget.add_input_row() is None and len(widget.inputs) == 3
    assert widget.status.value == "No other image to add: open another scan of this subject first"
    assert not any("mr_reparam_role" in (row.layer.value.metadata or {}) for row in widget.inputs)


def test_register_ticked_for_layers_of_no_file_is_refused_before_any_work(demo, qtbot):
    viewer, widget = demo
    widget.model.value = "physics"
    widget.add_input_row()
    widget.register.value = True
    widget.run.clicked.emit()
    assert _idle(widget) and not _outputs(viewer, "prediction")
    assert widget.status.value == ("head TE50 TR4500 was read from no NIfTI or DICOM file: registration needs each "
                                   "scan's placement; untick 'Register onto the first image'")


def test_closing_a_rows_layer_mid_fit_keeps_the_line_that_says_so(demo, qtbot, monkeypatch):
    import threading

    from napari_mr_reparam import joint_fit

    closed = threading.Event()
    started, slow = _slow_until(closed, joint_fit.joint_maps)
    monkeypatch.setattr(joint_fit, "joint_maps", slow)
    viewer, widget = demo
    widget.model.value = "physics"
    widget.live.value = False
    second = widget.add_input_row().layer.value
    widget.add_input_row()
    widget.run.clicked.emit()
    _until(qtbot, started.is_set)
    viewer.layers.remove(second)
    closed.set()
    _until(qtbot, lambda: _idle(widget))
    assert widget.status.value == f"{second.name} was closed: its row among the inputs is removed"


def test_outputs_lie_on_a_rotated_input(make_napari_viewer):
    from napari_mr_reparam._widget_outputs import placement

    viewer = make_napari_viewer()
    source = viewer.add_image(np.random.rand(3, 8, 8).astype(np.float32), scale=(2, 1, 1), translate=(5, 1, 2),
                              rotate=25)
    out = viewer.add_image(np.zeros((3, 8, 8), np.float32), **placement(source))
    np.testing.assert_allclose(out._data_to_world.affine_matrix, source._data_to_world.affine_matrix)


def test_renaming_a_layer_keeps_what_each_control_chose(demo):
    viewer, widget = demo
    widget.model.value = "physics"
    row = widget.add_input_row()
    further, image = row.layer.value, widget.image.value
    truth = next(l for l in viewer.layers if l is not further and l is not image)
    widget.ground_truth.value = truth
    for layer in (truth, further, image):
        layer.name = layer.name + " renamed"
    assert (widget.ground_truth.value, row.layer.value, widget.image.value) == (truth, further, image)


def test_a_renamed_prediction_is_kept_and_the_next_setting_gets_a_new_layer(demo, qtbot):
    viewer, widget = demo
    widget.model.value = "physics"
    widget.ground_truth.value = viewer.layers["head TE20 TR600"]
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction") and _outputs(viewer, "difference"))
    (pred,), (diff,) = _outputs(viewer, "prediction"), _outputs(viewer, "difference")
    kept, kept_diff = np.array(pred.data), np.array(diff.data)
    pred.name, diff.name = "KEEP this T2", "its difference"  # the difference goes with it, as the user named it
    widget.preset.value = "T1w"
    _until(qtbot, lambda: _idle(widget) and len(_outputs(viewer, "prediction")) == 2
           and len(_outputs(viewer, "difference")) == 2)
    assert pred.name == "KEEP this T2" and np.array_equal(pred.data, kept)
    assert diff.name == "its difference" and np.array_equal(diff.data, kept_diff)
    new = next(layer for layer in _outputs(viewer, "prediction") if layer is not pred)
    assert new.name.startswith("prediction physics") and not np.array_equal(new.data, kept)
    new_diff = next(layer for layer in _outputs(viewer, "difference") if layer is not diff)
    assert new_diff.name.startswith("|difference| physics")


def test_changing_the_model_predicts_with_it_live_or_says_how(demo, qtbot):
    viewer, widget = demo
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    assert widget.status.value.startswith(("Rendered", "Done"))
    widget.model.value = "d2p"  # live preview: the volume follows, not a line asking for Run
    assert "press Run all slices" not in widget.status.value
    widget.preset.value = "FLAIR"  # refused while the volume is due: the run that follows leaves it said
    refusal = "FLAIR is inversion recovery: only the physics model renders it (the other models predict spin-echo images)"
    assert widget.status.value == refusal
    _until(qtbot, lambda: _idle(widget) and "d2p" in _outputs(viewer, "prediction")[0].name)
    assert widget.status.value == refusal
    widget.live.value = False
    widget.model.value = "p2p"
    assert widget.status.value == "The model changed: press Run all slices (or move a slider) to predict with it"


def test_a_result_whose_inputs_data_was_replaced_while_it_ran_is_dropped(demo, qtbot):
    viewer, widget = demo
    widget.model.value = "physics"
    row = widget.add_input_row()
    further = row.layer.value
    widget.run.clicked.emit()
    further.data = np.asarray(further.data)[:, ::-1] * 0.5  # as a script may, while the joint fit runs
    _until(qtbot, lambda: _idle(widget))
    assert widget.status.value == f"{further.name}'s data changed while it ran; its prediction is dropped: run again"
    assert _outputs(viewer, "prediction") == []
    widget.run.clicked.emit()  # run again: the new data's maps
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))


def test_lazy_layers_are_not_read_whole_on_the_gui_thread(demo, qtbot):
    """A dask input and ground truth: the job and the comparison read them in their own
    threads; the GUI thread reads no more than the slices napari shows (before, the metrics
    line read the whole input at each comparison and each step of the slice slider)."""
    import threading

    import dask
    import dask.array as da

    viewer, widget = demo
    gui, gui_reads = threading.current_thread(), []

    def counted(block):
        if threading.current_thread() is gui:
            gui_reads.append(1)
        return block

    def lazy(layer, name):
        data = da.from_array(np.asarray(layer.data), chunks=(1,) + layer.data.shape[1:])
        return viewer.add_image(data.map_blocks(counted, dtype=data.dtype), name=name,
                                contrast_limits=layer.contrast_limits, metadata=dict(layer.metadata))

    with dask.config.set(scheduler="synchronous"):  # each chunk read in the thread that asks for it
        image = lazy(viewer.layers["head TE50 TR4500"], "lazy input")
        truth = lazy(viewer.layers["head TE120 TR6000"], "lazy truth")
        widget.reset_choices()
        widget.image.value, widget.ground_truth.value = image, truth
        widget.te.value, widget.tr.value = 120.0, 6000.0
        gui_reads.clear()  # napari has shown a slice of each
        widget.run.clicked.emit()
        _until(qtbot, lambda: _idle(widget) and "PSNR" in widget.metrics.value)
        for k in range(3):  # the metrics line follows the slice on screen
            viewer.dims.set_current_step(0, k)
    assert "slice 2" in widget.metrics.value
    assert len(gui_reads) < image.data.shape[0]  # six slices: never the whole volume


def test_a_job_that_ends_after_the_model_changed_says_which_model_it_ran(demo, qtbot, monkeypatch):
    import threading

    from napari_mr_reparam import _widget

    viewer, widget = demo  # d2p
    started, release = threading.Event(), threading.Event()
    real = _widget.compute

    def held(*args, **kwargs):
        started.set()
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(_widget, "compute", held)
    widget.run.clicked.emit()
    _until(qtbot, started.is_set)
    widget.model.value = "physics"
    release.set()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    assert widget.status.value.startswith("Done (volume)")
    assert widget.status.value.endswith("with d2p; the model is now physics: press Run all slices (or move a "
                                        "slider) to predict with it")


def test_predictions_of_two_inputs_at_one_target_are_named_by_their_input(demo, qtbot):
    viewer, widget = demo
    widget.model.value = "p2p"
    widget.te.value, widget.tr.value = 120.0, 6000.0
    for name in ("head TE50 TR4500", "head TE20 TR6000"):
        widget.image.value = viewer.layers[name]
        widget.run.clicked.emit()
        _until(qtbot, lambda: _idle(widget) and widget.status.value.startswith("Done"))
    names = sorted(layer.name for layer in _outputs(viewer, "prediction"))
    assert names == ["prediction p2p TE120 TR6000", "prediction p2p TE120 TR6000 of head TE20 TR6000"]


def test_a_duplicated_prediction_stays_as_it_is_and_the_next_run_updates_the_original(demo, qtbot):
    from napari.layers._layer_actions import _duplicate_layer

    viewer, widget = demo
    widget.te.value, widget.tr.value = 100.0, 4000.0
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    (pred,) = _outputs(viewer, "prediction")
    viewer.layers.selection = {pred}
    _duplicate_layer(viewer.layers)  # Layers > Duplicate Layer, as the README says to keep one
    copy = viewer.layers[-1]
    viewer.layers.move(viewer.layers.index(copy), 0)  # below the original: found first in the list
    kept = np.array(copy.data)
    widget.te.value = 30.0
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and "TE30" in pred.name)
    assert copy.name == "prediction d2p TE100 TR4000 copy" and np.array_equal(copy.data, kept)


def test_a_volume_larger_than_the_memory_available_is_told_as_it_starts(demo, qtbot, monkeypatch):
    from napari_mr_reparam import memory

    viewer, widget = demo
    said, report = [], ReparamWidget._report
    monkeypatch.setattr(ReparamWidget, "_report", lambda self, line: (said.append(line), report(self, line)))
    monkeypatch.setattr(memory, "available_bytes", lambda: 1e8)
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    need = memory.size_text(memory.need_bytes(np.prod(viewer.layers[0].data.shape), joint=False))
    assert any(line.startswith("Predicting whole volume") and f"This needs about {need} of memory and 100 MB is "
               "available: the system may stop it" in line for line in said)
    said.clear()
    monkeypatch.setattr(memory, "available_bytes", lambda: 64e9)
    widget.te.value = 30.0
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and "TE30" in _outputs(viewer, "prediction")[0].name)
    assert said and not any("of memory and" in line for line in said)


def test_a_model_that_cannot_render_the_contrast_shown_runs_nothing_when_chosen(demo, qtbot):
    viewer, widget = demo
    flair = _flair_rendered(viewer, widget, qtbot)
    name, data = flair.name, np.array(flair.data)
    widget.model.value = "d2p"  # live preview: before, a spin echo at FLAIR's TE/TR replaced it
    qtbot.wait(1500)  # past the volume's delay
    _until(qtbot, lambda: _idle(widget))
    assert widget.preset.value == "Custom" and "only the physics model renders it" in widget.status.value
    assert flair.name == name and np.array_equal(flair.data, data)
    widget.preset.value = "T2w"  # a contrast it renders: it runs
    _until(qtbot, lambda: _idle(widget) and "d2p" in _outputs(viewer, "prediction")[0].name)


def test_a_widget_just_opened_says_what_to_do(make_napari_viewer, tiny_weights):
    from napari_mr_reparam._widget import FIRST_HINT

    viewer = make_napari_viewer()
    viewer.add_image(_ramp((4, 32, 32)), name="scan", metadata={"te_ms": 50.0, "tr_ms": 4500.0})
    _, widget = viewer.window.add_plugin_dock_widget("napari-mr-reparam", "MR Re-parameterization")
    assert widget.status.value == FIRST_HINT and "Run all slices" in FIRST_HINT


def test_an_input_preset_chosen_after_a_guess_is_given_and_reads_no_hidden_value(demo, qtbot, monkeypatch):
    viewer, widget = demo
    widget.model.value = "physics"
    widget.image.value = _plain_layer_that_looks_like(demo, monkeypatch, "T2w", 0.7, "template")
    guessed = widget.input_preset.value
    assert guessed == "T2w" and widget.current_request(whole=True).input_guessed == guessed
    widget.input_preset.value = "MPRAGE"  # TI 900 ms and flip 9 filled ...
    widget.input_preset.value = "T1w"  # ... then a spin echo at TR 500: the hidden TI is not read
    request = widget.current_request(whole=True)
    assert (request.input_sequence, request.input_ti, request.input_flip, request.input_guessed) == (
        "spin_echo", None, None, None)
    assert widget._refusal_of(request) == ""
    widget.input_preset.value = guessed  # chosen by hand, though it is the guess: given
    assert widget.current_request(whole=True).input_guessed is None


def test_an_input_closed_with_other_images_open_says_which_is_the_input_now(demo):
    viewer, widget = demo
    widget.model.value = "physics"
    mine = viewer.add_image(viewer.layers[0].data, name="mine", metadata={"te_ms": 15.0, "tr_ms": 500.0})
    widget.reset_choices()
    widget.image.value = mine
    assert widget.status.value.startswith("mine: read as spin echo, TE 15 / TR 500 ms (from its metadata)")
    viewer.layers.remove(mine)
    now = widget.image.value
    assert now is not None and now is not mine and now.name.startswith("head")
    assert widget.status.value.startswith(f"mine was closed: the Input is now {now.name}")


def test_an_input_chosen_off_screen_is_brought_into_view(demo):
    viewer, widget = demo
    far = viewer.add_image(np.ones((5, 16, 16), np.float32), name="far", translate=(300.0, 400.0, 400.0),
                           scale=(4.0, 1.0, 1.0), metadata={"te_ms": 15.0, "tr_ms": 500.0})
    viewer.dims.set_point(0, 0.0)
    widget.reset_choices()
    widget.image.value = far  # a scan at its scanner position, far from the head on screen
    assert 300.0 <= viewer.dims.point[0] <= 316.0
    assert all(400.0 <= c <= 415.0 for c in viewer.scene.camera.center[-2:])
    head = viewer.layers[0]
    widget.image.value = head  # off screen now: the view goes back to it
    lo, hi = np.asarray(head.extent.world)
    assert lo[0] <= viewer.dims.point[0] <= hi[0]
    near = viewer.add_image(np.ones(head.data.shape, np.float32), name="near", scale=head.scale,
                            translate=head.translate, metadata={"te_ms": 15.0, "tr_ms": 500.0})
    viewer.dims.set_point(0, lo[0] + head.scale[0])  # a slice of the person's choosing, on both
    shown = (viewer.dims.point, tuple(viewer.scene.camera.center))
    widget.reset_choices()
    widget.image.value = near  # on screen already: the view is left as it is
    assert (viewer.dims.point, tuple(viewer.scene.camera.center)) == shown


def test_closing_the_first_input_with_further_rows_says_which_is_the_input_now(demo):
    viewer, widget = demo
    widget.model.value = "physics"
    rows = [widget.add_input_row(), widget.add_input_row()]
    first, second = widget.image.value, rows[0].layer.value
    viewer.layers.remove(first)
    assert widget.image.value is second and len(widget.inputs) == 1  # the first row moved up
    assert widget.status.value.startswith(f"{first.name} was closed: the Input is now {second.name}. ")
    assert "2 inputs: press Run all slices" in widget.status.value


def test_run_pressed_right_after_cancel_fits_anew(demo, qtbot, monkeypatch):
    import threading

    from napari_mr_reparam.inference import Reparameterizer

    release = threading.Event()
    started, slow = _slow_until(release, Reparameterizer.compute_maps)
    calls = []
    monkeypatch.setattr(Reparameterizer, "compute_maps", lambda *a, **k: calls.append(1) or slow(*a, **k))
    viewer, widget = demo
    widget.model.value = "physics"
    widget.run.clicked.emit()
    _until(qtbot, started.is_set)
    widget.cancel.clicked.emit()
    widget.run.clicked.emit()  # before the cancelled fit has stopped: not taken for its maps
    release.set()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    assert len(calls) == 2 and not widget.status.value.startswith("Cancelled")


def test_a_refusal_of_the_model_before_goes_when_the_model_changes_back(demo, qtbot):
    viewer, widget = demo
    widget.model.value = "physics"
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    widget.model.value = "d2p"
    widget.input_preset.value = "MPRAGE"  # Default-to-Param reads no such input: refused, with the reason
    said = widget.status.value
    assert said.startswith("MPRAGE: only the physics model reads such an input") and said == widget._refusal
    widget.model.value = "physics"  # the refusal was the other model's; live preview: the volume follows
    assert widget.status.value != said
    _until(qtbot, lambda: _idle(widget) and not widget._volume_timer.isActive())
    assert widget.status.value != said


def test_a_result_of_a_model_left_while_it_ran_does_not_replace_the_chosen_models(demo, qtbot, monkeypatch):
    import threading

    from napari_mr_reparam.inference import Reparameterizer

    viewer, widget = demo
    widget.model.value = "physics"
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    release = threading.Event()
    started, slow = _slow_until(release, Reparameterizer.predict)
    monkeypatch.setattr(Reparameterizer, "predict", slow)
    widget.model.value = "d2p"
    widget.run.clicked.emit()
    _until(qtbot, started.is_set)
    widget.model.value = "physics"  # back, while d2p runs: its cached maps render at once
    _until(qtbot, lambda: not widget._volume_timer.isActive())
    release.set()
    _until(qtbot, lambda: _idle(widget))
    qtbot.wait(200)
    (pred,) = _outputs(viewer, "prediction")
    assert pred.metadata["model"] == "physics"



def test_a_paper_models_prediction_saves_with_the_sha256_of_its_weights(demo, qtbot, tiny_weights, tmp_path):
    import json

    from napari_mr_reparam.weights import sha256_of

    viewer, widget = demo  # Default-to-Param
    widget.run.clicked.emit()
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))
    viewer.layers.selection = set(_outputs(viewer, "prediction"))
    viewer.layers.save(str(tmp_path / "out" / "pred.nii.gz"), selected=True, plugin="napari-mr-reparam")
    made = json.loads((tmp_path / "out" / "pred.json").read_text())["GeneratedBy"][0]
    assert (made["Model"], made["WeightsSHA256"]) == ("d2p", sha256_of(tiny_weights / "d2p.safetensors"))
