"""Qt-free pieces of the widget: requests, the newest-wins queue, engines, comparisons,
presets, and the acquisitions of several inputs (joint maps)."""

from __future__ import annotations

import contextlib
import functools
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from .acquisition import SEQUENCE_READS, Acquisition, default_input_mismatch, stated_sequence, validate_flip
from .messages import sequence_words
from .metrics import PEAK, batch_metrics


@dataclass(frozen=True)
class Request:
    """One prediction the user asked for. ``slice_index`` None means the whole volume."""

    layer: Any
    model: str
    device: str
    te: float
    tr: float
    input_te: float | None = None
    input_tr: float | None = None
    slice_index: int | None = None
    sequence: str = "spin_echo"
    ti: float | None = None
    flip_deg: float | None = None
    consistency: float | None = None
    flip_average: bool = False
    ti2: float | None = None
    #: With further inputs of the same subject (joint maps): every input, this one first,
    #: as :class:`InputSpec` values.
    inputs: tuple = ()
    #: The input's sequence, TI (ms) and flip angle, read by the physics model.
    input_sequence: str = "spin_echo"
    input_ti: float | None = None
    input_flip: float | None = None
    #: Joint maps: one receiver gain per input (separate series) rather than one shared.
    gain_per_input: bool = False
    #: Joint maps: register each further input onto the first (head motion) before the fit.
    register: bool = False
    #: Joint maps: how a multi-echo train's echoes are fitted (``epg`` or ``ideal``, as
    #: ``--echo-train``).
    echo_train: str = "epg"
    #: The input preset the input's acquisition was guessed as from the image's look (its
    #: metadata name none), where the fields still hold it; None where given.
    input_guessed: str | None = None
    #: The target preset the sliders hold (None: Custom), which the output's sidecar names.
    preset: str | None = None

    @property
    def joint(self) -> bool:
        return len(self.inputs) > 1

    def target(self) -> Acquisition:
        """The target acquisition (one-line ValueError if impossible)."""
        return Acquisition(self.te, self.tr, self.sequence, self.ti, self.flip_deg, self.ti2)

    def given(self) -> Acquisition | None:
        """The input's acquisition (None where the model reads no input times); a one-line
        ValueError naming the input where its sequence needs a TI or flip angle not known
        (0 in its field: the layer's metadata lack it, "?") or a value is impossible."""
        if self.input_te is None and self.input_tr is None:
            return None
        name = getattr(self.layer, "name", "the input")
        missing = missing_values(self.input_sequence, te=self.input_te, tr=self.input_tr, ti=self.input_ti,
                                 flip=self.input_flip)
        if missing:
            where = " and ".join(f"Input {'flip' if k == 'flip angle' else k}" for k in missing)
            return _raise(f"{name}: no {' or '.join(missing)} known for its {sequence_words(self.input_sequence)} "
                          f"acquisition; type {'it' if len(missing) == 1 else 'them'} in {where}")
        try:
            validate_flip(self.input_flip)
        except ValueError as exc:
            return _raise(f"{name}'s acquisition (Input flip): {exc}")
        try:
            return Acquisition(self.input_te, self.input_tr, self.input_sequence, self.input_ti, self.input_flip)
        except ValueError as exc:  # validate_times names the time: TE or TI against TR
            field = "Input TI" if str(exc).startswith("TI") else "Input TE/TR"
            return _raise(f"{name}'s acquisition ({field}): {exc}")


def missing_values(sequence: str, **values) -> list[str]:
    """Which of the given values (``te``, ``tr``, ``ti``, ``flip``; 0 or None: unknown) an
    acquisition of ``sequence`` needs and lacks, named as a status line names them (a TI
    or flip angle only where the sequence reads one)."""
    reads = SEQUENCE_READS.get(sequence, ())
    names = {"te": "TE", "tr": "TR", "ti": "TI", "flip": "flip angle"}
    return [names[key] for key, value in values.items()
            if (key in ("te", "tr") or key in reads) and not value]


def input_sources(inputs) -> list:
    """Each input's source, for the receiver gains of the joint fit
    (:func:`~napari_mr_reparam.series_gains.by_source`): the file or DICOM folder its layer
    was read from (its metadata's ``source``), or the series its BIDS sidecar names
    (:func:`~napari_mr_reparam.series_gains.series_label`), else the layer itself (a layer of
    no file is its own series)."""
    from .series_gains import series_label

    labels = []
    for spec in inputs:
        meta = getattr(spec.layer, "metadata", None) or {}
        labels.append(series_label(getattr(meta.get("volume"), "extra", None), meta.get("source") or id(spec.layer)))
    return labels


def input_gains(inputs):
    """The receiver gains the joint fit takes by default for ``inputs``
    (:func:`~napari_mr_reparam.series_gains.by_source` of their :func:`input_sources` and
    acquisitions)."""
    from .series_gains import by_source

    return by_source(input_sources(inputs), _acquisitions_or_none(inputs))


def one_gain_across_layers(inputs) -> bool:
    """:func:`~napari_mr_reparam.series_gains.one_gain_across_files` for ``inputs``."""
    from .series_gains import one_gain_across_files

    return one_gain_across_files(input_sources(inputs), _acquisitions_or_none(inputs))


def _acquisitions_or_none(inputs):
    try:
        return [spec.acquisition() for spec in inputs]
    except (TypeError, ValueError):  # a time still to be typed
        return None


