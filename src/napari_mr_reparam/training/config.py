"""Training configuration: one small dataclass, read from a TOML recipe.

A recipe file holds the fields of :class:`TrainConfig` at its top level; command-line
options override them. Each number setting's allowed values are given where it is defined
(:func:`_within`: a :class:`Range`), and every setting is checked when the config is made,
before any data is loaded: a bad one is a one-line ValueError naming it and its range. The
recipes for the bundled weights live in the repository's top-level ``training/`` folder, one
file per weight set.

The options of the randomized stream (``data = "stream"``) are defined, with their
defaults and checks, in :mod:`napari_mr_reparam.stream_options`; a recipe holds each
under the same name (three under older names: :data:`RECIPE_KEYS`), and
:meth:`TrainConfig.stream_options` gathers them into the one object the stream takes.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from ..messages import not_found
from ..stream_options import StreamOptions, SubjectOptions

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

STAGES = ("autoencoder", "paramnet", "physics", "tissue", "contrast")
TASKS = ("d2p", "p2p")
VARIANTS = ("maps", "direct", "hybrid")
IMAGE_LOSSES = ("mse", "log_mse")
DATA = ("paper", "stream")
SPLITS = ("paper", "slices")
#: The stages that train the paper's networks, whose seven stride-2 levels need an image
#: size that is a multiple of :data:`PAPER_SIZE_STEP`.
PAPER_STAGES = ("autoencoder", "paramnet")
PAPER_SIZE_STEP = 128
#: The largest seed numpy and torch both take.
MAX_SEED = 2**32 - 1

#: Stream options a recipe names otherwise than :mod:`~napari_mr_reparam.stream_options`
#: (option: recipe key); every other option has its own name in a recipe.
RECIPE_KEYS = {"sharpening": "fraction_sharpening", "sharpening_min": "fraction_sharpening_min",
               "texture": "fraction_texture"}

#: Options retired after their experiment measured no gain (docs/experiments.md), with the
#: value that left them off: a recorded config or recipe holding that value still loads.
RETIRED = {"input_gain": 0.0, "sulcus_width": 0.0, "fine_brain": False}
#: Options added after runs had been recorded, with the value every run recorded before
#: them had (their code then knew no other): a recorded config without one is read with it,
#: not with today's default (``partial_volume``: the tissue times' mixture of the earlier
#: simulator, on which the bundled ``contrast``, ``d2p``, ``p2p`` and ``physics_mrilab``
#: weights were trained).
INTRODUCED = {"partial_volume": "times"}


@dataclass(frozen=True)
class Range:
    """The values a number setting takes: from ``low`` to ``high`` (None: unbounded), each
    bound included unless ``above`` (for ``low``) or ``below`` (for ``high``) says not."""

    low: float | None = None
    high: float | None = None
    above: bool = False
    below: bool = False

    def holds(self, value) -> bool:
        if self.low is not None and (value <= self.low if self.above else value < self.low):
            return False
        return self.high is None or (value < self.high if self.below else value <= self.high)

    def __str__(self) -> str:
        low, high = (f"{v:g}" if isinstance(v, float) else str(v) for v in (self.low, self.high))
        if self.low is not None and self.high is not None and not (self.above or self.below):
            return f"between {low} and {high}"
        parts = []
        if self.low is not None:
            parts.append(f"{'above' if self.above else '>='} {low}")
        if self.high is not None:
            parts.append(f"{'below' if self.below else '<='} {high}")
        return " and ".join(parts)


def _within(default, low=None, high=None, *, above: bool = False, below: bool = False):
    """A number setting's field: its default and the :class:`Range` it must lie in."""
    return field(default=default, metadata={"range": Range(low, high, above, below)})


