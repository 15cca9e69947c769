"""The ``napari-mr-reparam`` command: user-facing commands."""

from __future__ import annotations

import argparse
import os
import sys

from . import DEFAULT_CONSISTENCY
from .command import positive_ms as _positive_ms
from .command import DEVICE_OPTION, bar_off, command_parser, examples, input_error, positive_int, run_cli


def input_acquisition(volume, te_ms, tr_ms) -> tuple[float, float, str]:
    """The input's TE/TR (ms), each from its option, else the BIDS sidecar or DICOM tags,
    else the default.

    Returns (te, tr, where they came from: "options", "sidecar", or "default" if either is).
    """
    from . import DEFAULT_TE_MS, DEFAULT_TR_MS

    te = te_ms if te_ms is not None else volume.te_ms
    tr = tr_ms if tr_ms is not None else volume.tr_ms
    if te is not None and tr is not None:
        return te, tr, "options" if te_ms is not None and tr_ms is not None else "sidecar"
    return (te if te is not None else DEFAULT_TE_MS), (tr if tr is not None else DEFAULT_TR_MS), "default"


def _targets(args) -> list[tuple[float, float]]:
    from .acquisition import Acquisition
    from .cli_joint import refuse_input_seconds
    from .units import refuse_seconds, seconds_checked_tr

    if len(args.te) != len(args.tr):
        raise ValueError(f"give as many --tr as --te values ({len(args.te)} TE, {len(args.tr)} TR)")
    refuse_seconds(ti=[t for t in (args.ti, args.ti2) if t is not None] or None)
    refuse_input_seconds(args)
    _check_sequence(args)
    pairs = list(zip(args.te, args.tr))
    for te, tr in pairs:
        refuse_seconds(te=te, tr=seconds_checked_tr(tr, args.sequence))
        Acquisition(te, tr, args.sequence, args.ti, args.flip, args.ti2)  # refuses what it cannot be
    return pairs


#: What each target sequence needs beyond TE and TR, as the options give it.
TARGET_OPTIONS = {"ti": "--ti", "ti2": "a second --ti (TI1 TI2)", "flip": "--flip"}


def _check_sequence(args) -> None:
    """--ti and --flip belong to the sequences that read them (a second --ti to double
    inversion recovery), each required there: a one-line ValueError otherwise."""
    from .acquisition import SEQUENCE_READS

    reads = SEQUENCE_READS[args.sequence]
    for key, option in TARGET_OPTIONS.items():
        given = getattr(args, key) is not None
        if key in reads and not given:
            raise ValueError(f"--sequence {args.sequence} needs {option}")
        if given and key not in reads:
            readers = [s for s, read in SEQUENCE_READS.items() if key in read]
            readers = " or ".join(filter(None, [", ".join(readers[:-1]), readers[-1]]))
            raise ValueError(f"{option} applies to --sequence {readers} only")


def _target_inversions(tis) -> tuple:
    """``--ti``'s values as (TI, TI2): one, or a double inversion recovery's two; more is a
    one-line ValueError."""
    tis = tis or [None]
    if len(tis) > 2:
        raise ValueError(f"--ti takes one value, or two (TI1 TI2) for double inversion recovery; got {len(tis)}")
    return tis[0], (tis[1] if len(tis) == 2 else None)


def _check_model_inputs(engine, args) -> None:
    """What the loaded model cannot honour is refused before any file is read."""
    if args.sequence != "spin_echo" and not engine.renders_from_maps:
        raise ValueError(f"{engine.info.name} predicts spin-echo images only; --sequence "
                         f"{args.sequence} needs the physics model (--model physics)")
    if engine.task == "d2p":
        refuse_for_d2p(engine.info.name, args.input_te, args.input_tr, args.input_sequence, args.input_ti)


def refuse_for_d2p(name: str, te=None, tr=None, sequence=None, ti=None, where: str = "") -> None:
    """Default-to-Param reads one input acquisition, a spin echo at TE 50 / TR 4500 ms: an
    input stated (``where``: by what, e.g. ``its sidecar``) to be acquired otherwise is a
    one-line ValueError, not read as if it were that one. None is what nothing states."""
    from . import DEFAULT_TE_MS, DEFAULT_TR_MS
    from .acquisition import default_input_mismatch

    said = f" ({where})" if where else ""
    mismatch = default_input_mismatch(te, tr, sequence, ti)
    if mismatch is None:
        return
    if mismatch[0] == "sequence":
        raise ValueError(f"{name} reads spin-echo inputs at TE {DEFAULT_TE_MS:g} / TR {DEFAULT_TR_MS:g} ms "
                         f"only; for an input of {mismatch[1].replace('_', ' ')}{said} use --model physics")
    raise ValueError(f"{name} reads inputs at TE {DEFAULT_TE_MS:g} / TR {DEFAULT_TR_MS:g} ms only; for an "
                     f"input at TE {mismatch[1]:g} / TR {mismatch[2]:g} ms{said} use --model p2p or --model physics")


def _notice(text: str) -> None:
    """A line on stderr that keeps clear of the progress bar."""
    from tqdm import tqdm

    tqdm.write(text, file=sys.stderr)