@dataclass(frozen=True)
class InputSpec:
    """One input layer and its acquisition as typed (times in ms, flip in degrees;
    None where unknown)."""

    layer: Any
    sequence: str = "spin_echo"
    te_ms: float | None = None
    tr_ms: float | None = None
    ti_ms: float | None = None
    flip_deg: float | None = None
    #: The input preset these values were guessed as from the image's look (its metadata
    #: name none), where they still are that preset's; None where given.
    guessed: str | None = None

    def acquisition(self) -> Acquisition:
        """The checked acquisition, or a one-line ValueError naming the layer and what is missing."""
        name = getattr(self.layer, "name", "input")
        reads = SEQUENCE_READS.get(self.sequence, ())
        missing = missing_values(self.sequence, te=self.te_ms, tr=self.tr_ms, ti=self.ti_ms, flip=self.flip_deg)
        if missing:
            return _raise(f"{name}: no {' or '.join(missing)} known; type the value(s) in its row")
        try:
            return Acquisition(float(self.te_ms), float(self.tr_ms), self.sequence,
                               float(self.ti_ms) if "ti" in reads else None,
                               float(self.flip_deg) if "flip" in reads else None)
        except ValueError as exc:
            return _raise(f"{name}: {exc}")

    def key(self) -> tuple:
        return (id(self.layer), self.sequence, self.te_ms, self.tr_ms, self.ti_ms, self.flip_deg)


def _raise(message: str):
    raise ValueError(message)


def input_from_metadata(layer) -> InputSpec:
    """An input's acquisition as its layer's metadata give it (the DICOM reader and BIDS
    sidecars write ``te_ms``, ``tr_ms``, ``ti_ms``, ``flip_deg``, ``sequence``)."""
    meta = getattr(layer, "metadata", None) or {}

    def number(key):
        value = meta.get(key)
        try:
            return float(value) if value is not None and float(value) > 0 else None
        except (TypeError, ValueError):
            return None

    from .physics import INPUT_SEQUENCES

    ti = number("ti_ms")
    stated = meta.get("sequence")
    sequence = stated_sequence(stated if stated in INPUT_SEQUENCES else None, ti)
    return InputSpec(layer, sequence, number("te_ms"), number("tr_ms"), ti, number("flip_deg"))


def preset_over_stated(layer, preset: str, values: dict) -> str | None:
    """The status line for an input preset chosen over the acquisition the layer's file
    states (DICOM tags, a sidecar): which stated values the preset's ``values``
    (:func:`preset_controls`) replace, and how to get them back; None where the file states
    no time, or the preset keeps what it states."""
    spec = input_from_metadata(layer)
    if spec.te_ms is None and spec.tr_ms is None:  # nothing stated: a preset names the acquisition
        return None
    stated = (("TE", spec.te_ms, "te", "ms"), ("TR", spec.tr_ms, "tr", "ms"), ("TI", spec.ti_ms, "ti", "ms"),
              ("flip", spec.flip_deg, "flip", "deg"))
    changed = [f"{name} {was:g} -> {float(values[key]):g} {unit}" for name, was, key, unit in stated
               if was is not None and values.get(key) is not None and abs(float(values[key]) - was) > 1e-6 * was]
    if values.get("sequence") not in (None, spec.sequence):
        changed.insert(0, f"{sequence_words(spec.sequence)} -> {sequence_words(values['sequence'])}")
    if not changed:
        return None
    return (f"{getattr(layer, 'name', 'the input')}: Input preset {preset} replaces what its file states "
            f"({', '.join(changed)}); Input preset Custom takes the file's values back")


def stated_input_line(layer, model: str) -> str:
    """The status line for an input chosen whose file states its acquisition (DICOM tags,
    a sidecar, a reopened prediction): what the model reads it as, and what predicts from
    it; empty where the file states no TE and TR. Default-to-Param reads no input's times:
    what it takes every input for is said instead (an input stated otherwise is refused
    before this is asked)."""
    from . import DEFAULT_TE_MS, DEFAULT_TR_MS

    spec = input_from_metadata(layer)
    if model == "d2p":
        return (f"{getattr(layer, 'name', 'the input')}: Default-to-Param reads every input as a spin echo at "
                f"TE {DEFAULT_TE_MS:g} / TR {DEFAULT_TR_MS:g} ms; a Preset or TE/TR predicts from it")
    if spec.te_ms is None or spec.tr_ms is None:
        return ""
    sequence = spec.sequence if model == "physics" else "spin_echo"  # Param-to-Param reads spin echo
    reads = SEQUENCE_READS.get(sequence, ())
    times = [f"TE {spec.te_ms:g}", f"TR {spec.tr_ms:g}"] + ([f"TI {spec.ti_ms:g}"] if spec.ti_ms and "ti" in reads
                                                            else [])
    flip = f", flip {spec.flip_deg:g}°" if spec.flip_deg and "flip" in reads else ""
    volume = (getattr(layer, "metadata", None) or {}).get("volume")
    source = "its DICOM tags" if getattr(volume, "kind", None) == "dicom" else "its metadata"
    return (f"{getattr(layer, 'name', 'the input')}: read as {sequence_words(sequence)}, {' / '.join(times)} ms"
            f"{flip} (from {source}); a Preset or TE/TR predicts from it")


def input_times_to_type(layer) -> list[str]:
    """The input times (``"TE"``, ``"TR"``) a layer's metadata lack that are to be typed
    rather than taken as the default, as the command line refuses to guess them: where the
    metadata state the other time (one is not guessed from the other), the layer is a
    DICOM series (its tags are to hold both), or its sidecar's times were set aside. An
    MPRAGE-type series whose RepetitionTime tag is its readout's pulse spacing takes the
    MPRAGE preset's TR instead (the widget says so). A layer that states neither is read as
    the preset it looks like, or the default."""
    meta = getattr(layer, "metadata", None) or {}
    spec = input_from_metadata(layer)
    lacking = [name for name, value in (("TE", spec.te_ms), ("TR", spec.tr_ms)) if value is None]
    if spec.sequence == "mprage" and meta.get("readout_tr_ms") and "TR" in lacking:
        lacking.remove("TR")
    dicom = getattr(meta.get("volume"), "kind", None) == "dicom"
    # a sidecar whose times were set aside (they could only be ms) named them: typed, not guessed
    return lacking if dicom or len(lacking) == 1 or meta.get("sidecar_times_ignored") else []


