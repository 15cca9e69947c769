"""Edge-preserving smoothing of several co-registered images at once.

Before the joint fit (:mod:`napari_mr_reparam.joint_fit`) each voxel's signals are
averaged with those of its neighbours alike in every input to within a few noise levels:
a joint bilateral filter over the inputs, which steadies the fit where the inputs pin a
parameter only loosely (long T1 from short repetition times) and keeps tissue edges.
"""

from __future__ import annotations

import math

import numpy as np

from .cancellation import stop_if_cancelled
from .parallel import chunk_threads, in_order

#: Edge-preserving smoothing of the inputs before the fit (:func:`smooth_inputs`): the
#: in-plane radius (voxels) of the disc of neighbours, and how alike (in noise levels, over
#: all inputs at once) a neighbour's signals must be to be averaged in. Chosen on training
#: subjects 01-04 at 1 % noise and on a head with a real scan's fine structure (RESULTS,
#: "Simulated held-out brains"): a wider disc averages more like voxels and keeps edges, a
#: wider range blurs detail; 3.2 (18 neighbour pairs, the square of radius 2 has 12) keeps
#: three 180x256x256 inputs within 10 s on 2 cores.
SMOOTH_RADIUS = 3.2
SMOOTH_RANGE = 2.0
#: The farthest apart (in in-plane pixels) a 3-D volume's slices may lie for the smoothing
#: to reach the neighbouring slices too (near-isotropic voxels: a 1 mm MPRAGE, a 3-D FLAIR).
SMOOTH_SLICE_RATIO = 1.5
#: The ball's radius (pixels) where the smoothing reaches across slices (81 voxels against
#: the in-plane disc's 37). Chosen on training subjects 01-02 at 0.5 and 1 % noise among
#: 2.2, 2.5 and 3.2 (3.2 gains 0.3-0.6 dB more at 1.8 times the cost, which took three
#: 180x256x256 inputs with a FLAIR past 12 s; RESULTS, "Smoothing across slices").
SMOOTH_BALL_RADIUS = 2.5
#: The lowest exponent of a neighbour's weight (exp(-60) is about 1e-26 of a like
#: neighbour's): far below float32's resolution of a sum that holds the voxel's own weight
#: of 1, and far enough above its smallest normal number (about 1e-38) that no weight,
#: nor its product with a signal, is a subnormal one.
WEIGHT_EXPONENT_FLOOR = -60.0


