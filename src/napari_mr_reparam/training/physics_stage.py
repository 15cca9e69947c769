"""Training the physics-informed model: maps once per input, K rendered targets each.

Because the maps are computed once per input, each input is scored against several
target acquisitions per step (``targets_per_input``) at little extra cost. Optionally
(``map_weight``) the maps themselves are compared with the phantom's, which the
simulator knows. Targets come
from the same sources as the paper models' (:func:`~.data.training_batches`: the fixed
protocol datasets, where the targets are that slice's other training images, or the
randomized stream), so the comparison between the models is like for like.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models import to_model_range
from ..models.physics_net import NETWORKS, VARIANT_ARCH
from ..physics import water_mean_time
from .config import TrainConfig
from .data import training_batches


class PhysicsStage:
    """The quantitative-map network trained through the signal equation (``variant``
    ``maps``), or, for comparison, the same U-Net predicting images directly (``direct``)
    or the maps' render plus a learned correction (``hybrid``)."""

    def __init__(self, cfg: TrainConfig, rank: int = 0):
        self.cfg = cfg
        net = NETWORKS[VARIANT_ARCH[cfg.variant]]
        extra = {"input_sequences": True} if cfg.input_sequences else {}
        if extra and cfg.variant != "maps":
            raise ValueError("input_sequences need the maps variant")
        self.model = net(base=max(4, round(128 * cfg.width)), depth=cfg.depth, task=cfg.task,
                         work_size=cfg.work_size, **extra)
        self.model.native_input = cfg.native_input
        self.model.keep_detail = cfg.keep_detail
        self.batches = training_batches(cfg, rank)

    def loss(self, module, batch: dict) -> torch.Tensor:
        args = (to_model_range(batch["input"]), batch["target_te"], batch["target_tr"],
                batch["input_te"], batch["input_tr"])
        kwargs = {"input_sequence": batch["input_seq"].long(), "input_ti_ms": batch["input_ti"],
                  "input_flip_deg": batch["input_flip"]} if self.cfg.input_sequences else {}
        if "maps" not in batch:
            return image_loss(module(*args, **kwargs), to_model_range(batch["target"]), self.cfg.image_loss)
        pred, maps = module(*args, return_maps=True, **kwargs)
        return (image_loss(pred, to_model_range(batch["target"]), self.cfg.image_loss)
                + self.cfg.map_weight * map_loss(maps, batch["maps"], self.cfg.partial_volume == "signals"))

    def card(self) -> dict:
        return {"arch": VARIANT_ARCH[self.cfg.variant], "task": self.cfg.task, "width": self.cfg.width,
                "base": self.model.base, "depth": self.model.depth, "work_size": self.model.work_size,
                "native_input": self.cfg.native_input,
                **({"trained_with_detail": True} if self.cfg.keep_detail else {}),
                **({"input_sequences": True} if self.cfg.input_sequences else {})}


#: Floor of an image's MSE (on the [-1, 1] scale) in the ``log_mse`` loss: about 62 dB
#: PSNR on the 0-255 scale, beyond which an image's error no longer pulls.
LOG_MSE_FLOOR = 1e-5


def image_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """The image term: ``mse`` over every pixel, or ``log_mse``, the mean over images of
    log(MSE + :data:`LOG_MSE_FLOOR`), which is minus the mean PSNR up to a scale and a
    constant: each image counts by its relative error, as the per-image PSNR scores it,
    rather than the worst images taking most of the gradient. It is scaled by the batch's
    MSE (held constant), so its gradient has the MSE's size and other loss terms (the map
    loss) keep their weight."""
    if kind == "mse":
        return F.mse_loss(pred, target)
    per_image = ((pred - target) ** 2).flatten(2).mean(-1)  # (B, K)
    return per_image.mean().detach() * torch.log(per_image + LOG_MSE_FLOOR).mean()


def map_loss(maps: dict, truth: torch.Tensor, geometric: bool = True) -> torch.Tensor:
    """Mean squared error of PD and of log T1, log T2 (truth clamped to the maps' bounds)
    against the phantom's maps ``truth`` (B, 3, h, w: PD, T1 ms, T2 ms), where PD > 0.

    PD is compared after scaling each map to its own maximum: images fix PD only up to a
    factor (they are normalized to their maximum), and subjects differ in PD scale. Truth
    on a finer grid than the maps is averaged down to theirs: PD as it is, the times
    geometrically by each pixel's PD (``geometric``; a plain mean otherwise, as the
    recipes of ``partial_volume = "times"`` were trained), so a grid pixel that is part
    CSF does not take CSF's time."""
    from ..models.physics_net import T1_RANGE_MS, T2_RANGE_MS

    if truth.shape[-2:] != maps["pd"].shape[-2:]:  # maps worked at a coarser grid
        truth = shrink_maps(truth, maps["pd"].shape[-2:]) if geometric else F.interpolate(
            truth, size=maps["pd"].shape[-2:], mode="area")
    tissue = (truth[:, :1] > 0).float()
    count = tissue.sum().clamp_min(1.0)
    err = (_to_own_max(maps["pd"]) - _to_own_max(truth[:, :1])) ** 2
    for key, ch, bounds in (("t1", 1, T1_RANGE_MS), ("t2", 2, T2_RANGE_MS)):
        true = truth[:, ch:ch + 1].clamp(*bounds)
        err = err + (torch.log(maps[key]) - torch.log(true)) ** 2
    return (err * tissue).sum() / count


def shrink_maps(truth: torch.Tensor, size) -> torch.Tensor:
    """(B, 3, H, W) maps (PD, T1, T2) area-averaged to ``size``: PD as it is, the times as
    the geometric mean weighted by PD; times 0 where no PD is left."""
    pd = truth[:, :1]
    small_pd = F.interpolate(pd, size=tuple(size), mode="area")
    logs = F.interpolate(pd * torch.log(truth[:, 1:].clamp_min(1e-3)), size=tuple(size), mode="area")
    return torch.cat([small_pd, water_mean_time(small_pd, logs)], dim=1)


def _to_own_max(pd: torch.Tensor) -> torch.Tensor:
    return pd / pd.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-6)