@dataclass
class TrainConfig:
    """Everything that defines a training run.

    Paths in a recipe are relative to the folder the command is run from.
    """

    stage: str = "paramnet"            # autoencoder | paramnet | physics | tissue | contrast
    name: str = "run"                  # weight-set name written to the card
    task: str = "d2p"                  # d2p | p2p
    width: float = _within(0.125, 0, 4, above=True)  # channel-width multiplier (1.0 = the paper)
    # data
    data: str = "paper"                # paper (fixed protocol datasets) | stream
    phantoms: list[str] = field(default_factory=lambda: ["mni152"])
    split: str = "paper"               # which split's train part to use (paper | slices)
    dataset_seed: int = _within(0, 0, MAX_SEED)
    # stream data: each option is described in stream_options.SubjectOptions (a head's
    # anatomy, tissue values and geometry) and StreamOptions (what is drawn around it)
    tables: list[str] = field(default_factory=lambda: ["brainweb_1.5t", "mrilab", "3t"])
    fraction_sharpening: float = SubjectOptions.sharpening
    fraction_texture: float = SubjectOptions.texture
    fraction_sharpening_min: float = SubjectOptions.sharpening_min
    csf_expansion: float = SubjectOptions.csf_expansion
    tilt_deg: float = SubjectOptions.tilt_deg
    other_planes: float = SubjectOptions.other_planes
    deform_mm: float = SubjectOptions.deform_mm
    max_scale: float = SubjectOptions.max_scale
    max_rotation_deg: float = SubjectOptions.max_rotation_deg
    anisotropy: float = SubjectOptions.anisotropy
    extra_reassign: float = SubjectOptions.extra_reassign
    tissue_jitter: float = SubjectOptions.tissue_jitter
    partial_volume: str = SubjectOptions.partial_volume
    noise_max: float = StreamOptions.noise_max
    bias_strength: float = StreamOptions.bias_strength
    subject_every: int = StreamOptions.subject_every
    subject_workers: int = StreamOptions.subject_workers
    # ... real-scan effects (acquisition_effects.Effects keys; absent: the paper's clean
    # exports) and the input sequences Param-to-Param draws (empty: spin echo at the
    # paper's TE/TR without effects, all of them with)
    acquisition: dict | None = None
    input_sequences: list[str] = field(default_factory=list)
    pairs: int = _within(200, 1)       # (TE, TR) pairs of each protocol dataset
    slices: int = _within(24, 1)       # slices of each protocol dataset
    size: int = _within(256, 16, 2048)  # image size (pixels) the data is resized to
    # optimization (the paper: Adam 1e-3, betas 0.5/0.999, batch 8, Xavier init, MSE)
    init: str = ""                     # weights the network starts from (a run's checkpoint.pt or a weight set; "" = random)
    steps: int = _within(1000, 1)
    batch_size: int = _within(8, 1)
    lr: float = _within(1e-3, 0, 1, above=True)
    beta1: float = _within(0.5, 0, 1, below=True)
    beta2: float = _within(0.999, 0, 1, below=True)
    lr_final_fraction: float = _within(1.0, 0, 1)  # cosine decay to lr * this at the last step (1 = constant)
    seed: int = _within(0, 0, MAX_SEED)
    # autoencoder stage: natural-image pretraining, then MR fine-tuning
    natural_steps: int = _within(0, 0)
    # physics stage: which network (maps: quantitative maps + signal equation; for
    # comparison, direct: the same FiLM U-Net predicting the target image, and hybrid: the
    # maps' render plus a learned correction), its U-Net levels and working size, and
    # whether it reads images on the phantom's own grid rather than resized to `size`;
    # map_weight > 0 adds direct supervision of the maps by the phantom's own (the
    # simulator knows them), on the phantom's grid, so it needs native_input
    variant: str = "maps"
    depth: int = _within(4, 1, 7)      # U-Net levels (each halves the image)
    work_size: int = _within(128, 16, 1024)
    native_input: bool = False         # read (and render) images on their own grid, not at `size`
    map_weight: float = _within(0.0, 0)  # maps variant: weight of a loss on the maps themselves
    # maps variant: renders reach the input's size guided by the input, as the engine's
    # renders do (napari_mr_reparam.detail), instead of resized; the loss scores that
    keep_detail: bool = False
    targets_per_input: int = _within(4, 1)  # rendered targets scored per input image and step
    # the image term of the loss: mse (over all pixels of the batch) or log_mse (the mean
    # over images of log(MSE + 1e-5): minus the mean PSNR up to a constant, as scored)
    image_loss: str = "mse"
    # paramnet stage: the autoencoder checkpoint whose encoder is frozen
    autoencoder: str = ""
    # machinery
    device: str = "auto"
    amp: bool = True                   # bf16 autocast on CUDA (ignored on CPU)
    threads: int = _within(0, 0)       # torch CPU threads per process (0 = torch default)
    loader_workers: int = _within(0, 0)  # processes making stream batches ahead (0: the training process)
    out: str = "runs/run"
    checkpoint_every: int = _within(100, 1)
    log_every: int = _within(10, 1)

    def _check_ranges(self) -> None:
        """Every number setting is finite and within the :class:`Range` its field gives."""
        for f in fields(self):
            value, bounds = getattr(self, f.name), f.metadata.get("range")
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{f.name} must be a finite number{f' {bounds}' if bounds else ''}, got {value}")
            if bounds is not None and not bounds.holds(value):
                raise ValueError(f"{f.name} must be {bounds}, got {value}")

    def _check_choices(self) -> None:
        for name, known in (("stage", STAGES), ("variant", VARIANTS), ("task", TASKS), ("data", DATA),
                            ("split", SPLITS), ("image_loss", IMAGE_LOSSES)):
            if getattr(self, name) not in known:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; known: {', '.join(known)}")
        if not self.phantoms:
            from .phantom_specs import PHANTOM_SPECS

            raise ValueError(f"phantoms must name at least one phantom ({PHANTOM_SPECS})")
        from ..tissues import get_table

        for table in self.tables:
            try:
                get_table(table)
            except ValueError as exc:
                raise ValueError(f"tables: {exc}") from None

    def _check_sizes(self) -> None:
        """The image sizes the network's levels need, and enough pairs for Param-to-Param inputs."""
        if self.stage in PAPER_STAGES and self.size % PAPER_SIZE_STEP:
            raise ValueError(f"size must be a multiple of {PAPER_SIZE_STEP} for the paper networks "
                             f"({', '.join(PAPER_STAGES)}), got {self.size}")
        if self.stage in ("physics", "tissue"):
            smallest = 2 ** (self.depth - 1)
            grid = self.work_size if self.native_input or self.stage == "tissue" else min(self.size, self.work_size)
            if grid < smallest:
                sizes = "work_size" if self.native_input or self.stage == "tissue" else "work_size and size"
                raise ValueError(f"depth {self.depth} halves the image {self.depth - 1} times: {sizes} must be "
                                 f">= {smallest}, got {grid}")
        if self.task == "p2p" and self.data == "paper" and self.pairs < 2:
            raise ValueError(f"task p2p on paper data reads inputs at another (TE, TR) pair: pairs must be >= 2, "
                             f"got {self.pairs}")

    def __post_init__(self):
        self._check_choices()
        self._check_ranges()
        if self.map_weight > 0 and not (self.stage == "physics" and self.variant == "maps"
                                        and self.native_input):
            raise ValueError("map_weight needs stage physics, variant maps and native_input")
        if self.keep_detail and not (self.stage == "physics" and self.variant == "maps"):
            raise ValueError("keep_detail needs stage physics and variant maps")
        self._check_sizes()
        if self.acquisition is not None or self.input_sequences:
            from ..physics import INPUT_SEQUENCES

            unknown = sorted(set(self.input_sequences) - set(INPUT_SEQUENCES))
            if unknown or (self.input_sequences and self.acquisition is None):
                raise ValueError(f"input_sequences take {', '.join(INPUT_SEQUENCES)} and need an "
                                 f"acquisition table; got {self.input_sequences}")
        try:
            self.stream_options()  # checks every stream option (and the acquisition table)
        except ValueError as exc:
            raise ValueError(_in_recipe_terms(str(exc))) from None

    def stream_options(self) -> StreamOptions:
        """The randomized stream's options, for
        :class:`~napari_mr_reparam.datasets.StreamingSampler`: every option of
        :class:`~napari_mr_reparam.stream_options.SubjectOptions` and
        :class:`~napari_mr_reparam.stream_options.StreamOptions` that the recipe holds
        (under its :data:`RECIPE_KEYS` name), and the real-scan effects of ``acquisition``."""
        effects = None
        if self.acquisition is not None:
            from ..acquisition_effects import Effects

            effects = Effects.from_options(self.acquisition)
        return StreamOptions(subject=SubjectOptions(**self._recipe_values(SubjectOptions)),
                             effects=effects, **self._recipe_values(StreamOptions))

    def _recipe_values(self, options) -> dict:
        """This recipe's values of the options dataclass ``options``'s fields."""
        names = {f.name: RECIPE_KEYS.get(f.name, f.name) for f in fields(options)}
        return {name: getattr(self, key) for name, key in names.items()
                if key in _FIELDS}

    def to_dict(self) -> dict:
        return asdict(self)


