"""Image-quality metrics on the paper's convention, and evaluation reports.

Convention (as the paper's authors computed them): images on the 0-255 scale, clipped,
whole image, no mask; PSNR with peak 255; MAE in grey levels. SSIM uses scikit-image
with ``data_range=255``. Brain-masked variants compute the same errors over brain
voxels only. Normalization choices move these numbers a lot, so every report states
its convention.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

from .parallel import over_planes

PEAK = 255.0
#: PSNR of identical images is infinite; reports cap it here so means stay finite.
PSNR_CAP_DB = 100.0
CONVENTION = (
    "0-255 scale, clipped; each image normalized to its own maximum; whole image unless "
    "masked; PSNR peak 255 (capped at 100 dB); MAE in grey levels; SSIM data_range 255"
)


def to_255(images01) -> np.ndarray:
    """Map images in [0, 1] to the clipped 0-255 scale (float64)."""
    return np.clip(np.asarray(images01, dtype=np.float64) * PEAK, 0.0, PEAK)


def _check(pred, target):
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    if pred.shape != target.shape:
        raise ValueError(f"shape mismatch: prediction {pred.shape} vs target {target.shape}")
    return pred, target


def _select(pred, target, mask):
    if mask is None:
        return pred, target
    mask = np.asarray(mask, bool)
    if not mask.any():
        raise ValueError("the mask selects no voxels")
    return pred[mask], target[mask]


def psnr(pred, target, mask=None) -> float:
    """PSNR (dB, peak 255) of one image pair on the 0-255 scale."""
    p, t = _select(*_check(pred, target), mask)
    mse = float(np.mean((p - t) ** 2))
    if mse == 0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, 10.0 * np.log10(PEAK**2 / mse))


def mae(pred, target, mask=None) -> float:
    """Mean absolute error (grey levels) on the 0-255 scale."""
    p, t = _select(*_check(pred, target), mask)
    return float(np.mean(np.abs(p - t)))


def ssim(pred, target, mask=None) -> float:
    """SSIM (scikit-image, ``data_range=255``); with a mask, the mean SSIM map over it."""
    p, t = _check(pred, target)
    if mask is None:
        return float(structural_similarity(t, p, data_range=PEAK))
    _, full = structural_similarity(t, p, data_range=PEAK, full=True)
    return float(full[np.asarray(mask, bool)].mean())


def image_metrics(pred, target, mask=None) -> dict[str, float]:
    """PSNR, MAE and SSIM of one 2-D pair on the 0-255 scale (masked when ``mask``)."""
    return {"psnr": psnr(pred, target, mask), "mae": mae(pred, target, mask),
            "ssim": ssim(pred, target, mask)}


def batch_metrics(preds, targets, masks=None) -> dict[str, np.ndarray]:
    """Per-image metrics of stacks (n, H, W) on the 0-255 scale.

    Returns arrays ``psnr``, ``mae``, ``ssim`` and, with ``masks``, ``psnr_brain``,
    ``mae_brain``, ``ssim_brain``. Errors are vectorized; SSIM runs once per image.
    """
    preds, targets = _check(preds, targets)
    if preds.ndim == 2:
        preds, targets = preds[None], targets[None]
        masks = None if masks is None else np.asarray(masks)[None]
    diff = preds - targets
    out = {"psnr": _psnr_from_mse(np.mean(diff**2, axis=(1, 2))),
           "mae": np.mean(np.abs(diff), axis=(1, 2))}
    ssim_whole, ssim_maps = zip(*_ssim_each(preds, targets))
    out["ssim"] = np.array(ssim_whole, np.float64)
    if masks is not None:
        masks = np.broadcast_to(np.asarray(masks, bool), preds.shape)
        count = np.maximum(masks.sum(axis=(1, 2)), 1)
        out["psnr_brain"] = _psnr_from_mse((diff**2 * masks).sum(axis=(1, 2)) / count)
        out["mae_brain"] = (np.abs(diff) * masks).sum(axis=(1, 2)) / count
        out["ssim_brain"] = np.array([s[m].mean() if m.any() else np.nan
                                      for s, m in zip(ssim_maps, masks)])
    return out


#: Fewest images for which :func:`_ssim_each` spreads the work over threads.
SSIM_THREADS_FROM = 8


def _ssim_each(preds, targets) -> list:
    """``structural_similarity(target, pred, full=True)`` of each pair, in order: over
    threads (:func:`~napari_mr_reparam.parallel.over_planes`) for a stack of
    :data:`SSIM_THREADS_FROM` or more (scipy's filters release the GIL: a 180-slice
    comparison on 2 cores takes about two thirds of the time)."""
    def run(rows):
        return [structural_similarity(targets[k], preds[k], data_range=PEAK, full=True)
                for k in range(len(preds))[rows]]

    if len(preds) < SSIM_THREADS_FROM:
        return run(slice(None))
    return [pair for part in over_planes(run, len(preds), fewest=1) for pair in part]


def _psnr_from_mse(mse: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        values = 10.0 * np.log10(PEAK**2 / np.asarray(mse, np.float64))
    return np.minimum(values, PSNR_CAP_DB)


def summarize(per_image: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean and standard deviation of each per-image metric: ``psnr_mean``, ``psnr_std``..."""
    out = {}
    for name, values in per_image.items():
        out[f"{name}_mean"] = float(np.mean(values))
        out[f"{name}_std"] = float(np.std(values))
    out["count"] = int(len(next(iter(per_image.values()))))
    return out


