"""MRiLab's brain phantom (the phantom the paper simulated its data from).

Reads either the ``.npz`` copy (keys ``PD``, ``T1``, ``T2``, ``T2star``; times in
seconds; shape (108, 90, 90) as anterior-posterior, left-right, superior-inferior) or
MRiLab's own ``BrainStandardResolution.mat`` (struct ``VObj`` with ``Rho``, ``T1``,
``T2``, ``T2Star``), and returns it in the project's layout and units.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..messages import not_found
from ..units import s_to_ms
from .base import Phantom

#: MRiLab's standard-resolution brain phantom voxel size (mm).
MRILAB_VOXEL_MM = 2.0

_NPZ_KEYS = {"pd": "PD", "t1": "T1", "t2": "T2", "t2star": "T2star"}
_MAT_KEYS = {"pd": "Rho", "t1": "T1", "t2": "T2", "t2star": "T2Star"}


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:  # numpy's own refusal of a non-archive suggests allowing pickles: not ours to say
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        data = None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: not an MRiLab .npz phantom (an .npz archive of PD, T1, T2 and T2star, or "
                         "MRiLab's .mat file)")
    with data:
        missing = [k for k in _NPZ_KEYS.values() if k not in data]
        if missing:
            raise ValueError(f"{path}: not an MRiLab phantom (missing {', '.join(missing)})")
        return {ours: np.asarray(data[theirs], np.float32) for ours, theirs in _NPZ_KEYS.items()}


def _read_mat(path: Path) -> dict[str, np.ndarray]:
    from scipy.io import loadmat

    mat = loadmat(path, squeeze_me=True, struct_as_record=False)
    if "VObj" not in mat:
        raise ValueError(f"{path}: no VObj struct; not an MRiLab phantom .mat file")
    vobj = mat["VObj"]
    maps = {}
    for ours, theirs in _MAT_KEYS.items():
        value = getattr(vobj, theirs, None)
        if value is None:
            raise ValueError(f"{path}: VObj has no {theirs} field")
        maps[ours] = np.asarray(value, np.float32)
        if maps[ours].ndim == 4:  # multi-pool phantoms: take the first (water) pool
            maps[ours] = maps[ours][..., 0]
    return maps


def load_mrilab(path: str | Path) -> Phantom:
    """Load MRiLab's brain phantom from ``.npz`` or ``.mat``.

    Raises ``FileNotFoundError`` when the file is missing and ``ValueError`` when it is
    not an MRiLab phantom.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(not_found("MRiLab phantom", path))
    maps = _read_mat(path) if path.suffix.lower() == ".mat" else _read_npz(path)
    for key in ("t1", "t2", "t2star"):
        maps[key] = s_to_ms(maps[key]).astype(np.float32)
    # (AP, LR, SI with k going inferior) -> (z inferior->superior, AP, LR)
    maps = {k: np.ascontiguousarray(v.transpose(2, 0, 1)[::-1]) for k, v in maps.items()}
    voxel = (MRILAB_VOXEL_MM,) * 3
    return Phantom(**maps, voxel_size_mm=voxel, name=f"mrilab:{path.name}")
