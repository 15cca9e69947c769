"""Phantoms as the training commands name them: a spec (``mni152``, ``mrilab:PATH``,
``segmentation:PATH``, ``freesurfer:PATH``) read by
:func:`~napari_mr_reparam.phantoms.load_phantom`, with a file that cannot be the phantom
its kind names refused in one line before it is read, and tissue tables checked by name.
"""

from __future__ import annotations

from pathlib import Path

#: What the training commands' help says a phantom spec may be.
PHANTOM_SPECS = "mni152, mrilab:PATH, segmentation:PATH or freesurfer:PATH"
#: How a zip archive (an ``.npz``) begins: with a file, or empty.
ZIP_STARTS = (b"PK\x03\x04", b"PK\x05\x06")


def load_phantom_spec(spec: str, table: str | None = None):
    """The phantom ``spec`` names, its tissue ``table`` for one built from tissue classes;
    an MRiLab file that is neither an ``.npz`` archive nor a ``.mat`` file is a one-line
    ValueError (numpy's own message would suggest reading it with pickles allowed)."""
    from ..phantoms import load_phantom

    refuse_unreadable_mrilab(spec)
    return load_phantom(spec, table=table)


def refuse_unreadable_mrilab(spec: str) -> None:
    """A one-line ValueError for ``mrilab:PATH`` where PATH is a file other than an
    ``.npz`` archive or a ``.mat`` file (a missing file is left to the loader's message)."""
    kind, _, where = spec.partition(":")
    if kind.strip().lower() != "mrilab" or not where:
        return
    path = Path(where).expanduser()
    if not path.is_file() or path.suffix.lower() == ".mat":
        return
    with open(path, "rb") as fh:
        start = fh.read(4)
    if start not in ZIP_STARTS:
        raise ValueError(f"{path}: not an MRiLab .npz phantom (an .npz archive of PD, T1, T2 and T2star, "
                         "or MRiLab's .mat file)")


def tissue_table(name: str) -> str:
    """An argparse type: a known tissue table's name (the tables' own one-line message
    lists them otherwise)."""
    import argparse

    from ..tissues import get_table

    try:
        get_table(name)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return name
