"""Random subjects for training variety, from any base phantom, fully seeded.

A subject is the base anatomy under a smooth random deformation (plus a small global
scale and in-plane rotation) with jittered tissue values: T1, T2, T2* and PD are
multiplied by log-normal factors, a global one per map and a smooth spatial one. For a
phantom built from tissue fractions (the plain MNI152 head, a segmentation:
:mod:`~napari_mr_reparam.phantoms.segmentation`) a tissue table can be drawn and the
maps rebuilt from its fractions, deformed first and then optionally sharpened toward
crisp tissue (so the deformation's resampling does not blend crisp borders again).
Voxel-map phantoms without tissue classes (MRiLab's) work the same, minus the table
draw.

Acquisition effects are not properties of the subject, so they are not in the maps:
:func:`random_bias_field` draws a receive-coil bias field and :func:`random_noise_level`
a noise level, for the simulator to apply per acquisition.

The same seed (or generators in the same state) gives byte-identical output.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import ndimage

from ..stream_options import SubjectOptions
from .base import Phantom
from .mixture import T1_MAX_MS, T2_MAX_MS, mixture_of

#: Smoothing of the random displacement field (mm).
DEFORM_SIGMA_MM = 9.0
#: Smoothing of the spatial part of the tissue-value jitter (mm).
JITTER_SIGMA_MM = 25.0
#: Smoothing of the random field that moves brain tissue borders before sharpening (mm).
TEXTURE_SIGMA_MM = 3.0
#: Smoothing of the random field whose zero level set places synthetic sulci (mm): its
#: zero crossings lie about 4.4 sigma (some 13 mm) apart.
SULCUS_SIGMA_MM = 3.0
_TIMES = ("t1", "t2", "t2star")
#: How an axial stack (z: foot to head, y, x) is laid out as another plane's slices: its
#: axes in their new order, the rows then flipped so that the head's top is up.
PLANES = {"sagittal": (2, 0, 1), "coronal": (1, 0, 2)}


def _as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """A generator from a seed, or the generator itself."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _upsample(small: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Linear interpolation of a coarse grid onto ``shape`` (corners aligned)."""
    out = ndimage.zoom(small, [s / c for s, c in zip(shape, small.shape)], order=1)
    if out.shape != tuple(shape):  # rounding guard: pad or crop to the exact shape
        out = np.pad(out, [(0, max(0, s - o)) for s, o in zip(shape, out.shape)], mode="edge")
        out = out[tuple(slice(0, s) for s in shape)]
    return out


def smooth_noise(shape, voxel_mm, rng: np.random.Generator, sigma_mm: float) -> np.ndarray:
    """Gaussian noise smoothed with ``sigma_mm``, scaled to zero mean and unit sd.

    Drawn on a grid about ``sigma_mm / 2`` coarser than ``shape`` and interpolated up,
    which costs little and changes nothing at this smoothness.

    Parameters
    ----------
    shape : tuple of int
        Output grid.
    voxel_mm : tuple of float
        Voxel size along each axis (mm).
    rng : numpy.random.Generator
    sigma_mm : float
        Gaussian smoothing width.

    Returns
    -------
    ndarray, float32
    """
    step = [max(1, int(sigma_mm / (2 * v))) for v in voxel_mm]
    small = [int(np.ceil(s / k)) + 1 for s, k in zip(shape, step)]
    noise = rng.standard_normal(small, dtype=np.float32)
    sigma = [sigma_mm / (k * v) for k, v in zip(step, voxel_mm)]
    noise = ndimage.gaussian_filter(noise, sigma, mode="reflect")
    field = _upsample(noise, shape)
    field -= field.mean()
    return (field / max(float(field.std()), 1e-6)).astype(np.float32)


def _tilt(rng: np.random.Generator, tilt_deg: float) -> np.ndarray:
    """A random 3x3 rotation of (z, y, x) about the left-right axis (pitch, nodding) and
    the front-back axis (roll), each angle uniform within ``tilt_deg``: the head's
    position in the scanner, which tilts the axial slices through the anatomy."""
    pitch, roll = np.radians(rng.uniform(-tilt_deg, tilt_deg, size=2))
    cp, sp, cr, sr = np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    about_x = np.array([[cp, -sp, 0.0], [sp, cp, 0.0], [0.0, 0.0, 1.0]])  # mixes z and y
    about_y = np.array([[cr, 0.0, -sr], [0.0, 1.0, 0.0], [sr, 0.0, cr]])  # mixes z and x
    return (about_x @ about_y).astype(np.float32)


