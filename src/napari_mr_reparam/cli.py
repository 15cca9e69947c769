"""The ``napari-mr-reparam`` command: user-facing commands."""

from __future__ import annotations

import argparse
import sys


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


def cmd_predict(args) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from .inference import Reparameterizer, out_of_range_warnings
    from .io import load_volume, save_volume
    from .simulate import validate_times

    validate_times(args.te, args.tr)
    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    volume = load_volume(args.input)
    engine = Reparameterizer(args.model, weights=args.weights, device=args.device,
                             batch_size=args.batch_size)
    te_in, tr_in = None, None
    if engine.task == "p2p":
        te_in, tr_in, source = input_acquisition(volume, args.input_te, args.input_tr)
        validate_times(te_in, tr_in)
        if source == "default":
            print(f"notice: no input TE/TR given and no BIDS sidecar found; taking the input "
                  f"to be at TE {te_in:g} ms / TR {tr_in:g} ms", file=sys.stderr)
    for warning in out_of_range_warnings(args.te, args.tr):
        print(f"warning: {warning}", file=sys.stderr)
    with tqdm(total=volume.data.shape[0], desc=Path(args.input).name, unit="slice",
              disable=args.quiet) as bar:
        pred = engine.predict_volume(volume.data, args.te, args.tr, te_in, tr_in, progress=bar.update)
    written = save_volume(out, pred, like=volume, te_ms=args.te, tr_ms=args.tr,
                          model=engine.info.name, overwrite=args.overwrite)
    print(f"{args.input} -> {written}: {engine.info.name} at TE {args.te:g} ms / TR {args.tr:g} ms "
          f"on {engine.device.type}")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(model=args.model, device=args.device)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-mr-reparam",
        description="Predict how an MR scan would look at another TE/TR (times in ms).",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    pr = sub.add_parser("predict", help="predict a volume or image at a new TE/TR")
    pr.add_argument("input", help="NIfTI (.nii, .nii.gz) or 2-D image (.png, .jpg, .tif)")
    pr.add_argument("-o", "--output", required=True, help=".nii/.nii.gz, .npy, .tif or .png")
    pr.add_argument("--te", type=_positive_ms, required=True, help="target echo time, ms")
    pr.add_argument("--tr", type=_positive_ms, required=True, help="target repetition time, ms")
    pr.add_argument("--input-te", type=_positive_ms, help="input echo time, ms (Param-to-Param)")
    pr.add_argument("--input-tr", type=_positive_ms, help="input repetition time, ms (Param-to-Param)")
    pr.add_argument("--model", default="d2p", help="bundled model: d2p or p2p (default d2p)")
    pr.add_argument("--weights", help="a weights file (.safetensors with its card, or .pt)")
    pr.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    pr.add_argument("--batch-size", type=int, default=8, help="slices per batch (default 8)")
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
