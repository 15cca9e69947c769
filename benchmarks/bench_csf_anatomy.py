"""How the CSF of randomized MNI152 heads compares with the MRiLab phantom's.

    python benchmarks/bench_csf_anatomy.py [--phantom mrilab:PATH] [--subjects 4] [--fine-brain]

For the phantom and ``--subjects`` heads drawn with the cross-phantom recipe's anatomy
(training/physics_mni152.toml; MRiLab's tissue table, no value jitter, so a voxel's CSF
share can be read from its T2 as the phantom's can: (T2 - 100) / 2100 ms between grey
matter and CSF), over the 24 protocol slices' brain voxels: the share holding CSF (> 2 %),
the share of pure CSF (> 98 %), the share of CSF-holding voxels in thin structures (a 5x5
in-plane neighbourhood under 35 % CSF on average: sulci rather than ventricles), and
the histogram of CSF shares among CSF-holding voxels. ``--fine-brain`` draws the heads
sharpened on the template's 1 mm grid.
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import DEFAULT_PHANTOM, ROOT

BINS = (0.02, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.98, 1.01)


def csf_statistics(phantom) -> dict:
    """CSF shares of a phantom's brain over its protocol slices (module docstring)."""
    from scipy import ndimage

    from napari_mr_reparam.simulate import choose_slices

    idx = choose_slices(phantom, 24)
    t2, brain = phantom.t2[idx], phantom.mask()[idx]
    share = np.where(t2 < 100.0, 0.0, np.clip((t2 - 100.0) / 2100.0, 0.0, 1.0))
    holding = (share > 0.02) & brain
    local = ndimage.uniform_filter(share, size=(1, 5, 5))
    n = max(1, int(holding.sum()))
    return {"holding": holding.sum() / brain.sum(), "pure": ((share > 0.98) & brain).sum() / brain.sum(),
            "thin": (holding & (local < 0.35)).sum() / n,
            "histogram": np.histogram(share[holding], bins=BINS)[0] / n}


def main(argv=None) -> int:
    from napari_mr_reparam.phantoms import load_phantom, random_subject
    from napari_mr_reparam.training.config import load_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phantom", default=DEFAULT_PHANTOM)
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--fine-brain", action="store_true")
    args = parser.parse_args(argv)
    options = load_config(ROOT / "training" / "physics_mni152.toml").stream_options().subject
    anatomy = {k: getattr(options, k) for k in ("sharpening", "texture", "sharpening_min", "csf_expansion")}
    heads = [("MRiLab phantom", load_phantom(args.phantom))]
    base = load_phantom("mni152")
    heads += [(f"MNI152 head {seed}", random_subject(base, seed, tables=["mrilab"], value_jitter=0.0,
                                                      fine_brain=args.fine_brain, **anatomy))
              for seed in range(args.subjects)]
    bins = " | ".join(f"{lo:g}-{min(hi, 1):g}" for lo, hi in zip(BINS[:-1], BINS[1:]))
    print(f"| head | holding CSF | pure CSF | thin / holding | {bins} |")
    print("|---" * (4 + len(BINS) - 1) + "|")
    for name, head in heads:
        st = csf_statistics(head)
        print(f"| {name} | {st['holding']:.3f} | {st['pure']:.3f} | {st['thin']:.3f} | "
              + " | ".join(f"{v:.2f}" for v in st["histogram"]) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
