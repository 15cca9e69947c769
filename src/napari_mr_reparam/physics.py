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
#: Sequences the signal equations render (:func:`render`): the inputs' and double inversion
#: recovery (:func:`double_inversion_recovery`) and MP2RAGE (:func:`mp2rage`, two images
#: of one T1 map, here only; the command line, the widget and ``Acquisition`` take the
#: others, as ``napari_mr_reparam.acquisition.ACQUISITION_SEQUENCES`` lists them).
TARGET_SEQUENCES = (*INPUT_SEQUENCES, "double_inversion_recovery", "mp2rage")


def _prepare(*values):
    """Return the array module and the values as arrays (or tensors) of one dtype."""
    tensors = [v for v in values if type(v).__module__.startswith("torch")]
    if tensors:
        import torch

        ref = tensors[0]
        dtype = ref.dtype if ref.is_floating_point() else torch.float32
        return torch, [torch.as_tensor(v, dtype=dtype, device=ref.device) for v in values]
    # a plain number takes the arrays' precision (float32 maps stay float32: a render of a
    # volume in float64 costs a copy of each map and twice the passes); numbers alone, float64
    dtypes = [np.asarray(v).dtype for v in values if not isinstance(v, (int, float))]
    dtype = np.result_type(np.float32, *dtypes) if dtypes else np.float64
    return np, [np.asarray(v).astype(dtype, copy=False) for v in values]


def _decay(xp, time, constant):
    """exp(-time / constant), and 0 where ``constant`` <= 0 (or so small a time that the
    ratio overflows: exp(-inf) is 0, as it should be)."""
    positive = constant > 0
    if xp is np:  # in place, where it applies: two passes over the voxels rather than six
        out = np.zeros(np.broadcast_shapes(np.shape(time), np.shape(constant)), np.result_type(time, constant))
        with np.errstate(over="ignore"):
            np.divide(-np.asarray(time, out.dtype), constant, out=out, where=positive)
        return np.exp(out, out=out, where=positive)
    safe = xp.where(positive, constant, xp.ones_like(constant))
    return xp.where(positive, xp.exp(-time / safe), xp.zeros_like(safe))


def water_mean_time(water, water_log_time, floor=1e-6):
    """The one relaxation time that water mixed from several compartments reads as: the
    geometric mean of their times, each weighted by its share of the water.

    ``water`` is the summed water (PD x share) and ``water_log_time`` the summed water x
    log(time), over the compartments (tissues of a voxel, grid slices of a slab, pixels of
    a coarser pixel). 0 where no more than ``floor`` water is left.
    """
    xp, (water, water_log_time) = _prepare(water, water_log_time)
    has = water > floor
    safe = xp.where(has, water, xp.ones_like(water))
    return xp.where(has, xp.exp(water_log_time / safe), xp.zeros_like(safe))


