"""Scans of one subject that moved between series, placed where the first scan has the head.

The scans of a session share the scanner's coordinates, and :mod:`.grids` brings them onto
one grid by their affines. When the head moved between two series (it often does by a
millimetre or a degree or two, more in a long session), every voxel of the later scan is
placed a little off, and a voxel-by-voxel joint fit mixes tissues at every edge.
:func:`registered` finds each scan's rigid motion against the first with SimpleITK's
registration framework (Mattes mutual information, so the scans may differ in contrast;
a 3-D Euler transform; two levels, 4 and 2 times coarser; a regular-step gradient
descent; the metric sampled on the coarser scan's grid, which keeps a scan of thick slabs
from drifting) and corrects the scan's affine by it. Scans of like voxels are registered
both ways, and a pair whose two motions disagree is refused: a registration stopped in a
wrong optimum, as happens when the head moved far, says so instead of placing a scan
centimetres off. Nothing is resampled here: the corrected
affine is what :func:`~napari_mr_reparam.grids.on_one_grid` then follows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from .cancellation import Cancelled, stop_if_cancelled
from .grids import MIN_REGISTERED_VOXELS
from .io import Volume
from .orientation import stack_affine

#: Shrink factors of the two levels (coarse to fine).
SHRINK = (4, 2)
#: Share of the voxels that the metric samples at each level (drawn with a fixed seed).
SAMPLING = 0.2
#: The scan whose voxels are this many times larger is the one the metric samples.
COARSER = 1.5
#: Histogram bins of the mutual information.
BINS = 32
#: Most iterations per level.
ITERATIONS = 100
#: Fewest voxels a volume needs along each axis for a 3-D registration (defined with the
#: grids, whose refusals name it).
MIN_VOXELS = MIN_REGISTERED_VOXELS
#: A turn larger than this, or a shift of the field of view's centre larger than this, is
#: taken as a failure of the registration, not as a move of the head.
MOST_ROTATION_DEG = 20.0
MOST_SHIFT_MM = 30.0
#: Registered both ways, two motions that differ by more than this at the field of view's
#: corners are taken as a failure (successes differ by 0.1-0.8 mm, failures by 5-7 mm:
#: training/RESULTS.md, "Scans between which the head moved").
MOST_DISAGREEMENT_MM = 3.0


@dataclass(frozen=True)
class Motion:
    """A scan's motion against the reference scan.

    Attributes
    ----------
    matrix : ndarray (4, 4)
        Maps a point of the reference's world (RAS+ mm) to where the same anatomy lies in
        the moved scan's world, as its own affine places it.
    rotation_deg : float
        The rotation's angle.
    shift_mm : float
        The largest displacement of the reference's field of view (at its corners).
    """

    matrix: np.ndarray
    rotation_deg: float
    shift_mm: float

    def describe(self) -> str:
        return f"{self.rotation_deg:.1f} deg, up to {self.shift_mm:.1f} mm across the field of view"


def _refusal(volume: Volume) -> str | None:
    from .grids import is_placed

    name = volume.source or "an input"
    if not is_placed(volume):
        return f"{name} has no affine (not NIfTI or DICOM): registration needs each scan's placement"
    if volume.data.ndim != 3 or min(volume.data.shape) < MIN_VOXELS:
        shape = "x".join(map(str, volume.data.shape))
        return f"{name} is {shape} voxels: registration needs volumes of at least {MIN_VOXELS} voxels along every axis"
    return None


def _as_image(volume: Volume):
    """The volume's stack as a SimpleITK image placed in RAS+ mm (its affine's directions)."""
    import SimpleITK as sitk

    affine = stack_affine(volume)
    columns = affine[:3, [2, 1, 0]]  # SimpleITK indexes (x, y, z): the stack's axes reversed
    spacing = np.linalg.norm(columns, axis=0)
    q, r = np.linalg.qr(columns / spacing)  # orthonormal, should the affine shear a little
    direction = q * np.sign(np.diag(r))
    values = np.nan_to_num(np.asarray(volume.data, np.float32), nan=0.0)
    image = sitk.GetImageFromArray(values)
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection([float(d) for d in direction.ravel()])
    image.SetOrigin([float(o) for o in affine[:3, 3]])
    return image


def _voxel_volume(volume: Volume) -> float:
    return float(abs(np.linalg.det(stack_affine(volume)[:3, :3])))


def _matrix(transform) -> np.ndarray:
    rotation = np.array(transform.GetMatrix(), float).reshape(3, 3)
    centre = np.array(transform.GetCenter(), float)
    out = np.eye(4)
    out[:3, :3] = rotation
    out[:3, 3] = centre + np.array(transform.GetTranslation(), float) - rotation @ centre
    return out


def _corners(volume: Volume) -> np.ndarray:
    last = np.asarray(volume.data.shape, float) - 1
    grid = np.array([[i, j, k, 1.0] for i in (0, last[0]) for j in (0, last[1]) for k in (0, last[2])])
    return grid @ stack_affine(volume).T


def _register(fixed: Volume, moving: Volume, cancelled=None) -> np.ndarray:
    """The rigid transform (4 x 4, RAS mm) from ``fixed``'s world to where its anatomy lies
    in ``moving``'s, by SimpleITK's registration sampled on ``fixed``'s grid."""
    import SimpleITK as sitk

    fixed_image, moving_image = _as_image(fixed), _as_image(moving)
    start = sitk.Euler3DTransform()
    start.SetCenter(fixed_image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in fixed_image.GetSize()]))
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(BINS)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(SAMPLING, 1)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-3,
                                                    numberOfIterations=ITERATIONS, relaxationFactor=0.5)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(SHRINK))
    method.SetSmoothingSigmasPerLevel([s / 2 for s in SHRINK])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(start, inPlace=True)
    stopped = []
    if cancelled is not None:
        def ask():
            if not stopped and cancelled():
                stopped.append(method.StopRegistration())

        method.AddCommand(sitk.sitkIterationEvent, ask)
    try:
        method.Execute(fixed_image, moving_image)
    except RuntimeError as exc:  # SimpleITK's own message is pages long
        raise ValueError(f"registration of {moving.source or 'an input'} onto {fixed.source or 'the first input'} "
                         f"failed ({str(exc).strip().splitlines()[-1][:120]})") from None
    if stopped:
        raise Cancelled()
    return _matrix(start)


