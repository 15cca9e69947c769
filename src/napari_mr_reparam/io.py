"""Reading and writing volumes: NIfTI (nibabel) and 2-D images, with BIDS sidecars.

Volumes are handed to the rest of the package as axial stacks ``data[z, y, x]``:
NIfTI data are first reoriented to the closest canonical orientation (RAS+), then
arranged so that ``z`` runs inferior -> superior, ``y`` (image rows) anterior -> posterior
(anterior at the top of the image) and ``x`` (columns) right -> left, the radiological
view. :func:`to_original` undoes this, so outputs are written in the input's own voxel
order with its affine and header. 2-D images become one-slice stacks.

Times in sidecars are BIDS seconds on disk and milliseconds in :class:`Volume`.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .units import ms_to_s, s_to_ms

NIFTI_SUFFIXES = (".nii", ".nii.gz")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
MAX_VOXELS = 2**31


@dataclass
class Volume:
    """An axial stack (z, y, x), float32, with what is needed to write it back.

    Attributes
    ----------
    data : ndarray (z, y, x) float32
    spacing : tuple
        Voxel size (z, y, x) in mm (1 for 2-D images).
    affine : ndarray (4, 4) or None
        The original file's affine (NIfTI only).
    header : nibabel header or None
    ornt : ndarray or None
        nibabel orientation transform from the file's voxel axes to the stack's.
    te_ms, tr_ms, ti_ms, flip_deg : float or None
        Acquisition parameters from a BIDS sidecar.
    """

    data: np.ndarray
    spacing: tuple = (1.0, 1.0, 1.0)
    affine: np.ndarray | None = None
    header: Any = None
    ornt: np.ndarray | None = None
    original_shape: tuple = ()
    te_ms: float | None = None
    tr_ms: float | None = None
    ti_ms: float | None = None
    flip_deg: float | None = None
    source: str = ""
    kind: str = "nifti"
    extra: dict = field(default_factory=dict)


def suffix_of(path: str | Path) -> str:
    name = str(path).lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def sidecar_path(path: str | Path) -> Path:
    """``scan.nii.gz`` -> ``scan.json``."""
    path = Path(path)
    stem = path.name[: -len(suffix_of(path))] if suffix_of(path) else path.stem
    return path.with_name(stem + ".json")


def read_sidecar(path: str | Path) -> dict[str, float]:
    """Acquisition times (ms) and flip angle from the BIDS sidecar beside ``path``, if any."""
    side = sidecar_path(path)
    if not side.is_file():
        return {}
    try:
        meta = json.loads(side.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return {}
    out = {}
    for key, ours in (("EchoTime", "te_ms"), ("RepetitionTime", "tr_ms"), ("InversionTime", "ti_ms")):
        value = meta.get(key)
        if isinstance(value, (int, float)) and value > 0:
            out[ours] = float(s_to_ms(value))
    if isinstance(meta.get("FlipAngle"), (int, float)):
        out["flip_deg"] = float(meta["FlipAngle"])
    return out


# nibabel orientation transform (row i: [new axis, flip] of RAS voxel axis i) from RAS to
# the stack: R -> x flipped (right to left), A -> y flipped (anterior first), S -> z.
_STACK_FROM_RAS = np.array([[2, -1], [1, -1], [0, 1]])


def ras_to_stack(array: np.ndarray) -> np.ndarray:
    """A canonical (RAS+) voxel array rearranged as the package's axial stack (z, y, x)."""
    from nibabel import orientations as orn

    return np.ascontiguousarray(orn.apply_orientation(array, _STACK_FROM_RAS))


def load_volume(path: str | Path) -> Volume:
    """Read a NIfTI volume or a 2-D image as an axial stack; see the module docstring.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` (one line, naming
    the file) for anything unreadable or of the wrong dimensionality.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path.name}: the file is empty")
    suffix = suffix_of(path)
    if suffix in NIFTI_SUFFIXES:
        volume = _load_nifti(path)
    elif suffix in IMAGE_SUFFIXES:
        volume = _load_image(path)
    else:
        raise ValueError(f"{path.name}: unsupported file type; use NIfTI (.nii, .nii.gz) or "
                         f"an image ({', '.join(IMAGE_SUFFIXES)})")
    for key, value in read_sidecar(path).items():
        setattr(volume, key, value)
    volume.source = str(path)
    return volume


def _load_nifti(path: Path) -> Volume:
    import nibabel as nib
    from nibabel import orientations as orn

    try:
        img = nib.load(str(path))
        shape = tuple(int(s) for s in img.shape)
    except Exception as exc:  # nibabel raises many kinds for corrupt files
        raise ValueError(f"{path.name}: not a readable NIfTI file ({_first_line(exc)})") from None
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) not in (2, 3):
        raise ValueError(f"{path.name}: expected a 2-D image or 3-D volume, got shape {tuple(img.shape)}")
    if int(np.prod(shape, dtype=np.float64)) > MAX_VOXELS:
        raise ValueError(f"{path.name}: the header claims {shape}, too large to load")
    try:
        data = np.asarray(img.dataobj, dtype=np.float32).reshape(shape)
    except Exception as exc:
        raise ValueError(f"{path.name}: the file is truncated or corrupt ({_first_line(exc)})") from None
    if data.ndim == 2:
        data = data[:, :, None]
    to_ras = orn.io_orientation(img.affine)
    stack = ras_to_stack(orn.apply_orientation(data, to_ras))
    zooms = np.ones(3)
    zooms[: min(3, len(img.header.get_zooms()))] = img.header.get_zooms()[:3]
    spacing = np.ones(3)
    for axis, (ras_axis, _) in enumerate(to_ras):
        spacing[int(_STACK_FROM_RAS[int(ras_axis), 0])] = zooms[axis]
    return Volume(data=stack, spacing=tuple(float(v) for v in spacing),
                  affine=np.asarray(img.affine), header=img.header.copy(), ornt=to_ras,
                  original_shape=shape, kind="nifti")


def _load_image(path: Path) -> Volume:
    try:
        if suffix_of(path) in (".tif", ".tiff"):
            import tifffile

            data = np.asarray(tifffile.imread(str(path)))
            rgb = data.ndim == 3 and data.shape[-1] in (3, 4) and data.shape[0] > 4
        else:
            from PIL import Image

            with Image.open(path) as im:
                im.load()
                data = np.asarray(im.convert("RGB") if im.mode in ("P", "CMYK", "YCbCr") else im)
            rgb = data.ndim == 3
    except Exception as exc:
        raise ValueError(f"{path.name}: not a readable image ({_first_line(exc)})") from None
    if rgb:
        data = data[..., :3].astype(np.float32) @ np.array([0.2125, 0.7154, 0.0721], np.float32)
    data = np.asarray(data, np.float32)
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3:
        raise ValueError(f"{path.name}: expected a 2-D image or a stack, got shape {data.shape}")
    return Volume(data=data, kind="image", original_shape=data.shape)


def to_original(volume: Volume, data_zyx: np.ndarray) -> np.ndarray:
    """Arrange a stack like ``volume.data`` back into the original file's voxel order."""
    from nibabel import orientations as orn

    data_zyx = np.asarray(data_zyx)
    if volume.kind != "nifti" or volume.ornt is None:
        return data_zyx
    ras = orn.apply_orientation(data_zyx, _inverse(_STACK_FROM_RAS))
    return orn.apply_orientation(ras, _inverse(volume.ornt)).reshape(volume.original_shape)


