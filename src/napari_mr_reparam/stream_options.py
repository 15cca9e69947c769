"""The options of the randomized training stream, each defined once, with its default and check.

:class:`SubjectOptions` says how a random subject is drawn from a base phantom
(:func:`~napari_mr_reparam.phantoms.random_subject.random_subject`);
:class:`StreamOptions` adds what the stream draws around its subjects
(:class:`~napari_mr_reparam.datasets.StreamingSampler`). Both travel as one object from
the training recipe (:meth:`~napari_mr_reparam.training.config.TrainConfig.stream_options`)
down to where each option is used. This module imports nothing, so a recipe can be read
and checked without the phantoms or the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SubjectOptions:
    """How a random subject is drawn from its base phantom.

    Attributes
    ----------
    tables : tuple of str
        Tissue tables to draw one from, for a phantom built from tissue fractions (the
        plain MNI152 head, a segmentation; ignored otherwise): its maps are rebuilt with
        that table from the deformed tissue fractions. Empty: the base's own table.
    deform_mm : float
        Largest displacement of the smooth random warp (mm), on top of a global scale
        and an in-plane (axial) rotation.
    max_scale, max_rotation_deg : float
        Largest global scale change (a fraction: 0.05 is +-5 %) and in-plane (axial)
        rotation (degrees) of the head.
    anisotropy : float
        Largest further scale change along each axis on its own (a fraction), so heads
        differ in shape (longer, wider, flatter) as well as size. 0 draws nothing.
    tilt_deg : float
        Largest out-of-plane rotation (pitch and roll, each drawn uniformly within it), as
        a head lies differently in every scanner: axial slices then cut the anatomy at new
        angles. 0 tilts none and draws nothing, so seeds give the heads they gave before.
    other_planes : float
        The chance that a subject's stack is laid out as sagittal or coronal slices (half
        each) rather than axial ones, as a 2-D series acquired in those planes reaches
        the network. 0 draws nothing, so seeds give the heads they gave before.
    value_jitter : float
        Standard deviation of the global log-normal factor on T1, T2 and T2* (PD: half);
        each map's smooth spatial factor has half its global sd.
    sharpening : float
        For a phantom built from tissue fractions: largest exponent its fractions are
        sharpened by (drawn log-uniformly from ``sharpening_min``) after the deformation,
        so subjects range from the template's soft mixtures to nearly crisp tissue. 1
        leaves them as they are.
    sharpening_min : float
        Smallest sharpening exponent drawn (1: down to the soft template).
    texture : float
        With sharpening: largest sd of the fine log-normal fields that weight grey matter,
        white matter and CSF before sharpening, so borders (sulci, ventricle edges) move
        and fold differently in every subject. 0 adds none.
    csf_expansion : float
        For a phantom built from tissue fractions: largest factor (drawn log-uniformly
        from 1) that CSF is weighted by against the other tissues, so sulci and ventricles
        widen, from a young brain's to an atrophied one's. 1 leaves CSF as it is.
    sulcus_width : float
        For a phantom built from tissue fractions: largest width (mm, drawn uniformly from
        0) of the thin CSF sheets cut into its grey matter
        (:func:`~napari_mr_reparam.phantoms.random_subject.add_sulci`), whose sulci the
        template has averaged away. 0 cuts none.
    fine_brain : bool
        For the plain MNI152 head with sharpening: sharpen grey matter, white matter and
        CSF on the template's 1 mm grid and average them back, so thin sulci become
        partial-volume lines, as in a 1 mm segmentation resampled to the phantom's 2 mm
        (about 2.5 times the cost of a subject). False sharpens on the phantom's grid.
    extra_reassign : float
        For a FreeSurfer-labelled head: the chance that each unnamed non-brain class
        (``extra_classes``) takes another non-brain tissue than its rule's. 0 keeps the rule.
    partial_volume : str
        For a phantom built from tissue fractions: how a voxel holding several tissues
        renders. ``signals``: the sum of its tissues' signals, as a scanner sees it
        (:mod:`~napari_mr_reparam.phantoms.mixture`), its maps mixing the times
        geometrically. ``times``: one T1, T2 and T2* mixed linearly from its tissues'
        and rendered as one tissue, the earlier simulator, kept so that the recipes
        trained on it reproduce their weights (a cortex voxel with a tenth of CSF then
        decays as if its T2 were 250 ms).
    tissue_jitter : float
        For a phantom built from tissue fractions: the table is a geometric mix of two
        drawn from ``tables`` with each tissue's values jittered by log-normal factors of
        this sd (:func:`~napari_mr_reparam.phantoms.random_subject.mixed_table`), so
        contrasts between tissues vary. 0 draws one table as it is.
    """

    tables: tuple[str, ...] = ()
    deform_mm: float = 4.0
    max_scale: float = 0.05
    max_rotation_deg: float = 5.0
    anisotropy: float = 0.0
    tilt_deg: float = 0.0
    other_planes: float = 0.0
    value_jitter: float = 0.10
    sharpening: float = 1.0
    sharpening_min: float = 1.0
    texture: float = 0.0
    csf_expansion: float = 1.0
    sulcus_width: float = 0.0
    fine_brain: bool = False
    extra_reassign: float = 0.0
    tissue_jitter: float = 0.0
    partial_volume: str = "signals"

    def __post_init__(self):
        object.__setattr__(self, "tables", tuple(str(t) for t in self.tables or ()))
        if self.sharpening < 1.0 or self.texture < 0.0:
            raise ValueError("sharpening must be >= 1 and texture >= 0, got "
                             f"{self.sharpening} and {self.texture}")
        if self.texture > 0 and self.sharpening == 1.0:
            raise ValueError("texture only acts with sharpening > 1")
        if not 1.0 <= self.sharpening_min <= self.sharpening or self.csf_expansion < 1.0:
            raise ValueError("sharpening_min must lie in [1, sharpening] and csf_expansion be >= 1, "
                             f"got {self.sharpening_min} and {self.csf_expansion}")
        from .phantoms.mixture import PARTIAL_VOLUME

        if self.partial_volume not in PARTIAL_VOLUME:
            raise ValueError(f"partial_volume must be one of {', '.join(PARTIAL_VOLUME)}, "
                             f"got {self.partial_volume!r}")
        if self.sulcus_width < 0:
            raise ValueError(f"sulcus_width must be >= 0 mm, got {self.sulcus_width}")
        if self.tilt_deg < 0:
            raise ValueError(f"tilt_deg must be >= 0 degrees, got {self.tilt_deg}")
        if not (0 <= self.max_scale < 1 and 0 <= self.anisotropy < 1 and self.max_rotation_deg >= 0
                and self.deform_mm >= 0):
            raise ValueError("max_scale and anisotropy must lie in [0, 1) and max_rotation_deg and "
                             f"deform_mm be >= 0, got {self.max_scale}, {self.anisotropy}, "
                             f"{self.max_rotation_deg} and {self.deform_mm}")
        if not 0 <= self.other_planes <= 1:
            raise ValueError(f"other_planes is a chance (0-1), got {self.other_planes}")
        if not 0 <= self.extra_reassign <= 1 or self.tissue_jitter < 0:
            raise ValueError("extra_reassign is a chance (0-1) and tissue_jitter an sd (>= 0), got "
                             f"{self.extra_reassign} and {self.tissue_jitter}")


@dataclass(frozen=True)
class StreamOptions:
    """What the training stream draws: its subjects, and the acquisition around them.

    Attributes
    ----------
    subject : SubjectOptions
        How each subject of the pool is drawn.
    noise_max : float
        Largest Rician noise sd (relative to the image maximum; drawn uniformly per image).
    bias_strength : float
        Largest bias-field deviation from 1 (drawn per subject).
    subject_every : int
        Examples drawn between replacing one subject of the pool.
    subject_workers : int
        0 draws subjects in the stream's process from its generator; N > 0 draws them
        ahead in N background processes, each subject from its own generator seeded by
        the stream's seed and its number
        (:class:`~napari_mr_reparam.subject_source.BackgroundSubjects`): other subjects
        than in-process drawing gives, the same ones for any N.
    effects : acquisition_effects.Effects, optional
        Draw examples as real scans arrive
        (:func:`~napari_mr_reparam.acquisition_effects.realistic_example`: any input
        sequence of ``input_sequences``, slice thickness, resolution, ringing, noise,
        skull-stripping, field of view, normalization, JPEG), rather than as the paper's
        exports; ``noise_max`` then no longer applies.
    input_sequences : tuple of str
        With ``effects``: the input sequences Param-to-Param examples draw from (empty:
        all of :data:`~napari_mr_reparam.physics.INPUT_SEQUENCES`).
    """

    subject: SubjectOptions = field(default_factory=SubjectOptions)
    noise_max: float = 0.02
    bias_strength: float = 0.2
    subject_every: int = 64
    subject_workers: int = 0
    effects: Any = None
    input_sequences: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "input_sequences", tuple(self.input_sequences or ()))
        if self.noise_max < 0 or self.bias_strength < 0 or self.bias_strength >= 1:
            raise ValueError("noise_max must be >= 0 and bias_strength in [0, 1), got "
                             f"{self.noise_max} and {self.bias_strength}")
        if self.subject_every <= 0:
            raise ValueError(f"subject_every must be a positive number of examples, got {self.subject_every}")
        if self.subject_workers < 0:
            raise ValueError(f"subject_workers must be >= 0, got {self.subject_workers}")
