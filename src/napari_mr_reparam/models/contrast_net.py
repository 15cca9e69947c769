"""A small classifier: which input preset an image's contrast is nearest to.

Global contrast (which tissue is bright) is a property of the whole slice, so the network
reads the slice shrunk to a coarse grid (:data:`WORK_SIZE` on its longer side), runs five
strided convolution blocks and pools over the image (mean and maximum) into one logit per
class (:data:`napari_mr_reparam.contrast.CLASSES`).
"""

from __future__ import annotations

import torch
from torch import nn

from .physics_net import to_work_grid

#: Pixels of the grid the network reads (longer side; the aspect ratio is kept).
WORK_SIZE = 96


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1),
                         nn.GroupNorm(min(8, cout // 4), cout), nn.SiLU())


class ContrastNet(nn.Module):
    """Logits (B, classes) of images (B, 1, H, W) on [0, 1]."""

    def __init__(self, classes: int, base: int = 16, work_size: int = WORK_SIZE):
        super().__init__()
        self.classes, self.base, self.work_size = int(classes), int(base), int(work_size)
        widths = [base, 2 * base, 4 * base, 6 * base, 8 * base]
        layers, cin = [], 1
        for i, w in enumerate(widths):
            layers.append(_block(cin, w, 1 if i == 0 else 2))
            cin = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(2 * cin, self.classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = to_work_grid(images, self.work_size, keep_aspect=True)
        x = self.features(x)
        pooled = torch.cat([x.mean(dim=(-2, -1)), x.amax(dim=(-2, -1))], dim=1)
        return self.head(pooled)
