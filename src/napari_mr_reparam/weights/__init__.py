"""Model weights: safetensors files with a JSON card, verified by hash on load.

A weight set is two files side by side: ``NAME.safetensors`` (tensors only; no code can
run while loading it) and ``NAME.json`` (the card: architecture, width, task, training
recipe and data, measured metrics and the file's sha256). The bundled sets live in
this folder; :func:`load_weights` refuses a bundled file whose hash does not match its
card. A user's file may also be a training checkpoint (``.pt``), read with
``torch.load(weights_only=True)`` so a pickle carrying code is refused, not run.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

BUNDLED_DIR = Path(__file__).resolve().parent
#: Suffixes of training checkpoints, and of every weights file.
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
WEIGHTS_SUFFIXES = (".safetensors", *CHECKPOINT_SUFFIXES)


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
    import json

    path = BUNDLED_DIR / f"{name}.json"
    return json.loads(path.read_text()) if name in bundled_names() else {}


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

    Returns ``(state_dict, card)``. Bundled sets and any safetensors file with a card
    are checked against the card's sha256. Raises :class:`WeightsError` on any problem.
    """
    path = _resolve(name_or_path)
    if path.suffix == ".safetensors":
        return _load_safetensors(path)
    if path.suffix in CHECKPOINT_SUFFIXES:
        return _load_checkpoint(path)
    raise WeightsError(f"{path}: weights must be .safetensors or a .pt checkpoint")


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


def _load_safetensors(path: Path) -> tuple[dict, dict]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    card = {}
    if card_path(path).is_file():
        card = json.loads(card_path(path).read_text())
        if card.get("sha256") and sha256_of(path) != card["sha256"]:
            raise WeightsError(f"{path.name}: sha256 does not match its card; refusing to load")
    elif path.parent == BUNDLED_DIR:
        raise WeightsError(f"{path.name}: bundled weights without a card; refusing to load")
    try:
        return load_file(path), card
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path.name}: not a readable safetensors file ({exc})") from None


def _load_checkpoint(path: Path) -> tuple[dict, dict]:
    import pickle
    import warnings

    import torch

    try:
        with warnings.catch_warnings():  # torch's note on the pickle protocol says nothing to a user
            warnings.filterwarnings("ignore", message=".*pickle protocol", category=UserWarning)
            blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise WeightsError(f"{path.name}: refused: the checkpoint holds Python objects besides "
                           "tensors, which could run code when loaded") from None
    except (RuntimeError, OSError, EOFError) as exc:
        raise WeightsError(f"{path.name}: not a readable checkpoint ({exc})") from None
    if isinstance(blob, dict) and "model" in blob and isinstance(blob["model"], dict):
        return blob["model"], dict(blob.get("card", {}))
    if isinstance(blob, dict) and all(hasattr(v, "shape") for v in blob.values()):
        return blob, {}
    raise WeightsError(f"{path.name}: no model state found in the checkpoint")