def _inputs(paths: list[str], acquisition: int | None = None, times_given=(), notices=None) -> list:
    """Input files, and a :class:`_SeriesInput` per acquisition of each DICOM series (a
    folder without NIfTI or images but with DICOM files; ``.dcm`` files given together)
    and per volume of each 4-D NIfTI file (:func:`~napari_mr_reparam.io.load_volumes`).
    ``notices``: a list that takes the notices about them (acquisitions listed, series left
    out), to be printed once the inputs are known to be usable; else they are printed."""
    from pathlib import Path

    from . import dicom
    from .cli_joint import folder_files
    from .io import load_volumes, volume_count

    found, series, dicom_files, mixed = [], [], [], []
    for text in folder_files(paths, mixed):  # a folder left is a DICOM series
        path = Path(text)
        if path.is_dir():
            series.append(path)
        elif path.suffix.lower() == ".dcm" or dicom.is_dicom(path):
            dicom_files.append(path)
        elif volume_count(path) > 1:
            found += _series_inputs(load_volumes(path, times_given), acquisition, dicom_tags=False,
                                    notices=notices)
        else:
            found.append(path)
    for line in mixed:  # a folder's files and its DICOM series, all inputs
        _tell(line, notices)
    for source in series + ([dicom_files] if dicom_files else []):
        found += _dicom_inputs(source, acquisition, notices)
    if not found:
        raise ValueError("no input files found")
    return found


class _SeriesInput:
    """One acquisition of a DICOM series (``dicom_tags``), or one volume of a 4-D NIfTI
    file, standing in for an input file."""

    def __init__(self, volume, index: int, count: int, dicom_tags: bool = True):
        self.volume = volume
        self.dicom_tags = dicom_tags
        self.name = volume.extra["series"] if count == 1 else f"{volume.extra['series']}_acq{index}"

    def __str__(self) -> str:
        from .dicom import describe

        return f"{self.name} ({describe(self.volume)})"


def _dicom_inputs(source, acquisition: int | None, notices=None) -> list:
    """The acquisitions of one series to predict from: all, or the one chosen (1-based);
    notices on images beside a series' folder, and on one file given of a series whose
    other slices lie beside it (:func:`~napari_mr_reparam.dicom.lone_slice`)."""
    from pathlib import Path

    from .cli_joint import images_beside_series_line
    from .dicom import lone_slice, read_series

    beside = images_beside_series_line(source) if isinstance(source, Path) else lone_slice(source)
    left_out = [beside] if beside else []
    volumes = read_series(source, left_out=left_out)
    for line in left_out:
        _tell(f"notice: {line}", notices)
    return _series_inputs(volumes, acquisition, notices=notices)


def _tell(line: str, notices=None) -> None:
    """A notice on stderr, or kept in ``notices`` (a list) for later."""
    if notices is None:
        print(line, file=sys.stderr)
    else:
        notices.append(line)


def _series_inputs(volumes, acquisition: int | None, dicom_tags: bool = True, notices=None) -> list:
    """The acquisitions of a DICOM series or the volumes of a 4-D NIfTI file to predict
    from: all (with a notice listing them), or the one chosen (1-based)."""
    from .cli_joint import plane_line
    from .dicom import choose_acquisition, describe

    label = volumes[0].extra["series"]
    plane = plane_line(volumes[0], label)  # one series, one plane: said once, not per acquisition
    if plane:
        _tell(plane, notices)
    if acquisition is not None:
        [chosen] = choose_acquisition(volumes, acquisition)
        return [_SeriesInput(chosen, acquisition, len(volumes), dicom_tags)]
    if len(volumes) > 1:
        listing = "; ".join(f"{i}: {describe(v)}" for i, v in enumerate(volumes, 1))
        _tell(f"notice: {label}: {len(volumes)} acquisitions, each predicted separately "
              f"(choose one with --acquisition N): {listing}", notices)
    return [_SeriesInput(v, i, len(volumes), dicom_tags) for i, v in enumerate(volumes, 1)]


def _refuse_missing_times(inputs, args) -> None:
    """A DICOM input whose tags lack its TE or TR, which no option gives, is a one-line
    ValueError naming its series, before any is predicted (once, not per acquisition); so is
    one option's value given for several acquisitions of a series that lack that time and
    that the tags tell apart by nothing else (the echoes of a train without EchoTime: one
    ``--input-te`` cannot be each echo's)."""
    from .cli_joint import refuse_one_time_for_many

    for item in inputs:
        if isinstance(item, _SeriesInput) and item.dicom_tags:
            reason = _missing_time(item.volume, args)
            if reason:
                raise ValueError(f"{item.volume.extra['series']}: {reason}")
    refuse_one_time_for_many([i.volume for i in inputs if isinstance(i, _SeriesInput) and i.dicom_tags], args)


def _missing_time(volume, args) -> str | None:
    """Why a DICOM input's TE or TR is unknown (no tag, no option), with how to give it; else None."""
    from .dicom import TAG_CODES, unknown_cycle

    for tag, name, tagged in (("EchoTime", "te", volume.te_ms), ("RepetitionTime", "tr", volume.tr_ms)):
        if getattr(args, f"input_{name}") is None and tagged is None:
            return ((name == "tr" and unknown_cycle(volume))
                    or f"the DICOM files have no {tag} {TAG_CODES[tag]} tag; give the input value with "
                    f"--input-{name} MS, or name the input's acquisition with --input-preset NAME")
    return None


