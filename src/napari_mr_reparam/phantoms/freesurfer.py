"""Phantoms from FreeSurfer-labelled segmentations (the spec ``freesurfer:PATH``).

FreeSurfer's ``aseg.mgz`` and ``aparc+aseg.mgz``, SynthSeg's outputs and training
label maps, and the ``seg`` of a voxelmorph ``.npz`` all number brain structures with
FreeSurfer's look-up table. Each label becomes tissue fractions (:data:`BRAIN_LABELS`):

* cerebral and cerebellar white matter, corpus callosum, optic chiasm -> white matter;
  brain stem -> 80 % white, 20 % grey matter;
* cortex (and every ``aparc`` cortical parcel, 1000-2999), cerebellar cortex,
  hippocampus, amygdala, accumbens, ventral DC, caudate, putamen -> grey matter; the
  thalamus (70 % grey, 30 % white) and pallidum (half each) are deep grey nuclei that
  relax between the two, so they are kept as such mixtures;
* ventricles and CSF -> CSF; choroid plexus -> half CSF, half grey matter;
* ``wmparc`` white-matter parcels (3000-4999, 5001, 5002) -> white matter.

Labels 500-599 are the non-brain classes of whole-head maps (SynthSeg's 502-530: skull,
scalp, fat, muscle, eyes and other tissue, clustered without names). Each takes one
non-brain tissue (:data:`NON_BRAIN`); :data:`EXTRA_DEFAULT` is the rule for SynthSeg's
classes, read from where they lie in its maps (the thin shell next to the brain is
bone, the outermost layer subcutaneous fat, the bulk of scalp, face and neck muscle,
the small paired anterior classes eyes, which relax like CSF); any other takes
connective tissue. Training redraws the rule per subject
(:func:`~napari_mr_reparam.phantoms.random_subject.random_subject`'s ``extra_reassign``),
since a scan's non-brain tissue varies most. Any other label is refused, naming it.

A brain-only map gets the MNI152 phantom's procedural head around it, as
``segmentation:`` phantoms do; ``skull_strip=True`` keeps only the brain of either kind.

Files: NIfTI (``.nii``, ``.nii.gz``) and FreeSurfer ``.mgz`` (``.mgh``) through nibabel,
oriented by their affine; ``.npz`` with a ``seg`` array (voxelmorph) is taken to be in
FreeSurfer's conformed orientation (LIA) at 1 mm, as voxelmorph's data is.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from ..messages import not_found
from ..tissues import TISSUES, get_table
from .base import Phantom
from .mixture import mixture_of

#: Label maps of ``../shared/anatomy`` held out of training, for testing generalization
#: to unseen anatomy (paths relative to that folder). Training and benchmarks import this.
HELD_OUT = ("synthseg/training_seg_17.nii.gz", "synthseg/training_seg_18.nii.gz",
            "synthseg/training_seg_19.nii.gz", "synthseg/training_seg_20.nii.gz",
            "synthsr/brain5_labels.nii.gz")

from ..freesurfer_labels import BRAIN_LABELS, CORTEX_PARCELS, EXTRA_LABELS, WM_PARCELS, known_code

_WM, _GM, _CSF = "white_matter", "grey_matter", "csf"
#: Tissues a non-brain class can take (CSF stands for the eyes' vitreous humour).
NON_BRAIN = ("fat", "muscle", "skin", "skull", "marrow", "connective", "csf")
#: SynthSeg's non-brain classes -> tissue (see the module docstring); others: connective.
EXTRA_DEFAULT = {502: "csf", 506: "csf", 507: "muscle", 508: "connective", 509: "connective",
                 511: "fat", 512: "connective", 514: "connective", 515: "skull", 516: "marrow",
                 530: "connective"}
#: Voxel size the fractions are brought to (mm), that of the other phantoms.
VOXEL_MM = 2.0
#: Empty voxels kept around a whole head when its grid is cropped.
_MARGIN = 2
SUFFIXES = (".nii", ".nii.gz", ".mgz", ".mgh", ".npz")


def tissue_of(label: int) -> dict[str, float]:
    """Tissue fractions of one brain label (FreeSurfer's table); KeyError if unknown."""
    if label in BRAIN_LABELS:
        return BRAIN_LABELS[label]
    if label in CORTEX_PARCELS:
        return {_GM: 1.0}
    if label in WM_PARCELS:
        return {_WM: 1.0}
    raise KeyError(label)


def extra_tissue(label: int, rule: dict[int, str] | None = None) -> str:
    """The tissue a non-brain class takes under ``rule`` (default :data:`EXTRA_DEFAULT`)."""
    return (rule or {}).get(label, EXTRA_DEFAULT.get(label, "connective"))


def random_extra_rule(labels, rng: np.random.Generator, keep: float = 0.5) -> dict[int, str]:
    """A random rule for non-brain ``labels``: each keeps its default tissue with
    probability ``keep``, otherwise takes one of :data:`NON_BRAIN` uniformly."""
    rule = {}
    for label in sorted(int(v) for v in labels):
        keep_it = rng.uniform() < keep
        pick = NON_BRAIN[int(rng.integers(len(NON_BRAIN)))]
        rule[label] = extra_tissue(label) if keep_it else pick
    return rule


def read_labels(path: str | Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A FreeSurfer label map as an axial stack (z inferior->superior, y anterior->
    posterior, x across) of whole numbers, and its voxel size (mm, stack order).

    Raises FileNotFoundError for a missing file, ValueError (one line naming it) for
    one of another type, not 3-D, or not whole numbers.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(not_found("segmentation", path))
    name = path.name.lower()
    if not name.endswith(SUFFIXES):
        raise ValueError(f"{path.name}: a FreeSurfer segmentation is .mgz, .nii, .nii.gz or an .npz "
                         "with a 'seg' array")
    if name.endswith(".npz"):
        labels, spacing = _read_npz(path)
    else:
        labels, spacing = _read_image(path)
    if labels.ndim != 3 or min(labels.shape) < 2:
        raise ValueError(f"{path.name}: a label map must be a 3-D volume, got shape {labels.shape}")
    if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
        raise ValueError(f"{path.name}: a label map holds whole numbers only")
    return labels.astype(np.int32), spacing


def _read_image(path: Path):
    import nibabel as nib

    from ..orientation import file_to_stack, ras_orientation, stack_spacing

    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj)
    except Exception as exc:  # nibabel's errors for corrupt, truncated or foreign files
        raise ValueError(f"{path.name}: not a readable label map ({str(exc).splitlines()[0]})") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"{path.name}: a label map must be a 3-D volume, got shape {data.shape}")
    to_ras = ras_orientation(img.affine)
    return np.ascontiguousarray(file_to_stack(data, to_ras)), stack_spacing(img.header.get_zooms()[:3], to_ras)


