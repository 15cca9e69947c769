"""Bilinear resizing of slice stacks, shared by the simulator and the inference engine."""

from __future__ import annotations

import numpy as np


def resize_slices(images: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Bilinear resize of (n, h, w) float images to ``size`` (int for square)."""
    import torch
    import torch.nn.functional as F

    out_hw = (size, size) if isinstance(size, int) else tuple(size)
    if images.shape[-2:] == out_hw:
        return images.astype(np.float32, copy=False)
    with torch.inference_mode():
        t = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))[:, None]
        out = F.interpolate(t, size=out_hw, mode="bilinear", align_corners=False)
    return out[:, 0].numpy()