def _dicom_input_times(item: _SeriesInput, args) -> None:
    """TE/TR of a DICOM input come from its tags: a missing tag must be given as an option;
    an option that disagrees with the tag wins, with a notice."""
    volume = item.volume
    reason = _missing_time(volume, args)
    if reason:
        raise ValueError(reason)
    from_preset = getattr(args, "input_preset_fields", set())
    for tag, name, tagged in (("EchoTime", "te", volume.te_ms), ("RepetitionTime", "tr", volume.tr_ms)):
        option, given = f"--input-{name}", getattr(args, f"input_{name}")
        if given is not None and tagged is not None and abs(given - tagged) > 1e-3:
            said = (f"--input-preset {args.input_preset} ({name.upper()} {given:g} ms)"
                    if f"input_{name}" in from_preset else f"{option} {given:g} ms")
            print(f"notice: {item.name}: {said} overrides the DICOM {tag} {tagged:g} ms", file=sys.stderr)
    if volume.extra.get("sequence") is None and args.input_sequence is None:  # a named one is read as such
        print(f"notice: {item.name}: the DICOM tags do not name the input's sequence; it is taken as a "
              "spin echo at its TE/TR (--input-sequence names it)", file=sys.stderr)
    _refuse_tagged_times(volume, args)


def _refuse_tagged_times(volume, args) -> None:
    """A TE or TR that the DICOM tags state wrongly (in seconds, 0, TE not shorter than TR)
    and no option replaces is a one-line ValueError that names the options: a tag cannot be
    edited, an option can."""
    from .acquisition import validate_times
    from .units import refuse_seconds, seconds_checked_tr

    te = args.input_te if args.input_te is not None else volume.te_ms
    tr = args.input_tr if args.input_tr is not None else volume.tr_ms
    tagged = [option for option, given in (("--input-te", args.input_te), ("--input-tr", args.input_tr))
              if given is None]
    try:
        refuse_seconds(input_te=te, input_tr=seconds_checked_tr(tr, args.input_sequence or volume.sequence))
        validate_times(te, tr)
    except ValueError as exc:
        if not tagged:
            raise
        raise ValueError(f"{exc}; as the DICOM tags state it: give the right value with "
                         f"{' or '.join(tagged)}") from None


def _output_paths(inputs, targets, output: str, suffix: str | None, tag: str = "", label: str | None = None) -> dict:
    """Where each (input, target) goes: ``output`` itself for one of each, else a folder
    (:func:`~napari_mr_reparam.volume_writing.output_paths`) with ``INPUT_TE<ms>_TR<ms><tag>``
    files (``INPUT_<label>``: a preset's name; in a derivative dataset of the inputs' BIDS
    dataset, in their subjects' folders: :func:`~napari_mr_reparam.sidecars.derivative_place`).
    Two inputs that would write one file (an output or its sidecar) are a one-line
    ValueError, before any work."""
    from .cli_joint import refuse_shared_outputs
    from .file_types import output_stems, suffix_of
    from .sidecars import derivative_place
    from .volume_writing import output_paths

    _refuse_a_file_for_volumes(inputs, targets, output)
    keys, names = [], []
    stems = output_stems([path for path in inputs if not isinstance(path, _SeriesInput)])
    for path in inputs:
        from_series = isinstance(path, _SeriesInput)  # written as NIfTI, named after the acquisition
        stem = path.name if from_series else derivative_place(path, output) + stems[str(path)]
        for te, tr in targets:
            keys.append((path, (te, tr)))
            name = f"{stem}_{label}" if label else f"{stem}_TE{te:g}_TR{tr:g}{tag}"
            names.append((name, ".nii.gz" if from_series else suffix_of(path)))
    outputs = dict(zip(keys, output_paths(output, names, suffix, "several inputs or targets")))
    refuse_shared_outputs((path, out) for (path, _), out in outputs.items())
    return outputs


def _refuse_a_file_for_volumes(inputs, targets, output: str) -> None:
    """``-o`` a file for one target from one DICOM series of several acquisitions, or one
    4-D NIfTI file of several volumes, is a one-line ValueError that says so and how to
    choose one (:func:`~napari_mr_reparam.cli_joint.needs_a_folder`)."""
    from .cli_joint import needs_a_folder
    from .file_types import suffix_of

    if not suffix_of(output) or len(targets) != 1 or len(inputs) < 2:
        return
    if all(isinstance(i, _SeriesInput) for i in inputs) and len({i.volume.extra["series"] for i in inputs}) == 1:
        raise ValueError(needs_a_folder(inputs[0].volume, len(inputs)))


