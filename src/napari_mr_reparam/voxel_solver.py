"""The joint fit's per-voxel solver: a grid's start, then Levenberg-Marquardt.

Each voxel's (log PD, log T1, log T2) is fitted to its inputs' values (``s``, (n, V):
n inputs, V voxels) at their acquisitions, with PD in closed form, a Gaussian prior on log
T1 and log T2 (``prior_log`` its means per voxel, ``prior_sd`` its spreads and their
correlation ``rho``) and optionally on log PD. :func:`grid_start` picks each voxel's start
on a grid of the relaxation times the inputs leave free (with the prior's cost),
:func:`levenberg` refines it, and :func:`fit_voxels` runs both over a volume's voxels in
chunks, fitting again the voxels that did not settle (:func:`refit`). Times are in
milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .cancellation import stop_if_cancelled
from .fit_information import PARAMETERS, signal_and_slopes, solve3, standard_errors

#: Fit bounds (ms).
T1_BOUNDS_MS = (5.0, 10000.0)
T2_BOUNDS_MS = (1.0, 5000.0)
#: Bounds of (log PD, log T1, log T2) in the fit.
LOG_BOUNDS = ((-30.0, 30.0), (math.log(T1_BOUNDS_MS[0]), math.log(T1_BOUNDS_MS[1])),
              (math.log(T2_BOUNDS_MS[0]), math.log(T2_BOUNDS_MS[1])))
#: A fitted value within this of a bound (in log) has run into it: the data did not hold it
#: there (a T2 shorter than the first echo, whose echoes alternate, ran to 5000 ms), so it
#: does not count as determined, whatever its standard error says.
AT_BOUND_LOG = 1e-3
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


def prior_precision(prior_sd) -> tuple[float, float, float]:
    """(P11, P12, P22): the inverse of the log T1 / log T2 prior's covariance, from the
    spreads ``prior_sd["t1"]``, ``prior_sd["t2"]`` and their correlation ``prior_sd["rho"]``."""
    s1, s2, rho = float(prior_sd["t1"]), float(prior_sd["t2"]), float(prior_sd.get("rho", 0.0))
    det = 1.0 - rho * rho
    return 1.0 / (s1 * s1 * det), -rho / (s1 * s2 * det), 1.0 / (s2 * s2 * det)


def grid_start(s, sigma, acqs, scales, free, prior_log, prior_sd, torch, points: int, valid=None):
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
        f, _, _ = signal_and_slopes(acq, torch.exp(gt1), torch.exp(gt2), torch)
        cols.append(g * f / sd)
    basis = _no_subnormals(torch.stack(cols), torch)  # (n, G)
    # magnitudes: a negative value is noise about zero (so every fit below is >= 0, PD >= 0)
    weighted = (s.clamp_min(0) / sigma[:, None]).T.contiguous()  # (V, n)
    best = torch.empty(v, dtype=torch.long)
    chunk = max(1, 4_000_000 // basis.shape[1])

    # the prior's cost (g - mu)' P (g - mu) less its per-voxel constant: g' P g - 2 (P mu)' g;
    # an axis that is not on the grid stays at its prior mean (no cost, no cross term)
    p11, p12, p22 = prior_precision(prior_sd)
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


def fit_chunk(s, sigma, acqs, scales, free, prior_log, prior_sd, torch, iterations, grid_points,
               valid=None, lower=None):
    """Levenberg-Marquardt on one chunk of voxels, s (n, V), from the grid's start: returns
    (log PD, log T1, log T2), the cost (misfit and prior) and the Gauss-Newton matrix (6).
    ``valid`` (n, V) marks the measured values (an unmeasured one has no weight); all
    without it. ``lower`` (n, V) marks values that are only a lower bound of the signal
    (clipped): they cost nothing while the model is above them. Voxels whose cost is still
    above :data:`UNSETTLED_COST` go on to :func:`refit` (gathered over chunks)."""
    log_t1, log_t2 = grid_start(s, sigma, acqs, scales, free, prior_log, prior_sd, torch, grid_points, valid)
    return levenberg(s, sigma, acqs, scales, prior_log, prior_sd, torch, iterations, log_t1, log_t2, valid, lower)


def refit(s, sigma, acqs, scales, free, prior_log, prior_sd, torch, grid_points, valid, lower, x, cost, hess):
    """Unsettled voxels fitted on for :data:`MORE_ITERATIONS` steps from where they are and
    again from a grid twice as fine; each keeps whichever fit costs least (its own included).
    Returns the kept (log PD, log T1, log T2) and Gauss-Newton matrix."""
    finer = grid_start(s, sigma, acqs, scales, free, prior_log, prior_sd, torch, 2 * grid_points, valid)
    lowest = cost
    for start in ((x[1], x[2]), finer):  # on from where it is, and again from a finer grid
        x_new, cost_new, hess_new = levenberg(s, sigma, acqs, scales, prior_log, prior_sd, torch,
                                               MORE_ITERATIONS, *start, valid, lower)
        better = cost_new < lowest
        lowest = torch.where(better, cost_new, lowest)
        x = [torch.where(better, n, o) for n, o in zip(x_new, x)]
        hess = [torch.where(better, n, o) for n, o in zip(hess_new, hess)]
    return x, hess


def data_errors(hess, prior_log, prior_sd, torch, free=None):
    """Standard errors of (log PD, log T1, log T2) from the data alone: the Gauss-Newton
    matrix at the fit is the data's information plus the prior's precision. A time the
    acquisitions leave open (``free``: ``{"t1": False}`` for an echo train at one TR,
    ``{"t2": False}`` for inversion times at one TE) is held where it is: the others' errors
    come from the rest of the matrix, not from a singular whole, which single precision
    leaves to roundoff (its own error is then 1). PD, which the open time scales (by
    saturation, or by decay), is then not determined (an error of 1e30)."""
    p1, p12, p2 = prior_precision(prior_sd)
    data_only = list(hess)
    data_only[3], data_only[4], data_only[5] = hess[3] - p1, hess[4] - p12, hess[5] - p2
    if prior_log.get("pd") is not None:
        data_only[0] = hess[0] - prior_log["pd_precision"]
    held = [key for key in ("t1", "t2") if free is not None and not free.get(key, True)]
    for key in held:
        couplings, own = {"t1": ((1, 4), 3), "t2": ((2, 4), 5)}[key]
        for k in couplings:
            data_only[k] = torch.zeros_like(data_only[k])
        data_only[own] = torch.ones_like(data_only[own])
    errors = standard_errors(data_only, torch)
    if held:
        errors[0] = torch.full_like(errors[0], 1e30)
    return errors


def levenberg(s, sigma, acqs, scales, prior_log, prior_sd, torch, iterations, log_t1, log_t2,
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
        f = g * signal_and_slopes(acq, t1, t2, torch)[0]
        num, den = num + wi * si * f, den + wi * f * f
    x = [torch.log((num / den.clamp_min(1e-30)).clamp_min(1e-12)), log_t1, log_t2]
    p1, p12, p2 = prior_precision(prior_sd)
    mu1, mu2 = prior_log["t1"], prior_log["t2"]
    mu0, p0 = prior_log.get("pd"), prior_log.get("pd_precision")
    bounds = LOG_BOUNDS

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
            f, f1, f2 = signal_and_slopes(acq, t1, t2, torch)
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
        step, _ = solve3(damped, grad)
        trial = [torch.clamp(xi + si.clamp(-2, 2), lo, hi) for xi, si, (lo, hi) in zip(x, step, bounds)]
        new_cost, new_grad, new_hess = evaluate(trial)
        better = new_cost < cost
        x = [torch.where(better, t, xi) for t, xi in zip(trial, x)]
        cost = torch.where(better, new_cost, cost)
        grad = [torch.where(better, n, o) for n, o in zip(new_grad, grad)]
        hess = [torch.where(better, n, o) for n, o in zip(new_hess, hess)]
        lam = torch.where(better, lam * 0.2, lam * 10).clamp_(1e-6, 1e6)
    return x, cost, hess


@dataclass
class VoxelProblem:
    """What :func:`fit_voxels` fits: each input's values at the voxels fitted (flat, in the
    order of ``index``, the voxels' flat indices in the volume of ``shape``), the inputs'
    noise ``sigma`` (their own units), acquisitions, gains ``scales``, the times they leave
    ``free`` (:func:`~napari_mr_reparam.fit_information.free_parameters`), and the prior:
    T1 and T2 (ms) per voxel, their log spreads and correlation ``spread`` (``t1``, ``t2``,
    ``rho``), and optionally PD (the first input's units) with its per-voxel precision on log
    PD. ``measured`` (per input, flat over the volume; None: all) marks the values measured,
    ``clipped`` (likewise) those that are only a lower bound."""

    signals: list
    index: np.ndarray
    shape: tuple
    sigma: np.ndarray
    acqs: list
    scales: list
    free: dict
    spread: dict
    prior_t1: np.ndarray
    prior_t2: np.ndarray
    prior_pd: np.ndarray | None = None
    pd_precision: np.ndarray | None = None
    measured: list | None = None
    clipped: list | None = None

    def chunk(self, start: int, stop: int, torch) -> tuple:
        """(s, prior_log, valid, low) of the voxels ``start:stop`` (of ``index``) as tensors."""
        idx = self.index[start:stop]
        s = torch.from_numpy(np.stack([a[idx] for a in self.signals]))
        prior_log = {"t1": torch.from_numpy(np.log(self.prior_t1[start:stop])),
                     "t2": torch.from_numpy(np.log(self.prior_t2[start:stop]))}
        if self.prior_pd is not None:
            prior_log["pd"] = torch.from_numpy(np.log(np.maximum(self.prior_pd[start:stop], 1e-30)))
            prior_log["pd_precision"] = torch.from_numpy(self.pd_precision[start:stop])
        valid = None if self.measured is None else torch.from_numpy(np.stack([f[idx] for f in self.measured]))
        low = None if self.clipped is None else torch.from_numpy(np.stack([c[idx] for c in self.clipped]))
        return s, prior_log, valid, low


def fit_voxels(problem: VoxelProblem, tolerance: float, iterations: int, grid_points: int,
               chunk_voxels: int, progress=None, cancelled=None, threads: int | None = None) -> tuple[dict, dict]:
    """Fit every voxel of ``problem``, ``chunk_voxels`` at a time: a grid's start and
    ``iterations`` Levenberg-Marquardt steps (:func:`fit_chunk`); voxels whose cost stays
    above :data:`UNSETTLED_COST` are gathered over chunks and fitted again (:func:`refit`).
    Returns PD, T1, T2 (flat, in ``index`` order) and whether the data determine each (a
    standard error from the data alone below ``tolerance``, and a time the inputs leave
    free). ``progress(n)`` counts the volume's slices (first axis) as their voxels are done;
    ``cancelled()`` is asked before each chunk. Chunks are fitted on ``threads`` threads
    (default: torch's count; :func:`~napari_mr_reparam.parallel.chunk_threads`,
    :func:`~napari_mr_reparam.parallel.in_order`: a core that other work takes slows the
    fit by its share, not many times over)."""
    import torch

    from .parallel import chunk_threads, in_order

    p = problem
    out = {k: np.zeros(p.index.size, np.float32) for k in PARAMETERS}
    det = {k: np.zeros(p.index.size, bool) for k in PARAMETERS}
    sigma = torch.from_numpy(p.sigma)
    plane = int(np.prod(p.shape[1:])) if len(p.shape) == 3 else int(np.prod(p.shape))
    slices, reported = (p.shape[0] if len(p.shape) == 3 else 1), 0

    def store(positions, x, stderr):
        for k, key in enumerate(PARAMETERS):
            out[key][positions] = torch.exp(x[k]).numpy()
            low, high = LOG_BOUNDS[k]
            inside = (x[k] > low + AT_BOUND_LOG) & (x[k] < high - AT_BOUND_LOG)
            det[key][positions] = (stderr[k] < tolerance).numpy() & inside.numpy() & (p.free.get(key, True))

    pending, waiting = [], 0  # unsettled voxels, gathered over chunks for one refit

    def refit_pending():
        nonlocal pending, waiting
        stop_if_cancelled(cancelled)

        def joined(part):
            return None if pending[0][part] is None else torch.cat([q[part] for q in pending], dim=-1)

        positions = np.concatenate([q["positions"] for q in pending])
        prior = {k: torch.cat([q["prior"][k] for q in pending], dim=-1) for k in pending[0]["prior"]}
        x = [torch.cat([q["x"][k] for q in pending]) for k in range(3)]
        hess = [torch.cat([q["hess"][k] for q in pending]) for k in range(6)]
        x, hess = refit(joined("s"), sigma, p.acqs, p.scales, p.free, prior, p.spread, torch, grid_points,
                        joined("valid"), joined("low"), x, joined("cost"), hess)
        store(positions, x, data_errors(hess, prior, p.spread, torch, p.free))
        pending, waiting = [], 0

    def solved(start):  # one chunk, on a thread of its own
        with torch.no_grad():
            stop_if_cancelled(cancelled)
            stop = min(start + chunk_voxels, p.index.size)
            s, prior_log, valid, low = p.chunk(start, stop, torch)
            x, cost, hess = fit_chunk(s, sigma, p.acqs, p.scales, p.free, prior_log,
                                      p.spread, torch, iterations, grid_points, valid, low)
            return start, stop, s, prior_log, valid, low, x, cost, hess, data_errors(hess, prior_log, p.spread,
                                                                                     torch, p.free)

    with torch.no_grad(), chunk_threads(threads) as workers:
        chunks = in_order(solved, range(0, p.index.size, chunk_voxels), workers)
        for start, stop, s, prior_log, valid, low, x, cost, hess, errors in chunks:
            store(slice(start, stop), x, errors)
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
                done = min(slices, int(p.index[stop - 1]) // plane) if stop < p.index.size else slices
                if done > reported:
                    progress(done - reported)
                    reported = done
        if pending:
            refit_pending()
    if progress is not None and reported < slices:
        progress(slices - reported)
    return out, det
