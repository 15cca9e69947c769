"""Tissue fractions: a head built around a brain's, sharpening, and the maps they give.

The toolkit behind every phantom built from tissue classes (the MNI152 head,
segmentations, random training heads): per-tissue fraction volumes on an axial grid
(:data:`VOXEL_MM` voxels), a procedural head of distance shells around a brain
(:func:`head_around_brain`: a CSF layer, the inner skull table, marrow, the outer table,
muscle, thicker at the temples, subcutaneous fat and skin), sharpening of soft
probability maps toward their dominant tissue (:func:`sharpen_fractions`), and PD, T1,
T2 and T2* maps of a tissue table mixed by the fractions (:func:`maps_from_fractions`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..physics import water_mean_time
from ..tissues import TISSUES, TissueTable

#: Voxel size of the phantom (mm, isotropic).
VOXEL_MM = 2.0
#: CSF layer between the brain hull and the inner skull table (mm).
CSF_SHELL_MM = 2.5
#: Layers outside the intracranial space, inside out: (tissue, thickness in mm).
HEAD_SHELLS = (("skull", 2.0), ("marrow", 2.5), ("skull", 2.0), ("muscle", 3.0),
               ("fat", 3.5), ("skin", 2.0))
#: Extra muscle thickness at the temples (temporalis), lateral and low on the head (mm).
TEMPORAL_MUSCLE_MM = 6.0
#: Concavities of the intracranial space narrower than about this radius become bone (mm).
SKULL_CLOSING_MM = 10.0
#: Empty voxels kept around the skin, except inferiorly where the grid is cut.
MARGIN_VOXELS = 3
#: Smoothing (voxels) that gives the shells partial-volume edges.
EDGE_SIGMA = 0.6

#: Brain tissues (the three a brain segmentation or template gives).
BRAIN_TISSUES = ("grey_matter", "white_matter", "csf")

_MAPS = ("pd", "t1", "t2", "t2star")


def block_mean(volume: np.ndarray, k: int) -> np.ndarray:
    """Average non-overlapping ``k``-voxel cubes (trailing partial blocks dropped)."""
    if k <= 1:
        return volume
    n = [s // k for s in volume.shape]
    v = volume[: n[0] * k, : n[1] * k, : n[2] * k]
    return v.reshape(n[0], k, n[1], k, n[2], k).mean(axis=(1, 3, 5))


def pad_amount() -> int:
    """Voxels to pad on each side so the thickest head fits before cropping."""
    outer_mm = CSF_SHELL_MM + sum(t for _, t in HEAD_SHELLS) + TEMPORAL_MUSCLE_MM
    return int(np.ceil(outer_mm / VOXEL_MM)) + MARGIN_VOXELS + 1


def brain_hull(brain: np.ndarray) -> np.ndarray:
    """A smooth, closed envelope of the brain: the surface CSF and the ventricles fill it."""
    mask = ndimage.binary_closing(brain > 0.5, iterations=4, border_value=0)
    mask = ndimage.binary_fill_holes(mask)
    return ndimage.gaussian_filter(mask.astype(np.float32), 1.5) > 0.5


def _edt_mm(mask: np.ndarray) -> np.ndarray:
    """Distance (mm) from each voxel outside ``mask`` to the mask (0 inside)."""
    return ndimage.distance_transform_edt(~mask).astype(np.float32) * VOXEL_MM


def _close_mm(mask: np.ndarray, radius_mm: float) -> np.ndarray:
    """Morphological closing with a ball of ``radius_mm``, via distance transforms."""
    dilated = _edt_mm(mask) <= radius_mm
    closed = _edt_mm(~dilated) > radius_mm
    return ndimage.gaussian_filter(closed.astype(np.float32), 1.0) > 0.5


def _temporal_thickness(hull: np.ndarray) -> np.ndarray:
    """Extra muscle (mm): full at the sides of the lower head, none front, back and top."""
    z, y, x = np.indices(hull.shape, dtype=np.float32)
    cz, cy, cx = ndimage.center_of_mass(hull)
    zs = np.flatnonzero(hull.any(axis=(1, 2)))
    height = float(zs[-1] - zs[0] + 1)
    dy, dx = y - cy, x - cx
    lateral = (dx**2 / (dx**2 + dy**2 + 1e-6)) ** 2  # cos^4 of the angle from left-right
    low = np.clip((cz + 0.2 * height - z) / (0.3 * height), 0.0, 1.0)
    return (TEMPORAL_MUSCLE_MM * lateral * low).astype(np.float32)


def _shell_masks(hull: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Boolean masks of the extra-cerebral tissues, and the whole head's mask."""
    intracranial = _edt_mm(hull) <= CSF_SHELL_MM
    cranium = _close_mm(intracranial, SKULL_CLOSING_MM) | intracranial
    masks = {"csf": intracranial & ~hull, "skull": cranium & ~intracranial}
    depth = _edt_mm(cranium)
    temporal = _temporal_thickness(hull)
    inner = np.zeros(hull.shape, np.float32)
    for tissue, thickness in HEAD_SHELLS:
        outer = inner + thickness + (temporal if tissue == "muscle" else 0.0)
        layer = (depth > inner) & (depth <= outer)
        masks[tissue] = masks[tissue] | layer if tissue in masks else layer
        inner = outer
    return masks, depth <= inner


