"""Model weights: safetensors files with a JSON card, verified by hash on load.

A weight set is two files side by side: ``NAME.safetensors`` (tensors only; no code can
run while loading it) and ``NAME.json`` (the card: architecture, width, task, training
recipe and data, measured metrics and the file's sha256). The bundled sets live in
this folder, and :data:`HASHES_FILE` beside them records the sha256 of each set's weights
and of its card, so that an edited card (its task, its work size) is caught as an edited
file is; :func:`save_weights` into this folder (``napari-mr-reparam-train export``)
updates that record. :func:`load_weights` refuses a bundled set that the record does not
list or match, or whose card records no sha256 or one that does not match. A user's file
may also be a training checkpoint (``.pt``), read with ``torch.load(weights_only=True)``
so a pickle carrying code is refused, not run. Weights holding a value that is not finite
(NaN or infinity: a run that diverged) are refused wherever they come from.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import struct
import tempfile
from pathlib import Path

BUNDLED_DIR = Path(__file__).resolve().parent
#: The package's own weights folder: the one whose record of hashes must be there (tests
#: may stand another folder in for :data:`BUNDLED_DIR`).
PACKAGE_DIR = BUNDLED_DIR
#: The record of the bundled files' sha256, in the bundled folder: ``{file name: sha256}``
#: for each set's ``.safetensors`` and ``.json``. Not a weight set's name.
HASHES_FILE = "SHA256SUMS.json"
#: Suffixes of training checkpoints, and of every weights file.
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
WEIGHTS_SUFFIXES = (".safetensors", *CHECKPOINT_SUFFIXES)
#: How a checkpoint begins: a zip archive (``torch.save``) or a pickle (the legacy format).
CHECKPOINT_STARTS = (b"PK\x03\x04", b"\x80")
#: What ``torch.load`` raises on a damaged or foreign file besides a refused pickle.
UNREADABLE_ERRORS = (RuntimeError, OSError, EOFError, ValueError, LookupError, TypeError,
                     AttributeError, struct.error)


class WeightsError(ValueError):
    """Weights that cannot be trusted or used: missing, corrupt, tampered, wrong format."""


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_sha256(name_or_path: str | Path, card: dict) -> str:
    """The sha256 of the file a weight set is read from, for the records of what made an
    output: what a ``.safetensors`` file's card records (loading checked the file against
    it), else the file's own (a checkpoint, or a card that records none)."""
    path = _resolve(name_or_path)
    if path.suffix == ".safetensors" and card.get("sha256"):
        return str(card["sha256"])
    return sha256_of(path)


def bundled_names() -> list[str]:
    """Names of the weight sets shipped with the package (those with a card and a file)."""
    return sorted(p.stem for p in BUNDLED_DIR.glob("*.json")
                  if p.with_suffix(".safetensors").is_file())


def bundled_card(name: str) -> dict:
    """The weight card of a bundled set, read without its weights ({} for another name)."""
    if name not in bundled_names():
        return {}
    return _read_card(BUNDLED_DIR / f"{name}.safetensors")


def bundled_sha256(name: str) -> str | None:
    """The sha256 its card records for a bundled set's file (None for another name)."""
    return bundled_card(name).get("sha256")


def shown_name(source: str | Path, card: dict) -> str:
    """The name a loaded weight set goes by in messages and records: a bundled set's own
    name; for a file elsewhere, its card's name unless that is a bundled set's (a training
    checkpoint's card names the recipe's set, ``physics`` say, which it is not), else the
    file as given."""
    name = str(card.get("name", source))
    if _resolve(source).parent == BUNDLED_DIR:
        return name
    if Path(str(source)).suffix in CHECKPOINT_SUFFIXES or name in bundled_names():
        return str(source)
    return name


def card_path(weights_path: str | Path) -> Path:
    return Path(weights_path).with_suffix(".json")


def save_weights(state_dict: dict, card: dict, path: str | Path) -> Path:
    """Write ``path`` (.safetensors) and its card (.json) with the file's sha256; into the
    bundled folder, record both files' sha256 in its :data:`HASHES_FILE` too."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"format": "pt"})
        os.chmod(tmp, 0o644)  # mkstemp makes owner-only files; weights are for everyone to read
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    card = dict(card, file=path.name, sha256=sha256_of(path))
    card_path(path).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    if _is_bundled(path):
        record_hashes(path)
    return path


def record_hashes(weights_path: Path) -> None:
    """Record the sha256 of a bundled set's weights and card in :data:`HASHES_FILE` (the
    other sets' entries kept)."""
    record = _read_hashes() or {}
    for f in (weights_path, card_path(weights_path)):
        record[f.name] = sha256_of(f)
    target = BUNDLED_DIR / HASHES_FILE
    tmp = target.with_name(target.name + ".part")
    tmp.write_text(json.dumps(dict(sorted(record.items())), indent=2) + "\n")
    os.replace(tmp, target)


