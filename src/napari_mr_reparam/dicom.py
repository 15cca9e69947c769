"""Reading DICOM series: volumes with their geometry and acquisition parameters.

A folder of DICOM files (searched recursively) or a list of files, classic single-frame
images or enhanced multi-frame ones (each frame taken as the classic image its functional
groups describe, :func:`frames`), is split into
**acquisitions**: images of one series that share EchoTime, InversionTime,
RepetitionTime, FlipAngle and ImageType (and EchoNumbers where EchoTime is absent). A
multi-echo series gives one volume per echo, an inversion-recovery set one per inversion
time. Each acquisition becomes a
:class:`~napari_mr_reparam.io.Volume` like those of NIfTI files, with

- ``data``: the acquired slices as the axial stack ``(z, y, x)`` = (slice, row, column),
  float32, slices ordered along the slice normal (inferior -> superior for an axial
  series). An axial series is thus laid out as a NIfTI of the same data would be; a
  coronal or sagittal 2-D series keeps its acquired slices (it is not resliced, so it
  stays a stack of sharp in-plane images), while a 3-D series (MRAcquisitionType 3D, or
  near-isotropic voxels; :data:`MIN_VOLUME_SLICES` slices or more) is laid out as axial
  slices whatever its plane, exactly as a NIfTI of it is (``ornt`` says how), because the
  networks read axial slices;
- ``affine``: voxel (column, row, slice) -> RAS+ mm, as nibabel (and a NIfTI written
  from this volume by :func:`~napari_mr_reparam.volume_writing.save_volume`) uses it;
- ``spacing``: (slice spacing, row spacing, column spacing) in mm (a single slice: its
  SliceThickness);
- ``te_ms``, ``tr_ms``, ``ti_ms`` (ms) and ``flip_deg`` from the tags, None where absent;
- ``extra``: ``sequence`` (``spin_echo``, ``inversion_recovery``, ``gradient_echo``,
  ``mprage`` or None: :func:`sequence_name`), ``readout_tr_ms`` (an MPRAGE-type series whose
  RepetitionTime is its readout's pulse spacing: that spacing, and ``tr_ms`` None, as the
  time from one inversion to the next is not in the standard tags;
  :func:`~napari_mr_reparam.sidecars.mprage_cycle`),
  ``field_strength_t``, ``manufacturer``, ``series_description``, ``image_type``,
  ``files``, ``series_uid``, ``echo_number`` (EchoNumbers where EchoTime is absent, else None),
  ``saturated`` where the scanner clipped voxels (a boolean array like ``data``: stored
  values at the top of their range, whose true value is higher; the joint fit takes them
  as lower bounds, :func:`~napari_mr_reparam.joint_fit.fit_maps`'s ``clipped``), and
  ``display_scale``: what ``data`` is multiplied by to give the values a DICOM viewer
  displays (:func:`display_scale`), which an image written as DICOM beside the series
  takes back (:func:`~napari_mr_reparam.volume_writing.save_volume`).

Pixel values are the stored values with RescaleSlope/RescaleIntercept applied (the
display values, DV); for Philips images carrying the private scale slope (2005,100E) they
are divided by RescaleSlope x scale slope, Philips' floating-point value (FP = DV /
(RescaleSlope x scale slope), intercept included), which is the one comparable between
images whose display scaling differs (inversion times of one series, say).

pydicom reads the files (compressed pixel data through pylibjpeg's decoders: JPEG,
JPEG-LS, JPEG 2000; RLE natively); dicom-numpy checks that each acquisition's slices form one
regular grid (same matrix, pixel spacing, orientation; no missing slices) and stacks
them with their affine. It is small (pure Python, needs only numpy and pydicom);
dicom2nifti needs python-gdcm, SimpleITK and itk are large compiled toolkits, nibabel's
``nicom`` is deprecated and highdicom is made for writing derived objects.
"""

from __future__ import annotations

import functools
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from .io import Volume
from .messages import first_line
from .orientation import FEW_SLICES, THICK_RATIO, file_to_stack, ras_orientation, stack_spacing
from .sidecars import mprage_cycle, sequence_of

#: Tags that hold the acquisition parameters, with their (group,element) for messages.
TAG_CODES = {"EchoTime": "(0018,0081)", "RepetitionTime": "(0018,0080)",
             "InversionTime": "(0018,0082)", "FlipAngle": "(0018,1314)"}
#: How a person gives a missing parameter instead.
TAG_HINTS = {"EchoTime": "--input-te MS on the command line (Input TE in the widget)",
             "RepetitionTime": "--input-tr MS on the command line (Input TR in the widget)"}
_VOLUME_FIELDS = {"EchoTime": "te_ms", "RepetitionTime": "tr_ms", "InversionTime": "ti_ms",
                  "FlipAngle": "flip_deg"}
_PHILIPS_SCALE_SLOPE = (0x2005, 0x100E)
#: Philips' private per-frame group of an enhanced image, which holds its scale slope.
_PHILIPS_FRAME_GROUP = (0x2005, 0x140F)
_DICOMDIR_SOP = "1.2.840.10008.1.3.10"
#: MR, enhanced MR, CT, enhanced CT and secondary capture image storage: must hold pixels.
_IMAGE_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.4.1",
                      "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1",
                      "1.2.840.10008.5.1.4.1.1.7"}
_GEOMETRY_TAGS = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")
#: nibabel orientation of the (column, row, slice) voxel axes that makes the package's
#: stack (see :mod:`.orientation`) the acquired slices as they are: z = slice, y = row, x = column.
_NATIVE_ORNT = np.array([[0, -1], [1, -1], [2, 1]], float)


# ----------------------------------------------------------------------------- finding files


