"""The ``napari-mr-reparam-train`` command: simulate data, train, evaluate."""

from __future__ import annotations

import argparse
import sys

from ..cli import run_cli


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def cmd_simulate(args) -> int:
    from tqdm import tqdm

    from ..datasets import build_protocol_dataset
    from ..phantoms import load_phantom
    from ..preview import save_preview

    phantom = load_phantom(args.phantom, table=args.table)
    with tqdm(total=args.pairs, desc="simulating", unit="pair") as bar:
        dataset = build_protocol_dataset(
            phantom, seed=args.seed, pairs=args.pairs, slices=args.slices, size=args.size,
            progress=bar.update,
        )
    out = dataset.save(args.out)
    save_preview(phantom, out / "preview.png")
    n_train = int(dataset.train_paper.sum())
    print(f"wrote {out}: {dataset.n_pairs} pairs x {dataset.n_slices} slices "
          f"({n_train} train / {dataset.train_paper.size - n_train} test on the paper split), "
          f"manifest.json, preview.png")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-mr-reparam-train",
        description="Simulate training data, train the models and evaluate them (times in ms).",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    sim = sub.add_parser("simulate", help="simulate the paper's protocol dataset from a phantom")
    sim.add_argument("--phantom", default="mni152", help="mni152 or mrilab:PATH (default mni152)")
    sim.add_argument("--table", default=None, help="tissue table for mni152 (brainweb_1.5t, mrilab, 3t)")
    sim.add_argument("--out", required=True, help="output folder")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--pairs", type=_positive_int, default=200, help="(TE, TR) pairs (default 200)")
    sim.add_argument("--slices", type=_positive_int, default=24, help="axial slices per pair (default 24)")
    sim.add_argument("--size", type=_positive_int, default=256, help="image size in pixels (default 256)")
    sim.set_defaults(func=cmd_simulate)
    return parser


def main(argv=None) -> int:
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
