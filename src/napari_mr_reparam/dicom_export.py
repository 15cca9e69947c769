"""Predictions and maps written as a DICOM series: one MR image file per slice.

A result derived from a DICOM series keeps that series' patient, study and frame of
reference, so that a viewer or PACS files it beside the scans it came from; it is a new
series (new UIDs), marked ``DERIVED\\SECONDARY``, each image naming the source image it was
made from (``SourceImageSequence``). A result of a NIfTI file or an image gets
an empty patient and a study of its own. Slice positions, orientation and spacing come from
the volume's affine (LPS, as DICOM states them); the values are stored as 16-bit integers
with a power-of-ten ``RescaleSlope``, so a viewer reads each voxel's value (a T1 map's
milliseconds) back to four or five digits. pydicom writes the files.
"""

from __future__ import annotations

import datetime
import os
import re
import secrets
import shutil
from pathlib import Path

import numpy as np

#: The output suffix that names a DICOM series: ``out.dcm`` is written as a folder of that
#: name holding one file per slice (``IM0001.dcm``, ...).
SERIES_SUFFIX = ".dcm"
#: MR Image Storage.
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
#: Attributes of the source series that the derived one keeps (its character set, patient,
#: study, frame of reference, and what the scanner was).
KEPT_FROM_SOURCE = ("SpecificCharacterSet", "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                    "PatientAge", "PatientWeight", "StudyInstanceUID", "StudyDate", "StudyTime", "StudyID",
                    "AccessionNumber", "ReferringPhysicianName", "StudyDescription", "FrameOfReferenceUID",
                    "PositionReferenceIndicator", "PatientPosition", "BodyPartExamined",
                    "MagneticFieldStrength", "InstitutionName")
#: SequenceVariant (0018,0021) of a target by its ScanningSequence codes.
_VARIANTS = {("GR",): ["SP"], ("GR", "IR"): ["SK", "SP", "MP"]}
#: Series numbers of derived series: the source's plus this, plus one for each series made
#: from that source before it in this session (:func:`_series_number`).
SERIES_NUMBER_OFFSET = 1000
#: The numbers given so far, by (source series UID, output folder, study UID).
_NUMBERS_GIVEN: dict[tuple[str, str, str], int] = {}


def write_series(folder: str | Path, voxels: np.ndarray, affine: np.ndarray, *, source_files=None,
                 te_ms: float | None = None, tr_ms: float | None = None, model: str | None = None,
                 extra: dict | None = None, overwrite: bool = False, origin: str | None = None,
                 weights_sha256: str | None = None) -> Path:
    """Write a volume as a DICOM series in ``folder``; return the folder.

    ``voxels`` (column, row, slice) and ``affine`` (those voxel indices to RAS mm, as
    :func:`napari_mr_reparam.volume_writing.save_volume` hands them over) place the slices;
    ``source_files``, the files of a DICOM series the volume derives from, give its patient
    and study. ``te_ms``, ``tr_ms``, ``model`` and ``extra`` (the BIDS fields ``save_volume``
    takes: ``ScanningSequence``, ``InversionTime`` in s, ``FlipAngle``; ``Quantity`` and
    ``Units`` for a map) fill the acquisition and the description. Without a source series,
    ``origin`` (the input's path, say) names the study and frame of reference: every series
    made from one input shares them, so a viewer shows its maps and predictions as one
    study, overlaid on one frame (none: new ones). The files are written in
    a hidden folder beside ``folder`` and moved into place at the end. An existing
    ``folder`` is refused (``FileExistsError``) unless ``overwrite``, and even then unless it
    holds only ``.dcm`` files (an earlier output): a folder of anything else is never replaced.
    """
    folder = Path(folder)
    volume = np.asarray(voxels, np.float32)
    volume = volume.reshape(volume.shape + (1,) * (3 - volume.ndim))
    affine = np.asarray(affine, float)
    if folder.exists():
        if not overwrite:
            raise FileExistsError(f"{folder} exists; overwrite=True replaces it (--overwrite on the command line)")
        refuse_unreplaceable(folder)
    source = _source_dataset(source_files)
    if source is None:  # a source series keeps its own order; others are written as scanners write them
        volume, affine = _conventional_order(volume, affine)
    meta = _series_attributes(source, te_ms, tr_ms, model, extra or {}, origin, weights_sha256)
    meta["SeriesNumber"] = _series_number(source, folder, str(meta.get("StudyInstanceUID", "")))
    sources = _source_images(source_files, affine, volume.shape[2]) if source is not None else {}
    finite = volume[np.isfinite(volume)]
    slope, signed = _encoding(finite)
    meta.update(_window(finite))
    units = _real_world_units((extra or {}).get("Quantity"), (extra or {}).get("Units"), slope, signed)
    if units is not None:
        meta["RealWorldValueMappingSequence"] = units
    folder.parent.mkdir(parents=True, exist_ok=True)
    temp = folder.with_name(f".{folder.name}.{secrets.token_hex(4)}")
    temp.mkdir()
    try:
        for k in range(volume.shape[2]):
            _write_slice(temp / f"IM{k + 1:04d}{SERIES_SUFFIX}", volume[:, :, k].T, affine, k,
                         {**meta, **sources.get(k, {})}, slope, signed)
        old = None
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old.{secrets.token_hex(4)}")
            os.replace(folder, old)
        os.replace(temp, folder)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if temp.exists():
            shutil.rmtree(temp)
    return folder


