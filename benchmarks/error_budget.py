"""Where a physics model's Default-to-Param error comes from: maps part-replaced by the truth.

    python benchmarks/error_budget.py [--model physics] [--phantom mrilab:PATH] [--limit 1200]
                                      [--consistency W] [--marker error-budget]

The model infers PD, T1 and T2 from each slice's Default-to-Param input (TE 50 / TR
4500 ms) of the phantom's paper protocol, exactly as ``evaluate`` scores it; then the
first ``--limit`` test images are rendered from those maps with one region's maps
replaced by the phantom's own (CSF, grey matter, white matter: brain voxels grouped by
their true T2 as in bench_maps.py; outside the brain; the whole brain), and scored
(PSNR over the image and inside the brain, dB). A region whose truth gains much is where
the model's error lives. PD is first scaled by the median true / predicted ratio in the
brain (images are normalized to their maximum, so only PD's ratios matter).

Where the phantom's voxels carry a tissue table's exact values (the MRiLab phantom holds
MRiLab's table), its brain voxels split into pure tissue (exactly the table's CSF, grey or
white matter) and mixed voxels (partial volume; then the mixed voxels holding CSF, and
every voxel holding CSF), each replaced by the truth in turn; and a second part asks what
the prior on tissue values alone costs: the truth with its pure CSF, grey and white matter
voxels given another table's values (mixed voxels keep theirs), i.e. a model that got the
anatomy right but believed another table; and the same with the geometric mean of the
training tables (BrainWeb 1.5 T, MRiLab, 3 T): a model that got the anatomy right but
could not tell which table the input came from. As mixed voxels are many, the last rows
move every brain voxel, mixed ones included: each map's log value is shifted by the shift
of the pure tissues around it (interpolated in log value), for all three maps and for T1
or T2 alone.
Writes the table between ``<!-- MARKER:begin/end -->`` in training/RESULTS.md
(``--marker ''`` prints only).
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import BRAIN_TISSUES as _BRAIN_TISSUES
from _common import DEFAULT_PHANTOM, add_output_arguments, brain_fractions, publish, tissue_regions

_KEYS = ("pd", "t1", "t2")


def render_scores(maps: dict, ds, pairs, slices) -> tuple[float, float]:
    """Mean PSNR (image, brain) of spin-echo renders of ``maps`` against the protocol's
    targets ``(pairs, slices)``: normalized to the maximum, resized, clipped like evaluate."""
    from napari_mr_reparam import physics
    from napari_mr_reparam.metrics import batch_metrics, to_255
    from napari_mr_reparam.simulate import normalize_to_max, resize_slices

    preds = np.empty((len(pairs), ds.size, ds.size), np.float32)
    for i, (p, s) in enumerate(zip(pairs, slices)):
        signal = physics.render("spin_echo", maps["pd"][s], maps["t1"][s], maps["t2"][s],
                                float(ds.te_ms[p]), float(ds.tr_ms[p]))
        preds[i] = resize_slices(normalize_to_max(np.asarray(signal, np.float32)[None]), ds.size)[0]
    scores = batch_metrics(to_255(np.clip(preds, 0, 1)), to_255(ds.images_at(pairs, slices)),
                           ds.masks_at(slices))
    return float(scores["psnr"].mean()), float(scores["psnr_brain"].mean())


def replaced(pred: dict, truth: dict, region: np.ndarray) -> dict:
    return {k: np.where(region, truth[k], pred[k]) for k in _KEYS}


def with_table(truth: dict, classes: dict[str, np.ndarray], table, keys=_KEYS) -> dict:
    """The truth with each pure-tissue class given ``table``'s values for that tissue
    (for the maps in ``keys``; the others stay true)."""
    out = {k: v.copy() for k, v in truth.items()}
    for name, voxels in classes.items():
        for k in keys:
            out[k][voxels] = getattr(table[name], k)
    return out


def geometric_mean_table(tables) -> dict:
    """Per brain tissue, a :class:`~napari_mr_reparam.tissues.Tissue` holding the geometric
    mean of the tables' values."""
    from napari_mr_reparam.tissues import Tissue

    def mean(name, key):
        return float(np.exp(np.mean([np.log(getattr(t[name], key)) for t in tables])))

    return {name: Tissue(**{k: mean(name, k) for k in ("t1", "t2", "t2star", "pd")})
            for name in _BRAIN_TISSUES}


