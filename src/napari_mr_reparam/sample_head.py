"""Sample data made by the simulator (offline): a head at the Default-to-Param input
acquisition, and the same head at other TE/TR as ground truths.

Each layer's metadata: ``te_ms``, ``tr_ms``, ``sequence`` ('spin_echo') and ``phantom``.
Intensities are the signal equation's (PD 1: water) times 1000, like scanner units, with one
receiver gain for all four images and every slice, as a scanner's series of one subject
has, so that the images can be fitted together (joint maps): images normalized each to its
own maximum, slice by slice, would carry a gain of their own per slice.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from . import DEFAULT_TE_MS, DEFAULT_TR_MS
from .io import AXIS_LABELS

#: The input acquisition and the ground-truth ones (TE, TR in ms): T1w, PDw, T2w.
INPUT_ACQ = (DEFAULT_TE_MS, DEFAULT_TR_MS)
TRUTH_ACQS = ((20.0, 600.0), (20.0, 6000.0), (120.0, 6000.0))
SLICES, SIZE, UNITS = 24, 256, 1000.0
PHANTOM = "mni152"
#: Tissue values of the head: the 3 T literature table, whose CSF (T1 4.2 s, T2 1.65 s) is as
#: real scans show it (BrainWeb's, the MNI152 phantom's default, has CSF and scalp at T1 2.6 s,
#: T2 0.33 s: dark fluid at long TE that no scan shows).
TABLE = "3t"


@lru_cache(maxsize=1)
def sample_volumes() -> tuple:
    """Layer tuples of the input head followed by its ground truths (computed once)."""
    from .phantoms import load_phantom
    from .simulate import Acquisition, choose_slices, render_slices

    phantom = load_phantom(PHANTOM, table=TABLE)
    index = choose_slices(phantom, SLICES)
    spacing = _spacing(phantom, index)
    layers = []
    for te, tr in (INPUT_ACQ, *TRUTH_ACQS):
        images = on_head_grid(render_slices(phantom, Acquisition(te, tr), index))
        meta = {"te_ms": te, "tr_ms": tr, "sequence": "spin_echo", "phantom": phantom.name}
        kwargs = {"name": f"head TE{te:g} TR{tr:g}", "scale": spacing, "metadata": meta, "colormap": "gray",
                  "axis_labels": AXIS_LABELS}
        layers.append(((images * UNITS).astype(np.float32), kwargs, "image"))
    return tuple(layers)


def on_head_grid(signal: np.ndarray) -> np.ndarray:
    """Slices of the phantom's signal (or of any map) laid out as the head's layers are:
    padded square, resized to ``SIZE`` pixels, no negative values."""
    from .resize import resize_slices
    from .simulate import pad_to_square

    return np.clip(resize_slices(pad_to_square(np.asarray(signal, np.float32)), SIZE), 0.0, None)


def _spacing(phantom, index: np.ndarray) -> tuple[float, float, float]:
    """(z, y, x) mm: the gap between the chosen slices; in-plane, the phantom's voxel
    size scaled by the resize from the padded square to ``SIZE``."""
    gap = float(np.median(np.diff(index))) if len(index) > 1 else 1.0
    side = max(phantom.shape[1:])
    dz, dy, dx = phantom.voxel_size_mm
    return gap * dz, side * dy / SIZE, side * dx / SIZE


def _fresh(layer: tuple) -> tuple:
    """A copy of a cached layer tuple, so that viewers never share arrays or metadata."""
    data, kwargs, kind = layer
    return data.copy(), {**kwargs, "metadata": dict(kwargs["metadata"])}, kind


def make_sample_head() -> list[tuple]:
    """The head at TE 50 / TR 4500 ms: the Default-to-Param input."""
    return [_fresh(sample_volumes()[0])]


def make_sample_ground_truths() -> list[tuple]:
    """The same head, T1-weighted (TE 20/TR 600), PD-weighted (TE 20/TR 6000) and
    T2-weighted (TE 120/TR 6000 ms)."""
    return [_fresh(layer) for layer in sample_volumes()[1:]]


def make_sample_all() -> list[tuple]:
    """The input head followed by its ground truths."""
    return [_fresh(layer) for layer in sample_volumes()]
