"""The inference engine: load a model once, run it over slices in batches.

:class:`Reparameterizer` is the one path from a request to an image, used by the
command line, the napari plugin and the evaluation alike. A request is a volume, the
target :class:`~napari_mr_reparam.acquisition.Acquisition` (or several), the input's
acquisition and the per-request :class:`InferenceOptions`. The engine chooses the
device, normalizes each slice as the model was trained (a paper model: its own maximum
-> [0, 1] -> [-1, 1] at 256x256; a physics model: the whole volume at one level,
:func:`volume_read`), runs batches under ``torch.inference_mode``, and undoes the
normalization so predictions come back in the input's intensity units and size. A model
that renders from maps (:attr:`Reparameterizer.renders_from_maps`) computes its maps
once per volume and renders every target from them. Times are in milliseconds.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .acquisition import TRAINED_RANGE_MS, Acquisition, out_of_range_warnings, refuse_unread  # noqa: F401
from .cancellation import Cancelled, stop_if_cancelled  # noqa: F401  (Cancelled: part of this module's API)
from .detail import DetailGuide
from .resize import resize_slices

NETWORK_SIZE = 256
#: ``progress(n)``: called after each batch with the number of slices it finished.
Progress = Callable[[int], None]
#: ``cancelled()``: asked before each batch; True stops the call with :class:`Cancelled`.
CancelCheck = Callable[[], bool]


@dataclass(frozen=True)
class InferenceOptions:
    """Per-request settings of a model that renders from maps; None takes the engine's default.

    consistency : float in [0, 1]
        The data-consistency weight (see
        :meth:`~napari_mr_reparam.models.physics_net.PhysicsNet.consistent_maps`);
        default :data:`napari_mr_reparam.DEFAULT_CONSISTENCY`.
    flip_average : bool
        Average the raw maps over each slice and its left-right mirror (twice the map cost).
    calibrate_peak : bool
        Normalize renders by the peak the input calibrates (:mod:`napari_mr_reparam.peaks`;
        the default) rather than by their maximum.
    keep_detail : bool
        Carry the input's own detail into every render (the default): the maps live on the
        model's working grid, and each render is brought to the input's resolution with
        the input as its guide (:class:`~napari_mr_reparam.detail.DetailGuide`: the
        target, locally a linear function of the input, fitted on the grid and applied at
        full resolution), for every input sequence. A render at the input's own
        acquisition returns nearly the input.
    """

    consistency: float | None = None
    flip_average: bool | None = None
    calibrate_peak: bool | None = None
    keep_detail: bool | None = None


@dataclass
class QuantitativeMaps:
    """PD (relative), T1 and T2 (ms) maps of a volume from the physics model.

    The maps are stored at the model's working resolution, (z, h, w); ``scale`` holds,
    per slice, the factor that brings the maps' signal to the input's units (the gain
    that makes their signal at the input's acquisition match the input, times the level
    the volume was read at: :func:`render_scale`). ``shape`` holds the input's in-plane size,
    ``nan`` where the input had no value, ``empty`` where it held no signal around the
    object (:func:`empty_outside`; rendered 0, as a joint fit's background is) and
    ``peak_count`` how many of each slice's
    brightest voxels a render is clipped at (1, the maximum, unless the input calibrated
    more: :mod:`napari_mr_reparam.peaks`). With ``keep_detail`` (:class:`InferenceOptions`),
    ``guide`` holds the input (normalized to its maximum) that brings renders to its
    resolution (:class:`~napari_mr_reparam.detail.DetailGuide`).
    """

    pd: np.ndarray
    t1: np.ndarray
    t2: np.ndarray
    scale: np.ndarray
    shape: tuple
    nan: np.ndarray
    peak_count: np.ndarray | int = 1
    guide: DetailGuide | None = None
    empty: np.ndarray | None = None

    def slices(self, rows) -> QuantitativeMaps:
        """The maps of some slices only (``rows``: an index array or slice)."""
        from dataclasses import replace

        pick = {k: getattr(self, k)[rows] for k in ("pd", "t1", "t2", "scale", "nan")}
        pick["empty"] = None if self.empty is None else self.empty[rows]
        pick["peak_count"] = self.peak_count[rows] if np.ndim(self.peak_count) else self.peak_count
        pick["guide"] = None if self.guide is None else self.guide.slices(rows)
        return replace(self, **pick)

    def at_input_size(self) -> dict[str, np.ndarray]:
        """The maps resized to the input's in-plane size (for display), NaN where it had none."""
        out = {}
        for key in ("pd", "t1", "t2"):
            m = resize_slices(getattr(self, key), self.shape)
            m[self.nan] = np.nan
            out[key] = m
        return out


@dataclass(frozen=True)
class ModelInfo:
    name: str
    arch: str
    task: str
    width: float
    card: dict
    sha256: str = ""  # of the weights file; a sidecar's GeneratedBy records it


def known_models() -> list[str]:
    from .weights import bundled_card, bundled_names

    # the contrast classifier (napari_mr_reparam.contrast) is bundled too, but predicts no image
    return [n for n in bundled_names() if not n.startswith("_") and bundled_card(n).get("arch") != "contrast"]


def build_model(card: dict):
    """The torch module a weight card describes."""
    from .models import ReparamNet

    arch = card.get("arch")
    if arch == "paper":
        return ReparamNet(task=card["task"], width=float(card["width"]))
    from .models.physics_net import NETWORKS

    if arch in NETWORKS:
        return NETWORKS[arch].from_card(card)
    raise ValueError(f"weights describe an unknown architecture {arch!r}")


def _loaded_model(card: dict, state: dict, source: str):
    """The model ``card`` names, holding ``state`` (:func:`loaded_network`)."""
    return loaded_network(lambda: build_model(card), state, source, f"the {card.get('arch')} model its card names")


def loaded_network(build, state: dict, source: str, what: str):
    """The network ``build()`` makes from a card, holding ``state``; WeightsError naming
    ``source`` where the card lacks a value or holds an unusable one, or the tensors do
    not fit the network (``what`` names it in the message)."""
    from .weights import WeightsError

    try:
        net = build()
    except KeyError as exc:
        raise WeightsError(f"{source}: its card gives no {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"{source}: {exc}") from None
    misfit = first_misfit(net.state_dict(), state)
    if misfit:
        raise WeightsError(f"{source}: its tensors do not fit {what} ({misfit})")
    net.load_state_dict(state)
    return net


def first_misfit(expected: dict, given: dict) -> str | None:
    """How the tensors ``given`` do not fit a model's ``expected`` state dict: how many are
    missing, unexpected or of another shape, and the first of them; None where they fit."""
    missing = [f"missing {name}" for name in expected if name not in given]
    unexpected = [f"unexpected {name}" for name in given if name not in expected]
    reshaped = [f"{name} is {_shape(given[name])} in the file, {_shape(tensor)} in the model"
                for name, tensor in expected.items() if name in given and given[name].shape != tensor.shape]
    counts = [f"{len(found)} {kind}" for found, kind in
              ((missing, "missing"), (unexpected, "unexpected"), (reshaped, "of another shape")) if found]
    first = (missing + unexpected + reshaped)[:1]
    return f"{', '.join(counts)}; first: {first[0]}" if first else None


def _shape(tensor) -> str:
    return "x".join(str(size) for size in tensor.shape) or "a scalar"


def _placed(net, device):
    """``net`` moved to ``device``; on the CPU also to the channels-last layout, in which
    oneDNN's convolutions run about a quarter faster on the maps of a 181-slice volume
    (the same maps to float rounding; training/RESULTS.md, "How fast is inference?")."""
    import torch

    net = net.to(device)
    if device.type == "cpu":
        net = net.to(memory_format=torch.channels_last)
    return net


def bound_target_range(card: dict) -> dict | None:
    """The target TE/TR range (ms, ``{"te": (lo, hi), "tr": (lo, hi)}``) that predictions of
    the model a weight card describes are bound to: the range it was trained on
    (:func:`~napari_mr_reparam.acquisition_effects.trained_ranges`) for a model that
    predicts each target image (the paper's d2p and p2p networks); None for one that
    renders from maps (the physics model), whose targets are the signal equations' at any
    TE/TR and sequence. Read from the card, without building the model."""
    from .acquisition_effects import trained_ranges

    return None if card_renders_from_maps(card) else trained_ranges(card.get("config"))["target"]


def card_renders_from_maps(card: dict) -> bool:
    """Whether the model a weight card describes renders from maps
    (:attr:`Reparameterizer.renders_from_maps`), read from the card without building it."""
    if card.get("arch") == "paper":
        return False
    from .models.physics_net import NETWORKS

    return bool(getattr(NETWORKS.get(card.get("arch")), "renders_from_maps", False))


class Reparameterizer:
    """A loaded model that predicts images at new acquisition parameters.

    Parameters
    ----------
    model : str
        A bundled model name (``physics``, the default generalist; ``physics_mrilab``, ``d2p``,
        ``p2p``) or a weights file path.
    weights : str, optional
        A weights file (.safetensors or .pt checkpoint) that overrides ``model``.
    device : str
        ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda`` or ``mps``.
    batch_size : int
        Slices per forward pass.
    consistency, flip_average, calibrate_peak, keep_detail :
        The engine's default :class:`InferenceOptions` (models that render from maps
        only), used by requests that do not give their own.
    """

    def __init__(self, model: str = "physics", weights: str | None = None, device: str = "auto",
                 batch_size: int = 8, consistency: float | None = None, flip_average: bool | None = None,
                 calibrate_peak: bool | None = None, keep_detail: bool | None = None):
        import torch

        from .devices import choose_device
        from .weights import WeightsError, load_weights, names_a_file, shown_name, weights_sha256

        source = weights or model
        try:
            state, card = load_weights(source)
        except WeightsError as exc:
            if weights is None and not names_a_file(model) and "no weights" in str(exc):
                raise ValueError(f"unknown model {model!r}; known: {', '.join(known_models())}") from None
            raise
        if "arch" not in card:
            keep = ("a checkpoint written by napari-mr-reparam-train carries its card" if str(source).endswith(
                (".pt", ".pth", ".ckpt")) else "keep the .json card beside the .safetensors file")
            raise WeightsError(f"{source}: no card says which model these weights belong to; {keep}")
        if card["arch"] == "contrast":
            raise WeightsError(f"{source}: the input-preset classifier names an image's preset and predicts "
                               f"no image; models: {', '.join(known_models())}")
        self.info = ModelInfo(name=shown_name(source, card), arch=card["arch"],
                              task=card.get("task", "d2p"), width=float(card.get("width", 1.0)), card=card,
                              sha256=weights_sha256(source, card))
        self.device = choose_device(device)
        self.batch_size = max(1, int(batch_size))
        net = _loaded_model(card, state, source)
        self.net = _placed(net.eval(), self.device)
        self._torch = torch
        self._defaults = self._model_defaults()
        self._defaults = self.resolve(InferenceOptions(consistency, flip_average, calibrate_peak, keep_detail))

    # ------------------------------------------------------------------ what the model is
    @property
    def renders_from_maps(self) -> bool:
        """True for a model that computes quantitative maps once and renders any
        acquisition from them by the signal equation (the physics model, whatever its
        weights are called); False for models that predict one image per target."""
        return bool(getattr(self.net, "renders_from_maps", False))

    def reads_input(self, sequence: str) -> bool:
        """Whether the model reads an input image of ``sequence`` (the paper's models and
        physics weights not trained on other sequences: spin echo only)."""
        return sequence == "spin_echo" or (self.task == "p2p" and bool(getattr(self.net, "input_sequences", False)))

    def refuse_unread_input(self, sequence: str) -> None:
        """A one-line ValueError where the model does not read an input of ``sequence``."""
        if not self.reads_input(sequence):
            from .messages import sequence_words

            raise ValueError(f"{self.info.name} reads spin-echo inputs only; the physics model reads "
                             f"{sequence_words(sequence)}")

    def _refuse_other_default_input(self, input: Acquisition) -> None:
        """A one-line ValueError where a Default-to-Param model is given an input acquired
        at other times than the one it reads (it would read it as that one), as the command
        line refuses it."""
        if self.task != "d2p":
            return
        from . import DEFAULT_TE_MS, DEFAULT_TR_MS
        from .acquisition import default_input_mismatch

        given = _as_acquisition(input)
        pairs = {(float(te), float(tr)) for te, tr in zip(*np.broadcast_arrays(np.ravel(given.te_ms),
                                                                               np.ravel(given.tr_ms)))}
        for te, tr in sorted(pairs):
            if default_input_mismatch(te, tr) is not None:
                raise ValueError(f"{self.info.name} reads inputs at TE {DEFAULT_TE_MS:g} / TR {DEFAULT_TR_MS:g} ms "
                                 f"only; for an input at TE {te:g} / TR {tr:g} ms use the model 'p2p' or "
                                 "'physics' (or give no input acquisition)")

    #: The same capability, by its earlier name.
    renders = renders_from_maps

    @property
    def task(self) -> str:
        return self.info.task

    @property
    def trained_ranges(self) -> dict:
        """The TE/TR ranges (ms) this model's targets and inputs were trained on
        (:func:`~napari_mr_reparam.acquisition_effects.trained_ranges`)."""
        from .acquisition_effects import trained_ranges

        return trained_ranges(self.info.card.get("config"))

    def target_warnings(self, te_ms: float, tr_ms: float) -> list[str]:
        """Warnings for a target outside the range this model's predictions are bound to
        (:func:`bound_target_range`; none for a model that renders from maps)."""
        bound = bound_target_range(self.info.card)
        return out_of_range_warnings(te_ms, tr_ms, bound) if bound is not None else []

    @property
    def native_input(self) -> bool:
        """True when the model reads slices on their own grid (not resized to 256x256)."""
        return bool(getattr(self.net, "native_input", False))

    def work_units(self, n_slices: int, n_targets: int = 1) -> int:
        """How many slices ``progress`` will count for a request of ``n_targets`` targets
        over ``n_slices`` slices (maps are computed once; other models run per target)."""
        return n_slices if self.renders_from_maps else n_slices * n_targets

    # ------------------------------------------------------------------ options
    def _model_defaults(self) -> InferenceOptions:
        """The options a request gets unless it says otherwise. A physics model keeps the
        input's detail where its training scored renders so (``keep_detail`` in its card's
        recipe): a model trained on plainly resized renders loses by the guide (the MRiLab
        weights on their own protocol: 42.4 against 32.8 dB, training/RESULTS.md)."""
        from . import DEFAULT_CONSISTENCY

        if self.renders_from_maps:
            trained_guided = bool(self.info.card.get("config", {}).get("keep_detail", False))
            return InferenceOptions(DEFAULT_CONSISTENCY, False, True, trained_guided)
        return InferenceOptions()  # none of the options applies

    @property
    def options(self) -> InferenceOptions:
        """The engine's default options, complete (what a request without options gets)."""
        return self._defaults

    @property
    def consistency(self) -> float | None:
        """The default data-consistency weight (None for models without maps)."""
        return self._defaults.consistency

    @property
    def flip_average(self) -> bool:
        return bool(self._defaults.flip_average)

    @property
    def calibrate_peak(self) -> bool:
        return bool(self._defaults.calibrate_peak)

    @property
    def keep_detail(self) -> bool:
        return bool(self._defaults.keep_detail)

    def resolve(self, options: InferenceOptions | None = None) -> InferenceOptions:
        """``options`` completed with the engine's defaults and checked; ``ValueError``
        with a one-line reason for a setting this model does not have or a bad value."""
        options = options or InferenceOptions()
        if not self.renders_from_maps:
            name = self.info.name
            if options.consistency:
                raise ValueError(f"{name}: data consistency applies to the physics model only")
            if options.flip_average:
                raise ValueError(f"{name}: flip averaging applies to the physics model only")
            if options.calibrate_peak is not None:
                raise ValueError(f"{name}: peak calibration applies to the physics model only")
            if options.keep_detail is not None:
                raise ValueError(f"{name}: keeping the input's detail applies to the physics model only")
            return self._defaults
        default = self._defaults
        weight = float(default.consistency if options.consistency is None else options.consistency)
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"data consistency must be between 0 and 1, got {weight:g}")
        return InferenceOptions(
            consistency=weight,
            flip_average=bool(default.flip_average if options.flip_average is None else options.flip_average),
            calibrate_peak=bool(default.calibrate_peak if options.calibrate_peak is None
                                else options.calibrate_peak),
            keep_detail=bool(default.keep_detail if options.keep_detail is None else options.keep_detail))

    # ------------------------------------------------------------------ requests
    def predict(self, volume: np.ndarray, target: Acquisition, input: Acquisition | None = None, *,
                options: InferenceOptions | None = None, progress: Progress | None = None,
                cancelled: CancelCheck | None = None) -> np.ndarray:
        """A (z, y, x) volume (or one 2-D image) at ``target``, in the input's intensity units.

        ``input`` is the volume's own acquisition (default: the Default-to-Param input,
        TE 50 ms / TR 4500 ms, the one a Default-to-Param model reads: another is refused).
        Acquisition times may be scalars or one value per slice. Each slice is scaled as the model reads it (a
        paper model: by its own maximum; a physics model: the volume at one level,
        :func:`volume_read`), predicted, and scaled back; NaN and infinite voxels (which the image does
        not measure) are treated as 0 and are NaN in the output.
        """
        return next(self.predict_many(volume, [target], input, options=options, progress=progress,
                                      cancelled=cancelled))

    def predict_many(self, volume: np.ndarray, targets: Sequence[Acquisition], input: Acquisition | None = None,
                     *, options: InferenceOptions | None = None, progress: Progress | None = None,
                     cancelled: CancelCheck | None = None) -> Iterator[np.ndarray]:
        """:meth:`predict` for several targets: the volumes, one per target, in order.

        A model that renders from maps computes them once, here, and renders each target
        when it is taken from the iterator; other models predict each target in turn.
        """
        targets = list(targets)
        if not all(isinstance(t, Acquisition) for t in targets):
            raise TypeError("predict takes each target as an Acquisition (Acquisition(te_ms, tr_ms, sequence, ...)); "
                            "predict_volume takes the times as numbers")
        data = magnitude_of(volume)
        for what, acquisition in [("the target", t) for t in targets] + [("the input", input)]:
            _refuse_other_slice_count(acquisition, _slice_count(data), what)
        options = self.resolve(options)
        if self.renders_from_maps:
            maps = self.compute_maps(data, input, options=options, progress=progress, cancelled=cancelled)
            return (self.render(maps, target).reshape(data.shape) for target in targets)
        self._warn_unstated(input)
        for target in targets:
            _spin_echo_only(self.info.name, target)
        if input is not None:
            self.refuse_unread_input(_as_acquisition(input).sequence)
            self._refuse_other_default_input(input)
        images, scale, nan, _ = _normalized_slices(data)

        def one(target):
            pred = self._predict_normalized(images, target, input, progress, cancelled) * scale
            pred[nan] = np.nan
            return pred.reshape(data.shape)

        return (one(target) for target in targets)

    def predict_volume(self, volume: np.ndarray, te_ms, tr_ms, input_te_ms=None, input_tr_ms=None, *,
                       sequence: str = "spin_echo", ti_ms=None, flip_deg=None, consistency=None,
                       flip_average=None, calibrate_peak=None, progress: Progress | None = None,
                       cancelled: CancelCheck | None = None, input_sequence: str = "spin_echo",
                       input_ti_ms=None, input_flip_deg=None, ti2_ms=None) -> np.ndarray:
        """:meth:`predict` with the acquisitions and options given as keywords (times in ms;
        a double inversion recovery's second TI as ``ti2_ms``; the input's sequence, TI and
        flip angle as ``input_sequence``, ``input_ti_ms`` and ``input_flip_deg``). A time or
        angle that is not a number, or one per slice, is a one-line ``TypeError`` or
        ``ValueError`` naming its parameter."""
        count = _slice_count(volume)
        for name, value in (("te_ms", te_ms), ("tr_ms", tr_ms)):
            _check_argument(name, value, count, required=True)
        for name, value in (("input_te_ms", input_te_ms), ("input_tr_ms", input_tr_ms), ("ti_ms", ti_ms),
                            ("flip_deg", flip_deg), ("input_ti_ms", input_ti_ms), ("input_flip_deg", input_flip_deg),
                            ("ti2_ms", ti2_ms)):
            _check_argument(name, value, count, required=False)
        refuse_unread(sequence, ti_ms=ti_ms, ti2_ms=ti2_ms, flip_deg=flip_deg)
        refuse_unread(input_sequence, "input_", ti_ms=input_ti_ms, flip_deg=input_flip_deg)
        target = Acquisition(te_ms, tr_ms, sequence, ti_ms, flip_deg, ti2_ms)
        given = _input_acquisition(input_te_ms, input_tr_ms, input_sequence, input_ti_ms, input_flip_deg)
        return self.predict(volume, target, given,
                            options=InferenceOptions(consistency, flip_average, calibrate_peak),
                            progress=progress, cancelled=cancelled)

    # ------------------------------------------------------------------ maps, then renders
    def compute_maps(self, volume: np.ndarray, input: Acquisition | None = None, *,
                     options: InferenceOptions | None = None, progress: Progress | None = None,
                     cancelled: CancelCheck | None = None) -> QuantitativeMaps:
        """Run a model that renders from maps once over a (z, y, x) volume (or 2-D image)."""
        if not self.renders_from_maps:
            raise ValueError(f"{self.info.name} is not a physics model; it predicts images, not maps")
        self._warn_unstated(input)
        options = self.resolve(options)
        images, scale, nan, shape = _normalized_slices(magnitude_of(volume))
        self._refuse_too_thin(shape)
        read, level = volume_read(images, scale)
        n = images.shape[0]
        given = _as_acquisition(input).per_slice(n)
        if self.device.type == "cpu":
            parts = self._cpu_maps(read, given, options, progress, cancelled)
        else:
            parts, start = [], 0
            while start < n:
                stop_if_cancelled(cancelled)
                sl = slice(start, min(n, start + self.batch_size))
                maps = self._guarded(self._maps_batch, read[sl], given.take(sl), options)
                if maps is None:
                    continue  # out of memory: retried with a smaller batch or on the CPU
                parts.append(maps)
                start = sl.stop
                if progress is not None:
                    progress(sl.stop - sl.start)
        joined = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        empty = empty_outside(images, nan)
        maps = QuantitativeMaps(**joined, scale=np.ones(n, np.float32), shape=shape, nan=nan,
                                empty=empty if empty.any() else None)
        maps.scale = render_scale(maps, read, level, given)
        if options.keep_detail:
            maps.guide = DetailGuide(images, maps.pd.shape[-2:])
        return maps

    def _cpu_maps(self, read: np.ndarray, given: Acquisition, options: InferenceOptions,
                  progress: Progress | None, cancelled: CancelCheck | None) -> list[dict]:
        """The maps of each batch of slices on the CPU, batches on threads of their own
        (:func:`~napari_mr_reparam.parallel.chunk_threads`): where other work holds a core,
        one batch waits for it, not every operation of each."""
        from .parallel import chunk_threads, in_order

        def batch(start):
            stop_if_cancelled(cancelled)
            sl = slice(start, min(len(read), start + self.batch_size))
            return sl.stop - sl.start, self._maps_batch(read[sl], given.take(sl), options)

        parts = []
        with chunk_threads() as workers:
            for count, maps in in_order(batch, range(0, len(read), self.batch_size), workers):
                parts.append(maps)
                if progress is not None:
                    progress(count)
        return parts

    def _warn_unstated(self, input: Acquisition | None) -> None:
        """A model that reads its input's acquisition, given none, reads the Default-to-Param
        input: said as a warning (pointing at the caller of the public method), as the
        command line says it in a notice, so that a script's result is not silently another's."""
        if input is None and self.task != "d2p":
            import sys

            frame, depth = sys._getframe(1), 2
            while frame is not None and frame.f_code.co_filename == __file__:
                frame, depth = frame.f_back, depth + 1
            warnings.warn(_UNSTATED_INPUT, UserWarning, stacklevel=depth)

    def _refuse_too_thin(self, shape) -> None:
        """A one-line ValueError where :meth:`thin_slices` finds the slices too thin."""
        why = self.thin_slices(shape)
        if why:
            raise ValueError(why)

    def thin_slices(self, shape) -> str:
        """Why slices of ``shape`` (..., h, w) are too thin for the network (empty when they
        are not): each side of the grid it works at must outlast its poolings (halvings)."""
        from .models.physics_net import work_grid

        depth, work_size = getattr(self.net, "depth", None), getattr(self.net, "work_size", None)
        if depth is None or work_size is None:
            return ""
        shape = tuple(shape)[-2:]
        view = shape if self.native_input else (NETWORK_SIZE, NETWORK_SIZE)
        grid = work_grid(view, work_size, self.native_input)
        need = 2 ** (depth - 1)
        if min(grid) >= need:
            return ""
        seen = "" if tuple(grid) == shape else f" (read at {grid[0]} x {grid[1]})"
        return (f"the slices are {shape[0]} x {shape[1]} pixels{seen}: too thin for {self.info.name}, "
                f"which needs {need} pixels or more along each side of a slice")

    def _maps_batch(self, chunk: np.ndarray, given: Acquisition, options: InferenceOptions) -> dict:
        torch = self._torch
        x = self._network_view(chunk)
        with torch.inference_mode():
            t = torch.from_numpy(np.ascontiguousarray(x))[:, None].to(self.device)
            maps = self.net.maps(t, torch.from_numpy(np.array(given.te_ms, np.float32)),
                                 torch.from_numpy(np.array(given.tr_ms, np.float32)),
                                 *_sequence_conditions(given),
                                 consistency=options.consistency, flip_average=options.flip_average,
                                 calibrate_peak=options.calibrate_peak)
        out = {k: maps[k][:, 0].float().cpu().numpy() for k in ("pd", "t1", "t2")}
        if "peak_count" in maps:
            out["peak_count"] = maps["peak_count"].cpu().numpy()
        return out

    def render(self, maps: QuantitativeMaps, target: Acquisition) -> np.ndarray:
        """An image volume at ``target`` from :meth:`compute_maps`' maps, in the input's units.

        The maps' signal at ``target`` times each slice's scale (:func:`render_scale`: so
        a tissue reads alike from slice to slice, and a darker contrast comes out darker), each slice
        clipped at its peak (its maximum, or the mean of as many of its brightest voxels as
        the input calibrated), brought to the input's size with the input's detail when the
        maps carry a guide (:class:`~napari_mr_reparam.detail.DetailGuide`).
        """
        if not isinstance(target, Acquisition):
            raise TypeError("render takes the target as an Acquisition")
        normalized, peak = _normalized_render(maps, target)
        top = (maps.scale * peak).astype(np.float32)
        if maps.guide is not None:
            out = maps.guide.upsample(normalized, top)
        else:
            out = np.clip(resize_slices(normalized, maps.shape), 0, 1) * top[:, None, None]
        if maps.empty is not None:
            out[maps.empty] = 0.0
        if maps.nan.any():
            out[maps.nan] = np.nan
        return out

    # ------------------------------------------------------------------ image models
    def _network_view(self, images: np.ndarray) -> np.ndarray:
        """Slices as the model reads them: resized to 256x256, or as they are (native)."""
        if self.native_input or images.shape[-2:] == (NETWORK_SIZE, NETWORK_SIZE):
            return images
        return resize_slices(images, NETWORK_SIZE)

    def _predict_normalized(self, images01: np.ndarray, target: Acquisition, input: Acquisition | None,
                            progress: Progress | None, cancelled: CancelCheck | None) -> np.ndarray:
        """Images (n, H, W) in [0, 1] at ``target``, in [0, 1], by a model that predicts
        images (resized to 256 and back, except for models that read their own grid)."""
        n = images01.shape[0]
        want, given = target.per_slice(n), _as_acquisition(input).per_slice(n)
        out = np.empty_like(images01)
        start = 0
        while start < n:
            stop_if_cancelled(cancelled)
            sl = slice(start, min(n, start + self.batch_size))
            result = self._guarded(self._run_batch, images01[sl], want.te_ms[sl], want.tr_ms[sl],
                                   given.te_ms[sl], given.tr_ms[sl])
            if result is None:
                continue  # out of memory: retried next time round with a smaller batch or on the CPU
            out[sl] = result
            start = sl.stop
            if progress is not None:
                progress(sl.stop - sl.start)
        return out

    def _guarded(self, fn, *args):
        """``fn(*args)``, or None after an out-of-memory error on an accelerator.

        The first answer to running out of GPU memory is to halve the batch size; at one
        slice per batch the model moves to the CPU. Each step is announced with a
        ``RuntimeWarning``. On the CPU the error propagates.
        """
        try:
            return fn(*args)
        except self._torch.cuda.OutOfMemoryError:  # the same class as torch.OutOfMemoryError
            if self.device.type == "cpu":
                raise
        self._release_cache()
        if self.batch_size > 1:
            self.batch_size = max(1, self.batch_size // 2)
            warnings.warn(f"out of {self.device.type.upper()} memory; retrying with batches of "
                          f"{self.batch_size} slices", RuntimeWarning, stacklevel=3)
        else:
            warnings.warn(f"out of {self.device.type.upper()} memory even one slice at a time; "
                          "falling back to the CPU", RuntimeWarning, stacklevel=3)
            self.device = self._torch.device("cpu")
            self.net = _placed(self.net, self.device)
        return None

    def _release_cache(self) -> None:
        if self.device.type == "cuda":
            self._torch.cuda.empty_cache()

    def _run_batch(self, images, te, tr, te_in, tr_in) -> np.ndarray:
        from .models.reparam import from_model_range, to_model_range

        torch = self._torch
        size = images.shape[-2:]
        x = self._network_view(images)
        dev = self.device
        with torch.inference_mode():
            t = to_model_range(torch.from_numpy(np.ascontiguousarray(x))[:, None].to(dev))
            args = [torch.from_numpy(np.array(a, np.float32)).to(dev) for a in (te, tr, te_in, tr_in)]
            y = from_model_range(self.net(t, *args)).clamp_(0, 1)[:, 0].float().cpu().numpy()
        return resize_slices(y, size) if y.shape[-2:] != size else y


def _signal(maps: QuantitativeMaps, acquisition: Acquisition) -> np.ndarray:
    """The maps' signal at ``acquisition`` on their own grid (float32)."""
    from . import physics

    te, tr, ti, flip, ti2 = (_per_slice_axes(v) for v in (acquisition.te_ms, acquisition.tr_ms,
                                                            acquisition.ti_ms, acquisition.flip_deg,
                                                            acquisition.ti2_ms))
    signal = physics.render(acquisition.sequence, maps.pd, maps.t1, maps.t2, te, tr, ti=ti, flip_deg=flip,
                            t2star=maps.t2, ti2=ti2)
    return np.asarray(signal, np.float32)


def _normalized_render(maps: QuantitativeMaps, acquisition: Acquisition) -> tuple[np.ndarray, np.ndarray]:
    """The maps rendered at ``acquisition`` on their own grid, each slice divided by its
    peak (of ``maps.peak_count`` voxels; a blank slice stays 0), and those peaks (z,)."""
    from . import peaks

    signal = _signal(maps, acquisition)
    peak = np.asarray(peaks.peak(signal, maps.peak_count), np.float32).reshape(-1)
    top = peak[:, None, None]
    return np.divide(signal, top, out=np.zeros_like(signal), where=top > 0), peak


#: Fewest voxels of a slice that tell the gain (:func:`~napari_mr_reparam.peaks.gain_voxels`)
#: for it to be rendered at the volume's; fewer: scaled down as :func:`read_scale` says.
MIN_GAIN_VOXELS = 100


def render_scale(maps: QuantitativeMaps, read: np.ndarray, level: float, given: Acquisition) -> np.ndarray:
    """Per slice (z,), the factor from the maps' signal to the input's units: the volume's
    one gain that brings their signal at the input's acquisition ``given`` to ``read`` (the
    input as the network read it; :func:`~napari_mr_reparam.peaks.input_gain`, on the maps'
    grid, voxels the input did not measure left out) times the ``level`` it was read at;
    one scale for every slice, so that a tissue reads alike in each. A slice with fewer
    than :data:`MIN_GAIN_VOXELS` voxels that tell the gain (noise alone, or little in it)
    is scaled down as :func:`read_scale` says: the network's maps of noise need not be dark.
    (A gain per slice, each slice's own median ratio averaged over nine slices, would carry
    the input's shading from slice to slice, but striped renders more: docs/experiments.md.)"""
    from .peaks import gain_and_voxels

    grid = maps.pd.shape[-2:]
    image = read if read.shape[-2:] == grid else resize_slices(read, grid)
    if maps.nan.any():
        unmeasured = resize_slices(maps.nan.astype(np.float32), grid) > 0
        image = np.where(unmeasured, np.float32(np.nan), image)
    gain, use = gain_and_voxels(_signal(maps, given), image)
    counts = use.reshape(len(image), -1).sum(axis=1)
    share = np.where(counts >= MIN_GAIN_VOXELS, 1.0, read_scale(read, 1.0))
    return (gain * level * share).astype(np.float32)


#: The warning of :meth:`Reparameterizer.predict_volume` where a model that reads any input
#: is told none: it reads the input as the Default-to-Param one.
_UNSTATED_INPUT = ("no input acquisition given: the input is read as TE 50 / TR 4500 ms (the "
                   "Default-to-Param input); give it (predict's input=Acquisition(...), Volume.acquisition() "
                   "where its file states it; predict_volume's input_te_ms and input_tr_ms)")


def _input_acquisition(te_ms, tr_ms, sequence: str = "spin_echo", ti_ms=None,
                       flip_deg=None) -> Acquisition | None:
    """The input's acquisition from optional TE/TR (ms) and its sequence, TI (ms) and flip
    angle; None when neither time is given to a spin echo. One time without the other, or
    a sequence without its times, is a one-line ``ValueError``: neither is guessed."""
    if te_ms is None and tr_ms is None and sequence == "spin_echo":
        return None
    missing = [name for name, value in (("input_te_ms", te_ms), ("input_tr_ms", tr_ms)) if value is None]
    if missing:
        given = "an input_sequence" if len(missing) == 2 else ("input_tr_ms" if te_ms is None else "input_te_ms")
        raise ValueError(f"{given} without {' and '.join(missing)}: give the input's TE and TR (ms) both; "
                         "neither is guessed")
    return Acquisition(te_ms, tr_ms, sequence, ti_ms, flip_deg)


def _sequence_conditions(given: Acquisition) -> tuple:
    """The network's input-sequence arguments: none for a spin echo (every physics
    network reads it), else the sequence with its TI and flip angle (0 where absent)."""
    if given.sequence == "spin_echo":
        return ()
    import torch

    def values(v):
        return torch.from_numpy(np.array(0.0 if v is None else v, np.float32))

    return given.sequence, values(given.ti_ms), values(given.flip_deg)


def _slice_count(volume) -> int:
    """How many slices a (z, y, x) volume (or a 2-D image: one) has."""
    return int(np.shape(volume)[0]) if np.ndim(volume) == 3 else 1


def _check_argument(name: str, value, count: int, required: bool) -> None:
    """A one-line ``TypeError`` for a time (``*_ms``) or angle (``*_deg``) argument that is
    not a number (or, when not ``required``, None), a ``ValueError`` for one that is
    neither one value nor one per slice of ``count``."""
    what = "a time in ms" if name.endswith("_ms") else "an angle in degrees"
    takes = f"{name} takes {what} (a number), or one per slice"
    if value is None:
        if required:
            raise TypeError(f"{takes}; got None")
        return
    if isinstance(value, (str, bytes, bool)):
        raise TypeError(f"{takes}; got {value!r}")
    try:
        values = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{takes}; got {type(value).__name__}") from None
    if values.ndim > 1 or (values.ndim == 1 and values.size != count):
        raise ValueError(f"{takes} ({count}); got {values.size} values" if values.ndim == 1 else
                         f"{takes} ({count}); got an array of shape {values.shape}")


def _refuse_other_slice_count(acquisition: Acquisition | None, count: int, what: str) -> None:
    """A one-line ``ValueError`` for an acquisition whose times are given per slice for
    another number of slices than the volume's ``count``."""
    if not isinstance(acquisition, Acquisition):
        return  # None, or not an Acquisition: refused where it is read
    for field in ("te_ms", "tr_ms", "ti_ms", "flip_deg", "ti2_ms"):
        value = getattr(acquisition, field)
        if np.ndim(value) == 1 and np.size(value) != count:
            raise ValueError(f"{what}'s {field} gives {np.size(value)} values for a volume of {count} slices; "
                             "give one value, or one per slice")


def _as_acquisition(given: Acquisition | None) -> Acquisition:
    if given is None:
        return Acquisition.default()
    if not isinstance(given, Acquisition):
        raise TypeError("the input's acquisition is an Acquisition (or None for the default)")
    return given


def _spin_echo_only(name: str, target: Acquisition) -> None:
    if not isinstance(target, Acquisition):
        raise TypeError("targets are Acquisition values")
    if target.sequence != "spin_echo":
        raise ValueError(f"{name} predicts spin-echo images only; the physics model renders "
                         f"{target.sequence.replace('_', ' ')}")


def _per_slice_axes(value):
    """A time given per slice shaped (n, 1, 1), to broadcast over (n, h, w) maps, or a
    scalar; float32 either way, as the maps are, so a render is computed in single
    precision (twice as fast as double on a CPU, and the same for one value or many);
    None as it is."""
    if value is None:
        return None
    return np.asarray(value, np.float32).reshape(-1, 1, 1) if np.ndim(value) == 1 else np.float32(value)


def require_contrast(data: np.ndarray) -> None:
    """Raise ``ValueError`` for a volume with no image in it: empty, all NaN, one value, or
    no voxel above 0 (an MR magnitude image has positive signal)."""
    finite = np.isfinite(data)
    finite = data if finite.all() else data[finite]  # no copy of a volume without NaN
    if finite.size == 0:
        raise ValueError("the volume holds no image: " + ("it is empty" if data.size == 0 else
                                                          "every voxel is NaN or infinite"))
    low, high = float(finite.min()) + 0.0, float(finite.max()) + 0.0  # + 0.0: -0 reads as 0
    if low == high:
        some = "" if finite is data else " measured"  # some NaN or infinite besides
        raise ValueError(f"the volume holds no image: every{some} voxel is {low:g}")
    if high <= 0:
        raise ValueError(f"the volume holds no image: no voxel is above 0 (the largest is {high:g}); an MR "
                         "magnitude image has positive signal, so give the magnitude image")
    require_magnitude(finite)


#: A volume is signed (a real-valued reconstruction, not a magnitude image) where more than
#: :data:`SIGNED_SHARE` of its voxels lie below -:data:`SIGNED_DEPTH` times its bright
#: signal (99.5th percentile of the magnitudes): far below what noise or ringing around zero
#: reaches.
SIGNED_DEPTH, SIGNED_SHARE = 0.2, 0.01


def require_magnitude(data: np.ndarray) -> None:
    """Raise ``ValueError`` for finite voxel values that are signed (:data:`SIGNED_DEPTH`;
    read on a regular sample of about 200 000 of them): an inversion recovery's
    real-valued image, say, which the models, made for magnitude images, would misread."""
    values = np.asarray(data, np.float32).reshape(-1)
    sample = values[::max(1, values.size // 200_000)]  # as bright_level reads a volume
    sample = sample[np.isfinite(sample)]
    if sample.size == 0 or float(sample.min()) >= 0:
        return
    bright = float(np.percentile(np.abs(sample), 99.5))  # of the magnitudes: an image mostly below 0 too
    below = float(np.mean(sample < -SIGNED_DEPTH * bright)) if bright > 0 else 0.0
    if below > SIGNED_SHARE:
        raise ValueError(f"the volume holds signed values ({100 * below:.0f} % of its voxels below "
                         f"-{100 * SIGNED_DEPTH:.0f} % of its bright signal, down to {float(np.nanmin(values)):g}): "
                         "a real-valued reconstruction, not a magnitude image; give the magnitude (absolute value)")


def input_read_by(engine, input: Acquisition | None) -> Acquisition | None:
    """The input acquisition to state in a request to ``engine`` for images acquired as
    ``input``: None for a Default-to-Param model, which reads every input as its one
    acquisition (and refuses to be told another one), ``input`` otherwise. For scoring what
    each model does with the same images (evaluation, benchmarks)."""
    return None if getattr(engine, "task", None) == "d2p" else input


def magnitude_of(volume) -> np.ndarray:
    """A volume as float32; a complex one as its magnitude, with a ``UserWarning`` saying
    so (as the command line says it of a complex NIfTI file), not its real part."""
    data = np.asarray(volume)
    if np.iscomplexobj(data):
        warnings.warn("complex voxel values; their magnitude is read", UserWarning, stacklevel=3)
        data = np.abs(data)
    return np.asarray(data, np.float32)


def as_measured(data: np.ndarray) -> np.ndarray:
    """``data`` (float32) with its infinite voxels made NaN: voxels the image does not
    measure, as NaN ones are (no copy where every voxel is finite or NaN)."""
    data = np.asarray(data, np.float32)
    infinite = np.isinf(data)
    return np.where(infinite, np.float32(np.nan), data) if infinite.any() else data


#: The percentile of a volume's tissue voxels (those above 2 % of its maximum) at which a
#: physics network reads every slice of it (:func:`volume_read`).
VOLUME_READ_PERCENTILE = 99.9


def volume_read(images: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, float]:
    """Slices as a physics network reads them: all at one level, the
    :data:`VOLUME_READ_PERCENTILE`-th percentile of the volume's tissue, clipped to [0, 1]
    (training normalizes a share of its images so), rather than each at its own maximum,
    which a few bright voxels (vessels, fat) set lower in some slices than in others: the
    same tissue then reads alike from slice to slice. ``images``: the slices at their own
    maximum, ``scale`` (z, 1, 1) those maxima (:func:`_normalized_slices`). Returns the
    slices so read and the level (input units)."""
    absolute = images * scale
    top = float(absolute.max())
    tissue = absolute[absolute > 0.02 * top]  # a copy: ordered in place for the percentile
    level = _percentile_in_place(tissue, VOLUME_READ_PERCENTILE) if tissue.size else top
    if level <= 0:
        return images, top
    absolute /= level
    return np.clip(absolute, 0.0, 1.0, out=absolute), level


def _percentile_in_place(values: np.ndarray, q: float) -> float:
    """``np.percentile(values, q)`` (linear), partly ordering ``values`` in place: a
    volume's tissue is not copied again (a third of a second for 256x256x180 voxels)."""
    position = (values.size - 1) * q / 100.0
    low = int(np.floor(position))
    high = min(low + 1, values.size - 1)
    values.partition([low, high])
    return float(values[low] + (values[high] - values[low]) * (position - low))


#: A slice whose brightest voxel reads below this share of the volume's level holds little
#: tissue (the first or last of a head): where few of its voxels tell the gain, its render
#: is scaled down with it (:func:`read_scale`), since the network's maps of noise need not be dark.
SPARSE_SLICE_SHARE = 0.5


def read_scale(read: np.ndarray, level: float) -> np.ndarray:
    """``level`` (z,) for each slice, less for a slice that holds little (its brightest
    voxel below :data:`SPARSE_SLICE_SHARE` of the level in ``read``), whose noise the
    network may read as tissue: the scale of a slice in which few voxels tell the gain
    (:func:`render_scale`)."""
    top = read.reshape(read.shape[0], -1).max(axis=1)
    return (level * np.minimum(1.0, top / SPARSE_SLICE_SHARE)).astype(np.float32)


def empty_outside(images: np.ndarray, nan: np.ndarray) -> np.ndarray:
    """The voxels of slices ``images`` (z, h, w) stored without signal (0 or below; NaN read
    as 0 aside) that reach a slice's edge through other such voxels: air stored as 0 around
    a head, the outside of a skull-stripped brain's mask. Dark tissue that an 8-bit or
    windowed image stores as 0 inside the head (CSF in a T1-weighted picture) is enclosed by
    brighter voxels, and is not among them: its render comes from its maps."""
    from scipy import ndimage

    zero = (images <= 0) & ~nan
    if not zero.any():
        return zero
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[1] = ndimage.generate_binary_structure(2, 1)
    labels, _ = ndimage.label(zero, structure=in_plane)
    edge = np.unique(np.concatenate([labels[:, 0].ravel(), labels[:, -1].ravel(), labels[:, :, 0].ravel(),
                                     labels[:, :, -1].ravel()]))
    return np.isin(labels, edge[edge > 0])


def _normalized_slices(volume: np.ndarray):
    """Slices scaled to their own maximum: (images in [0, 1], scale (z,1,1), mask of the
    voxels not measured (NaN or infinite), (h, w))."""
    data = np.asarray(volume, np.float32)
    flat = data[None] if data.ndim == 2 else data
    if flat.ndim != 3:
        raise ValueError(f"expected a 2-D image or a 3-D volume, got shape {data.shape}")
    require_contrast(flat)
    nan = ~np.isfinite(flat)
    clean = np.where(nan, 0.0, flat) if nan.any() else flat  # read only: no copy when all are finite
    scale = np.maximum(clean.max(axis=(1, 2), keepdims=True), 0.0)
    images = np.divide(clean, scale, out=np.zeros_like(clean), where=scale > 0)
    return np.clip(images, 0, 1, out=images), scale, nan, flat.shape[-2:]

