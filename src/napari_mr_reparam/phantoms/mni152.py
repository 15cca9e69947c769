"""The embedded default phantom: the ICBM152 2009 brain inside a procedural head.

Grey- and white-matter probability maps of the MNI ICBM152 2009c symmetric template
ship inside the nilearn wheel, so this phantom works offline on a fresh install. The
maps are reoriented to RAS, block-averaged to 2 mm voxels and arranged as the package's
axial stack ``(z inferior->superior, y anterior->posterior, x across)``.

CSF is what a smoothed, closed brain hull holds beyond grey and white matter (sulci
and ventricles: the template is skull-stripped). A head is built around the hull from
distance shells: a CSF layer, the inner skull table, marrow (diploe), the outer table,
muscle (thicker at the temples), subcutaneous fat and skin. Deep concavities of the
brain surface (the skull base between temporal lobes and cerebellum) are filled with
bone, so the outer layers wrap the whole head rather than each lobe. The grid is cut
inferiorly where the template ends (through the brainstem), like a scan's field of view.

Tissue fractions are kept (:func:`mni152_fractions`), so the maps can be made with any
tissue table (:func:`maps_from_fractions`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..tissues import TISSUES, TissueTable, get_table
from .base import Phantom

#: Tissue table the phantom uses unless another is asked for.
DEFAULT_TABLE = "brainweb_1.5t"
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

_MAPS = ("pd", "t1", "t2", "t2star")


def _template_path(kind: str) -> Path:
    """Path of nilearn's ICBM152 2009 ``gm``, ``wm`` or ``t1`` template file."""
    import nilearn

    name = f"mni_icbm152_{kind}_tal_nlin_sym_09a_converted.nii.gz"
    path = Path(nilearn.__file__).parent / "datasets" / "data" / name
    if not path.is_file():
        raise FileNotFoundError(f"the MNI152 template {name} is missing from nilearn at {path}")
    return path


