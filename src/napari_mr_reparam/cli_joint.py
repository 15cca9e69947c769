"""Command-line parts for several images of one subject and for named presets.

``napari-mr-reparam maps INPUT... -o OUTDIR`` writes joint PD, T1 and T2 maps;
``napari-mr-reparam predict --joint IN1 IN2 ...`` renders targets from them, and
``predict --preset NAME`` takes a target's parameters from
:data:`napari_mr_reparam.presets.PRESETS`. Each input's acquisition comes from
``--input-te/--input-tr/--input-ti/--input-flip/--input-sequence`` (one value per input,
in order), else from ``--input-preset`` (:func:`apply_input_preset`), else its DICOM tags
or BIDS sidecar.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path

from .command import DEVICE_OPTION, bar_off, examples, input_error
from .file_types import path_names
from .sidecars import target_preset_record
from .messages import sequence_words, with_article

#: Map files written by ``maps`` (T1 and T2 in ms).
MAP_FILES = {"pd": "PD", "t1": "T1map", "t2": "T2map"}


#: ``--echo-train``: how echoes of a multi-echo spin-echo train are fitted.
ECHO_TRAIN_OPTION = {
    "choices": ("epg", "ideal"), "default": "epg",
    "help": "echoes of a multi-echo spin-echo train (6 or more, TEs multiples of the echo spacing): "
            "fitted with the extended phase graph and the refocusing flip angle free (epg, the "
            "default: T2 without the stimulated echoes' bias) or with the ideal equation"}

#: ``--scale``: the receiver gains of the inputs.
SCALE_OPTION = {
    "choices": ("auto", "shared", "per-series", "per-input"), "default": "auto",
    "help": "receiver gains: one for all inputs (shared: images of one series), one per input path "
            "(per-series: a DICOM series folder or a multi-volume file each; the gains found by the "
            "fit's misfit), one per input (per-input: estimated against the network's maps); auto "
            "(the default): a gain per series where some path or series brings several images, per-input "
            "where each image's sidecar or DICOM tags name a series of a protocol of its own, else shared; "
            "series of one protocol's set (the TIs of an inversion-recovery set) share one gain"}

#: ``--register``: correct the inputs for head motion between them.
REGISTER_OPTION = {
    "action": "store_true",
    "help": "the head moved between the scans: register each input rigidly onto the first (mutual "
            "information, so contrasts may differ; NIfTI or DICOM volumes of 8 slices or more; a few "
            "seconds each) before they are brought onto its grid"}

#: ``--no-smooth``: fit every voxel on its own signals.
NO_SMOOTH_OPTION = {
    "action": "store_true",
    "help": "fit each voxel on its own signals (default: each input's voxels are first averaged with "
            "in-plane neighbours alike in every input to within the noise; edges kept, steadier maps)"}


def input_preset_option() -> dict:
    """``--input-preset``: the input's acquisition by name (``predict`` and ``maps``)."""
    from .presets import get_preset, input_preset_names

    mprage = get_preset("MPRAGE")
    return {"nargs": "+", "metavar": "NAME",
            "help": f"the input's acquisition by name, case-insensitive ({', '.join(input_preset_names())}; "
                    f"e.g. {mprage.describe()}, as most research T1-weighted scans): sets its sequence, "
                    "TE, TR, TI and flip; any of --input-sequence, --input-te, --input-tr, --input-ti, "
                    "--input-flip given as well overrides that value. Like those options it wins over "
                    "DICOM tags and a BIDS sidecar. One for all inputs, or one per input (predict --joint, and maps)"}


def apply_input_preset(args) -> None:
    """Fill ``args.input_sequence/te/tr/ti/flip`` from ``--input-preset`` where they were
    not given (one preset for all inputs, or one per input, as those options take); an
    unknown name, or a preset no input can have (DIR), is a one-line ValueError."""
    from .presets import get_input_preset

    names = _listed(getattr(args, "input_preset", None))
    args.input_preset_fields = set()
    if not names:
        return
    presets = [get_input_preset(name) for name in names]
    for field, attr in (("sequence", "input_sequence"), ("te", "input_te"), ("tr", "input_tr"),
                        ("ti", "input_ti"), ("flip_deg", "input_flip")):
        if getattr(args, attr, None) is None:
            setattr(args, attr, [getattr(p, field) for p in presets])
            args.input_preset_fields.add(attr)
    described = "; ".join(p.describe() for p in presets)
    print(f"input preset {described}", file=sys.stderr)


def add_acquisition_options(parser) -> None:
    """Per-input acquisition options of the joint commands (one value per input)."""
    from .command import positive_ms as _positive_ms

    from .physics import INPUT_SEQUENCES

    for name, what, where in (("te", "echo time", ""), ("tr", "repetition time", ""),
                              ("ti", "inversion time", " (inversion_recovery, mprage)")):
        parser.add_argument(f"--input-{name}", type=_positive_ms, nargs="+", metavar="MS",
                            help=f"input {what}(s), ms{where}: one value, or one per input in order")
    parser.add_argument("--input-flip", type=float, nargs="+", metavar="DEG",
                        help="input flip angle(s), degrees (gradient_echo, mprage): one value, or one per input "
                             "in order")
    parser.add_argument("--input-sequence", nargs="+", metavar="SEQ", choices=INPUT_SEQUENCES,
                        help=f"{', '.join(INPUT_SEQUENCES)} per input (default: the sidecar's or DICOM "
                             "tags', else inversion recovery where a TI is known, else spin echo)")
    parser.add_argument("--input-preset", **input_preset_option())
    parser.add_argument("--scale", **SCALE_OPTION)
    parser.add_argument("--echo-train", **ECHO_TRAIN_OPTION)
    parser.add_argument("--no-smooth", **NO_SMOOTH_OPTION)
    parser.add_argument("--register", **REGISTER_OPTION)


#: ``maps --help``'s examples (a test parses each).
MAPS_EXAMPLES = (
    "napari-mr-reparam maps pdw.nii.gz t2w.nii.gz t1w.nii.gz -o maps/ --input-te 15 100 15 "
    "--input-tr 3000 3000 500",
    "napari-mr-reparam maps dicom_multi_echo_series/ -o maps_dicom/",
    "napari-mr-reparam maps t1w.nii.gz -o maps_one/ --input-preset MPRAGE",
)


def add_maps_command(sub) -> None:
    """The ``maps`` sub-command."""
    mp = sub.add_parser("maps", help="PD, T1 and T2 maps from co-registered images of one subject",
                        description="Write proton density, T1 (ms) and T2 (ms) maps of one subject, fitted to "
                                    "its images (each with its own TE, TR, TI, flip angle), and which of "
                                    "them the images determine.",
                        **examples(*MAPS_EXAMPLES))
    mp.add_argument("input", nargs="+", type=os.path.expanduser,
                    help="NIfTI or FreeSurfer (.mgz) files, or DICOM series (each DICOM "
                    "acquisition is one input)")
    mp.add_argument("-o", "--output", required=True, type=os.path.expanduser,
                    help="output folder: PD, T1map, T2map, determined (bits: 1 PD, 2 T1, 4 T2 where the inputs "
                         "determine it) and, for a multi-echo train fitted with --echo-train epg, b1 (the "
                         "refocusing flip-angle scale), each .nii.gz with its .json sidecar (or of --suffix's "
                         "type), and maps.json")
    mp.add_argument("--suffix", default=".nii.gz",
                    help="type of the map files (default .nii.gz; .dcm writes each map as a DICOM series, "
                         "in the first input's study where it is DICOM)")
    add_acquisition_options(mp)
    mp.add_argument("--model", default="physics",
                    help="network whose single-image maps start and tie the fit (default physics; "
                         "'none' for a fit without it)")
    mp.add_argument("--device", **DEVICE_OPTION)
    mp.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    mp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    mp.set_defaults(func=cmd_maps)


def _add(parser, name: str, **kw) -> None:
    """Add an option unless ``predict`` already defines it (then its definition serves)."""
    if name not in parser._option_string_actions:
        parser.add_argument(name, **kw)


def add_predict_options(parser) -> None:
    """Options ``predict`` gains: ``--joint``, ``--preset``, target TI/flip, per-input times."""
    from .command import positive_ms as _positive_ms
    from .presets import PRESETS

    _add(parser, "--joint", action="store_true",
         help="the inputs are images of one subject: fit joint maps and render the targets from "
              "them (without it, several inputs are several subjects)")
    _add(parser, "--preset", metavar="NAME", nargs="+",
         help=f"target contrast(s) by name ({', '.join(PRESETS)}; several: maps once, a file each); "
              "--te/--tr/--ti/--flip override one preset's values")
    _add(parser, "--flip", type=float, help="target flip angle, degrees")
    _add(parser, "--input-ti", type=_positive_ms, nargs="+", metavar="MS",
         help="--joint: input inversion time(s), ms, one per input")
    _add(parser, "--input-flip", type=float, nargs="+", metavar="DEG",
         help="--joint: input flip angle(s), degrees, one per input")
    _add(parser, "--input-sequence", nargs="+", metavar="SEQ",
         help="--joint: spin_echo, inversion_recovery or gradient_echo per input")
    _add(parser, "--scale", **{**SCALE_OPTION, "default": None, "help": "--joint: " + SCALE_OPTION["help"]})
    _add(parser, "--echo-train", **{**ECHO_TRAIN_OPTION, "default": None,
                                    "help": "--joint: " + ECHO_TRAIN_OPTION["help"]})
    _add(parser, "--no-smooth", **{**NO_SMOOTH_OPTION, "help": "--joint: " + NO_SMOOTH_OPTION["help"]})
    _add(parser, "--register", **{**REGISTER_OPTION, "help": "--joint: " + REGISTER_OPTION["help"]})


#: Options of the joint fit that ``predict`` takes with ``--joint`` only, by attribute.
JOINT_ONLY = {"register": "--register", "scale": "--scale", "echo_train": "--echo-train",
              "no_smooth": "--no-smooth"}