def recalibrated(truth: dict, brain: np.ndarray, table, target: dict, keys=_KEYS) -> dict:
    """The truth with every brain voxel moved from ``table``'s values toward ``target``'s:
    per map, log values shifted by the pure tissues' log shifts, interpolated between them
    (so pure voxels land on ``target`` exactly and mixed ones in between)."""
    out = {k: v.copy() for k, v in truth.items()}
    for k in keys:
        x = np.log([getattr(table[n], k) for n in _BRAIN_TISSUES])
        shift = np.log([getattr(target[n], k) for n in _BRAIN_TISSUES]) - x
        order = np.argsort(x)
        v = np.log(np.maximum(out[k][brain], 1e-6))
        out[k][brain] = np.exp(v + np.interp(v, x[order], shift[order]))
    return out


def pure_classes(truth: dict, brain: np.ndarray, table) -> dict[str, np.ndarray]:
    """Brain voxels holding exactly ``table``'s CSF, grey or white matter values."""
    return {name: brain & np.isclose(truth["t1"], table[name].t1) & np.isclose(truth["t2"], table[name].t2)
            & np.isclose(truth["pd"], table[name].pd, atol=1e-3)
            for name in _BRAIN_TISSUES}


def budget(model: str, phantom_spec: str, limit: int, consistency: float | None) -> str:
    from napari_mr_reparam.datasets import build_protocol_dataset
    from napari_mr_reparam.inference import Reparameterizer
    from napari_mr_reparam.phantoms import load_phantom
    from napari_mr_reparam.tissues import TABLES

    phantom = load_phantom(phantom_spec)
    ds = build_protocol_dataset(phantom, seed=0)
    engine = Reparameterizer(model, device="cpu", consistency=consistency)
    if not engine.native_input:
        raise SystemExit(f"{model}: the budget needs a model that reads images on their own grid")
    maps = engine.compute_maps(ds.default_at(np.arange(ds.n_slices), True))
    truth = {k: getattr(phantom, k)[ds.slice_index].astype(np.float32) for k in _KEYS}
    brain = phantom.mask()[ds.slice_index] & (truth["t1"] > 0)
    pred = {k: getattr(maps, k) for k in _KEYS}
    pred["pd"] = pred["pd"] * float(np.median(truth["pd"][brain] / np.maximum(pred["pd"][brain], 1e-6)))
    pairs, slices = (a[:limit] for a in ds.samples("paper", "test"))
    rows = [("the model's maps", pred)]
    regions = tissue_regions(truth["t2"], brain)
    regions = {f"truth in {k}": v for k, v in regions.items() if k != "all brain"}
    regions.update({"truth outside the brain": ~brain, "truth in the whole brain": brain})
    rows += [(label, replaced(pred, truth, region)) for label, region in regions.items()]
    rows.append(("the truth everywhere", truth))
    mean = geometric_mean_table(list(TABLES.values()))
    for name, table in TABLES.items():
        classes = pure_classes(truth, brain, table)
        pure = np.logical_or.reduce(list(classes.values()))
        if pure.sum() > 0.3 * brain.sum():
            share = 100 * (1 - pure.sum() / brain.sum())
            holds_csf = np.zeros_like(brain)
            holds_csf[brain] = brain_fractions(truth, brain, table)[2] > 0.02
            rows += [("truth in pure brain tissue", replaced(pred, truth, pure)),
                     (f"truth in mixed brain voxels ({share:.0f} % of the brain)",
                      replaced(pred, truth, brain & ~pure)),
                     ("truth in mixed voxels holding CSF", replaced(pred, truth, holds_csf & ~pure)),
                     ("truth in voxels holding CSF, pure or mixed", replaced(pred, truth, holds_csf))]
            for other_name, other in TABLES.items():
                if other_name != name:
                    rows.append((f"truth, pure brain tissue with {other_name}'s values", with_table(truth, classes, other)))
            rows.append(("truth, pure brain tissue with the tables' geometric mean", with_table(truth, classes, mean)))
            rows.append(("truth, whole brain moved to the tables' geometric mean",
                         recalibrated(truth, brain, table, mean)))
            rows += [(f"truth, whole brain moved to the tables' geometric-mean {k.upper()} only",
                      recalibrated(truth, brain, table, mean, keys=(k,))) for k in ("t1", "t2")]
    lines = ["| maps | PSNR (dB) | PSNR brain (dB) |", "|---|---|---|"]
    for label, m in rows:
        lines.append(f"| {label} | " + " | ".join(f"{v:.2f}" for v in render_scores(m, ds, pairs, slices)) + " |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="physics", help="bundled name or weights file")
    parser.add_argument("--phantom", default=DEFAULT_PHANTOM)
    parser.add_argument("--limit", type=int, default=1200)
    parser.add_argument("--consistency", type=float, help="data-consistency weight (default the engine's)")
    add_output_arguments(parser, "")
    args = parser.parse_args(argv)
    try:
        table = budget(args.model, args.phantom, args.limit, args.consistency)
    except (ValueError, FileNotFoundError) as exc:  # unknown model or phantom file
        parser.error(str(exc))
    publish(args, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
