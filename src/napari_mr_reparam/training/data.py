"""Batches for training: from fixed protocol datasets, natural images, or a stream.

One entry point, :func:`training_batches`, gives each stage its source for the data kind
its recipe names (``data``: ``paper`` or ``stream``); the autoencoder's
:class:`ReconstructionBatches` puts natural images before them. Every source returns
dicts of float32 numpy arrays: ``input`` (B, 1, S, S) and ``target`` images in [0, 1] and
``input_te``, ``input_tr``, ``target_te``, ``target_tr`` in milliseconds. For the paper
models a target is (B, 1, S, S) and its times (B,); the physics stage scores
``targets_per_input`` targets per input, (B, K, S, S) and (B, K), read on the phantom's
own grid with ``native_input`` and beside the phantom's maps (``maps``, B, 3, S, S) with
``map_weight``. The training loop maps images to the network's [-1, 1].
"""

from __future__ import annotations

import numpy as np
import torch

from .. import DEFAULT_TE_MS, DEFAULT_TR_MS
from ..datasets import ProtocolDataset, build_protocol_dataset, stack_padded
from ..phantoms import load_phantom
from .config import TrainConfig


def training_batches(cfg: TrainConfig, rank: int = 0):
    """The batch source of ``cfg.data`` (``paper``: fixed datasets, or ``stream``) as
    ``cfg.stage`` draws it, for data-parallel process ``rank``."""
    if cfg.data == "stream":
        return WorkerBatches(cfg, rank) if cfg.loader_workers > 0 else StreamBatches(cfg, rank)
    if cfg.data == "paper":
        return ProtocolTargets(cfg) if cfg.stage == "physics" else ProtocolBatches(cfg)
    raise ValueError(f"unknown data source {cfg.data!r}; use 'paper' or 'stream'")


def protocol_datasets(cfg: TrainConfig) -> list[ProtocolDataset]:
    """The paper-protocol dataset of every phantom in ``cfg.phantoms``, as configured."""
    return [
        build_protocol_dataset(load_phantom(spec), seed=cfg.dataset_seed, pairs=cfg.pairs,
                               slices=cfg.slices, size=cfg.size)
        for spec in cfg.phantoms
    ]


class ProtocolBatches:
    """Random batches from the train part of ``cfg.split`` of each protocol dataset.

    Default-to-Param inputs are the default-acquisition image of the target's slice;
    Param-to-Param inputs are the same slice at another pair, drawn afresh each time.
    """

    def __init__(self, cfg: TrainConfig, datasets: list[ProtocolDataset] | None = None):
        self.cfg = cfg
        self.datasets = datasets if datasets is not None else protocol_datasets(cfg)
        self.index = [(d, *idx) for d in self.datasets for idx in zip(*d.samples(cfg.split, "train"))]
        if not self.index:
            raise ValueError(_no_samples(cfg))

    def __len__(self) -> int:
        return len(self.index)

    def next(self, rng: np.random.Generator, batch_size: int) -> dict[str, np.ndarray]:
        picks = [self.index[i] for i in rng.integers(0, len(self.index), batch_size)]
        rows = [self._example(rng, d, p, s) for d, p, s in picks]
        return {k: np.stack([r[k] for r in rows]) for k in rows[0]}

    def _example(self, rng, d: ProtocolDataset, p: int, s: int) -> dict:
        if self.cfg.task == "d2p":
            image, te_in, tr_in = d.default_at(s), DEFAULT_TE_MS, DEFAULT_TR_MS
        else:
            q = int((p + rng.integers(1, d.n_pairs)) % d.n_pairs)
            image, te_in, tr_in = d.images_at(q, s), d.te_ms[q], d.tr_ms[q]
        return _example(image, d.images_at(p, s), te_in, tr_in, d.te_ms[p], d.tr_ms[p])


class ProtocolTargets:
    """The physics stage's protocol batches: per input, ``targets_per_input`` targets of
    the same slice from the train part of each dataset.

    Unlike :class:`ProtocolBatches` a slice is drawn first (each with train samples alike),
    and a Param-to-Param input is the slice at any pair, which may be one of its targets.
    """

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.datasets = protocol_datasets(cfg)
        self.truth = {}  # dataset index -> the phantom's maps of its slices, (slices, 3, h, w)
        if cfg.map_weight > 0:
            for i, spec in enumerate(cfg.phantoms):
                ph, idx = load_phantom(spec), self.datasets[i].slice_index
                self.truth[id(self.datasets[i])] = np.stack([ph.pd[idx], ph.t1[idx], ph.t2[idx]], 1)
        self.by_slice = [(d, s, np.flatnonzero(d.samples(cfg.split, "train")[1] == s))
                         for d in self.datasets for s in range(d.n_slices)]
        self.by_slice = [(d, s, d.samples(cfg.split, "train")[0][idx]) for d, s, idx in self.by_slice if idx.size]
        if not self.by_slice:
            raise ValueError(_no_samples(cfg))

    def next(self, rng: np.random.Generator, batch_size: int) -> dict:
        rows = []
        for i in rng.integers(0, len(self.by_slice), batch_size):
            d, s, pairs = self.by_slice[i]
            chosen = rng.choice(pairs, self.cfg.targets_per_input)
            native = self.cfg.native_input
            if self.cfg.task == "d2p":
                image, te_in, tr_in = d.default_at(s, native), DEFAULT_TE_MS, DEFAULT_TR_MS
            else:
                q = int(rng.integers(d.n_pairs))
                image, te_in, tr_in = d.images_at(q, s, native), d.te_ms[q], d.tr_ms[q]
            rows.append({"input": image[None],
                         "target": d.images_at(chosen, np.full(len(chosen), s), native),
                         "input_te": np.float32(te_in), "input_tr": np.float32(tr_in),
                         "target_te": d.te_ms[chosen], "target_tr": d.tr_ms[chosen]})
            if self.truth:
                rows[-1]["maps"] = self.truth[id(d)][s]
        return {k: stack_padded([r[k] for r in rows]).astype(np.float32) for k in rows[0]}


