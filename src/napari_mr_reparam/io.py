"""Reading and writing volumes: NIfTI (nibabel) and 2-D images, with BIDS sidecars.

Volumes are handed to the rest of the package as **axial stacks** ``data[z, y, x]``,
float32. NIfTI data are first reoriented to the closest canonical orientation (RAS+:
voxel axes pointing to patient Right, Anterior, Superior, as chosen by
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
:func:`to_original` undoes this exactly, so outputs are written in the input's own voxel
order with its own affine and header. 2-D images become one-slice stacks ``(1, h, w)``;
a multi-page TIFF is a stack as stored. Images are not reoriented.

Times in sidecars are BIDS seconds on disk and milliseconds in :class:`Volume`.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .units import ms_to_s, refuse_milliseconds, s_to_ms

NIFTI_SUFFIXES = (".nii", ".nii.gz")
#: FreeSurfer volumes (``orig.mgz``, ``T1.mgz``, ``brain.mgz``): read as NIfTI is, written
#: back as NIfTI.
MGH_SUFFIXES = (".mgz", ".mgh")
#: Volumes with a placement, read with nibabel.
VOLUME_SUFFIXES = NIFTI_SUFFIXES + MGH_SUFFIXES
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
#: ``.dcm`` is a DICOM series: a folder of that name, one file per slice
#: (:mod:`.dicom_export`).
OUTPUT_SUFFIXES = (".nii", ".nii.gz", ".npy", ".tif", ".tiff", ".png", ".dcm")
#: Volume kinds that carry an affine and orientation, written back in their voxel order.
ORIENTED_KINDS = ("nifti", "dicom")
#: Files whose header claims more voxels than this are refused before anything is read.
MAX_VOXELS = 2**31
#: Rec. 709 luminance weights for RGB -> gray.
_LUMA = np.array([0.2125, 0.7154, 0.0721], np.float32)

# nibabel orientation transform from RAS+ voxel axes to the stack; row i is
# [stack axis, flip] of RAS axis i: R -> x flipped, A -> y flipped, S -> z as is.
_STACK_FROM_RAS = np.array([[2, -1], [1, -1], [0, 1]])


#: Names of a :class:`Volume`'s axes (z, y, x) as napari shows them: its slice slider
#: reads "slice" rather than napari's default "-3".
AXIS_LABELS = ("slice", "y", "x")


@dataclass
class Volume:
    """An axial stack ``(z, y, x)``, float32, with what is needed to write it back.

    Attributes
    ----------
    data : ndarray (z, y, x) float32
        The stack; NaN stays NaN.
    spacing : tuple of float
        Voxel size along (z, y, x) in mm (1 for 2-D images).
    affine : ndarray (4, 4) or None
        The original file's affine (NIfTI only), for the original voxel order.
    header : nibabel header or None
        The original NIfTI header.
    ornt : ndarray (3, 2) or None
        ``nibabel.orientations`` transform from the file's voxel axes to RAS+ (NIfTI only).
    original_shape : tuple
        Shape of the data in the file (after dropping trailing singleton dimensions).
    te_ms, tr_ms, ti_ms, flip_deg : float or None
        Acquisition parameters from the BIDS sidecar ``<stem>.json``, if any.
    sequence : str or None
        The sequence the sidecar's ``ScanningSequence`` names (:func:`sequence_of`), if any.
    source : str
        The file read.
    kind : str
        ``'nifti'``, ``'dicom'`` (see :mod:`.dicom`; written back as NIfTI with its
        affine, like ``'nifti'``) or ``'image'``.
    """

    data: np.ndarray
    spacing: tuple = (1.0, 1.0, 1.0)
    affine: np.ndarray | None = None
    header: Any = None
    ornt: np.ndarray | None = None
    original_shape: tuple = ()
    te_ms: float | None = None
    tr_ms: float | None = None
    ti_ms: float | None = None
    flip_deg: float | None = None
    sequence: str | None = None
    source: str = ""
    kind: str = "nifti"
    extra: dict = field(default_factory=dict)

    @property
    def orientation(self) -> np.ndarray | None:
        """Alias of :attr:`ornt`: file voxel axes -> RAS+."""
        return self.ornt

    @property
    def stack_shape(self) -> tuple:
        """Shape of the stack this volume's file gives (``data`` may be a stub)."""
        if self.kind not in ORIENTED_KINDS or self.ornt is None:
            return tuple(self.original_shape) or self.data.shape
        return file_to_stack(np.broadcast_to(np.float32(0), self.file_shape), self.ornt).shape

    @property
    def file_shape(self) -> tuple:
        """The file's voxel grid as three axes (trailing ones where it has fewer)."""
        return tuple(int(s) for s in self.original_shape) + (1,) * (3 - len(self.original_shape))


# ----------------------------------------------------------------------------- paths