def cmd_predict(args) -> int:
    """Predict every input at every target. A bad input file is reported as ``error: FILE:
    reason`` and skipped; any such file makes the exit status 2, as other bad input does."""
    from .cli_joint import (
        apply_input_preset,
        input_times_given,
        refuse_acquisition_with_joint,
        refuse_acquisition_without_dicom,
        refuse_bad_angles,
        refuse_joint_options,
        refuse_repeated_inputs,
    )
    from .inference import InferenceOptions, Reparameterizer

    refuse_bad_angles(args)
    if args.skip_existing and args.overwrite:
        raise ValueError("--skip-existing leaves existing outputs, --overwrite replaces them: give one")
    refuse_acquisition_with_joint(args)
    refuse_joint_options(args)
    refuse_acquisition_without_dicom(args.input, args.acquisition)
    if not args.joint:
        _single(args.input_preset, "--input-preset")  # one for every input unless --joint
        refuse_repeated_inputs(args.input)
    apply_input_preset(args)
    label = args.target_preset = _preset_for_an_image_model(args) if args.preset and not args.joint else None
    if args.joint or args.preset:
        from .cli_joint import predict_joint_or_preset

        return predict_joint_or_preset(args)
    args.sequence = args.sequence or "spin_echo"
    args.ti, args.ti2 = _target_inversions(args.ti)
    for name in ("input_preset", "input_te", "input_tr", "input_ti", "input_flip", "input_sequence"):
        setattr(args, name, _single(getattr(args, name), "--" + name.replace("_", "-")))
    if not args.te or not args.tr:
        raise ValueError("give the targets with --te and --tr, or name a --preset")
    targets = _targets(args)
    notices = []
    inputs = _inputs(args.input, args.acquisition, input_times_given(args), notices)
    tag = _target_tag(args)
    outputs = _output_paths(inputs, targets, args.output, args.suffix, tag, label)
    from .cli_joint import folder_files, refuse_inputs_as_outputs
    from .volume_writing import refuse_existing

    refuse_inputs_as_outputs(outputs.values(), folder_files(args.input))
    partial = []  # --skip-existing: inputs with some of their outputs, each refused in one line
    if args.skip_existing:
        inputs, partial = _without_done(inputs, outputs)
        for line in partial:
            print(line, file=sys.stderr)
        if not inputs:
            return 2 if partial else 0
    refuse_existing([out for (path, _), out in outputs.items() if path in inputs], overwrite=args.overwrite)
    engine = Reparameterizer(args.model, weights=args.weights, device=args.device,
                             batch_size=args.batch_size)
    options = engine.resolve(InferenceOptions(consistency=args.consistency,
                                              flip_average=args.flip_average or None,
                                              keep_detail=False if args.no_detail else None))
    _check_model_inputs(engine, args)
    _warn_out_of_range(targets, engine)
    if engine.task == "p2p":
        _refuse_missing_times(inputs, args)
    for line in notices:
        print(line, file=sys.stderr)
    failures = _predict_all(engine, inputs, targets, outputs, args, options) + len(partial)
    if len(inputs) + len(partial) > 1:
        print(f"{len(inputs) + len(partial) - failures} of {len(inputs) + len(partial)} inputs done")
    return 0 if failures == 0 else 2


def _predict_all(engine, inputs, targets, outputs, args, options) -> int:
    """Predict each input, an ``ok`` line for each done; returns how many failed. The
    progress bar counts the images written, so a failed input leaves it short of full; the
    ``error: FILE: reason`` lines follow it once it is closed."""
    from tqdm import tqdm

    errors: list[str] = []
    try:
        with tqdm(total=len(inputs) * len(targets), unit="image", disable=bar_off(args)) as bar:
            for path in inputs:
                try:
                    written = _predict_file(engine, path, targets, outputs, args, options)
                    summary = "; ".join(f"TE {te:g} / TR {tr:g} ms{_target_words(args)} -> {out}"
                                        for (te, tr), out in written)
                    tqdm.write(f"ok {as_used(path, args)}: {engine.info.name} on {engine.device.type}: {summary}")
                    bar.update(len(targets))
                except (ValueError, OSError) as exc:
                    errors.append(input_error(as_used(path, args), exc, path.name))  # times as used
    finally:  # stopped early (Ctrl-C) too: the failures so far are said
        for line in errors:
            print(line, file=sys.stderr)
    return len(errors)


def _without_done(inputs, outputs) -> tuple[list, list[str]]:
    """``--skip-existing``: the inputs whose outputs are not there yet, each left out said
    on stderr (:func:`~napari_mr_reparam.cli_joint.skip_state`), and the ``error:`` lines
    of those with some of them (a run stopped between an input's targets), each refused
    alone so that the others go on and one rerun after their removal finishes the batch."""
    from .cli_joint import skip_state

    kept, partial = [], []
    for path in inputs:
        done, refusal = skip_state([out for (p, _), out in outputs.items() if p == path], path)
        if refusal:
            partial.append(input_error(path, refusal, path.name))
        elif not done:
            kept.append(path)
    return kept, partial


def _target_tag(args) -> str:
    """What an output's name says of each target beyond its TE/TR: ``_TI<ms>`` (a double
    inversion recovery's ``_TI<ms>-<ms>``) and ``_FA<deg>``."""
    ti = "" if args.ti is None else f"_TI{args.ti:g}" + (f"-{args.ti2:g}" if args.ti2 is not None else "")
    return ti + (f"_FA{args.flip:g}" if args.flip else "")


def _target_words(args) -> str:
    """What the ok line says of each target beyond its TE/TR: its TI (TI1 and TI2) and flip
    angle, as the command line words acquisitions (``, TI 2500 ms``)."""
    ti = "" if args.ti is None else (f", TI {args.ti:g} ms" if args.ti2 is None
                                     else f", TI1 {args.ti:g} / TI2 {args.ti2:g} ms")
    return ti + (f", flip {args.flip:g} deg" if args.flip is not None else "")


