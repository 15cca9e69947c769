"""Multi-echo spin-echo trains among a joint fit's inputs, in the ideal equation's form.

A train's echoes (spin-echo inputs of one TR whose TEs are whole multiples of one echo
spacing: :func:`echo_trains`) do not decay as ``exp(-TE/T2)`` where the refocusing pulses
fall short of 180 degrees. :func:`ideal_form` fits each voxel's train with its extended
phase graph (:mod:`napari_mr_reparam.epg`) and puts its echoes in the ideal equation's form
(each echo times ``exp(-TE/T2)`` over the fitted echo), with the flip-angle scale map.

T1 enters the train through its stimulated echoes' storage. Where it is not known it is
held at :data:`~napari_mr_reparam.epg.T1_MS` (1000 ms), right for tissue whose T1 is many
times its T2; where the other inputs measure it (``storage_t1``), each voxel's train is
fitted at its own T1 (the nearest of :data:`STORAGE_T1_GRID`). Samples whose T1 is near
their T2 (the NiCl2 spheres of a relaxometry phantom's T1 plate) decay almost as the ideal
equation says, and at 1000 ms their T2 read 10-18 % short (training/RESULTS.md, "Two
series of one plate").

What the fit leaves determined (:func:`train_errors`): the train's echoes through its
phase graph, with each voxel's flip-angle scale a parameter of its own, and T1 setting
the stimulated echoes' storage as well as the recovery. Where the refocusing falls short of
180 degrees (everywhere, across the slice profile) a short train's slow decay is long T2 or
storage of the stimulated echoes alike; where no input measures T1, the T1 held for the
storage is a guess, so the train determines such a T2 only if the data pin it whatever T1.
"""

from __future__ import annotations

import numpy as np

from . import epg
from .cancellation import stop_if_cancelled
from .fit_information import checked_values


def echo_trains(acquisitions) -> list[tuple[list[int], float, np.ndarray]]:
    """The inputs that are echoes of one multi-echo spin-echo train: spin-echo inputs of one
    TR whose TEs are whole multiples of one echo spacing (:func:`~napari_mr_reparam.epg.echo_numbers`).
    Returns (input indices, echo spacing in ms, echo numbers) per train."""
    acqs = [checked_values(a) for a in acquisitions]
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


#: The storage T1 values (ms) a train is fitted at where its voxels' T1 is known.
STORAGE_T1_GRID = np.geomspace(10.0, 5000.0, 24)


def ideal_form(arrays, acqs, body, cancelled=None, chunk_voxels: int = 1 << 16, finite=None, storage_t1=None,
               sigma=None):
    """Each train's images in the ideal spin-echo equation's form (per-voxel EPG fit of the
    train), the flip-angle scale map (None without a train) and the trains' misfit beyond
    their noise (:func:`misfit_excess`; NaN where no train was fitted or, without
    ``sigma``, each input's noise in its own units, unknown); ``cancelled()`` is asked
    before each chunk of voxels. Voxels where ``finite`` (per input) leaves an echo of the
    train unmeasured keep their echoes as they are. ``storage_t1`` (ms, the inputs' shape;
    NaN where unknown) is each voxel's T1 where other inputs measure it."""
    trains = echo_trains(acqs)
    if not trains:
        return arrays, None, None
    out = [a.copy() for a in arrays]
    b1 = np.full(arrays[0].shape, np.nan, np.float32)
    excess = np.full(arrays[0].shape, np.nan, np.float32)
    for members, spacing, numbers in trains:
        index = np.flatnonzero(body if finite is None else body & np.logical_and.reduce([finite[i] for i in members]))
        flat = [arrays[i].reshape(-1) for i in members]
        tes = [acqs[i].te for i in members]
        noise = None if sigma is None else float(np.mean([sigma[i] for i in members]))
        for start in range(0, index.size, chunk_voxels):
            stop_if_cancelled(cancelled)
            idx = index[start:start + chunk_voxels]
            signals = np.stack([f[idx] for f in flat]).astype(np.float64)
            t1 = None if storage_t1 is None else np.asarray(storage_t1, np.float64).reshape(-1)[idx]
            fit = fit_at_storage_t1(signals, numbers, spacing, t1)
            ratio = epg.ideal_ratio(fit, tes)
            for row, i in enumerate(members):
                out[i].reshape(-1)[idx] = (signals[row] * ratio[row]).astype(np.float32)
            b1.reshape(-1)[idx] = fit["scale"]
            if noise is not None:
                found = misfit_excess(fit["residual"], signals, noise)
                here = excess.reshape(-1)[idx]
                excess.reshape(-1)[idx] = np.fmax(here, found)  # the worst train's, where several
    return out, b1, excess


#: Parameters a train's fit takes per voxel (amplitude, T2, flip-angle scale): its echoes
#: beyond them measure how far the train departs from its phase graph.
TRAIN_FIT_PARAMETERS = 3


def misfit_excess(residual, signals, noise: float) -> np.ndarray:
    """How many times the train's noise its fit's misfit is, at least 1 (V,): the root of
    the reduced chi-square of the echoes (``signals``, (n, V)) about their fitted phase
    graph (``residual``: the relative RMS misfit :func:`~napari_mr_reparam.epg.fit_train`
    gives) with ``noise`` (one echo's, in the signals' units); 1 where the train has no
    echo beyond the fit's parameters. A train that departs from its model more than its
    noise does measures its times no better than that departure allows."""
    n = signals.shape[0]
    dof = n - TRAIN_FIT_PARAMETERS
    if dof < 1 or not noise > 0:
        return np.ones(signals.shape[1], np.float32)
    squares = (np.asarray(residual, np.float64) * np.linalg.norm(signals, axis=0)) ** 2
    return np.sqrt(np.maximum(squares / (dof * noise**2), 1.0)).astype(np.float32)


