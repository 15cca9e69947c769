"""Sample data made by the simulator (offline): a head at the Default-to-Param input
acquisition, and the same head at other TE/TR as ground truths."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from . import DEFAULT_TE_MS, DEFAULT_TR_MS

#: The input and the ground-truth acquisitions (TE, TR in ms).
INPUT_ACQ = (DEFAULT_TE_MS, DEFAULT_TR_MS)
TRUTH_ACQS = ((20.0, 600.0), (20.0, 6000.0), (120.0, 6000.0))
SLICES, SIZE, UNITS = 24, 256, 1000.0


@lru_cache(maxsize=1)
def sample_volumes() -> tuple:
    """Layer tuples of the input head and its ground truths (cached)."""
    from .phantoms import load_phantom
    from .simulate import Acquisition, choose_slices, simulate_images

    phantom = load_phantom("mni152")
    index = choose_slices(phantom, SLICES)
    side = max(phantom.shape[1:])
    spacing = (float(np.median(np.diff(index))) * phantom.voxel_size_mm[0],
               side * phantom.voxel_size_mm[1] / SIZE, side * phantom.voxel_size_mm[2] / SIZE)
    layers = []
    for te, tr in (INPUT_ACQ, *TRUTH_ACQS):
        data = simulate_images(phantom, Acquisition(te, tr), index, SIZE, quantize=False, pad_square=True)
        name = f"head TE{te:g} TR{tr:g}"
        meta = {"te_ms": te, "tr_ms": tr, "sequence": "spin_echo", "phantom": phantom.name}
        layers.append(((data * UNITS).astype(np.float32),
                       {"name": name, "scale": spacing, "metadata": meta, "colormap": "gray"}, "image"))
    return tuple(layers)


def _fresh(layer: tuple) -> tuple:
    """A copy of a cached layer tuple, so viewers never share arrays or metadata."""
    data, kwargs, kind = layer
    return data.copy(), {**kwargs, "metadata": dict(kwargs["metadata"])}, kind


def make_sample_head():
    """The head at TE 50 / TR 4500 ms: the Default-to-Param input."""
    return [_fresh(sample_volumes()[0])]


def make_sample_all():
    """The input head followed by its ground truths (T1-, PD- and T2-weighted)."""
    return [_fresh(layer) for layer in sample_volumes()]
