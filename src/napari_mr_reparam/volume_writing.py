"""Writing volumes: a stack as NIfTI (in the input's voxel order, with its affine and
header, and a BIDS sidecar), NumPy, TIFF, PNG or a DICOM series (:mod:`.dicom_export`),
atomically; and the command line's checks of where its outputs go."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Callable

import numpy as np

from .file_types import MGH_SUFFIXES, NIFTI_SUFFIXES, suffix_of
from .io import Volume
from .orientation import ORIENTED_KINDS, check_fits, stack_to_ras, to_original
from .sidecars import derivative_dataset, derivative_description, prediction_sidecar, sidecar_path, sidecar_sequence

#: ``.dcm`` is a DICOM series: a folder of that name, one file per slice
#: (:mod:`.dicom_export`).
OUTPUT_SUFFIXES = (".nii", ".nii.gz", ".npy", ".tif", ".tiff", ".png", ".dcm")


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
    it is an existing file or names a file type (``maps.nii.gz``), an ``OSError`` where
    nothing can be written there (:func:`refuse_unwritable`)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path}: exists and is not a folder; -o names the output folder here")
    if not path.exists() and suffix_of(path) in OUTPUT_SUFFIXES:
        raise ValueError(f"{path}: -o names the output folder here (several files are written), "
                         "not a file")
    refuse_unwritable(path)
    return path


def refuse_unwritable(path: str | Path) -> None:
    """A one-line ``OSError`` where nothing can be written at ``path``: its nearest folder
    that exists is not writable (a read-only disk, no permission), said before any work."""
    folder = Path(path).absolute()
    if folder.exists() and not folder.is_dir():  # a file to replace (--overwrite): its folder is written
        folder = folder.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if folder.is_dir() and not os.access(folder, os.W_OK):
        raise OSError(f"cannot write in {folder} (read-only, or no permission): choose another -o")


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
        else a folder (:func:`check_output_folder`; a name that ends in a slash, or an
        existing folder, is one whatever its name, but for ``.dcm``: one DICOM series,
        written as a folder of that name).
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
    refuse_file_as_folder(out, "-o ")
    refuse_unwritable(out)
    folder = str(output).endswith(("/", os.sep)) or out.is_dir()
    if suffix_of(out) == ".dcm" or (suffix_of(out) and not folder):  # a DICOM series' folder is one output
        if len(names) != 1:
            raise ValueError(f"{several} need an output folder for -o, not a file ({out.name}): give a folder")
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


def refuse_file_as_folder(path: str | Path, said: str = "") -> None:
    """A one-line ``ValueError`` when a folder ``path`` would be written in is an existing
    file (``afile/x.nii.gz`` where ``afile`` is one); ``said`` leads the message (``-o ``)."""
    path = Path(path)
    for folder in reversed(path.parents):
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"{said}{path}: {folder} is a file, not a folder; choose another output path")


def written_files(path: str | Path) -> list[Path]:
    """The files :func:`save_volume` writes for ``path``: the path, and for NIfTI its BIDS sidecar."""
    path = Path(path)
    return [path, sidecar_path(path)] if suffix_of(path) in NIFTI_SUFFIXES else [path]


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
        for target in written_files(path):
            if target.exists():
                raise FileExistsError(f"{target} exists; pass --overwrite to replace it")


def save_volume(path: str | Path, data_zyx: np.ndarray, like: Volume | None = None, *,
                te_ms: float | None = None, tr_ms: float | None = None, model: str | None = None,
                extra: dict | None = None, overwrite: bool = False, keep_sidecar: bool = False,
                weights_sha256: str | None = None) -> Path:
    """Write a stack, by extension, atomically; return the path written.

    Parameters
    ----------
    path : str or Path
        ``.nii``/``.nii.gz`` (float32, or uint8 for uint8 data: a mask of bits; with ``like``
        from a NIfTI file or a DICOM series:
        in its voxel order, with its affine and header, which
        :func:`~napari_mr_reparam.io.load_volume` reads back as the same stack, axial
        slices or a 2-D acquisition's coronal or sagittal ones where its grid shows them;
        otherwise an RAS+ grid with ``like``'s spacing or 1 mm, :func:`_file_order`),
        ``.npy`` (float32 zyx), ``.tif``/``.tiff`` (float32 stack), ``.png`` (one
        slice, scaled to 8 bits by its maximum) or ``.dcm`` (a DICOM series: a folder of
        that name, one file per slice, :func:`~napari_mr_reparam.dicom_export.write_series`;
        from a DICOM input, in its patient's study and, for an image, in its display values:
        :func:`_display_scale`).
    data_zyx : array (z, y, x) or (y, x)
    like : Volume, optional
        The volume the data derive from (same stack shape).
    te_ms, tr_ms, model, extra
        For the BIDS sidecar written beside NIfTI outputs (times given in ms, stored in
        seconds; a time that can only be seconds is a one-line ``ValueError``; no
        ``Model`` when ``model`` is None); a DICOM series takes them into its tags.
    weights_sha256 : str, optional
        The sha256 of the weights file the model read (``Reparameterizer.info.sha256``):
        the sidecar's ``GeneratedBy`` records it as ``WeightsSHA256``, a DICOM series'
        DerivationDescription as ``weights sha256``, so that an output names the exact
        weights that made it.
        :func:`input_record` makes the ``extra`` that records the input's acquisition;
        :func:`~napari_mr_reparam.sidecars.acquisition_sidecar` (``sequence, ti_ms,
        flip_deg, ti2_ms``) the fields of a target beyond TE and TR (an inversion
        recovery's ``InversionTime``, a gradient echo's ``FlipAngle``, its sequence), which a
        FLAIR's sidecar needs to read back as one.
    overwrite : bool
        Replace existing files (the data file and its sidecar); otherwise
        ``FileExistsError``.
    keep_sidecar : bool
        Replacing a NIfTI file, keep the fields of its sidecar that describe no image's
        acquisition (:func:`kept_sidecar`): napari's writer, whose Save dialog asks about
        the data file only.
    """
    path = Path(path)
    suffix = check_output_type(path)
    _refuse_bad_times(te_ms, tr_ms, extra)
    refuse_file_as_folder(path)
    data = np.asarray(data_zyx)
    if not (suffix in NIFTI_SUFFIXES and data.dtype == np.uint8):  # a mask of bits keeps its integers in NIfTI
        data = data.astype(np.float32, copy=False)
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3:
        raise ValueError(f"{path.name}: expected a (z, y, x) stack or a 2-D image, got shape {data.shape}")
    if _placed(like):
        check_fits(like, data, path)  # named by the output, before any temporary file exists
    if suffix == ".png" and data.shape[0] != 1:
        raise ValueError(f"{path.name}: a PNG holds one slice, the data have {data.shape[0]}; "
                         "use .nii.gz, .tif or .npy")
    if suffix == ".dcm":
        from .dicom_export import write_series

        voxels, affine = _file_order(data, like)
        voxels = voxels * _display_scale(like, extra)
        files = like.extra.get("files") if like is not None and like.kind == "dicom" else None
        origin = str(like.source) if like is not None and like.source else None  # one study per input
        try:
            write_series(path, voxels, affine, source_files=files, te_ms=te_ms, tr_ms=tr_ms, model=model,
                         extra=extra, overwrite=overwrite, origin=origin, weights_sha256=weights_sha256)
        except OSError as exc:
            raise cannot_write(path, exc) from None
        describe_derivative(path)
        return path
    jobs = [(path, lambda tmp: _WRITERS[suffix](tmp, data, like))]
    if suffix in NIFTI_SUFFIXES:
        meta = prediction_sidecar(te_ms, tr_ms, model, extra, weights_sha256)
        if keep_sidecar and path.exists():
            meta = kept_sidecar(sidecar_path(path), meta)
        jobs.append((sidecar_path(path), lambda tmp: tmp.write_text(json.dumps(meta, indent=2) + "\n")))
    if not overwrite:
        for target, _ in jobs:
            if target.exists():
                raise FileExistsError(f"{target} exists; overwrite=True replaces it (--overwrite on the "
                                      "command line)")
    _write_atomically(jobs)
    describe_derivative(path)
    return path


def describe_derivative(path: str | Path) -> Path | None:
    """An output written into a BIDS derivative dataset (``derivatives/NAME/...``) whose
    ``dataset_description.json`` is not there yet gets one
    (:func:`~napari_mr_reparam.sidecars.derivative_description`), so that BIDS tools take
    the folder for the dataset it is; an existing description is never replaced. Returns
    the file written, or None."""
    dataset = derivative_dataset(path)
    if dataset is None or (dataset / "dataset_description.json").exists():
        return None
    target = dataset / "dataset_description.json"
    text = json.dumps(derivative_description(dataset.name), indent=2) + "\n"
    _write_atomically([(target, lambda tmp: tmp.write_text(text))])
    return target


def _display_scale(like: Volume | None, extra: dict | None) -> float:
    """What an image's values are multiplied by when written as DICOM: ``like``'s
    ``extra["display_scale"]`` (a Philips series is read in floating-point values, which its
    viewer displays x RescaleSlope x scale slope, :mod:`.dicom`), so a render shows as
    bright as the scan beside it; 1 for a map (``extra`` names a ``Quantity``: its own units)
    and any other input. Other outputs keep the values as they are."""
    if like is None or (extra or {}).get("Quantity"):
        return 1.0
    return float((like.extra or {}).get("display_scale", 1.0))


#: The sidecar fields of an image's acquisition and of what made it: those the writers
#: write, and those the reader names the sequence from (:func:`~napari_mr_reparam.sidecars.read_sidecar`).
ACQUISITION_FIELDS = ("EchoTime", "RepetitionTime", "InversionTime", "InversionTime2", "FlipAngle",
                      "ScanningSequence", "PulseSequenceType", "GeneratedBy", "Quantity", "Units", "Input",
                      "Inputs", "Preset")
#: The scanner's names of its sequence, which the reader reads it from where they are stated.
SEQUENCE_NAMES = ("SequenceVariant", "SequenceName", "PulseSequenceName")


def kept_sidecar(side: Path, meta: dict) -> dict:
    """``meta`` (a new sidecar's content) with the fields of the sidecar ``side`` (where it
    exists) that are not :data:`ACQUISITION_FIELDS`: a scanner's, a protocol's. Its
    :data:`SEQUENCE_NAMES` are kept only where they do not make ``meta``'s acquisition read
    as another sequence. A sidecar that is not a readable JSON object is a one-line
    ``ValueError``: its fields cannot be kept."""
    if not side.exists():
        return meta
    old = _json_object(side)
    if old is None:
        raise ValueError(f"{side.name} is not a readable BIDS sidecar, so its fields cannot be kept; "
                         "fix it or move it away first")
    merged = {**{k: v for k, v in old.items() if k not in ACQUISITION_FIELDS}, **meta}
    if sidecar_sequence(merged) != sidecar_sequence(meta):
        merged = {k: v for k, v in merged.items() if k not in SEQUENCE_NAMES}
    return merged


def _json_object(path: Path) -> dict | None:
    """The JSON object in the file ``path``; None where it holds none or cannot be read."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _refuse_bad_times(te_ms, tr_ms, extra: dict | None) -> None:
    """save_volume's times are ms: one that can only be seconds, or that
    :func:`~napari_mr_reparam.acquisition.validate_times` refuses (not positive, a TE not
    shorter than the TR), is a one-line ValueError (a gradient echo's TR may be a few ms,
    as :class:`~napari_mr_reparam.acquisition.Acquisition` allows)."""
    from .acquisition import validate_times
    from .units import refuse_seconds, seconds_checked_tr

    sequence = "gradient_echo" if (extra or {}).get("ScanningSequence") == "GR" else None
    refuse_seconds(te=te_ms, tr=seconds_checked_tr(tr_ms, sequence))
    validate_times(te_ms, tr_ms)


#: What :func:`input_record`'s times and angle are in.
INPUT_UNITS = "EchoTime, RepetitionTime and InversionTime in seconds (as BIDS); FlipAngle in degrees"


def input_record(acquisition, source: str | None, file: str | None = None, preset: str | None = None,
                 part: str | None = None) -> dict:
    """The sidecar field ``Input`` (for :func:`save_volume`'s ``extra``): the input's
    acquisition as the prediction used it (an
    :class:`~napari_mr_reparam.acquisition.Acquisition`; times stored in seconds, as the
    sidecar's own), where it came from (``source``: ``given``, ``BIDS sidecar``, ``DICOM
    tags``, ``given and BIDS sidecar``, ``guessed`` by the contrast classifier, or
    ``default``), the input preset it was read as, the input's file name and, for one
    acquisition of a DICOM series or 4-D file, which (``part``: ``SERIES_acq2``)."""
    from .sidecars import acquisition_sidecar
    from .units import ms_to_s

    record: dict = {"File": file} if file else {}
    if part:
        record["Acquisition"] = part
    record["EchoTime"] = round(float(ms_to_s(acquisition.te_ms)), 9)
    record["RepetitionTime"] = round(float(ms_to_s(acquisition.tr_ms)), 9)
    record.update(acquisition_sidecar(acquisition.sequence, _one(acquisition.ti_ms), _one(acquisition.flip_deg)))
    if source:
        record["Source"] = source
    if preset:
        record["Preset"] = preset
    record["Units"] = INPUT_UNITS
    return {"Input": record}


def _one(value):
    return None if value is None else float(value)


def _write_atomically(jobs: list[tuple[Path, Callable[[Path], None]]]) -> None:
    """Write every file to a temporary beside it, then move all into place; no partial files.
    A failure of the system (a read-only or full disk, no permission) is one line naming the
    output being written (:func:`cannot_write`), and no temporary file is left."""
    temps, placed = [], []
    target = jobs[0][0] if jobs else None
    try:
        for target, write in jobs:
            temps.append(_new_temp(target))
            write(Path(temps[-1]))
        for (target, _), tmp in zip(jobs, temps):
            os.replace(tmp, target)
            placed.append(target)
    except BaseException as exc:  # a failure, Ctrl-C or SIGTERM between the moves: no image without its sidecar
        if len(placed) < len(jobs):
            for done in placed:
                Path(done).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise cannot_write(target, exc) from None
        raise
    finally:
        for tmp in temps:
            if os.path.exists(tmp):
                os.unlink(tmp)


def cannot_write(path: str | Path, exc: OSError) -> OSError:
    """``exc``, an error of the system while writing the output ``path``, as one line naming
    ``path`` as given and the reason (``cannot write out/x.nii.gz: read-only file system``),
    not the temporary file it happened on; an ``OSError`` of this package's own (no
    ``errno``: a refusal with its own message) is returned as it is."""
    if exc.errno is None:
        return exc
    reason = exc.strerror or os.strerror(exc.errno)
    return OSError(f"cannot write {path}: {reason[:1].lower()}{reason[1:]}")


def _new_temp(target: Path) -> str:
    """Create an empty hidden file beside ``target`` (same extension, umask-respecting mode),
    named from the first 100 characters of its name: a name as long as a file system takes
    gets a temporary it takes too."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        tmp = target.with_name(f".{target.name[:100]}.{secrets.token_hex(4)}{suffix_of(target)}")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return str(tmp)
    raise FileExistsError(f"{target.name}: could not create a temporary file beside it")


def _write_nifti(path: Path, data: np.ndarray, like: Volume | None) -> None:
    import nibabel as nib

    voxels, affine = _file_order(data, like)
    if _placed(like):
        header = like.header.copy() if isinstance(like.header, nib.Nifti1Header) else None
        klass = nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
        img = klass(np.ascontiguousarray(voxels), affine, header)
        img.header.set_data_dtype(voxels.dtype)
        img.header.set_slope_inter(1.0, 0.0)
        img.header["cal_min"] = img.header["cal_max"] = 0
        codes = (int(header["qform_code"]), int(header["sform_code"])) if header is not None else (0, 0)
        if any(codes):  # the file's codes kept where its affine was changed (a one-slice file's slab)
            img.set_qform(affine, code=codes[0])
            img.set_sform(affine, code=codes[1])
    else:
        img = nib.Nifti1Image(np.ascontiguousarray(voxels), affine)
        img.header.set_xyzt_units("mm")
    nib.save(img, str(path))


def _placed(like: Volume | None) -> bool:
    """Whether ``like`` has a place in space (an affine and orientation) to write back to."""
    return like is not None and like.kind in ORIENTED_KINDS and like.ornt is not None and like.affine is not None


def _file_order(data: np.ndarray, like: Volume | None) -> tuple[np.ndarray, np.ndarray]:
    """A stack in voxel order (column, row, slice) with its affine to RAS (mm): the input
    file's where ``like`` has one (:func:`_placed`; :func:`save_volume` has checked that the
    data fit it), else an RAS+ grid of ``like``'s spacing (or
    1 mm), which :func:`~napari_mr_reparam.io.load_volume` reads back as the same stack,
    unless its x or y axis alone is of few or thick voxels: that grid reads as sagittal or
    coronal slices (:func:`~napari_mr_reparam.orientation.acquired_axis`)."""
    if _placed(like):
        return to_original(like, data), np.asarray(like.affine, float)
    dz, dy, dx = like.spacing if like is not None else (1.0, 1.0, 1.0)
    affine = np.diag([float(dx), float(dy), float(dz), 1.0])
    origin = (like.extra or {}).get("origin_mm") if like is not None else None
    if origin is not None:  # a layer's translate: its first voxel where the viewer shows it
        affine[:3, 3] = ras_origin(data.shape, affine, origin)
    return stack_to_ras(data), affine


def ras_origin(stack_shape, grid: np.ndarray, origin_mm) -> np.ndarray:
    """The translation of an RAS+ ``grid`` affine (no translation yet) that puts a stack's
    first voxel where :func:`~napari_mr_reparam._reader.stack_origin` reads ``origin_mm``
    (slice, row, column mm, a napari layer's ``translate``) back: each stack axis in the
    file runs along a world axis, forward or flipped."""
    from .orientation import axis_directions, ras_voxel_to_stack

    stack = grid @ np.linalg.inv(ras_voxel_to_stack(stack_shape))  # stack voxel -> mm, voxel 0 at `first`
    first = stack[:3, 3]
    return axis_directions(stack) @ np.asarray(origin_mm, float)[-3:] - first


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
