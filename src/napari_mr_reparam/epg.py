"""T2 from a multi-echo spin-echo train whose refocusing pulses are not 180 degrees.

A real multi-echo spin-echo (CPMG) train does not decay as ``exp(-TE/T2)``: refocusing
pulses below 180 degrees (the transmit field, and the slice profile across which the
flip angles fall off to zero) turn part of the magnetization into stimulated-echo
pathways that return in later echoes. Echo 1 then sits below echo 2 and the train
decays more slowly than T2, so a mono-exponential fit makes T2 too long. The extended
phase graph (EPG) of the train describes every echo with T2, T1 and the flip-angle
scale (Hennig, J Magn Reson 1988; fitted per voxel with the scale free: Lebel & Wilman,
MRM 2010; Prasloski et al., MRM 2012).

Here the echo amplitudes come from the EPG simulator of ``torchsim`` (``fse_sim``: a 90
degree excitation and 180-degree refocusing pulses, all scaled by the flip-angle scale),
averaged over the slice (:func:`slice_profile`), for a grid of T2 and flip-angle scales
(:func:`train_dictionary`). Each voxel takes the grid point whose echoes best match its own
(:func:`fit_train`: amplitude in closed form; between grid points, the vertex of a
quadratic fitted to the scores around the best one). T1 enters only through the
stimulated echoes' storage: :data:`T1_MS` unless given. :func:`train_slopes` gives a
train's echoes with their derivatives in T2, the flip-angle scale and that T1, for what
the fit leaves determined. Times are in milliseconds.
"""

from __future__ import annotations

import functools
import math

import numpy as np

#: Fewest echoes that count as a train whose flip-angle scale can be fitted.
MIN_TRAIN_ECHOES = 6
#: T1 (ms) during the stimulated echoes' storage where it is not known: right for tissue whose
#: T1 is many times its T2; a T1 near T2 takes the stimulated echoes away as fast as the
#: direct path (:mod:`~napari_mr_reparam.echo_trains` fits at a known T1).
T1_MS = 1000.0
#: Time-bandwidth product of the slice profile assumed for excitation and refocusing
#: (a Hann-windowed sinc); 0 for one flip angle across the slice.
PROFILE_TBW = 2.0
#: T2 grid (ms, log spaced) and flip-angle scale grid of the dictionary.
T2_GRID_MS = (2.0, 3000.0, 128)
#: The most an echo is raised to put a train in the ideal equation's form: stimulated
#: echoes hold echoes above the ideal decay, never ten times below it, so a larger ratio is
#: a fit that failed at a near-noise echo (and would raise the noise a thousandfold).
MAX_IDEAL_RATIO = 10.0
SCALE_STEP = 0.025
SCALE_RANGE = (0.5, 1.2)
#: Positions across half the slice (in slice thicknesses, 0 the centre) for the profile.
PROFILE_POSITIONS = np.linspace(0.0, 1.5, 16)
#: Step in log T1 of the central difference that gives the echoes' derivative in the T1 of
#: the stimulated echoes' storage (:func:`slope_tables`).
STORAGE_T1_STEP = 0.1


def echo_numbers(tes_ms) -> tuple[float, np.ndarray] | None:
    """Echo spacing (ms) and echo number of each TE if the TEs are echoes of one train.

    A train: at least :data:`MIN_TRAIN_ECHOES` distinct TEs, each a whole multiple of the
    smallest gap between them (the echo spacing; the first echo of a CPMG train is at one
    spacing). Returns None otherwise.
    """
    tes = np.asarray(tes_ms, float)
    if tes.size < MIN_TRAIN_ECHOES or not np.all(np.isfinite(tes)) or np.any(tes <= 0):
        return None
    gaps = np.diff(np.sort(tes))
    if np.any(gaps <= 1e-6 * tes.max()):
        return None
    spacing = float(gaps.min())
    numbers = np.rint(tes / spacing)
    if np.any(numbers < 1) or np.any(np.abs(tes - numbers * spacing) > 0.02 * spacing):
        return None
    return spacing, numbers.astype(int)


def slice_profile(tbw: float = PROFILE_TBW, positions=PROFILE_POSITIONS) -> np.ndarray:
    """Relative flip angle at ``positions`` (slice thicknesses from the centre) of a
    Hann-windowed sinc pulse of time-bandwidth product ``tbw`` (small-tip Fourier
    approximation, 1 at the centre); ``tbw`` 0: one flip angle, ``[1.0]``."""
    if tbw <= 0:
        return np.ones(1)
    t = np.linspace(-0.5, 0.5, 257)
    pulse = np.sinc(tbw * t) * (0.5 + 0.5 * np.cos(2 * np.pi * t))
    spectrum = np.abs(np.exp(-2j * np.pi * tbw * np.outer(positions, t)) @ pulse)
    return spectrum / np.abs(pulse.sum())


