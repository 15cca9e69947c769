"""What a joint fit's inputs say about PD, T1 and T2.

The signal per unit PD of each input sequence a joint fit takes, with its derivatives in
log T1 and log T2 (:func:`signal_and_slopes`); the Fisher information of a set of inputs
at given maps and noise (:func:`information`), the standard errors it leaves
(:func:`standard_errors`), and which relaxation times a set of acquisitions can measure
for typical tissue (:func:`free_parameters`). Where multi-echo trains are fitted through
their phase graph, the information takes their echoes as that model, each train's
flip-angle scale a further parameter (:func:`train_information`), and the errors leave it
free (:func:`marginal_errors`). An acquisition enters as its values
(:class:`AcquisitionValues`: ms, degrees, and an inversion recovery's inversion
efficiency). Times are in milliseconds.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from . import physics
from .acquisition import Acquisition
from .image_noise import DEFAULT_NOISE, MIN_NOISE

#: The sequences an input may have (their signal equations have derivatives below).
FIT_SEQUENCES = ("spin_echo", "inversion_recovery", "gradient_echo", "mprage")
#: The parameters a fit estimates, in its order (log PD, log T1, log T2).
PARAMETERS = ("pd", "t1", "t2")
#: Prior when no engine is given: centre (ms) and spread of the log value.
DEFAULT_PRIOR_MS = {"t1": 1000.0, "t2": 100.0}
DEFAULT_PRIOR_SD = 2.0


class AcquisitionValues(NamedTuple):
    """An acquisition's values as the fit reads them (ms, degrees); ``inversion`` is the
    inversion efficiency of an inversion recovery (1: Mz inverted fully)."""

    sequence: str
    te: float
    tr: float
    ti: float | None
    flip_deg: float | None
    inversion: float = 1.0


def acquisition_values(acq) -> AcquisitionValues:
    """The values of an :class:`~napari_mr_reparam.simulate.Acquisition` (or a dict of
    its fields), whether its times are named ``te``/``tr``/``ti`` or ``te_ms``/``tr_ms``/``ti_ms``."""
    if isinstance(acq, AcquisitionValues):
        return acq
    if isinstance(acq, dict):
        acq = Acquisition(**acq)

    def get(name):
        return getattr(acq, f"{name}_ms") if hasattr(acq, f"{name}_ms") else getattr(acq, name, None)

    if get("te") is None or get("tr") is None:
        raise ValueError(f"not an acquisition: {acq!r}")
    ti, flip = get("ti"), getattr(acq, "flip_deg", None)
    return AcquisitionValues(acq.sequence, float(get("te")), float(get("tr")),
                             None if ti is None else float(ti), None if flip is None else float(flip))


def make_acquisition(sequence: str, te: float, tr: float, ti: float | None = None,
                     flip_deg: float | None = None):
    """A checked :class:`~napari_mr_reparam.simulate.Acquisition` (one-line ValueError if impossible)."""
    return Acquisition(te, tr, sequence, ti, flip_deg)


def checked_values(acq) -> AcquisitionValues:
    """:func:`acquisition_values` of an acquisition of a sequence a fit takes
    (:data:`FIT_SEQUENCES`; else a one-line ValueError)."""
    out = acquisition_values(acq)
    if out.sequence not in FIT_SEQUENCES:
        raise ValueError(f"an input cannot be {out.sequence!r}; inputs: {', '.join(FIT_SEQUENCES)}")
    return out


def signal_and_slopes(acq: AcquisitionValues, t1, t2, torch):
    """Signal per unit PD and its derivatives in log T1 and log T2 (torch tensors).

    Inversion recovery is the magnitude image: its T1 slope takes the sign of the signed
    longitudinal factor, ``1 - (1 + k) exp(-TI/T1) + k exp(-TR/T1)`` for an inversion
    efficiency k (``acq.inversion``; 1 gives the ideal ``1 - 2 exp(-TI/T1) + exp(-TR/T1)``).
    """
    te, tr = float(acq.te), float(acq.tr)
    e2 = torch.exp(-te / t2)
    de2 = e2 * (te / t2)
    e1 = torch.exp(-tr / t1)
    if acq.sequence == "spin_echo":
        lon, dlon = 1 - e1, -(tr / t1) * e1
    elif acq.sequence == "inversion_recovery":
        ti = float(acq.ti)
        ei = torch.exp(-ti / t1)
        k = float(acq.inversion)
        signed = 1 - (1 + k) * ei + k * e1
        dsigned = -(1 + k) * (ti / t1) * ei + k * (tr / t1) * e1
        sign = torch.where(signed < 0, -1.0, 1.0)
        lon, dlon = signed * sign, dsigned * sign
    elif acq.sequence == "gradient_echo":
        a = math.radians(float(acq.flip_deg))
        s, c = math.sin(a), math.cos(a)
        denom = 1 - c * e1
        lon = s * (1 - e1) / denom
        dlon = s * (c - 1) / denom**2 * (tr / t1) * e1
    elif acq.sequence == "mprage":
        lon, dlon = _mprage_longitudinal(acq, t1, torch)
    else:
        raise ValueError(f"an input cannot be {acq.sequence!r}; inputs: {', '.join(FIT_SEQUENCES)}")
    return lon * e2, dlon * e2, lon * de2


def _mprage_longitudinal(acq: AcquisitionValues, t1, torch, step: float = 1e-3):
    """The MPRAGE magnitude per unit PD before the readout's T2 decay
    (:func:`napari_mr_reparam.physics.mprage`), and its derivative in log T1 by central
    differences (its steady state has no short closed-form derivative)."""
    def signal(times):
        return physics.mprage(1.0, times, torch.full_like(times, 1e12), acq.te, acq.tr, acq.ti, acq.flip_deg)

    lon = signal(t1)
    return lon, (signal(t1 * math.exp(step)) - signal(t1 * math.exp(-step))) / (2 * step)


def information(acqs, scales, sigma, pd, t1, t2, torch):
    """Fisher information of the data in log PD, log T1, log T2 as six component tensors
    (a00, a01, a02, a11, a12, a22), the noise of input i being ``sigma[i]``."""
    a = [0.0] * 6
    for acq, g, sd in zip(acqs, scales, sigma):
        f, d1, d2 = signal_and_slopes(acq, t1, t2, torch)
        k = g * pd / float(sd)
        j0, j1, j2 = k * f, k * d1, k * d2
        for n, (u, v) in enumerate(((j0, j0), (j0, j1), (j0, j2), (j1, j1), (j1, j2), (j2, j2))):
            a[n] = a[n] + u * v
    return a


def solve3(a, b):
    """Solve symmetric 3x3 systems, a = (a00, a01, a02, a11, a12, a22) and b = (b0, b1, b2)
    component tensors, by cofactors; returns the solution and the inverse's diagonal."""
    a00, a01, a02, a11, a12, a22 = a
    c00 = a11 * a22 - a12 * a12
    c01 = a02 * a12 - a01 * a22
    c02 = a01 * a12 - a02 * a11
    c11 = a00 * a22 - a02 * a02
    c12 = a01 * a02 - a00 * a12
    c22 = a00 * a11 - a01 * a01
    det = a00 * c00 + a01 * c01 + a02 * c02
    inv = 1 / det.clamp_min(1e-30)
    b0, b1, b2 = b
    x = ((c00 * b0 + c01 * b1 + c02 * b2) * inv, (c01 * b0 + c11 * b1 + c12 * b2) * inv,
         (c02 * b0 + c12 * b1 + c22 * b2) * inv)
    return x, (c00 * inv, c11 * inv, c22 * inv)