def _series_key(layer) -> tuple | None:
    """What names a layer's series: the file or folder it was read from and the series the
    reader named (:func:`~napari_mr_reparam.dicom.read_series` takes a folder's acquisitions
    as one series, as `predict --joint` does, even where each TI was exported as a DICOM
    series of its own), or, for a file whose BIDS sidecar names its series, its folder and
    that series (the echoes of a train that dcm2niix wrote a file each) or, for an
    inversion-recovery image, its folder and TE (the TIs of a set, which dcm2niix writes
    from a DICOM series each, as the folder's DICOM series read as one); None for a layer
    read from nowhere, or an output."""
    from pathlib import Path

    meta = getattr(layer, "metadata", None) or {}
    if not meta.get("source") or "mr_reparam_role" in meta:
        return None
    extra = getattr(meta.get("volume"), "extra", None) or {}
    if extra.get("series_id"):
        volume = meta["volume"]
        if getattr(volume, "sequence", None) == "inversion_recovery" and getattr(volume, "te_ms", None):
            return str(Path(meta["source"]).parent), ("inversion set", round(float(volume.te_ms), 1))
        return str(Path(meta["source"]).parent), ("series", extra["series_id"])
    return meta["source"], extra.get("series")


def series_siblings(layer, layers, used=()) -> list:
    """The other images of ``layer``'s series, in the layer list's order: image layers of
    its shape read from the same DICOM folder or 4-D NIfTI file (:func:`_series_key`),
    not this widget's outputs and not in ``used`` (layers already inputs)."""
    key = _series_key(layer)
    if key is None:
        return []
    taken = {id(layer), *(id(u) for u in used)}
    seen = {_acquisition_key(u) for u in (layer, *used)} - {None}
    shape = np.shape(layer.data)
    out = []
    for other in layers:
        if (id(other) in taken or type(other).__name__ != "Image" or _series_key(other) != key
                or np.shape(other.data) != shape):
            continue
        acquisition = _acquisition_key(other)
        if acquisition is not None and acquisition in seen:  # the series opened twice: one image each
            continue
        seen.add(acquisition)
        out.append(other)
    return out


def _acquisition_key(layer) -> tuple | None:
    """A layer's acquisition as its metadata state it (TE, TR, TI, flip angle, echo
    number), None where they state none: two layers of one series with one key are one
    image opened twice."""
    meta = getattr(layer, "metadata", None) or {}
    volume = meta.get("volume")
    echo = (getattr(volume, "extra", None) or {}).get("echo_number") if volume is not None else None
    key = (*(meta.get(k) for k in ("te_ms", "tr_ms", "ti_ms", "flip_deg")), echo)
    return None if all(v is None for v in key) else key


def guessed_line(name: str, guess, change: str) -> str:
    """The line that says a layer named nothing of its acquisition and how it is read
    (``guess``: :func:`guessed_input_preset`'s), and how to ``change`` it."""
    return (f"{name}: no acquisition in its metadata; it looks like {guess.describe()}: read as the "
            f"{guess.reading} preset ({change} if it is not)")


def guessed_input_preset(layer, model: str):
    """The input preset a layer whose metadata name nothing of its acquisition looks like
    (:func:`~napari_mr_reparam.contrast.guess_input`), as a
    :class:`~napari_mr_reparam.contrast.ContrastGuess`; None where the metadata name
    something, the model reads no input acquisition (``d2p``) or cannot read that preset,
    or the bundled classifier is missing."""
    from .contrast import guess_input, read_as, voxel_mm
    from .weights import WeightsError

    meta = getattr(layer, "metadata", None) or {}
    if (model == "d2p" or any(meta.get(k) for k in ("te_ms", "tr_ms", "ti_ms", "sequence")) or image_refusal(layer)
            or is_lazy(layer)):  # a lazy layer is not read on the GUI thread for a guess
        return None
    try:
        guess = read_as(guess_input(np.asarray(layer.data)), voxel_mm(input_volume(layer, read=False)),
                        reads=lambda name: not preset_refusal(name, model, inputs=True))
    except WeightsError:
        return None
    return None if preset_refusal(guess.preset, model, inputs=True) else guess


def joint_acquisitions(inputs, register: bool = False) -> list[Acquisition]:
    """The inputs' acquisitions, checked: one shape for all (or placed by their affines: of
    one person and, unless they are to be registered, ``register``, one session), a layer
    once, every value a sequence needs; else a one-line ValueError."""
    if len(inputs) < 2:
        raise ValueError("joint maps need two or more inputs")
    layers = [spec.layer for spec in inputs]
    if len({id(layer) for layer in layers}) < len(layers):
        raise ValueError("each input layer can be given once; choose another layer in the repeated row")
    from .grids import grid_refusal

    refusal = grid_refusal([input_volume(layer, read=False) for layer in layers], registering=register)
    if refusal:
        raise ValueError(refusal)
    return [spec.acquisition() for spec in inputs]


def is_lazy(layer) -> bool:
    """Whether a layer's data are read only when asked (a dask or zarr array, a multiscale
    pyramid): not to be read on the GUI thread."""
    return not isinstance(layer.data, np.ndarray)


