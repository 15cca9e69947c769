"""Sphere T2 of the real multi-echo trains under variants of the echo-train model.

    python benchmarks/bench_echo_train_models.py [--data ../shared/real_scans/hazen_relaxometry]

For the four multi-echo spin-echo series of the hazen relaxometry set (see
``bench_real_scanners.py``: the same loading, sphere finding and measurable spheres), each
voxel of a sphere's 2-px disc is fitted with :func:`napari_mr_reparam.epg.fit_train` and
the median T2 per sphere is compared with the reference. Variants, each applied the same
way at every site:

- ``default``: all echoes, slice profile a Hann-windowed sinc of time-bandwidth 2, the
  stimulated echoes' storage at T1 1000 ms (what the joint fit uses);
- ``T1 300 / 500 / 3000 ms``: another storage T1;
- ``TBW 0 / 4``: one flip angle across the slice, or a sharper profile;
- ``from echo 2``: echo 1 left out of the fit;
- ``refocusing 1.5x``: refocusing pulses whose slice is 1.5 times the excitation's (the
  refocusing profile read at 1/1.5 of each position); its echoes are simulated here with
  ``torchsim`` as :func:`napari_mr_reparam.epg.train_dictionary` does.

Prints per series the median and worst sphere error, the signed errors, the median fitted
flip-angle scale and the median relative misfit of the echoes (how well the variant
describes the data, independent of the reference).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_real_scanners as real  # noqa: E402


def _series(data: Path):
    params = real.reference(data)
    out = []
    for kind, plate, folder in real.series_list(data):
        if kind != "T2":
            continue
        images, acqs, field, spacing, _ = real.load(folder)
        template = folder.parents[2] / "templates" / "Plate4_T2"
        centres, factor = real.sphere_centres(images, spacing, template, params[plate]["sphere_centres_row_col"])
        ref = np.asarray(params[plate]["t2"]["relax_times"][field], float)
        tes = np.array([a.te for a in acqs])
        measurable = np.flatnonzero((ref >= tes[1]) & (ref <= tes[-1]))
        discs = [real._disc(images[0].shape, centres[s], real.DISC_PX * factor) for s in measurable]
        signals = [np.stack([im[d] for im in images]).astype(np.float64) for d in discs]
        out.append((f"{folder.parent.name}/{plate}", tes, ref[measurable], signals))
    return out


def _wider_refocusing_table(n_echoes, spacing, ratio, t1_ms):
    """Slice-averaged echoes (T2 grid, scale grid, echoes) with refocusing ``ratio`` times wider."""
    import torchsim

    from napari_mr_reparam import epg

    scales, t2 = epg.scale_grid(), epg.t2_grid()
    profile = epg.slice_profile()
    refocus = np.interp(epg.PROFILE_POSITIONS / ratio, epg.PROFILE_POSITIONS, profile)
    table = np.zeros((t2.size, scales.size, n_echoes))
    for j, s in enumerate(scales):
        for p_exc, p_ref in zip(profile, refocus):
            echoes = torchsim.fse_sim(flip=np.full(n_echoes, 180.0 * s * p_ref), ESP=float(spacing), T1=t1_ms,
                                      T2=t2, exc_flip=90.0 * s * p_exc, states=max(n_echoes, 10))
            echoes = echoes.detach().cpu().numpy() if hasattr(echoes, "detach") else np.asarray(echoes)
            table[:, j] += np.real(echoes) / profile.size
    return table


def _fit(signals, numbers, spacing, variant):
    from napari_mr_reparam import epg

    if variant.get("ratio"):
        table = _wider_refocusing_table(int(numbers.max()), spacing, variant["ratio"], epg.T1_MS)
        atoms = table[:, :, numbers - 1]
        unit = atoms / np.linalg.norm(atoms, axis=2, keepdims=True).clip(1e-30)
        score = np.einsum("tsn,nv->vts", unit, signals)
        flat = score.reshape(score.shape[0], -1).argmax(1)
        i, j = np.unravel_index(flat, atoms.shape[:2])
        best = score.reshape(score.shape[0], -1).max(1)
        misfit = np.sqrt(np.clip((signals**2).sum(0) - best**2, 0, None)) / np.linalg.norm(signals, axis=0)
        return epg.t2_grid()[i], epg.scale_grid()[j], misfit
    first = variant.get("first", 0)
    fit = epg.fit_train(signals[first:], numbers[first:], spacing, t1_ms=variant.get("t1", epg.T1_MS),
                        profile_tbw=variant.get("tbw", epg.PROFILE_TBW))
    return fit["t2"], fit["scale"], fit["residual"]


VARIANTS = {
    "default": {},
    "T1 300 ms": {"t1": 300.0},
    "T1 500 ms": {"t1": 500.0},
    "T1 3000 ms": {"t1": 3000.0},
    "TBW 0": {"tbw": 0.0},
    "TBW 4": {"tbw": 4.0},
    "from echo 2": {"first": 1},
    "refocusing 1.5x": {"ratio": 1.5},
}


def main(argv=None) -> int:
    from napari_mr_reparam import epg

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=real.DEFAULT_DATA)
    args = parser.parse_args(argv)
    if not (args.data / "relaxometry_params.py").is_file():
        print(f"error: no relaxometry data at {args.data}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(1)
    series = _series(args.data)
    print("| variant | series | median error | worst | signed error per sphere (%) | flip-angle scale | echo misfit |")
    print("|---|---|---|---|---|---|---|")
    for name, variant in VARIANTS.items():
        for label, tes, ref, signals in series:
            spacing, numbers = epg.echo_numbers(tes)
            t2s, scales, misfits = [], [], []
            for s in signals:
                t2, scale, misfit = _fit(s, numbers, spacing, variant)
                t2s.append(np.median(t2))
                scales.append(np.median(scale))
                misfits.append(np.median(misfit))
            err = np.array(t2s) / ref - 1
            signed = " ".join(f"{100 * e:+.0f}" for e in err)
            print(f"| {name} | {label} | {100 * np.median(np.abs(err)):.1f} % | {100 * np.max(np.abs(err)):.1f} % "
                  f"| {signed} | {np.median(scales):.2f} | {100 * np.median(misfits):.2f} % |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