def suffix_of(path: str | Path) -> str:
    """Lower-case extension, ``.nii.gz`` counted as one; ``''`` when there is none."""
    name = str(path).lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def readable_files(folder: str | Path) -> list[Path]:
    """The NIfTI and FreeSurfer volumes and 2-D images directly in ``folder``, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and suffix_of(p) in VOLUME_SUFFIXES + IMAGE_SUFFIXES)


def sidecar_path(path: str | Path) -> Path:
    """The BIDS sidecar beside ``path``: ``scan.nii.gz`` -> ``scan.json``."""
    path = Path(path)
    suffix = suffix_of(path)
    stem = path.name[: -len(suffix)] if suffix else path.name
    return path.with_name(stem + ".json")


#: The times a sidecar states, by :class:`Volume` field.
SIDECAR_TIMES = {"te_ms": "EchoTime", "tr_ms": "RepetitionTime", "ti_ms": "InversionTime"}


def read_sidecar(path: str | Path, times_given=(), volumes: int | None = None) -> dict:
    """Acquisition parameters from the BIDS sidecar beside ``path`` (data file or sidecar).

    Returns a dict with those of ``te_ms``, ``tr_ms``, ``ti_ms`` (milliseconds),
    ``flip_deg`` (degrees) and ``sequence`` (:func:`sequence_of` its ``ScanningSequence``)
    that the sidecar states; empty when there is none. A sidecar that is not readable JSON
    (an object) is a one-line ``ValueError`` naming it, unless ``times_given`` holds
    ``te_ms`` and ``tr_ms``: then ``times_ignored`` says it is ignored. A time that can only
    have been written in milliseconds (BIDS stores seconds) is a one-line ``ValueError``
    naming the sidecar, unless ``times_given`` (``te_ms``, ``tr_ms``, ``ti_ms``: the times
    known otherwise, e.g. typed by the user) holds every time the sidecar states: then
    none of its times is returned, and ``times_ignored`` says why in one line. For a file of
    ``volumes`` volumes (a 4-D NIfTI file, :func:`load_volumes`) a time may also be a list
    of one value per volume: it is returned as a list of milliseconds.
    """
    side = Path(path) if suffix_of(path) == ".json" else sidecar_path(path)
    if not side.exists():
        return {}
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
        problem = "" if isinstance(meta, dict) else f"it holds a JSON {type(meta).__name__}, not an object"
    except (OSError, ValueError) as exc:
        problem = first_line(exc)
    if problem:  # its times are unknown: only times known otherwise let the image be read without them
        if {"te_ms", "tr_ms"} <= set(times_given):
            return {"times_ignored": f"{side.name} is ignored (not a readable BIDS sidecar: {problem})"}
        raise ValueError(f"{side.name}: not a readable BIDS sidecar ({problem}); fix it or move it away, or "
                         "give the input's times (--input-te and --input-tr) to read the image without it")
    out, refused = {}, []
    for ours, key in SIDECAR_TIMES.items():
        value = meta.get(key)
        listed = bool(volumes) and isinstance(value, list)  # one value per volume
        if listed and len(value) != volumes:
            raise ValueError(f"{side.name}: {key} lists {len(value)} values for the image's {volumes} volumes")
        each = value if listed else [value]
        if not all(_is_number(v) and v > 0 for v in each):
            continue
        for v in each:
            try:
                refuse_milliseconds(key, v)
            except ValueError as exc:
                refused.append((ours in times_given, key, v, exc))
                break
        out[ours] = [float(s_to_ms(v)) for v in each] if listed else float(s_to_ms(value))
    if refused:
        _, key, value, exc = min(refused, key=lambda r: r[0])  # one still in use first
        if not set(out) <= set(times_given):  # a time still in use cannot be trusted
            raise ValueError(f"{side.name}: {exc}")
        out = {"times_ignored": f"the times in {side.name} are ignored ({key} {value:g} can only be "
                                "milliseconds; BIDS sidecars store seconds)"}
    if _is_number(meta.get("FlipAngle")):
        out["flip_deg"] = float(meta["FlipAngle"])
    sequence = sequence_of(meta.get("ScanningSequence"))
    if sequence:
        out["sequence"] = sequence
    return out


def sequence_of(scanning_sequence) -> str | None:
    """The package's name for a BIDS/DICOM ``ScanningSequence`` (a code such as ``SE``,
    ``IR``, ``GR`` or a list of them): gradient echo after an inversion is ``mprage``,
    an inversion otherwise ``inversion_recovery``, a gradient echo ``gradient_echo``, a
    spin echo ``spin_echo``; None for anything else (echo-planar, research codes)."""
    if isinstance(scanning_sequence, str):
        codes = {c.strip().upper() for c in scanning_sequence.replace("\\", " ").replace(",", " ").split()}
    elif isinstance(scanning_sequence, (list, tuple)):
        codes = {str(c).strip().upper() for c in scanning_sequence}
    else:
        return None
    if "IR" in codes:
        return "mprage" if "GR" in codes else "inversion_recovery"
    if "GR" in codes:
        return "gradient_echo"
    if "SE" in codes:
        return "spin_echo"
    return None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


# ----------------------------------------------------------------------------- reading


def probe(path: str | Path) -> tuple:
    """Check cheaply (header only) that ``path`` is a volume or image this module reads.

    Returns the data shape the file claims. Raises ``FileNotFoundError`` or
    ``ValueError`` (one line naming the file), as :func:`load_volume` would.
    """
    path = _existing_file(path)
    if suffix_of(path) in VOLUME_SUFFIXES:
        return _open_nifti(path)[1]
    if suffix_of(path) in (".tif", ".tiff"):
        import tifffile

        with _readable(path, "TIFF"), tifffile.TiffFile(str(path)) as tif:
            return _tiff_layout(path, tif.series[0])[1]
    from PIL import Image

    with _readable(path, "image"), Image.open(path) as im:
        return _check_size(path, (im.size[1], im.size[0]))


def load_volume(path: str | Path, times_given=()) -> Volume:
    """Read a NIfTI volume or a 2-D image as an axial stack (see the module docstring).

    Parameters
    ----------
    path : str or Path
        ``.nii``, ``.nii.gz``, FreeSurfer's ``.mgz`` / ``.mgh``, ``.png``, ``.jpg``,
        ``.jpeg``, ``.tif`` or ``.tiff``. A BIDS sidecar ``<stem>.json`` beside it
        provides TE/TR/TI (ms) and flip angle.
    times_given : collection of str
        The times (``te_ms``, ``tr_ms``, ``ti_ms``) the caller knows otherwise: a sidecar
        whose times can only be milliseconds is refused unless they cover every time it
        states; then its times are left unset and ``extra["sidecar_times_ignored"]`` says
        why in one line (see :func:`read_sidecar`).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Unsupported, empty, corrupt, truncated, too large, or not 2-D/3-D data; the
        message is one line and names the file.
    """
    path = _existing_file(path)
    if suffix_of(path) in VOLUME_SUFFIXES:
        volume = _load_nifti(path)
    else:
        volume = _load_image(path)
    _take_sidecar(volume, read_sidecar(path, times_given), path)
    return volume


def _take_sidecar(volume: Volume, sidecar: dict, path: Path, index: int | None = None) -> None:
    """``volume`` takes what :func:`read_sidecar` returned (``index``: the volume's value of
    a time listed per volume) and ``path`` as its source."""
    for key, value in sidecar.items():
        if key == "times_ignored":
            volume.extra["sidecar_times_ignored"] = value
        else:
            setattr(volume, key, value[index] if isinstance(value, list) else value)
    volume.source = str(path)


#: The most volumes a 4-D NIfTI file may hold to open as one image per volume (the echoes
#: of a multi-echo scan or the inversion times of a relaxometry series saved as one file,
#: as qMRLab's examples are); a longer one (fMRI, diffusion) is refused.
MAX_SERIES_VOLUMES = 32


def load_volumes(path: str | Path, times_given=()) -> list[Volume]:
    """The images of a file: :func:`load_volume`'s one, or one per volume of a 4-D NIfTI
    file of at most :data:`MAX_SERIES_VOLUMES` volumes. The sidecar's EchoTime,
    RepetitionTime and InversionTime may then be lists with one value per volume (a
    single value holds for every volume); each volume's ``extra`` holds ``series`` (the
    file's name without its suffix) and ``volume`` (its number, from 1). Errors as
    :func:`load_volume`'s, one line naming the file."""
    import nibabel as nib

    path = _existing_file(path)
    if suffix_of(path) not in NIFTI_SUFFIXES:
        return [load_volume(path, times_given)]
    with _readable(path, "NIfTI"):
        img = nib.load(str(path))
        shape = _without_trailing_ones(img.shape)
    if len(shape) != 4 or not isinstance(img, nib.Nifti1Image) or shape[3] < 2:
        return [load_volume(path, times_given)]
    if shape[3] > MAX_SERIES_VOLUMES:
        raise ValueError(f"{path.name}: a 4-D image of {shape[3]} volumes (a time series?); at most "
                         f"{MAX_SERIES_VOLUMES} open as one image each: save the volumes you need as 3-D files")
    _check_size(path, shape[:3])
    with _readable(path, "NIfTI"):
        data = np.asarray(img.dataobj, dtype=np.float32).reshape(shape)
    sidecar = read_sidecar(path, times_given, volumes=shape[3])
    stem = path.name[: -len(suffix_of(path))]
    out = []
    for k in range(shape[3]):
        volume = _nifti_volume(img, data[..., k], shape[:3])
        _take_sidecar(volume, sidecar, path, k)
        volume.extra.update(series=stem, volume=k + 1)
        out.append(volume)
    return out


