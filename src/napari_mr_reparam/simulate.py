"""The simulator: render axial slice stacks of a phantom at any acquisition.

The pipeline mirrors how the paper's images were made: the signal equation on the
phantom's own grid, each image normalized to its own maximum (optionally quantized to
8 bits, as the exported images were) and resized bilinearly to the network's size.
Times are in milliseconds.
"""

from __future__ import annotations

import numpy as np

from . import physics
from .acquisition import Acquisition, validate_times  # noqa: F401  (the simulator's inputs)
from .phantoms import Phantom
from .resize import resize_slices


def render_slices(phantom: Phantom, acq: Acquisition, slices=None) -> np.ndarray:
    """Raw signal of axial slices ``slices`` (all when None), shape (n, ny, nx), float32.

    A phantom with a :attr:`~Phantom.mixture` renders each voxel as the sum of its
    tissues' signals; any other from its maps."""
    index = slice(None) if slices is None else np.asarray(slices)
    if phantom.mixture is not None:
        return phantom.mixture.render(acq, index)
    p = {k: getattr(phantom, k)[index] for k in ("pd", "t1", "t2", "t2star")}
    signal = physics.render(
        acq.sequence, p["pd"], p["t1"], p["t2"], acq.te_ms, acq.tr_ms,
        ti=acq.ti_ms, flip_deg=acq.flip_deg, t2star=p["t2star"], ti2=acq.ti2_ms,
    )
    return np.asarray(signal, dtype=np.float32)


def normalize_to_max(images: np.ndarray) -> np.ndarray:
    """Scale each image (over the last two axes) to a maximum of 1; blank images stay 0."""
    peak = images.max(axis=(-2, -1), keepdims=True)
    return np.divide(images, peak, out=np.zeros_like(images), where=peak > 0)


def quantize_8bit(images01: np.ndarray) -> np.ndarray:
    """Round images in [0, 1] to uint8 (0-255), as the paper's 8-bit exports."""
    return np.clip(np.rint(images01 * 255.0), 0, 255).astype(np.uint8)


def pad_to_square(images: np.ndarray) -> np.ndarray:
    """Zero-pad the last two axes to a square, centred."""
    side = max(images.shape[-2:])
    return pad_to_shape(images, (side, side))


def pad_to_shape(images: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Zero-pad the last two axes, centred, to ``shape`` (h, w), at least their own size."""
    dh, dw = shape[0] - images.shape[-2], shape[1] - images.shape[-1]
    pad = [(0, 0)] * (images.ndim - 2) + [(dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2)]
    return np.pad(images, pad)


def add_rician_noise(images: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of the image plus complex Gaussian noise of standard deviation ``sigma``."""
    if sigma <= 0:
        return images
    real = images + rng.normal(0.0, sigma, images.shape).astype(np.float32)
    imag = rng.normal(0.0, sigma, images.shape).astype(np.float32)
    return np.hypot(real, imag).astype(np.float32)


def choose_slices(phantom: Phantom, count: int, span=(0.25, 0.80)) -> np.ndarray:
    """``count`` axial slice indices evenly spread over the brain.

    ``span`` gives the covered fraction of the brain's inferior-superior extent, so the
    slices avoid the neck and the vertex where little brain is left.
    """
    brain = np.flatnonzero(phantom.mask().any(axis=(1, 2)))
    if brain.size == 0:
        first, last = phantom.head_slices()
    else:
        first, last = int(brain[0]), int(brain[-1])
    lo = first + span[0] * (last - first)
    hi = first + span[1] * (last - first)
    return np.unique(np.rint(np.linspace(lo, hi, count)).astype(int))


def simulate_images(
    phantom: Phantom,
    acq: Acquisition,
    slices=None,
    size: int | None = 256,
    *,
    noise_sigma: float = 0.0,
    bias_field: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
    quantize: bool = True,
    pad_square: bool = False,
) -> np.ndarray:
    """Images of ``slices`` at ``acq`` as the network sees them.

    Steps: signal equation, optional bias field (multiplicative, same grid), optional
    Rician noise (``noise_sigma`` relative to the image maximum), normalization of each
    image to its own maximum, optional square padding, bilinear resize to ``size``,
    and (``quantize``) rounding to 8 bits.

    Returns uint8 images (0-255) when ``quantize``, else float32 in [0, 1].
    """
    images = render_slices(phantom, acq, slices)
    if bias_field is not None:
        images = images * bias_field[slice(None) if slices is None else np.asarray(slices)]
    images = normalize_to_max(images)
    if noise_sigma > 0:
        images = normalize_to_max(add_rician_noise(images, noise_sigma, rng or np.random.default_rng()))
    if pad_square:
        images = pad_to_square(images)
    if size is not None:
        images = np.clip(resize_slices(images, size), 0.0, 1.0)
    return quantize_8bit(images) if quantize else images.astype(np.float32)


def slice_masks(phantom: Phantom, slices, size: int | None = 256, pad_square: bool = False) -> np.ndarray:
    """Brain masks of ``slices``, resized like the images (nearest: > 0.5 after bilinear)."""
    masks = phantom.mask()[np.asarray(slices)].astype(np.float32)
    if pad_square:
        masks = pad_to_square(masks)
    if size is not None:
        masks = resize_slices(masks, size)
    return masks > 0.5