def _read_npz(path: Path):
    return read_npz_array(path, "seg"), (1.0, 1.0, 1.0)


#: FreeSurfer's conformed orientation as a nibabel orientation (voxel axes run to Left,
#: Inferior, Anterior): what a voxelmorph ``.npz`` is taken to be in.
CONFORMED_LIA = np.array([[0, -1], [2, -1], [1, 1]])


def read_npz_array(path: str | Path, key: str = "seg") -> np.ndarray:
    """One 3-D array of a voxelmorph ``.npz`` (``seg``, its labels, or ``vol``, its
    scan) as an axial stack (z inferior->superior, y anterior->posterior, x across, as
    :func:`read_labels` gives), taken to be in :data:`CONFORMED_LIA` at 1 mm. Read
    without unpickling; ValueError (one line naming the file) for a missing key, a file
    that is not an ``.npz`` or an array that is not 3-D."""
    from ..orientation import file_to_stack

    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if key not in data.files:
                raise ValueError(f"{path.name}: no '{key}' array (holds {', '.join(data.files)})")
            array = np.asarray(data[key])
    except ValueError:
        raise
    except Exception as exc:  # zip or header errors of a corrupt or foreign file
        raise ValueError(f"{path.name}: not a readable .npz file ({str(exc).splitlines()[0]})") from None
    if array.ndim != 3:
        raise ValueError(f"{path.name}: '{key}' must be a 3-D volume, got shape {array.shape}")
    return np.ascontiguousarray(file_to_stack(array, CONFORMED_LIA))


def label_fractions(labels: np.ndarray, name: str = "segmentation"):
    """Brain tissue fractions (CSF, grey and white matter) and one mask per non-brain
    class, on the label map's own grid; ValueError naming any unknown label."""
    values = np.unique(labels)
    unknown = [int(v) for v in values if v != 0 and v not in EXTRA_LABELS and not known_code(int(v))]
    if unknown:
        raise ValueError(f"{name}: labels {unknown[:8]} are not in FreeSurfer's table of brain "
                         "structures (nor non-brain classes 500-599)")
    index = np.searchsorted(values, labels)  # each voxel's place in ``values``
    brain = {}
    for tissue in (_CSF, _GM, _WM):
        share = np.array([0.0 if v == 0 or v in EXTRA_LABELS else tissue_of(int(v)).get(tissue, 0.0)
                          for v in values.tolist()], np.float32)
        brain[tissue] = share[index]
    extra = {int(v): index == i for i, v in enumerate(values.tolist()) if v in EXTRA_LABELS}
    return brain, extra




@lru_cache(maxsize=64)
def _classes(path: str, mtime: float, voxel_mm: float):
    """Brain fractions and non-brain class fractions on ``voxel_mm`` voxels (cached per
    file; read-only arrays). Whole heads are cropped to their tissue plus a margin."""
    from .segmentation import _resample

    labels, spacing = read_labels(path)
    labels = labels[_box(labels > 0)]
    brain, extra = label_fractions(labels, Path(path).name)
    del labels
    brain = {k: _resample(v, spacing, voxel_mm) for k, v in brain.items()}
    extra = {k: _resample(m.astype(np.float32), spacing, voxel_mm).astype(np.float16)
             for k, m in extra.items()}
    if not any(brain[t].max() > 0.5 for t in (_GM, _WM)):
        raise ValueError(f"{Path(path).name}: no voxel is mostly grey or white matter; not a brain")
    occupied = sum(brain.values()) + sum((v.astype(np.float32) for v in extra.values()), 0.0) > 1e-3
    box = _box(occupied)
    brain = {k: np.ascontiguousarray(v[box]) for k, v in brain.items()}
    extra = {k: np.ascontiguousarray(v[box]) for k, v in extra.items()}
    for array in (*brain.values(), *extra.values()):
        array.flags.writeable = False
    return brain, extra


