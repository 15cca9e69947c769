"""The axial stack: how the package lays out a volume's voxels, and their place in space.

Volumes are handed to the rest of the package as **axial stacks** ``data[z, y, x]``
(:mod:`.io` reads them). NIfTI data are first reoriented to the closest canonical
orientation (RAS+: voxel axes pointing to patient Right, Anterior, Superior, as chosen by
``nibabel.orientations.io_orientation``), then arranged as

==========  ======================  ===============================================
stack axis  RAS+ axis               runs from ... to ...
==========  ======================  ===============================================
``z`` (0)   S, as is                inferior -> superior (``data[k]`` is axial)
``y`` (1)   A, flipped              anterior -> posterior (row 0 = front of head)
``x`` (2)   R, flipped              patient right -> patient left
==========  ======================  ===============================================

so an axial slice shows anterior at the top and the patient's right on the viewer's
left (the radiological view), as the phantoms and the paper's images are laid out.

A volume whose grid shows a 2-D multi-slice acquisition in another plane
(:func:`acquired_axis`: one axis of few voxels or thick ones, along R or A) keeps its
acquired slices, as a DICOM series of that plane does (:mod:`.dicom`): a coronal stack
runs anterior -> posterior with the head's top up and the patient's right on the viewer's
left; a sagittal one runs left -> right with the top up and the face on the viewer's left
(:data:`STACK_FROM_RAS_IN`, the usual DICOM orientation of each plane). Its ``ornt`` is
then the transform that, followed by the axial one, makes that stack
(:func:`stack_orientation`), so everything below works on it unchanged.
:func:`to_original` undoes this exactly, so outputs are written in the input's own voxel
order with its own affine and header (:mod:`.volume_writing`). 2-D images are not
reoriented.

A ``volume`` here is a :class:`~napari_mr_reparam.io.Volume` (this module lies below
:mod:`.io`, which uses it to make its stacks).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Volume kinds that carry an affine and orientation, written back in their voxel order.
ORIENTED_KINDS = ("nifti", "dicom")

# nibabel orientation transform from RAS+ voxel axes to the stack; row i is
# [stack axis, flip] of RAS axis i: R -> x flipped, A -> y flipped, S -> z as is.
_STACK_FROM_RAS = np.array([[2, -1], [1, -1], [0, 1]])
#: The plane whose slices are normal to RAS axis 0, 1, 2.
PLANES = ("sagittal", "coronal", "axial")
#: Per plane, the orientation transform from RAS+ voxel axes to a stack of that plane's
#: slices (row i: [stack axis, flip] of RAS axis i), laid out as a DICOM series of the
#: plane's usual orientation is: axial as above; coronal: z anterior -> posterior, y
#: superior -> inferior, x right -> left; sagittal: z left -> right, y superior ->
#: inferior, x anterior -> posterior.
STACK_FROM_RAS_IN = {"axial": _STACK_FROM_RAS,
                     "coronal": np.array([[2, -1], [0, -1], [1, -1]]),
                     "sagittal": np.array([[0, 1], [2, -1], [1, -1]])}
#: Voxels more than this many times longer along one axis than along the others are the
#: thick slices of a 2-D acquisition (the DICOM reader's ``ISOTROPIC_RATIO`` is this).
THICK_RATIO = 1.5
#: An axis of fewer voxels than this (the DICOM reader's ``MIN_VOLUME_SLICES`` is this), and at
#: most :data:`FEW_FRACTION` of the smaller other axis' count, holds the slices of a 2-D
#: multi-slice acquisition; a single slice always does.
FEW_SLICES = 16
FEW_FRACTION = 0.25


def ras_orientation(affine: np.ndarray) -> np.ndarray:
    """``io_orientation`` of the affine, with degenerate (zero) axes given the free RAS axes."""
    from nibabel import orientations as orn

    ornt = orn.io_orientation(np.nan_to_num(np.asarray(affine, np.float64)))
    missing = np.isnan(ornt[:, 0])
    if missing.any():
        free = [a for a in range(3) if a not in ornt[~missing, 0]]
        ornt[missing] = [[a, 1] for a in free]
    return ornt


def acquired_axis(shape, zooms) -> int | None:
    """The voxel axis along which a volume's slices were acquired, where its grid shows a
    2-D multi-slice acquisition: the one axis of a single voxel, of few voxels
    (:data:`FEW_SLICES`, :data:`FEW_FRACTION`) or of thick ones (:data:`THICK_RATIO`);
    None for a 3-D volume, or where more than one axis would do."""
    counts = [int(s) for s in tuple(shape)[:3]] + [1] * (3 - len(tuple(shape)[:3]))
    sizes = [float(z) for z in tuple(zooms)[:3]] + [1.0] * 3
    found = [axis for axis in range(3) if _few(counts, axis) or _thick(sizes, axis)]
    return found[0] if len(found) == 1 else None


def _few(counts: list, axis: int) -> bool:
    """Whether ``axis`` has one voxel, or few against the other axes' counts."""
    others = min(c for a, c in enumerate(counts) if a != axis)
    return counts[axis] == 1 or (counts[axis] < FEW_SLICES and counts[axis] <= FEW_FRACTION * others)


def _thick(sizes: list, axis: int) -> bool:
    """Whether the voxels along ``axis`` are clearly longer than along both others."""
    if not all(np.isfinite(z) and z > 0 for z in sizes[:3]):
        return False
    return sizes[axis] > THICK_RATIO * max(z for a, z in enumerate(sizes[:3]) if a != axis)