class StreamBatches:
    """Batches from a :class:`~napari_mr_reparam.datasets.StreamingSampler` over
    ``cfg.phantoms``, drawn with the recipe's stream options.

    Each process seeds its own stream (``cfg.seed`` and the rank), so data-parallel
    workers see different subjects. The physics stage's batches hold
    ``targets_per_input`` targets per input, on the subject's own grid with
    ``native_input`` and with its maps with ``map_weight``.
    """

    def __init__(self, cfg: TrainConfig, rank: int = 0, phantoms=None, options=None):
        from ..datasets import StreamingSampler

        per_input = cfg.stage in ("physics", "tissue", "contrast")  # several targets, read on the subject's grid
        self.targets = cfg.targets_per_input if per_input else 1
        phantoms = [load_phantom(s) for s in cfg.phantoms] if phantoms is None else phantoms
        self.seed = cfg.seed * 1000 + rank
        self.sampler = StreamingSampler(phantoms, task=cfg.task,
                                        size=None if per_input and cfg.native_input else cfg.size,
                                        seed=self.seed, with_maps=cfg.map_weight > 0,
                                        options=options or cfg.stream_options(),
                                        with_classes=cfg.stage == "tissue")

    def skip(self, steps: int) -> None:
        """A resumed run draws examples it has not drawn: the stream's generator takes the
        step it resumes at (the subjects it starts with are a fresh run's)."""
        if steps:
            self.sampler.rng = np.random.default_rng([self.seed, int(steps)])

    def next(self, rng: np.random.Generator, batch_size: int) -> dict[str, np.ndarray]:
        return self.sampler.batch(batch_size, targets=self.targets)


class WorkerBatches(torch.utils.data.IterableDataset):
    """The stream's batches made ahead in ``cfg.loader_workers`` processes (a torch
    ``DataLoader``), for a network fast enough (on a GPU) to outrun one process's
    simulator.

    The phantoms are loaded once, here, and shared with the workers (fork where Linux has
    it). Worker ``w`` of process ``rank`` is the stream of ``rank * 1000 + w + 1`` with
    subjects drawn inline (a loader's workers start no processes of their own); batches
    come round-robin over the workers, so a run is the same for the same worker count.
    """

    def __init__(self, cfg: TrainConfig, rank: int = 0):
        import dataclasses

        self.cfg, self.rank = cfg, rank
        self.phantoms = [load_phantom(s) for s in cfg.phantoms]
        self.options = dataclasses.replace(cfg.stream_options(), subject_workers=0)
        self._batches = None
        self.start = 0

    def skip(self, steps: int) -> None:
        """As :meth:`StreamBatches.skip`, in every worker (before the first batch)."""
        self.start = int(steps)

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        torch.set_num_threads(1)
        source = StreamBatches(self.cfg, self.rank * 1000 + worker + 1, self.phantoms, self.options)
        source.skip(self.start)
        while True:
            yield source.next(None, self.cfg.batch_size)

    def next(self, rng: np.random.Generator, batch_size: int) -> dict:
        if batch_size != self.cfg.batch_size:
            raise ValueError(f"loader workers make batches of {self.cfg.batch_size}, not {batch_size}")
        if self._batches is None:
            from ..subject_source import process_context

            self._batches = iter(torch.utils.data.DataLoader(
                self, batch_size=None, num_workers=self.cfg.loader_workers, prefetch_factor=2,
                persistent_workers=True, multiprocessing_context=process_context()))
        return next(self._batches)


class ReconstructionBatches:
    """Autoencoder batches: natural images first (``natural_steps``), then MR slices."""

    def __init__(self, cfg: TrainConfig, rank: int = 0):
        from .natural import NaturalImages

        self.cfg = cfg
        self.natural = NaturalImages(cfg.size) if cfg.natural_steps > 0 else None
        self.mr = training_batches(cfg, rank)
        self.step = 0

    def skip(self, steps: int) -> None:
        """Move past ``steps`` already trained (a resumed run does not replay its
        natural-image phase)."""
        self.step += int(steps)

    def next(self, rng: np.random.Generator, batch_size: int) -> dict[str, np.ndarray]:
        natural = self.natural is not None and self.step < self.cfg.natural_steps
        self.step += 1
        if natural:
            images = self.natural.batch(rng, batch_size)
            return {"input": images, "target": images}
        batch = self.mr.next(rng, batch_size)
        return {"input": batch["target"], "target": batch["target"]}


def _no_samples(cfg: TrainConfig) -> str:
    return (f"the training split holds no samples: the train part of the {cfg.split} split of {cfg.pairs} "
            f"pairs x {cfg.slices} slices is empty; give more pairs or slices")


def _example(image, target, te_in, tr_in, te, tr) -> dict:
    return {
        "input": np.asarray(image, np.float32)[None], "target": np.asarray(target, np.float32)[None],
        "input_te": np.float32(te_in), "input_tr": np.float32(tr_in),
        "target_te": np.float32(te), "target_tr": np.float32(tr),
    }
