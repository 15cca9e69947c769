"""Pulling the single-image maps toward tissue means (an experiment, dropped).

    python benchmarks/bench_tissue_prior.py

On training subjects 01-04 (the first two, 4 slices each; the external benchmark's
protocol), the bundled ``physics`` maps' log T1 and log T2 are moved a share ``w`` of the
way to the soft mean of the training tables' tissue means (CSF, grey and white matter,
fat, muscle, connective tissue; geometric means over the tables), weighted by each
voxel's distance to them in (log T1, log T2) (scale ``sigma``) and, for the variants with
``tau``, also by how far the input's intensity lies from each tissue's expected input
intensity. PD is rescaled so the render at the input's acquisition does not change.
Prints PSNR (dB) per input kind against the engine unchanged ("base").
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_external as ext  # noqa: E402
from bench_detail import TUNING  # noqa: E402

NAMES = ("csf", "grey_matter", "white_matter", "fat", "muscle", "connective")


def tissue_means() -> np.ndarray:
    """(tissues, 3): PD (arithmetic), T1 and T2 (geometric) means over the training tables."""
    from napari_mr_reparam.tissues import TABLES

    out = []
    for name in NAMES:
        ts = [t[name] for t in TABLES.values()]
        out.append((np.mean([t.pd for t in ts]), *(np.exp(np.mean([np.log(getattr(t, k)) for t in ts]))
                                                   for k in ("t1", "t2"))))
    return np.asarray(out, np.float32)


def pulled(maps, acq, small_input, w, sigma, tau, means):
    from napari_mr_reparam import peaks

    def f(pd, t1, t2):
        return np.asarray(ext.signal(acq, pd, t1, t2), np.float32)

    lt1, lt2 = np.log(np.maximum(maps.t1, 1)), np.log(np.maximum(maps.t2, 1))
    c1, c2 = np.log(means[:, 1]), np.log(means[:, 2])
    d2 = ((lt1[..., None] - c1) ** 2 + (lt2[..., None] - c2) ** 2) / (2 * sigma**2)
    if tau:
        norm = peaks.peak(f(maps.pd, maps.t1, maps.t2), maps.peak_count)[:, None, None, None]
        expected = f(means[:, 0], means[:, 1], means[:, 2]) / norm
        d2 = d2 + (small_input[..., None] - expected) ** 2 / (2 * tau**2)
    p = np.exp(-(d2 - d2.min(-1, keepdims=True)))
    p /= p.sum(-1, keepdims=True)
    t1 = np.exp((1 - w) * lt1 + w * (p @ c1))
    t2 = np.exp((1 - w) * lt2 + w * (p @ c2))
    one = np.ones_like(t1)
    ratio = f(one, maps.t1, maps.t2) / np.maximum(f(one, t1, t2), 1e-6)
    return replace(maps, pd=(maps.pd * ratio).astype(np.float32), t1=t1.astype(np.float32),
                   t2=t2.astype(np.float32))


def main() -> int:
    from napari_mr_reparam.inference import Reparameterizer
    from napari_mr_reparam.resize import resize_slices

    if not all(p.is_file() for p in TUNING[:2]):
        print("skipped: training subjects not found (needs ../shared/)")
        return 0
    engine = Reparameterizer("physics", device="cpu", batch_size=16)
    means = tissue_means()
    configs = ["base"] + [(w, s, None) for w, s in itertools.product((0.5, 1.0), (0.3, 0.6))] \
        + [(w, 0.4, t) for w, t in itertools.product((0.5, 1.0), (0.05, 0.1))]
    targets = ext.heldout_targets(12)
    res: dict = {}
    for index, path in enumerate(TUNING[:2]):
        subject = ext.heldout_subject(path, index, 4)
        truths = [subject.render(t) for t in targets]
        for inp in subject.inputs:
            image = subject.acquire(inp)
            maps0 = engine.compute_maps(image, ext._acquisition(inp))
            scale = np.maximum(image.max(axis=(1, 2), keepdims=True), 1e-12)
            small = resize_slices(image / scale, maps0.pd.shape[-2:])
            for cfg in configs:
                maps = maps0 if cfg == "base" else pulled(maps0, inp, small, *cfg, means)
                for t, truth in zip(targets, truths):
                    pred = np.clip(engine.render(maps, ext._acquisition(t)) / scale, 0, 1)
                    res.setdefault((cfg, inp.name), []).extend(ext.score(pred, truth, subject.mask)["psnr"])
    print("| w, sigma, tau | " + " | ".join(ext.INPUT_NAMES) + " | mean |")
    print("|---|" + "---|" * (len(ext.INPUT_NAMES) + 1))
    for cfg in configs:
        v = [float(np.mean(res[(cfg, n)])) for n in ext.INPUT_NAMES]
        print(f"| {cfg} | " + " | ".join(f"{x:.2f}" for x in v) + f" | {np.mean(v):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