def input_volume(layer, read: bool = True):
    """A layer as a :class:`~napari_mr_reparam.io.Volume` named after it: the reader's
    volume (its geometry and the voxels its scanner clipped, kept in the layer's metadata)
    with the layer's data, where the layer still has that volume's shape; else an image
    of unknown placement, its voxel spacing the layer's scale. Not ``read``: the layer's
    data as they are, unread where they are lazy (for the checks of shape and placement
    the GUI thread makes)."""
    from dataclasses import replace

    from .io import Volume

    data = np.asarray(layer.data) if read else layer.data
    name = getattr(layer, "name", "") or "input"
    volume = (getattr(layer, "metadata", None) or {}).get("volume")
    if isinstance(volume, Volume) and tuple(volume.stack_shape) == data.shape:
        extra = dict(volume.extra or {})
        if np.shape(extra.get("saturated")) != data.shape:
            extra.pop("saturated", None)
        return replace(volume, data=data, source=name, extra=extra)
    scale = tuple(float(v) for v in np.ravel(getattr(layer, "scale", ())))
    spacing = scale[-3:] if data.ndim == 3 and len(scale) >= 3 else (1.0, 1.0, 1.0)
    return Volume(data=data, kind="image", source=name, spacing=spacing)


def joint_job_units(inputs, register: bool = False, per_input: bool = False) -> int:
    """How many units the progress of a joint job counts: each further input's registration
    (with ``register``; :func:`~napari_mr_reparam.registration.work_units`), then the
    network's maps, the gain search of inputs of several series (none with a gain
    ``per_input``) and the fit (:func:`~napari_mr_reparam.joint_fit.joint_work_units`)."""
    from .joint_fit import joint_work_units
    from .registration import work_units
    from .series_gains import series_count

    shape = np.shape(inputs[0].layer.data)
    series = 1 if per_input else series_count(input_gains(inputs))
    return (joint_work_units(shape, engine=True, series=series)
            + (work_units(shape, len(inputs) - 1) if register else 0))


def joint_inputs(inputs, register: bool = False, progress=None,
                 cancelled=None) -> tuple[list[np.ndarray], list, list[str], list, list, tuple]:
    """The inputs' images on the first input's grid (:func:`~napari_mr_reparam.grids.on_one_grid`:
    layers the reader placed, NIfTI or DICOM, resampled by their affines where their grid
    differs; with ``register``, each further one's affine first corrected for its motion
    against the first, :func:`~napari_mr_reparam.registration.registered_by_name`, which
    counts ``progress`` and asks ``cancelled``), each one's clipped voxels (or None), the
    names of those resampled, (name, motion) of those registered, each one's noise as
    measured on its own grid (:func:`~napari_mr_reparam.image_noise.noise_on_own_grids`), and
    the first input's voxel spacing (the grid they are on).
    Runs off the GUI thread (registration and resampling read every voxel)."""
    from .grids import on_one_grid, slab_note
    from .image_noise import noise_on_own_grids

    volumes = [input_volume(spec.layer) for spec in inputs]
    noise = noise_on_own_grids(volumes)
    motions = []
    if register:
        from .registration import registered_by_name

        volumes, motions = registered_by_name(volumes, progress=progress, cancelled=cancelled)
    volumes, moved = on_one_grid(volumes)
    clipped = [(v.extra or {}).get("saturated") for v in volumes]
    resampled = [volumes[i].source + slab_note(volumes[i]) for i in moved]
    return [v.data for v in volumes], clipped, resampled, motions, noise, volumes[0].spacing


def _gain_runs(gains: list[float]) -> str:
    """The further images' gains (images 2, 3, ...), a run of equal ones (to two decimals:
    the images of one series) as one: ``1.00 (images 2-6), 2.92 (images 7-38)``."""
    runs: list[list] = []
    for number, gain in enumerate(gains, 2):
        shown = f"{gain:.2f}"
        if runs and runs[-1][0] == shown:
            runs[-1][2] = number
        else:
            runs.append([shown, number, number])
    return ", ".join(shown if first == last and len(runs) == len(gains) else
                     f"{shown} (image {first})" if first == last else f"{shown} (images {first}-{last})"
                     for shown, first, last in runs)


def registration_refusal(inputs) -> str:
    """Why the layers of ``inputs`` cannot be registered onto the first (empty when they
    can), said before any work: each must be a volume read with its placement (NIfTI or
    DICOM) and of :data:`~napari_mr_reparam.registration.MIN_VOXELS` voxels or more along
    every axis, as the registration itself refuses otherwise."""
    from .grids import is_placed
    from .registration import MIN_VOXELS

    for spec in inputs:
        layer = spec.layer
        volume, shape = (getattr(layer, "metadata", None) or {}).get("volume"), np.shape(layer.data)
        if volume is None or not is_placed(volume):
            return (f"{layer.name} was read from no NIfTI or DICOM file: registration needs each scan's "
                    "placement; untick 'Register onto the first image'")
        if len(shape) != 3 or min(shape) < MIN_VOXELS:
            return (f"{layer.name} is {'x'.join(map(str, shape))} voxels: registration needs volumes of at least "
                    f"{MIN_VOXELS} voxels along every axis; untick 'Register onto the first image'")
    return ""


def one_gain_hint(request) -> str:
    """What the joint line adds where the inputs of ``request`` are lone scans of several
    files fitted at one receiver gain (as the command line's notice says): empty otherwise."""
    if not request.inputs or request.gain_per_input or not one_gain_across_layers(request.inputs):
        return ""
    return ("; one gain for all, as images of one series saved apart: tick 'One gain per image' for scans "
            "of separate series")