def _preset_for_an_image_model(args) -> str | None:
    """``--preset`` for a model that predicts images (the paper's d2p and p2p), which render
    no maps: a spin-echo preset is one TE/TR target, set as ``--te``/``--tr`` (returns the
    preset's name, for the output's); another sequence is a one-line ValueError. None (and
    nothing changed) for a model that renders from maps, or one whose card is not at hand."""
    from .inference import card_renders_from_maps
    from .presets import PRESETS, get_preset

    card = _model_card(args)
    if card is None or card_renders_from_maps(card):
        return None
    name, names = card.get("name", args.model), list(dict.fromkeys(args.preset))
    if len(names) > 1:
        raise ValueError(f"{name} takes one --preset at a time (one spin-echo target); the physics model "
                         "renders several from one set of maps")
    preset = get_preset(names[0])
    if preset.sequence != "spin_echo":
        spin_echo = ", ".join(n for n, p in PRESETS.items() if p.sequence == "spin_echo")
        raise ValueError(f"{name} predicts spin-echo images only, and {preset.name} is "
                         f"{preset.sequence.replace('_', ' ')}; use --model physics, or a spin-echo preset "
                         f"({spin_echo})")
    if args.sequence is not None:
        raise ValueError(f"--sequence and --preset both name the target's sequence ({preset.name} is spin "
                         "echo); leave out --sequence, or --preset")
    if len(args.te or []) > 1 or len(args.tr or []) > 1:
        raise ValueError("--preset takes one --te and one --tr at most (it is one target)")
    ti = args.ti or [None]
    chosen = preset.with_values(te=(args.te or [None])[0], tr=(args.tr or [None])[0], ti=ti[0],
                                ti2=ti[1] if len(ti) > 1 else None, flip_deg=args.flip)  # refuses a TI, a flip
    print(f"preset {chosen.describe()}", file=sys.stderr)
    args.preset, args.te, args.tr = None, [chosen.te], [chosen.tr]
    return chosen.name


def _model_card(args) -> dict | None:
    """The weight card of ``--weights`` or ``--model``, read without the weights: a bundled
    set's, or the ``.json`` beside a ``.safetensors`` file; None where there is none to read."""
    import json

    from .weights import bundled_card, card_path, names_a_file

    source = args.weights or args.model
    if args.weights is None and not names_a_file(source):
        return bundled_card(source) or None
    path = card_path(source)
    if str(source).endswith(".safetensors") and path.is_file():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None  # the engine says what is wrong with it
    return None


def as_used(item, args) -> str:
    """An input as the ok line names it: a DICOM acquisition or a 4-D file's volume with the
    TE/TR/TI it was read at (an option given wins over its tags), another input as given."""
    if not isinstance(item, _SeriesInput):
        return str(item)
    from .cli_joint import used_description

    return f"{item.name} ({used_description(item.volume, args)})"


def _single(values, option: str):
    """One value of an option that takes one per input with --joint."""
    if values is None or len(values) == 1:
        return None if values is None else values[0]
    raise ValueError(f"{option} takes one value unless --joint (several images of one subject)")


def _warn_out_of_range(targets, engine) -> None:
    """Targets outside the range the model's predictions are bound to (the paper's networks';
    the physics model renders any TE/TR) are warned about."""
    for te, tr in targets:
        for warning in engine.target_warnings(te, tr):
            print(f"warning: {warning}", file=sys.stderr)


def _predict_file(engine, path, targets, outputs, args, options) -> list:
    """All targets of one input, by one engine request (maps once for the physics model);
    every target is predicted before any file is written, so a failure writes nothing. Each
    output's sidecar records the input's acquisition as used (``Input``)."""
    import numpy as np

    from .acquisition import Acquisition, out_of_range_warnings
    from .cli_joint import unmeasured_notice
    from .inference import as_measured
    from .sidecars import acquisition_sidecar
    from .volume_writing import save_volume

    volume = _read_input(path, args)
    unmeasured = unmeasured_notice(path.name, ~np.isfinite(volume.data), "read as 0, NaN in the output")
    if unmeasured:
        _notice(unmeasured)
    data = as_measured(volume.data)  # an infinite voxel is one the image does not measure, as NaN
    given, record = _input_used(engine, path, volume, data, args)
    wanted = [Acquisition(te, tr, args.sequence, args.ti, args.flip, args.ti2) for te, tr in targets]
    from tqdm import tqdm

    from .memory import shortage

    if short := shortage(data.size, joint=False, name=path.name):
        print(f"warning: {short}", file=sys.stderr)

    slices = engine.work_units(data.shape[0] if data.ndim == 3 else 1, len(wanted))
    with tqdm(total=slices, unit="slice", desc=path.name, leave=False, disable=bar_off(args),
              position=1) as bar:
        # the maps once (physics), or each target's slices: the bar of images moves once they are written
        predictions = list(engine.predict_many(data, wanted, given, options=options, progress=bar.update))
    if engine.task == "p2p":
        for warning in out_of_range_warnings(given.te_ms, given.tr_ms, engine.trained_ranges["input"]):
            print(f"warning: {path.name}: input {warning}", file=sys.stderr)
    from .sidecars import target_preset_record

    extra = {**acquisition_sidecar(args.sequence, args.ti, args.flip, args.ti2),
             **target_preset_record(getattr(args, "target_preset", None)), **record}
    return [((te, tr), save_volume(outputs[(path, (te, tr))], pred, like=volume, te_ms=te, tr_ms=tr,
                                   model=engine.info.name, extra=extra, overwrite=args.overwrite,
                                   weights_sha256=engine.info.sha256))
            for (te, tr), pred in zip(targets, predictions)]


def _read_input(path, args):
    """The volume of one input, refused in one line where it is a label map or holds no image."""
    from .cli_joint import input_times_given, notice_ignored_sidecar, plane_notice
    from .inference import require_contrast
    from .io import load_volume, refuse_label_map, refuse_map

    volume = path.volume if isinstance(path, _SeriesInput) else load_volume(path, input_times_given(args))
    refuse_label_map(volume, path.name)
    refuse_map(volume, path.name)
    notice_ignored_sidecar(volume, path.name)
    require_contrast(volume.data)
    if not isinstance(path, _SeriesInput):  # a series' plane is told with its acquisitions
        plane_notice(volume, path.name)
    return volume


