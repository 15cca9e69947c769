"""What could per-voxel maps, or a per-voxel intensity lookup, give at best?

    python benchmarks/bench_representation_ceiling.py [--slices 8] [--targets 12] [--bins 64]
                                                      [--tuning] [--sample]

Two oracles on the external benchmark's held-out subjects (:mod:`bench_external`), each
fitted to the subject's own true targets, to say what limits a single image's prediction:

- ``single-compartment maps``: the best PD, T1 and T2 per pixel, the form the physics
  model predicts. Each pixel of a slab holds a mix of tissues, and a mix does not decay
  as one tissue does; the fit picks, per pixel, the (T1, T2) pair of a log-spaced
  dictionary and the PD that best reproduce all targets at once (each target on its
  benchmark scale, normalized to its maximum). Its PSNR is what any model that predicts
  maps could reach at best: above the goal, the representation is not the limit.
- ``training's truth maps``: the maps the physics model's map loss compares with, each
  pixel's tissues mixed as training mixes them (PD the slab's mean, T1 and T2 the geometric
  mean of its voxels' times weighted by each voxel's share of the water, PD x bias),
  rendered as one compartment. Not fitted to the targets: what a network that learned its
  map loss's targets exactly would score.
- ``training's truth maps, matched``: the same with T1 and T2 mixed to match the signal:
  each the one time whose decay at a reference time (:data:`MATCHED_REFERENCE_MS`) is the
  water-weighted mean of its voxels' decays there. Trained as the map loss's targets, these
  moved nothing (docs/experiments.md); the row says what they could reach.
- ``--sample``: the three maps rows on the demo's sample head
  (:mod:`napari_mr_reparam.sample_head`) at each of its ground truths, as the widget
  scores them (each slice at its own maximum): the single-compartment maps fitted to the
  held-out targets and the three truths together, the head's own maps (the phantom's,
  which training's map loss compares with) rendered as one compartment, and its tissues
  mixed to match.
- ``intensity lookup``: each target as a function of the input's intensity alone, the
  conditional mean over the subject's pixels in ``--bins`` bins of the input (fitted to
  the truth, so any monotone or non-monotone intensity mapping does no better on average).
  Its PSNR is what a prediction that reads no spatial context could reach.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_external as ext  # noqa: E402

#: The dictionary's relaxation times (ms), log-spaced.
T1_GRID_MS = np.geomspace(50.0, 6000.0, 60)
T2_GRID_MS = np.geomspace(5.0, 4000.0, 90)
MAPS_LABEL = "single-compartment maps"
TRUTH_LABEL = "training's truth maps"
MATCHED_LABEL = "training's truth maps, matched"
#: The matched mix's reference times (ms): T1 at this TR, T2 at this TE. Chosen on training
#: subjects 01-04 (``--tuning``) among TE 50-300 and TR 700-2000 ms.
MATCHED_REFERENCE_MS = {"t1": 1500.0, "t2": 150.0}


def matched_time(water: np.ndarray, water_decay: np.ndarray, reference_ms: float) -> np.ndarray:
    """The one relaxation time whose decay ``exp(-reference / T)`` is the mean decay of
    water mixed from several compartments, ``water_decay`` the summed water x
    exp(-reference / time); 0 where there is no water."""
    has = water > 1e-6
    ratio = np.clip(np.divide(water_decay, water, out=np.ones_like(water), where=has), 1e-30, 1.0 - 1e-9)
    return np.where(has, -reference_ms / np.log(ratio), 0.0)


def dictionary(targets: list[ext.Acq]) -> np.ndarray:
    """(atoms, targets) signals at PD 1 of every (T1, T2) pair of the grids."""
    t1, t2 = (g.ravel() for g in np.meshgrid(T1_GRID_MS, T2_GRID_MS, indexing="ij"))
    return np.stack([np.asarray(ext.signal(t, np.ones_like(t1), t1, t2), np.float64) for t in targets], axis=1)


def fit_maps(raw: np.ndarray, atoms: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """The best single-compartment render of one slice's targets ``raw`` (targets, h, w;
    before normalization): per pixel the atom and PD with the least squared error over
    the targets, each normalized to its maximum. Returns the fit, normalized alike."""
    peak = np.maximum(raw.reshape(len(raw), -1).max(axis=1), 1e-12)
    y = raw.reshape(len(raw), -1) / peak[:, None]
    scaled = atoms / peak[None, :]
    norms = (scaled**2).sum(axis=1)
    fit = np.zeros_like(y)
    on = np.flatnonzero(y.max(axis=0) > 1e-6)
    for start in range(0, on.size, chunk):
        idx = on[start:start + chunk]
        dots = scaled @ y[:, idx]
        gain = np.where(dots > 0, dots**2 / norms[:, None], -1.0)
        best = gain.argmax(axis=0)
        pd = np.maximum(dots[best, np.arange(idx.size)] / norms[best], 0.0)
        fit[:, idx] = (scaled[best] * pd[:, None]).T
    return fit.reshape(raw.shape)


def truth_maps(subject: ext.HeldoutSubject, mix: str = "geometric") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PD, T1 and T2 (slices, h, w) of each pixel's slab as training's map loss takes them:
    PD the mean over the slab's voxels (PD x bias), each time mixed over the voxels by
    their share of that water: ``geometric`` (the geometric mean, as training mixes them)
    or ``matched`` (:func:`matched_time`)."""
    pd_v, t1_v, t2_v = (np.asarray(subject.values[k], np.float64)[subject.classes] for k in range(3))
    water = pd_v * subject.bias
    total = water.sum(axis=1)
    if mix == "matched":
        t1, t2 = (matched_time(total, (water * np.exp(-MATCHED_REFERENCE_MS[k] / np.maximum(t, 1e-3))).sum(axis=1),
                               MATCHED_REFERENCE_MS[k]) for k, t in (("t1", t1_v), ("t2", t2_v)))
        return water.mean(axis=1), t1, t2
    weight = np.divide(water, total[:, None], out=np.zeros_like(water), where=total[:, None] > 0)
    t1, t2 = (np.exp((weight * np.log(np.maximum(t, 1e-3))).sum(axis=1)) for t in (t1_v, t2_v))
    return water.mean(axis=1), t1, t2


