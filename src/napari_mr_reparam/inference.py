"""The inference engine: load a model once, run it over slices in batches.

:class:`Reparameterizer` is the one entry point used by the command line, the napari
plugin and the evaluation alike. It chooses the device, normalizes each slice as the
model was trained (its own maximum -> [0, 1] -> [-1, 1] at 256x256), runs batches
under ``torch.inference_mode``, and undoes the normalization so predictions come back
in the input's intensity units and size. Times are in milliseconds.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import DEFAULT_TE_MS, DEFAULT_TR_MS
from .simulate import resize_slices
from .units import refuse_seconds

#: The acquisition range the bundled models were trained on (ms), per parameter.
TRAINED_RANGE_MS = {"te": (20.0, 1000.0), "tr": (1200.0, 10000.0)}
NETWORK_SIZE = 256


@dataclass
class QuantitativeMaps:
    """PD (relative), T1 and T2 (ms) maps of a volume from the physics model.

    The maps are stored at the model's working resolution, (z, h, w); ``scale`` holds
    each input slice's maximum (to return renders in the input's units), ``shape`` the
    input's in-plane size, ``nan`` where the input had no value and ``peak_count`` how
    many of each slice's brightest voxels a render is normalized by (1, the maximum,
    unless the input calibrated more: :mod:`napari_mr_reparam.peaks`).
    """

    pd: np.ndarray
    t1: np.ndarray
    t2: np.ndarray
    scale: np.ndarray
    shape: tuple
    nan: np.ndarray
    peak_count: np.ndarray | int = 1

    def at_input_size(self) -> dict[str, np.ndarray]:
        """The maps resized to the input's in-plane size (for display), NaN where it had none."""
        out = {}
        for key in ("pd", "t1", "t2"):
            m = resize_slices(getattr(self, key), self.shape)
            m[self.nan] = np.nan
            out[key] = m
        return out


