"""Training the contrast classifier: which input preset an image looks like.

Images come from the randomized stream with acquisition effects, as the physics model's
do, their input acquisitions drawn across every input sequence
(:func:`~napari_mr_reparam.acquisition_effects.draw_input`); each is labelled with the
preset whose contrast is nearest its acquisition's
(:func:`~napari_mr_reparam.contrast.preset_label`). The loss is the cross entropy.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..acquisition import Acquisition
from ..contrast import CLASSES, preset_label
from ..models.contrast_net import WORK_SIZE, ContrastNet
from ..physics import INPUT_SEQUENCES
from .config import TrainConfig
from .data import StreamBatches

#: Label smoothing of the cross entropy (neighbouring presets' contrasts overlap).
LABEL_SMOOTHING = 0.05


class ContrastStage:
    def __init__(self, cfg: TrainConfig, rank: int = 0):
        if cfg.data != "stream" or cfg.acquisition is None or cfg.task != "p2p":
            raise ValueError("the contrast stage trains on the p2p stream with acquisition effects "
                             "(data = \"stream\", task = \"p2p\" and an [acquisition] table)")
        self.cfg = cfg
        self.model = ContrastNet(len(CLASSES), base=max(4, round(128 * cfg.width)), work_size=WORK_SIZE)
        self.batches = StreamBatches(cfg, rank)

    def loss(self, module, batch: dict) -> torch.Tensor:
        labels = torch.as_tensor(batch_labels(batch), device=batch["input"].device)
        return F.cross_entropy(module(batch["input"]), labels, label_smoothing=LABEL_SMOOTHING)

    def card(self) -> dict:
        return {"arch": "contrast", "classes": list(CLASSES), "base": self.model.base,
                "work_size": self.model.work_size, "task": self.cfg.task, "width": self.cfg.width}


def batch_labels(batch: dict) -> np.ndarray:
    """Each example's class, from the input acquisition its batch records."""
    cols = [np.asarray(batch[k].detach().cpu() if hasattr(batch[k], "detach") else batch[k], np.float64).reshape(-1)
            for k in ("input_seq", "input_te", "input_tr", "input_ti", "input_flip")]
    out = []
    for seq, te, tr, ti, flip in zip(*cols):
        sequence = INPUT_SEQUENCES[int(round(seq))]
        out.append(preset_label(Acquisition(te, tr, sequence, ti if ti > 0 else None, flip if flip > 0 else None)))
    return np.asarray(out, np.int64)