def lookup(image: np.ndarray, truth: np.ndarray, bins: int) -> np.ndarray:
    """``truth`` predicted from ``image`` (both in [0, 1]) by the mean truth of the
    image's intensity bin (the best function of intensity alone, up to the bins)."""
    index = np.clip((image * bins).astype(int), 0, bins - 1).ravel()
    total = np.bincount(index, truth.ravel().astype(np.float64), bins)
    count = np.bincount(index, minlength=bins)
    return (total / np.maximum(count, 1))[index].reshape(image.shape).astype(np.float32)


def raw_targets(subject: ext.HeldoutSubject, targets: list[ext.Acq]) -> np.ndarray:
    """(targets, slices, h, w) noise-free renders before normalization."""
    out = []
    for t in targets:
        per_class = np.asarray(ext.signal(t, *subject.values[:, :, None]), np.float64)[:, 0]
        out.append((per_class[subject.classes] * subject.bias).mean(axis=1))
    return np.stack(out)


def run(paths, slices: int, n_targets: int, bins: int, log=print) -> dict:
    """Tallies of the two oracles: the maps row, and the lookup per input kind."""
    from napari_mr_reparam.simulate import normalize_to_max

    targets = ext.heldout_targets(n_targets)
    atoms = dictionary(targets)
    tallies: dict[str, ext.Tally] = {}
    for index, path in enumerate(paths):
        subject = ext.heldout_subject(Path(path), index, slices)
        raw = raw_targets(subject, targets)
        truths = [subject.render(t) for t in targets]
        fits = np.stack([fit_maps(raw[:, z], atoms) for z in range(raw.shape[1])], axis=1)
        for k, t in enumerate(targets):
            pred = np.clip(fits[k], 0.0, 1.0).astype(np.float32)
            tallies.setdefault(MAPS_LABEL, ext.Tally()).add(ext.score(pred, truths[k], subject.mask), t)
        for label, mix in ((TRUTH_LABEL, "geometric"), (MATCHED_LABEL, "matched")):
            pd, t1, t2 = truth_maps(subject, mix)
            for t, truth in zip(targets, truths):
                pred = normalize_to_max(np.asarray(ext.signal(t, pd, t1, t2), np.float32))
                tallies.setdefault(label, ext.Tally()).add(ext.score(pred, truth, subject.mask), t)
        for inp in subject.inputs:
            image = subject.acquire(inp)
            for t, truth in zip(targets, truths):
                pred = normalize_to_max(lookup(image, truth, bins))
                tallies.setdefault(inp.name, ext.Tally()).add(ext.score(pred, truth, subject.mask), t)
        log(f"  {subject.name}", flush=True)
    return {k: v.summary() for k, v in tallies.items()}