def volume_count(path: str | Path) -> int:
    """How many images :func:`load_volumes` reads from ``path``: the volumes of a 4-D NIfTI
    file (read from its header alone), else 1. 1 for a file it cannot tell (a missing or
    unreadable file is reported when it is read)."""
    import nibabel as nib

    path = Path(path)
    if suffix_of(path) not in NIFTI_SUFFIXES or not path.is_file():
        return 1
    try:
        shape = _without_trailing_ones(nib.load(str(path)).shape)
    except Exception:  # reported, one line, when the file is read
        return 1
    return shape[3] if len(shape) == 4 else 1


def _without_trailing_ones(shape) -> tuple:
    """A shape without its singleton dimensions past the third."""
    kept = tuple(int(s) for s in shape)
    while len(kept) > 3 and kept[-1] == 1:
        kept = kept[:-1]
    return kept


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if not path.is_file():
        raise ValueError(f"{path.name}: is a folder, not a file")
    if suffix_of(path) not in VOLUME_SUFFIXES + IMAGE_SUFFIXES:
        raise ValueError(f"{path.name}: unsupported file type; use NIfTI (.nii, .nii.gz), FreeSurfer "
                         f"(.mgz, .mgh) or an image ({', '.join(IMAGE_SUFFIXES)})")
    if path.stat().st_size == 0:
        raise ValueError(f"{path.name}: the file is empty")
    return path


