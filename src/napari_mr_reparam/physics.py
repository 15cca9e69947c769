"""MR signal equations (magnitude), for numpy arrays and torch tensors alike.

All times (TE, TR, TI, T1, T2, T2*) share one unit; the project uses milliseconds.
Voxels with a non-positive relaxation time (background, no tissue) give zero signal.
The torch path is differentiable with respect to every argument.

References: McRobbie et al., *MRI from Picture to Proton*, p. 69; Tofts, ISMRM 2009, eq. 7.
"""

from __future__ import annotations

import math

import numpy as np

SEQUENCES = ("spin_echo", "inversion_recovery", "gradient_echo")
#: Sequences an input image can come from: the targets' and the MPRAGE-style T1-weighted
#: scan (:func:`mprage`), the most common research acquisition.
INPUT_SEQUENCES = (*SEQUENCES, "mprage")
#: MPRAGE readout: spacing of the gradient-echo pulses (ms) and pulses per inversion
#: (one per partition of a 176-partition 1 mm volume), as in common 3 T protocols.
MPRAGE_ECHO_SPACING_MS = 7.0
MPRAGE_READOUTS = 176


def _prepare(*values):
    """Return the array module and the values as arrays (or tensors) of one dtype."""
    tensors = [v for v in values if type(v).__module__.startswith("torch")]
    if tensors:
        import torch

        ref = tensors[0]
        dtype = ref.dtype if ref.is_floating_point() else torch.float32
        return torch, [torch.as_tensor(v, dtype=dtype, device=ref.device) for v in values]
    arrays = [np.asarray(v) for v in values]
    dtype = np.result_type(np.float32, *[a.dtype for a in arrays])
    return np, [a.astype(dtype, copy=False) for a in arrays]


def _decay(xp, time, constant):
    """exp(-time / constant), and 0 where ``constant`` <= 0."""
    positive = constant > 0
    safe = xp.where(positive, constant, xp.ones_like(constant))
    return xp.where(positive, xp.exp(-time / safe), xp.zeros_like(safe))


def spin_echo(pd, t1, t2, te, tr):
    """Spin-echo (90-180) signal: ``PD (1 - exp(-TR/T1)) exp(-TE/T2)``.

    Parameters
    ----------
    pd, t1, t2 : array or tensor
        Proton density (relative) and relaxation times, broadcastable.
    te, tr : float, array or tensor
        Echo and repetition time, in the unit of ``t1`` and ``t2``.
    """
    xp, (pd, t1, t2, te, tr) = _prepare(pd, t1, t2, te, tr)
    recovery = (t1 > 0) * (1 - _decay(xp, tr, t1))
    return pd * recovery * _decay(xp, te, t2)


def inversion_recovery(pd, t1, t2, te, tr, ti):
    """Inversion-recovery (180-90-180) magnitude signal.

    ``|PD (1 - 2 exp(-TI/T1) + exp(-TR/T1)) exp(-TE/T2)|``; a tissue is nulled at
    ``TI = T1 ln 2`` when TR >> T1 (FLAIR nulls CSF this way).
    """
    xp, (pd, t1, t2, te, tr, ti) = _prepare(pd, t1, t2, te, tr, ti)
    longitudinal = (t1 > 0) * (1 - 2 * _decay(xp, ti, t1) + _decay(xp, tr, t1))
    return xp.abs(pd * longitudinal * _decay(xp, te, t2))


def gradient_echo(pd, t1, t2star, te, tr, flip_deg):
    """Spoiled gradient-echo (FLASH) signal.

    ``PD sin(a) (1 - E1) / (1 - cos(a) E1) exp(-TE/T2*)`` with ``E1 = exp(-TR/T1)``
    and the flip angle ``a`` in degrees.
    """
    xp, (pd, t1, t2star, te, tr, flip) = _prepare(pd, t1, t2star, te, tr, flip_deg)
    alpha = flip * (math.pi / 180.0)
    e1 = _decay(xp, tr, t1)
    steady = (t1 > 0) * xp.sin(alpha) * (1 - e1) / (1 - xp.cos(alpha) * e1)
    return pd * steady * _decay(xp, te, t2star)


def mprage(pd, t1, t2star, te, tr, ti, flip_deg, echo_spacing=MPRAGE_ECHO_SPACING_MS,
           readouts=MPRAGE_READOUTS):
    """MPRAGE (magnetization-prepared rapid gradient echo) magnitude signal, steady state.

    Each cycle of length ``tr`` (inversion to inversion) inverts the magnetization, waits,
    then reads ``readouts`` spoiled gradient echoes ``echo_spacing`` apart (flip
    ``flip_deg``); ``ti`` runs from the inversion to the centre of k-space, reached
    halfway through the readout (linear ordering). Solving the cycle for its steady
    state (Deichmann et al., MRM 2000) gives the longitudinal magnetization at the centre
    ``Mc``; the signal is ``|PD Mc sin(a)| exp(-TE/T2*)``. Typical 3 T settings:
    TI 900-1100 ms, TR 2000-2500 ms, flip 8-9 degrees, TE 2-4 ms.
    """
    xp, (pd, t1, t2star, te, tr, ti, flip) = _prepare(pd, t1, t2star, te, tr, ti, flip_deg)
    alpha = flip * (math.pi / 180.0)
    half = readouts / 2.0
    wait = ti - half * echo_spacing  # inversion to the first readout pulse
    rest = tr - wait - readouts * echo_spacing  # last readout pulse to the next inversion
    e1 = _decay(xp, echo_spacing, t1)
    cos_e1 = xp.cos(alpha) * e1
    steady = (1 - e1) / (1 - cos_e1)
    a, d = _decay(xp, xp.clip(wait, 0, None), t1), _decay(xp, xp.clip(rest, 0, None), t1)
    b = cos_e1**readouts
    before = (1 - d + d * steady * (1 - b) + d * b * (1 - a)) / (1 + a * b * d)  # before inversion
    start = 1 - a - a * before  # at the first readout pulse
    centre = steady + (start - steady) * cos_e1**half
    return xp.abs(pd * (t1 > 0) * centre * xp.sin(alpha) * _decay(xp, te, t2star))


def ernst_angle_deg(tr, t1):
    """Flip angle (degrees) that maximizes spoiled gradient-echo signal."""
    return float(np.degrees(np.arccos(np.exp(-float(tr) / float(t1)))))


def render(sequence, pd, t1, t2, te, tr, ti=None, flip_deg=None, t2star=None):
    """Dispatch to a signal equation by name (see :data:`INPUT_SEQUENCES`).

    ``ti`` is required for ``inversion_recovery``, ``flip_deg`` for ``gradient_echo``
    (which uses ``t2star`` when given and ``t2`` otherwise), both for ``mprage``.
    """
    if sequence == "spin_echo":
        return spin_echo(pd, t1, t2, te, tr)
    if sequence == "inversion_recovery":
        if ti is None:
            raise ValueError("inversion recovery needs an inversion time (TI)")
        return inversion_recovery(pd, t1, t2, te, tr, ti)
    if sequence == "gradient_echo":
        if flip_deg is None:
            raise ValueError("gradient echo needs a flip angle")
        return gradient_echo(pd, t1, t2 if t2star is None else t2star, te, tr, flip_deg)
    if sequence == "mprage":
        if ti is None or flip_deg is None:
            raise ValueError("MPRAGE needs an inversion time (TI) and a flip angle")
        return mprage(pd, t1, t2 if t2star is None else t2star, te, tr, ti, flip_deg)
    raise ValueError(f"unknown sequence {sequence!r}; known: {', '.join(INPUT_SEQUENCES)}")

