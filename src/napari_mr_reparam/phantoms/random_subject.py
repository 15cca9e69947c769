"""Random subjects for training variety, from any base phantom, fully seeded.

A subject is the base anatomy under a smooth random deformation (plus a small global
scale and in-plane rotation) with jittered tissue values: T1, T2, T2* and PD are
multiplied by smooth log-normal fields (a global factor and a gentle spatial part).
For the MNI152 head, a random tissue table can be drawn first. Acquisition effects
(bias field, noise level) are not properties of the subject: :func:`random_bias_field`
and :func:`random_noise_level` draw them for the simulator.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .base import Phantom

_COARSE = 8  # displacement and jitter fields are drawn on a grid this many times coarser


def _rng(seed_or_rng) -> np.random.Generator:
    return seed_or_rng if isinstance(seed_or_rng, np.random.Generator) else np.random.default_rng(seed_or_rng)


def _smooth_field(shape, rng, coarse=_COARSE) -> np.ndarray:
    """A smooth random field with unit peak magnitude, drawn coarse and zoomed up."""
    small = [max(2, s // coarse) for s in shape]
    noise = ndimage.gaussian_filter(rng.standard_normal(small).astype(np.float32), 1.0)
    noise /= max(float(np.abs(noise).max()), 1e-6)
    return ndimage.zoom(noise, [s / c for s, c in zip(shape, small)], order=1)[
        tuple(slice(0, s) for s in shape)]


def _coordinates(shape, rng, deform_vox: float, scale: float, angle: float) -> np.ndarray:
    z, y, x = np.indices(shape, dtype=np.float32)
    cz, cy, cx = [(s - 1) / 2 for s in shape]
    cos, sin = np.cos(angle), np.sin(angle)
    yy, xx = (y - cy) / scale, (x - cx) / scale
    coords = np.stack([(z - cz) / scale + cz, cos * yy - sin * xx + cy, sin * yy + cos * xx + cx])
    for axis in range(3):
        coords[axis] += deform_vox * _smooth_field(shape, rng)
    return coords


def random_subject(base: Phantom, rng, *, deform_mm: float = 4.0, value_jitter: float = 0.10,
                   tables=None) -> Phantom:
    """A randomly deformed copy of ``base`` with jittered tissue values.

    Parameters
    ----------
    base : Phantom
    rng : int or numpy.random.Generator
        Seed; the same seed gives byte-identical output.
    deform_mm : float
        Largest smooth displacement.
    value_jitter : float
        Standard deviation of the global log-normal factor on T1/T2/T2* (PD gets half);
        the spatial part has half of it again.
    tables : list of str, optional
        For the MNI152 head, tissue tables to draw from before the jitter.
    """
    seed = rng if isinstance(rng, (int, np.integer)) else None
    rng = _rng(rng)
    maps = {k: getattr(base, k) for k in ("pd", "t1", "t2", "t2star")}
    if tables and base.name.startswith("mni152"):
        from .mni152 import maps_from_fractions, mni152_fractions
        from ..tissues import get_table

        maps = maps_from_fractions(mni152_fractions(), get_table(str(rng.choice(list(tables)))))
    coords = _coordinates(base.shape, rng, deform_mm / base.voxel_size_mm[1],
                          scale=float(rng.uniform(0.95, 1.05)), angle=float(np.radians(rng.uniform(-5, 5))))
    warped = {k: ndimage.map_coordinates(v, coords, order=1, mode="constant").astype(np.float32)
              for k, v in maps.items()}
    mask = base.mask()
    mask = ndimage.map_coordinates(mask.astype(np.float32), coords, order=0, mode="constant") > 0.5
    for key, sd in (("t1", value_jitter), ("t2", value_jitter), ("t2star", value_jitter), ("pd", value_jitter / 2)):
        factor = np.exp(rng.normal(0, sd) + (sd / 2) * _smooth_field(base.shape, rng)).astype(np.float32)
        warped[key] = warped[key] * factor
    warped["pd"] = np.clip(warped["pd"], 0, 1)
    warped["t2star"] = np.minimum(warped["t2star"], warped["t2"])
    name = f"{base.name}+random({seed})" if seed is not None else f"{base.name}+random"
    return Phantom(**warped, voxel_size_mm=base.voxel_size_mm, name=name, brain_mask=mask)


def random_bias_field(shape, rng, strength: float = 0.2) -> np.ndarray:
    """A smooth multiplicative receive-coil field, mean about 1, within 1 +- ``strength``."""
    field = _smooth_field(shape, _rng(rng), coarse=max(shape) // 3 or 1)
    return (1.0 + strength * field).astype(np.float32)


def random_noise_level(rng, low: float = 0.0, high: float = 0.03) -> float:
    """A noise standard deviation relative to the image maximum, uniform in [low, high]."""
    return float(_rng(rng).uniform(low, high))
