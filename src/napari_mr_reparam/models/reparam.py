"""Default-to-Param and Param-to-Param: the frozen encoder plus a Param-Net."""

from __future__ import annotations

import torch
from torch import nn

from .. import DEFAULT_TE_MS, DEFAULT_TR_MS
from ..units import ms_to_s
from .autoencoder import Encoder
from .paramnet import ParamNet

TASK_PARAMS = {"d2p": 2, "p2p": 4}


def parameter_vector(task: str, te_ms, tr_ms, input_te_ms=None, input_tr_ms=None, batch=1,
                     device=None) -> torch.Tensor:
    """The Param-Net's (B, n) parameters in raw seconds, laid out as the authors did.

    Default-to-Param: (TE, TR). Param-to-Param: (input TE, input TR, target TE, target TR).
    """
    def col(v):
        t = torch.as_tensor(v, dtype=torch.float32, device=device).reshape(-1)
        return ms_to_s(t.expand(batch) if t.numel() == 1 else t)

    if task == "d2p":
        return torch.stack([col(te_ms), col(tr_ms)], 1)
    if input_te_ms is None or input_tr_ms is None:
        raise ValueError("Param-to-Param needs the input image's TE and TR")
    return torch.stack([col(input_te_ms), col(input_tr_ms), col(te_ms), col(tr_ms)], 1)


class ReparamNet(nn.Module):
    """The paper's re-parameterization network.

    ``forward(image, te_ms, tr_ms, input_te_ms, input_tr_ms)`` takes images (B, 1, 256, 256)
    in [-1, 1] and times in milliseconds (scalars or (B,) tensors); Default-to-Param
    ignores the input times (its input is always at TE 50 ms / TR 4500 ms).
    """

    def __init__(self, task: str = "d2p", width: float = 1.0, injection: str = "efficient"):
        super().__init__()
        if task not in TASK_PARAMS:
            raise ValueError(f"unknown task {task!r}; use 'd2p' or 'p2p'")
        self.task, self.width = task, width
        self.encoder = Encoder(width)
        self.paramnet = ParamNet(width, n_params=TASK_PARAMS[task], injection=injection)

    def forward(self, image, te_ms, tr_ms, input_te_ms=None, input_tr_ms=None):
        if self.task == "d2p":
            input_te_ms, input_tr_ms = DEFAULT_TE_MS, DEFAULT_TR_MS
        params = parameter_vector(self.task, te_ms, tr_ms, input_te_ms, input_tr_ms,
                                  batch=image.shape[0], device=image.device)
        return self.paramnet(self.encoder(image), params)


def xavier_init_(module: nn.Module) -> nn.Module:
    """Glorot/Xavier-uniform weights and zero biases for every (transposed) convolution."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def to_model_range(images01):
    """Images in [0, 1] to the networks' [-1, 1] (the paper's x / 255 * 2 - 1)."""
    return images01 * 2 - 1


def from_model_range(y):
    """Network output in [-1, 1] back to [0, 1]."""
    return (y + 1) / 2