def standard_errors(info, torch):
    """Standard errors (3 tensors) of log PD, log T1, log T2 from the information's six
    components (solved in float64; an unidentifiable parameter gets a huge one)."""
    a = [c.double() if torch.is_tensor(c) else torch.tensor(float(c), dtype=torch.float64) for c in info]
    ridge = 1e-10 * torch.maximum(torch.maximum(a[0], a[3]), a[5]).clamp_min(1e-30)
    a[0], a[3], a[5] = a[0] + ridge, a[3] + ridge, a[5] + ridge
    zero = torch.zeros_like(a[0])
    _, inv_diag = solve3(a, (zero, zero, zero))
    return [torch.where(d > 0, d, torch.full_like(d, 1e30)).sqrt() for d in inv_diag]


def train_information(acqs, scales, sigma, pd, t1, t2, trains, torch, measured=None):
    """Fisher information (V, 3 + k, 3 + k) of the data in log PD, log T1, log T2 and the
    flip-angle scale of each of k multi-echo trains, the noise of input i being ``sigma[i]``
    (a number, or a tensor (V,) of each voxel's).

    ``trains``: per train, its input indices and its echoes per unit amplitude with their
    slopes ((V, n) arrays: :func:`~napari_mr_reparam.echo_trains.train_slopes`). A train's
    echo is the spin echo's recovery ``1 - exp(-TR/T1)`` times that echo, whose shape T1
    sets too (the stimulated echoes' storage); other inputs take the ideal equation
    (:func:`signal_and_slopes`). ``measured`` (per input, (V,)): its measured voxels.
    """
    k = len(trains)
    at = {i: (n, col) for n, (members, _) in enumerate(trains) for col, i in enumerate(members)}
    info = torch.zeros((t2.shape[0], 3 + k, 3 + k), dtype=torch.float64)
    for i, (acq, g, sd) in enumerate(zip(acqs, scales, sigma)):
        zero = torch.zeros_like(t2, dtype=torch.float64)
        if i in at:
            n, col = at[i]
            echo, d_t2, d_scale, d_t1 = (torch.from_numpy(trains[n][1][key][:, col])
                                         for key in ("echoes", "t2", "scale", "t1"))
            lon, dlon, _ = signal_and_slopes(acq._replace(te=0.0), t1, t2, torch)
            slopes = [lon * echo, dlon * echo + lon * d_t1, lon * d_t2] + [lon * d_scale if m == n else zero
                                                                             for m in range(k)]
        else:
            slopes = [*signal_and_slopes(acq, t1, t2, torch)] + [zero] * k
        noise = sd if torch.is_tensor(sd) else float(sd)  # a train's per voxel, with its misfit
        weight = g * pd / noise * (1.0 if measured is None else measured[i].double())
        j = torch.stack([(weight * d).double() for d in slopes], dim=1)  # (V, 3 + k)
        info += j[:, :, None] * j[:, None, :]
    return info