def _input_used(engine, path, volume, data, args) -> tuple:
    """``(the input's Acquisition for the engine, or None for its default; the sidecar's
    "Input" record of the acquisition used)``: from the options, the file (sidecar, DICOM
    tags), else the preset its contrast looks like, else the default (with a notice)."""
    from .cli_joint import times_source
    from .volume_writing import input_record

    file = _input_file(path, volume)
    if engine.task == "d2p":  # it reads one input acquisition, the default: what the file states must be it
        return _d2p_input_used(engine, path, volume, args, file)
    if _from_tags(path):
        _dicom_input_times(path, args)
    _refuse_one_time_without_the_other(volume, args)
    guessed = _guessed_input(engine, path, volume, data, args)
    if guessed is not None:
        return guessed[0], input_record(guessed[0], "guessed", preset=guessed[1].reading, **file)
    te_in, tr_in, source = input_acquisition(volume, args.input_te, args.input_tr)
    if source == "default":
        from .presets import input_preset_names

        _notice(f"notice: {path.name}: no input TE/TR given or in a BIDS sidecar; taking the input to be at TE "
                f"{te_in:g} ms / TR {tr_in:g} ms; name its acquisition with --input-preset "
                f"({', '.join(input_preset_names())}) or --input-te/--input-tr")
    given = _input_sequence(volume, te_in, tr_in, args, path.name, engine)
    if not _from_tags(path):  # a DICOM input's: _dicom_input_times
        _notice_replaced_times(path.name, volume, args)
    source = times_source(args.input_te, args.input_tr, volume)
    return given, input_record(given, source, preset=args.input_preset, **file)


def _from_tags(path) -> bool:
    """Whether an input's acquisition is read from DICOM tags (a DICOM series' acquisition)."""
    return isinstance(path, _SeriesInput) and path.dicom_tags


def _d2p_input_used(engine, path, volume, args, file: dict) -> tuple:
    """:func:`_input_used` for Default-to-Param: None (its default), and the record of the
    input as that default, once what the file or options state is known to be it; a notice
    where options replace its sidecar's times, or where nothing states them."""
    from .acquisition import Acquisition
    from .cli_joint import times_source
    from .volume_writing import input_record

    _refuse_for_d2p_input(engine, path, volume, args)
    _refuse_unread(path, "spin_echo", args)
    if not _from_tags(path):
        _notice_replaced_times(path.name, volume, args)
    source = times_source(args.input_te, args.input_tr, volume)
    if "default" in source:
        _notice_d2p_default(engine, path.name, volume, args)
    return None, input_record(Acquisition.default(), source, **file)


def _notice_d2p_default(engine, name: str, volume, args) -> None:
    """The notice on a Default-to-Param input whose TE or TR nothing states: taken as the
    one input acquisition it reads, as the widget says."""
    from . import DEFAULT_TE_MS, DEFAULT_TR_MS

    unknown = "/".join(n.upper() for n in ("te", "tr")
                       if getattr(args, f"input_{n}") is None and getattr(volume, f"{n}_ms") is None)
    _notice(f"notice: {name}: no input {unknown} given or in its metadata; taken as TE {DEFAULT_TE_MS:g} / TR "
            f"{DEFAULT_TR_MS:g} ms, the one input acquisition {engine.info.name} reads")


def _notice_replaced_times(name: str, volume, args) -> None:
    """One notice where the input options (or ``--input-preset``) replace times that the
    input's sidecar (or FreeSurfer header) states, as ``maps`` and ``--joint`` say it."""
    replaced = {}
    for field, what in (("te", "TE"), ("tr", "TR"), ("ti", "TI")):
        given, own = getattr(args, f"input_{field}"), getattr(volume, f"{field}_ms")
        if given is not None and own is not None and abs(given - own) > 1e-3:
            from_preset = f"input_{field}" in getattr(args, "input_preset_fields", set())
            replaced[what] = (f"--input-preset {args.input_preset}" if from_preset else f"--input-{field}", own)
    if not replaced:
        return
    options = list(dict.fromkeys(option for option, _ in replaced.values()))
    stated = volume.times_stated_by
    values = ", ".join(f"{own:g}" for _, own in replaced.values())
    _notice(f"notice: {name}: {' and '.join(options)} replace{'s' if len(options) == 1 else ''} the "
            f"{' and '.join(replaced)} that its {stated} states ({values} ms)")


def _input_file(path, volume) -> dict:
    """The input's file name (and a DICOM series' or 4-D file's acquisition), for its record."""
    from pathlib import Path

    if not isinstance(path, _SeriesInput):
        return {"file": path.name}
    source = getattr(volume, "source", None)
    return {"file": Path(str(source)).name if source else path.name, "part": path.name}


def _refuse_for_d2p_input(engine, path, volume, args) -> None:
    """What the options leave open of a d2p input, the file may state: refused unless it is d2p's input."""
    pick = lambda option, own: option if option is not None else own  # noqa: E731
    where = "its DICOM tags" if isinstance(path, _SeriesInput) and path.dicom_tags else "its sidecar"
    refuse_for_d2p(engine.info.name, pick(args.input_te, volume.te_ms), pick(args.input_tr, volume.tr_ms),
                   pick(args.input_sequence, volume.sequence), pick(args.input_ti, volume.ti_ms), where)


