"""BIDS JSON sidecars: the ``<stem>.json`` beside a NIfTI file, with the acquisition's times,
flip angle and sequence; read into a :class:`~napari_mr_reparam.io.Volume`'s fields and
written beside NIfTI outputs (:mod:`.volume_writing`). In a BIDS dataset (a folder above
holding ``dataset_description.json``) a file's fields also come from the sidecars it
inherits (:func:`inherited_sidecars`: ``T2w.json`` at the dataset's top for every
``*_T2w.nii.gz``), its own winning.

Times in sidecars are BIDS seconds on disk and milliseconds in
:class:`~napari_mr_reparam.io.Volume`. The sequence is named by :func:`sequence_of`, which
the DICOM reader (:func:`~napari_mr_reparam.dicom.sequence_name`) shares, so a scan reads as
the same sequence from its DICOM files and from dcm2niix's sidecar of them. A double inversion recovery's second inversion time,
for which BIDS has no key, is written as ``InversionTime2`` (seconds, as ``InversionTime``);
it is not read back.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from .file_types import suffix_of
from .messages import first_line
from .units import ms_to_s, refuse_milliseconds, s_to_ms


def sidecar_path(path: str | Path) -> Path:
    """The BIDS sidecar beside ``path``: ``scan.nii.gz`` -> ``scan.json``."""
    path = Path(path)
    suffix = suffix_of(path)
    stem = path.name[: -len(suffix)] if suffix else path.name
    return path.with_name(stem + ".json")


def _entities(name: str) -> tuple[dict, str]:
    """A BIDS file name's key-value entities and its suffix: ``sub-01_echo-1_MESE`` ->
    ``({"sub": "01", "echo": "1"}, "MESE")``."""
    parts = name.split("_")
    pairs = dict(part.split("-", 1) for part in parts[:-1] if "-" in part)
    return pairs, parts[-1]


def inherited_sidecars(path: str | Path) -> list[Path]:
    """The sidecars a data file inherits by BIDS' inheritance principle, the farthest
    first: JSON files in the folders from the dataset's top (the nearest folder above that
    holds ``dataset_description.json``) down to the file's own, whose suffix is the file's
    and whose entities are all the file's (``T2w.json``, ``sub-01_T2w.json``,
    ``echo-1_MESE.json``), not the file's own sidecar. Empty outside a BIDS dataset, and in
    a derivative dataset (``derivatives/NAME/``) that holds no description of its own: it is
    a dataset of its own, whose files do not inherit the raw data's acquisitions (this
    package's outputs written there, say)."""
    path = Path(path).absolute()
    own = sidecar_path(path)
    folders = [path.parent, *path.parent.parents]
    top = next((i for i, f in enumerate(folders) if (f / "dataset_description.json").is_file()
                or f.parent.name == "derivatives"), None)  # a derivative dataset inherits nothing of the raw one
    if top is None or not (folders[top] / "dataset_description.json").is_file():
        return []
    entities, suffix = _entities(own.name[: -len(".json")])
    found = []
    for folder in reversed(folders[: top + 1]):
        for candidate in sorted(folder.glob(f"*{suffix}.json")):
            pairs, its_suffix = _entities(candidate.name[: -len(".json")])
            if candidate != own and its_suffix == suffix and pairs.items() <= entities.items():
                found.append(candidate)
    return found


#: The BIDS version the derivative datasets' descriptions this package writes follow.
BIDS_VERSION = "1.10.0"


def derivative_dataset(path: str | Path) -> Path | None:
    """The derivative dataset an output at ``path`` lies in: the ``NAME`` folder of the
    nearest ``derivatives/NAME/`` above it, or None outside one."""
    path = Path(path).absolute()
    return next((f for f in path.parents if f.parent.name == "derivatives"), None)


def derivative_place(source: str | Path, output: str | Path) -> str:
    """Where an output of the input ``source`` goes in the folder ``output``: where
    ``output`` is a derivative dataset (``ds/derivatives/NAME``) of the BIDS dataset
    ``source`` lies in, the subject's folders of ``source`` below the dataset's top
    (``sub-01/anat/``, ``sub-01/ses-1/anat/``), as BIDS lays derivatives out; else empty
    (the outputs go in ``output`` itself)."""
    out, source = Path(output).absolute(), Path(source).absolute()
    root = out.parent.parent
    if out.parent.name != "derivatives" or not (root / "dataset_description.json").is_file():
        return ""
    try:
        folders = source.parent.relative_to(root).parts
    except ValueError:  # an input of another dataset
        return ""
    return "/".join(folders) + "/" if folders and folders[0].startswith("sub-") else ""


