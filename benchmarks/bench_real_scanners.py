"""Joint maps on real scanners: held-out images and sphere T1/T2 of a system phantom.

    python benchmarks/bench_real_scanners.py [--data ../shared/real_scans/hazen_relaxometry]
                                             [--model physics] [--keep-first-echo]
                                             [--echo-train epg|ideal] [--sites site4_philips ...]
                                             [--other-plates]
    python benchmarks/bench_real_scanners.py --two-series [--plate plate4] [--sites ...]
    python benchmarks/bench_real_scanners.py --own-render [--sites ...]

For every series of the hazen relaxometry set (multi-echo spin echo of the T2 plate,
inversion-recovery magnitude series of the T1 plate; with ``--other-plates`` the T1 plate's
echo trains and the T2 plate's inversion-recovery sets instead, which took no part in
choosing the fits' models), read with
:func:`napari_mr_reparam.dicom.read_series` (TE/TR/TI from the tags):

(a) **Held-out images.** Every echo (every TI) is predicted from two (three) of the
    series' other images through :func:`napari_mr_reparam.joint_fit.fit_maps`, and
    compared with the real image inside the phantom (between inputs: the held-out time
    lies between the inputs' times; beyond: an extrapolation, at the ends of the train)
    (:func:`phantom_mask`: the brightest image above 10 % of its 99th percentile, filled,
    eroded by 2 px): relative RMS = ||pred - real|| / ||real||. Inputs: for
    echo k the echoes k - d and k + d, d the echo count nearest 35 ms (the README's
    TE 10 and 80 -> 40 example), or the two at d and 2d on one side at the ends of the
    train; for TI k the three other TIs nearest in log TI. Also scored without the spheres'
    rims (:func:`sphere_rims`: within 2 px of each sphere's edge, where a voxel holds
    sphere and fluid and the sharp edge rings). Echo 1 of a train is off the
    ideal decay (stimulated echoes) and is not used as an input by default; its own
    prediction is listed apart. Beside it, the noise the fits took (each fit measures its
    inputs' noise, :func:`napari_mr_reparam.image_noise.estimate_noise`, as a fraction of
    each input's bright signal; the range over the series' fits) and the image noise
    measured from the series
    (:func:`noise_level`: neighbouring images' difference, high-passed, in the flat part
    of the phantom) over the RMS signal in the phantom. Real-valued (signed) inversion-
    recovery images are taken as their magnitude. Three TIs fit with the series'
    inversion efficiency estimated from those three images
    (:func:`napari_mr_reparam.inversion.inversion_efficiency`), and the held-out TI is
    rendered with it (:meth:`~napari_mr_reparam.joint_result.JointMaps.render`). Voxels the
    scanner clipped (stored values at the top of their range) enter the fits as lower
    bounds (``fit_maps(clipped=...)``); a prediction is scored where the target and its
    inputs hold no clipped voxel, and its score with them is printed below the table.
(b) **Maps.** T2 or T1 (all TIs) fitted per voxel; median at each sphere, against the
    reference of the phantom's plate at the scanner's field strength, for spheres the
    series can measure: T2 within the range of echo 2 to the last echo, T1 within the
    range of the inversion times. T2 with ``--echo-train epg`` (the default): all echoes,
    fitted with the extended phase graph of the train (refocusing flip angle free per
    voxel; :mod:`napari_mr_reparam.epg`); with ``--echo-train ideal``: the ideal
    equation on echoes 2 to N (all with ``--keep-first-echo``). The median fitted
    flip-angle scale in the spheres is listed, and for T1 the inversion efficiency the
    series' fit estimated (:func:`napari_mr_reparam.inversion.inversion_efficiency`;
    ``--inversion 1`` holds it at a perfect inversion, in (a) too). Spheres are
    found by registering the template's sphere centres to a map of how sphere-like each
    pixel is (:func:`sphere_map`: a disc of the sphere's radius whose mean differs from the
    ring around it and which is uniform inside, summed over the series' images): scaled by
    the ratio of the pixel sizes, their centroid put on the phantom's, then the shift
    (+-25 template pixels, 33 mm), scale (0.85-1.15) and turn (+-8 degrees) that score
    best, and each centre moved (at most 2 px) to its best pixel. Values are medians in a disc of 2 template
    pixels (2.6 mm). Beside each, the share of the spheres' discs the fit marks as determined
    (``JointMaps.determined``), for the spheres the series can measure and for the others,
    and of the whole object (``determined_fraction``): what a user's ``determined`` map says.
(c) **One input, single-image model.** The physics network's maps from one image (the
    first input of (a)) and its renders of the held-out image, and its sphere T1/T2; beside
    them, that input returned unchanged (the identity baseline of a single image).

``--two-series`` instead fits the T1 plate's two series together, at the sites that scanned
it with both (its inversion-recovery set and its multi-echo train, stored at different
receiver gains), as ``napari-mr-reparam maps IR_FOLDER TRAIN_FOLDER`` does (the command
line's own path, ``cli_joint.fit_inputs``: the train resampled onto the inversion-recovery
grid by the affines, ``--model none``), with ``--scale shared`` (one gain for both) and
``--scale per-series`` (a gain per folder, found by the fit's misfit; what the default
``auto`` takes for two folders of several images), and each series alone; sphere T1 and T2
against the plate's reference as in (b) (T2 within the train's TEs from echo 2).

``--own-render`` instead gives each image of the T1 plate's inversion-recovery series alone
to the single-image model (``--model``) and renders it at its own acquisition, as a user's
render at the scan's own settings: the render's mean over the phantom over the image's (1:
the render in the image's units).

Prints the tables as Markdown.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "real_scans" / "hazen_relaxometry"
TE_GAP_MS = 35.0
DISC_PX = 2


# ----------------------------------------------------------------------------- data

def reference(data: Path):
    """The phantom's reference values and template centres, read from its parameter file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("relaxometry_params", data / "relaxometry_params.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TEMPLATE_VALUES