def band_means(values, by, edges) -> list[dict]:
    """Mean of ``values`` within each band ``[edges[i], edges[i + 1])`` of ``by`` (the last
    band includes its upper edge): ``{"range": [lo, hi], "count": n, "mean": m}`` for every
    band holding at least one value (empty bands are left out)."""
    values, by = np.asarray(values, np.float64).ravel(), np.asarray(by, np.float64).ravel()
    if values.shape != by.shape:
        raise ValueError(f"values and band keys differ in length: {values.size} vs {by.size}")
    out = []
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        last = i == len(edges) - 2
        inside = (by >= lo) & ((by <= hi) if last else (by < hi))
        if inside.any():
            out.append({"range": [float(lo), float(hi)], "count": int(inside.sum()),
                        "mean": float(values[inside].mean())})
    return out


def evaluation_report(preds, targets, inputs, masks=None) -> dict:
    """Model metrics with the identity baseline (prediction = input) beside them.

    All stacks are (n, H, W) on the 0-255 scale. The result holds the model's summary
    at the top level (``psnr_mean``, ``psnr_std``, ``mae_mean``, ``mae_std``,
    ``ssim_mean``, ...), the same keys under ``identity``, and the ``convention``.
    """
    report = summarize(batch_metrics(preds, targets, masks))
    report["identity"] = summarize(batch_metrics(inputs, targets, masks))
    report["convention"] = CONVENTION
    return report


def format_report(reports: dict[str, dict], title: str = "") -> str:
    """A text table in the layout of the paper's Table 1, one row per named report."""
    width = max([22, *(len(name) + 2 for name in reports)])  # the longest model name sets the column
    head = f"{'model':<{width}}{'PSNR':>8}{'PSNR sd':>9}{'MAE':>8}{'MAE sd':>8}{'SSIM':>8}{'PSNR brain':>12}{'n':>7}"
    lines = [title] if title else []
    lines += [head, "-" * len(head)]
    for name, r in reports.items():
        brain = f"{r['psnr_brain_mean']:.2f}" if "psnr_brain_mean" in r else "-"
        lines.append(
            f"{name:<{width}}{r['psnr_mean']:>8.2f}{r['psnr_std']:>9.2f}{r['mae_mean']:>8.2f}"
            f"{r['mae_std']:>8.2f}{r['ssim_mean']:>8.3f}{brain:>12}{r['count']:>7}"
        )
    lines.append(f"convention: {CONVENTION}")
    return "\n".join(lines)
