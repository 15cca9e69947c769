"""The noise of an image, measured in the image itself.

The joint fit (:mod:`napari_mr_reparam.joint_fit`) weighs each input by its noise, scales
its smoothing (:mod:`napari_mr_reparam.edge_smoothing`) and tells what the inputs determine
by it. :func:`estimate_noise` measures each input's noise in the background where the
images have one (Gaussian in a signed image, Rayleigh or chi in a magnitude image), or
inside the object from the difference of two inputs where the scanner masked the
background; :func:`noise_on_own_grids` measures each group of inputs on the grid it was
acquired on. Noise levels are fractions of each image's bright signal
(:func:`bright_level`).
"""

from __future__ import annotations

import math

import numpy as np

#: Noise assumed (a fraction of each input's bright signal) where the background does not
#: give it (:func:`estimate_noise`), and the fewest background voxels it is measured from.
DEFAULT_NOISE = 0.01
MIN_BACKGROUND_VOXELS = 1000
#: The least noise a fit takes (of each input's bright signal). Its misfit is summed in
#: single precision: for an image known more finely (a noiseless simulation), roundoff,
#: not the prior, would choose where the inputs leave a direction open (a voxel only one
#: input measured took T2 of 5 ms and PD a billion times the image's). At or below every
#: real scanner's noise measured here (0.10-0.95 %), about a 10-bit image's quantization.
MIN_NOISE = 1e-3
#: Standard deviation of Rayleigh noise (a one-coil magnitude background) over its sigma.
RAYLEIGH_SPREAD = math.sqrt(2 - math.pi / 2)
#: A magnitude background with more voxels exactly 0 than this share was masked or
#: thresholded by the scanner: its noise is not measured there.
MAX_ZERO_BACKGROUND = 0.1


