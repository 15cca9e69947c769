"""External benchmark: models on brains, phantoms and scans they were not trained on.

    python benchmarks/bench_external.py [--models physics d2p p2p PATH.pt ...]
                                        [--groups heldout mrilab sample mni152 real_t1]
                                        [--slices 8] [--targets 12] [--limit 300]
                                        [--json OUT.json] [--figure OUT.png] [--device cpu]

Every model is scored through the inference engine the command line and the plugin run
(:class:`~napari_mr_reparam.inference.Reparameterizer`: ``compute_maps`` then
``render`` for a physics model, ``predict_volume`` for the others), beside the identity
baseline (the input returned) and the paper's models (``d2p``, ``p2p``), which are
always added. ``--models`` takes bundled names or weights files (a training checkpoint,
say); a file's rows are labelled by its path.

Scores follow the paper's convention (:data:`napari_mr_reparam.metrics.CONVENTION`):
0-255, each image normalized to its own maximum, whole image; brain-masked PSNR beside
it where a brain mask exists. PSNR is broken down by target echo-time band
(:data:`TE_BANDS_MS`) and given for T1-like targets (TR 400-800 ms). Default-to-Param
inputs are at TE 50 / TR 4500 ms; Param-to-Param inputs are other acquisitions
(spin echo T1w, PDw, T2w and, for a model that reads inversion-recovery inputs, FLAIR).

Row groups (``--groups``):

``heldout``
    The anatomy subjects kept out of training
    (:data:`napari_mr_reparam.phantoms.freesurfer.HELD_OUT`: SynthSeg
    ``training_seg_17..20``, SynthSR ``brain5`` in ``../shared/anatomy``), read with the
    package's FreeSurfer reader and rendered on their own 1 mm grid (the training
    phantoms' is 2 mm) with a tissue table and acquisition effects drawn apart from
    training: :data:`HELDOUT_TABLE` (literature ranges at 1.5 T and 3 T, wider than the
    training tables, deep grey nuclei a class of their own, drawn per subject from
    :data:`HELDOUT_SEED`), the reader's default tissue for each non-brain class, a smooth
    quadratic receive bias (training's is a smoothed random field), Rician noise on the
    inputs, 1 mm pixels on a 256 matrix and 3-5 mm thick slices (partial volume through
    the slab). Inputs: the Default-to-Param one and, for Param-to-Param models, T1w, PDw
    and T2w spin echo, FLAIR, MPRAGE and a T1-weighted 3-D spoiled gradient echo drawn
    around clinical and research protocols (the last three only for a model whose engine
    takes an ``input_sequence`` and whose card says it was trained on them). Targets are noise-free, share the input's bias field (same coil,
    same session) and are drawn across TE 20-1000 / TR 400-10000 ms, plus T1-like targets
    (TE 10-20 / TR 400-800 ms). ``--slices`` per subject, ``--targets`` per subject.
``mrilab``
    The test part of the MRiLab phantom's paper protocol (split ``paper``), first
    ``--limit`` images, both tasks. A model trained on this phantom is marked so: its
    test images are other TE/TR of anatomy it has seen.
``sample``
    The head the demo opens (:mod:`napari_mr_reparam.sample_head`), predicted from its
    input (TE 50 / TR 4500 ms) at each of its ground truths.
``mni152``
    nilearn's MNI152 2009 T1-weighted template (a real averaged scan, skull-stripped),
    read as the command line reads a NIfTI file, as input at TE 10 / TR 600 ms (and as
    MPRAGE, :data:`MNI_MPRAGE`, for a model that reads MPRAGE inputs). No
    ground truth: the tissue means of CSF, grey and white matter (masks from the
    template's own probability maps, :func:`mni152_masks`) in T1-, PD-, T2- and
    FLAIR-like predictions are checked against the order physics gives (:data:`ORDER_RULES`).
``real_t1``
    One person's real skull-stripped T1-weighted scan (not an average; acquisition
    unknown), voxelmorph's ``test_scan.npz`` in ``../shared/anatomy`` (:data:`REAL_T1`),
    read with the package's FreeSurfer reader: ``--slices`` axial slices through the
    cerebrum, fed as the ``mni152`` group feeds the template (T1w spin echo, and MPRAGE
    where read). CSF (lateral ventricles), GM (cerebral cortex) and WM (cerebral white
    matter) masks from the scan's own FreeSurfer segmentation, eroded by one voxel
    in-plane (:func:`real_t1_masks`); the same rules, and each prediction's GM/WM and
    CSF/GM ratios beside those the signal equations give for the mid-points of
    :data:`HELDOUT_TABLE` (a literature reference, not ground truth). ``--figure PATH``
    saves a PNG of one mid slice and the predictions from it of the first model asked for
    that renders every target (a physics model).

Each group says, per model, whether the model's weight card names the data as a
training source (``saw it``), so no figure on seen data passes for an external one: the
held-out subjects' files; the MRiLab phantom (or only its tissue table); the ``mni152``
phantom, which the sample head is and whose grey and white matter are the T1 template's;
the real scan's segmentation (``voxelmorph``), which a model may have been trained on as
anatomy (rendered with tissue tables), never on the scan's own intensities.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from _common import refuse_existing

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MRILAB_SPEC = "mrilab:" + str(SHARED / "phantoms/mrilab_brain/mrilab_brain_standard.npz")
ANATOMY = SHARED / "anatomy"
GROUPS = ("heldout", "mrilab", "sample", "mni152", "real_t1")
PAPER_MODELS = ("d2p", "p2p")
#: Target echo-time bands (ms): the protocol's, below which the T1-like targets lie.
TE_BANDS_MS = (10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)
#: Targets with TR in this range (ms) are T1-like.
T1_LIKE_TR_MS = (400.0, 800.0)
#: Seed of everything drawn for the held-out subjects (tables, effects, targets).
HELDOUT_SEED = 20260
#: T2* as a fraction of T2 for the held-out renders' MPRAGE and gradient-echo inputs (TE 3-6 ms).
T2STAR_OVER_T2 = 0.7
#: Default-to-Param input (ms).
D2P_INPUT = {"te": 50.0, "tr": 4500.0}


# --------------------------------------------------------------------------- acquisitions

@dataclass(frozen=True)
class Acq:
    """One acquisition: spin echo (TE, TR) or inversion recovery (TE, TR, TI), ms."""

    te: float
    tr: float
    sequence: str = "spin_echo"
    ti: float | None = None
    flip: float | None = None
    name: str = ""

    def label(self) -> str:
        ti = f"/TI {self.ti:g}" if self.ti is not None else ""
        flip = f"/flip {self.flip:g}" if self.flip is not None else ""
        head = f"{self.name} " if self.name else ""
        return f"{head}TE {self.te:g}/TR {self.tr:g}{ti}{flip}"

    @property
    def t1_like(self) -> bool:
        return self.sequence == "spin_echo" and T1_LIKE_TR_MS[0] <= self.tr <= T1_LIKE_TR_MS[1]


def signal(acq: Acq, pd, t1, t2):
    """The magnitude signal of ``acq`` (the package's equations; T2* taken as
    :data:`T2STAR_OVER_T2` of T2 where a gradient-echo readout needs it)."""
    from napari_mr_reparam import physics

    return physics.render(acq.sequence, pd, t1, t2, acq.te, acq.tr, ti=acq.ti, flip_deg=acq.flip,
                          t2star=T2STAR_OVER_T2 * t2)


# --------------------------------------------------------------------------- models

@dataclass
class Model:
    """A model to score: ``engine`` is None for the identity baseline."""

    label: str
    engine: object = None
    sources: str = ""  # the weight card's training configuration, as text

    @property
    def identity(self) -> bool:
        return self.engine is None

    @property
    def task(self) -> str:
        return "p2p" if self.identity else self.engine.task

    def saw(self, *needles: str) -> bool | None:
        """Whether the card's training configuration names any of ``needles`` (None for
        the identity baseline, which trains on nothing)."""
        if self.identity:
            return None
        text = self.sources.lower()
        return any(n.lower() in text for n in needles)

    def input_sequences(self) -> tuple[str, ...]:
        """Input sequences the model reads: spin echo, unless its card says it is
        conditioned on others (``input_sequences``: true for all of
        ``physics.INPUT_SEQUENCES``, or a list) and the engine passes the input's
        sequence on (:func:`_engine_reads_sequence`)."""
        from napari_mr_reparam import physics

        if self.identity:
            return physics.INPUT_SEQUENCES
        declared = self.engine.info.card.get("input_sequences")
        if not declared or not _engine_reads_sequence(self.engine):
            return ("spin_echo",)
        return physics.INPUT_SEQUENCES if declared is True else tuple(declared)

    def reads(self, acq: Acq) -> bool:
        """Whether the model can take ``acq`` as its input for what it is."""
        if self.task == "d2p":
            return acq.sequence == "spin_echo" and (acq.te, acq.tr) == (D2P_INPUT["te"], D2P_INPUT["tr"])
        return acq.sequence in self.input_sequences()

    def renders(self, acq: Acq) -> bool:
        """Whether the model predicts targets of ``acq``'s sequence."""
        return self.identity or acq.sequence == "spin_echo" or _renders(self.engine)