def _sample_coordinates(shape, voxel_mm, rng: np.random.Generator, options: SubjectOptions) -> np.ndarray:
    """Where each output voxel samples the base: scale (global within ``max_scale``, then
    per axis within ``anisotropy``), rotation (in-plane within ``max_rotation_deg``, and
    out of plane by up to ``tilt_deg``), then a smooth warp of up to ``deform_mm``."""
    scale = 1.0 + float(rng.uniform(-options.max_scale, options.max_scale))
    angle = np.radians(float(rng.uniform(-options.max_rotation_deg, options.max_rotation_deg)))
    warp = np.stack([smooth_noise(shape, voxel_mm, rng, DEFORM_SIGMA_MM) for _ in range(3)])
    peak = float(np.sqrt((warp**2).sum(axis=0)).max())
    warp *= np.float32(options.deform_mm / max(peak, 1e-6))
    centre = [(s - 1) / 2 for s in shape]
    z, y, x = (np.arange(s, dtype=np.float32) - c for s, c in zip(shape, centre))
    cos, sin = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    scales = np.full(3, scale, np.float32)
    if options.anisotropy > 0:  # drawn only when asked, so seeds give the heads they gave before
        scales *= np.float32(1.0) + rng.uniform(-options.anisotropy, options.anisotropy,
                                                size=3).astype(np.float32)
    coords = np.empty((3, *shape), np.float32)
    coords[0] = (z / scales[0])[:, None, None]
    coords[1] = (cos * y[:, None] - sin * x[None, :]) / scales[1]
    coords[2] = (sin * y[:, None] + cos * x[None, :]) / scales[2]
    if options.tilt_deg > 0:  # in millimetres, so anisotropic grids tilt true to shape
        mm = np.float32(voxel_mm).reshape(3, 1, 1, 1)
        tilted = np.tensordot(_tilt(rng, options.tilt_deg), coords * mm, axes=1)
        coords = (tilted / mm).astype(np.float32)
    for axis in range(3):
        coords[axis] += np.float32(centre[axis]) + warp[axis] / np.float32(voxel_mm[axis])
    return coords


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """A draw log-uniform between ``low`` and ``high`` (``low`` when they are equal)."""
    return float(np.exp(rng.uniform(np.log(low), np.log(high)))) if high > low else float(low)


def mixed_table(tables, rng: np.random.Generator, jitter: float):
    """A tissue table between two drawn from ``tables`` (their T1, T2, T2* and PD mixed
    geometrically by a uniform weight, so field strengths and sources in between are
    covered), each tissue's values then multiplied by log-normal factors of sd
    ``jitter`` (PD: half), so tissue contrasts differ from subject to subject."""
    from dataclasses import replace

    from ..tissues import get_table

    first, second = (get_table(str(tables[int(rng.integers(len(tables)))])) for _ in range(2))
    w = float(rng.uniform())
    tissues = {}
    for name, a in first.tissues.items():
        b = second[name]
        values = {}
        for key in ("t1", "t2", "t2star", "pd"):
            x, y = getattr(a, key), getattr(b, key)
            mix = x ** (1 - w) * y ** w if x > 0 and y > 0 else (1 - w) * x + w * y
            sd = jitter / 2 if key == "pd" else jitter
            values[key] = float(mix * np.exp(rng.normal(0.0, sd))) if sd > 0 else float(mix)
        values["pd"] = min(values["pd"], 1.0)
        values["t2star"] = min(values["t2star"], values["t2"])
        tissues[name] = replace(a, **values)
    return replace(first, name=f"{first.name}~{second.name}", tissues=tissues)