def scale_grid() -> np.ndarray:
    lo, hi = SCALE_RANGE
    return np.round(np.arange(lo, hi + SCALE_STEP / 2, SCALE_STEP), 6)


def t2_grid() -> np.ndarray:
    lo, hi, n = T2_GRID_MS
    return np.geomspace(lo, hi, n)


def cpmg_echoes(n_echoes: int, spacing_ms: float, t2_ms, scale, t1_ms: float = T1_MS) -> np.ndarray:
    """Echo amplitudes (..., n_echoes) of a CPMG train, one flip-angle scale across the slice
    (per unit magnetization; ``t2_ms`` and ``scale`` broadcast against each other)."""
    import torchsim

    t2, b1 = np.broadcast_arrays(np.asarray(t2_ms, float), np.asarray(scale, float))
    shape = t2.shape
    echoes = torchsim.fse_sim(flip=np.full(int(n_echoes), 180.0), ESP=float(spacing_ms), T1=float(t1_ms),
                              T2=t2.reshape(-1), B1=b1.reshape(-1), states=max(int(n_echoes), 10))
    echoes = np.real(np.asarray(echoes.detach().cpu() if hasattr(echoes, "detach") else echoes))
    return echoes.reshape(*shape, int(n_echoes))


@functools.lru_cache(maxsize=32)
def train_dictionary(n_echoes: int, spacing_ms: float, t1_ms: float = T1_MS,
                     profile_tbw: float = PROFILE_TBW) -> np.ndarray:
    """Slice-averaged echo amplitudes, shape (len(t2_grid()), len(scale_grid()), n_echoes)."""
    scales = scale_grid()
    profile = slice_profile(profile_tbw)
    top = float(scales.max() * profile.max())
    flips = np.arange(0.0, top + 2 * SCALE_STEP, SCALE_STEP)  # scale at a point of the slice
    t2 = t2_grid()
    table = cpmg_echoes(n_echoes, spacing_ms, t2[:, None], flips[None, :], t1_ms)  # (T, F, K)
    where = np.outer(scales, profile) / SCALE_STEP  # (S, Z) in table steps
    lo = np.clip(np.floor(where).astype(int), 0, flips.size - 2)
    w = (where - lo)[None, :, :, None]
    averaged = ((1 - w) * table[:, lo] + w * table[:, lo + 1]).mean(axis=2)
    single = np.array([single_echo_amplitude(scale * profile) for scale in scales])
    return (averaged / single[None, :, None]).astype(np.float64)


def single_echo_amplitude(profile) -> float:
    """The slice-averaged amplitude of one spin echo (excitation and refocusing angles of
    ``profile`` times 90 and 180 degrees across the slice; per unit magnetization, before
    T2 decay): ``mean(sin(a) sin^2(b / 2))`` with ``a``, ``b`` the local angles.
    :func:`train_dictionary` is per this amount at each flip-angle scale, so a train's
    ideal form (:func:`ideal_ratio`) is what single spin echoes of the same slice and
    transmit field would give: its first echo as it is, and the later ones without the
    stimulated echoes that raise them."""
    half = 0.5 * np.pi * np.asarray(profile, float)  # the excitation's angle; the refocusing's half
    return float(np.mean(np.sin(half) ** 3))


def _vertex(z):
    """Offsets (x, y), each in -1..1, of the vertex of the quadratic fitted to 3x3 scores
    ``z`` (V, 3, 3) on unit steps (x along the first axis); 0 where it has no maximum."""
    b = (z[:, 2, :] - z[:, 0, :]).sum(1) / 6
    c = (z[:, :, 2] - z[:, :, 0]).sum(1) / 6
    d = (z[:, 2, :] + z[:, 0, :] - 2 * z[:, 1, :]).sum(1) / 6
    f = (z[:, :, 2] + z[:, :, 0] - 2 * z[:, :, 1]).sum(1) / 6
    e = (z[:, 2, 2] - z[:, 2, 0] - z[:, 0, 2] + z[:, 0, 0]) / 4
    det = 4 * d * f - e * e
    ok = (d < 0) & (det > 1e-30 * np.abs(d * f).clip(1e-300))
    safe = np.where(ok, det, 1.0)
    x = np.where(ok, (-2 * f * b + e * c) / safe, 0.0)
    y = np.where(ok, (-2 * d * c + e * b) / safe, 0.0)
    return np.clip(x, -1, 1), np.clip(y, -1, 1)


