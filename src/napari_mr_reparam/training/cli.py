"""The ``napari-mr-reparam-train`` command: simulate data, train, evaluate."""

from __future__ import annotations

import argparse
import sys

from .. import DEFAULT_CONSISTENCY
from ..command import command_parser, examples, run_cli
from ..tissues import TABLES
from .phantom_specs import PHANTOM_SPECS, tissue_table

#: The model ``evaluate`` scores when neither --model nor --weights names one.
DEFAULT_EVALUATED = "d2p"


#: The ``--task`` option's help, for the stages that take it.
TASK_HELP = ("the task the run learns: d2p (from the default TE 50 / TR 4500 ms input) or p2p (from an input "
             "at any TE/TR); default: the recipe's")


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _image_size(text: str) -> int:
    """An argparse type: an image size in pixels, within the range training takes
    (:class:`~napari_mr_reparam.training.config.TrainConfig`'s ``size``)."""
    from dataclasses import fields

    from .config import TrainConfig

    value = _positive_int(text)
    bounds = next(f.metadata["range"] for f in fields(TrainConfig) if f.name == "size")
    if not bounds.holds(value):
        raise argparse.ArgumentTypeError(f"must be {bounds} pixels, as training's size, got {text}")
    return value


def _seed(text: str) -> int:
    """An argparse type: a dataset seed, a whole number from 0 to MAX_SEED."""
    from .config import MAX_SEED

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_SEED}, got {text}")
    return value


def cmd_simulate(args) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from ..datasets import DATASET_FILE, MANIFEST_FILE, build_protocol_dataset
    from ..preview import save_preview
    from ..volume_writing import refuse_existing
    from ..phantoms import load_phantom

    if args.table is not None and args.phantom.partition(":")[0].strip().lower() == "mrilab":
        raise ValueError("--table takes a tissue table for a phantom built from tissue classes (mni152, "
                         "segmentation:PATH, freesurfer:PATH); an MRiLab phantom has its own maps")
    refuse_existing([Path(args.out) / name for name in (DATASET_FILE, MANIFEST_FILE, "preview.png")],
                    overwrite=args.overwrite)
    phantom = load_phantom(args.phantom, table=args.table)
    with tqdm(total=args.pairs, desc="simulating", unit="pair") as bar:
        dataset = build_protocol_dataset(
            phantom, seed=args.seed, pairs=args.pairs, slices=args.slices, size=args.size,
            progress=bar.update,
        )
    if dataset.n_slices < args.slices:
        print(f"notice: {args.phantom}: the protocol's span of its brain holds {dataset.n_slices} axial "
              f"slices, fewer than the {args.slices} asked for; the dataset has those {dataset.n_slices}",
              file=sys.stderr)
    out = dataset.save(args.out)
    save_preview(phantom, out / "preview.png")
    n_train = int(dataset.train_paper.sum())
    print(f"wrote {out}: {dataset.n_pairs} pairs x {dataset.n_slices} slices "
          f"({n_train} train / {dataset.train_paper.size - n_train} test on the paper split), "
          f"manifest.json, preview.png")
    return 0


def _train(args, stage: str, **fixed) -> int:
    from .loop import TrainingStopped, process_rank, train

    options = dict(
        stage=stage, steps=args.steps, out=args.out, device=args.device,
        seed=args.seed, width=args.width, data=args.data, threads=args.threads,
        phantoms=args.phantom, autoencoder=getattr(args, "autoencoder", None),
        task=getattr(args, "task", None), batch_size=args.batch_size, name=args.name, **fixed,
    )
    for key, value in _settings(args.set).items():
        if key == "stage":
            raise ValueError(f"--set stage: the stage is the command's ({stage}); run napari-mr-reparam-train "
                             f"{value} for another")
        if options.get(key) is not None:
            raise ValueError(f"--set {key} repeats an option given otherwise; give it once")
        options[key] = value
    cfg = _config(args, options)
    _refuse_replacing_a_run(cfg.out, args)
    if cfg.stage == "autoencoder" and cfg.steps <= cfg.natural_steps and process_rank() == 0:
        print(f"notice: steps {cfg.steps} <= natural_steps {cfg.natural_steps}: every step is on natural images "
              "and none fine-tunes the encoder on MR slices (a later --resume with more steps does)",
              file=sys.stderr)
    try:
        checkpoint = train(cfg, resume=args.resume)
    except TrainingStopped as stopped:
        if process_rank() == 0:
            print(f"\n{cfg.name}: {stopped}", flush=True)
        return 130 if stopped.why == "SIGINT" else 143  # as a shell reports a stop by that signal
    if process_rank() == 0:
        print(f"checkpoint: {checkpoint}")
    return 0


