"""Which input preset an image looks like, for a scan that comes without its acquisition.

A NIfTI file without a sidecar, a PNG or a template carries no TE, TR or sequence. Read at
a wrong acquisition, a T1-weighted scan comes out with the wrong contrast. A small
classifier (:class:`~napari_mr_reparam.models.contrast_net.ContrastNet`, the bundled
``contrast`` weights) tells which input preset (:data:`CLASSES`) the image's contrast is
nearest to; the command line and the widget take that preset for an input whose acquisition
nothing else names, and say so.

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

    def describe(self) -> str:
        return f"{self.preset} ({100 * self.probability:.0f} %)"


def load_classifier(weights: str | None = None):
    """The classifier and its card (the bundled ``contrast`` weights by default)."""
    from .models.contrast_net import ContrastNet
    from .weights import load_weights

    state, card = load_weights(weights or "contrast")
    if card.get("arch") != "contrast":
        raise ValueError(f"{weights}: not a contrast classifier (arch {card.get('arch')!r})")
    net = ContrastNet(len(card["classes"]), base=int(card["base"]), work_size=int(card["work_size"]))
    net.load_state_dict(state)
    return net.eval(), card


def _slices_with_signal(volume: np.ndarray, count: int) -> np.ndarray:
    data = np.nan_to_num(np.asarray(volume, np.float32).reshape(-1, *np.shape(volume)[-2:]))
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


def guessed_reading(volume: np.ndarray, engine, weights: str | None = None):
    """``(Acquisition, ContrastGuess)``: the preset ``volume`` looks like, as the input
    acquisition ``engine`` reads it at; None where the bundled classifier is missing or
    the engine does not read that preset's sequence (a paper model and a FLAIR-like image)."""
    from .weights import WeightsError

    try:
        guess = guess_input(volume, weights)
    except WeightsError:
        return None
    acq = get_preset(guess.preset).acquisition()
    return (acq, guess) if engine.reads_input(acq.sequence) else None
