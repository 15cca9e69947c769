"""The plugin widget driven as a person would: pick layers, drag TE/TR, run, cancel."""

import numpy as np
import pytest

from napari_mr_reparam import DEFAULT_CONSISTENCY

from napari_mr_reparam._sample_data import make_sample_all
from napari_mr_reparam._widget import ReparamWidget
from napari_mr_reparam.widget_logic import Request, RequestQueue, compare_volumes, layer_names


@pytest.fixture
def demo(make_napari_viewer, tiny_weights):
    viewer = make_napari_viewer()
    for data, kwargs, _ in make_sample_all():
        viewer.add_image(data[:6], **kwargs)  # six slices keep the tests quick
    widget = ReparamWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.reset_choices()
    widget.image.value = viewer.layers[0]
    return viewer, widget


def _idle(widget):
    return widget._worker is None and widget._queue._pending is None


def _outputs(viewer, role):
    return [l for l in viewer.layers if (l.metadata or {}).get("mr_reparam_role") == role]


def _until(qtbot, condition, timeout=60000):
    qtbot.waitUntil(lambda: bool(condition()), timeout=timeout)


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


def test_param_to_param_reads_input_times_from_metadata(demo):
    viewer, widget = demo
    widget.model.value = "p2p"
    assert not widget.input_te.native.isHidden() and not widget.input_tr.native.isHidden()
    widget.image.value = viewer.layers["head TE20 TR600"]
    assert (widget.input_te.value, widget.input_tr.value) == (20.0, 600.0)
    widget.model.value = "d2p"
    assert widget.input_te.native.isHidden()


def test_out_of_range_warning_and_bad_times(demo):
    _, widget = demo
    widget.live.value = False
    widget.te.value = 5.0
    assert "outside the trained range" in widget.range_warning.value
    widget.te.value = 100.0
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
    widget.run.clicked.emit()  # still works afterwards
    _until(qtbot, lambda: _idle(widget) and _outputs(viewer, "prediction"))


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
    for te in (30.0, 60.0, 90.0):  # every move re-renders the whole volume, no worker needed
        widget.te.value = te
        widget._preview_timer.timeout.emit()
        assert widget._worker is None
        pred = _outputs(viewer, "prediction")[0]
        assert pred.metadata["te_ms"] == te and all(pred.data[k].any() for k in range(6))
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


def test_request_queue_keeps_only_the_newest():
    q = RequestQueue()
    for te in range(1000):
        q.put(Request(layer=None, model="d2p", device="cpu", te=float(te), tr=5000.0))
    assert q.take().te == 999.0 and q.take() is None and q.dropped == 999


def test_compare_volumes_and_names():
    truth = np.random.default_rng(0).uniform(0, 10, (3, 16, 16))
    diff, metrics = compare_volumes(truth * 2, truth)  # same up to scale
    assert diff.max() < 1e-9 and metrics["volume"]["psnr"] == 100.0
    assert layer_names("d2p", 80, 3000)["prediction"] == "prediction d2p TE80 TR3000"


def test_joined_map_chunks_keep_each_slices_peak_count():
    from napari_mr_reparam.inference import QuantitativeMaps
    from napari_mr_reparam.widget_logic import join_maps

    def chunk(n, count):
        zeros = np.zeros((n, 4, 4), np.float32)
        return QuantitativeMaps(zeros, zeros, zeros, np.ones(n), (4, 4), zeros.astype(bool), count)

    joined = join_maps([chunk(2, np.array([4, 8])), chunk(1, 1)])
    assert joined.peak_count.tolist() == [4, 8, 1] and joined.pd.shape == (3, 4, 4)


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