#: The series scored by default: the T2 plate's echo trains, the T1 plate's inversion recovery.
SERIES_PLATES = (("T2", "plate4"), ("T1", "plate5"))
#: With ``--other-plates``: the T1 plate's echo trains and the T2 plate's inversion-recovery
#: sets (three sites each), which played no part in choosing the fits' models.
OTHER_PLATES = (("T2", "plate5"), ("T1", "plate4"))


def series_list(data: Path, sites=None, plates=SERIES_PLATES):
    out = []
    for kind, plate in plates:
        for folder in sorted((data / kind).glob(f"site*/{plate}")):
            if sites and folder.parent.name not in sites:
                continue
            out.append((kind, plate, folder))
    return out


def load(folder: Path):
    """Images, acquisitions, field, pixel spacing, and per image the voxels the scanner
    clipped (``extra["saturated"]`` of :func:`napari_mr_reparam.dicom.read_series`)."""
    from napari_mr_reparam.dicom import read_series
    from napari_mr_reparam.fit_information import acquisition_values, make_acquisition

    volumes = read_series(folder, require=("EchoTime", "RepetitionTime"))
    images, acqs, clipped = [], [], []
    for v in volumes:
        seq = v.extra.get("sequence") or "spin_echo"
        acqs.append(acquisition_values(make_acquisition(seq, v.te_ms, v.tr_ms,
                                                        v.ti_ms if seq == "inversion_recovery" else None)))
        # a real-valued (phase-corrected, signed) inversion-recovery image: its magnitude
        images.append(np.abs(np.asarray(v.data[0], np.float32)))
        clipped.append(np.asarray(v.extra.get("saturated", np.zeros(v.data.shape, bool)))[0])
    field = volumes[0].extra.get("field_strength_t") or 1.5
    return images, acqs, ("3.0T" if field > 2 else "1.5T"), volumes[0].spacing[1:], clipped


