"""The file types the package reads, told by their suffix."""

from __future__ import annotations

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
