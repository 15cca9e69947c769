"""napari writers: an image layer to NIfTI (or a DICOM series), restoring the original
orientation and affine; several image layers to a folder, one NIfTI file each."""

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
    """:func:`write_image` to ``path`` (:func:`writer_path`), its refusals and failures
    (a read-only folder) raised as :class:`WriteRefused` so napari shows them."""
    try:
        return write_image(writer_path(path), data, meta)
    except (ValueError, OSError) as error:
        raise WriteRefused(str(error)) from None


def write_images(path: str, layer_data: list) -> list[str]:
    """Save several image layers (napari's multi-layer writer): ``path`` is a folder (made
    where missing), each layer in it as ``<layer name>.nii.gz`` with its BIDS sidecar
    (:func:`write_image`; the name made safe for a file system, :func:`file_stem`). Refused
    in one line (:class:`WriteRefused`) before anything is written: a ``path`` that names a
    file type or is a file, two layers whose files would share a name, or any file it would
    write that exists (each named). A layer that cannot be written leaves no file of the
    save behind."""
    from pathlib import Path

    from .file_types import suffix_of
    from .volume_writing import OUTPUT_SUFFIXES, refuse_file_as_folder, written_files

    folder = Path(path)
    try:
        if suffix_of(folder) in OUTPUT_SUFFIXES:
            raise ValueError(f"{folder.name}: several layers are saved in a folder, each as <layer name>"
                             f"{WRITER_SUFFIXES[0]} with its sidecar; give a folder name without an extension")
        targets = [folder / f"{file_stem(meta.get('name'))}{WRITER_SUFFIXES[0]}" for _, meta, _ in layer_data]
        refuse_file_as_folder(targets[0])
        _refuse_clashes(targets, [meta.get("name") for _, meta, _ in layer_data])
        taken = [f.name for target in targets for f in written_files(target) if f.exists()]
        if taken:
            raise ValueError(f"{folder}: {', '.join(taken)} already exist{'s' if len(taken) == 1 else ''} there; "
                             "save in another folder, or move them away first")
        made = [p for p in (folder, *folder.parents) if not p.exists()]  # innermost first
        written: list[str] = []
        try:
            for target, (data, meta, _) in zip(targets, layer_data):
                written += write_image(str(target), data, meta, replace=False)
        except BaseException:
            for done in written:  # each new (none existed): the save is all or nothing
                for f in written_files(done):
                    f.unlink(missing_ok=True)
            for new in made:  # and the folders it made
                if new.is_dir() and not any(new.iterdir()):
                    new.rmdir()
            raise
    except (ValueError, OSError) as error:
        raise WriteRefused(str(error)) from None
    return written


def file_stem(name) -> str:
    """A layer name as a file name without extension: characters a file system refuses
    (``/ \\ : * ? " < > |``, control characters) as ``_``, no leading or trailing spaces or
    dots; ``layer`` where nothing is left."""
    import re

    stem = re.sub(r'[\x00-\x1f/\\:*?"<>|]', "_", str(name or "")).strip(" .")
    return stem or "layer"


def _refuse_clashes(targets: list, names: list) -> None:
    """A one-line ValueError naming the first two layers whose files would share a name (as
    a file system that ignores case sees them)."""
    seen: dict[str, str] = {}
    for target, name in zip(targets, names):
        key = target.name.casefold()
        if key in seen:
            raise ValueError(f"layers {seen[key]!r} and {name!r} would both be saved as {target.name}; "
                             "rename one")
        seen[key] = name


def writer_path(path: str) -> str:
    """``path`` as the writer saves it: a name without extension gets ``.nii.gz`` (napari's
    Save dialog passes a name as typed); a one-line ValueError for an extension it does not
    offer, or a file the extension names that napari did not ask about replacing. (In
    Python, ``viewer.layers.save(path, plugin=...)`` completes a name without extension
    itself before the writer sees it, and a file of the completed name is replaced, as
    napari's own writers replace it.)"""
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


