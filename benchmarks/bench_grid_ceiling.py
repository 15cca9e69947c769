"""How well can *perfect* maps do, depending on the grid they are rendered on?

    python benchmarks/bench_grid_ceiling.py [--phantom mrilab:PATH] [--images 300]

The protocol's images are rendered on the phantom's own grid, normalized, quantized to
8 bits and only then resized to 256x256. This script takes the phantom's *true* PD, T1
and T2 maps and renders the test targets of the paper split three ways: on the phantom's
own grid (then resized, as the simulator does), from the maps resized to 256 px, and from
those area-averaged to 128 px (then resized back). The PSNR against the targets is the
ceiling a quantitative-map model can reach on that grid, whatever it learns: resizing maps
mixes tissues non-linearly (a resized T2 between fat's and CSF's is no tissue's), which
a single spin-echo equation per pixel cannot undo. Prints a Markdown table.
"""

from __future__ import annotations

import argparse

import numpy as np

from _common import DEFAULT_PHANTOM
GRIDS = ("own grid", "256 px", "128 px")


def render_true_maps(phantom, slice_index: int, te: float, tr: float, grid: str) -> np.ndarray:
    """A 256x256 image in [0, 1] rendered from the phantom's maps on ``grid``."""
    import torch
    import torch.nn.functional as F

    from napari_mr_reparam import physics
    from napari_mr_reparam.simulate import normalize_to_max, resize_slices

    maps = {k: getattr(phantom, k)[slice_index:slice_index + 1] for k in ("pd", "t1", "t2")}
    if grid != "own grid":
        maps = {k: resize_slices(v, 256) for k, v in maps.items()}
    if grid == "128 px":
        maps = {k: F.interpolate(torch.from_numpy(v)[:, None], size=(128, 128), mode="area")[:, 0].numpy()
                for k, v in maps.items()}
    signal = np.asarray(physics.render("spin_echo", maps["pd"], maps["t1"], maps["t2"], te, tr), np.float32)
    return np.clip(resize_slices(normalize_to_max(signal), 256), 0.0, 1.0)[0]


def main(argv=None) -> int:
    from napari_mr_reparam import metrics
    from napari_mr_reparam.datasets import build_protocol_dataset
    from napari_mr_reparam.phantoms import load_phantom

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phantom", default=DEFAULT_PHANTOM)
    parser.add_argument("--images", type=int, default=300, help="first N test images of the paper split")
    args = parser.parse_args(argv)
    phantom = load_phantom(args.phantom)
    ds = build_protocol_dataset(phantom, seed=0)
    pairs, slices = (a[:args.images] for a in ds.samples("paper", "test"))
    scores = {g: [] for g in GRIDS}
    for p, s in zip(pairs, slices):
        target = metrics.to_255(ds.images_at(p, s))
        for grid in GRIDS:
            image = render_true_maps(phantom, int(ds.slice_index[s]), float(ds.te_ms[p]), float(ds.tr_ms[p]), grid)
            scores[grid].append(metrics.psnr(metrics.to_255(image), target))
    print(f"true maps of {args.phantom.split('/')[-1]} rendered on each grid, first {len(pairs)} "
          "test images of the paper split\n")
    print("| maps rendered on | PSNR mean (dB) | PSNR min (dB) |")
    print("|---|---|---|")
    for grid in GRIDS:
        print(f"| {grid} | {np.mean(scores[grid]):.2f} | {np.min(scores[grid]):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
