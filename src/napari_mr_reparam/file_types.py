"""The file types the package reads, told by their suffix."""

from __future__ import annotations

import os
from pathlib import Path

NIFTI_SUFFIXES = (".nii", ".nii.gz")
#: FreeSurfer volumes (``orig.mgz``, ``T1.mgz``, ``brain.mgz``): read as NIfTI is, written
#: back as NIfTI.
MGH_SUFFIXES = (".mgz", ".mgh")
#: Volumes with a placement, read with nibabel.
VOLUME_SUFFIXES = NIFTI_SUFFIXES + MGH_SUFFIXES
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def suffix_of(path: str | Path) -> str:
    """Lower-case extension, ``.nii.gz`` counted as one; ``''`` when there is none."""
    name = str(path).lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def readable_files(folder: str | Path) -> list[Path]:
    """The NIfTI and FreeSurfer volumes and 2-D images directly in ``folder``, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and suffix_of(p) in VOLUME_SUFFIXES + IMAGE_SUFFIXES)


def path_names(sources) -> dict[str, str]:
    """Each input path named from where the paths part (``T1/site4/plate5`` and
    ``T2/site4/plate5`` of one parent folder), or by its own name where they share nothing
    or only one is given."""
    unique = list(dict.fromkeys(sources))
    # as absolute paths: relative ones of no folder in common (ds/... and ds2/...) part too
    absolute = {source: os.path.abspath(source) for source in unique}
    try:
        common = os.path.commonpath(list(absolute.values())) if len(unique) > 1 else ""
    except ValueError:  # on two drives
        common = ""
    if common and os.path.dirname(common) == common:  # the root alone: they share nothing
        common = ""

    def short(source):
        whole = absolute[source]
        part = os.path.relpath(whole, common) if common and whole != common else Path(source).name
        return part if part not in (".", "") else (Path(source).name or source)

    return {source: short(source) for source in unique}


def output_stems(paths) -> dict[str, str]:
    """The name each input's outputs start with, by its path: the file's name without its
    type (a folder's name as it is). Inputs of one such name from different folders (each
    subject's ``mri/orig.mgz``) are told apart by the folders where their paths part
    (``subj01_mri_orig``, :func:`path_names`); where that tells them apart too little, they
    keep their one name (the outputs' clash is refused where they are named)."""
    def stem(name: str) -> str:
        type_ = suffix_of(name)
        return (name[: -len(type_)] if type_ else name) or "input"

    stems = {str(p): stem(Path(p).name) for p in paths}
    clashes = [p for p in stems if list(stems.values()).count(stems[p]) > 1]
    for source, name in path_names(clashes).items():
        stems[source] = stem(name).replace(os.sep, "_").replace("/", "_")
    return stems