def write_image(path: str, data, meta: dict, replace: bool = True) -> list[str]:
    """Save one image layer as NIfTI with a BIDS sidecar, or as a DICOM series (``.dcm``: a
    folder of that name, one file per slice, in the study of the DICOM series the layer was
    read from); return the paths written.

    When the layer came from this plugin's reader (``metadata['volume']``) and still has
    its shape, the file gets the input's voxel order, affine and header back; otherwise
    an RAS+ grid with the layer's scale, its first voxel at the layer's translate. TE/TR/TI
    (ms), ``sequence``, ``flip_deg``, ``model`` and ``weights_sha256``
    come from the layer metadata, as do a map's ``quantity`` and ``unit`` and the
    ``inputs_record`` of a prediction (its input's acquisition, or its inputs' for the widget's joint
    maps, and the target preset it renders). napari asked the user
    before replacing a file, so this overwrites it (a DICOM series' folder only where it holds
    nothing but ``.dcm`` files); a NIfTI file's sidecar, never asked about, keeps its fields
    but those of the acquisition, which are written afresh
    (:func:`~napari_mr_reparam.volume_writing.kept_sidecar`). A sidecar already beside a new
    file (``scan.json`` for ``scan.nii.gz``) is another file's: it is kept, and the save is
    refused in one line (a ``ValueError``), as is an RGB(A) layer. ``replace=False``
    replaces nothing (a ``FileExistsError``).
    """
    from pathlib import Path

    from .file_types import NIFTI_SUFFIXES, suffix_of
    from .sidecars import sidecar_path

    if meta.get("rgb"):  # its colour channels would be written as slices
        raise ValueError(f"{meta.get('name') or 'the layer'} is an RGB(A) colour image; this writer saves grey-level "
                         "images: open the file with the napari-mr-reparam reader (grey levels), or save it with "
                         "napari's own writer")
    side = sidecar_path(path)
    if suffix_of(path) in NIFTI_SUFFIXES and not Path(path).exists() and side.exists():
        raise ValueError(f"{side.name} already exists beside {Path(path).name} and would be replaced by its "
                         "sidecar; save under another name, or move it away first")
    metadata = meta.get("metadata") or {}
    data = np.asarray(data)
    like = metadata.get("volume")
    if isinstance(like, Volume) and tuple(like.stack_shape) == _as_stack(data).shape:
        like = _moved(like, meta.get("translate"))
    else:
        origin = _spacing(meta.get("translate"), data.ndim, missing=0.0)  # where the viewer shows it
        like = Volume(data=np.empty((0,)), spacing=_spacing(meta.get("scale"), data.ndim), kind="image",
                      extra={"origin_mm": origin})
    extra = acquisition_sidecar(metadata.get("sequence"), metadata.get("ti_ms"), metadata.get("flip_deg"),
                                metadata.get("ti2_ms"))
    if metadata.get("quantity"):  # a map layer (the widget's PD, T1, T2): what it holds, in which unit
        extra.update(Quantity=metadata["quantity"], Units=metadata.get("unit") or "relative")
    extra.update(metadata.get("inputs_record") or {})  # a prediction's input, or inputs (joint maps)
    written = save_volume(path, data, like=like, te_ms=metadata.get("te_ms"),
                          tr_ms=metadata.get("tr_ms"), model=metadata.get("model"), extra=extra,
                          overwrite=replace, keep_sidecar=replace, weights_sha256=metadata.get("weights_sha256"))
    return [str(written)]


def _moved(like: Volume, translate) -> Volume:
    """``like`` with its affine shifted by as far as its layer was moved in the viewer: the
    layer's ``translate`` against where the reader placed it
    (:func:`~napari_mr_reparam._reader.stack_origin`); as it was where it was not moved."""
    from dataclasses import replace

    from ._reader import stack_origin
    from .orientation import axis_directions, stack_affine

    if translate is None or len(translate) < 3 or like.affine is None or like.ornt is None:
        return like
    placed, wanted = np.asarray(stack_origin(like)), np.asarray(translate, float)[-3:]
    if np.allclose(placed, wanted, atol=1e-3):
        return like
    affine = np.array(like.affine, float)
    affine[:3, 3] += axis_directions(stack_affine(like)) @ (wanted - placed)
    return replace(like, affine=affine)


def _as_stack(data: np.ndarray) -> np.ndarray:
    return data[None] if data.ndim == 2 else data


def _spacing(scale, ndim: int, missing: float = 1.0) -> tuple:
    """The layer's scale (or translate) as (z, y, x) mm; ``missing`` where it has none."""
    values = [float(s) for s in (scale if scale is not None else ())][-3:]
    values = [missing] * (3 - len(values)) + values
    return tuple(values) if ndim >= 3 else (missing, *values[-2:])
