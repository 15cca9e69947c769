"""Joint quantitative maps from several co-registered images of one subject.

Each input image has its own acquisition (spin echo, inversion recovery as a magnitude
image, spoiled gradient echo, or MPRAGE; :class:`~napari_mr_reparam.simulate.Acquisition`). Every
voxel's proton density, T1 and T2 are fitted to all inputs at once through the signal
equations of :mod:`napari_mr_reparam.physics`, vectorized over voxels with torch:

1. **Which parameters the acquisitions can tell apart** (:func:`free_parameters`): T2 needs
   two echo times at comparable T1 weighting, T1 needs two repetition or inversion times
   (or flip angles). A parameter no pair of inputs separates is held at its prior.
   Each input's noise is measured in the image itself (:mod:`napari_mr_reparam.image_noise`)
   and each voxel averaged with in-plane neighbours (with the neighbouring slices too,
   where the voxel spacing says they lie about as close) alike in every input to within a
   few noise levels (:mod:`napari_mr_reparam.edge_smoothing`): steadier where the inputs
   pin a parameter loosely.
2. **Initialization** by a grid search over the free relaxation times (the proton density
   of each grid point solved in closed form), so magnitude inversion-recovery fits start
   on the right side of the null.
3. **Refinement** by Levenberg-Marquardt in log(PD), log(T1), log(T2), with a Gaussian
   prior on log T1 and log T2: the physics network's single-image maps
   (:meth:`~napari_mr_reparam.inference.Reparameterizer.compute_maps`) when an engine is
   given and the inputs leave T1 or T2 open, else a broad default. Where the inputs
   determine a parameter the prior is a weak tie; where they leave it open, it is the answer.
4. **What the inputs determine, per voxel** (:attr:`JointMaps.determined`): from the
   Fisher information of the data alone at the fitted values, a parameter counts as
   determined when its standard error is below ``tolerance`` (relative) at the assumed
   noise level.

Scale: images of one series share the receiver gain, so by default one scale is fitted
(absorbed by PD, which comes back in the first input's intensity units). Images of
different series can carry different gains: ``scale="per_input"`` estimates each input's
gain relative to the first from the prior's relaxation times (the median over the object
of the ratio of images over the ratio of their predicted signals), since a per-input gain
trades off exactly against a shift in the relaxation rates and the data alone cannot fix it.

Multi-echo spin-echo trains (:func:`echo_trains`: spin-echo inputs of one TR whose TEs are
whole multiples of one echo spacing, at least :data:`~napari_mr_reparam.epg.MIN_TRAIN_ECHOES`)
do not follow the ideal equation: refocusing pulses below 180 degrees add stimulated
echoes and slow the decay. With ``echo_train="epg"`` (the default) each train is first
fitted per voxel with the extended phase graph of the train (:mod:`napari_mr_reparam.epg`:
T2 and the flip-angle scale free), and its images are put in the ideal equation's form
(each echo times ``exp(-TE/T2)`` over the fitted echo) before the joint fit; the
flip-angle scale comes back as :attr:`JointMaps.b1`. ``echo_train="ideal"`` fits the
echoes as they are.

One input gives the network's maps unchanged (as
:meth:`~napari_mr_reparam.inference.Reparameterizer.compute_maps` does), rendered by the
engine. Times are in milliseconds.
"""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from . import physics
from .acquisition import Acquisition
from .edge_smoothing import smooth_inputs
from .image_noise import DEFAULT_NOISE, bright_level, estimate_noise
from .memory import on_ordinary_pages
from .parallel import over_planes
from .peaks import clip_overshoot as _clip_overshoot

#: The sequences an input may have (their signal equations have derivatives below).
FIT_SEQUENCES = ("spin_echo", "inversion_recovery", "gradient_echo", "mprage")
#: Fit bounds (ms).
T1_BOUNDS_MS = (5.0, 10000.0)
T2_BOUNDS_MS = (1.0, 5000.0)
#: Prior when no engine is given: centre (ms) and spread of the log value.
DEFAULT_PRIOR_MS = {"t1": 1000.0, "t2": 100.0}
DEFAULT_PRIOR_SD = 2.0
#: Spread of the log value the network's maps are trusted to where the acquisitions
#: cannot measure a parameter (:func:`free_parameters`), and where they can: there the
#: network's map only steadies voxels the data leave loose, and must not pull measured
#: values towards it (its single-image T1 of simulated brains is 26-53 % off, median:
#: benchmarks/bench_joint_brains.py).
NETWORK_PRIOR_SD = 0.3
#: Spread of log PD the network's PD map is trusted to where the inputs measure neither
#: T1 nor T2 on its own (a T1- and a T2-weighted image: three unknowns, two images, and the
#: direction they leave open moves PD most). The network reads the pattern of PD across
#: tissues far better than its relaxation times. Chosen on training subjects 01-04 with
#: their drawn tables, since the map is brought to the read image's units
#: (:func:`pd_in_input_units`): 0.03, 0.05, 0.1, 0.2 give the T1w + T2w, MPRAGE + FLAIR and
#: T2w + FLAIR pairs 29.7, 29.4, 27.4, 26.4 dB (mean of the three pairs' spin-echo means;
#: worst targets 21.8, 20.9, 17.4, 15.6). A PD/T2 dual echo gains nothing from it and does
#: not take it. See training/RESULTS.md "The network's PD for a T1w + T2w pair" and "The
#: sets users bring".
NETWORK_PD_SD = 0.03
MEASURED_PRIOR_SD = 1.0
#: Correlation of the log T1 and log T2 of a prior from maps (the network's): on tissue
#: values it did not train on, the network reads both times too long or too short
#: together (its log errors' uncentered correlation 0.1-0.9, median 0.6, on simulated
#: brains), and where the inputs leave one direction of (T1, T2) open a fit tied to each
#: time apart bought its fit with the two moving apart. Only where the acquisitions leave
#: T1 or T2 open (:func:`free_parameters`). Chosen on training subjects 01-04
#: (0, 0.7, 0.8, 0.9, 0.95: each higher value gained less than the last); see
#: training/RESULTS.md "A prior that moves T1 and T2 together".
NETWORK_PRIOR_CORRELATION = 0.9
#: Spread of log PD the network's PD map is trusted to where the inputs measure both times
#: but one is a magnitude inversion recovery (a FLAIR beside a T1w and a T2w): fluid fits
#: either side of the FLAIR's null, the far side with a PD three times the truth (BrainWeb's
#: CSF, T1 2569 ms, fitted at 8378 ms).
BRANCH_PD_SD = 0.25
#: A voxel whose cost (squared misfit over the noise, plus the prior's) is above this after
#: the fit's iterations has not settled: the grid's start was in the wrong place (its step
#: in T2 is a factor of two, and at TE 100 ms a short T2 one step off changes the signal
#: 2.5-fold: muscle beside a FLAIR started at T1 102 for 1437 ms and needed 100 steps). It
#: is fitted again from a grid twice as fine, for MORE_ITERATIONS steps.
UNSETTLED_COST = 10.0
MORE_ITERATIONS = 24
#: The grid's start is chosen again with the PD prior's cost only for voxels whose first
#: choice puts PD further than this many of its spreads from the prior (far-side fluid of a
#: FLAIR is about four spreads off; with 3 rather than every voxel, T1w + T2w + FLAIR of
#: 180x256x256 takes 9.4 s rather than 15.5, the benchmarks' figures within 0.01 dB).
PD_RECHECK_SD = 3.0
#: The object: voxels above this many noise levels in some input.
BODY_NOISE_LEVELS = 5.0
#: Inversion efficiencies tried for inversion-recovery inputs (:func:`inversion_efficiency`).
INVERSION_EFFICIENCIES = tuple(round(0.5 + 0.02 * i, 2) for i in range(26))
#: Fewest distinct inversion times from which the inversion efficiency is estimated (one
#: efficiency for the whole object: per voxel, PD and T1 take two of three TIs' values, and
#: the third over all voxels tells the efficiency).
MIN_INVERSION_TIMES = 3
#: How echoes of a multi-echo spin-echo train are fitted (see the module's docstring).
ECHO_TRAIN_MODELS = ("epg", "ideal")
#: Bits of :attr:`JointMaps.determined_bits`.
BITS = {"pd": 1, "t1": 2, "t2": 4}
PARAMETERS = ("pd", "t1", "t2")