def _config(args, options: dict):
    """The run's config: the ``--config`` recipe with ``options`` on top; on ``--resume``
    without a recipe, the one the run folder's checkpoint records, as it was trained."""
    from pathlib import Path

    from .config import TrainConfig, load_config, resumed_config
    from .loop import CHECKPOINT, process_rank, read_checkpoint

    folder = options.get("out") or TrainConfig.out  # --out, or --set out
    checkpoint = Path(folder) / CHECKPOINT
    if args.resume and args.config is None and not checkpoint.is_file():
        raise ValueError(f"--resume: no checkpoint in {folder} and no --config: nothing to resume; give the run's "
                         "folder (--out), or its recipe to start it")
    if args.config is not None or not args.resume:
        return load_config(args.config, **options)
    recorded = read_checkpoint(checkpoint).get("config")
    if not isinstance(recorded, dict):
        raise ValueError(f"{checkpoint}: records no config to resume with; give its recipe with --config")
    cfg = resumed_config(checkpoint, recorded, **options)
    if process_rank() == 0:
        print(f"resuming with the settings recorded in {checkpoint}")
    return cfg


def _settings(items) -> dict:
    """``--set KEY=VALUE`` pairs as recipe values (VALUE in TOML: 0.1, true, "text")."""
    from .config import tomllib

    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set wants KEY=VALUE, got {item!r}")
        if key.strip() in out:
            raise ValueError(f"--set {key.strip()} is given twice; give it once")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value  # a bare word: take it as text
    return out


def cmd_autoencoder(args) -> int:
    return _train(args, "autoencoder")


def cmd_paramnet(args) -> int:
    return _train(args, "paramnet")


def cmd_physics(args) -> int:
    return _train(args, "physics")


def cmd_tissue(args) -> int:
    return _train(args, "tissue")


def cmd_contrast(args) -> int:
    return _train(args, "contrast")


def cmd_evaluate(args) -> int:
    import json
    from pathlib import Path

    from ..inference import InferenceOptions, Reparameterizer
    from .evaluate import IdentityModel, evaluate

    options = None
    if args.json:
        from ..volume_writing import refuse_existing

        refuse_existing([Path(args.json)], overwrite=args.overwrite)
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit takes a number of test images, at least 1; got {args.limit}")
    if args.model is not None and args.weights:
        raise ValueError(f"--model {args.model} and --weights {args.weights} each name the model to score; "
                         "give one (--weights scores a file, --model a bundled model or identity)")
    if args.model == "identity":
        engine = IdentityModel(args.task or "d2p")
    else:
        engine = Reparameterizer(args.model or DEFAULT_EVALUATED, weights=args.weights, device=args.device,
                                 batch_size=args.batch_size)
        options = InferenceOptions(consistency=args.consistency, flip_average=args.flip_average or None,
                                   calibrate_peak=False if args.max_peak else None)
    task = args.task or engine.task
    report = evaluate(engine, task, args.phantom, split=args.split, dataset_seed=args.seed,
                      limit=args.limit, options=options)
    _print_report(report, engine.info.name, task, args)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)
        print(f"wrote {args.json}")
    return 0


def _print_report(report: dict, model: str, task: str, args) -> None:
    """The evaluate table, the model beside identity, and its PSNR per target-TE band; the
    table's row names a model file by its name alone (the title gives the path), so that
    its columns stay aligned."""
    from pathlib import Path

    from ..metrics import format_report

    title = f"{model} ({task}) on {args.phantom}, split {args.split}, {report['count']} test images"
    rows = {f"{Path(model).name} ({task})": report, "identity": report["identity"]}
    print(format_report(rows, title))
    print("PSNR by target TE: " + ", ".join(
        f"{b['range'][0]:g}-{b['range'][1]:g} ms {b['mean']:.2f} dB (n={b['count']})"
        for b in report["psnr_by_target_te"]))


# what a card keeps of an evaluate report besides its means and spreads: the baseline,
# the image count, the TE bands and the engine settings the figures were measured with
CARD_REPORT_KEYS = ("identity", "count", "psnr_by_target_te", "consistency", "calibrate_peak",
                    "flip_average")


def _read_report(path: str) -> dict:
    """An ``evaluate --json`` report, or a ValueError naming the file."""
    import json
    from pathlib import Path

    try:
        report = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not a JSON report ({exc})") from None
    if not isinstance(report, dict) or "psnr_mean" not in report:
        raise ValueError(f"{path}: not an evaluate --json report (no psnr_mean)")
    return report