_FIELDS = {f.name for f in fields(TrainConfig)}


def _in_recipe_terms(message: str) -> str:
    """An option's check message with each option named as a recipe names it."""
    names = "|".join(sorted(RECIPE_KEYS, key=len, reverse=True))
    return re.sub(rf"\b({names})\b", lambda m: RECIPE_KEYS[m.group()], message)


def without_retired(values: dict, source) -> dict:
    """``values`` less the :data:`RETIRED` options left off; a ValueError naming ``source``
    for one that is on (its code is gone)."""
    on = sorted(k for k in RETIRED if k in values and values[k] != RETIRED[k])
    if on:
        raise ValueError(f"{source}: {', '.join(on)} no longer exist (retired after measuring no gain: "
                         "docs/experiments.md)")
    return {k: v for k, v in values.items() if k not in RETIRED}


def with_introduced(recorded: dict) -> dict:
    """A recorded config with each :data:`INTRODUCED` option it predates set to the value
    its run had."""
    return {**{k: v for k, v in INTRODUCED.items() if k not in recorded}, **recorded}


def config_from_record(config: dict) -> TrainConfig:
    """The :class:`TrainConfig` a checkpoint's or weight card's ``config`` records
    (options retired since are dropped when they were off; options added since take the
    value its run had, :data:`INTRODUCED`)."""
    return TrainConfig(**without_retired(with_introduced(dict(config)), "recorded config"))


