"""Joint quantitative maps from several co-registered images of one subject.

Each input image has its own acquisition (spin echo, inversion recovery as a magnitude
image, spoiled gradient echo, or MPRAGE; :class:`~napari_mr_reparam.simulate.Acquisition`). Every
voxel's proton density, T1 and T2 are fitted to all inputs at once through the signal
equations of :mod:`napari_mr_reparam.physics`, vectorized over voxels with torch:

1. **Which parameters the acquisitions can tell apart**
   (:func:`~napari_mr_reparam.fit_information.free_parameters`): T2 needs
   two echo times at comparable T1 weighting, T1 needs two repetition or inversion times
   (or flip angles). A parameter no pair of inputs separates is held at its prior.
   Each input's noise is measured in the image itself (:mod:`napari_mr_reparam.image_noise`)
   and each voxel averaged with in-plane neighbours (with the neighbouring slices too,
   where the voxel spacing says they lie about as close) alike in every input to within a
   few noise levels (:mod:`napari_mr_reparam.edge_smoothing`): steadier where the inputs
   pin a parameter loosely.
2. **Initialization** by a grid search over the free relaxation times (the proton density
   of each grid point solved in closed form), so magnitude inversion-recovery fits start
   on the right side of the null (:mod:`napari_mr_reparam.voxel_solver`).
3. **Refinement** by Levenberg-Marquardt in log(PD), log(T1), log(T2), with a Gaussian
   prior on log T1 and log T2: the physics network's single-image maps
   (:meth:`~napari_mr_reparam.inference.Reparameterizer.compute_maps`) when an engine is
   given and the inputs leave T1 or T2 open, else a broad default. Where the inputs
   determine a parameter the prior is a weak tie; where they leave it open, it is the answer.
4. **What the inputs determine, per voxel** (:attr:`JointMaps.determined`): from the
   Fisher information of the data alone at the fitted values, a parameter counts as
   determined when its standard error is below ``tolerance`` (relative) at the assumed
   noise level. Where a multi-echo train was fitted through its phase graph, its echoes
   enter as that model: each voxel's flip-angle scale is a parameter too, and T1 sets the
   stimulated echoes' storage (:func:`~napari_mr_reparam.echo_trains.train_errors`).

Scale: images of one series share the receiver gain, so by default one scale is fitted
(absorbed by PD, which comes back in the first input's intensity units). Images of
different series can carry different gains. Given a series label per input, each series
takes one gain, found by the misfit of the fits it gives (:mod:`.series_gains`): an
inversion-recovery set and an echo train each measure a time of their own, and only their
right gain fits both. ``scale="per_input"`` estimates each input's gain relative to the
first from the prior's relaxation times (the median over the object of the ratio of images
over the ratio of their predicted signals), since a lone image's gain trades off exactly
against a shift in the relaxation rates and the data alone cannot fix it.

Multi-echo spin-echo trains (:func:`~napari_mr_reparam.echo_trains.echo_trains`: spin-echo inputs of one TR whose TEs are
whole multiples of one echo spacing, at least :data:`~napari_mr_reparam.epg.MIN_TRAIN_ECHOES`)
do not follow the ideal equation: refocusing pulses below 180 degrees add stimulated
echoes and slow the decay. With ``echo_train="epg"`` (the default) each train is first
fitted per voxel with the extended phase graph of the train (:mod:`napari_mr_reparam.epg`:
T2 and the flip-angle scale free), and its images are put in the ideal equation's form
(each echo times ``exp(-TE/T2)`` over the fitted echo) before the joint fit; the
flip-angle scale comes back as :attr:`JointMaps.b1` (:mod:`napari_mr_reparam.echo_trains`).
``echo_train="ideal"`` fits the echoes as they are. Inversion-recovery inputs at three or
more TIs tell their inversion efficiency (:mod:`napari_mr_reparam.inversion`). The maps
come back as :class:`~napari_mr_reparam.joint_result.JointMaps`.

One input gives the network's maps unchanged (as
:meth:`~napari_mr_reparam.inference.Reparameterizer.compute_maps` does), rendered by the
engine. Times are in milliseconds.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from .echo_trains import ideal_form, train_errors
from .edge_smoothing import smooth_inputs
from .fit_information import (DEFAULT_PRIOR_MS, DEFAULT_PRIOR_SD, PARAMETERS, acquisition_values, checked_values,
                              determined_for_tissue, free_parameters, per_input_noise, signal_and_slopes)
from .image_noise import DEFAULT_NOISE, background_levels, bright_level, estimate_noise
from .inversion import inversion_efficiency
from .joint_result import JointMaps, network_maps
from .memory import on_ordinary_pages
from .parallel import torch_threads
from .series_gains import SEARCH_FITS, profile_gains, series_of
from .voxel_solver import T1_BOUNDS_MS, T2_BOUNDS_MS, VoxelProblem, fit_voxels

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
#: The object: voxels this many noise levels above their background's level in some input.
BODY_NOISE_LEVELS = 5.0
#: How echoes of a multi-echo spin-echo train are fitted (see the module's docstring).
ECHO_TRAIN_MODELS = ("epg", "ideal")


def _check_inputs(volumes, acquisitions, fitted: bool = True):
    """The inputs as float32 arrays of one shape and their acquisitions' values (of the
    sequences a fit takes, unless not ``fitted``)."""
    if len(volumes) != len(acquisitions):
        raise ValueError(f"{len(volumes)} images but {len(acquisitions)} acquisitions: give one per image")
    if not volumes:
        raise ValueError("no input images")
    from .inference import magnitude_of, require_magnitude

    arrays = [magnitude_of(v) for v in volumes]
    for i, a in enumerate(arrays, 1):
        if a.ndim not in (2, 3):
            raise ValueError(f"input {i} has {a.ndim} dimensions, shape {a.shape}: joint maps take 2-D images or "
                             "(z, y, x) volumes")
        try:
            require_magnitude(a)
        except ValueError as exc:
            raise ValueError(f"input {i} {str(exc).removeprefix('the volume ')}") from None
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        listed = ", ".join("x".join(map(str, a.shape)) for a in arrays)
        raise ValueError(f"joint maps need co-registered images of one shape; got {listed}")
    for i, a in enumerate(arrays, 1):  # one value is a fit still (a voxel's echoes); no signal at all is not
        if a.size and not np.isfinite(a).any():
            raise ValueError(f"input {i} holds no image: every voxel is NaN or infinite")
        if a.size and not (np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0) > 0).any():
            raise ValueError(f"input {i} holds no image: no voxel is above 0")
    return arrays, [checked_values(a) if fitted else acquisition_values(a) for a in acquisitions]


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
    f0, _, _ = signal_and_slopes(acqs[0], t1, t2, torch)
    s0 = arrays[0][body]
    scales = [1.0]
    for arr, acq in zip(arrays[1:], acqs[1:]):
        fi, _, _ = signal_and_slopes(acq, t1, t2, torch)
        ok = (s0 > 0) & (f0.numpy() > 1e-3) & (fi.numpy() > 1e-3) & (arr[body] > 0)
        if not ok.any():
            scales.append(1.0)
            continue
        ratio = (arr[body][ok] / s0[ok]) / (fi.numpy()[ok] / f0.numpy()[ok])
        scales.append(float(np.median(ratio)))
    return scales


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


@on_ordinary_pages
def fit_maps(volumes, acquisitions, prior: dict | None = None, scale: str = "shared",
             noise=None, tolerance: float = 0.1, iterations: int = 6,
             grid_points: int = 12, chunk_voxels: int = 1 << 17, threads: int | None = None,
             echo_train: str = "epg", inversion: float | None = None, clipped=None, smooth: bool = True,
             spacing=None, progress=None, cancelled=None, gains=None, storage_t1=None) -> JointMaps:
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
        T2 100 ms with a spread of
        :data:`~napari_mr_reparam.fit_information.DEFAULT_PRIOR_SD`. ``"pd"`` (a PD map in the
        intensity units of input ``"pd_input"``, default 0) adds a prior on log PD with
        spread ``"pd_sd"`` (default :data:`NETWORK_PD_SD`); voxels where it is 0 take none.
    scale : "shared", "per_input", or a series label per input
        One receiver gain for all inputs (images of one series), one per input, or one per
        series: inputs of one label share a gain, each series' found by the misfit of the
        fits it gives (:mod:`~napari_mr_reparam.series_gains`; the prior's where that is
        flat). :attr:`JointMaps.gains_found` says how, per series.
    gains : list of float, optional
        Each input's gain, known (as a fit of these inputs among others found them): ``scale``
        is then not used.
    noise : float or list of float, optional
        Noise of each input (one value, or one per input), as a fraction of its bright
        signal (99.5th percentile): the data's weight against the prior, the scale of the
        smoothing and the determinedness test. Default: measured in the background
        (:func:`image_noise.estimate_noise`), else
        :data:`image_noise.DEFAULT_NOISE`.
    tolerance : float
        Relative standard error below which a parameter counts as determined.
    echo_train : "epg" or "ideal"
        How echoes of a multi-echo spin-echo train (:func:`~napari_mr_reparam.echo_trains.echo_trains`) are fitted: with
        the extended phase graph of the train and the refocusing flip angle free (their T2
        is then T2 itself; :attr:`JointMaps.b1` holds the flip-angle scale), or by the ideal
        equation (a train's stimulated echoes make T2 too long). Other inputs always take
        the ideal equation. Where the other inputs measure T1 (an inversion-recovery set
        beside the train), the train is fitted again at each voxel's T1 from the first fit
        (:mod:`~napari_mr_reparam.echo_trains`), and the maps fitted again.
    storage_t1 : array, optional
        Each voxel's T1 (ms; NaN where unknown) for the trains' fit, where known already.
    inversion : float, optional
        Inversion efficiency of the inversion-recovery inputs (1: a perfect inversion).
        Default: estimated from them (:func:`~napari_mr_reparam.inversion.inversion_efficiency`; 1 with fewer than
        :data:`~napari_mr_reparam.inversion.MIN_INVERSION_TIMES` TIs).
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
        slices (first axis; one for a 2-D image) it finished, and ``progress(1)`` after
        each trial fit of the series-gain search (:func:`joint_work_units` counts them);
        ``cancelled()`` asked before each chunk and trial fit (True raises
        :class:`~napari_mr_reparam.cancellation.Cancelled`).
    """
    arrays, acqs = _check_inputs(volumes, acquisitions)
    series = None
    if not isinstance(scale, str):  # a series label per input
        series = series_of(scale, len(arrays))
        scale = "series" if max(series) > 0 else "shared"
    elif scale not in ("shared", "per_input"):
        raise ValueError(f"scale must be 'shared', 'per_input' or a series label per input, got {scale!r}")
    if echo_train not in ECHO_TRAIN_MODELS:
        raise ValueError(f"echo_train must be one of {', '.join(ECHO_TRAIN_MODELS)}, got {echo_train!r}")
    inputs = _prepared_inputs(arrays, acqs, clipped, noise, smooth, threads, spacing, echo_train, inversion,
                              cancelled, storage_t1)
    prior = prior or {}
    if gains is not None:
        scale = [float(g) for g in gains]
        if len(scale) != len(arrays):
            raise ValueError(f"{len(scale)} gains but {len(arrays)} images: give one per image")
    problem = _voxel_problem(inputs, prior, "shared" if scale == "series" else scale, tolerance)
    found = ()
    # a train beside inputs that measure T1: fitted again at the T1 this fit finds
    again = storage_t1 is None and inputs.b1 is not None and problem.free["t1"]
    slices = inputs.shape[0] if len(inputs.shape) == 3 else 1
    counting = _halved(progress) if again else progress  # two passes count the slices once
    with torch_threads(threads):
        if scale == "series":
            gains, found = _series_gains(series, problem, inputs, tolerance, iterations, grid_points, chunk_voxels,
                                         cancelled, progress)
            problem = _voxel_problem(inputs, prior, gains, tolerance)
        out, det = fit_voxels(problem, tolerance, iterations, grid_points, chunk_voxels, counting, cancelled)
        if inputs.b1 is not None:
            _leave_trains_free(det, out, problem, inputs.b1, storage_t1, tolerance, cancelled, inputs.excess)
    maps = {key: _in_volume(out[key], problem.index, inputs.shape, np.float32, inputs.nan) for key in PARAMETERS}
    determined = {key: _in_volume(det[key], problem.index, inputs.shape, bool) for key in PARAMETERS}
    if again and determined["t1"].any():
        # the gains this fit found or was given, kept (one shared gain is PD's)
        kept = list(problem.scales) if gains is not None or scale != "shared" else None
        refit = fit_maps(volumes, acquisitions, prior, "shared", inputs.noise, tolerance, iterations, grid_points,
                         chunk_voxels, threads, echo_train, inversion, clipped, smooth, spacing, counting,
                         cancelled, kept, storage_t1=np.where(determined["t1"], maps["t1"], np.nan))
        refit.gains_found = tuple(found) or refit.gains_found
        return refit
    if again and counting is not None:  # no second pass: its half counted at once
        counting(slices)
    return JointMaps(maps["pd"], maps["t1"], maps["t2"], determined, list(inputs.acqs), problem.scales,
                     problem.free, b1=inputs.b1, echo_train=echo_train if inputs.b1 is not None else "ideal",
                     noise=inputs.noise, sigma=[float(v) for v in inputs.sigma], averaged=inputs.averaged,
                     prior_source="given" if "t1" in prior else "default",
                     prior_parameters=("pd", "t1", "t2") if problem.prior_pd is not None else ("t1", "t2"),
                     gains_found=tuple(found))


