"""BIDS JSON sidecars: the ``<stem>.json`` beside a NIfTI file, with the acquisition's times,
flip angle and sequence; read into a :class:`~napari_mr_reparam.io.Volume`'s fields and
written beside NIfTI outputs (:mod:`.volume_writing`).

Times in sidecars are BIDS seconds on disk and milliseconds in
:class:`~napari_mr_reparam.io.Volume`. A double inversion recovery's second inversion time,
for which BIDS has no key, is written as ``InversionTime2`` (seconds, as ``InversionTime``);
it is not read back.
"""

from __future__ import annotations

import json
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


#: The times a sidecar states, by :class:`~napari_mr_reparam.io.Volume` field.
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
    ``volumes`` volumes (a 4-D NIfTI file, :func:`~napari_mr_reparam.io.load_volumes`) a time
    may also be a list of one value per volume: it is returned as a list of milliseconds.
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
            options = "--input-te/--input-tr" + ("/--input-ti" if "ti_ms" in out else "")
            raise ValueError(f"{side.name}: {exc}; fix it, or give the input's times with {options}, "
                             "which set the sidecar aside")
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


def _seconds(ms) -> float:
    """A sidecar time: seconds, to the nanosecond (38.56 ms is 0.03856, not 0.038560000000000004)."""
    return round(float(ms_to_s(ms)), 9)


def prediction_sidecar(te_ms, tr_ms, model, extra) -> dict:
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