@dataclass
class JointMaps:
    """PD (in the first input's intensity units), T1 and T2 (ms) maps of one subject.

    ``determined`` holds one boolean map per parameter (True where the inputs determine
    it, False where it came from the prior); ``scales`` each input's gain relative to the
    first; ``acquisitions`` the inputs' (:class:`AcquisitionValues`); ``b1`` the refocusing
    flip-angle scale fitted from a multi-echo train (1: 180 degrees at the slice centre; NaN
    where no train was fitted), None without one; ``noise`` each input's noise as a fraction
    of its bright signal, as the fit took it (:func:`image_noise.estimate_noise`);
    ``prior_source`` where what the inputs leave open came from: ``"network"`` (the network's maps),
    ``"given"`` (maps passed to :func:`fit_maps`) or ``"default"`` (a broad prior, T1 1000 ms
    and T2 100 ms); ``prior_parameters`` the maps the prior holds (PD as well as T1 and T2
    where the inputs measure neither time); ``resampled`` the names of inputs that were
    brought onto the first input's grid (:mod:`.grids`) before the fit, set by the caller
    that resampled them; ``registered`` each registered input's name and motion against
    the first (:class:`~napari_mr_reparam.registration.Motion`), likewise set by the
    caller; ``partly_measured`` the share of the object that only some inputs measured
    (outside the others' fields of view; :func:`joint_maps` fits it to those inputs alone)
    and ``partly_prior`` what fills in what they leave open there (``"network"``: its read
    of the first input; ``"default"``); ``sigma`` each input's noise in its own units, as
    the fit took it (``noise`` times the input's bright signal); ``averaged`` about how
    many like voxels each voxel's inputs were averaged over before the fit (the smoothing's
    weights, :func:`edge_smoothing.smooth_inputs`; None without smoothing). Background
    voxels (no input signal) have PD, T1 and T2 of 0 and render as 0. From a single input
    the maps are the network's (``network_maps`` holds them, and renders go through the
    engine as before).
    """

    pd: np.ndarray
    t1: np.ndarray
    t2: np.ndarray
    determined: dict
    acquisitions: list
    scales: list = field(default_factory=list)
    free: dict = field(default_factory=dict)
    network_maps: object = None
    engine: object = None
    b1: np.ndarray | None = None
    echo_train: str = "ideal"
    noise: list = field(default_factory=list)
    prior_source: str = "default"
    prior_parameters: tuple = ("t1", "t2")
    resampled: tuple = ()
    registered: tuple = ()
    partly_measured: float = 0.0
    partly_prior: str = "default"
    sigma: list = field(default_factory=list)
    averaged: np.ndarray | None = None

    def slices(self, rows) -> JointMaps:
        """The maps of some slices only (the first axis; ``rows`` an index array or slice),
        to render those slices: a render is made plane by plane, so theirs equals the
        volume's."""
        from dataclasses import replace

        pick = {k: getattr(self, k)[rows] for k in PARAMETERS}
        pick["determined"] = {k: v[rows] for k, v in self.determined.items()}
        for key in ("b1", "averaged"):
            value = getattr(self, key)
            pick[key] = None if value is None else value[rows]
        if self.network_maps is not None:
            pick["network_maps"] = self.network_maps.slices(rows)
        return replace(self, **pick)

    @property
    def determined_bits(self) -> np.ndarray:
        """uint8 bitmask per voxel: 1 PD, 2 T1, 4 T2 (:data:`BITS`)."""
        bits = np.zeros(self.pd.shape, np.uint8)
        for key, bit in BITS.items():
            bits |= self.determined[key].astype(np.uint8) * np.uint8(bit)
        return bits

    def summary(self) -> dict:
        """Fraction of object voxels in which each parameter is determined, and the inputs."""
        body = self.pd > 0
        n = max(int(body.sum()), 1)
        return {"determined_fraction": {k: round(float((self.determined[k] & body).sum()) / n, 4)
                                        for k in PARAMETERS},
                "free_parameters": dict(self.free),
                "scales": [float(s) for s in self.scales],
                "noise": [round(float(n), 5) for n in self.noise],
                "prior_source": self.prior_source,
                "prior_parameters": list(self.prior_parameters),
                "echo_train": self.echo_train,
                "inversion_efficiency": self.inversion_efficiency,
                "resampled_onto_first_grid": list(self.resampled),
                "partly_measured_fraction": self.partly_measured,
                "partly_measured_prior": self.partly_prior,
                "registered_onto_first": {name: {"rotation_deg": round(m.rotation_deg, 3),
                                                 "largest_shift_mm": round(m.shift_mm, 3),
                                                 "matrix_ras_mm": np.round(m.matrix, 6).tolist()}
                                          for name, m in self.registered}}

    @property
    def inversion_efficiency(self) -> float | None:
        """The inversion efficiency the inversion-recovery inputs were fitted with (None without one)."""
        values = [a.inversion for a in self.acquisitions
                  if getattr(a, "sequence", None) == "inversion_recovery" and hasattr(a, "inversion")]
        return float(values[0]) if values else None

    def render(self, te_ms: float, tr_ms: float, sequence: str = "spin_echo",
               ti_ms: float | None = None, flip_deg: float | None = None,
               inversion: float | None = None, clip_overshoot: bool = True, **extra) -> np.ndarray:
        """The image at any acquisition, in the first input's intensity units.

        An inversion recovery is rendered with the inversion efficiency ``inversion``;
        by default the one the inversion-recovery inputs were fitted with (the scanner's
        own inversion, as a scan of it at another TI has it), 1 (a perfect inversion)
        without such inputs. With ``clip_overshoot`` (joint maps), a voxel above the
        brightest level that five of the nine voxels of some 3x3 neighbourhood of its plane
        reach is lowered towards that level by at most the render's standard error there
        (:func:`~napari_mr_reparam.peaks.clip_overshoot`, :meth:`_render_error`): where the
        inputs measure a long T1 loosely, fit noise lifts single fluid voxels a few per cent
        above their neighbours, and an image shown or scored at its own maximum is scaled
        by the highest of them; a structure brighter than its error explains stays.
        """
        if self.network_maps is not None:
            if extra or inversion is not None:
                raise ValueError(f"{sequence} renders need two or more inputs (joint maps)")
            return network_render(self.engine, self.network_maps, te_ms, tr_ms, sequence, ti_ms,
                                  flip_deg).reshape(self.pd.shape)
        if inversion is None:
            inversion = self.inversion_efficiency or 1.0

        def at(pd, t1, t2):
            return np.asarray(physics.render(sequence, pd, t1, t2, te_ms, tr_ms, ti=ti_ms, flip_deg=flip_deg,
                                             inversion_efficiency=inversion, **extra))

        signal = np.empty(np.shape(self.pd), np.float32)

        def part(rows):  # element-wise: runs of planes on several threads
            signal[rows] = at(self.pd[rows], self.t1[rows], self.t2[rows])
        over_planes(part, len(signal))
        if not (clip_overshoot and self.sigma):
            return signal
        return _clip_overshoot(signal, spread=lambda where: self._render_error(where, at))

    def _render_error(self, where: np.ndarray, render) -> np.ndarray:
        """Standard error of ``render(pd, t1, t2)`` at the flat voxel indices ``where`` that
        the inputs' noise (:attr:`sigma`, over :attr:`averaged` voxels) leaves in the fitted
        maps. What the inputs leave open is held by the prior, not moved by the noise, and
        adds nothing (the broadest prior a fit takes, :data:`DEFAULT_PRIOR_SD` in log T1 and
        log T2, stands in for the fit's own)."""
        import torch

        pd, t1, t2 = (np.asarray(np.asarray(getattr(self, k)).reshape(-1)[where], np.float64) for k in PARAMETERS)
        step = 1e-3
        up, down = math.exp(step), math.exp(-step)
        slopes = (render(pd, t1, t2),  # a render is proportional to PD
                  (render(pd, t1 * up, t2) - render(pd, t1 * down, t2)) / (2 * step),
                  (render(pd, t1, t2 * up) - render(pd, t1, t2 * down)) / (2 * step))
        t = [torch.from_numpy(np.asarray(v, np.float64)) for v in (pd, t1, t2)]
        info = _information(self.acquisitions, self.scales or [1.0] * len(self.sigma), self.sigma, *t, torch)
        if self.averaged is not None:  # an average of n like voxels holds 1/n of one's noise variance
            count = torch.from_numpy(np.asarray(np.asarray(self.averaged).reshape(-1)[where], np.float64))
            info = [c * count for c in info]
        # the estimate's spread from the noise: C A C for A the data's information and C the
        # inverse of A plus a prior (the broadest any fit takes), which holds what the inputs
        # leave open, so that noise does not move it
        loose = 1.0 / DEFAULT_PRIOR_SD**2
        held = [c + loose if n in (3, 5) else c for n, c in enumerate(info)]
        held[0] = held[0] + 1e-10 * held[0].clamp_min(1e-30)
        g = [torch.from_numpy(np.asarray(v, np.float64)) for v in slopes]
        y, _ = _solve3(held, g)
        a00, a01, a02, a11, a12, a22 = info
        variance = (a00 * y[0] ** 2 + a11 * y[1] ** 2 + a22 * y[2] ** 2
                    + 2 * (a01 * y[0] * y[1] + a02 * y[0] * y[2] + a12 * y[1] * y[2])).numpy()
        return np.sqrt(np.where(np.isfinite(variance) & (variance >= 0), variance, np.inf))


# ---------------------------------------------------------------- signal and derivatives

def _signal_and_slopes(acq: AcquisitionValues, t1, t2, torch):
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


