"""Regenerate a quality table of training/RESULTS.md.

    python benchmarks/make_results.py [--phantom SPEC] [--models identity d2p p2p physics]
                                      [--weights LABEL=FILE ...] [--splits paper [slices]]
                                      [--marker quality-table] [--by-te]

Evaluates every model on the test part of each split of a phantom's paper protocol
(3300 images on the ``paper`` split, the default; 3200 on ``slices``, which is held out
only for models trained on its train part) with the identity baseline and
writes the table between ``<!-- MARKER:begin -->`` and ``<!-- MARKER:end -->`` in
training/RESULTS.md. A physics model, which serves both tasks, gets a row per task, and
its label names its data-consistency weight (``--consistency``, default the engine's) and,
with ``--max-peak``, that its renders are normalized by their maximum rather than by the
peak the input calibrates (the engine's default).
``--weights LABEL=FILE`` adds a model from a weights file (a training checkpoint, say);
``--json-dir DIR`` also writes every report as ``DIR/LABEL_TASK_SPLIT.json``, the files
``napari-mr-reparam-train export --metrics`` records in a weight card. ``--by-te``
tabulates each model's PSNR per target echo-time band instead (``--marker te-table``).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PHANTOM = "mrilab:" + str(ROOT.parent / "shared/phantoms/mrilab_brain/mrilab_brain_standard.npz")
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


def evaluate_rows(models, weights, phantom: str, splits, device: str, json_dir=None,
                  consistency=None, by_te: bool = False, max_peak: bool = False) -> list[str]:
    """One table row per model, task and split: the quality table's, or (``by_te``) the
    model's PSNR in each target TE band."""
    import json

    from napari_mr_reparam.training.evaluate import IdentityModel, evaluate

    rows = []
    engines = _engines(models, weights, device, consistency, max_peak)
    for split in splits:
        for label, engine in engines:
            if isinstance(engine, str):
                jobs, options = [(IdentityModel(engine), engine)], None
            else:
                engine, options = engine
                tasks = ("d2p", "p2p") if engine.renders_from_maps and engine.task == "p2p" else (engine.task,)
                jobs = [(engine, task) for task in tasks]
            for model, task in jobs:
                r = evaluate(model, task, phantom, split=split, options=options)
                if json_dir is not None:
                    name = label.split(" ")[0]
                    path = Path(json_dir) / f"{name}_{task}_{split}.json"
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


def write_table(results: Path, marker: str, table: str) -> None:
    """Replace the text between the marker comments (appending them when absent)."""
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    text = results.read_text() if results.exists() else ""
    block = f"{begin}\n{table}\n{end}"
    if begin in text:
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    results.write_text(text)


def add_output_arguments(parser: argparse.ArgumentParser, marker: str) -> None:
    """``--marker`` (``''``: print only) and ``--results`` (the file the table goes in)."""
    parser.add_argument("--marker", default=marker, help="table marker in the results file ('' prints only)")
    parser.add_argument("--results", default=str(ROOT / "training" / "RESULTS.md"))


def publish(args: argparse.Namespace, table: str) -> None:
    """Write ``table`` between ``args.marker``'s comments in ``args.results``, or print it."""
    if not args.marker:
        print(table)
        return
    write_table(Path(args.results), args.marker, table)
    print(f"updated {args.results} ({args.marker})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phantom", default=DEFAULT_PHANTOM)
    parser.add_argument("--models", nargs="*", default=["identity", "d2p", "p2p", "physics"])
    parser.add_argument("--weights", nargs="*", default=[], metavar="LABEL=FILE")
    parser.add_argument("--splits", nargs="+", default=["paper"], choices=("paper", "slices"),
                        help="the bundled weights are trained on the paper split, so only it is "
                             "held out for them; slices is for models trained on its train part")
    parser.add_argument("--device", default="auto")
    add_output_arguments(parser, "quality-table")
    parser.add_argument("--json-dir", help="also write each report as JSON here (for export --metrics)")
    parser.add_argument("--consistency", type=float, metavar="W",
                        help="physics models' data-consistency weight (default: the engine's)")
    parser.add_argument("--max-peak", action="store_true",
                        help="physics models: normalize renders by their maximum, not the calibrated peak")
    parser.add_argument("--by-te", action="store_true",
                        help="tabulate PSNR per target TE band instead (use with --marker te-table)")
    args = parser.parse_args(argv)
    from napari_mr_reparam.devices import keep_freed_memory

    keep_freed_memory()
    rows = evaluate_rows(args.models, args.weights, args.phantom, args.splits, args.device,
                         args.json_dir, args.consistency, args.by_te, args.max_peak)
    publish(args, "\n".join([te_header() if args.by_te else HEADER, *rows]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