def determined_line(summary: dict, register: bool = False) -> str:
    """The fit's per-voxel report in one line, e.g. ``the inputs determine PD 100 %, T1 0 %,
    T2 96 % of the object; the rest comes from the network's maps``; with ``register``
    (asked for), also where no input was registered (all of the first input's series)."""
    fractions = summary.get("determined_fraction", {})
    parts = ", ".join(f"{k.upper()} {100 * fractions.get(k, 0.0):.0f} %" for k in ("pd", "t1", "t2"))
    rest = ("a broad default (T1 1000 ms, T2 100 ms)" if summary.get("prior_source") == "default"
            else "the network's maps")
    if "pd" in summary.get("prior_parameters", ()):
        rest += " (PD, T1 and T2)"
    line = f"The inputs determine {parts} of the object; the rest comes from {rest}"
    unmeasured = [k.upper() for k in ("t1", "t2") if fractions.get(k, 0.0) < 0.005]
    if unmeasured:  # a map the inputs measure nowhere: say so, as its layer and file do not
        source = "the network's estimate" if summary.get("prior_source") != "default" else "the default"
        line += f"; {' and '.join(unmeasured)} {'are' if len(unmeasured) > 1 else 'is'} {source} everywhere, not a measurement"
    if max(fractions.values(), default=0.0) < 0.005 and summary.get("prior_source") != "default":
        # two images, three unknowns: each time open alone, the inputs still bind them together
        line = (f"Fewer images than unknowns (PD, T1, T2): the images fix how the three relate, and {rest} "
                "pick the values")
    gains = [float(g) for g in summary.get("scales", [])[1:]]
    if any(abs(g - 1.0) > 1e-6 for g in gains):  # one gain per image (or series) was estimated
        line += f"; each further image's gain over the first's: {_gain_runs(gains)}"
    for name, motion in (summary.get("registered_onto_first") or {}).items():
        line += (f"; {name} registered onto the first input: moved {motion['rotation_deg']:.1f} deg, "
                 f"up to {motion['largest_shift_mm']:.1f} mm")
    if register and not summary.get("registered_onto_first"):
        line += "; none registered: every input is an image of the first input's series"
    resampled = summary.get("resampled_onto_first_grid") or []
    if resampled:  # the images of a train: the first named, the rest counted
        named = ", ".join(resampled) if len(resampled) <= 3 else f"{resampled[0]} and {len(resampled) - 1} more"
        line += f"; resampled onto the first input's grid by their affines: {named}"
    if summary.get("partly_measured_fraction"):
        from .joint_fit import partly_measured_note

        line += "; " + partly_measured_note(summary["partly_measured_fraction"],
                                             summary.get("partly_measured_prior") == "network")
    return line


def render_request(engine, maps, request: Request) -> np.ndarray:
    """The target of ``request`` rendered from cached maps: the engine's (one input) or
    the joint fit's :class:`~napari_mr_reparam.joint_result.JointMaps`; of the slice
    ``request.slice_index`` only where it names one (its shape then keeps a first axis of 1)."""
    target = request.target()
    if request.slice_index is not None:
        maps = maps.slices(slice(request.slice_index, request.slice_index + 1))
    if engine is None:  # joint maps
        return maps.render(target.te_ms, target.tr_ms, target.sequence, target.ti_ms, target.flip_deg,
                           ti2_ms=target.ti2_ms)
    return engine.render(maps, target)


@functools.lru_cache(maxsize=None)
def trained_target_range(model: str) -> dict | None:
    """The target TE/TR range (ms) a bundled model's predictions are bound to, its card read
    once per model (the slider asks on every move); None for a model that renders from
    maps (:func:`~napari_mr_reparam.inference.bound_target_range`)."""
    from .inference import bound_target_range
    from .weights import bundled_card

    return bound_target_range(bundled_card(model))


def target_range_warnings(model: str, te_ms: float, tr_ms: float) -> list[str]:
    """Warnings for a target outside the range the bundled ``model``'s predictions are
    bound to (none for the physics model, which renders any TE/TR)."""
    from .acquisition import out_of_range_warnings

    bound = trained_target_range(model)
    return out_of_range_warnings(te_ms, tr_ms, bound) if bound is not None else []


# ---------------------------------------------------------------------------- presets

CUSTOM = "Custom"


def preset_choices(inputs: bool = False) -> list[str]:
    """Custom and the presets: every one for a target, those of an input sequence for an
    input (``inputs``)."""
    from .presets import PRESETS, input_preset_names

    return [CUSTOM, *(input_preset_names() if inputs else PRESETS)]


def preset_controls(name: str) -> dict | None:
    """The control values a preset sets: sequence, te, tr, ti, ti2, flip (None: Custom).
    An input's controls take the same values (it has no ti2)."""
    from .presets import get_preset

    if name == CUSTOM:
        return None
    p = get_preset(name)
    return {"sequence": p.sequence, "te": float(p.te), "tr": float(p.tr), "ti": p.ti, "ti2": p.ti2,
            "flip": p.flip_deg}


def matching_preset(values: dict, inputs: bool = False) -> str:
    """The preset whose values the controls hold (``sequence``, ``te``, ``tr``, ``ti``,
    ``ti2``, ``flip``; only those the sequence reads are compared), else Custom. With
    ``inputs``, among the input presets, each value to within :data:`INPUT_PRESET_TOLERANCE`
    (a scan's tags: a Siemens MPRAGE's TE 2.98 ms is the MPRAGE preset's 3)."""
    for name in preset_choices(inputs)[1:]:
        want = preset_controls(name)
        if want["sequence"] != values.get("sequence"):
            continue
        keys = ("te", "tr", *SEQUENCE_READS.get(want["sequence"], ()))
        if all(values.get(k) is not None and _near(float(values[k]), float(want[k]), inputs) for k in keys):
            return name
    return CUSTOM


#: How far an input's times and flip may lie from an input preset's (a share of the preset's)
#: for the Input preset box to name it.
INPUT_PRESET_TOLERANCE = 0.05


def _near(value: float, wanted: float, loose: bool) -> bool:
    return abs(value - wanted) <= (INPUT_PRESET_TOLERANCE * abs(wanted) if loose else 1e-6)