class _readable:
    """Context manager turning any exception of a reading library into a one-line ValueError."""

    def __init__(self, path: Path, what: str):
        self.path, self.what = path, what

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or isinstance(exc, ValueError) and str(exc).startswith(self.path.name):
            return False  # no error, or already one of ours
        if isinstance(exc, MemoryError):
            raise ValueError(f"{self.path.name}: too large to load into memory") from None
        if isinstance(exc, Exception):
            raise ValueError(f"{self.path.name}: not a readable {self.what} file "
                             f"({first_line(exc)})") from None
        return False


def _check_size(path: Path, shape: tuple, volumes_along_4th: bool = False) -> tuple:
    """Drop trailing singleton dimensions past the third; refuse empty, huge or >3-D data
    (``volumes_along_4th``: a 4-D file holds volumes along its 4th axis, as NIfTI does)."""
    shape = tuple(int(s) for s in shape)
    kept = _without_trailing_ones(shape)
    if len(kept) not in (2, 3):
        hint = (f": a 4-D image of {kept[3]} volumes; give one volume as a 3-D file (napari, `maps` and "
                "`predict --joint` open each volume of a 4-D NIfTI file)"
                if volumes_along_4th and len(kept) == 4 else "")
        raise ValueError(f"{path.name}: expected a 2-D image or 3-D volume, got shape {shape}{hint}")
    if min(kept) < 1:
        raise ValueError(f"{path.name}: holds no voxels (shape {shape})")
    if np.prod(kept, dtype=np.float64) > MAX_VOXELS:
        raise ValueError(f"{path.name}: the header claims shape {shape}, too large to load")
    return kept


def _volume_format(path: Path) -> str:
    """The format a volume file is read as, in messages: FreeSurfer or NIfTI."""
    return "FreeSurfer" if suffix_of(path) in MGH_SUFFIXES else "NIfTI"


def _open_nifti(path: Path):
    """The lazily loaded nibabel image (NIfTI, or FreeSurfer MGH for ``.mgz``/``.mgh``) and
    its checked shape (no voxel data read)."""
    import nibabel as nib

    mgh = suffix_of(path) in MGH_SUFFIXES
    with _readable(path, _volume_format(path)):
        img = nib.load(str(path))
        if not isinstance(img, nib.MGHImage if mgh else nib.Nifti1Image):  # Nifti2Image is a subclass
            raise ValueError(f"{path.name}: not a {'FreeSurfer MGH' if mgh else 'NIfTI'} file "
                             f"({type(img).__name__})")
        shape = tuple(img.shape)
    return img, _check_size(path, shape, volumes_along_4th=True)


def _load_nifti(path: Path) -> Volume:
    img, shape = _open_nifti(path)
    with _readable(path, _volume_format(path)):
        data = np.asarray(img.dataobj, dtype=np.float32).reshape(shape)
    return _nifti_volume(img, data[:, :, None] if data.ndim == 2 else data, shape)


def _nifti_volume(img, data: np.ndarray, shape: tuple) -> Volume:
    """The axial stack of a NIfTI (or MGH) image's 3-D voxels ``data``, with what writes it
    back (``shape``: the data's shape in the file)."""
    to_ras = ras_orientation(img.affine)
    return Volume(data=np.ascontiguousarray(file_to_stack(data, to_ras)),
                  spacing=_stack_spacing(img, to_ras), affine=np.asarray(img.affine, np.float64),
                  header=img.header.copy(), ornt=to_ras, original_shape=shape, kind="nifti")


#: A volume stored as integers wider than 8 bits, unscaled, with at most this many distinct
#: values is a label map (FreeSurfer's ``aseg.mgz``, a SynthSeg segmentation), not an
#: image: an MR image stored as 16-bit integers holds thousands of values, and 8-bit
#: images (FreeSurfer's ``T1.mgz``) stay images.
MAX_LABELS = 256


