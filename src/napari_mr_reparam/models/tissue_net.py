"""Where each tissue is: a U-Net from one image (of any sequence) to tissue fractions.

The physics network's U-Net, conditioned on the input's acquisition the same way, with a
head of one channel per tissue class (background, then
:data:`~napari_mr_reparam.tissues.TISSUES`) and a softmax across them: each pixel's share
of every tissue, as the simulator's partial volume gives it. With the anatomy known, the
values each tissue takes at another acquisition are a handful of numbers per image (see
``benchmarks/bench_value_ceiling.py``), not a map per pixel.
"""

from __future__ import annotations

import torch

from ..tissues import TISSUES
from .physics_net import SEQUENCE_CONDITIONS, FiLMUNet, FromCard, condition_vector, to_work_grid

#: The network's output channels: background first, then the tissues.
CLASSES = ("background", *TISSUES)


class TissueNet(FromCard, FiLMUNet):
    """U-Net from (image, its acquisition) to the fractions of :data:`CLASSES`.

    ``base``, ``depth`` and ``work_size`` as for
    :class:`~napari_mr_reparam.models.physics_net.PhysicsNet` (images larger than
    ``work_size`` are read area-averaged down to it); it always reads the input's
    sequence, TI and flip angle.
    """

    def __init__(self, base: int = 16, depth: int = 4, task: str = "p2p", work_size: int = 128,
                 input_sequences: bool = True):
        super().__init__(1, len(CLASSES), SEQUENCE_CONDITIONS, base, depth)
        self.task, self.base, self.work_size = task, base, work_size
        self.input_sequences = True

    def logits(self, image01, input_te_ms, input_tr_ms, input_sequence="spin_echo", input_ti_ms=None,
               input_flip_deg=None) -> torch.Tensor:
        """(B, classes, h, w) logits on the work grid for images (B, 1, H, W) in [0, 1]."""
        b = image01.shape[0]
        image01 = to_work_grid(image01, self.work_size, self.native_input)
        cond = condition_vector(input_te_ms, input_tr_ms, input_sequence, input_ti_ms, input_flip_deg)
        return self.run(image01, cond.to(image01.device).expand(b, cond.shape[1])).float()

    def fractions(self, image01, *acquisition, **named) -> torch.Tensor:
        """(B, classes, h, w) fractions (summing to 1 per pixel) on the work grid;
        arguments as :meth:`logits`."""
        return torch.softmax(self.logits(image01, *acquisition, **named), dim=1)

    def load_initial_state(self, state: dict) -> tuple[list, list]:
        """Start from another network of this U-Net (the physics network's weights): every
        tensor but the head, whose classes are new. Returns (missing, unexpected) names
        besides the head."""
        body = {k: v for k, v in state.items() if not k.startswith("head.")}
        missing, unexpected = self.load_state_dict(body, strict=False)
        return [k for k in missing if not k.startswith("head.")], list(unexpected)
