"""Accuracy of the physics model's quantitative maps against the simulator's truth.

    python benchmarks/bench_maps.py [--model physics] [--phantom mrilab:PATH] [--slices 24] [--held-out]
                                    [--input-te 50 --input-tr 4500] [--consistency W]
                                    [--subject SEED [--tables T ...] [--sharpening 16] [--texture 1]
                                                   [--sharpening-min 1] [--csf-expansion 1]
                                                   [--sulcus-width 0]]
                                    [--mixtures TABLE]

The phantom's slices are simulated at the input acquisition as the protocol does (8-bit,
each image normalized to its maximum, padded square, 256 px), the model infers PD, T1 and
T2 from them, and the maps are compared voxel by voxel with the phantom's own maps inside
the brain mask (grey and white matter and CSF), on the model's working grid (truth taken
by nearest neighbour, so no partial-volume mixtures are scored). A model that reads images
on their own grid gets the phantom's slices as simulated, unpadded and unresized, and its
maps are compared with the phantom's voxel for voxel, partial-volume voxels included. T1 and T2 errors are
relative, |pred - true| / true. PD is only known up to a global scale (every image is
normalized to its own maximum), so the predicted PD is first scaled by the median of
true / predicted over the brain. Prints a Markdown table: median and 90th percentile of
the relative error, overall and per tissue (voxels grouped by their true T2; CSF also
split into voxels with CSF all round and the rest). ``--subject SEED`` scores a random
subject of the phantom instead (deformed, tissue table drawn from ``--tables``, sharpened),
as the training stream draws them: the model's maps where it has no excuse of a new head.
``--mixtures TABLE`` prints, in place of the table, the signed errors on partial-volume
voxels of grey matter and CSF (no white matter), by their CSF fraction, solved from the
true maps with that tissue table's values (exact where the phantom mixes PD, T1 and T2
linearly, as MRiLab's phantom and the MNI152 heads do).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PHANTOM = "mrilab:" + str(ROOT.parent / "shared/phantoms/mrilab_brain/mrilab_brain_standard.npz")


def _nearest(maps: np.ndarray, size: int) -> np.ndarray:
    """(n, h, w) -> (n, size, size) by nearest neighbour (square inputs)."""
    h = maps.shape[-1]
    index = np.minimum((np.arange(size) + 0.5) * h / size, h - 1).astype(int)
    return maps[:, index][:, :, index]


def truth_and_prediction(model: str, phantom_spec: str, slices: int, te_in: float, tr_in: float,
                         held_out: bool = False, consistency: float | None = None,
                         subject: dict | None = None):
    """The phantom's maps and the model's, on the model's grid, with the brain mask;
    ``subject`` (``random_subject`` keywords with ``seed``) scores a random subject of it."""
    from napari_mr_reparam.inference import Reparameterizer
    from napari_mr_reparam.phantoms import load_phantom
    from napari_mr_reparam.simulate import Acquisition, choose_slices, pad_to_square, simulate_images

    phantom = load_phantom(phantom_spec)
    if subject is not None:
        from napari_mr_reparam.phantoms.random_subject import random_subject

        phantom = random_subject(phantom, **subject)
    index = choose_slices(phantom, slices)
    if held_out:  # only the test slices of the protocol's slices split
        from napari_mr_reparam.datasets import build_protocol_dataset

        ds = build_protocol_dataset(phantom, seed=0, slices=slices)
        index = ds.slice_index[~ds.train_slices[0]]
    engine = Reparameterizer(model, device="cpu", consistency=consistency)
    acq = Acquisition(te_in, tr_in)
    if engine.native_input and max(phantom.shape[1:]) <= engine.net.work_size:
        # the model reads the images on the phantom's own grid: maps there, truth exact
        images = simulate_images(phantom, acq, index, None) / 255.0
        maps = engine.compute_maps(images.astype(np.float32), acq)
        truth = {k: getattr(phantom, k)[index] for k in ("pd", "t1", "t2")}
        mask = phantom.mask()[index] & (truth["t1"] > 0)
        return truth, {"pd": maps.pd, "t1": maps.t1, "t2": maps.t2}, mask
    images = simulate_images(phantom, acq, index, 256, pad_square=True) / 255.0
    maps = engine.compute_maps(images.astype(np.float32), acq)
    size = maps.pd.shape[-1]
    truth = {k: _nearest(pad_to_square(getattr(phantom, k)[index]), size) for k in ("pd", "t1", "t2")}
    mask = _nearest(pad_to_square(phantom.mask()[index].astype(np.uint8)), size) > 0
    mask &= truth["t1"] > 0
    pred = {"pd": maps.pd, "t1": maps.t1, "t2": maps.t2}
    return truth, pred, mask


def relative_errors(truth: dict, pred: dict, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Per-voxel relative errors in the mask; PD after the best global scale."""
    pd_scale = float(np.median(truth["pd"][mask] / np.maximum(pred["pd"][mask], 1e-6)))
    out = {}
    for key in ("pd", "t1", "t2"):
        p = pred[key][mask] * (pd_scale if key == "pd" else 1.0)
        t = truth[key][mask]
        out[key] = np.abs(p - t) / np.maximum(t, 1e-6)
    return out