def sample_rows(n_targets: int) -> list[tuple[str, list[float]]]:
    """PSNR (dB) of the three maps rows at each of the sample head's ground truths."""
    from napari_mr_reparam.metrics import batch_metrics, to_255
    from napari_mr_reparam.phantoms import load_phantom
    from napari_mr_reparam.sample_head import PHANTOM, SLICES, TABLE, TRUTH_ACQS, on_head_grid
    from napari_mr_reparam.simulate import Acquisition, choose_slices, render_slices

    phantom = load_phantom(PHANTOM, table=TABLE)
    index = choose_slices(phantom, SLICES)
    truths = [ext.Acq(te, tr) for te, tr in TRUTH_ACQS]
    targets = ext.heldout_targets(n_targets) + truths
    raw = np.stack([on_head_grid(render_slices(phantom, Acquisition(t.te, t.tr), index)) for t in targets])
    atoms = dictionary(targets)
    fits = np.stack([fit_maps(raw[:, z].astype(np.float64), atoms) for z in range(raw.shape[1])], axis=1)
    pd, t1, t2 = (np.asarray(getattr(phantom, k))[index] for k in ("pd", "t1", "t2"))

    def psnr(pred, k):
        truth = raw[k] / np.maximum(raw[k].max(axis=(1, 2), keepdims=True), 1e-12)
        pred = pred / np.maximum(pred.max(axis=(1, 2), keepdims=True), 1e-12)
        return float(batch_metrics(to_255(np.clip(pred, 0, 1).astype(np.float32)),
                                   to_255(truth.astype(np.float32)))["psnr"].mean())

    first = len(targets) - len(truths)
    fitted = [psnr(fits[k], k) for k in range(first, len(targets))]
    own = [psnr(on_head_grid(ext.signal(t, pd, t1, t2)), first + i) for i, t in enumerate(truths)]
    # matched: each tissue's water decayed at the reference, summed as the mixture renders
    # a voxel (no jitter on the demo's head); the head's PD map is that water, undecayed
    mix = phantom.mixture
    fractions = {k: np.asarray(mix.fractions[k][index], np.float64) for k in mix.values if k in mix.fractions}
    total = sum(fractions.values())
    scale = np.divide(np.clip(total, 0, 1), total, out=np.zeros_like(total), where=total > 1e-3)
    t1, t2 = (matched_time(pd, sum(f * mix.values[k][0] * np.exp(-ref / max(mix.values[k][col], 1e-3))
                                      for k, f in fractions.items()) * scale, ref)
              for col, ref in ((1, MATCHED_REFERENCE_MS["t1"]), (2, MATCHED_REFERENCE_MS["t2"])))
    matched = [psnr(on_head_grid(ext.signal(t, pd, t1, t2)), first + i) for i, t in enumerate(truths)]
    return [(f"{MAPS_LABEL} (fitted to {len(targets)} targets)", fitted),
            (f"{TRUTH_LABEL} (the head's own maps)", own),
            (f"{MATCHED_LABEL} (the head's tissues)", matched)]


def sample_table(rows) -> str:
    from napari_mr_reparam.sample_head import TRUTH_ACQS

    head = " | ".join(f"TE {te:g}/TR {tr:g}" for te, tr in TRUTH_ACQS)
    lines = [f"| maps | {head} | mean |", "|---" * (len(TRUTH_ACQS) + 2) + "|"]
    for label, values in rows:
        lines.append(f"| {label} | " + " | ".join(f"{v:.2f}" for v in values) + f" | {np.mean(values):.2f} |")
    return "\n".join(lines)


def table(summaries: dict, bins: int) -> str:
    rows = [{"model": MAPS_LABEL, "what": "none (fitted to the targets)", "saw": None,
             "summary": summaries[MAPS_LABEL]},
            {"model": TRUTH_LABEL, "what": "none (the subject's own tissues, mixed as training mixes them)",
             "saw": None, "summary": summaries[TRUTH_LABEL]},
            {"model": MATCHED_LABEL, "what": "none (the same, each time matched at its reference)",
             "saw": None, "summary": summaries[MATCHED_LABEL]}]
    rows += ext.input_rows(f"intensity lookup, {bins} bins", summaries)
    return ext.psnr_table(rows, "input")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ext.add_subject_options(parser)
    parser.add_argument("--bins", type=int, default=64, help="intensity bins of the lookup")
    parser.add_argument("--sample", action="store_true", help="the maps rows on the demo's sample head instead")
    args = parser.parse_args(argv)
    if args.bins < 2:
        parser.error("--bins must be at least 2")
    if args.sample:
        print("the demo's sample head: PSNR (dB) at each ground truth, each slice at its own maximum\n")
        print(sample_table(sample_rows(args.targets)))
        return 0
    paths, missing = ext.subject_paths(args.tuning)
    if missing:
        print(missing)
        return 0
    summaries = run(paths, args.slices, args.targets, args.bins)
    print(f"\n{'training subjects 01-04' if args.tuning else 'held-out subjects'}: "
          "PSNR (dB), mean over subjects, slices and targets; the maps and lookup rows fitted to the truth\n")
    print(table(summaries, args.bins))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
