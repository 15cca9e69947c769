"""napari reader: NIfTI and FreeSurfer volumes and 2-D images as axial stacks (see :mod:`.io`;
a label map such as ``aseg.mgz`` as a labels layer; a 4-D NIfTI file of a few volumes as one
layer per volume), and
DICOM series (a folder, ``.dcm`` or Siemens ``.IMA`` files, or files without an extension such as
``IM0001``, told by their preamble) as one layer per acquisition (see :mod:`.dicom`).

Layer metadata (all plain Python, no Qt):

``source``      the file read (str)
``te_ms``, ``tr_ms``, ``ti_ms``, ``flip_deg``, ``sequence``   from the BIDS sidecar, the
                DICOM tags or a FreeSurfer file's header, else None
``readout_tr_ms``   an MPRAGE-type scan whose RepetitionTime (tag or sidecar) is its
                readout's pulse spacing: that spacing, with ``tr_ms`` None
``field_strength_t``, ``manufacturer``   DICOM only: from the tags
``affine``      the file's 4x4 affine (NIfTI) or None

A NIfTI or DICOM layer's ``translate`` is where its first voxel lies along each axis
(:func:`stack_origin`), so that scans of one session overlap as they lay in the scanner.
``header``      the file's nibabel header (NIfTI) or None
``volume``      the :class:`~napari_mr_reparam.io.Volume` with an empty ``data`` stub:
                what the writer needs to restore the original orientation and affine
``sidecar_times_ignored``   why the BIDS sidecar's times were left unset (they can only be
                milliseconds), or None: the image opens and its times are typed in the widget,
                as the command line takes ``--input-te/--input-tr`` over such a sidecar
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from . import dicom
from .file_types import IMAGE_SUFFIXES, VOLUME_SUFFIXES, suffix_of
from .grids import is_placed
from .io import AXIS_LABELS, Volume, is_label_map, load_volumes, probe
from .orientation import axis_directions, stack_affine
from .sidecars import SIDECAR_TIMES


def napari_get_reader(path):
    """Return :func:`read_layers` for one NIfTI file or one readable 2-D image,
    :func:`read_dicom_layers` for a DICOM series (a folder holding DICOM files, ``.dcm``
    files), else None.

    Only cheap checks run here (extension, file present; for images a readable header
    of a supported shape; for DICOM the file preamble); other types give None. A folder
    that holds no DICOM series gets :func:`refuse_folder`, whose one line napari shows
    (napari asks which reader opens a folder, so this reader was chosen for it). A NIfTI
    file is claimed whatever it holds: when it cannot be read (corrupt,
    truncated, a long 4-D series), :func:`read_layers` raises one line saying why, which napari shows
    ("Tried opening with napari-mr-reparam, but failed ... Original error ...") instead
    of "no reader found". An image of a layout this reader does not take is left to napari's
    own image reader, which takes the same extensions and reads more layouts (RGB, 4-D
    TIFF); a file of an image's extension that holds no picture its library can read (a
    NIfTI file renamed ``.png``, say), which napari's reader cannot open either, gets a
    function that raises one line saying so.
    """
    if _is_dicom_input(path):
        return read_dicom_layers
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    if not isinstance(path, (str, os.PathLike)):
        return None
    path = Path(path)
    if path.is_dir():
        return refuse_folder
    if suffix_of(path) not in VOLUME_SUFFIXES + IMAGE_SUFFIXES or not path.is_file():
        return None
    if suffix_of(path) in VOLUME_SUFFIXES:
        return read_layers
    try:
        probe(path)
    except (ValueError, OSError) as exc:
        if str(exc).startswith(f"{path.name}: not a readable"):  # no picture at all: no reader opens it
            return _refusal(str(exc))
        return None
    return read_layers


def _refusal(message: str):
    """A reader function that says ``message`` (one line, which napari shows) and adds no layer."""
    def refuse(path) -> list:
        raise ValueError(message)

    return refuse


def read_layers(path) -> list[tuple]:
    """Read one file into a single image layer tuple (a labels layer for a label map,
    :func:`~napari_mr_reparam.io.is_label_map`); a 4-D NIfTI file of a few volumes (the
    echoes or inversion times of one acquisition, :func:`~napari_mr_reparam.io.load_volumes`)
    into one image layer per volume, named by its number and times.

    A file that cannot be read (not NIfTI, truncated, a long 4-D series, ...) raises
    ``ValueError`` with a one-line message naming the file, which napari shows the user;
    no layer is added. How the voxels were read, where it matters (a complex image's
    magnitude), is a warning, which napari shows as a notice.
    """
    if isinstance(path, (list, tuple)):
        path = path[0]
    volumes = load_volumes(path, times_given=SIDECAR_TIMES)
    _warn_notices(volumes[0])
    if len(volumes) > 1:
        layers = []
        for volume in volumes:
            data, kwargs, kind = layer_data(volume)
            known = volume.te_ms is not None or volume.ti_ms is not None
            kwargs["name"] = f"{volume.extra['series']} #{volume.extra['volume']}" + (
                f" {dicom.describe(volume)}" if known else "")
            layers.append((data, kwargs, kind))
        return layers
    [volume] = volumes
    data, kwargs, kind = layer_data(volume)
    if is_label_map(volume):  # a segmentation (aseg.mgz): its labels, not an image to predict from
        del kwargs["colormap"]
        return [(np.rint(data).astype(np.int32), kwargs, "labels")]
    return [(data, kwargs, kind)]


def refuse_folder(path) -> list:
    """A folder without a DICOM series, in one line: what this reader opens a folder as."""
    path = Path(path[0] if isinstance(path, (list, tuple)) else path)
    readable = [p.name for p in path.iterdir() if p.is_file() and suffix_of(p) in VOLUME_SUFFIXES + IMAGE_SUFFIXES]
    hint = f"open its files themselves ({', '.join(sorted(readable)[:3])}{' ...' if len(readable) > 3 else ''})" \
        if readable else "a folder opens here as one DICOM series"
    raise ValueError(f"{path.name}: no DICOM files found; {hint}")


def _warn_notices(volume: Volume) -> None:
    """The volume's one-line notices of how it was read, as warnings (napari shows them)."""
    import warnings

    for line in volume.extra.get("notices", ()):
        warnings.warn(line, stacklevel=3)