def _soft(mask: np.ndarray) -> np.ndarray:
    """A boolean mask with partial-volume edges (float32, 0-1)."""
    return ndimage.gaussian_filter(mask.astype(np.float32), EDGE_SIGMA)


def _head_fractions(gm: np.ndarray, wm: np.ndarray,
                    csf: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Tissue fractions of the whole head (summing to the head's occupancy), and the hull.

    CSF fills what the brain's hull holds beyond grey and white matter; a given ``csf``
    (a segmentation's) is kept where it holds more, and the hull is closed around it too.
    """
    hull = brain_hull(gm + wm if csf is None else gm + wm + csf)
    filled = np.clip(hull.astype(np.float32) - gm - wm, 0.0, 1.0)
    csf = filled if csf is None else np.maximum(filled, csf)
    brain_total = gm + wm + csf
    scale = 1.0 / np.maximum(brain_total, 1.0)  # probability maps may sum past 1
    fractions = {name: np.zeros(gm.shape, np.float32) for name in TISSUES}
    fractions.update(grey_matter=gm * scale, white_matter=wm * scale, csf=csf * scale)
    masks, head = _shell_masks(hull)
    soft = {tissue: _soft(mask) for tissue, mask in masks.items()}
    shell_total = sum(soft.values())
    remaining = np.clip(_soft(head | hull) - brain_total * scale, 0.0, 1.0)
    share = np.divide(remaining, shell_total, out=np.zeros_like(remaining), where=shell_total > 1e-6)
    for tissue, value in soft.items():
        fractions[tissue] = fractions[tissue] + value * share
    return fractions, hull


def crop_box(occupied: np.ndarray, cut_inferior: bool = True) -> tuple[slice, ...]:
    """Bounding box of ``occupied`` plus the margin; inferiorly from the first slice when
    the grid is ``cut_inferior`` (the template ends in the brainstem)."""
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        idx = np.flatnonzero(occupied.any(axis=other))
        start = 0 if axis == 0 and cut_inferior else max(0, idx[0] - MARGIN_VOXELS)
        box.append(slice(start, min(occupied.shape[axis], idx[-1] + MARGIN_VOXELS + 1)))
    return tuple(box)


def head_around_brain(gm: np.ndarray, wm: np.ndarray, csf: np.ndarray | None = None, *,
                      cut_inferior: bool = False):
    """A whole head's tissue fractions built around a brain's, on the brain's grid
    (:data:`VOXEL_MM` voxels): CSF in the brain's hull and a shell around it, then the
    skull tables, marrow, muscle, fat and skin (:data:`HEAD_SHELLS`).

    Parameters
    ----------
    gm, wm : ndarray
        Grey- and white-matter fractions (0-1), one axial stack each.
    csf : ndarray, optional
        CSF fractions, kept where they exceed what the hull gives (a segmentation's).
    cut_inferior : bool
        The grid ends inferiorly in the brain, as the template's does: no layers are
        added below it, and the head is not padded there.

    Returns
    -------
    fractions : dict of str to ndarray
        One float32 volume per tissue of :data:`~napari_mr_reparam.tissues.TISSUES`.
    brain, hull : ndarray of bool
        Brain voxels (more than half grey matter, white matter and CSF, inside the hull)
        and the brain's hull.
    box : tuple of slice
        Where the returned grid lies in the brain's grid padded by :func:`pad_amount`
        (not inferiorly when ``cut_inferior``).
    """
    p = pad_amount()
    pad = [(0 if cut_inferior else p, p), (p, p), (p, p)]
    gm, wm = np.pad(gm, pad), np.pad(wm, pad)
    fractions, hull = _head_fractions(gm, wm, None if csf is None else np.pad(csf, pad))
    brain = hull & ((fractions["grey_matter"] + fractions["white_matter"] + fractions["csf"]) > 0.5)
    box = crop_box(sum(fractions.values()) > 1e-3, cut_inferior)
    fractions = {k: np.ascontiguousarray(v[box], dtype=np.float32) for k, v in fractions.items()}
    return fractions, np.ascontiguousarray(brain[box]), np.ascontiguousarray(hull[box]), box


def sharpen_fractions(fractions: dict[str, np.ndarray], exponent: float,
                      weights: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Tissue fractions raised to ``exponent`` and rescaled to their original per-voxel total.

    The template's probability maps are soft (an average over many brains): almost no
    voxel is pure grey matter. An exponent above 1 moves each voxel toward its dominant
    tissue, so mixtures are left only near tissue borders, as in a single segmented brain
    such as BrainWeb's or MRiLab's; 1 returns the fractions unchanged.

    Parameters
    ----------
    fractions : dict of str to ndarray
        Tissue name to fraction volume, as from :func:`~napari_mr_reparam.phantoms.mni152.mni152_fractions`.
    exponent : float
        Sharpening exponent, >= 1.
    weights : dict of str to ndarray, optional
        Positive per-tissue factors (volumes or scalars) applied before the exponent: a
        random field here moves tissue borders, which sharpening then makes crisp.

    Returns
    -------
    dict of str to ndarray
        The same keys; per voxel the fractions sum to what they summed to before.
    """
    if exponent < 1.0:
        raise ValueError(f"the sharpening exponent must be >= 1, got {exponent}")
    if exponent == 1.0 and not weights:
        return dict(fractions)
    weights = weights or {}
    total = sum(np.asarray(f, np.float64) for f in fractions.values())
    powered = {k: np.power(np.asarray(f, np.float64) * weights.get(k, 1.0), exponent)
               for k, f in fractions.items()}
    powered_total = sum(powered.values())
    scale = np.divide(total, powered_total, out=np.zeros_like(total), where=powered_total > 1e-30)
    return {k: (p * scale).astype(np.float32) for k, p in powered.items()}


def maps_from_fractions(fractions: dict[str, np.ndarray], table: TissueTable,
                        linear_times: bool = False) -> dict[str, np.ndarray]:
    """PD, T1, T2 and T2* maps of a table's tissues mixed by their fractions.

    Parameters
    ----------
    fractions : dict of str to ndarray
        Tissue name (from :data:`~napari_mr_reparam.tissues.TISSUES`) to fraction volume;
        missing tissues count as absent.
    table : TissueTable
        Tissue properties (times in ms).
    linear_times : bool
        Mix the times as a plain fraction-weighted mean instead (the earlier simulator's
        maps, which it also rendered: ``partial_volume = "times"``).

    Returns
    -------
    dict of str to ndarray
        ``pd``, ``t1``, ``t2``, ``t2star`` (float32), zero where there is no tissue. PD is
        the fraction-weighted mean, scaled by the total fraction (capped at 1), so voxels
        only partly inside the head are fainter. Each time is the geometric mean of the
        tissues' times weighted by fraction times PD (the share of the voxel's water each
        holds), as a single-compartment map of the voxel should read: a cortex voxel with
        a tenth of CSF keeps a T2 near grey matter's (133 ms from the 3 T table's 96 and
        1650 ms), where a plain mean would give 251 ms. A voxel renders as the sum of its tissues'
        signals (:mod:`~napari_mr_reparam.phantoms.mixture`), not from these maps.
    """
    present = [name for name in TISSUES if name in fractions]
    if not present:
        raise ValueError("no tissue fractions given")
    total = sum(np.asarray(fractions[name], np.float32) for name in present)
    weight = np.divide(1.0, total, out=np.zeros_like(total), where=total > 1e-3)
    water = {name: fractions[name] * np.float32(table[name].pd) for name in present if table[name].pd > 0}
    water_total = sum(water.values()) if water else np.zeros_like(total)
    water_inside = np.where(total > 1e-3, water_total, 0.0)
    maps = {"pd": (water_total * weight * np.clip(total, 0.0, 1.0)).astype(np.float32)}
    for key in _MAPS[1:]:
        if linear_times:
            maps[key] = (sum(fractions[name] * np.float32(getattr(table[name], key)) for name in present)
                         * weight).astype(np.float32)
            continue
        log_mix = sum(w * np.float32(np.log(max(getattr(table[name], key), 1e-3))) for name, w in water.items())
        maps[key] = water_mean_time(water_inside, log_mix).astype(np.float32)
    return maps
