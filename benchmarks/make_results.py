"""Regenerate the quality table of training/RESULTS.md from the bundled weights.

    python benchmarks/make_results.py [--phantom mrilab:PATH] [--models identity d2p p2p]

Evaluates every model on both splits of the MRiLab phantom's paper protocol (the test
part: 3300 images on the ``paper`` split, 3200 on ``slices``) with the identity baseline
and writes the table between the markers in training/RESULTS.md.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PHANTOM = "mrilab:" + str(ROOT.parent / "shared/phantoms/mrilab_brain/mrilab_brain_standard.npz")
BEGIN, END = "<!-- quality-table:begin -->", "<!-- quality-table:end -->"


def evaluate_rows(models, phantom: str, device: str) -> list[str]:
    from napari_mr_reparam.inference import Reparameterizer
    from napari_mr_reparam.training.evaluate import IdentityModel, evaluate

    rows = []
    for split in ("paper", "slices"):
        for name in models:
            tasks = ("d2p", "p2p") if name == "identity" else (None,)
            for task in tasks:
                engine = IdentityModel(task) if name == "identity" else Reparameterizer(name, device=device, batch_size=16)
                task = task or engine.task
                r = evaluate(engine, task, phantom, split=split)
                label = f"identity ({'default input' if task == 'd2p' else 'P2P input'})" if name == "identity" else name
                rows.append(f"| {split} | {label} | {task} | {r['psnr_mean']:.2f} | {r['psnr_std']:.2f} | "
                            f"{r['mae_mean']:.2f} | {r['mae_std']:.2f} | {r['ssim_mean']:.3f} | "
                            f"{r['psnr_brain_mean']:.2f} | {r['count']} |")
                print(rows[-1], flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phantom", default=DEFAULT_PHANTOM)
    parser.add_argument("--models", nargs="+", default=["identity", "d2p", "p2p"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--results", default=str(ROOT / "training" / "RESULTS.md"))
    args = parser.parse_args(argv)
    rows = evaluate_rows(args.models, args.phantom, args.device)
    table = "\n".join([
        "| split | model | task | PSNR (dB) | PSNR sd | MAE | MAE sd | SSIM | PSNR brain (dB) | images |",
        "|---|---|---|---|---|---|---|---|---|---|", *rows])
    path = Path(args.results)
    text = path.read_text()
    block = f"{BEGIN}\n{table}\n{END}"
    text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    path.write_text(text)
    print(f"updated {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
