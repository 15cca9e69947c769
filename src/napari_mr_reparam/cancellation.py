"""Stopping long work when the user asks: every step that runs a while takes a
``cancelled()`` callback and asks it between chunks."""

from __future__ import annotations


class Cancelled(Exception):
    """Raised inside a prediction or fit when its ``cancelled`` callback answers True."""


def stop_if_cancelled(cancelled) -> None:
    """Raise :class:`Cancelled` when ``cancelled`` (a callable, or None) answers True."""
    if cancelled is not None and cancelled():
        raise Cancelled()