def _is_dicom_input(path) -> bool:
    paths = path if isinstance(path, (list, tuple)) else [path]
    if not paths or not all(isinstance(p, (str, os.PathLike)) for p in paths):
        return False
    return dicom.looks_like_series([str(p) for p in paths] if len(paths) > 1 else str(paths[0]))


def read_dicom_layers(path) -> list[tuple]:
    """Read a DICOM series into one image layer per acquisition (echo, inversion time ...).

    Each layer is named after the series folder and its acquisition and carries the
    acquisition's TE/TR/TI/flip and sequence in its metadata. A series that cannot be
    read raises ``ValueError`` with a one-line message, which napari shows the user; in a
    folder of several series, one that forms no volume (a localizer) is left out with a
    warning, which napari shows too, where another series reads. One file that is one slice
    of a series beside it is read as that slice, with a warning to open the folder
    (:func:`~napari_mr_reparam.dicom.lone_slice`); other files in a folder (a NIfTI, a PNG)
    are named in a warning (:func:`~napari_mr_reparam.dicom.files_beside`).
    """
    import warnings

    layers, left_out, others = [], [], []
    for volume in dicom.read_series(path, left_out=left_out, others=others):
        data, kwargs, kind = layer_data(volume)
        kwargs["name"] = f"{volume.extra['series']} {_acquisition_words(volume)}"
        kwargs["metadata"].update({key: volume.extra.get(key) for key in
                                   ("sequence", "field_strength_t", "manufacturer")})
        layers.append((data, kwargs, kind))
    lone = dicom.lone_slice(path)  # napari opens files given together one layer each
    beside = dicom.files_beside(path, others)  # a NIfTI or PNG in the folder is not read with it
    for line in left_out + [line for line in (lone, beside) if line]:  # napari shows each as a notice
        warnings.warn(line, stacklevel=2)
    return layers


def _acquisition_words(volume: Volume) -> str:
    """What a DICOM layer's name says after its series: its acquisition (``TE 20 / TR 600
    ms``), or, for a derived image with neither time (a map this plugin or another wrote),
    its SeriesDescription (``T2 map (ms) from ...``) rather than ``TE ? / TR ?``."""
    described = (volume.extra or {}).get("series_description")
    if volume.te_ms is None and volume.tr_ms is None and described \
            and "DERIVED" in [str(v).upper() for v in (volume.extra or {}).get("image_type") or []]:
        return described
    return dicom.describe(volume)


def layer_data(volume: Volume) -> tuple:
    """The ``(data, add_kwargs, 'image')`` tuple of a loaded volume."""
    source = Path(volume.source)
    name = source.name[: -len(suffix_of(source))] if suffix_of(source) else source.name
    metadata = {
        "source": volume.source, "te_ms": volume.te_ms, "tr_ms": volume.tr_ms,
        "ti_ms": volume.ti_ms, "flip_deg": volume.flip_deg, "affine": volume.affine,
        "header": volume.header, "volume": without_data(volume),
        "sidecar_times_ignored": volume.extra.get("sidecar_times_ignored"), "sequence": volume.sequence,
        "readout_tr_ms": volume.extra.get("readout_tr_ms"),
    }
    if volume.extra.get("quantity"):  # a map (DICOM, or a sidecar's Quantity): saved again, it says what it holds
        metadata.update(quantity=volume.extra["quantity"], unit=volume.extra.get("unit"))
    kwargs = {"name": name, "scale": tuple(volume.spacing), "metadata": metadata, "colormap": "gray",
              "axis_labels": AXIS_LABELS}
    if is_placed(volume):
        kwargs["translate"] = stack_origin(volume)
    if volume.kind == "image" and volume.data.shape[0] == 1:  # a picture: 2-D, shown on every slice
        kwargs.update(scale=kwargs["scale"][1:], axis_labels=AXIS_LABELS[1:])  # of the volumes beside it
        return volume.data[0], kwargs, "image"
    return volume.data, kwargs, "image"


def stack_origin(volume: Volume) -> tuple[float, float, float]:
    """Where the stack's first voxel lies along each of its axes (mm; the scanner position
    projected on the axis): as the layer's ``translate``, layers of scans of one session in
    one plane lie where the scanner placed them (a T1 and a T2 series of another field of
    view overlap as the object does), not each at the viewer's origin."""
    affine = stack_affine(volume)
    axes = axis_directions(affine)
    return tuple(round(float(affine[:3, 3] @ axes[:, a]), 3) for a in range(3))


def without_data(volume: Volume) -> Volume:
    """A copy of ``volume`` whose ``data`` is an empty stub (keeps no reference to the voxels)."""
    return replace(volume, data=np.empty((0, *volume.data.shape[1:]), np.float32))
