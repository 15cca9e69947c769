"""Which input preset an image looks like, for a scan that comes without its acquisition.

A NIfTI file without a sidecar, a PNG or a template carries no TE, TR or sequence. Read at
a wrong acquisition, a T1-weighted scan comes out with the wrong contrast. A small
classifier (:class:`~napari_mr_reparam.models.contrast_net.ContrastNet`, the bundled
``contrast`` weights) tells which input preset (:data:`CLASSES`) the image's contrast is
nearest to; the command line and the widget take that preset for an input whose acquisition
nothing else names, and say so.

A volume on thin voxels in every direction was acquired in 3-D, and a 3-D T1-weighted
brain scan is most often inversion-prepared (MPRAGE, IR-SPGR / BRAVO, 3-D TFE), while a
T1-weighted spin echo is acquired in 2-D slices 3-6 mm thick. The classifier alone tells
MPRAGE from T1w poorly; on 3-D voxels an image it takes for T1w is read as MPRAGE where it
finds MPRAGE likely enough (:func:`read_as`).

Its training labels come from the acquisition each training image was simulated with
(:func:`preset_label`): the input preset whose contrast between CSF, grey and white matter
and fat is nearest, with literature tissue values (:func:`contrast_signature`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .presets import get_preset, input_preset_names

#: The classes, in logit order: the input presets.
CLASSES = tuple(input_preset_names())
#: Tissues whose relative signals make an image's contrast, and the tables they come from:
#: tables whose CSF T1 (4.2-4.5 s) nulls CSF at the FLAIR preset's TI, as in real brains
#: (BrainWeb's 2.6 s would null it near 1.8 s and leave it bright at TI 2500 ms, so that
#: half the FLAIR acquisitions were labelled T1w).
SIGNATURE_TISSUES = ("csf", "grey_matter", "white_matter", "fat")
SIGNATURE_TABLES = ("mrilab", "3t")
#: Signals below this share of the brightest tissue count as this (a nulled tissue).
SIGNATURE_FLOOR = 0.05
#: Slices of a volume the classifier reads (evenly spaced among those with signal).
GUESS_SLICES = 12
#: Voxels no larger than this (mm) along every axis, over more than one slice: a 3-D
#: acquisition.
THIN_VOXEL_MM = 1.5
#: On 3-D voxels, an image the classifier takes for T1w is read as MPRAGE where its MPRAGE
#: probability is at least this share of its T1w probability (and above its FLAIR
#: probability: :func:`read_as`). Chosen on training subjects
#: 01-04 of the external benchmark (MPRAGE inputs 0.32-1.32, T1-weighted gradient echoes
#: 0.10-0.28; ``benchmarks/bench_contrast.py --tuning``).
MPRAGE_SHARE_3D = 0.3


def contrast_signature(acq) -> np.ndarray:
    """Log signal of each :data:`SIGNATURE_TISSUES` over the brightest of them, floored at
    :data:`SIGNATURE_FLOOR`, for each table of :data:`SIGNATURE_TABLES` (concatenated)."""
    from .physics import render
    from .tissues import get_table

    out = []
    for name in SIGNATURE_TABLES:
        table = get_table(name)
        t = [table[k] for k in SIGNATURE_TISSUES]
        s = render(acq.sequence, np.array([x.pd for x in t]), np.array([x.t1 for x in t], float),
                   np.array([x.t2 for x in t], float), acq.te_ms, acq.tr_ms, ti=acq.ti_ms, flip_deg=acq.flip_deg,
                   t2star=np.array([x.t2star for x in t], float))
        s = np.abs(np.asarray(s, float))
        out.append(np.log(np.maximum(s / max(s.max(), 1e-12), SIGNATURE_FLOOR)))
    return np.concatenate(out)


def _preset_signatures() -> np.ndarray:
    return np.stack([contrast_signature(get_preset(name).acquisition()) for name in CLASSES])


def preset_label(acq) -> int:
    """Index into :data:`CLASSES` of the preset whose :func:`contrast_signature` is nearest
    ``acq``'s."""
    global _SIGNATURES
    if _SIGNATURES is None:
        _SIGNATURES = _preset_signatures()
    d = np.linalg.norm(_SIGNATURES - contrast_signature(acq)[None], axis=1)
    return int(np.argmin(d))


_SIGNATURES = None


@dataclass(frozen=True)
class ContrastGuess:
    """The preset an image looks like, with the classifier's probability for each class."""

    preset: str
    probability: float
    probabilities: dict
    #: The preset the image is read at (:func:`read_as`): the guess, or MPRAGE for a
    #: T1-weighted look on 3-D voxels; and why, where it is not the guess.
    reading: str = ""
    reason: str = ""

    def __post_init__(self):
        if not self.reading:
            object.__setattr__(self, "reading", self.preset)

    def describe(self) -> str:
        return f"{self.preset} ({100 * self.probability:.0f} %)" + (f"; {self.reason}" if self.reason else "")


