"""Messages for people: an exception in one line."""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """An exception's message in one line: its first, and where that ends in a colon (a
    list of reasons follows, as pydicom gives for pixel data no decoder read), the first
    reason too."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return f"{lines[0]} {lines[1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]


def with_article(words: str) -> str:
    """``words`` after "a" or "an", as its first letter's sound takes: "an inversion
    recovery", "a spin echo", "an MPRAGE" (an initialism said letter by letter)."""
    first = words.split(" ", 1)[0]
    initialism = len(first) > 1 and first.isupper()
    return ("an " if words[:1] in ("AEFHILMNORSX" if initialism else "aeioAEIO") else "a ") + words


def sequence_words(sequence: str) -> str:
    """A sequence as a message names it: ``inversion recovery``, ``MPRAGE``."""
    return "MPRAGE" if sequence == "mprage" else sequence.replace("_", " ")


def not_found(what: str, path) -> str:
    """The one line for a file ``what`` (``segmentation``) not at ``path``; a relative path
    is also given as found from the current folder, which it is taken from (a recipe's
    ``../shared/...`` run from another folder than the repository's root)."""
    from pathlib import Path

    path = Path(path)
    where = "" if path.is_absolute() else f" (relative to the current folder: {path.absolute()})"
    return f"{what} not found: {path}{where}"
