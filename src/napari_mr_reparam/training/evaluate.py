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
from ..datasets import ProtocolDataset, build_protocol_dataset
from ..metrics import CONVENTION, band_means, batch_metrics, summarize, to_255
from ..phantoms import load_phantom
from ..simulate import resize_slices

CHUNK = 240
#: Target echo-time bands (ms) of the report's ``psnr_by_target_te``.
TARGET_TE_BANDS_MS = (20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)


class IdentityModel:
    """The baseline that returns its input unchanged, with the engine's interface."""

    def __init__(self, task: str = "d2p"):
        from ..inference import ModelInfo

        self.task = task
        self.info = ModelInfo(name="identity", arch="identity", task=task, width=0.0, card={})

    def predict_images(self, images01, *args, progress=None, **kwargs):
        if progress is not None:
            progress(len(images01))
        return np.asarray(images01, np.float32)


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
             limit: int | None = None, progress=None) -> dict:
    """Score ``engine`` (a :class:`~napari_mr_reparam.inference.Reparameterizer`) on the
    protocol of ``phantom`` (a spec for :func:`~napari_mr_reparam.phantoms.load_phantom`,
    or a :class:`~napari_mr_reparam.phantoms.Phantom`).

    Returns the model's summary with ``identity`` (prediction = input) beside it, the
    model's mean PSNR per target TE band (``psnr_by_target_te``: a list of
    ``{"range": [lo, hi] ms, "count", "mean"}``), and the setting (task, phantom, split,
    count). ``limit`` keeps the first N test samples.
    """
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
        preds = _predict(engine, ds, task, p, s, inputs, progress)
        masks = ds.masks_at(s)
        model_rows.append(batch_metrics(to_255(preds), targets, masks))
        identity_rows.append(batch_metrics(to_255(inputs[0]), targets, masks))
    per_image = _concat(model_rows)
    report = summarize(per_image)
    report["psnr_by_target_te"] = band_means(per_image["psnr"], ds.te_ms[pairs], TARGET_TE_BANDS_MS)
    report["identity"] = summarize(_concat(identity_rows))
    report.update(task=task, phantom=spec, split=split, dataset_seed=dataset_seed,
                  model=engine.info.name, convention=CONVENTION)
    if getattr(engine, "consistency", None) is not None:
        report["consistency"] = engine.consistency
        report["calibrate_peak"] = bool(getattr(engine, "calibrate_peak", False))
        report["flip_average"] = bool(getattr(engine, "flip_average", False))
    return report


def _predict(engine, ds: ProtocolDataset, task: str, pairs, slices, inputs, progress) -> np.ndarray:
    """Predictions at the network size from the network-size test ``inputs`` (images and
    input times, from :func:`test_inputs`). A model that reads images on their own grid
    gets the exported images instead, and its predictions are resized like the targets."""
    native = bool(getattr(engine, "native_input", False))
    images, te_in, tr_in = test_inputs(ds, task, pairs, slices, native) if native else inputs
    preds = engine.predict_images(images, ds.te_ms[pairs], ds.tr_ms[pairs], te_in, tr_in,
                                  progress=progress)
    return np.clip(resize_slices(preds, ds.size), 0.0, 1.0) if native else preds


def _concat(rows: list[dict]) -> dict:
    return {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