def _series_gains(series, problem, inputs, tolerance, iterations, grid_points, chunk_voxels, cancelled=None,
                  progress=None):
    """Each input's gain where the inputs come from several series (``series``: each
    input's, :func:`series_gains.series_of`), and per series how it was found
    (:func:`series_gains.profile_gains`; where the misfit cannot tell it, the gain the
    prior's times give the series' inputs, as ``scale="per_input"`` estimates one input's).
    ``cancelled()`` is asked before each trial fit, ``progress(1)`` told after it."""
    def fit(part):
        out = fit_voxels(part, tolerance, iterations, grid_points, chunk_voxels, cancelled=cancelled)[0]
        if progress is not None:
            progress(1)
        return out

    def fallback(members):
        chosen = [inputs.clean[0]] + [inputs.clean[i] for i in members]
        acqs = [inputs.acqs[0]] + [inputs.acqs[i] for i in members]
        return float(np.median(_per_input_scales(chosen, acqs, problem.prior_t1, problem.prior_t2, inputs.body)[1:]))

    return profile_gains(series, problem, fit, fallback)


def _leave_trains_free(det: dict, out: dict, problem: VoxelProblem, b1, storage_t1, tolerance: float,
                       cancelled=None, excess=None) -> None:
    """``det`` (in place) where the trains' own freedom counts too: a parameter stays
    determined where its standard error is below ``tolerance`` also with each train's
    flip-angle scale free and T1 shaping its echoes (:func:`~napari_mr_reparam.echo_trains.train_errors`
    at the fitted maps ``out``; ``b1`` and ``storage_t1`` (ms) over the volume, NaN where
    no train was fitted or T1 unknown). A short train's long T2 trades off against the
    stimulated echoes' storage, and where no input measures T1 that storage is a guess. A
    train whose echoes depart from its phase graph by more than their noise (``excess``,
    over the volume) counts as that much noisier: the departure, not the noise, limits it."""
    index = problem.index
    at = None if storage_t1 is None else np.asarray(storage_t1, np.float64).reshape(-1)[index]
    valid = None if problem.measured is None else [m[index] for m in problem.measured]
    errors = train_errors(problem.acqs, problem.scales, problem.sigma, [out[key] for key in PARAMETERS],
                          np.asarray(b1).reshape(-1)[index], at, valid, cancelled=cancelled,
                          excess=None if excess is None else np.asarray(excess).reshape(-1)[index])
    for k, key in enumerate(PARAMETERS):
        det[key] &= np.isnan(errors[k]) | (errors[k] < tolerance)