def _refuse_one_time_without_the_other(volume, args) -> None:
    """An input TE known (given, or in its sidecar) without its TR, or the reverse, is a
    one-line ValueError naming the option that gives it: the other is not guessed."""
    from .cli_joint import one_time_missing

    te, tr = (getattr(args, f"input_{n}") if getattr(args, f"input_{n}") is not None else getattr(volume, f"{n}_ms")
              for n in ("te", "tr"))
    if (te is None) != (tr is None):
        raise ValueError(one_time_missing(te, tr))


def _guessed_input(engine, path, volume, data, args):
    """``(Acquisition, ContrastGuess)`` of an input that names nothing of its acquisition,
    read as the preset its contrast looks like (with a notice); else None."""
    from .cli_joint import INPUT_OPTIONS, guessed_notice, names_nothing
    from .contrast import guessed_reading, voxel_mm

    if not names_nothing(volume, {attr: getattr(args, attr, None) for attr in INPUT_OPTIONS}):
        return None
    guessed = guessed_reading(data, engine, voxels_mm=voxel_mm(volume))
    if guessed is not None:
        _notice(guessed_notice(path.name, guessed[1]))
    return guessed


def _input_sequence(volume, te_in: float, tr_in: float, args, name: str = "the input", engine=None):
    """The input's Acquisition: its sequence, TI (ms) and flip angle from the options, else
    from its BIDS sidecar (``ScanningSequence``, ``InversionTime``, ``FlipAngle``), by the
    rule ``predict --joint`` and ``maps`` read inputs with
    (:func:`~napari_mr_reparam.cli_joint.input_sequence`: else inversion recovery where a TI
    is known, else a spin echo); ``--input-ti`` or ``--input-flip`` that the sequence does
    not read is a one-line ValueError naming the input (``name``), as is a sequence the
    ``engine`` does not read, before any value it would need is asked for."""
    from .acquisition import SEQUENCE_READS, Acquisition
    from .cli_joint import input_sequence, refuse_unstated

    ti = args.input_ti if args.input_ti is not None else volume.ti_ms
    flip = args.input_flip if args.input_flip is not None else volume.flip_deg
    sequence = input_sequence(args.input_sequence, getattr(volume, "sequence", None), ti)
    _refuse_unread(name, sequence, args)
    if engine is not None:
        engine.refuse_unread_input(sequence)
    refuse_unstated(sequence, ti, flip, getattr(volume, "kind", None) == "dicom")
    reads = SEQUENCE_READS[sequence]
    return Acquisition(te_in, tr_in, sequence, ti if "ti" in reads else None, flip if "flip" in reads else None)


def _refuse_unread(name, sequence: str, args) -> None:
    """``--input-ti`` or ``--input-flip`` that an input of ``sequence`` does not read is a
    one-line ValueError naming it (:func:`~napari_mr_reparam.cli_joint.refuse_unread_options`)."""
    from .cli_joint import refuse_unread_options

    refuse_unread_options(args, [sequence], [str(getattr(name, "name", name))])


def cmd_demo(args) -> int:
    from .demo import missing_display, missing_qt, run_demo

    if missing_qt():
        print(f"error: {missing_qt()}", file=sys.stderr)
        return 2
    if missing_display():
        print("error: no display found (neither DISPLAY nor WAYLAND_DISPLAY is set); the demo opens "
              "a window. On a machine without a screen run it under a virtual one: "
              "xvfb-run -a napari-mr-reparam demo", file=sys.stderr)
        return 2

    from .devices import choose_device
    from .inference import known_models

    known = known_models()
    if known and args.model not in known:  # refused before the window opens, as predict does
        raise ValueError(f"unknown model {args.model!r}; known: {', '.join(known)}")
    choose_device(args.device)
    return run_demo(model=args.model, device=args.device)


#: ``predict --help``'s examples (a test parses each).
PREDICT_EXAMPLES = (
    "napari-mr-reparam predict scan.nii.gz -o pred.nii.gz --te 100 --tr 3000",
    "napari-mr-reparam predict t1.nii.gz --input-preset MPRAGE --preset T2w FLAIR -o out/",
    "napari-mr-reparam predict scans/ -o out/ --te 20 100 --tr 600 6000 --suffix .nii.gz",
    "napari-mr-reparam predict T1_series/ -o synthetic/ --preset FLAIR --suffix .dcm",
    "napari-mr-reparam predict --joint pdw.nii.gz t2w.nii.gz --input-te 15 100 --input-tr 3000 3000 "
    "--preset FLAIR -o flair.nii.gz",
)