def _inverse(ornt: np.ndarray) -> np.ndarray:
    """The orientation transform that undoes ``ornt`` (as used by apply_orientation)."""
    ornt = np.asarray(ornt)
    inv = np.zeros_like(ornt)
    for i, (axis, flip) in enumerate(ornt):
        inv[int(axis)] = [i, flip]
    return inv


def save_volume(path: str | Path, data_zyx: np.ndarray, like: Volume | None = None, *,
                te_ms: float | None = None, tr_ms: float | None = None, model: str | None = None,
                extra: dict | None = None, overwrite: bool = False) -> Path:
    """Write a stack by extension (.nii/.nii.gz, .npy, .tif/.tiff, .png), atomically.

    NIfTI outputs are float32 in the input's own orientation with its affine and header,
    with a BIDS JSON sidecar (TE/TR in seconds, the generating model). An existing file
    is never replaced unless ``overwrite``.
    """
    path = Path(path)
    suffix = suffix_of(path)
    writers = {".nii": _write_nifti, ".nii.gz": _write_nifti, ".npy": _write_npy,
               ".tif": _write_tif, ".tiff": _write_tif, ".png": _write_png}
    if suffix not in writers:
        raise ValueError(f"{path.name}: unsupported output type; use {', '.join(writers)}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite (--overwrite) to replace it")
    data = np.asarray(data_zyx, np.float32)
    _atomic(path, lambda tmp: writers[suffix](tmp, data, like))
    if suffix in NIFTI_SUFFIXES:
        _write_sidecar(path, te_ms, tr_ms, model, extra)
    return path


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix_of(path))
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _write_nifti(path: Path, data: np.ndarray, like: Volume | None) -> None:
    import nibabel as nib

    if like is not None and like.kind == "nifti":
        original = to_original(like, data).astype(np.float32)
        header = like.header.copy()
        header.set_data_dtype(np.float32)
        img = nib.Nifti1Image(original, like.affine, header)
        img.header.set_slope_inter(1, 0)
    else:
        spacing = like.spacing if like is not None else (1.0, 1.0, 1.0)
        stack_affine = np.diag([*spacing[::-1], 1.0])
        img = nib.Nifti1Image(np.transpose(data, (2, 1, 0)), stack_affine)
    nib.save(img, str(path))


def _write_npy(path: Path, data, like) -> None:
    with open(path, "wb") as fh:
        np.save(fh, data)


def _write_tif(path: Path, data, like) -> None:
    import tifffile

    tifffile.imwrite(str(path), data[0] if data.shape[0] == 1 else data)


def _write_png(path: Path, data, like) -> None:
    from PIL import Image

    if data.ndim == 3 and data.shape[0] != 1:
        raise ValueError(f"{path.name}: PNG holds one slice, the result has {data.shape[0]}; "
                         "use .nii.gz, .tif or .npy")
    image = np.nan_to_num(data.reshape(data.shape[-2:]))
    peak = float(image.max())
    scaled = np.clip(image / peak * 255 if peak > 0 else image, 0, 255)
    Image.fromarray(np.rint(scaled).astype(np.uint8)).save(path, format="PNG")


def _write_sidecar(path: Path, te_ms, tr_ms, model, extra) -> None:
    from . import __version__

    meta: dict = {}
    if te_ms is not None:
        meta["EchoTime"] = float(ms_to_s(te_ms))
    if tr_ms is not None:
        meta["RepetitionTime"] = float(ms_to_s(tr_ms))
    meta["GeneratedBy"] = [{"Name": "napari-mr-reparam", "Version": __version__,
                            **({"Model": model} if model else {})}]
    meta.update(extra or {})
    side = sidecar_path(path)
    _atomic(side, lambda tmp: tmp.write_text(json.dumps(meta, indent=2) + "\n"))


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