def voxel_mm(volume) -> tuple | None:
    """The voxel size (mm, per axis) of a :class:`~napari_mr_reparam.io.Volume` read from a
    file that states it (NIfTI, MGZ, DICOM) with more than one slice; None for an image of
    unknown placement or a single slice."""
    data = getattr(volume, "data", None)
    if getattr(volume, "kind", "image") == "image" or data is None or np.ndim(data) != 3 or np.shape(data)[0] < 2:
        return None
    return tuple(float(v) for v in volume.spacing)


def read_as(guess: ContrastGuess, voxels_mm=None, reads=None) -> ContrastGuess:
    """``guess`` with the preset the image is read at: MPRAGE where it looks T1-weighted
    (T1w), its voxels are 3-D (every side at most :data:`THIN_VOXEL_MM`) and its MPRAGE
    probability is at least :data:`MPRAGE_SHARE_3D` of its T1w one and above its FLAIR one
    (the classifier takes a FLAIR for T1w too, and a 3-D FLAIR read as MPRAGE comes out
    worse than read as T1w), and the model reads an MPRAGE input (``reads(preset name)``,
    default: it does); else the guess."""
    from dataclasses import replace

    thin = voxels_mm is not None and max(voxels_mm) <= THIN_VOXEL_MM
    p = guess.probabilities
    if not (thin and guess.preset == "T1w" and "MPRAGE" in p
            and p["MPRAGE"] >= MPRAGE_SHARE_3D * p.get("T1w", 0.0) and p["MPRAGE"] > p.get("FLAIR", 0.0)
            and (reads is None or reads("MPRAGE"))):
        return replace(guess, reading=guess.preset, reason="")
    size = "x".join(f"{v:g}" for v in voxels_mm)
    return replace(guess, reading="MPRAGE",
                   reason=f"on 3-D voxels ({size} mm) and MPRAGE-like ({100 * p['MPRAGE']:.0f} %), as most 3-D "
                          "T1-weighted scans are")


def load_classifier(weights: str | None = None):
    """The classifier and its card (the bundled ``contrast`` weights by default)."""
    from .inference import loaded_network
    from .models.contrast_net import ContrastNet
    from .weights import load_weights

    source = weights or "contrast"
    state, card = load_weights(source)
    if card.get("arch") != "contrast":
        raise ValueError(f"{source}: not a contrast classifier (arch {card.get('arch')!r})")
    net = loaded_network(lambda: ContrastNet(len(card["classes"]), base=int(card["base"]),
                                             work_size=int(card["work_size"])),
                         state, source, "the contrast classifier its card names")
    return net.eval(), card


def _slices_with_signal(volume: np.ndarray, count: int) -> np.ndarray:
    data = np.nan_to_num(np.asarray(volume, np.float32).reshape(-1, *np.shape(volume)[-2:]), posinf=0.0, neginf=0.0)
    energy = data.reshape(data.shape[0], -1).mean(axis=1)
    keep = np.flatnonzero(energy >= 0.25 * energy.max()) if energy.max() > 0 else np.arange(data.shape[0])
    pick = keep[np.unique(np.linspace(0, keep.size - 1, min(count, keep.size)).round().astype(int))]
    return data[pick]


def guess_input(volume: np.ndarray, weights: str | None = None, classifier=None) -> ContrastGuess:
    """The input preset ``volume`` ((z, y, x) or (y, x)) looks like: the classifier's mean
    probabilities over up to :data:`GUESS_SLICES` slices with signal (each normalized to
    its maximum). A volume with no image in it (empty, all NaN, one value) is the
    engine's one-line ``ValueError``, before any guess."""
    import torch

    from .inference import require_contrast

    require_contrast(np.asarray(volume))
    net, card = classifier or load_classifier(weights)
    images = _slices_with_signal(volume, GUESS_SLICES)
    peak = images.reshape(images.shape[0], -1).max(axis=1).clip(1e-12)[:, None, None]
    x = torch.from_numpy(np.clip(images / peak, 0, 1).astype(np.float32))[:, None]
    with torch.inference_mode():
        p = torch.softmax(net(x), dim=1).mean(dim=0).numpy()
    classes = list(card["classes"])
    best = int(np.argmax(p))
    return ContrastGuess(classes[best], float(p[best]), {c: float(v) for c, v in zip(classes, p)})


def guessed_reading(volume: np.ndarray, engine, weights: str | None = None, voxels_mm=None):
    """``(Acquisition, ContrastGuess)``: the preset ``volume`` looks like (read at MPRAGE
    on 3-D ``voxels_mm`` where :func:`read_as` says so and the engine reads MPRAGE), as the
    input acquisition ``engine`` reads it at; None where the bundled classifier is missing
    or the engine does not read that preset's sequence (a paper model and a FLAIR-like
    image)."""
    from .weights import WeightsError

    try:
        guess = read_as(guess_input(volume, weights), voxels_mm,
                        reads=lambda name: engine.reads_input(get_preset(name).sequence))
    except WeightsError:
        return None
    acq = get_preset(guess.reading).acquisition()
    return (acq, guess) if engine.reads_input(acq.sequence) else None
