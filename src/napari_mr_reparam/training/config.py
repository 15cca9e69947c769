"""Training configuration: one small dataclass, read from a TOML recipe.

A recipe file holds the fields of :class:`TrainConfig` at its top level; command-line
options override them. The recipes for the bundled weights live in the repository's
top-level ``training/`` folder, one file per weight set.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

STAGES = ("autoencoder", "paramnet", "physics")
TASKS = ("d2p", "p2p")
VARIANTS = ("maps", "direct", "hybrid")
IMAGE_LOSSES = ("mse", "log_mse")


@dataclass
class TrainConfig:
    """Everything that defines a training run.

    Paths in a recipe are relative to the folder the command is run from.
    """

    stage: str = "paramnet"            # autoencoder | paramnet | physics
    name: str = "run"                  # weight-set name written to the card
    task: str = "d2p"                  # d2p | p2p
    width: float = 0.125               # channel-width multiplier (1.0 = the paper)
    # data
    data: str = "paper"                # paper (fixed protocol datasets) | stream
    phantoms: list[str] = field(default_factory=lambda: ["mni152"])
    split: str = "paper"               # which split's train part to use (paper | slices)
    dataset_seed: int = 0
    # stream data: the tissue tables randomized MNI152 subjects draw from
    tables: list[str] = field(default_factory=lambda: ["brainweb_1.5t", "mrilab", "3t"])
    # ... and the largest exponent their tissue fractions are sharpened by (1 = the
    # template's soft mixtures; higher draws range up to nearly crisp tissue)
    fraction_sharpening: float = 1.0
    fraction_texture: float = 0.0      # largest sd of the fields that move borders first
    fraction_sharpening_min: float = 1.0  # smallest exponent drawn
    csf_expansion: float = 1.0         # largest factor CSF is widened by (atrophy; 1 = none)
    sulcus_width: float = 0.0          # largest width (mm) of thin CSF sulci cut into grey matter
    # ... and the acquisition effects drawn per example: the largest Rician noise sd
    # (relative to the image maximum) and the largest bias-field deviation from 1
    noise_max: float = 0.02
    bias_strength: float = 0.2
    # ... whether their brain tissue is sharpened on the template's 1 mm grid (thin sulci
    # become partial-volume lines), and how many examples pass between new subjects
    fine_brain: bool = False
    subject_every: int = 64
    # ... drawn in this many background processes ahead of use (0: in the training
    # process, from the stream's generator; N > 0: each subject from its own seeded
    # generator, so other subjects than 0 draws, the same for every N)
    subject_workers: int = 0
    tilt_deg: float = 0.0              # largest out-of-plane tilt of a head (pitch, roll)
    # ... a head's geometry: the largest displacement of its smooth warp (mm), global scale
    # change, in-plane rotation (degrees) and further scale change along each axis alone
    deform_mm: float = 4.0
    max_scale: float = 0.05
    max_rotation_deg: float = 5.0
    anisotropy: float = 0.0
    # ... and the largest deviation of a random gain on the input image (drawn
    # log-uniformly in [1 / (1 + g), 1 + g] per example, clipped at 1; 0 = none), so
    # tissues do not sit at fixed fractions of the input's maximum (docs/experiments.md: no gain)
    input_gain: float = 0.0
    # ... real-scan effects (acquisition_effects.Effects keys; absent: the paper's clean
    # exports), the input sequences Param-to-Param draws (empty: spin echo at the paper's
    # TE/TR), a FreeSurfer head's non-brain classes' chance of another tissue, and the sd of
    # the per-tissue jitter of a table mixed from two of `tables` (0: one table as it is)
    acquisition: dict | None = None
    input_sequences: list[str] = field(default_factory=list)
    extra_reassign: float = 0.0
    tissue_jitter: float = 0.0
    pairs: int = 200
    slices: int = 24
    size: int = 256
    # optimization (the paper: Adam 1e-3, betas 0.5/0.999, batch 8, Xavier init, MSE)
    init: str = ""                     # weights the network starts from (a run's checkpoint.pt or a weight set; "" = random)
    steps: int = 1000
    batch_size: int = 8
    lr: float = 1e-3
    beta1: float = 0.5
    beta2: float = 0.999
    lr_final_fraction: float = 1.0     # cosine decay to lr * this at the last step (1 = constant)
    seed: int = 0
    # autoencoder stage: natural-image pretraining, then MR fine-tuning
    natural_steps: int = 0
    # physics stage: which network (maps: quantitative maps + signal equation; for
    # comparison, direct: the same FiLM U-Net predicting the target image, and hybrid: the
    # maps' render plus a learned correction), its U-Net levels and working size, and
    # whether it reads images on the phantom's own grid rather than resized to `size`;
    # map_weight > 0 adds direct supervision of the maps by the phantom's own (the
    # simulator knows them), on the phantom's grid, so it needs native_input
    variant: str = "maps"
    depth: int = 4
    work_size: int = 128
    native_input: bool = False         # read (and render) images on their own grid, not at `size`
    map_weight: float = 0.0            # maps variant: weight of a loss on the maps themselves
    targets_per_input: int = 4         # rendered targets scored per input image and step
    # the image term of the loss: mse (over all pixels of the batch) or log_mse (the mean
    # over images of log(MSE + 1e-5): minus the mean PSNR up to a constant, as scored)
    image_loss: str = "mse"
    # paramnet stage: the autoencoder checkpoint whose encoder is frozen
    autoencoder: str = ""
    # machinery
    device: str = "auto"
    amp: bool = True                   # bf16 autocast on CUDA (ignored on CPU)
    threads: int = 0                   # torch CPU threads per process (0 = torch default)
    out: str = "runs/run"
    checkpoint_every: int = 100
    log_every: int = 10

    def __post_init__(self):
        if self.stage not in STAGES:
            raise ValueError(f"unknown stage {self.stage!r}; known: {', '.join(STAGES)}")
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; known: {', '.join(VARIANTS)}")
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; known: {', '.join(TASKS)}")
        if self.map_weight > 0 and not (self.stage == "physics" and self.variant == "maps"
                                        and self.native_input):
            raise ValueError("map_weight needs stage physics, variant maps and native_input")
        if self.width <= 0 or self.steps < 0 or self.batch_size <= 0:
            raise ValueError("width and batch_size must be positive and steps non-negative")
        if self.fraction_sharpening < 1.0 or self.fraction_texture < 0.0:
            raise ValueError("fraction_sharpening must be >= 1 and fraction_texture >= 0, got "
                             f"{self.fraction_sharpening} and {self.fraction_texture}")
        if self.fraction_texture > 0 and self.fraction_sharpening == 1.0:
            raise ValueError("fraction_texture only acts with fraction_sharpening > 1")
        if not 1.0 <= self.fraction_sharpening_min <= self.fraction_sharpening or self.csf_expansion < 1.0:
            raise ValueError("fraction_sharpening_min must lie in [1, fraction_sharpening] and "
                             f"csf_expansion be >= 1, got {self.fraction_sharpening_min} and "
                             f"{self.csf_expansion}")
        if self.sulcus_width < 0:
            raise ValueError(f"sulcus_width must be >= 0 mm, got {self.sulcus_width}")
        if self.noise_max < 0 or self.bias_strength < 0 or self.bias_strength >= 1:
            raise ValueError("noise_max must be >= 0 and bias_strength in [0, 1), got "
                             f"{self.noise_max} and {self.bias_strength}")
        if self.tilt_deg < 0:
            raise ValueError(f"tilt_deg must be >= 0 degrees, got {self.tilt_deg}")
        if self.input_gain < 0:
            raise ValueError(f"input_gain must be >= 0, got {self.input_gain}")
        if not (0 <= self.max_scale < 1 and 0 <= self.anisotropy < 1 and self.max_rotation_deg >= 0
                and self.deform_mm >= 0):
            raise ValueError("max_scale and anisotropy must lie in [0, 1) and max_rotation_deg and "
                             f"deform_mm be >= 0, got {self.max_scale}, {self.anisotropy}, "
                             f"{self.max_rotation_deg} and {self.deform_mm}")
        if self.subject_every <= 0:
            raise ValueError(f"subject_every must be a positive number of examples, got {self.subject_every}")
        if self.subject_workers < 0:
            raise ValueError(f"subject_workers must be >= 0, got {self.subject_workers}")
        if self.acquisition is not None or self.input_sequences:
            from ..acquisition_effects import Effects
            from ..physics import INPUT_SEQUENCES

            Effects.from_options(self.acquisition)
            unknown = sorted(set(self.input_sequences) - set(INPUT_SEQUENCES))
            if unknown or (self.input_sequences and self.acquisition is None):
                raise ValueError(f"input_sequences take {', '.join(INPUT_SEQUENCES)} and need an "
                                 f"acquisition table; got {self.input_sequences}")
        if not 0 <= self.extra_reassign <= 1 or self.tissue_jitter < 0:
            raise ValueError("extra_reassign is a chance (0-1) and tissue_jitter an sd (>= 0), got "
                             f"{self.extra_reassign} and {self.tissue_jitter}")
        if self.image_loss not in IMAGE_LOSSES:
            raise ValueError(f"unknown image_loss {self.image_loss!r}; known: {', '.join(IMAGE_LOSSES)}")

    def stream_options(self) -> dict:
        """The randomized subjects' keywords for
        :class:`~napari_mr_reparam.datasets.StreamingSampler` (tables, anatomy and
        acquisition effects)."""
        return {"tables": self.tables, "sharpening": self.fraction_sharpening,
                "texture": self.fraction_texture, "sharpening_min": self.fraction_sharpening_min,
                "csf_expansion": self.csf_expansion, "sulcus_width": self.sulcus_width,
                "noise_max": self.noise_max, "bias_strength": self.bias_strength,
                "fine_brain": self.fine_brain, "tilt_deg": self.tilt_deg,
                "input_gain": self.input_gain, "refresh_every": self.subject_every,
                "subject_workers": self.subject_workers,
                "deform_mm": self.deform_mm, "max_scale": self.max_scale,
                "max_rotation_deg": self.max_rotation_deg, "anisotropy": self.anisotropy,
                "extra_reassign": self.extra_reassign, "tissue_jitter": self.tissue_jitter,
                **self.effect_options()}

    def effect_options(self) -> dict:
        """The stream's real-scan effects and input sequences (none without ``acquisition``)."""
        if self.acquisition is None:
            return {}
        from ..acquisition_effects import Effects

        return {"effects": Effects.from_options(self.acquisition),
                "input_sequences": self.input_sequences or None}

    def to_dict(self) -> dict:
        return asdict(self)


def load_config(path: str | Path | None = None, **overrides) -> TrainConfig:
    """Read a TOML recipe (optional) and apply ``overrides`` whose value is not None."""
    values: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"recipe not found: {path}")
        try:
            values = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not valid TOML ({exc})") from None
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{path}: unknown recipe keys: {', '.join(unknown)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown settings: {', '.join(unknown)}")
    values.update(overrides)
    return TrainConfig(**values)
