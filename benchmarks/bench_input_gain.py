"""How a model's score on a phantom's protocol moves when its inputs are brightened or dimmed.

    python benchmarks/bench_input_gain.py --model RUN/checkpoint.pt
        [--phantom mrilab:PATH] [--task d2p] [--gains 0.95 1.0 1.05] [--limit 600]

Every test input is multiplied by a gain and clipped at 1 before the model reads it; the
targets are untouched. A model that reads tissue from contrast alone scores the same at
every gain; one that leans on where the input's maximum puts each tissue peaks somewhere.
A peak away from 1 on a phantom the model never saw tells that the phantom's images sit
differently against their maximum than the training images did. A diagnostic, not a
correction: the best gain is found with the targets.
"""

from __future__ import annotations

import argparse

import numpy as np


class GainedInputs:
    """``engine`` with every input image multiplied by ``gain`` and clipped at 1.

    The engine scales each slice to its own maximum before the model reads it, so a gain
    below 1 is undone there; above 1, the clipping changes the image the model reads."""

    def __init__(self, engine, gain: float):
        self.engine, self.gain = engine, gain
        self.task, self.info = engine.task, engine.info
        self.renders_from_maps = bool(getattr(engine, "renders_from_maps", False))
        self.native_input = bool(getattr(engine, "native_input", False))

    def resolve(self, options=None):
        return self.engine.resolve(options)

    def predict(self, images, *args, **kwargs):
        gained = np.minimum(np.asarray(images, np.float32) * np.float32(self.gain), 1.0)
        return self.engine.predict(gained, *args, **kwargs)


def main(argv=None) -> int:
    from napari_mr_reparam.inference import Reparameterizer
    from napari_mr_reparam.phantoms import load_phantom
    from napari_mr_reparam.training.evaluate import TARGET_TE_BANDS_MS, evaluate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a model name or a checkpoint / weights file")
    parser.add_argument("--phantom", default="mrilab", help="phantom spec (default: mrilab)")
    parser.add_argument("--task", default="d2p", choices=("d2p", "p2p"))
    parser.add_argument("--gains", nargs="+", type=float, default=[0.95, 1.0, 1.05])
    parser.add_argument("--limit", type=int, default=600)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if any(g <= 0 for g in args.gains):
        parser.error("gains must be positive")
    try:
        engine = Reparameterizer(args.model, device=args.device, batch_size=16)  # a name or a file
        phantom = load_phantom(args.phantom)
    except (OSError, ValueError) as exc:  # WeightsError is a ValueError
        parser.error(str(exc))
    bands = list(zip(TARGET_TE_BANDS_MS[:-1], TARGET_TE_BANDS_MS[1:]))
    print("| gain | PSNR (dB) | " + " | ".join(f"TE {lo:g}-{hi:g}" for lo, hi in bands) + " |")
    print("|---|---|" + "---|" * len(bands))
    for gain in args.gains:
        r = evaluate(GainedInputs(engine, gain), args.task, phantom, limit=args.limit)
        bands = " | ".join(f"{b['mean']:.2f}" for b in r["psnr_by_target_te"])
        print(f"| {gain:g} | {r['psnr_mean']:.2f} | {bands} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
