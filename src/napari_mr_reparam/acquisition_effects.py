"""How real scans differ from clean simulations, drawn at random for training.

A training example here is what a person brings: one slice of a subject acquired with
some sequence, at some resolution and slice thickness, with noise, ringing, a bias
field, perhaps skull-stripped, cropped or zoomed, windowed or saved as 8-bit JPEG. Its
targets are the same slice (same geometry, slab and bias field) at other acquisitions,
clean: normalized to their maximum and quantized to 8 bits, as the simulator exports
them.

:class:`Effects` says which effects are drawn and how strongly; every one can be turned
off by its zero (or ``False``) value. :func:`realistic_example` draws one example from a
subject, :func:`draw_input` an input acquisition of any of the
:data:`~napari_mr_reparam.physics.INPUT_SEQUENCES` (spin echo, inversion recovery,
spoiled gradient echo, MPRAGE) across the settings clinical and research protocols use.

The effects, in the order they act:

1. slice thickness ``thickness_mm``: the signal of a slab (on the subject's grid,
   :data:`GRID_MM` slices) averaged, the partial volume of a thick slice;
2. the subject's bias field (shared by input and targets);
3. ``skull_strip`` (a probability): only the brain kept, in input and targets;
4. ``zoom`` and ``shift`` (field of view): the slice scaled and moved, what falls
   outside cut, in input and targets;
5. input only: in-plane resolution ``pixel_mm`` (k-space truncated to the acquired
   matrix, which rings at edges, with probability ``ringing``; otherwise an
   area-averaging blur) and a Gaussian ``blur_px``;
6. input only: Rician noise, none (probability ``noise_free``) or an sd drawn
   log-uniformly up to ``noise_max`` of the image's maximum;
7. input only: how the image was normalized (``normalizations``: to its maximum, to a
   high percentile and clipped, or windowed at both ends) and stored (8 bits always;
   JPEG with probability ``jpeg``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, fields

import numpy as np
from scipy import ndimage

from . import physics
from .acquisition import Acquisition

#: Voxel size of the subjects' grid (mm), that of the phantoms.
GRID_MM = 2.0
NORMALIZATIONS = ("max", "percentile", "window")


@dataclass(frozen=True)
class Effects:
    """Which acquisition effects a training example draws (see the module docstring).

    Ranges are (low, high) drawn uniformly unless said otherwise; the defaults cover
    the scans people bring.
    """

    thickness_mm: tuple[float, float] = (1.0, 6.0)   # slice thickness; <= GRID_MM: one slice
    skull_strip: float = 0.25                       # probability of a brain-only example
    zoom: tuple[float, float] = (0.8, 1.3)          # in-plane scale (field of view)
    shift: float = 0.1                              # largest shift, a fraction of the grid
    pixel_mm: tuple[float, float] = (0.5, 3.0)      # in-plane pixel; <= GRID_MM: the grid's
    ringing: float = 0.5                            # probability a coarse pixel rings (k-space cut)
    blur_px: float = 0.7                            # largest Gaussian blur sd (grid pixels)
    noise_free: float = 0.15                        # probability of no noise
    noise_max: float = 0.08                         # largest Rician sd (of the maximum)
    noise_min: float = 0.003                        # smallest drawn sd, when there is noise
    normalizations: tuple[float, float, float] = (0.4, 0.3, 0.3)  # max, percentile, window
    jpeg: float = 0.2                               # probability of JPEG storage
    slice_span: tuple[float, float] = (0.0, 1.0)    # slice levels: brain bottom (0) to top (1)
    target_t1_weighted: float = 0.25                # share of targets at TR 400-1200 ms

    @classmethod
    def from_options(cls, options: dict | None) -> "Effects":
        """Effects from a recipe's ``acquisition`` table (missing keys: the defaults)."""
        options = dict(options or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown acquisition effects: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
        effects = cls(**values)
        effects.check()
        return effects

    @classmethod
    def none(cls) -> "Effects":
        """Every effect off: thin slices, the grid's pixels, no noise, the maximum."""
        return cls(thickness_mm=(GRID_MM, GRID_MM), skull_strip=0.0, zoom=(1.0, 1.0), shift=0.0,
                   pixel_mm=(GRID_MM, GRID_MM), ringing=0.0, blur_px=0.0, noise_free=1.0,
                   normalizations=(1.0, 0.0, 0.0), jpeg=0.0, slice_span=(0.2, 0.85))

    def check(self) -> None:
        ranges = {"thickness_mm": self.thickness_mm, "zoom": self.zoom, "pixel_mm": self.pixel_mm,
                  "slice_span": self.slice_span}
        for name, (lo, hi) in ranges.items():
            if not 0 <= lo <= hi:
                raise ValueError(f"acquisition effect {name} must be a range (low <= high), got {lo, hi}")
        if self.zoom[0] <= 0 or self.slice_span[1] > 1:
            raise ValueError("zoom must be positive and slice_span lie within 0-1")
        for name in ("skull_strip", "ringing", "noise_free", "jpeg", "target_t1_weighted"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"acquisition effect {name} is a probability (0-1), got {getattr(self, name)}")
        if len(self.normalizations) != 3 or min(self.normalizations) < 0 or sum(self.normalizations) <= 0:
            raise ValueError("normalizations are three weights (max, percentile, window), not all 0")
        if self.noise_max < 0 or self.blur_px < 0 or self.shift < 0 or not 0 < self.noise_min:
            raise ValueError("noise_max, blur_px and shift must be >= 0 and noise_min > 0")


#: The times (ms) :func:`draw_input` spans over every input sequence, and the TR that
#: :func:`draw_target_times` starts its T1-like targets at.
INPUT_RANGE_MS = {"te": (2.0, 1000.0), "tr": (8.0, 11000.0)}
T1_LIKE_TR_MS = (400.0, 1200.0)


def trained_ranges(config: dict | None) -> dict:
    """The TE/TR ranges (ms) a model was trained on, read from the training recipe its
    weight card records: ``{"target": {...}, "input": {...}}``, each ``{"te": (lo, hi),
    "tr": (lo, hi)}``. A recipe without acquisition effects drew inputs and targets from
    the paper's protocol (:data:`~napari_mr_reparam.acquisition.TRAINED_RANGE_MS`); one
    with them drew inputs across :data:`INPUT_RANGE_MS` and, where it asked for T1-like
    targets, targets down to TR 400 ms."""
    from .acquisition import TRAINED_RANGE_MS

    protocol = dict(TRAINED_RANGE_MS)
    effects = (config or {}).get("acquisition")
    if effects is None:
        return {"target": protocol, "input": protocol}
    target = dict(protocol)
    if float(effects.get("target_t1_weighted", Effects.target_t1_weighted)) > 0:
        target["tr"] = (T1_LIKE_TR_MS[0], protocol["tr"][1])
    return {"target": target, "input": dict(INPUT_RANGE_MS)}


def draw_input(rng: np.random.Generator, sequences=physics.INPUT_SEQUENCES) -> Acquisition:
    """An input acquisition: a sequence drawn uniformly from ``sequences`` at settings
    drawn across the clinical and research protocols that use it.

    Spin echo: a quarter in the paper's range (TE 20-1000 ms log-uniform, TR 1.2-10 s), half
    the clinical weightings (T1: TE 8-25, TR 400-800; PD: TE 10-35, TR 2-4 s; T2: TE
    70-140, TR 2.5-8 s). Inversion recovery: FLAIR (TI 1.6-2.8 s, TR 6-11 s, TE 70-150)
    or STIR (TI 100-250 ms, TR 2.5-6 s, TE 20-80), or any TI up to 3 s. Gradient echo:
    TE 2-30 ms, TR 8-800 ms, flip 5-90 degrees. MPRAGE: TI 800-1200 ms, TR 1.8-2.7 s,
    flip 6-12 degrees, TE 2-5 ms.
    """
    from .acquisition import sample_te_tr

    sequence = str(sequences[int(rng.integers(len(sequences)))])
    u = rng.uniform

    def acq(te, tr, **kw):
        return Acquisition(float(te), float(tr), sequence, **kw)

    if sequence == "spin_echo":
        kind = int(rng.integers(4))
        if kind == 0:
            te, tr = (float(v[0]) for v in sample_te_tr(rng, 1))
            return acq(te, tr)
        te_range, tr_range = [((8, 25), (400, 800)), ((10, 35), (2000, 4000)), ((70, 140), (2500, 8000))][kind - 1]
        return acq(u(*te_range), u(*tr_range))
    if sequence == "inversion_recovery":
        kind = int(rng.integers(3))
        if kind == 0:
            return acq(u(70, 150), u(6000, 11000), ti_ms=float(u(1600, 2800)))
        if kind == 1:
            return acq(u(20, 80), u(2500, 6000), ti_ms=float(u(100, 250)))
        tr = float(u(1500, 10000))
        return acq(u(10, 120), tr, ti_ms=float(u(50, min(3000, 0.8 * tr))))
    if sequence == "gradient_echo":
        tr = float(np.exp(u(np.log(8), np.log(800))))
        return acq(u(2, min(30, 0.8 * tr)), tr, flip_deg=float(u(5, 90)))
    if sequence == "mprage":
        return acq(u(2, 5), u(1800, 2700), ti_ms=float(u(800, 1200)), flip_deg=float(u(6, 12)))
    raise ValueError(f"unknown input sequence {sequence!r}; known: {', '.join(physics.INPUT_SEQUENCES)}")


def draw_target_times(rng: np.random.Generator, count: int, t1_weighted: float) -> tuple[np.ndarray, np.ndarray]:
    """``count`` spin-echo target (TE, TR) pairs (ms): the paper's range, and with
    probability ``t1_weighted`` each a T1-like one (TR 400-1200 ms, TE 20 to 100 ms)."""
    from .acquisition import sample_te_tr

    te, tr = sample_te_tr(rng, count)
    short = rng.uniform(size=count) < t1_weighted
    tr = np.where(short, np.round(rng.uniform(*T1_LIKE_TR_MS, count), 1), tr)
    te = np.where(short, np.round(np.exp(rng.uniform(np.log(20), np.log(100), count)), 1), te)
    return te.astype(np.float32), tr.astype(np.float32)


def slab_weights(thickness_mm: float) -> np.ndarray:
    """Weights of the grid slices ``-k..k`` a slice of ``thickness_mm`` averages (sum 1)."""
    half = max(thickness_mm, GRID_MM) / GRID_MM / 2  # half-width in grid slices
    k = int(np.ceil(half - 0.5))
    offsets = np.arange(-k, k + 1)
    weights = np.clip(np.minimum(offsets + 0.5, half) - np.maximum(offsets - 0.5, -half), 0, 1)
    return (weights / weights.sum()).astype(np.float32)


def slab(volume: np.ndarray, index: int, weights: np.ndarray) -> np.ndarray:
    """The weighted mean of the slices around ``index`` (edge slices repeated)."""
    k = len(weights) // 2
    idx = np.clip(np.arange(index - k, index + k + 1), 0, volume.shape[0] - 1)
    return np.tensordot(weights, volume[idx].astype(np.float32), axes=1)


def slab_times(pd: np.ndarray, times: np.ndarray, index: int, weights: np.ndarray) -> np.ndarray:
    """A relaxation-time map of a thick slice: the geometric mean of its grid slices'
    times, each weighted by its share of the slab's water (weight x PD), as
    :func:`~napari_mr_reparam.phantoms.fractions.maps_from_fractions` mixes a voxel's
    tissues; 0 where the slab holds no water."""
    water = slab(pd, index, weights)
    log_mix = slab(pd * np.log(np.maximum(times, 1e-3)), index, weights)
    return physics.water_mean_time(water, log_mix).astype(np.float32)


def geometry(image: np.ndarray, zoom: float, shift: tuple[float, float], order: int = 1) -> np.ndarray:
    """``image`` scaled by ``zoom`` about its centre and moved by ``shift`` pixels (y, x);
    what falls outside is cut, what comes in is empty."""
    if zoom == 1.0 and shift == (0.0, 0.0):
        return image
    centre = (np.asarray(image.shape, np.float64) - 1) / 2
    offset = centre - (centre + np.asarray(shift)) / zoom
    return ndimage.affine_transform(image, np.full(2, 1 / zoom), offset=offset, order=order,
                                    mode="constant", cval=0.0).astype(np.float32)


def lower_resolution(image: np.ndarray, factor: float, ringing: bool) -> np.ndarray:
    """``image`` as acquired with pixels ``factor`` times the grid's: k-space cut to the
    acquired matrix (zero-filled, so edges ring) when ``ringing``, else area-averaged
    and interpolated back (a smooth loss of detail)."""
    if factor <= 1.0:
        return image
    h, w = image.shape
    if ringing:
        spectrum = np.fft.fftshift(np.fft.fft2(image))
        keep = np.zeros_like(spectrum)
        ch, cw = max(1, int(round(h / factor / 2))), max(1, int(round(w / factor / 2)))
        sl = (slice(h // 2 - ch, h // 2 + ch), slice(w // 2 - cw, w // 2 + cw))
        keep[sl] = spectrum[sl]
        return np.abs(np.fft.ifft2(np.fft.ifftshift(keep))).astype(np.float32)
    small = ndimage.zoom(image, 1 / factor, order=1, grid_mode=True, mode="nearest")
    return ndimage.zoom(small, (h / small.shape[0], w / small.shape[1]), order=1, grid_mode=True,
                        mode="nearest").astype(np.float32)


def add_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Rician noise of sd ``sigma`` times the image's maximum."""
    from .simulate import add_rician_noise

    peak = float(image.max())
    if sigma <= 0 or peak <= 0:
        return image
    return add_rician_noise(image, sigma * peak, rng)


def normalize(image: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """``image`` scaled to [0, 1] as images arrive: to its ``max``; to a ``percentile``
    (99-99.9 of its tissue) and clipped; or ``window``ed: a level up to 5 % of the
    maximum subtracted and the top clipped at the 95-99.5th percentile."""
    peak = float(image.max())
    if peak <= 0:
        return np.zeros_like(image)
    tissue = image[image > 0.02 * peak]
    if kind == "max" or tissue.size < 16:
        return image / peak
    if kind == "percentile":
        top = float(np.percentile(tissue, rng.uniform(99.0, 99.9)))
        return np.clip(image / max(top, 1e-12), 0, 1)
    low = float(rng.uniform(0, 0.05)) * peak
    top = float(np.percentile(tissue, rng.uniform(95.0, 99.5)))
    return np.clip((image - low) / max(top - low, 1e-12), 0, 1)


def jpeg(image01: np.ndarray, quality: int) -> np.ndarray:
    """``image01`` (0-1) stored as an 8-bit JPEG at ``quality`` and read back."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.clip(np.rint(image01 * 255), 0, 255).astype(np.uint8)).save(
        buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    return np.asarray(Image.open(buffer), np.float32) / 255.0


def quantize(image01: np.ndarray) -> np.ndarray:
    """8-bit rounding of an image in [0, 1], back as float32."""
    return np.clip(np.rint(image01 * 255), 0, 255).astype(np.float32) / 255.0


def _to_max(image: np.ndarray) -> np.ndarray:
    peak = float(image.max())
    return image / peak if peak > 0 else image


def realistic_example(subject, bias, rng: np.random.Generator, effects: Effects, task: str,
                      sequences, targets: int = 1, with_maps: bool = False,
                      with_classes: bool = False) -> dict:
    """One training example of ``subject`` (a phantom) with its ``bias`` field (or None).

    Returns the keys of :class:`~napari_mr_reparam.datasets.StreamingSampler` examples on
    the subject's grid (``input`` (1, h, w), ``target`` (targets, h, w), their times),
    plus ``input_seq`` (index into :data:`~napari_mr_reparam.physics.INPUT_SEQUENCES`),
    ``input_ti`` and ``input_flip`` (0 where the input has none), and with
    ``with_maps`` the slab's maps (PD x bias, T1, T2), with ``with_classes`` its tissue
    fractions (``classes``: one per :data:`~napari_mr_reparam.tissues.TISSUES`; a subject
    drawn from fractions only, :func:`~napari_mr_reparam.phantoms.random_subject.random_subject`).
    """
    if with_classes and subject.fractions is None:
        raise ValueError(f"{subject.name}: no tissue fractions to give classes from")
    mask = subject.mask()
    first, last = np.flatnonzero(mask.any(axis=(1, 2)))[[0, -1]]
    lo, hi = effects.slice_span
    index = int(rng.integers(first + lo * (last - first), first + hi * (last - first) + 1))
    weights = slab_weights(float(rng.uniform(*effects.thickness_mm)))
    if subject.mixture is None:  # the earlier simulator's maps: times averaged as they are
        maps = {k: slab(getattr(subject, k), index, weights) for k in ("pd", "t1", "t2", "t2star")}
    else:
        maps = {"pd": slab(subject.pd, index, weights),
                **{k: slab_times(subject.pd, getattr(subject, k), index, weights) for k in ("t1", "t2", "t2star")}}
    shading = np.ones_like(maps["pd"]) if bias is None else slab(bias, index, weights)
    keep = np.ones_like(maps["pd"])
    if rng.uniform() < effects.skull_strip:
        brain = slab(mask.astype(np.float32), index, weights) > 0.5
        grow = int(rng.integers(0, 3))  # pixels of margin a brain extraction leaves
        keep = (ndimage.binary_dilation(brain, iterations=grow) if grow else brain).astype(np.float32)
    zoom = float(np.exp(rng.uniform(*np.log(effects.zoom))))
    shift = tuple(float(v) for v in rng.uniform(-effects.shift, effects.shift, 2) * np.asarray(keep.shape))

    def acquired(signal):
        return np.maximum(geometry(signal * shading * keep, zoom, shift), 0.0)

    acq = Acquisition.default() if task == "d2p" else draw_input(rng, sequences)
    image = acquired(_slab_signal(subject, index, weights, acq))
    image = lower_resolution(image, float(rng.uniform(*effects.pixel_mm)) / GRID_MM,
                             rng.uniform() < effects.ringing)
    if effects.blur_px > 0:
        image = ndimage.gaussian_filter(image, float(rng.uniform(0, effects.blur_px)))
    if rng.uniform() >= effects.noise_free and effects.noise_max > 0:
        sigma = float(np.exp(rng.uniform(np.log(effects.noise_min), np.log(max(effects.noise_max, effects.noise_min)))))
        image = add_noise(image, sigma, rng)
    p = np.asarray(effects.normalizations, np.float64)
    image = normalize(image, NORMALIZATIONS[int(rng.choice(3, p=p / p.sum()))], rng)
    image = jpeg(image, int(rng.integers(40, 96))) if rng.uniform() < effects.jpeg else quantize(image)
    te, tr = draw_target_times(rng, targets, effects.target_t1_weighted)
    target = np.stack([quantize(_to_max(acquired(_slab_signal(
        subject, index, weights, Acquisition(float(a), float(b)))))) for a, b in zip(te, tr)])
    one = targets == 1
    out = {"input": image[None].astype(np.float32), "target": target.astype(np.float32),
           "input_te": np.float32(acq.te_ms), "input_tr": np.float32(acq.tr_ms),
           "input_seq": np.float32(physics.INPUT_SEQUENCES.index(acq.sequence)),
           "input_ti": np.float32(acq.ti_ms or 0.0), "input_flip": np.float32(acq.flip_deg or 0.0),
           "target_te": np.float32(te[0]) if one else te, "target_tr": np.float32(tr[0]) if one else tr}
    if with_maps:
        pd = geometry(maps["pd"] * shading * keep, zoom, shift)
        t1, t2 = (geometry(maps[k] * keep, zoom, shift, order=0) for k in ("t1", "t2"))
        out["maps"] = np.stack([np.maximum(pd, 0), t1, t2]).astype(np.float32)
    if with_classes:
        out["classes"] = tissue_classes(subject.fractions, index, weights, keep, zoom, shift)
    return out


def tissue_classes(fractions: dict, index: int, weights: np.ndarray, keep: np.ndarray, zoom: float,
                   shift) -> np.ndarray:
    """(tissues, h, w) fractions of each of :data:`~napari_mr_reparam.tissues.TISSUES`
    through the slab, where the image keeps tissue, moved as the image is (absent: 0;
    the background is what they leave of 1)."""
    from .tissues import TISSUES

    out = np.zeros((len(TISSUES), *keep.shape), np.float32)
    for i, name in enumerate(TISSUES):
        if name in fractions:
            out[i] = np.clip(geometry(slab(fractions[name], index, weights) * keep, zoom, shift), 0.0, 1.0)
    return out


def _slab_signal(subject, index: int, weights: np.ndarray, acq: Acquisition) -> np.ndarray:
    """The signal of a thick slice: each grid slice's signal, averaged (partial volume)."""
    from .simulate import render_slices

    k = len(weights) // 2
    idx = np.clip(np.arange(index - k, index + k + 1), 0, subject.shape[0] - 1)
    return np.tensordot(weights, render_slices(subject, acq, idx), axes=1).astype(np.float32)
