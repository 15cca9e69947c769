"""Joint maps of a head whose fine structure is a real scan's: what the inputs' smoothing keeps.

    python benchmarks/bench_joint_detail.py [--noise 0.005 0.01 0.02] [--radius R ...] [--range S ...]

The simulated brains of ``bench_joint_brains.py`` are label maps: each tissue fills its
region with texture, so averaging alike neighbours is rewarded however far it reaches. Here
the anatomy is one person's real T1 scan (voxelmorph's ``test_scan.npz``, skull-stripped,
1 mm): between the mean intensities of its own segmentation's CSF, grey and white matter,
each voxel's intensity sets its mix of the two neighbouring tissues, so the cortical ribbon,
thin sulci and the scan's own variation within a tissue are all in the head. Each voxel
renders as the sum of its tissues' signals (3 T-like values: CSF T1 4000 / T2 1500 ms, grey
matter 1350 / 95, white matter 800 / 75; PD 1.0 / 0.8 / 0.7). Three spin echoes (TE/TR 15/500,
15/3000, 100/3000 ms) with Rician noise of the given share of each image's maximum are
fitted by :func:`napari_mr_reparam.joint_fit.fit_maps` with the inputs smoothed over each
radius and range (:func:`napari_mr_reparam.edge_smoothing.smooth_inputs`), and twelve spin-echo
targets (TE 20-200 x TR 500-6000 ms) are scored per slice (0-255 at each slice's maximum),
mean over 16 slices and the targets. About 20 s per row on 2 CPU cores; needs ``../shared/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, psnr_per_slice, render, rician, use_joint_smoothing  # noqa: E402

SCAN = ROOT.parent / "shared" / "anatomy" / "voxelmorph" / "test_scan.npz"
#: FreeSurfer labels of the tissues whose mean intensities anchor the mix.
LABELS = {"csf": (4, 43), "gm": (3, 42), "wm": (2, 41)}
#: PD, T1 (ms), T2 (ms) of each tissue.
TISSUES = {"csf": (1.0, 4000.0, 1500.0), "gm": (0.8, 1350.0, 95.0), "wm": (0.7, 800.0, 75.0)}
INPUTS = ((15.0, 500.0), (15.0, 3000.0), (100.0, 3000.0))
TARGETS = tuple((te, tr) for te in (20.0, 50.0, 100.0, 200.0) for tr in (500.0, 1500.0, 6000.0))


def fractions(scan: Path = SCAN, slices: int = 16) -> dict:
    """Each tissue's share of each voxel of ``slices`` planes through the middle of the scan."""
    from napari_mr_reparam.phantoms.freesurfer import read_npz_array

    vol = read_npz_array(scan, "vol").astype(np.float32)
    seg = read_npz_array(scan, "seg")
    pick = np.linspace(vol.shape[1] * 0.35, vol.shape[1] * 0.65, slices).astype(int)
    v, brain = np.moveaxis(vol[:, pick], 1, 0), np.moveaxis(seg[:, pick], 1, 0) > 0
    m = {k: float(vol[np.isin(seg, labels)].mean()) for k, labels in LABELS.items()}
    wm = np.clip((v - m["gm"]) / (m["wm"] - m["gm"]), 0, 1)
    gm = np.where(v >= m["gm"], 1 - wm, np.clip((v - m["csf"]) / (m["gm"] - m["csf"]), 0, 1))
    csf = np.where(v >= m["gm"], 0, 1 - gm)
    return {"csf": csf * brain, "gm": gm * brain, "wm": wm * brain}


def image(share: dict, te: float, tr: float) -> np.ndarray:
    return sum(share[k] * render("spin_echo", pd, t1, t2, te, tr, None) for k, (pd, t1, t2) in TISSUES.items())


def score(share: dict, noise: float, radius: float, strength: float, seed: int = 0) -> float:
    from napari_mr_reparam import joint_fit
    from napari_mr_reparam.fit_information import make_acquisition

    rng = np.random.default_rng(seed)
    inputs = []
    for te, tr in INPUTS:
        clean = image(share, te, tr)
        inputs.append(rician(clean, noise * float(clean.max()), rng))
    use_joint_smoothing(radius, strength)
    maps = joint_fit.fit_maps(inputs, [make_acquisition("spin_echo", te, tr) for te, tr in INPUTS])
    return float(np.mean([psnr_per_slice(maps.render(te, tr), image(share, te, tr)) for te, tr in TARGETS]))


def main(argv=None) -> int:
    from napari_mr_reparam.edge_smoothing import SMOOTH_RADIUS, SMOOTH_RANGE

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noise", type=float, nargs="+", default=[0.005, 0.01, 0.02])
    parser.add_argument("--radius", type=float, nargs="+", default=[2.9, SMOOTH_RADIUS])
    parser.add_argument("--range", type=float, nargs="+", default=[SMOOTH_RANGE])
    args = parser.parse_args(argv)
    if not SCAN.is_file():
        print(f"skipped: {SCAN} not found (needs ../shared/)")
        return 0
    share = fractions()
    print("| noise | " + " | ".join(f"radius {r:g}, range {s:g}" for r in args.radius for s in args.range) + " |")
    print("|---|" + "---|" * (len(args.radius) * len(args.range)))
    for noise in args.noise:
        cells = [f"{score(share, noise, r, s):.2f} dB" for r in args.radius for s in args.range]
        print(f"| {100 * noise:g} % | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
