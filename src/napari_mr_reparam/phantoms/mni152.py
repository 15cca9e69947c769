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
tissue table (:func:`~napari_mr_reparam.phantoms.fractions.maps_from_fractions`), and a
voxel renders as the sum of its tissues' signals (:mod:`~napari_mr_reparam.phantoms.mixture`); the
head around the template is built by :func:`~napari_mr_reparam.phantoms.fractions.head_around_brain`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from ..tissues import get_table
from .base import Phantom
from .fractions import VOXEL_MM, block_mean, head_around_brain, maps_from_fractions, pad_amount
from .mixture import mixture_of

#: Tissue table the phantom uses unless another is asked for.
DEFAULT_TABLE = "brainweb_1.5t"
#: Fine grid of :func:`mni152_fine_brain` (mm): the template's own 1 mm voxels.
FINE_VOXEL_MM = 1.0


def template_path(kind: str) -> Path:
    """Path of nilearn's ICBM152 2009 ``gm``, ``wm`` or ``t1`` template file."""
    import nilearn

    name = f"mni_icbm152_{kind}_tal_nlin_sym_09a_converted.nii.gz"
    path = Path(nilearn.__file__).parent / "datasets" / "data" / name
    if not path.is_file():
        raise FileNotFoundError(f"the MNI152 template {name} is missing from nilearn at {path}")
    return path


def _load_fraction(kind: str, voxel_mm: float = VOXEL_MM) -> np.ndarray:
    """A template probability map (0-1) at ``voxel_mm``, as an axial stack.

    The template is block-averaged by ``voxel_mm`` over its own voxel size, and cut to
    whole blocks of :data:`VOXEL_MM` so every grid finer than the phantom's nests in it.
    """
    import nibabel as nib

    from ..orientation import ras_to_stack

    img = nib.as_closest_canonical(nib.load(str(template_path(kind))))
    data = np.clip(np.asarray(img.dataobj, np.float32) / 255.0, 0.0, 1.0)
    native = float(img.header.get_zooms()[0])
    whole = int(round(VOXEL_MM / native))
    data = data[tuple(slice(0, (n // whole) * whole) for n in data.shape)]
    return ras_to_stack(block_mean(data, int(round(voxel_mm / native)))).astype(np.float32)


@lru_cache(maxsize=1)
def _build() -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, tuple[slice, ...]]:
    """The fraction volumes, brain mask, brain hull and crop box (of the padded grid),
    computed once per process (arrays read-only)."""
    fractions, brain, hull, box = head_around_brain(_load_fraction("gm"), _load_fraction("wm"),
                                                    cut_inferior=True)
    for array in (*fractions.values(), brain, hull):
        array.flags.writeable = False
    return fractions, brain, hull, box


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
    p = pad_amount() * k  # as _build pads and crops, in fine voxels
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
                   brain_mask=brain, tissue_table=tissue_table.name, fractions=fractions,
                   mixture=mixture_of(fractions, tissue_table))