def _largest_move(matrix: np.ndarray, volume: Volume) -> float:
    """How far ``matrix`` moves the corners of ``volume``'s field of view, at most (mm)."""
    return float(np.linalg.norm(_corners(volume) @ (matrix - np.eye(4)).T, axis=1).max())


def find_motion(reference: Volume, moved: Volume, cancelled=None) -> Motion:
    """The rigid motion of ``moved`` against ``reference`` (both placed volumes of at least
    :data:`MIN_VOXELS` voxels along each axis); a ``ValueError`` when they cannot be
    registered, or the motion found is beyond what a head does (:data:`MOST_ROTATION_DEG`,
    :data:`MOST_SHIFT_MM`). Scans of like voxels are registered both ways, each sampled on
    its own grid in turn; where the two motions differ by more than
    :data:`MOST_DISAGREEMENT_MM` across the field of view, one of them stopped in a wrong
    optimum (as registrations do when the head moved far) and the result is refused. A
    scan of voxels :data:`COARSER` times larger is the one sampled, one way only.
    ``cancelled()`` is asked at every iteration of the optimizer: True stops it and raises
    :class:`~napari_mr_reparam.cancellation.Cancelled`."""
    for volume in (reference, moved):
        refusal = _refusal(volume)
        if refusal:
            raise ValueError(refusal)
    names = f"{moved.source or 'an input'} onto {reference.source or 'the first input'}"
    if _voxel_volume(moved) > COARSER * _voxel_volume(reference):  # sampled on the thick scan's grid
        matrix = np.linalg.inv(_register(moved, reference, cancelled))
    else:
        matrix = _register(reference, moved, cancelled)
        if _voxel_volume(reference) <= COARSER * _voxel_volume(moved):  # like voxels: both ways
            back = _register(moved, reference, cancelled)
            disagreement = _largest_move(back @ matrix, reference)
            if disagreement > MOST_DISAGREEMENT_MM:
                raise ValueError(f"registration of {names} is not the same both ways (the two differ by up to "
                                 f"{disagreement:.1f} mm across the field of view): the head may have moved more "
                                 "than registration follows (it is measured to 10 degrees and 10 mm); not registered")
    corners = _corners(reference)
    centre = np.linalg.norm((matrix - np.eye(4)) @ corners.mean(axis=0))
    angle = math.degrees(math.acos(np.clip((np.trace(matrix[:3, :3]) - 1) / 2, -1.0, 1.0)))
    motion = Motion(matrix, angle, _largest_move(matrix, reference))
    if angle > MOST_ROTATION_DEG or centre > MOST_SHIFT_MM:
        raise ValueError(f"registration of {names} found a motion of {motion.describe()}, "
                         "more than a head moves between series: are these scans of one subject and session?")
    return motion