def marginal_errors(info, torch):
    """Standard errors (3 tensors) of log PD, log T1, log T2 from an information (V, P, P)
    whose further parameters are free too: the diagonal of its inverse (solved in float64,
    with a relative ridge as :func:`standard_errors`; an unidentifiable parameter gets a
    huge error)."""
    a = info.double()
    diagonal = a.diagonal(dim1=1, dim2=2)
    ridge = 1e-10 * diagonal.max(dim=1).values.clamp_min(1e-30)
    a = a + ridge[:, None, None] * torch.eye(a.shape[1], dtype=a.dtype)
    inverse, failed = torch.linalg.inv_ex(a)
    d = inverse.diagonal(dim1=1, dim2=2)[:, :3]
    d = torch.where((d > 0) & (failed == 0)[:, None], d, torch.full_like(d, 1e30))
    return list(d.sqrt().T)


def determined_for_tissue(acqs, noise, tolerance: float, torch) -> dict:
    """Whether the acquisitions determine T1 and T2 for typical tissue (PD 1, shared scale);
    ``noise`` one fraction for all inputs or one per input."""
    noise = per_input_noise(noise, len(acqs))
    t1 = torch.tensor([300.0, 600.0, 1000.0, 1500.0, 2500.0], dtype=torch.float64).repeat_interleave(5)
    t2 = torch.tensor([20.0, 50.0, 80.0, 150.0, 400.0], dtype=torch.float64).repeat(5)
    # noise relative to each input's bright signal, as in the fit
    sigma = [n * float(signal_and_slopes(a, t1, t2, torch)[0].max().clamp_min(1e-12)) for a, n in zip(acqs, noise)]
    sd = standard_errors(information(acqs, [1.0] * len(acqs), sigma, 1.0, t1, t2, torch), torch)
    # free when the data pin it down for a fair share of typical tissues
    return {"t1": bool((sd[1] < tolerance).double().mean() >= 0.2),
            "t2": bool((sd[2] < tolerance).double().mean() >= 0.2)}


def per_input_noise(noise, n: int) -> list[float]:
    """``noise`` (one fraction, or one per input) as one fraction per input, each at least
    :data:`~napari_mr_reparam.image_noise.MIN_NOISE`."""
    values = [float(noise)] * n if np.ndim(noise) == 0 else [float(v) for v in noise]
    if len(values) != n:
        raise ValueError(f"{len(values)} noise levels for {n} inputs: give one, or one per input")
    if not all(v > 0 for v in values):
        raise ValueError(f"noise levels must be above 0, got {values}")
    return [max(v, MIN_NOISE) for v in values]


def free_parameters(acquisitions, noise=DEFAULT_NOISE, tolerance: float = 0.1) -> dict:
    """Which relaxation times a set of acquisitions can measure, for typical tissue.

    Returns ``{"t1": bool, "t2": bool}``. A single spin echo determines neither; a dual
    echo at one TR determines T2; two TRs or TIs (at one TE) determine T1.
    """
    import torch

    acqs = [checked_values(a) for a in acquisitions]
    return determined_for_tissue(acqs, noise, tolerance, torch)