def cmd_export(args) -> int:
    from pathlib import Path

    from ..volume_writing import refuse_existing
    from ..weights import BUNDLED_DIR, card_path, load_weights, save_weights, shown_name

    _refuse_a_name_that_is_not_plain(args.name)
    if not args.out and installed_package(BUNDLED_DIR):  # before any file is read
        raise ValueError(f"the package is installed, not a clone: weights written into its folder ({BUNDLED_DIR}) "
                         "are lost on its next upgrade; give --out FILE.safetensors, and predict with "
                         "--weights FILE")
    state, card = load_weights(args.checkpoint)  # weights that are not finite are refused there
    if card.get("arch") == "autoencoder":
        raise ValueError(f"{args.checkpoint}: an autoencoder run, the paper models' encoder, predicts no image: "
                         "give it to paramnet (--autoencoder PATH) and export the paramnet run")
    shown = shown_name(args.checkpoint, card)  # what evaluate calls it
    card = dict(card, name=args.name)
    config = card.get("config")
    if isinstance(config, dict) and Path(str(config.get("out", ""))).is_absolute():
        card["config"] = {**config, "out": Path(config["out"]).name}  # no machine-specific paths
    for metrics_file in args.metrics or []:
        report = _read_report(metrics_file)
        _refuse_another_models_report(metrics_file, report, args.checkpoint, shown)
        kind, _, where = str(report.get("phantom", "unknown")).partition(":")
        phantom = f"{kind}:{Path(where).name}" if where else kind  # no machine-specific paths
        key = f"{phantom}|{report.get('split')}|{report.get('task')}"
        card.setdefault("metrics", {})[key] = {
            k: v for k, v in report.items()
            if k.endswith(("_mean", "_std")) or k in CARD_REPORT_KEYS}
    for report_file in args.external or []:
        card.setdefault("external", {}).update(_external_rows(report_file, args.checkpoint))
    out = Path(args.out) if args.out else BUNDLED_DIR / f"{args.name}.safetensors"
    if out.suffix != ".safetensors":
        raise ValueError(f"{out.name}: export writes safetensors weights; name the output NAME.safetensors")
    # the card too: another weights file's may share its name
    refuse_existing([out, card_path(out)], overwrite=args.overwrite)
    save_weights(state, card, out)
    print(f"wrote {out} and {out.with_suffix('.json').name}")
    return 0


def installed_package(folder) -> bool:
    """Whether ``folder`` (the bundled weights') lies in an installed package, which pip
    replaces on upgrade and removes on uninstall, rather than in a clone of the repository."""
    from pathlib import Path

    return any(part in ("site-packages", "dist-packages") for part in Path(folder).resolve().parts)


#: What a weight set's name may hold: it names the files ``NAME.safetensors`` and
#: ``NAME.json`` in the bundled folder, so a plain file name of letters, digits, ``_``
#: and ``-``, and no path.
PLAIN_NAME = r"[A-Za-z0-9][A-Za-z0-9_-]*"


def _refuse_a_name_that_is_not_plain(name: str) -> None:
    """A one-line ValueError for an ``export --name`` that is not a plain file name (a
    path, ``..``) or is the bundled folder's record of hashes."""
    import re
    from pathlib import Path

    from ..weights import HASHES_FILE

    if not re.fullmatch(PLAIN_NAME, name):
        raise ValueError(f"--name {name!r}: a weight set's name is a plain file name (letters, digits, _ and -, "
                         "no folders); --out writes elsewhere")
    if name == Path(HASHES_FILE).stem:
        raise ValueError(f"--name {name!r}: that is the name of the bundled weights' record of hashes")


def _refuse_another_models_report(path: str, report: dict, checkpoint: str, shown: str) -> None:
    """A one-line ValueError for an evaluate report whose ``model`` is not ``checkpoint``
    (as given, or ``shown``: the name evaluate records for it)."""
    model = report.get("model")
    if not (_names_the_model(model, checkpoint) or _names_the_model(model, shown)):
        raise ValueError(f"{path}: scores {model or 'an unnamed model'}, not {checkpoint}; "
                         f"record a report of evaluate --weights {checkpoint}")


