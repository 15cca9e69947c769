"""The training loop: flat and readable, single-process or data-parallel under torchrun.

Checkpoints are plain dicts (``model``, ``optimizer``, ``step``, ``config``, ``card``)
written with ``torch.save`` and read back with ``torch.load(weights_only=True)``. Under
``torchrun`` every process draws its own batches (seed + rank), gradients are averaged
by DistributedDataParallel (gloo on CPU, NCCL on GPU), and rank 0 writes the files.
SIGTERM or Ctrl-C stops a run after the step in progress, with a checkpoint
(:class:`TrainingStopped`). A loss that is not finite (NaN or infinite: a learning rate far
too high, say) stops a run at that step without writing its weights
(:class:`TrainingDiverged`), so the last checkpoint keeps the last good ones. A resumed run
draws its batches afresh from the step it resumes at (seed, rank and that step), not those
an unbroken run would have gone on to:
resuming one checkpoint twice trains alike, but a run stopped and resumed differs from
one that never stopped.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from ..devices import choose_device, describe_device
from .config import TrainConfig, with_introduced
from .tasks import build_stage

CHECKPOINT = "checkpoint.pt"


def _distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank), all 0/1/0 outside torchrun."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


def process_rank() -> int:
    """This process's rank among data-parallel workers (0 outside torchrun)."""
    return _distributed()[0]


def _setup(cfg: TrainConfig):
    rank, world, local = _distributed()
    device = choose_device(cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    return rank, world, device


def _lr_at(cfg: TrainConfig, step: int) -> float:
    if cfg.lr_final_fraction >= 1.0:
        return cfg.lr
    progress = min(1.0, step / cfg.steps)
    floor = cfg.lr * cfg.lr_final_fraction
    return floor + 0.5 * (cfg.lr - floor) * (1 + math.cos(math.pi * progress))


def _to_device(batch: dict, device) -> dict:
    return {k: torch.as_tensor(np.ascontiguousarray(v)).to(device, non_blocking=True) for k, v in batch.items()}


def train(cfg: TrainConfig, resume: bool = False, quiet: bool = False) -> Path:
    """Run (or resume) a training run; returns the path of the final checkpoint."""
    started = time.time()  # a session's time counts its data and network set-up too
    out = Path(cfg.out)
    _refuse_a_file_as_run_folder(out)
    rank, world, device = _setup(cfg)
    if resume and (out / CHECKPOINT).is_file():  # refused, or found done, before its data are made
        done = _check_resume(out / CHECKPOINT, cfg)
        if done >= cfg.steps:  # resumed at its last step: nothing to train, nothing rewritten
            if rank == 0:
                print(f"{out / CHECKPOINT} is at step {done} already: nothing to train")
            _end_processes(world)
            return out / CHECKPOINT
    initial = None
    if cfg.init and not (resume and (out / CHECKPOINT).is_file()):
        from ..weights import load_weights

        initial, _ = load_weights(cfg.init)  # a missing or damaged file said before the data are made
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    stage = build_stage(cfg, rank)
    model = stage.model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    start, carried = 0, {}
    if resume and (out / CHECKPOINT).is_file():
        start, carried = _restore(out / CHECKPOINT, model, optimizer, device, world, show=rank == 0)
        if hasattr(stage.batches, "skip"):
            stage.batches.skip(start)  # a source that counts its own steps moves past the trained ones
    elif initial is not None:
        _initialize(cfg.init, initial, model, show=rank == 0)
    if resume and not start and rank == 0:
        print(f"--resume: no checkpoint in {out}; starting the run")
    module = model
    if world > 1:
        module = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    rng = np.random.default_rng([cfg.seed, rank, start])
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if cfg.amp and device.type == "cuda"
                else nullcontext())
    show = rank == 0 and not quiet
    if show:
        print(f"training {cfg.name}: stage {cfg.stage}, {sum(p.numel() for p in params):,} trainable "
              f"parameters, {world} process(es) on {describe_device(device)}, steps {start}->{cfg.steps}")
    bar = _progress(cfg, start, show)
    getattr(stage, "train_mode", model.train)()
    sessions = _Sessions(world, carried, started)
    stop, done = _StopRequest(), start
    saved = start if start else None  # the step of the last checkpoint written in this run folder
    try:
        for step in range(start, cfg.steps):
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(cfg, step)
            batch = _to_device(stage.batches.next(rng, cfg.batch_size), device)
            loss = _step(stage, module, optimizer, batch, autocast)
            loss = _mean_loss(loss, step + 1, world, device, out / CHECKPOINT, saved)
            sessions.losses.append(loss)
            if bar is not None:
                bar.update(1)
                if (step + 1) % cfg.log_every == 0:
                    bar.set_postfix(loss=f"{np.mean(sessions.losses[-cfg.log_every:]):.5f}")
            done = step + 1
            stopping = stop.agreed(world, device)
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps or stopping:
                _refuse_non_finite_weights(model, step + 1, out / CHECKPOINT, saved)
                if rank == 0:
                    _save(out / CHECKPOINT, model, optimizer, step + 1, cfg, stage, sessions)
                saved = step + 1
            if stopping:
                break
    finally:
        stop.restore()
        if bar is not None:
            bar.close()
    _record_rank_digest(out, rank, world, model)
    _end_processes(world)
    if stop.why is not None and done < cfg.steps:
        raise TrainingStopped(out / CHECKPOINT, done, cfg.steps, stop.why)
    return out / CHECKPOINT