class Cancelled(Exception):
    """Raised inside a prediction when its ``cancelled`` callback answers True."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    arch: str
    task: str
    width: float
    card: dict


def known_models() -> list[str]:
    from .weights import bundled_names

    return [n for n in bundled_names() if not n.startswith("_")]


def out_of_range_warnings(te_ms: float, tr_ms: float) -> list[str]:
    """Human-readable warnings for a target outside the trained range."""
    out = []
    for key, value in (("te", te_ms), ("tr", tr_ms)):
        lo, hi = TRAINED_RANGE_MS[key]
        if not lo <= value <= hi:
            out.append(f"{key.upper()} {value:g} ms is outside the trained range "
                       f"{lo:g}-{hi:g} ms; the prediction is an extrapolation")
    return out


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


class Reparameterizer:
    """A loaded model that predicts images at new acquisition parameters.

    Parameters
    ----------
    model : str
        A bundled model name (``d2p``, ``p2p``) or a weights file path.
    weights : str, optional
        A weights file (.safetensors or .pt checkpoint) that overrides ``model``.
    device : str
        ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda`` or ``mps``.
    batch_size : int
        Slices per forward pass.
    consistency : float, optional
        Physics model only: the data-consistency weight in [0, 1] (see
        :class:`~napari_mr_reparam.models.physics_net.PhysicsNet`); default
        :data:`napari_mr_reparam.DEFAULT_CONSISTENCY`.
    flip_average : bool
        Physics model only: average its raw maps over each slice and its left-right
        mirror (twice the map cost; see
        :attr:`~napari_mr_reparam.models.physics_net.PhysicsNet.flip_average`).
    calibrate_peak : bool, optional
        Physics model only: normalize renders by the peak the input calibrates
        (:mod:`napari_mr_reparam.peaks`; the default) rather than by their maximum.
    """

    def __init__(self, model: str = "d2p", weights: str | None = None, device: str = "auto",
                 batch_size: int = 8, consistency: float | None = None, flip_average: bool = False,
                 calibrate_peak: bool | None = None):
        import torch

        from .devices import choose_device
        from .weights import WeightsError, load_weights, names_a_file

        source = weights or model
        try:
            state, card = load_weights(source)
        except WeightsError as exc:
            if weights is None and not names_a_file(model) and "no weights" in str(exc):
                raise ValueError(f"unknown model {model!r}; known: {', '.join(known_models())}") from None
            raise
        if "arch" not in card:
            raise WeightsError(f"{source}: no card says which model these weights belong to; "
                               "keep the .json card beside the .safetensors file")
        self.info = ModelInfo(name=str(card.get("name", source)), arch=card["arch"],
                              task=card.get("task", "d2p"), width=float(card.get("width", 1.0)), card=card)
        self.device = choose_device(device)
        self.batch_size = max(1, int(batch_size))
        net = build_model(card)
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise WeightsError(f"{source}: weights do not fit the {card['arch']} model "
                               f"({len(missing)} missing, {len(unexpected)} unexpected tensors)")
        self.net = net.eval().to(self.device)
        self._torch = torch
        self.consistency = consistency
        self.flip_average = flip_average
        self.calibrate_peak = calibrate_peak

    @property
    def calibrate_peak(self) -> bool:
        """Whether the physics network's renders are normalized by the peak the input
        calibrates (False for other models, which do not render)."""
        return bool(getattr(self.net, "calibrate_peak", False))

    @calibrate_peak.setter
    def calibrate_peak(self, on: bool | None) -> None:
        if not self.renders:
            if on is not None:
                raise ValueError(f"{self.info.name}: peak calibration applies to the physics model only")
            return
        self.net.calibrate_peak = True if on is None else bool(on)

    @property
    def flip_average(self) -> bool:
        """Whether the physics network averages its maps over each slice and its mirror
        (False for other models)."""
        return bool(getattr(self.net, "flip_average", False))

    @flip_average.setter
    def flip_average(self, on: bool) -> None:
        if not self.renders:
            if on:
                raise ValueError(f"{self.info.name}: flip averaging applies to the physics model only")
            return
        self.net.flip_average = bool(on)

    @property
    def consistency(self) -> float | None:
        """The physics network's data-consistency weight (None for other models)."""
        return self._consistency

    @consistency.setter
    def consistency(self, weight: float | None) -> None:
        from . import DEFAULT_CONSISTENCY
        from .models.physics_net import PhysicsNet

        if not isinstance(self.net, PhysicsNet):
            if weight:
                raise ValueError(f"{self.info.name}: data consistency applies to the physics model only")
            self._consistency = None
            return
        weight = DEFAULT_CONSISTENCY if weight is None else float(weight)
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"data consistency must be between 0 and 1, got {weight}")
        self.net.consistency = self._consistency = weight

    @property
    def task(self) -> str:
        return self.info.task

    @property
    def native_input(self) -> bool:
        """True when the model reads slices on their own grid (not resized to 256x256)."""
        return bool(getattr(self.net, "native_input", False))

    def _network_view(self, images: np.ndarray) -> np.ndarray:
        """Slices as the model reads them: resized to 256x256, or as they are (native)."""
        if self.native_input or images.shape[-2:] == (NETWORK_SIZE, NETWORK_SIZE):
            return images
        return resize_slices(images, NETWORK_SIZE)

    @property
    def renders(self) -> bool:
        """True for the physics model: maps once, then any acquisition by formula."""
        return self.info.arch == "physics"

    def predict_images(self, images01: np.ndarray, te_ms, tr_ms, input_te_ms=None, input_tr_ms=None,
                       progress: Callable[[int], None] | None = None,
                       cancelled: Callable[[], bool] | None = None) -> np.ndarray:
        """Predict normalized images.

        ``images01`` is (n, H, W) in [0, 1] (any H, W: resized to 256 and back, except
        for models that read images on their own grid);
        target and input times are scalars or arrays of length n, in ms. Default-to-Param
        ignores the input times. Returns (n, H, W) float32 in [0, 1].
        """
        refuse_seconds(te=te_ms, tr=tr_ms, input_te=input_te_ms, input_tr=input_tr_ms)
        images01 = np.asarray(images01, np.float32)
        n = images01.shape[0]
        te, tr = np.broadcast_to(np.float32(te_ms), n), np.broadcast_to(np.float32(tr_ms), n)
        te_in = np.broadcast_to(np.float32(DEFAULT_TE_MS if input_te_ms is None else input_te_ms), n)
        tr_in = np.broadcast_to(np.float32(DEFAULT_TR_MS if input_tr_ms is None else input_tr_ms), n)
        out = np.empty_like(images01)
        start = 0
        while start < n:
            if cancelled is not None and cancelled():
                raise Cancelled()
            sl = slice(start, min(n, start + self.batch_size))
            result = self._guarded(self._run_batch, images01[sl], te[sl], tr[sl], te_in[sl], tr_in[sl])
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
            self.net = self.net.to(self.device)
        return None

    def _release_cache(self) -> None:
        if self.device.type == "cuda":
            self._torch.cuda.empty_cache()

    def _run_batch(self, images, te, tr, te_in, tr_in) -> np.ndarray:
        torch = self._torch
        size = images.shape[-2:]
        x = self._network_view(images)
        dev = self.device
        with torch.inference_mode():
            t = torch.from_numpy(np.ascontiguousarray(x))[:, None].to(dev) * 2 - 1
            args = [torch.from_numpy(np.array(a, np.float32)).to(dev) for a in (te, tr, te_in, tr_in)]
            y = ((self.net(t, *args) + 1) / 2).clamp_(0, 1)[:, 0].float().cpu().numpy()
        return resize_slices(y, size) if y.shape[-2:] != size else y

    def compute_maps(self, volume: np.ndarray, input_te_ms: float | None = None,
                     input_tr_ms: float | None = None, progress=None, cancelled=None) -> QuantitativeMaps:
        """Run the physics model once over a (z, y, x) volume (or 2-D image)."""
        if not self.renders:
            raise ValueError(f"{self.info.name} is not a physics model; it predicts images, not maps")
        refuse_seconds(input_te=input_te_ms, input_tr=input_tr_ms)
        images, scale, nan, shape = _normalized_slices(volume)
        te_in = DEFAULT_TE_MS if input_te_ms is None else input_te_ms
        tr_in = DEFAULT_TR_MS if input_tr_ms is None else input_tr_ms
        parts, start = [], 0
        while start < images.shape[0]:
            if cancelled is not None and cancelled():
                raise Cancelled()
            chunk = images[start:start + self.batch_size]
            maps = self._guarded(self._maps_batch, chunk, float(te_in), float(tr_in))
            if maps is None:
                continue  # out of memory: retried with a smaller batch or on the CPU
            parts.append(maps)
            start += len(chunk)
            if progress is not None:
                progress(len(chunk))
        joined = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        return QuantitativeMaps(**joined, scale=scale[:, 0, 0], shape=shape, nan=nan)

    def _maps_batch(self, chunk: np.ndarray, te_in: float, tr_in: float) -> dict[str, np.ndarray]:
        torch = self._torch
        x = self._network_view(chunk)
        with torch.inference_mode():
            t = torch.from_numpy(np.ascontiguousarray(x))[:, None].to(self.device)
            n = t.shape[0]
            maps = self.net.maps(t, torch.full((n,), te_in), torch.full((n,), tr_in))
        out = {k: maps[k][:, 0].float().cpu().numpy() for k in ("pd", "t1", "t2")}
        if "peak_count" in maps:
            out["peak_count"] = maps["peak_count"].cpu().numpy()
        return out

    def render(self, maps: QuantitativeMaps, te_ms: float, tr_ms: float, sequence: str = "spin_echo",
               ti_ms: float | None = None, flip_deg: float | None = None) -> np.ndarray:
        """An image volume at any acquisition from :meth:`compute_maps`' maps (input units).

        Each slice is normalized to its peak (its maximum, or the mean of as many of its
        brightest voxels as the input calibrated), as the network's own renders are, and
        scaled back by the input slice's maximum.
        """
        from . import peaks, physics

        refuse_seconds(te=te_ms, tr=tr_ms, ti=ti_ms)
        signal = physics.render(sequence, maps.pd, maps.t1, maps.t2, te_ms, tr_ms, ti=ti_ms,
                                flip_deg=flip_deg, t2star=maps.t2)
        normalized = peaks.normalize(np.asarray(signal, np.float32), maps.peak_count)
        images = np.clip(resize_slices(normalized, maps.shape), 0, 1)
        out = images * maps.scale[:, None, None]
        out[maps.nan] = np.nan
        return out

    def predict_volume(self, volume: np.ndarray, te_ms: float, tr_ms: float,
                       input_te_ms: float | None = None, input_tr_ms: float | None = None,
                       progress=None, cancelled=None) -> np.ndarray:
        """Predict a (z, y, x) volume (or one 2-D image) in the input's intensity units.

        Each slice is scaled by its own maximum as in training, predicted, and scaled
        back. NaN voxels are treated as 0 and stay NaN in the output.
        """
        data = np.asarray(volume, np.float32)
        if self.renders:
            maps = self.compute_maps(data, input_te_ms, input_tr_ms, progress, cancelled)
            return self.render(maps, te_ms, tr_ms).reshape(data.shape)
        images, scale, nan, _ = _normalized_slices(data)
        pred = self.predict_images(images, te_ms, tr_ms, input_te_ms, input_tr_ms,
                                   progress=progress, cancelled=cancelled) * scale
        pred[nan] = np.nan
        return pred.reshape(data.shape)


def require_contrast(data: np.ndarray) -> None:
    """Raise ``ValueError`` for a volume with no image in it: empty, all NaN, or one value."""
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        raise ValueError("the volume holds no image: " + ("it is empty" if data.size == 0 else
                                                          "every voxel is NaN or infinite"))
    if finite.min() == finite.max():
        raise ValueError(f"the volume holds no image: every voxel is {float(finite.min()):g}")


def _normalized_slices(volume: np.ndarray):
    """Slices scaled to their own maximum: (images in [0, 1], scale (z,1,1), NaN mask, (h, w))."""
    data = np.asarray(volume, np.float32)
    flat = data[None] if data.ndim == 2 else data
    if flat.ndim != 3:
        raise ValueError(f"expected a 2-D image or a 3-D volume, got shape {data.shape}")
    require_contrast(flat)
    nan = np.isnan(flat)
    clean = np.where(nan, 0.0, flat)
    scale = np.maximum(clean.max(axis=(1, 2), keepdims=True), 0.0)
    images = np.divide(clean, scale, out=np.zeros_like(clean), where=scale > 0).clip(0, 1)
    return images, scale, nan, flat.shape[-2:]