def _read_hashes() -> dict | None:
    """The bundled folder's record of hashes (None where it has none)."""
    path = BUNDLED_DIR / HASHES_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise WeightsError(f"{HASHES_FILE}: the bundled weights' record of hashes is not valid JSON: {exc}") from None
    if not (isinstance(record, dict) and all(isinstance(v, str) for v in record.values())):
        raise WeightsError(f"{HASHES_FILE}: the bundled weights' record of hashes is not a map of file names "
                           "to sha256")
    return record


def _check_recorded(path: Path) -> None:
    """Refuse a bundled set whose weights or card the folder's record of hashes does not
    list or match. The package's own folder must hold the record and list every set in
    it; in another folder standing in for it (a test's), a set the record does not list
    at all (written there before it stood in) is checked by its card alone."""
    record = _read_hashes()
    own = Path(BUNDLED_DIR).resolve() == PACKAGE_DIR
    if record is None and own:
        raise WeightsError(f"{shown_path(path)}: the bundled weights' record of hashes ({HASHES_FILE}) is missing; "
                           "refusing to load")
    if not own and not (record and {path.name, card_path(path).name} & set(record)):
        return
    for f in (path, card_path(path)):
        if f.name not in record:
            raise WeightsError(f"{f.name}: bundled, but not in {HASHES_FILE}; refusing to load")
        if record[f.name] != sha256_of(f):
            raise WeightsError(f"{f.name}: sha256 does not match {HASHES_FILE}, the bundled files' record; "
                               "refusing to load")


def shown_path(path: Path) -> str:
    """How a message names a weights file: a bundled one by its name, a user's by its path
    (every training run's file is ``checkpoint.pt``)."""
    path = Path(path)
    return path.name if path.parent.resolve() == Path(BUNDLED_DIR).resolve() else str(path)


def load_weights(name_or_path: str | Path) -> tuple[dict, dict]:
    """Load a weight set: a bundled name (``d2p``), a ``.safetensors`` or a ``.pt`` file.

    Returns ``(state_dict, card)``. A bundled set's weights and card must match the
    sha256 that :data:`HASHES_FILE` records for them, and its card must record its file's
    sha256, which the file must match. A user's ``.safetensors`` file is checked against the
    sha256 its card records; a card that records none is taken as it is, as there is no
    record to check the file against (a safetensors file holds tensors only, so nothing
    in it can run). A checkpoint's card describes the training run, not the file, and is
    not checked. Weights holding a value that is not finite are refused. Raises
    :class:`WeightsError`, one line naming the file, on any problem.
    """
    path = _resolve(name_or_path)
    if path.suffix not in WEIGHTS_SUFFIXES:
        raise WeightsError(f"{path}: weights must be .safetensors or a .pt checkpoint")
    if path.stat().st_size == 0:
        raise WeightsError(f"{shown_path(path)}: empty file")
    state, card = _load_safetensors(path) if path.suffix == ".safetensors" else _load_checkpoint(path)
    _refuse_non_finite(state, path)
    return state, card


def _refuse_non_finite(state: dict, path: Path) -> None:
    """A one-line WeightsError for weights holding NaN or infinity (a run that diverged),
    which would predict images of nothing."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(v.isfinite().all())]
    if bad:
        more = f" and {len(bad) - 1} other tensor(s)" if len(bad) > 1 else ""
        raise WeightsError(f"{shown_path(path)}: holds values that are not finite (NaN or infinity) in {bad[0]}{more}: "
                           "the weights of a run that diverged; refusing to load")


def does_not_fit(source, exc: Exception) -> WeightsError:
    """The one-line WeightsError for weights from ``source`` that torch could not load into
    a network (``exc``, its load error): tensors of other shapes (another width, other
    conditioning), or of other names."""
    return WeightsError(f"{source}: weights do not fit this network ({_what_does_not_fit(exc)})")


def _what_does_not_fit(exc: Exception) -> str:
    """The first "size mismatch for NAME" of torch's load error, else its first missing or
    unexpected tensors, else its first line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    found = next((line for line in lines if line.startswith("size mismatch for")), None)
    if found is not None:
        return "tensors of other shapes: " + found.split(": copying", 1)[0]
    for line in lines:
        for words, said in (("Missing key(s)", "missing tensors"), ("Unexpected key(s)", "unexpected tensors")):
            if line.startswith(words):
                names = line.partition(": ")[2].rstrip(". ").split(", ")
                return f"{said}: {', '.join(names[:3])}{', ...' if len(names) > 3 else ''}"
    return lines[0] if lines else type(exc).__name__


def names_a_file(name_or_path: str | Path) -> bool:
    """Whether ``name_or_path`` is written as a file (a folder in it, or a weights
    suffix) rather than as a bundled set's name."""
    text = str(name_or_path)
    return "/" in text or "\\" in text or Path(text).suffix in WEIGHTS_SUFFIXES


