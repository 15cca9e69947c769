"""The ``napari-mr-reparam`` command: user-facing commands."""

from __future__ import annotations

import argparse
import sys

from . import DEFAULT_CONSISTENCY


def run_cli(parser: argparse.ArgumentParser, argv=None) -> int:
    """Parse ``argv``, run the chosen sub-command, and turn expected failures into one line.

    Sub-commands set ``func`` (taking the parsed namespace, returning an exit status).
    Bad input (``ValueError``, ``FileNotFoundError``, ``FileExistsError``, ``OSError``)
    prints ``error: ...`` on stderr and returns 2; Ctrl-C returns 130.
    """
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 2


def _positive_ms(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of milliseconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of milliseconds, got {text}")
    return value


def input_acquisition(volume, te_ms, tr_ms) -> tuple[float, float, str]:
    """The input's TE/TR (ms): from the options, else its BIDS sidecar, else the default.

    Returns (te, tr, where they came from).
    """
    from . import DEFAULT_TE_MS, DEFAULT_TR_MS

    if te_ms is not None and tr_ms is not None:
        return te_ms, tr_ms, "options"
    if volume.te_ms is not None and volume.tr_ms is not None:
        return (te_ms or volume.te_ms), (tr_ms or volume.tr_ms), "sidecar"
    return (te_ms or DEFAULT_TE_MS), (tr_ms or DEFAULT_TR_MS), "default"


def _targets(args) -> list[tuple[float, float]]:
    from .acquisition import validate_times

    if len(args.te) != len(args.tr):
        raise ValueError(f"give as many --tr as --te values ({len(args.te)} TE, {len(args.tr)} TR)")
    pairs = list(zip(args.te, args.tr))
    for te, tr in pairs:
        validate_times(te, tr)
    return pairs


def _inputs(paths: list[str]) -> list:
    from pathlib import Path

    from .io import IMAGE_SUFFIXES, NIFTI_SUFFIXES, suffix_of

    found = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found += sorted(p for p in path.iterdir()
                            if p.is_file() and suffix_of(p) in NIFTI_SUFFIXES + IMAGE_SUFFIXES)
        else:
            found.append(path)
    if not found:
        raise ValueError("no input files found")
    return found


def _output_paths(inputs, targets, output: str, suffix: str | None) -> dict:
    """Where each (input, target) goes: ``output`` itself for one of each, else a folder."""
    from pathlib import Path

    from .io import suffix_of

    out = Path(output)
    if len(inputs) == 1 and len(targets) == 1 and suffix_of(out):
        return {(inputs[0], targets[0]): out}
    if suffix_of(out):
        raise ValueError("several inputs or targets need an output folder for -o, not a file")
    paths = {}
    for path in inputs:
        ext = suffix or suffix_of(path)
        stem = path.name[: -len(suffix_of(path))]
        for te, tr in targets:
            paths[(path, (te, tr))] = out / f"{stem}_TE{te:g}_TR{tr:g}{ext}"
    return paths


def cmd_predict(args) -> int:
    from tqdm import tqdm

    from .acquisition import out_of_range_warnings
    from .inference import InferenceOptions, Reparameterizer

    targets = _targets(args)
    inputs = _inputs(args.input)
    outputs = _output_paths(inputs, targets, args.output, args.suffix)
    if not args.overwrite:
        taken = [str(p) for p in outputs.values() if p.exists()]
        if taken:
            raise FileExistsError(f"{taken[0]} exists; pass --overwrite to replace it")
    for te, tr in targets:
        for warning in out_of_range_warnings(te, tr):
            print(f"warning: {warning}", file=sys.stderr)
    engine = Reparameterizer(args.model, weights=args.weights, device=args.device,
                             batch_size=args.batch_size)
    options = engine.resolve(InferenceOptions(consistency=args.consistency,
                                              flip_average=args.flip_average or None))
    failures = 0
    with tqdm(total=len(inputs) * len(targets), unit="image", disable=args.quiet) as bar:
        for path in inputs:
            try:
                written = _predict_file(engine, path, targets, outputs, args, options)
                summary = ", ".join(f"TE {te:g}/TR {tr:g} ms -> {out}" for (te, tr), out in written)
                tqdm.write(f"ok {path}: {engine.info.name} on {engine.device.type}: {summary}")
            except (ValueError, OSError) as exc:
                failures += 1
                tqdm.write(f"failed {path}: {exc}", file=sys.stderr)
            bar.update(len(targets))
    if len(inputs) > 1:
        print(f"{len(inputs) - failures} of {len(inputs)} files done")
    return 0 if failures == 0 else 1


def _predict_file(engine, path, targets, outputs, args, options) -> list:
    """All targets of one input, by one engine request (maps once for the physics model)."""
    from .acquisition import Acquisition
    from .io import load_volume, save_volume

    volume = load_volume(path)
    given = None
    if engine.task == "p2p":
        te_in, tr_in, source = input_acquisition(volume, args.input_te, args.input_tr)
        given = _input_sequence(volume, te_in, tr_in, args)
        if source == "default":
            print(f"notice: {path.name}: no input TE/TR given and no BIDS sidecar found; taking the "
                  f"input to be at TE {te_in:g} ms / TR {tr_in:g} ms", file=sys.stderr)
    predictions = engine.predict_many(volume.data, [Acquisition(te, tr) for te, tr in targets], given,
                                      options=options)
    written = []
    for (te, tr), pred in zip(targets, predictions):
        out = save_volume(outputs[(path, (te, tr))], pred, like=volume, te_ms=te, tr_ms=tr,
                          model=engine.info.name, overwrite=args.overwrite)
        written.append(((te, tr), out))
    return written


def _input_sequence(volume, te_in: float, tr_in: float, args):
    """The input's Acquisition: its sequence, TI (ms) and flip angle from the options, else
    from its BIDS sidecar (``ScanningSequence``, ``InversionTime``, ``FlipAngle``), else a
    spin echo."""
    from .acquisition import Acquisition

    sequence = args.input_sequence or getattr(volume, "sequence", None) or "spin_echo"
    ti = args.input_ti if args.input_ti is not None else volume.ti_ms
    flip = args.input_flip if args.input_flip is not None else volume.flip_deg
    if sequence in ("inversion_recovery", "mprage") and ti is None:
        raise ValueError(f"a {sequence.replace('_', ' ')} input needs its inversion time: --input-ti MS")
    if sequence in ("gradient_echo", "mprage") and flip is None:
        raise ValueError(f"a {sequence.replace('_', ' ')} input needs its flip angle: --input-flip DEG")
    return Acquisition(te_in, tr_in, sequence, ti if sequence in ("inversion_recovery", "mprage") else None,
                       flip if sequence in ("gradient_echo", "mprage") else None)


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(model=args.model, device=args.device)


def build_parser() -> argparse.ArgumentParser:
    from .physics import INPUT_SEQUENCES

    parser = argparse.ArgumentParser(
        prog="napari-mr-reparam",
        description="Predict how an MR scan would look at another TE/TR (times in ms).",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    pr = sub.add_parser("predict", help="predict volumes or images at new TE/TR settings")
    pr.add_argument("input", nargs="+", help="NIfTI (.nii, .nii.gz) or 2-D images (.png, .jpg, .tif), "
                    "or folders of them")
    pr.add_argument("-o", "--output", required=True,
                    help="output file (.nii/.nii.gz, .npy, .tif, .png) for one input and one target; "
                         "else a folder, where files are named INPUT_TE<ms>_TR<ms>")
    pr.add_argument("--te", type=_positive_ms, nargs="+", required=True, help="target echo time(s), ms")
    pr.add_argument("--tr", type=_positive_ms, nargs="+", required=True,
                    help="target repetition time(s), ms, paired with --te in order")
    pr.add_argument("--suffix", help="output type in folder mode (default: the input's), e.g. .nii.gz")
    pr.add_argument("--input-te", type=_positive_ms, help="input echo time, ms (Param-to-Param)")
    pr.add_argument("--input-tr", type=_positive_ms, help="input repetition time, ms (Param-to-Param)")
    pr.add_argument("--input-sequence", choices=INPUT_SEQUENCES,
                    help="the input's sequence (default: its BIDS sidecar's, else spin_echo); "
                         "physics models trained on other input sequences read them")
    pr.add_argument("--input-ti", type=_positive_ms, help="input inversion time, ms (inversion_recovery, mprage)")
    pr.add_argument("--input-flip", type=float, help="input flip angle, degrees (gradient_echo, mprage)")
    pr.add_argument("--model", default="d2p", help="bundled model: d2p, p2p or physics (default d2p)")
    pr.add_argument("--weights", help="a weights file (.safetensors with its card, or .pt)")
    pr.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    pr.add_argument("--batch-size", type=int, default=8, help="slices per batch (default 8)")
    pr.add_argument("--consistency", type=float, metavar="W",
                    help="physics model: weight (0-1) with which the maps are pulled toward "
                         f"reproducing the input at its own TE/TR (default {DEFAULT_CONSISTENCY:g})")
    pr.add_argument("--flip-average", action="store_true",
                    help="physics model: average the maps over each slice and its left-right mirror "
                         "(twice the map time; reads unfamiliar anatomy a little better)")
    pr.add_argument("--overwrite", action="store_true", help="replace an existing output")
    pr.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    pr.set_defaults(func=cmd_predict)

    demo = sub.add_parser("demo", help="open napari with the sample head and the widget")
    demo.add_argument("--model", default="d2p")
    demo.add_argument("--device", default="auto")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv=None) -> int:
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
