"""The peak a rendered image is normalized by, and its calibration on the input.

Protocol images are normalized to their own maximum, so a rendered target must be
divided by an estimate of the true image's maximum. The rendered image's own maximum is
a biased estimate: it picks the voxel whose error happens to be largest, and where the
true image has many voxels at its maximum (a segmented phantom's pure tissue, or a
mixture peak shared by many border voxels) the rendered maximum sits above them all, so
every other voxel comes out too dark. The mean of the ``count`` brightest voxels is
less biased there and no better where the maximum is a single voxel; which count fits is
told by the input itself: :func:`calibrated_count` picks the count whose normalization
of the maps' render *at the input's own acquisition* best reproduces the input, and the
renders at every other acquisition use it too. No target is looked at.

Every function takes NumPy arrays or torch tensors and returns the same kind.
"""

from __future__ import annotations

import numpy as np

#: The largest count tried, as a share of an image's voxels (counts are powers of two).
MAX_COUNT_SHARE = 1 / 32


def candidate_counts(n_voxels: int) -> list[int]:
    """Counts :func:`calibrated_count` chooses from: 1, 2, 4, ... up to
    :data:`MAX_COUNT_SHARE` of ``n_voxels``."""
    counts, c = [1], 2
    while c <= n_voxels * MAX_COUNT_SHARE:
        counts.append(c)
        c *= 2
    return counts


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def _brightest_sums(images, most: int):
    """Running sums of each image's ``most`` brightest voxels, brightest first: (..., most)."""
    flat = images.reshape(*images.shape[:-2], -1)
    most = min(most, flat.shape[-1])
    if most == 1:  # the maximum alone
        return flat.amax(-1, keepdim=True) if _is_torch(flat) else flat.max(-1, keepdims=True)
    if _is_torch(flat):
        return flat.topk(most, dim=-1).values.cumsum(-1)
    top = np.partition(flat, flat.shape[-1] - most, axis=-1)[..., -most:]
    return np.cumsum(np.sort(top, axis=-1)[..., ::-1], axis=-1)


def peak(images, count=1):
    """Mean of the ``count`` brightest voxels of each image (over the last two axes).

    ``count`` is one number, or one per image (broadcast against ``images.shape[:-2]``).
    Returns ``images.shape[:-2]``; ``count`` 1 is the maximum.
    """
    lead = images.shape[:-2]
    counts = np.broadcast_to(np.asarray(_plain(count), dtype=np.int64), lead)
    counts = np.clip(counts, 1, images.shape[-2] * images.shape[-1])
    sums = _brightest_sums(images, int(counts.max(initial=1)))
    index = counts[..., None] - 1
    if _is_torch(sums):
        import torch

        chosen = torch.gather(sums, -1, torch.as_tensor(index, device=sums.device))[..., 0]
        return chosen / torch.as_tensor(counts, dtype=sums.dtype, device=sums.device)
    return np.take_along_axis(sums, index, axis=-1)[..., 0] / counts


def normalize(images, count=1):
    """``images`` divided by their :func:`peak` (blank images stay 0)."""
    p = peak(images, count)[..., None, None]
    if _is_torch(images):
        return images / p.clamp_min(1e-8)
    return np.divide(images, p, out=np.zeros_like(images), where=p > 0)


def calibrated_count(rendered_input, image):
    """Per image, the count from :func:`candidate_counts` whose :func:`normalize` of
    ``rendered_input`` (the maps rendered at the input's acquisition, any scale) best
    reproduces ``image`` (the input, normalized to its maximum), in squared error after
    clipping at 1 as scored images are. Returns integers of shape ``image.shape[:-2]``."""
    counts = candidate_counts(image.shape[-2] * image.shape[-1])
    sums = _brightest_sums(rendered_input, counts[-1])
    errors = []
    for c in counts:
        level = (sums[..., c - 1] / c)[..., None, None]
        level = level.clamp_min(1e-8) if _is_torch(level) else np.maximum(level, 1e-8)
        err = ((rendered_input / level).clip(max=1.0) - image) ** 2
        errors.append(err.reshape(*err.shape[:-2], -1).mean(-1))
    if _is_torch(rendered_input):
        import torch

        best = torch.stack(errors, -1).argmin(-1).cpu().numpy()
    else:
        best = np.stack(errors, -1).argmin(-1)
    return np.asarray(counts, np.int64)[best]


def _plain(count):
    """A count given as a tensor, as NumPy."""
    return count.detach().cpu().numpy() if _is_torch(count) else count