def preset_refusal(name: str, model: str, inputs: bool = False) -> str:
    """Why the model cannot render the preset, or with ``inputs`` read an input acquired
    with it (empty when it can)."""
    want = preset_controls(name)
    if want is None or want["sequence"] == "spin_echo" or model == "physics":
        return ""
    kind = sequence_words(want["sequence"])
    what = name if kind.lower() == name.lower() else f"{name} is {kind}"  # MPRAGE, FLAIR is inversion recovery
    if inputs:
        return f"{what}: only the physics model reads such an input (the other models read spin-echo inputs)"
    return f"{what}: only the physics model renders it (the other models predict spin-echo images)"


def target_words(request: Request) -> str:
    """The target as a status line names it: its preset (else its sequence) and its times,
    e.g. ``FLAIR, TE 120 / TR 9000 / TI 2500 ms``."""
    values = {"sequence": request.sequence, "te": request.te, "tr": request.tr, "ti": request.ti,
              "ti2": request.ti2, "flip": request.flip_deg}
    name = matching_preset(values)
    times = [f"TE {request.te:g}", f"TR {request.tr:g}"]
    times += [f"{label} {value:g}" for label, value in (("TI", request.ti), ("TI2", request.ti2)) if value is not None]
    words = f"{name if name != CUSTOM else sequence_words(request.sequence)}, {' / '.join(times)} ms"
    return words + (f", flip {request.flip_deg:g}°" if request.flip_deg is not None else "")


def on_step(value: float, step: float, minimum: float, maximum: float) -> float:
    """The multiple of ``step`` nearest ``value`` within ``minimum``-``maximum``: where a
    slider dragged, stepped or scrolled lands. A least value below the first multiple
    (0.01 ms, kept so a time typed in seconds reaches its hint) is not on the grid."""
    first, last = np.ceil(minimum / step - 1e-9), np.floor(maximum / step + 1e-9)
    return round(float(np.clip(round(value / step), first, last)) * step, 9)


def typed_beyond_line(name: str, unit: str, typed: float, kept: float, low: float, high: float) -> str:
    """What a field says of a number typed beyond its range: above it, taken as its end
    (``TE 7000 ms is above the 0.01-1500 ms this field takes: set to 1500 ms``); below it,
    the value before kept (``TE -5 ms is below ...: kept 60 ms``)."""
    space = "" if unit == "°" else " "
    side, took = ("above", "set to") if typed > high else ("below", "kept")
    return (f"{name} {typed:g}{space}{unit} is {side} the {low:g}-{high:g}{space}{unit} this field takes: "
            f"{took} {kept:g}{space}{unit}")


def seconds_hint(sequence: str = "spin_echo", **times) -> str:
    """The command line's rule for a time typed in seconds
    (:func:`~napari_mr_reparam.units.refuse_seconds`) as a hint: e.g. ``TR 2.3 looks like
    seconds; times are in milliseconds (did you mean 2300 ms?)``, empty when every time
    can be milliseconds. ``times``: ``te``, ``tr``, ``ti``, ``input_te``, ``input_tr``,
    ``input_ti`` (ms; None or 0 is unknown). A gradient echo's TR may be a few ms."""
    from .units import refuse_seconds

    if sequence == "gradient_echo":
        times.pop("tr", None)
    try:
        # to five significant digits: a slider holds 2.3 as 2.29999, a field 0.03856 as typed
        refuse_seconds(**{k: float(f"{float(v):.5g}") if v else None for k, v in times.items()})
    except ValueError as exc:
        return str(exc)
    return ""


def image_refusal(layer) -> str:
    """Why ``layer`` cannot be an input (empty when it can), in one line that names it: the
    models take grey-level images, not RGB(A) colour ones (napari's own reader opens a
    colour file as such), of two or three dimensions, with an image in them (not empty,
    all NaN or infinite, or one value), and not of a sequence no input can have (a double
    inversion recovery this package rendered, as its metadata say), nor a map (PD, T1, T2: its
    metadata's ``quantity``). A lazy layer's voxels
    are not read here, on the GUI thread: the job checks them as the engine reads them."""
    from .physics import INPUT_SEQUENCES, TARGET_SEQUENCES

    name = getattr(layer, "name", "the input")
    meta = getattr(layer, "metadata", None) or {}
    if meta.get("quantity"):  # a PD, T1 or T2 map reopened: no acquisition made it
        from .io import map_refusal

        return map_refusal(name, meta["quantity"], meta.get("unit"))
    stated = meta.get("sequence")
    if stated in TARGET_SEQUENCES and stated not in INPUT_SEQUENCES:
        return (f"{name} is {sequence_words(stated)}: no model reads one as its input "
                f"({', '.join(map(sequence_words, INPUT_SEQUENCES))}); choose another layer")
    if getattr(layer, "rgb", False):
        return (f"{name} is an RGB(A) colour image; the models take grey-level "
                "images: open the file with the napari-mr-reparam reader (it reads colour as grey levels)")
    data = getattr(layer, "data", None)
    if data is None:
        return ""
    shape = tuple(np.shape(data))
    if len(shape) > 3:
        return (f"{name} has {len(shape)} dimensions {shape}; the models take a 2-D image or a 3-D volume: "
                "split it into volumes (right-click the layer > Split Stack) and choose one")
    if len(shape) < 2:
        return f"{name} has shape {shape}; the models take a 2-D image or a 3-D volume"
    return "" if is_lazy(layer) else _contrast_refusal(name, data)


#: Arrays found to hold an image, by id (with a weak reference, so a new array at the same
#: address is checked again): a slider's every move asks again, a pass over the volume each.
_HOLD_AN_IMAGE: dict[int, Any] = {}