def phantom_mask(images):
    """The phantom: where the brightest of the series' images is above a tenth of its
    99th percentile, holes filled, eroded by 2 px. (The brightest, not the mean: in an
    inversion-recovery series the fluid around the spheres passes its null, and the mean
    above 30 % kept only the bright spheres' cores at some sites.)"""
    from scipy.ndimage import binary_erosion, binary_fill_holes

    top = np.max(images, axis=0)
    mask = binary_fill_holes(top > 0.1 * np.percentile(top, 99))
    return binary_erosion(mask, iterations=2)


def noise_level(images, mask):
    """Median over neighbouring image pairs of the noise SD over the RMS signal in the phantom.

    Measured from the series itself: the difference of two neighbouring images (echoes,
    or inversion times) cancels most of the object; what is left of it is smooth and
    removed by subtracting the 3x3 mean. The median absolute deviation of the rest over
    the flat inner part of the phantom, scaled to a standard deviation (1.4826 MAD; a
    3x3 mean leaves 8/9 of white noise's variance; a difference holds two images' noise).
    """
    from scipy.ndimage import binary_erosion, uniform_filter

    inner = binary_erosion(mask, iterations=3)
    levels = []
    for a, b in zip(images[:-1], images[1:]):
        diff = a - b
        resid = diff - uniform_filter(diff, 3)
        smooth = np.hypot(*np.gradient(uniform_filter(diff, 5)))
        flat = inner & (smooth <= np.median(smooth[inner]))
        mad = np.median(np.abs(resid[flat] - np.median(resid[flat])))
        sd = 1.4826 * mad / math.sqrt(8 / 9) / math.sqrt(2)
        levels.append(sd / math.sqrt(np.mean(((a + b) / 2)[mask] ** 2)))
    return float(np.median(levels))


def rel_rms(pred, real, mask):
    return float(np.sqrt(np.mean((pred[mask] - real[mask]) ** 2)) / np.sqrt(np.mean(real[mask] ** 2)))


# ----------------------------------------------------------------------------- inputs

def echo_inputs(k, n, step_ms, first):
    """Two input echoes for held-out echo k (0-based), none of them before ``first``."""
    d = max(1, int(round(TE_GAP_MS / step_ms)))
    for pair in ((k - d, k + d), (k + d, k + 2 * d), (k - 2 * d, k - d)):
        if all(first <= i < n and i != k for i in pair):
            return list(pair)
    others = [i for i in range(first, n) if i != k]
    return sorted(others, key=lambda i: abs(i - k))[:2]


def ti_inputs(k, tis):
    others = [i for i in range(len(tis)) if i != k]
    return sorted(sorted(others, key=lambda i: abs(math.log(tis[i] / tis[k])))[:3])


# ----------------------------------------------------------------------------- spheres

#: Sphere radius in the templates' pixels (1.3 mm).
SPHERE_RADIUS_PX = 7.0
#: Half-width of a sphere's rim (pixels of the series) left out of the "without the rims" score.
RIM_PX = 2.0


def _kernel(radius_in, radius_out):
    r = int(np.ceil(radius_out))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    d = np.hypot(yy, xx)
    k = ((d >= radius_in) & (d <= radius_out)).astype(np.float32)
    return k / k.sum()


def sphere_map(stack, radius):
    """Per pixel, how sphere-like a disc of ``radius`` centred there is over the images:
    its mean unlike the ring just outside it, uniform inside (summed over images)."""
    from scipy.ndimage import convolve

    inner, ring = _kernel(0, 0.6 * radius), _kernel(1.3 * radius, 1.8 * radius)
    score = np.zeros(stack.shape[1:], np.float32)
    for im in stack:
        m = convolve(im, inner, mode="nearest")
        sd = np.sqrt(np.maximum(convolve(im * im, inner, mode="nearest") - m * m, 0))
        score += np.abs(m - convolve(im, ring, mode="nearest")) - sd
    return score


