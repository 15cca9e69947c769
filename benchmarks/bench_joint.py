"""Speed of the joint map fit: three inputs of a head at 256x256x180 (or --shape).

    python benchmarks/bench_joint.py [--shape 180 256 256] [--threads 2] [--repeats 1]
                                     [--protocol mprage|flair] [--engine] [--uncovered N]
                                     [--spacing 1 1 1] [--busy N]

The MNI152 head (offline phantom) is resampled by nearest neighbour to the shape, and
rendered at three acquisitions, with 1 % Gaussian noise: a PD/T2-weighted spin-echo dual
echo (TE 15 / TR 3000, TE 100 / TR 3000 ms) and a T1-weighted image, a spin echo (TE 15 /
TR 500 ms) or, with ``--protocol mprage``, the MPRAGE preset (TE 3 / TR 2300 / TI 900 ms,
flip 9 degrees; T2* taken as T2), whose T1 slope the fit takes by central differences.
:func:`napari_mr_reparam.joint_fit.fit_maps` (no network prior: all three parameters are
determined, and ``joint_maps`` does not run the network then; the noise measured in the
background and the smoothing of the inputs included) is timed on ``--threads`` CPU threads (wall and CPU time of the process: on a
machine shared with other work the wall time overstates the fit's cost), and the median T1/T2 errors inside the
head are printed so a faster setting cannot pass unnoticed. Then the maps are rendered at TE 20 /
TR 6000 ms (median of three), as the widget re-renders them when a slider moves, with and
without lowering lone voxels above each slice's sustained peak
(:meth:`~napari_mr_reparam.joint_result.JointMaps.render`'s ``clip_overshoot``).

``--protocol flair`` takes the T1w, T2w and FLAIR presets (TE 15 / TR 500, TE 100 / TR
4000, TE 120 / TR 9000 / TI 2500 ms; magnitude images). ``--engine`` times
:func:`~napari_mr_reparam.joint_fit.joint_maps` with the bundled ``physics`` engine, as the
command line and the widget run it: the network runs where ``joint_maps`` runs it (with a
FLAIR among the inputs, for its PD), its time included. ``--uncovered N`` leaves the first
and last N slices to the first input alone (the others NaN there, as a series of fewer
slices is once resampled onto the first's grid): with ``--engine`` the network reads those
slices of the first input, and the fit of them is timed too. ``--spacing`` is the voxel
spacing (slice, row, column) the fit is told (default 1 mm isotropic, as a 256x256x180 head
is scanned: the inputs' smoothing reaches the neighbouring slices; ``--spacing 3 1 1`` for
slabs, smoothed in-plane only). ``--busy N`` keeps N cores busy with other processes while
the fit is timed, as on a machine shared with other work.
"""

from __future__ import annotations

import argparse
import time
from contextlib import contextmanager

import numpy as np


#: The three inputs of each protocol: (TE, TR, sequence, TI, flip), ms and degrees.
PROTOCOLS = {
    "spin-echo": [(15, 3000, "spin_echo", None, None), (100, 3000, "spin_echo", None, None),
                  (15, 500, "spin_echo", None, None)],
    "mprage": [(15, 3000, "spin_echo", None, None), (100, 3000, "spin_echo", None, None),
               (3, 2300, "mprage", 900, 9)],
    "flair": [(15, 500, "spin_echo", None, None), (100, 4000, "spin_echo", None, None),
              (120, 9000, "inversion_recovery", 2500, None)],
}


def head(shape):
    from scipy.ndimage import zoom

    from napari_mr_reparam.phantoms import load_phantom

    p = load_phantom("mni152")
    factors = [s / n for s, n in zip(shape, p.pd.shape)]
    return [zoom(np.asarray(getattr(p, k), np.float32), factors, order=0) for k in ("pd", "t1", "t2")]


def _spin(stop) -> None:
    while not stop.is_set():
        sum(range(10_000))