def refuse_joint_options(args) -> None:
    """An option of the joint fit of several images (:data:`JOINT_ONLY`) given to ``predict``
    without ``--joint``, where each input is predicted alone and it would do nothing, is a
    one-line ValueError."""
    if getattr(args, "joint", False):
        return
    for attr, option in JOINT_ONLY.items():
        if getattr(args, attr, None) not in (None, False):
            raise ValueError(f"{option} applies to --joint (several images of one subject) and maps; without "
                             "--joint each input is predicted alone")


def _listed(value) -> list:
    """An option's values as a list (options defined elsewhere may take one value)."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


# ----------------------------------------------------------------------------- inputs

def load_inputs(paths: list[str], acquisition: int | None = None, times_given=()) -> list:
    """Volumes of the inputs, in order: a NIfTI file is one (a 4-D one of a few volumes one
    per volume), a DICOM series one per acquisition (only the ``acquisition``-th, 1-based,
    where given, of a series or 4-D file). ``times_given``
    (:func:`input_times_given`) lets explicit times win over a sidecar written in milliseconds.
    A volume with no image in it (empty, all NaN, one value) is a one-line ValueError naming
    its file, before any work."""
    from . import dicom
    from .inference import require_contrast
    from .io import load_volumes, refuse_label_map, refuse_map

    volumes = []
    for text in paths:
        path, first = Path(text), len(volumes)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
        if dicom.looks_like_series(path):
            left_out = [line] if (line := images_beside_series_line(path)) else []
            volumes += dicom.choose_acquisition(dicom.read_series(path, left_out=left_out), acquisition)
            for line in left_out:
                print(f"notice: {line}", file=sys.stderr)
            for volume in volumes[first:] if path.is_file() else ():
                volume.extra["input_file"] = str(path)  # the file given, for its record (its source is the folder)
        elif path.is_dir():
            raise no_inputs_in(path, images=False)
        else:
            found = load_volumes(path, times_given)  # a 4-D NIfTI file: one per volume
            if len(found) == 1:
                refuse_label_map(found[0], path.name)
            volumes += dicom.choose_acquisition(found, acquisition) if len(found) > 1 else found
            notice_ignored_sidecar(found[0], path.name)
        for volume in volumes[first:]:
            refuse_map(volume, path.name)  # a map (PD, T1, T2) reopened is no scan to fit
            try:
                require_contrast(volume.data)
            except ValueError as e:
                raise ValueError(f"{path.name}: {e}") from None
    return volumes


def folder_files(paths: list[str], notes: list | None = None) -> list[str]:
    """``paths`` with each folder that holds NIfTI files or images replaced by those files
    (sorted), as ``predict`` takes several subjects; a DICOM series folder stays one input
    (images beside the series too: :func:`images_beside_series`), and a folder holding
    neither is a one-line ValueError naming what was expected. A folder holding NIfTI files
    beside DICOM files of its own gives both: each file, and the folder as its DICOM series,
    which a line appended to ``notes`` (where given) says."""
    from . import dicom
    from .file_types import readable_files

    out = []
    for text in paths:
        path = Path(text)
        files = readable_files(path) if path.is_dir() else []
        if path.is_dir() and not files and not dicom.looks_like_series(path):
            raise no_inputs_in(path)
        if images_beside_series(path):  # a series' folder with a thumbnail: the series
            files = []
        out += [str(p) for p in files] or [text]
        own_series = bool(files) and any(p.is_file() and dicom.is_dicom(p) for p in path.iterdir())
        if own_series:  # DICOM of its own
            out.append(text)
            if notes is not None:
                notes.append(f"notice: {path.name}: holds DICOM files beside its {len(files)} other image "
                             f"file{'s' if len(files) > 1 else ''}: each is an input, and the folder's DICOM "
                             "series too")
        if files:
            out += [str(p) for p in _links_to_nothing(path)]  # each an input that fails in one line
            given = {Path(p).resolve() for p in paths}  # a subfolder given as an input of its own is read
            if not own_series and notes is not None and (line := _subfolders_left_line(path, given)):
                notes.append(line)
    return out


def _links_to_nothing(folder: Path) -> list[Path]:
    """Links in ``folder`` named as an input file would be, whose target does not exist."""
    from .file_types import IMAGE_SUFFIXES, VOLUME_SUFFIXES, suffix_of

    return sorted(p for p in folder.iterdir()
                  if p.is_symlink() and not p.exists() and suffix_of(p) in VOLUME_SUFFIXES + IMAGE_SUFFIXES)


def _subfolders_left_line(folder: Path, given=frozenset()) -> str:
    """The notice on the subfolders of an input folder of files that hold something to read
    (files, or a DICOM series): they are not inputs unless given as such (``given``: the
    resolved paths given). Empty where none."""
    from . import dicom
    from .file_types import readable_files

    left = sorted(p.name for p in folder.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and p.resolve() not in given
                  and (readable_files(p) or dicom.looks_like_series(p)))
    if not left:
        return ""
    names = ", ".join(left[:4]) + (f" and {len(left) - 4} more" if len(left) > 4 else "")
    return (f"notice: {folder}: its subfolder{'s' if len(left) > 1 else ''} {names} "
            f"{'are' if len(left) > 1 else 'is'} not read (the files in it are): give "
            f"{'each' if len(left) > 1 else 'it'} as an input of its own")


def read_as_series(path: Path) -> bool:
    """Whether :func:`folder_files` reads the folder ``path`` as a DICOM series (recursively):
    a folder holding a series and no other image files (a thumbnail beside it aside), or
    DICOM files directly beside its image files."""
    from . import dicom
    from .file_types import readable_files

    if not path.is_dir() or not dicom.looks_like_series(path):
        return False
    files = readable_files(path)
    return not files or bool(images_beside_series(path)) or any(p.is_file() and dicom.is_dicom(p)
                                                                  for p in path.iterdir())


def images_beside_series(path: Path) -> list[Path]:
    """The 2-D images (a PACS export's thumbnail, say) in a folder that holds a DICOM series
    and no NIfTI or FreeSurfer volume: the series is the folder's input, they are not."""
    from . import dicom
    from .file_types import IMAGE_SUFFIXES, readable_files, suffix_of

    files = readable_files(path) if path.is_dir() else []
    if not files or any(suffix_of(f) not in IMAGE_SUFFIXES for f in files) or not dicom.looks_like_series(path):
        return []
    return files


def images_beside_series_line(path: Path) -> str:
    """The notice for :func:`images_beside_series` (empty where there are none)."""
    images = images_beside_series(path)
    if not images:
        return ""
    names = ", ".join(p.name for p in images[:3]) + (f" and {len(images) - 3} more" if len(images) > 3 else "")
    return f"{path}: its DICOM series is read; the image file(s) beside it are left out ({names})"


def refuse_shared_outputs(pairs) -> None:
    """Two inputs that would write one file, an output or the sidecar beside it (inputs of
    one file name from two folders; ``x.nii`` and ``x.nii.gz``, whose outputs share
    ``x_TE100_TR3000.json``), are a one-line ValueError, before anything is computed.
    ``pairs``: (input, output)."""
    from .volume_writing import written_files

    first = {}
    for source, out in pairs:
        for written in written_files(out):
            other = first.setdefault(written, source)
            if other is not source and str(other) != str(source):
                raise ValueError(f"{other} and {source} would both be written to {written} (inputs of one file "
                                 "name); rename one, or predict them in separate runs")


def refuse_repeated_inputs(paths: list[str], why: str = "both would be written to the same outputs",
                           expand: bool = True) -> None:
    """An input given twice (itself, or, ``expand``, in a folder given too:
    :func:`folder_files`; a DICOM file in a series' folder given too, either way) is a
    one-line ValueError, before any work; ``why`` says what it would do (``predict``: be
    written twice to the same outputs; ``maps`` and ``--joint``: :data:`FITTED_TWICE`)."""
    seen = {}
    for index, text in enumerate(folder_files(paths) if expand else paths):
        at, first = seen.setdefault(Path(text).resolve(), (index, text))
        if at != index:
            again = "twice" if first == text else f"twice ({first} and {text})"
            raise ValueError(f"{text} is given {again}: {why}; give it once")
    series = [(Path(text).resolve(), text) for text in paths if read_as_series(Path(text))]
    for text in paths:
        inside = next((folder for resolved, folder in series
                       if resolved in Path(text).resolve().parents), None)
        if inside is not None:
            raise ValueError(f"{text} is read in {inside} too: {why}; give the series' folder or its files, "
                             "not both")


def refuse_inputs_as_outputs(outputs, inputs) -> None:
    """An output, or the sidecar written beside it, that is one of the ``inputs`` or an
    input's BIDS sidecar is a one-line ValueError, before any work and even with
    ``--overwrite``: writing it would destroy what it is made from."""
    from .volume_writing import written_files

    read = {}
    for text in inputs:
        read.setdefault(Path(text).resolve(), f"the input {text}")
        for side in _own_sidecar(text):
            read.setdefault(side.resolve(), f"the sidecar of the input {text}")
    for out in outputs:
        for written in written_files(out):
            if written.resolve() in read:
                raise ValueError(f"{written} would be written over {read[written.resolve()]}; an output never "
                                 "replaces an input or its sidecar (not even with --overwrite): choose another "
                                 "output name or folder")


def _own_sidecar(path) -> list[Path]:
    """The BIDS sidecar an input file is read with (a NIfTI, FreeSurfer or image file's;
    none for a DICOM series), as a list of none or one."""
    from .file_types import IMAGE_SUFFIXES, VOLUME_SUFFIXES, suffix_of
    from .sidecars import sidecar_path

    return [sidecar_path(path)] if suffix_of(path) in VOLUME_SUFFIXES + IMAGE_SUFFIXES else []


def no_inputs_in(folder: Path, images: bool = True) -> ValueError:
    """The one-line error for an input folder holding nothing to read: empty, or without
    the files expected (``images``: NIfTI and 2-D images as well as a DICOM series)."""
    from .file_types import IMAGE_SUFFIXES, VOLUME_SUFFIXES, suffix_of

    expected = (f"NIfTI files (.nii, .nii.gz), FreeSurfer volumes (.mgz), 2-D images ({', '.join(IMAGE_SUFFIXES)}) "
                "or a DICOM series"
                if images else "a DICOM series (give NIfTI files and images as files)")
    held = list(folder.iterdir())
    readable = any(suffix_of(p) in VOLUME_SUFFIXES + IMAGE_SUFFIXES for p in held)
    has = "is empty" if not held else ("holds no DICOM series" if readable else "holds no file to read")
    return ValueError(f"{folder}: the folder {has}; expected {expected}")


def refuse_acquisition_with_joint(args) -> None:
    """``--acquisition N`` picks one volume to predict from alone, ``--joint`` fits all the
    inputs' volumes together: both at once is a one-line ValueError."""
    if getattr(args, "joint", False) and getattr(args, "acquisition", None) is not None:
        raise ValueError(f"--acquisition {args.acquisition} picks one acquisition to predict from alone, and "
                         "--joint fits every acquisition of the inputs together; leave out one of them")


def refuse_acquisition_without_dicom(paths, acquisition: int | None) -> None:
    """``--acquisition N`` picks one acquisition of a DICOM series or one volume of a 4-D
    NIfTI file: given with an input that is neither (a 3-D NIfTI file, an image, a folder
    of them), it is a one-line ValueError."""
    from . import dicom
    from .io import volume_count

    if acquisition is None:
        return
    for text in paths:
        path = Path(text)
        if path.exists() and not dicom.looks_like_series(path) and volume_count(path) < 2:
            raise ValueError(f"{path.name}: --acquisition {acquisition} picks one acquisition of a DICOM series "
                             "or one volume of a 4-D NIfTI file, and this input is neither; leave out "
                             "--acquisition for it")


def input_times_given(args) -> set[str]:
    """The input times (``te_ms``, ``tr_ms``, ``ti_ms``) that the options or
    ``--input-preset`` give for every input: a sidecar's times are not used for them."""
    given = set()
    for name in ("te", "tr", "ti"):
        values = _listed(getattr(args, f"input_{name}", None))
        if values and all(v is not None for v in values):
            given.add(f"{name}_ms")
    return given


def notice_ignored_sidecar(volume, name: str) -> None:
    """The reader's notices on the input (:func:`~napari_mr_reparam.io.load_volume`: complex
    voxels read as their magnitude, say), and one when its sidecar times were set aside for
    the times given."""
    for line in (volume.extra or {}).get("notices", ()):
        print(f"notice: {line}", file=sys.stderr)
    ignored = (volume.extra or {}).get("sidecar_times_ignored")
    if ignored:
        print(f"notice: {name}: {ignored}; the input times given are used", file=sys.stderr)


def plane_notice(volume, name: str) -> None:
    """:func:`plane_line` printed, clear of the progress bar, where there is one."""
    from tqdm import tqdm

    line = plane_line(volume, name)
    if line:
        tqdm.write(line, file=sys.stderr)


def plane_line(volume, name: str) -> str | None:
    """The notice where the slices a network reads are not axial (a 2-D series of another
    plane, kept as acquired); else None."""
    from .orientation import slice_plane

    plane = slice_plane(volume)
    if plane in (None, "axial"):
        return None
    return (f"notice: {name}: its slices are {plane}; the network was trained on axial slices and reads others "
            "1-3 dB worse (the repository's training/RESULTS.md, \"Does the plane of the slices matter\")")


def used_description(volume, args) -> str:
    """:func:`~napari_mr_reparam.dicom.describe` of a volume at the TE/TR/TI it is read at:
    the options' (or ``--input-preset``'s) where given, else its own."""
    from dataclasses import replace

    from .dicom import describe

    used = {field: option if option is not None else getattr(volume, field)
            for field, option in (("te_ms", _one(args.input_te)), ("tr_ms", _one(args.input_tr)),
                                  ("ti_ms", _one(args.input_ti)))}
    return describe(replace(volume, **used))


def _one(value):
    """An option's one value (options that take one per input hold a list), else None."""
    values = value if isinstance(value, (list, tuple)) else [value]
    return values[0] if len(values) == 1 else None


def _per_input(values, n: int, what: str) -> list:
    if values is None:
        return [None] * n
    values = list(values) if isinstance(values, (list, tuple)) else [values]
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise ValueError(f"{len(values)} values for {what} but {n} inputs: give one, or one per input")
    return values


#: The per-input acquisition options, by attribute, as the command line names them (the
#: preset's first: its count is checked first).
INPUT_OPTIONS = {"input_preset": "--input-preset", "input_te": "--input-te", "input_tr": "--input-tr",
                 "input_ti": "--input-ti", "input_flip": "--input-flip", "input_sequence": "--input-sequence"}


def acquisitions_of(volumes, args, origins: list | None = None) -> list:
    """Each input's :class:`~napari_mr_reparam.simulate.Acquisition`: options first, then
    the volume's tags or sidecar; a missing TE or TR names the option. An input that names
    nothing of its acquisition is read as the preset it looks like only where it is the one
    input (:func:`refuse_guesses`). ``origins``: a list that takes each input's (where its
    TE/TR came from, :func:`times_source` or ``guessed``; the input preset it was read as,
    or None), for its record (:func:`inputs_record`)."""
    n = len(volumes)
    given = {attr: _per_input(_listed(getattr(args, attr, None)) or None, n, option)
             for attr, option in INPUT_OPTIONS.items()}
    refuse_one_time_for_many(volumes, args)
    _notice_overrides(volumes, {attr: given[attr] for attr in ("input_te", "input_tr", "input_ti")}, args)
    names = input_names(volumes)
    each = [{attr: values[i] for attr, values in given.items()} for i in range(n)]
    refuse_guesses(volumes, each, names)
    found = [_acquisition_of(v, name, own, several=n > 1) for v, name, own in zip(volumes, names, each)]
    refuse_unread_options(args, [acq.sequence for acq, _ in found], names)
    for volume, name, (acq, _) in zip(volumes, names, found):
        try:
            refuse_unstated(acq.sequence, acq.ti_ms, acq.flip_deg, volume.kind == "dicom")
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    if origins is not None:
        origins.extend(origin for _, origin in found)
    return [acq for acq, _ in found]


def refuse_one_time_for_many(volumes, args) -> None:
    """One ``--input-te`` (``--input-tr``) value given for several acquisitions of one
    DICOM series that lack that tag and that the tags tell apart by no other time (the
    echoes of a train without EchoTime) is a one-line ValueError naming the series: one
    value cannot be each one's."""
    series: dict = {}
    for volume in volumes:
        if volume.kind == "dicom":
            series.setdefault((volume.extra or {}).get("series"), []).append(volume)
    times = {"te": "te_ms", "tr": "tr_ms", "ti": "ti_ms"}
    for label, members in series.items():
        for tag, name in (("EchoTime", "te"), ("RepetitionTime", "tr")):
            given = _listed(getattr(args, f"input_{name}", None))
            if len(members) < 2 or len(given) != 1 or any(getattr(v, times[name]) is not None for v in members):
                continue
            others = {tuple(getattr(v, f) for key, f in times.items() if key != name) for v in members}
            if len(others) < len(members):
                raise ValueError(
                    f"{label}: its {len(members)} acquisitions have no {tag} tag and differ in nothing else "
                    f"the tags state, so one --input-{name} cannot be each one's: predict one with "
                    f"--acquisition N --input-{name} MS, or give each its own (maps, or predict --joint, "
                    f"with one --input-{name} per image)")


def refuse_unstated(sequence: str, ti_ms, flip_deg, dicom: bool) -> None:
    """An input whose sequence reads a TI or flip angle that neither the options nor its
    sidecar (or tags: ``dicom``) give is a one-line ValueError: either sets the contrast,
    so neither is guessed."""
    from .acquisition import SEQUENCE_READS

    reads = SEQUENCE_READS.get(sequence, ())
    for field, value, option, key in (("ti", ti_ms, "--input-ti MS", "InversionTime (s)"),
                                      ("flip", flip_deg, "--input-flip DEG", "FlipAngle")):
        if field in reads and value is None:
            what = "inversion time" if field == "ti" else "flip angle"
            raise ValueError(f"{with_article(sequence_words(sequence))} input needs its {what}: "
                             f"{option}" + ("" if dicom else f", or its sidecar's {key}"))


def input_names(volumes) -> list[str]:
    """Each input's name in messages and records: its path named from where the inputs'
    paths part (:func:`~napari_mr_reparam.file_types.path_names`: ``T1/site4/plate5``, ``T2/site4/plate5``)."""
    short = path_names([_given(v) for v in volumes])
    return [short[_given(v)] if v.source else f"input {i}" for i, v in enumerate(volumes, 1)]


def _given(volume) -> str:
    """What an input was given as: a DICOM file given by itself, else its source
    (:func:`_source`: the file, or the series' folder)."""
    return (volume.extra or {}).get("input_file") or _source(volume)


def names_nothing(volume, given: dict) -> bool:
    """Whether neither the options (``given``: this input's values) nor the volume's sidecar
    or tags say anything of its acquisition."""
    own = (volume.te_ms, volume.tr_ms, volume.ti_ms, volume.flip_deg, getattr(volume, "sequence", None))
    return all(v is None for v in (*given.values(), *own))


def refuse_guesses(volumes, given: list[dict], names: list[str]) -> None:
    """Several images of one subject are not read as the contrast each looks like (two
    could be given one acquisition, and maps fitted to them would mean nothing): those
    that name nothing of their acquisition (``given``: each one's option values) are a
    one-line ValueError naming them, with how to give their times."""
    if len(volumes) < 2:
        return
    lacking = [name for v, own, name in zip(volumes, given, names) if names_nothing(v, own)]
    if lacking:
        raise ValueError(f"{', '.join(dict.fromkeys(lacking))}: {one_time_missing(None, None, several=True)}; "
                         "several images of one subject are not read as the contrast each looks like")


def _acquisition_of(volume, name: str, given: dict, several: bool) -> tuple:
    """One input's (Acquisition, (times source, input preset or None)): ``given`` (its
    values of :data:`INPUT_OPTIONS`), else what its tags or sidecar state, else (the one
    input) the preset its contrast looks like."""
    from .acquisition import SEQUENCE_READS
    from .dicom import unknown_cycle
    from .fit_information import make_acquisition

    if names_nothing(volume, given) and (guessed := _guessed(volume, name)) is not None:
        return guessed
    te, tr = given["input_te"] or volume.te_ms, given["input_tr"] or volume.tr_ms
    if tr is None and te is not None and unknown_cycle(volume):
        raise ValueError(f"{name}: {unknown_cycle(volume)}")
    if te is None or tr is None:
        raise ValueError(f"{name}: {one_time_missing(te, tr, several=several)}")
    ti, flip = given["input_ti"] or volume.ti_ms, given["input_flip"] or volume.flip_deg
    try:
        sequence = input_sequence(given["input_sequence"], getattr(volume, "sequence", None), ti)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    reads = SEQUENCE_READS.get(sequence, ())
    try:
        acq = make_acquisition(sequence, te, tr, ti if "ti" in reads else None, flip if "flip" in reads else None)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    return acq, (times_source(given["input_te"], given["input_tr"], volume), given["input_preset"])


def input_sequence(given: str | None, stated: str | None, ti_ms) -> str:
    """An input's sequence, the one rule of ``predict``, ``predict --joint`` and ``maps``:
    ``given`` (``--input-sequence`` or ``--input-preset``), else ``stated`` (its sidecar's
    or DICOM tags'), else inversion recovery where its TI is known, else spin echo. A stated
    sequence no input can have (a double inversion recovery this package rendered) is a
    one-line ValueError."""
    from .acquisition import stated_sequence
    from .physics import INPUT_SEQUENCES

    sequence = given or stated_sequence(stated, ti_ms)
    if sequence not in INPUT_SEQUENCES:
        raise ValueError(f"{with_article(sequence_words(sequence))} image cannot be an input (inputs: "
                         f"{', '.join(map(sequence_words, INPUT_SEQUENCES))}); "
                         "if it is one of those, "
                         "say which with --input-sequence")
    return sequence


#: Input options that only some sequences read: the option, and what it sets
#: (:data:`~napari_mr_reparam.acquisition.SEQUENCE_READS`).
READ_BY_SOME = {"input_ti": ("--input-ti", "ti"), "input_flip": ("--input-flip", "flip")}


def refuse_unread_options(args, sequences: list[str], names: list[str]) -> None:
    """``--input-ti`` or ``--input-flip`` given (not set by ``--input-preset``) for an input
    whose sequence (``sequences``: each input's, :func:`input_sequence`) does not read it is a
    one-line ValueError naming the input, not silently dropped; one value for several inputs
    only where none of them reads it."""
    from .acquisition import SEQUENCE_READS
    from .physics import INPUT_SEQUENCES

    for attr, (option, field) in READ_BY_SOME.items():
        values = _listed(getattr(args, attr, None))
        if not values or attr in getattr(args, "input_preset_fields", ()):
            continue
        unread = [i for i, s in enumerate(sequences) if field not in SEQUENCE_READS[s]]
        if not unread or (len(values) == 1 and len(unread) < len(sequences)):
            continue
        i = unread[0]
        readers = " or ".join(s for s in INPUT_SEQUENCES if field in SEQUENCE_READS[s])
        raise ValueError(f"{names[i]}: {option} {values[0 if len(values) == 1 else i]:g} applies to {readers} "
                         f"inputs, and this input is read as {sequences[i].replace('_', ' ')}; leave out "
                         f"{option}, or name its sequence with --input-sequence {readers}")


def times_source(te_given, tr_given, volume) -> str:
    """Where an input's TE and TR came from: ``given`` (the options or ``--input-preset``;
    ``te_given``, ``tr_given``: their values, None where not given), its ``DICOM tags``,
    ``BIDS sidecar`` or ``FreeSurfer header``, ``default``, or two of those (``given and
    BIDS sidecar``)."""
    own = volume.times_stated_by
    origins = ["given" if value is not None else own if getattr(volume, f"{n}_ms") is not None else "default"
               for n, value in (("te", te_given), ("tr", tr_given))]
    return " and ".join(dict.fromkeys(origins))


def _guessed(volume, name: str):
    """``(Acquisition, ("guessed", preset))`` of the input preset an input that names
    nothing of its acquisition looks like (:func:`~napari_mr_reparam.contrast.guess_input`),
    with a notice; None without the bundled classifier."""
    from .contrast import guess_input, read_as, voxel_mm
    from .fit_information import make_acquisition
    from .presets import get_preset
    from .weights import WeightsError

    try:
        guess = read_as(guess_input(volume.data), voxel_mm(volume))
    except WeightsError:
        return None
    preset = get_preset(guess.reading)
    print(guessed_notice(name, guess), file=sys.stderr)
    return make_acquisition(preset.sequence, preset.te, preset.tr, preset.ti, preset.flip_deg), ("guessed", preset.name)


def guessed_notice(name: str, guess) -> str:
    """The notice on an input read as the preset its contrast looks like (``guess``: a
    :class:`~napari_mr_reparam.contrast.ContrastGuess`), by ``predict`` and ``maps`` alike."""
    from .presets import get_preset

    return (f"notice: {name}: no input acquisition given or in a sidecar; the image looks like {guess.describe()}: "
            f"read as {get_preset(guess.reading).describe()}; name its acquisition with --input-preset or "
            "--input-te/--input-tr")


def _notice_overrides(volumes, given: dict, args) -> None:
    """One notice per option whose values replace other times that the inputs' DICOM tags
    or sidecars state (an option wins, but a multi-echo series given one --input-te is
    more likely a slip than a wish)."""
    fields = {"input_te": ("te_ms", "TE"), "input_tr": ("tr_ms", "TR"), "input_ti": ("ti_ms", "TI")}
    for attr, values in given.items():
        field, what = fields[attr]
        stated = [(value, getattr(v, field)) for v, value in zip(volumes, values)]
        replaced = [own for value, own in stated
                    if value is not None and own is not None and abs(value - own) > 1e-3]
        if not replaced:
            continue
        said = (f"--input-preset {' '.join(_listed(args.input_preset))}"
                if attr in getattr(args, "input_preset_fields", ()) else "--" + attr.replace("_", "-"))
        shown = ", ".join(f"{t:g}" for t in replaced[:4]) + (", ..." if len(replaced) > 4 else "")
        print(f"notice: {said} replaces the {what} that the DICOM tags or sidecars of {len(replaced)} of "
              f"{len(volumes)} inputs state ({shown} ms)", file=sys.stderr)


def registered_inputs(volumes) -> tuple[list, list]:
    """The inputs registered onto the first (:func:`~napari_mr_reparam.registration.registered_by_name`),
    with a notice of each one's motion, and (name, motion) per registered input."""
    from .registration import registered_by_name

    further = len(volumes) - 1
    print(f"notice: registering {further} input{'s' if further > 1 else ''} onto {_source(volumes[0])} "
          "(a few seconds each)", file=sys.stderr)
    out, pairs = registered_by_name(volumes)
    for name, motion in pairs:
        print(f"notice: {name} registered onto {_source(volumes[0])}: moved {motion.describe()}", file=sys.stderr)
    return out, pairs


def on_first_grid(volumes, registered: bool = False) -> tuple[list, list[str]]:
    """The inputs on the first input's grid (:func:`~napari_mr_reparam.grids.on_one_grid`:
    NIfTI and DICOM inputs on other grids resampled by their affines), with a notice
    naming those resampled (``registered``: their affines corrected for motion first), and
    their names."""
    from .grids import on_one_grid, slab_note

    out, moved = on_one_grid(volumes)
    count = Counter(_source(v) for v in volumes)  # acquisitions of one folder: told apart by their place
    names = [_source(v) if count[_source(v)] == 1 else f"{_source(v)} (input {i})" for i, v in enumerate(volumes, 1)]
    if moved:
        first = volumes[0]
        size = " x ".join(f"{s:g}" for s in first.spacing)
        print(f"notice: {_named_by_source(volumes, moved, count)} resampled onto the grid of "
              f"{path_names([_source(v) for v in volumes])[_source(first)]} "
              f"({'x'.join(map(str, first.data.shape))}, {size} mm) by their affines"
              + ("" if registered else "; the scans are taken as of one session, without motion between them "
                                       "(--register corrects it)"),
              file=sys.stderr)
    short = path_names([_source(v) for v in volumes])
    for source, note in dict.fromkeys((_source(out[i]), slab_note(out[i])) for i in moved if slab_note(out[i])):
        print(f"notice: {short[source]}: {note.strip(' ()')}", file=sys.stderr)
    return out, [names[i] + slab_note(out[i]) for i in moved]


def _source(volume) -> str:
    return str(volume.source) if volume.source else "input"


def inputs_record(volumes, acqs, origins=None) -> dict:
    """The sidecar field of a render's inputs, each's acquisition as the maps used it
    (:func:`~napari_mr_reparam.volume_writing.input_record`), named by its path from where
    the inputs' paths part (:func:`input_names`), with which of its file's or series'
    acquisitions it is (``SERIES_acqN``) where that holds several, and where its
    acquisition came from and the input preset it was read as (``origins``, from
    :func:`acquisitions_of`): ``Input`` for one, ``Inputs`` (a list) for several."""
    from .acquisition import Acquisition
    from .volume_writing import input_record

    names, count, seen = input_names(volumes), Counter(_given(v) for v in volumes), Counter()
    records = []
    for v, a, name, (source, preset) in zip(volumes, acqs, names, origins or [(None, None)] * len(volumes)):
        seen[_given(v)] += 1
        part = f"{(v.extra or {}).get('series', name)}_acq{seen[_given(v)]}" if count[_given(v)] > 1 else None
        records.append(input_record(Acquisition(a.te, a.tr, a.sequence, ti_ms=a.ti, flip_deg=a.flip_deg), source,
                                    file=name if v.source else None, preset=preset, part=part)["Input"])
    return {"Input": records[0]} if len(records) == 1 else {"Inputs": records}


def one_gain_note(count: int) -> str:
    """The notice for lone images of several files fitted at one receiver gain (``--scale
    auto``): right for images of one series saved apart, wrong for scans of separate series."""
    return (f"the {count} inputs come from files of their own and are fitted at one receiver gain, as images of "
            "one series saved apart (a dual echo) are; scans of separate series (a T1-weighted and a "
            "T2-weighted, each stored at its own gain) need --scale per-input (taken by default where "
            "BIDS sidecars name each one's series: SeriesNumber), or the renders' contrast follows the gains")


def gain_each_note(scales) -> str:
    """The notice for inputs fitted at a gain each by default (their sidecars or DICOM tags
    name series of other protocols): the gains the fit took, and how to take one."""
    gains = ", ".join(f"{g:.3g}" for g in scales)
    return (f"the {len(scales)} inputs are series of other protocols (named by their sidecars or DICOM tags), so "
            f"each is fitted at a receiver gain of its own, estimated against the network's maps ({gains}); "
            "where the scanner kept one gain for all, --scale shared fits them at it")


def series_at_one_gain_note(volumes, acquisitions) -> str:
    """The notice for a DICOM folder whose images are of several series, not one protocol's
    set (:func:`~napari_mr_reparam.series_gains.one_protocol`), fitted at the folder's one
    gain: right where the scanner kept one, wrong for series stored at gains of their own
    (empty where there is no such folder)."""
    from collections import defaultdict

    from .series_gains import one_protocol

    folders = defaultdict(list)
    for volume, acq in zip(volumes, acquisitions):
        if volume.kind == "dicom":
            folders[volume.source].append((volume.extra.get("series_uid"), acq))
    for folder, held in folders.items():
        count = len({uid for uid, _ in held})
        if count > 1 and not one_protocol([acq for _, acq in held]):
            return (f"{Path(folder).name}: its {count} series are fitted at one receiver gain, as one protocol's "
                    "images are; series of other protocols stored at gains of their own (a T1-weighted and a "
                    "T2-weighted) need --scale per-input, or the renders' contrast follows the gains")
    return ""


def series_gains_note(sources, maps, labels=None) -> str:
    """One line on the receiver gain of each series of inputs but the first, and how it was
    found. ``sources``: each input's path; ``labels``: each input's series as the fit took
    it (default: its path), each series named by its inputs' paths
    (:func:`_named_by_source`)."""
    from types import SimpleNamespace

    labels = list(sources) if labels is None else list(labels)
    members: dict = {}
    for i, label in enumerate(labels):
        members.setdefault(label, []).append(i)
    volumes = [SimpleNamespace(source=source) for source in sources]
    count = Counter(sources)
    how = {"misfit": "from the fit's misfit", "prior": "from the prior's times: the inputs cannot tell it"}
    short = path_names(sources)

    def name(group):  # a whole path by its name, else its inputs
        held = {sources[i] for i in group}
        whole = len(held) == 1 and count[sources[group[0]]] == len(group)
        return short[sources[group[0]]] if whole else _named_by_source(volumes, group, count)

    groups = list(members.values())
    parts = [f"{name(group)} x{maps.scales[group[0]]:.3g} ({how[found]})"
             for group, found in zip(groups[1:], maps.gains_found[1:])]
    what = "input path" if labels == list(sources) else "series"
    return f"one receiver gain per {what}, relative to the first, {name(groups[0])}: " + "; ".join(parts)


def _named_by_source(volumes, chosen, count) -> str:
    """The inputs ``chosen`` (0-based) named by their source (:func:`~napari_mr_reparam.file_types.path_names`), the
    acquisitions of one folder or file together: ``plate5 (inputs 7-38)``; three or more
    files of one folder, each one input (the echoes of a train converted to a file each),
    by their folder: ``T2/plate5 (inputs 7-14)``, or where other inputs lie in that folder too
    (a BIDS ``anat`` folder), by the first file: ``sub-01_echo-1_MESE.nii.gz and 7 more
    (inputs 7-14)``."""
    sources = [_source(v) for v in volumes]
    short = path_names(sources)
    folder_of = {s: str(Path(s).parent) for s in sources}
    picked = set(chosen)
    others = {folder_of[s] for i, s in enumerate(sources) if i not in picked}
    lone_in = Counter(folder_of[sources[i]] for i in chosen if count[sources[i]] == 1)
    groups: dict = {}
    for i in chosen:
        source = sources[i]
        together = count[source] == 1 and lone_in[folder_of[source]] >= 3
        groups.setdefault(("folder", folder_of[source]) if together else source, []).append(i + 1)
    named = []
    for key, numbers in groups.items():
        if isinstance(key, tuple):
            first = sources[numbers[0] - 1]
            folder = str(Path(short[first]).parent)
            if key[1] in others:  # the folder names no one series
                named.append(f"{short[first]} and {len(numbers) - 1} more ({_input_numbers(numbers)})")
            else:
                named.append(f"{folder if folder != '.' else Path(key[1]).name} ({_input_numbers(numbers)})")
        elif count[key] == 1:
            named.append(short[key])
        else:
            named.append(f"{short[key]} ({_input_numbers(numbers)})")
    return ", ".join(named)


def _input_numbers(numbers: list[int]) -> str:
    """``inputs 7-38`` for a run of three or more, else ``input 2`` / ``inputs 4, 5``."""
    if numbers == list(range(numbers[0], numbers[-1] + 1)) and len(numbers) > 2:
        return f"inputs {numbers[0]}-{numbers[-1]}"
    return f"input{'s' if len(numbers) > 1 else ''} {', '.join(map(str, numbers))}"


def _engine(model: str, device: str):
    if model == "none":
        return None
    from .inference import Reparameterizer

    engine = Reparameterizer(model, device=device)
    if not engine.renders:
        raise ValueError(f"--model {model} is not a physics model; joint maps need one (or --model none)")
    return engine


#: Why --no-detail and --joint over several images do not go together.
NO_DETAIL_WITH_JOINT = ("--no-detail applies to renders from one image's network maps; --joint renders from "
                        "the joint maps of the inputs, which keep their resolution")


def _predict_engine(args):
    """The network of ``predict --preset`` and ``--joint``, loaded as ``predict`` loads it:
    ``--model`` or ``--weights``, ``--batch-size`` and the physics options (``--consistency``,
    ``--flip-average``, ``--no-detail``); a model that predicts images, not maps, is refused."""
    options = {"--weights": args.weights, "--consistency": args.consistency,
               "--flip-average": args.flip_average or None, "--no-detail": args.no_detail or None}
    if args.model == "none":
        given = [name for name, value in options.items() if value is not None]
        if given:
            raise ValueError(f"{given[0]} applies to a network; --model none fits the maps without one")
        return None
    if args.no_detail and args.joint and len(args.input) > 1:
        raise ValueError(NO_DETAIL_WITH_JOINT)
    from .inference import Reparameterizer

    engine = Reparameterizer(args.model, weights=args.weights, device=args.device, batch_size=args.batch_size,
                             consistency=args.consistency, flip_average=args.flip_average or None,
                             keep_detail=False if args.no_detail else None)
    if not engine.renders:
        raise ValueError(f"{engine.info.name} is not a physics model: it predicts images, not maps, and --preset "
                         "and --joint render from maps; use --model physics (or name the target with --te/--tr, "
                         "without --preset)")
    return engine


def refuse_input_seconds(args) -> None:
    """Input times that can only be seconds are refused before any file is read, by
    :class:`~napari_mr_reparam.acquisition.Acquisition`'s rule: the TR of an input named a
    gradient echo (``--input-sequence`` or ``--input-preset``) may be a few ms; of an
    input whose sequence is not named, the refusal says how to name it so."""
    from .units import refuse_seconds, seconds_checked_tr

    refuse_seconds(**{name: _listed(getattr(args, name, None)) or None for name in ("input_te", "input_ti")})
    trs, sequences = _listed(getattr(args, "input_tr", None)), _listed(getattr(args, "input_sequence", None))
    sequences = sequences * len(trs) if len(sequences) == 1 else sequences or [None] * len(trs)
    trs = trs * len(sequences) if len(trs) == 1 else trs
    for tr, sequence in zip(trs, sequences):
        try:
            refuse_seconds(input_tr=seconds_checked_tr(tr, sequence))
        except ValueError as exc:
            hint = "" if sequence else ("; a gradient echo's TR may be a few ms: name the input's sequence with "
                                        "--input-sequence gradient_echo")
            raise ValueError(f"{exc}{hint}") from None


def gains_of(volumes, choice: str, acquisitions=None):
    """The ``scale`` :func:`~napari_mr_reparam.joint_fit.fit_maps` takes for ``--scale
    choice``: a series label per input (the file or DICOM folder it came from) for
    ``per-series``; for ``auto``, :func:`~napari_mr_reparam.series_gains.by_source` (of the
    inputs' ``acquisitions``)."""
    from .series_gains import by_source, series_label

    labels = [v.source for v in volumes]
    if choice == "auto":
        return by_source([series_label(v, v.source) for v in volumes], acquisitions)
    return labels if choice == "per-series" else "per_input" if choice == "per-input" else "shared"


def one_time_missing(te, tr, several: bool = False) -> str:
    """Why an input whose TE or TR (ms, None where unknown) is missing cannot be read: the
    other is not guessed; which option gives it (``several``: one value per input)."""
    per = " (one per input)" if several else ""
    if te is None and tr is None:
        return (f"no TE or TR known; give --input-te/--input-tr{per} or --input-preset NAME, or a BIDS "
                "sidecar beside it")
    lacking, (other, value) = ("te", ("TR", tr)) if te is None else ("tr", ("TE", te))
    return (f"the input's {other} is known ({value:g} ms) but not its {lacking.upper()}, which is not guessed; "
            f"give it with --input-{lacking} MS{per}, or name the acquisition with --input-preset NAME")


def refuse_bad_angles(args) -> None:
    """Flip angles outside (0, 180] degrees (``--flip``, ``--input-flip``), or below a
    degree (radians: :func:`~napari_mr_reparam.acquisition.validate_flip`), are refused
    before any file is read."""
    from .acquisition import validate_flip

    for option, given in (("--flip", getattr(args, "flip", None)),
                          ("--input-flip", _listed(getattr(args, "input_flip", None)) or None)):
        validate_flip(given, option)


def fit_inputs(paths, args, model="physics", device="auto", engine=None, volumes=None, progress=None,
               total=None, origins: list | None = None, finished=None):
    """Volumes, acquisitions and :class:`~napari_mr_reparam.joint_result.JointMaps` of the inputs
    (voxels a scanner clipped count as lower bounds of their signal). ``engine``: the
    network already loaded for ``model`` (else it is loaded here); ``volumes``: the
    inputs already loaded from ``paths`` (else they are loaded here). ``progress(n)``
    counts the work done, of which ``total(n)`` is told the whole first, and ``finished()``
    is called when it is done, before the notices on the fit. ``origins``: a list that takes
    where each input's acquisition came from (:func:`acquisitions_of`)."""
    from .image_noise import noise_on_own_grids
    from .joint_fit import joint_maps, joint_work_units
    from .memory import shortage
    from .series_gains import one_gain_across_files, series_count, series_label

    volumes = load_inputs(paths, times_given=input_times_given(args)) if volumes is None else volumes
    if short := shortage(volumes[0].data.size, joint=len(volumes) > 1):  # the inputs go onto the first's grid
        print(f"warning: {short}", file=sys.stderr)
    acqs = acquisitions_of(volumes, args, origins)  # before registration: an input's times may be missing
    unmeasured = _notice_unmeasured(volumes, network=engine is not None or model != "none")
    scale = gains_of(volumes, getattr(args, "scale", None) or SCALE_OPTION["default"], acqs)
    sources = [_source(v) for v in volumes]
    noise = noise_on_own_grids(volumes)  # before registration or resampling can change it
    motions = []
    if getattr(args, "register", False) and len(volumes) > 1:
        volumes, motions = registered_inputs(volumes)
    volumes, resampled = on_first_grid(volumes, registered=bool(motions))
    if engine is None:
        engine = _engine(model, device)
    if total is not None:
        shape = volumes[0].data.shape
        total(shape[0] if engine is not None and len(volumes) == 1
              else joint_work_units(shape, engine=engine, series=series_count(scale)))
    maps = joint_maps([v.data for v in volumes], acqs, engine=engine, scale=scale, progress=progress,
                      clipped=[(v.extra or {}).get("saturated") for v in volumes], noise=noise,
                      echo_train=getattr(args, "echo_train", None) or ECHO_TRAIN_OPTION["default"],
                      smooth=not getattr(args, "no_smooth", False), spacing=volumes[0].spacing)
    maps.resampled = tuple(resampled)
    maps.registered = tuple(motions)
    if finished is not None:  # the progress bar ends before the notices on the fit
        finished()
    if (getattr(args, "scale", None) or SCALE_OPTION["default"]) == "auto" \
            and one_gain_across_files([series_label(v, v.source) for v in volumes], acqs):
        print(f"notice: {one_gain_note(len(volumes))}", file=sys.stderr)
    if scale != "per_input" and (line := series_at_one_gain_note(volumes, acqs)):
        print(f"notice: {line}", file=sys.stderr)
    if scale == "per_input" and (getattr(args, "scale", None) or SCALE_OPTION["default"]) == "auto":
        print(f"notice: {gain_each_note(maps.scales)}", file=sys.stderr)
    if maps.gains_found:
        print(f"notice: {series_gains_note(sources, maps, scale)}", file=sys.stderr)
    if maps.partly_measured > 0:
        print(f"notice: {_partly_measured_note(maps, unmeasured)}", file=sys.stderr)
    return volumes, maps.acquisitions, maps


def unmeasured_notice(name: str, unmeasured, fate: str) -> str | None:
    """The notice on an input ``name`` with voxels that are NaN or infinite (not measured;
    ``unmeasured``: where), with what becomes of them (``fate``); None where there are none."""
    import numpy as np

    count = int(np.count_nonzero(unmeasured))
    if count == 0:
        return None
    voxels = "1 voxel is" if count == 1 else f"{count} voxels are"
    return f"notice: {name}: {voxels} NaN or infinite (not measured): {fate}"


def _notice_unmeasured(volumes, network: bool) -> bool:
    """A notice per input (:func:`input_names`; the acquisitions of one file or series
    together) with voxels that are NaN or infinite on its own grid, saying how the maps take
    them (``network``: one input is read by the network); whether there was any."""
    import numpy as np

    fate = ("fitted there to the other inputs" if len(volumes) > 1
            else "read as 0" if network else "NaN in the maps")
    unmeasured = {}
    for volume, name in zip(volumes, input_names(volumes)):
        bad = ~np.isfinite(volume.data)
        unmeasured[name] = unmeasured[name] | bad if name in unmeasured else bad
    # on one grid, voxels no input measures stay NaN in the maps
    nowhere = (np.logical_and.reduce(list(unmeasured.values()))
               if len(unmeasured) > 1 and len({v.shape for v in unmeasured.values()}) == 1 else None)
    lines = [unmeasured_notice(name, where, _fate(where, nowhere, fate)) for name, where in unmeasured.items()]
    for line in filter(None, lines):
        print(line, file=sys.stderr)
    return any(lines)


def _fate(where, nowhere, fate: str) -> str:
    """What becomes of an input's unmeasured voxels ``where``: ``fate``, but NaN in the maps
    for those that no input measures (``nowhere``, where the inputs share one grid)."""
    import numpy as np

    lost = 0 if nowhere is None else int(np.count_nonzero(where & nowhere))
    if lost == 0:
        return fate
    if lost == int(np.count_nonzero(where)):
        return "no input measures them: NaN in the maps"
    return f"{fate}, but {lost} of them no input measures: NaN in the maps"


def _partly_measured_note(maps, unmeasured: bool) -> str:
    """One line on the share of the object that only some inputs measured: outside some
    input's field of view (:func:`~napari_mr_reparam.joint_fit.partly_measured_note`), or,
    where some input has voxels that are NaN or infinite (``unmeasured``), those too."""
    from .joint_fit import partly_measured_note

    why = ("outside some input's field of view" if not unmeasured else
           "NaN or infinite in some input" + (", or outside some input's field of view" if maps.resampled else ""))
    return partly_measured_note(maps.partly_measured, maps.partly_prior == "network", why)


def _describe(acq) -> str:
    text = f"{acq.sequence.replace('_', ' ')} TE {acq.te:g} / TR {acq.tr:g} ms"
    if acq.ti is not None:
        text += f", TI {acq.ti:g} ms"
    if acq.flip_deg is not None:
        text += f", flip {acq.flip_deg:g} deg"
    return text


def fit_with_bar(paths, args, desc: str, **options):
    """:func:`fit_inputs` with a progress bar named ``desc`` (none with ``--quiet``, nor where
    stderr is no terminal: :func:`~napari_mr_reparam.command.bar_off`), shown
    once the inputs are read and the work is known, and closed before the fit's notices."""
    from tqdm import tqdm

    bars = []

    def total(count):
        bars.append(tqdm(total=count, unit="step", disable=bar_off(args), desc=desc))

    try:
        return fit_inputs(paths, args, progress=lambda n: bars[0].update(n), total=total,
                          finished=lambda: [bar.close() for bar in bars], **options)
    finally:
        for bar in bars:
            bar.close()


# ----------------------------------------------------------------------------- maps

def cmd_maps(args) -> int:
    from .volume_writing import check_output_folder, output_suffix, refuse_existing

    refuse_bad_angles(args)
    apply_input_preset(args)
    refuse_input_seconds(args)
    refuse_repeated_inputs(args.input, FITTED_TWICE, expand=False)
    out = check_output_folder(args.output)
    files = map_outputs(out, output_suffix(args.suffix))
    refuse_inputs_as_outputs(files.values(), args.input)
    refuse_existing(files.values(), overwrite=args.overwrite)
    volumes = load_inputs(args.input, times_given=input_times_given(args))
    slices = volumes[0].data.shape[0]
    if files["pd"].name.endswith(".png") and slices != 1:  # before the fit, as every other refusal
        raise ValueError(f"a PNG holds one slice, the maps have {slices}; use --suffix .nii.gz, .tif or .npy")
    origins = []
    volumes, acqs, maps = fit_with_bar(args.input, args, "maps", model=args.model, device=args.device,
                                       volumes=volumes, origins=origins)
    for acq, path in zip(acqs, args.input if len(args.input) == len(acqs) else [None] * len(acqs)):
        print(f"input: {_describe(acq)}" + (f" ({path})" if path else ""))
    earlier = earlier_outputs(files["sidecar"])  # what a run before wrote here, by its record
    written = _write_maps(files, maps, volumes[0], _maps_meta(args, acqs, origins, maps, files), args.overwrite)
    if args.overwrite:
        remove_stale_maps(out, written, args.input, earlier)
    print(f"ok {out}: PD, T1, T2 maps (T1/T2 in ms); {maps_source_words(maps)}")
    return 0


def maps_source_words(maps) -> str:
    """Where a set of maps came from, for the line that reports them: the network's reading
    of one image (which measures none of PD, T1 and T2 by itself), else the share of the
    object in which the inputs determine each."""
    if maps.network_maps is not None:
        return (f"the {maps.engine.info.name} network's reading of one image (one image measures none of "
                "them: give two or three images of the subject to measure them)")
    fractions = ", ".join(f"{k.upper()} {100 * v:.0f} %" for k, v in maps.summary()["determined_fraction"].items())
    return f"determined by the inputs in: {fractions} of the object"


#: Why an input given twice to ``maps`` or ``predict --joint`` is refused.
FITTED_TWICE = "it would be fitted as two images of the subject"


def map_outputs(out: Path, kind: str) -> dict:
    """What ``maps`` may write in its folder ``out``, by key: the maps (:data:`MAP_FILES`),
    ``determined``, ``b1`` (of an echo-train fit only) as ``kind`` files, and ``sidecar``
    (``maps.json``)."""
    files = {k: out / f"{name}{kind}" for k, name in MAP_FILES.items()}
    return {**files, "determined": out / f"determined{kind}", "b1": out / f"b1{kind}", "sidecar": out / "maps.json"}


def _maps_meta(args, acqs, origins, maps, files) -> dict:
    """``maps.json``: what made the maps (``GeneratedBy``, as each map's sidecar), the inputs,
    each's acquisition and where it came from, the options and
    :meth:`~napari_mr_reparam.joint_result.JointMaps.summary`."""
    from .sidecars import prediction_sidecar

    made = prediction_sidecar(None, None, maps_model(maps), None, maps.weights_sha256)["GeneratedBy"]
    return {"GeneratedBy": made, "inputs": [str(p) for p in args.input],
            "acquisitions": [{"sequence": a.sequence, "EchoTime_ms": a.te, "RepetitionTime_ms": a.tr,
                              "InversionTime_ms": a.ti, "FlipAngle_deg": a.flip_deg, "source": source,
                              "input_preset": preset} for a, (source, preset) in zip(acqs, origins)],
            "prior": args.model, "scale": args.scale, "smoothed": not args.no_smooth, **maps.summary(),
            "flip_angle_scale": f"{files['b1'].name} (refocusing flip angle / 180 degrees at the slice centre)"
            if maps.b1 is not None else None,
            "determined_bits": f"bit 1 PD, 2 T1, 4 T2 ({files['determined'].name})"}


def _write_maps(files: dict, maps, like, meta: dict, overwrite: bool) -> list[Path]:
    """Write the maps, ``determined``, ``b1`` where fitted and ``maps.json`` (``meta``);
    the files written. Each map's sidecar gives, as ``maps.json`` does, the fraction of the
    object the inputs determine it in (``determined_fraction``) and where the rest came
    from (``prior_source``)."""
    from .volume_writing import save_volume

    units = {"pd": pd_units(maps), "t1": "ms", "t2": "ms"}
    determined = maps.summary()["determined_fraction"]
    images = {key: (getattr(maps, key), {"Quantity": key.upper(), "Units": units[key],
                                         "determined_fraction": determined[key], "prior_source": maps.prior_source})
              for key in MAP_FILES}
    images["determined"] = (maps.determined_bits.astype("uint8"), {"Quantity": "determined", "Units": "bits"})
    if maps.b1 is not None:
        images["b1"] = (maps.b1, {"Quantity": "refocusing flip-angle scale", "Units": "1"})
    from .volume_writing import cannot_write, written_files

    try:
        files["sidecar"].parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise cannot_write(files["sidecar"].parent, exc) from None
    written = []
    try:
        for key, (data, extra) in images.items():
            written.append(save_volume(files[key], data, like=like, model=maps_model(maps), extra=extra,
                                       overwrite=overwrite, weights_sha256=maps.weights_sha256))
        meta = {**meta, "outputs": [p.name for w in written for p in written_files(w)]}  # what --overwrite may clear
        files["sidecar"].write_text(json.dumps(meta, indent=2) + "\n")
    except BaseException:  # stopped (Ctrl-C, SIGTERM) or failed part-way: no set of maps half written
        for path in [p for key in images for p in written_files(files[key])] + [files["sidecar"]]:
            path.unlink(missing_ok=True)  # each this run writes (one it was writing included)
        raise
    return [*written, files["sidecar"]]


def earlier_outputs(sidecar: Path) -> list[str]:
    """The files an earlier run of ``maps`` wrote beside its ``maps.json`` (``sidecar``), as
    it recorded them (``outputs``); none where there is no such record."""
    try:
        names = json.loads(sidecar.read_text()).get("outputs", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [n for n in names if isinstance(n, str) and Path(n).name == n]


#: The names ``maps`` writes in its folder, but for their type.
MAP_STEMS = (*MAP_FILES.values(), "determined", "b1")


def remove_stale_maps(out: Path, written, inputs, earlier) -> None:
    """With ``--overwrite``: remove what an earlier run of ``maps`` wrote in ``out`` that
    this one did not (``written``: this run's files; ``earlier``: the names the run before
    recorded in its ``maps.json``, :func:`earlier_outputs`), such as a ``b1`` map of an
    echo-train fit beside maps without one, or maps of another type, so that the folder
    holds one run's outputs. Only names that record lists and ``maps`` writes
    (:data:`MAP_STEMS`, of any output type, and their sidecars) go, never an input or its
    sidecar (``inputs``), and a DICOM series folder only where it holds nothing but
    ``.dcm`` files; a notice names them."""
    from .volume_writing import OUTPUT_SUFFIXES, written_files

    kept = {p.resolve() for w in written for p in written_files(w)}
    kept |= {p.resolve() for text in inputs for p in (Path(text), *_own_sidecar(text))}
    recorded = set(earlier)
    stale = dict.fromkeys(p for stem in MAP_STEMS for suffix in OUTPUT_SUFFIXES
                          for p in written_files(out / f"{stem}{suffix}")
                          if p.name in recorded and p.exists() and p.resolve() not in kept)
    removed = [p.name for p in sorted(stale, key=lambda p: p.suffix == ".json") if _remove_output(p)]
    if removed:
        print(f"notice: {out}: removed {', '.join(removed)}, written there by an earlier run of maps and not by "
              "this one (--overwrite replaces a run's outputs; other files are kept)", file=sys.stderr)


def _remove_output(path: Path) -> bool:
    """Remove an earlier output: a file, or a DICOM series' folder holding only ``.dcm``
    files; whether it was removed (anything else is kept)."""
    import shutil

    from .dicom_export import SERIES_SUFFIX, refuse_unreplaceable

    if path.is_file():
        path.unlink()
        return True
    try:
        refuse_unreplaceable(path)
    except FileExistsError:
        return False
    if path.suffix == SERIES_SUFFIX:
        shutil.rmtree(path)
    return path.suffix == SERIES_SUFFIX


def maps_model(maps, fitted: str = "joint maps") -> str:
    """What made the maps, for a sidecar's ``Model``: the network's name where they are its
    maps of one input alone, else ``fitted`` (a joint fit's)."""
    return maps.engine.info.name if maps.network_maps is not None else fitted


def pd_units(maps) -> str:
    """The units of the PD map: the network's fraction of water's proton density (one
    input), else the first input's intensity units (a joint fit)."""
    from .joint_result import PD_UNITS

    return PD_UNITS["network" if maps.network_maps is not None else "joint"]


# ----------------------------------------------------------------------------- predict

def _targets(args) -> list:
    """(label, render keywords) per target: a preset with overrides, or --te/--tr pairs."""
    from .presets import Preset, get_preset

    ti = _listed(getattr(args, "ti", None))
    names = list(dict.fromkeys(_listed(args.preset)))  # a name given twice is one target
    if len(names) > 1:
        given = [option for option, value in (("--te", args.te), ("--tr", args.tr), ("--ti", ti),
                                              ("--flip", args.flip), ("--sequence", getattr(args, "sequence", None)))
                 if value]
        if given:
            raise ValueError(f"{'/'.join(given)} override one --preset's values; with several presets "
                             f"({', '.join(names)}) give none, or one preset at a time")
        chosen = [get_preset(name) for name in names]
        for preset in chosen:
            print(f"preset {preset.describe()}", file=sys.stderr)
        return [(preset.name, preset) for preset in chosen]
    if names:
        preset = get_preset(names[0])
        if getattr(args, "sequence", None) is not None:
            raise ValueError(f"--sequence and --preset both name the target's sequence ({preset.name} is "
                             f"{preset.sequence.replace('_', ' ')}); leave out --sequence, or --preset")
        if (args.te and len(args.te) > 1) or (args.tr and len(args.tr) > 1):
            raise ValueError("--preset takes one --te and one --tr at most (it is one target)")
        chosen = preset.with_values(te=args.te[0] if args.te else None, tr=args.tr[0] if args.tr else None,
                                    ti=ti[0] if ti else None, ti2=ti[1] if len(ti) > 1 else None,
                                    flip_deg=args.flip)
        print(f"preset {chosen.describe()}", file=sys.stderr)
        return [(chosen.name, chosen)]
    if not args.te or not args.tr:
        raise ValueError("give the targets with --te and --tr, or name a --preset")
    if len(args.te) != len(args.tr):
        raise ValueError(f"give as many --tr as --te values ({len(args.te)} TE, {len(args.tr)} TR)")
    # a --sequence given is taken as given (Preset.check refuses the times it does not
    # read); without one, the times given name it
    sequence = getattr(args, "sequence", None) or (
        ("double_inversion_recovery" if len(ti) > 1 else "inversion_recovery") if ti
        else "gradient_echo" if args.flip is not None else "spin_echo")
    out = []
    for te, tr in zip(args.te, args.tr):
        p = Preset("the target", sequence, te=te, tr=tr, ti=ti[0] if ti else None,
                   ti2=ti[1] if len(ti) > 1 else None, flip_deg=args.flip)
        p.check()
        label = f"TE{te:g}_TR{tr:g}" + (f"_TI{p.ti:g}" if p.ti else "")
        out.append((label, p))
    return out


def skip_state(outputs, name) -> tuple[bool, str]:
    """``--skip-existing``: ``(whether every one of outputs and its sidecar exists, why the
    input is refused)``. All there: a line on stderr says ``name`` is left out. Some but not
    all (a run stopped between its targets): the reason names every one there, for the
    caller's ``error:`` line (that input refused alone; never written over unasked)."""
    from .volume_writing import written_files

    files = [f for out in outputs for f in written_files(out)]
    there = [f for f in files if f.exists()]
    if files and len(there) == len(files):
        print(f"skipped {name}: its outputs exist", file=sys.stderr)
        return True, ""
    if not there:
        return False, ""
    listed = ", ".join(str(f) for f in there[:4]) + (f" and {len(there) - 4} more" if len(there) > 4 else "")
    return False, (f"{listed} {'exist' if len(there) > 1 else 'exists'}, but not every output of "
                   f"{Path(str(name)).name} does: remove {'them' if len(there) > 1 else 'it'} to predict that "
                   "input again")


def _stems(groups, joint: bool, output: str) -> list[tuple]:
    """``(first input, the name its outputs in a folder start with)`` of each group of
    inputs: its file's (or DICOM folder's) name without the type, told apart from others of
    that name by their folders (:func:`~napari_mr_reparam.file_types.output_stems`, as plain
    ``predict`` names them), in its subject's folders where ``output`` is a derivative
    dataset of its BIDS dataset (:func:`~napari_mr_reparam.sidecars.derivative_place`);
    with ``--joint``, the first input's and ``_joint``, so that subjects written to one
    folder keep theirs apart."""
    from .file_types import output_stems
    from .sidecars import derivative_place

    named = output_stems([paths[0] for paths in groups])
    stems = [derivative_place(paths[0], output) + named[str(paths[0])] for paths in groups]
    return [(paths[0], f"{stem}_joint" if joint else stem) for paths, stem in zip(groups, stems)]


def _output_paths(args, stem: str, targets, kind: str = ".nii.gz") -> dict:
    """Where each target goes: ``-o`` itself for one, else ``STEM_LABEL`` files in that
    folder (:func:`~napari_mr_reparam.volume_writing.output_paths`; of type ``kind``, the
    input's own for one file, :func:`_own_type`, unless ``--suffix``)."""
    from .volume_writing import output_paths

    names = [(f"{stem}_{label}", kind) for label, _ in targets]
    return dict(zip([label for label, _ in targets], output_paths(args.output, names, args.suffix,
                                                                  "several targets")))


def predict_joint_or_preset(args) -> int:
    """``predict --joint`` (one subject, joint maps) or ``predict --preset`` (each input alone).
    Without --joint a bad input is reported as ``error: FILE: reason`` and skipped; any such
    input makes the exit status 2."""
    from .sidecars import acquisition_sidecar
    from .volume_writing import output_paths, refuse_existing, save_volume

    targets = _targets(args)
    refuse_input_seconds(args)
    notes: list[str] = []
    inputs = folder_files(args.input, notes)
    for line in notes:
        print(line, file=sys.stderr)
    if args.joint:
        refuse_repeated_inputs(args.input, FITTED_TWICE)
    groups = [inputs] if args.joint else [[p] for p in inputs]
    output_paths(args.output, [("", ".nii.gz")] * len(groups), args.suffix, "several inputs")  # before any work
    stems = _stems(groups, args.joint, args.output)
    kinds = {str(path): _own_type(path, args.joint) for path, _ in stems}
    if not args.joint:
        refuse_shared_outputs((path, _output_paths(args, stem, targets, kinds[str(path)])[targets[0][0]])
                              for path, stem in stems)
    partial = []  # inputs with some of their outputs (a run stopped between targets), each refused in one line
    if getattr(args, "skip_existing", False):  # a series' outputs are known once read: asked then
        kept = []
        for paths, named in zip(groups, stems):
            if not args.joint and _several_in(paths[0]):
                kept.append((paths, named))
                continue
            done, refusal = skip_state(_output_paths(args, named[1], targets, kinds[str(named[0])]).values(),
                                       paths[0])
            if refusal and args.joint:
                raise FileExistsError(refusal)
            if refusal:
                partial.append(input_error(paths[0], refusal))
            elif not done:
                kept.append((paths, named))
        for line in partial:
            print(line, file=sys.stderr)
        if not kept:
            return 2 if partial else 0
        groups, stems = [paths for paths, _ in kept], [named for _, named in kept]
    # those known before the inputs are read (a DICOM series' or 4-D file's: when read)
    known = [out for path, stem in stems if args.joint or not _several_in(path)
             for out in _output_paths(args, stem, targets, kinds[str(path)]).values()]
    refuse_inputs_as_outputs(known, inputs)
    refuse_existing(known, overwrite=args.overwrite)
    engine = _predict_engine(args)  # an unknown or unfit model is refused before any input is read
    model = engine.info.name if engine is not None else "none"
    failures, told, tried = len(partial), set(), len(partial)
    for paths, (_, stem) in zip(groups, stems):
        try:
            parts = _parts(paths, args, stem)
        except (ValueError, OSError) as exc:
            if args.joint:
                raise
            failures, tried = failures + 1, tried + 1
            print(input_error(paths[0], exc), file=sys.stderr)
            continue
        for stem, short, name, volumes in parts:
            outputs = _output_paths(args, stem, targets, kinds[str(paths[0])] if len(parts) == 1 else ".nii.gz")
            done, refusal = skip_state(outputs.values(), name) if getattr(args, "skip_existing", False) else (False, "")
            if done:
                continue
            tried += 1
            if refusal and args.joint:
                raise FileExistsError(refusal)
            if refusal:
                failures += 1
                print(input_error(name, refusal), file=sys.stderr)
                continue
            refuse_inputs_as_outputs(outputs.values(), inputs)
            refuse_existing(outputs.values(), overwrite=args.overwrite)
            if args.joint:  # inputs that cannot be placed together: refused before any notice on them
                from .grids import grid_refusal

                refusal = grid_refusal(volumes, registering=bool(getattr(args, "register", False)))
                if refusal:
                    raise ValueError(refusal)
            series = (volumes[0].extra or {}).get("series") or short
            if engine is not None and series not in told:  # a series' acquisitions share its plane
                told.add(series)
                plane_notice(volumes[0], input_names(volumes)[0] if args.joint else short)
            try:
                origins = []
                volumes, acqs, maps = fit_with_bar(paths, args, name, model=model, device=args.device,
                                                   engine=engine, volumes=volumes, origins=origins)
                written = []
                for label, p in targets:
                    image = maps.render(**p.render_arguments()).reshape(volumes[0].data.shape)
                    saved = save_volume(outputs[label], image, like=volumes[0], te_ms=p.te, tr_ms=p.tr,
                                        model=maps_model(maps, "joint maps" if args.joint else model),
                                        extra={**acquisition_sidecar(p.sequence, p.ti, p.flip_deg, p.ti2),
                                               **target_preset_record(args.preset and p.name),
                                               **inputs_record(volumes, acqs, origins)},
                                        overwrite=args.overwrite, weights_sha256=maps.weights_sha256)
                    written.append(f"{p.describe()} -> {saved}")
                note = open_times_note(maps) if args.joint else None
                if note:
                    print(f"notice: {note}", file=sys.stderr)
                print(f"ok {name}: {'; '.join(written)}")
            except (ValueError, OSError) as exc:
                if args.joint:
                    raise
                failures += 1
                print(input_error(name, exc, short), file=sys.stderr)
    if not args.joint and tried > 1:  # as plain predict ends a batch
        print(f"{tried - failures} of {tried} inputs done")
    return 0 if failures == 0 else 2


#: Where a time is determined in less than this share of the object, ``predict --joint``
#: says that its renders' contrast in that time comes from the prior.
MOSTLY_OPEN = 0.5
#: What a fit's ``prior_source`` stands for, in its notices.
PRIOR_WORDS = {"network": "the network's single-image maps", "given": "the maps given as the prior",
               "default": "a broad default (T1 1000 ms, T2 100 ms)"}


def open_times_note(maps) -> str | None:
    """A notice where the inputs leave T1 or T2 open in most of the object (a PD/T2 dual
    echo's T1): the renders' contrast in that time comes from the prior, not the inputs."""
    fractions = maps.summary()["determined_fraction"]
    open_times = [key.upper() for key in ("t1", "t2") if fractions[key] < MOSTLY_OPEN]
    if not open_times:
        return None
    shares = ", ".join(f"{key} in {100 * fractions[key.lower()]:.0f} %" for key in open_times)
    times, verb = " and ".join(open_times), "comes" if len(open_times) == 1 else "come"
    prior = PRIOR_WORDS.get(maps.prior_source, maps.prior_source)
    return (f"the inputs determine {shares} of the object; elsewhere {times} {verb} from {prior}, so a "
            f"target weighted by {' or '.join(open_times)} shows that guess (an input that measures it "
            "makes it the scan's)")


def _own_type(path, joint: bool) -> str:
    """The output type of an input's renders in a folder (as plain ``predict`` names them):
    the input file's own (an FreeSurfer or JPEG input's becomes NIfTI or PNG in
    :func:`~napari_mr_reparam.volume_writing.output_paths`); NIfTI for joint maps, a DICOM
    series and a 4-D file's volumes."""
    from .file_types import suffix_of

    if joint or Path(path).is_dir() or _several_in(path):
        return ".nii.gz"
    return suffix_of(path) or ".nii.gz"


def _several_in(path) -> bool:
    """Whether an input is a DICOM series or a 4-D NIfTI file: its outputs are named after
    its acquisitions, known once it is read."""
    from .dicom import looks_like_series
    from .io import volume_count

    return looks_like_series(Path(path)) or volume_count(path) > 1


def needs_a_folder(volume, count: int) -> str:
    """Why ``-o`` cannot be a file for an input of ``count`` acquisitions (a DICOM series,
    named by its label) or volumes (a 4-D NIfTI file, by its name), each predicted
    separately; ``volume``: one of them."""
    dicom = volume.kind == "dicom"
    name = volume.extra["series"] if dicom or not volume.source else Path(str(volume.source)).name
    held = f"{count} acquisitions" if dicom else f"{count} volumes"
    return (f"{name}: the input holds {held}, each predicted separately; give an output folder for -o, not a "
            "file, or choose one with --acquisition N")


def _parts(paths, args, stem: str) -> list[tuple]:
    """(output stem, short name, name in messages, volumes) of each prediction from ``paths``
    (whose outputs' names start with ``stem``, :func:`_stems`):
    all of them together with --joint; else each input alone, and each acquisition of a
    DICOM series or volume of a 4-D NIfTI file alone, named as ``predict`` without a preset
    names them (``SERIES_acqN``), with the times used (``--acquisition N``: that one)."""
    from .file_types import suffix_of

    volumes = load_inputs(paths, args.acquisition, input_times_given(args))
    if args.joint and args.no_detail and len(volumes) > 1:  # one DICOM folder of several acquisitions
        raise ValueError(NO_DETAIL_WITH_JOINT)
    label = (volumes[0].extra or {}).get("series")
    if args.joint or label is None:
        name = " ".join(map(str, paths))
        return [(stem, name, name, volumes)]
    if len(volumes) == 1:
        short = label if args.acquisition is None else f"{label}_acq{args.acquisition}"
        named = stem if args.acquisition is None else short  # the one chosen: SERIES_acqN, as without a preset
        return [(named, short, f"{short} ({used_description(volumes[0], args)})", volumes)]
    if suffix_of(args.output):
        raise ValueError(needs_a_folder(volumes[0], len(volumes)))
    listing = "; ".join(f"{i}: {used_description(v, args)}" for i, v in enumerate(volumes, 1))
    print(f"notice: {label}: {len(volumes)} acquisitions, each predicted separately (choose one with "
          f"--acquisition N, or fit them together with --joint): {listing}", file=sys.stderr)
    return [(f"{label}_acq{i}", f"{label}_acq{i}", f"{label}_acq{i} ({used_description(v, args)})", [v])
            for i, v in enumerate(volumes, 1)]