def sphere_centres(images, spacing, template_file: Path, centres):
    """Template sphere centres (row, col) moved onto the scan's pixels."""
    import pydicom

    tmpl = pydicom.dcmread(template_file)
    factor = float(tmpl.PixelSpacing[0]) / float(spacing[0])  # template px -> scan px
    stack = np.stack([im / max(np.percentile(im, 99), 1e-9) for im in images])
    score_map = sphere_map(stack, SPHERE_RADIUS_PX * factor)
    h, w = score_map.shape
    t_centre = np.mean(np.asarray(centres[:14], float), axis=0)  # the spheres sit round the disc's centre
    s_centre = np.argwhere(phantom_mask(list(np.abs(stack)))).mean(axis=0)
    template_pts = np.array([np.asarray(p, float) - t_centre for p in centres])

    def place(shift, scale, angle):
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        return template_pts @ rot.T * factor * scale + s_centre + shift

    def score(pts):
        idx = np.rint(pts).astype(int)
        if (idx < 0).any() or (idx[:, 0] >= h).any() or (idx[:, 1] >= w).any():
            return -np.inf
        return float(score_map[idx[:, 0], idx[:, 1]].sum())

    reach = int(round(25 * factor))
    candidates = ((np.array([dy, dx], float), sc, np.radians(an))
                  for dy in range(-reach, reach + 1, 2) for dx in range(-reach, reach + 1, 2)
                  for sc in np.arange(0.85, 1.16, 0.05) for an in range(-8, 9, 2))
    shift, scale, angle = max(candidates, key=lambda c: score(place(*c)))
    shift = max((shift + np.array([dy, dx], float) for dy in (-1, 0, 1) for dx in (-1, 0, 1)),
                key=lambda d: score(place(d, scale, angle)))
    best = place(shift, scale, angle)
    refined = []
    for p in best:  # each centre on its own: at most 2 px to its most sphere-like pixel
        y, x = (int(round(v)) for v in p)
        window = score_map[max(y - 2, 0):y + 3, max(x - 2, 0):x + 3]
        dy, dx = np.unravel_index(np.argmax(window), window.shape)
        refined.append((max(y - 2, 0) + dy, max(x - 2, 0) + dx))
    return refined, factor


