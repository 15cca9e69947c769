"""The widget's output layers and their comparison with a ground truth.

:class:`Outputs` finds or adds the layers the widget makes from an input (its
``prediction`` and, against a ground truth, its ``difference``: each tagged in its
metadata with its role and the input's data), writes a prediction into its layer, and
compares it with the ground truth: the slice just previewed at once, the whole volume in
a worker thread (:class:`~napari_mr_reparam._background.LatestJob`), with the metrics of
the slice on screen and of the volume in the widget's ``metrics`` line.
"""

from __future__ import annotations

import weakref
from dataclasses import replace

import numpy as np

from ._background import LatestJob
from ._widget_work import with_range
from .sidecars import target_preset_record
from .widget_logic import Request, compare_volumes, layer_names, truth_mismatch


#: The percentiles of a map's finite, positive values its layer's contrast spans: a T1 map
#: capped at 10000 ms shows its tissues apart, not in one dark colour below the cap.
MAP_PERCENTILES = (1.0, 99.0)
#: At most this many values are read for them (a regular sample of a larger map).
MAP_SAMPLE = 1 << 20
#: Values at least this share of a map's largest are pinned at its top where several are.
PINNED_SHARE = 0.99


def _widen_to(layer, slice_data) -> None:
    """``layer``'s contrast limits raised to a previewed slice's brightest value where it
    is brighter (renders come in the input's units, so a brighter contrast than the last
    whole volume's would show saturated until its volume follows); never lowered here."""
    top = float(np.nanmax(slice_data)) if np.isfinite(slice_data).any() else None
    low, high = layer.contrast_limits
    if top is not None and top > high:
        layer.contrast_limits = (low, top)


