"""Images of one subject on one grid: resampled onto a reference image's voxels by their affines.

Scans of one session lie in the scanner's coordinates: a sagittal 3-D MPRAGE of 1 mm voxels
and an axial T2-weighted turbo spin echo of 0.45 x 0.45 x 5 mm are different grids, but
each file's affine (NIfTI) or position and orientation tags (DICOM) place every voxel in
the same space (RAS+ mm). :func:`on_one_grid` brings every input onto the grid of a
reference input (the first, by default) with ``nibabel.processing.resample_from_to``:
trilinear, so nothing overshoots beside an edge, and where a reference voxel is larger than
the input's along one of its axes (a thick slab) the input is averaged over the reference
voxel's extent (:data:`MOST_SUBSAMPLES` points along that axis), as the slab itself
averages the tissue. Voxels outside an input's field of view are NaN (not measured), which
the joint fit takes as such. No registration is done: motion between the scans stays.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np

from .io import Volume
from .orientation import ORIENTED_KINDS, file_to_stack, stack_affine, to_original

#: Grids whose corners lie within this fraction of a voxel of each other are the same.
SAME_GRID_VOXELS = 0.5
#: Most points averaged along one axis of a reference voxel larger than the input's.
MOST_SUBSAMPLES = 7
#: Trilinear interpolation.
ORDER = 1


def is_placed(volume: Volume) -> bool:
    """Whether ``volume`` knows where its voxels lie (a NIfTI or DICOM volume with its affine)."""
    return (volume.kind in ORIENTED_KINDS and volume.affine is not None and volume.ornt is not None
            and bool(volume.original_shape) and np.all(np.isfinite(volume.affine)))


def _voxel_sizes(affine: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.asarray(affine, float)[:3, :3], axis=0)


def same_grid(volume: Volume, reference: Volume) -> bool:
    """Whether two placed volumes' stacks have one shape and voxels within
    :data:`SAME_GRID_VOXELS` of a voxel of each other at every corner."""
    if tuple(volume.data.shape) != tuple(reference.data.shape):
        return False
    last = np.asarray(volume.data.shape, float) - 1
    grid = np.array([[i, j, k, 1.0] for i in (0, last[0]) for j in (0, last[1]) for k in (0, last[2])])
    apart = np.linalg.norm(grid @ (stack_affine(volume) - stack_affine(reference)).T, axis=1).max()
    return bool(apart <= SAME_GRID_VOXELS * _voxel_sizes(reference.affine).min())


def acquired_on_one_grid(a: Volume, b: Volume) -> bool:
    """Whether two volumes lie on one grid: placed ones by :func:`same_grid`, unplaced ones
    (2-D images, ``.npy``) by their shape; a placed and an unplaced one never."""
    if is_placed(a) and is_placed(b):
        return same_grid(a, b)
    return not (is_placed(a) or is_placed(b)) and tuple(a.data.shape) == tuple(b.data.shape)


def _subsample_offsets(volume: Volume, reference: Volume) -> list[tuple]:
    """Offsets (in reference voxels) of the points averaged over one reference voxel: along
    each reference axis, as many as the reference voxel holds of the input's smallest
    voxel (at most :data:`MOST_SUBSAMPLES`), spread evenly across it."""
    finest = _voxel_sizes(volume.affine).min()
    counts = [min(MOST_SUBSAMPLES, max(1, math.floor(size / finest + 0.25)))
              for size in _voxel_sizes(reference.affine)]
    along = [[(j + 0.5) / n - 0.5 for j in range(n)] for n in counts]
    return list(itertools.product(*along))


def _inside(volume: Volume, reference: Volume) -> np.ndarray:
    """Reference voxels (file order) whose centre lies within the input's field of view
    (its voxels' extent: half a voxel beyond the outermost centres)."""
    to_input = np.linalg.inv(np.asarray(volume.affine, float)) @ np.asarray(reference.affine, float)
    shape = reference.file_shape
    axes = [np.arange(n, dtype=np.float32).reshape([-1 if a == k else 1 for a in range(3)])
            for k, n in enumerate(shape)]
    inside = np.ones(shape, bool)
    for c, n in enumerate(volume.file_shape):
        where = sum(np.float32(to_input[c, k]) * axes[k] for k in range(3)) + np.float32(to_input[c, 3])
        inside &= (where >= -0.5 - 1e-3) & (where <= n - 0.5 + 1e-3)
    return inside


def resample_onto(volume: Volume, reference: Volume, order: int = ORDER) -> Volume:
    """``volume`` on the grid of ``reference`` (both :func:`is_placed`): its acquisition and
    source, the reference's geometry (shape, spacing, affine, orientation, header). NaN
    where the reference's voxels lie outside ``volume``'s field of view. A clipped-voxel
    mask (``extra["saturated"]``) comes along: a voxel is clipped where any input voxel
    it draws from was."""
    import nibabel as nib
    from nibabel.processing import resample_from_to

    shape = reference.file_shape
    ref_affine = np.asarray(reference.affine, float)
    offsets = _subsample_offsets(volume, reference)

    inside = _inside(volume, reference)
    pad = np.eye(4)
    pad[:3, 3] = -1.0  # the input with its edge voxels repeated once more on every side

    def sample(values: np.ndarray, fill: float) -> np.ndarray:
        on_file = np.asarray(to_original(volume, values), np.float32).reshape(volume.file_shape)
        image = nib.Nifti1Image(np.pad(on_file, 1, mode="edge"), np.asarray(volume.affine, float) @ pad)
        total, count = np.zeros(shape, np.float32), np.zeros(shape, np.int16)
        for offset in offsets:
            shift = np.eye(4)
            shift[:3, 3] = offset
            out = np.asarray(resample_from_to(image, (shape, ref_affine @ shift), order=order, mode="constant",
                                              cval=np.nan).dataobj)
            seen = np.isfinite(out)
            total[seen] += out[seen]
            count += seen
        mean = np.where(inside & (count > 0), total / np.maximum(count, 1), fill).astype(np.float32)
        return file_to_stack(mean, reference.ornt)

    data = np.ascontiguousarray(sample(volume.data, np.nan))
    extra = {k: v for k, v in (volume.extra or {}).items() if k != "saturated"}
    saturated = (volume.extra or {}).get("saturated")
    if saturated is not None and np.shape(saturated) == np.shape(volume.data):
        extra["saturated"] = np.ascontiguousarray(sample(np.asarray(saturated, np.float32), 0.0) > 0)
    extra["resampled_from"] = volume.source or "input"
    return replace(volume, data=data, spacing=tuple(reference.spacing), affine=ref_affine.copy(),
                   header=reference.header, ornt=np.asarray(reference.ornt).copy(),
                   original_shape=tuple(reference.original_shape), kind=reference.kind, extra=extra)


def on_one_grid(volumes: list[Volume], reference: int = 0) -> tuple[list[Volume], list[int]]:
    """The volumes on the grid of ``volumes[reference]``, and the indices of those that were
    resampled onto it (:func:`resample_onto`). Volumes already on that grid, and volumes of
    the reference's shape of which one knows no placement (2-D images, ``.npy``), are
    kept as they are (taken voxel by voxel); a volume of another shape that either cannot
    be placed, or one that lies wholly outside the reference's field of view, raises a
    one-line ``ValueError``."""
    refusal = grid_refusal(volumes, reference)
    if refusal:
        raise ValueError(refusal)
    ref = volumes[reference]
    out, moved = [], []
    for i, volume in enumerate(volumes):
        if i == reference:
            out.append(volume)
            continue
        placed = is_placed(volume) and is_placed(ref)
        if placed and same_grid(volume, ref):
            out.append(volume)
        elif placed:
            resampled = resample_onto(volume, ref)
            shift = slab_offset(volume, ref)
            if not np.isfinite(resampled.data).any() and shift is not None and shift[1] >= LEAST_SHARED_SLAB:
                resampled = _onto_slab(volume, ref, *shift)
            if not np.isfinite(resampled.data).any():
                raise ValueError(_outside(volumes, i, reference))
            out.append(resampled)
            moved.append(i)
        else:
            out.append(volume)  # of the reference's shape (grid_refusal): voxel by voxel
    return out, moved


#: Two one-slice volumes in parallel planes whose slabs share at least this fraction of the
#: thicker one are paired as one slice (the further one moved onto the first's plane, and
#: said), where by their affines none of one would fall on the other's grid.
LEAST_SHARED_SLAB = 1 / 3


def slab_offset(volume: Volume, reference: Volume) -> tuple[float, float] | None:
    """For two placed one-slice volumes in parallel planes: how far ``volume``'s slice lies
    from ``reference``'s along its normal (mm) and the fraction of the thicker slab the two
    share; else None."""
    if not (is_placed(volume) and is_placed(reference)):
        return None
    axes = [[k for k, n in enumerate(v.file_shape) if n == 1] for v in (volume, reference)]
    if len(axes[0]) != 1 or len(axes[1]) != 1:
        return None
    a, r = (np.asarray(v.affine, float) for v in (volume, reference))
    normal_a, normal_r = a[:3, axes[0][0]], r[:3, axes[1][0]]
    thick_a, thick_r = float(np.linalg.norm(normal_a)), float(np.linalg.norm(normal_r))
    unit = normal_r / thick_r
    if abs(float(normal_a @ unit)) / thick_a < 0.999:
        return None
    offset = float((a[:3, 3] - r[:3, 3]) @ unit)
    shared = max(0.0, (thick_a + thick_r) / 2 - abs(offset)) / max(thick_a, thick_r)
    return offset, shared


def _onto_slab(volume: Volume, reference: Volume, offset: float, shared: float) -> Volume:
    """``volume`` moved ``offset`` mm along ``reference``'s slice normal onto its plane, then
    resampled onto its grid; ``extra["slab_moved"]`` says by how much and what they shared."""
    r = np.asarray(reference.affine, float)
    axis = [k for k, n in enumerate(reference.file_shape) if n == 1][0]
    affine = np.asarray(volume.affine, float).copy()
    affine[:3, 3] -= offset * r[:3, axis] / np.linalg.norm(r[:3, axis])
    moved = resample_onto(replace(volume, affine=affine), reference)
    moved.extra["slab_moved"] = {"offset_mm": offset, "shared": shared}
    return moved


def slab_note(volume: Volume) -> str:
    """For a volume moved onto the first's slice (:func:`slab_offset`), a note to follow its
    name, ``" (its slice moved 2.9 mm onto the first's: the slabs share 42 %)"``; else empty."""
    moved = (volume.extra or {}).get("slab_moved")
    if not moved:
        return ""
    return (f" (its slice moved {abs(moved['offset_mm']):.1f} mm onto the first's: the slabs share "
            f"{100 * moved['shared']:.0f} %)")


def grid_refusal(volumes: list[Volume], reference: int = 0, registering: bool = False) -> str | None:
    """Why the volumes cannot be brought onto the reference's grid (one of another shape of
    which one of the two has no placement, or DICOM series of another person or, unless
    registered or ``registering``, of another session: :func:`frame_refusal`; unless
    ``registering``, one that lies wholly outside the reference's field of view), else
    None; reads no voxels."""
    ref = volumes[reference]
    refusal = frame_refusal(volumes, reference, registering)
    if refusal:
        return refusal
    for volume in volumes:
        if tuple(volume.data.shape) != tuple(ref.data.shape) and not (is_placed(volume) and is_placed(ref)):
            unplaced = volume if not is_placed(volume) else ref
            return (f"the inputs are on different grids ({_shape(ref)} and {_shape(volume)}) and "
                    f"{_name(unplaced)} has no affine to place it: give co-registered images of one shape, "
                    "or NIfTI / DICOM files, which are resampled onto the first input's grid")
    if not registering:  # registration moves a series; how far is not known before it runs
        for i, volume in enumerate(volumes):
            if i != reference and _wholly_outside(volume, ref):
                return _outside(volumes, i, reference)
    return None


def _wholly_outside(volume: Volume, reference: Volume) -> bool:
    """Whether ``reference``'s grid lies wholly outside ``volume``'s field of view by their
    affines, as far as the corners of the two tell (microseconds, from the affines and
    shapes alone: the exact voxel count follows in :func:`on_one_grid`), and ``volume``'s
    slice is not one :func:`slab_offset` pairs with the reference's."""
    if not (is_placed(volume) and is_placed(reference)) or same_grid(volume, reference):
        return False
    to_input = np.linalg.inv(np.asarray(volume.affine, float)) @ np.asarray(reference.affine, float)
    corners = np.array(list(itertools.product(*[(0, n - 1) for n in reference.file_shape])), float)
    at = corners @ to_input[:3, :3].T + to_input[:3, 3]  # the reference's corner voxels, in input voxels
    apart = any(at[:, c].max() < -0.5 or at[:, c].min() > n - 0.5 for c, n in enumerate(volume.file_shape))
    if not apart:
        return False
    shift = slab_offset(volume, reference)
    return shift is None or shift[1] < LEAST_SHARED_SLAB


def _outside(volumes: list[Volume], index: int, reference: int) -> str:
    """The line refusing ``volumes[index]``, which lies outside the reference's field of view."""
    this, first = _name(volumes[index]), _name(volumes[reference])
    if this == first:  # acquisitions of one DICOM folder: told apart by their place
        this, first = f"{this} (input {index + 1})", f"{first} (input {reference + 1})"
    return (f"{this} lies outside the field of view of {first} by their affines: none of it falls on the "
            "first input's grid")


#: The fewest voxels along every axis of a volume that registration places
#: (:mod:`~napari_mr_reparam.registration`).
MIN_REGISTERED_VOXELS = 8


def frame_refusal(volumes: list[Volume], reference: int = 0, registering: bool = False) -> str | None:
    """Why DICOM series cannot be placed by their affines together (their PatientID, or
    their FrameOfReferenceUID, the scanner's coordinates of one session, differ; a series
    registered onto the reference, ``extra["registered"]``, or about to be
    (``registering``), is placed by its motion), else None. A series that does not state
    the tag is not judged by it."""
    ref = volumes[reference]

    def tag(volume, key):
        return (volume.extra or {}).get(key)

    for volume in volumes:
        if volume.source == ref.source:
            continue  # acquisitions of one series
        this, first = _name(volume), _name(ref)
        if this == first:
            this, first = str(volume.source), str(ref.source)
        if tag(volume, "patient") and tag(ref, "patient") and tag(volume, "patient") != tag(ref, "patient"):
            return (f"{this} and {first} are scans of different people (their DICOM PatientID differ): "
                    "joint maps need images of one subject")
        frames = tag(volume, "frame_of_reference"), tag(ref, "frame_of_reference")
        if all(frames) and frames[0] != frames[1] and not (registering or tag(volume, "registered")):
            thin = min(min(np.shape(v.data)) for v in (volume, ref)) < MIN_REGISTERED_VOXELS
            cure = (f", and registration needs {MIN_REGISTERED_VOXELS} or more slices: give scans of one session"
                    if thin else ": register them onto the first (--register; the widget's 'Register onto the "
                                 "first image')")
            return (f"{this} and {first} were scanned in different sessions (their DICOM FrameOfReferenceUID "
                    f"differ), so their affines do not place them together{cure}")
    return None


def _shape(volume: Volume) -> str:
    return "x".join(map(str, volume.data.shape))


def _name(volume: Volume) -> str:
    """A volume by its file or folder's name, or by its source as given where that is no
    path (a napari layer's name, ``plate5 TE 8 / TR 2300 ms``)."""
    from pathlib import Path

    if not volume.source:
        return "an input"
    return Path(volume.source).name if Path(volume.source).exists() else str(volume.source)