def _reassigned(base: Phantom, rng: np.random.Generator, chance: float) -> dict:
    """``base``'s fractions with each unnamed non-brain class (``extra_classes``) moved,
    with probability ``chance``, to a tissue drawn from
    :data:`~napari_mr_reparam.phantoms.freesurfer.NON_BRAIN`."""
    from .freesurfer import NON_BRAIN

    fractions = dict(base.fractions)
    for label, (tissue, part) in sorted(base.extra_classes.items()):
        if rng.uniform() >= chance:
            continue
        other = NON_BRAIN[int(rng.integers(len(NON_BRAIN)))]
        part = part.astype(np.float32)
        fractions[tissue] = np.maximum(fractions[tissue] - part, 0.0)
        fractions[other] = fractions[other] + part
    return fractions


def _tissue_draw(base: Phantom, rng: np.random.Generator, options: SubjectOptions):
    """For a phantom built from tissue fractions (``base.fractions``: the MNI152 head, a
    segmentation): the fractions, a randomly drawn tissue table, a sharpening exponent
    drawn log-uniformly between ``sharpening_min`` and ``sharpening``, a texture sd drawn
    up to ``texture`` and a CSF weight drawn log-uniformly between 1 and ``csf_expansion``.
    None for voxel-map phantoms, or when no table, sharpening, CSF expansion or sulci are
    asked for."""
    o = options
    if base.fractions is None or base.tissue_table is None or not (
            o.tables or o.sharpening > 1.0 or o.csf_expansion > 1.0 or o.sulcus_width > 0):
        return None
    from ..tissues import get_table

    fractions = base.fractions
    if o.tissue_jitter > 0 or o.extra_reassign > 0:  # drawn only when asked: seeds keep their heads
        table = mixed_table(o.tables or [base.tissue_table], rng, o.tissue_jitter)
        if base.extra_classes and o.extra_reassign > 0:
            fractions = _reassigned(base, rng, o.extra_reassign)
    else:
        table = get_table(str(o.tables[int(rng.integers(len(o.tables)))]) if o.tables else base.tissue_table)
    exponent = _log_uniform(rng, min(o.sharpening_min, o.sharpening), o.sharpening)
    sd = float(rng.uniform(0.0, o.texture)) if o.sharpening > 1.0 and o.texture > 0 else 0.0
    csf = _log_uniform(rng, 1.0, o.csf_expansion)
    return fractions, table, exponent, sd, csf


def add_sulci(fractions: dict, voxel_mm, rng: np.random.Generator, width_mm: float) -> dict:
    """Thin sheets of CSF cut into grey matter, with their partial volume.

    The sheets are the zero level set of a smooth random field (:data:`SULCUS_SIGMA_MM`),
    ``width_mm`` thick; each voxel gives CSF the share of its grey matter that a sheet
    covers (its distance to the level set, |field| / |gradient|, against the sheet's and
    the voxel's widths). So a brain whose template has smeared its sulci away gets thin,
    mostly partial-volume CSF lines through the cortex, as a single segmented brain has.
    Per voxel the fractions keep their total.
    """
    if width_mm <= 0:
        return fractions
    shape = next(iter(fractions.values())).shape
    field = smooth_noise(shape, voxel_mm, rng, SULCUS_SIGMA_MM)
    slope = np.sqrt(sum(g**2 for g in np.gradient(field, *voxel_mm)))
    distance = np.abs(field) / np.maximum(slope, 1e-6)  # mm to the sheet's middle
    voxel = float(np.mean(voxel_mm))
    half = width_mm / 2
    covered = np.clip(np.minimum(distance + voxel / 2, half) - np.maximum(distance - voxel / 2, -half),
                      0.0, voxel) / voxel
    out = dict(fractions)
    taken = (covered * out["grey_matter"]).astype(np.float32)
    out["grey_matter"] = out["grey_matter"] - taken
    out["csf"] = out["csf"] + taken
    return out


