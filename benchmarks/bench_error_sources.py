"""Where does a single-image prediction's error come from: tissue values or anatomy?

    python benchmarks/bench_error_sources.py [--model physics] [--slices 8] [--targets 12]
                                             [--tuning]

On the external benchmark's held-out subjects (:mod:`bench_external`; ``--tuning``: the
training subjects 01-04 instead), each prediction (through the engine users run) is
split against the subject's true tissue classes. Every pixel of a slab is a known mix
of classes (fractions through the slab, times the bias field), and the true image is
that mix of each class's signal. Fitting the prediction the same way, by least squares
over the classes, gives the prediction's own value for each class:

- ``tissue values only``: the true anatomy rendered with the prediction's class values.
  Its PSNR counts only the error in what each tissue looks like (contrast and
  brightness), with the anatomy exact.
- ``anatomy only``: the truth plus what the class fit leaves of the prediction (tissue
  in the wrong place, blur, detail, noise), with every class's value right.
- ``global gain``: the prediction times the one factor that fits the truth best (the
  peak normalization's share of the error).

Columns by input kind; ``error share`` splits the squared error by each pixel's main
class (brain: CSF, grey incl. deep grey, white matter; non-brain tissue; background).

``--effect`` takes one of the benchmark's departures from training away (or swaps the
subject's drawn tissue values for the training tables' means), to see which of them the
error follows: ``thin`` (1 mm slices, no slab partial volume), ``no-noise``,
``no-bias``, ``training-values``.

``--maps`` reports instead the model's own maps where a tissue is pure (more than
:data:`PURE` of the pixel through the slab): per input kind, the median T1 and T2 of
CSF, grey and white matter, beside the subject's true values.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_external as ext  # noqa: E402

#: Groups of the held-out table's classes for the error shares.
SHARE_GROUPS = {"CSF": ("csf",), "GM": ("grey_matter", "deep_grey"), "WM": ("white_matter",)}


def _psnr(pred, truth) -> float:
    """The package's PSNR of images on [0, 1] (clipped to it, as the benchmark scores)."""
    from napari_mr_reparam.metrics import psnr, to_255

    return psnr(to_255(pred), to_255(truth))


def split(pred: np.ndarray, truth: np.ndarray, fractions: np.ndarray) -> dict[str, float]:
    """PSNR of one slice as predicted, with the best global gain, with only its tissue
    values wrong and with only its anatomy wrong (see the module)."""
    flat = fractions.reshape(-1, fractions.shape[-1])[:, 1:]  # background carries no signal
    values, *_ = np.linalg.lstsq(flat, pred.ravel(), rcond=None)
    tissue = (flat @ values).reshape(pred.shape)
    gain = float((pred * truth).sum() / max(float((pred * pred).sum()), 1e-12))
    return {"as predicted": _psnr(pred, truth), "global gain": _psnr(gain * pred, truth),
            "tissue values only": _psnr(tissue, truth), "anatomy only": _psnr(truth + pred - tissue, truth)}


def share_masks(subject: ext.HeldoutSubject, fractions: np.ndarray) -> dict[str, np.ndarray]:
    """Each pixel's main class, grouped (:data:`SHARE_GROUPS`, other tissue, background)."""
    main = fractions.argmax(-1) if fractions.size else None
    groups = {}
    for label, names in SHARE_GROUPS.items():
        ids = [subject.names.index(n) for n in names if n in subject.names]
        groups[label] = np.isin(main, ids)
    groups["background"] = main == 0
    groups["non-brain"] = ~np.any(list(groups.values()), axis=0)
    return groups


EFFECTS = ("none", "thin", "no-noise", "no-bias", "training-values")
#: A pixel holds a tissue purely when more than this share of it is that tissue.
PURE = 0.9
#: The tissues whose maps ``--maps`` reports.
MAP_TISSUES = ("csf", "grey_matter", "white_matter")


#: The benchmark's effects with one taken away (``training-values`` keeps them all).
EFFECT_RANGES = {"thin": ext.HeldoutEffects(slice_mm=(1, 1)), "no-noise": ext.HeldoutEffects(noise_sigma=(0.0, 0.0)),
                 "no-bias": ext.HeldoutEffects(bias_span=(0.0, 0.0))}


def drawn_subject(path: Path, index: int, slices: int, effect: str = "none") -> ext.HeldoutSubject:
    """The benchmark's subject, with one effect taken away (:data:`EFFECTS`)."""
    from dataclasses import replace

    if effect not in EFFECTS:
        raise ValueError(f"unknown effect {effect!r}; one of {', '.join(EFFECTS)}")
    subject = ext.heldout_subject(path, index, slices, EFFECT_RANGES.get(effect, ext.HeldoutEffects()))
    if effect == "training-values":
        subject = replace(subject, values=ext.training_mean_values(subject.names))
    return subject


