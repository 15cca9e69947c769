"""A stream-trained model on heads of its own training distribution that it never saw.

    python benchmarks/bench_unseen_subjects.py --model RUN/checkpoint.pt [--subjects 2]
                                               [--seed 100000] [--limit 600] [--tasks d2p p2p]
                                               [--gain 1.0]

Draws ``--subjects`` random heads exactly as the model's training stream drew its
subjects (the recipe in the checkpoint's card: base phantoms, tissue tables, anatomy
options), from seeds the stream never used, and scores the model on each head's paper
protocol (noise-free, no bias field, like the MRiLab test), first ``--limit`` test
images. Set beside its cross-phantom figure, it tells domain shift (the MRiLab
phantom's anatomy is unlike the training heads) from what one input leaves open
whatever the head (the training heads are as hard). ``--gain`` multiplies every input
by a gain (clipped at 1) as ``bench_input_gain.py`` does on a phantom.
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import unseen_subjects


def main(argv=None) -> int:
    from napari_mr_reparam.inference import Reparameterizer
    from napari_mr_reparam.training.evaluate import evaluate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a stream-trained checkpoint or weights file")
    parser.add_argument("--subjects", type=int, default=2)
    parser.add_argument("--seed", type=int, default=100000, help="first subject seed (the stream's are below)")
    parser.add_argument("--limit", type=int, default=600)
    parser.add_argument("--tasks", nargs="+", default=None, choices=("d2p", "p2p"))
    parser.add_argument("--gain", type=float, default=1.0, help="input gain (1: none)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.gain <= 0:
        parser.error("--gain must be positive")
    try:
        engine = Reparameterizer(args.model, weights=args.model, device=args.device, batch_size=16)
    except (OSError, ValueError) as exc:  # WeightsError is a ValueError
        parser.error(str(exc))
    config = engine.info.card.get("config")
    if not config or config.get("data") != "stream":
        parser.error(f"{args.model} was not trained on the stream: no subjects to draw like its own")
    if args.gain != 1.0:
        from _common import GainedInputs

        engine = GainedInputs(engine, args.gain)
    tasks = args.tasks or (["d2p", "p2p"] if engine.task == "p2p" else ["d2p"])
    print("| head | task | PSNR (dB) | MAE | SSIM | images |\n|---|---|---|---|---|---|")
    scores = {t: [] for t in tasks}
    for subject in unseen_subjects(config, args.subjects, args.seed):
        for task in tasks:
            r = evaluate(engine, task, subject, limit=args.limit)
            scores[task].append(r["psnr_mean"])
            print(f"| {subject.name} | {task} | {r['psnr_mean']:.2f} | {r['mae_mean']:.2f} | "
                  f"{r['ssim_mean']:.3f} | {r['count']} |", flush=True)
    for task in tasks:
        print(f"| mean of {args.subjects} | {task} | {np.mean(scores[task]):.2f} | | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
