"""Peak memory of the command line's jobs, against the estimate the program warns with.

    python benchmarks/bench_memory.py [--shape 180 256 256] [--out DIR]

The MNI152 head (offline phantom), resampled by nearest neighbour to ``--shape``, is written
as three NIfTI inputs with BIDS sidecars (spin echoes: T1w TE 15 / TR 500, T2w TE 100 / TR
4000, PDw TE 15 / TR 4000 ms). Each job runs as its own process of the command line
(``napari-mr-reparam``), as a user runs it; its resident memory is sampled every 20 ms and
the peak printed beside :func:`napari_mr_reparam.memory.need_bytes`, the estimate behind
the warning a job gets where the system has less available. Jobs: one input predicted at
one target and at three presets (physics), and the maps of two and of three inputs (the
joint fit, with the network). The program's own memory before it reads an image (Python,
torch and the package imported) is measured the same way.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

INPUTS = {"t1w": (15, 500), "t2w": (100, 4000), "pdw": (15, 4000)}


def write_inputs(shape, folder: Path) -> list[Path]:
    """The head at ``shape`` (z, y, x), one NIfTI and sidecar per acquisition of :data:`INPUTS`."""
    import nibabel as nib

    from napari_mr_reparam import physics
    from napari_mr_reparam.phantoms import load_phantom

    p = load_phantom("mni152")
    index = [np.linspace(0, n - 1, m).round().astype(int) for n, m in zip(p.pd.shape, shape)]
    pick = np.ix_(*index)
    pd, t1, t2 = p.pd[pick], p.t1[pick], p.t2[pick]
    paths = []
    for name, (te, tr) in INPUTS.items():
        path = folder / f"{name}.nii.gz"
        image = np.asarray(physics.spin_echo(pd, t1, t2, te, tr), np.float32) * 1000
        nib.save(nib.Nifti1Image(image.transpose(2, 1, 0), np.eye(4)), path)
        (folder / f"{name}.json").write_text(json.dumps({"EchoTime": te / 1000, "RepetitionTime": tr / 1000}))
        paths.append(path)
    return paths


def peak_rss(command: list[str]) -> tuple[float, float, int]:
    """(peak resident memory in bytes, seconds, exit status) of ``command``, sampled every 20 ms."""
    import psutil

    start = time.perf_counter()
    process = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while process.poll() is None:
        try:
            peak = max(peak, process.memory_info().rss)
        except psutil.Error:
            break
        time.sleep(0.02)
    err = process.stderr.read().decode(errors="replace")
    if process.returncode:
        print(err, file=sys.stderr)
    return float(peak), time.perf_counter() - start, process.returncode


def main(argv=None) -> int:
    from napari_mr_reparam.memory import BASE_BYTES, need_bytes

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(180, 256, 256), help="z y x of the inputs")
    parser.add_argument("--out", help="folder for the inputs and outputs (default: a temporary one)")
    args = parser.parse_args(argv)
    folder = Path(args.out or tempfile.mkdtemp(prefix="bench_memory_"))
    folder.mkdir(parents=True, exist_ok=True)
    t1w, t2w, pdw = (str(p) for p in write_inputs(args.shape, folder))
    voxels = int(np.prod(args.shape))
    cli = [sys.executable, "-m", "napari_mr_reparam.cli"]
    jobs = [
        ("the program, imported", [sys.executable, "-c", "import torch, napari_mr_reparam.cli"], None),
        ("one input -> one target (physics)", [*cli, "predict", t1w, "-o", str(folder / "one.nii.gz"),
                                              "--te", "100", "--tr", "4000", "-q", "--overwrite"], False),
        ("one input -> three presets (physics)", [*cli, "predict", t1w, "-o", str(folder / "presets"),
                                                 "--preset", "T2w", "PDw", "FLAIR", "-q", "--overwrite"], False),
        ("maps of two inputs (T1w + T2w)", [*cli, "maps", t1w, t2w, "-o", str(folder / "maps2"),
                                            "--overwrite"], True),
        ("maps of three inputs", [*cli, "maps", t1w, t2w, pdw, "-o", str(folder / "maps3"), "--overwrite"], True),
    ]
    shape = "x".join(str(v) for v in args.shape[::-1])
    print(f"inputs {shape} ({voxels / 1e6:.1f} M voxels) in {folder}\n")
    print("| job | peak memory (GB) | per voxel beyond the program (B) | the warning's estimate (GB) | time (s) |")
    print("|---|---|---|---|---|")
    for name, command, joint in jobs:
        peak, seconds, status = peak_rss(command)
        if status:
            print(f"| {name} | failed (status {status}) | | | |")
            continue
        estimate = f"{BASE_BYTES / 1e9:.2f}" if joint is None else f"{need_bytes(voxels, joint) / 1e9:.2f}"
        per_voxel = "-" if joint is None else f"{(peak - BASE_BYTES) / voxels:.0f}"
        print(f"| {name} | {peak / 1e9:.2f} | {per_voxel} | {estimate} | {seconds:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
