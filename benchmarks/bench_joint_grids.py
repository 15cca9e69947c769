"""Joint maps from scans on different grids: what thick slabs and coarse pixels cost.

    python benchmarks/bench_joint_grids.py [--subjects 2] [--slices 40] [--noise 0.01]
                                           [--protocol spin-echo|flair] [--model physics]

Scans of one session seldom share a grid: a 1 mm 3-D T1-weighted scan beside axial
T2-weighted and FLAIR slices 4 mm thick of 2 mm pixels. The joint fit brings them onto the
first input's grid by their affines (:mod:`napari_mr_reparam.grids`). Each held-out subject
of the external benchmark (``bench_external.heldout_subject``'s label maps, with a tissue
table drawn from the held-out literature ranges; one voxel one tissue) is rendered on its
1 mm grid (``--slices`` axial slices through the middle of the cerebrum, 256 matrix), with
Rician noise of ``--noise`` x each image's maximum, and written as NIfTI files with their
affines; the rows differ only in the grids the inputs are written on:

- **one grid**: every input at 1 mm (what co-registered scans give);
- **slabs 4 mm**: the second and third inputs as 1 x 1 x 4 mm axial slabs (the mean of four
  1 mm slices, then noise), resampled onto the first input's 1 mm grid;
- **slabs 4 mm, pixels 2 mm**: the same as 2 x 2 x 4 mm voxels;
- **thick grid first**: the 2 x 2 x 4 mm second input given first, so the maps come on its
  grid and the 1 mm input is averaged onto it; scored against the truth averaged over
  those voxels (what a scan on that grid shows);
- **the middle half covered**: the second and third inputs at 1 mm over the middle half of
  the slices only (a 2-D series of fewer slices than the 3-D first scan), so the slices
  outside hold the first input alone; scored over every slice, and on a row of its own
  over the slices outside ("outside the others' coverage"), where the maps come from the
  first input and the network's read of it.

Beside each row of slabs, with no fit, the resolution's own limit: the noise-free truth of
every target averaged over the thick inputs' voxels and resampled back onto the 1 mm grid
the same way ("truth at the slabs' resolution"): what the thick inputs hold of a 1 mm target.

Protocols (TE / TR / TI ms): ``spin-echo`` a T1-weighted TE 15 / TR 500 first, then the
PD/T2 dual echo TE 15 and 100 / TR 3000 (all three parameters determined: no network
runs); ``flair`` T1w TE 15 / TR 500, T2w TE 100 / TR 4000, FLAIR TE 120 / TR 9000 / TI 2500
(magnitude), the physics network's PD as the FLAIR's loose prior; with either protocol the
network's maps of the first input fill in where the others do not reach (``--model none``:
the fit alone, the broad default prior there). Inputs are read with :func:`napari_mr_reparam.io.load_volume`, brought onto one grid
with :func:`napari_mr_reparam.cli_joint.on_first_grid` and fitted with
:func:`napari_mr_reparam.joint_fit.joint_maps`, as ``maps`` and ``predict --joint`` do.
Scores: the external benchmark's 12 spin-echo targets (``bench_external.heldout_targets``),
PSNR per slice of 0-255 images each normalized to its maximum, mean over slices and
targets, and the worst target; median T1 and T2 error in the brain (rows on the 1 mm grid).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    block_mean, grid_affine, heldout_subjects_and_engine, psnr_per_slice, render, rician, subject_slab, write,
)

PROTOCOLS = {
    "spin-echo": [("T1w", "spin_echo", 15, 500, None), ("PDw", "spin_echo", 15, 3000, None),
                  ("T2w", "spin_echo", 100, 3000, None)],
    "flair": [("T1w", "spin_echo", 15, 500, None), ("T2w", "spin_echo", 100, 4000, None),
              ("FLAIR", "inversion_recovery", 120, 9000, 2500)],
}
#: Rows: (name, voxel of the second and third inputs in fine voxels (z, y, x), thick grid first).
ROWS = [("one grid", (1, 1, 1), False), ("slabs 4 mm", (4, 1, 1), False),
        ("slabs 4 mm, pixels 2 mm", (4, 2, 2), False), ("thick grid first", (4, 2, 2), True),
        ("the middle half covered", (1, 1, 1), False)]


def covered(row: str, slices: int) -> slice:
    """The slices the second and third inputs hold in ``row``."""
    return slice(slices // 4, slices - slices // 4) if row == "the middle half covered" else slice(0, slices)


def run_row(folder, subject, protocol, voxel, thick_first, noise, rng, engine, cover=None):
    from napari_mr_reparam.cli_joint import on_first_grid
    from napari_mr_reparam.io import load_volume
    from napari_mr_reparam.image_noise import noise_on_own_grids
    from napari_mr_reparam.fit_information import make_acquisition
    from napari_mr_reparam.joint_fit import joint_maps

    _, pd, t1, t2, brain = subject
    paths, acqs = [], []
    for i, (name, sequence, te, tr, ti) in enumerate(protocol):
        clean = render(sequence, pd, t1, t2, te, tr, ti)
        own = (1, 1, 1) if i == 0 else voxel
        image = rician(block_mean(clean, own), noise * float(clean.max()), rng)
        affine = grid_affine(own)
        if i > 0 and cover is not None:  # fewer slices, placed where they lie
            image = image[cover]
            affine = affine @ np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, cover.start], [0, 0, 0, 1]])
        paths.append(write(folder, f"{name}_{'x'.join(map(str, own))}", image, affine))
        acqs.append(make_acquisition(sequence, te, tr, ti))
    if thick_first:
        paths.insert(0, paths.pop(1))
        acqs.insert(0, acqs.pop(1))
    start = time.perf_counter()
    volumes = [load_volume(p) for p in paths]
    noise = noise_on_own_grids(volumes)  # as the command line measures it, before resampling
    from contextlib import redirect_stderr
    from io import StringIO

    with redirect_stderr(StringIO()):
        volumes, moved = on_first_grid(volumes)
    resample_s = time.perf_counter() - start
    start = time.perf_counter()
    maps = joint_maps([v.data for v in volumes], acqs, engine=engine, noise=noise, spacing=volumes[0].spacing)
    fit_s = time.perf_counter() - start
    reference = voxel if thick_first else (1, 1, 1)
    scores, outside = [], []
    import bench_external as ext

    beyond = np.ones(pd.shape[0], bool)
    if cover is not None:
        beyond[cover] = False
    for target in ext.heldout_targets(12):
        truth = block_mean(render("spin_echo", pd, t1, t2, target.te, target.tr, None), reference)
        pred = maps.render(target.te, target.tr, "spin_echo")
        scores.append(psnr_per_slice(pred, truth))
        if cover is not None:
            outside.append(psnr_per_slice(pred[beyond], truth[beyond]))
    errors = (None, None)
    if reference == (1, 1, 1):
        inside = brain & (maps.pd > 0)
        errors = tuple(float(np.median(np.abs(getattr(maps, k)[inside] / ref[inside] - 1)))
                       for k, ref in (("t1", t1), ("t2", t2)))
    return {"mean": float(np.mean(scores)), "worst": float(np.min(scores)), "errors": errors,
            "outside": (float(np.mean(outside)), float(np.min(outside))) if outside else None,
            "resampled": len(moved), "resample_s": resample_s, "fit_s": fit_s,
            "shape": "x".join(map(str, volumes[0].data.shape))}


def resolution_floor(folder: Path, subject, voxel) -> dict:
    """Each target's noise-free truth averaged over ``voxel`` and resampled back onto the 1 mm
    grid (:func:`napari_mr_reparam.grids.resample_onto`), scored against the 1 mm truth."""
    import bench_external as ext
    from napari_mr_reparam.grids import resample_onto
    from napari_mr_reparam.io import load_volume

    _, pd, t1, t2, _ = subject
    fine = load_volume(write(folder, "fine", pd, grid_affine((1, 1, 1))))
    scores = []
    for target in ext.heldout_targets(12):
        truth = render("spin_echo", pd, t1, t2, target.te, target.tr, None)
        thick = load_volume(write(folder, "thick", block_mean(truth, voxel), grid_affine(voxel)))
        scores.append(psnr_per_slice(resample_onto(thick, fine).data, truth))
    return {"mean": float(np.mean(scores)), "worst": float(np.min(scores))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=2)
    parser.add_argument("--slices", type=int, default=40)
    parser.add_argument("--noise", type=float, default=0.01)
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default="spin-echo")
    parser.add_argument("--model", default="physics",
                        help="the network for the FLAIR protocol's PD and where the others do not reach; "
                             "none: the fit alone")
    args = parser.parse_args(argv)
    if args.slices % 4:
        parser.error("--slices must be a multiple of 4 (the slabs' thickness)")
    found = heldout_subjects_and_engine(args.model)
    if found is None:
        return 0
    paths, engine = found
    protocol = PROTOCOLS[args.protocol]
    names = " + ".join(f"{n} ({te}/{tr}{'/' + str(ti) if ti else ''})" for n, _, te, tr, ti in protocol)
    print(f"protocol {args.protocol}: {names}; noise {args.noise:g}; {args.slices} slices\n")
    print("| subject | inputs' grids | maps' grid | resampled | SE targets: mean PSNR | worst target | "
          "median T1 error | median T2 error | resampling (s) | fit (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    means = {}
    for index, path in enumerate(paths[:args.subjects]):
        subject = subject_slab(path, index, args.slices)
        for row, voxel, thick_first in ROWS:
            rng = np.random.default_rng([index, 7])  # the same noise draws for every row's first input
            part = covered(row, args.slices)
            with tempfile.TemporaryDirectory() as folder:
                r = run_row(Path(folder), subject, protocol, voxel, thick_first, args.noise, rng, engine,
                            None if part == slice(0, args.slices) else part)
            t1e, t2e = (f"{100 * e:.1f} %" if e is not None else "-" for e in r["errors"])
            print(f"| {subject[0]} | {row} | {r['shape']} | {r['resampled']} | {r['mean']:.2f} dB | "
                  f"{r['worst']:.2f} dB | {t1e} | {t2e} | {r['resample_s']:.1f} | {r['fit_s']:.1f} |", flush=True)
            means.setdefault(row, []).append((r["mean"], r["worst"]))
            if r["outside"] is not None:
                name = f"{row}: outside the others' coverage"
                print(f"| {subject[0]} | {name} | {r['shape']} | {r['resampled']} | {r['outside'][0]:.2f} dB | "
                      f"{r['outside'][1]:.2f} dB | - | - | - | - |", flush=True)
                means.setdefault(name, []).append(r["outside"])
            if voxel != (1, 1, 1) and not thick_first:
                floor = f"truth at the slabs' resolution ({'x'.join(map(str, voxel[::-1]))} mm), no fit"
                with tempfile.TemporaryDirectory() as folder:
                    f = resolution_floor(Path(folder), subject, voxel)
                print(f"| {subject[0]} | {floor} | {args.slices}x256x256 | - | {f['mean']:.2f} dB | {f['worst']:.2f} dB "
                      "| - | - | - | - |", flush=True)
                means.setdefault(floor, []).append((f["mean"], f["worst"]))
    print("\n| inputs' grids | SE targets: mean PSNR (mean over subjects) | worst target (mean over subjects) |")
    print("|---|---|---|")
    for row, values in means.items():
        print(f"| {row} | {np.mean([v[0] for v in values]):.2f} dB | {np.mean([v[1] for v in values]):.2f} dB |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