def load_config(path: str | Path | None = None, **overrides) -> TrainConfig:
    """Read a TOML recipe (optional) and apply ``overrides`` whose value is not None."""
    values: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            hint = ("; the bundled weights' recipes are in the repository's training/ folder, run from "
                    "its root" if path.suffix == ".toml" or not path.suffix else "")
            raise FileNotFoundError(not_found("recipe", path) + hint)
        try:
            values = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not valid TOML ({exc})") from None
    return _with_overrides(values, path, overrides, "a recipe for", f"--config {path}")


def resumed_config(checkpoint: str | Path, recorded: dict, **overrides) -> TrainConfig:
    """The config of a run resumed without its recipe: the one its ``checkpoint`` records
    (``recorded``), with ``overrides`` whose value is not None on top."""
    folder = Path(checkpoint).parent
    values = {k: v for k, v in with_introduced(recorded).items() if v is not None}  # None: left at its default
    return _with_overrides(values, checkpoint, overrides, "a run of", f"--resume --out {folder}")


def _with_overrides(values: dict, source, overrides: dict, what: str, command: str) -> TrainConfig:
    """The config of ``values`` (from ``source``: what a recipe or a checkpoint holds) with
    ``overrides`` whose value is not None on top, each checked; a stage other than the
    source's is refused, naming the command (``command``, after the stage) that runs it."""
    values = without_retired(values, source)
    unknown = sorted(set(values) - _FIELDS)
    if unknown:
        raise ValueError(f"{source}: unknown recipe keys: {', '.join(unknown)}")
    overrides = without_retired({k: v for k, v in overrides.items() if v is not None}, "settings")
    overrides = _one_entry_overrides(values, overrides)
    unknown = sorted(set(overrides) - _FIELDS)
    if unknown:
        raise ValueError(f"unknown settings: {', '.join(unknown)}")
    _check_kinds(values, source)
    _check_kinds(overrides, None)
    stage = values.get("stage")
    if stage is not None and stage not in STAGES:
        raise ValueError(f"{source}: unknown stage {stage!r}; known: {', '.join(STAGES)}")
    if stage is not None and overrides.get("stage", stage) != stage:
        raise ValueError(f"{source} is {what} the {stage} stage, not {overrides['stage']}: "
                         f"napari-mr-reparam-train {stage} {command}")
    values.update(overrides)
    return TrainConfig(**values)