#: The patient direction (LPS) each image axis of a conventional series runs along, by the
#: axis of the patient it is nearest: columns to the left (x), rows to the back (y) and,
#: for coronal and sagittal images, downward (-z): anterior or superior at the top of the
#: image and the patient's right on the viewer's left, as scanners write them.
CONVENTIONAL_SIGN = (1.0, 1.0, -1.0)


def _conventional_order(voxels: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``voxels`` (column, row, slice) and their voxel -> RAS ``affine`` with the columns
    and rows reversed where they run against :data:`CONVENTIONAL_SIGN`: the same voxels at
    the same places, which a viewer that shows the stored pixels (most do) shows upright."""
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    affine = affine.copy()
    for axis in (0, 1):
        direction = lps[:3, axis]
        nearest = int(np.argmax(np.abs(direction)))
        if np.sign(direction[nearest]) != CONVENTIONAL_SIGN[nearest]:
            voxels = np.flip(voxels, axis)
            affine[:, 3] += affine[:, axis] * (voxels.shape[axis] - 1)
            affine[:, axis] *= -1
    return np.ascontiguousarray(voxels), affine


#: A map's units as UCUM codes (DICOM's units of measurement): what a viewer names its values.
UCUM_UNITS = {"ms": ("ms", "millisecond"), "1": ("1", "no units")}


def _real_world_units(quantity: str | None, units: str | None, slope: float, signed: bool):
    """The Real World Value Mapping of a map whose units UCUM names (T1 and T2 in ms, a
    flip-angle scale of 1): stored value x ``slope`` is the value in those units, which
    viewers that read the mapping (as DICOM parametric maps have it) show with its unit;
    None for other images (their RescaleType stays unspecified)."""
    if not quantity or units not in UCUM_UNITS:
        return None
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    code = Dataset()
    code.CodeValue, code.CodeMeaning = UCUM_UNITS[units]
    code.CodingSchemeDesignator = "UCUM"
    item = Dataset()
    item.RealWorldValueFirstValueMapped, item.RealWorldValueLastValueMapped = (-32768, 32767) if signed else (0, 65535)
    item.RealWorldValueIntercept, item.RealWorldValueSlope = 0.0, float(slope)
    item.LUTLabel, item.LUTExplanation = str(quantity)[:16], f"{quantity} ({units})"[:64]
    item.MeasurementUnitsCodeSequence = Sequence([code])
    return Sequence([item])


def _encoding(finite: np.ndarray) -> tuple[float, bool]:
    """(RescaleSlope, signed) for a volume's ``finite`` values: the finest power of ten that
    holds the largest magnitude in 16 bits (1 for whole numbers that fit), signed only
    where there are negative values."""
    signed = bool(finite.size) and float(finite.min()) < 0
    top = float(np.abs(finite).max()) if finite.size else 0.0
    levels = 32767 if signed else 65535
    if top <= 0 or (top <= levels and np.array_equal(finite, np.round(finite))):
        return 1.0, signed  # whole numbers (a map of bits, a count) as they are
    return float(10.0 ** np.ceil(np.log10(top / levels))), signed


def _window(finite: np.ndarray) -> dict:
    """A viewer's first window over a volume's ``finite`` values: from 0 (or the lowest
    value) to the 99.5th percentile."""
    if not finite.size:
        return {}
    low, high = min(float(finite.min()), 0.0), float(np.percentile(finite, 99.5))
    if high <= low:
        return {}
    return {"WindowCenter": f"{(low + high) / 2:.6g}", "WindowWidth": f"{high - low:.6g}"}


def _source_dataset(files):
    """The first of a DICOM series' files, read without its pixels; None without files."""
    import pydicom

    if not files:
        return None
    try:
        return pydicom.dcmread(files[0], stop_before_pixels=True, force=True)
    except (OSError, ValueError):
        return None  # moved or unreadable since: the series gets a patient and study of its own


def _source_images(files, affine: np.ndarray, slices: int) -> dict[int, dict]:
    """Per slice ``k`` of the derived series, the ``SourceImageSequence`` that names the
    source image it was made from: the one of ``files`` whose ImagePositionPatient lies
    within half a slice step of slice ``k``'s position (``affine``: voxel -> RAS), so that
    a viewer or PACS can go from each derived image to its scan. A slice with no such source
    image (a file unreadable since, or one without a position) names none."""
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    wanted = [lps @ np.array([0.0, 0.0, float(k), 1.0]) for k in range(slices)]
    reach = 0.5 * float(np.linalg.norm(lps[:3, 2]))
    found: dict[int, dict] = {}
    for file in files or ():
        try:
            ds = pydicom.dcmread(file, stop_before_pixels=True, specific_tags=[
                "SOPClassUID", "SOPInstanceUID", "ImagePositionPatient"])
            position = np.array([float(v) for v in ds.ImagePositionPatient])
            item = Dataset()
            item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
        except (OSError, ValueError, TypeError, AttributeError):
            continue  # says nothing of where it lies: named by no slice
        distances = [float(np.linalg.norm(at[:3] - position)) for at in wanted]
        k = int(np.argmin(distances))
        if distances[k] <= reach and k not in found:
            found[k] = {"SourceImageSequence": Sequence([item])}
    return found


def refuse_unreplaceable(folder: str | Path) -> None:
    """A one-line ``FileExistsError`` when ``folder`` exists but is no earlier output that
    a series may replace: a file, or a folder holding anything but ``.dcm`` files."""
    folder = Path(folder)
    if not folder.exists():
        return
    if not folder.is_dir():
        raise FileExistsError(f"{folder} is a file, where a DICOM series is written as a folder; "
                              "write the series under another name")
    if any(not p.is_file() or p.suffix.lower() != SERIES_SUFFIX for p in folder.iterdir()):
        raise FileExistsError(f"{folder} holds files other than a DICOM series' .dcm files; "
                              "write the series under another name")


def _series_attributes(source, te_ms, tr_ms, model, extra, origin: str | None = None,
                       weights_sha256: str | None = None) -> dict:
    """Attributes every slice of the series shares (``source``: a dataset of the series it
    derives from, or None; ``origin``: what names the study and frame of reference without
    one, :func:`write_series`)."""
    from pydicom.uid import generate_uid

    from . import __version__

    def named(what):  # the same UID for every series made from one origin
        return generate_uid(entropy_srcs=["napari-mr-reparam", what, origin]) if origin else generate_uid()

    now = datetime.datetime.now()
    meta = {name: source.get(name) for name in KEPT_FROM_SOURCE if source is not None and name in source}
    meta.setdefault("SpecificCharacterSet", "ISO_IR 192")  # UTF-8, where the source names none
    meta.setdefault("PatientName", "")
    meta.setdefault("PatientID", "")
    meta.setdefault("StudyInstanceUID", named("study"))
    meta.setdefault("FrameOfReferenceUID", named("frame of reference"))
    meta.setdefault("StudyDate", now.strftime("%Y%m%d"))
    meta.setdefault("StudyTime", now.strftime("%H%M%S"))
    quantity = extra.get("Quantity")
    codes = extra.get("ScanningSequence", "RM" if quantity else "SE")
    codes = [codes] if isinstance(codes, str) else list(codes)
    meta.update({
        "Modality": "MR", "SeriesInstanceUID": generate_uid(),
        "SeriesDate": now.strftime("%Y%m%d"), "SeriesTime": now.strftime("%H%M%S"),
        "SeriesDescription": _description(te_ms, tr_ms, model, extra, source)[:64],
        "ImageType": ["DERIVED", "SECONDARY"] + ([_image_type_code(quantity)] if quantity else []),
        "Manufacturer": "napari-mr-reparam", "SoftwareVersions": __version__,
        "DerivationDescription": _derivation(model, extra, source, weights_sha256)[:1024],
        "ScanningSequence": codes, "SequenceVariant": _VARIANTS.get(tuple(codes), ["NONE"]),
        "ScanOptions": "", "MRAcquisitionType": str(source.get("MRAcquisitionType", "")) if source is not None else "",
        "EchoTrainLength": 1, "BurnedInAnnotation": "NO",
    })
    if source is not None and source.get("SliceThickness") is not None:
        meta["SliceThickness"] = source.SliceThickness
    if te_ms is not None:
        meta["EchoTime"] = f"{float(te_ms):.6g}"
    if tr_ms is not None:
        meta["RepetitionTime"] = f"{float(tr_ms):.6g}"
    ti = extra.get("InversionTime")
    if ti is not None:
        meta["InversionTime"] = f"{1000.0 * float(np.ravel(ti)[0]):.6g}"
    if extra.get("InversionTime2") is not None:  # DICOM has no second TI: the sequence is named instead
        meta["SequenceName"] = DOUBLE_INVERSION_NAME
    if extra.get("FlipAngle") is not None:
        meta["FlipAngle"] = f"{float(extra['FlipAngle']):.6g}"
    return meta


def _image_type_code(quantity: str) -> str:
    """A map's quantity as an ImageType value (a code string: at most 16 capitals, digits
    and underscores), cut at a word's end: ``REFOCUSING_FLIP`` for "refocusing flip-angle
    scale", not ``REFOCUSING_FLIP_``."""
    words = [w for w in re.split(r"[^A-Z0-9]+", str(quantity).upper()) if w]
    code = ""
    for word in words:
        longer = f"{code}_{word}" if code else word
        if len(longer) > 16:
            break
        code = longer
    return code or (words[0][:16] if words else "MAP")


#: The SequenceName (a short string: at most 16 characters) a double inversion recovery is
#: written with (DICOM has no tag for its second inversion time), by which
#: :func:`~napari_mr_reparam.dicom.sequence_name` reads it back.
DOUBLE_INVERSION_NAME = "reparam_DIR"


def _series_number(source, folder: Path, study: str = "") -> int:
    """The derived series' number: the source's plus :data:`SERIES_NUMBER_OFFSET`, plus
    one for each other series made from the same source before it in this session (the
    PD, T1 and T2 maps of one scan, or its predictions at several targets, so that a viewer
    lists them apart), and past the numbers that series of the same ``study`` beside it on
    disk already hold (those an earlier run wrote to the same folder); a folder written
    again keeps its number."""
    number = int(source.get("SeriesNumber") or 0) if source is not None else 0
    uid = str(source.get("SeriesInstanceUID", "")) if source is not None else ""
    key = (uid, str(folder.resolve()), study)
    if key not in _NUMBERS_GIVEN:
        own = _numbers_beside(folder, study, own=True)
        taken = _numbers_beside(folder, study) | {n for k, n in _NUMBERS_GIVEN.items() if k[2] == study}
        wanted = number + SERIES_NUMBER_OFFSET + sum(k[0] == uid for k in _NUMBERS_GIVEN)
        while not own and wanted in taken:
            wanted += 1
        _NUMBERS_GIVEN[key] = own.pop() if own else wanted
    return _NUMBERS_GIVEN[key]


def _numbers_beside(folder: Path, study: str, own: bool = False) -> set[int]:
    """The SeriesNumbers of the DICOM series (folders named ``*.dcm``) of ``study`` beside
    ``folder`` (with ``own``: of ``folder`` itself, written before), from each one's first
    file's header."""
    import pydicom

    places = [folder] if own else [p for p in folder.parent.glob(f"*{SERIES_SUFFIX}") if p != folder]
    numbers = set()
    for place in places:
        first = next(iter(sorted(place.glob(f"*{SERIES_SUFFIX}"))), None) if place.is_dir() else None
        if first is None:
            continue
        try:
            ds = pydicom.dcmread(first, stop_before_pixels=True, specific_tags=["SeriesNumber", "StudyInstanceUID"])
        except Exception:  # noqa: BLE001 - not a readable series: it holds no number
            continue
        if str(ds.get("StudyInstanceUID", "")) == study and ds.get("SeriesNumber") is not None:
            numbers.add(int(ds.SeriesNumber))
    return numbers


def _description(te_ms, tr_ms, model, extra, source) -> str:
    """The series' name in a viewer: what was made, at which acquisition, from what."""
    quantity = extra.get("Quantity")
    if quantity:
        units = extra.get("Units", "")
        text = f"{quantity} map" + (f" ({units})" if units in ("ms", "s", "1") else "")
    else:
        times = [f"{name} {value:g}" for name, value in (("TE", te_ms), ("TR", tr_ms)) if value is not None]
        ti = extra.get("InversionTime")
        if ti is not None:
            times.append(f"TI {1000.0 * float(np.ravel(ti)[0]):g}")
        text = "synthetic " + " ".join(times)
    origin = str(source.get("SeriesDescription", "") or "").strip() if source is not None else ""
    if origin:  # which of a series' acquisitions it was made from: its echo, its TI
        origin += _source_acquisition(source)
    return f"{text} from {origin}" if origin else text


def _source_acquisition(source) -> str:
    """`` echo 3``, `` TI 400`` or both: what tells the source image apart among the
    acquisitions of its series (none stated: empty)."""
    said = ""
    echo = source.get("EchoNumbers")
    try:
        if echo is not None and int(np.ravel(echo)[0]) > 1:
            said += f" echo {int(np.ravel(echo)[0])}"
        if source.get("InversionTime") is not None:
            said += f" TI {float(source.InversionTime):g}"
    except (TypeError, ValueError):  # a value that is no number says nothing
        return ""
    return said


def _derivation(model, extra, source, weights_sha256: str | None = None) -> str:
    from . import __version__

    made = f"napari-mr-reparam {__version__}" + (f", {model}" if model else "")
    if weights_sha256:
        made += f" (weights sha256 {weights_sha256})"
    if extra.get("Quantity"):
        made += f": {extra['Quantity']} in {extra.get('Units', 'arbitrary units')}"
    else:
        made += ": predicted image, not acquired"
    if source is not None and source.get("SeriesInstanceUID"):
        made += f"; from series {source.SeriesInstanceUID}"
    return made


def _write_slice(path: Path, pixels: np.ndarray, affine: np.ndarray, k: int, meta: dict, slope: float,
                 signed: bool) -> None:
    """One slice (rows, columns) of the series at voxel-slice ``k`` of ``affine``."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine  # RAS -> LPS
    along_row, along_column, normal = lps[:3, 0], lps[:3, 1], lps[:3, 2]
    position = lps @ np.array([0.0, 0.0, float(k), 1.0])
    values = np.nan_to_num(pixels / slope, nan=0.0, posinf=0.0, neginf=0.0)
    stored = np.rint(values).clip(-32768, 32767).astype(np.int16) if signed else \
        np.rint(values).clip(0, 65535).astype(np.uint16)
    uid = generate_uid()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = MR_IMAGE_STORAGE, uid
    for name, value in meta.items():
        setattr(ds, name, value)
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = [_ds(v) for v in position[:3]]
    ds.ImageOrientationPatient = [_ds(v) for v in np.concatenate([_unit(along_row), _unit(along_column)])]
    ds.PixelSpacing = [_ds(np.linalg.norm(along_column)), _ds(np.linalg.norm(along_row))]
    ds.SpacingBetweenSlices = _ds(np.linalg.norm(normal))
    if "SliceThickness" not in meta:  # the source series' own where there is one (a gap between slices kept)
        ds.SliceThickness = ds.SpacingBetweenSlices
    ds.SliceLocation = _ds(np.dot(_unit(np.cross(along_row, along_column)), position[:3]))
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = int(stored.shape[0]), int(stored.shape[1])
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1 if signed else 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", f"{slope:.6g}", "US"
    ds.PixelData = np.ascontiguousarray(stored).tobytes()
    ds.save_as(str(path), enforce_file_format=True)


def _ds(value) -> object:
    """A decimal string value as precise as its 16 characters allow."""
    from pydicom.valuerep import DSfloat

    return DSfloat(float(value), auto_format=True)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)