def derivative_description(name: str) -> dict:
    """The ``dataset_description.json`` of a derivative dataset named ``name`` that this
    package's outputs start: BIDS' required fields and what generated it."""
    from . import __version__

    return {"Name": name, "BIDSVersion": BIDS_VERSION, "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "napari-mr-reparam", "Version": __version__}]}


#: The times a sidecar states, by :class:`~napari_mr_reparam.io.Volume` field.
SIDECAR_TIMES = {"te_ms": "EchoTime", "tr_ms": "RepetitionTime", "ti_ms": "InversionTime"}


def read_sidecar(path: str | Path, times_given=(), volumes: int | None = None) -> dict:
    """Acquisition parameters from the BIDS sidecar beside ``path`` (data file or sidecar),
    over those of the sidecars it inherits in a BIDS dataset (:func:`inherited_sidecars`;
    messages name the file a problem is in, else the nearest).

    Returns a dict with those of ``te_ms``, ``tr_ms``, ``ti_ms`` (milliseconds),
    ``flip_deg`` (degrees), ``sequence`` (:func:`sidecar_sequence`; where it names none, a
    flip of at most :data:`GRADIENT_ECHO_MAX_FLIP` makes a gradient echo, or an MPRAGE with a
    TI) and ``series_id`` (its
    ``SeriesInstanceUID``, else ``SeriesNumber``, as dcm2niix writes it) that the sidecar
    states, and ``real_valued`` where its ``ImageType`` names a real-valued image
    (:func:`real_valued`) and ``slice_thickness_mm`` (its ``SliceThickness``, which a
    one-slice image takes as its slab: dcm2niix writes its SpacingBetweenSlices there), and
    ``quantity`` and ``unit`` of a map (its ``Quantity`` and ``Units``); empty
    when there is none. An MPRAGE-type scan whose RepetitionTime is its
    readout's pulse spacing (GE's BRAVO, Philips' 3-D TFE: :func:`mprage_cycle`) has
    ``readout_tr_ms`` instead of ``tr_ms``, as the DICOM reader gives it. A sidecar that
    is not readable JSON (an object) is a one-line ``ValueError`` naming it, unless
    ``times_given`` holds ``te_ms`` and ``tr_ms``: then ``times_ignored`` says it is ignored. A time that can only
    have been written in milliseconds (BIDS stores seconds) is a one-line ``ValueError``
    naming the sidecar, unless ``times_given`` (``te_ms``, ``tr_ms``, ``ti_ms``: the times
    known otherwise, e.g. typed by the user) holds every time the sidecar states: then
    none of its times is returned, and ``times_ignored`` says why in one line. For a file of
    ``volumes`` volumes (a 4-D NIfTI file, :func:`~napari_mr_reparam.io.load_volumes`) a time
    may also be a list of one value per volume: it is returned as a list of milliseconds.
    A time that is no time (a string, 0, negative: :func:`_stated_time`) is a one-line
    ``ValueError`` naming the sidecar and the field, unless ``times_given`` holds it: then
    ``times_ignored`` says so.
    """
    side = Path(path) if suffix_of(path) == ".json" else sidecar_path(path)
    files = ([] if suffix_of(path) == ".json" else inherited_sidecars(path)) + ([side] if side.exists() else [])
    if not files:
        return {}
    meta, read, unread = {}, [], []
    for file in files:  # the farthest first: the file's own last, and winning
        named = file.name if file == side else f"{file.parent.name}/{file.name}"  # an inherited one: its folder
        try:
            loaded = json.loads(file.read_text(encoding="utf-8"))
            problem = "" if isinstance(loaded, dict) else f"it holds a JSON {type(loaded).__name__}, not an object"
        except (OSError, ValueError) as exc:
            problem = first_line(exc)
        if not problem:
            meta.update(loaded)
            read.append(file)
        elif {"te_ms", "tr_ms"} <= set(times_given):  # its times are known otherwise: the rest is read
            unread.append(f"{named} is ignored (not a readable BIDS sidecar: {problem})")
        else:
            raise ValueError(f"{named}: not a readable BIDS sidecar ({problem}); fix it or move it away, or "
                             "give the input's times (--input-te and --input-tr) to read the image without it")
    if not read:
        return {"times_ignored": "; ".join(unread)}
    side = read[-1]  # the nearest read names the times in messages
    out, refused, set_aside = {}, [], []
    for ours, key in SIDECAR_TIMES.items():
        value = meta.get(key)
        listed = bool(volumes) and isinstance(value, list)  # one value per volume
        if listed and len(value) != volumes:
            raise ValueError(f"{side.name}: {key} lists {len(value)} values for the image's {volumes} volumes")
        each = value if listed else [value]
        if _stated_time(side, key, value, each, ours in times_given, set_aside) is None:
            continue
        for v in each:
            try:
                refuse_milliseconds(key, v)
            except ValueError as exc:
                refused.append((ours in times_given, key, v, exc))
                break
        out[ours] = [_ms(v) for v in each] if listed else _ms(value)
    if refused:
        _, key, value, exc = min(refused, key=lambda r: r[0])  # one still in use first
        if not set(out) <= set(times_given):  # a time still in use cannot be trusted
            options = "--input-te/--input-tr" + ("/--input-ti" if "ti_ms" in out else "")
            raise ValueError(f"{side.name}: {exc}; fix it, or give the input's times with {options}, "
                             "which set the sidecar aside")
        out = {"times_ignored": f"the times in {side.name} are ignored ({key} {value:g} can only be "
                                "milliseconds; BIDS sidecars store seconds)"}
    elif set_aside or unread:
        out["times_ignored"] = "; ".join([*unread, *set_aside])
    if _is_number(meta.get("FlipAngle")):
        out["flip_deg"] = float(meta["FlipAngle"])
    sequence = sidecar_sequence(meta) or _sequence_of_small_flip(out)
    if sequence:
        out["sequence"] = sequence
    if real_valued(meta.get("ImageType")):
        out["real_valued"] = True
    if _is_number(meta.get("SliceThickness")) and float(meta["SliceThickness"]) > 0:
        out["slice_thickness_mm"] = float(meta["SliceThickness"])
    if isinstance(meta.get("Quantity"), str) and meta["Quantity"].strip():  # a map (this plugin's PD, T1, T2)
        out["quantity"] = meta["Quantity"].strip()
        out["unit"] = meta["Units"] if isinstance(meta.get("Units"), str) else None
    series = meta.get("SeriesInstanceUID") or meta.get("SeriesNumber")
    if isinstance(series, (str, int)) and not isinstance(series, bool) and str(series).strip():
        out["series_id"] = str(series).strip()  # which series of its session the scan was
    return readout_spacing(out)


def real_valued(image_type) -> bool:
    """Whether a sidecar's ``ImageType`` (a list, or one string with ``\\`` between values,
    as dcm2niix copies the DICOM tag) names a real-valued image (``R``, ``REAL``): signed
    voxels, whose magnitude is what the models read."""
    values = image_type if isinstance(image_type, list) else str(image_type or "").split("\\")
    return any(str(v).strip().upper() in ("R", "REAL") for v in values)


#: The largest flip angle (degrees) that, where a sidecar names no sequence, makes its scan
#: a gradient echo: spin-echo and inversion-recovery scans excite at 90 degrees.
GRADIENT_ECHO_MAX_FLIP = 30.0


def _sequence_of_small_flip(out: dict) -> str | None:
    """The sequence a sidecar that names none implies by a small flip angle: an MPRAGE
    where it states a TI too, else a gradient echo; None for a flip of a spin echo's size."""
    flip = out.get("flip_deg")
    if flip is None or not 0 < flip <= GRADIENT_ECHO_MAX_FLIP:
        return None
    return "mprage" if out.get("ti_ms") is not None else "gradient_echo"


#: The option that gives each time a sidecar states, by :class:`~napari_mr_reparam.io.Volume` field.
TIME_OPTIONS = {"te_ms": "--input-te", "tr_ms": "--input-tr", "ti_ms": "--input-ti"}


def _stated_time(side: Path, key: str, value, each: list, given: bool, set_aside: list):
    """``value`` of a sidecar's time ``key`` where it is one (a positive number of seconds,
    or ``each`` such, one per volume); None where it is absent (or null), where it is an
    ``InversionTime`` of 0 (no inversion, as DICOM tags and FreeSurfer headers state it),
    or where it is no time but the time is ``given`` otherwise (then ``set_aside`` takes a
    line that says so). Any other value (a string, 0, a negative number) is a one-line
    ValueError naming the sidecar and the field, not a time silently unknown."""
    if value is None or (key == "InversionTime" and all(v == 0 for v in each)):
        return None
    if all(_is_number(v) and v > 0 for v in each):
        return value
    shown = json.dumps(value)
    if given:
        set_aside.append(f"{key} {shown} in {side.name} is ignored (not a positive number of seconds)")
        return None
    option = TIME_OPTIONS[next(f for f, k in SIDECAR_TIMES.items() if k == key)]
    raise ValueError(f"{side.name}: {key} {shown} is not a time (BIDS sidecars state it as a positive number of "
                     f"seconds); fix it, or give the input's value with {option} MS, which sets it aside")


def sequence_codes(value) -> set[str]:
    """The codes of a ``ScanningSequence`` or ``SequenceVariant``: a list of them, or one
    string joined by backslashes (DICOM), underscores (dcm2niix: ``GR_IR``, ``SK_SP_MP``),
    commas or spaces; upper case. Empty for anything else."""
    value = [value] if isinstance(value, str) else value if isinstance(value, (list, tuple)) else []
    return {code for item in value for code in re.split(r"[\\_,\s]+", str(item).upper()) if code}


def sequence_of(scanning_sequence, sequence_variant=None, inverted: bool = False) -> str | None:
    """The package's sequence for DICOM/BIDS ``ScanningSequence`` and ``SequenceVariant``
    codes (:func:`sequence_codes`), ``inverted`` where an InversionTime is stated; the one
    rule of sidecars and DICOM files (:func:`~napari_mr_reparam.dicom.sequence_name`).

    GR -> ``gradient_echo``, unless magnetization-prepared (IR, an inversion time, or MP in
    SequenceVariant: MPRAGE, GE's BRAVO, Philips' 3-D TFE) -> ``mprage``; IR, or an
    inversion time otherwise (some scanners label inversion-recovery spin echo SE) ->
    ``inversion_recovery``; SE -> ``spin_echo``; anything else (echo planar alone,
    research codes) -> None. MP without GR (Siemens' FLAIR is ``SE_IR`` / ``SK_SP_MP``)
    names no MPRAGE.
    """
    codes, variant = sequence_codes(scanning_sequence), sequence_codes(sequence_variant)
    inverted = inverted or "IR" in codes
    if "GR" in codes:
        return "mprage" if inverted or "MP" in variant else "gradient_echo"
    if inverted:
        return "inversion_recovery"
    if "SE" in codes:
        return "spin_echo"
    return None


#: Siemens' MPRAGE (and MP2RAGE) sequence name, as dcm2niix writes it in ``SequenceName``
#: (``*tfl3d1_16ns``): a 3-D turbo FLASH, magnetization-prepared where it has an inversion time.
_SIEMENS_MPRAGE = re.compile(r"tfl3d", re.IGNORECASE)


def sidecar_sequence(meta: dict) -> str | None:
    """A sidecar's sequence: :func:`sequence_of` its ``ScanningSequence``,
    ``SequenceVariant`` and whether it states an ``InversionTime``. A sidecar without
    ``ScanningSequence`` names none, except Siemens' MPRAGE by its ``SequenceName`` or
    ``PulseSequenceName`` (``*tfl3d1_16ns``) with an inversion time. ``MRAcquisitionType``
    is not used: 3-D says nothing of the sequence (Siemens' SPACE FLAIR is 3-D). A second
    inversion time (``InversionTime2``, as this package writes a double inversion recovery's)
    names a double inversion recovery."""
    if any(_is_number(v) and v > 0 for v in _listed(meta.get("InversionTime2"))):
        return "double_inversion_recovery"
    inverted = any(_is_number(v) and v > 0 for v in _listed(meta.get("InversionTime")))
    scanning = meta.get("ScanningSequence")
    if scanning is None:
        names = " ".join(str(meta.get(key, "")) for key in ("SequenceName", "PulseSequenceName"))
        return "mprage" if inverted and _SIEMENS_MPRAGE.search(names) else None
    return sequence_of(scanning, meta.get("SequenceVariant"), inverted)


def _listed(value) -> list:
    return value if isinstance(value, list) else [value]


#: An MPRAGE-type scan's RepetitionTime below this (ms) is its readout's pulse spacing, not
#: the time from one inversion to the next (:func:`mprage_cycle`).
MPRAGE_MIN_CYCLE_MS = 300.0


def mprage_cycle(tr_ms: float | None, ti_ms: float | None) -> tuple[float | None, float | None]:
    """An MPRAGE-type scan's (inversion-to-inversion time, readout pulse spacing), in ms,
    from its RepetitionTime and InversionTime (DICOM tags, sidecar or MGH header).

    Siemens store the time from one inversion to the next as RepetitionTime; GE and Philips
    store the spacing of the readout's gradient-echo pulses (a few ms) and keep the cycle
    out of the standard tags. A RepetitionTime below :data:`MPRAGE_MIN_CYCLE_MS` or not
    above the inversion time is taken as the latter: the cycle is then unknown (None).
    """
    if tr_ms is None:
        return None, None
    if tr_ms < MPRAGE_MIN_CYCLE_MS or (ti_ms is not None and tr_ms <= ti_ms):
        return None, tr_ms
    return tr_ms, None


def readout_spacing(out: dict) -> dict:
    """``out`` (times in ms) with an MPRAGE-type scan's readout pulse spacing, stated as its
    RepetitionTime, moved from ``tr_ms`` to ``readout_tr_ms`` (:func:`mprage_cycle`)."""
    tr, ti = out.get("tr_ms"), out.get("ti_ms")
    if out.get("sequence") != "mprage" or not isinstance(tr, float):
        return out
    _, readout = mprage_cycle(tr, ti if isinstance(ti, float) else None)
    if readout is not None:
        del out["tr_ms"]
        out["readout_tr_ms"] = readout
    return out


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def _ms(seconds) -> float:
    """A sidecar time in ms, to the picosecond (0.0082 s is 8.2 ms, not 8.200000000000001)."""
    return round(float(s_to_ms(seconds)), 9)


def _seconds(ms) -> float:
    """A sidecar time: seconds, to the nanosecond (38.56 ms is 0.03856, not 0.038560000000000004)."""
    return round(float(ms_to_s(ms)), 9)


def prediction_sidecar(te_ms, tr_ms, model, extra, weights_sha256: str | None = None) -> dict:
    """BIDS sidecar content: times in seconds, and what generated the image (the model
    where one is named, and the sha256 of its weights file where given)."""
    from . import __version__

    meta: dict = {}
    if te_ms is not None:
        meta["EchoTime"] = _seconds(te_ms)
    if tr_ms is not None:
        meta["RepetitionTime"] = _seconds(tr_ms)
    made = {"Name": "napari-mr-reparam", "Version": __version__}
    if model is not None:
        made["Model"] = model
    if weights_sha256:
        made["WeightsSHA256"] = weights_sha256
    meta["GeneratedBy"] = [made]
    meta.update(extra or {})
    return meta


def target_preset_record(name: str | None) -> dict:
    """The sidecar field that names the target preset an output renders (``Preset``), or
    nothing without one (the command line's ``--preset``, the widget's Preset)."""
    return {"Preset": name} if name else {}


#: BIDS ``ScanningSequence`` codes (DICOM 0018,0020) and readable names of our sequences.
SEQUENCE_CODES = {"spin_echo": ("SE", "spin echo"), "inversion_recovery": ("IR", "inversion recovery"),
                  "gradient_echo": ("GR", "gradient echo"), "mprage": (["GR", "IR"], "MPRAGE"),
                  "double_inversion_recovery": ("IR", "double inversion recovery")}


def acquisition_sidecar(sequence: str | None = None, ti_ms: float | None = None,
                        flip_deg: float | None = None, ti2_ms: float | None = None) -> dict:
    """BIDS sidecar fields of the sequence, TI (stored in seconds), flip angle (degrees) and
    a double inversion recovery's second TI (``InversionTime2``, seconds), for
    :func:`~napari_mr_reparam.volume_writing.save_volume`'s ``extra``; only those given."""
    meta: dict = {}
    if sequence is not None:
        if sequence not in SEQUENCE_CODES:
            raise ValueError(f"unknown sequence {sequence!r}; use {', '.join(SEQUENCE_CODES)}")
        meta["ScanningSequence"], meta["PulseSequenceType"] = SEQUENCE_CODES[sequence]
    if ti_ms is not None:
        meta["InversionTime"] = _seconds(ti_ms)
    if ti2_ms is not None:
        meta["InversionTime2"] = _seconds(ti2_ms)
    if flip_deg is not None:
        meta["FlipAngle"] = float(flip_deg)
    return meta
