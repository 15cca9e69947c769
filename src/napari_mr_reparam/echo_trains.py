"""Multi-echo spin-echo trains among a joint fit's inputs, in the ideal equation's form.

A train's echoes (spin-echo inputs of one TR whose TEs are whole multiples of one echo
spacing: :func:`echo_trains`) do not decay as ``exp(-TE/T2)`` where the refocusing pulses
fall short of 180 degrees. :func:`ideal_form` fits each voxel's train with its extended
phase graph (:mod:`napari_mr_reparam.epg`) and puts its echoes in the ideal equation's form
(each echo times ``exp(-TE/T2)`` over the fitted echo), with the flip-angle scale map.
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


def ideal_form(arrays, acqs, body, cancelled=None, chunk_voxels: int = 1 << 16, finite=None):
    """Each train's images in the ideal spin-echo equation's form (per-voxel EPG fit of the
    train), and the flip-angle scale map (None without a train); ``cancelled()`` is asked
    before each chunk of voxels. Voxels where ``finite`` (per input) leaves an echo of the
    train unmeasured keep their echoes as they are."""
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
            stop_if_cancelled(cancelled)
            idx = index[start:start + chunk_voxels]
            signals = np.stack([f[idx] for f in flat]).astype(np.float64)
            fit = epg.fit_train(signals, numbers, spacing)
            ratio = epg.ideal_ratio(fit, tes)
            for row, i in enumerate(members):
                out[i].reshape(-1)[idx] = (signals[row] * ratio[row]).astype(np.float32)
            b1.reshape(-1)[idx] = fit["scale"]
    return out, b1
