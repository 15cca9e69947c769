"""Joint maps from scans between which the head moved: what motion costs, and what `--register` buys.

    python benchmarks/bench_registration.py [--subjects 3] [--slices 60] [--noise 0.01]
                                            [--degrees 1 4] [--shift-mm 1 3] [--voxel 1 1 1] [--model physics]
                                            [--partial-volume]

Each held-out subject of the external benchmark (``bench_external.heldout_subject``'s label
maps, with a tissue table drawn from the held-out literature ranges; one voxel one tissue)
is scanned three times on one 1 mm grid (``--slices`` axial slices through the middle of
the cerebrum, 256 matrix, Rician noise of ``--noise`` x each image's maximum), written as
NIfTI and read back as the command line reads them: a T1-weighted spin echo (TE 15 / TR
500 ms) first, then a PD/T2 dual echo (TE 15 and 100 / TR 3000 ms), for which the head has
moved by a rigid motion drawn per subject (a turn of ``--degrees`` about a random axis
through the slab's centre, and a shift of ``--shift-mm`` in a random direction), as it
moves between two series. The scanner's grid stays where it was, so the dual echo's files
carry the same affine as the first scan: only their anatomy moved (the class map resampled,
nearest class). With ``--voxel Z Y X`` the dual echo is written on a grid of that many 1 mm
voxels per voxel (``5 2 2``: axial slabs 5 mm thick of 2 mm pixels, the mean of the 1 mm
voxels they cover), as a 2-D T2-weighted series beside a 3-D T1-weighted one. Rows:

- **no motion**: the dual echo of the head where it was (the best the fit can do);
- **moved, as they lie**: the moved dual echo fitted voxel by voxel with the first scan,
  as ``maps`` does without ``--register``;
- **moved, registered**: ``maps --register``'s path (a registration refused, as
  ``maps`` refuses it, is listed as such and left out of the means)
  (:func:`napari_mr_reparam.cli_joint.registered_inputs`, then
  :func:`~napari_mr_reparam.cli_joint.on_first_grid`): each dual-echo image registered
  onto the first scan and resampled onto its grid;
- **moved, the true motion**: the same with the motion that was drawn in place of the one
  registration found: what a perfect registration gives. Below "no motion" by what
  resampling a moved head costs (its edges fall elsewhere on the grid, and trilinear
  resampling blurs them).

With ``--partial-volume`` the head's anatomy runs between the label map's 1 mm steps
(``_common.moved_classes`` with ``smooth``: each class's indicator smoothed and
interpolated onto 0.5 mm voxels), and every scan and the truth are rendered on those
voxels and averaged over each 1 mm voxel: each voxel at an edge holds the mix of its
tissues' signals, in the first scan as in the moved ones, as a scanner sees a head; map
errors are then taken over the voxels that hold one tissue. All three inputs determine PD, T1 and T2, so the network runs only where the moved dual echo
does not reach (the slab's first or last slices after the motion): there it reads the first
scan, as ``maps`` does (``--model none``: the fit alone, the broad default prior there). Scores: the external
benchmark's 12 spin-echo targets (``bench_external.heldout_targets``) of the head where
the first scan has it, PSNR per slice of 0-255 images each normalized to its maximum, mean
over slices and targets, and the worst target; median T1 and T2 error in the brain; the
dual echo as the fit is given it (each image on the first scan's grid) and as the joint
maps render its two acquisitions, both against those acquisitions' truth, where both
images reach: a fit can only be as sharp as what it is given; for
the registered row, the registration's error (the largest distance between the found and
the true motion over the corners of the field of view) and its time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import redirect_stderr
from io import StringIO
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (block_mean, grid_affine, heldout_subjects_and_engine, psnr_per_slice, render,  # noqa: E402
                     rician, stack_to_world, subject_slab, write)

#: (name, sequence, TE, TR, TI): the first scan, then the dual echo of the later series.
FIRST = ("T1w", "spin_echo", 15, 500, None)
LATER = [("PDw", "spin_echo", 15, 3000, None), ("T2w", "spin_echo", 100, 3000, None)]
ROWS = ("no motion", "moved, as they lie", "moved, registered", "moved, the true motion")


def draw_motion(rng, degrees, shift_mm, centre) -> np.ndarray:
    """A rigid motion (RAS mm) turning by an angle drawn in ``degrees`` about a random axis
    through ``centre`` and shifting by a length drawn in ``shift_mm`` in a random direction."""
    from scipy.spatial.transform import Rotation

    axis = rng.normal(size=3)
    angle = np.radians(rng.uniform(*degrees))
    rotation = Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle).as_matrix()
    direction = rng.normal(size=3)
    out = np.eye(4)
    out[:3, :3] = rotation
    out[:3, 3] = centre - rotation @ centre + direction / np.linalg.norm(direction) * rng.uniform(*shift_mm)
    return out


def corner_error(found: np.ndarray, true: np.ndarray, shape) -> float:
    last = np.asarray(shape, float) - 1
    corners = np.array([[i, j, k, 1.0] for i in (0, last[0]) for j in (0, last[1]) for k in (0, last[2])])
    world = corners @ stack_to_world().T
    return float(np.linalg.norm(world @ (found - true).T, axis=1).max())


def run_row(folder, row, still, moved, noise, seed, motion, voxel=(1, 1, 1), engine=None, fine=1):
    """One row's scores; ``still`` and ``moved`` on ``fine`` sub-voxels per 1 mm voxel."""
    from napari_mr_reparam.cli_joint import on_first_grid, registered_inputs
    from napari_mr_reparam.io import load_volume
    from napari_mr_reparam.image_noise import noise_on_own_grids
    from napari_mr_reparam.fit_information import make_acquisition
    from napari_mr_reparam.joint_fit import joint_maps

    rng = np.random.default_rng(seed)  # the same noise draws in every row
    truth = GridTruth(still[1:4], fine)
    paths, acqs = [], []
    for i, (name, sequence, te, tr, ti) in enumerate([FIRST, *LATER]):
        head = still if i == 0 or row == "no motion" else moved
        own = (1, 1, 1) if i == 0 else tuple(voxel)
        clean = block_mean(block_mean(render(sequence, *head[1:4], te, tr, ti), (fine,) * 3), own)
        paths.append(write(folder, name, rician(clean, noise * float(clean.max()), rng), grid_affine(own)))
        acqs.append(make_acquisition(sequence, te, tr, ti))
    volumes = [load_volume(p) for p in paths]
    noise = noise_on_own_grids(volumes)  # as the command line measures it, before registration
    error, register_s = None, None
    with redirect_stderr(StringIO()):
        if row == "moved, registered":
            start = time.perf_counter()
            try:
                volumes, motions = registered_inputs(volumes)
            except ValueError as exc:  # refused: the command line writes nothing
                return {"refused": str(exc), "register_s": time.perf_counter() - start}
            register_s = time.perf_counter() - start
            error = max(corner_error(m.matrix, motion, truth.t1.shape) for _, m in motions)
        elif row == "moved, the true motion":
            from napari_mr_reparam.registration import Motion, moved_back

            volumes = [volumes[0], *(moved_back(v, Motion(motion, 0.0, 0.0)) for v in volumes[1:])]
        volumes, _ = on_first_grid(volumes, registered=row != "moved, as they lie")
    maps = joint_maps([v.data for v in volumes], acqs, engine=engine, noise=noise, spacing=volumes[0].spacing)
    import bench_external as ext

    scores = [psnr_per_slice(maps.render(t.te, t.tr, "spin_echo"), truth.render("spin_echo", t.te, t.tr, None))
              for t in ext.heldout_targets(12)]
    inside = truth.pure & block_mean(still[4].astype(np.float32), (fine,) * 3).astype(bool) & (maps.pd > 0)
    errors = [float(np.median(np.abs(getattr(maps, k)[inside] / ref[inside] - 1)))
              for k, ref in (("t1", truth.t1), ("t2", truth.t2))]
    return {"mean": float(np.mean(scores)), "worst": float(np.min(scores)), "errors": errors,
            "given": given_scores(volumes[1:], maps, LATER, truth),
            "register_error": error, "register_s": register_s}