def load_models(names, device: str, baselines: bool = True, options: dict | None = None) -> list[Model]:
    """Identity, then every model asked for, then the paper models if not asked for
    (without ``baselines``: only the models asked for). ``options`` (the engine's
    ``consistency``, ``flip_average``) apply to the models that render from maps."""
    from napari_mr_reparam.inference import Reparameterizer

    out = [Model("identity")] if baselines or "identity" in names else []
    wanted = [n for n in names if n != "identity"]
    wanted += [n for n in PAPER_MODELS if n not in wanted] if baselines else []
    for name in wanted:
        engine = Reparameterizer(name, device=device, batch_size=16)
        if options and engine.renders_from_maps:
            engine = Reparameterizer(name, device=device, batch_size=16, **options)
        label = name if not Path(name).suffix else f"`{name}`"
        config = engine.info.card.get("config") or {}
        out.append(Model(label, engine, json.dumps(config)))
    return out


# The engine's requests: acquisitions as values, as the command line and the widget make them.

def _engine_reads_sequence(engine) -> bool:
    """Whether the engine's prediction from an image changes when the image is said to be
    an inversion-recovery rather than a spin-echo acquisition at the same TE/TR (an
    engine that cannot say so, or drops it, reads every input as spin echo)."""
    image = np.random.default_rng(0).uniform(0.2, 1.0, (1, 64, 64)).astype(np.float32)
    spin_echo, flair = Acq(100.0, 5000.0), Acq(100.0, 5000.0, "inversion_recovery", 1000.0)
    target = Acq(20.0, 600.0)
    try:
        if _renders(engine):
            a, b = (_render(engine, _compute_maps(engine, image, inp), target) for inp in (spin_echo, flair))
        else:
            a, b = (_predict_images(engine, image, inp, target) for inp in (spin_echo, flair))
    except (TypeError, ValueError):
        return False
    return not np.allclose(a, b)


def _renders(engine) -> bool:
    """Whether the engine computes maps once and renders targets from them."""
    return engine.renders_from_maps


def _acquisition(acq: Acq):
    from napari_mr_reparam.acquisition import Acquisition

    return Acquisition(acq.te, acq.tr, acq.sequence, acq.ti, acq.flip)


def _compute_maps(engine, images01: np.ndarray, inp: Acq):
    return engine.compute_maps(images01, _acquisition(inp))


def _render(engine, maps, target: Acq) -> np.ndarray:
    return engine.render(maps, _acquisition(target))


def _predict_images(engine, images01: np.ndarray, inp: Acq, target: Acq) -> np.ndarray:
    from napari_mr_reparam.inference import input_read_by

    return engine.predict(images01, _acquisition(target), input_read_by(engine, _acquisition(inp)))


def predict(model: Model, images01: np.ndarray, inp: Acq, targets: list[Acq]) -> list[np.ndarray | None]:
    """Predictions (n, h, w) in [0, 1] of each target from ``images01`` (each slice
    normalized to its maximum) acquired as ``inp``; None where the model has no such
    target. Physics models: maps once, then a render per target."""
    images01 = np.asarray(images01, np.float32)
    if model.identity:
        return [images01.copy() for _ in targets]
    engine = model.engine
    if _renders(engine):
        maps = _compute_maps(engine, images01, inp)
        return [own_maximum(_render(engine, maps, t)) for t in targets]
    scale = np.maximum(images01.max(axis=(1, 2), keepdims=True), 1e-12)
    preds = [_predict_images(engine, images01, inp, t) if t.sequence == "spin_echo" else None for t in targets]
    return [None if p is None else np.clip(np.nan_to_num(p) / scale, 0.0, 1.0) for p in preds]


def own_maximum(render: np.ndarray) -> np.ndarray:
    """A physics model's render (input units, one scale for the volume) with each image at
    its own maximum, as the convention scores images; NaN as 0."""
    from napari_mr_reparam.simulate import normalize_to_max

    return normalize_to_max(np.nan_to_num(np.asarray(render, np.float32)))


def predict_samples(model: Model, images01, inputs: list[Acq], targets: list[Acq]) -> np.ndarray:
    """One prediction per sample (input image, input acquisition, target): samples that
    share an input acquisition and target are predicted together (physics models: maps
    once per input acquisition)."""
    out = np.empty_like(np.asarray(images01, np.float32))
    if model.identity:
        out[:] = images01
        return out
    groups: dict[Acq, list[int]] = {}
    for i, acq in enumerate(inputs):
        groups.setdefault(acq, []).append(i)
    for inp, idx in groups.items():
        idx = np.asarray(idx)
        wanted = sorted(set(targets[i] for i in idx), key=lambda a: (a.te, a.tr))
        if _renders(model.engine):
            by_target = {t: np.flatnonzero([targets[i] == t for i in idx]) for t in wanted}
            maps = _compute_maps(model.engine, np.asarray(images01[idx], np.float32), inp)
            for t, rows in by_target.items():
                out[idx[rows]] = own_maximum(_render(model.engine, _maps_subset(maps, rows), t))
        else:
            for t in wanted:
                rows = idx[[targets[i] == t for i in idx]]
                out[rows] = predict(model, images01[rows], inp, [t])[0]
    return out


def _maps_subset(maps, rows):
    """The quantitative maps of some slices only."""
    return maps.slices(rows)


# --------------------------------------------------------------------------- scoring

def score(preds01, targets01, masks=None) -> dict[str, np.ndarray]:
    """Per-image PSNR (and brain PSNR with ``masks``) on the paper's convention."""
    from napari_mr_reparam.metrics import batch_metrics, to_255

    m = batch_metrics(to_255(preds01), to_255(targets01), masks)
    return {k: m[k] for k in ("psnr", "psnr_brain") if k in m}


