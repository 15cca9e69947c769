"""The embedded default phantom: the ICBM152 2009 brain inside a procedural head.

Grey- and white-matter probability maps of the MNI ICBM152 2009c symmetric template
ship inside the nilearn wheel, so this phantom works offline on a fresh install. The
maps are reoriented to RAS, averaged to 2 mm voxels and arranged as the package's axial
stack. CSF is what the smoothed brain hull holds beyond grey and white matter (the
ventricles and sulci, since the template is skull-stripped), and a head is built around
the hull from distance shells: a CSF layer, the inner skull table, marrow (diploe), the
outer table, muscle (thicker at the temples), subcutaneous fat and skin. Tissue
fractions are kept, so the maps can be made with any tissue table.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..tissues import TISSUES, TissueTable, get_table
from .base import Phantom

VOXEL_MM = 2.0
PAD_VOXELS = 12
#: Shells around the brain hull: (tissue, thickness in mm), from the inside out.
HEAD_SHELLS = (("csf", 2.0), ("skull", 2.5), ("marrow", 3.0), ("skull", 2.5),
               ("muscle", 3.0), ("fat", 4.0), ("skin", 2.0))
TEMPORAL_MUSCLE_MM = 5.0


def _template_path(kind: str) -> Path:
    import nilearn

    name = f"mni_icbm152_{kind}_tal_nlin_sym_09a_converted.nii.gz"
    path = Path(nilearn.__file__).parent / "datasets" / "data" / name
    if not path.is_file():
        raise FileNotFoundError(f"the MNI152 template {name} is missing from nilearn's package")
    return path


def _load_fraction(kind: str) -> np.ndarray:
    import nibabel as nib

    from ..io import ras_to_stack

    img = nib.as_closest_canonical(nib.load(str(_template_path(kind))))
    data = np.asarray(img.dataobj, np.float32) / 255.0
    data = _block_mean(np.clip(data, 0, 1), int(round(VOXEL_MM / img.header.get_zooms()[0])))
    return ras_to_stack(data)


def _block_mean(volume: np.ndarray, k: int) -> np.ndarray:
    shape = [s - s % k for s in volume.shape]
    v = volume[: shape[0], : shape[1], : shape[2]]
    return v.reshape(shape[0] // k, k, shape[1] // k, k, shape[2] // k, k).mean(axis=(1, 3, 5))


def _brain_hull(brain: np.ndarray) -> np.ndarray:
    """A smooth closed envelope of the brain (the inner surface of the CSF shell)."""
    mask = brain > 0.5
    mask = ndimage.binary_closing(mask, iterations=4, border_value=0)
    mask = ndimage.binary_fill_holes(mask)
    return ndimage.gaussian_filter(mask.astype(np.float32), 1.5) > 0.35


def _shell_labels(hull: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean masks of the procedural head tissues around ``hull``."""
    outside_mm = ndimage.distance_transform_edt(~hull) * VOXEL_MM
    # temples: the muscle shell thickens on the sides of the lower half of the head
    z, _, x = np.indices(hull.shape, dtype=np.float32)
    zc = np.flatnonzero(hull.any(axis=(1, 2)))
    lateral = np.abs(x - hull.shape[2] / 2) / (hull.shape[2] / 2)
    lower = np.clip((zc.mean() + 0.25 * np.ptp(zc) - z) / (0.5 * np.ptp(zc) + 1), 0, 1)
    temporal = TEMPORAL_MUSCLE_MM * np.clip(lateral * 1.6 - 0.4, 0, 1) * lower
    shells: dict[str, np.ndarray] = {}
    inner = np.zeros(hull.shape, np.float32)
    for tissue, thickness in HEAD_SHELLS:
        outer = inner + thickness + (temporal if tissue == "muscle" else 0)
        layer = (outside_mm > inner) & (outside_mm <= outer)
        shells[tissue] = shells.get(tissue, np.zeros(hull.shape, bool)) | layer
        inner = outer
    return shells


@lru_cache(maxsize=1)
def mni152_fractions() -> dict[str, np.ndarray]:
    """Per-tissue fractions (float32, summing to 1 inside the head, 0 outside), cached."""
    gm, wm = _load_fraction("gm"), _load_fraction("wm")
    pad = [(PAD_VOXELS, PAD_VOXELS)] * 3
    gm, wm = np.pad(gm, pad), np.pad(wm, pad)
    hull = _brain_hull(gm + wm)
    csf_inside = np.clip(hull.astype(np.float32) - gm - wm, 0, 1)
    fractions = {name: np.zeros(gm.shape, np.float32) for name in TISSUES}
    fractions["grey_matter"], fractions["white_matter"], fractions["csf"] = gm, wm, csf_inside
    for tissue, mask in _shell_labels(hull).items():
        soft = ndimage.gaussian_filter(mask.astype(np.float32), 0.5)
        fractions[tissue] += soft * (1 - np.clip(gm + wm + csf_inside, 0, 1))
    total = sum(fractions.values())
    over = total > 1
    for name in TISSUES:
        fractions[name] = np.where(over, fractions[name] / np.maximum(total, 1e-6), fractions[name])
        fractions[name] = fractions[name].astype(np.float32)
    fractions["_brain"] = ((gm + wm + csf_inside) > 0.5) & hull
    return fractions


def maps_from_fractions(fractions: dict[str, np.ndarray], table: TissueTable) -> dict[str, np.ndarray]:
    """PD, T1, T2 and T2* (ms) as fraction-weighted mixtures of the table's tissues."""
    total = sum(fractions[name] for name in TISSUES)
    weight = np.divide(1.0, total, out=np.zeros_like(total), where=total > 1e-3)
    maps = {}
    for key in ("pd", "t1", "t2", "t2star"):
        mix = sum(fractions[name] * getattr(table[name], key) for name in TISSUES)
        maps[key] = (mix * weight).astype(np.float32)
    maps["pd"] = maps["pd"] * np.clip(total, 0, 1)  # partial voxels at the skin edge fade out
    return maps


def mni152_phantom(table: str = "brainweb_1.5t") -> Phantom:
    """The MNI152 head with tissue values from ``table`` (brainweb_1.5t, mrilab or 3t)."""
    tissue_table = get_table(table)
    fractions = mni152_fractions()
    maps = maps_from_fractions(fractions, tissue_table)
    return Phantom(**maps, voxel_size_mm=(VOXEL_MM,) * 3, name=f"mni152[{tissue_table.name}]",
                   brain_mask=fractions["_brain"])
