"""The peak a rendered image is normalized by, its calibration on the input, and the
sustained peak above which a joint render's lone voxels are lowered (:func:`clip_overshoot`).

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

Renders are given in the input's units: the maps' signal times the factor that the maps'
signal at the input's own acquisition needs to match the input (:func:`input_gain`, one
for a volume). A single-image render is clipped at each slice's
peak; a joint fit's is not, but fit noise lifts a few of its voxels above their neighbours, and
:func:`clip_overshoot` lowers them by what that noise explains, down to the plane's
:func:`sustained_peak` at most.

The normalization's functions take NumPy arrays or torch tensors and return the same
kind; :func:`sustained_peak` and :func:`clip_overshoot` take NumPy arrays.
"""

from __future__ import annotations

import numpy as np

from .parallel import over_planes

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


#: Most voxels :func:`gain_voxels` and :func:`input_gain` read their thresholds and ratios from.
GAIN_SAMPLE = 500_000


def _sampled(x) -> np.ndarray:
    """``x`` flattened, every n-th voxel so that at most :data:`GAIN_SAMPLE` remain."""
    flat = np.asarray(x).reshape(-1)
    return flat[::max(1, flat.size // GAIN_SAMPLE)]


def gain_voxels(signal, image) -> np.ndarray:
    """Where a ratio of ``image`` to ``signal`` (the maps at the image's acquisition; any
    shapes alike) tells the gain: both finite (measured), the signal above a tenth of its
    maximum and the image above a tenth of its 99th percentile (both read from a sample of
    at most :data:`GAIN_SAMPLE` voxels). The image's condition keeps out background the
    maps read as tissue (an inversion recovery's noise near its null, say), the signal's
    voxels the maps hold dark."""
    s, i = np.abs(np.asarray(signal)), np.asarray(image)
    s_few, i_few = np.abs(_sampled(s)).astype(np.float64), _sampled(i).astype(np.float64)
    known_few = np.isfinite(s_few) & np.isfinite(i_few)
    if not known_few.any():
        return np.zeros(s.shape, bool)
    s_cut, i_cut = 0.1 * s_few[known_few].max(), 0.1 * np.percentile(i_few[known_few], 99)
    with np.errstate(invalid="ignore"):  # NaN compares False: not measured
        return np.isfinite(s) & np.isfinite(i) & (s > s_cut) & (i > i_cut)


def input_gain(signal, image) -> float:
    """The one factor that brings ``signal`` (maps rendered at ``image``'s own acquisition,
    any scale) to ``image``'s units: the median ratio of the image to the signal over
    :func:`gain_voxels`, from a sample of at most :data:`GAIN_SAMPLE` voxels (the one its
    thresholds come from). 0 where there are none. One factor for a whole volume, as one
    receiver gain is."""
    s, i = np.abs(_sampled(signal)).astype(np.float64), _sampled(image).astype(np.float64)
    return _median_ratio(s, i, gain_voxels(s, i))


def gain_and_voxels(signal, image) -> tuple[float, np.ndarray]:
    """:func:`input_gain` and :func:`gain_voxels` of the same arrays, the voxels chosen
    once (the gain from the sample of them its thresholds come from)."""
    use = gain_voxels(signal, image)
    s, i = np.abs(_sampled(signal)).astype(np.float64), _sampled(image).astype(np.float64)
    return _median_ratio(s, i, _sampled(use)), use


def _median_ratio(s: np.ndarray, i: np.ndarray, use: np.ndarray) -> float:
    return float(np.median(i[use] / s[use])) if use.any() else 0.0


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


#: Of the 9 voxels of a 3x3 in-plane neighbourhood, how many must reach a level for
#: :func:`sustained_peak` (the neighbourhood's median).
SUSTAINED_OF_9 = 5
#: How many of its standard errors :func:`clip_overshoot` may take off a voxel (chosen on
#: training subjects, training/RESULTS.md "Lone voxels above a render's sustained peak").
OVERSHOOT_SDS = 1.0


def _window_counts(mask):
    """Per interior 3x3 window of each plane (..., H, W), how many of its voxels are set:
    (..., H - 2, W - 2)."""
    m = mask.view(np.uint8)
    rows = m[..., :-2] + m[..., 1:-1] + m[..., 2:]
    return rows[..., :-2, :] + rows[..., 1:-1, :] + rows[..., 2:, :]


def _window_values(planes, index):
    """The 9 values of the interior 3x3 windows at ``index`` (plane, row, col of the
    window's corner) of ``planes`` (n, H, W): (len, 9)."""
    p, r, c = index
    return np.stack([planes[p, r + dy, c + dx] for dy in range(3) for dx in range(3)], axis=-1)


def _window_minima(planes):
    """The minimum of each interior 3x3 window of each plane (n, H, W): (n, H - 2, W - 2)."""
    rows = np.minimum(np.minimum(planes[:, :, :-2], planes[:, :, 1:-1]), planes[:, :, 2:])
    return np.minimum(np.minimum(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])


#: Candidate windows :func:`_median_peak` takes the exact median of; with more, it first
#: raises each plane's floor to the best median of a sample of them.
MEDIAN_CANDIDATES = 20000


def _median_peak(planes, floor):
    """The maximum 3x3 median of each plane (n, H, W), given ``floor``, a level that the
    median of some window of each plane reaches (-inf where the answer may be -inf).

    A window whose median is above a level holds :data:`SUSTAINED_OF_9` voxels above
    it, so only those windows are taken exactly; while they are many, each plane's floor
    is first raised to the best median of a sample of them.
    """
    floor = np.asarray(floor, np.float32).copy()
    for _ in range(4):
        index = np.nonzero(_window_counts(planes > floor[:, None, None]) >= SUSTAINED_OF_9)
        if len(index[0]) <= MEDIAN_CANDIDATES:
            break
        sample = tuple(i[::len(index[0]) // (MEDIAN_CANDIDATES // 4)] for i in index)
        np.maximum.at(floor, sample[0], _window_median(planes, sample))
    if len(index[0]):
        np.maximum.at(floor, index[0], _window_median(planes, index))
    return floor


def _window_median(planes, index):
    """The :data:`SUSTAINED_OF_9`-th highest of the 3x3 windows at ``index``."""
    return np.partition(_window_values(planes, index), 9 - SUSTAINED_OF_9, axis=-1)[:, 9 - SUSTAINED_OF_9]


def sustained_peak(images) -> np.ndarray:
    """Per plane (the last two axes), the brightest level that :data:`SUSTAINED_OF_9` of
    the 9 voxels of some 3x3 neighbourhood reach: the maximum of the plane's 3x3 median.

    A voxel above it overshoots every neighbourhood it is in: fit noise in a render from
    fitted maps, or a structure too thin to fill five of nine voxels anywhere (a line
    under two voxels wide, a lone bright voxel of texture). NaN counts as absent. Planes
    under 3x3, or without a finite voxel, give their maximum (NaN where none).
    """
    x = np.asarray(images, np.float32)
    lead, (h, w) = x.shape[:-2], x.shape[-2:]
    if not x.size:
        return np.full(lead, np.nan, np.float32)  # no plane, or planes without a voxel
    flat = x.reshape(-1, h, w)
    return np.concatenate(over_planes(lambda rows: _plane_peaks(flat[rows]), len(flat))).reshape(lead)


def _plane_peaks(x) -> np.ndarray:
    """:func:`sustained_peak` of each plane of ``x`` (n, H, W)."""
    planes = np.where(np.isfinite(x), x, -np.inf)
    top = planes.reshape(len(planes), -1).max(-1)
    if min(planes.shape[-2:]) < 3:
        return np.where(np.isfinite(top), top, np.nan)
    # the brightest window's minimum: no window's median above it is missed
    level = _median_peak(planes, _window_minima(planes).reshape(len(planes), -1).max(-1))
    return np.where(np.isfinite(level), level, np.where(np.isfinite(top), top, np.nan))


def clip_overshoot(images, spread=None) -> np.ndarray:
    """``images`` with each plane's voxels above its :func:`sustained_peak` brought down
    towards it (NaN stays NaN).

    ``spread``, if given, is a callable that takes the flat indices of those voxels and
    returns each one's standard error: a voxel is then lowered by at most
    :data:`OVERSHOOT_SDS` of them (never below the level), so what its error cannot
    explain stays. Without it, they are clipped to the level.
    """
    x = np.asarray(images, np.float32)
    if x.ndim < 2:
        return x
    level = sustained_peak(x)
    over = np.flatnonzero(x > level[..., None, None])
    if not over.size:
        return x
    out = x.copy()
    flat, top = out.reshape(-1), level.reshape(-1)[over // (x.shape[-2] * x.shape[-1])]  # each voxel's plane
    lowered = top if spread is None else flat[over] - OVERSHOOT_SDS * np.asarray(spread(over), np.float32)
    flat[over] = np.maximum(top, lowered)
    return out
