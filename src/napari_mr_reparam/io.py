"""Reading volumes: NIfTI (nibabel), FreeSurfer and 2-D images, with their BIDS sidecars.

Volumes are handed to the rest of the package as **axial stacks** ``data[z, y, x]``,
float32: NIfTI data reoriented as :mod:`.orientation` describes (a 2-D multi-slice
acquisition in the coronal or sagittal plane keeps its acquired slices, as a DICOM series
does: :func:`~napari_mr_reparam.orientation.stack_orientation`), which
:func:`~napari_mr_reparam.orientation.to_original` undoes exactly, so outputs are written
in the input's own voxel order with its own affine and header (:mod:`.volume_writing`).
2-D images become one-slice stacks ``(1, h, w)``; a multi-page TIFF is a stack as stored.
Images are not reoriented.

Times in sidecars (:mod:`.sidecars`) are BIDS seconds on disk and milliseconds in
:class:`Volume`; a FreeSurfer file without a sidecar gives those its header states
(:func:`mgh_acquisition`). Integer volumes that look like segmentations are label maps
(:func:`label_count`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .file_types import (
    IMAGE_SUFFIXES,
    MGH_SUFFIXES,
    NIFTI_SUFFIXES,
    VOLUME_SUFFIXES,
    suffix_of,
)
from .messages import first_line
from .orientation import (
    ORIENTED_KINDS,
    file_to_stack,
    ras_orientation,
    stack_orientation,
    stack_spacing,
)
from .sidecars import read_sidecar, readout_spacing

#: Files whose header claims more voxels than this are refused before anything is read.
MAX_VOXELS = 2**31
#: Rec. 709 luminance weights for RGB -> gray.
_LUMA = np.array([0.2125, 0.7154, 0.0721], np.float32)


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
        ``nibabel.orientations`` transform from the file's voxel axes to RAS+, or to the
        axes whose axial stack is the acquired coronal or sagittal slices of a 2-D
        acquisition (:func:`~napari_mr_reparam.orientation.stack_orientation`).
    original_shape : tuple
        Shape of the data in the file (after dropping trailing singleton dimensions).
    te_ms, tr_ms, ti_ms, flip_deg : float or None
        Acquisition parameters from the BIDS sidecar ``<stem>.json``, if any, else from a
        FreeSurfer file's header (:func:`mgh_acquisition`).
    sequence : str or None
        The sequence the sidecar's ``ScanningSequence`` names
        (:func:`~napari_mr_reparam.sidecars.sidecar_sequence`), or the MGH header's times
        suggest, if any.
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

    def acquisition(self):
        """The acquisition the volume's file states (its sidecar, DICOM tags or FreeSurfer
        header), as the :class:`~napari_mr_reparam.acquisition.Acquisition` that
        ``Reparameterizer.predict`` takes for its input; None where it states no TE or no TR
        (name it then: ``get_input_preset(NAME).acquisition()``). The sequence is a spin echo
        where the file names none, or an inversion recovery where it states a TI, as the
        command line reads it; the values a sequence does not read are left out."""
        from .acquisition import SEQUENCE_READS, Acquisition, stated_sequence

        if self.te_ms is None or self.tr_ms is None:
            return None
        sequence = stated_sequence(self.sequence, self.ti_ms)
        reads = SEQUENCE_READS.get(sequence, ())
        return Acquisition(self.te_ms, self.tr_ms, sequence, self.ti_ms if "ti" in reads else None,
                           self.flip_deg if "flip" in reads else None)

    @property
    def times_stated_by(self) -> str:
        """What states the volume's own times: its ``DICOM tags``, ``BIDS sidecar`` or
        ``FreeSurfer header``."""
        return "DICOM tags" if self.kind == "dicom" else (self.extra or {}).get("times_from", "BIDS sidecar")

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
        provides TE/TR/TI (ms), flip angle and sequence; without one, a FreeSurfer file's
        header does where it states them (:func:`mgh_acquisition`). A complex-valued NIfTI
        is read as its magnitude, which ``extra["notices"]`` says in one line.
    times_given : collection of str
        The times (``te_ms``, ``tr_ms``, ``ti_ms``) the caller knows otherwise: a sidecar
        whose times can only be milliseconds is refused unless they cover every time it
        states; then its times are left unset and ``extra["sidecar_times_ignored"]`` says
        why in one line (see :func:`~napari_mr_reparam.sidecars.read_sidecar`).

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
    sidecar = read_sidecar(path, times_given)
    header = {} if sidecar else mgh_acquisition(volume.header)
    _take_sidecar(volume, sidecar or header, path)
    if header:
        volume.extra["times_from"] = "FreeSurfer header"
    return volume


def _take_sidecar(volume: Volume, sidecar: dict, path: Path, index: int | None = None) -> None:
    """``volume`` takes what :func:`~napari_mr_reparam.sidecars.read_sidecar` returned
    (``index``: the volume's value of a time listed per volume) and ``path`` as its source."""
    for key, value in sidecar.items():
        if key == "times_ignored":
            volume.extra["sidecar_times_ignored"] = value
        elif key in ("readout_tr_ms", "series_id", "quantity", "unit"):
            volume.extra[key] = value
        elif key == "real_valued":
            _magnitude_of_real(volume, path)
        elif key == "slice_thickness_mm":
            _one_slice_thickness(volume, value)
        else:
            setattr(volume, key, value[index] if isinstance(value, list) else value)
    volume.source = str(path)


def _one_slice_thickness(volume: Volume, thickness_mm: float) -> None:
    """A placed one-slice volume's slab is ``thickness_mm`` (its sidecar's SliceThickness),
    as a one-slice DICOM series' is; the file's spacing there is no distance between slices
    (dcm2niix writes the series' SpacingBetweenSlices). Volumes of more slices keep theirs."""
    shape = volume.file_shape
    if volume.affine is None or volume.ornt is None or shape.count(1) != 1:
        return
    axis = shape.index(1)
    affine = np.asarray(volume.affine, np.float64).copy()
    affine[:3, axis] *= thickness_mm / max(float(np.linalg.norm(affine[:3, axis])), 1e-12)
    volume.affine = affine
    zooms = [float(np.linalg.norm(affine[:3, k])) for k in range(3)]
    volume.spacing = stack_spacing(zooms, volume.ornt)


def _magnitude_of_real(volume: Volume, path: Path) -> None:
    """A real-valued image (as its sidecar's ImageType says) with signed voxels is read as
    its magnitude, as a DICOM series of ImageType R is, which ``extra["notices"]`` says."""
    if volume.data.size and float(np.nanmin(volume.data)) < 0:
        volume.data = np.abs(volume.data)
        volume.extra.setdefault("notices", []).append(
            f"{path.name}: real-valued (signed) voxel values, as its sidecar's ImageType says; their magnitude is read")


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
        img = _nib_load(path)
        shape = _without_trailing_ones(img.shape)
    if len(shape) != 4 or not isinstance(img, nib.Nifti1Image) or shape[3] < 2:
        return [load_volume(path, times_given)]
    if shape[3] > MAX_SERIES_VOLUMES:
        raise ValueError(f"{path.name}: a 4-D image of {shape[3]} volumes (a time series?); at most "
                         f"{MAX_SERIES_VOLUMES} open as one image each: save the volumes you need as 3-D files")
    _check_size(path, shape[:3])
    with _readable(path, "NIfTI"):
        data, notices = _voxels(img, path)
        data = data.reshape(shape)
    sidecar = read_sidecar(path, times_given, volumes=shape[3])
    stem = path.name[: -len(suffix_of(path))]
    out = []
    for k in range(shape[3]):
        volume = _nifti_volume(img, data[..., k], shape[:3])
        _take_sidecar(volume, sidecar, path, k)
        volume.extra.update(series=stem, volume=k + 1)
        if notices or volume.extra.get("notices"):
            volume.extra["notices"] = [*notices, *volume.extra.get("notices", [])]
        out.append(volume)
    return out


def volume_count(path: str | Path) -> int:
    """How many images :func:`load_volumes` reads from ``path``: the volumes of a 4-D NIfTI
    file (read from its header alone), else 1. 1 for a file it cannot tell (a missing or
    unreadable file is reported when it is read)."""
    path = Path(path)
    if suffix_of(path) not in NIFTI_SUFFIXES or not path.is_file():
        return 1
    try:
        shape = _without_trailing_ones(_nib_load(path).shape)
    except Exception:  # reported, one line, when the file is read
        return 1
    return shape[3] if len(shape) == 4 else 1


#: The first bytes of a gzip file.
GZIP_MAGIC = b"\x1f\x8b"


def _nib_load(path: Path):
    """nibabel's image of ``path``. nibabel tells compression by the suffix; a ``.nii`` file
    that is gzip-compressed (a ``.nii.gz`` renamed) is read from its decompressed bytes."""
    import nibabel as nib

    path = Path(path)
    if suffix_of(path) != ".nii" or not _starts_with(path, GZIP_MAGIC):
        return nib.load(str(path))
    import gzip

    raw = gzip.decompress(path.read_bytes())
    kind = nib.Nifti2Image if nib.Nifti2Header.may_contain_header(raw[:540]) else nib.Nifti1Image
    return kind.from_bytes(raw)


def _starts_with(path: Path, magic: bytes) -> bool:
    with open(path, "rb") as fh:
        return fh.read(len(magic)) == magic


def _without_trailing_ones(shape) -> tuple:
    """A shape without its singleton dimensions past the third."""
    kept = tuple(int(s) for s in shape)
    while len(kept) > 3 and kept[-1] == 1:
        kept = kept[:-1]
    return kept


#: Where the Python API reads DICOM files and series folders.
DICOM_READER = "napari_mr_reparam.dicom.read_series"


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if not path.is_file():
        raise ValueError(f"{path.name}: is a folder, not a file (a DICOM series folder is read by {DICOM_READER})")
    if suffix_of(path) not in VOLUME_SUFFIXES + IMAGE_SUFFIXES:
        raise ValueError(f"{path.name}: unsupported file type; use NIfTI (.nii, .nii.gz), FreeSurfer "
                         f"(.mgz, .mgh) or an image ({', '.join(IMAGE_SUFFIXES)}); DICOM is read by {DICOM_READER}")
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
    from .memory import available_bytes, size_text

    need, have = 4.0 * float(np.prod(kept, dtype=np.float64)), available_bytes()  # read as float32
    if have is not None and need > have:
        raise ValueError(f"{path.name}: its shape {shape} needs {size_text(need)} of memory to read and "
                         f"{size_text(have)} is available; crop it, or free memory")
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
        img = _nib_load(path)
        if not isinstance(img, nib.MGHImage if mgh else nib.Nifti1Image):  # Nifti2Image is a subclass
            raise ValueError(f"{path.name}: not a {'FreeSurfer MGH' if mgh else 'NIfTI'} file "
                             f"({type(img).__name__})")
        shape = tuple(img.shape)
    return img, _check_size(path, shape, volumes_along_4th=True)


def _load_nifti(path: Path) -> Volume:
    img, shape = _open_nifti(path)
    with _readable(path, _volume_format(path)):
        data, notices = _voxels(img, path)
        data = data.reshape(shape)
    volume = _nifti_volume(img, data[:, :, None] if data.ndim == 2 else data, shape)
    if notices:
        volume.extra["notices"] = notices
    return volume


def _voxels(img, path: Path) -> tuple[np.ndarray, list[str]]:
    """A nibabel image's voxels as float32, and one-line notices of how they were read:
    complex values (a reconstruction's raw output) as their magnitude, the image MR viewers
    and scanners show, rather than the real part numpy would keep (and warn of)."""
    if np.dtype(img.get_data_dtype()).kind != "c":
        return np.asarray(img.dataobj, dtype=np.float32), []
    magnitude = np.abs(np.asarray(img.dataobj)).astype(np.float32)
    return magnitude, [f"{path.name}: complex voxel values; their magnitude is read"]


#: An MGH header's flip angle at most this (degrees) is a gradient-echo readout's: a spin
#: echo's excitation is 90 degrees (its refocusing, which some headers hold, 120-180).
GRADIENT_MAX_FLIP_DEG = 30.0
#: Without a flip angle, an echo time below this (ms) with an inversion and a TR of at most
#: :data:`MPRAGE_MAX_CYCLE_MS` is an MPRAGE's (2-5 ms); inversion-recovery spin echoes
#: (FLAIR, STIR, T1-FLAIR) echo later.
GRADIENT_MAX_TE_MS = 8.0
#: The longest inversion-to-inversion time (ms) taken as an MPRAGE's where only the times
#: tell (Siemens' MPRAGE 1900-2500 ms; a FLAIR's TR is 5000-10000 ms).
MPRAGE_MAX_CYCLE_MS = 3000.0


def mgh_acquisition(header) -> dict:
    """The acquisition a FreeSurfer MGH header (``.mgz``, ``.mgh``) states, as
    :func:`~napari_mr_reparam.sidecars.read_sidecar` returns a sidecar's: ``tr_ms``,
    ``te_ms``, ``ti_ms`` (its ``tr``, ``te``, ``ti``, in ms) and ``flip_deg`` (its
    ``flip_angle``, in radians) where non-zero (zero means unknown); empty for any other
    header. mri_convert copies them from the DICOM files, and FreeSurfer's conformed volumes
    (``orig.mgz``, ``T1.mgz``) keep the source scan's. An inversion time names the sequence
    (:func:`_mgh_sequence`): ``mprage`` (with ``readout_tr_ms`` for a TR that is the readout's
    pulse spacing, :func:`~napari_mr_reparam.sidecars.mprage_cycle`) or ``inversion_recovery``."""
    import nibabel as nib

    if not isinstance(header, nib.freesurfer.mghformat.MGHHeader):
        return {}
    out = {ours: _header_value(header[key], 4) for ours, key in
           (("te_ms", "te"), ("tr_ms", "tr"), ("ti_ms", "ti"))}
    out["flip_deg"] = _header_value(np.degrees(header["flip_angle"]), 3)
    out = {k: v for k, v in out.items() if v is not None}
    sequence = _mgh_sequence(out)
    if sequence:
        out["sequence"] = sequence
    return readout_spacing(out)


def _header_value(value, digits: int) -> float | None:
    """A header's time or angle, rounded off its float32 noise; None where zero (unknown),
    negative or not finite."""
    value = float(value)
    return round(value, digits) if np.isfinite(value) and value > 0 else None


def _mgh_sequence(times: dict) -> str | None:
    """The sequence an MGH header's times (:func:`mgh_acquisition`) suggest: none without an
    inversion time; with one, ``mprage`` where the readout is a gradient echo (a flip angle of
    at most :data:`GRADIENT_MAX_FLIP_DEG`, or without one a short TE and TR), else
    ``inversion_recovery``."""
    if "ti_ms" not in times:
        return None
    flip, te, tr = times.get("flip_deg"), times.get("te_ms"), times.get("tr_ms")
    if flip is not None:
        gradient = flip <= GRADIENT_MAX_FLIP_DEG
    else:
        gradient = te is not None and te < GRADIENT_MAX_TE_MS and tr is not None and tr <= MPRAGE_MAX_CYCLE_MS
    return "mprage" if gradient else "inversion_recovery"


def _nifti_volume(img, data: np.ndarray, shape: tuple) -> Volume:
    """The stack of a NIfTI (or MGH) image's 3-D voxels ``data``, with what writes it back
    (``shape``: the data's shape in the file): axial slices, or a 2-D acquisition's own
    coronal or sagittal ones (:func:`~napari_mr_reparam.orientation.stack_orientation`)."""
    ornt = stack_orientation(img.affine, data.shape, img.header.get_zooms()[:3])
    return Volume(data=np.ascontiguousarray(file_to_stack(data, ornt)),
                  spacing=_stack_spacing(img, ornt), affine=np.asarray(img.affine, np.float64),
                  header=img.header.copy(), ornt=ornt, original_shape=shape, kind="nifti")


#: A label map holds at most this many values (aparc+aseg about 110, wmparc about 180).
MAX_LABELS = 256
#: Words in a file's name that say it holds labels: FreeSurfer's ``aseg`` and ``aparc``
#: (``wmparc``), BIDS ``dseg``, SynthSeg's ``seg``, ``labels``.
LABEL_NAME_WORDS = ("seg", "parc", "label")
#: The share of neighbouring voxel pairs (outside the background) holding one value above
#: which a volume is piecewise constant, as segmentations are (aseg, SynthSeg: 0.82-0.88);
#: a scan's noise leaves few pairs equal (a T1 of 162 grey levels: 0.09).
MIN_EQUAL_NEIGHBOURS = 0.6


def label_count(volume: Volume) -> int:
    """How many labels ``volume`` (read from NIfTI or MGZ) holds if it is a label map, else 0.

    A label map is stored as unscaled integers wider than 8 bits (8-bit images, such as
    FreeSurfer's ``T1.mgz``, stay images) holding 2 to :data:`MAX_LABELS` values, and
    either its file's name says so (:data:`LABEL_NAME_WORDS`) or it looks like a
    segmentation (:func:`looks_segmented`). Few values alone do not make one: a scan
    digitized at 8 bits and saved as 16-bit integers holds at most 256 grey levels. One
    stored as floats (SynthSeg's training maps) is a label map where its values are whole
    numbers and it looks like a segmentation, whatever its name.
    """
    if volume.header is None or volume.kind != "nifti":
        return 0
    as_integers = _stored_as_integers(volume.header)
    if not as_integers and np.dtype(volume.header.get_data_dtype()).kind != "f":
        return 0
    flat = volume.data.reshape(-1)
    if np.unique(flat[:: max(1, flat.size // 100_000)]).size > MAX_LABELS:  # most images end here
        return 0
    values = np.unique(flat)
    if not 1 < values.size <= MAX_LABELS:
        return 0
    if not as_integers:
        whole = bool(np.all(np.isfinite(values)) and np.all(values == np.round(values)))
        return values.size if whole and looks_segmented(volume.data, values) else 0
    named = any(word in Path(volume.source).name.lower() for word in LABEL_NAME_WORDS)
    return values.size if named or looks_segmented(volume.data, values) else 0


def _stored_as_integers(header) -> bool:
    """Whether a header stores integers wider than 8 bits, unscaled."""
    dtype = np.dtype(header.get_data_dtype())
    slope, inter = header.get_slope_inter() if hasattr(header, "get_slope_inter") else (None, None)
    return dtype.kind in "iu" and dtype.itemsize >= 2 and slope in (None, 1.0) and inter in (None, 0.0)


def looks_segmented(data: np.ndarray, values: np.ndarray) -> bool:
    """Whether ``data`` (holding ``values``) looks like a FreeSurfer-labelled segmentation:
    its values are codes of FreeSurfer's look-up table (:mod:`.freesurfer_labels`) and it is
    piecewise constant (:data:`MIN_EQUAL_NEIGHBOURS`)."""
    return freesurfer_codes(values) and equal_neighbours(data) >= MIN_EQUAL_NEIGHBOURS


def freesurfer_codes(values) -> bool:
    """Whether every one of ``values`` is 0 or a code FreeSurfer's segmentations use."""
    from .freesurfer_labels import EXTRA_LABELS, known_code

    return all(v == 0 or v in EXTRA_LABELS or known_code(int(v)) for v in np.asarray(values).tolist())


def equal_neighbours(data: np.ndarray) -> float:
    """The share of pairs of neighbouring voxels, not both background (0), that hold one value."""
    equal = counted = 0
    for axis in range(data.ndim):
        stack = np.moveaxis(data, axis, 0)
        here, there = stack[1:], stack[:-1]
        either = (here != 0) | (there != 0)
        equal += np.count_nonzero((here == there) & either)
        counted += np.count_nonzero(either)
    return equal / counted if counted else 0.0


def is_label_map(volume: Volume) -> bool:
    """Whether ``volume`` holds labels rather than an image (:func:`label_count`)."""
    return label_count(volume) > 0


def refuse_label_map(volume: Volume, name: str) -> None:
    """A one-line ``ValueError`` where ``volume`` is a label map (:func:`label_count`): a
    segmentation is no image to predict from."""
    if count := label_count(volume):
        raise ValueError(f"{name}: holds {count} integer labels (a segmentation, "
                         "such as aseg.mgz), not an MR image; give the scan itself")


def map_refusal(name: str, quantity: str | None, unit: str | None = None) -> str:
    """Why an image holding a map (``quantity``: PD, T1, T2, as a sidecar's ``Quantity`` or a
    DICOM map's Real World Value Mapping names it) is no input, in one line; empty for none."""
    if not quantity:
        return ""
    return (f"{name}: holds a {quantity} map{f' ({unit})' if unit else ''}, not a scan; give an image acquired "
            "at a TE and TR")


def refuse_map(volume: Volume, name: str) -> None:
    """A one-line ``ValueError`` where ``volume`` holds a map (:func:`map_refusal`)."""
    if refusal := map_refusal(name, volume.extra.get("quantity"), volume.extra.get("unit")):
        raise ValueError(refusal)


def _stack_spacing(img, to_ras: np.ndarray) -> tuple[float, float, float]:
    """Voxel size (mm) along the stack's (z, y, x), from the header (1 where unusable)."""
    return stack_spacing(img.header.get_zooms()[:3], to_ras)


def load_nifti_frames(path: str | Path, max_frames: int) -> tuple[list[np.ndarray], tuple]:
    """The 3-D frames of a 3-D or 4-D NIfTI file, each as an axial stack, and the voxel
    size (mm, stack order): for files such as tissue fraction maps merged along time.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not NIfTI, corrupt or truncated, complex, not 3-D or 4-D, or more than
        ``max_frames`` frames; one line naming the file.
    """
    import nibabel as nib

    path = _existing_file(path)
    if suffix_of(path) not in NIFTI_SUFFIXES:
        raise ValueError(f"{path.name}: not a NIfTI file (.nii, .nii.gz)")
    with _readable(path, "NIfTI"):
        img = _nib_load(path)
        if not isinstance(img, nib.Nifti1Image):
            raise ValueError(f"{path.name}: not a NIfTI file ({type(img).__name__})")
        shape = tuple(int(s) for s in img.shape)
        if len(shape) not in (3, 4) or min(shape) < 1 or (len(shape) == 4 and shape[3] > max_frames):
            raise ValueError(f"{path.name}: expected a 3-D volume or up to {max_frames} of them "
                             f"along a 4th axis, got shape {shape}")
        _check_size(path, shape[:3])
        if np.dtype(img.get_data_dtype()).kind == "c":
            raise ValueError(f"{path.name}: holds complex values; tissue maps are real numbers")
        data = np.asarray(img.dataobj, dtype=np.float32).reshape(shape)
    to_ras = ras_orientation(img.affine)
    frames = [data] if data.ndim == 3 else [data[..., i] for i in range(data.shape[3])]
    return [np.ascontiguousarray(file_to_stack(f, to_ras)) for f in frames], _stack_spacing(img, to_ras)


def _load_image(path: Path) -> Volume:
    notices: list[str] = []
    if suffix_of(path) in (".tif", ".tiff"):
        data = _read_tiff(path, notices)
    else:
        data = _read_pil(path, notices)
    data = np.asarray(data, np.float32)
    if data.ndim == 2:
        data = data[None]
    volume = Volume(data=np.ascontiguousarray(data), kind="image", original_shape=data.shape)
    if notices:
        volume.extra["notices"] = notices
    return volume


#: An RGB picture is a colour one (a colour map, an annotation) where more than
#: :data:`COLOUR_SHARE` of its pixels have channels apart by more than :data:`COLOUR_SPREAD`
#: of its range: well beyond what JPEG's rounding leaves on a grey picture.
COLOUR_SPREAD, COLOUR_SHARE = 0.02, 0.001


def _luminance(rgb: np.ndarray, path: Path, notices: list) -> np.ndarray:
    """An RGB(A) picture (channels last) as grey: its luminance. Where its channels differ
    (:data:`COLOUR_SPREAD`), a notice says so: a colour map or an annotation is not the
    scanner's grey values."""
    rgb = np.asarray(rgb, np.float32)[..., :3]
    spread = rgb.max(axis=-1) - rgb.min(axis=-1)
    top = float(rgb.max()) if rgb.size else 0.0
    share = float(np.mean(spread > COLOUR_SPREAD * top)) if top > 0 else 0.0
    if share > COLOUR_SHARE:
        notices.append(f"{path.name}: a colour picture (its red, green and blue differ in {100 * share:.1f} % of "
                       "its pixels): read as its luminance; a colour map or an annotation is not the scanner's "
                       "grey values, so give the grey image where there is one")
    return rgb @ _LUMA


def _read_tiff(path: Path, notices: list) -> np.ndarray:
    import tifffile

    with _readable(path, "TIFF"), tifffile.TiffFile(str(path)) as tif:
        series = tif.series[0]
        samples, shape = _tiff_layout(path, series)
        data = series.asarray()
    if samples is not None:
        data = _luminance(np.moveaxis(data, samples, -1), path, notices)
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


def _read_pil(path: Path, notices: list) -> np.ndarray:
    from PIL import Image

    with _readable(path, "image"), Image.open(path) as im:
        _check_size(path, (im.size[1], im.size[0]))
        im.load()
        if im.mode in ("1", "L", "I", "F") or im.mode.startswith("I;16"):
            return np.asarray(im, dtype=np.float32)
        rgb = np.asarray(im.convert("RGB"), dtype=np.float32)
    return _luminance(rgb, path, notices)
