"""The napari widget: pick a volume and a model, drag TE/TR, see the prediction.

A magicgui :class:`~magicgui.widgets.Container` whose controls scripts and tests reach
by name: ``image``, ``model``, ``input_te``, ``input_tr``, ``te``, ``tr``,
``ground_truth``, ``device``, ``live``, ``run``, ``cancel``, ``progress``, ``status``
and ``metrics``; for the physics model also ``sequence``, ``ti``, ``flip``,
``consistency``, ``flip_average`` and ``add_maps``. Model work runs in napari ``thread_worker`` threads;
torch is imported only when the first prediction starts, so the widget opens quickly.

Dragging ``te``/``tr`` predicts the slice on screen (debounced; while a prediction runs
only the newest request is kept, so stale ones are dropped) and, once the sliders rest,
the whole volume. ``run`` predicts the whole volume at once; ``cancel`` stops it.
The physics model computes PD/T1/T2 maps once per input (cached per layer, model, input
TE/TR, data-consistency weight and flip averaging) and then re-renders the whole volume on every change,
in milliseconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import (
    CheckBox, ComboBox, Container, FloatSlider, FloatSpinBox, Label, ProgressBar, PushButton,
    create_widget,
)
from qtpy.QtCore import QTimer

from . import DEFAULT_CONSISTENCY, DEFAULT_TE_MS, DEFAULT_TR_MS
from .acquisition import Acquisition
from .widget_logic import (
    EngineCache, MapsCache, Request, RequestQueue, compare_volumes, join_maps, layer_names,
)

if TYPE_CHECKING:
    import napari

MODEL_LABELS = {"d2p": "Default-to-Param", "p2p": "Param-to-Param", "physics": "Physics (quantitative maps)"}
SEQUENCE_CHOICES = [("Spin echo", "spin_echo"), ("Inversion recovery", "inversion_recovery"),
                    ("Gradient echo", "gradient_echo")]


def model_choices() -> list[tuple[str, str]]:
    """The bundled models, the paper's first; extra weight sets appear under their name."""
    from .inference import known_models

    names = known_models() or ["d2p", "p2p"]
    order = [n for n in MODEL_LABELS if n in names] + [n for n in names if n not in MODEL_LABELS]
    return [(MODEL_LABELS.get(n, n), n) for n in order]
PREVIEW_DELAY_MS = 40     # debounce for the on-screen slice while dragging
VOLUME_DELAY_MS = 600     # sliders at rest this long -> whole volume