def _external_rows(path: str, checkpoint: str) -> dict:
    """The rows of a ``benchmarks/bench_external.py --json`` report that score the model
    given as ``checkpoint`` (labelled by its path there, written as it may be: the same
    file however written, from this folder), per row group: each row's input or task and
    its PSNR figures (overall, brain, T1-like, per target-TE band)."""
    report = _read_json(path)
    out = {}
    for group, result in report.items():
        if not isinstance(result, dict) or not isinstance(result.get("rows"), list):
            continue
        rows = []
        for row in result["rows"]:
            if not _names_the_model(row.get("model"), checkpoint):
                continue
            summary = row.get("summary")
            if summary is None:  # the sample head's targets, the template's tissue means
                rows.append({k: v for k, v in row.items() if k != "model"})
                continue
            rows.append({"what": row.get("what"), **{k: v for k, v in summary.items()
                                                      if k.startswith("psnr") or k.endswith("count")}})
        if rows:
            out[group] = rows
    if not out:
        raise ValueError(f"{path}: no rows score {checkpoint}; run the benchmark with --models {checkpoint}")
    return out


def _names_the_model(label, checkpoint: str) -> bool:
    """Whether a benchmark row's or an evaluate report's model ``label`` (a bundled name,
    or a file's path as typed there, in backquotes or not) is ``checkpoint``: the same
    name, or the same file."""
    from pathlib import Path

    from ..weights import names_a_file

    if not isinstance(label, str):
        return False
    label = label.strip("`")
    if label == checkpoint:
        return True
    if not (names_a_file(label) and names_a_file(checkpoint)):
        return False
    return Path(label).expanduser().resolve() == Path(checkpoint).expanduser().resolve()


def _read_json(path: str) -> dict:
    import json
    from pathlib import Path

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable JSON report ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a benchmark report")
    return data


def _add_train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML recipe (the repository's training/ folder holds the bundled "
                                    "weights' recipes); with --resume and no --config, "
                                    "the settings the run's checkpoint records (--set, --steps and other "
                                    "options on top)")
    p.add_argument("--out", help="run folder for checkpoints")
    p.add_argument("--name", help="weight-set name recorded in the card")
    p.add_argument("--steps", type=int,
                   help="the total optimizer steps the run reaches, on --resume too (not steps to add); "
                        "the learning-rate schedule spans that total")
    p.add_argument("--batch-size", type=_positive_int)
    p.add_argument("--width", type=float, help="channel-width multiplier (1.0 = the paper)")
    p.add_argument("--phantom", action="append", help=f"training phantom: {PHANTOM_SPECS} (repeatable)")
    p.add_argument("--data", choices=("paper", "stream"), help="fixed protocol datasets or a stream")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto, cpu, cuda or mps")
    p.add_argument("--threads", type=int, help="torch CPU threads per process (0: torch's default, one per core)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the run folder's checkpoint (written every checkpoint_every steps, "
                        "and on SIGTERM or Ctrl-C after the step in progress)")
    p.add_argument("--overwrite", action="store_true",
                   help="start a new run in a folder that holds another run's checkpoint")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any other recipe value, e.g. --set map_weight=0.1, or one entry of its "
                        "[acquisition] table, --set acquisition.jpeg=0.5 (repeatable)")


def _refuse_replacing_a_run(out: str, args) -> None:
    """A run folder that holds a checkpoint is continued (``--resume``) or replaced
    (``--overwrite``), never replaced unasked."""
    from pathlib import Path

    from .loop import CHECKPOINT

    if (Path(out) / CHECKPOINT).is_file() and not (args.resume or args.overwrite):
        raise FileExistsError(f"{Path(out) / CHECKPOINT} exists: --resume continues that run, --overwrite "
                              "starts a new one in its place")


