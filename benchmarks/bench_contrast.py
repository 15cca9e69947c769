"""The contrast classifier: which input preset an image looks like, on images it never saw.

    python benchmarks/bench_contrast.py [--weights contrast] [--slices 8] [--no-psnr] [--tuning]
                                        [--json OUT]

(a) **Held-out subjects** (the external benchmark's, :mod:`bench_external`: held-out
    anatomy, tissue tables, slabs, bias and noise drawn apart from training): each of a
    subject's input images (every input kind of the benchmark, 8 slices) is classified as
    a volume (:func:`napari_mr_reparam.contrast.guess_input`), and each slice on its own.
    "Expected" is the preset whose contrast is nearest the input's acquisition
    (:func:`napari_mr_reparam.contrast.preset_label`, the training labels' rule).
(b) **Real and sample images**: the MNI152 T1 template (nilearn's, a real averaged scan),
    one person's real T1 scan (voxelmorph's ``test_scan.npz``; its intensities never enter
    training, its segmentation does as anatomy) and the demo's sample head at each of its
    acquisitions. A T1-weighted scan is right as T1w or MPRAGE.
(c) **What it buys** (without ``--no-psnr``): the bundled ``physics`` model's mean PSNR
    over the external benchmark's targets from each held-out input read at (i) the
    fallback for an input whose acquisition nothing names (TE 50 / TR 4500 ms), (ii) the
    guessed preset's acquisition, (iii) its own acquisition; and (iv) the preset the image
    is read at were it a 3-D volume of 1 mm voxels (:func:`napari_mr_reparam.contrast.read_as`:
    MPRAGE for a T1-weighted look the classifier finds MPRAGE-like enough), beside which
    inputs that reading changes. In (a), the MPRAGE probability over the T1w one of each
    T1-weighted input, on which that rule's share was chosen (``--tuning``: the training
    subjects 01-04 in place of the held-out ones).

Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_external as ext  # noqa: E402
from _common import refuse_existing  # noqa: E402

T1_WEIGHTED = ("T1w", "MPRAGE")


def _acquisition(acq: ext.Acq):
    from napari_mr_reparam.acquisition import Acquisition

    return Acquisition(acq.te, acq.tr, acq.sequence, acq.ti, acq.flip)


def preset_acq(name: str) -> ext.Acq:
    from napari_mr_reparam.presets import get_preset

    p = get_preset(name)
    return ext.Acq(float(p.te), float(p.tr), p.sequence, p.ti, p.flip_deg, name=name)


#: The voxels (mm) of a 3-D acquisition, for reading (iv).
VOXELS_3D = (1.0, 1.0, 1.0)


def heldout(classifier, slices: int, psnr: bool, log=print, tuning: bool = False) -> dict:
    from napari_mr_reparam.contrast import CLASSES, guess_input, preset_label, read_as
    from napari_mr_reparam import DEFAULT_TE_MS, DEFAULT_TR_MS

    paths, missing = ext.subject_paths(tuning)
    if missing:
        return {"skipped": missing}
    model = ext.load_models(["physics"], "cpu", baselines=False)[-1] if psnr else None
    targets = ext.heldout_targets(12)
    per_input: dict = {}
    for index, path in enumerate(paths):
        subject = ext.heldout_subject(Path(path), index, slices)
        truths = [subject.render(t) for t in targets] if psnr else None
        log(f"  {subject.name}", flush=True)
        for inp in subject.inputs:
            image = subject.acquire(inp)
            expected = CLASSES[preset_label(_acquisition(inp))]
            guess = guess_input(image, classifier=classifier)
            per_slice = [guess_input(image[s:s + 1], classifier=classifier).preset for s in range(image.shape[0])]
            row = per_input.setdefault(inp.name, {"expected": [], "guessed": [], "probability": [],
                                                  "mprage_share": [], "read_3d": [],
                                                  "slices_right": 0, "slices": 0, "psnr": {}})
            p = guess.probabilities
            row["mprage_share"].append(p.get("MPRAGE", 0.0) / max(p.get("T1w", 0.0), 1e-9))
            read_3d = read_as(guess, VOXELS_3D).reading
            row["read_3d"].append(read_3d)
            row["expected"].append(expected)
            row["guessed"].append(guess.preset)
            row["probability"].append(guess.probability)
            row["slices_right"] += sum(p == expected for p in per_slice)
            row["slices"] += len(per_slice)
            if psnr and model.reads(inp):
                readings = {"fallback (TE 50 / TR 4500)": ext.Acq(DEFAULT_TE_MS, DEFAULT_TR_MS),
                            "guessed preset": preset_acq(guess.preset), "own acquisition": inp,
                            "as a 3-D volume": preset_acq(read_3d)}
                for label, acq in readings.items():
                    if label == "as a 3-D volume" and read_3d == guess.preset:
                        row["psnr"].setdefault(label, []).append(row["psnr"]["guessed preset"][-1])
                        continue
                    preds = ext.predict(model, image, acq, targets)
                    values = [float(ext.score(p, t)["psnr"].mean()) for p, t in zip(preds, truths)]
                    row["psnr"].setdefault(label, []).append(float(np.mean(values)))
    return {"inputs": per_input}


def heldout_table(result: dict) -> str:
    lines = ["| input | expected (per subject) | guessed (per subject) | volumes right | slices right "
             "| mean probability | MPRAGE / T1w probability (per subject) | read as a 3-D volume (per subject) |",
             "|---|---|---|---|---|---|---|---|"]
    total = [0, 0, 0, 0]
    for name, r in result["inputs"].items():
        right = sum(e == g for e, g in zip(r["expected"], r["guessed"]))
        total = [total[0] + right, total[1] + len(r["expected"]), total[2] + r["slices_right"], total[3] + r["slices"]]
        lines.append(f"| {name} | {', '.join(r['expected'])} | {', '.join(r['guessed'])} | {right}/{len(r['expected'])} | "
                     f"{r['slices_right']}/{r['slices']} | {np.mean(r['probability']):.2f} | "
                     f"{', '.join(f'{v:.2f}' for v in r['mprage_share'])} | {', '.join(r['read_3d'])} |")
    lines.append(f"| all | | | {total[0]}/{total[1]} | {total[2]}/{total[3]} | | | |")
    return "\n".join(lines)


def psnr_table(result: dict) -> str:
    readings = ("fallback (TE 50 / TR 4500)", "guessed preset", "own acquisition", "as a 3-D volume")
    lines = ["| input | " + " | ".join(f"read at: {r} (dB)" for r in readings) + " |", "|---|" + "---|" * len(readings)]
    means = {r: [] for r in readings}
    for name, r in result["inputs"].items():
        if not r["psnr"]:
            continue
        cells = []
        for k in readings:
            means[k].append(np.mean(r["psnr"][k]))
            cells.append(f"{means[k][-1]:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| mean of the inputs | " + " | ".join(f"{np.mean(means[k]):.2f}" for k in readings) + " |")
    return "\n".join(lines)


def real_images(classifier, slices: int) -> list[dict]:
    from napari_mr_reparam import sample_head as sd
    from napari_mr_reparam.acquisition import Acquisition
    from napari_mr_reparam.contrast import CLASSES, guess_input, preset_label, read_as

    rows = []
    images, _, _ = ext.mni152_masks(slices)
    rows.append(("MNI152 2009 T1 template (real, averaged)", images, T1_WEIGHTED))
    if Path(ext.REAL_T1).is_file():
        images, _, _ = ext.real_t1_masks(slices)
        rows.append(("one person's real T1 scan (voxelmorph)", images, T1_WEIGHTED))
    for (data, kwargs, _), (te, tr) in zip(sd.make_sample_all(), (sd.INPUT_ACQ, *sd.TRUTH_ACQS)):
        expected = CLASSES[preset_label(Acquisition(te, tr))]
        rows.append((f"sample head, TE {te:g} / TR {tr:g} ms", np.asarray(data, np.float32), (expected,)))
    out = []
    for what, images, right in rows:
        guess = guess_input(images, classifier=classifier)
        out.append({"image": what, "right": list(right), "guessed": guess.preset,
                    "probability": guess.probability, "ok": guess.preset in right,
                    "mprage": guess.probabilities.get("MPRAGE", 0.0),
                    "read_3d": read_as(guess, VOXELS_3D).reading})
    return out


def real_table(rows: list[dict]) -> str:
    lines = ["| image | right answer | guessed | probability | MPRAGE probability | read as a 3-D volume | right |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['image']} | {' or '.join(r['right'])} | {r['guessed']} | {r['probability']:.2f} | "
                     f"{r['mprage']:.2f} | {r['read_3d']} | {'yes' if r['ok'] else '**no**'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    from napari_mr_reparam.contrast import load_classifier

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None, help="classifier weights (default: the bundled contrast)")
    parser.add_argument("--slices", type=int, default=8)
    parser.add_argument("--no-psnr", action="store_true", help="skip (c), the physics model's PSNR")
    parser.add_argument("--tuning", action="store_true", help="training subjects 01-04 in place of the held-out ones")
    parser.add_argument("--json", help="also write the results as JSON (never over an existing file)")
    args = parser.parse_args(argv)
    refuse_existing(parser, args.json)
    classifier = load_classifier(args.weights)
    held = heldout(classifier, args.slices, not args.no_psnr, tuning=args.tuning)
    real = real_images(classifier, args.slices)
    if "skipped" in held:
        print(held["skipped"])
    else:
        print("\n(a) Held-out subjects: the preset each input image is read as\n")
        print(heldout_table(held))
        if not args.no_psnr:
            print("\n(c) physics, mean PSNR over the 12 targets, by how the input is read\n")
            print(psnr_table(held))
    print("\n(b) Real and sample images\n")
    print(real_table(real))
    if args.json:
        Path(args.json).write_text(json.dumps({"heldout": held, "real": real}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
