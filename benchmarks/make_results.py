"""Regenerate a quality table of training/RESULTS.md.

    python benchmarks/make_results.py [--phantom SPEC] [--models identity d2p p2p physics]
                                      [--weights LABEL=FILE ...] [--splits paper [slices]]
                                      [--write] [--marker quality-table] [--by-te]
                                      [--json-dir DIR] [--overwrite]

Evaluates every model on the test part of each split of a phantom's paper protocol
(3300 images on the ``paper`` split, the default; 3200 on ``slices``, which is held out
only for models trained on its train part) with the identity baseline and prints the
table; ``--write`` puts it between ``<!-- MARKER:begin -->`` and ``<!-- MARKER:end -->`` in
training/RESULTS.md instead, where each row of a model, task and split measured here
replaces its old row and the rows of models not measured here are kept. A physics model,
which serves both tasks, gets a row per task, and
its label names its data-consistency weight (``--consistency``, default the engine's) and,
with ``--max-peak``, that its renders are normalized by their maximum rather than by the
peak the input calibrates (the engine's default).
``--weights LABEL=FILE`` adds a model from a weights file (a training checkpoint, say);
``--json-dir DIR`` also writes every report as ``DIR/LABEL_TASK_SPLIT.json``, the files
``napari-mr-reparam-train export --metrics`` records in a weight card; a file there is
never replaced without ``--overwrite`` (checked before anything is measured). ``--by-te``
tabulates each model's PSNR per target echo-time band instead (``--marker te-table``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import (
    DEFAULT_PHANTOM, add_output_arguments, publish_rows, refuse_existing, refuse_to_write_over_another_table,
)

HEADER = ("| split | model | task | PSNR (dB) | PSNR sd | MAE | MAE sd | SSIM | PSNR brain (dB) | images |\n"
          "|---|---|---|---|---|---|---|---|---|---|")


def _engines(models, weights, device, consistency=None, max_peak: bool = False):
    """(label, engine or task-for-identity) for every model asked for; a physics model's
    label names its data-consistency weight."""
    from napari_mr_reparam.inference import InferenceOptions, Reparameterizer

    sources = [(name, name, None) for name in models if name != "identity"]
    for item in weights:
        label, _, path = item.partition("=")
        if not label or not path:
            raise SystemExit(f"error: --weights takes LABEL=FILE, got {item!r}")
        sources.append((label, path, path))
    out = []
    if "identity" in models:
        out += [("identity (default input)", "d2p"), ("identity (P2P input)", "p2p")]
    for label, name, path in sources:
        engine = Reparameterizer(name, weights=path, device=device, batch_size=16)
        options = None
        if engine.renders_from_maps:
            options = engine.resolve(InferenceOptions(consistency=consistency, calibrate_peak=not max_peak))
            label = f"{label} (consistency {options.consistency:g}{', maximum peak' if max_peak else ''})"
        out.append((label, (engine, options)))
    return out


def jobs(models, weights, splits, device: str, consistency=None, max_peak: bool = False) -> list[tuple]:
    """(split, label, model, task, options) for every evaluation asked for: each model
    on its task, a physics model on both, identity on both, in every split."""
    from napari_mr_reparam.training.evaluate import IdentityModel

    out, engines = [], _engines(models, weights, device, consistency, max_peak)
    for split in splits:
        for label, engine in engines:
            if isinstance(engine, str):
                out.append((split, label, IdentityModel(engine), engine, None))
                continue
            engine, options = engine
            tasks = ("d2p", "p2p") if engine.renders_from_maps and engine.task == "p2p" else (engine.task,)
            out += [(split, label, engine, task, options) for task in tasks]
    return out


def json_path(json_dir, label: str, task: str, split: str) -> Path:
    """Where ``--json-dir`` keeps the report of one evaluation."""
    return Path(json_dir) / f"{label.split(' ')[0]}_{task}_{split}.json"


def evaluate_rows(planned: list[tuple], phantom: str, json_dir=None, by_te: bool = False) -> list[str]:
    """One table row per planned evaluation (:func:`jobs`): the quality table's, or
    (``by_te``) the model's PSNR in each target TE band; each report also written to
    ``json_dir``."""
    import json

    from napari_mr_reparam.training.evaluate import evaluate

    rows = []
    for split, label, model, task, options in planned:
        r = evaluate(model, task, phantom, split=split, options=options)
        if json_dir is not None:
            path = json_path(json_dir, label, task, split)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(r, indent=2) + "\n")
        rows.append(_te_row(split, label, task, r) if by_te else _quality_row(split, label, task, r))
        print(rows[-1], flush=True)
    return rows


def _quality_row(split, label, task, r) -> str:
    return (f"| {split} | {label} | {task} | {r['psnr_mean']:.2f} | {r['psnr_std']:.2f} | "
            f"{r['mae_mean']:.2f} | {r['mae_std']:.2f} | {r['ssim_mean']:.3f} | "
            f"{r['psnr_brain_mean']:.2f} | {r['count']} |")


def te_header() -> str:
    from napari_mr_reparam.training.evaluate import TARGET_TE_BANDS_MS as edges

    bands = [f"TE {lo:g}-{hi:g}" for lo, hi in zip(edges[:-1], edges[1:])]
    return "\n".join(["| split | model | task | " + " | ".join(bands) + " | all |",
                      "|---|---|---|" + "---|" * (len(bands) + 1)])


def _te_row(split, label, task, r) -> str:
    from napari_mr_reparam.training.evaluate import TARGET_TE_BANDS_MS as edges

    means = {tuple(b["range"]): b["mean"] for b in r["psnr_by_target_te"]}
    cells = [f"{means[(lo, hi)]:.2f}" if (lo, hi) in means else "-" for lo, hi in zip(edges[:-1], edges[1:])]
    return f"| {split} | {label} | {task} | " + " | ".join(cells) + f" | {r['psnr_mean']:.2f} |"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phantom", default=DEFAULT_PHANTOM)
    parser.add_argument("--models", nargs="*", default=["identity", "d2p", "p2p", "physics_mrilab"])
    parser.add_argument("--weights", nargs="*", default=[], metavar="LABEL=FILE")
    parser.add_argument("--splits", nargs="+", default=["paper"], choices=("paper", "slices"),
                        help="the bundled weights are trained on the paper split, so only it is "
                             "held out for them; slices is for models trained on its train part")
    parser.add_argument("--device", default="auto")
    add_output_arguments(parser, "quality-table", ask_to_write=True)
    parser.add_argument("--json-dir", help="also write each report as JSON here (for export --metrics)")
    parser.add_argument("--overwrite", action="store_true", help="replace JSON reports already in --json-dir")
    parser.add_argument("--consistency", type=float, metavar="W",
                        help="physics models' data-consistency weight (default: the engine's)")
    parser.add_argument("--max-peak", action="store_true",
                        help="physics models: normalize renders by their maximum, not the calibrated peak")
    parser.add_argument("--by-te", action="store_true",
                        help="tabulate PSNR per target TE band instead (use with --marker te-table)")
    args = parser.parse_args(argv)
    header = te_header() if args.by_te else HEADER
    refuse_to_write_over_another_table(parser, args, header)
    from napari_mr_reparam.devices import keep_freed_memory

    keep_freed_memory()
    planned = jobs(args.models, args.weights, args.splits, args.device, args.consistency, args.max_peak)
    if args.json_dir is not None and not args.overwrite:
        for split, label, _, task, _ in planned:
            refuse_existing(parser, json_path(args.json_dir, label, task, split), "--overwrite replaces it")
    rows = evaluate_rows(planned, args.phantom, args.json_dir, args.by_te)
    publish_rows(args, header, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