def fit_train(signals, numbers, spacing_ms: float, t1_ms: float = T1_MS,
              profile_tbw: float = PROFILE_TBW, chunk_voxels: int = 1 << 13) -> dict:
    """Per-voxel T2, flip-angle scale and amplitude of echoes of one train.

    ``signals`` (n, V): voxel values of the train's echoes with echo numbers ``numbers``
    (n; 1 the first echo). Returns arrays (V,): ``t2`` (ms), ``scale`` (flip-angle scale:
    1 for 180-degree refocusing at the slice centre), ``amplitude`` and ``residual``
    (relative RMS misfit), and ``model`` (V, n): the fitted echoes per unit amplitude.
    """
    import torch

    s = np.asarray(signals, np.float64)
    numbers = np.asarray(numbers, int)
    table = train_dictionary(int(numbers.max()), float(spacing_ms), float(t1_ms), float(profile_tbw))
    atoms = table[:, :, numbers - 1]  # (T, S, n)
    nt, ns, n = atoms.shape
    unit = torch.from_numpy((atoms / np.linalg.norm(atoms, axis=2, keepdims=True).clip(1e-30)).astype(np.float32))
    v = s.shape[1]
    it, js = np.zeros(v, int), np.zeros(v, int)
    dt, ds = np.zeros(v), np.zeros(v)
    for start in range(0, v, chunk_voxels):
        block = torch.from_numpy(s[:, start:start + chunk_voxels].T.astype(np.float32))
        i, j, near = _search(block, unit)
        sl = slice(start, start + block.shape[0])
        it[sl], js[sl] = i.numpy(), j.numpy()
        x, y = _vertex(near.double().numpy())  # around the best: between grid points
        dt[sl] = np.where((it[sl] > 0) & (it[sl] < nt - 1), x, 0.0)
        ds[sl] = np.where((js[sl] > 0) & (js[sl] < ns - 1), y, 0.0)
    # the point between grid points where it fits better than the grid point itself
    grid = _amplitude_and_residual(s, atoms[it, js])
    between = _amplitude_and_residual(s, _interpolate(atoms, it, js, dt, ds))
    keep = between[2] <= grid[2]
    dt, ds = np.where(keep, dt, 0.0), np.where(keep, ds, 0.0)
    model = np.where(keep[:, None], between[0], grid[0])
    amplitude = np.where(keep, between[1], grid[1])
    residual = np.where(keep, between[2], grid[2])
    log_t2 = np.log(t2_grid())
    t2 = np.exp(log_t2[it] + dt * (log_t2[1] - log_t2[0]))
    scale = scale_grid()[js] + ds * SCALE_STEP
    return {"t2": t2, "scale": scale, "amplitude": amplitude, "residual": residual, "model": model}


def _window_scores(block, unit, ci, cj, reach_t: int, reach_s: int):
    """Scores of each voxel against the atoms within (reach_t, reach_s) grid steps of its
    own grid point (ci, cj): (V, 2 reach_t + 1, 2 reach_s + 1), and their indices."""
    import torch

    nt, ns, _ = unit.shape
    ii = (ci[:, None] + torch.arange(-reach_t, reach_t + 1)[None]).clamp(0, nt - 1)
    jj = (cj[:, None] + torch.arange(-reach_s, reach_s + 1)[None]).clamp(0, ns - 1)
    atoms = unit[ii[:, :, None], jj[:, None, :]]  # (V, a, b, n)
    return torch.einsum("vabn,vn->vab", atoms, block), ii, jj


def _search(block, unit):
    """Best grid point per voxel (indices, (V,)) and the scores of its 3x3 neighbourhood."""
    nt, ns, n = unit.shape
    best = (block @ unit.reshape(-1, n).T).argmax(dim=1)
    i, j = best // ns, best % ns
    near, _, _ = _window_scores(block, unit, i, j, 1, 1)
    return i, j, near