def tissue_regions(t2: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Brain voxels (``mask``) grouped by true T2 (ms): white matter, grey matter, CSF."""
    return {"all brain": mask, "T2 < 90 ms (WM)": mask & (t2 < 90),
            "T2 90-500 ms (GM)": mask & (t2 >= 90) & (t2 < 500), "T2 >= 500 ms (CSF)": mask & (t2 >= 500)}


def tissue_groups(truth: dict, mask: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`tissue_regions` as selections of the brain voxels ``truth[...][mask]``, with
    CSF also split into voxels whose eight in-plane neighbours are all CSF (ventricles, wide
    sulci) and the rest (borders and one-voxel sulci)."""
    from scipy import ndimage

    regions = tissue_regions(truth["t2"], mask)
    csf = regions["T2 >= 500 ms (CSF)"]
    inside = np.stack([ndimage.binary_erosion(c, np.ones((3, 3), bool)) for c in csf])
    regions["CSF with CSF all round"] = inside
    regions["CSF at a border or in a thin sulcus"] = csf & ~inside
    return {k: v[mask] for k, v in regions.items()}


#: The brain's tissues, in the order :func:`brain_fractions` returns them.
BRAIN_TISSUES = ("white_matter", "grey_matter", "csf")


def brain_fractions(truth: dict, mask: np.ndarray, table) -> np.ndarray:
    """White matter, grey matter and CSF fractions (3, n) of the brain voxels, solved from
    their true PD, T1 and T2 as linear mixtures of ``table``'s values."""
    values = np.array([[table[n].pd, table[n].t1 / 1000, table[n].t2 / 1000] for n in BRAIN_TISSUES]).T
    voxels = np.stack([truth["pd"][mask], truth["t1"][mask] / 1000, truth["t2"][mask] / 1000])
    return np.linalg.solve(values, voxels)


def mixture_table(truth: dict, pred: dict, mask: np.ndarray, table) -> str:
    """Median signed log error (pred / true; PD after its median ratio) of grey-matter and
    CSF voxels binned by CSF fraction: where a model mistakes mixtures for pure tissue."""
    wm, _, csf = brain_fractions(truth, mask, table)
    logs = {k: np.log(np.maximum(pred[k][mask], 1e-6) / np.maximum(truth[k][mask], 1e-6))
            for k in ("pd", "t1", "t2")}
    logs["pd"] -= np.median(logs["pd"])
    lines = ["| CSF fraction | n | PD log error | T1 log error | T2 log error |", "|---|---|---|---|---|"]
    edges = [0.0, 0.02, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.98, 1.01]
    for lo, hi in zip(edges[:-1], edges[1:]):
        chosen = (wm < 0.02) & (csf >= lo) & (csf < hi)
        if chosen.sum() >= 20:
            cells = " | ".join(f"{np.median(logs[k][chosen]):+.2f}" for k in ("pd", "t1", "t2"))
            lines.append(f"| {lo:.2f}-{min(hi, 1.0):.2f} | {int(chosen.sum())} | {cells} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="physics")
    parser.add_argument("--phantom", default=DEFAULT_PHANTOM)
    parser.add_argument("--slices", type=int, default=24)
    parser.add_argument("--held-out", action="store_true",
                        help="score only the test slices of the protocol's slices split")
    parser.add_argument("--input-te", type=float, default=50.0)
    parser.add_argument("--input-tr", type=float, default=4500.0)
    parser.add_argument("--consistency", type=float, help="data-consistency weight (default the engine's)")
    parser.add_argument("--subject", type=int, metavar="SEED",
                        help="score a random subject of the phantom, as the training stream draws them")
    parser.add_argument("--tables", nargs="+", help="with --subject: tissue tables to draw from")
    parser.add_argument("--sharpening", type=float, default=16.0, help="with --subject (default 16)")
    parser.add_argument("--texture", type=float, default=1.0, help="with --subject (default 1)")
    parser.add_argument("--sharpening-min", type=float, default=1.0, help="with --subject (default 1)")
    parser.add_argument("--csf-expansion", type=float, default=1.0, help="with --subject (default 1)")
    parser.add_argument("--sulcus-width", type=float, default=0.0, help="with --subject (mm, default 0)")
    parser.add_argument("--mixtures", metavar="TABLE",
                        help="print the errors on grey-matter/CSF mixtures by CSF fraction, "
                             "fractions solved with this tissue table (e.g. mrilab)")
    args = parser.parse_args(argv)
    subject = None
    if args.subject is not None:
        subject = {"rng": args.subject, "tables": args.tables, "sharpening": args.sharpening,
                   "texture": args.texture, "sharpening_min": args.sharpening_min,
                   "csf_expansion": args.csf_expansion, "sulcus_width": args.sulcus_width}
    try:
        from napari_mr_reparam.tissues import get_table

        mixtures = get_table(args.mixtures) if args.mixtures else None
        truth, pred, mask = truth_and_prediction(args.model, args.phantom, args.slices, args.input_te,
                                                 args.input_tr, args.held_out, args.consistency, subject)
    except (ValueError, FileNotFoundError) as exc:  # unknown model, table or phantom file
        parser.error(str(exc))
    if mixtures is not None:
        print(mixture_table(truth, pred, mask, mixtures))
        return 0
    errors = relative_errors(truth, pred, mask)
    print(f"{args.model} maps from TE {args.input_te:g} / TR {args.input_tr:g} ms images of "
          f"{args.phantom.split('/')[-1]}, {len(mask)} slices{' (held out)' if args.held_out else ''}, "
          f"{int(mask.sum())} brain voxels, data consistency "
          f"{'default' if args.consistency is None else f'{args.consistency:g}'}\n")
    print("| voxels | n | PD median | PD p90 | T1 median | T1 p90 | T2 median | T2 p90 |")
    print("|---|---|---|---|---|---|---|---|")
    for label, group in tissue_groups(truth, mask).items():
        if not group.any():
            continue
        cells = []
        for key in ("pd", "t1", "t2"):
            e = errors[key][group] * 100
            cells += [f"{np.median(e):.1f} %", f"{np.percentile(e, 90):.1f} %"]
        print(f"| {label} | {int(group.sum())} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