def _tissue_maps(fractions: dict, table, exponent: float, sd: float, voxel_mm,
                 rng: np.random.Generator, csf: float = 1.0, sulcus_width: float = 0.0,
                 coords: np.ndarray | None = None, linear_times: bool = False) -> dict:
    """Maps from (already warped) tissue fractions, sharpened by ``exponent`` after grey
    matter, white matter and CSF are weighted by fine random log-normal fields of sd
    ``sd`` (and CSF by ``csf`` besides, which widens sulci and ventricles as atrophy
    does), then cut by sulci of a width drawn uniformly up to ``sulcus_width`` mm
    (:func:`add_sulci`; drawn last, so the head is the same with and without). Sharpening
    after the warp keeps the subject's tissue as crisp as drawn: interpolating crisp maps
    would turn every border voxel into a mixture. With ``coords`` (the warp's sampling
    coordinates), the brain's tissue is sharpened on the template's 1 mm grid instead and
    averaged back (:func:`_fine_brain`). Returns the maps and the fractions they were
    mixed from."""
    from .fractions import maps_from_fractions, sharpen_fractions

    shape = next(iter(fractions.values())).shape
    weights = {k: np.exp(sd * smooth_noise(shape, voxel_mm, rng, TEXTURE_SIGMA_MM))
               for k in ("grey_matter", "white_matter", "csf")} if sd > 0 else {}
    if csf > 1.0:
        weights["csf"] = weights.get("csf", 1.0) * np.float32(csf)
    if exponent > 1.0 or weights:
        fractions = sharpen_fractions(fractions, exponent, weights)
        if coords is not None:
            fractions = _fine_brain(fractions, coords, exponent, weights)
    if sulcus_width > 0:
        fractions = add_sulci(fractions, voxel_mm, rng, float(rng.uniform(0.0, sulcus_width)))
    return maps_from_fractions(fractions, table, linear_times), fractions


def _fine_box(fractions: dict, margin: int = 1) -> tuple[slice, ...]:
    """The bounding box of a subject's brain tissue on its grid, plus ``margin``."""
    from .fractions import BRAIN_TISSUES

    brain = sum(fractions[k] for k in BRAIN_TISSUES) > 1e-3
    box = []
    for axis in range(brain.ndim):
        idx = np.flatnonzero(brain.any(axis=tuple(a for a in range(brain.ndim) if a != axis)))
        box.append(slice(max(0, idx[0] - margin), min(brain.shape[axis], idx[-1] + margin + 1)))
    return tuple(box)


def _to_fine(volume: np.ndarray, k: int) -> np.ndarray:
    """Linear interpolation of a volume onto the grid ``k`` times finer nested in it."""
    return ndimage.zoom(np.asarray(volume, np.float32), k, order=1, grid_mode=True, mode="nearest")


def _fine_brain(fractions: dict, coords: np.ndarray, exponent: float, weights: dict) -> dict:
    """Grey matter, white matter and CSF re-partitioned from the template's 1 mm grid.

    The template's 1 mm fractions (:func:`~napari_mr_reparam.phantoms.mni152.mni152_fine_brain`)
    are warped by the same sampling ``coords`` (brought to the fine grid), weighted by
    the same fields and sharpened by the same exponent there, then averaged back to the
    subject's grid; inside the brain hull they share out each voxel's brain tissue
    (its grey matter, white matter and CSF together, as sharpened on the coarse grid).
    So thin sulci, which the coarse grid's sharpening either drops or widens to whole
    voxels, become lines of partial-volume voxels, as in a 1 mm segmentation resampled.
    """
    from .fractions import BRAIN_TISSUES, VOXEL_MM, block_mean, sharpen_fractions
    from .mni152 import FINE_VOXEL_MM, mni152_fine_brain

    k = int(round(VOXEL_MM / FINE_VOXEL_MM))
    box = _fine_box(fractions)
    fine_coords = np.stack([_to_fine(c[box], k) * k + (k - 1) / 2 for c in coords])
    template = mni152_fine_brain()
    warped = {t: _warp(template[t], fine_coords) for t in BRAIN_TISSUES}
    fine_weights = {t: _to_fine(w[box], k) if np.ndim(w) else w for t, w in weights.items()}
    sharp = sharpen_fractions(warped, exponent, fine_weights)
    coarse = {t: block_mean(sharp[t], k) for t in BRAIN_TISSUES}
    share_total = sum(coarse.values())
    inside = share_total > 0.5
    brain_total = sum(fractions[t][box] for t in BRAIN_TISSUES)
    out = dict(fractions)
    for t in BRAIN_TISSUES:
        part = np.array(fractions[t], np.float32)
        share = np.divide(coarse[t], share_total, out=np.zeros_like(share_total), where=inside)
        part[box] = np.where(inside, brain_total * share, part[box])
        out[t] = part
    return out