def stack_orientation(affine: np.ndarray, shape, zooms) -> np.ndarray:
    """The ``ornt`` that :func:`file_to_stack` makes a volume's stack with: axial slices
    (:func:`ras_orientation`), or a 2-D multi-slice acquisition's own coronal or sagittal
    slices (:func:`acquired_axis`, :data:`STACK_FROM_RAS_IN`)."""
    to_ras = ras_orientation(affine)
    axis = acquired_axis(shape, zooms)
    plane = "axial" if axis is None else PLANES[int(to_ras[axis, 0])]
    if plane == "axial":
        return to_ras
    inverse = _inverse(_STACK_FROM_RAS)
    ornt = np.zeros_like(to_ras)
    for file_axis, (ras_axis, flip) in enumerate(to_ras):
        target, turn = STACK_FROM_RAS_IN[plane][int(ras_axis)]
        ornt[file_axis] = [inverse[target, 0], flip * turn * inverse[target, 1]]
    return ornt


def file_to_stack(data: np.ndarray, to_ras: np.ndarray) -> np.ndarray:
    """File-ordered voxels as the package's axial stack, given the file axes' orientation."""
    from nibabel import orientations as orn

    return orn.apply_orientation(orn.apply_orientation(data, to_ras), _STACK_FROM_RAS)


def ras_to_stack(array: np.ndarray) -> np.ndarray:
    """A canonical (RAS+) voxel array rearranged as the package's axial stack (z, y, x)."""
    from nibabel import orientations as orn

    return np.ascontiguousarray(orn.apply_orientation(array, _STACK_FROM_RAS))


def stack_spacing(zooms, to_ras: np.ndarray) -> tuple[float, float, float]:
    """Voxel size (mm) along the stack's (z, y, x) from the file axes' sizes ``zooms`` and
    their orientation ``to_ras`` (1 where unusable)."""
    zooms = [float(z) for z in zooms[:3]] + [1.0] * 3
    spacing = [1.0] * 3
    for axis, (ras_axis, _) in enumerate(to_ras):
        value = zooms[axis]
        spacing[int(_STACK_FROM_RAS[int(ras_axis), 0])] = value if np.isfinite(value) and value > 0 else 1.0
    return tuple(spacing)


def stack_affine(volume) -> np.ndarray:
    """The affine of the volume's stack (``data[z, y, x]`` voxel -> RAS+ mm): the file's
    affine through the reorientation that made the stack (a NIfTI or DICOM volume)."""
    from nibabel import orientations as orn

    file_shape = volume.file_shape
    ornt = np.asarray(volume.ornt, float)
    ras_shape = [0, 0, 0]
    for axis, (ras_axis, _) in enumerate(ornt):
        ras_shape[int(ras_axis)] = file_shape[axis]
    return (np.asarray(volume.affine, float) @ orn.inv_ornt_aff(ornt, file_shape)
            @ orn.inv_ornt_aff(_STACK_FROM_RAS, tuple(ras_shape)))


def slice_plane(volume) -> str | None:
    """The plane of a placed (NIfTI or DICOM) volume's stack slices, by the patient axis
    nearest their normal: ``'axial'``, ``'coronal'`` or ``'sagittal'``; None for an image
    of unknown placement."""
    if volume.kind not in ORIENTED_KINDS or volume.affine is None or volume.ornt is None:
        return None
    normal = stack_affine(volume)[:3, 0]
    return PLANES[int(np.argmax(np.abs(normal)))]


def to_original(volume, data_zyx: np.ndarray) -> np.ndarray:
    """Arrange a stack shaped like ``volume``'s back into the original file's voxel order.

    For images (and volumes without orientation) the stack is returned as is.
    """
    data = np.asarray(data_zyx)
    if volume.kind not in ORIENTED_KINDS or volume.ornt is None:
        return data
    check_fits(volume, data, Path(volume.source or "input"))
    from nibabel import orientations as orn

    return orn.apply_orientation(stack_to_ras(data), _inverse(volume.ornt)).reshape(volume.original_shape)


def check_fits(like, data: np.ndarray, path: Path) -> None:
    if tuple(data.shape) != tuple(like.stack_shape):
        raise ValueError(f"{path.name}: data of shape {data.shape} do not fit the input volume "
                         f"(shape {tuple(like.stack_shape)})")


def stack_to_ras(data_zyx: np.ndarray) -> np.ndarray:
    from nibabel import orientations as orn

    return orn.apply_orientation(data_zyx, _inverse(_STACK_FROM_RAS))


def axis_directions(affine) -> np.ndarray:
    """The unit vectors (columns, RAS+) along which an affine's voxel axes run."""
    steps = np.asarray(affine, float)[:3, :3]
    return steps / np.linalg.norm(steps, axis=0)


def ras_voxel_to_stack(stack_shape) -> np.ndarray:
    """The affine taking a voxel index of :func:`stack_to_ras`'s file order to the stack's
    (slice, row, column) for a stack of ``stack_shape``."""
    from nibabel import orientations as orn

    return orn.inv_ornt_aff(_inverse(_STACK_FROM_RAS), tuple(stack_shape))


def _inverse(ornt: np.ndarray) -> np.ndarray:
    """The orientation transform undoing ``ornt`` (for ``apply_orientation``)."""
    inv = np.zeros_like(np.asarray(ornt))
    for axis, (target, flip) in enumerate(np.asarray(ornt)):
        inv[int(target)] = [axis, flip]
    return inv
