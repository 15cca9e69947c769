"""Does carrying the input's detail into renders help? (``InferenceOptions.keep_detail``)

The physics model's maps live on a 128-pixel working grid; a render resized back to a
256 matrix loses what the input held beyond it. With ``keep_detail`` each render is
brought to the input's resolution with the input as its guide
(:class:`napari_mr_reparam.detail.DetailGuide`). This scores renders with and without it
on the external benchmark's anatomy protocol (:mod:`bench_external`: partial-volume slabs,
a drawn tissue table, bias and Rician noise, 12 targets per subject), per input kind,
through the engine users run.

By default on training subjects (SynthSeg 01-04: the setting was chosen there), with
``--heldout`` on the held-out subjects as well::

    python benchmarks/bench_detail.py [--model physics] [--heldout] [--consistency W]
                                      [--work-size N]

``--work-size N`` runs the network's maps on an N-pixel grid in place of the one it was
trained on (128): maps at the input's own resolution (256) against guided upsampling.

``--ceiling`` needs no model: on the held-out subjects it scores what a grid costs when
the maps are perfect. The exact target render is shrunk to the 128-pixel grid (as a map
render there would be) and brought back plainly resized or guided by the input; and the
true per-pixel maps of each slab (PD-weighted geometric means through the slab) are
rendered at full resolution, one compartment per pixel, as the maps represent tissue.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_external as ext  # noqa: E402


def score_subjects(engine, paths, slices: int, n_targets: int,
                   consistency: float | None = None) -> dict[tuple[str, bool], list]:
    """PSNR per (input kind, keep_detail) over every subject, slice and target."""
    from napari_mr_reparam.inference import InferenceOptions

    targets = ext.heldout_targets(n_targets)
    out: dict[tuple[str, bool], list] = {}
    for index, path in enumerate(paths):
        subject = ext.heldout_subject(Path(path), index, slices)
        truths = [subject.render(t) for t in targets]
        for inp in subject.inputs:
            image = subject.acquire(inp)
            for keep in (False, True):
                options = InferenceOptions(consistency=consistency, keep_detail=keep)
                maps = engine.compute_maps(image, ext._acquisition(inp), options=options)
                for target, truth in zip(targets, truths):
                    pred = ext.own_maximum(engine.render(maps, ext._acquisition(target)))
                    out.setdefault((inp.name, keep), []).append(ext.score(pred, truth, subject.mask)["psnr"])
    return out


def ceiling(paths, slices: int, n_targets: int) -> str:
    """PSNR of perfect maps through the working grid (see the module's ``--ceiling``)."""
    from napari_mr_reparam.detail import DetailGuide
    from napari_mr_reparam.resize import resize_slices
    from napari_mr_reparam.simulate import normalize_to_max

    targets = ext.heldout_targets(n_targets)
    tallies: dict[str, ext.Tally] = {}

    def add(label, pred, truth, target, mask):
        tallies.setdefault(label, ext.Tally()).add(ext.score(pred, truth, mask), target)

    for index, path in enumerate(paths):
        s = ext.heldout_subject(Path(path), index, slices)
        weight = s.values[0][s.classes] * s.bias
        summed = weight.sum(axis=1)
        total = np.maximum(summed, 1e-9)
        pd = summed / s.classes.shape[1]
        t1, t2 = (np.exp((weight * np.log(np.maximum(s.values[k][s.classes], 1e-3))).sum(axis=1) / total)
                  for k in (1, 2))
        guides = [DetailGuide(s.acquire(inp), (128, 128)) for inp in s.inputs]
        for target in targets:
            truth = s.render(target)
            one = normalize_to_max(np.asarray(ext.signal(target, pd, t1, t2), np.float32))
            add("one compartment per pixel, true maps, full resolution", one, truth, target, s.mask)
            small = DetailGuide(truth, (128, 128)).small[:, 0].numpy()
            add("exact render on the 128 grid, resized", np.clip(resize_slices(small, truth.shape[-2:]), 0, 1),
                truth, target, s.mask)
            for guide in guides:
                add("exact render on the 128 grid, guided by the input", guide.upsample(small), truth, target,
                    s.mask)
    rows = [{"model": k, "what": "perfect maps", "saw": None, "summary": v.summary()} for k, v in tallies.items()]
    return ext.psnr_table(rows, "maps")


def table(scores: dict) -> str:
    names = list(dict.fromkeys(name for name, _ in scores))
    lines = ["| input | without detail (dB) | with detail (dB) | gain (dB) |", "|---|---|---|---|"]
    for name in [*names, "all"]:
        pick = [k for k in scores if name in (k[0], "all")]
        off, on = (float(np.concatenate([np.concatenate(scores[k]) for k in pick if k[1] == keep]).mean())
                   for keep in (False, True))
        lines.append(f"| {name} | {off:.2f} | {on:.2f} | {on - off:+.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="physics")
    parser.add_argument("--heldout", action="store_true", help="score the held-out subjects as well")
    parser.add_argument("--slices", type=int, default=8)
    parser.add_argument("--targets", type=int, default=12)
    parser.add_argument("--consistency", type=float, metavar="W",
                        help="the data-consistency weight (default: the engine's)")
    parser.add_argument("--work-size", type=int, metavar="N",
                        help="the maps' grid (default: the model's own, 128)")
    parser.add_argument("--ceiling", action="store_true",
                        help="no model: perfect maps through the working grid, on the held-out subjects")
    args = parser.parse_args(argv)
    from napari_mr_reparam.inference import Reparameterizer

    if args.ceiling:
        print(ceiling(ext.heldout_paths(), args.slices, args.targets))
        return 0
    engine = Reparameterizer(args.model, device="cpu", batch_size=16)
    if args.work_size:
        engine.net.work_size = args.work_size
    groups = {"training subjects 01-04 (tuning)": ext.TUNING}
    if args.heldout:
        groups["held-out subjects"] = ext.heldout_paths()
    for label, paths in groups.items():
        missing = [str(p) for p in paths if not Path(p).is_file()]
        if missing:
            print(f"skipped {label}: not found: {', '.join(missing)} (needs ../shared/)")
            continue
        weight = engine.consistency if args.consistency is None else args.consistency
        print(f"\n{label}, model {args.model}, consistency {weight:g}: PSNR (dB), mean over subjects, "
              "slices and targets\n")
        print(table(score_subjects(engine, paths, args.slices, args.targets, args.consistency)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
