"""The :class:`Phantom` container and the spec-string loader."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage

from .mixture import Mixture

#: Brain voxels: at least this T2 (ms) and PD; excludes scalp, muscle, skull, marrow.
_BRAIN_MIN_T2_MS = 60.0
_BRAIN_MIN_PD = 0.5


@dataclass(frozen=True)
class Phantom:
    """Tissue maps of one subject.

    Attributes
    ----------
    pd : ndarray, (nz, ny, nx) float32
        Relative proton density, 0-1.
    t1, t2, t2star : ndarray, (nz, ny, nx) float32
        Relaxation times in milliseconds (0 where there is no tissue).
    voxel_size_mm : tuple of float
        Voxel size along (z, y, x), millimetres.
    name : str
        Where the phantom came from (spec string or generator description).
    brain_mask : ndarray of bool, optional
        Brain tissue (grey/white matter and the CSF inside the skull).
    tissue_table : str, optional
        For a phantom built from tissue fractions (the MNI152 head, a segmentation), the
        tissue table its maps come from. None for voxel maps (MRiLab's).
    fractions : dict of str to ndarray, optional
        With ``tissue_table``: the tissue fractions the maps were mixed from, one volume
        per tissue name, so the maps can be rebuilt with another table (random subjects).
        A random subject keeps its own (warped, sharpened) fractions without a table: the
        truth a tissue network learns.
    extra_classes : dict of int to (str, ndarray), optional
        For a FreeSurfer-labelled head: each unnamed non-brain class's tissue and
        fractions (already in ``fractions``), so a training draw can give it another.
    mixture : Mixture, optional
        For a phantom built from tissue fractions: its tissues with their own values, so
        that a partial-volume voxel renders as the sum of its tissues' signals
        (:mod:`~napari_mr_reparam.phantoms.mixture`); the maps are then what a
        single-compartment model should show there. None: the maps are rendered.
    """

    pd: np.ndarray
    t1: np.ndarray
    t2: np.ndarray
    t2star: np.ndarray
    voxel_size_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)
    name: str = "phantom"
    brain_mask: np.ndarray | None = field(default=None, repr=False)
    tissue_table: str | None = None
    fractions: dict[str, np.ndarray] | None = field(default=None, repr=False, compare=False)
    extra_classes: dict | None = field(default=None, repr=False, compare=False)
    mixture: Mixture | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        shapes = {a.shape for a in (self.pd, self.t1, self.t2, self.t2star)}
        if len(shapes) != 1 or len(next(iter(shapes))) != 3:
            raise ValueError(f"phantom maps must be 3-D and of one shape, got {shapes}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.pd.shape

    def head_slices(self) -> tuple[int, int]:
        """First and last axial slice index (inclusive) that contain tissue."""
        occupied = np.flatnonzero((self.pd > 0).any(axis=(1, 2)))
        if occupied.size == 0:
            raise ValueError(f"phantom {self.name!r} holds no tissue")
        return int(occupied[0]), int(occupied[-1])

    def mask(self) -> np.ndarray:
        """The brain mask, computed from the maps when the phantom has none."""
        if self.brain_mask is not None:
            return self.brain_mask
        return brain_mask_from_maps(self.pd, self.t2)

    def with_maps(self, **maps) -> "Phantom":
        """A copy with some maps replaced (``pd=``, ``t1=``, ...), rendered from its maps."""
        return replace(self, **maps, mixture=None)


def brain_mask_from_maps(pd: np.ndarray, t2: np.ndarray) -> np.ndarray:
    """Brain voxels (grey/white matter, CSF) told apart from scalp, muscle and skull.

    Brain tissues have T2 >= 60 ms and PD >= 0.5 in every table; the largest connected
    component with holes filled is kept so stray scalp voxels drop out.
    """
    candidate = (t2 >= _BRAIN_MIN_T2_MS) & (pd >= _BRAIN_MIN_PD)
    labels, count = ndimage.label(candidate)
    if count == 0:
        return candidate
    sizes = ndimage.sum_labels(candidate, labels, index=np.arange(1, count + 1))
    largest = labels == (int(np.argmax(sizes)) + 1)
    filled = np.stack([ndimage.binary_fill_holes(s) for s in largest])
    return filled
