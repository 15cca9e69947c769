"""Training the tissue network: each pixel's tissue fractions from one image.

The randomized stream's examples carry the slice's tissue fractions through the same
slab, skull stripping and geometry as the image (``classes``); the loss is the cross
entropy of the network's fractions against them on the network's work grid (the
background is what the tissues leave of each pixel). It can start from the physics
network's weights (``init``): the same U-Net, all but its head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.physics_net import to_work_grid
from ..models.tissue_net import TissueNet
from .config import TrainConfig
from .data import StreamBatches


class TissueStage:
    """The tissue network (:class:`~napari_mr_reparam.models.tissue_net.TissueNet`) on the
    randomized stream, read on each subject's own grid."""

    def __init__(self, cfg: TrainConfig, rank: int = 0):
        if cfg.data != "stream" or cfg.acquisition is None:
            raise ValueError("the tissue stage trains on the stream with acquisition effects "
                             "(data = \"stream\" and an [acquisition] table)")
        self.cfg = cfg
        self.model = TissueNet(base=max(4, round(128 * cfg.width)), depth=cfg.depth, task=cfg.task,
                               work_size=cfg.work_size)
        self.model.native_input = True
        self.batches = StreamBatches(cfg, rank)

    def loss(self, module, batch: dict) -> torch.Tensor:
        logits = module.logits(batch["input"], batch["input_te"], batch["input_tr"], batch["input_seq"].long(),
                               batch["input_ti"], batch["input_flip"])
        return fraction_loss(logits, batch["classes"])

    def card(self) -> dict:
        return {"arch": "tissue", "task": self.cfg.task, "width": self.cfg.width, "base": self.model.base,
                "depth": self.model.depth, "work_size": self.model.work_size, "native_input": True,
                "input_sequences": True}


def fraction_loss(logits: torch.Tensor, tissues: torch.Tensor) -> torch.Tensor:
    """Cross entropy of ``logits`` (B, 1 + T, h, w) against tissue fractions ``tissues``
    (B, T, H, W), area-averaged to the logits' grid, the background taking the rest."""
    tissues = to_work_grid(tissues, max(logits.shape[-2:]), keep_aspect=True)
    if tissues.shape[-2:] != logits.shape[-2:]:
        tissues = F.interpolate(tissues, size=logits.shape[-2:], mode="area")
    background = (1.0 - tissues.sum(1, keepdim=True)).clamp_min(0.0)
    truth = torch.cat([background, tissues], 1)
    truth = truth / truth.sum(1, keepdim=True).clamp_min(1e-6)
    return -(truth * F.log_softmax(logits, dim=1)).sum(1).mean()