def _contrast_refusal(name: str, data) -> str:
    """Why ``data`` holds no image (empty, all NaN or infinite, one value; the engine's
    :func:`~napari_mr_reparam.inference.require_contrast`), naming ``name``; empty when it
    holds one (remembered per array)."""
    import weakref

    from .inference import require_contrast

    known = _HOLD_AN_IMAGE.get(id(data))
    if known is not None and known() is data:
        return ""
    try:
        require_contrast(np.asarray(data))
    except ValueError as exc:  # "the volume holds no image: ..." said of the layer
        said = str(exc)
        return (f"{name} {said.removeprefix('the volume ')}" if said.startswith("the volume ")
                else f"{name}: {said}") + "; choose another layer"
    with contextlib.suppress(TypeError):  # an array type without weak references is checked each time
        _HOLD_AN_IMAGE[id(data)] = weakref.ref(data)
        for key in [k for k, ref in _HOLD_AN_IMAGE.items() if ref() is None]:
            del _HOLD_AN_IMAGE[key]
    return ""


#: Per array (by id, with a weak reference, as :data:`_HOLD_AN_IMAGE`): how many of its
#: voxels are NaN or infinite.
_UNMEASURED: dict[int, tuple[Any, int]] = {}


def unmeasured_words(layer) -> str:
    """What a result's line says of an input ``layer`` with NaN or infinite voxels (not
    measured: read as 0, NaN in the result), as the command line's notice does; empty
    without any, or for a lazy layer (not read on the GUI thread)."""
    import weakref

    if is_lazy(layer):
        return ""
    data = layer.data
    known = _UNMEASURED.get(id(data))
    if known is None or known[0]() is not data:
        count = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        with contextlib.suppress(TypeError):
            _UNMEASURED[id(data)] = (weakref.ref(data), count)
            for key in [k for k, (ref, _) in _UNMEASURED.items() if ref() is None]:
                del _UNMEASURED[key]
    else:
        count = known[1]
    if count == 0:
        return ""
    voxels = "1 voxel" if count == 1 else f"{count} voxels"
    return f"{layer.name}: {voxels} NaN or infinite (not measured): read as 0, NaN in the result"


def input_refusal(model: str, layer, input_sequence: str = "spin_echo") -> str:
    """Why a paper model cannot read the input ``layer`` (empty when it can).

    Default-to-Param reads one input acquisition, a spin echo at TE 50 / TR 4500 ms: a
    layer whose metadata (BIDS sidecar, DICOM tags) state another sequence or other times
    is refused rather than read as if it were that one. Param-to-Param reads spin-echo
    inputs only; ``input_sequence`` is the input's sequence as the widget holds it (from
    the metadata, or an input preset).
    """
    from . import DEFAULT_TE_MS, DEFAULT_TR_MS

    name = getattr(layer, "name", "the input")
    if model == "d2p":
        stated = input_from_metadata(layer)  # its sequence, or inversion recovery where a TI is known
        mismatch = default_input_mismatch(stated.te_ms, stated.tr_ms, stated.sequence)
        if mismatch is not None and mismatch[0] == "sequence":
            return (f"{name} is {sequence_words(mismatch[1])}: Default-to-Param reads spin-echo inputs "
                    f"at TE {DEFAULT_TE_MS:g} / TR {DEFAULT_TR_MS:g} ms only; choose Physics")
        if mismatch is not None:
            return (f"{name} is at TE {mismatch[1]:g} / TR {mismatch[2]:g} ms: Default-to-Param reads inputs at TE "
                    f"{DEFAULT_TE_MS:g} / TR {DEFAULT_TR_MS:g} ms only; choose Param-to-Param or Physics")
    if model == "p2p" and input_sequence != "spin_echo":
        return (f"{name} is {sequence_words(input_sequence)}: Param-to-Param reads spin-echo inputs only; "
                "choose Physics (or a spin-echo Input preset, if it is one)")
    return ""


class EngineCache:
    """Loaded models by (name, device), shared across requests; thread-safe."""

    def __init__(self):
        self._engines: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self.last_device = ""

    def get(self, model: str, device: str):
        from .devices import describe_device
        from .inference import Reparameterizer

        with self._lock:
            key = (model, device)
            if key not in self._engines:
                self._engines[key] = Reparameterizer(model, device=device)
            engine = self._engines[key]
            self.last_device = describe_device(engine.device)
            return engine

    def loaded(self, model: str, device: str):
        """The engine of ``model`` on ``device`` where it is loaded already, else None (no load)."""
        with self._lock:
            return self._engines.get((model, device))

    def thin_slices(self, layer, model: str, device: str) -> str:
        """Why ``layer``'s slices are too thin for ``model`` (empty when they are not, or when
        the model is not loaded yet: a pick does not wait for a load; the run says it then)."""
        engine = self.loaded(model, device)
        shape = np.shape(getattr(layer, "data", None))
        if engine is None or len(shape) < 2:
            return ""
        why = engine.thin_slices(shape)
        return f"{getattr(layer, 'name', 'the input')}: {why}; choose another layer" if why else ""


def read_layers(request: Request) -> list:
    """The layers a request reads: its input and any further inputs."""
    return [request.layer, *(spec.layer for spec in request.inputs)]


#: How many sets of maps the widget keeps (the most recently used): a 256x256x180 volume's
#: take about 200 MB, and each data-consistency weight or input acquisition tried is a set.
MAX_CACHED_MAPS = 3


