"""napari reader: NIfTI volumes and 2-D images as axial stacks (see :mod:`.io`).

Layer metadata (all plain Python, no Qt):

``source``      the file read (str)
``te_ms``, ``tr_ms``, ``ti_ms``, ``flip_deg``   from the BIDS sidecar, else None
``affine``      the file's 4x4 affine (NIfTI) or None
``header``      the file's nibabel header (NIfTI) or None
``volume``      the :class:`~napari_mr_reparam.io.Volume` with an empty ``data`` stub:
                what the writer needs to restore the original orientation and affine
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from .io import IMAGE_SUFFIXES, NIFTI_SUFFIXES, Volume, load_volume, probe, suffix_of


def napari_get_reader(path):
    """Return :func:`read_layers` for one readable file, else None.

    Only cheap checks run here (extension, file present, header readable and of a
    supported shape); lists of several paths, folders and other types give None.
    """
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    if not isinstance(path, (str, os.PathLike)):
        return None
    path = Path(path)
    if suffix_of(path) not in NIFTI_SUFFIXES + IMAGE_SUFFIXES or not path.is_file():
        return None
    try:
        probe(path)
    except (ValueError, OSError):
        return None
    return read_layers


def read_layers(path) -> list[tuple]:
    """Read one file into a single image layer tuple.

    A file whose header looked fine but whose data cannot be read (truncated, say)
    raises ``ValueError`` with a one-line message, which napari shows the user.
    """
    if isinstance(path, (list, tuple)):
        path = path[0]
    return [layer_data(load_volume(path))]


def layer_data(volume: Volume) -> tuple:
    """The ``(data, add_kwargs, 'image')`` tuple of a loaded volume."""
    source = Path(volume.source)
    name = source.name[: -len(suffix_of(source))] if suffix_of(source) else source.name
    metadata = {
        "source": volume.source, "te_ms": volume.te_ms, "tr_ms": volume.tr_ms,
        "ti_ms": volume.ti_ms, "flip_deg": volume.flip_deg, "affine": volume.affine,
        "header": volume.header, "volume": without_data(volume),
    }
    kwargs = {"name": name, "scale": tuple(volume.spacing), "metadata": metadata, "colormap": "gray"}
    return volume.data, kwargs, "image"


def without_data(volume: Volume) -> Volume:
    """A copy of ``volume`` whose ``data`` is an empty stub (keeps no reference to the voxels)."""
    return replace(volume, data=np.empty((0, *volume.data.shape[1:]), np.float32))