def label_count(volume: Volume) -> int:
    """How many labels ``volume`` (read from NIfTI or MGZ) holds if it is a label map
    (:data:`MAX_LABELS`), else 0."""
    header = volume.header
    if header is None or volume.kind != "nifti":
        return 0
    dtype = np.dtype(header.get_data_dtype())
    slope, inter = header.get_slope_inter() if hasattr(header, "get_slope_inter") else (None, None)
    if dtype.kind not in "iu" or dtype.itemsize < 2 or (slope not in (None, 1.0) or inter not in (None, 0.0)):
        return 0
    flat = volume.data.reshape(-1)
    if np.unique(flat[:: max(1, flat.size // 100_000)]).size > MAX_LABELS:  # most images end here
        return 0
    count = np.unique(flat).size
    return count if 1 < count <= MAX_LABELS else 0


def is_label_map(volume: Volume) -> bool:
    """Whether ``volume`` holds labels rather than an image (:func:`label_count`)."""
    return label_count(volume) > 0


def refuse_label_map(volume: Volume, name: str) -> None:
    """A one-line ``ValueError`` where ``volume`` is a label map (:func:`label_count`): a
    segmentation is no image to predict from."""
    if count := label_count(volume):
        raise ValueError(f"{name}: holds {count} integer labels (a segmentation, "
                         "such as aseg.mgz), not an MR image; give the scan itself")


def _stack_spacing(img, to_ras: np.ndarray) -> tuple[float, float, float]:
    """Voxel size (mm) along the stack's (z, y, x), from the header (1 where unusable)."""
    return stack_spacing(img.header.get_zooms()[:3], to_ras)


def stack_spacing(zooms, to_ras: np.ndarray) -> tuple[float, float, float]:
    """Voxel size (mm) along the stack's (z, y, x) from the file axes' sizes ``zooms`` and
    their orientation ``to_ras`` (1 where unusable)."""
    zooms = [float(z) for z in zooms[:3]] + [1.0] * 3
    spacing = [1.0] * 3
    for axis, (ras_axis, _) in enumerate(to_ras):
        value = zooms[axis]
        spacing[int(_STACK_FROM_RAS[int(ras_axis), 0])] = value if np.isfinite(value) and value > 0 else 1.0
    return tuple(spacing)


def load_nifti_frames(path: str | Path, max_frames: int) -> tuple[list[np.ndarray], tuple]:
    """The 3-D frames of a 3-D or 4-D NIfTI file, each as an axial stack, and the voxel
    size (mm, stack order): for files such as tissue fraction maps merged along time.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not NIfTI, corrupt or truncated, not 3-D or 4-D, or more than ``max_frames``
        frames; one line naming the file.
    """
    import nibabel as nib

    path = _existing_file(path)
    if suffix_of(path) not in NIFTI_SUFFIXES:
        raise ValueError(f"{path.name}: not a NIfTI file (.nii, .nii.gz)")
    with _readable(path, "NIfTI"):
        img = nib.load(str(path))
        if not isinstance(img, nib.Nifti1Image):
            raise ValueError(f"{path.name}: not a NIfTI file ({type(img).__name__})")
        shape = tuple(int(s) for s in img.shape)
        if len(shape) not in (3, 4) or min(shape) < 1 or (len(shape) == 4 and shape[3] > max_frames):
            raise ValueError(f"{path.name}: expected a 3-D volume or up to {max_frames} of them "
                             f"along a 4th axis, got shape {shape}")
        _check_size(path, shape[:3])
        data = np.asarray(img.dataobj, dtype=np.float32).reshape(shape)
    to_ras = ras_orientation(img.affine)
    frames = [data] if data.ndim == 3 else [data[..., i] for i in range(data.shape[3])]
    return [np.ascontiguousarray(file_to_stack(f, to_ras)) for f in frames], _stack_spacing(img, to_ras)


def ras_orientation(affine: np.ndarray) -> np.ndarray:
    """``io_orientation`` of the affine, with degenerate (zero) axes given the free RAS axes."""
    from nibabel import orientations as orn

    ornt = orn.io_orientation(np.nan_to_num(np.asarray(affine, np.float64)))
    missing = np.isnan(ornt[:, 0])
    if missing.any():
        free = [a for a in range(3) if a not in ornt[~missing, 0]]
        ornt[missing] = [[a, 1] for a in free]
    return ornt


def file_to_stack(data: np.ndarray, to_ras: np.ndarray) -> np.ndarray:
    """File-ordered voxels as the package's axial stack, given the file axes' orientation."""
    from nibabel import orientations as orn

    return orn.apply_orientation(orn.apply_orientation(data, to_ras), _STACK_FROM_RAS)


def ras_to_stack(array: np.ndarray) -> np.ndarray:
    """A canonical (RAS+) voxel array rearranged as the package's axial stack (z, y, x)."""
    from nibabel import orientations as orn

    return np.ascontiguousarray(orn.apply_orientation(array, _STACK_FROM_RAS))


def stack_affine(volume: Volume) -> np.ndarray:
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


def slice_plane(volume: Volume) -> str | None:
    """The plane of a placed (NIfTI or DICOM) volume's stack slices, by the patient axis
    nearest their normal: ``'axial'``, ``'coronal'`` or ``'sagittal'``; None for an image
    of unknown placement."""
    if volume.kind not in ORIENTED_KINDS or volume.affine is None or volume.ornt is None:
        return None
    normal = stack_affine(volume)[:3, 0]
    return ("sagittal", "coronal", "axial")[int(np.argmax(np.abs(normal)))]


def _stack_to_ras(data_zyx: np.ndarray) -> np.ndarray:
    from nibabel import orientations as orn

    return orn.apply_orientation(data_zyx, _inverse(_STACK_FROM_RAS))


def _inverse(ornt: np.ndarray) -> np.ndarray:
    """The orientation transform undoing ``ornt`` (for ``apply_orientation``)."""
    inv = np.zeros_like(np.asarray(ornt))
    for axis, (target, flip) in enumerate(np.asarray(ornt)):
        inv[int(target)] = [axis, flip]
    return inv


def _load_image(path: Path) -> Volume:
    if suffix_of(path) in (".tif", ".tiff"):
        data = _read_tiff(path)
    else:
        data = _read_pil(path)
    data = np.asarray(data, np.float32)
    if data.ndim == 2:
        data = data[None]
    return Volume(data=np.ascontiguousarray(data), kind="image", original_shape=data.shape)


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    with _readable(path, "TIFF"), tifffile.TiffFile(str(path)) as tif:
        series = tif.series[0]
        samples, shape = _tiff_layout(path, series)
        data = series.asarray()
    if samples is not None:
        data = np.moveaxis(data, samples, -1)[..., :3].astype(np.float32) @ _LUMA
    return data.reshape(shape)


def _tiff_layout(path: Path, series) -> tuple[int | None, tuple]:
    """The RGB(A) samples axis of a TIFF series (None for gray) and the checked gray shape."""
    shape = tuple(int(s) for s in series.shape)
    samples = series.axes.find("S")
    if samples >= 0 and shape[samples] in (3, 4):
        return samples, _check_size(path, _without_ones(shape[:samples] + shape[samples + 1:]))
    return None, _check_size(path, _without_ones(shape))


def _without_ones(shape: tuple) -> tuple:
    """Drop singleton axes but keep at least two (a one-row image stays 2-D)."""
    kept = tuple(s for s in shape if s != 1)
    return kept if len(kept) >= 2 else shape[-2:]


def _read_pil(path: Path) -> np.ndarray:
    from PIL import Image

    with _readable(path, "image"), Image.open(path) as im:
        _check_size(path, (im.size[1], im.size[0]))
        im.load()
        if im.mode in ("1", "L", "I", "F") or im.mode.startswith("I;16"):
            return np.asarray(im, dtype=np.float32)
        rgb = np.asarray(im.convert("RGB"), dtype=np.float32)
    return rgb @ _LUMA


# ----------------------------------------------------------------------------- writing


def to_original(volume: Volume, data_zyx: np.ndarray) -> np.ndarray:
    """Arrange a stack shaped like ``volume``'s back into the original file's voxel order.

    For images (and volumes without orientation) the stack is returned as is.
    """
    data = np.asarray(data_zyx)
    if volume.kind not in ORIENTED_KINDS or volume.ornt is None:
        return data
    _check_fits(volume, data, Path(volume.source or "input"))
    from nibabel import orientations as orn

    return orn.apply_orientation(_stack_to_ras(data), _inverse(volume.ornt)).reshape(volume.original_shape)


def _check_fits(like: Volume, data: np.ndarray, path: Path) -> None:
    if tuple(data.shape) != tuple(like.stack_shape):
        raise ValueError(f"{path.name}: data of shape {data.shape} do not fit the input volume "
                         f"(shape {tuple(like.stack_shape)})")


def check_output_type(path: str | Path, label: str | None = None) -> str:
    """The output type (suffix) of ``path``; a one-line ``ValueError`` naming ``label`` (else
    the file) when :func:`save_volume` cannot write it."""
    suffix = suffix_of(path)
    if suffix not in OUTPUT_SUFFIXES:
        raise ValueError(f"{label or Path(path).name}: unsupported output type; "
                         f"use {', '.join(OUTPUT_SUFFIXES)}")
    return suffix


def check_output_folder(path: str | Path) -> Path:
    """``path`` as an output folder (made when written to); a one-line ``ValueError`` when
    it is an existing file or names a file type (``maps.nii.gz``)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path}: exists and is not a folder; -o names the output folder here")
    if not path.exists() and suffix_of(path) in OUTPUT_SUFFIXES:
        raise ValueError(f"{path}: -o names the output folder here (several files are written), "
                         "not a file")
    return path


def output_suffix(suffix: str | None, option: str = "--suffix") -> str | None:
    """An output type given on its own (``.nii.gz``; the dot may be left out), checked as
    :func:`check_output_type` does; None stays None."""
    if suffix is None:
        return None
    suffix = suffix if suffix.startswith(".") else "." + suffix
    check_output_type("output" + suffix, f"{option} {suffix}")
    return suffix


def output_paths(output: str | Path, names: list[tuple[str, str]], suffix: str | None = None,
                 several: str = "several outputs") -> list[Path]:
    """Where each output goes (the command line's ``-o`` and ``--suffix``).

    Parameters
    ----------
    output : str or Path
        A file (it has an output type, :func:`check_output_type`) for exactly one output,
        else a folder (:func:`check_output_folder`).
    names : list of (stem, type)
        Per output, its file name in a folder without the type, and the type it takes
        unless ``suffix`` is given (a FreeSurfer input's ``.mgz`` becomes ``.nii.gz``; any
        other :func:`save_volume` cannot write, a JPEG input's say, ``.png``: lossless 8 bits).
    suffix : str, optional
        The type of every file in a folder (:func:`output_suffix`).
    several : str
        What the outputs are, for the one-line ``ValueError`` when ``output`` is a file
        but there are several (``"several targets"``).
    """
    out = Path(output)
    if suffix_of(out):
        if len(names) != 1:
            raise ValueError(f"{several} need an output folder for -o, not a file")
        check_output_type(out)
        return [out]
    check_output_folder(out)
    suffix = output_suffix(suffix)
    paths = []
    for stem, own in names:
        kind = suffix or own
        kind = kind if kind in OUTPUT_SUFFIXES else ".nii.gz" if kind in MGH_SUFFIXES else ".png"
        paths.append(out / f"{stem}{kind}")
    return paths


def refuse_existing(paths, overwrite: bool = False) -> None:
    """The command line's check of its outputs before any work: a ``FileExistsError``
    naming the first of ``paths`` that exists, or the first BIDS sidecar that a NIfTI one
    of them would write (:func:`save_volume`) that exists. With ``overwrite`` those are
    replaced, but a DICOM series' folder (``.dcm``) only where it holds an earlier series
    (:func:`~napari_mr_reparam.dicom_export.refuse_unreplaceable`), as the writing will
    require."""
    from .dicom_export import SERIES_SUFFIX, refuse_unreplaceable

    for path in map(Path, paths):
        if overwrite:
            if suffix_of(path) == SERIES_SUFFIX:
                refuse_unreplaceable(path)
            continue
        for target in (path, sidecar_path(path)) if suffix_of(path) in NIFTI_SUFFIXES else (path,):
            if target.exists():
                raise FileExistsError(f"{target} exists; pass --overwrite to replace it")


def save_volume(path: str | Path, data_zyx: np.ndarray, like: Volume | None = None, *,
                te_ms: float | None = None, tr_ms: float | None = None, model: str | None = None,
                extra: dict | None = None, overwrite: bool = False) -> Path:
    """Write a stack, by extension, atomically; return the path written.

    Parameters
    ----------
    path : str or Path
        ``.nii``/``.nii.gz`` (float32; with ``like`` from a NIfTI file: in its voxel
        order, with its affine and header; otherwise an RAS+ grid with ``like``'s
        spacing or 1 mm, which :func:`load_volume` reads back as the same stack),
        ``.npy`` (float32 zyx), ``.tif``/``.tiff`` (float32 stack), ``.png`` (one
        slice, scaled to 8 bits by its maximum) or ``.dcm`` (a DICOM series: a folder of
        that name, one file per slice, :func:`~napari_mr_reparam.dicom_export.write_series`;
        from a DICOM input, in its patient's study).
    data_zyx : array (z, y, x) or (y, x)
    like : Volume, optional
        The volume the data derive from (same stack shape).
    te_ms, tr_ms, model, extra
        For the BIDS sidecar written beside NIfTI outputs (times stored in seconds); a
        DICOM series takes them into its tags.
    overwrite : bool
        Replace existing files (the data file and its sidecar); otherwise
        ``FileExistsError``.
    """
    path = Path(path)
    suffix = check_output_type(path)
    data = np.asarray(data_zyx, dtype=np.float32)
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3:
        raise ValueError(f"{path.name}: expected a (z, y, x) stack or a 2-D image, got shape {data.shape}")
    if suffix == ".png" and data.shape[0] != 1:
        raise ValueError(f"{path.name}: a PNG holds one slice, the data have {data.shape[0]}; "
                         "use .nii.gz, .tif or .npy")
    if suffix == ".dcm":
        from .dicom_export import write_series

        voxels, affine = _file_order(data, like, path)
        files = like.extra.get("files") if like is not None and like.kind == "dicom" else None
        return write_series(path, voxels, affine, source_files=files, te_ms=te_ms, tr_ms=tr_ms, model=model,
                            extra=extra, overwrite=overwrite)
    jobs = [(path, lambda tmp: _WRITERS[suffix](tmp, data, like))]
    if suffix in NIFTI_SUFFIXES:
        meta = _sidecar(te_ms, tr_ms, model, extra)
        jobs.append((sidecar_path(path), lambda tmp: tmp.write_text(json.dumps(meta, indent=2) + "\n")))
    if not overwrite:
        for target, _ in jobs:
            if target.exists():
                raise FileExistsError(f"{target} exists; pass overwrite (--overwrite) to replace it")
    _write_atomically(jobs)
    return path


def _write_atomically(jobs: list[tuple[Path, Callable[[Path], None]]]) -> None:
    """Write every file to a temporary beside it, then move all into place; no partial files."""
    temps = []
    try:
        for target, write in jobs:
            temps.append(_new_temp(target))
            write(Path(temps[-1]))
        for (target, _), tmp in zip(jobs, temps):
            os.replace(tmp, target)
    finally:
        for tmp in temps:
            if os.path.exists(tmp):
                os.unlink(tmp)


def _new_temp(target: Path) -> str:
    """Create an empty hidden file beside ``target`` (same extension, umask-respecting mode)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}{suffix_of(target)}")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return str(tmp)
    raise FileExistsError(f"{target.name}: could not create a temporary file beside it")


def _write_nifti(path: Path, data: np.ndarray, like: Volume | None) -> None:
    import nibabel as nib

    voxels, affine = _file_order(data, like, path)
    if _placed(like):
        header = like.header.copy() if isinstance(like.header, nib.Nifti1Header) else None
        klass = nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
        img = klass(np.ascontiguousarray(voxels, np.float32), affine, header)
        img.header.set_data_dtype(np.float32)
        img.header.set_slope_inter(1.0, 0.0)
        img.header["cal_min"] = img.header["cal_max"] = 0
    else:
        img = nib.Nifti1Image(np.ascontiguousarray(voxels), affine)
        img.header.set_xyzt_units("mm")
    nib.save(img, str(path))


def _placed(like: Volume | None) -> bool:
    """Whether ``like`` has a place in space (an affine and orientation) to write back to."""
    return like is not None and like.kind in ORIENTED_KINDS and like.ornt is not None and like.affine is not None


def _file_order(data: np.ndarray, like: Volume | None, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A stack in voxel order (column, row, slice) with its affine to RAS (mm): the input
    file's where ``like`` has one (:func:`_placed`; data of another shape are a one-line
    ``ValueError`` naming the output ``path``), else an RAS+ grid of ``like``'s spacing (or
    1 mm), which :func:`load_volume` reads back as the same stack."""
    if _placed(like):
        _check_fits(like, data, path)
        return to_original(like, data), np.asarray(like.affine, float)
    dz, dy, dx = like.spacing if like is not None else (1.0, 1.0, 1.0)
    return _stack_to_ras(data), np.diag([float(dx), float(dy), float(dz), 1.0])


def _write_npy(path: Path, data: np.ndarray, like) -> None:
    with open(path, "wb") as fh:
        np.save(fh, data)


def _write_tif(path: Path, data: np.ndarray, like) -> None:
    import tifffile

    tifffile.imwrite(str(path), data[0] if data.shape[0] == 1 else data)


def _write_png(path: Path, data: np.ndarray, like) -> None:
    from PIL import Image

    image = np.nan_to_num(data[0], nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(image.max())
    scaled = np.clip(image * (255.0 / peak) if peak > 0 else image, 0, 255)
    Image.fromarray(np.rint(scaled).astype(np.uint8)).save(path, format="PNG")


_WRITERS = {".nii": _write_nifti, ".nii.gz": _write_nifti, ".npy": _write_npy,
            ".tif": _write_tif, ".tiff": _write_tif, ".png": _write_png}


def _seconds(ms) -> float:
    """A sidecar time: seconds, to the nanosecond (38.56 ms is 0.03856, not 0.038560000000000004)."""
    return round(float(ms_to_s(ms)), 9)


def _sidecar(te_ms, tr_ms, model, extra) -> dict:
    """BIDS sidecar content: times in seconds, and what generated the image."""
    from . import __version__

    meta: dict = {}
    if te_ms is not None:
        meta["EchoTime"] = _seconds(te_ms)
    if tr_ms is not None:
        meta["RepetitionTime"] = _seconds(tr_ms)
    meta["GeneratedBy"] = [{"Name": "napari-mr-reparam", "Version": __version__, "Model": model}]
    meta.update(extra or {})
    return meta


#: BIDS ``ScanningSequence`` codes (DICOM 0018,0020) and readable names of our sequences.
SEQUENCE_CODES = {"spin_echo": ("SE", "spin echo"), "inversion_recovery": ("IR", "inversion recovery"),
                  "gradient_echo": ("GR", "gradient echo"), "mprage": (["GR", "IR"], "MPRAGE"),
                  "double_inversion_recovery": ("IR", "double inversion recovery")}


def acquisition_sidecar(sequence: str | None = None, ti_ms: float | None = None,
                        flip_deg: float | None = None) -> dict:
    """BIDS sidecar fields of the sequence, TI (stored in seconds) and flip angle (degrees),
    for :func:`save_volume`'s ``extra``; only those given."""
    meta: dict = {}
    if sequence is not None:
        if sequence not in SEQUENCE_CODES:
            raise ValueError(f"unknown sequence {sequence!r}; use {', '.join(SEQUENCE_CODES)}")
        meta["ScanningSequence"], meta["PulseSequenceType"] = SEQUENCE_CODES[sequence]
    if ti_ms is not None:
        meta["InversionTime"] = _seconds(ti_ms)
    if flip_deg is not None:
        meta["FlipAngle"] = float(flip_deg)
    return meta


def first_line(exc: BaseException) -> str:
    """An exception's message in one line: its first, and where that ends in a colon (a
    list of reasons follows, as pydicom gives for pixel data no decoder read), the first
    reason too."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return f"{lines[0]} {lines[1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]