def _step(stage, module, optimizer, batch: dict, autocast) -> float:
    """One optimizer step on ``batch``; its loss."""
    with autocast:
        loss = stage.loss(module, batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


class TrainingDiverged(ValueError):
    """A run whose loss or weights stopped being finite: stopped at that step, its weights
    not written (the run folder's checkpoint, if any, keeps the last good ones)."""


def _diverged(what: str, step: int, checkpoint: Path, saved: int | None) -> TrainingDiverged:
    kept = (f"{checkpoint} keeps the weights of step {saved}" if saved is not None
            else "no checkpoint was written")
    return TrainingDiverged(f"{what} at step {step}: training stopped without saving these weights ({kept}); "
                            "lower lr, or check the data")


def _mean_loss(loss: float, step: int, world: int, device, checkpoint: Path, saved: int | None) -> float:
    """The step's loss averaged over the processes (under torchrun each has its own batch:
    the loss logged and recorded in the card is all of theirs, in one collective), or a
    :class:`TrainingDiverged` naming ``step`` where it is not finite on any of them."""
    bad = not math.isfinite(loss)
    if world > 1:
        both = torch.tensor([float(bad), 0.0 if bad else loss], device=device, dtype=torch.float32)
        torch.distributed.all_reduce(both, op=torch.distributed.ReduceOp.SUM)
        bad, mean = bool(both[0].item() > 0), float(both[1].item()) / world
        loss = loss if bad else mean
    if bad:
        shown = f"the loss is {loss}" if not math.isfinite(loss) else "another process's loss is not finite"
        raise _diverged(shown, step, checkpoint, saved)
    return loss


def _refuse_non_finite_weights(model, step: int, checkpoint: Path, saved: int | None) -> None:
    """A :class:`TrainingDiverged` where the weights about to be saved at ``step`` hold a
    value that is not finite (every process holds the same weights, so all stop alike)."""
    bad = [name for name, t in model.state_dict().items()
           if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise _diverged(f"the weights are not finite ({bad[0]}{' and others' if len(bad) > 1 else ''})",
                        step, checkpoint, saved)


def _refuse_a_file_as_run_folder(out: Path) -> None:
    """A run folder (``out``) that is, or lies inside, a file is a one-line ValueError,
    before anything is loaded or trained."""
    for part in (out, *out.parents):
        if part.exists():
            if not part.is_dir():
                raise ValueError(f"out: {part} is a file; the run folder (--out) must be a folder"
                                 + (f" ({out} lies inside it)" if part != out else ""))
            return


class TrainingStopped(Exception):
    """A run stopped early on request (SIGTERM, Ctrl-C), its checkpoint written."""

    def __init__(self, checkpoint: Path, step: int, steps: int, why: str):
        self.checkpoint, self.step, self.why = checkpoint, step, why
        super().__init__(f"stopped ({why}) after step {step} of {steps}; checkpoint {checkpoint}: "
                         f"--resume continues from it")


class _StopRequest:
    """SIGTERM (``timeout``, a batch scheduler's notice) or Ctrl-C asks the loop to stop:
    the step in progress finishes, a checkpoint is written, and ``--resume`` continues
    from it (its batches drawn afresh from that step: see the module's note). Under
    torchrun every process stops after the same step: each step's flag is the maximum over
    the ranks."""

    def __init__(self):
        import signal
        import threading

        self.why = None
        self._before = {}
        if threading.current_thread() is not threading.main_thread():
            return  # handlers can only be set from the main thread: no graceful stop there
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._before[sig] = signal.signal(sig, self._ask)

    def _ask(self, signum, frame) -> None:
        import signal

        self.why = signal.Signals(signum).name

    def agreed(self, world: int, device) -> bool:
        if world == 1:
            return self.why is not None
        flag = torch.tensor([float(self.why is not None)], device=device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        if flag.item() and self.why is None:
            self.why = "another process was asked"
        return bool(flag.item())

    def restore(self) -> None:
        """The handlers as they were before the run."""
        import signal

        for sig, handler in self._before.items():
            signal.signal(sig, handler)
        self._before = {}


def weights_digest(model) -> str:
    """sha256 over a model's parameters (not BatchNorm statistics, which stay per-process)."""
    import hashlib

    digest = hashlib.sha256()
    for key, tensor in model.named_parameters():
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _record_rank_digest(out: Path, rank: int, world: int, model) -> None:
    """Under torchrun each process records its final weights' digest (``rankN.sha256``):
    ranks in step must agree. The first process removes the digests of processes this
    session did not have (all of them in a single process), which describe older weights."""
    if rank == 0:
        for path in out.glob("rank*.sha256"):
            number = path.name[len("rank"):-len(".sha256")]
            if world == 1 or not number.isdigit() or int(number) >= world:
                path.unlink(missing_ok=True)
    if world > 1:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"rank{rank}.sha256").write_text(weights_digest(model) + "\n")


def _progress(cfg: TrainConfig, start: int, show: bool):
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=cfg.steps, initial=start, desc=cfg.name, unit="step", dynamic_ncols=True)


class _Sessions:
    """What a run's checkpoint carries from one session (start or ``--resume``) to the
    next: the latest steps' losses, the training time before this session, and the number
    of processes of every session (the batch per step is ``batch_size`` times it).

    The card records the time over every session and this session's (``train_seconds``,
    ``train_seconds_this_session``: the wall time of :func:`train`, from before its data and
    network are set up, subjects loaded and datasets simulated included), and likewise the
    processes: ``world_sizes``, one count per session in order, and ``world_size`` and
    ``effective_batch_size``, this session's."""

    KEPT_LOSSES = 50

    def __init__(self, world: int, carried: dict, started: float):
        self.world = world
        self.losses = [float(v) for v in carried.get("recent_losses", [])]
        self.seconds_before = float(carried.get("train_seconds", 0.0))
        self.worlds_before = _worlds_before(carried)
        self.started = started

    def card(self, cfg: TrainConfig) -> dict:
        this = round(time.time() - self.started, 1)
        recent = self.losses[-self.KEPT_LOSSES:]
        return {"final_loss": float(np.mean(recent)) if recent else None,
                "train_seconds_this_session": this, "train_seconds": round(self.seconds_before + this, 1),
                "world_size": self.world, "world_sizes": [*self.worlds_before, self.world],
                "effective_batch_size": cfg.batch_size * self.world}

    def carried(self, card: dict) -> dict:
        return {"recent_losses": self.losses[-self.KEPT_LOSSES:], "train_seconds": card["train_seconds"],
                "world_size": self.world, "world_sizes": card["world_sizes"]}


def _worlds_before(carried: dict) -> list[int]:
    """The process count of each earlier session (a checkpoint from before ``world_sizes``
    were kept: its last session's)."""
    if "world_sizes" in carried:
        return [int(n) for n in carried["world_sizes"]]
    return [int(carried["world_size"])] if "world_size" in carried else []


def _save(path: Path, model, optimizer, step: int, cfg: TrainConfig, stage, sessions: _Sessions) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    card = dict(stage.card(), name=cfg.name, steps=step, config=cfg.to_dict(), **sessions.card(cfg))
    blob = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
            "config": cfg.to_dict(), "card": card, "sessions": sessions.carried(card)}
    tmp = path.with_name(path.name + ".part")
    torch.save(blob, tmp)
    os.replace(tmp, path)


