"""What each training stage builds and optimizes.

A stage object holds the model, which of its parameters train, where its batches come
from, its loss, and what its weight card records. :mod:`.loop` drives any of them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models import Autoencoder, ReparamNet, to_model_range, xavier_init_
from .config import TrainConfig
from .data import ReconstructionBatches, training_batches


class AutoencoderStage:
    """Phase 1 of the paper: an autoencoder on natural images, fine-tuned on MR slices."""

    def __init__(self, cfg: TrainConfig, rank: int = 0):
        self.cfg = cfg
        self.model = Autoencoder(width=cfg.width)
        xavier_init_(self.model)
        self.batches = ReconstructionBatches(cfg, rank)

    def loss(self, module, batch: dict) -> torch.Tensor:
        return F.mse_loss(module(to_model_range(batch["input"])), to_model_range(batch["target"]))

    def card(self) -> dict:
        return {"arch": "autoencoder", "width": self.cfg.width}


#: Why a Param-Net run without an autoencoder is refused, and how to get one.
NEEDS_AUTOENCODER = ("phase 2 (paramnet) trains on the frozen encoder of the autoencoder from phase 1: "
                     "give its checkpoint with --autoencoder (autoencoder = \"...\" in a recipe); train it "
                     "first with napari-mr-reparam-train autoencoder --config training/autoencoder.toml")


class ParamNetStage:
    """Phase 2: the Param-Net on the frozen encoder (Default- or Param-to-Param), which
    comes from phase 1's autoencoder (``autoencoder``) or, fine-tuning, with the rest of a
    Param-Net's weights (``init``); never a random one."""

    def __init__(self, cfg: TrainConfig, rank: int = 0):
        if not (cfg.autoencoder or cfg.init):
            raise ValueError(NEEDS_AUTOENCODER)
        self.cfg = cfg
        self.model = ReparamNet(task=cfg.task, width=cfg.width)
        xavier_init_(self.model)
        if cfg.autoencoder:
            self._load_encoder(cfg.autoencoder)
        self.model.encoder.requires_grad_(False)
        self.batches = training_batches(cfg, rank)

    def _load_encoder(self, path: str) -> None:
        from pathlib import Path

        from ..weights import WeightsError, does_not_fit, load_weights

        if Path(path).suffix and not Path(path).is_file():  # a file named, none there: phase 1 not run
            raise FileNotFoundError(f"no autoencoder checkpoint {path!r}: {NEEDS_AUTOENCODER}")
        state, card = load_weights(path)
        encoder_state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
        if not encoder_state:
            raise ValueError(f"{path}: holds no encoder weights")
        try:
            self.model.encoder.load_state_dict(encoder_state)
        except RuntimeError as exc:  # another width's autoencoder, say
            width = card.get("width")
            said = (f"; it is an autoencoder of width {width:g}, this run's width is {self.cfg.width:g}"
                    if isinstance(width, (int, float)) and width != self.cfg.width else "")
            raise WeightsError(f"{does_not_fit(path, exc)}{said}") from None

    def train_mode(self) -> None:
        """Param-Net trains; the frozen encoder keeps its BatchNorm statistics."""
        self.model.train()
        self.model.encoder.eval()

    def loss(self, module, batch: dict) -> torch.Tensor:
        pred = module(to_model_range(batch["input"]), batch["target_te"], batch["target_tr"],
                      batch["input_te"], batch["input_tr"])
        return F.mse_loss(pred, to_model_range(batch["target"]))

    def card(self) -> dict:
        return {"arch": "paper", "task": self.cfg.task, "width": self.cfg.width}


def build_stage(cfg: TrainConfig, rank: int = 0):
    """The stage ``cfg.stage`` names, drawing the batches of process ``rank``."""
    if cfg.stage == "autoencoder":
        return AutoencoderStage(cfg, rank)
    if cfg.stage == "paramnet":
        return ParamNetStage(cfg, rank)
    if cfg.stage == "physics":
        from .physics_stage import PhysicsStage

        return PhysicsStage(cfg, rank)
    if cfg.stage == "tissue":
        from .tissue_stage import TissueStage

        return TissueStage(cfg, rank)
    if cfg.stage == "contrast":
        from .contrast_stage import ContrastStage

        return ContrastStage(cfg, rank)
    raise ValueError(f"unknown stage {cfg.stage!r}")
