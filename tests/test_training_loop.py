"""The training loop (training/loop.py): a frozen encoder stays frozen, resume continues,
and data-parallel ranks end with the same weights."""

import dataclasses
import os
import shutil
import subprocess
import sys

import pytest
import torch

from helpers import tiny_train_config

from napari_mr_reparam.training.loop import train


def test_paramnet_keeps_the_autoencoders_encoder_and_resumes(tiny_paramnet_run, tmp_path):
    cfg, ae, ckpt = tiny_paramnet_run
    assert ae.is_file()
    blob = torch.load(ckpt, weights_only=True)
    assert blob["step"] == 3 and blob["card"]["task"] == "d2p"
    # the encoder stayed frozen: equal to the autoencoder's
    ae_state = torch.load(ae, weights_only=True)["model"]
    for key, value in blob["model"].items():
        if key.startswith("encoder."):
            assert torch.equal(value, ae_state[key]), key
    # resume continues from the checkpoint (on a copy of the run)
    shutil.copytree(ckpt.parent, tmp_path / "run")
    resumed = dataclasses.replace(cfg, steps=4, out=str(tmp_path / "run"))
    train(resumed, resume=True, quiet=True)
    after = torch.load(tmp_path / "run" / ckpt.name, weights_only=True)
    assert after["step"] == 4
    # the card's loss and time span the sessions: three steps' losses carried, one added
    assert after["sessions"]["recent_losses"][:3] == blob["sessions"]["recent_losses"]
    assert len(after["sessions"]["recent_losses"]) == 4
    card = after["card"]
    assert card["train_seconds"] >= blob["card"]["train_seconds"] + card["train_seconds_this_session"] - 0.1
    assert card["world_size"] == 1 and card["effective_batch_size"] == cfg.batch_size
    # with settings that shape what a step draws changed, it is refused in one line
    import pytest

    with pytest.raises(ValueError, match=r"that run has batch_size = 2, this one 3; resume it with its own"):
        train(dataclasses.replace(resumed, steps=5, batch_size=3), resume=True, quiet=True)
    assert torch.load(tmp_path / "run" / ckpt.name, weights_only=True)["step"] == 4