class MapsCache:
    """The physics model's maps per input layer, model, device, input acquisition,
    data-consistency weight and flip averaging; the :data:`MAX_CACHED_MAPS` most recently
    used, the others dropped.

    Entries hold the layer's data array, so a layer whose data is replaced, or another
    layer, never gets another volume's maps.
    """

    def __init__(self):
        self._entries: dict[tuple, tuple] = {}  # in order of use, the latest last

    @staticmethod
    def _key(request: Request) -> tuple:
        return (id(request.layer), request.model, request.device, request.input_te, request.input_tr,
                request.input_sequence, request.input_ti, request.input_flip,
                request.consistency, request.flip_average, request.gain_per_input, request.register,
                request.echo_train,
                tuple(spec.key() for spec in request.inputs))

    @staticmethod
    def _datas(request: Request) -> tuple:
        return tuple(layer.data for layer in read_layers(request))

    def get(self, request: Request):
        key = self._key(request)
        entry = self._entries.get(key)
        if entry is None or any(a is not b for a, b in zip(entry[0], self._datas(request))):
            return None
        self._entries[key] = self._entries.pop(key)  # used: the latest
        return entry[1]

    def put(self, request: Request, engine, maps) -> None:
        key = self._key(request)
        self._entries.pop(key, None)
        self._entries[key] = (self._datas(request), (engine, maps))
        while len(self._entries) > MAX_CACHED_MAPS:
            del self._entries[next(iter(self._entries))]  # the least recently used

    def same(self, request: Request, other: Request) -> bool:
        """Whether two physics requests take the same maps (the same inputs, their data and
        acquisitions, and options), whatever the targets they render."""
        return (request.model == other.model == "physics" and self._key(request) == self._key(other)
                and all(a is b for a, b in zip(self._datas(request), self._datas(other))))

    def forget(self, layer) -> None:
        """Drop every entry ``layer`` is an input of."""
        self._entries = {k: v for k, v in self._entries.items()
                         if k[0] != id(layer) and all(spec[0] != id(layer) for spec in k[-1])}


def acquisition_of(name: str, metadata: dict | None) -> dict[str, float]:
    """TE/TR (and TI, ms) of a layer: from its metadata, else from a name such as
    ``head TE120 TR6000``; only what is known."""
    import re

    meta = metadata or {}
    out = {}
    for key, tag in (("te_ms", "TE"), ("tr_ms", "TR"), ("ti_ms", "TI")):
        value = meta.get(key)
        if value is None:
            found = re.search(rf"(?<![A-Za-z]){tag}[ _=-]?(\d+(?:\.\d+)?)", name or "")
            value = found and float(found.group(1))
        if value:
            out[key] = float(value)
    return out


def _stated_sequence(meta: dict | None) -> str | None:
    """The sequence a layer's metadata name (inversion recovery where only a TI is known),
    else None."""
    from .acquisition import ACQUISITION_SEQUENCES

    meta = meta or {}
    if meta.get("sequence") in ACQUISITION_SEQUENCES:
        return meta["sequence"]
    return "inversion_recovery" if meta.get("ti_ms") else None


def truth_mismatch(truth_name: str, truth_meta: dict | None, prediction_meta: dict | None) -> str:
    """A warning when the ground truth was acquired with another sequence, or at other
    TE/TR/TI, than the prediction (empty when they agree or the truth's are unknown)."""
    sequences = _stated_sequence(truth_meta), _stated_sequence(prediction_meta)
    if None not in sequences and sequences[0] != sequences[1]:
        truth_kind, pred_kind = (sequence_words(s) for s in sequences)
        return (f"⚠ the ground truth is {truth_kind}, the prediction {pred_kind}: the difference and "
                "PSNR/SSIM compare different contrasts")
    truth, pred = acquisition_of(truth_name, truth_meta), acquisition_of("", prediction_meta)
    differ = [k for k in ("te_ms", "tr_ms", "ti_ms") if k in truth and k in pred
              and abs(truth[k] - pred[k]) > 1e-6 * max(1.0, abs(pred[k]))]
    if not differ:
        return ""
    said = lambda acq: " / ".join(f"{k[:2].upper()} {acq[k]:g}" for k in differ)  # noqa: E731
    return (f"⚠ the ground truth is at {said(truth)} ms, the prediction at {said(pred)} ms: "
            "PSNR/SSIM compare different contrasts")


SEQUENCE_TAGS = {"spin_echo": "", "inversion_recovery": "IR ", "gradient_echo": "GRE ",
                 "mprage": "MPRAGE ", "double_inversion_recovery": "DIR "}


def layer_names(model: str, te: float, tr: float, sequence: str = "spin_echo", ti: float | None = None,
                flip_deg: float | None = None, ti2: float | None = None) -> dict[str, str]:
    """Names of the output layers for a model and target (ms)."""
    tag = f"{model} {SEQUENCE_TAGS.get(sequence, '')}TE{te:g} TR{tr:g}"
    if ti is not None:
        tag += f" TI{ti:g}"
    if ti2 is not None:
        tag += f" TI2 {ti2:g}"
    if flip_deg is not None:
        tag += f" FA{flip_deg:g}"
    return {"prediction": f"prediction {tag}", "difference": f"|difference| {tag}"}


def normalize_slices_255(volume: np.ndarray) -> np.ndarray:
    """Each slice scaled to its own maximum on 0-255 (the paper's convention)."""
    v = np.nan_to_num(np.asarray(volume, np.float64))
    v = v[None] if v.ndim == 2 else v
    peak = v.max(axis=(1, 2), keepdims=True)
    return np.divide(v, peak, out=np.zeros_like(v), where=peak > 0) * PEAK


def compare_volumes(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, dict]:
    """Absolute difference (0-255, per-slice normalized) and metrics per slice and volume."""
    p, t = normalize_slices_255(pred), normalize_slices_255(truth)
    diff = np.abs(p - t).astype(np.float32).reshape(np.shape(pred))
    per = batch_metrics(p, t)
    slices = [{k: float(per[k][i]) for k in ("psnr", "mae", "ssim")} for i in range(len(p))]
    volume = {k: float(np.mean(per[k])) for k in ("psnr", "mae", "ssim")}
    return diff, {"slices": slices, "volume": volume}
