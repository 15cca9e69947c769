"""Phantoms from a segmented brain or head (the spec ``segmentation:PATH``).

A segmentation gives every voxel its tissue fractions and a tissue table gives each
tissue's PD, T1, T2 and T2*: a voxel renders as the sum of its tissues' signals
(:mod:`~napari_mr_reparam.phantoms.mixture`) and its maps mix the tissues' values, as the
MNI152 head's do. Random subjects drawn from such a phantom
(:func:`~napari_mr_reparam.phantoms.random_subject`) can take any table, be sharpened
and have their CSF widened, as MNI152 heads can: a training stream over several
segmented brains learns anatomy beyond one template.

Two kinds of file are read:

NIfTI (``.nii``, ``.nii.gz``)
    A 3-D label map, labels as :data:`~napari_mr_reparam.tissues.LABELS` number them:
    0 background, 1 CSF, 2 grey matter, 3 white matter, 4 fat, 5 muscle, 6 skin,
    7 skull, 8 marrow, 9 connective tissue. Or a 4-D file of fractions, one volume per
    tissue in that order from CSF (the first three alone: CSF, grey and white matter,
    the order of FSL FAST's partial-volume maps, ``fslmerge -t`` of ``pve_0``, ``pve_1``,
    ``pve_2``). Its affine orients it; its header gives the voxel size.
NumPy ``.npz``
    Tissue fractions (0-1), one array per tissue name of
    :data:`~napari_mr_reparam.tissues.TISSUES` (absent tissues count as none), as an
    axial stack (z inferior to superior, y anterior to posterior, x across), and
    optionally ``voxel_size_mm``, three values (1 mm when absent).

The fractions are brought to :data:`VOXEL_MM` voxels, the grid of the MNI152 and MRiLab
phantoms that the models work on: by averaging whole blocks where the voxel size
divides it (a voxel's signal is its tissues' average, so this is the partial volume a
scan of the segmented brain has), otherwise by anti-aliased linear resampling. A brain
alone (no tissue besides CSF, grey and white matter, as skull-stripped segmentations
are) gets the MNI152 phantom's procedural head around it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..messages import not_found
from ..tissues import LABELS, TISSUES, get_table
from .base import Phantom
from .mixture import mixture_of

#: Voxel size the fractions are brought to (mm, isotropic).
VOXEL_MM = 2.0
#: Tissues a brain-only segmentation holds; any other present means a whole head.
_BRAIN = ("csf", "grey_matter", "white_matter")
#: Slack on fractions read from a file (rounding in whoever wrote them).
_TOLERANCE = 1e-3


def load_segmentation(path: str | Path, table: str = "brainweb_1.5t",
                      voxel_mm: float = VOXEL_MM) -> Phantom:
    """A phantom from a label map or tissue fractions.

    Parameters
    ----------
    path : str or Path
        NIfTI label map or ``.npz`` of fractions (see the module docstring).
    table : str
        Tissue table the maps are mixed from (``brainweb_1.5t``, ``mrilab``, ``3t``).
    voxel_mm : float
        Voxel size of the phantom (mm, isotropic); a brain alone, which is given the
        procedural head, needs the default.

    Returns
    -------
    Phantom
        Maps in ms with the brain mask, its fractions and table (so random subjects can
        draw other tables), named ``segmentation:FILE[TABLE]``.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not a label map or fractions (unknown labels or tissue names, fractions outside
        0-1 or not finite, not 3-D, no brain tissue), one line naming the file.
    """
    from .fractions import VOXEL_MM as HEAD_VOXEL_MM
    from .fractions import head_around_brain, maps_from_fractions

    path = Path(path)
    tissue_table = get_table(table)
    fractions, spacing = _read(path)
    fractions = {k: _resample(v, spacing, voxel_mm) for k, v in fractions.items()}
    if not any(fractions[t].max() > 0.5 for t in ("grey_matter", "white_matter") if t in fractions):
        raise ValueError(f"{path.name}: no voxel is mostly grey or white matter; not a brain")
    full = {t: fractions.get(t, np.zeros(next(iter(fractions.values())).shape, np.float32))
            for t in TISSUES}
    present = {t for t, f in fractions.items() if f.max() > 0}
    if present <= set(_BRAIN):
        if voxel_mm != HEAD_VOXEL_MM:
            raise ValueError(f"{path.name}: a brain alone is given a head on {HEAD_VOXEL_MM:g} mm "
                             f"voxels only, not {voxel_mm:g} mm")
        full, brain, _, _ = head_around_brain(full["grey_matter"], full["white_matter"], full["csf"])
    else:
        brain = _brain_of(full)
    maps = maps_from_fractions(full, tissue_table)
    return Phantom(**maps, voxel_size_mm=(float(voxel_mm),) * 3,
                   name=f"segmentation:{path.name}[{tissue_table.name}]", brain_mask=brain,
                   tissue_table=tissue_table.name, fractions=full,
                   mixture=mixture_of(full, tissue_table))


def _brain_of(fractions: dict[str, np.ndarray]) -> np.ndarray:
    """Brain voxels of a whole head: more than half brain tissue, inside the brain's hull."""
    from .fractions import brain_hull

    hull = brain_hull(fractions["grey_matter"] + fractions["white_matter"])
    return hull & (sum(fractions[t] for t in _BRAIN) > 0.5)


