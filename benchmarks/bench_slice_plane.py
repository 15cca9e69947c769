"""The single-image network reading a volume's slices in another plane: axial, sagittal, coronal.

    python benchmarks/bench_slice_plane.py [--subjects 3] [--model physics]

The physics network was trained on axial slices (tilted by at most 10 degrees). A 3-D scan
acquired sagittally (most 3-D T1-weighted protocols) or coronally arrives from DICOM as a
stack of those slices unless it is laid out again; the DICOM reader lays out such volumes
as axial slices (`napari_mr_reparam.dicom`, 3-D or near-isotropic series), as NIfTI files
always are. This benchmark shows what that is worth: each held-out subject of the external
benchmark (``bench_external``'s label maps, its drawn tissue table, one voxel one tissue, the
whole head on its 1 mm grid) is rendered at three inputs (T1w spin echo TE 15 / TR 500, T2w
TE 100 / TR 4000, MPRAGE TE 3 / TR 2300 / TI 900 / flip 9) and given to the network as axial,
sagittal and coronal slices; its maps, brought back to the axial stack, render the
external benchmark's 12 held-out spin-echo targets, scored as PSNR per axial slice (0-255,
each slice at its maximum) over the middle half of the head's slices, mean over targets.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

INPUTS = [("T1w SE", "spin_echo", 15, 500, None, None), ("T2w SE", "spin_echo", 100, 4000, None, None),
          ("MPRAGE", "mprage", 3, 2300, 900, 9)]
#: Each plane: the stack handed to the network from the axial stack (z, y, x), and back.
PLANES = {
    "axial": (lambda a: a, lambda a: a),
    "sagittal": (lambda a: np.ascontiguousarray(a.transpose(2, 0, 1)[:, ::-1]), lambda a: a[:, ::-1].transpose(1, 2, 0)),
    "coronal": (lambda a: np.ascontiguousarray(a.transpose(1, 0, 2)[:, ::-1]), lambda a: a[:, ::-1].transpose(1, 0, 2)),
}


def head(path: Path, index: int):
    import bench_external as ext
    from napari_mr_reparam.phantoms.freesurfer import read_labels

    labels, _ = read_labels(path)
    classes, names = ext.class_volume(labels)
    values = ext.draw_table(names, np.random.default_rng([ext.HELDOUT_SEED, index]))
    zs = np.flatnonzero(classes.any(axis=(1, 2)))
    classes = classes[zs[0]:zs[-1] + 1]
    return [values[k][classes].astype(np.float32) for k in range(3)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--model", default="physics")
    args = parser.parse_args(argv)
    import bench_external as ext
    from _common import psnr_per_slice

    from napari_mr_reparam import physics
    from napari_mr_reparam.acquisition import Acquisition
    from napari_mr_reparam.inference import Reparameterizer

    paths, missing = ext.subject_paths(False)
    if missing:
        print(missing)
        return 0
    engine = Reparameterizer(args.model, device="cpu")
    targets = ext.heldout_targets(12)
    print("| subject | input | " + " | ".join(PLANES) + " |")
    print("|---|---|" + "---|" * len(PLANES))
    means = {}
    for index, path in enumerate(paths[:args.subjects]):
        pd, t1, t2 = head(path, index)
        mid = slice(pd.shape[0] // 4, 3 * pd.shape[0] // 4)
        truths = [np.asarray(physics.spin_echo(pd, t1, t2, t.te, t.tr), np.float32) for t in targets]
        for name, sequence, te, tr, ti, flip in INPUTS:
            image = np.abs(np.asarray(physics.render(sequence, pd, t1, t2, te, tr, ti=ti, flip_deg=flip, t2star=t2),
                                      np.float32))
            given = Acquisition(te, tr, sequence, ti, flip)
            row = {}
            for plane, (forward, back) in PLANES.items():
                maps = engine.compute_maps(forward(image), given)
                scores = [psnr_per_slice(back(np.asarray(engine.render(maps, Acquisition(t.te, t.tr))))[mid], truth[mid])
                          for t, truth in zip(targets, truths)]
                row[plane] = float(np.mean(scores))
                means.setdefault((name, plane), []).append(row[plane])
            print(f"| {path.name.split('.')[0]} | {name} | " + " | ".join(f"{row[p]:.2f}" for p in PLANES) + " |",
                  flush=True)
    print("\nMean over subjects (dB):\n")
    print("| input | " + " | ".join(PLANES) + " |")
    print("|---|" + "---|" * len(PLANES))
    for name, *_ in INPUTS:
        print(f"| {name} | " + " | ".join(f"{np.mean(means[(name, p)]):.2f}" for p in PLANES) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