class ReparamWidget(Container):
    """Re-parameterize the selected image layer at the TE/TR set by the sliders."""

    def __init__(self, viewer: "napari.viewer.Viewer"):
        super().__init__(labels=True)
        self._viewer = viewer
        self._engines = EngineCache()
        self._maps = MapsCache()
        self._queue = RequestQueue()
        self._worker = None
        self._worker_request = None
        self._per_slice = None
        self._make_controls()
        self._preview_timer = self._timer(PREVIEW_DELAY_MS, self._start_preview)
        self._volume_timer = self._timer(VOLUME_DELAY_MS, self._start_volume)
        self._connect()
        self._on_model_changed()
        self._on_image_changed()

    # ------------------------------------------------------------------ controls
    def _make_controls(self) -> None:
        import napari

        self.image = create_widget(annotation=napari.layers.Image, label="Input")
        self.model = ComboBox(choices=model_choices(), value="d2p", label="Model")
        self.input_te = FloatSpinBox(value=DEFAULT_TE_MS, min=1, max=5000, step=1, label="Input TE (ms)")
        self.input_tr = FloatSpinBox(value=DEFAULT_TR_MS, min=10, max=20000, step=10, label="Input TR (ms)")
        self.te = FloatSlider(value=100.0, min=5.0, max=1500.0, step=1.0, label="TE (ms)")
        self.tr = FloatSlider(value=3000.0, min=200.0, max=15000.0, step=10.0, label="TR (ms)")
        self.sequence = ComboBox(choices=SEQUENCE_CHOICES, value="spin_echo", label="Sequence")
        self.ti = FloatSlider(value=2500.0, min=10.0, max=5000.0, step=10.0, label="TI (ms)")
        self.flip = FloatSlider(value=30.0, min=1.0, max=90.0, step=1.0, label="Flip angle (°)")
        self.consistency = FloatSlider(value=DEFAULT_CONSISTENCY, min=0.0, max=1.0, step=0.05,
                                       label="Data consistency",
                                       tooltip="How far the maps are moved to reproduce the input "
                                               "image at its own TE/TR (0: the network's maps)")
        self.flip_average = CheckBox(value=False, text="Average maps with the mirror image",
                                     tooltip="Infer the maps from each slice and its left-right "
                                             "mirror and average them: twice the map time, "
                                             "reads unfamiliar anatomy a little better")
        self.add_maps = PushButton(text="Add PD, T1, T2 maps as layers")
        self.range_warning = Label(value="", label="")
        self.ground_truth = create_widget(annotation=napari.layers.Image, label="Ground truth",
                                          options={"nullable": True})
        self.device = ComboBox(choices=["auto", "cpu", "cuda"], value="auto", label="Device")
        self.live = CheckBox(value=True, text="Live preview while dragging")
        self.run = PushButton(text="Run all slices")
        self.cancel = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(value=0, min=0, max=1, label="Progress")
        self.status = Label(value="", label="Status")
        self.metrics = Label(value="", label="Metrics")
        self.extend([self.image, self.model, self.input_te, self.input_tr, self.sequence, self.te,
                     self.tr, self.ti, self.flip, self.consistency, self.flip_average, self.range_warning, self.ground_truth, self.device, self.live, self.run,
                     self.cancel, self.add_maps, self.progress, self.status, self.metrics])

    def _timer(self, delay_ms: int, slot) -> QTimer:
        timer = QTimer()
        timer.setSingleShot(True)
        timer.setInterval(delay_ms)
        timer.timeout.connect(slot)
        return timer

    def _connect(self) -> None:
        self.model.changed.connect(self._on_model_changed)
        self.image.changed.connect(self._on_image_changed)
        for control in (self.te, self.tr, self.ti, self.flip, self.sequence):
            control.changed.connect(self._on_slider_changed)
        self.sequence.changed.connect(self._on_model_changed)
        self.add_maps.clicked.connect(self.add_map_layers)
        for control in (self.input_te, self.input_tr, self.model, self.device, self.consistency,
                        self.flip_average):
            control.changed.connect(self._on_settings_changed)
        self.ground_truth.changed.connect(self._update_comparison)
        self.run.clicked.connect(self._start_volume)
        self.cancel.clicked.connect(self.cancel_work)
        self._viewer.dims.events.current_step.connect(self._update_metrics_label)
        self._viewer.layers.events.removed.connect(self._on_layer_removed)
        self.native.destroyed.connect(_teardown(self._viewer, self._update_metrics_label,
                                                self._on_layer_removed, self.cancel_work))

    def _on_layer_removed(self, event) -> None:
        """Closing the input layer mid-run cancels the work for it."""
        current = self._worker_request
        if current is not None and event.value is current.layer:
            self.cancel_work()
        self._maps.forget(event.value)

    # ------------------------------------------------------------------ events
    def _on_model_changed(self, *_):
        physics = self.model.value == "physics"
        self.input_te.visible = self.input_tr.visible = self.model.value in ("p2p", "physics")
        self.sequence.visible = self.add_maps.visible = self.consistency.visible = physics
        self.flip_average.visible = physics
        self.ti.visible = physics and self.sequence.value == "inversion_recovery"
        self.flip.visible = physics and self.sequence.value == "gradient_echo"

    def _on_image_changed(self, *_):
        layer = self.image.value
        meta = getattr(layer, "metadata", {}) or {}
        if meta.get("te_ms") and meta.get("tr_ms"):
            self.input_te.value, self.input_tr.value = float(meta["te_ms"]), float(meta["tr_ms"])

    def _on_slider_changed(self, *_):
        from .inference import out_of_range_warnings

        warnings = out_of_range_warnings(self.te.value, self.tr.value)
        self.range_warning.value = "⚠ " + "; ".join(warnings) if warnings else ""
        if self.te.value >= self.tr.value:
            self.status.value = "TE must be shorter than TR"
            return
        if self.live.value and self.image.value is not None:
            self._preview_timer.start()
            self._volume_timer.start()

    def _on_settings_changed(self, *_):
        if self.live.value and self.image.value is not None and self._has_prediction():
            self._volume_timer.start()

    # ------------------------------------------------------------------ requests
    def current_request(self, whole: bool) -> Request | None:
        layer = self.image.value
        if layer is None:
            self.status.value = "Choose an input image layer"
            return None
        data = np.asarray(layer.data)
        index = None
        if not whole and data.ndim == 3:
            point = layer.world_to_data(self._viewer.dims.point)
            index = int(np.clip(round(point[0]), 0, data.shape[0] - 1))
        given_input = self.model.value in ("p2p", "physics")
        physics = self.model.value == "physics"
        sequence = self.sequence.value if physics else "spin_echo"
        return Request(layer=layer, model=self.model.value, device=self.device.value,
                       te=float(self.te.value), tr=float(self.tr.value),
                       input_te=float(self.input_te.value) if given_input else None,
                       input_tr=float(self.input_tr.value) if given_input else None,
                       slice_index=None if physics else index, sequence=sequence,
                       ti=float(self.ti.value) if sequence == "inversion_recovery" else None,
                       flip_deg=float(self.flip.value) if sequence == "gradient_echo" else None,
                       consistency=float(self.consistency.value) if physics else None,
                       flip_average=bool(self.flip_average.value) and physics)

    def _start_preview(self):
        self._submit(self.current_request(whole=False))

    def _start_volume(self, *_):
        self._preview_timer.stop()
        self._volume_timer.stop()
        self._submit(self.current_request(whole=True))

    def _submit(self, request: Request | None) -> None:
        if request is None:
            return
        if request.te >= request.tr:
            self.status.value = "TE must be shorter than TR"
            return
        maps = self._maps.get(request)
        if maps is not None:  # physics: the maps exist, rendering is instant
            self._show_render(request, maps)
            return
        if self._worker is not None:
            self._queue.put(request)  # the newest request replaces any waiting one
            return
        self._launch(request)

    def _launch(self, request: Request) -> None:
        from napari.qt.threading import thread_worker

        from .inference import InferenceOptions

        engines = self._engines
        data = np.asarray(request.layer.data)

        @thread_worker(ignore_errors=True)
        def work():
            engine = engines.get(request.model, request.device)
            yield ("engine", engine)
            if engine.renders_from_maps:
                options = InferenceOptions(request.consistency, request.flip_average)
                given = Acquisition(request.input_te, request.input_tr) if request.input_te else None
                done = [0]

                def count(n):
                    done[0] += n

                stack = data if data.ndim == 3 else data[None]
                parts = []
                for start in range(0, stack.shape[0], engine.batch_size):
                    parts.append(engine.compute_maps(stack[start:start + engine.batch_size], given,
                                                     options=options, progress=count))
                    yield ("progress", (done[0], stack.shape[0]))
                return ("maps", (engine, join_maps(parts)))
            volume = data if request.slice_index is None else data[request.slice_index][None]
            total = volume.shape[0] if volume.ndim == 3 else 1
            done = []

            def tick(n):
                done.append(n)

            out = []
            chunk = engine.batch_size
            stack = volume if volume.ndim == 3 else volume[None]
            for start in range(0, stack.shape[0], chunk):
                part = engine.predict_volume(stack[start:start + chunk], request.te, request.tr,
                                             request.input_te, request.input_tr, progress=tick)
                out.append(part)
                yield ("progress", (sum(done), total))
            return ("prediction", np.concatenate(out).reshape(volume.shape))

        worker = work()
        self._worker_request = request
        worker.yielded.connect(self._on_yield)
        worker.returned.connect(lambda pred: self._on_result(request, pred))
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self.cancel.enabled = True
        what = "whole volume" if request.slice_index is None else f"slice {request.slice_index}"
        self.status.value = f"Predicting {what} at TE {request.te:g} / TR {request.tr:g} ms..."
        worker.start()

    def _on_yield(self, item):
        kind, value = item
        if kind == "engine":
            self.device_label = value.device.type
            self.device.tooltip = f"in use: {value.device.type}"
        elif kind == "progress":
            done, total = value
            self.progress.max = max(total, 1)
            self.progress.value = done

    def _on_result(self, request: Request, result) -> None:
        if request.layer not in self._viewer.layers:
            return  # the input was closed meanwhile
        kind, value = result
        if kind == "maps":
            engine, maps = value
            self._maps.put(request, engine, maps)
            self._show_render(request, (engine, maps))
            return
        self._write_prediction(request, value)
        self._update_comparison()
        where = "volume" if request.slice_index is None else f"slice {request.slice_index}"
        self.status.value = f"Done ({where}) on {self._engines.last_device}"

    def _on_error(self, exc: Exception) -> None:
        from napari.utils.notifications import show_error

        self.status.value = f"Error: {exc}"
        show_error(f"MR re-parameterization failed: {exc}")

    def _on_finished(self) -> None:
        self._worker = None
        self._worker_request = None
        self.cancel.enabled = False
        pending = self._queue.take()
        if pending is not None:
            self._launch(pending)

    def _show_render(self, request: Request, engine_and_maps) -> None:
        """Physics model: render the whole volume from the cached maps (milliseconds)."""
        engine, maps = engine_and_maps
        volume = engine.render(maps, Acquisition(request.te, request.tr, request.sequence, request.ti,
                                                 request.flip_deg))
        shape = np.shape(request.layer.data)
        self._write_prediction(request, volume.reshape(shape))
        self._update_comparison()
        self.status.value = f"Rendered from the maps ({self._engines.last_device})"

    def add_map_layers(self, *_) -> None:
        """Add the physics model's PD, T1 and T2 (ms) maps of the input as layers."""
        request = self.current_request(whole=True)
        if request is None or request.model != "physics":
            self.status.value = "Choose the physics model to get quantitative maps"
            return
        cached = self._maps.get(request)
        if cached is None:
            self.status.value = "Computing the maps first; press again when done"
            self._submit(request)
            return
        _, maps = cached
        layer = request.layer
        shape = np.shape(layer.data)
        names = {"pd": "PD map (relative)", "t1": "T1 map (ms)", "t2": "T2 map (ms)"}
        for key, data in maps.at_input_size().items():
            name = f"{layer.name} {names[key]}"
            data = data.reshape(shape)
            if name in self._viewer.layers:
                self._viewer.layers[name].data = data
            else:
                self._viewer.add_image(data, name=name, scale=layer.scale, translate=layer.translate,
                                       colormap="viridis" if key != "pd" else "gray", visible=False,
                                       metadata={"mr_reparam_role": f"map_{key}", "unit": "ms" if key != "pd" else ""})

    def cancel_work(self, *_) -> None:
        """Stop the running prediction and drop any waiting one."""
        self._preview_timer.stop()
        self._volume_timer.stop()
        self._queue.take()
        if self._worker is not None:
            self._worker.quit()
            self.status.value = "Cancelled"

    # ------------------------------------------------------------------ outputs
    def _output_layer(self, source, role: str, template: np.ndarray):
        for layer in self._viewer.layers:
            meta = layer.metadata or {}
            if meta.get("mr_reparam_role") == role and meta.get("mr_reparam_source") is source.data:
                return layer
        layer = self._viewer.add_image(
            np.zeros_like(template, dtype=np.float32), name=role, scale=source.scale,
            translate=source.translate, colormap="gray" if role == "prediction" else "magma",
            metadata={**{k: v for k, v in (source.metadata or {}).items() if k not in ("te_ms", "tr_ms")},
                      "mr_reparam_role": role, "mr_reparam_source": source.data},
        )
        return layer

    def _has_prediction(self) -> bool:
        layer = self.image.value
        return layer is not None and any(
            (l.metadata or {}).get("mr_reparam_source") is layer.data for l in self._viewer.layers)

    def _write_prediction(self, request: Request, pred: np.ndarray) -> None:
        source = request.layer
        data = np.asarray(source.data, np.float32)
        layer = self._output_layer(source, "prediction", data)
        if request.slice_index is None:
            layer.data = pred.astype(np.float32)
        else:
            layer.data[request.slice_index] = pred[0]
            layer.refresh()
        names = layer_names(request.model, request.te, request.tr, request.sequence, request.ti,
                            request.flip_deg)
        layer.name = names["prediction"]
        layer.metadata.update(te_ms=request.te, tr_ms=request.tr, model=request.model,
                              mr_reparam_names=names)
        if request.slice_index is None:
            layer.contrast_limits = (float(np.nanmin(pred)), float(np.nanmax(pred)) or 1.0)

    def _update_comparison(self, *_) -> None:
        source, truth = self.image.value, self.ground_truth.value
        if source is None:
            return
        pred_layer = next((l for l in self._viewer.layers
                           if (l.metadata or {}).get("mr_reparam_role") == "prediction"
                           and l.metadata.get("mr_reparam_source") is source.data), None)
        if pred_layer is None or truth is None:
            self.metrics.value = ""
            return
        pred, gt = np.asarray(pred_layer.data), np.asarray(truth.data)
        if pred.shape != gt.shape:
            self.metrics.value = f"ground truth shape {gt.shape} differs from the input {pred.shape}"
            return
        diff, per_slice = compare_volumes(pred, gt)
        diff_layer = self._output_layer(source, "difference", pred)
        diff_layer.data = diff
        diff_layer.name = pred_layer.metadata.get("mr_reparam_names", {}).get("difference", "difference")
        diff_layer.contrast_limits = (0.0, max(float(np.nanmax(diff)), 1.0))
        self._per_slice = per_slice
        self._update_metrics_label()

    def _update_metrics_label(self, *_) -> None:
        per_slice = self._per_slice
        layer = self.image.value
        if not per_slice or layer is None:
            return
        data = np.asarray(layer.data)
        k = 0
        if data.ndim == 3:
            k = int(np.clip(round(layer.world_to_data(self._viewer.dims.point)[0]), 0, data.shape[0] - 1))
        s = per_slice["slices"][k]
        v = per_slice["volume"]
        self.metrics.value = (f"slice {k}: PSNR {s['psnr']:.2f} dB, MAE {s['mae']:.2f}, SSIM {s['ssim']:.3f}\n"
                              f"volume: PSNR {v['psnr']:.2f} dB, MAE {v['mae']:.2f}, SSIM {v['ssim']:.3f}")


def _teardown(viewer, *callbacks):
    """A slot for the widget's ``destroyed`` signal: stop work, leave the viewer's events."""
    on_step, on_removed, cancel = callbacks

    def disconnect(*_):
        for emitter, callback in ((viewer.dims.events.current_step, on_step),
                                  (viewer.layers.events.removed, on_removed)):
            try:
                emitter.disconnect(callback)
            except (TypeError, ValueError, RuntimeError):
                pass
        try:
            cancel()
        except RuntimeError:
            pass  # Qt objects already gone

    return disconnect
