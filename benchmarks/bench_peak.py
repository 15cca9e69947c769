"""How a physics model's score depends on the peak its renders are normalized by.

    python benchmarks/bench_peak.py --model RUN/checkpoint.pt [--phantom mrilab:PATH | --head SEED]
                                    [--task d2p] [--counts 16 64 128] [--limit 600]

Protocol images are normalized to their own maximum, so a render is divided by an
estimate of the true image's maximum (:mod:`napari_mr_reparam.peaks`). Rows: the
render's own maximum (``evaluate --max-peak``); the mean of a fixed number of its
brightest voxels, for each ``--counts``; the count the input calibrates per slice (the
engine's default); and, as a ceiling no method reaches, the maximum's render rescaled per
image by least squares against its target (the oracle); then which counts the input
calibrates on the protocol's slices (their Default-to-Param inputs). ``--head SEED`` scores an unseen
head drawn like the model's training stream (``bench_unseen_subjects.py``) in place of a
phantom. Each row is one pass over the first ``--limit`` test images (PSNR by target TE
band beside it).
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager

import numpy as np


@contextmanager
def fixed_count(count: int):
    """Every render normalized by the mean of its ``count`` brightest voxels."""
    from napari_mr_reparam import peaks

    calibrated = peaks.calibrated_count
    peaks.calibrated_count = lambda rendered, image: np.full(image.shape[:-2], count, np.int64)
    try:
        yield
    finally:
        peaks.calibrated_count = calibrated


def slice_counts(engine, ds) -> dict[int, int]:
    """How many of the protocol's slices the input calibrates each count on, from the
    Default-to-Param input (TE 50 / TR 4500 ms) of every slice."""
    images = ds.default_at(np.arange(ds.n_slices), engine.native_input)
    counts = np.atleast_1d(engine.compute_maps(images).peak_count)
    values, times = np.unique(counts, return_counts=True)
    return {int(v): int(t) for v, t in zip(values, times)}


def score(engine, ds, task: str, limit: int, oracle: bool = False, options=None) -> np.ndarray:
    """Per-image PSNR on the first ``limit`` test images of ``ds`` (``oracle``: each
    prediction rescaled by least squares against its target first), with the engine's
    ``options`` (:class:`~napari_mr_reparam.inference.InferenceOptions`)."""
    from napari_mr_reparam.metrics import batch_metrics, to_255
    from napari_mr_reparam.training.evaluate import predict_samples

    pairs, slices = ds.samples("paper", "test")
    pairs, slices = pairs[:limit], slices[:limit]
    preds = predict_samples(engine, ds, task, pairs, slices, options)
    targets = ds.images_at(pairs, slices)
    if oracle:
        p, t = preds.reshape(len(preds), -1), targets.reshape(len(targets), -1)
        factor = (p * t).sum(1) / np.maximum((p * p).sum(1), 1e-12)
        preds = np.clip(preds * factor[:, None, None], 0.0, 1.0)
    return batch_metrics(to_255(preds), to_255(targets), ds.masks_at(slices))["psnr"]


def main(argv=None) -> int:
    from napari_mr_reparam.datasets import build_protocol_dataset
    from napari_mr_reparam.inference import InferenceOptions, Reparameterizer
    from napari_mr_reparam.metrics import band_means
    from napari_mr_reparam.phantoms import load_phantom
    from napari_mr_reparam.training.evaluate import TARGET_TE_BANDS_MS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a physics model name or checkpoint / weights file")
    parser.add_argument("--phantom", default="mrilab", help="phantom spec (default: mrilab)")
    parser.add_argument("--head", type=int, help="score an unseen training-like head of this seed instead")
    parser.add_argument("--task", default="d2p", choices=("d2p", "p2p"))
    parser.add_argument("--counts", nargs="+", type=int, default=[16, 64, 128])
    parser.add_argument("--limit", type=int, default=600)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    try:
        engine = Reparameterizer(args.model, device=args.device, batch_size=16)  # a name or a file
        if not engine.renders_from_maps:
            parser.error(f"{args.model} is not a physics model: it does not render")
        if args.head is None:
            phantom = load_phantom(args.phantom)
        else:
            from bench_unseen_subjects import unseen_subjects

            phantom = next(unseen_subjects(engine.info.card.get("config") or {}, 1, args.head))
    except (OSError, ValueError, TypeError) as exc:  # WeightsError is a ValueError
        parser.error(str(exc))
    ds = build_protocol_dataset(phantom, seed=0)
    pairs, _ = ds.samples("paper", "test")
    te = ds.te_ms[pairs[:args.limit]]
    bands = list(zip(TARGET_TE_BANDS_MS[:-1], TARGET_TE_BANDS_MS[1:]))
    print(f"{engine.info.name} ({args.task}) on {phantom.name}, first {len(te)} test images\n")
    print("| peak | PSNR (dB) | " + " | ".join(f"TE {lo:g}-{hi:g}" for lo, hi in bands) + " |")
    print("|---|---|" + "---|" * len(bands))

    def row(label, psnr):
        cells = " | ".join(f"{b['mean']:.2f}" for b in band_means(psnr, te, TARGET_TE_BANDS_MS))
        print(f"| {label} | {psnr.mean():.2f} | {cells} |", flush=True)

    by_max = InferenceOptions(calibrate_peak=False)
    row("maximum (`--max-peak`)", score(engine, ds, args.task, args.limit, options=by_max))
    for count in args.counts:
        with fixed_count(count):
            row(f"mean of the {count} brightest voxels", score(engine, ds, args.task, args.limit))
    row("calibrated on the input (default)", score(engine, ds, args.task, args.limit))
    calibrated = ", ".join(f"{c}: {n}" for c, n in slice_counts(engine, ds).items())
    row("maximum, rescaled against the target (oracle)",
        score(engine, ds, args.task, args.limit, oracle=True, options=by_max))
    print(f"\ncounts calibrated on the {ds.n_slices} slices' Default-to-Param inputs (count: slices): "
          f"{calibrated}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