def bright_level(image: np.ndarray) -> float:
    """An image's bright signal: the 99.5th percentile of its finite values (of a sample of
    about 200 000 of them), 0 for an image with none. Noise levels are fractions of it."""
    keep = np.isfinite(image)
    finite = image.reshape(-1) if keep.all() else image[keep]  # no copy of a volume without NaN
    if finite.size == 0:
        return 0.0
    step = max(1, finite.size // 200_000)
    return float(np.percentile(finite[::step], 99.5))


def estimate_noise(volumes) -> list[float] | None:
    """Each input's noise, as a fraction of its bright signal (99.5th percentile).

    Measured in the background (the voxels below a tenth of the bright signal in every
    input) where it holds noise alone. A signed image (a real-valued reconstruction, a
    simulation: a fair share of the image is negative) has Gaussian noise, and its
    negative values are noise alone: sigma is their root mean square. A magnitude image's
    background level depends on how many receive coils were combined (one coil: Rayleigh,
    mean 1.25 sigma; a sum of squares over N coils: a chi distribution, mean near
    sqrt(2N) sigma), its spread does not (0.66 sigma for one coil, 0.71 for many): sigma is
    the spread (:func:`_background_spread`) over Rayleigh's 0.66. A background of which
    more than :data:`MAX_ZERO_BACKGROUND` is exactly 0 has been masked or thresholded by
    the scanner, and its noise is not the object's: with two or more inputs, each input's
    noise is then measured inside the object, from its difference with another input
    (:func:`_difference_noise`), at most :data:`DEFAULT_NOISE` (inputs of unlike contrast
    leave structure in their difference, which reads as noise: simulated skull-stripped
    brains read 1.6-8.6 times their noise). None where neither can tell: fewer than
    :data:`MIN_BACKGROUND_VOXELS` voxels to measure, or one input whose background is masked.
    """
    arrays = [_finite(np.asarray(v, np.float32)) for v in volumes]
    peaks = [bright_level(a) for a in arrays]
    if not arrays or min(peaks) <= 0:
        return None
    low = _common_background(arrays, peaks)
    out = []
    for i, (a, peak) in enumerate(zip(arrays, peaks)):
        background = a[low]
        negative = a[a < 0]
        if background.size >= MIN_BACKGROUND_VOXELS and negative.size > 0.2 * background.size:
            sigma = math.sqrt(float(np.mean(negative.astype(np.float64) ** 2)))
        elif background.size >= MIN_BACKGROUND_VOXELS and (background == 0).mean() <= MAX_ZERO_BACKGROUND:
            sigma = _background_spread(a, low) / RAYLEIGH_SPREAD
        elif len(arrays) > 1:  # structure the difference keeps reads as noise: at most the default
            sigma = min(_difference_noise(arrays, i, ~low), DEFAULT_NOISE * peak)
        else:
            return None
        if not sigma > 0:
            return None
        out.append(sigma / peak)
    return out


def _common_background(arrays, peaks) -> np.ndarray:
    """The voxels below a tenth of the bright signal (in magnitude) in every input."""
    low = np.ones(arrays[0].shape, bool)
    for a, peak in zip(arrays, peaks):
        level = np.float32(0.1 * peak)
        low &= a < level
        low &= a > -level  # |a| below a tenth of the peak, without a copy of |a|
    return low


def background_levels(volumes, peaks=None) -> list[float]:
    """Each input's level in the background (the median over the voxels of
    :func:`estimate_noise`'s background, on at most 16 evenly spaced slices), in its own
    units: a magnitude image combined from many receive coils sits several noise levels
    above 0 there (a chi distribution's mean, near sqrt(2N) sigma for N coils). 0 for each
    where the background is too small to tell, or where an input has no bright signal.
    ``peaks``: each input's :func:`bright_level`, where known."""
    arrays = [_finite(np.asarray(v, np.float32)) for v in volumes]
    peaks = [bright_level(a) for a in arrays] if peaks is None else [float(p) for p in peaks]
    if not arrays or min(peaks) <= 0:
        return [0.0] * len(arrays)
    arrays = list(_sample_slices(np.empty(arrays[0].shape, bool), *arrays)[1:])
    low = _common_background(arrays, peaks)
    if low.sum() < MIN_BACKGROUND_VOXELS:
        return [0.0] * len(arrays)
    return [max(0.0, float(np.median(a[low]))) for a in arrays]


def _finite(a: np.ndarray) -> np.ndarray:
    """``a`` with NaN as 0 and infinities as the largest finite values; ``a`` itself (no
    copy) where every value is finite already."""
    return a if np.isfinite(a).all() else np.nan_to_num(a)


def noise_on_own_grids(volumes) -> list[float | None]:
    """Each input's noise (:func:`estimate_noise`), measured on the grid it was acquired on:
    inputs that share a grid (one shape, one placement; or no placement and one shape) are
    measured together, each group apart. Resampling onto another grid averages a scan's
    background noise (trilinear weights at a half-voxel offset divide its spread by up to
    2.8) while adding the blur of its edges, so measured afterwards a resampled scan
    reads far quieter than it is: the fit then trusts it beyond what it holds, and takes
    its background for the object. A fine scan averaged onto coarser voxels does hold
    less noise there, but no less disagreement with the other inputs at edges: its own
    level is the weight that holds up (``benchmarks/bench_joint_grids.py``, the thick
    grid first). None for an input whose group cannot tell (the fit measures those on
    the common grid, as before)."""
    from .grids import acquired_on_one_grid

    out: list[float | None] = [None] * len(volumes)
    groups: list[list[int]] = []
    for i, volume in enumerate(volumes):
        group = next((g for g in groups if acquired_on_one_grid(volume, volumes[g[0]])), None)
        if group is None:
            groups.append([i])
        else:
            group.append(i)
    for group in groups:
        measured = estimate_noise([volumes[i].data for i in group])
        for i, value in zip(group, measured or [None] * len(group)):
            out[i] = value
    return out


def _in_plane(shape, size: int) -> tuple[int, ...]:
    return (1,) * (len(shape) - 2) + (size, size)


def _sample_slices(mask: np.ndarray, *arrays, most: int = 16):
    """At most ``most`` evenly spaced slices of a volume (all of a 2-D image)."""
    if mask.ndim < 3 or mask.shape[0] <= most:
        return (mask, *arrays)
    keep = np.linspace(0, mask.shape[0] - 1, most).round().astype(int)
    return (mask[keep], *(a[keep] for a in arrays))


def _robust_sd(values: np.ndarray) -> float:
    """Standard deviation from the median absolute deviation (1.4826 MAD)."""
    return 1.4826 * float(np.median(np.abs(values - np.median(values)))) if values.size else 0.0


def _background_spread(image, background) -> float:
    """Standard deviation of the background's voxels about their 3x3 in-plane mean (which
    removes the slow variation of the level across coils): the spread of the noise; 0
    where fewer than :data:`MIN_BACKGROUND_VOXELS` voxels lie deep in the background. A
    volume is measured on at most 16 evenly spaced slices."""
    from scipy.ndimage import binary_erosion, uniform_filter

    size = _in_plane(image.shape, 3)
    background, image = _sample_slices(background, image)
    deep = binary_erosion(background, structure=np.ones(size, bool))  # its 3x3 mean is background
    if deep.sum() < MIN_BACKGROUND_VOXELS:
        return 0.0
    a = image.astype(np.float64)
    rest = (a - uniform_filter(a, size))[deep]
    return _robust_sd(rest) / math.sqrt(8 / 9)  # a 3x3 mean takes 1/9 of white noise's variance


def _difference_noise(arrays, i: int, body) -> float:
    """Noise of input ``i`` measured inside the object: its difference with another input
    scaled to it (co-registered images of one object share its structure), less the 3x3
    in-plane mean, over the flattest half of the object's interior (the least gradient
    of that difference): the difference's spread, as one input's noise (both inputs'
    noise alike). The least over the other inputs (the one that shares most structure);
    0 where the interior is too small. A volume is measured on at most 16 evenly spaced
    slices."""
    from scipy.ndimage import binary_erosion, uniform_filter

    size3, size5 = _in_plane(body.shape, 3), _in_plane(body.shape, 5)
    body, a, *others = _sample_slices(body, arrays[i], *(o for j, o in enumerate(arrays) if j != i))
    inner = binary_erosion(body, structure=np.ones(_in_plane(body.shape, 7), bool))
    if inner.sum() < MIN_BACKGROUND_VOXELS:
        return 0.0
    a = a.astype(np.float64)
    best = math.inf
    for other in others:
        b = other.astype(np.float64)
        gain = float(a[inner] @ b[inner]) / max(float(b[inner] @ b[inner]), 1e-30)
        diff = a - gain * b
        rest = diff - uniform_filter(diff, size3)
        smooth = uniform_filter(diff, size5)
        slope = np.hypot(*np.gradient(smooth, axis=(-2, -1)))
        flat = inner & (slope <= np.median(slope[inner]))
        best = min(best, _robust_sd(rest[flat]) / math.sqrt(8 / 9) / math.sqrt(1 + gain * gain))
    return best if math.isfinite(best) else 0.0