def storage_groups(t1_ms) -> list[tuple[float, np.ndarray]]:
    """The storage T1 (ms) each voxel's train is fitted at, as (T1, the voxels at it) pairs:
    the nearest of :data:`STORAGE_T1_GRID` to the voxel's ``t1_ms`` (one per voxel),
    :data:`~napari_mr_reparam.epg.T1_MS` where that is NaN."""
    log_grid = np.log(STORAGE_T1_GRID)
    known = np.isfinite(t1_ms)
    nearest = np.full(t1_ms.shape, -1)
    nearest[known] = np.abs(np.log(np.maximum(t1_ms[known], 1e-3))[:, None] - log_grid).argmin(axis=1)
    return [(epg.T1_MS if g < 0 else float(STORAGE_T1_GRID[g]), np.flatnonzero(nearest == g))
            for g in np.unique(nearest)]


def fit_at_storage_t1(signals, numbers, spacing_ms: float, t1_ms=None) -> dict:
    """:func:`~napari_mr_reparam.epg.fit_train` of each voxel (columns of ``signals``) at
    its own storage T1 (``t1_ms``, one per voxel, the nearest of :data:`STORAGE_T1_GRID`;
    :data:`~napari_mr_reparam.epg.T1_MS` where NaN or not given)."""
    if t1_ms is None or not np.isfinite(t1_ms).any():
        return epg.fit_train(signals, numbers, spacing_ms)
    out = {}
    for t1, columns in storage_groups(t1_ms):
        part = epg.fit_train(signals[:, columns], numbers, spacing_ms, t1_ms=t1)
        for key, values in part.items():
            if key not in out:
                out[key] = np.zeros((signals.shape[1], *values.shape[1:]), values.dtype)
            out[key][columns] = values
    return out


def train_slopes(acqs, t2_ms, scale, storage_t1=None) -> list[tuple[list[int], dict]]:
    """Per train among ``acqs`` (:func:`echo_trains`): its input indices, and its echoes
    per unit amplitude with their slopes at each voxel's T2 (ms) and flip-angle scale
    (``t2_ms``, ``scale``: (V,)) and at the storage T1 its fit took (``storage_t1``, as
    :func:`fit_at_storage_t1`): :func:`~napari_mr_reparam.epg.train_slopes`' (V, n) arrays."""
    t2_ms, scale = np.asarray(t2_ms, float), np.asarray(scale, float)
    t1_ms = np.full(t2_ms.shape, np.nan) if storage_t1 is None else np.asarray(storage_t1, float)
    out = []
    for members, spacing, numbers in echo_trains(acqs):
        slopes: dict = {}
        for t1, columns in storage_groups(t1_ms):
            part = epg.train_slopes(numbers, spacing, t2_ms[columns], scale[columns], t1)
            for key, values in part.items():
                slopes.setdefault(key, np.zeros((t2_ms.size, len(members))))[columns] = values
        out.append((members, slopes))
    return out


def train_errors(acqs, scales, sigma, fitted, b1, storage_t1=None, valid=None, chunk_voxels: int = 1 << 15,
                 cancelled=None, excess=None) -> np.ndarray:
    """Standard errors (3, V) of log PD, log T1 and log T2 at the fitted maps (``fitted``:
    PD, T1 and T2 (ms), (V,) each) with each train's flip-angle scale left free
    (:func:`~napari_mr_reparam.fit_information.train_information`,
    :func:`~napari_mr_reparam.fit_information.marginal_errors`); NaN where no train was
    fitted (``b1`` NaN). ``scales``, ``sigma``: each input's gain and noise (its own
    units); ``storage_t1`` (ms, (V,), NaN where unknown) the T1 the trains were fitted at;
    ``valid`` per input, (V,), its measured voxels (None: all); ``excess`` (V,) the trains'
    misfit in units of their noise (:func:`misfit_excess`), by which their echoes' noise
    is taken as larger (None or NaN: as measured)."""
    import torch

    from .fit_information import marginal_errors, train_information

    pd, t1, t2 = (np.asarray(v, np.float64) for v in fitted)
    b1 = np.asarray(b1, np.float64)
    in_trains = {i for members, _, _ in echo_trains(acqs) for i in members}
    out = np.full((3, b1.size), np.nan)
    for start in range(0, b1.size, chunk_voxels):
        stop_if_cancelled(cancelled)
        idx = start + np.flatnonzero(np.isfinite(b1[start:start + chunk_voxels]))
        if not idx.size:
            continue
        trains = train_slopes(acqs, t2[idx], b1[idx], None if storage_t1 is None else np.asarray(storage_t1)[idx])
        maps = [torch.from_numpy(np.ascontiguousarray(v[idx])) for v in (pd, t1, t2)]
        measured = None if valid is None else [torch.from_numpy(np.asarray(m)[idx]) for m in valid]
        noise = sigma
        if excess is not None:
            times = torch.from_numpy(np.nan_to_num(np.asarray(excess, np.float64)[idx], nan=1.0))
            noise = [float(sd) * times if i in in_trains else sd for i, sd in enumerate(sigma)]
        info = train_information(acqs, scales, noise, *maps, trains, torch, measured)
        out[:, idx] = torch.stack(marginal_errors(info, torch)).numpy()
    return out