def _block_mean(volume: np.ndarray, k: int) -> np.ndarray:
    """Average non-overlapping ``k``-voxel cubes (trailing partial blocks dropped)."""
    if k <= 1:
        return volume
    n = [s // k for s in volume.shape]
    v = volume[: n[0] * k, : n[1] * k, : n[2] * k]
    return v.reshape(n[0], k, n[1], k, n[2], k).mean(axis=(1, 3, 5))


def _load_fraction(kind: str, voxel_mm: float = VOXEL_MM) -> np.ndarray:
    """A template probability map (0-1) at ``voxel_mm``, as an axial stack.

    The template is block-averaged by ``voxel_mm`` over its own voxel size, and cut to
    whole blocks of :data:`VOXEL_MM` so every grid finer than the phantom's nests in it.
    """
    import nibabel as nib

    from ..io import ras_to_stack

    img = nib.as_closest_canonical(nib.load(str(_template_path(kind))))
    data = np.clip(np.asarray(img.dataobj, np.float32) / 255.0, 0.0, 1.0)
    native = float(img.header.get_zooms()[0])
    whole = int(round(VOXEL_MM / native))
    data = data[tuple(slice(0, (n // whole) * whole) for n in data.shape)]
    return ras_to_stack(_block_mean(data, int(round(voxel_mm / native)))).astype(np.float32)


def _pad_amount() -> int:
    """Voxels to pad on each side so the thickest head fits before cropping."""
    outer_mm = CSF_SHELL_MM + sum(t for _, t in HEAD_SHELLS) + TEMPORAL_MUSCLE_MM
    return int(np.ceil(outer_mm / VOXEL_MM)) + MARGIN_VOXELS + 1


def _brain_hull(brain: np.ndarray) -> np.ndarray:
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
    hull = _brain_hull(gm + wm if csf is None else gm + wm + csf)
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


def _crop_box(occupied: np.ndarray, cut_inferior: bool = True) -> tuple[slice, ...]:
    """Bounding box of ``occupied`` plus the margin; inferiorly from the first slice when
    the grid is ``cut_inferior`` (the template ends in the brainstem)."""
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        idx = np.flatnonzero(occupied.any(axis=other))
        start = 0 if axis == 0 and cut_inferior else max(0, idx[0] - MARGIN_VOXELS)
        box.append(slice(start, min(occupied.shape[axis], idx[-1] + MARGIN_VOXELS + 1)))
    return tuple(box)


@lru_cache(maxsize=1)
def _build() -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, tuple[slice, ...]]:
    """The fraction volumes, brain mask, brain hull and crop box (of the padded grid),
    computed once per process (arrays read-only)."""
    fractions, brain, hull, box = head_around_brain(_load_fraction("gm"), _load_fraction("wm"),
                                                    cut_inferior=True)
    for array in (*fractions.values(), brain, hull):
        array.flags.writeable = False
    return fractions, brain, hull, box


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
        Where the returned grid lies in the brain's grid padded by :func:`_pad_amount`
        (not inferiorly when ``cut_inferior``).
    """
    p = _pad_amount()
    pad = [(0 if cut_inferior else p, p), (p, p), (p, p)]
    gm, wm = np.pad(gm, pad), np.pad(wm, pad)
    fractions, hull = _head_fractions(gm, wm, None if csf is None else np.pad(csf, pad))
    brain = hull & ((fractions["grey_matter"] + fractions["white_matter"] + fractions["csf"]) > 0.5)
    box = _crop_box(sum(fractions.values()) > 1e-3, cut_inferior)
    fractions = {k: np.ascontiguousarray(v[box], dtype=np.float32) for k, v in fractions.items()}
    return fractions, np.ascontiguousarray(brain[box]), np.ascontiguousarray(hull[box]), box


#: Fine grid of :func:`mni152_fine_brain` (mm): the template's own 1 mm voxels.
FINE_VOXEL_MM = 1.0
#: Brain tissues that the fine grid holds.
BRAIN_TISSUES = ("grey_matter", "white_matter", "csf")


@lru_cache(maxsize=1)
def mni152_fine_brain() -> dict[str, np.ndarray]:
    """Grey matter, white matter and CSF fractions of the MNI152 head at the template's
    1 mm (cached, read-only), on the grid nested in the phantom's: fine voxel ``(i, j,
    k)`` lies in phantom voxel ``(i // 2, j // 2, k // 2)``.

    The template's sulci are narrower than the phantom's 2 mm voxels, so a subject
    whose tissue is sharpened here and averaged back to 2 mm gets the partial volume a
    segmented 1 mm brain gets when it is resampled (as MRiLab's phantom was from
    BrainWeb's): thin sulci become lines of mixed voxels rather than vanishing or
    filling whole voxels. CSF is the fine template's share of the phantom's brain hull.
    Per fine voxel the three sum to at most 1.
    """
    k = int(round(VOXEL_MM / FINE_VOXEL_MM))
    _, _, hull, box = _build()
    p = _pad_amount() * k  # as _build pads and crops, in fine voxels
    gm, wm = (np.pad(_load_fraction(kind, FINE_VOXEL_MM), [(0, p), (p, p), (p, p)])
              for kind in ("gm", "wm"))
    box = tuple(slice(b.start * k, b.stop * k) for b in box)
    gm, wm = gm[box], wm[box]
    for axis in range(3):
        hull = np.repeat(hull, k, axis=axis)
    csf = np.clip(hull.astype(np.float32) - gm - wm, 0.0, 1.0)
    scale = 1.0 / np.maximum(gm + wm + csf, 1.0)
    out = {"grey_matter": gm * scale, "white_matter": wm * scale, "csf": csf * scale}
    out = {name: np.ascontiguousarray(v, dtype=np.float32) for name, v in out.items()}
    for array in out.values():
        array.flags.writeable = False
    return out


def mni152_fractions() -> dict[str, np.ndarray]:
    """Per-tissue fraction volumes of the MNI152 head (cached, read-only).

    Returns
    -------
    dict of str to ndarray
        One ``(nz, ny, nx)`` float32 volume per name in :data:`~napari_mr_reparam.tissues.TISSUES`;
        they sum to 1 inside the head (less at its soft outer edge) and 0 in air.
    """
    return dict(_build()[0])


def mni152_brain_mask() -> np.ndarray:
    """Brain voxels (grey and white matter, CSF inside the brain hull); cached, read-only."""
    return _build()[1]


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
        Tissue name to fraction volume, as from :func:`mni152_fractions`.
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


def maps_from_fractions(fractions: dict[str, np.ndarray], table: TissueTable) -> dict[str, np.ndarray]:
    """PD, T1, T2 and T2* maps as fraction-weighted mixtures of a table's tissues.

    Parameters
    ----------
    fractions : dict of str to ndarray
        Tissue name (from :data:`~napari_mr_reparam.tissues.TISSUES`) to fraction volume;
        missing tissues count as absent.
    table : TissueTable
        Tissue properties (times in ms).

    Returns
    -------
    dict of str to ndarray
        ``pd``, ``t1``, ``t2``, ``t2star`` (float32). Each is the mixture normalized by the
        total fraction, zero where there is no tissue; PD is also scaled by the total
        (capped at 1), so voxels only partly inside the head are fainter.
    """
    present = [name for name in TISSUES if name in fractions]
    if not present:
        raise ValueError("no tissue fractions given")
    total = sum(np.asarray(fractions[name], np.float32) for name in present)
    weight = np.divide(1.0, total, out=np.zeros_like(total), where=total > 1e-3)
    maps = {}
    for key in _MAPS:
        mix = sum(fractions[name] * np.float32(getattr(table[name], key)) for name in present)
        maps[key] = (mix * weight).astype(np.float32)
    maps["pd"] = (maps["pd"] * np.clip(total, 0.0, 1.0)).astype(np.float32)
    return maps


def mni152_phantom(table: str = DEFAULT_TABLE) -> Phantom:
    """The MNI152 head phantom with tissue values from a table.

    Parameters
    ----------
    table : str
        Tissue table name: ``brainweb_1.5t`` (default), ``mrilab`` or ``3t``.

    Returns
    -------
    Phantom
        2 mm isotropic maps (times in ms) with the brain mask, named ``mni152[TABLE]``.
    """
    tissue_table = get_table(table)
    fractions, brain = _build()[:2]
    maps = maps_from_fractions(fractions, tissue_table)
    return Phantom(**maps, voxel_size_mm=(VOXEL_MM,) * 3, name=f"mni152[{tissue_table.name}]",
                   brain_mask=brain, tissue_table=tissue_table.name, fractions=fractions)