def _box(occupied: np.ndarray) -> tuple[slice, ...]:
    box = []
    for axis in range(3):
        idx = np.flatnonzero(occupied.any(axis=tuple(a for a in range(3) if a != axis)))
        box.append(slice(max(0, idx[0] - _MARGIN), min(occupied.shape[axis], idx[-1] + _MARGIN + 1)))
    return tuple(box)


def compose(brain: dict, extra: dict, rule: dict[int, str] | None = None) -> dict[str, np.ndarray]:
    """Fractions of every tissue of :data:`~napari_mr_reparam.tissues.TISSUES`: the brain's,
    plus each non-brain class added to the tissue ``rule`` gives it."""
    shape = next(iter(brain.values())).shape
    out = {t: np.array(brain[t], np.float32) if t in brain else np.zeros(shape, np.float32)
           for t in TISSUES}
    for label, fraction in extra.items():
        out[extra_tissue(label, rule)] += fraction.astype(np.float32)
    return out


def load_freesurfer(path: str | Path, table: str = "brainweb_1.5t", *, voxel_mm: float = VOXEL_MM,
                    skull_strip: bool = False, extra_rule: dict[int, str] | None = None) -> Phantom:
    """A phantom from a FreeSurfer-labelled segmentation (see the module docstring).

    Parameters
    ----------
    path : str or Path
        ``aseg.mgz``, ``aparc+aseg.mgz``, a SynthSeg output (``.nii.gz``), or a
        voxelmorph ``.npz`` with ``seg``.
    table : str
        Tissue table the maps are mixed from (``brainweb_1.5t``, ``mrilab``, ``3t``).
    voxel_mm : float
        Voxel size of the phantom (mm, isotropic); a brain alone, which is given a head,
        needs the default.
    skull_strip : bool
        Keep the brain only (CSF, grey and white matter), as a skull-stripped scan shows it.
    extra_rule : dict of int to str, optional
        Tissue of each non-brain class (default :data:`EXTRA_DEFAULT`).

    Returns
    -------
    Phantom
        Maps in ms, brain mask, fractions and table, named ``freesurfer:FILE[TABLE]``;
        ``extra_classes`` holds each non-brain class's fractions and tissue, so a
        training draw can reassign them.
    """
    from .mni152 import VOXEL_MM as HEAD_VOXEL_MM
    from .mni152 import head_around_brain, maps_from_fractions
    from .segmentation import _brain_of

    path = Path(path).expanduser()
    tissue_table = get_table(table)
    if not path.is_file():
        raise FileNotFoundError(not_found("segmentation", path))
    brain, extra = _classes(str(path.resolve()), path.stat().st_mtime, float(voxel_mm))
    if skull_strip:
        extra = {}
    fractions = compose(brain, extra, extra_rule)
    if not extra and not skull_strip:
        if voxel_mm != HEAD_VOXEL_MM:
            raise ValueError(f"{path.name}: a brain alone is given a head on {HEAD_VOXEL_MM:g} mm "
                             f"voxels only, not {voxel_mm:g} mm")
        fractions, mask, _, _ = head_around_brain(fractions[_GM], fractions[_WM], fractions[_CSF])
    else:
        mask = _brain_of(fractions)
    maps = maps_from_fractions(fractions, tissue_table)
    classes = {k: (extra_tissue(k, extra_rule), v) for k, v in extra.items()} or None
    suffix = "-stripped" if skull_strip else ""
    return Phantom(**maps, voxel_size_mm=(float(voxel_mm),) * 3,
                   name=f"freesurfer:{path.name}{suffix}[{tissue_table.name}]", brain_mask=mask,
                   tissue_table=tissue_table.name, fractions=fractions,
                   mixture=mixture_of(fractions, tissue_table), extra_classes=classes)


def anatomy_files(root: str | Path, held_out: bool = False) -> list[Path]:
    """The label maps under an anatomy folder (``../shared/anatomy``'s layout): those
    for training, or with ``held_out`` those of :data:`HELD_OUT` (present ones only)."""
    root = Path(root)
    found = sorted(p for p in root.rglob("*") if p.is_file() and _is_label_map(p))
    held = {(root / h).resolve() for h in HELD_OUT}
    return [p for p in found if (p.resolve() in held) == held_out]


def _is_label_map(path: Path) -> bool:
    name = path.name.lower()
    if name.endswith(".npz"):
        return True
    return name.endswith(SUFFIXES) and ("seg" in name or "label" in name)