def _information(acqs, scales, sigma, pd, t1, t2, torch):
    """Fisher information of the data in log PD, log T1, log T2 as six component tensors
    (a00, a01, a02, a11, a12, a22), the noise of input i being ``sigma[i]``."""
    a = [0.0] * 6
    for acq, g, sd in zip(acqs, scales, sigma):
        f, d1, d2 = _signal_and_slopes(acq, t1, t2, torch)
        k = g * pd / float(sd)
        j0, j1, j2 = k * f, k * d1, k * d2
        for n, (u, v) in enumerate(((j0, j0), (j0, j1), (j0, j2), (j1, j1), (j1, j2), (j2, j2))):
            a[n] = a[n] + u * v
    return a


def _solve3(a, b):
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


def _standard_errors(info, torch):
    """Standard errors (3 tensors) of log PD, log T1, log T2 from the information's six
    components (solved in float64; an unidentifiable parameter gets a huge one)."""
    a = [c.double() if torch.is_tensor(c) else torch.tensor(float(c), dtype=torch.float64) for c in info]
    ridge = 1e-10 * torch.maximum(torch.maximum(a[0], a[3]), a[5]).clamp_min(1e-30)
    a[0], a[3], a[5] = a[0] + ridge, a[3] + ridge, a[5] + ridge
    zero = torch.zeros_like(a[0])
    _, inv_diag = _solve3(a, (zero, zero, zero))
    return [torch.where(d > 0, d, torch.full_like(d, 1e30)).sqrt() for d in inv_diag]


# ---------------------------------------------------------------- determinability

def _reference_determined(acqs, noise, tolerance: float, torch) -> dict:
    """Whether the acquisitions determine T1 and T2 for typical tissue (PD 1, shared scale);
    ``noise`` one fraction for all inputs or one per input."""
    noise = _per_input_noise(noise, len(acqs))
    t1 = torch.tensor([300.0, 600.0, 1000.0, 1500.0, 2500.0], dtype=torch.float64).repeat_interleave(5)
    t2 = torch.tensor([20.0, 50.0, 80.0, 150.0, 400.0], dtype=torch.float64).repeat(5)
    # noise relative to each input's bright signal, as in the fit
    sigma = [n * float(_signal_and_slopes(a, t1, t2, torch)[0].max().clamp_min(1e-12)) for a, n in zip(acqs, noise)]
    sd = _standard_errors(_information(acqs, [1.0] * len(acqs), sigma, 1.0, t1, t2, torch), torch)
    # free when the data pin it down for a fair share of typical tissues
    return {"t1": bool((sd[1] < tolerance).double().mean() >= 0.2),
            "t2": bool((sd[2] < tolerance).double().mean() >= 0.2)}


def _per_input_noise(noise, n: int) -> list[float]:
    """``noise`` (one fraction, or one per input) as one fraction per input."""
    values = [float(noise)] * n if np.ndim(noise) == 0 else [float(v) for v in noise]
    if len(values) != n:
        raise ValueError(f"{len(values)} noise levels for {n} inputs: give one, or one per input")
    if not all(v > 0 for v in values):
        raise ValueError(f"noise levels must be above 0, got {values}")
    return values


def free_parameters(acquisitions, noise=DEFAULT_NOISE, tolerance: float = 0.1) -> dict:
    """Which relaxation times a set of acquisitions can measure, for typical tissue.

    Returns ``{"t1": bool, "t2": bool}``. A single spin echo determines neither; a dual
    echo at one TR determines T2; two TRs or TIs (at one TE) determine T1.
    """
    import torch

    acqs = [_as_acquisition(a) for a in acquisitions]
    return _reference_determined(acqs, noise, tolerance, torch)


# ---------------------------------------------------------------- the fit

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


def _as_acquisition(acq) -> AcquisitionValues:
    out = acquisition_values(acq)
    if out.sequence not in FIT_SEQUENCES:
        raise ValueError(f"an input cannot be {out.sequence!r}; inputs: {', '.join(FIT_SEQUENCES)}")
    return out


def network_maps(engine, image, acq, **calls):
    """The engine's single-image maps of ``image`` at acquisition ``acq``; ``calls`` (the
    engine's ``options``, ``progress``, ``cancelled``) go to its ``compute_maps``."""
    v = acquisition_values(acq)
    given = {k: value for k, value in calls.items() if value is not None}
    return engine.compute_maps(image, make_acquisition(v.sequence, v.te, v.tr, v.ti, v.flip_deg), **given)


def network_render(engine, qmaps, te_ms, tr_ms, sequence="spin_echo", ti_ms=None, flip_deg=None):
    """The engine's render of its maps at a target (input units, peak-normalized per slice)."""
    return engine.render(qmaps, make_acquisition(sequence, te_ms, tr_ms, ti_ms, flip_deg))


def _check_inputs(volumes, acquisitions, fitted: bool = True):
    """The inputs as float32 arrays of one shape and their acquisitions' values (of the
    sequences a fit takes, unless not ``fitted``)."""
    if len(volumes) != len(acquisitions):
        raise ValueError(f"{len(volumes)} images but {len(acquisitions)} acquisitions: give one per image")
    if not volumes:
        raise ValueError("no input images")
    arrays = [np.asarray(v, np.float32) for v in volumes]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        listed = ", ".join("x".join(map(str, a.shape)) for a in arrays)
        raise ValueError(f"joint maps need co-registered images of one shape; got {listed}")
    return arrays, [_as_acquisition(a) if fitted else acquisition_values(a) for a in acquisitions]


def _clipped_masks(clipped, arrays):
    """Per input, a boolean mask of its clipped voxels; None where no input has one."""
    if clipped is None:
        return None
    if len(clipped) != len(arrays):
        raise ValueError(f"{len(clipped)} clipped masks but {len(arrays)} images: give one per image (or None)")
    masks = []
    for c, a in zip(clipped, arrays):
        mask = np.zeros(a.shape, bool) if c is None else np.asarray(c, bool).reshape(a.shape)
        masks.append(mask & np.isfinite(a))
    return masks if any(m.any() for m in masks) else None


def _per_input_scales(arrays, acqs, prior_t1, prior_t2, body) -> list[float]:
    """Each input's gain relative to the first, from the prior's relaxation times
    (``prior_t1``, ``prior_t2``: their values at the voxels ``body`` marks, in order)."""
    import torch

    t1 = torch.from_numpy(np.ascontiguousarray(prior_t1, np.float32))
    t2 = torch.from_numpy(np.ascontiguousarray(prior_t2, np.float32))
    f0, _, _ = _signal_and_slopes(acqs[0], t1, t2, torch)
    s0 = arrays[0][body]
    scales = [1.0]
    for arr, acq in zip(arrays[1:], acqs[1:]):
        fi, _, _ = _signal_and_slopes(acq, t1, t2, torch)
        ok = (s0 > 0) & (f0.numpy() > 1e-3) & (fi.numpy() > 1e-3) & (arr[body] > 0)
        if not ok.any():
            scales.append(1.0)
            continue
        ratio = (arr[body][ok] / s0[ok]) / (fi.numpy()[ok] / f0.numpy()[ok])
        scales.append(float(np.median(ratio)))
    return scales


