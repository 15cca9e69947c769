"""Phantoms by name: the spec a command line or a recipe gives, to a :class:`Phantom`."""

from __future__ import annotations

from pathlib import Path

from .base import Phantom


def load_phantom(spec: str = "mni152", table: str | None = None) -> Phantom:
    """Load a phantom from a spec string.

    Parameters
    ----------
    spec : str
        ``mni152``, ``mrilab:PATH`` (``.npz`` or MRiLab ``.mat``), ``segmentation:PATH``
        (a label map or tissue fractions: :mod:`~napari_mr_reparam.phantoms.segmentation`)
        or ``freesurfer:PATH`` (``aseg.mgz``, SynthSeg output: :mod:`~napari_mr_reparam.phantoms.freesurfer`).
    table : str, optional
        Tissue table for phantoms built from tissue classes (``mni152``, segmentations);
        the default is ``brainweb_1.5t``, whose CSF (T1 2569 ms, T2 329 ms) is BrainWeb's,
        not the literature's: a FLAIR or DIR preset (TI 2500, 3400 ms) leaves it bright and
        long-TE images show it dark. ``3t`` (CSF T1 4160 ms, T2 1650 ms; the demo's head) or
        ``mrilab`` give fluid as scans show it. Ignored for voxel-map phantoms such as MRiLab's.
    """
    name, _, arg = spec.partition(":")
    name = name.strip().lower()
    if name == "mni152":
        from .mni152 import DEFAULT_TABLE, mni152_phantom

        return mni152_phantom(table=table or DEFAULT_TABLE)
    if name == "mrilab":
        if not arg:
            raise ValueError("the mrilab phantom needs a file: mrilab:PATH")
        from .mrilab import load_mrilab

        return load_mrilab(Path(arg).expanduser())
    if name == "segmentation":
        if not arg:
            raise ValueError("a segmentation phantom needs a file: segmentation:PATH")
        from .segmentation import load_segmentation

        return load_segmentation(Path(arg).expanduser(), **({"table": table} if table else {}))
    if name == "freesurfer":
        if not arg:
            raise ValueError("a freesurfer phantom needs a file: freesurfer:PATH")
        from .freesurfer import load_freesurfer

        return load_freesurfer(Path(arg).expanduser(), **({"table": table} if table else {}))
    raise ValueError(f"unknown phantom {spec!r}; use 'mni152', 'mrilab:PATH', 'segmentation:PATH' "
                     "or 'freesurfer:PATH'")