def is_dicom(path: str | os.PathLike) -> bool:
    """True for a DICOM file: with the preamble (``DICM`` at byte 128), or without one (older
    exports write the data set alone) where it starts with a group 0002 or 0008 element and
    pydicom finds its SOP class."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    if head[128:132] == b"DICM":
        return True
    return head[:2] in (b"\x02\x00", b"\x08\x00") and _names_sop_class(path)


def _names_sop_class(path) -> bool:
    import pydicom

    try:
        ds = pydicom.dcmread(str(path), force=True, stop_before_pixels=True, specific_tags=["SOPClassUID"])
        return bool(ds.get("SOPClassUID"))
    except Exception:  # anything pydicom cannot parse is not a DICOM file here
        return False


def looks_like_series(path) -> bool:
    """Cheap check: a folder holding a DICOM file, or DICOM files (``.dcm`` or preamble)."""
    if isinstance(path, (list, tuple)):
        return bool(path) and all(_looks_like_file(Path(p)) for p in path)
    path = Path(path)
    if path.is_dir():
        return any(is_dicom(p) for p in _files_under(path))
    return _looks_like_file(path)


def _looks_like_file(path: Path) -> bool:
    return path.is_file() and (path.suffix.lower() == ".dcm" or is_dicom(path))


def _files_under(folder: Path):
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(root) / name


def _split(folder: Path) -> tuple[list[Path], list[Path]]:
    """The files under ``folder`` (:func:`_files_under`), in one walk: the DICOM files and the others."""
    files = list(_files_under(folder))
    marks = [is_dicom(p) for p in files]
    return [p for p, m in zip(files, marks) if m], [p for p, m in zip(files, marks) if not m]


def dicom_files(path, others: list | None = None) -> list[Path]:
    """The DICOM files of a folder (recursively; other files are skipped, and appended to
    ``others`` where given, for :func:`files_beside`) or of a list. A DICOMDIR given alone
    stands for the folder it indexes (:func:`is_dicomdir`).

    Raises ``FileNotFoundError`` for a path that does not exist and ``ValueError``
    when no DICOM file is found or a listed file is not DICOM.
    """
    paths = [Path(p) for p in path] if isinstance(path, (list, tuple)) else [Path(path)]
    if not paths:
        raise ValueError("no DICOM files given")
    if len(paths) == 1 and paths[0].is_file() and is_dicomdir(paths[0]):
        paths = [paths[0].parent]
    found: list[Path] = []
    for item in paths:
        if not item.exists():
            raise FileNotFoundError(f"no such file or folder: {item}")
        if item.is_dir():
            here, rest = _split(item)
            found += here
            if others is not None:
                others.extend(rest)
        elif is_dicom(item) or item.suffix.lower() == ".dcm":
            found.append(item)
        else:
            raise ValueError(f"{item.name}: not a DICOM file (no DICM preamble)")
    if not found:
        raise ValueError(f"{_label(paths)}: no DICOM files found")
    return found


def is_dicomdir(path: str | os.PathLike) -> bool:
    """True for a DICOMDIR, the index of a DICOM medium's files (named so, or of its SOP
    class); the images lie in its folder."""
    from pydicom.filereader import read_file_meta_info

    path = Path(path)
    if path.name.upper() == "DICOMDIR":
        return True
    try:
        return str(read_file_meta_info(str(path)).get("MediaStorageSOPClassUID", "")) == _DICOMDIR_SOP
    except Exception:  # no file meta: not a DICOMDIR
        return False


def files_beside(path, others: list | None = None) -> str | None:
    """For a folder of DICOM series that also holds other files (a NIfTI, a PNG, notes;
    not a DICOMDIR), one line naming them, which the series' reading skipped; else None.
    ``others``: those files where the reading found them (:func:`read_series`), so the
    folder is not walked again."""
    if isinstance(path, (list, tuple)) or not Path(path).is_dir():  # files given: those are read
        return None
    folder = Path(path)
    others = [p for p in (_split(folder)[1] if others is None else others) if not is_dicomdir(p)]
    if not others:
        return None
    names = ", ".join(str(p.relative_to(folder)) for p in others[:3]) + (", ..." if len(others) > 3 else "")
    return (f"{folder.name}: its DICOM series are read; {len(others)} other file{'s' if len(others) > 1 else ''} "
            f"there ({names}) {'are' if len(others) > 1 else 'is'} not: open {'them' if len(others) > 1 else 'it'} "
            f"on {'their' if len(others) > 1 else 'its'} own")


def lone_slice(path) -> str | None:
    """Where ``path`` is one DICOM file (or a list of one) holding one slice of an acquisition
    whose other slices are files beside it: a line saying so and to open the folder (napari
    opens files given together one layer each); else None. Headers only, the folder's read
    once while it is unchanged."""
    paths = path if isinstance(path, (list, tuple)) else [path]
    given = Path(paths[0]) if len(paths) == 1 else None
    if given is None or not given.is_file():
        return None
    header = _header(given)
    if header is None:
        return None
    folder = given.parent
    count, name = _folder_acquisitions(str(folder), folder.stat().st_mtime_ns).get(_acquisition_key(header), (0, ""))
    if count < 2:
        return None
    return f"{given.name} is one of {count} slices of series {name} in its folder: give or open its folder for the volume"


#: The tags a header is read with to tell its acquisition (:func:`_acquisition_key`).
_KEY_TAGS = ["SOPClassUID", "SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "ImageType",
             "EchoNumbers", "NumberOfFrames", *_VOLUME_FIELDS]


def _header(path: Path):
    """A DICOM file's header (the tags of :data:`_KEY_TAGS`) where it holds one image of a
    series, else None."""
    import pydicom

    if not is_dicom(path):
        return None
    try:
        ds = pydicom.dcmread(str(path), force=True, stop_before_pixels=True, specific_tags=_KEY_TAGS)
    except Exception:  # unreadable: said when the file is read
        return None
    single = (_number(ds, "NumberOfFrames") or 1) <= 1 and str(ds.get("SOPClassUID", "")) != _DICOMDIR_SOP
    return ds if single and ds.get("SeriesInstanceUID") else None


@functools.lru_cache(maxsize=8)
def _folder_acquisitions(folder: str, changed_ns: int) -> dict:
    """The files directly in ``folder`` per acquisition (:func:`_acquisition_key`): their
    count and series' name (``changed_ns``: the folder's mtime, so a changed folder is
    read again)."""
    out: dict[tuple, tuple] = {}
    for path in sorted(Path(folder).iterdir()):
        header = _header(path) if path.is_file() and not path.name.startswith(".") else None
        if header is not None:
            count, name = out.get(key := _acquisition_key(header), (0, _series_name(header)))
            out[key] = (count + 1, name)
    return out


def _label(path) -> str:
    """How a series is named in messages and layer names: its folder (a DICOMDIR's too),
    or the file given alone (``IM0001``: one file of a folder, named as the user chose it)."""
    if not isinstance(path, (list, tuple)):
        given = Path(path)
        return given.parent.name if given.name.upper() == "DICOMDIR" else given.name
    first = Path(path[0]) if path else Path(".")
    return first.name if first.is_dir() else (first.parent.name or first.name)


# ----------------------------------------------------------------------------- reading


def read_series(path, require: tuple[str, ...] = (), left_out: list | None = None,
                others: list | None = None) -> list[Volume]:
    """Read a DICOM series into one volume per acquisition, sorted by (TI, TE, TR, flip).

    Parameters
    ----------
    path : str, Path or list of them
        A folder (searched recursively), DICOM files, or a DICOMDIR (its folder is read).
    require : tags among ``EchoTime``, ``RepetitionTime``, ``InversionTime``,
        ``FlipAngle`` that every acquisition must state.
    left_out : list, optional
        Where files of several series are given (a study's folder), a series whose images
        form no volume (a three-plane localizer, say) is left out and a line saying which
        and why is appended here, as long as another series reads; without a list, or
        where an acquisition of a series that otherwise reads fails, it raises as below.
        Copies of one file (same SOPInstanceUID), localizer images (ImageType LOCALIZER or
        SCOUT) and series this package wrote (:data:`WRITTEN_HERE`) are left out whether
        or not a list is given, the last two only beside other images; the list gets a
        line for each.
        A line on how voxels were read (a real-valued image's magnitude), once per
        series, is appended here too; each volume's ``extra["notices"]`` holds its own.
    others : list, optional
        Takes the files of a folder that are not DICOM (:func:`dicom_files`), for
        :func:`files_beside`.

    Raises
    ------
    FileNotFoundError
        A path does not exist.
    ValueError
        One line naming the folder or file: no DICOM, an unreadable or truncated file,
        images of one acquisition that do not form one grid (mixed orientation, spacing,
        matrix, missing or repeated slices), a required tag missing.
    """
    files = dicom_files(path, others)
    label = _label(path)
    notes: list[str] = []
    stored = _without_copies(label, [(f, ds) for f in files if _is_image(ds := _read_file(f))], notes)
    images = [(f, frame) for f, ds in stored for frame in frames(ds, f.name)]
    if not images:
        raise ValueError(f"{label}: the DICOM files hold no images")
    images = _leave_out(label, images, _localizer, notes)
    images = _leave_out(label, images, _written_here, notes)
    if left_out is not None:
        left_out.extend(notes)
    groups: dict[tuple, list] = defaultdict(list)
    for f, ds in images:
        groups[_acquisition_key(ds)].append((f, ds))
    _refuse_tags_missing_in_part(label, images)
    volumes, failed = [], []
    for members in groups.values():
        try:
            volumes.append(_acquisition_volume(label, members))
        except ValueError as exc:
            failed.append((members, exc))
    if failed:
        read = {v.extra["series_uid"] for v in volumes}  # a series that reads in part is broken: refused
        if left_out is None or not volumes or any(str(m[0][1].get("SeriesInstanceUID", "")) in read
                                                  for m, _ in failed):
            raise failed[0][1]
        for members, exc in failed:
            left_out.append(f"{label}: series {_series_name(members[0][1])} left out: "
                            f"{str(exc).split(': ', 1)[-1]}")
    _refuse_several_series(label, volumes, images)
    volumes.sort(key=lambda v: tuple(x if x is not None else -1.0
                                     for x in (v.ti_ms, v.te_ms, v.tr_ms, v.flip_deg,
                                               v.extra.get("echo_number"))))
    for tag in require:
        check_tag(volumes, tag, label)
    if left_out is not None:  # how the voxels were read, once per series
        left_out.extend(dict.fromkeys(line for v in volumes for line in v.extra["notices"]))
    return volumes


def _without_copies(label: str, stored: list, notes: list) -> list:
    """``stored`` (file, dataset) with one file of each SOPInstanceUID: a file copied beside
    itself (``IM0010 (1).dcm``) is the same image; the copy (the longer name) is left out,
    which a line appended to ``notes`` says."""
    kept: dict[str, tuple] = {}
    copies = []
    for item in sorted(stored, key=lambda item: (len(item[0].name), str(item[0]))):
        uid = str(item[1].get("SOPInstanceUID", "") or "") or str(item[0])
        if uid in kept:
            copies.append((item[0], kept[uid][0]))
        else:
            kept[uid] = item
    if copies:
        (copy, of), more = copies[0], len(copies) - 1
        what = f"{copy.name} and {more} more left out: copies of other files" if more else \
            f"{copy.name} left out: a copy of {of.name}"
        notes.append(f"{label}: {what} (same SOPInstanceUID)")
    keep = {id(item) for item in kept.values()}
    return [item for item in stored if id(item) in keep]


#: ImageType values of a localizer (scout): images placing the scan, which form no volume.
LOCALIZER_TYPES = ("LOCALIZER", "SCOUT")
#: Manufacturer (0008,0070) of the series this package writes (:mod:`.dicom_export`, with
#: ImageType DERIVED): synthetic images and maps, not measured scans.
WRITTEN_HERE = "napari-mr-reparam"


def _image_type(ds) -> list[str]:
    """A dataset's ImageType values, stripped and upper-case (empty where it has none)."""
    return [str(v).strip().upper() for v in _as_list(ds.get("ImageType"))]


def _localizer(ds) -> str | None:
    """Why an image is left out where others are read: a localizer's ImageType, else None."""
    named = next((v for v in _image_type(ds) if v in LOCALIZER_TYPES), None)
    return f"a localizer (ImageType {named})" if named else None


def _written_here(ds) -> str | None:
    """Why an image is left out where measured ones are read: one this package wrote, else None."""
    ours = str(ds.get("Manufacturer", "") or "").strip() == WRITTEN_HERE and _image_type(ds)[:1] == ["DERIVED"]
    return f"written by {WRITTEN_HERE} (a synthetic image or map, not a measured scan)" if ours else None


def _leave_out(label: str, images: list, why, notes: list) -> list:
    """``images`` without those ``why`` gives a reason for, as long as others remain (those
    alone are read as given); a line per series left out, with the reason, is appended to
    ``notes``."""
    reasons = [why(ds) for _, ds in images]
    if all(reasons) or not any(reasons):
        return images
    by_series: dict[str, list] = defaultdict(list)
    for (f, ds), reason in zip(images, reasons):
        by_series[str(ds.get("SeriesInstanceUID", ""))].append((f, ds, reason))
    for members in by_series.values():
        out = list(dict.fromkeys(f for f, _, reason in members if reason))
        if not out:
            continue
        first, reason = next((ds, reason) for _, ds, reason in members if reason)
        whole = len(out) == len(dict.fromkeys(f for f, _, _ in members))
        more = f" and {len(out) - 1} more" if len(out) > 1 else ""
        what = f"series {_series_name(first)}" if whole else f"{out[0].name}{more} of series {_series_name(first)}"
        notes.append(f"{label}: {what} left out: {reason}")
    return [image for image, reason in zip(images, reasons) if not reason]


def _refuse_tags_missing_in_part(label: str, images: list) -> None:
    """A one-line ``ValueError`` where some images of a series state an acquisition tag
    (EchoTime, RepetitionTime, InversionTime, FlipAngle) and others lack it: they would
    otherwise form an acquisition of their own and leave the rest a slice short."""
    by_series: dict[str, list] = defaultdict(list)
    for f, ds in images:
        by_series[str(ds.get("SeriesInstanceUID", ""))].append((f, ds))
    for members in by_series.values():
        for tag in _VOLUME_FIELDS:
            lacking = [f for f, ds in members if _number(ds, tag) is None]
            if lacking and len(lacking) < len(members):
                more = f" and {len(lacking) - 1} more" if len(lacking) > 1 else ""
                state = "state" if more else "states"
                raise ValueError(f"{label}: {lacking[0].name}{more} of series {_series_name(members[0][1])} "
                                 f"{state} no {tag}, unlike the series' other images")


def _refuse_several_series(label: str, volumes: list[Volume], images: list) -> None:
    """Volumes of several series (SeriesInstanceUID) are read as one series' acquisitions only
    where they are one scan's: of one study and on one grid, as an inversion-recovery set
    exported one series per inversion time. Other series given together (a folder of
    unrelated scans) are a one-line ``ValueError`` listing them."""
    uids = {v.extra["series_uid"] for v in volumes}
    study = {str(ds.get("SeriesInstanceUID", "")): str(ds.get("StudyInstanceUID", "")) for _, ds in images}
    if len(uids) < 2 or all(_one_scan(v, volumes[0], study) for v in volumes):
        return
    files: dict[str, set] = defaultdict(set)
    first = {}
    for f, ds in images:
        uid = str(ds.get("SeriesInstanceUID", ""))
        if uid in uids:
            files[uid].add(f)
            first.setdefault(uid, ds)
    ordered = sorted(uids, key=lambda u: str(min(files[u])))
    names = [_series_name(first[u]) for u in ordered]
    names = [f"{n} (UID ending {u[-8:].lstrip('.')}, first file {_short(min(files[u]))})" if names.count(n) > 1
             else n for n, u in zip(names, ordered)]  # one number and description: told apart by UID and file
    listing = ", ".join(f"series {n} ({len(files[u])} file{'s' if len(files[u]) > 1 else ''})"
                        for n, u in zip(names, ordered))
    raise ValueError(f"{label}: the files hold {len(uids)} DICOM series, not one scan's acquisitions (their "
                     f"studies or slice grids differ): {listing}; give the folder or files of one series")


def _short(path: Path) -> str:
    """A file named with its folder: ``b/IM0000``."""
    return f"{path.parent.name}/{path.name}"


def _one_scan(volume: Volume, other: Volume, study: dict) -> bool:
    """Whether two acquisitions are of one study (``study``: series UID -> study UID) and on
    one grid (shape, affine)."""
    return (study.get(volume.extra["series_uid"]) == study.get(other.extra["series_uid"])
            and volume.data.shape == other.data.shape
            and np.allclose(volume.affine, other.affine, atol=0.05))


def _series_name(ds) -> str:
    """A series as a person knows it: its number and description where the tags give them."""
    number, text = ds.get("SeriesNumber"), str(ds.get("SeriesDescription", "") or "").strip()
    named = " ".join(p for p in (str(number) if number is not None else "", f"'{text}'" if text else "") if p)
    return named or str(ds.get("SeriesInstanceUID", "?"))


def choose_acquisition(volumes: list[Volume], number: int | None) -> list[Volume]:
    """The acquisitions of one series to use: all (``number`` None) or the ``number``-th
    (1-based, in :func:`read_series`' order); a one-line ``ValueError`` out of range."""
    if number is None:
        return volumes
    if not 1 <= number <= len(volumes):
        raise ValueError(f"{volumes[0].extra['series']}: --acquisition {number}, but the series has "
                         f"{len(volumes)} acquisition(s) (1-{len(volumes)})")
    return [volumes[number - 1]]


def check_tag(volumes: list[Volume], tag: str, label: str = "series") -> None:
    """Raise a one-line ``ValueError`` when an acquisition lacks ``tag`` (e.g. EchoTime)."""
    missing = [v for v in volumes if getattr(v, _VOLUME_FIELDS[tag]) is None]
    cycle = [unknown_cycle(v) for v in missing if tag == "RepetitionTime" and unknown_cycle(v)]
    if cycle:
        raise ValueError(f"{label}: {cycle[0]}")
    if missing:
        hint = TAG_HINTS.get(tag)
        how = f"; give the value with {hint}" if hint else ""
        raise ValueError(f"{label}: {len(missing)} of {len(volumes)} acquisitions have no {tag} "
                         f"{TAG_CODES[tag]} tag{how}")


def _read_file(path: Path):
    """The whole dataset, pixels decoded; a one-line ``ValueError`` naming the file if
    pydicom fails, reaches the end of the file early, or finds no DICOM object."""
    import warnings

    import pydicom

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = pydicom.dcmread(str(path), force=True)
            _name_transfer_syntax(ds)
            if "PixelData" in ds:
                ds.pixel_array  # decode now, so that a truncated file is named here
        early_end = [w for w in caught if "end of file" in str(w.message).lower()]
        if early_end:
            raise ValueError(first_line(early_end[0].message))
        sop = str(getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", "")
                  or ds.get("SOPClassUID", ""))
        if not sop:
            raise ValueError("no SOP class: not a DICOM object")
        if sop in _IMAGE_SOP_CLASSES and "PixelData" not in ds:
            raise ValueError("an image without pixel data: is the file truncated?")
    except Exception as exc:  # any failure of the reader is the file's fault
        raise ValueError(f"{path.name}: not a readable DICOM file ({first_line(exc)})") from None
    return ds


# ----------------------------------------------------------------------------- enhanced images

#: Functional groups of an enhanced (multi-frame) image, and the attributes of each that a
#: frame carries as a classic single-frame image does.
_FRAME_GROUPS = {
    "PlanePositionSequence": ("ImagePositionPatient",),
    "PlaneOrientationSequence": ("ImageOrientationPatient",),
    "PixelMeasuresSequence": ("PixelSpacing", "SliceThickness", "SpacingBetweenSlices"),
    "MRTimingAndRelatedParametersSequence": ("RepetitionTime", "FlipAngle", "EchoTrainLength"),
    "PixelValueTransformationSequence": ("RescaleSlope", "RescaleIntercept"),
}
#: Enhanced images' EchoPulseSequence as the classic ScanningSequence codes.
_PULSE_CODES = {"SPIN": ["SE"], "GRADIENT": ["GR"], "BOTH": ["SE", "GR"]}
#: Elements of an enhanced image that its frames do not take as they are.
_MULTI_FRAME_ONLY = ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence", "PixelData",
                     "NumberOfFrames", "FrameIncrementPointer")


def frames(ds, name: str = "file") -> list:
    """The frames of an enhanced (multi-frame) image as classic single-frame datasets, each
    with the attributes its functional groups (its own, else the shared ones) give:
    position, orientation, pixel spacing, EchoTime (EffectiveEchoTime), RepetitionTime,
    FlipAngle, InversionTime, rescale (and Philips' private scale slope), ImageType
    (FrameType), and ScanningSequence from EchoPulseSequence and InversionRecovery; a
    single-frame image as it is. A one-line
    ``ValueError`` naming ``name`` where the groups are missing."""
    import copy

    from pydicom.dataset import Dataset
    from pydicom.uid import ExplicitVRLittleEndian

    count = int(_number(ds, "NumberOfFrames") or 1)
    if count <= 1 and "PerFrameFunctionalGroupsSequence" not in ds:
        return [ds]
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is None or len(per_frame) != count:
        raise ValueError(f"{name}: a multi-frame image without a functional group per frame: its frames "
                         "cannot be placed in space")
    shared = (ds.get("SharedFunctionalGroupsSequence") or [Dataset()])[0]
    pixels = np.asarray(ds.pixel_array)
    if pixels.size != count * int(ds.Rows) * int(ds.Columns):
        raise ValueError(f"{name}: its pixels ({'x'.join(map(str, pixels.shape))}) are not {count} grey "
                         f"images of {ds.Rows}x{ds.Columns}")
    pixels = pixels.reshape(count, int(ds.Rows), int(ds.Columns))
    base = Dataset()
    for element in ds:
        if element.keyword not in _MULTI_FRAME_ONLY:
            base.add(copy.deepcopy(element))
    meta = copy.deepcopy(ds.file_meta)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = []
    for i, groups in enumerate(per_frame):
        frame = copy.deepcopy(base)  # each frame's own elements: setting one must not set another's
        frame.file_meta = meta

        def item(group):
            for source in (groups, shared):
                if group in source and len(source[group].value):
                    return source[group].value[0]
            return None

        for group, keywords in _FRAME_GROUPS.items():
            found = item(group)
            for keyword in keywords:
                if found is not None and keyword in found:
                    setattr(frame, keyword, found[keyword].value)
        echo, modifier, kind = item("MREchoSequence"), item("MRModifierSequence"), item("MRImageFrameTypeSequence")
        if echo is not None and "EffectiveEchoTime" in echo:
            frame.EchoTime = echo.EffectiveEchoTime
        if modifier is not None and _as_list(modifier.get("InversionTimes")):
            frame.InversionTime = _as_list(modifier.InversionTimes)[0]
        if kind is not None and "FrameType" in kind:
            frame.ImageType = kind.FrameType
        private = item(_PHILIPS_FRAME_GROUP)
        if private is not None and _PHILIPS_SCALE_SLOPE in private:
            frame.add(copy.deepcopy(private[_PHILIPS_SCALE_SLOPE]))
        if "ScanningSequence" not in frame:
            codes = list(_PULSE_CODES.get(str(ds.get("EchoPulseSequence", "")).strip().upper(), []))
            if str(ds.get("InversionRecovery", "")).strip().upper() == "YES" or "InversionTime" in frame:
                codes.append("IR")
            if codes:
                frame.ScanningSequence = codes if len(codes) > 1 else codes[0]
        frame.PixelData = np.ascontiguousarray(pixels[i]).tobytes()
        out.append(frame)
    return out


def _name_transfer_syntax(ds) -> None:
    """A file without file meta (no preamble) is uncompressed; name the encoding pydicom read
    it in, which its pixel decoder asks for."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return
    implicit, little = ds.original_encoding
    ds.file_meta = meta if meta is not None else FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit else
                                      ExplicitVRLittleEndian if little else ExplicitVRBigEndian)


def _is_image(ds) -> bool:
    sop = str(getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", ""))
    return "PixelData" in ds and sop != _DICOMDIR_SOP


def _number(ds, tag: str, digits: int = 3) -> float | None:
    """A numeric tag's (first) value, rounded; None when absent, empty or not a number."""
    values = _as_list(ds.get(tag))
    try:
        number = float(values[0])
    except (TypeError, ValueError, IndexError):
        return None
    return round(number, digits) if np.isfinite(number) else None


def _acquisition_key(ds) -> tuple:
    return (str(ds.get("SeriesInstanceUID", "")), *(_number(ds, t) for t in _VOLUME_FIELDS),
            tuple(str(v) for v in _as_list(ds.get("ImageType"))), _echo_number(ds))


def _echo_number(ds) -> int | None:
    """EchoNumbers (0018,0086) where EchoTime is absent (an anonymized series, say): what
    still tells the echoes of a multi-echo series apart; else None."""
    if _number(ds, "EchoTime") is not None:
        return None
    number = _number(ds, "EchoNumbers")
    return None if number is None else int(number)


def _as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    try:
        return list(value)
    except TypeError:
        return [value]


def sequence_name(ds) -> str | None:
    """The package's sequence name for a dataset's ScanningSequence, SequenceVariant and
    InversionTime: :func:`~napari_mr_reparam.sidecars.sequence_of`, the rule BIDS sidecars
    share (GR -> ``gradient_echo``, ``mprage`` where magnetization-prepared; IR or an
    InversionTime -> ``inversion_recovery``; SE -> ``spin_echo``; else None). A double
    inversion recovery this package wrote names itself in SequenceName."""
    from .dicom_export import DOUBLE_INVERSION_NAME

    if str(ds.get("SequenceName", "")) == DOUBLE_INVERSION_NAME:
        return "double_inversion_recovery"
    inverted = (_number(ds, "InversionTime") or 0) > 0
    return sequence_of(_as_list(ds.get("ScanningSequence")), _as_list(ds.get("SequenceVariant")), inverted)


def unknown_cycle(volume: Volume) -> str | None:
    """Why an MPRAGE-type volume has no TR (:func:`~napari_mr_reparam.sidecars.mprage_cycle`),
    with how to give it; None for any other volume."""
    readout = (volume.extra or {}).get("readout_tr_ms")
    if volume.tr_ms is not None or readout is None:
        return None
    siemens = "SIEMENS" in str((volume.extra or {}).get("manufacturer") or "").upper()
    if siemens and readout <= 10:  # Siemens store the cycle there: a time written in seconds
        return (f"its RepetitionTime tag ({readout:g}) can only be seconds: Siemens store the time from one "
                f"inversion to the next there; did you mean {readout * 1000:g} ms? give it with --input-tr "
                f"{readout * 1000:g} (Input TR in the widget)")
    return (f"its RepetitionTime tag ({readout:g} ms) is the readout's pulse spacing of an MPRAGE-type "
            "series; the time from one inversion to the next is not in the standard DICOM tags: give "
            "it with --input-tr MS (Input TR in the widget; typically 2000-3000 ms)")


def describe(volume: Volume) -> str:
    """A short label of an acquisition, e.g. ``'TE 10 / TR 2000 ms, TI 50 ms'``."""
    def ms(v):
        return "?" if v is None else f"{v:g}"

    echo = (volume.extra or {}).get("echo_number")
    text = f"TE {ms(volume.te_ms)}{f' (echo {echo})' if echo is not None else ''} / TR {ms(volume.tr_ms)} ms"
    if volume.ti_ms is not None:
        text += f", TI {volume.ti_ms:g} ms"
    elif (volume.extra or {}).get("sequence") in ("inversion_recovery", "mprage"):  # its TI not in the tags
        text += ", TI ?"
    if volume.flip_deg is not None and volume.extra.get("sequence") in ("gradient_echo", None):
        text += f", flip {volume.flip_deg:g}°"
    return text


def _acquisition_volume(label: str, members: list) -> Volume:
    import dicom_numpy
    import nibabel as nib

    first_file, first = members[0]
    params = {field: _number(first, tag) for tag, field in _VOLUME_FIELDS.items()}
    sequence = sequence_name(first)
    readout = None
    if sequence == "mprage":
        params["tr_ms"], readout = mprage_cycle(params["tr_ms"], params["ti_ms"])
    stub = Volume(np.empty(0), **params, extra={"sequence": sequence, "echo_number": _echo_number(first)})
    where = f"{label} ({describe(stub)})"
    for f, ds in members:
        lacking = [t for t in _GEOMETRY_TAGS if t not in ds]
        if lacking:
            raise ValueError(f"{f.name}: no {lacking[0]} tag: the image cannot be placed in space")
    datasets = [ds for _, ds in members]
    _refuse_mixed_orientation(where, members)
    name_of = {id(ds): f.name for f, ds in members}
    try:
        datasets = dicom_numpy.sort_by_slice_position(datasets)
        names = [name_of[id(ds)] for ds in datasets]
        positions = np.array([_along_normal(ds) for ds in datasets])
        _refuse_one_position(positions, names)
        whole = _whole_stored_values(datasets, label)  # before decoding: which bits are the values
        voxels, ijk_to_lps = _combined(datasets, positions, names)
    except (dicom_numpy.DicomImportException, ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{where}: the images do not form one volume "
                         f"({first_line(exc)})") from None
    factors = _philips_factors(datasets)
    data = np.asarray(voxels, np.float32) / factors[:, None, None]
    data, inverted = _as_monochrome2(data, first, label)
    data, notices = _as_magnitude(data, first, label)
    notices = whole + inverted + notices
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(ijk_to_lps, np.float64)  # LPS -> RAS
    slice_step = _slice_step(datasets)
    # dicom-numpy steps by the median spacing from the first slice; slices a scanner placed a
    # little unevenly (within its 10 %) get the step that puts the first and the last where
    # their tags say, and one slice its thickness
    affine[:3, 2] = _unit_normal(affine) * slice_step
    row_mm, col_mm = (float(v) for v in datasets[0].PixelSpacing)
    shape_ijk = (data.shape[2], data.shape[1], data.shape[0])
    header = nib.Nifti1Header()
    header.set_data_shape(shape_ijk)
    header.set_data_dtype(np.float32)
    header.set_zooms((col_mm, row_mm, slice_step))
    header.set_xyzt_units("mm")
    header.set_qform(affine, code=1)
    header.set_sform(affine, code=1)
    saturation = _saturation(datasets, data.shape)
    ornt, spacing = _NATIVE_ORNT.copy(), (slice_step, row_mm, col_mm)
    if _volumetric(first, (col_mm, row_mm, slice_step), len(datasets)):  # laid out as axial slices, as a NIfTI of it is
        ornt = ras_orientation(affine)
        spacing = stack_spacing((col_mm, row_mm, slice_step), ornt)
        data = file_to_stack(data.transpose(2, 1, 0), ornt)
        saturation = {k: file_to_stack(v.transpose(2, 1, 0), ornt) for k, v in saturation.items()}
    return Volume(
        data=np.ascontiguousarray(data), spacing=spacing, affine=affine,
        header=header, ornt=ornt, original_shape=shape_ijk, kind="dicom",
        source=str(first_file.parent), sequence=sequence, **params,
        extra={"sequence": sequence, "readout_tr_ms": readout, "field_strength_t": _number(first, "MagneticFieldStrength"),
               "manufacturer": str(first.get("Manufacturer", "")) or None,
               "series_description": str(first.get("SeriesDescription", "")) or None,
               "image_type": [str(v) for v in _as_list(first.get("ImageType"))], **mapped_quantity(first),
               "files": [str(f) for f, _ in members], "series": label, "echo_number": _echo_number(first),
               "series_uid": str(first.get("SeriesInstanceUID", "")), "notices": notices,
               "display_scale": display_scale(factors),
               "patient": str(first.get("PatientID", "") or "").strip() or None,
               "frame_of_reference": str(first.get("FrameOfReferenceUID", "") or "").strip() or None,
               **{k: np.ascontiguousarray(v) for k, v in saturation.items()}},
    )


def mapped_quantity(ds) -> dict:
    """``{"quantity": ..., "unit": ...}`` of a map whose Real World Value Mapping names what
    its values are and in which units (``T1``, ``ms``: a map this plugin or a scanner's
    parametric-map software wrote), or, for a map this plugin wrote in units without a UCUM
    code (PD), whose DerivationDescription says so; {} for any other image."""
    for item in _as_list(ds.get("RealWorldValueMappingSequence")):
        label = str(item.get("LUTLabel", "") or "").strip()
        codes = _as_list(item.get("MeasurementUnitsCodeSequence"))
        unit = str(codes[0].get("CodeValue", "") or "").strip() if codes else ""
        if label:
            return {"quantity": label, "unit": unit or None}
    if str(ds.get("Manufacturer", "") or "") == "napari-mr-reparam":  # a map in units UCUM has no code for (PD)
        import re

        said = re.search(r": (\w+) in (.+?)(?:; from series |$)", str(ds.get("DerivationDescription", "") or ""))
        if said:
            return {"quantity": said.group(1), "unit": said.group(2)}
    return {}


#: ImageType's third value: what a voxel holds. Magnitude (M) is what the models read; a
#: real-valued image (R: an inversion recovery's signed one) is read as its magnitude.
_IMAGE_VALUES = {"P": "phase", "I": "imaginary"}


def _whole_stored_values(datasets, where: str) -> list[str]:
    """Uncompressed unsigned images whose stored values exceed their BitsStored (a scanner
    that wrote 12 bits but stored its brightest voxels whole) are read whole, as stored,
    rather than with the bits above BitsStored dropped (which turns the brightest voxels
    dark), unless an overlay is declared in those bits; a notice says so (empty else)."""
    count, top, bits = 0, 0, None
    for ds in datasets:
        allocated, stored = int(ds.get("BitsAllocated", 0) or 0), int(ds.get("BitsStored", 0) or 0)
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        if (not 0 < stored < allocated or allocated not in (8, 16) or int(ds.get("PixelRepresentation", 0) or 0)
                or syntax is None or syntax.is_compressed or "PixelData" not in ds or _overlay_in_pixels(ds)):
            continue
        raw = np.frombuffer(ds.PixelData, np.uint8 if allocated == 8 else np.dtype("<u2"))
        if raw.size and int(raw.max()) >> stored:
            count, top, bits = count + 1, max(top, int(raw.max())), stored
            ds.BitsStored, ds.HighBit = allocated, allocated - 1
    if not count:
        return []
    images = f"{count} images store" if count > 1 else "1 image stores"
    return [f"{where}: {images} values above their BitsStored ({bits} bits), up to {top}: read as stored, whole "
            "(with those bits dropped the brightest voxels would read dark)"]


def _overlay_in_pixels(ds) -> bool:
    """Whether ``ds`` declares an overlay plane in its pixel data's bits (retired, but
    possible: an OverlayBitPosition above 0 without OverlayData)."""
    for group in range(0x6000, 0x6020, 2):
        position = ds.get((group, 0x0102))
        if position is not None and int(position.value or 0) > 0 and (group, 0x3000) not in ds:
            return True
    return False


def _as_monochrome2(data: np.ndarray, ds, where: str) -> tuple[np.ndarray, list[str]]:
    """A MONOCHROME1 image (its lowest value shown white) as the signal MONOCHROME2 would
    hold, the brightest shown highest: the volume's maximum less each value, said in a
    notice; else ``data`` as it is."""
    if str(ds.get("PhotometricInterpretation", "")).strip().upper() != "MONOCHROME1":
        return data, []
    top = float(np.nanmax(data)) if data.size else 0.0
    return top - data, [f"{where}: MONOCHROME1 (its lowest value shown white): read as its maximum ({top:g}) "
                        "less each value, so that bright tissue reads high, as the models take it"]


def _as_magnitude(data: np.ndarray, ds, where: str) -> tuple[np.ndarray, list[str]]:
    """``data`` as magnitudes, with the notices of how it was read: a real-valued image's
    absolute value (said), a phase or imaginary one refused in one line (``where``: the
    series' name in both)."""
    kind = (_image_type(ds) + ["", "", ""])[2]
    if kind in _IMAGE_VALUES:
        raise ValueError(f"{where}: a {_IMAGE_VALUES[kind]} image (ImageType {kind}); the models read magnitude "
                         "images: choose the magnitude series")
    if kind == "R" and float(np.nanmin(data)) < 0:
        return np.abs(data), [f"{where}: real-valued (signed) voxel values; their magnitude is read"]
    return data, []


def _refuse_mixed_orientation(where: str, members: list) -> None:
    """A one-line ``ValueError`` where the images of one acquisition lie in different planes
    (ImageOrientationPatient): they cannot be stacked into one volume."""
    from collections import Counter

    planes = [tuple(np.round(np.asarray(ds.ImageOrientationPatient, np.float64), 3)) for _, ds in members]
    common = Counter(planes).most_common(1)[0][0]
    odd = sorted(f.name for (f, _), plane in zip(members, planes) if not np.allclose(plane, common, atol=2e-3))
    if odd:
        more = f" and {len(odd) - 1} more" if len(odd) > 1 else ""
        lie = "lie" if more else "lies"
        raise ValueError(f"{where}: the images do not form one volume ({odd[0]}{more} {lie} in another plane "
                         "(ImageOrientationPatient) than the rest)")


def _refuse_one_position(positions: np.ndarray, names: list[str]) -> None:
    """A ``ValueError`` naming the two files (or one file's two frames) of the first pair of
    sorted slices at one position: two different images of one place (copies of one image
    are left out before, :func:`_without_copies`)."""
    same = np.flatnonzero(np.diff(positions) < 1e-3)
    if same.size:
        a, b = names[same[0]], names[same[0] + 1]
        which = f"two frames of {a}" if a == b else f"{a} and {b}"
        more = f"; {same.size - 1} more such pair{'s' if same.size > 2 else ''}" if same.size > 1 else ""
        raise ValueError(f"two images at the same slice position: {which}{more}")


def _uneven_spacing(datasets, positions: np.ndarray, names: list[str]) -> str:
    """Where sorted slices are unevenly spaced, in one line: the step furthest from the usual
    one (the most common), between which files and where along the scanner axis nearest the
    slice normal (the two files' ImagePositionPatient there, as their tags hold it), and
    whether whole slices are missing there."""
    steps = np.diff(positions)
    values, counts = np.unique(np.round(steps, 2), return_counts=True)
    usual = float(values[np.argmax(counts)])
    k = int(np.argmax(np.abs(steps - usual)))
    step, slices = float(steps[k]), int(round(steps[k] / usual)) - 1 if usual > 0 else 0
    o = np.asarray(datasets[0].ImageOrientationPatient, float)
    axis = int(np.argmax(np.abs(np.cross(o[:3], o[3:]))))
    at = [float(ds.ImagePositionPatient[axis]) for ds in datasets[k:k + 2]]  # as the tags hold it (LPS)
    missing = slices >= 1 and abs(step - (slices + 1) * usual) <= 0.1 * usual
    what = ("a slice is missing" if slices == 1 else f"{slices} slices are missing") if missing \
        else "the slices are unevenly spaced"
    others = int(np.count_nonzero(np.abs(steps - usual) > 0.1 * abs(usual))) - 1
    return (f"{what} between {names[k]} and {names[k + 1]} (ImagePositionPatient {'xyz'[axis]} {at[0]:g} and "
            f"{at[1]:g} mm): "
            f"a step of {step:.3g} mm where the others are {usual:g} mm"
            + (f"; {others} more uneven step{'s' if others > 1 else ''}" if others > 0 else ""))


def _combined(datasets, positions, names):
    """dicom-numpy's voxels and voxel -> LPS affine of sorted slices (``names``: their files).
    What it logs (slice spacings it finds uneven, direction cosines not quite orthogonal) is
    kept off the terminal; slices too unevenly spaced to be one grid are a ``ValueError``
    saying where (:func:`_uneven_spacing`)."""
    import logging

    import dicom_numpy

    logger, caught = logging.getLogger("dicom_numpy"), logging.NullHandler()  # not Python's last resort
    propagate, logger.propagate = logger.propagate, False
    logger.addHandler(caught)
    _one_pixel_spacing(datasets)
    try:
        return dicom_numpy.combine_slices(datasets, rescale=True, skip_sorting=True, c_order_axes=True)
    except dicom_numpy.DicomImportException as exc:
        if "missing slices" not in str(exc):
            raise
        raise ValueError(_uneven_spacing(datasets, positions, names)) from None
    finally:
        logger.removeHandler(caught)
        logger.propagate = propagate


#: PixelSpacing values of one series' images that differ by at most this share are one
#: spacing written to other precisions (an anonymizer or a PACS re-encoding its decimals).
SPACING_ROUNDING = 1e-5


def _one_pixel_spacing(datasets) -> None:
    """Give every image the first's PixelSpacing where theirs differ from it only by
    :data:`SPACING_ROUNDING` (dicom-numpy compares them exactly); spacings further apart
    are left for it to refuse."""
    first = np.asarray(datasets[0].PixelSpacing, np.float64)
    for ds in datasets[1:]:
        spacing = np.asarray(ds.PixelSpacing, np.float64)
        if spacing.shape == first.shape and not np.array_equal(spacing, first) \
                and np.allclose(spacing, first, rtol=SPACING_ROUNDING, atol=0):
            ds.PixelSpacing = datasets[0].PixelSpacing


#: Voxels no more than this many times longer along one axis than another count as a
#: volume's (3-D) rather than a stack of 2-D slices' (the rule NIfTI files take too).
ISOTROPIC_RATIO = THICK_RATIO
#: Fewest slices of a volume laid out again as axial slices (the rule NIfTI files take too).
MIN_VOLUME_SLICES = FEW_SLICES


def _volumetric(ds, voxel_mm, slices: int) -> bool:
    """A 3-D acquisition (MRAcquisitionType 3D) or one of near-isotropic voxels, of at least
    :data:`MIN_VOLUME_SLICES` slices: its volume is laid out as axial slices whatever plane
    it was acquired in (the networks read axial slices); a 2-D acquisition keeps its
    acquired slices, each sharp in its plane."""
    if slices < MIN_VOLUME_SLICES:
        return False
    kind = str(ds.get("MRAcquisitionType", "")).strip().upper()
    if kind in ("2D", "3D"):
        return kind == "3D"
    sizes = [float(v) for v in voxel_mm]
    return min(sizes) > 0 and max(sizes) / min(sizes) <= ISOTROPIC_RATIO


def _saturation(datasets, shape) -> dict:
    """``{"saturated": mask}`` where stored values sit at the top of their range (BitsStored,
    signed or not): the scanner clipped them. Empty where none did."""
    masks = []
    for ds in datasets:
        try:
            bits = int(ds.BitsStored)
            top = (1 << (bits - 1)) - 1 if int(ds.get("PixelRepresentation", 0) or 0) else (1 << bits) - 1
            masks.append(np.asarray(ds.pixel_array) >= top)
        except (AttributeError, TypeError, ValueError):
            return {}
    mask = np.stack(masks)
    return {"saturated": mask} if mask.shape == tuple(shape) and mask.any() else {}


def _along_normal(ds) -> float:
    o = np.asarray(ds.ImageOrientationPatient, float)
    return float(np.dot(np.cross(o[:3], o[3:]), np.asarray(ds.ImagePositionPatient, float)))


def _unit_normal(affine: np.ndarray) -> np.ndarray:
    normal = np.cross(affine[:3, 0], affine[:3, 1])
    return normal / max(np.linalg.norm(normal), 1e-12)


def _slice_step(datasets) -> float:
    """Distance between slice centres (mm) of sorted slices: the first to the last over the
    steps between them (each end where its tags put it, slices placed a little unevenly
    included); a single slice: its thickness."""
    if len(datasets) > 1:
        ends = [_along_normal(ds) for ds in (datasets[0], datasets[-1])]
        return float((ends[1] - ends[0]) / (len(datasets) - 1))
    for tag in ("SliceThickness", "SpacingBetweenSlices"):
        value = _number(datasets[0], tag, 6)
        if value is not None and value > 0:
            return value
    return 1.0


def display_scale(factors: np.ndarray) -> float:
    """The factor from a volume's values back to the display values (stored x RescaleSlope +
    RescaleIntercept) of its slices, whose values were divided by ``factors``
    (:func:`_philips_factors`): their common factor, their median where slices differ (a
    render's values, comparable across slices, are taken back on one scale); 1 for a series
    read as it is displayed."""
    return float(np.median(factors)) if len(factors) else 1.0


def _philips_factors(datasets) -> np.ndarray:
    """Per slice, RescaleSlope x Philips scale slope where the latter is present, else 1."""
    factors = []
    for ds in datasets:
        factor = 1.0
        if _PHILIPS_SCALE_SLOPE in ds and "PHILIPS" in str(ds.get("Manufacturer", "")).upper():
            try:
                scale = float(ds[_PHILIPS_SCALE_SLOPE].value)
                slope = float(ds.get("RescaleSlope", 1) or 1)
            except (TypeError, ValueError):
                scale = slope = 1.0
            if np.isfinite(scale * slope) and scale * slope > 0:
                factor = scale * slope
        factors.append(factor)
    return np.asarray(factors, np.float32)