@dataclass
class _Inputs:
    """A fit's inputs made ready (:func:`_prepared_inputs`)."""

    clean: list  # float32 images, 0 where not measured; smoothed, trains in the ideal form
    acqs: list  # their acquisitions' values, an inversion recovery's with the efficiency
    shape: tuple
    finite: list  # per input: measured
    complete: np.ndarray  # every input measured
    nan: np.ndarray  # no input measured
    lower: list | None  # per input: clipped (a lower bound), None without any
    noise: list  # per input, of its bright signal
    sigma: np.ndarray  # per input, in its own units
    body: np.ndarray  # the object: some input a few noise levels above its background's level
    averaged: np.ndarray | None
    b1: np.ndarray | None
    excess: np.ndarray | None  # the trains' misfit in units of their noise (echo_trains.misfit_excess)


def _halved(progress):
    """A progress callback for two passes over the same slices, which counts each slice of
    either pass as half (None without ``progress``)."""
    if progress is None:
        return None
    state = {"counted": 0, "passed": 0}

    def count(n):
        state["counted"] += n
        now = state["counted"] // 2
        if now > state["passed"]:
            progress(now - state["passed"])
            state["passed"] = now
    return count


def _prepared_inputs(arrays, acqs, clipped, noise, smooth, threads, spacing, echo_train, inversion,
                     cancelled, storage_t1=None) -> _Inputs:
    """The inputs as the solver takes them: unmeasured values set to 0, each input's noise
    (given, or measured), the object, the inputs smoothed among like neighbours, the echoes
    of a train in the ideal equation's form, and the inversion efficiency (given, or
    estimated) in the inversion-recovery acquisitions."""
    shape = arrays[0].shape
    lower = _clipped_masks(clipped, arrays)
    finite = [np.isfinite(a) for a in arrays]
    complete = np.logical_and.reduce(finite)  # every input measured
    exact = complete if lower is None else complete & ~np.logical_or.reduce(lower)  # and none clipped
    nan = ~np.logical_or.reduce(finite)  # none
    # the fit's own copies, C-ordered (a transposed input gives a transposed np.where)
    clean = [np.ascontiguousarray(np.where(f, a, 0), dtype=np.float32) for f, a in zip(finite, arrays)]
    peaks = np.array([bright_level(a) for a in clean], np.float32)
    if noise is None:
        noise = estimate_noise(clean) or DEFAULT_NOISE
    noise = per_input_noise(noise, len(clean))
    sigma = np.maximum(np.asarray(noise, np.float32) * peaks, 1e-12).astype(np.float32)
    # background: no input a few noise levels above its background's level
    body = np.zeros(shape, bool)
    for a, sd, floor in zip(clean, sigma, background_levels(clean, peaks)):
        body |= a > floor + BODY_NOISE_LEVELS * sd
    averaged = None
    if smooth:
        with torch_threads(threads):
            # in place: ``clean`` holds this fit's own copies of the inputs
            clean, averaged = smooth_inputs(clean, sigma, body=body, keep=exact, cancelled=cancelled,
                                            spacing=spacing, overwrite=True)
    b1 = excess = None
    if echo_train == "epg":
        exact_each = finite if lower is None else [f & ~c for f, c in zip(finite, lower)]
        clean, b1, excess = ideal_form(clean, acqs, body, cancelled, finite=None if exact.all() else exact_each,
                                       storage_t1=storage_t1, sigma=sigma)
    k = float(inversion) if inversion is not None else inversion_efficiency(clean, acqs, body & exact)
    if not 0 < k <= 1.5:
        raise ValueError(f"inversion efficiency must be above 0 and at most 1.5, got {k:g}")
    acqs = [a._replace(inversion=k) if a.sequence == "inversion_recovery" else a for a in acqs]
    return _Inputs(clean, acqs, shape, finite, complete, nan, lower, noise, sigma, body, averaged, b1, excess)