def test_two_process_data_parallel_ranks_agree(tmp_path, mrilab_spec, tiny_paramnet_run):
    _, ae, _ = tiny_paramnet_run
    recipe = tmp_path / "ddp.toml"
    out = tmp_path / "ddp"
    recipe.write_text(
        f'stage = "paramnet"\ntask = "p2p"\nwidth = 0.0625\npairs = 8\nslices = 4\nbatch_size = 2\n'
        f'steps = 3\nthreads = 1\ndevice = "cpu"\nphantoms = ["{mrilab_spec}"]\nout = "{out}"\n'
        f'autoencoder = "{ae}"\n')
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "napari_mr_reparam.training.cli", "paramnet", "--config", str(recipe)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    digests = [(out / f"rank{r}.sha256").read_text() for r in (0, 1)]
    assert digests[0] == digests[1]
    blob = torch.load(out / "checkpoint.pt", weights_only=True)
    assert blob["step"] == 3 and blob["card"]["world_size"] == 2 and blob["card"]["effective_batch_size"] == 4
    assert blob["card"]["world_sizes"] == [2]
    # resumed under torchrun, the run says so once, not once per process
    result = subprocess.run([*cmd, "--resume", "--steps", "4"], env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("resumed from") == 1
    blob = torch.load(out / "checkpoint.pt", weights_only=True)
    assert blob["card"]["world_sizes"] == [2, 2]
    # an error is said once, by the first process
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0 and result.stderr.count("checkpoint.pt exists") == 1, result.stderr[-2000:]
    # the loss recorded is both processes': rank 0 alone draws what one process of the same seed draws
    from napari_mr_reparam.training.cli import main

    single = tmp_path / "single"
    assert main(["paramnet", "--config", str(recipe), "--out", str(single), "--steps", "1"]) == 0
    first = torch.load(single / "checkpoint.pt", weights_only=True)["sessions"]["recent_losses"][0]
    assert blob["sessions"]["recent_losses"][0] != pytest.approx(first, rel=1e-6)


def test_sigterm_finishes_the_step_writes_a_checkpoint_and_resume_goes_on(tiny_paramnet_run, tmp_path,
                                                                          monkeypatch):
    import signal

    import pytest

    from napari_mr_reparam.training import loop

    cfg, _, _ = tiny_paramnet_run
    cfg = dataclasses.replace(cfg, steps=6, checkpoint_every=100, out=str(tmp_path / "run"))
    build = loop.build_stage

    def loss_then_stop(call, real):
        if call == 2:  # as `timeout` or a batch scheduler sends it, mid-step
            os.kill(os.getpid(), signal.SIGTERM)
        return real

    _with_stage_loss(monkeypatch, loss_then_stop)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(loop.TrainingStopped, match="stopped \\(SIGTERM\\) after step 2 of 6") as stopped:
        train(cfg, quiet=True)
    assert torch.load(stopped.value.checkpoint, weights_only=True)["step"] == 2  # not a checkpoint step
    assert signal.getsignal(signal.SIGTERM) is before  # the process's handler back
    monkeypatch.setattr(loop, "build_stage", build)
    train(cfg, resume=True, quiet=True)
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["step"] == 6


def test_starting_weights_of_other_shapes_are_one_line_naming_the_first_tensor(tmp_path):
    import pytest

    from napari_mr_reparam import weights
    from napari_mr_reparam.models.physics_net import PhysicsNet
    from napari_mr_reparam.training.loop import _initialize

    card = {"arch": "physics", "task": "p2p", "width": 0.03, "base": 4, "depth": 3, "name": "mine"}
    mine = weights.save_weights(PhysicsNet(base=4, depth=3, task="p2p").state_dict(), card,
                                tmp_path / "mine.safetensors")
    other = PhysicsNet(base=4, depth=3, task="p2p", input_sequences=True)  # its conditioning reads more
    with pytest.raises(weights.WeightsError, match=r"weights do not fit this network \(tensors of other "
                                                   r"shapes: size mismatch for \S+\)$"):
        _initialize(str(mine), weights.load_weights(str(mine))[0], other)


def test_missing_starting_weights_are_said_before_any_data_are_made(tmp_path, mrilab_spec, monkeypatch):
    import pytest

    from napari_mr_reparam.training import loop

    cfg = tiny_train_config(tmp_path / "run", mrilab_spec, steps=2, init=str(tmp_path / "none.pt"))
    monkeypatch.setattr(loop, "build_stage", lambda *a: pytest.fail("the run's data were made"))
    with pytest.raises(Exception, match="none.pt"):
        loop.train(cfg, quiet=True)


def _with_stage_loss(monkeypatch, change):
    """Train with the stage's loss passed through ``change(call, loss)`` (``call``: 1 for
    the first step's, 2 for the second's ...)."""
    from napari_mr_reparam.training import loop, tasks

    build, calls = tasks.build_stage, []

    def build_changed(*args):
        stage = build(*args)
        loss = stage.loss

        def changed(module, batch):
            calls.append(1)
            return change(len(calls), loss(module, batch))
        stage.loss = changed
        return stage

    monkeypatch.setattr(loop, "build_stage", build_changed)


def _stage_whose_loss_turns(monkeypatch, at_call: int, value: float):
    """Make the stage's loss ``value`` (NaN, say) from its ``at_call``-th step on."""
    _with_stage_loss(monkeypatch, lambda call, real: real * value if call >= at_call else real)


def test_a_loss_that_is_not_finite_stops_the_run_naming_the_step_and_keeps_the_last_checkpoint(
        tiny_paramnet_run, tmp_path, monkeypatch):
    import pytest

    from napari_mr_reparam.training import loop

    cfg, _, _ = tiny_paramnet_run
    cfg = dataclasses.replace(cfg, steps=6, checkpoint_every=2, out=str(tmp_path / "run"))
    _stage_whose_loss_turns(monkeypatch, 3, float("nan"))
    with pytest.raises(loop.TrainingDiverged, match=r"^the loss is nan at step 3: training stopped without saving "
                                                    r"these weights \(.*checkpoint\.pt keeps the weights of step 2\); "
                                                    r"lower lr, or check the data$"):
        train(cfg, quiet=True)
    blob = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert blob["step"] == 2 and all(torch.isfinite(v).all() for v in blob["model"].values() if v.is_floating_point())
    _stage_whose_loss_turns(monkeypatch, 1, float("inf"))
    with pytest.raises(loop.TrainingDiverged, match=r"the loss is inf at step 1: .*no checkpoint was written"):
        train(dataclasses.replace(cfg, out=str(tmp_path / "fresh")), quiet=True)
    assert not (tmp_path / "fresh" / "checkpoint.pt").exists()


def test_weights_that_are_not_finite_are_never_saved(tiny_paramnet_run, tmp_path, monkeypatch):
    import pytest

    from napari_mr_reparam.training import loop

    cfg, _, _ = tiny_paramnet_run
    cfg = dataclasses.replace(cfg, steps=2, checkpoint_every=1, out=str(tmp_path / "run"))
    step = loop._step

    def step_then_spoil(stage, module, optimizer, batch, autocast):
        loss = step(stage, module, optimizer, batch, autocast)
        with torch.no_grad():
            next(p for p in module.parameters() if p.requires_grad).fill_(float("nan"))
        return loss

    monkeypatch.setattr(loop, "_step", step_then_spoil)
    with pytest.raises(loop.TrainingDiverged, match=r"^the weights are not finite \(\S+.*\) at step 1: .*no "
                                                    r"checkpoint was written"):
        train(cfg, quiet=True)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_a_run_folder_that_is_a_file_is_refused_before_anything_is_built(tiny_paramnet_run, tmp_path, monkeypatch):
    import pytest

    from napari_mr_reparam.training import loop

    cfg, _, _ = tiny_paramnet_run
    monkeypatch.setattr(loop, "build_stage", lambda *a: pytest.fail("the stage was built"))
    (tmp_path / "afile").write_text("mine")
    for out, words in ((tmp_path / "afile", r"afile is a file; the run folder \(--out\) must be a folder$"),
                       (tmp_path / "afile" / "run", r"afile is a file; .* \(.*afile/run lies inside it\)$")):
        with pytest.raises(ValueError, match=f"^out: .*{words}"):
            train(dataclasses.replace(cfg, out=str(out)), quiet=True)
    assert (tmp_path / "afile").read_text() == "mine"