def moved_back(volume: Volume, motion: Motion) -> Volume:
    """``volume`` with its affine corrected by ``motion``: each voxel placed where the
    reference scan has that anatomy. Its voxels are unchanged."""
    affine = np.linalg.inv(motion.matrix) @ np.asarray(volume.affine, float)
    return replace(volume, affine=affine, extra={**(volume.extra or {}), "registered": True})


def _series(volume: Volume) -> str | None:
    """The DICOM series a volume came from (its SeriesInstanceUID), else None."""
    return (volume.extra or {}).get("series_uid") or None


def work_units(reference_shape, further: int = 1) -> int:
    """How many units ``progress`` counts in :func:`registered` for ``further`` volumes
    registered onto a reference of ``reference_shape``: its slices (first axis) for each,
    one registration weighing about as much as a pass of the network over the volume."""
    return (reference_shape[0] if len(reference_shape) == 3 else 1) * further


def registered(volumes: list[Volume], reference: int = 0, progress=None,
               cancelled=None) -> tuple[list[Volume], list[Motion | None]]:
    """Each volume with its affine corrected for its motion against ``volumes[reference]``
    (:func:`find_motion`, :func:`moved_back`), and the motions (None where nothing moved).
    Images of one DICOM series (the echoes or inversion times of one scan) did not move
    against each other: one registration serves them all, and those of the reference's
    series stay as they are. ``progress(n)`` is told each further volume's share of
    :func:`work_units` once it is placed; ``cancelled()`` is asked before each and during
    each registration (True raises :class:`~napari_mr_reparam.cancellation.Cancelled`)."""
    found = {_series(volumes[reference]): None}
    share = work_units(np.shape(volumes[reference].data))
    out, motions = [], []
    for i, volume in enumerate(volumes):
        if i == reference:
            out.append(volume)
            motions.append(None)
            continue
        stop_if_cancelled(cancelled)
        series = _series(volume)
        if series is not None and series in found:
            motion = found[series]
        else:
            motion = find_motion(volumes[reference], volume, cancelled=cancelled)
        if series is not None:
            found[series] = motion
        out.append(volume if motion is None else moved_back(volume, motion))
        motions.append(motion)
        if progress is not None:
            progress(share)
    return out, motions


def registered_by_name(volumes: list[Volume], progress=None,
                       cancelled=None) -> tuple[list[Volume], list[tuple[str, Motion]]]:
    """:func:`registered` onto the first volume (``progress`` and ``cancelled`` as there),
    with (source name, motion) of each volume that was registered, as the command line and
    the widget report them."""
    out, motions = registered(volumes, progress=progress, cancelled=cancelled)
    return out, [(v.source or "input", m) for v, m in zip(volumes, motions) if m is not None]