def spin_echo(pd, t1, t2, te, tr):
    """Spin-echo (90-180) signal: ``PD (1 - exp(-TR/T1)) exp(-TE/T2)``.

    The short form, as the paper renders it: the refocusing pulse's term (``1 - 2
    exp(-(TR - TE/2)/T1) + exp(-TR/T1)`` in place of ``1 - exp(-TR/T1)``) is left out, which
    reads a T1-weighted setting (TE 15 / TR 500 ms) up to about 3 % bright and a setting of
    long TR alike.

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


def inversion_recovery(pd, t1, t2, te, tr, ti, efficiency=1.0):
    """Inversion-recovery (180-90-180) magnitude signal.

    ``|PD (1 - 2 exp(-TI/T1) + exp(-TR/T1)) exp(-TE/T2)|`` (the readout's refocusing term
    left out, as in :func:`spin_echo`); a tissue is nulled at
    ``TI = T1 ln 2`` when TR >> T1 (FLAIR nulls CSF this way). An inversion pulse that
    leaves ``-k Mz`` (``efficiency`` k below 1: a real pulse's slice profile and
    transmit field) gives ``|PD (1 - (1 + k) exp(-TI/T1) + k exp(-TR/T1)) exp(-TE/T2)|``.
    """
    xp, (pd, t1, t2, te, tr, ti) = _prepare(pd, t1, t2, te, tr, ti)
    k = float(efficiency)
    longitudinal = (t1 > 0) * (1 - (1 + k) * _decay(xp, ti, t1) + k * _decay(xp, tr, t1))
    return xp.abs(pd * longitudinal * _decay(xp, te, t2))


def gradient_echo(pd, t1, t2star, te, tr, flip_deg):
    """Spoiled gradient-echo (FLASH) magnitude signal.

    ``|PD sin(a) (1 - E1) / (1 - cos(a) E1)| exp(-TE/T2*)`` with ``E1 = exp(-TR/T1)``
    and the flip angle ``a`` in degrees (180 degrees: no signal).
    """
    xp, (pd, t1, t2star, te, tr, flip) = _prepare(pd, t1, t2star, te, tr, flip_deg)
    alpha = flip * (math.pi / 180.0)
    e1 = _decay(xp, tr, t1)
    steady = (t1 > 0) * xp.sin(alpha) * (1 - e1) / (1 - xp.cos(alpha) * e1)
    return xp.abs(pd * steady) * _decay(xp, te, t2star)


def mprage(pd, t1, t2star, te, tr, ti, flip_deg, echo_spacing=MPRAGE_ECHO_SPACING_MS,
           readouts=MPRAGE_READOUTS):
    """MPRAGE (magnetization-prepared rapid gradient echo) magnitude signal, steady state.

    Each cycle of length ``tr`` (inversion to inversion) inverts the magnetization, waits,
    then reads ``readouts`` spoiled gradient echoes ``echo_spacing`` apart (flip
    ``flip_deg``); ``ti`` runs from the inversion to the centre of k-space, reached
    halfway through the readout (linear ordering). Solving the cycle for its steady
    state (Deichmann et al., MRM 2000) gives the longitudinal magnetization at the centre
    ``Mc``; the signal is ``|PD Mc sin(a)| exp(-TE/T2*)``. Typical 3 T settings:
    TI 900-1100 ms, TR 2000-2500 ms, flip 8-9 degrees, TE 2-4 ms. Where half the train does
    not fit before ``ti`` or after it within ``tr`` (TI below 616 ms, or TR - TI below it,
    at the defaults), the train is the most pulses that fit (an even number, at least 2),
    still centred at ``ti``: a shorter TI then inverts the contrast, as it does on a scanner.
    """
    xp, (pd, t1, t2star, te, tr, ti, flip) = _prepare(pd, t1, t2star, te, tr, ti, flip_deg)
    alpha = flip * (math.pi / 180.0)
    readouts = xp.clip(2 * xp.floor(xp.minimum(ti, tr - ti) / echo_spacing), 2, readouts)
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


def double_inversion_recovery(pd, t1, t2, te, tr, ti1, ti2):
    """Double inversion-recovery (180-180-90-180) spin-echo magnitude signal.

    Two inversions, ``ti1`` and ``ti2`` before the excitation (``ti1`` > ``ti2``), each
    free relaxation ``Mz -> 1 - (1 - Mz) exp(-t/T1)`` and the excitation leaving
    ``Mz = 0``, in the steady state of repetition time ``tr``, give (Redpath and Smith,
    Br J Radiol 1994) ``|PD (1 - 2 exp(-TI2/T1) + 2 exp(-TI1/T1) - exp(-TR/T1))
    exp(-TE/T2)|``. Two tissues are nulled at once; the brain setting of the DIR preset
    (TR 11000, TI1 3400, TI2 400 ms) nulls T1 of 582 and 4212 ms (white matter and CSF at
    1.5 T), leaving grey matter.
    """
    xp, (pd, t1, t2, te, tr, ti1, ti2) = _prepare(pd, t1, t2, te, tr, ti1, ti2)
    longitudinal = (t1 > 0) * (1 - 2 * _decay(xp, ti2, t1) + 2 * _decay(xp, ti1, t1) - _decay(xp, tr, t1))
    return xp.abs(pd * longitudinal * _decay(xp, te, t2))


def mp2rage(t1, tr, ti1, ti2, flip1_deg, flip2_deg, echo_spacing=MPRAGE_ECHO_SPACING_MS,
            readouts=MPRAGE_READOUTS):
    """MP2RAGE uniform image (Marques et al., NeuroImage 2010), in [-0.5, 0.5].

    One inversion per cycle ``tr``, then two gradient-echo trains of ``readouts`` pulses
    ``echo_spacing`` apart, centred at ``ti1`` (flip ``flip1_deg``) and ``ti2`` (flip
    ``flip2_deg``). The cycle is followed as an affine map of the magnetization before
    the inversion (inversion: ``Mz -> -Mz``; relaxation over t: ``Mz -> 1 - (1 - Mz) E``;
    a train of n pulses: ``Mz -> M_ss + (Mz - M_ss) (cos a E_s)^n`` with ``M_ss =
    (1 - E_s) / (1 - cos a E_s)``), whose fixed point is the steady state. The signed
    signals ``S_k = sin a_k Mz_k`` at each train's centre combine as ``UNI = S1 S2 /
    (S1^2 + S2^2)``: proton density, T2* and receive field cancel, leaving a function
    of T1 alone. Typical 3 T: TR 5000, TI 700 and 2500 ms, flips 4 and 5 degrees.
    """
    s1, s2 = _prepared_trains(t1, tr, (ti1, ti2), (flip1_deg, flip2_deg), echo_spacing, readouts)
    return s1 * s2 / (s1 * s1 + s2 * s2 + 1e-12)


def _prepared_trains(t1, tr, tis, flips, echo_spacing, readouts):
    """Signed signal (per unit PD) at the centre of each gradient-echo train after one
    inversion per cycle ``tr``, trains centred at ``tis`` with ``flips`` (see :func:`mp2rage`)."""
    xp, (t1,) = _prepare(t1)
    half = readouts // 2
    starts = [float(ti) - half * echo_spacing for ti in tis]
    ends = [st + readouts * echo_spacing for st in starts]
    if starts[0] < 0 or any(e > s for e, s in zip(ends[:-1], starts[1:])) or ends[-1] > tr:
        raise ValueError(f"the readout trains ({readouts} x {echo_spacing:g} ms) do not fit between "
                         f"the inversion times {', '.join(f'{t:g}' for t in tis)} ms and TR {tr:g} ms")
    e_s = _decay(xp, echo_spacing, t1)
    a, b = xp.zeros_like(t1), -xp.ones_like(t1)  # Mz = a + b * M_before, just after the inversion
    clock, centres = 0.0, []
    for start, end, flip in zip(starts, ends, flips):
        e = _decay(xp, start - clock, t1)
        a, b = 1 - (1 - a) * e, b * e
        alpha = float(flip) * math.pi / 180.0
        ce = math.cos(alpha) * e_s
        m_ss = (1 - e_s) / (1 - ce)
        q_half = ce**half
        centres.append((math.sin(alpha), m_ss + (a - m_ss) * q_half, b * q_half))
        q = ce**readouts
        a, b = m_ss + (a - m_ss) * q, b * q
        clock = end
    e = _decay(xp, tr - clock, t1)
    a, b = 1 - (1 - a) * e, b * e
    before = a / (1 - b)
    return [(t1 > 0) * sin_a * (ca + cb * before) for sin_a, ca, cb in centres]


def ernst_angle_deg(tr, t1):
    """Flip angle (degrees) that maximizes spoiled gradient-echo signal."""
    if not (float(tr) > 0 and float(t1) > 0):
        raise ValueError(f"the Ernst angle needs TR and T1 above 0 ms, got TR {float(tr):g}, T1 {float(t1):g}")
    return float(np.degrees(np.arccos(np.exp(-float(tr) / float(t1)))))


def render(sequence, pd, t1, t2, te, tr, ti=None, flip_deg=None, t2star=None, ti2=None,
           flip2_deg=None, inversion_efficiency=1.0):
    """Dispatch to a signal equation by name (see :data:`TARGET_SEQUENCES`).

    ``ti`` is required for ``inversion_recovery``, ``flip_deg`` for ``gradient_echo``
    (which uses ``t2star`` when given and ``t2`` otherwise), both for ``mprage``;
    ``double_inversion_recovery`` takes ``ti`` (first inversion) and ``ti2`` (second),
    ``mp2rage`` ``ti``/``ti2`` and ``flip_deg``/``flip2_deg`` of its two readouts (and
    ignores PD, T2 and TE). ``inversion_efficiency`` is inversion recovery's (1: a perfect
    inversion; see :func:`inversion_recovery`).
    """
    if sequence == "double_inversion_recovery":
        if ti is None or ti2 is None:
            raise ValueError("double inversion recovery needs two inversion times (TI1 and TI2)")
        return double_inversion_recovery(pd, t1, t2, te, tr, ti, ti2)
    if sequence == "mp2rage":
        if None in (ti, ti2, flip_deg, flip2_deg):
            raise ValueError("MP2RAGE needs two inversion times and two flip angles")
        return mp2rage(t1, tr, ti, ti2, flip_deg, flip2_deg)
    if sequence == "spin_echo":
        return spin_echo(pd, t1, t2, te, tr)
    if sequence == "inversion_recovery":
        if ti is None:
            raise ValueError("inversion recovery needs an inversion time (TI)")
        return inversion_recovery(pd, t1, t2, te, tr, ti, inversion_efficiency)
    if sequence == "gradient_echo":
        if flip_deg is None:
            raise ValueError("gradient echo needs a flip angle")
        return gradient_echo(pd, t1, t2 if t2star is None else t2star, te, tr, flip_deg)
    if sequence == "mprage":
        if ti is None or flip_deg is None:
            raise ValueError("MPRAGE needs an inversion time (TI) and a flip angle")
        return mprage(pd, t1, t2 if t2star is None else t2star, te, tr, ti, flip_deg)
    raise ValueError(f"unknown sequence {sequence!r}; known: {', '.join(TARGET_SEQUENCES)}")