@contextmanager
def _torch_threads(threads: int | None):
    """Torch's CPU threads set to ``threads`` (when given) for the block, then restored."""
    import torch

    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _pd_prior(prior: dict, shape, scales, index) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The prior's PD map at the flat voxel indices ``index`` (in the first input's units, as
    the fit's PD: brought there from input ``prior["pd_input"]``'s by the gains ``scales``)
    and its per-voxel precision on log PD (0 where the map is at most a thousandth of its
    maximum over the whole volume, or NaN); (None, None) without one."""
    if prior.get("pd") is None:
        return None, None
    pd_sd = float(prior.get("pd_sd", NETWORK_PD_SD))
    if not pd_sd > 0:
        raise ValueError(f"prior pd_sd must be above 0, got {pd_sd:g}")
    pd_input = int(prior.get("pd_input", 0))
    if not 0 <= pd_input < len(scales):
        raise ValueError(f"prior pd_input must name one of the {len(scales)} inputs, got {pd_input}")
    full = np.broadcast_to(np.asarray(prior["pd"], np.float32), shape).reshape(-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a map of NaN alone: no maximum, no prior
        top = float(np.nan_to_num(np.nanmax(full))) if full.size else 0.0
    pd = np.nan_to_num(full[index])
    usable = pd > 1e-3 * max(top, 1e-30)
    return pd / np.float32(scales[pd_input]), np.where(usable, np.float32(1.0 / pd_sd**2), np.float32(0.0))


def _prior_precision(prior_sd) -> tuple[float, float, float]:
    """(P11, P12, P22): the inverse of the log T1 / log T2 prior's covariance, from the
    spreads ``prior_sd["t1"]``, ``prior_sd["t2"]`` and their correlation ``prior_sd["rho"]``."""
    s1, s2, rho = float(prior_sd["t1"]), float(prior_sd["t2"]), float(prior_sd.get("rho", 0.0))
    det = 1.0 - rho * rho
    return 1.0 / (s1 * s1 * det), -rho / (s1 * s2 * det), 1.0 / (s2 * s2 * det)


def _grid_init(s, sigma, acqs, scales, free, prior_log, prior_sd, torch, points: int, valid=None):
    """Per-voxel start: the grid point of the free relaxation times with the least misfit
    plus prior cost (the fit's own: the squared residual over the noise, PD in closed form,
    and the squared log distance from the prior over its spread), over the inputs ``valid``
    (n, V) marks as measured (all without it). Where the data leave a time open (a voxel at
    the noise floor in a later echo fits every short T2 alike), the prior picks among the
    points that fit, not the grid's end (a start at 2 ms extrapolated such a voxel back a
    billionfold). Inputs that measure neither time on its own (a T1- and a T2-weighted
    image, MPRAGE and FLAIR) still tie the two together, so both are searched; with a prior
    on PD (``prior_log["pd"]``) its cost at each point's closed-form PD counts too. Started
    at the prior instead, a fit of two magnitude images near their nulls (fat that the
    network read as fluid from an MPRAGE, beside a FLAIR) kept the long-T1 branch with a PD
    fourteen times the prior's."""
    axes = {}
    searched = {k: free[k] or (not free["t1"] and not free["t2"] and s.shape[0] > 1) for k in ("t1", "t2")}
    # one searched axis: a finer grid (a magnitude inversion recovery has two branches, the
    # null's either side, whose basins a coarse grid can mistake)
    count = points if searched["t1"] and searched["t2"] else 16 * points
    for key, (lo, hi) in (("t1", (10.0, 6000.0)), ("t2", (2.0, 3000.0))):
        if searched[key]:
            axes[key] = torch.linspace(math.log(lo), math.log(hi), count)
    v = s.shape[1]
    log_t1 = prior_log["t1"].clone()
    log_t2 = prior_log["t2"].clone()
    if not axes:
        return log_t1, log_t2
    if len(axes) == 2:
        g1, g2 = torch.meshgrid(axes["t1"], axes["t2"], indexing="ij")
        g1, g2 = g1.reshape(-1), g2.reshape(-1)
    elif "t1" in axes:
        g1, g2 = axes["t1"], None
    else:
        g1, g2 = None, axes["t2"]
    # a grid axis that is not free takes a typical value: it only scales PD
    gt1 = g1 if g1 is not None else torch.full_like(g2, math.log(1000.0))
    gt2 = g2 if g2 is not None else torch.full_like(g1, math.log(100.0))
    cols = []
    for acq, g, sd in zip(acqs, scales, sigma):
        f, _, _ = _signal_and_slopes(acq, torch.exp(gt1), torch.exp(gt2), torch)
        cols.append(g * f / sd)
    basis = _no_subnormals(torch.stack(cols), torch)  # (n, G)
    # magnitudes: a negative value is noise about zero (so every fit below is >= 0, PD >= 0)
    weighted = (s.clamp_min(0) / sigma[:, None]).T.contiguous()  # (V, n)
    best = torch.empty(v, dtype=torch.long)
    chunk = max(1, 4_000_000 // basis.shape[1])

    # the prior's cost (g - mu)' P (g - mu) less its per-voxel constant: g' P g - 2 (P mu)' g;
    # an axis that is not on the grid stays at its prior mean (no cost, no cross term)
    p11, p12, p22 = _prior_precision(prior_sd)
    mu1, mu2 = prior_log["t1"].to(basis.dtype), prior_log["t2"].to(basis.dtype)
    if g1 is not None and g2 is not None:
        const = p11 * g1 * g1 + 2.0 * p12 * g1 * g2 + p22 * g2 * g2
        rows, means = [-2.0 * g1, -2.0 * g2], [p11 * mu1 + p12 * mu2, p12 * mu1 + p22 * mu2]
    elif g1 is not None:
        const, rows, means = p11 * g1 * g1, [-2.0 * p11 * g1], [mu1]
    else:
        const, rows, means = p22 * g2 * g2, [-2.0 * p22 * g2], [mu2]
    prior_rows, means = torch.stack(rows), torch.stack(means, dim=1)  # (k, G), (V, k)
    n = basis.shape[0]
    pairs = [(i, j) for i in range(n) for j in range(i, n)]
    mask = None if valid is None or bool(valid.all()) else valid.T.to(basis.dtype).contiguous()  # (V, n)
    if mask is None:
        # |s|^2 less the squared residual (PD in closed form) is (s . u)^2 for the unit basis
        # u, linear in the products s_i s_j: the whole cost is one matrix product per chunk
        unit = basis / basis.norm(dim=0, keepdim=True).clamp_min(1e-12)
        fit_rows = torch.stack([-(1.0 if i == j else 2.0) * unit[i] * unit[j] for i, j in pairs])
        coefficients = _no_subnormals(torch.cat([fit_rows, prior_rows]), torch)
        for start in range(0, v, chunk):
            w = weighted[start:start + chunk]
            products = torch.stack([w[:, i] * w[:, j] for i, j in pairs], dim=1)
            best[start:start + chunk] = _first_minimum(torch.addmm(
                const, torch.cat([products, means[start:start + chunk]], dim=1), coefficients))
    else:  # each voxel's own inputs: the basis normalized over them
        weighted = weighted * mask
        squared = _no_subnormals(basis * basis, torch)
        for start in range(0, v, chunk):
            sl = slice(start, start + chunk)
            norm = (mask[sl] @ squared).clamp_min(1e-24).sqrt()
            fit = ((weighted[sl] @ basis) / norm).clamp_min_(0).square_()
            best[sl] = _first_minimum(torch.addmm(const, means[sl], prior_rows).sub_(fit))
    if prior_log.get("pd") is not None:
        _recheck_with_pd_prior(best, weighted, basis, mask, const, means, prior_rows, prior_log, torch, chunk)
    if g1 is not None:
        log_t1 = g1[best]
    if g2 is not None:
        log_t2 = g2[best]
    return log_t1, log_t2


def _first_minimum(cost):
    """Per row of ``cost`` (V, G), the column of its least value (the first of equal ones),
    as ``argmin(dim=1)`` gives it: ``min(dim=1)``'s indices, which torch finds in about half
    the time on a CPU for rows of the grid's length."""
    return cost.min(dim=1).indices


def _no_subnormals(t, torch):
    """``t`` with its values below the dtype's smallest normal number set to 0, in place.
    Signals of the grid's far corners (T2 of 2 ms at a TE of 100 ms) and their products
    fall below it, and a CPU multiplies such subnormal floats many times slower: they
    took half of the grid's time, and their share of any cost is below float32's
    resolution."""
    return t.masked_fill_(t.abs() < torch.finfo(t.dtype).tiny, 0.0)


def _recheck_with_pd_prior(best, weighted, basis, mask, const, means, prior_rows, prior_log, torch, chunk):
    """The grid's choice again, with the PD prior's cost at each point's closed-form PD, for
    the voxels whose chosen point puts PD more than :data:`PD_RECHECK_SD` spreads from the
    prior (the others' choice could move only by less than that cost); in place."""
    mu0, p0 = prior_log["pd"].to(basis.dtype), prior_log["pd_precision"].to(basis.dtype)
    chosen = basis[:, best]  # (n, V)
    square = (chosen * chosen * (1.0 if mask is None else mask.T)).sum(dim=0).clamp_min(1e-24)
    proj = (weighted.T * chosen).sum(dim=0)
    gap = torch.log(proj.clamp_min(1e-30) / square) - mu0
    far = torch.nonzero(p0 * gap * gap > PD_RECHECK_SD ** 2).flatten()
    squares = (basis * basis).sum(dim=0).clamp_min(1e-24)  # |b|^2 per point, all inputs measured
    for start in range(0, far.numel(), chunk):
        idx = far[start:start + chunk]
        if mask is not None:
            squares = (mask[idx] @ (basis * basis)).clamp_min_(1e-24)
        proj = weighted[idx] @ basis  # s . b: the closed-form PD is proj / |b|^2
        cost = torch.addmm(const, means[idx], prior_rows)
        gap = torch.log(proj.clamp_min(1e-30).div_(squares)).sub_(mu0[idx, None])
        cost.addcmul_(gap.square_(), p0[idx, None])  # + the PD prior's cost
        cost.sub_(proj.clamp_min_(0).square_().div_(squares))  # - the fit (PD in closed form)
        best[idx] = _first_minimum(cost)


def _fit_chunk(s, sigma, acqs, scales, free, prior_log, prior_sd, torch, iterations, grid_points,
               valid=None, lower=None):
    """Levenberg-Marquardt on one chunk of voxels, s (n, V), from the grid's start: returns
    (log PD, log T1, log T2), the cost (misfit and prior) and the Gauss-Newton matrix (6).
    ``valid`` (n, V) marks the measured values (an unmeasured one has no weight); all
    without it. ``lower`` (n, V) marks values that are only a lower bound of the signal
    (clipped): they cost nothing while the model is above them. Voxels whose cost is still
    above :data:`UNSETTLED_COST` go on to :func:`_refit` (gathered over chunks)."""
    log_t1, log_t2 = _grid_init(s, sigma, acqs, scales, free, prior_log, prior_sd, torch, grid_points, valid)
    return _levenberg(s, sigma, acqs, scales, prior_log, prior_sd, torch, iterations, log_t1, log_t2, valid, lower)


def _refit(s, sigma, acqs, scales, free, prior_log, prior_sd, torch, grid_points, valid, lower, x, cost, hess):
    """Unsettled voxels fitted on for :data:`MORE_ITERATIONS` steps from where they are and
    again from a grid twice as fine; each keeps whichever fit costs least (its own included).
    Returns the kept (log PD, log T1, log T2) and Gauss-Newton matrix."""
    finer = _grid_init(s, sigma, acqs, scales, free, prior_log, prior_sd, torch, 2 * grid_points, valid)
    lowest = cost
    for start in ((x[1], x[2]), finer):  # on from where it is, and again from a finer grid
        x_new, cost_new, hess_new = _levenberg(s, sigma, acqs, scales, prior_log, prior_sd, torch,
                                               MORE_ITERATIONS, *start, valid, lower)
        better = cost_new < lowest
        lowest = torch.where(better, cost_new, lowest)
        x = [torch.where(better, n, o) for n, o in zip(x_new, x)]
        hess = [torch.where(better, n, o) for n, o in zip(hess_new, hess)]
    return x, hess


def _data_errors(hess, prior_log, prior_sd, torch):
    """Standard errors of (log PD, log T1, log T2) from the data alone: the Gauss-Newton
    matrix at the fit is the data's information plus the prior's precision."""
    p1, p12, p2 = _prior_precision(prior_sd)
    data_only = list(hess)
    data_only[3], data_only[4], data_only[5] = hess[3] - p1, hess[4] - p12, hess[5] - p2
    if prior_log.get("pd") is not None:
        data_only[0] = hess[0] - prior_log["pd_precision"]
    return _standard_errors(data_only, torch)


def _levenberg(s, sigma, acqs, scales, prior_log, prior_sd, torch, iterations, log_t1, log_t2,
               valid=None, lower=None):
    """Levenberg-Marquardt from (log T1, log T2) with PD in closed form: returns (log PD,
    log T1, log T2), the cost (misfit and prior) and the Gauss-Newton matrix (6) at the end."""
    w = [1 / float(sd) ** 2 for sd in sigma]
    if valid is not None and not bool(valid.all()):
        w = [wi * valid[i].to(s.dtype) for i, wi in enumerate(w)]
    rows = [s[i] for i in range(s.shape[0])]
    t1, t2 = torch.exp(log_t1), torch.exp(log_t2)
    num = den = 0.0
    for acq, g, wi, si in zip(acqs, scales, w, rows):
        f = g * _signal_and_slopes(acq, t1, t2, torch)[0]
        num, den = num + wi * si * f, den + wi * f * f
    x = [torch.log((num / den.clamp_min(1e-30)).clamp_min(1e-12)), log_t1, log_t2]
    p1, p12, p2 = _prior_precision(prior_sd)
    mu1, mu2 = prior_log["t1"], prior_log["t2"]
    mu0, p0 = prior_log.get("pd"), prior_log.get("pd_precision")
    bounds = [(-30.0, 30.0), (math.log(T1_BOUNDS_MS[0]), math.log(T1_BOUNDS_MS[1])),
              (math.log(T2_BOUNDS_MS[0]), math.log(T2_BOUNDS_MS[1]))]

    def evaluate(x):
        """Cost, gradient (3) and Gauss-Newton matrix (6) at x."""
        pd, t1, t2 = torch.exp(x[0]), torch.exp(x[1]), torch.exp(x[2])
        d1, d2 = x[1] - mu1, x[2] - mu2
        cost = p1 * d1 * d1 + 2.0 * p12 * d1 * d2 + p2 * d2 * d2
        a = [0.0] * 6
        b = [0.0, -(p1 * d1 + p12 * d2), -(p12 * d1 + p2 * d2)]
        if mu0 is not None:  # a prior on log PD as well (the network's PD)
            d0 = x[0] - mu0
            cost = cost + p0 * d0 * d0
            b[0], a[0] = b[0] - p0 * d0, a[0] + p0
        for i, (acq, g, wi, si) in enumerate(zip(acqs, scales, w, rows)):
            f, f1, f2 = _signal_and_slopes(acq, t1, t2, torch)
            k = g * pd
            m = k * f
            j1, j2 = k * f1, k * f2
            r = si - m
            if lower is not None:  # a clipped value: only a model below it misfits
                wi = wi * (~lower[i] | (r > 0)).to(r.dtype)
            cost = cost + wi * r * r
            wr = wi * r
            b[0], b[1], b[2] = b[0] + wr * m, b[1] + wr * j1, b[2] + wr * j2
            wm = wi * m
            a[0], a[1], a[2] = a[0] + wm * m, a[1] + wm * j1, a[2] + wm * j2
            wj1 = wi * j1
            a[3], a[4], a[5] = a[3] + wj1 * j1, a[4] + wj1 * j2, a[5] + wi * j2 * j2
        a[3], a[4], a[5] = a[3] + p1, a[4] + p12, a[5] + p2
        return cost, b, a

    cost, grad, hess = evaluate(x)
    lam = torch.full_like(x[0], 1e-2)
    for _ in range(iterations):
        damped = list(hess)
        for n in (0, 3, 5):
            damped[n] = hess[n] * (1 + lam) + 1e-9
        step, _ = _solve3(damped, grad)
        trial = [torch.clamp(xi + si.clamp(-2, 2), lo, hi) for xi, si, (lo, hi) in zip(x, step, bounds)]
        new_cost, new_grad, new_hess = evaluate(trial)
        better = new_cost < cost
        x = [torch.where(better, t, xi) for t, xi in zip(trial, x)]
        cost = torch.where(better, new_cost, cost)
        grad = [torch.where(better, n, o) for n, o in zip(new_grad, grad)]
        hess = [torch.where(better, n, o) for n, o in zip(new_hess, hess)]
        lam = torch.where(better, lam * 0.2, lam * 10).clamp_(1e-6, 1e6)
    return x, cost, hess


def echo_trains(acquisitions) -> list[tuple[list[int], float, np.ndarray]]:
    """The inputs that are echoes of one multi-echo spin-echo train: spin-echo inputs of one
    TR whose TEs are whole multiples of one echo spacing (:func:`~napari_mr_reparam.epg.echo_numbers`).
    Returns (input indices, echo spacing in ms, echo numbers) per train."""
    from . import epg

    acqs = [_as_acquisition(a) for a in acquisitions]
    groups: dict = {}
    for i, a in enumerate(acqs):
        if a.sequence == "spin_echo":
            groups.setdefault(round(a.tr, 3), []).append(i)
    trains = []
    for members in groups.values():
        found = epg.echo_numbers([acqs[i].te for i in members])
        if found is not None:
            trains.append((members, found[0], found[1]))
    return trains


def _ideal_form(arrays, acqs, body, cancelled=None, chunk_voxels: int = 1 << 16, finite=None):
    """Each train's images in the ideal spin-echo equation's form (per-voxel EPG fit of the
    train), and the flip-angle scale map (None without a train); ``cancelled()`` is asked
    before each chunk of voxels. Voxels where ``finite`` (per input) leaves an echo of the
    train unmeasured keep their echoes as they are."""
    from . import epg

    trains = echo_trains(acqs)
    if not trains:
        return arrays, None
    out = [a.copy() for a in arrays]
    b1 = np.full(arrays[0].shape, np.nan, np.float32)
    for members, spacing, numbers in trains:
        index = np.flatnonzero(body if finite is None else body & np.logical_and.reduce([finite[i] for i in members]))
        flat = [arrays[i].reshape(-1) for i in members]
        tes = [acqs[i].te for i in members]
        for start in range(0, index.size, chunk_voxels):
            if cancelled is not None and cancelled():
                from .inference import Cancelled

                raise Cancelled()
            idx = index[start:start + chunk_voxels]
            signals = np.stack([f[idx] for f in flat]).astype(np.float64)
            fit = epg.fit_train(signals, numbers, spacing)
            ratio = epg.ideal_ratio(fit, tes)
            for row, i in enumerate(members):
                out[i].reshape(-1)[idx] = (signals[row] * ratio[row]).astype(np.float32)
            b1.reshape(-1)[idx] = fit["scale"]
    return out, b1


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

    acqs = [_as_acquisition(a) for a in acquisitions]
    ir = [i for i, a in enumerate(acqs) if a.sequence == "inversion_recovery"]
    if len({acqs[i].ti for i in ir}) < MIN_INVERSION_TIMES:
        return 1.0
    arrays = [np.nan_to_num(np.asarray(volumes[i], np.float32)).reshape(-1) for i in ir]
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
        basis = torch.stack([_signal_and_slopes(acqs[i]._replace(inversion=k), t1, t2, torch)[0] for i in ir])
        basis = basis / basis.norm(dim=0, keepdim=True).clamp_min(1e-12)
        best = (s.T @ basis).clamp_min(0).max(dim=1).values
        misfits.append(float((energy - best**2).sum()))
    return float(INVERSION_EFFICIENCIES[int(np.argmin(misfits))])


@on_ordinary_pages
def fit_maps(volumes, acquisitions, prior: dict | None = None, scale: str = "shared",
             noise=None, tolerance: float = 0.1, iterations: int = 6,
             grid_points: int = 12, chunk_voxels: int = 1 << 17, threads: int | None = None,
             echo_train: str = "epg", inversion: float | None = None, clipped=None, smooth: bool = True,
             spacing=None, progress=None, cancelled=None) -> JointMaps:
    """Joint PD/T1/T2 maps from co-registered images and their acquisitions (no network).

    Parameters
    ----------
    volumes : list of arrays
        Images of one shape (2-D or 3-D), each at its acquisition. A NaN is a value
        not measured: that voxel is fitted to its other inputs (NaN in the maps only
        where no input was measured).
    acquisitions : list of Acquisition (or dicts of its fields)
    prior : dict, optional
        ``{"t1": map_ms, "t2": map_ms}`` (arrays of the inputs' shape) and optionally
        ``"sd"`` (spread of the log values) and ``"correlation"`` (of log T1 and log T2;
        default :data:`NETWORK_PRIOR_CORRELATION` for maps given where the acquisitions
        leave T1 or T2 open, else 0):
        the prior the fit starts from and is tied to. Without ``"sd"`` given maps are
        trusted to :data:`NETWORK_PRIOR_SD` where the acquisitions cannot measure the
        parameter and :data:`MEASURED_PRIOR_SD` where they can. Default: T1 1000 ms,
        T2 100 ms with a spread of ``DEFAULT_PRIOR_SD``. ``"pd"`` (a PD map in the
        intensity units of input ``"pd_input"``, default 0) adds a prior on log PD with
        spread ``"pd_sd"`` (default :data:`NETWORK_PD_SD`); voxels where it is 0 take none.
    scale : "shared" or "per_input"
        One receiver gain for all inputs (images of one series), or one per input.
    noise : float or list of float, optional
        Noise of each input (one value, or one per input), as a fraction of its bright
        signal (99.5th percentile): the data's weight against the prior, the scale of the
        smoothing and the determinedness test. Default: measured in the background
        (:func:`image_noise.estimate_noise`), else
        :data:`image_noise.DEFAULT_NOISE`.
    tolerance : float
        Relative standard error below which a parameter counts as determined.
    echo_train : "epg" or "ideal"
        How echoes of a multi-echo spin-echo train (:func:`echo_trains`) are fitted: with
        the extended phase graph of the train and the refocusing flip angle free (their T2
        is then T2 itself; :attr:`JointMaps.b1` holds the flip-angle scale), or by the ideal
        equation (a train's stimulated echoes make T2 too long). Other inputs always take
        the ideal equation.
    inversion : float, optional
        Inversion efficiency of the inversion-recovery inputs (1: a perfect inversion).
        Default: estimated from them (:func:`inversion_efficiency`; 1 with fewer than
        :data:`MIN_INVERSION_TIMES` TIs).
    clipped : list of boolean arrays (or None), optional
        Per input, the voxels whose value the scanner clipped at the top of its range
        (:func:`~napari_mr_reparam.dicom.read_series` gives them as ``extra["saturated"]``):
        the true signal is at least that value, and the fit holds it to no more.
    smooth : bool
        Average each voxel's signals with those of in-plane neighbours alike in every
        input to within a few noise levels (:func:`edge_smoothing.smooth_inputs`) before
        the fit: steadier maps where the inputs determine a parameter only loosely, edges kept. Voxels with
        a value missing or clipped in some input take no part.
    spacing : tuple of float, optional
        Voxel spacing (slice, row, column) of 3-D inputs, for the smoothing: slices at most
        :data:`edge_smoothing.SMOOTH_SLICE_RATIO` pixels apart (a 1 mm MPRAGE or 3-D
        FLAIR) are averaged across too, within the ball of
        :data:`edge_smoothing.SMOOTH_BALL_RADIUS` pixels. Default: in-plane only.
    progress, cancelled : callables, optional
        As the engine's: ``progress(n)`` after each chunk of voxels with the number of
        slices (first axis; one for a 2-D image) it finished, ``cancelled()`` asked before
        each chunk (True raises :class:`~napari_mr_reparam.inference.Cancelled`).
    """
    import torch

    arrays, acqs = _check_inputs(volumes, acquisitions)
    if scale not in ("shared", "per_input"):
        raise ValueError(f"scale must be 'shared' or 'per_input', got {scale!r}")
    if echo_train not in ECHO_TRAIN_MODELS:
        raise ValueError(f"echo_train must be one of {', '.join(ECHO_TRAIN_MODELS)}, got {echo_train!r}")
    shape = arrays[0].shape
    lower = _clipped_masks(clipped, arrays)
    finite = [np.isfinite(a) for a in arrays]
    complete = np.logical_and.reduce(finite)  # every input measured
    exact = complete if lower is None else complete & ~np.logical_or.reduce(lower)  # and none clipped
    nan = ~np.logical_or.reduce(finite)  # none
    clean = [np.where(f, a, 0).astype(np.float32, copy=False) for f, a in zip(finite, arrays)]
    peaks = np.array([bright_level(a) for a in clean], np.float32)
    if noise is None:
        noise = estimate_noise(clean) or DEFAULT_NOISE
    noise = _per_input_noise(noise, len(clean))
    sigma_all = np.maximum(np.asarray(noise, np.float32) * peaks, 1e-12).astype(np.float32)
    # background: no input above a few noise levels
    body = np.zeros(shape, bool)
    for a, sd in zip(clean, sigma_all):
        body |= a > BODY_NOISE_LEVELS * sd
    averaged = None
    if smooth:
        with _torch_threads(threads):
            # in place: ``clean`` holds this fit's own copies of the inputs
            clean, averaged = smooth_inputs(clean, sigma_all, body=body, keep=exact, cancelled=cancelled,
                                            spacing=spacing, overwrite=True)
    b1 = None
    if echo_train == "epg":
        exact_each = finite if lower is None else [f & ~c for f, c in zip(finite, lower)]
        clean, b1 = _ideal_form(clean, acqs, body, cancelled, finite=None if exact.all() else exact_each)
    k = float(inversion) if inversion is not None else inversion_efficiency(clean, acqs, body & exact)
    if not 0 < k <= 1.5:
        raise ValueError(f"inversion efficiency must be above 0 and at most 1.5, got {k:g}")
    acqs = [a._replace(inversion=k) if a.sequence == "inversion_recovery" else a for a in acqs]
    prior = prior or {}
    index = np.flatnonzero(body)  # the voxels fitted; the priors are taken there alone

    def at_body(key):
        full = np.broadcast_to(np.asarray(prior.get(key, DEFAULT_PRIOR_MS[key]), np.float32), shape)
        bounds = T1_BOUNDS_MS if key == "t1" else T2_BOUNDS_MS
        return np.clip(np.nan_to_num(full.reshape(-1)[index], nan=DEFAULT_PRIOR_MS[key]), *bounds)
    p1, p2 = at_body("t1"), at_body("t2")
    free = _reference_determined(acqs, noise, tolerance, torch)
    if "sd" in prior:
        spread = {key: float(prior["sd"]) for key in ("t1", "t2")}
    elif "t1" in prior:
        spread = {key: MEASURED_PRIOR_SD if free[key] else NETWORK_PRIOR_SD for key in ("t1", "t2")}
    else:
        spread = {key: DEFAULT_PRIOR_SD for key in ("t1", "t2")}
    # the tie between the times, where the inputs leave one open (where they measure both,
    # the prior is only the loose tie of MEASURED_PRIOR_SD and must not pull them apart)
    tied = "t1" in prior and not (free["t1"] and free["t2"])
    rho = float(prior.get("correlation", NETWORK_PRIOR_CORRELATION if tied else 0.0))
    if not -1.0 < rho < 1.0:
        raise ValueError(f"prior correlation must lie between -1 and 1, got {rho:g}")
    spread["rho"] = rho
    scales = [1.0] * len(arrays)
    if scale == "per_input" and len(arrays) > 1:
        scales = _per_input_scales(clean, acqs, p1, p2, body)
    prior_pd, pd_precision = _pd_prior(prior, shape, scales, index)
    with _torch_threads(threads):
        out = {k: np.zeros(index.size, np.float32) for k in PARAMETERS}
        det = {k: np.zeros(index.size, bool) for k in PARAMETERS}
        stack = [a.reshape(-1) for a in clean]
        measured = None if complete.all() else [f.reshape(-1) for f in finite]
        bounded = None if lower is None else [c.reshape(-1) for c in lower]
        sigma = torch.from_numpy(sigma_all)
        plane = int(np.prod(shape[1:])) if len(shape) == 3 else int(np.prod(shape))
        slices, reported = (shape[0] if len(shape) == 3 else 1), 0

        def store(positions, x, stderr):
            for k, key in enumerate(PARAMETERS):
                out[key][positions] = torch.exp(x[k]).numpy()
                det[key][positions] = (stderr[k] < tolerance).numpy() & (free.get(key, True))

        pending, waiting = [], 0  # unsettled voxels, gathered over chunks for one refit

        def refit_pending():
            nonlocal pending, waiting
            if cancelled is not None and cancelled():
                from .inference import Cancelled

                raise Cancelled()

            def joined(part):
                return None if pending[0][part] is None else torch.cat([p[part] for p in pending], dim=-1)

            positions = np.concatenate([p["positions"] for p in pending])
            prior = {k: torch.cat([p["prior"][k] for p in pending], dim=-1) for k in pending[0]["prior"]}
            x = [torch.cat([p["x"][k] for p in pending]) for k in range(3)]
            hess = [torch.cat([p["hess"][k] for p in pending]) for k in range(6)]
            x, hess = _refit(joined("s"), sigma, acqs, scales, free, prior, spread, torch, grid_points,
                             joined("valid"), joined("low"), x, joined("cost"), hess)
            store(positions, x, _data_errors(hess, prior, spread, torch))
            pending, waiting = [], 0

        with torch.no_grad():
            for start in range(0, index.size, chunk_voxels):
                if cancelled is not None and cancelled():
                    from .inference import Cancelled

                    raise Cancelled()
                idx = index[start:start + chunk_voxels]
                s = torch.from_numpy(np.stack([a[idx] for a in stack]))
                at = slice(start, start + idx.size)  # the priors' values are the body's, in order
                prior_log = {"t1": torch.from_numpy(np.log(p1[at])), "t2": torch.from_numpy(np.log(p2[at]))}
                if prior_pd is not None:
                    prior_log["pd"] = torch.from_numpy(np.log(np.maximum(prior_pd[at], 1e-30)))
                    prior_log["pd_precision"] = torch.from_numpy(pd_precision[at])
                valid = None if measured is None else torch.from_numpy(np.stack([f[idx] for f in measured]))
                low = None if bounded is None else torch.from_numpy(np.stack([c[idx] for c in bounded]))
                x, cost, hess = _fit_chunk(s, sigma, acqs, scales, free, prior_log,
                                           spread, torch, iterations, grid_points, valid, low)
                store(slice(start, start + idx.size), x, _data_errors(hess, prior_log, spread, torch))
                left = torch.nonzero(cost > UNSETTLED_COST).flatten()
                if left.numel():
                    def part(t):
                        return None if t is None else t[..., left]

                    pending.append({"positions": start + left.numpy(), "s": part(s), "valid": part(valid),
                                    "low": part(low), "prior": {k: part(t) for k, t in prior_log.items()},
                                    "x": [part(t) for t in x], "cost": part(cost), "hess": [part(t) for t in hess]})
                    waiting += left.numel()
                if waiting >= chunk_voxels:
                    refit_pending()
                if progress is not None:
                    done = min(slices, int(idx[-1]) // plane) if start + idx.size < index.size else slices
                    if done > reported:
                        progress(done - reported)
                        reported = done
            if pending:
                refit_pending()
        if progress is not None and reported < slices:
            progress(slices - reported)
    maps = {}
    for key in PARAMETERS:
        full = np.zeros(shape, np.float32)
        full.reshape(-1)[index] = out[key]
        full[nan] = np.nan
        maps[key] = full
    determined = {}
    for key in PARAMETERS:
        full = np.zeros(shape, bool)
        full.reshape(-1)[index] = det[key]
        determined[key] = full
    return JointMaps(maps["pd"], maps["t1"], maps["t2"], determined, list(acqs), scales, free,
                     b1=b1, echo_train=echo_train if b1 is not None else "ideal", noise=noise,
                     sigma=[float(v) for v in sigma_all], averaged=averaged,
                     prior_source="given" if "t1" in prior else "default",
                     prior_parameters=("pd", "t1", "t2") if prior_pd is not None else ("t1", "t2"))


def joint_work_units(shape, engine=None) -> int:
    """How many units ``progress`` counts in :func:`joint_maps` for inputs of ``shape``:
    the volume's slices for the network's maps (with an engine), and again for the fit."""
    slices = shape[0] if len(shape) == 3 else 1
    return slices * (2 if engine is not None else 1)


#: The input sequences the network reads a prior from where no input is a spin echo, best
#: first (its single-image scores on the held-out subjects: gradient echo 24.3, MPRAGE 22.8,
#: FLAIR 20.8 dB; training/RESULTS.md, "Trained on the render users get").
PRIOR_READ_ORDER = ("gradient_echo", "mprage", "inversion_recovery")


def prior_input_of(acquisitions, reads=None) -> int | None:
    """The input the network's maps are computed from: the spin echo nearest (in log TE
    and log TR) the Default-to-Param acquisition, TE 50 / TR 4500 ms. Of a PD/T2 dual echo
    that is the T2-weighted echo, from which the network's T1 came out nearer the truth on
    simulated brains (bench_joint_brains.py). Without a spin echo, the first input of the
    first sequence in :data:`PRIOR_READ_ORDER` that ``reads(sequence)`` (the engine's
    :meth:`~napari_mr_reparam.inference.Reparameterizer.reads_input`) accepts: of an MPRAGE
    and a FLAIR, the MPRAGE. None where there is none."""
    from . import DEFAULT_TE_MS, DEFAULT_TR_MS

    acqs = [_as_acquisition(a) for a in acquisitions]
    spin = [i for i, a in enumerate(acqs) if a.sequence == "spin_echo"]
    if not spin:
        for sequence in PRIOR_READ_ORDER if reads is not None else ():
            found = [i for i, a in enumerate(acqs) if a.sequence == sequence]
            if found and reads(sequence):
                return found[0]
        return None

    def distance(i):
        return math.hypot(math.log(acqs[i].te / DEFAULT_TE_MS), math.log(acqs[i].tr / DEFAULT_TR_MS))

    return min(spin, key=distance)


def pd_in_input_units(pd, t1, t2, image, acq) -> np.ndarray:
    """The network's PD map (the tissue's proton density, whatever the image's scale) in the
    intensity units of the image it read: times the median ratio of the image to the maps'
    signal at its acquisition, over the voxels where that signal is above a tenth of its
    maximum and the image measured (not NaN; one receiver gain for the volume). Of the
    median, a least-squares factor per slice or for the volume, and the median over every
    input, this read the pairs of training subjects 01-04 as well or better
    (training/RESULTS.md, "The sets users bring")."""
    from . import physics

    v = _as_acquisition(acq)
    step = max(1, np.size(pd) // 500_000)  # a median: a sample of the voxels tells it
    sample = [np.asarray(a, np.float32).reshape(-1)[::step] for a in (pd, t1, t2, image)]
    signal = np.abs(np.asarray(physics.render(v.sequence, *sample[:3], v.te, v.tr, ti=v.ti, flip_deg=v.flip_deg,
                                              t2star=sample[2]), np.float64))
    bright = signal > 0.1 * signal.max() if signal.size else signal > 0
    bright &= np.isfinite(sample[3])  # a voxel the image does not measure (NaN) tells nothing
    if not bright.any():
        return np.zeros_like(pd, dtype=np.float32)
    factor = float(np.median(sample[3][bright].astype(np.float64) / signal[bright]))
    return (np.asarray(pd, np.float32) * factor).astype(np.float32)


@on_ordinary_pages
def joint_maps(volumes, acquisitions, engine=None, prior_input: int | None = None, *,
               engine_options=None, progress=None, cancelled=None, **options) -> JointMaps:
    """Joint maps, started from and tied to the network's single-image maps.

    ``engine`` is a physics-model :class:`~napari_mr_reparam.inference.Reparameterizer`
    (or None for a fit without a learned prior). Its maps are computed from input
    ``prior_input`` (default: :func:`prior_input_of`) with
    ``engine_options`` (:class:`~napari_mr_reparam.inference.InferenceOptions`). With
    one input and an engine, the network's maps are returned as they are. Where the
    acquisitions measure both T1 and T2 (:func:`free_parameters`) and one gain is shared
    (``scale="shared"``, the default; per-input gains are estimated against the network's
    maps), the network is not run unless ``prior_input`` is given: its maps would only be
    the loose tie of :data:`MEASURED_PRIOR_SD`, and the maps come in the fit's time alone.
    Where the inputs measure neither T1 nor T2 on its own (a T1- and a T2-weighted image),
    the network's PD is a prior too (:data:`NETWORK_PD_SD`).
    Each input's noise is measured once (:func:`image_noise.estimate_noise`) unless
    ``noise`` is given (one per input; None for an input to be measured here, where its own grid could not
    tell: :func:`image_noise.noise_on_own_grids`, which callers that resample run first).
    Voxels that only some inputs measured (NaN in the others: outside their field of view)
    are fitted to those inputs alone, with the network's maps of the first input as the
    prior where those leave a parameter open (a network pass over their slices, where no
    prior was read from the first input already). ``progress`` and ``cancelled`` work as
    the engine's, over :func:`joint_work_units` units; ``options`` go to :func:`fit_maps`.
    """
    calls = {"options": engine_options, "progress": progress, "cancelled": cancelled}
    engine_given = engine
    if engine is not None and not engine.renders:
        raise ValueError(f"{engine.info.name} is not a physics model; joint maps need the physics model")
    single = engine is not None and len(volumes) == len(acquisitions) == 1
    # one input: the network reads it, of any input sequence it was trained on (it says which)
    arrays, acqs = _check_inputs(volumes, acquisitions, fitted=not single)
    if single:
        qmaps = network_maps(engine, np.nan_to_num(arrays[0]), acqs[0], **calls)
        sized = qmaps.at_input_size()
        shape = arrays[0].shape
        det = {k: np.zeros(shape, bool) for k in PARAMETERS}
        return JointMaps(sized["pd"].reshape(shape), sized["t1"].reshape(shape), sized["t2"].reshape(shape),
                         det, acqs, [1.0], {"t1": False, "t2": False}, network_maps=qmaps, engine=engine,
                         prior_source="network")
    prior = None
    given = options.get("noise")
    if given is None or (np.ndim(given) == 1 and any(v is None for v in given)):
        here = estimate_noise(arrays) or [DEFAULT_NOISE] * len(arrays)
        options["noise"] = here if given is None else [h if g is None else g for g, h in zip(given, here)]
    if engine is not None:
        measured = free_parameters(acqs, **{k: options[k] for k in ("noise", "tolerance") if k in options})
    # a magnitude inversion recovery fits either side of its null alike: there the network's
    # PD tells the two apart even where the inputs measure both times
    branches = any(a.sequence == "inversion_recovery" for a in acqs)
    # voxels only some inputs measured are fitted again, the network reading the first input
    part = partly_measured(arrays)
    fill = bool(part.any()) and engine is not None and engine.reads_input(acqs[0].sequence)
    share = joint_work_units(arrays[0].shape)  # the network's share of the progress
    pending = False  # the network's share left to that read
    if engine is not None and prior_input is None and options.get("scale", "shared") == "shared":
        if measured["t1"] and measured["t2"] and not branches:
            engine = None  # the inputs measure both: the network's maps would be a loose tie only
            pending = fill
            if progress is not None and not pending:
                progress(share)  # the network's share is done
    read_first = None  # the network's maps of the first input, once read
    if engine is not None:
        if prior_input is None:
            prior_input = prior_input_of(acqs, reads=engine.reads_input)
        if prior_input is not None:
            sized = network_maps(engine, np.nan_to_num(arrays[prior_input]), acqs[prior_input],
                                 **calls).at_input_size()
            read_first = sized if prior_input == 0 else None
            prior = _network_prior(sized, arrays[prior_input], acqs, prior_input, measured)
        else:
            pending = fill
            if progress is not None and not pending:
                progress(share)  # no input the network reads: its share is done
    maps = fit_maps(arrays, acqs, prior=prior, progress=progress, cancelled=cancelled, **options)
    if prior is not None:
        maps.prior_source = "network"
    body = maps.pd > 0
    maps.partly_measured = round(float((part & body).sum()) / max(int(body.sum()), 1), 4)
    if fill:
        read = _refit_partly_measured(maps, arrays, part, acqs, engine_given, read_first, options,
                                      {"options": engine_options, "cancelled": cancelled,
                                       "progress": progress if pending else None})
        if pending and progress is not None and share > read:
            progress(share - read)  # the slices it did not need to read
    return maps


def _network_prior(sized, image, acqs, read: int, measured: dict) -> dict:
    """The prior :func:`fit_maps` takes from the network's maps ``sized`` (at the inputs'
    size) of ``image``, input ``read`` of inputs at ``acqs``: its T1 and T2, and its PD (in
    that image's units) where the acquisitions measure neither time, or where a magnitude
    inversion recovery beside inputs that measure both leaves its null's two sides to
    tell apart."""
    shape = np.shape(image)
    t1, t2 = sized["t1"].reshape(shape), sized["t2"].reshape(shape)
    prior = {"t1": t1, "t2": t2}
    branches = any(a.sequence == "inversion_recovery" for a in acqs)
    pd_sd = (NETWORK_PD_SD if not (measured["t1"] or measured["t2"])  # e.g. a T1w + T2w pair
             else BRANCH_PD_SD if branches and measured["t1"] and measured["t2"]  # T1w, T2w, FLAIR
             else None)
    if pd_sd is not None:
        pd = pd_in_input_units(sized["pd"].reshape(shape), t1, t2, image, acqs[read])
        prior.update(pd=pd, pd_input=read, pd_sd=pd_sd)
    return prior


def partly_measured_note(share: float, network: bool) -> str:
    """One line on the ``share`` of the object that only some inputs measured."""
    amount = f"{100 * share:.0f} %" if share >= 0.005 else "under 1 %"
    return (f"{amount} of the object lies outside some input's field of view: fitted there to the "
            "inputs that reach it" + (", the network's maps of the first input filling in what they leave open"
                                      if network else ""))


def partly_measured(volumes) -> np.ndarray:
    """Voxels that some inputs measured and others did not (NaN there: outside their field
    of view once resampled onto the first input's grid)."""
    finite = np.stack([np.isfinite(np.asarray(v)) for v in volumes])
    return finite.any(axis=0) & ~finite.all(axis=0)


def _refit_partly_measured(maps: JointMaps, arrays, part, acqs, engine, read_first, options: dict,
                           calls: dict) -> int:
    """Fit again, in place, the voxels ``part`` of ``maps`` that only some inputs measured:
    each set of voxels measured by the same inputs (the first among them) to those inputs
    alone, with the network's maps of the first input as the prior that :func:`joint_maps`
    gives those inputs. The whole fit gave them the prior of all the inputs: with three
    inputs none, so a voxel only the first input measured took the broad default's T1 and
    T2 (a T1-weighted image's contrast in every render). The network reads the slices that
    hold such voxels only (it reads a volume slice by slice), unless ``read_first`` holds
    its maps of the whole first input already. Returns how many slices it read here
    (``calls`` go to that read)."""
    shape = part.shape
    rows = np.flatnonzero(part.any(axis=(1, 2))) if part.ndim == 3 else np.arange(1)
    if part.ndim != 3:  # one image: its one slice
        arrays, part, shape = [a[None] for a in arrays], part[None], (1, *shape)
    arrays, part = [a[rows] for a in arrays], part[rows]
    clipped = options.get("clipped")
    if clipped is not None:
        clipped = [None if c is None else np.asarray(c, bool).reshape(shape)[rows] for c in clipped]
    sized = None if read_first is None else {k: np.asarray(v).reshape(shape)[rows] for k, v in read_first.items()}
    read = 0
    # each voxel's inputs as the bits of one number (input i: bit i)
    code = sum(np.isfinite(a[part]).astype(np.int64) << i for i, a in enumerate(arrays))
    noise = _per_input_noise(maps.noise, len(arrays))
    rest = {k: v for k, v in options.items() if k not in ("noise", "clipped", "inversion")}
    fitted = {key: getattr(maps, key).reshape(shape)[rows] for key in PARAMETERS}
    determined = {key: maps.determined[key].reshape(shape)[rows] for key in PARAMETERS}
    for pattern in np.unique(code):
        inputs = [i for i in range(len(arrays)) if pattern >> i & 1]
        if inputs[0] != 0:  # the network reads the first input: without it, the whole fit stands
            continue
        where = np.zeros(part.shape, bool)
        where[part] = code == pattern
        if sized is None:
            sized = network_maps(engine, np.nan_to_num(arrays[0]), acqs[0], **calls).at_input_size()
            read = len(rows)
        sub = [np.where(where, arrays[i], np.nan).astype(np.float32) for i in inputs]
        sub_acqs = [acqs[i] for i in inputs]
        sub_noise = [noise[i] for i in inputs]
        measured = free_parameters(sub_acqs, noise=sub_noise, tolerance=options.get("tolerance", 0.1))
        fit = fit_maps(sub, sub_acqs, prior=_network_prior(sized, arrays[0], sub_acqs, 0, measured), noise=sub_noise,
                       clipped=None if clipped is None else [clipped[i] for i in inputs],
                       inversion=maps.inversion_efficiency, cancelled=calls.get("cancelled"), **rest)
        for key in PARAMETERS:
            fitted[key][where] = getattr(fit, key)[where]
            determined[key][where] = fit.determined[key][where]
        maps.partly_prior = "network"
    for key in PARAMETERS:
        getattr(maps, key).reshape(shape)[rows] = fitted[key]
        maps.determined[key].reshape(shape)[rows] = determined[key]
    return read