def _amplitude_and_residual(s, model):
    """Echoes (V, n), least-squares amplitude (V,) and relative RMS misfit (V,) of ``model``
    against signals ``s`` (n, V)."""
    amplitude = np.einsum("vn,nv->v", model, s) / np.einsum("vn,vn->v", model, model).clip(1e-30)
    misfit = s.T - amplitude[:, None] * model
    return model, amplitude, np.linalg.norm(misfit, axis=1) / np.linalg.norm(s, axis=0).clip(1e-30)


def _interpolate(atoms, it, js, dt, ds):
    """Echoes (V, n) between grid points: bilinear in (log T2 index, scale index)."""
    nt, ns, _ = atoms.shape
    i0 = np.where(dt < 0, it - 1, it)
    j0 = np.where(ds < 0, js - 1, js)
    ft = np.where(dt < 0, 1 + dt, dt)[:, None]
    fs = np.where(ds < 0, 1 + ds, ds)[:, None]
    i0, j0 = np.clip(i0, 0, nt - 1), np.clip(j0, 0, ns - 1)
    i1, j1 = np.minimum(i0 + 1, nt - 1), np.minimum(j0 + 1, ns - 1)
    return ((1 - ft) * (1 - fs) * atoms[i0, j0] + ft * (1 - fs) * atoms[i1, j0]
            + (1 - ft) * fs * atoms[i0, j1] + ft * fs * atoms[i1, j1])


@functools.lru_cache(maxsize=32)
def slope_tables(n_echoes: int, spacing_ms: float, t1_ms: float = T1_MS,
                 profile_tbw: float = PROFILE_TBW) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Derivatives of :func:`train_dictionary`'s echoes, each of its shape: in log T2 and in
    the flip-angle scale (central differences between its grid points, one-sided at the
    grid's ends), and in log T1 of the storage (across :data:`STORAGE_T1_STEP`)."""
    table = train_dictionary(n_echoes, spacing_ms, t1_ms, profile_tbw)
    log_step = math.log(t2_grid()[1] / t2_grid()[0])
    up, down = (train_dictionary(n_echoes, spacing_ms, t1_ms * math.exp(sign * STORAGE_T1_STEP), profile_tbw)
                for sign in (1, -1))
    return (np.gradient(table, log_step, axis=0), np.gradient(table, SCALE_STEP, axis=1),
            (up - down) / (2 * STORAGE_T1_STEP))


def train_slopes(numbers, spacing_ms: float, t2_ms, scale, t1_ms: float = T1_MS,
                 profile_tbw: float = PROFILE_TBW) -> dict:
    """A train's echoes per unit amplitude at each voxel's T2 (ms) and flip-angle scale
    (``t2_ms``, ``scale``: (V,)), between the dictionary's grid points as :func:`fit_train`
    takes them, and their derivatives (:func:`slope_tables`). Returns (V, n) arrays, n the
    echoes ``numbers``: ``echoes``, and their slopes in log T2 (``t2``), the scale
    (``scale``) and log T1 of the storage (``t1``). Values beyond the grid take its edge's."""
    numbers = np.asarray(numbers, int)
    n_max = int(numbers.max())
    tables = (train_dictionary(n_max, float(spacing_ms), float(t1_ms), float(profile_tbw)),
              *slope_tables(n_max, float(spacing_ms), float(t1_ms), float(profile_tbw)))
    log_t2, scales = np.log(t2_grid()), scale_grid()
    at_t2 = np.clip((np.log(np.asarray(t2_ms, float)) - log_t2[0]) / (log_t2[1] - log_t2[0]), 0, log_t2.size - 1)
    at_scale = np.clip((np.asarray(scale, float) - scales[0]) / SCALE_STEP, 0, scales.size - 1)
    it = np.minimum(np.floor(at_t2).astype(int), log_t2.size - 2)
    js = np.minimum(np.floor(at_scale).astype(int), scales.size - 2)
    return {key: _interpolate(table[:, :, numbers - 1], it, js, at_t2 - it, at_scale - js)
            for key, table in zip(("echoes", "t2", "scale", "t1"), tables)}


def ideal_ratio(fit: dict, tes_ms) -> np.ndarray:
    """Per echo and voxel (n, V): ``exp(-TE/T2)`` over the fitted train's echo. An echo
    image times it is the train as the ideal spin-echo equation gives it (amplitude x
    ``exp(-TE/T2)``), with the fitted T2."""
    tes = np.asarray(tes_ms, float)[:, None]
    ideal = np.exp(-tes / fit["t2"][None, :])
    return np.minimum(ideal / np.maximum(fit["model"].T, 1e-30), MAX_IDEAL_RATIO)

