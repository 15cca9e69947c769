"""napari reader: NIfTI volumes and 2-D images as axial stacks (see :mod:`.io`)."""

from __future__ import annotations

from pathlib import Path

from .io import IMAGE_SUFFIXES, NIFTI_SUFFIXES, load_volume, suffix_of


def napari_get_reader(path):
    """Return a reader for one supported file, or None (lists, folders, other types)."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    path = Path(str(path))
    if not path.is_file() or suffix_of(path) not in NIFTI_SUFFIXES + IMAGE_SUFFIXES:
        return None
    try:
        volume = load_volume(path)
    except (ValueError, OSError):
        return None  # napari then reports that no reader could open the file
    return lambda _path: [layer_data(volume, path)]


def layer_data(volume, path: Path) -> tuple:
    """The layer tuple of a loaded :class:`~napari_mr_reparam.io.Volume`."""
    name = path.name[: -len(suffix_of(path))]
    metadata = {"source": str(path), "te_ms": volume.te_ms, "tr_ms": volume.tr_ms,
                "ti_ms": volume.ti_ms, "flip_deg": volume.flip_deg, "affine": volume.affine,
                "header": volume.header, "volume": _volume_without_data(volume)}
    kwargs = {"name": name, "scale": tuple(volume.spacing), "metadata": metadata, "colormap": "gray"}
    return volume.data, kwargs, "image"


def _volume_without_data(volume):
    from dataclasses import replace

    return replace(volume, data=volume.data[:0])