def smooth_inputs(arrays, sigma, radius: float | None = None, strength: float = SMOOTH_RANGE,
                  body=None, keep=None, cancelled=None, chunk_voxels: int = 1 << 20, spacing=None,
                  overwrite: bool = False):
    """The inputs with each voxel averaged with its neighbours of like signal, and how many
    voxels each was averaged over: ``(inputs, weights)``.

    A joint bilateral filter over all inputs at once: the neighbours within a disc of
    ``radius`` voxels in the plane (the last two axes; default :data:`SMOOTH_RADIUS`) each
    weigh ``exp(-d2 / (2 strength^2 n))``,
    where ``d2`` is the squared distance between the two voxels' signals over the ``n``
    inputs, each in units of its noise ``sigma[i]``. Voxels of one tissue (alike in every
    input to within the noise) are averaged, which steadies the fit where the inputs
    determine a parameter only loosely (long T1 from short repetition times); a tissue
    edge, many noise levels in some input, is kept. With ``spacing`` (slice, row, column;
    any unit) of a 3-D volume whose slices lie at most :data:`SMOOTH_SLICE_RATIO` pixels
    apart, the neighbourhood is a ball (default radius :data:`SMOOTH_BALL_RADIUS`),
    reaching the neighbouring slices too (:func:`smoothing_offsets`). Only the box around ``body`` (a
    boolean mask of the inputs' shape; default: everything) is smoothed, and only voxels
    ``keep`` marks (default: all) take part: the others (a value missing or not measured in
    some input) are left as they are and lend nothing to their neighbours. (scikit-image's
    bilateral filter bins the signal distance and weighs neighbours by a spatial Gaussian:
    it smooths less evenly and measured worse here.) ``cancelled()`` is asked before each
    chunk of slices. ``weights`` is the sum of each voxel's weights (itself 1), about how
    many voxels its signals were averaged over. With ``overwrite`` the inputs (float32
    arrays the caller owns) are smoothed in place and returned, rather than a copy of them.
    Chunks of slices are smoothed on threads of their own
    (:func:`~napari_mr_reparam.parallel.chunk_threads`).
    """
    import torch

    shape = arrays[0].shape
    if overwrite and not all(a.dtype == np.float32 and a.flags.c_contiguous and a.flags.writeable for a in arrays):
        raise ValueError("overwrite needs writeable C-contiguous float32 arrays")
    # (z, y, x) each, written in place: each chunk once no later chunk reads its slices
    planes = [(a if overwrite else np.array(a, np.float32)).reshape((-1,) + shape[-2:]) for a in arrays]
    weights = np.ones(planes[0].shape, np.float32)
    n = len(planes)
    if body is None:
        box = (slice(None),) * 3
    else:
        inside = np.asarray(body, bool).reshape(weights.shape)
        if not inside.any():
            return [p.reshape(shape) for p in planes], weights.reshape(shape)
        spans = [np.flatnonzero(inside.any(axis=other)) for other in ((1, 2), (0, 2), (0, 1))]
        box = tuple(slice(int(span[0]), int(span[-1]) + 1) for span in spans)
    scale = torch.tensor([1 / max(float(sd), 1e-12) for sd in sigma], dtype=torch.float32)[:, None, None, None]
    gain = -0.5 / (strength**2 * n)
    region = [p[box] for p in planes]  # views: read, and written chunk by chunk
    taking = None if keep is None else np.asarray(keep, bool).reshape(weights.shape)[box]
    if taking is not None and taking.all():
        taking = None  # every voxel takes part: no mask to apply to each pair's weights
    z, ny, nx = region[0].shape
    offsets = smoothing_offsets(radius, spacing if len(shape) == 3 else None)
    halo = max(dz for dz, _, _ in offsets)  # slices a chunk reads beyond its own
    step = max(1, chunk_voxels // max(ny * nx, 1))
    done = []  # (first slice, smoothed slices) not yet written: later chunks still read them

    def write(before: int) -> None:
        while done and done[0][0] + done[0][1].shape[1] <= before:
            first, smoothed = done.pop(0)
            for r, values in zip(region, smoothed):
                r[first:first + values.shape[0]] = values

    def smoothed(start):  # one chunk of slices, on a thread of its own: reads ``region`` only
        stop_if_cancelled(cancelled)
        lo, hi = max(0, start - halo), min(z, start + step + halo)
        x = torch.from_numpy(np.stack([r[lo:hi] for r in region])) * scale
        num = x.clone()
        den = torch.ones_like(x[0])
        ok = None if taking is None else torch.from_numpy(np.ascontiguousarray(taking[lo:hi]))
        depth = hi - lo
        # each neighbour pair once, the weight given to both
        for dz, dy, dx in offsets:
            if dz >= depth or abs(dy) >= ny or abs(dx) >= nx:
                continue  # the volume is smaller than the offset spans
            a = (slice(None), slice(0, depth - dz), slice(max(0, -dy), ny - max(0, dy)),
                 slice(max(0, -dx), nx - max(0, dx)))
            b = (slice(None), slice(dz, depth), slice(max(0, dy), ny - max(0, -dy)),
                 slice(max(0, dx), nx - max(0, -dx)))
            xa, xb = x[a], x[b]
            # a weight below exp(WEIGHT_EXPONENT_FLOOR) counts for nothing; kept above it, no
            # product is a subnormal float, which the CPU handles many times slower
            w = (xa - xb).square_().sum(0).mul_(gain).clamp_min_(WEIGHT_EXPONENT_FLOOR).exp_()
            if ok is not None:
                w.mul_(ok[a[1:]] & ok[b[1:]])
            num[a].addcmul_(w.expand_as(xb), xb)
            num[b].addcmul_(w.expand_as(xa), xa)
            den[a[1:]] += w
            den[b[1:]] += w
        own = slice(start - lo, start - lo + min(step, z - start))  # the chunk's slices, without the halo
        return start, (num[:, own] / den[own] / scale).numpy(), den[own].numpy()

    with chunk_threads() as workers:
        for start, values, sums in in_order(smoothed, range(0, z, step), workers):
            done.append((start, values))
            weights[box][start:start + step] = sums
            write(start + step - halo)  # no chunk after this one reads below there
    write(z)
    return [p.reshape(shape) for p in planes], weights.reshape(shape)


def smoothing_offsets(radius: float | None = None, spacing=None) -> list[tuple[int, int, int]]:
    """Neighbour offsets (slice, row, column) of :func:`smooth_inputs`, one of each pair
    (the half of the neighbourhood after (0, 0, 0)): the in-plane disc of ``radius``
    pixels (default :data:`SMOOTH_RADIUS`); with ``spacing`` (slice, row, column) whose
    slices lie at most :data:`SMOOTH_SLICE_RATIO` pixels apart, the ball of ``radius``
    pixels (default :data:`SMOOTH_BALL_RADIUS`; a slice ``dz`` away at its distance in
    pixels)."""
    gap = math.inf
    if spacing is not None:
        if np.ndim(spacing) != 1 or len(spacing) != 3:
            raise ValueError(f"spacing must be three numbers (slice, row, column), got {spacing!r}")
        slice_mm, *pixel = (float(v) for v in spacing)
        if min(pixel) > 0 and 0 < slice_mm <= SMOOTH_SLICE_RATIO * min(pixel):
            gap = slice_mm / min(pixel)
    if radius is None:
        radius = SMOOTH_RADIUS if math.isinf(gap) else SMOOTH_BALL_RADIUS
    reach = int(radius)
    out = []
    for dz in range(0, 1 if math.isinf(gap) else int(radius / gap) + 1):
        left = radius * radius - (dz * gap) ** 2 if dz else radius * radius
        for dy in range(-reach, reach + 1):
            for dx in range(-reach, reach + 1):
                if (dz, dy, dx) > (0, 0, 0) and dy * dy + dx * dx <= left:
                    out.append((dz, dy, dx))
    return out