def given_scores(later, maps, acquisitions, truth) -> list[tuple[float, float]]:
    """Per later input, as the fit is given it (on the first scan's grid) and as the joint
    maps render its acquisition: PSNR against that acquisition's truth of the head where
    the first scan has it, over the voxels every later input reaches (a resampled scan is
    NaN beyond its field of view; elsewhere all three images are set to 0)."""
    reached = np.logical_and.reduce([np.isfinite(v.data) for v in later])
    out = []
    for volume, (_, sequence, te, tr, ti) in zip(later, acquisitions):
        target = np.where(reached, truth.render(sequence, te, tr, ti), 0)
        out.append((psnr_per_slice(np.where(reached, volume.data, 0), target),
                    psnr_per_slice(np.where(reached, maps.render(te, tr, sequence, ti_ms=ti), 0), target)))
    return out


class GridTruth:
    """The truth on the 1 mm grid of a head given on ``fine`` sub-voxels per voxel: renders
    averaged over each voxel's sub-voxels, and the relaxation times where a voxel holds one
    tissue (``pure``)."""

    def __init__(self, maps, fine: int):
        self.maps, self.fine = maps, fine
        block = (fine,) * 3
        pd, t1, t2 = maps
        self.t1, self.t2 = block_mean(t1, block), block_mean(t2, block)
        self.pure = ((block_mean(t1 * t1, block) <= self.t1 * self.t1 * (1 + 1e-5))
                     & (block_mean(t2 * t2, block) <= self.t2 * self.t2 * (1 + 1e-5)))

    def render(self, sequence, te, tr, ti):
        return block_mean(render(sequence, *self.maps, te, tr, ti), (self.fine,) * 3)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--slices", type=int, default=60)
    parser.add_argument("--noise", type=float, default=0.01)
    parser.add_argument("--degrees", type=float, nargs=2, default=(1.0, 4.0), metavar=("LOW", "HIGH"))
    parser.add_argument("--shift-mm", type=float, nargs=2, default=(1.0, 3.0), metavar=("LOW", "HIGH"))
    parser.add_argument("--voxel", type=int, nargs=3, default=(1, 1, 1), metavar=("Z", "Y", "X"),
                        help="the dual echo's voxel in 1 mm voxels (axial slab thickness, then pixel)")
    parser.add_argument("--partial-volume", action="store_true",
                        help="a head finer than its label map, every scan rendered on 0.5 mm voxels and "
                             "averaged over each 1 mm voxel")
    parser.add_argument("--model", default="physics",
                        help="the network that reads the first scan where the dual echo does not reach; "
                             "none: the fit alone")
    args = parser.parse_args(argv)
    if args.slices % args.voxel[0]:
        parser.error("--slices must be a multiple of the slab thickness (--voxel's first value)")
    found = heldout_subjects_and_engine(args.model)
    if found is None:
        return 0
    paths, engine = found
    print(f"T1w (15/500) first, then the PD/T2 dual echo (15 and 100 / 3000) after a turn of "
          f"{args.degrees[0]:g}-{args.degrees[1]:g} deg and a shift of {args.shift_mm[0]:g}-{args.shift_mm[1]:g} mm; "
          f"noise {args.noise:g}; {args.slices} slices; the dual echo's voxel {'x'.join(map(str, args.voxel[::-1]))} mm\n")
    given_head = " / ".join(name for name, *_ in LATER)
    print(f"| subject | motion | inputs | SE targets: mean PSNR | worst target | median T1 error | median T2 error "
          f"| {given_head} as the fit is given them | {given_head} rendered from the joint maps "
          "| registration error (mm, worst corner) | registration (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    means, refused = {}, []
    for index, path in enumerate(paths[:args.subjects]):
        rng = np.random.default_rng([index, 11])
        centre = stack_to_world() @ np.array([args.slices / 2 - 0.5, 127.5, 127.5, 1.0])
        motion = draw_motion(rng, args.degrees, args.shift_mm, centre[:3])
        angle = np.degrees(np.arccos(np.clip((np.trace(motion[:3, :3]) - 1) / 2, -1, 1)))
        fine = 2 if args.partial_volume else 1
        still = subject_slab(path, index, args.slices, np.eye(4) if args.partial_volume else None, fine,
                             smooth=args.partial_volume)
        moved = subject_slab(path, index, args.slices, motion, fine, smooth=args.partial_volume)
        for row in ROWS:
            with tempfile.TemporaryDirectory() as folder:
                r = run_row(Path(folder), row, still, moved, args.noise, [index, 7], motion, args.voxel, engine, fine)
            shown = "-" if row == "no motion" else f"{angle:.1f} deg, {np.linalg.norm(motion[:3, 3] - centre[:3] + motion[:3, :3] @ centre[:3]):.1f} mm"
            if "refused" in r:
                print(f"| {still[0]} | {shown} | {row} | refused: {r['refused']} | | | | | | | {r['register_s']:.1f} |",
                      flush=True)
                refused.append(still[0])
                continue
            reg = ("-", "-") if r["register_s"] is None else (f"{r['register_error']:.2f}", f"{r['register_s']:.1f}")
            print(f"| {still[0]} | {shown} | {row} | {r['mean']:.2f} dB | {r['worst']:.2f} dB | "
                  f"{100 * r['errors'][0]:.1f} % | {100 * r['errors'][1]:.1f} % | {_pair(r, 0)} | {_pair(r, 1)} "
                  f"| {reg[0]} | {reg[1]} |", flush=True)
            means.setdefault(row, []).append(r)
    print("\n| inputs | SE targets: mean PSNR (mean over subjects) | worst target (mean over subjects) | "
          f"median T1 / T2 error (mean over subjects) | {given_head} as the fit is given them | "
          f"{given_head} rendered from the joint maps |")
    print("|---|---|---|---|---|---|")
    for row, rs in means.items():
        if row == "moved, registered" and refused:
            row = f"{row} ({len(rs)} of {len(rs) + len(refused)}; refused: {', '.join(refused)})"
        given = np.mean([r["given"] for r in rs], axis=0)  # (input, given / rendered)
        print(f"| {row} | {np.mean([r['mean'] for r in rs]):.2f} dB | {np.mean([r['worst'] for r in rs]):.2f} dB | "
              f"{100 * np.mean([r['errors'][0] for r in rs]):.1f} / {100 * np.mean([r['errors'][1] for r in rs]):.1f} % | "
              f"{' / '.join(f'{v:.2f}' for v in given[:, 0])} dB | {' / '.join(f'{v:.2f}' for v in given[:, 1])} dB |")
    return 0


def _pair(r, which: int) -> str:
    return " / ".join(f"{g[which]:.2f}" for g in r["given"]) + " dB"


if __name__ == "__main__":
    raise SystemExit(main())