@dataclass
class Tally:
    """Per-image PSNR with each image's target, gathered over subjects and slices."""

    psnr: list = field(default_factory=list)
    brain: list = field(default_factory=list)
    te: list = field(default_factory=list)
    t1_like: list = field(default_factory=list)

    def add(self, scores: dict, target: Acq) -> None:
        n = len(scores["psnr"])
        self.psnr.append(scores["psnr"])
        if "psnr_brain" in scores:
            self.brain.append(scores["psnr_brain"])
        self.te.append(np.full(n, target.te))
        self.t1_like.append(np.full(n, target.t1_like))

    def summary(self) -> dict:
        from napari_mr_reparam.metrics import band_means

        if not self.psnr:
            return {"count": 0}
        psnr, te, t1 = (np.concatenate(v) for v in (self.psnr, self.te, self.t1_like))
        out = {"count": int(psnr.size), "psnr_mean": float(psnr.mean()),
               "psnr_by_target_te": band_means(psnr, te, TE_BANDS_MS)}
        if self.brain:
            out["psnr_brain_mean"] = float(np.concatenate(self.brain).mean())
        if t1.any():
            out["psnr_t1_like_mean"] = float(psnr[t1].mean())
            out["t1_like_count"] = int(t1.sum())
        return out


def _band_header() -> tuple[str, str]:
    bands = [f"TE {lo:g}-{hi:g}" for lo, hi in zip(TE_BANDS_MS[:-1], TE_BANDS_MS[1:])]
    return (" | ".join(bands), "---|" * len(bands))


def _band_cells(summary: dict) -> str:
    means = {tuple(b["range"]): b["mean"] for b in summary.get("psnr_by_target_te", [])}
    return " | ".join(f"{means[(lo, hi)]:.2f}" if (lo, hi) in means else "-"
                      for lo, hi in zip(TE_BANDS_MS[:-1], TE_BANDS_MS[1:]))


def _saw(saw: bool | str | None) -> str:
    if isinstance(saw, str):
        return saw
    return "-" if saw is None else "yes" if saw else "no"