def _initialize(source: str, state: dict, model, show: bool = True) -> None:
    """Start from the weights ``state`` that ``source`` names (a checkpoint or a weight
    set): fine-tuning."""
    from ..weights import WeightsError, does_not_fit

    loader = getattr(model, "load_initial_state", None)  # a network that takes another's body
    try:
        missing, unexpected = loader(state) if loader else model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # tensors of the same names but other shapes (another width, conditioning)
        raise does_not_fit(source, exc) from None
    if missing or unexpected:
        raise WeightsError(f"{source}: weights do not fit this network ({len(missing)} missing, "
                           f"{len(unexpected)} unexpected tensors)")
    if show:
        print(f"starting from the weights of {source}")


def _end_processes(world: int) -> None:
    """Under torchrun, every process waits for the others, then leaves their group."""
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def _check_resume(path: Path, cfg: TrainConfig) -> int:
    """The checks of a resume that need only the checkpoint (:func:`_refuse_other_settings`,
    :func:`_refuse_fewer_steps`), made before a run's subjects are loaded and its data made
    (half a minute for the generalist's recipes); the step it is at."""
    blob = read_checkpoint(path)
    _refuse_other_settings(path, with_introduced(blob.get("config") or {}), cfg.to_dict())
    _refuse_fewer_steps(path, int(blob["step"]), cfg.steps)
    return int(blob["step"])


