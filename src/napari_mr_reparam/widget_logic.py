"""Qt-free pieces of the widget: requests, the newest-wins queue, engines, comparisons."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

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


class RequestQueue:
    """Holds at most one waiting request: a newer one replaces it (stale ones drop)."""

    def __init__(self):
        self._pending: Request | None = None
        self.dropped = 0

    def put(self, request: Request) -> None:
        if self._pending is not None:
            self.dropped += 1
        self._pending = request

    def take(self) -> Request | None:
        request, self._pending = self._pending, None
        return request


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


class MapsCache:
    """The physics model's maps per input layer, model, device, input TE/TR,
    data-consistency weight and flip averaging.

    Entries hold the layer's data array, so a layer whose data is replaced, or another
    layer, never gets another volume's maps.
    """

    def __init__(self):
        self._entries: dict[tuple, tuple] = {}

    @staticmethod
    def _key(request: Request) -> tuple:
        return (id(request.layer), request.model, request.device, request.input_te, request.input_tr,
                request.consistency, request.flip_average)

    def get(self, request: Request):
        entry = self._entries.get(self._key(request))
        if entry is None or entry[0] is not request.layer.data:
            return None
        return entry[1]

    def put(self, request: Request, engine, maps) -> None:
        self._entries[self._key(request)] = (request.layer.data, (engine, maps))

    def forget(self, layer) -> None:
        self._entries = {k: v for k, v in self._entries.items() if k[0] != id(layer)}


def join_maps(parts: list):
    """One :class:`~napari_mr_reparam.inference.QuantitativeMaps` from slice chunks."""
    from .inference import QuantitativeMaps

    if len(parts) == 1:
        return parts[0]
    fields = {k: np.concatenate([getattr(p, k) for p in parts]) for k in ("pd", "t1", "t2", "scale", "nan")}
    counts = [np.broadcast_to(p.peak_count, p.scale.shape) for p in parts]
    return QuantitativeMaps(**fields, shape=parts[0].shape, peak_count=np.concatenate(counts))


SEQUENCE_TAGS = {"spin_echo": "", "inversion_recovery": "IR ", "gradient_echo": "GRE "}


def layer_names(model: str, te: float, tr: float, sequence: str = "spin_echo", ti: float | None = None,
                flip_deg: float | None = None) -> dict[str, str]:
    """Names of the output layers for a model and target (ms)."""
    tag = f"{model} {SEQUENCE_TAGS.get(sequence, '')}TE{te:g} TR{tr:g}"
    if ti is not None:
        tag += f" TI{ti:g}"
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
