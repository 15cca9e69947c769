"""The widget's work off the GUI thread: one engine call per request (:func:`compute`)
and a whole volume's contrast limits, computed where the volume is (:func:`with_range`).

Nothing here touches Qt or a layer: :class:`~napari_mr_reparam._background.LatestJob`
runs these in a napari worker thread, and :mod:`napari_mr_reparam._widget` shows what
they return. torch is imported only when the first job runs (through the engine).
"""

from __future__ import annotations

import numpy as np

from .acquisition import Acquisition
from .widget_logic import EngineCache, Request, input_gains, joint_acquisitions, joint_inputs


def compute(engines: EngineCache, request: Request, data, job) -> tuple:
    """One engine call for ``request`` (run in a worker thread): ``("maps", (engine, maps))``
    for the physics model or joint maps (``engine`` None), else ``("prediction", volume)``.
    ``data``: the input layer's array, read here (a lazy one, dask say, off the GUI thread:
    a slice's preview reads that slice).
    The engine chunks the volume itself; its ``progress`` callback moves the bar (through
    ``job``'s Qt signal, so from the worker thread safely) and its ``cancelled`` hook reads
    ``job``'s cancel flag."""
    from .inference import InferenceOptions

    engine = engines.get(request.model, request.device)
    given = request.given()
    if request.inputs:
        from .joint_fit import joint_maps

        volumes, clipped, resampled, motions, noise, spacing = joint_inputs(
            request.inputs, request.register, progress=job.advance, cancelled=job.cancelled)
        maps = joint_maps(volumes, joint_acquisitions(request.inputs, request.register), engine=engine, clipped=clipped,
                          noise=noise, spacing=spacing,
                          scale="per_input" if request.gain_per_input else input_gains(request.inputs),
                          echo_train=request.echo_train,
                          engine_options=InferenceOptions(request.consistency, request.flip_average),
                          progress=job.advance, cancelled=job.cancelled)
        maps.resampled, maps.registered = tuple(resampled), tuple(motions)
        return ("maps", (None, maps))
    if engine.renders_from_maps:
        options = InferenceOptions(request.consistency, request.flip_average)
        maps = engine.compute_maps(np.asarray(data), given, options=options, progress=job.advance,
                                   cancelled=job.cancelled)
        return ("maps", (engine, maps))
    volume = np.asarray(data if request.slice_index is None else data[request.slice_index])
    if request.slice_index is not None and not holds_an_image(volume):  # an empty edge slice's preview
        return ("prediction", (np.zeros(volume.shape, np.float32), None))
    pred = engine.predict(volume, Acquisition(request.te, request.tr), given,
                          progress=job.advance, cancelled=job.cancelled)
    return ("prediction", with_range(pred) if request.slice_index is None else (pred, None))


def holds_an_image(volume: np.ndarray) -> bool:
    """Whether ``volume`` has an image in it (not empty, all NaN, or one value:
    :func:`~napari_mr_reparam.inference.require_contrast`)."""
    from .inference import require_contrast

    try:
        require_contrast(volume)
    except ValueError:
        return False
    return True


def with_range(volume: np.ndarray) -> tuple:
    """``(volume, (lowest, highest))``: a whole volume with the contrast limits of its layer,
    computed where the volume is (a worker thread: tens of milliseconds for a real scan's
    depth)."""
    finite = np.isfinite(volume)
    low = float(np.min(volume, where=finite, initial=np.inf))
    high = float(np.max(volume, where=finite, initial=-np.inf))
    if low > high:  # no finite voxel (every one NaN): the layer keeps a plain range
        return volume, (0.0, 1.0)
    return volume, (low, high or 1.0)
