"""Phantoms as the training commands name them: the specs their help lists (read by
:func:`~napari_mr_reparam.phantoms.load_phantom`), and tissue tables checked by name."""

from __future__ import annotations

#: What the training commands' help says a phantom spec may be.
PHANTOM_SPECS = "mni152, mrilab:PATH, segmentation:PATH or freesurfer:PATH"


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