def _one_entry_overrides(values: dict, overrides: dict) -> dict:
    """Overrides of one entry of a table setting (``acquisition.jpeg = 0.5``) merged into
    that table as ``values`` (the recipe's) hold it, the rest of the table kept."""
    out = {k: v for k, v in overrides.items() if "." not in k or k.partition(".")[0] not in _OPTIONAL_KINDS}
    for key in sorted(set(overrides) - set(out)):
        head, _, entry = key.partition(".")
        table = out.get(head, values.get(head))
        out[head] = {**(table if isinstance(table, dict) else {}), entry: overrides[key]}
    return out


_KINDS = {bool: "true or false", int: "a whole number", float: "a number", str: "text",
          list: "a list of text", dict: "a table ({name = value, ...})"}
#: Fields whose default (None) does not show the kind they take.
_OPTIONAL_KINDS = {"acquisition": dict}


def _check_kinds(values: dict, source) -> None:
    """A one-line ValueError for a value of the wrong kind (``steps = "two"``,
    ``acquisition = 5``), by the kind of its field's default (a list holds text), and for
    an ``acquisition`` effect of the wrong kind; other checks are left to
    :class:`TrainConfig`."""
    where = f"{source}: " if source is not None else ""
    for f in fields(TrainConfig):
        if f.name not in values:
            continue
        default = f.default if f.default_factory is MISSING else f.default_factory()
        want, value = _OPTIONAL_KINDS.get(f.name, type(default)), values[f.name]
        if want in _KINDS and not _fits(value, want):
            raise ValueError(f"{where}{f.name} must be {_KINDS[want]}, got {value!r}")
        if f.name == "acquisition":
            _check_effect_kinds(value, where)


def _fits(value, want: type) -> bool:
    """Whether ``value`` is of the kind ``want`` (a whole number is a number; a list holds text)."""
    if want is list:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if want is float:
        return _is_number(value)
    return isinstance(value, want) and not (want is int and isinstance(value, bool))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_effect_kinds(table: dict, where: str) -> None:
    """Each acquisition effect the table names holds a number, or a list of as many numbers
    as its default's range (unknown names are left to the effects' own check)."""
    from ..acquisition_effects import Effects

    for f in fields(Effects):
        if f.name not in table:
            continue
        value = table[f.name]
        if isinstance(f.default, tuple):
            n = len(f.default)
            if not (isinstance(value, list) and len(value) == n and all(_is_number(v) for v in value)):
                raise ValueError(f"{where}acquisition {f.name} must be a list of {n} numbers, got {value!r}")
        elif not _is_number(value):
            raise ValueError(f"{where}acquisition {f.name} must be a number, got {value!r}")
