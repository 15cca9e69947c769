"""Digital phantoms: proton density, T1, T2 and T2* maps on a voxel grid.

Every phantom uses one layout: arrays of shape ``(nz, ny, nx)`` where axis 0 runs
through axial slices from inferior to superior, axis 1 from anterior (top of the
image) to posterior, and axis 2 across the head. Times are in milliseconds.

Phantoms are named by a *spec* string, as the command line takes them:

``mni152``
    The embedded default, built from the ICBM152 2009 maps inside nilearn (offline).
``mrilab:PATH``
    MRiLab's brain phantom, from the ``.npz`` copy or MRiLab's own ``.mat`` file.
``segmentation:PATH``
    A segmented brain or head: a NIfTI label map, a 4-D NIfTI or ``.npz`` of tissue
    fractions (:mod:`.segmentation`), mixed with a tissue table as the MNI152 head is.
``freesurfer:PATH``
    A FreeSurfer-labelled segmentation (``aseg.mgz``, ``aparc+aseg.mgz``, SynthSeg's
    output, a voxelmorph ``.npz``): :mod:`.freesurfer`.
"""

from __future__ import annotations

from .base import Phantom, brain_mask_from_maps
from .loading import load_phantom
from .random_subject import random_bias_field, random_noise_level, random_subject

__all__ = ["Phantom", "brain_mask_from_maps", "load_phantom", "random_bias_field",
           "random_noise_level", "random_subject"]