def build_parser() -> argparse.ArgumentParser:
    from .acquisition import ACQUISITION_SEQUENCES
    from .physics import INPUT_SEQUENCES

    parser, sub = command_parser("napari-mr-reparam",
                                 "Predict how an MR scan would look at another TE/TR (times in ms).")

    pr = sub.add_parser("predict", help="predict volumes or images at new TE/TR settings",
                        description="Predict how each input would look at other acquisitions (TE, TR, TI in "
                                    "ms; flip angle in degrees), or render the joint maps of several images "
                                    "of one subject (--joint).",
                        **examples(*PREDICT_EXAMPLES))
    pr.add_argument("input", nargs="+", type=os.path.expanduser,
                    help="NIfTI (.nii, .nii.gz), FreeSurfer (.mgz) or 2-D images "
                    "(.png, .jpg, .tif), or folders of them; or a DICOM series (a folder, or .dcm files), "
                    "read as one input per acquisition (echo, inversion time) with TE/TR from its tags")
    pr.add_argument("-o", "--output", required=True, type=os.path.expanduser,
                    help="output file (.nii/.nii.gz, .npy, .tif: values in the input's units; .png: an 8-bit "
                         "picture stretched to its own maximum; .dcm: a DICOM series, a folder of "
                         "that name) for one input and one target; else a folder, where files are named "
                         "INPUT_TE<ms>_TR<ms> (INPUT_<PRESET> with --preset)")
    pr.add_argument("--te", type=_positive_ms, nargs="+", help="target echo time(s), ms")
    pr.add_argument("--tr", type=_positive_ms, nargs="+",
                    help="target repetition time(s), ms, paired with --te in order")
    pr.add_argument("--suffix", help="output type in folder mode (default: the input's; .png for a JPEG "
                    "input; .nii.gz for DICOM and .mgz), e.g. .nii.gz, or .dcm for DICOM series in the input's study")
    pr.add_argument("--sequence", choices=ACQUISITION_SEQUENCES,
                    help="target sequence (default spin_echo); the others need a physics model: "
                         "inversion_recovery --ti, gradient_echo --flip, mprage --ti and --flip, "
                         "double_inversion_recovery --ti TI1 TI2")
    pr.add_argument("--ti", type=_positive_ms, nargs="+", metavar="MS",
                    help="inversion time, ms (--sequence inversion_recovery, or mprage: inversion to the "
                         "centre of k-space, TR then inversion to inversion; or a --preset's); "
                         "two, TI1 and TI2, for double inversion recovery (--sequence "
                         "double_inversion_recovery, --preset DIR)")
    pr.add_argument("--flip", type=float, metavar="DEG",
                    help="flip angle, degrees (--sequence gradient_echo or mprage)")
    pr.add_argument("--input-te", type=_positive_ms, nargs="+", metavar="MS",
                    help="input echo time, ms (p2p and physics; d2p reads TE 50 / TR 4500 only; "
                         "with --joint one per input)")
    pr.add_argument("--input-tr", type=_positive_ms, nargs="+", metavar="MS",
                    help="input repetition time, ms (p2p and physics; with --joint one per input)")
    pr.add_argument("--input-sequence", choices=INPUT_SEQUENCES, nargs="+",
                    help="the input's sequence (default: its BIDS sidecar's or DICOM tags', else "
                         "inversion_recovery where --input-ti or a sidecar gives a TI, else spin_echo); "
                         "physics models trained on other input sequences read them; with --joint one "
                         "per input")
    pr.add_argument("--input-ti", type=_positive_ms, nargs="+", metavar="MS",
                    help="input inversion time, ms (inversion_recovery, mprage; with --joint one per input)")
    pr.add_argument("--input-flip", type=float, nargs="+", metavar="DEG",
                    help="input flip angle, degrees (gradient_echo, mprage; with --joint one per input)")
    from .cli_joint import input_preset_option

    pr.add_argument("--input-preset", **input_preset_option())
    pr.add_argument("--acquisition", type=int, metavar="N",
                    help="predict from one acquisition only: the N-th of a DICOM series (1 = shortest "
                         "TI, then TE) or the N-th volume of a 4-D NIfTI file (in the file's order); by "
                         "default every acquisition is an input (not with --joint, which fits them all)")
    pr.add_argument("--model", default="physics",
                    help="bundled model: physics (the default), physics_mrilab, d2p or p2p")
    pr.add_argument("--weights", type=os.path.expanduser,
                    help="a weights file (.safetensors with its card, or a training run's "
                         "checkpoint.pt), in place of a bundled model")
    pr.add_argument("--device", **DEVICE_OPTION)
    pr.add_argument("--batch-size", type=positive_int, default=8, help="slices per batch (default 8)")
    pr.add_argument("--consistency", type=float, metavar="W",
                    help="physics model: weight (0-1) with which the maps are pulled toward "
                         "reproducing the input at its own acquisition (PD, T1 and T2 for a spin "
                         f"echo, PD alone for other sequences; default {DEFAULT_CONSISTENCY:g})")
    pr.add_argument("--flip-average", action="store_true",
                    help="physics model: average the maps over each slice and its left-right mirror "
                         "(twice the map time; reads unfamiliar anatomy a little better)")
    pr.add_argument("--no-detail", action="store_true",
                    help="physics model: render from the maps alone, without adding back the input's "
                         "own detail beyond them (kept by default for weights trained so: the bundled physics)")
    pr.add_argument("--overwrite", action="store_true", help="replace an existing output")
    pr.add_argument("--skip-existing", action="store_true",
                    help="leave out, with a line each, inputs whose outputs all exist (a batch run again "
                         "after it stopped); not with --overwrite")
    pr.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    from .cli_joint import add_maps_command, add_predict_options

    add_predict_options(pr)
    pr.set_defaults(func=cmd_predict)
    add_maps_command(sub)

    demo = sub.add_parser("demo", help="open napari with the sample head and the widget",
                          description="Open napari with the sample head (its input and ground truths) and "
                                      "the re-parameterization widget docked.",
                          **examples("napari-mr-reparam demo", "napari-mr-reparam demo --model p2p --device cpu"))
    demo.add_argument("--model", default="physics",
                      help="bundled model the widget starts with: physics (the default), physics_mrilab, d2p "
                           "or p2p")
    demo.add_argument("--device", **DEVICE_OPTION)
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv=None) -> int:
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