def _voxel_problem(inputs: _Inputs, prior: dict, scale: str, tolerance: float) -> VoxelProblem:
    """What the solver fits at the object's voxels: the inputs' values, the times they
    leave free, the gains, and the prior (given maps, or the broad default) with its
    spreads and correlation (see :func:`fit_maps`)."""
    import torch

    index = np.flatnonzero(inputs.body)  # the voxels fitted; the priors are taken there alone

    def at_body(key):
        full = np.broadcast_to(np.asarray(prior.get(key, DEFAULT_PRIOR_MS[key]), np.float32), inputs.shape)
        bounds = T1_BOUNDS_MS if key == "t1" else T2_BOUNDS_MS
        return np.clip(np.nan_to_num(full.reshape(-1)[index], nan=DEFAULT_PRIOR_MS[key]), *bounds)
    p1, p2 = at_body("t1"), at_body("t2")
    free = determined_for_tissue(inputs.acqs, inputs.noise, tolerance, torch)
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
    scales = [float(g) for g in scale] if isinstance(scale, list) else [1.0] * len(inputs.clean)
    if scale == "per_input" and len(inputs.clean) > 1:
        scales = _per_input_scales(inputs.clean, inputs.acqs, p1, p2, inputs.body)
    prior_pd, pd_precision = _pd_prior(prior, inputs.shape, scales, index)
    return VoxelProblem(
        signals=[a.reshape(-1) for a in inputs.clean], index=index, shape=inputs.shape, sigma=inputs.sigma,
        acqs=inputs.acqs, scales=scales, free=free, spread=spread, prior_t1=p1, prior_t2=p2,
        prior_pd=prior_pd, pd_precision=pd_precision,
        measured=None if inputs.complete.all() else [f.reshape(-1) for f in inputs.finite],
        clipped=None if inputs.lower is None else [c.reshape(-1) for c in inputs.lower])


