"""Receiver gains of inputs from several series.

Images of one series share the scanner's receiver gain and scaling; images of two series
(an inversion-recovery set and a multi-echo train of the same object, say) do not, and a
joint fit that takes one gain for both pushes the difference into the relaxation times
(T1 at its bound, where the train's level reads as saturation). Each series' gain relative
to the first input's is found here by its *profile*: at each trial gain the voxels of a
sample are fitted (:func:`~napari_mr_reparam.voxel_solver.fit_voxels`) and their misfit to
the inputs summed; the gain with the least misfit is kept. Where the series measure
different times (T1 from the TIs, T2 from the echoes), the misfit has a clear minimum.
Where they leave the gain to trade against a relaxation time (a lone image, or two dual
echoes at different TRs), the misfit is flat, and the gain falls back to the one the
prior's relaxation times give (``fallback``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

#: Voxels of the object whose fits make up the misfit at a trial gain.
SAMPLE_VOXELS = 1500
#: Trial gains: the start times 2 to these powers, then a finer grid about the best.
COARSE_STEPS = np.linspace(-4.0, 4.0, 9)
FINE_STEPS = np.linspace(-0.5, 0.5, 9)
#: Trial fits of the search per series after the first: the coarse and the fine grid, and
#: the two that test the least's sharpness. Each counts one unit of a fit's progress.
SEARCH_FITS = len(COARSE_STEPS) + len(FINE_STEPS) + 2
#: A gain counts as measured where halving and doubling it each raise the misfit by at
#: least this factor; else the profile is too flat to tell it.
SHARPNESS = 1.5


def series_of(labels, count: int) -> list[int]:
    """Each input's series as 0, 1, ... in order of first appearance (input 0: series 0);
    ``labels`` holds one label per input (a path, a SeriesInstanceUID: any hashable)."""
    labels = list(labels)
    if len(labels) != count:
        raise ValueError(f"{len(labels)} series labels but {count} images: give one per image")
    seen: dict = {}
    return [seen.setdefault(label, len(seen)) for label in labels]


def series_count(scale) -> int:
    """How many series a fit's ``scale`` tells apart: its distinct labels where it is a
    label per input (:func:`by_source`), else 1."""
    return 1 if isinstance(scale, str) else len(set(scale))


def by_source(labels, acquisitions=None):
    """The gains a fit takes by default for inputs read from the sources ``labels`` (one per
    input: the file or DICOM folder each came from, or :func:`series_label` where a BIDS
    sidecar or the DICOM tags name the scan's series), with sources of one protocol's set
    taken together (:func:`by_protocol`, of the inputs' ``acquisitions``: the TIs of an
    inversion-recovery set, each saved as a series, share the scanner's gain): a gain per
    source where there are several and one of them brought several images (an
    inversion-recovery folder and an echo-train folder); a gain per image (``"per_input"``,
    estimated against the prior's times) where each image's series is named and of a
    protocol of its own (a T1-weighted and a T2-weighted scan, each stored at its own gain);
    else one for all ("shared"), as lone images of unnamed series cannot tell their gains
    apart from a relaxation time, and may be one series' images saved apart."""
    labels = list(labels)
    several = len(set(labels)) < len(labels)  # a source that brought several images
    named = all(isinstance(label, tuple) and label[:1] == ("series",) for label in labels)
    merged = by_protocol(labels, acquisitions)
    if len(set(merged)) < 2:
        return "shared"
    if len(set(merged)) == len(merged):  # lone images, each of a protocol of its own
        return "per_input" if named else "shared"
    return merged if named or several else "shared"


def by_protocol(labels, acquisitions=None) -> list:
    """``labels`` with the sources whose images are all of one protocol's set
    (:func:`protocol_of`) taken as one: each gets the first such source's label. A source
    of images of several protocols (a folder of several series) keeps its own.
    ``acquisitions``: one per input, or None (nothing taken together)."""
    labels = list(labels)
    if acquisitions is None:
        return labels
    protocols: dict = {}
    for label, acq in zip(labels, acquisitions):
        protocols.setdefault(label, set()).add(protocol_of(acq))
    first: dict = {}
    for label, held in protocols.items():
        if len(held) == 1:
            first.setdefault(next(iter(held)), label)
    return [first.get(next(iter(protocols[label])), label) if len(protocols[label]) == 1 else label
            for label in labels]


def protocol_of(acq) -> tuple:
    """What images of one protocol's set share: the sequence and TE of an inversion-recovery
    image (its TI and TR may vary: the TIs of a set), else the sequence and TR (its TE or flip
    may vary: the echoes of a train, a variable-flip set); times to 0.1 ms."""
    if acq.sequence == "inversion_recovery":
        return acq.sequence, "te", round(float(acq.te_ms), 1)
    return acq.sequence, "tr", round(float(acq.tr_ms), 1)


def one_protocol(acquisitions) -> bool:
    """Whether two or more images are one protocol's set (:func:`protocol_of`), which a
    scanner acquires at one receiver gain. ``acquisitions``:
    :class:`~napari_mr_reparam.acquisition.Acquisition` values, or None (not known: not one)."""
    return bool(acquisitions) and len(acquisitions) > 1 and len({protocol_of(a) for a in acquisitions}) == 1


def one_gain_across_files(labels, acquisitions=None) -> bool:
    """Whether inputs of these labels (:func:`series_label`; an int for an image read from
    no file) take one gain by default (:func:`by_source`) though two or more come from files
    that no sidecar names as one series and they are not one protocol's set
    (:func:`one_protocol`): right for one series' images saved apart, wrong for scans of
    separate series (the command line and the widget say so)."""
    files = {label for label in labels if not isinstance(label, int)}
    return by_source(labels, acquisitions) == "shared" and len(files) > 1 and not one_protocol(acquisitions)


def series_label(volume_or_extra, source):
    """The label of an input for :func:`by_source`: the series its BIDS sidecar names (a
    volume's ``extra["series_id"]``) or its DICOM tags do (``extra["series_uid"]``), else
    ``source`` (its file or folder)."""
    extra = (volume_or_extra if isinstance(volume_or_extra, dict) else getattr(volume_or_extra, "extra", None)) or {}
    named = extra.get("series_id") or extra.get("series_uid")
    return ("series", named) if named else source


def misfit(problem, gains, sample, fit) -> float:
    """Mean squared misfit, in noise units, of the voxels ``sample`` (positions in
    ``problem.index``) fitted with the inputs' ``gains``: ``fit(problem)`` gives their maps."""
    import torch

    from .fit_information import signal_and_slopes

    part = dataclasses.replace(problem, index=problem.index[sample], prior_t1=problem.prior_t1[sample],
                               prior_t2=problem.prior_t2[sample], prior_pd=None, pd_precision=None,
                               scales=list(gains))
    maps = fit(part)
    t1, t2 = (torch.from_numpy(maps[k]) for k in ("t1", "t2"))
    total, count = 0.0, 0
    for i, (acq, gain, sd) in enumerate(zip(problem.acqs, gains, problem.sigma)):
        model = gain * maps["pd"] * signal_and_slopes(acq, t1, t2, torch)[0].numpy()
        data = problem.signals[i][part.index]
        use = np.ones(data.shape, bool) if problem.measured is None else problem.measured[i][part.index]
        total += float(np.sum(((data - model)[use] / sd) ** 2))
        count += int(use.sum())
    return total / max(count, 1)


def profile_gains(series: list[int], problem, fit, fallback, seed: int = 0) -> tuple[list[float], list[str]]:
    """Each input's gain (its series', relative to series 0) and, per series, how it was
    found: ``"first"``, ``"misfit"`` (a clear minimum of :func:`misfit`) or ``"prior"``
    (``fallback(series_inputs)``, the gain the prior's times give those inputs, where the
    profile is flat)."""
    rng = np.random.default_rng(seed)
    count = problem.index.size
    sample = np.sort(rng.choice(count, size=min(SAMPLE_VOXELS, count), replace=False))
    groups = max(series) + 1
    gains = np.ones(len(series))
    found = ["first"] + ["prior"] * (groups - 1)
    start = [1.0] + [fallback([i for i, s in enumerate(series) if s == g]) for g in range(1, groups)]
    for g in range(1, groups):
        members = np.array(series) == g
        gains[members] = start[g]

        def cost(step):
            trial = gains.copy()
            trial[members] = start[g] * 2.0 ** step
            return misfit(problem, trial, sample, fit)

        coarse = [cost(s) for s in COARSE_STEPS]
        best = float(COARSE_STEPS[int(np.argmin(coarse))])
        fine_steps = best + FINE_STEPS
        fine = [cost(s) for s in fine_steps]
        step = _vertex(fine_steps, fine)
        low, here, high = cost(step - 1.0), min(fine), cost(step + 1.0)
        if min(low, high) >= SHARPNESS * here:
            gains[members], found[g] = start[g] * 2.0 ** step, "misfit"
    return [float(v) for v in gains], found


def _vertex(steps, costs) -> float:
    """The step at the least cost: the vertex of the parabola through the least and its two
    neighbours (the least itself at an end of the grid)."""
    k = int(np.argmin(costs))
    if k in (0, len(costs) - 1):
        return float(steps[k])
    (a, b, c), h = costs[k - 1:k + 2], float(steps[k + 1] - steps[k])
    curvature = a - 2 * b + c
    return float(steps[k] + (0.5 * h * (a - c) / curvature if curvature > 0 else 0.0))
