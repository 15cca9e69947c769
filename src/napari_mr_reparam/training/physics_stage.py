"""Training the physics-informed model: maps once per input, K rendered targets each.

Because the maps are computed once per input, each input is scored against several
target acquisitions per step (``TARGETS_PER_INPUT``) at little extra cost. Targets come
from the same sources as the paper models' (the fixed protocol datasets, where the
targets are that slice's other training images, or the randomized stream), so the
comparison between the models is like for like.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .. import DEFAULT_TE_MS, DEFAULT_TR_MS
from ..models.physics_net import NETWORKS, VARIANT_ARCH
from .config import TrainConfig
from .data import load_phantom, protocol_datasets

TARGETS_PER_INPUT = 4


class ProtocolTargets:
    """Inputs with K targets of the same slice from the train part of each dataset."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.datasets = protocol_datasets(cfg)
        self.by_slice = [(d, s, np.flatnonzero(d.samples(cfg.split, "train")[1] == s))
                         for d in self.datasets for s in range(d.n_slices)]
        self.by_slice = [(d, s, d.samples(cfg.split, "train")[0][idx]) for d, s, idx in self.by_slice if idx.size]

    def next(self, rng: np.random.Generator, batch_size: int) -> dict:
        rows = []
        for i in rng.integers(0, len(self.by_slice), batch_size):
            d, s, pairs = self.by_slice[i]
            chosen = rng.choice(pairs, TARGETS_PER_INPUT)
            if self.cfg.task == "d2p":
                image, te_in, tr_in = d.default_at(s), DEFAULT_TE_MS, DEFAULT_TR_MS
            else:
                q = int(rng.integers(d.n_pairs))
                image, te_in, tr_in = d.images_at(q, s), d.te_ms[q], d.tr_ms[q]
            rows.append({"input": image[None], "target": d.images_at(chosen, np.full(len(chosen), s)),
                         "input_te": np.float32(te_in), "input_tr": np.float32(tr_in),
                         "target_te": d.te_ms[chosen], "target_tr": d.tr_ms[chosen]})
        return {k: np.stack([r[k] for r in rows]).astype(np.float32) for k in rows[0]}


class StreamTargets:
    """Randomized subjects from the streaming sampler, K targets per input."""

    def __init__(self, cfg: TrainConfig, rank: int = 0):
        from ..datasets import StreamingSampler

        self.sampler = StreamingSampler([load_phantom(s) for s in cfg.phantoms], task=cfg.task,
                                        size=cfg.size, seed=cfg.seed * 1000 + rank,
                                        tables=["brainweb_1.5t", "mrilab", "3t"])

    def next(self, rng, batch_size: int) -> dict:
        return self.sampler.batch(batch_size, targets=TARGETS_PER_INPUT)


class PhysicsStage:
    """The quantitative-map network trained through the signal equation (``variant``
    ``maps``), or, for comparison, the same U-Net predicting images directly (``direct``)
    or the maps' render plus a learned correction (``hybrid``)."""

    def __init__(self, cfg: TrainConfig):
        import os

        self.cfg = cfg
        net = NETWORKS[VARIANT_ARCH[cfg.variant]]
        self.model = net(base=max(4, round(128 * cfg.width)), depth=cfg.depth, task=cfg.task,
                         work_size=cfg.work_size)
        rank = int(os.environ.get("RANK", 0))
        self.batches = StreamTargets(cfg, rank) if cfg.data == "stream" else ProtocolTargets(cfg)

    def loss(self, module, batch: dict) -> torch.Tensor:
        pred = module(batch["input"] * 2 - 1, batch["target_te"], batch["target_tr"],
                      batch["input_te"], batch["input_tr"])
        return F.mse_loss(pred, batch["target"] * 2 - 1)

    def card(self) -> dict:
        return {"arch": VARIANT_ARCH[self.cfg.variant], "task": self.cfg.task, "width": self.cfg.width,
                "base": self.model.base, "depth": self.model.depth, "work_size": self.model.work_size}
