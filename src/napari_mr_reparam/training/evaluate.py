"""Evaluation on the paper's protocol: a model beside the identity baseline.

The test part of a split of a phantom's protocol dataset is predicted in chunks and
scored per image at the network size, 256x256, for every model
(:mod:`napari_mr_reparam.metrics`); the report follows the paper's Table 1 (mean and
standard deviation of PSNR and MAE) plus SSIM and brain-masked PSNR. The identity
baseline and the paper's models read the 256x256 images; a model that reads images on
their own grid (``native_input``) reads them as exported, and its predictions are
resized to 256x256 as the targets were. The report also breaks the model's PSNR down by
the target's echo time (:data:`TARGET_TE_BANDS_MS`): the protocol draws TE from 20 ms to
1 s, and at long TE an image is almost CSF alone, so each band asks something else.
"""

from __future__ import annotations

import numpy as np

from .. import DEFAULT_TE_MS, DEFAULT_TR_MS
from ..acquisition import Acquisition
from ..datasets import ProtocolDataset, build_protocol_dataset
from ..metrics import CONVENTION, band_means, batch_metrics, summarize, to_255
from ..phantoms import load_phantom
from ..resize import resize_slices
from ..simulate import normalize_to_max

CHUNK = 240
#: Target echo-time bands (ms) of the report's ``psnr_by_target_te``.
TARGET_TE_BANDS_MS = (20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)


class IdentityModel:
    """The baseline that returns its input unchanged, with the engine's interface."""

    renders_from_maps = False
    native_input = False

    def __init__(self, task: str = "d2p"):
        from ..inference import ModelInfo

        self.task = task
        self.info = ModelInfo(name="identity", arch="identity", task=task, width=0.0, card={})

    def resolve(self, options=None):
        return options

    def predict(self, volume, target, input=None, *, options=None, progress=None, cancelled=None):
        if progress is not None:
            progress(len(volume))
        return np.asarray(volume, np.float32)


def test_inputs(ds: ProtocolDataset, task: str, pairs, slices, native: bool = False):
    """Input images and their TE/TR (ms) for the test samples ``(pairs, slices)``, at the
    network size or (``native``) on the phantom's grid as exported."""
    if task == "d2p":
        n = len(pairs)
        return (ds.default_at(slices, native), np.full(n, DEFAULT_TE_MS, np.float32),
                np.full(n, DEFAULT_TR_MS, np.float32))
    q = ds.p2p_input_pair[pairs, slices]
    return ds.images_at(q, slices, native), ds.te_ms[q], ds.tr_ms[q]


def evaluate(engine, task: str, phantom: str, split: str = "paper", dataset_seed: int = 0,
             limit: int | None = None, progress=None, options=None) -> dict:
    """Score ``engine`` (a :class:`~napari_mr_reparam.inference.Reparameterizer`) on the
    protocol of ``phantom`` (a spec for :func:`~napari_mr_reparam.phantoms.load_phantom`,
    or a :class:`~napari_mr_reparam.phantoms.Phantom`).

    Returns the model's summary with ``identity`` (prediction = input) beside it, the
    model's mean PSNR per target TE band (``psnr_by_target_te``: a list of
    ``{"range": [lo, hi] ms, "count", "mean"}``), and the setting (task, phantom, split,
    count). ``limit`` keeps the first N test samples. The model predicts through
    :func:`predict_test_images`, the engine request users make, with ``options``
    (:class:`~napari_mr_reparam.inference.InferenceOptions`; the engine's by default).
    """
    options = engine.resolve(options)
    if task == "p2p" and engine.task == "d2p":
        raise ValueError("a Default-to-Param model cannot be evaluated on Param-to-Param inputs")
    spec = phantom if isinstance(phantom, str) else phantom.name
    ds = build_protocol_dataset(load_phantom(phantom) if isinstance(phantom, str) else phantom,
                                seed=dataset_seed)
    pairs, slices = ds.samples(split, "test")
    if limit:
        pairs, slices = pairs[:limit], slices[:limit]
    model_rows, identity_rows = [], []
    for start in range(0, len(pairs), CHUNK):
        p, s = pairs[start:start + CHUNK], slices[start:start + CHUNK]
        inputs = test_inputs(ds, task, p, s)
        targets = to_255(ds.images_at(p, s))
        preds = predict_samples(engine, ds, task, p, s, options, progress, inputs)
        masks = ds.masks_at(s)
        model_rows.append(batch_metrics(to_255(preds), targets, masks))
        identity_rows.append(batch_metrics(to_255(inputs[0]), targets, masks))
    per_image = _concat(model_rows)
    report = summarize(per_image)
    report["psnr_by_target_te"] = band_means(per_image["psnr"], ds.te_ms[pairs], TARGET_TE_BANDS_MS)
    report["identity"] = summarize(_concat(identity_rows))
    report.update(task=task, phantom=spec, split=split, dataset_seed=dataset_seed,
                  model=engine.info.name, convention=CONVENTION)
    if engine.renders_from_maps:
        report.update(consistency=options.consistency, calibrate_peak=options.calibrate_peak,
                      flip_average=options.flip_average)
    return report


def predict_test_images(engine, images01, target: Acquisition, input: Acquisition | None = None,
                        options=None, progress=None) -> np.ndarray:
    """Predictions of test images in [0, 1] (n, h, w), each at its own target and input
    acquisition (times per image): one :meth:`~napari_mr_reparam.inference.Reparameterizer.predict`
    request, the call the command line and the widget make, so the scores are those of
    what users run (a Default-to-Param model told no input acquisition: it reads every
    input as its one). Returns images in [0, 1]: a physics model's renders (in the input's
    units) each at its own maximum, as the protocol scores images."""
    from ..inference import input_read_by

    preds = engine.predict(images01, target, input_read_by(engine, input), options=options, progress=progress)
    if getattr(engine, "renders_from_maps", False):
        return normalize_to_max(np.nan_to_num(preds))
    return np.clip(preds, 0.0, 1.0)


def predict_samples(engine, ds: ProtocolDataset, task: str, pairs, slices, options=None,
                    progress=None, inputs=None) -> np.ndarray:
    """Predictions in [0, 1] at the network size of the test samples ``(pairs, slices)``
    of ``ds``, from their network-size inputs (``inputs``, from :func:`test_inputs`, when
    already at hand). A model that reads images on their own grid gets the exported images
    instead, and its predictions are resized like the targets."""
    native = bool(getattr(engine, "native_input", False))
    if native or inputs is None:
        inputs = test_inputs(ds, task, pairs, slices, native)
    images, te_in, tr_in = inputs
    preds = predict_test_images(engine, images, Acquisition(ds.te_ms[pairs], ds.tr_ms[pairs]),
                                Acquisition(te_in, tr_in), options, progress)
    return np.clip(resize_slices(preds, ds.size), 0.0, 1.0) if native else preds


def _concat(rows: list[dict]) -> dict:
    return {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
