"""napari writer: an image layer to NIfTI (or a DICOM series), restoring the original
orientation and affine."""

from __future__ import annotations

import numpy as np

from .io import Volume
from .sidecars import acquisition_sidecar
from .volume_writing import save_volume


class WriteRefused(RuntimeError):
    """A save refused, with its one-line reason. Not a ``ValueError``: napari reads that
    as "this writer does not apply" and shows only that, dropping the reason."""


#: What the napari writer saves (its ``filename_extensions`` in napari.yaml), the first
#: given to a name without one.
WRITER_SUFFIXES = (".nii.gz", ".nii", ".dcm")


def write_single_image(path: str, data, meta: dict) -> list[str]:
    """:func:`write_image` to ``path`` (:func:`writer_path`), its refusals raised as
    :class:`WriteRefused` so napari shows them."""
    try:
        return write_image(writer_path(path), data, meta)
    except ValueError as error:
        raise WriteRefused(str(error)) from None


def writer_path(path: str) -> str:
    """``path`` as the writer saves it: a name without extension gets ``.nii.gz`` (as napari
    gives it when the plugin is named, not from its Save dialog); a one-line ValueError for
    an extension it does not offer, or a file the extension names that napari did not ask
    about replacing."""
    from pathlib import Path

    from .file_types import suffix_of

    suffix = suffix_of(path)
    if suffix in WRITER_SUFFIXES:
        return path
    name = Path(path).name
    if suffix:
        raise ValueError(f"{name}: this writer saves {', '.join(WRITER_SUFFIXES)} only; end the name with one "
                         "(or give none for .nii.gz)")
    full = f"{path}{WRITER_SUFFIXES[0]}"
    if Path(full).exists():
        raise ValueError(f"{name}{WRITER_SUFFIXES[0]} already exists; type its full name to replace it")
    return full


def write_image(path: str, data, meta: dict) -> list[str]:
    """Save one image layer as NIfTI with a BIDS sidecar, or as a DICOM series (``.dcm``: a
    folder of that name, one file per slice, in the study of the DICOM series the layer was
    read from); return the paths written.

    When the layer came from this plugin's reader (``metadata['volume']``) and still has
    its shape, the file gets the input's voxel order, affine and header back; otherwise
    an RAS+ grid with the layer's scale. TE/TR/TI (ms), ``sequence``, ``flip_deg`` and ``model``
    come from the layer metadata, and a map's ``quantity`` and ``unit``. napari asked the user
    before replacing a file, so this overwrites it and its sidecar (a DICOM series' folder only
    where it holds nothing but ``.dcm`` files); a sidecar already beside a new file
    (``scan.json`` for ``scan.nii.gz``) is another file's, never asked about: it is kept, and
    the save is refused in one line (a ``ValueError``).
    """
    from pathlib import Path

    from .file_types import NIFTI_SUFFIXES, suffix_of
    from .sidecars import sidecar_path

    side = sidecar_path(path)
    if suffix_of(path) in NIFTI_SUFFIXES and not Path(path).exists() and side.exists():
        raise ValueError(f"{side.name} already exists beside {Path(path).name} and would be replaced by its "
                         "sidecar; save under another name, or move it away first")
    metadata = meta.get("metadata") or {}
    data = np.asarray(data)
    like = metadata.get("volume")
    if not isinstance(like, Volume) or tuple(like.stack_shape) != _as_stack(data).shape:
        like = Volume(data=np.empty((0,)), spacing=_spacing(meta.get("scale"), data.ndim), kind="image")
    extra = acquisition_sidecar(metadata.get("sequence"), metadata.get("ti_ms"), metadata.get("flip_deg"),
                                metadata.get("ti2_ms"))
    if metadata.get("quantity"):  # a map layer (the widget's PD, T1, T2): what it holds, in which unit
        extra.update(Quantity=metadata["quantity"], Units=metadata.get("unit") or "relative")
    written = save_volume(path, data, like=like, te_ms=metadata.get("te_ms"),
                          tr_ms=metadata.get("tr_ms"), model=metadata.get("model"), extra=extra,
                          overwrite=True)
    return [str(written)]


def _as_stack(data: np.ndarray) -> np.ndarray:
    return data[None] if data.ndim == 2 else data


def _spacing(scale, ndim: int) -> tuple:
    """The layer scale as (z, y, x) mm; 1 where missing."""
    values = [float(s) for s in (scale if scale is not None else ())][-3:]
    values = [1.0] * (3 - len(values)) + values
    return tuple(values) if ndim >= 3 else (1.0, *values[-2:])