def _warp(volume, coords: np.ndarray, order: int = 1) -> np.ndarray:
    return ndimage.map_coordinates(np.asarray(volume, np.float32), coords, order=order, mode="constant")


def _jitter_factors(shape, voxel_mm, rng: np.random.Generator, sd: float) -> dict:
    """Per-voxel factors on each value: a global and a smooth spatial log-normal part."""
    out = {}
    for key in (*_TIMES, "pd"):
        key_sd = sd / 2 if key == "pd" else sd
        log_factor = np.float32(rng.normal(0.0, key_sd))
        log_factor = log_factor + np.float32(key_sd / 2) * smooth_noise(shape, voxel_mm, rng, JITTER_SIGMA_MM)
        out[key] = np.exp(log_factor).astype(np.float32)
    return out


def _jitter(maps: dict, factors: dict) -> dict:
    """Each map times its factors (:func:`_jitter_factors`), clipped to the values' bounds."""
    out = {key: (maps[key] * factors[key]).astype(np.float32) for key in factors}
    out["pd"] = np.clip(out["pd"], 0.0, 1.0)
    out["t1"] = np.clip(out["t1"], 0.0, T1_MAX_MS)
    out["t2"] = np.clip(out["t2"], 0.0, T2_MAX_MS)
    out["t2star"] = np.clip(out["t2star"], 0.0, out["t2"])
    return out


def random_subject(base: Phantom, rng: np.random.Generator | int,
                   options: SubjectOptions | None = None, **changes) -> Phantom:
    """A randomly deformed copy of ``base`` with jittered tissue values.

    Parameters
    ----------
    base : Phantom
        Any phantom (MNI152, MRiLab, ...), on any grid.
    rng : numpy.random.Generator or int
        Generator or seed; the same seed gives byte-identical output.
    options : SubjectOptions, optional
        How the subject is drawn (its deformation, tissue tables, sharpening, ...: see
        :class:`~napari_mr_reparam.stream_options.SubjectOptions`); its defaults when None.
    **changes
        Single options replaced, e.g. ``random_subject(base, 0, sharpening=4.0)``.

    Returns
    -------
    Phantom
        Same shape, voxel size and dtype (with ``other_planes``, perhaps laid out as
        sagittal or coronal slices: :func:`resliced`); the brain mask is warped along (nearest
        neighbour). Named ``BASE+random(SEED)`` when ``rng`` is a seed. A subject drawn
        from tissue fractions (options that redraw its tissue: tables, sharpening, CSF
        expansion or sulci) keeps them (``fractions``: where each tissue is, as its
        maps were mixed, before the value jitter; no ``tissue_table``, as its table is
        drawn) and, with ``partial_volume = "signals"``, a ``mixture`` that renders each
        voxel as the sum of its tissues' signals, jittered as the maps are.
    """
    options = replace(options or SubjectOptions(), **changes)
    if options.fine_brain and not base.name.startswith("mni152"):
        raise ValueError(f"fine_brain applies to the MNI152 head only (its 1 mm template), "
                         f"not to {base.name}")
    seed = int(rng) if isinstance(rng, (int, np.integer)) else None
    rng = _as_rng(rng)
    draw = _tissue_draw(base, rng, options)
    voxel = tuple(float(v) for v in base.voxel_size_mm)
    coords = _sample_coordinates(base.shape, voxel, rng, options)
    fractions = None
    if draw is None:
        warped, name = {k: _warp(getattr(base, k), coords) for k in ("pd", *_TIMES)}, base.name
    else:
        fractions, table, exponent, sd, csf = draw
        warped, fractions = _tissue_maps({k: _warp(v, coords) for k, v in fractions.items()}, table, exponent,
                              sd, voxel, rng, csf, options.sulcus_width,
                              coords if options.fine_brain else None, options.partial_volume == "times")
        name = f"{base.name.split('[')[0]}[{table.name}]"
    mask = _warp(base.mask().astype(np.uint8), coords, order=0) > 0
    factors = _jitter_factors(base.shape, voxel, rng, options.value_jitter)
    warped = _jitter(warped, factors)
    mixture = None
    if draw is not None and options.partial_volume == "signals":
        mixture = mixture_of(fractions, table).with_factors(factors)
    suffix = f"+random({seed})" if seed is not None else "+random"
    subject = Phantom(**warped, voxel_size_mm=base.voxel_size_mm, name=name + suffix, brain_mask=mask,
                      fractions=fractions, mixture=mixture)
    return resliced(subject, _drawn_plane(rng, options.other_planes))


