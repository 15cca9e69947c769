"""Does one tissue read alike from slice to slice of a real 3-D scan?

    python benchmarks/bench_slice_consistency.py [--model physics] [--scan PATH]

One person's real skull-stripped T1-weighted scan (voxelmorph's ``test_scan.npz``: 1 mm,
FreeSurfer's conformed space, its FreeSurfer segmentation beside it; the external
benchmark's ``real_t1`` group) is given whole, every axial slice, to the engine as users
give a volume (read as MPRAGE and as a T1-weighted spin echo), and rendered at the PDw,
T2w and FLAIR presets. Cerebral white matter (FreeSurfer labels 2 and 41) is one tissue,
and the input shows it at one level from the bottom of the cerebrum to its top; a
prediction should too (its receive field is the input's). Per slice with at least 200 WM
voxels, the median of the prediction over WM; reported: the median and the largest jump
between adjacent slices over the median level ("jump": striping seen in a sagittal or
coronal view), and
the bottom quarter's median level over the top quarter's ("bottom / top": a drift from the
skull base to the vertex), beside the input's own. The GM/WM and CSF/GM ratios (medians
over the volume; CSF the lateral ventricles) show that the contrast is kept. No ground
truth: the check is that the same tissue reads alike, which the physics says it must.
About 2 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCAN = ROOT.parent / "shared" / "anatomy" / "voxelmorph" / "test_scan.npz"
#: FreeSurfer labels of the tissues compared: cerebral WM, cortex, lateral ventricles.
LABELS = {"WM": (2, 41), "GM": (3, 42), "CSF": (4, 43)}
READINGS = ("MPRAGE", "T1w")
TARGETS = ("PDw", "T2w", "FLAIR")
#: Fewest WM voxels for a slice to count.
MIN_VOXELS = 200


def wm_profile(volume: np.ndarray, wm: np.ndarray) -> np.ndarray:
    """The median of ``volume`` over WM in each slice that has :data:`MIN_VOXELS` of it."""
    return np.array([np.median(v[m]) for v, m in zip(volume, wm) if m.sum() >= MIN_VOXELS])


def consistency(profile: np.ndarray) -> tuple[float, float, float]:
    """(median and largest adjacent jump over the median level, bottom quarter over top quarter)."""
    quarter = max(1, len(profile) // 4)
    jumps = np.abs(np.diff(profile)) / np.median(profile)
    return (float(np.median(jumps)), float(jumps.max()),
            float(np.median(profile[:quarter]) / np.median(profile[-quarter:])))


def run(model: str, path: Path) -> list[str]:
    from napari_mr_reparam.inference import Reparameterizer
    from napari_mr_reparam.phantoms.freesurfer import read_npz_array
    from napari_mr_reparam.presets import get_input_preset, get_preset

    scan = read_npz_array(path, "vol").astype(np.float32)
    labels = read_npz_array(path, "seg")
    masks = {k: np.isin(labels, v) for k, v in LABELS.items()}
    jump, worst, drift = consistency(wm_profile(scan, masks["WM"]))
    rows = [f"| input (the scan itself) | - | {jump:.3f} | {worst:.3f} | {drift:.2f} | - | - |"]
    engine = Reparameterizer(model)
    for reading in READINGS:
        maps = engine.compute_maps(scan, get_input_preset(reading).acquisition())
        for target in TARGETS:
            out = engine.render(maps, get_preset(target).acquisition())
            jump, worst, drift = consistency(wm_profile(out, masks["WM"]))
            wm, gm, csf = (float(np.median(out[masks[k]])) for k in ("WM", "GM", "CSF"))
            rows.append(f"| {model}, read as {reading} | {target} | {jump:.3f} | {worst:.3f} | {drift:.2f} | "
                        f"{gm / wm:.2f} | {csf / gm:.2f} |")
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="physics", help="a physics model (bundled name or weights file)")
    parser.add_argument("--scan", type=Path, default=SCAN, help="the real scan (voxelmorph's test_scan.npz)")
    args = parser.parse_args()
    if not args.scan.is_file():
        parser.error(f"{args.scan} not found (the shared data beside the repository)")
    rows = run(args.model, args.scan)
    print("\n| model | target | WM jump, slice to slice (median) | largest jump | WM bottom / top quarter | "
          "GM/WM | CSF/GM |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