def _read(path: Path) -> tuple[dict[str, np.ndarray], tuple[float, float, float]]:
    """Fractions per present tissue and the voxel size (z, y, x), checked."""
    if not path.is_file():
        raise FileNotFoundError(not_found("segmentation", path))
    from ..file_types import NIFTI_SUFFIXES, suffix_of

    if suffix_of(path) == ".npz":
        fractions, spacing = _read_fractions(path)
    elif suffix_of(path) in NIFTI_SUFFIXES:
        fractions, spacing = _read_nifti(path)
    else:
        raise ValueError(f"{path.name}: a segmentation is a NIfTI file (.nii, .nii.gz) or an .npz "
                         "of tissue fractions")
    shapes = {f.shape for f in fractions.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3:
        raise ValueError(f"{path.name}: tissue volumes must be 3-D and of one shape, got {sorted(shapes)}")
    total = sum(fractions.values())
    if float(total.max()) > 1.0 + _TOLERANCE:
        raise ValueError(f"{path.name}: tissue fractions sum past 1 (up to {float(total.max()):.3f})")
    return fractions, spacing


def _read_nifti(path: Path) -> tuple[dict[str, np.ndarray], tuple[float, float, float]]:
    """A label map (3-D) or fractions (4-D, tissues in :data:`TISSUES` order)."""
    from ..io import load_nifti_frames

    frames, spacing = load_nifti_frames(path, max_frames=len(TISSUES))
    if min(frames[0].shape) < 2:
        raise ValueError(f"{path.name}: a segmentation must be a 3-D volume, got shape {frames[0].shape}")
    if len(frames) > 1:
        return _checked_fractions(path, dict(zip(TISSUES, frames))), spacing
    return _labels_to_fractions(path, frames[0]), spacing


def _labels_to_fractions(path: Path, labels: np.ndarray) -> dict[str, np.ndarray]:
    if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
        raise ValueError(f"{path.name}: a label map holds whole numbers only")
    known = {0, *LABELS.values()}
    unknown = sorted(set(np.unique(labels).astype(int).tolist()) - known)
    if unknown:
        raise ValueError(f"{path.name}: unknown labels {unknown[:8]}; use 0 (background) and "
                         + ", ".join(f"{v} {k}" for k, v in LABELS.items()))
    masks = {name: labels == value for name, value in LABELS.items()}  # bool: 1 byte a voxel
    return {name: mask for name, mask in masks.items() if mask.any()}


def _read_fractions(path: Path) -> tuple[dict[str, np.ndarray], tuple[float, float, float]]:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: np.asarray(data[k]) for k in data.files}
    except Exception as exc:  # zip, header or pickle errors of a corrupt or foreign file
        raise ValueError(f"{path.name}: not a readable .npz file ({str(exc).splitlines()[0]})") from None
    spacing = tuple(float(v) for v in np.ravel(arrays.pop("voxel_size_mm", (1.0, 1.0, 1.0))))
    if len(spacing) != 3 or not all(np.isfinite(spacing)) or min(spacing) <= 0:
        raise ValueError(f"{path.name}: voxel_size_mm must be three positive values, got {spacing}")
    unknown = sorted(set(arrays) - set(TISSUES))
    if unknown:
        raise ValueError(f"{path.name}: unknown tissues {unknown}; use {', '.join(TISSUES)}")
    if not arrays:
        raise ValueError(f"{path.name}: holds no tissue fractions")
    return _checked_fractions(path, arrays), spacing


def _checked_fractions(path: Path, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Float32 fractions, each finite and within 0-1 (rounding slack clipped)."""
    fractions = {}
    for name, values in arrays.items():
        values = np.asarray(values, np.float32)
        if not np.all(np.isfinite(values)) or values.min(initial=0) < -_TOLERANCE \
                or values.max(initial=0) > 1 + _TOLERANCE:
            raise ValueError(f"{path.name}: {name} fractions must be finite and within 0-1")
        fractions[name] = np.clip(values, 0.0, 1.0)
    return fractions


def _resample(volume: np.ndarray, spacing, voxel_mm: float) -> np.ndarray:
    """Fractions on ``voxel_mm`` voxels: block means where the voxel divides it (trailing
    partial blocks dropped), anti-aliased linear resampling otherwise."""
    factors = [voxel_mm / s for s in spacing]
    whole = [int(round(f)) for f in factors]
    if all(abs(f - w) < 1e-6 and w >= 1 for f, w in zip(factors, whole)):
        from skimage.measure import block_reduce

        cut = volume[tuple(slice(0, (n // w) * w) for n, w in zip(volume.shape, whole))]
        return block_reduce(cut, tuple(whole), np.mean).astype(np.float32)
    from skimage.transform import resize

    shape = [max(1, int(round(n / f))) for n, f in zip(volume.shape, factors)]
    out = resize(volume.astype(np.float32), shape, order=1, anti_aliasing=True, preserve_range=True)
    return np.clip(out, 0.0, 1.0).astype(np.float32)
