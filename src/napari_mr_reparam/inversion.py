"""The inversion efficiency of a series' inversion-recovery images, from three or more TIs."""

from __future__ import annotations

import math

import numpy as np

from .fit_information import checked_values, signal_and_slopes
from .image_noise import bright_level

#: Inversion efficiencies tried for inversion-recovery inputs (:func:`inversion_efficiency`).
INVERSION_EFFICIENCIES = tuple(round(0.5 + 0.02 * i, 2) for i in range(26))
#: Fewest distinct inversion times from which the inversion efficiency is estimated (one
#: efficiency for the whole object: per voxel, PD and T1 take two of three TIs' values, and
#: the third over all voxels tells the efficiency).
MIN_INVERSION_TIMES = 3


def inversion_efficiency(volumes, acquisitions, body=None, sample: int = 20000) -> float:
    """The inversion efficiency k of the inversion-recovery inputs (one for all of them).

    A real inversion pulse (its slice profile, the transmit field) leaves ``-k Mz`` with k
    below 1; the ideal equation (k = 1) then puts the null too early and makes T1 short.
    Estimated where the inputs hold at least :data:`MIN_INVERSION_TIMES` distinct TIs: for
    each k of :data:`INVERSION_EFFICIENCIES`, every voxel of (a sample of) the object takes
    its best T1 of a fine grid (PD in closed form, T2 at a typical 100 ms); the k with the
    least misfit over the object wins. Otherwise 1.
    """
    import torch

    acqs = [checked_values(a) for a in acquisitions]
    ir = [i for i, a in enumerate(acqs) if a.sequence == "inversion_recovery"]
    if len({acqs[i].ti for i in ir}) < MIN_INVERSION_TIMES:
        return 1.0
    arrays = [np.nan_to_num(np.asarray(volumes[i], np.float32), posinf=0.0, neginf=0.0).reshape(-1) for i in ir]
    if body is None:
        peak = max(bright_level(a) for a in arrays)
        inside = np.flatnonzero(np.max(arrays, axis=0) > 0.05 * peak)
    else:
        inside = np.flatnonzero(np.asarray(body).reshape(-1))
    if inside.size == 0:
        return 1.0
    inside = inside[:: max(1, inside.size // sample)]
    s = torch.from_numpy(np.stack([a[inside] for a in arrays]).astype(np.float64))  # (n, V)
    t1 = torch.exp(torch.linspace(math.log(10.0), math.log(6000.0), 240, dtype=torch.float64))
    t2 = torch.full_like(t1, 100.0)
    energy = (s * s).sum(0)
    misfits = []
    for k in INVERSION_EFFICIENCIES:
        basis = torch.stack([signal_and_slopes(acqs[i]._replace(inversion=k), t1, t2, torch)[0] for i in ir])
        basis = basis / basis.norm(dim=0, keepdim=True).clamp_min(1e-12)
        best = (s.T @ basis).clamp_min(0).max(dim=1).values
        misfits.append(float((energy - best**2).sum()))
    return float(INVERSION_EFFICIENCIES[int(np.argmin(misfits))])