def _refuse_other_settings(path: Path, recorded: dict, now: dict) -> None:
    """A resume whose settings differ from the checkpoint's in any but
    :data:`RESUME_MAY_CHANGE` is a one-line ValueError naming each with its recorded value
    (settings one of the two configs lacks, from another version, are not compared; one
    added since the checkpoint was written is compared at the value it had then,
    :data:`~napari_mr_reparam.training.config.INTRODUCED`)."""
    changed = [change for key in sorted(set(recorded) & set(now))
               if key not in RESUME_MAY_CHANGE and _same(recorded[key]) != _same(now[key])
               for change in _changes(key, recorded[key], now[key])]
    if changed:
        raise ValueError(f"{path}: that run has {'; '.join(changed)}; resume it with its own recipe and "
                         f"options, or start a new run from its weights in another folder (--set "
                         f"'init=\"{path}\"' --out NEW_FOLDER), or in its place (--overwrite)")


def _changes(key: str, recorded, now) -> list[str]:
    """How a setting differs, in words: a table (``acquisition``) by its entries that differ."""
    if isinstance(recorded, dict) and isinstance(now, dict):
        return [f"{key}.{entry} = {recorded.get(entry)!r}, this one {now.get(entry)!r}"
                for entry in sorted(set(recorded) | set(now)) if _same(recorded.get(entry)) != _same(now.get(entry))]
    return [f"{key} = {recorded!r}, this one {now!r}"]


def _refuse_fewer_steps(path: Path, step: int, steps: int) -> None:
    """A resume asked to stop before the step its checkpoint is at is a one-line ValueError."""
    if step > steps:
        raise ValueError(f"{path}: that run is at step {step}, past steps = {steps}; give more steps to "
                         "continue it, or --overwrite to start again")


def _same(value):
    return tuple(value) if isinstance(value, list) else value


#: Settings a resumed run may give otherwise than the run it continues: the steps to
#: train to, and what does not change what is trained (the weight-set name, the run folder
#: it was moved to, the device and CPU threads, the processes that make batches or
#: subjects, which change which examples are drawn but not what they are drawn from, as a
#: resume itself does, and how often it logs and writes checkpoints). Every other setting
#: (the network, the data, the loss, the optimizer, the seed, the starting weights) must
#: be the run's own.
RESUME_MAY_CHANGE = frozenset({"steps", "name", "out", "device", "threads", "loader_workers",
                               "subject_workers", "log_every", "checkpoint_every"})


def _restore(path: Path, model, optimizer, device, world: int = 1, show: bool = True) -> tuple[int, dict]:
    """Load the checkpoint at ``path`` (checked against the run's settings by
    :func:`_check_resume`) into ``model`` and ``optimizer``; returns its step and what the
    run carries over sessions (:class:`_Sessions`' fields)."""
    blob = read_checkpoint(path, device)
    step = int(blob["step"])
    model.load_state_dict(blob["model"])
    optimizer.load_state_dict(blob["optimizer"])
    carried = blob.get("sessions") or {}
    before, batch = int(carried.get("world_size", world)), int((blob.get("config") or {}).get("batch_size", 1))
    note = (f" (it ran on {before} process(es), {before * batch} images a step; now {world}, "
            f"{world * batch} a step)" if before != world else "")
    if show:
        print(f"resumed from {path} at step {step}{note}")
    return step, carried


def read_checkpoint(path: Path, device="cpu") -> dict:
    """A run's checkpoint (``model``, ``optimizer``, ``step``, ...), read as every
    checkpoint is (:func:`~napari_mr_reparam.weights.read_checkpoint`: Python objects
    refused, never unpickled; a damaged file one line naming it); one that is no training
    run's is a one-line ValueError."""
    from ..weights import read_checkpoint as read_safely

    blob = read_safely(Path(path), map_location=device, name=str(path))
    if not (isinstance(blob, dict) and {"model", "optimizer", "step"} <= set(blob)):
        raise ValueError(f"{path}: not a training checkpoint (no model, optimizer and step)")
    return blob