def _resolve(name_or_path) -> Path:
    text = str(name_or_path)
    bundled = BUNDLED_DIR / f"{text}.safetensors"
    if not names_a_file(text) and bundled.is_file():
        return bundled
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if names_a_file(text):
        raise WeightsError(f"no weights file {text!r}" + (
            ": it is a folder" if path.is_dir() else ": no such file"))
    known = ", ".join(bundled_names()) or "none"
    raise WeightsError(f"no weights {text!r}: not a file, nor a bundled set ({known})")


def _is_bundled(path: Path) -> bool:
    return path.resolve().parent == Path(BUNDLED_DIR).resolve()


def _read_card(weights_path: Path) -> dict:
    """The card beside ``weights_path``; WeightsError where it is not a JSON object."""
    path = card_path(weights_path)
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:  # bad JSON, or bytes that are not UTF-8 text
        raise WeightsError(f"{shown_path(weights_path)}: card {path.name} is not valid JSON: {exc}") from None
    if not isinstance(card, dict):
        raise WeightsError(f"{shown_path(weights_path)}: card {path.name} is not a JSON object")
    return card


def _check_hash(path: Path, card: dict) -> None:
    """Refuse a file that its card's sha256 does not match, and a bundled file whose card
    records no sha256."""
    if "sha256" not in card:
        if _is_bundled(path):
            raise WeightsError(f"{shown_path(path)}: bundled weights whose card records no sha256; refusing to load")
        return
    if card["sha256"] != sha256_of(path):
        raise WeightsError(f"{shown_path(path)}: sha256 does not match its card; refusing to load")


def _load_safetensors(path: Path) -> tuple[dict, dict]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    card = {}
    if card_path(path).is_file():
        if _is_bundled(path):
            _check_recorded(path)
        card = _read_card(path)
        _check_hash(path, card)
    elif _is_bundled(path):
        raise WeightsError(f"{shown_path(path)}: bundled weights without a card; refusing to load")
    try:
        return load_file(path), card
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{shown_path(path)}: not a readable safetensors file ({exc})") from None


def _load_checkpoint(path: Path) -> tuple[dict, dict]:
    return _model_state(read_checkpoint(path), path)


def read_checkpoint(path: Path, map_location="cpu", name: str | None = None):
    """What a ``.pt`` file holds, read with ``torch.load(weights_only=True)``: a file that
    holds Python objects besides tensors is refused, never unpickled; it, and a damaged or
    foreign file, is a one-line :class:`WeightsError` naming the file (``name``, default its
    file name) and why. Weight sets and training runs (``--resume``) read their checkpoints
    here."""
    import warnings

    import torch

    _refuse_damaged_archive(path, name)
    try:
        with warnings.catch_warnings():  # torch's note on the pickle protocol says nothing to a user
            warnings.filterwarnings("ignore", message=".*pickle protocol", category=UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, *UNREADABLE_ERRORS) as exc:
        raise WeightsError(f"{name or shown_path(path)}: {_why_unreadable(path, exc)}") from None


def _refuse_damaged_archive(path: Path, name: str | None = None) -> None:
    """A checkpoint written by ``torch.save`` is a zip archive whose every part carries a
    checksum (CRC-32), which ``torch.load`` does not check: a part that no longer matches it
    (a byte changed on disk or in a copy) is a one-line :class:`WeightsError` naming the
    file, before its weights could be read as numbers they never were."""
    import zipfile

    try:
        if not zipfile.is_zipfile(path):
            return  # torch's legacy format, or no checkpoint at all: torch.load says which
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (OSError, zipfile.BadZipFile, EOFError, RuntimeError) as exc:
        raise WeightsError(f"{name or shown_path(path)}: not a readable checkpoint, damaged or cut short "
                           f"({exc})") from None
    if bad is not None:
        raise WeightsError(f"{name or shown_path(path)}: damaged: its part {bad} does not match the checksum "
                           "written with it (a byte changed since it was saved); use an intact copy")


def _why_unreadable(path: Path, exc: Exception) -> str:
    """Why ``torch.load`` failed on ``path``, in a few words."""
    with open(path, "rb") as fh:
        start = fh.read(4)
    if not start.startswith(CHECKPOINT_STARTS):
        return "not a PyTorch checkpoint or safetensors file"
    if isinstance(exc, pickle.UnpicklingError):
        return "refused: it holds Python objects besides tensors, which could run code when loaded"
    reason = str(exc).split(". ")[0].strip() or type(exc).__name__  # torch adds paragraphs of advice
    return f"not a readable checkpoint, damaged or cut short ({reason})"


def _model_state(blob, path: Path) -> tuple[dict, dict]:
    """The state dict and card of a loaded checkpoint: ``{"model": ..., "card": ...}`` or a
    bare state dict."""
    import torch

    state, card = blob, {}
    if isinstance(blob, dict) and isinstance(blob.get("model"), dict):
        state, card = blob["model"], blob.get("card", {})
    if not (isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values())):
        raise WeightsError(f"{shown_path(path)}: no model state found in the checkpoint")
    if not isinstance(card, dict):
        raise WeightsError(f"{shown_path(path)}: the checkpoint's card is not a mapping")
    return state, dict(card)