def _in_volume(values, index, shape, dtype, nan=None) -> np.ndarray:
    """Values at the flat voxel indices ``index`` laid into a volume of ``shape`` (0
    elsewhere, NaN where ``nan``)."""
    full = np.zeros(shape, dtype)
    full.reshape(-1)[index] = values
    if nan is not None:
        full[nan] = np.nan
    return full


def joint_work_units(shape, engine=None, series: int = 1) -> int:
    """How many units ``progress`` counts in :func:`joint_maps` for inputs of ``shape``:
    the volume's slices for the network's maps (with an engine), and again for the fit,
    and the trial fits of the gain search of each of ``series`` but the first
    (:data:`~napari_mr_reparam.series_gains.SEARCH_FITS`;
    :func:`~napari_mr_reparam.series_gains.series_count` of the fit's ``scale``)."""
    slices = shape[0] if len(shape) == 3 else 1
    return slices * (2 if engine is not None else 1) + SEARCH_FITS * (max(1, series) - 1)


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

    acqs = [checked_values(a) for a in acquisitions]
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
    from .peaks import input_gain

    v = checked_values(acq)
    step = max(1, np.size(pd) // 500_000)  # a median: a sample of the voxels tells it
    sample = [np.asarray(a, np.float32).reshape(-1)[::step] for a in (pd, t1, t2, image)]
    signal = physics.render(v.sequence, *sample[:3], v.te, v.tr, ti=v.ti, flip_deg=v.flip_deg, t2star=sample[2])
    factor = input_gain(signal, sample[3])
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
        qmaps = network_maps(engine, arrays[0], acqs[0], **calls)
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
    if engine is not None and prior_input is None and options.get("scale", "shared") != "per_input":
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
            sized = network_maps(engine, arrays[prior_input], acqs[prior_input],
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
        maps.engine = engine_given  # what an output's record names (its weights' sha256)
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
    unread = ~np.isfinite(image)  # the network read those voxels as 0: its maps there are no prior
    if unread.any():
        t1, t2 = np.where(unread, np.nan, t1), np.where(unread, np.nan, t2)
    prior = {"t1": t1, "t2": t2}
    branches = any(a.sequence == "inversion_recovery" for a in acqs)
    pd_sd = (NETWORK_PD_SD if not (measured["t1"] or measured["t2"])  # e.g. a T1w + T2w pair
             else BRANCH_PD_SD if branches and measured["t1"] and measured["t2"]  # T1w, T2w, FLAIR
             else None)
    if pd_sd is not None:
        pd = pd_in_input_units(np.where(unread, np.nan, sized["pd"].reshape(shape)), t1, t2, image, acqs[read])
        prior.update(pd=pd, pd_input=read, pd_sd=pd_sd)
    return prior


#: Why a voxel is not measured by every input, where the caller cannot tell which.
UNMEASURED_WHY = "outside some input's field of view, or NaN or infinite in it"


def partly_measured_note(share: float, network: bool, why: str = UNMEASURED_WHY) -> str:
    """One line on the ``share`` of the object that only some inputs measured, and ``why``."""
    amount = f"{100 * share:.0f} %" if share >= 0.005 else "under 1 %"
    return (f"{amount} of the object is not measured by every input ({why}): fitted there to the inputs "
            "that measure it" + (", the network's maps of the first input filling in what they leave open"
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
    noise = per_input_noise(maps.noise, len(arrays))
    rest = {k: v for k, v in options.items() if k not in ("noise", "clipped", "inversion", "scale", "gains")}
    fitted = {key: getattr(maps, key).reshape(shape)[rows] for key in PARAMETERS}
    determined = {key: maps.determined[key].reshape(shape)[rows] for key in PARAMETERS}
    for pattern in np.unique(code):
        inputs = [i for i in range(len(arrays)) if pattern >> i & 1]
        if inputs[0] != 0:  # the network reads the first input: without it, the whole fit stands
            continue
        where = np.zeros(part.shape, bool)
        where[part] = code == pattern
        if sized is None:
            sized = network_maps(engine, arrays[0], acqs[0], **calls).at_input_size()
            read = len(rows)
        sub = [np.where(where, arrays[i], np.nan).astype(np.float32) for i in inputs]
        sub_acqs = [acqs[i] for i in inputs]
        sub_noise = [noise[i] for i in inputs]
        measured = free_parameters(sub_acqs, noise=sub_noise, tolerance=options.get("tolerance", 0.1))
        fit = fit_maps(sub, sub_acqs, prior=_network_prior(sized, arrays[0], sub_acqs, 0, measured), noise=sub_noise,
                       clipped=None if clipped is None else [clipped[i] for i in inputs],
                       inversion=maps.inversion_efficiency, cancelled=calls.get("cancelled"),
                       gains=[maps.scales[i] for i in inputs], **rest)
        for key in PARAMETERS:
            fitted[key][where] = getattr(fit, key)[where]
            determined[key][where] = fit.determined[key][where]
        maps.partly_prior = "network"
        maps.engine = engine
    for key in PARAMETERS:
        getattr(maps, key).reshape(shape)[rows] = fitted[key]
        maps.determined[key].reshape(shape)[rows] = determined[key]
    return read