def _disc(shape, centre, radius):
    yy, xx = np.ogrid[:shape[0], :shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def sphere_rims(shape, centres, factor=1.0, reach_px: float = RIM_PX):
    """Pixels within ``reach_px`` of a sphere's edge (radius :data:`SPHERE_RADIUS_PX`
    template pixels): where a voxel holds sphere and fluid, and ringing of the sharp edge."""
    yy, xx = np.ogrid[:shape[0], :shape[1]]
    rims = np.zeros(shape, bool)
    for c in centres:
        distance = np.sqrt((yy - c[0]) ** 2 + (xx - c[1]) ** 2)
        rims |= np.abs(distance - SPHERE_RADIUS_PX * factor) <= reach_px
    return rims


def sphere_shares(mask, centres, factor=1.0):
    """The share of each sphere's disc (as :func:`sphere_values`) that ``mask`` holds."""
    return np.array([float(mask[_disc(mask.shape, c, DISC_PX * factor)].mean()) for c in centres])


def sphere_values(value_map, centres, factor=1.0):
    """Median of a map in a disc of DISC_PX template pixels at each centre."""
    return np.array([float(np.nanmedian(value_map[_disc(value_map.shape, c, DISC_PX * factor)]))
                     for c in centres])


# ----------------------------------------------------------------------------- one series

def evaluate_series(kind, plate, folder, params, engine, first_echo_input: bool, echo_train: str = "epg",
                    inversion=None, fit_noise=None, clipped_as_values: bool = False):
    from napari_mr_reparam.joint_fit import fit_maps
    from napari_mr_reparam.joint_result import network_maps, network_render

    images, acqs, field, spacing, clipped = load(folder)
    bounds = [np.zeros_like(c) for c in clipped] if clipped_as_values else clipped  # what the fits take
    mask = phantom_mask(images)
    noise = noise_level(images, mask)
    n = len(images)
    key = kind.lower()
    template_file = folder.parents[2] / "templates" / f"{plate.capitalize()}_{'T2' if kind == 'T2' else 'T1_signed'}"
    centres, factor = sphere_centres(images, spacing, template_file, params[plate]["sphere_centres_row_col"])
    rims = sphere_rims(mask.shape, centres, factor)
    rows = []
    if kind == "T2":
        tes = [a.te for a in acqs]
        step = float(np.median(np.diff(tes)))
        first = 0 if first_echo_input else 1
        for k in range(n):
            rows.append((k, echo_inputs(k, n, step, first)))
    else:
        tis = [a.ti for a in acqs]
        for k in range(n):
            rows.append((k, ti_inputs(k, tis)))
    errors, rimless, single_errors, identity_errors, with_clipped, fit_noises = {}, {}, {}, {}, {}, []
    for k, inputs in rows:
        maps = fit_maps([images[i] for i in inputs], [acqs[i] for i in inputs],
                        clipped=[bounds[i] for i in inputs], inversion=inversion, noise=fit_noise)
        fit_noises += maps.summary()["noise"]
        a = acqs[k]
        pred = maps.render(a.te, a.tr, a.sequence, ti_ms=a.ti)
        # scored where the scanner measured the target and every input (none clipped)
        scored = mask & ~np.logical_or.reduce([clipped[i] for i in [k, *inputs]])
        errors[k] = rel_rms(pred, images[k], scored)
        rimless[k] = rel_rms(pred, images[k], scored & ~rims)
        if not scored[mask].all():
            with_clipped[k] = (int((mask & ~scored).sum()), rel_rms(pred, images[k], mask))
        if engine is not None:
            i = inputs[0]
            qmaps = network_maps(engine, images[i][None], acqs[i])
            one = network_render(engine, qmaps, a.te, a.tr, a.sequence, a.ti)[0]
            single_errors[k] = rel_rms(one, images[k], scored)
            identity_errors[k] = rel_rms(images[i], images[k], scored)  # the same input returned unchanged
    # maps from the whole series (echo 1 left out of ideal T2 fits unless asked)
    used = list(range(n)) if kind == "T1" or first_echo_input or echo_train == "epg" else list(range(1, n))
    full = fit_maps([images[i] for i in used], [acqs[i] for i in used], clipped=[bounds[i] for i in used],
                    echo_train=echo_train, inversion=inversion, noise=fit_noise)
    ref = np.asarray(params[plate][key]["relax_times"][field], float)
    # measurable: within the TEs of echoes 2..N (1..N with --keep-first-echo) or the TIs
    span = range(n) if kind == "T1" or first_echo_input else range(1, n)
    times = [acqs[i].te if kind == "T2" else acqs[i].ti for i in span]
    measurable = (ref >= min(times)) & (ref <= max(times))
    measured = sphere_values(getattr(full, key), centres, factor)
    determined = sphere_shares(full.determined[key], centres, factor)
    b1 = sphere_values(full.b1, centres, factor) if full.b1 is not None else None
    if kind == "T1":
        b1 = np.full(len(centres), full.inversion_efficiency)
    single_measured = None
    if engine is not None:
        i = rows[0][1][0]
        qmaps = network_maps(engine, images[i][None], acqs[i])
        sized = qmaps.at_input_size()
        single_measured = sphere_values(sized[key][0], centres, factor)
    return {"series": f"{kind} {folder.parent.name}/{plate}", "field": field, "n": n, "noise": noise,
            "fit_noise": (min(fit_noises), max(fit_noises)),
            "errors": errors, "rimless": rimless, "single_errors": single_errors,
            "identity_errors": identity_errors, "with_clipped": with_clipped,
            "ref": ref, "measured": measured, "determined": determined,
            "object_determined": full.summary()["determined_fraction"][key],
            "single_measured": single_measured, "measurable": measurable, "times": (min(times), max(times)),
            "acqs": acqs, "rows": rows, "b1": b1, "model": full.echo_train if kind == "T2" else "ideal"}


def _pct2(x):
    return f"{100 * x:.2f} %"


def _pct(x):
    return f"{100 * x:.1f} %"


# ----------------------------------------------------------------------------- two series of one plate

#: Sites whose T1 plate was scanned with both series (inversion recovery and echo train).
TWO_SERIES_SITES = ("site3_ge", "site4_philips", "site5_philips_3T")


def fit_folders(folders, scale: str):
    """The command line's joint maps of ``folders`` with ``--scale scale``, no network."""
    from napari_mr_reparam.cli import build_parser
    from napari_mr_reparam.cli_joint import fit_inputs

    args = build_parser().parse_args(["maps", *map(str, folders), "-o", "unused", "--model", "none",
                                      "--scale", scale, "-q"])
    return fit_inputs(args.input, args, model="none")[2]


def two_series_rows(data: Path, site: str, params, plate: str = "plate5") -> list[tuple]:
    ir, train = data / "T1" / site / plate, data / "T2" / site / plate
    images, acqs, field, spacing, _ = load(ir)
    centres, factor = sphere_centres(images, spacing, data / "templates" / f"{plate.capitalize()}_T1_signed",
                                     params[plate]["sphere_centres_row_col"])
    tes = [a.te for a in load(train)[1]]
    tis = [a.ti for a in acqs]
    ref = {k: np.asarray(params[plate][k]["relax_times"][field], float) for k in ("t1", "t2")}
    measurable = {"t1": (ref["t1"] >= min(tis)) & (ref["t1"] <= max(tis)),
                  "t2": (ref["t2"] >= sorted(tes)[1]) & (ref["t2"] <= max(tes))}
    fits = {"alone": (fit_folders([ir], "shared"), fit_folders([train], "shared")),
            "shared": (fit_folders([ir, train], "shared"),) * 2, "per-series": (fit_folders([ir, train], "per-series"),) * 2}
    rows = []
    for name, (for_t1, for_t2) in fits.items():
        cells = []
        for key, maps in (("t1", for_t1), ("t2", for_t2)):
            values = sphere_values(getattr(maps, key)[0] if getattr(maps, key).ndim == 3 else getattr(maps, key),
                                   centres, factor)
            error = np.abs(values / ref[key] - 1)[measurable[key]]
            cells.append(f"{100 * np.median(error):.1f} % ({100 * error.max():.1f} %)")
        gain = f"{for_t1.scales[-1]:.3g}" if name != "alone" else "-"
        rows.append((f"{site} ({field})", name, *cells, gain,
                     f"{int(measurable['t1'].sum())} / {int(measurable['t2'].sum())}"))
    return rows


def print_two_series(data: Path, sites, params, plate: str = "plate5") -> None:
    print("| site | gains | T1 median error (worst) | T2 median error (worst) | train's gain "
          "| spheres measurable (T1 / T2) |")
    print("|---|---|---|---|---|---|")
    for site in sites:
        try:
            rows = two_series_rows(data, site, params, plate)
        except ValueError as exc:  # what the command line refuses, in its words
            rows = [(site, "-", f"refused: {exc}", "-", "-", "-")]
        for row in rows:
            print("| " + " | ".join(row) + " |", flush=True)


def print_own_renders(data: Path, sites, model: str) -> None:
    """Per inversion-recovery series, each image's render at its own acquisition over the
    image, mean over the phantom (``--own-render``)."""
    from napari_mr_reparam.inference import Reparameterizer
    from napari_mr_reparam.joint_result import network_maps, network_render

    engine = Reparameterizer(model, device="cpu")
    print("| series | render / image at its own acquisition, mean over the phantom, per TI |")
    print("|---|---|")
    for kind, plate, folder in series_list(data, sites, (("T1", "plate5"),)):
        images, acqs, field, _, _ = load(folder)
        mask = phantom_mask(images)
        cells = []
        for image, a in zip(images, acqs):
            render = network_render(engine, network_maps(engine, image[None], a), a.te, a.tr, a.sequence, a.ti)[0]
            cells.append(f"TI {a.ti:g}: {render[mask].mean() / image[mask].mean():.2f}")
        print(f"| {kind} {folder.parent.name}/{plate} ({field}) | {', '.join(cells)} |", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", default="physics", help="single-image model for (c); 'none' to skip")
    parser.add_argument("--keep-first-echo", action="store_true",
                        help="let echo 1 of a train be an input and enter the T2 fits")
    parser.add_argument("--echo-train", choices=("epg", "ideal"), default="epg",
                        help="T2 maps of a train: extended phase graph with the flip angle free (default) "
                             "or the ideal equation")
    parser.add_argument("--inversion", type=float, default=None,
                        help="inversion efficiency of the IR series, for (a) and (b) (default: estimated from "
                             "each fit's inputs)")
    parser.add_argument("--noise", type=float, default=None,
                        help="noise level the fits take, a fraction of each image's bright signal (default: "
                             "measured in each fit's inputs, image_noise.estimate_noise)")
    parser.add_argument("--clipped-as-values", action="store_true",
                        help="fit the voxels a scanner clipped as measured values, as a NIfTI input's are "
                             "(default: lower bounds, as a DICOM input's); scored alike either way")
    parser.add_argument("--sites", nargs="*", help="only these site folders (e.g. site4_philips)")
    parser.add_argument("--plate", choices=("plate5", "plate4"), default="plate5",
                        help="with --two-series: the T1 plate (default) or the T2 plate, each scanned with both "
                             "series at three sites")
    parser.add_argument("--other-plates", action="store_true",
                        help="instead of the default series: the T1 plate's echo trains and the T2 plate's "
                             "inversion-recovery sets (held out from the choice of the fits' models)")
    parser.add_argument("--two-series", action="store_true",
                        help="instead: joint maps of the T1 plate's two series at each site that has both "
                             "(its inversion-recovery set and its echo train), one gain for both or one each")
    parser.add_argument("--own-render", action="store_true",
                        help="instead: each inversion-recovery image rendered by the single-image model at its own "
                             "acquisition, against the image")
    args = parser.parse_args(argv)
    if args.plate != "plate5" and not args.two_series:
        parser.error("--plate goes with --two-series")
    if args.noise is not None and not 0 < args.noise < 1:
        parser.error(f"--noise must lie between 0 and 1, got {args.noise:g}")
    if not (args.data / "relaxometry_params.py").is_file():
        print(f"error: no relaxometry data at {args.data}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(1)
    params = reference(args.data)
    if args.two_series:
        print_two_series(args.data, args.sites or TWO_SERIES_SITES, params, args.plate)
        return 0
    if args.own_render:
        print_own_renders(args.data, args.sites, args.model)
        return 0
    engine = None
    if args.model != "none":
        from napari_mr_reparam.inference import Reparameterizer

        engine = Reparameterizer(args.model, device="cpu")
    results = [evaluate_series(kind, plate, folder, params, engine, args.keep_first_echo, args.echo_train,
                               args.inversion, args.noise, args.clipped_as_values)
               for kind, plate, folder in series_list(args.data, args.sites,
                                                      OTHER_PLATES if args.other_plates else SERIES_PLATES)]

    print("### (a) Held-out images: relative RMS error inside the phantom\n")
    print("| series | field | images | inputs per prediction | joint fit, between inputs: median (max) "
          "| joint fit, beyond inputs: median (max) | without the spheres' rims: between / beyond (median) "
          "| echo 1 (T2) | one image, network: median | one image returned unchanged: median "
          "| image noise | noise the fits took (of the bright signal) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        t2 = r["series"].startswith("T2")
        times = [a.te if t2 else a.ti for a in r["acqs"]]
        inside, outside, single, same, rimless = [], [], [], [], ([], [])
        for k, inputs in r["rows"]:
            if t2 and k == 0:
                continue
            span = [times[i] for i in inputs]
            between = min(span) < times[k] < max(span)
            (inside if between else outside).append(r["errors"][k])
            rimless[0 if between else 1].append(r["rimless"][k])
            if r["single_errors"]:
                single.append(r["single_errors"][k])
                same.append(r["identity_errors"][k])
        first = _pct(r["errors"][0]) if t2 else "-"

        def cell(values):
            return f"{_pct(np.median(values))} ({_pct(np.max(values))}; {len(values)})" if values else "-"

        print(f"| {r['series']} | {r['field']} | {r['n']} | {'2 echoes' if t2 else '3 TIs'} "
              f"| {cell(inside)} | {cell(outside)} "
              f"| {' / '.join(_pct(np.median(v)) if v else '-' for v in rimless)} | {first} "
              f"| {_pct(np.median(single)) if single else '-'} | {_pct(np.median(same)) if same else '-'} "
              f"| {_pct(r['noise'])} "
              f"| {_pct2(r['fit_noise'][0])}-{_pct2(r['fit_noise'][1])} |")
    print("\n<details><summary>Per held-out image (joint fit: the inputs it was predicted from, error)</summary>\n")
    for r in results:
        t2 = r["series"].startswith("T2")
        word, times = ("echo", [a.te for a in r["acqs"]]) if t2 else ("TI", [a.ti for a in r["acqs"]])
        cells = "; ".join(f"{word} {k + 1} ({times[k]:g} ms) from {', '.join(str(i + 1) for i in inputs)}: "
                          f"{_pct(r['errors'][k])}" for k, inputs in r["rows"])
        print(f"- {r['series']}: {cells}")
    print("\n</details>")
    for r in results:
        if r["with_clipped"]:
            times = [a.te if r["series"].startswith("T2") else a.ti for a in r["acqs"]]
            count = max(c for c, _ in r["with_clipped"].values())
            cells = ", ".join(f"{times[k]:g} ms {_pct(e)}" for k, (_, e) in r["with_clipped"].items())
            print(f"\n{r['series']}: up to {count} phantom voxels the scanner clipped (in the target or an "
                  f"input) are left out of a prediction's score; scored with them: {cells}")

    print("\n### (b, c) Sphere T2 / T1 against the reference (median over measurable spheres)\n")
    print("| series | field | measurable spheres (reference within the TE/TI range) | T2 model | joint fit: median error "
          "| joint fit: worst | T2: flip-angle scale (median over spheres); T1: inversion efficiency "
          "| one image, network: median error | marked determined: measurable spheres / the others / the object |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        m = r["measurable"]
        marked = " / ".join([_pct(np.mean(r["determined"][part])) if part.any() else "-" for part in (m, ~m)]
                            + [_pct(r["object_determined"])])
        err = np.abs(r["measured"][m] / r["ref"][m] - 1)
        single = (np.abs(r["single_measured"][m] / r["ref"][m] - 1) if r["single_measured"] is not None
                  else None)
        spheres = ", ".join(str(i + 1) for i in np.flatnonzero(m))
        lo, hi = r["times"]
        b1 = f"{np.nanmedian(r['b1'][m]):.2f}" if r["b1"] is not None and m.any() else "-"
        model = r["model"] if r["series"].startswith("T2") else "-"
        print(f"| {r['series']} | {r['field']} | {m.sum()} ({spheres}; {lo:g}-{hi:g} ms) | {model} "
              f"| {_pct(np.median(err)) if m.any() else '-'} | {_pct(np.max(err)) if m.any() else '-'} | {b1} "
              f"| {_pct(np.median(single)) if single is not None and m.any() else '-'} | {marked} |")

    print("\n<details><summary>Per sphere (reference / joint fit, ms; share of its disc marked determined; "
          "* the series cannot measure it)</summary>\n")
    for r in results:
        cells = ", ".join(f"{i + 1}{'' if r['measurable'][i] else '*'}: {r['ref'][i]:g}/{r['measured'][i]:.4g} "
                          f"({100 * r['determined'][i]:.0f} %)" for i in range(len(r["ref"])))
        print(f"- {r['series']}: {cells}")
    print("\n</details>")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
