"""Model weights: safetensors files with a JSON card, verified by hash on load.

A weight set is two files side by side: ``NAME.safetensors`` (tensors only; no code can
run while loading it) and ``NAME.json`` (the card: architecture, width, task, training
recipe and data, measured metrics and the file's sha256). The bundled sets live in
this folder; :func:`load_weights` refuses a bundled file whose card records no sha256 or
one that does not match. A user's file may also be a training checkpoint (``.pt``), read
with ``torch.load(weights_only=True)`` so a pickle carrying code is refused, not run.
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


def bundled_names() -> list[str]:
    """Names of the weight sets shipped with the package (those with a card and a file)."""
    return sorted(p.stem for p in BUNDLED_DIR.glob("*.json")
                  if p.with_suffix(".safetensors").is_file())


def bundled_card(name: str) -> dict:
    """The weight card of a bundled set, read without its weights ({} for another name)."""
    if name not in bundled_names():
        return {}
    return _read_card(BUNDLED_DIR / f"{name}.safetensors")


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
    """Write ``path`` (.safetensors) and its card (.json) with the file's sha256."""
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
    return path


def load_weights(name_or_path: str | Path) -> tuple[dict, dict]:
    """Load a weight set: a bundled name (``d2p``), a ``.safetensors`` or a ``.pt`` file.

    Returns ``(state_dict, card)``. A bundled set's card must record its file's sha256,
    and the file must match it. A user's ``.safetensors`` file is checked against the
    sha256 its card records; a card that records none is taken as it is, as there is no
    record to check the file against (a safetensors file holds tensors only, so nothing
    in it can run). A checkpoint's card describes the training run, not the file, and is
    not checked. Raises :class:`WeightsError`, one line naming the file, on any problem.
    """
    path = _resolve(name_or_path)
    if path.suffix not in WEIGHTS_SUFFIXES:
        raise WeightsError(f"{path}: weights must be .safetensors or a .pt checkpoint")
    if path.stat().st_size == 0:
        raise WeightsError(f"{path.name}: empty file")
    if path.suffix == ".safetensors":
        return _load_safetensors(path)
    return _load_checkpoint(path)


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
        raise WeightsError(f"{weights_path.name}: card {path.name} is not valid JSON: {exc}") from None
    if not isinstance(card, dict):
        raise WeightsError(f"{weights_path.name}: card {path.name} is not a JSON object")
    return card


def _check_hash(path: Path, card: dict) -> None:
    """Refuse a file that its card's sha256 does not match, and a bundled file whose card
    records no sha256."""
    if "sha256" not in card:
        if _is_bundled(path):
            raise WeightsError(f"{path.name}: bundled weights whose card records no sha256; refusing to load")
        return
    if card["sha256"] != sha256_of(path):
        raise WeightsError(f"{path.name}: sha256 does not match its card; refusing to load")


def _load_safetensors(path: Path) -> tuple[dict, dict]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    card = {}
    if card_path(path).is_file():
        card = _read_card(path)
        _check_hash(path, card)
    elif _is_bundled(path):
        raise WeightsError(f"{path.name}: bundled weights without a card; refusing to load")
    try:
        return load_file(path), card
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path.name}: not a readable safetensors file ({exc})") from None


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

    try:
        with warnings.catch_warnings():  # torch's note on the pickle protocol says nothing to a user
            warnings.filterwarnings("ignore", message=".*pickle protocol", category=UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, *UNREADABLE_ERRORS) as exc:
        raise WeightsError(f"{name or path.name}: {_why_unreadable(path, exc)}") from None


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
        raise WeightsError(f"{path.name}: no model state found in the checkpoint")
    if not isinstance(card, dict):
        raise WeightsError(f"{path.name}: the checkpoint's card is not a mapping")
    return state, dict(card)