@contextmanager
def busy_cores(count: int):
    """``count`` processes each keeping a core busy inside the block (0: none)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    workers = [context.Process(target=_spin, args=(stop,), daemon=True) for _ in range(count)]
    for w in workers:
        w.start()
    try:
        yield
    finally:
        stop.set()
        for w in workers:
            w.join(5)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[180, 256, 256])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default="spin-echo",
                        help="the T1-weighted input: a spin echo or MPRAGE; or T1w, T2w and FLAIR")
    parser.add_argument("--engine", action="store_true",
                        help="time joint_maps with the physics engine (the network where it runs)")
    parser.add_argument("--uncovered", type=int, default=0, metavar="N",
                        help="the first and last N slices measured by the first input alone")
    parser.add_argument("--spacing", type=float, nargs=3, default=[1.0, 1.0, 1.0], metavar=("Z", "Y", "X"),
                        help="voxel spacing (mm) the fit is told; slices 1.5 pixels apart or more: in-plane smoothing")
    parser.add_argument("--busy", type=int, default=0, metavar="N",
                        help="N other processes keep a core busy each while the fit is timed (a shared machine)")
    args = parser.parse_args(argv)

    import torch

    from napari_mr_reparam import physics
    from napari_mr_reparam.joint_fit import fit_maps, joint_maps
    from napari_mr_reparam.simulate import Acquisition

    torch.set_num_threads(args.threads)
    pd, t1, t2 = head(tuple(args.shape))
    protocol = PROTOCOLS[args.protocol]
    acqs = [Acquisition(*acq) for acq in protocol]
    rng = np.random.default_rng(0)
    images = []
    for te, tr, sequence, ti, flip in protocol:
        clean = np.asarray(physics.render(sequence, pd, t1, t2, te, tr, ti=ti, flip_deg=flip, t2star=t2),
                           np.float32)
        if sequence == "inversion_recovery":
            clean = np.abs(clean)  # a magnitude image, as scanners store it
        images.append(clean + rng.normal(0, 0.01 * clean.max(), clean.shape).astype(np.float32))
    if args.uncovered:
        for image in images[1:]:
            image[:args.uncovered] = image[-args.uncovered:] = np.nan
    options = {"spacing": tuple(args.spacing)}
    if args.iterations is not None:
        options["iterations"] = args.iterations
    engine = None
    if args.engine:
        from napari_mr_reparam.inference import Reparameterizer

        engine = Reparameterizer("physics", device="cpu")

    def fit():
        if engine is not None:
            return joint_maps(images, acqs, engine=engine, threads=args.threads, **options)
        return fit_maps(images, acqs, threads=args.threads, **options)
    times, cpu = [], []
    with busy_cores(args.busy):
        for _ in range(args.repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            maps = fit()
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    # re-rendering the maps at a target, as the widget does when a slider moves
    maps.render(20, 6000)  # the first render warms up
    spent = {False: [], True: []}
    for _ in range(3):
        for clip in (False, True):
            start = time.perf_counter()
            maps.render(20, 6000, clip_overshoot=clip)
            spent[clip].append(time.perf_counter() - start)
    render_times = {clip: float(np.median(times)) for clip, times in spent.items()}
    body = pd > 0.5 * pd.max()
    err = {k: float(np.median(np.abs(getattr(maps, k)[body] / ref[body] - 1)))
           for k, ref in (("t1", t1), ("t2", t2))}
    voxels = int(np.prod(args.shape))
    print("| inputs | protocol | network run | shape | spacing (mm) | object voxels | threads | fit wall time (s) "
          "| fit CPU time (s) | median T1 error | median T2 error | render at TE 20 / TR 6000 (s) "
          "| of it, lowering lone voxels (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    i = int(np.argmin(times))
    ran = "yes" if getattr(maps, "prior_source", "") == "network" else "no"
    if getattr(maps, "partly_prior", "") == "network" and ran == "no":
        ran = f"where only the first reaches ({2 * args.uncovered} slices)"
    print(f"| 3 | {args.protocol} | {ran} | {'x'.join(map(str, args.shape))} | {'x'.join(f'{v:g}' for v in args.spacing)} "
          f"| {int((maps.pd > 0).sum())} of {voxels} | {args.threads} "
          f"| {times[i]:.2f} | {cpu[i]:.2f} | {100 * err['t1']:.1f} % | {100 * err['t2']:.1f} % "
          f"| {render_times[True]:.2f} | {render_times[True] - render_times[False]:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