def _fmt(value, digits=2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def psnr_table(rows: list[dict], first: str) -> str:
    """A markdown table of PSNR summaries: ``first`` names the row's leading columns."""
    bands, rule = _band_header()
    lines = [f"| model | {first} | saw it | PSNR (dB) | PSNR brain | T1-like (TR 400-800) | {bands} "
             "| images |",
             f"|---|---|---|---|---|---|{rule}---|"]
    for r in rows:
        s = r["summary"]
        if not s.get("count"):
            continue
        lines.append(f"| {r['model']} | {r['what']} | {_saw(r['saw'])} | "
                     f"{_fmt(s.get('psnr_mean'))} | {_fmt(s.get('psnr_brain_mean'))} | "
                     f"{_fmt(s.get('psnr_t1_like_mean'))} | {_band_cells(s)} | {s['count']} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- held-out subjects

#: The held-out tissue table: for each tissue, ranges (low, high) of T1 (ms), T2 (ms) and
#: relative PD that each held-out subject's values are drawn from (uniformly, from
#: :data:`HELDOUT_SEED`). The ranges span reported 1.5 T and 3 T values (Wansapura et al.
#: JMRI 1999; Stanisz et al. MRM 2005; Gelman et al. Radiology 1999 for deep grey matter;
#: Bojorquez et al. MRI 2017 for fat, muscle and marrow; Lu et al. MRM 2004 for blood) and
#: extend past the package's training tables (brainweb_1.5t, mrilab, 3t): white-matter T1
#: up to 1150 ms, CSF T2 up to 2500 ms, a separate deep-grey class.
HELDOUT_TABLE = {
    "csf": ((3000, 4800), (800, 2500), (0.95, 1.00)),
    "grey_matter": ((850, 1900), (75, 120), (0.75, 0.88)),
    "deep_grey": ((750, 1500), (55, 95), (0.72, 0.85)),
    "white_matter": ((550, 1150), (55, 90), (0.62, 0.75)),
    "fat": ((250, 420), (40, 140), (0.85, 1.00)),
    "muscle": ((850, 1450), (27, 55), (0.65, 0.85)),
    "skin": ((500, 1300), (25, 80), (0.60, 0.90)),
    "bone": ((200, 600), (0.5, 3), (0.02, 0.10)),
    "marrow": ((300, 800), (50, 130), (0.70, 1.00)),
    "connective": ((600, 1200), (30, 80), (0.50, 0.80)),
    "eye": ((3000, 4600), (700, 2000), (0.95, 1.00)),
}
BRAIN_CLASSES = ("csf", "grey_matter", "deep_grey", "white_matter")
#: Deep grey nuclei (thalamus, caudate, putamen, pallidum, accumbens: FreeSurfer labels),
#: a class of their own here; every other brain label takes the tissue that makes up most
#: of it in :func:`napari_mr_reparam.phantoms.freesurfer.tissue_of`.
DEEP_GREY_LABELS = (9, 10, 11, 12, 13, 26, 48, 49, 50, 51, 52, 58)
#: Non-brain tissues of :data:`napari_mr_reparam.phantoms.freesurfer.NON_BRAIN` under this
#: table's names (a non-brain class of CSF stands for the eyes' vitreous humour there).
NON_BRAIN_AS = {"csf": "eye", "skull": "bone"}
#: Cerebral cortex labels: the slices lie within this part of their extent, from the
#: temporal lobes to near the vertex.
CEREBRAL_CORTEX = (3, 42)
SLICE_SPAN = (0.2, 0.85)
#: Acquisition effects of the held-out renders.
MATRIX = 256
SLICE_MM = (3, 5)
NOISE_SIGMA = (0.01, 0.04)
BIAS_SPAN = (0.15, 0.35)


@dataclass(frozen=True)
class HeldoutEffects:
    """The ranges the held-out renders' effects are drawn from (slab thickness in mm,
    Rician noise sd, bias span); the benchmark's own by default."""

    slice_mm: tuple = SLICE_MM
    noise_sigma: tuple = NOISE_SIGMA
    bias_span: tuple = BIAS_SPAN


INPUT_NAMES = ("default", "T1w SE", "PDw SE", "T2w SE", "FLAIR", "MPRAGE", "T1w GRE")


def input_rows(model: str, summaries: dict) -> list[dict]:
    """One table row for ``model`` per input kind that ``summaries`` holds (in
    :data:`INPUT_NAMES` order), as :func:`psnr_table` takes them."""
    return [{"model": model, "what": f"{name} input", "saw": None, "summary": summaries[name]}
            for name in INPUT_NAMES if name in summaries]


def heldout_inputs(rng: np.random.Generator) -> list[Acq]:
    """The subject's input acquisitions: the Default-to-Param one, then T1w, PDw, T2w spin
    echo, FLAIR and MPRAGE, each drawn around a clinical or research protocol."""
    u = rng.uniform
    return [Acq(D2P_INPUT["te"], D2P_INPUT["tr"], name="default"),
            Acq(round(u(10, 20), 1), round(u(400, 800)), name="T1w SE"),
            Acq(round(u(15, 30), 1), round(u(2000, 4000)), name="PDw SE"),
            Acq(round(u(80, 120), 1), round(u(3000, 6000)), name="T2w SE"),
            Acq(round(u(80, 140), 1), round(u(8000, 11000)), "inversion_recovery",
                round(u(2200, 2700)), name="FLAIR"),
            Acq(round(u(2.5, 4), 1), round(u(1900, 2500)), "mprage", round(u(850, 1100)),
                round(u(7, 10)), name="MPRAGE")]


def gradient_echo_input(rng: np.random.Generator) -> Acq:
    """A T1-weighted 3-D spoiled gradient echo (FLASH, SPGR) drawn around research
    protocols; drawn from its own generator, so the other inputs and effects stay as they
    were drawn before it was added."""
    u = rng.uniform
    return Acq(round(u(3, 6), 1), round(u(15, 30), 1), "gradient_echo", flip=round(u(15, 30)), name="T1w GRE")


def heldout_targets(count: int, seed: int = HELDOUT_SEED) -> list[Acq]:
    """``count`` spin-echo targets: a quarter (at least one) T1-like (TE 10-20, TR
    400-800 ms), the rest TE log-uniform in 20-1000 ms and TR uniform in 400-10000 ms."""
    rng = np.random.default_rng([seed, 1])
    n_t1 = max(1, count // 4)
    out = [Acq(round(rng.uniform(10, 20), 1), round(rng.uniform(400, 800))) for _ in range(n_t1)]
    while len(out) < count:
        te = round(float(np.exp(rng.uniform(np.log(20), np.log(1000)))), 1)
        tr = round(float(rng.uniform(400, 10000)))
        if te < tr:
            out.append(Acq(te, tr))
    return out


def label_class(label: int) -> str:
    """The held-out table's tissue of one FreeSurfer label (the package's reader's
    mapping, with deep grey nuclei apart); KeyError for a label it does not know."""
    from napari_mr_reparam.phantoms.freesurfer import EXTRA_LABELS, extra_tissue, tissue_of

    if label in DEEP_GREY_LABELS:
        return "deep_grey"
    if label in EXTRA_LABELS:
        tissue = extra_tissue(label)
        return NON_BRAIN_AS.get(tissue, tissue)
    fractions = tissue_of(label)
    return max(fractions, key=fractions.get)


def class_volume(labels: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Each voxel's tissue (index into the returned names; 0 is background)."""
    names = ["background", *BRAIN_CLASSES]
    lut = np.zeros(int(labels.max()) + 1, np.int16)
    for label in np.unique(labels):
        if label == 0:
            continue
        try:
            name = label_class(int(label))
        except KeyError:
            raise ValueError(f"label {label} is not a FreeSurfer brain label or a non-brain class") from None
        if name not in names:
            names.append(name)
        lut[label] = names.index(name)
    return lut[labels], names


def draw_table(names: list[str], rng: np.random.Generator) -> np.ndarray:
    """(3, classes) PD, T1, T2 of each class, drawn from :data:`HELDOUT_TABLE` (0 for
    background)."""
    values = np.zeros((3, len(names)), np.float32)
    for i, name in enumerate(names[1:], start=1):
        (t1, t2, pd) = HELDOUT_TABLE[name]
        values[:, i] = rng.uniform(*pd), rng.uniform(*t1), rng.uniform(*t2)
    return values


def bias_field(shape: tuple, slab: np.ndarray, rng: np.random.Generator, span_range=BIAS_SPAN) -> np.ndarray:
    """A smooth receive bias at the slices ``slab`` (an index array) of a ``shape`` grid:
    a random quadratic polynomial of the grid's normalized coordinates, spanning a
    fraction of its mean around 1 over the whole grid, drawn from ``span_range``."""
    z = np.linspace(-1, 1, shape[0], dtype=np.float32)
    y, x = (np.linspace(-1, 1, s, dtype=np.float32) for s in shape[1:])
    coeffs = rng.normal(size=9).astype(np.float32)

    def poly(zz, yy, xx):
        terms = [xx, yy, zz, xx * yy, xx * zz, yy * zz, xx**2, yy**2, zz**2]
        return sum(c * t for c, t in zip(coeffs, terms))

    coarse = poly(*np.meshgrid(z[::8], y[::8], x[::8], indexing="ij"))  # the range over the grid
    lo, hi = float(coarse.min()), float(coarse.max())
    field = poly(z[slab][..., None, None], y[:, None], x[None, :])
    span = rng.uniform(*span_range)
    return (1.0 - span / 2 + span * (field - lo) / max(hi - lo, 1e-6)).astype(np.float32)


def _pad_to_matrix(volume: np.ndarray, size: int) -> np.ndarray:
    """Centre the in-plane grid in a ``size`` matrix (cropping what lies outside)."""
    out = np.zeros((volume.shape[0], size, size), volume.dtype)
    src, dst = [], []
    for n in volume.shape[1:]:
        if n >= size:
            start = (n - size) // 2
            src.append(slice(start, start + size))
            dst.append(slice(0, size))
        else:
            start = (size - n) // 2
            src.append(slice(0, n))
            dst.append(slice(start, start + n))
    out[:, dst[0], dst[1]] = volume[:, src[0], src[1]]
    return out


@dataclass
class HeldoutSubject:
    """One held-out subject's slabs and everything drawn for it."""

    name: str
    classes: np.ndarray  # (slices, thickness, h, w) tissue index per 1 mm voxel of each slab
    values: np.ndarray  # (3, classes): PD, T1, T2
    names: list
    bias: np.ndarray  # (slices, thickness, h, w)
    mask: np.ndarray  # (slices, h, w) brain
    inputs: list
    noise: float
    thickness: int
    seed: int

    def render(self, acq: Acq) -> np.ndarray:
        """Noise-free slices at ``acq`` (partial volume through each slab, bias applied),
        each normalized to its maximum."""
        from napari_mr_reparam.simulate import normalize_to_max

        per_class = np.asarray(signal(acq, *self.values[:, :, None]), np.float32)[:, 0]
        voxels = per_class[self.classes] * self.bias
        return normalize_to_max(voxels.mean(axis=1))

    def class_fractions(self) -> np.ndarray:
        """(slices, h, w, classes): each class's share of each pixel's slab, times the bias."""
        return np.stack([((self.classes == c) * self.bias).mean(axis=1) for c in range(len(self.names))],
                        axis=-1)

    def acquire(self, acq: Acq) -> np.ndarray:
        """The input image: the render with Rician noise, normalized to its maximum."""
        from napari_mr_reparam.simulate import add_rician_noise, normalize_to_max

        rng = np.random.default_rng([self.seed, int(acq.te * 10), int(acq.tr)])
        return normalize_to_max(add_rician_noise(self.render(acq), self.noise, rng))


def heldout_subject(path: Path, index: int, slices: int,
                    effects: HeldoutEffects = HeldoutEffects()) -> HeldoutSubject:
    """A held-out subject drawn from its seed (``HELDOUT_SEED``, ``index``): classes,
    tissue values, bias field, noise level, slice thickness and input acquisitions, the
    effects from the ranges of ``effects`` (the same draws whatever the ranges)."""
    from napari_mr_reparam.phantoms.freesurfer import read_labels

    rng = np.random.default_rng([HELDOUT_SEED, index])
    labels, spacing = read_labels(path)
    if max(abs(s - 1.0) for s in spacing) > 1e-3:
        raise ValueError(f"{path}: expected 1 mm voxels, got {spacing}")
    classes, names = class_volume(labels)
    classes = _pad_to_matrix(classes, MATRIX)
    values = draw_table(names, rng)
    thickness = int(rng.integers(effects.slice_mm[0], effects.slice_mm[1] + 1))
    brain = np.isin(classes, range(1, 1 + len(BRAIN_CLASSES)))
    zs = np.flatnonzero(np.isin(labels, CEREBRAL_CORTEX).any(axis=(1, 2)))
    lo, hi = (zs[0] + f * (zs[-1] - zs[0]) for f in SLICE_SPAN)
    starts = np.unique(np.rint(np.linspace(lo, hi - thickness, slices)).astype(int))
    slab = starts[:, None] + np.arange(thickness)
    bias = bias_field(classes.shape, slab, rng, effects.bias_span)
    return HeldoutSubject(
        name=path.name.split(".")[0], classes=classes[slab], values=values, names=names, bias=bias,
        mask=brain[slab].mean(axis=1) > 0.5,
        inputs=heldout_inputs(rng) + [gradient_echo_input(np.random.default_rng([HELDOUT_SEED, index, 2]))],
        noise=float(rng.uniform(*effects.noise_sigma)), thickness=thickness, seed=HELDOUT_SEED + index)


#: Training tissue names of the held-out table's classes, for the anatomy oracle (deep grey
#: nuclei as an even geometric mix of grey and white matter).
ORACLE_TISSUE = {"deep_grey": ("grey_matter", "white_matter"), "bone": ("skull",), "eye": ("csf",)}
ORACLE_LABEL = "anatomy oracle"


def training_mean_values(names: list[str]) -> np.ndarray:
    """(3, classes) PD, T1, T2 of each held-out class from the training tables (the
    package's ``tissues.TABLES``): the geometric mean over tables (PD: arithmetic), the
    values a model that learned those tables would expect with no other clue."""
    from napari_mr_reparam.tissues import TABLES

    values = np.zeros((3, len(names)), np.float32)
    for i, name in enumerate(names[1:], start=1):
        tissues = [t[n] for t in TABLES.values() for n in ORACLE_TISSUE.get(name, (name,))]
        values[0, i] = np.mean([t.pd for t in tissues])
        for row, key in ((1, "t1"), (2, "t2")):
            times = [getattr(t, key) for t in tissues if getattr(t, key) > 0]
            values[row, i] = float(np.exp(np.mean(np.log(times)))) if times else 1e-3
    return values


def oracle_predictions(subject: HeldoutSubject, targets: list[Acq]) -> list[np.ndarray]:
    """The anatomy oracle: each target rendered from the subject's true classes, slabs
    and bias field with the training tables' mean tissue values in place of the subject's
    own (:func:`training_mean_values`). It reads no input: what knowing the anatomy
    exactly, but the tissue values only as training taught them, would score."""
    from dataclasses import replace

    guess = replace(subject, values=training_mean_values(subject.names))
    return [guess.render(t) for t in targets]


#: Training subjects that settings are chosen on, rendered as the held-out ones are.
TUNING = [ANATOMY / f"synthseg/training_seg_{i:02d}.nii.gz" for i in (1, 2, 3, 4)]


def heldout_paths() -> list[Path]:
    """The anatomy subjects training keeps out (the package's list)."""
    from napari_mr_reparam.phantoms.freesurfer import HELD_OUT

    return [ANATOMY / p for p in HELD_OUT]


def add_subject_options(parser) -> None:
    """The options of a script over the held-out subjects: slices, targets, ``--tuning``."""
    parser.add_argument("--slices", type=int, default=8, help="slices per subject")
    parser.add_argument("--targets", type=int, default=12, help="targets per subject")
    parser.add_argument("--tuning", action="store_true", help="training subjects 01-04 in place of the held-out ones")


def subject_paths(tuning: bool) -> tuple[list[Path], str | None]:
    """The held-out subjects (``tuning``: the training subjects settings are chosen on),
    and a line saying which are missing, if any."""
    paths = TUNING if tuning else heldout_paths()
    missing = [str(p) for p in paths if not Path(p).is_file()]
    return paths, f"skipped: not found: {', '.join(missing)} (needs ../shared/)" if missing else None


def run_heldout(models: list[Model], slices: int, n_targets: int, subjects=None, log=print,
                oracle: bool = False) -> dict:
    """Scores on the held-out subjects: one row per model and input kind (with ``oracle``,
    first a row for the anatomy oracle, :func:`oracle_predictions`)."""
    paths = subjects or heldout_paths()
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        return {"skipped": f"held-out subjects not found: {', '.join(missing)}"}
    targets = heldout_targets(n_targets)
    tallies: dict[tuple, Tally] = {}
    drawn = []
    for index, path in enumerate(paths):
        subject = heldout_subject(Path(path), index, slices)
        drawn.append({"subject": subject.name, "slices": int(subject.classes.shape[0]),
                      "slice_mm": subject.thickness, "noise_sigma": round(subject.noise, 4),
                      "inputs": [a.label() for a in subject.inputs],
                      "tissues": {n: [round(float(v), 3) for v in subject.values[:, i]]
                                  for i, n in enumerate(subject.names) if i}})
        truths = [subject.render(t) for t in targets]
        log(f"  {subject.name}: {subject.thickness} mm slabs, noise {subject.noise:.3f}", flush=True)
        if oracle:
            for t, pred, truth in zip(targets, oracle_predictions(subject, targets), truths):
                tallies.setdefault((ORACLE_LABEL, None), Tally()).add(score(pred, truth, subject.mask), t)
        for inp in subject.inputs:
            image = subject.acquire(inp)
            for model in models:
                if not model.reads(inp):
                    continue
                for t, pred, truth in zip(targets, predict(model, image, inp, targets), truths):
                    if pred is not None:
                        key = (model.label, inp.name)
                        tallies.setdefault(key, Tally()).add(score(pred, truth, subject.mask), t)
    rows = []
    if oracle:
        rows.append({"model": ORACLE_LABEL, "what": "none (true anatomy, training tissue means)",
                     "saw": None, "summary": tallies[(ORACLE_LABEL, None)].summary()})
    for model in models:
        for name in INPUT_NAMES:
            key = (model.label, name)
            if key in tallies:
                saw = model.saw(*[Path(p).name.split(".")[0] for p in paths])
                rows.append({"model": model.label, "what": f"{name} input", "saw": saw,
                             "summary": tallies[key].summary()})
    return {"rows": rows, "subjects": drawn, "targets": [t.label() for t in targets],
            "table": psnr_table(rows, "input")}


# --------------------------------------------------------------------------- MRiLab protocol

def mrilab_seen(model: Model) -> bool | str | None:
    """Whether the model trained on the MRiLab phantom, or only on its tissue table."""
    seen = model.saw("mrilab:", "mrilab_brain")
    return "its tissue table" if seen is False and model.saw('"mrilab"') else seen


def run_mrilab(models: list[Model], limit: int, spec: str = MRILAB_SPEC, log=print) -> dict:
    """The test part of the MRiLab phantom's paper protocol, first ``limit`` images."""
    from napari_mr_reparam import DEFAULT_TE_MS, DEFAULT_TR_MS
    from napari_mr_reparam.datasets import build_protocol_dataset
    from napari_mr_reparam.phantoms import load_phantom
    from napari_mr_reparam.simulate import resize_slices

    path = spec.partition(":")[2]
    if not Path(path).is_file():
        return {"skipped": f"MRiLab phantom not found at {path}"}
    ds = build_protocol_dataset(load_phantom(spec), seed=0)
    pairs, slices = ds.samples("paper", "test")
    pairs, slices = pairs[:limit], slices[:limit]
    targets = [Acq(float(ds.te_ms[p]), float(ds.tr_ms[p])) for p in pairs]
    truths = ds.images_at(pairs, slices)
    masks = ds.masks_at(slices)
    default = Acq(DEFAULT_TE_MS, DEFAULT_TR_MS)
    q = ds.p2p_input_pair[pairs, slices]
    rows = []
    for model in models:
        native = bool(getattr(model.engine, "native_input", False))  # reads images on their own grid
        for task in ("d2p", "p2p"):
            if task == "p2p" and model.task == "d2p":
                continue
            if task == "d2p":
                images, inputs = ds.default_at(slices, native), [default] * len(pairs)
            else:
                images = ds.images_at(q, slices, native)
                inputs = [Acq(float(ds.te_ms[i]), float(ds.tr_ms[i])) for i in q]
            preds = predict_samples(model, images, inputs, targets)
            if native:
                preds = np.clip(resize_slices(preds, ds.size), 0, 1)
            tally = Tally()
            scores = score(preds, truths, masks)
            for i, t in enumerate(targets):
                tally.add({k: v[i:i + 1] for k, v in scores.items()}, t)
            rows.append({"model": model.label, "what": task, "saw": mrilab_seen(model),
                         "summary": tally.summary()})
            log(f"  {model.label} {task}: {rows[-1]['summary']['psnr_mean']:.2f} dB", flush=True)
    return {"rows": rows, "phantom": spec, "split": "paper (test part)", "images": len(pairs),
            "table": psnr_table(rows, "task")}


# --------------------------------------------------------------------------- sample head

#: Every how many of the sample head's slices are scored (1: all, as the demo shows them).
SAMPLE_EVERY = 1


def run_sample(models: list[Model], log=print) -> dict:
    """The demo's head: its input at each of its ground truths."""
    from napari_mr_reparam import sample_head as sd
    from napari_mr_reparam.phantoms import load_phantom
    from napari_mr_reparam.simulate import choose_slices, normalize_to_max, slice_masks

    layers = sd.make_sample_all()
    data = [normalize_to_max(layer[0][::SAMPLE_EVERY]) for layer in layers]
    inp = Acq(*sd.INPUT_ACQ)
    truths = [Acq(te, tr) for te, tr in sd.TRUTH_ACQS]
    phantom = load_phantom(sd.PHANTOM, table=sd.TABLE)
    masks = slice_masks(phantom, choose_slices(phantom, sd.SLICES), sd.SIZE, pad_square=True)[::SAMPLE_EVERY]
    rows = []
    for model in models:
        if not model.reads(inp):
            continue
        cells = []
        for t, pred, truth in zip(truths, predict(model, data[0], inp, truths), data[1:]):
            s = score(pred, truth, masks)
            cells.append({"target": t.label(), "psnr": float(s["psnr"].mean()),
                          "psnr_brain": float(s["psnr_brain"].mean()), "images": len(pred)})
        rows.append({"model": model.label, "saw": model.saw("mni152"), "targets": cells})
        log(f"  {model.label}: " + ", ".join(f"{c['psnr']:.2f}" for c in cells), flush=True)
    heads = " | ".join(f"TE {te:g}/TR {tr:g}" for te, tr in sd.TRUTH_ACQS)
    lines = [f"| model | saw it | {heads} | mean |", "|---|---|" + "---|" * (len(truths) + 1)]
    for r in rows:
        cells = " | ".join(f"{c['psnr']:.2f} ({c['psnr_brain']:.2f})" for c in r["targets"])
        mean = np.mean([c["psnr"] for c in r["targets"]])
        lines.append(f"| {r['model']} | {_saw(r['saw'])} | {cells} | {mean:.2f} |")
    return {"rows": rows, "input": inp.label(), "slices": int(data[0].shape[0]), "table": "\n".join(lines)}


# --------------------------------------------------------------------------- MNI152 T1 template

#: Targets of the ordering check and the order each must show (tissue means, highest first):
#: T1-like WM > GM > CSF; T2-like CSF > GM > WM; PD-like GM > WM with CSF at least 0.9 GM
#: (CSF's PD is the highest, but at TR 6000 ms it has not fully recovered); FLAIR-like
#: GM > WM > CSF (CSF nulled).
ORDER_RULES = {
    "T1-like": (Acq(15.0, 600.0, name="T1-like"), "WM > GM > CSF"),
    "PD-like": (Acq(20.0, 6000.0, name="PD-like"), "GM > WM, CSF >= 0.9 GM"),
    "T2-like": (Acq(100.0, 5000.0, name="T2-like"), "CSF > GM > WM"),
    "FLAIR-like": (Acq(120.0, 9000.0, "inversion_recovery", 2500.0, name="FLAIR-like"), "GM > WM > CSF"),
}
MNI_INPUT = Acq(10.0, 600.0, name="T1w SE")
#: The input for models that read MPRAGE inputs, besides :data:`MNI_INPUT` (typical 3 T settings).
MNI_MPRAGE = Acq(3.0, 2300.0, "mprage", 900.0, 9.0, name="MPRAGE")
#: Axial slices of the template used (fractions of the brain's inferior-superior extent).
MNI_SPAN = (0.35, 0.75)


def ordering_right(rule: str, csf: float, gm: float, wm: float) -> bool:
    """Whether the tissue means obey ``rule`` (an :data:`ORDER_RULES` rule)."""
    return {
        "WM > GM > CSF": wm > gm > csf,
        "GM > WM, CSF >= 0.9 GM": gm > wm and csf >= 0.9 * gm,
        "CSF > GM > WM": csf > gm > wm,
        "GM > WM > CSF": gm > wm > csf,
    }[rule]


def spread_slices(occupied: np.ndarray, span: tuple[float, float], count: int) -> np.ndarray:
    """``count`` slice indices evenly spread over the fractions ``span`` of the
    inferior-superior extent of the slices where ``occupied`` (one flag per slice) holds
    (repeats dropped)."""
    zs = np.flatnonzero(occupied)
    lo, hi = (zs[0] + f * (zs[-1] - zs[0]) for f in span)
    return np.unique(np.rint(np.linspace(lo, hi, count)).astype(int))


def mni152_masks(slices: int):
    """The template's T1 slices (normalized to their maximum) and CSF, grey and white
    matter masks: GM and WM where the template's probability map exceeds 0.9; CSF where
    the brain's closed hull holds less than 0.1 of either (ventricles, sulci), away from
    the hull's edge."""
    from scipy import ndimage

    from napari_mr_reparam.io import load_volume
    from napari_mr_reparam.phantoms.fractions import brain_hull
    from napari_mr_reparam.phantoms.mni152 import template_path
    from napari_mr_reparam.simulate import normalize_to_max

    t1 = load_volume(template_path("t1")).data
    gm, wm = (load_volume(template_path(k)).data / 255.0 for k in ("gm", "wm"))
    hull = brain_hull(gm + wm)
    inner = ndimage.binary_erosion(hull, iterations=3)
    masks = {"GM": gm > 0.9, "WM": wm > 0.9, "CSF": inner & (gm < 0.1) & (wm < 0.1) & (t1 > 0)}
    index = spread_slices(hull.any(axis=(1, 2)), MNI_SPAN, slices)
    return normalize_to_max(t1[index]), {k: m[index] for k, m in masks.items()}, index


def tissue_means(pred01: np.ndarray, masks: dict) -> dict[str, float]:
    """The mean (0-255) of a prediction in each tissue mask."""
    return {k: float(pred01[m].mean() * 255) for k, m in masks.items()}


def ordering_label(model: Model) -> str:
    """The model's name in the ordering tables (saying how ``d2p`` reads any input)."""
    return model.label + (" (reads every input as TE 50 / TR 4500)" if model.task == "d2p" else "")


def ordering_rows(models: list[Model], images01: np.ndarray, masks: dict, saw, log=print) -> list[dict]:
    """Each model's T1-, PD-, T2- and FLAIR-like predictions (:data:`ORDER_RULES`) from
    ``images01`` read as :data:`MNI_INPUT` (and as :data:`MNI_MPRAGE` for a model that
    reads MPRAGE inputs): tissue means (0-255) in ``masks`` (CSF, GM, WM), their GM/WM
    and CSF/GM ratios, and whether the order obeys the rule. ``saw(model)`` fills the
    row's "saw its anatomy"; the identity baseline has its T1-like row only."""
    targets = [acq for acq, _ in ORDER_RULES.values()]
    rows = []
    for model in models:
        label = ordering_label(model)
        inputs = [MNI_INPUT] + ([MNI_MPRAGE] if not model.identity and model.reads(MNI_MPRAGE) else [])
        for inp in inputs:
            for (kind, (acq, rule)), pred in zip(ORDER_RULES.items(), predict(model, images01, inp, targets)):
                if pred is None or (model.identity and kind != "T1-like"):
                    continue
                means = tissue_means(pred, masks)
                order = " > ".join(sorted(means, key=means.get, reverse=True))
                rows.append({"model": label, "saw": saw(model), "input": inp.name, "target": kind,
                             "acq": replace(acq, name="").label(), "means": means, "order": order,
                             "rule": rule, "ratios": contrast_ratios(means),
                             "right": ordering_right(rule, means["CSF"], means["GM"], means["WM"])})
        log(f"  {label}: " + ", ".join(f"{r['target']} {'ok' if r['right'] else 'WRONG'}"
                                       for r in rows if r["model"] == label), flush=True)
    return rows


def contrast_ratios(means: dict) -> dict[str, float]:
    """GM/WM and CSF/GM of tissue means (NaN where the divisor is 0)."""
    def ratio(a, b):
        return float(means[a] / means[b]) if means[b] > 0 else float("nan")

    return {"GM/WM": ratio("GM", "WM"), "CSF/GM": ratio("CSF", "GM")}


#: The reference contrast ratios' tissues: the held-out table's (:data:`HELDOUT_TABLE`).
REFERENCE_TISSUES = {"CSF": "csf", "GM": "grey_matter", "WM": "white_matter"}


def literature_ratios(acq: Acq) -> dict[str, float]:
    """GM/WM and CSF/GM that the package's signal equations give at ``acq`` for the
    mid-points of :data:`HELDOUT_TABLE`'s literature ranges: a reference for a
    prediction's contrast, not its ground truth (the scan's own relaxation times are
    unknown)."""
    means = {}
    for name, tissue in REFERENCE_TISSUES.items():
        t1, t2, pd = (float(np.mean(r)) for r in HELDOUT_TABLE[tissue])
        means[name] = float(signal(acq, pd, t1, t2))
    return contrast_ratios(means)


def ordering_table(rows: list[dict], with_ratios: bool = False) -> str:
    """The ordering rows as a markdown table; ``with_ratios`` adds the GM/WM and CSF/GM
    ratios of each prediction beside the literature reference (:func:`literature_ratios`)."""
    extra = " GM/WM (literature) | CSF/GM (literature) |" if with_ratios else ""
    lines = ["| model | saw its anatomy | input | target | CSF | GM | WM | order | rule | physically right |"
             + extra, "|---|---|---|---|---|---|---|---|---|---|" + "---|" * (2 if with_ratios else 0)]
    references = {kind: literature_ratios(acq) for kind, (acq, _) in ORDER_RULES.items()}
    for r in rows:
        m = r["means"]
        line = (f"| {r['model']} | {_saw(r['saw'])} | {r['input']} | {r['target']} ({r['acq']}) | "
                f"{m['CSF']:.1f} | {m['GM']:.1f} | {m['WM']:.1f} | {r['order']} | {r['rule']} | "
                f"{'yes' if r['right'] else '**no**'} |")
        if with_ratios:
            ref = references[r["target"]]
            line += "".join(f" {r['ratios'][k]:.2f} ({ref[k]:.2f}) |" for k in ("GM/WM", "CSF/GM"))
        lines.append(line)
    return "\n".join(lines)


def run_mni152(models: list[Model], slices: int, log=print) -> dict:
    """Tissue orderings of predictions from the MNI152 T1 template."""
    images, masks, index = mni152_masks(slices)
    rows = ordering_rows(models, images, masks, lambda m: m.saw("mni152"), log)
    return {"rows": rows, "input": MNI_INPUT.label(), "slices": [int(i) for i in index],
            "voxels": {k: int(m.sum()) for k, m in masks.items()}, "table": ordering_table(rows)}


# --------------------------------------------------------------------------- real T1 scan

#: One person's real skull-stripped T1-weighted scan and its FreeSurfer segmentation
#: (voxelmorph's ``test_scan.npz``: ``vol`` and ``seg``, FreeSurfer's conformed space at 1 mm).
REAL_T1 = ANATOMY / "voxelmorph" / "test_scan.npz"
#: The real scan's tissue masks, from its own segmentation (FreeSurfer labels): CSF the
#: lateral ventricles (the third ventricle and extra-ventricular CSF are too thin to
#: survive the erosion), GM the cerebral cortex, WM the cerebral white matter.
REAL_T1_LABELS = {"CSF": (4, 43), "GM": (3, 42), "WM": (2, 41)}


def real_t1_masks(slices: int, path: Path = REAL_T1):
    """The real scan's axial slices (as a viewer shows them, each normalized to its
    maximum), spread as the held-out subjects' are through the cerebral cortex's extent
    (:data:`SLICE_SPAN`), and its CSF, GM and WM masks (:data:`REAL_T1_LABELS`), each
    eroded by one voxel in-plane so that partial volume at tissue borders does not
    decide the order."""
    from scipy import ndimage

    from napari_mr_reparam.phantoms.freesurfer import read_npz_array
    from napari_mr_reparam.simulate import normalize_to_max

    scan = read_npz_array(path, "vol").astype(np.float32)
    labels = read_npz_array(path, "seg")
    index = spread_slices(np.isin(labels, CEREBRAL_CORTEX).any(axis=(1, 2)), SLICE_SPAN, slices)
    in_plane = ndimage.generate_binary_structure(2, 1)[None]
    masks = {k: ndimage.binary_erosion(np.isin(labels[index], v), in_plane) for k, v in REAL_T1_LABELS.items()}
    return normalize_to_max(scan[index]), masks, index


def run_real_t1(models: list[Model], slices: int, log=print, path: Path = REAL_T1,
                figure: str | None = None) -> dict:
    """Tissue orderings and contrast ratios of predictions from one person's real T1 scan
    (with ``figure``, a PNG of one mid slice: :func:`save_figure`)."""
    if not Path(path).is_file():
        return {"skipped": f"real T1 scan not found at {path}"}
    images, masks, index = real_t1_masks(slices, path)
    rows = ordering_rows(models, images, masks, lambda m: m.saw("voxelmorph", "test_scan"), log)
    out = {"rows": rows, "input": MNI_INPUT.label(), "slices": [int(i) for i in index],
           "voxels": {k: int(m.sum()) for k, m in masks.items()},
           "reference": {kind: literature_ratios(acq) for kind, (acq, _) in ORDER_RULES.items()},
           "table": ordering_table(rows, with_ratios=True)}
    if figure:
        out["figure"] = save_figure(figure, models, images[len(images) // 2], int(index[len(index) // 2]))
    return out


#: The figure: pixels kept around the brain, magnification, title font size (px).
FIGURE_MARGIN, FIGURE_ZOOM, FIGURE_FONT = 4, 1.5, 13


def save_figure(path: str, models: list[Model], image01: np.ndarray, z: int) -> str:
    """A PNG: the input slice and the first model's (that renders every
    :data:`ORDER_RULES` target) T1-, PD-, T2- and FLAIR-like predictions from it, one row
    per reading of the input (:data:`MNI_INPUT`, and :data:`MNI_MPRAGE` for a model that
    reads MPRAGE), each image shown to its own maximum, titled. Returns what it drew."""
    from PIL import Image, ImageDraw, ImageFont

    from napari_mr_reparam.simulate import normalize_to_max, quantize_8bit

    model = next((m for m in models if not m.identity and all(m.renders(a) for a, _ in ORDER_RULES.values())),
                 None)
    if model is None:
        return "no model renders every target: no figure"
    targets = [acq for acq, _ in ORDER_RULES.values()]
    readings = [MNI_INPUT] + ([MNI_MPRAGE] if model.reads(MNI_MPRAGE) else [])
    grid = []
    for inp in readings:
        preds = predict(model, image01[None], inp, targets)
        row = [(f"real T1 scan {z}, read as {inp.name}\n{replace(inp, name='').label()}", image01)]
        row += [(f"{model.label}: {kind}\n{replace(acq, name='').label()}", p[0])
                for (kind, (acq, _)), p in zip(ORDER_RULES.items(), preds)]
        grid.append(row)
    rows, cols = _box2d(image01 > 0, FIGURE_MARGIN)
    h, w = (int(round((s.stop - s.start) * FIGURE_ZOOM)) for s in (rows, cols))
    top = 3 * FIGURE_FONT
    font = ImageFont.load_default(size=FIGURE_FONT)
    canvas = Image.new("L", (w * len(grid[0]), (h + top) * len(grid)), 0)
    draw = ImageDraw.Draw(canvas)
    for r, panels in enumerate(grid):
        y = r * (h + top)
        for i, (title, img) in enumerate(panels):
            tile = Image.fromarray(quantize_8bit(normalize_to_max(img[rows, cols]))).resize((w, h), Image.LANCZOS)
            canvas.paste(tile, (i * w, y + top))
            draw.multiline_text((i * w + w // 2, y + FIGURE_FONT // 4), title, fill=255, font=font, anchor="ma",
                                align="center")
    canvas.save(path, optimize=True)
    return (f"{path}: the input and {model.label}'s predictions of slice {z}, read as "
            + " and as ".join(a.name for a in readings))


def _box2d(occupied: np.ndarray, margin: int) -> tuple[slice, slice]:
    """The rows and columns holding ``occupied``, with ``margin`` pixels around."""
    box = []
    for axis in (0, 1):
        idx = np.flatnonzero(occupied.any(axis=1 - axis))
        box.append(slice(max(0, idx[0] - margin), min(occupied.shape[axis], idx[-1] + margin + 1)))
    return tuple(box)


# --------------------------------------------------------------------------- main

TITLES = {
    "heldout": "Held-out anatomy subjects (PSNR dB, mean over subjects, slices and targets)",
    "mrilab": "MRiLab phantom, paper protocol, test part",
    "sample": "The demo's sample head, from its input TE 50/TR 4500: PSNR dB (brain PSNR)",
    "mni152": "MNI152 2009 T1 template as input: tissue means (0-255) of the predictions",
    "real_t1": "One person's real T1 scan as input: tissue means (0-255) and contrast ratios of the "
               "predictions (literature reference in brackets)",
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["physics"],
                        help="bundled names or weights files (identity, d2p and p2p are always added)")
    parser.add_argument("--groups", nargs="+", default=list(GROUPS), choices=GROUPS)
    parser.add_argument("--slices", type=int, default=8, help="slices per held-out subject / template / real scan")
    parser.add_argument("--targets", type=int, default=12, help="targets per held-out subject")
    parser.add_argument("--subjects", nargs="+", help="label maps in place of the held-out subjects")
    parser.add_argument("--limit", type=int, default=300, help="MRiLab protocol test images")
    parser.add_argument("--mrilab", default=MRILAB_SPEC, help="the MRiLab phantom spec")
    parser.add_argument("--json", help="write every figure here")
    parser.add_argument("--figure", help="real_t1 group: save a PNG of one slice and a physics model's predictions")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--oracle", action="store_true",
                        help="held-out group: add the anatomy oracle's row (true anatomy rendered with "
                             "the training tables' mean tissue values)")
    parser.add_argument("--consistency", type=float,
                        help="physics models: the data-consistency weight (default: the engine's)")
    parser.add_argument("--flip-average", action="store_true",
                        help="physics models: average the maps with those of the mirror image")
    parser.add_argument("--no-baselines", action="store_true",
                        help="score only --models, not identity, d2p and p2p: their rows are the same "
                             "in every run (fixed seeds), so a table that has them can take yours beside")
    args = parser.parse_args(argv)
    if min(args.slices, args.targets, args.limit) < 1:
        parser.error("--slices, --targets and --limit must be at least 1")
    for out_path in (args.json, args.figure):
        refuse_existing(parser, out_path)
    if args.figure and "real_t1" not in args.groups:
        parser.error("--figure draws the real_t1 group: add it to --groups")
    try:
        options = {"consistency": args.consistency, "flip_average": args.flip_average or None}
        models = load_models(args.models, args.device, baselines=not args.no_baselines,
                             options={k: v for k, v in options.items() if v is not None})
    except (OSError, ValueError) as exc:  # WeightsError is a ValueError
        parser.error(str(exc))
    results = {"models": [m.label for m in models], "convention": _convention()}
    for group in args.groups:
        print(f"{group}...", file=sys.stderr, flush=True)
        log = lambda *a, **k: print(*a, file=sys.stderr, **k)  # noqa: E731
        if group == "heldout":
            out = run_heldout(models, args.slices, args.targets, args.subjects, log, oracle=args.oracle)
        elif group == "mrilab":
            out = run_mrilab(models, args.limit, args.mrilab, log)
        elif group == "sample":
            out = run_sample(models, log)
        elif group == "mni152":
            out = run_mni152(models, args.slices, log)
        else:
            out = run_real_t1(models, args.slices, log, figure=args.figure)
        results[group] = out
        print(f"\n### {TITLES[group]}\n")
        print(out.get("table") or f"skipped: {out['skipped']}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


def _convention() -> str:
    from napari_mr_reparam.metrics import CONVENTION

    return CONVENTION


if __name__ == "__main__":
    raise SystemExit(main())