def build_parser() -> argparse.ArgumentParser:
    parser, sub = command_parser("napari-mr-reparam-train",
                                 "Simulate training data, train the models and evaluate them (times in ms).")

    sim = sub.add_parser("simulate", help="simulate the paper's protocol dataset from a phantom")
    sim.add_argument("--phantom", default="mni152", help=f"{PHANTOM_SPECS} (default mni152)")
    sim.add_argument("--table", default=None, type=tissue_table,
                     help="tissue table of a phantom built from tissue classes: mni152, segmentation:PATH, "
                          f"freesurfer:PATH ({', '.join(TABLES)})")
    sim.add_argument("--out", required=True, help="output folder")
    sim.add_argument("--seed", type=_seed, default=0)
    sim.add_argument("--pairs", type=_positive_int, default=200, help="(TE, TR) pairs (default 200)")
    sim.add_argument("--slices", type=_positive_int, default=24, help="axial slices per pair (default 24)")
    sim.add_argument("--size", type=_image_size, default=256, help="image size in pixels (default 256)")
    sim.add_argument("--overwrite", action="store_true", help="replace a dataset already in --out")
    sim.set_defaults(func=cmd_simulate)

    ae = sub.add_parser("autoencoder", help="phase 1: pretrain the autoencoder, then fine-tune on MR")
    _add_train_options(ae)
    ae.set_defaults(func=cmd_autoencoder)

    pn = sub.add_parser("paramnet", help="phase 2: train the Param-Net on the frozen encoder")
    _add_train_options(pn)
    pn.add_argument("--task", choices=("d2p", "p2p"),
                    help=TASK_HELP)
    pn.add_argument("--autoencoder", help="autoencoder checkpoint or weights whose encoder is used")
    pn.set_defaults(func=cmd_paramnet)

    ph = sub.add_parser("physics", help="train the physics-informed (quantitative-map) model",
                        **examples("napari-mr-reparam-train physics --config training/physics.toml",
                                   "napari-mr-reparam-train physics --config training/physics.toml --resume",
                                   "torchrun --standalone --nproc_per_node 2 -m napari_mr_reparam.training.cli "
                                   "physics --config training/physics.toml"))
    _add_train_options(ph)
    ph.add_argument("--task", choices=("d2p", "p2p"),
                    help=TASK_HELP)
    ph.set_defaults(func=cmd_physics)

    ts = sub.add_parser("tissue", help="train the tissue network (tissue fractions from one image)")
    _add_train_options(ts)
    ts.set_defaults(func=cmd_tissue)

    ct = sub.add_parser("contrast", help="train the contrast classifier (which input preset an image looks like)")
    _add_train_options(ct)
    ct.set_defaults(func=cmd_contrast)

    ev = sub.add_parser("evaluate", help="score a model on the paper protocol, identity beside it",
                        **examples("napari-mr-reparam-train evaluate --model physics --limit 200",
                                   "napari-mr-reparam-train evaluate --weights runs/physics/checkpoint.pt "
                                   "--json runs/physics/eval.json"))
    ev.add_argument("--model", help=f"bundled model name, or identity (default {DEFAULT_EVALUATED})")
    ev.add_argument("--weights", help="a weights file (.safetensors or .pt) instead of --model")
    ev.add_argument("--task", choices=("d2p", "p2p"), help="default: the model's own task")
    ev.add_argument("--phantom", default="mni152", help=f"{PHANTOM_SPECS} (default mni152)")
    ev.add_argument("--split", choices=("paper", "slices"), default="paper")
    ev.add_argument("--seed", type=_seed, default=0, help="dataset seed (the split depends on it)")
    ev.add_argument("--limit", type=int, help="score only the first N test images")
    ev.add_argument("--device", default="auto", help="auto (a GPU where there is one), cpu, cuda or mps (default auto)")
    ev.add_argument("--batch-size", type=_positive_int, default=16)
    ev.add_argument("--consistency", type=float, metavar="W",
                    help=f"physics model: data-consistency weight, 0-1 (default {DEFAULT_CONSISTENCY:g})")
    ev.add_argument("--flip-average", action="store_true",
                    help="physics model: average its maps over each slice and its mirror image")
    ev.add_argument("--max-peak", action="store_true",
                    help="physics model: normalize renders by their maximum, not by the peak "
                         "the input calibrates")
    ev.add_argument("--json", help="also write the report as JSON")
    ev.add_argument("--overwrite", action="store_true", help="replace the --json file if it exists")
    ev.set_defaults(func=cmd_evaluate)

    ex = sub.add_parser("export", help="turn a checkpoint into a safetensors weight set with its card",
                        **examples("napari-mr-reparam-train export runs/physics/checkpoint.pt --name physics "
                                   "--out runs/physics/physics.safetensors"))
    ex.add_argument("checkpoint")
    ex.add_argument("--name", required=True,
                    help="weight-set name (d2p, p2p, physics): a plain file name (letters, digits, _ and -)")
    ex.add_argument("--metrics", action="append", help="evaluate --json reports to record in the card")
    ex.add_argument("--external", action="append",
                    help="benchmarks/bench_external.py --json reports whose rows for this checkpoint "
                         "the card records")
    ex.add_argument("--out", help="output .safetensors (default: the package's bundled weights)")
    ex.add_argument("--overwrite", action="store_true", help="replace the weight file and its card if they exist")
    ex.set_defaults(func=cmd_export)
    return parser


def main(argv=None) -> int:
    from ..devices import keep_freed_memory

    keep_freed_memory()  # every command here allocates and frees large arrays step after step
    from .loop import process_rank

    return run_cli(build_parser(), argv, say_errors=process_rank() == 0)  # under torchrun: said once


if __name__ == "__main__":
    sys.exit(main())