def run(engine_label: str, paths, slices: int, n_targets: int, effect: str = "none", log=print) -> dict:
    """Mean PSNR of each split and the squared-error shares, per input kind."""
    model = ext.load_models([engine_label], "cpu", baselines=False)[-1]
    targets = ext.heldout_targets(n_targets)
    psnr: dict[str, dict[str, list]] = {}
    sq: dict[str, dict[str, float]] = {}
    for index, path in enumerate(paths):
        subject = drawn_subject(Path(path), index, slices, effect)
        fractions = subject.class_fractions()
        masks = share_masks(subject, fractions)
        truths = [subject.render(t) for t in targets]
        log(f"  {subject.name}", flush=True)
        for inp in subject.inputs:
            if not model.reads(inp):
                continue
            preds = ext.predict(model, subject.acquire(inp), inp, targets)
            for pred, truth in zip(preds, truths):
                for s in range(pred.shape[0]):
                    for key, value in split(pred[s], truth[s], fractions[s]).items():
                        psnr.setdefault(inp.name, {}).setdefault(key, []).append(value)
                err = (np.clip(pred, 0, 1) - truth) ** 2
                for group, mask in masks.items():
                    sq.setdefault(inp.name, {}).setdefault(group, 0.0)
                    sq[inp.name][group] += float(err[mask].sum())
    return {"psnr": {k: {s: float(np.mean(v)) for s, v in d.items()} for k, d in psnr.items()},
            "share": {k: {g: v / max(sum(d.values()), 1e-12) for g, v in d.items()} for k, d in sq.items()}}


def pure_medians(maps: dict, fractions: np.ndarray, names: list[str]) -> dict:
    """Median T1 and T2 of ``maps`` (each (slices, h, w), the input's size) where each of
    :data:`MAP_TISSUES` fills more than :data:`PURE` of the pixel; None where none does."""
    out = {}
    for tissue in MAP_TISSUES:
        pure = fractions[..., names.index(tissue)] > PURE
        out[tissue] = {k: float(np.median(maps[k][pure])) if pure.any() else None for k in ("t1", "t2")}
    return out


def map_values(engine_label: str, paths, slices: int, log=print) -> list[dict]:
    """One row per subject and input kind: the pure tissues' map medians and true values."""
    model = ext.load_models([engine_label], "cpu", baselines=False)[-1]
    rows = []
    for index, path in enumerate(paths):
        subject = drawn_subject(Path(path), index, slices)
        fractions = subject.class_fractions()
        true = {t: {"t1": float(subject.values[1, subject.names.index(t)]),
                    "t2": float(subject.values[2, subject.names.index(t)])} for t in MAP_TISSUES}
        log(f"  {subject.name}", flush=True)
        for inp in subject.inputs:
            if model.reads(inp):
                maps = ext._compute_maps(model.engine, subject.acquire(inp), inp).at_input_size()
                rows.append({"subject": subject.name, "input": inp.name, "true": true,
                             "model": pure_medians(maps, fractions, subject.names)})
    return rows


def map_table(rows: list[dict]) -> str:
    head = " | ".join(f"{t.replace('_', ' ')} T1 / T2 (true)" for t in MAP_TISSUES)
    lines = [f"| subject | input | {head} |", "|---|---|" + "---|" * len(MAP_TISSUES)]
    for row in rows:
        cells = []
        for t in MAP_TISSUES:
            m, true = row["model"][t], row["true"][t]
            shown = "-" if m["t1"] is None else f"{m['t1']:.0f} / {m['t2']:.0f}"
            cells.append(f"{shown} ({true['t1']:.0f} / {true['t2']:.0f})")
        lines.append(f"| {row['subject']} | {row['input']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table(result: dict) -> str:
    splits = ("as predicted", "global gain", "tissue values only", "anatomy only")
    groups = ("CSF", "GM", "WM", "non-brain", "background")
    lines = ["| input | " + " | ".join(f"{s} (dB)" for s in splits) + " | error share "
             + " / ".join(groups) + " (%) |",
             "|---|" + "---|" * (len(splits) + 1)]
    for name in ext.INPUT_NAMES:
        if name not in result["psnr"]:
            continue
        p, share = result["psnr"][name], result["share"][name]
        lines.append(f"| {name} | " + " | ".join(f"{p[s]:.2f}" for s in splits) + " | "
                     + " / ".join(f"{100 * share[g]:.0f}" for g in groups) + " |")
    means = [np.mean([d[s] for d in result["psnr"].values()]) for s in splits]
    lines.append("| mean of the inputs | " + " | ".join(f"{m:.2f}" for m in means) + " | |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ext.add_subject_options(parser)
    parser.add_argument("--model", default="physics")
    parser.add_argument("--effect", choices=EFFECTS, default="none",
                        help="take one of the benchmark's effects away (see the module)")
    parser.add_argument("--maps", action="store_true",
                        help="the model's maps in pure tissue against the true values, instead")
    parser.add_argument("--subjects", type=int, default=None, help="only the first N subjects")
    args = parser.parse_args(argv)
    paths, missing = ext.subject_paths(args.tuning)
    if missing:
        print(missing)
        return 0
    paths = paths[:args.subjects] if args.subjects else paths
    if args.maps:
        print(f"\n{args.model}: median map T1 / T2 (ms) in pure tissue (> {PURE:.0%} of the pixel)\n")
        print(map_table(map_values(args.model, paths, args.slices)))
        return 0
    result = run(args.model, paths, args.slices, args.targets, args.effect)
    print(f"\n{'training subjects 01-04' if args.tuning else 'held-out subjects'}, model {args.model}, "
          f"effect taken away: {args.effect}: "
          "PSNR (dB), mean over subjects, slices and targets\n")
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