def in_plane(volume: np.ndarray, plane: str) -> np.ndarray:
    """An axial stack ``volume`` laid out as ``plane``'s slices (:data:`PLANES`)."""
    return np.ascontiguousarray(np.asarray(volume).transpose(PLANES[plane])[:, ::-1])


def resliced(subject: Phantom, plane: str) -> Phantom:
    """``subject`` (an axial stack) as a stack of ``plane``'s slices: its maps, mask,
    fractions and mixture alike, its voxel size along."""
    if plane == "axial":
        return subject
    flip = lambda v: in_plane(v, plane) if np.ndim(v) == 3 else v  # noqa: E731
    arrays = lambda d: None if d is None else {k: flip(v) for k, v in d.items()}  # noqa: E731
    mixture = subject.mixture
    if mixture is not None:
        mixture = replace(mixture, fractions=arrays(mixture.fractions), factors=arrays(mixture.factors))
    voxel = tuple(subject.voxel_size_mm[a] for a in PLANES[plane])
    mask = None if subject.brain_mask is None else flip(subject.brain_mask)
    return replace(subject, **arrays({k: getattr(subject, k) for k in ("pd", *_TIMES)}),
                   voxel_size_mm=voxel, brain_mask=mask, fractions=arrays(subject.fractions),
                   mixture=mixture, name=f"{subject.name}[{plane}]")


def _drawn_plane(rng: np.random.Generator, chance: float) -> str:
    """Axial, or with ``chance`` sagittal or coronal (half each); no draw when 0."""
    if chance <= 0 or rng.uniform() >= chance:
        return "axial"
    return tuple(PLANES)[int(rng.integers(len(PLANES)))]


def random_bias_field(shape, rng: np.random.Generator | int, strength: float = 0.2) -> np.ndarray:
    """A smooth multiplicative receive-coil (bias) field for one simulated subject.

    A random second-order polynomial over the grid (coordinates scaled to -1..1), with
    mean exactly 1 and peak deviation drawn uniformly between ``strength / 2`` and
    ``strength``. Multiply the simulated images by it; it is not part of the maps.

    Parameters
    ----------
    shape : tuple of int
        Grid of the field, ``(nz, ny, nx)`` (or any dimensionality).
    rng : numpy.random.Generator or int
    strength : float
        Largest deviation from 1: every value lies in ``[1 - strength, 1 + strength]``.

    Returns
    -------
    ndarray, float32
    """
    rng = _as_rng(rng)
    axes = [np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1) for n in shape]
    grids = [a.reshape([-1 if i == j else 1 for j in range(len(shape))]) for i, a in enumerate(axes)]
    terms = [*grids] + [grids[i] * grids[j] for i in range(len(grids)) for j in range(i, len(grids))]
    field = np.zeros(tuple(shape), np.float64)
    for term, coefficient in zip(terms, rng.standard_normal(len(terms))):
        field = field + coefficient * term
    field -= field.mean()
    peak = float(np.abs(field).max())
    amplitude = strength * float(rng.uniform(0.5, 1.0))
    if peak > 0:
        field *= amplitude / peak
    return (1.0 + field).astype(np.float32)


def random_noise_level(rng: np.random.Generator | int, low: float = 0.0, high: float = 0.03) -> float:
    """A noise standard deviation for one simulated acquisition, uniform in [low, high].

    The level is relative to the image maximum, as ``simulate_images``' ``noise_sigma``
    takes it (Rician noise added after the bias field).
    """
    return float(_as_rng(rng).uniform(low, high))