def map_contrast_limits(data) -> tuple[float, float]:
    """A map layer's contrast limits: :data:`MAP_PERCENTILES` of its finite, positive
    values, leaving out those pinned at the top (more than one voxel within
    :data:`PINNED_SHARE` of the largest value: at or next to the fit's cap, which the rims
    of a phantom's spheres reach); (0, 1) where there are none. The data are left as they
    are."""
    values = np.asarray(data).ravel()
    values = values[np.isfinite(values) & (values > 0)]
    values = values[:: max(1, values.size // MAP_SAMPLE)]
    if values.size:
        pinned = values >= PINNED_SHARE * values.max()
        if 1 < pinned.sum() < values.size:
            values = values[~pinned]
    if not values.size:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(values, MAP_PERCENTILES))
    return (low, high) if high > low else (low, low + max(abs(low), 1.0))


#: What made a prediction from several inputs, as its sidecar's ``Model`` names it (as
#: ``predict --joint`` does).
JOINT_MODEL = "joint maps"


def made_key(request: Request) -> str:
    """What tells the whole-volume results of two requests apart: the request without its
    slice (its layers named by their identity, as its text shows them)."""
    return repr(replace(request, slice_index=None))


def bring_into_view(viewer, layer) -> bool:
    """Where none of ``layer`` is on screen (scans open at their scanner position, a
    phantom's far from the sample head's), move the viewer's slice into its slices and the
    view's centre onto it; whether anything moved. A layer partly on screen, one of fewer
    dimensions than the viewer's, and a 3-D view are left as they are."""
    dims = viewer.dims
    if dims.ndisplay != 2 or getattr(layer, "ndim", 0) != dims.ndim:
        return False
    lo, hi = np.asarray(layer.extent.world, float)
    half = np.asarray(layer.scale, float) / 2  # a slice's reach about its centre
    moved = False
    for axis in dims.not_displayed:
        if not lo[axis] - half[axis] <= dims.point[axis] <= hi[axis] + half[axis]:
            dims.set_point(axis, (lo[axis] + hi[axis]) / 2)
            moved = True
    shown = list(dims.displayed)
    centre = np.asarray(viewer.scene.camera.center, float)[-len(shown):]
    if any(not lo[a] - half[a] <= c <= hi[a] + half[a] for a, c in zip(shown, centre)):
        viewer.scene.camera.center = tuple((lo[a] + hi[a]) / 2 for a in shown)
        moved = True
    return moved


def inputs_record(inputs) -> dict:
    """The sidecar field ``Inputs`` of a prediction from the joint maps of ``inputs``
    (:class:`~napari_mr_reparam.widget_logic.InputSpec` values): each one's acquisition as
    the fit used it and, where its layer was read from a file, the file's path from where
    the inputs' paths part, as ``predict --joint`` records them
    (:func:`~napari_mr_reparam.cli_joint.inputs_record`)."""
    from .file_types import path_names
    from .volume_writing import input_record

    sources = [(getattr(spec.layer, "metadata", None) or {}).get("source") for spec in inputs]
    short = path_names([source for source in sources if source])
    acquisitions = [spec.acquisition() for spec in inputs]
    return {"Inputs": [input_record(acq, times_source_of(spec.layer, acq, spec.guessed),
                                    file=short.get(source), preset=spec.guessed)["Input"]
                       for spec, acq, source in zip(inputs, acquisitions, sources)]}


def input_record_of(request: Request) -> dict | None:
    """The sidecar field ``Input`` of a prediction from one input: its acquisition as the
    model read it (none for Default-to-Param, which reads none), where its times came from
    (:func:`times_source_of`), the input preset it matches and the file its layer was read
    from, as ``predict`` records them."""
    from pathlib import Path

    from .volume_writing import input_record
    from .widget_logic import CUSTOM, matching_preset

    given = request.given()
    if given is None:
        return None
    source = (getattr(request.layer, "metadata", None) or {}).get("source")
    preset = matching_preset({"sequence": given.sequence, "te": given.te_ms, "tr": given.tr_ms, "ti": given.ti_ms,
                              "flip": given.flip_deg}, inputs=True)
    return input_record(given, times_source_of(request.layer, given, request.input_guessed),
                        file=Path(source).name if source else None,
                        preset=None if preset == CUSTOM else preset)


def times_source_of(layer, given, guessed: str | None = None) -> str:
    """Where the TE and TR a prediction read (``given``, an
    :class:`~napari_mr_reparam.acquisition.Acquisition`) came from: ``guessed`` where they
    are the input preset ``guessed`` from the image's look; what states the layer's own
    (``DICOM tags``, ``BIDS sidecar``, ``FreeSurfer header``, or ``layer metadata`` for a
    layer of no file) where they are its own; else ``given`` (as the widget's fields held
    them: typed, or a preset's)."""
    if guessed:
        return "guessed"
    meta = getattr(layer, "metadata", None) or {}
    own = (meta.get("te_ms"), meta.get("tr_ms"))
    if None in own or abs(own[0] - given.te_ms) > 1e-3 or abs(own[1] - given.tr_ms) > 1e-3:
        return "given"
    volume = meta.get("volume")
    return volume.times_stated_by if volume is not None else "layer metadata"


def placement(layer) -> dict:
    """Where ``layer`` lies in the world, as a new layer's keywords: an output made from it
    lies on it, rotated, sheared or given an affine in napari too."""
    return {**{key: np.array(getattr(layer, key)) for key in ("scale", "translate", "rotate", "shear")},
            "affine": np.array(layer.affine.affine_matrix)}


class Outputs:
    """The output layers of the input chosen in ``image`` and their comparison with the
    layer chosen in ``ground_truth`` (the widget's layer controls, read for their current
    layers), in ``viewer``; the comparison writes the labels ``metrics`` and
    ``truth_hint``, and a failed one goes to ``on_error``."""

    def __init__(self, viewer, image, ground_truth, metrics, truth_hint, on_error):
        self._viewer = viewer
        self._image, self._ground_truth = image, ground_truth
        self._metrics, self._truth_hint = metrics, truth_hint
        self._comparisons = LatestJob(self._show_comparison, on_error)
        self._per_slice = None
        # per prediction layer a preview wrote slices into since its last whole volume: the
        # layer, its name and metadata then, and each slice as it was (None: a new layer)
        self._before_preview: dict = {}
        # the layer this widget made per (source data, role), weakly (a layer closed is
        # freed): a copy of it (Layers > Duplicate Layer) carries the same metadata, and is
        # the user's to keep
        self._made: dict = {}

    @property
    def idle(self) -> bool:
        """Whether no comparison is running or waiting."""
        return self._comparisons.idle

    def close(self) -> None:
        """Stop for good (the widget's window closed): no comparison is run or shown."""
        self._comparisons.close()

    def drop_comparison(self) -> None:
        """Forget the comparison waiting or in flight: its result is not shown."""
        self._comparisons.drop()

    def find(self, source, role: str):
        """The ``role`` layer made from ``source`` (the one this widget made, not a copy of
        it, nor one the user renamed: that one is kept as it is, and the next prediction goes
        to a new layer), or None."""
        def ours(layer) -> bool:
            meta = layer.metadata or {}
            given = meta.get("mr_reparam_given_name")
            return (meta.get("mr_reparam_role") == role and meta.get("mr_reparam_source") is source.data
                    and (given is None or layer.name == given))

        ref = self._made.get((id(source.data), role))
        made = ref() if ref is not None else None
        if made is not None and made in self._viewer.layers and ours(made):
            return made
        return next((layer for layer in self._viewer.layers if ours(layer)), None)

    def layer(self, source, role: str, shape: tuple, above=None):
        """The ``role`` layer made from ``source`` (a new one of ``shape``, float32). In a
        grid view a new one goes right above ``above`` (default: the source), beside what it
        belongs to; in one view the prediction goes on top, where it is seen, and the
        difference right under it."""
        layer = self.find(source, role)
        if layer is not None:
            return layer
        layer = self._viewer.add_image(
            np.zeros(shape, np.float32), name=role, **placement(source),
            colormap="gray" if role == "prediction" else "magma",
            metadata={**{k: v for k, v in (source.metadata or {}).items() if k not in ("te_ms", "tr_ms")},
                      "mr_reparam_role": role, "mr_reparam_source": source.data},
        )
        self._place(layer, source, above)
        self._made[(id(source.data), role)] = weakref.ref(layer)
        return layer

    def _place(self, layer, source, above) -> None:
        layers = self._viewer.layers
        if self._viewer.canvas.grid.enabled:
            anchor = above if above is not None else source
            if anchor in layers:
                layers.move(layers.index(layer), layers.index(anchor) + 1)
            return
        prediction = self.find(source, "prediction")  # a new layer is added on top
        if prediction is not None and prediction is not layer:
            layers.move(layers.index(layer), layers.index(prediction))

    def has_prediction(self) -> bool:
        """Whether the input chosen has an output layer."""
        layer = self._image.value
        return layer is not None and any(
            (l.metadata or {}).get("mr_reparam_source") is layer.data for l in self._viewer.layers)

    def write_prediction(self, request: Request, pred: np.ndarray, limits: tuple | None = None,
                         weights_sha256: str | None = None) -> None:
        """Write ``pred`` (the volume, or the slice ``request.slice_index``) into the
        prediction layer; a volume's contrast limits are ``limits`` (computed off the GUI
        thread, :func:`~napari_mr_reparam._widget_work.with_range`), or its value range.
        ``weights_sha256``, of the weights that made it, goes into its metadata for the
        writer's sidecar (None: a joint fit the network took no part in)."""
        source = request.layer
        existing = self.find(source, "prediction")
        layer = self.layer(source, "prediction", np.shape(source.data))
        if request.slice_index is None:
            self._before_preview.pop(id(layer), None)
            layer.data = np.asarray(pred, np.float32)  # a fresh volume: no copy where it is float32
        else:
            before = self._before_preview.setdefault(
                id(layer), (layer, layer.name, dict(layer.metadata), {} if existing is not None else None,
                            tuple(layer.contrast_limits)))
            if before[3] is not None and request.slice_index not in before[3]:
                before[3][request.slice_index] = np.array(layer.data[request.slice_index])
            layer.data[request.slice_index] = pred.reshape(layer.data.shape[1:])
            _widen_to(layer, pred)
            layer.refresh()
        model = f"joint({len(request.inputs)})" if request.inputs else request.model
        names = layer_names(model, request.te, request.tr, request.sequence, request.ti,
                            request.flip_deg, request.ti2)
        if any(other.name == names["prediction"] and other is not layer for other in self._viewer.layers):
            names = {role: f"{name} of {source.name}" for role, name in names.items()}  # another input's at it
        layer.name = names["prediction"]
        layer.metadata.update(mr_reparam_given_name=layer.name,  # as napari took it: one renamed is kept
                              te_ms=request.te, tr_ms=request.tr,
                              model=JOINT_MODEL if request.inputs else request.model,
                              weights_sha256=weights_sha256,
                              sequence=request.sequence, ti_ms=request.ti, flip_deg=request.flip_deg,
                              ti2_ms=request.ti2, mr_reparam_names=names,
                              inputs=[spec.layer.name for spec in request.inputs],
                              inputs_record={**((inputs_record(request.inputs) if request.inputs
                                                 else input_record_of(request)) or {}),
                                             **target_preset_record(request.preset)})
        # what made the whole volume shown (a previewed slice leaves it of no one request)
        layer.metadata["mr_reparam_made"] = made_key(request) if request.slice_index is None else None
        if request.slice_index is None:
            layer.contrast_limits = limits or with_range(pred)[1]

    def shows(self, request: Request) -> bool:
        """Whether the prediction shown for ``request``'s input is the whole volume that
        ``request`` (its model, target and options) made."""
        layer = self.find(request.layer, "prediction")
        return layer is not None and (layer.metadata or {}).get("mr_reparam_made") == made_key(request)

    def undo_previews(self) -> bool:
        """The prediction layers whose whole volume never followed their previewed slices
        (the work was cancelled) back as they were: their slices, name, metadata and contrast
        limits (a preview widens them), or closed where a preview made them; so that no
        layer holds two settings under one name. Whether there were any."""
        undone = bool(self._before_preview)
        for layer, name, metadata, slices, limits in self._before_preview.values():
            if layer not in self._viewer.layers:
                continue
            if slices is None:
                self._viewer.layers.remove(layer)
                continue
            for index, data in slices.items():
                layer.data[index] = data
            layer.metadata.clear()
            layer.metadata.update(metadata)
            layer.name = name
            layer.contrast_limits = limits
            layer.refresh()
        self._before_preview.clear()
        self.update_comparison()
        return undone

    def compare_volume(self, *_) -> None:
        """The whole volume's comparison (the ground truth chosen changed): the figures and
        hint of the one before go at once."""
        self._per_slice = None
        self._metrics.value = self._truth_hint.value = ""
        self.update_comparison()

    def update_comparison(self, slice_index: int | None = None) -> None:
        """The difference layer and the metrics against the ground truth: of the slice
        ``slice_index`` at once (a preview), of the whole volume in a worker thread."""
        source, truth = self._image.value, self._ground_truth.value
        if source is None:
            return
        pred_layer = self.find(source, "prediction")
        if pred_layer is None or truth is None:
            self._clear_comparison(source)
            return
        pred, gt = np.asarray(pred_layer.data), truth.data  # a lazy ground truth is read where it is compared
        if pred.shape != tuple(np.shape(gt)):
            self._clear_comparison(source, f"{truth.name}: shape {tuple(np.shape(gt))} differs from the input's "
                                           f"{pred.shape}; choose a ground truth of the input's shape")
            return
        diff_layer = self.find(source, "difference")
        of = (self._per_slice or {}).get("of", (None, None))
        compared = of[0] is source and of[1] is truth
        if slice_index is not None and diff_layer is not None and compared:
            self._comparisons.drop()  # a whole-volume comparison in flight is older than this slice
            k = slice(slice_index, slice_index + 1)
            diff, per_slice = compare_volumes(pred[k], np.asarray(gt[k]))
            diff_layer.data[slice_index] = diff[0]
            diff_layer.refresh()
            self._per_slice["slices"][slice_index] = per_slice["slices"][0]
            self._per_slice["volume_current"] = False
            self._name_comparison(diff_layer, truth, pred_layer)
            return
        # no copy: a preview that writes a slice in place meanwhile drops this comparison, or
        # asks for a newer one, so a result read from a half-written volume is never shown
        self._comparisons.submit(lambda job: compare_volumes(pred, np.asarray(gt)), source, truth, pred_layer)

    def _clear_comparison(self, source, why: str = "") -> None:
        """No comparison (no ground truth, no prediction, or a ground truth that does not fit):
        no figures, hint or difference layer of one before, and none in flight; ``why`` in
        the metrics line."""
        self._comparisons.drop()
        self._per_slice = None
        self._metrics.value, self._truth_hint.value = why, ""
        stale = self.find(source, "difference")
        if stale is not None:
            self._viewer.layers.remove(stale)

    def _show_comparison(self, result, source, truth, pred_layer) -> None:
        layers = self._viewer.layers
        if (source is not self._image.value or truth is not self._ground_truth.value
                or truth not in layers or pred_layer not in layers):
            return  # another input or ground truth since: its own comparison follows
        diff, per_slice = result
        per_slice["of"] = (source, truth)  # what the figures compare
        diff_layer = self.layer(source, "difference", np.shape(diff), above=truth)
        diff_layer.data = diff
        diff_layer.contrast_limits = (0.0, max(float(np.nanmax(diff)), 1.0))
        self._per_slice = per_slice
        self._name_comparison(diff_layer, truth, pred_layer)

    def _name_comparison(self, diff_layer, truth, pred_layer) -> None:
        diff_layer.name = pred_layer.metadata.get("mr_reparam_names", {}).get("difference", "difference")
        diff_layer.metadata.update(mr_reparam_given_name=diff_layer.name)  # one renamed is kept, as a prediction
        self._truth_hint.value = truth_mismatch(truth.name, truth.metadata, pred_layer.metadata)
        self.update_metrics_label()

    def update_metrics_label(self, *_) -> None:
        """The metrics line: the slice on screen's and the volume's figures."""
        per_slice = self._per_slice
        layer = self._image.value
        if not per_slice or layer is None:
            return
        source, truth = per_slice["of"]
        if source is not layer or truth is not self._ground_truth.value:  # of another input or ground truth
            self._metrics.value = ""
            return
        shape = np.shape(layer.data)  # not the voxels: a lazy layer would be read on the GUI thread
        k = 0
        if len(shape) == 3:
            k = int(np.clip(round(layer.world_to_data(self._viewer.dims.point)[0]), 0, shape[0] - 1))
        s = per_slice["slices"][k]
        v = per_slice["volume"]
        volume = (f"volume: PSNR {v['psnr']:.2f} dB, MAE {v['mae']:.2f}, SSIM {v['ssim']:.3f}"
                  if per_slice.get("volume_current", True) else "volume: once the whole volume is re-rendered")
        self._metrics.value = f"slice {k}: PSNR {s['psnr']:.2f} dB, MAE {s['mae']:.2f}, SSIM {s['ssim']:.3f}\n{volume}"
