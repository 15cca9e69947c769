"""Joint maps on simulated held-out brains: one, two and three inputs.

    python benchmarks/bench_joint_brains.py [--anatomy ../shared/anatomy] [--subjects 2]
                                            [--slices 16] [--noise 0.005] [--model physics]
                                            [--t1-prior-error 0.02 0.05 ...]
                                            [--tissues brainweb|heldout] [--tuning]
                                            [--prior-correlation R] [--pd-prior-sd S] [--branch-pd-sd S]
                                            [--smooth-radius R] [--smooth-range S]
                                            [--preset-sets MPRAGE+FLAIR T1w+T2w+FLAIR ...]

Each held-out label map of :data:`napari_mr_reparam.phantoms.freesurfer.HELD_OUT` (the
first ``--subjects`` present; the MNI152 head when none is) becomes a phantom (BrainWeb
1.5 T table, a head around the brain), and ``--slices`` axial slices through its middle
are rendered with Gaussian noise (``--noise`` x each image's maximum) at:

- one input: spin echo TE 50 / TR 4500 ms (the network's home acquisition), maps by the
  physics network alone (what a single image gives today);
- two inputs: a PD- and T2-weighted dual echo, TE 15 and 100 / TR 3000 ms (T1 left to
  the network's prior);
- three inputs: the dual echo and a T1-weighted TE 15 / TR 500 ms;
- two inputs of the pair most subjects have: the T1-weighted TE 15 / TR 500 ms and the
  T2-weighted TE 100 / TR 3000 ms (two images for three unknowns: the network's maps
  from the T2-weighted one decide what the pair leaves open). Its noise is drawn after
  the other rows', so theirs are as without it.

Targets: spin echo at TE 20, 50, 100, 200 ms x TR 500, 1500, 3000, 6000 ms, and the
FLAIR and STIR presets. With two inputs at one TR, T1 comes from the network's prior,
so targets at the inputs' TR (3000 ms) and at TR >= 3000 ms are shown apart.
``--t1-prior-error`` adds, for each relative error e given, a two-input row whose T1
prior is the true T1 map times a random factor exp(N(0, e)) per voxel, in place of the
network's: how near the truth a T1 prior must be for the dual echo to reach a score. PSNR per slice on 0-255 images each normalized to its own maximum
(the paper's protocol), averaged over slices; the table gives each target set's mean and
worst target. Map errors: median |fit / true - 1| of T1 and T2 in the brain.

``--tissues heldout`` takes the external benchmark's held-out subjects instead
(``bench_external.heldout_subject``: all five, or with ``--tuning`` the training subjects
01-04 that settings are chosen on), each with its own tissue table drawn from the
literature ranges training never saw, one voxel one tissue (the middle slice of each of
its ``--slices`` slabs). ``--prior-correlation R`` sets the tie between the network
prior's log T1 and log T2 (:data:`napari_mr_reparam.joint_fit.NETWORK_PRIOR_CORRELATION`)
for the run; ``--pd-prior-sd S`` the spread of the network's PD prior where the inputs
measure neither time (:data:`napari_mr_reparam.joint_fit.NETWORK_PD_SD`; ``inf``: none);
``--branch-pd-sd S`` the spread of the network's PD prior where a magnitude inversion
recovery is among inputs that measure both times (:data:`napari_mr_reparam.joint_fit.BRANCH_PD_SD`);
``--smooth-radius R`` and ``--smooth-range S`` the disc and the likeness of the inputs'
smoothing before the fit (:data:`napari_mr_reparam.edge_smoothing.SMOOTH_RADIUS`, ``SMOOTH_RANGE``).
``--preset-sets`` adds a row per set of inputs named by presets (``MPRAGE+FLAIR``: the
MPRAGE and FLAIR presets' acquisitions, magnitude images), their noise drawn apart so the
other rows are as without them. The last table gives each row's mean over subjects.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import psnr_per_slice, use_joint_smoothing  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ANATOMY = ROOT.parent / "shared" / "anatomy"
SE_TARGETS = [(te, tr) for te in (20, 50, 100, 200) for tr in (500, 1500, 3000, 6000)]
SETUPS = {
    "one (TE 50 / TR 4500)": [(50, 4500)],
    "two (TE 15 + 100 / TR 3000)": [(15, 3000), (100, 3000)],
    "three (+ TE 15 / TR 500)": [(15, 3000), (100, 3000), (15, 500)],
    "two (T1w TE 15 / TR 500 + T2w TE 100 / TR 3000)": [(15, 500), (100, 3000)],
}


def phantoms(anatomy: Path, count: int):
    from napari_mr_reparam.phantoms import load_phantom
    from napari_mr_reparam.phantoms.freesurfer import anatomy_files, load_freesurfer

    files = anatomy_files(anatomy, held_out=True)[:count] if anatomy.is_dir() else []
    if not files:
        print("(no held-out anatomy found: the MNI152 head stands in)")
        return [("mni152", load_phantom("mni152"))]
    return [(p.name, load_freesurfer(p)) for p in files]


def brainweb_subjects(anatomy: Path, count: int, slices: int):
    """(name, pd, t1, t2, brain) of ``slices`` middle slices of each phantom (BrainWeb table)."""
    for name, ph in phantoms(anatomy, count):
        mid = ph.pd.shape[0] // 2
        sl = slice(mid - slices // 2, mid + slices - slices // 2)
        pd, t1, t2 = (np.asarray(getattr(ph, k)[sl], np.float32) for k in ("pd", "t1", "t2"))
        yield name, pd, t1, t2, np.asarray(ph.brain_mask[sl], bool) & (pd > 0)


def heldout_tissue_subjects(count: int, slices: int, tuning: bool):
    """(name, pd, t1, t2, brain) of the external benchmark's subjects, each with its own
    drawn tissue table: the middle slice of each slab, one voxel one tissue."""
    import bench_external as ext

    paths, missing = ext.subject_paths(tuning)
    if missing:
        print(f"({missing})")
        return
    for index, path in enumerate(paths[:count]):
        sub = ext.heldout_subject(path, index, slices)
        classes = sub.classes[:, sub.thickness // 2]
        pd, t1, t2 = (sub.values[k][classes].astype(np.float32) for k in range(3))
        yield sub.name, pd, t1, t2, sub.mask & (pd > 0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anatomy", type=Path, default=DEFAULT_ANATOMY)
    parser.add_argument("--subjects", type=int, default=2)
    parser.add_argument("--slices", type=int, default=16)
    parser.add_argument("--noise", type=float, default=0.005)
    parser.add_argument("--model", default="physics")
    parser.add_argument("--t1-prior-error", type=float, nargs="*", default=[])
    parser.add_argument("--tissues", choices=("brainweb", "heldout"), default="brainweb")
    parser.add_argument("--tuning", action="store_true",
                        help="with --tissues heldout: the training subjects 01-04 settings are chosen on")
    parser.add_argument("--prior-correlation", type=float, default=None)
    parser.add_argument("--pd-prior-sd", type=float, default=None)
    parser.add_argument("--branch-pd-sd", type=float, default=None)
    parser.add_argument("--smooth-radius", type=float, default=None,
                        help="the inputs' smoothing disc (voxels; edge_smoothing.SMOOTH_RADIUS)")
    parser.add_argument("--smooth-range", type=float, default=None,
                        help="how alike neighbours must be (noise levels; edge_smoothing.SMOOTH_RANGE)")
    parser.add_argument("--preset-sets", nargs="*", default=[], metavar="A+B[+C]",
                        help="more rows: inputs named by presets, e.g. MPRAGE+FLAIR T1w+T2w+FLAIR")
    parser.add_argument("--scale", choices=("shared", "per_input"), default="shared",
                        help="the fit's receiver gains: one for all inputs (default), or one per input "
                             "estimated against the network's maps (--scale per-input of the command line)")
    parser.add_argument("--series-gains", action="store_true",
                        help="each input after the first stored at a gain of its own, 2 to a power drawn "
                             "from -1 to 1, as images of separate series are")
    args = parser.parse_args(argv)
    if args.prior_correlation is not None and not -1.0 < args.prior_correlation < 1.0:
        parser.error(f"--prior-correlation must lie between -1 and 1, got {args.prior_correlation:g}")
    for name in ("pd_prior_sd", "branch_pd_sd"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            parser.error(f"--{name.replace('_', '-')} must be above 0 (inf: no PD prior), got {value:g}")

    import torch

    from napari_mr_reparam import physics
    from napari_mr_reparam.inference import Reparameterizer
    from napari_mr_reparam.joint_fit import fit_maps, joint_maps
    from napari_mr_reparam.presets import get_preset
    from napari_mr_reparam.simulate import Acquisition

    torch.set_num_threads(1)
    if args.prior_correlation is not None:
        from napari_mr_reparam import joint_fit

        joint_fit.NETWORK_PRIOR_CORRELATION = args.prior_correlation
    if args.pd_prior_sd is not None:
        from napari_mr_reparam import joint_fit

        joint_fit.NETWORK_PD_SD = args.pd_prior_sd
    if args.branch_pd_sd is not None:
        from napari_mr_reparam import joint_fit

        joint_fit.BRANCH_PD_SD = args.branch_pd_sd
    if args.smooth_radius is not None or args.smooth_range is not None:
        use_joint_smoothing(args.smooth_radius, args.smooth_range)
    from napari_mr_reparam.fit_information import FIT_SEQUENCES

    try:
        preset_sets = [[get_preset(name) for name in text.split("+")] for text in args.preset_sets]
    except ValueError as exc:
        parser.error(f"--preset-sets: {exc}")
    for group in preset_sets:
        for p in group:
            if p.render_arguments()["sequence"] not in FIT_SEQUENCES:
                parser.error(f"--preset-sets: {p.name} is not an input the joint fit takes "
                             f"({', '.join(FIT_SEQUENCES)})")
    engine = Reparameterizer(args.model, device="cpu")
    rng = np.random.default_rng(0)
    extra_rng = np.random.default_rng(1)  # the --t1-prior-error rows: the other rows' draws stay as without them
    preset_rng = np.random.default_rng(2)  # the --preset-sets rows: likewise
    gain_rng = np.random.default_rng(3)  # the --series-gains factors: the noise draws stay as without them
    rows = []
    if args.tissues == "heldout":
        subjects = heldout_tissue_subjects(args.subjects, args.slices, args.tuning)
    else:
        subjects = brainweb_subjects(args.anatomy, args.subjects, args.slices)
    # the BrainWeb heads' slices are neighbours 1 mm apart, as a 3-D scan's (the fit's smoothing
    # then reaches across them); the held-out tables' are the middles of slabs far apart
    spacing = (1.0, 1.0, 1.0) if args.tissues != "heldout" else None
    for name, pd, t1, t2, brain in subjects:
        targets = [(f"SE {te}/{tr}", dict(te_ms=te, tr_ms=tr)) for te, tr in SE_TARGETS]
        for preset in ("FLAIR", "STIR"):
            p = get_preset(preset)
            targets.append((preset, p.render_arguments()))
        truth = {}
        for label, kw in targets:
            truth[label] = np.asarray(physics.render(kw.get("sequence", "spin_echo"), pd, t1, t2, kw["te_ms"],
                                                     kw["tr_ms"], ti=kw.get("ti_ms"), flip_deg=kw.get("flip_deg")))
        runs = [(setup, [dict(te_ms=te, tr_ms=tr) for te, tr in protocol], None, rng)
                for setup, protocol in SETUPS.items()]
        two = [dict(te_ms=te, tr_ms=tr) for te, tr in SETUPS["two (TE 15 + 100 / TR 3000)"]]
        runs += [(f"two, T1 prior: true T1 with {100 * e:g} % error", two, e, extra_rng) for e in args.t1_prior_error]
        runs += [("presets " + " + ".join(p.name for p in group), [p.render_arguments() for p in group], None,
                  preset_rng) for group in preset_sets]
        for setup, protocol, t1_error, draw in runs:
            images, acqs = [], []
            for kw in protocol:
                sequence = kw.get("sequence", "spin_echo")
                # magnitude images, as scanners store them
                clean = np.abs(np.asarray(physics.render(sequence, pd, t1, t2, kw["te_ms"], kw["tr_ms"],
                                                         ti=kw.get("ti_ms"), flip_deg=kw.get("flip_deg")),
                                          np.float32))
                image = clean + draw.normal(0, args.noise * clean.max(), clean.shape).astype(np.float32)
                if args.series_gains and images:
                    image = image * np.float32(2.0 ** gain_rng.uniform(-1.0, 1.0))
                images.append(image)
                acqs.append(Acquisition(kw["te_ms"], kw["tr_ms"], sequence, kw.get("ti_ms"), kw.get("flip_deg")))
            if t1_error is None:
                maps = joint_maps(images, acqs, engine=engine, spacing=spacing, scale=args.scale)
            else:
                factor = np.exp(extra_rng.normal(0, t1_error, t1.shape)).astype(np.float32)
                # a T1 prior alone (the dual echo measures T2): no tie between the two times
                prior = {"t1": np.where(t1 > 0, t1, 1000) * factor, "t2": np.full_like(t2, 100),
                         "correlation": 0.0}
                maps = fit_maps(images, acqs, prior=prior, spacing=spacing)
            scores = {label: psnr_per_slice(maps.render(**kw), truth[label]) for label, kw in targets}
            se = [scores[label] for label, _ in targets if label.startswith("SE")]
            long_tr = [scores[f"SE {te}/{tr}"] for te, tr in SE_TARGETS if tr >= 3000]
            input_tr = [scores[f"SE {te}/{tr}"] for te, tr in SE_TARGETS if tr == 3000]
            errs = {}
            for key, ref in (("t1", t1), ("t2", t2)):
                fit = getattr(maps, key)
                ok = brain & np.isfinite(fit)
                errs[key] = float(np.median(np.abs(fit[ok] / ref[ok] - 1)))
            rows.append((name, setup, float(np.mean(se)), float(np.min(se)), float(np.min(input_tr)),
                         float(np.min(long_tr)),
                         scores["FLAIR"], scores["STIR"],
                         errs["t1"], errs["t2"], maps.summary()["determined_fraction"]))
    print("| subject | inputs | SE targets: mean PSNR | SE targets: worst | SE, TR 3000: worst "
          "| SE, TR >= 3000: worst | FLAIR | STIR | median T1 error | median T2 error "
          "| determined by the inputs (T1 / T2) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, setup, mean, worst, worst_input_tr, worst_long, flair, stir, e1, e2, det in rows:
        print(f"| {name} | {setup} | {mean:.1f} dB | {worst:.1f} dB | {worst_input_tr:.1f} dB "
              f"| {worst_long:.1f} dB | {flair:.1f} dB "
              f"| {stir:.1f} dB "
              f"| {100 * e1:.1f} % | {100 * e2:.1f} % | {100 * det['t1']:.0f} % / {100 * det['t2']:.0f} % |")
    print()
    print("| inputs | subjects | SE targets: mean over subjects of each one's mean | ... of each one's worst |")
    print("|---|---|---|---|")
    for setup in dict.fromkeys(row[1] for row in rows):
        mine = [row for row in rows if row[1] == setup]
        print(f"| {setup} | {len(mine)} | {np.mean([r[2] for r in mine]):.2f} dB | {np.mean([r[3] for r in mine]):.2f} dB |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
