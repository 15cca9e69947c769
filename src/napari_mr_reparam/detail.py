"""Renders at the input's resolution: the input guides the upsampling of a coarse render.

The physics model's maps live on a coarse working grid (128 pixels). A target rendered
there and merely resized loses everything finer than the grid. Inside a small
neighbourhood a partial-volume voxel is a mix of the few tissues around it, and a mix of
two tissues is, at any acquisition, the same linear blend of their signals: so the
target is locally a linear function of the input. The coefficients of that function are
found on the working grid, from the input shrunk to it and the coarse render of the
target (a guided filter, He et al., "Guided image filtering", ECCV 2010 / TPAMI 2013),
and then applied to the input at its own resolution. A render at the input's own
acquisition returns the input; a target of opposite contrast flips its edges.
"""

from __future__ import annotations

import numpy as np

#: Half-width, in working-grid pixels, of the windows the linear relation is fitted over.
RADIUS = 1
#: Regularization of the fitted slope (image intensities on [0, 1]): where the input is
#: flatter than this inside a window, the render keeps its own coarse value there.
EPS = 1e-4


class DetailGuide:
    """The input (each slice normalized to its maximum) shrunk to the maps' grid, with its
    window statistics, and the detail the grid cannot hold at the input's own size: kept
    once per volume for every render."""

    def __init__(self, images, grid: tuple[int, int], radius: int = RADIUS, eps: float = EPS):
        """``images``: (n, h, w) array, or a (n, 1, h, w) tensor (kept as it is)."""
        import torch

        self.radius, self.eps = radius, eps
        if isinstance(images, torch.Tensor):
            full = images
        else:
            full = torch.from_numpy(np.ascontiguousarray(images, np.float32))[:, None]
        self.shape = tuple(full.shape[-2:])  # the input's in-plane size
        self.small = _shrink(full, grid)
        self.mean = self._box(self.small)
        self.var = self._box(self.small * self.small) - self.mean * self.mean
        self.detail = full - _resize(self.small, self.shape)  # what the grid cannot hold

    def slices(self, rows) -> DetailGuide:
        """The guide of some slices only."""
        out = object.__new__(DetailGuide)
        out.radius, out.eps, out.shape = self.radius, self.eps, self.shape
        idx = _index(rows, self.small.shape[0])
        for key in ("small", "mean", "var", "detail"):
            setattr(out, key, getattr(self, key)[idx])
        return out

    def upsample(self, render: np.ndarray, scale=None) -> np.ndarray:
        """``render`` (n, h, w) on the maps' grid, brought to the input's size with the
        input's detail, clipped to [0, 1] (times ``scale``, one value per slice, if given)."""
        import torch

        with torch.inference_mode():
            src = torch.from_numpy(np.ascontiguousarray(render, np.float32))[:, None]
            top = None if scale is None else torch.as_tensor(np.asarray(scale, np.float32).reshape(-1, 1, 1, 1))
            return self.apply(src, top)[:, 0].numpy()

    def apply(self, src, top=None):
        """Tensors ``src`` (n, k, h, w) on the grid, k renders per guide slice, brought to
        the input's size, clipped to [0, 1] (or [0, ``top``]); differentiable in ``src``."""
        import torch

        mean_src = self._box(src)
        cov = self._box(self.small * src) - self.mean * mean_src
        slope = cov / (self.var + self.eps)
        offset = mean_src - slope * self.mean
        slope, offset = self._box(slope), self._box(offset)
        if top is not None:  # scaled here, on the grid, not at full size
            slope, offset = slope * top, offset * top
        # slope * input + offset at full size, as the coarse part (resized) plus the slope
        # times the input's finer detail (the slope is smooth: repeating its values suffices
        # where the input's size is a whole multiple of the grid's)
        coarse = _resize(slope * self.small + offset, self.shape)
        if src.requires_grad:  # training: out of place, for the gradient
            out = coarse + _expand(slope, self.shape) * self.detail
            return out.clamp(0.0, 1.0) if top is None else torch.minimum(out.clamp(min=0.0), top)
        out = torch.addcmul(coarse, _expand(slope, self.shape), self.detail)  # in place: no full-size copies
        return out.clamp_(0.0, 1.0) if top is None else torch.minimum(out.clamp_(min=0.0), top, out=out)

    def _box(self, x):
        """The mean over each pixel's (2r+1)^2 window, edges repeated: sums of shifted
        slices, one axis at a time (several times faster than a pooling call on a CPU)."""
        import torch.nn.functional as F

        r = self.radius
        if r == 0:
            return x
        padded = F.pad(x, (r,) * 4, mode="replicate")
        h, w = x.shape[-2:]
        rows = sum(padded[..., :, i:i + w] for i in range(2 * r + 1))
        return sum(rows[..., i:i + h, :] for i in range(2 * r + 1)) / float((2 * r + 1) ** 2)


def guided_upsample(render, image, radius: int = RADIUS, eps: float = EPS):
    """Differentiable form of :meth:`DetailGuide.upsample` for training: ``render``
    (B, K, h, w) on the maps' grid, ``image`` (B, 1, H, W) the input in [0, 1]; returns
    (B, K, H, W) in [0, 1], as the engine renders every target."""
    return DetailGuide(image.detach().float(), tuple(render.shape[-2:]), radius, eps).apply(render)


def _shrink(images, grid):
    import torch.nn.functional as F

    if tuple(images.shape[-2:]) == tuple(grid):
        return images.clone()
    mode = "area" if all(a >= b for a, b in zip(images.shape[-2:], grid)) else "bilinear"
    kwargs = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(images, size=tuple(grid), mode=mode, **kwargs)


def _resize(images, shape):
    import torch.nn.functional as F

    return F.interpolate(images, size=tuple(shape), mode="bilinear", align_corners=False)


def _expand(images, shape):
    """``images`` at ``shape``: each value repeated where ``shape`` is a whole multiple of
    their size (cheap, and the same mirrored), else resized."""
    import torch.nn.functional as F

    if all(big % small == 0 for big, small in zip(shape, images.shape[-2:])):
        return F.interpolate(images, size=tuple(shape), mode="nearest")
    return _resize(images, shape)


def _index(rows, n: int):
    import torch

    return torch.as_tensor(np.arange(n)[rows])
