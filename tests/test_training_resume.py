"""Resuming a run (training/loop.py, training/cli.py): only a run's own settings and more
steps continue it, a damaged checkpoint is one line, the card spans the sessions, and
notices print once under torchrun."""

import dataclasses
import shutil

import pytest
import torch

from napari_mr_reparam.training.cli import main as train_main
from napari_mr_reparam.training.config import load_config
from napari_mr_reparam.training.loop import CHECKPOINT, train


@pytest.fixture(scope="module")
def recipe(tmp_path_factory, mrilab_spec, tiny_paramnet_run):
    """A tiny Param-Net recipe (4 steps, batch 2, the tiny autoencoder's encoder) and a run
    of it: (recipe, run folder)."""
    root = tmp_path_factory.mktemp("resume")
    path = root / "tiny.toml"
    path.write_text(f'stage = "paramnet"\ntask = "d2p"\nwidth = 0.0625\npairs = 8\nslices = 4\n'
                    f'batch_size = 2\nsteps = 4\nthreads = 1\ndevice = "cpu"\ncheckpoint_every = 2\n'
                    f'phantoms = ["{mrilab_spec}"]\nautoencoder = "{tiny_paramnet_run[1]}"\n')
    assert train_main(["paramnet", "--config", str(path), "--out", str(root / "run")]) == 0
    return path, root / "run"


@pytest.fixture
def run(recipe, tmp_path):
    """A copy of the recipe's 4-step run: (recipe, run folder)."""
    shutil.copytree(recipe[1], tmp_path / "run")
    return recipe[0], tmp_path / "run"


def _resume(recipe, out, *options) -> int:
    return train_main(["paramnet", "--config", str(recipe), "--out", str(out), "--resume", *options])


def test_resuming_with_fewer_steps_than_the_run_took_is_refused_writing_nothing(run, capsys):
    recipe, out = run
    before = (out / CHECKPOINT).read_bytes()
    capsys.readouterr()
    assert _resume(recipe, out, "--steps", "2") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "that run is at step 4" in err and "--overwrite" in err
    assert (out / CHECKPOINT).read_bytes() == before
    assert _resume(recipe, out, "--steps", "4") == 0  # at its steps already: nothing trained or rewritten
    assert "is at step 4 already: nothing to train" in capsys.readouterr().out
    assert (out / CHECKPOINT).read_bytes() == before


def test_resuming_with_other_data_or_loss_settings_is_refused_naming_their_recorded_values(run, capsys):
    recipe, out = run
    before = (out / CHECKPOINT).read_bytes()
    capsys.readouterr()
    assert _resume(recipe, out, "--steps", "6", "--set", "lr=0.5", "--set", 'phantoms=["mni152"]',
                   "--seed", "9") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    for recorded in ("lr = 0.001, this one 0.5", "seed = 0, this one 9", "phantoms = ['mrilab:"):
        assert recorded in err
    assert f"--set 'init=\"{out / CHECKPOINT}\"' --out NEW_FOLDER" in err  # the way that keeps the run
    assert (out / CHECKPOINT).read_bytes() == before


def test_a_resume_is_refused_or_found_done_before_any_data_are_made(run, monkeypatch, capsys):
    from napari_mr_reparam.training import loop

    recipe, out = run
    monkeypatch.setattr(loop, "build_stage", lambda *a: pytest.fail("the run's data were made"))
    assert _resume(recipe, out, "--steps", "6", "--set", "lr=0.5") == 2
    assert "lr = 0.001, this one 0.5" in capsys.readouterr().err
    assert _resume(recipe, out, "--steps", "4") == 0
    assert "is at step 4 already: nothing to train" in capsys.readouterr().out


def test_resuming_may_change_the_steps_and_what_does_not_change_the_training(run):
    from napari_mr_reparam.training.loop import RESUME_MAY_CHANGE

    assert {"steps", "device", "threads", "loader_workers", "log_every", "checkpoint_every"} <= RESUME_MAY_CHANGE
    recipe, out = run
    assert _resume(recipe, out, "--steps", "5", "--threads", "1", "--name", "renamed", "--set", "log_every=3",
                   "--set", "checkpoint_every=7", "--set", "loader_workers=1", "--set", "subject_workers=1") == 0
    blob = torch.load(out / CHECKPOINT, weights_only=True)
    assert blob["step"] == 5 and blob["card"]["name"] == "renamed"


def _code_carrying_pickle(path, marker):
    class Touch:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"model": {}, "optimizer": Touch(), "step": 1}, path)


def test_a_damaged_or_code_carrying_checkpoint_is_one_line_and_runs_no_code(run, tmp_path, capsys):
    recipe, out = run
    whole = (out / CHECKPOINT).read_bytes()
    marker = tmp_path / "code_ran"
    _code_carrying_pickle(tmp_path / "code.pt", marker)
    damaged = {"truncated": whole[: len(whole) // 2], "text": b"not a checkpoint\n", "empty": b"",
               "code": (tmp_path / "code.pt").read_bytes()}
    for why, data in damaged.items():
        (out / CHECKPOINT).write_bytes(data)
        capsys.readouterr()
        assert _resume(recipe, out, "--steps", "6") == 2, why
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and "weights_only" not in err, (why, err)
        assert err.startswith(f"error: {out / CHECKPOINT}: "), err
        assert (out / CHECKPOINT).read_bytes() == data
    assert "refused" in err and "code" in err
    assert not marker.exists()


def test_the_card_records_the_processes_of_every_session_and_stale_rank_digests_go(run):
    recipe, out = run
    blob = torch.load(out / CHECKPOINT, weights_only=True)
    assert blob["card"]["world_sizes"] == [1]
    blob["sessions"] = {**blob["sessions"], "world_size": 2}  # as a torchrun session of 2 left it
    blob["sessions"].pop("world_sizes")
    torch.save(blob, out / CHECKPOINT)
    for rank in (0, 1):
        (out / f"rank{rank}.sha256").write_text("digest of the weights at step 4\n")
    assert _resume(recipe, out, "--steps", "5") == 0
    card = torch.load(out / CHECKPOINT, weights_only=True)["card"]
    assert card["world_sizes"] == [2, 1] and card["world_size"] == 1
    assert not list(out.glob("rank*.sha256"))


def test_a_sessions_time_counts_its_data_and_network_set_up(run, monkeypatch):
    from napari_mr_reparam.training import loop

    recipe, out = run
    build = loop.build_stage

    def slow_build(*args, **kwargs):  # a second of subject loading, say
        import time

        time.sleep(1.0)
        return build(*args, **kwargs)

    monkeypatch.setattr(loop, "build_stage", slow_build)
    before = torch.load(out / CHECKPOINT, weights_only=True)["card"]["train_seconds"]
    assert _resume(recipe, out, "--steps", "5") == 0
    card = torch.load(out / CHECKPOINT, weights_only=True)["card"]
    assert card["train_seconds_this_session"] >= 1.0
    assert card["train_seconds"] == pytest.approx(before + card["train_seconds_this_session"], abs=0.11)


def test_notices_print_on_the_first_process_only(run, tmp_path, monkeypatch, capsys):
    recipe, out = run
    cfg = load_config(recipe, out=str(out), steps=5)
    monkeypatch.setenv("RANK", "1")  # the second process of a torchrun (alone here: no group)
    capsys.readouterr()
    train(cfg, resume=True, quiet=True)
    train(dataclasses.replace(cfg, init=str(out / CHECKPOINT), out=str(tmp_path / "fresh")), quiet=True)
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("RANK", "0")
    train(dataclasses.replace(cfg, steps=6), resume=True, quiet=True)
    assert "resumed from" in capsys.readouterr().out


def test_a_resume_draws_the_batches_of_the_step_it_resumes_at_not_an_unbroken_runs(run, tmp_path):
    """As loop.py says: the same checkpoint resumed twice trains alike, and unlike the run
    that went on without a stop."""
    recipe, out = run
    shutil.copytree(out, tmp_path / "again")
    straight = tmp_path / "straight"
    assert train_main(["paramnet", "--config", str(recipe), "--out", str(straight), "--steps", "6"]) == 0
    for folder in (out, tmp_path / "again"):
        assert _resume(recipe, folder, "--steps", "6") == 0
    weights = [torch.load(f / CHECKPOINT, weights_only=True)["model"] for f in (out, tmp_path / "again", straight)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])


def test_the_loops_docstrings_say_what_a_resume_draws():
    from napari_mr_reparam.training import loop

    assert "would have drawn" not in loop._StopRequest.__doc__
    assert "from the step it resumes at" in " ".join(loop.__doc__.split())


def test_pickles_are_refused_by_the_checkpoint_reader(tmp_path):
    from napari_mr_reparam.training.loop import read_checkpoint

    _code_carrying_pickle(tmp_path / "c.pt", tmp_path / "ran")
    with pytest.raises(ValueError, match=r"c\.pt: refused: it holds Python objects besides tensors"):
        read_checkpoint(tmp_path / "c.pt")
    assert not (tmp_path / "ran").exists()
    torch.save([1, 2], tmp_path / "d.pt")
    with pytest.raises(ValueError, match=r"d\.pt: not a training checkpoint"):
        read_checkpoint(tmp_path / "d.pt")


def test_a_resume_without_its_recipe_takes_the_settings_its_checkpoint_records(run, capsys):
    recipe, out = run
    capsys.readouterr()
    assert train_main(["paramnet", "--out", str(out), "--resume", "--steps", "5"]) == 0
    assert f"resuming with the settings recorded in {out / CHECKPOINT}" in capsys.readouterr().out
    blob = torch.load(out / CHECKPOINT, weights_only=True)
    assert blob["step"] == 5 and blob["config"]["pairs"] == 8 and blob["config"]["autoencoder"]
    before = (out / CHECKPOINT).read_bytes()
    # settings given on top are still compared with the run's own, and another stage's command is named
    assert train_main(["paramnet", "--out", str(out), "--resume", "--steps", "6", "--set", "lr=0.5"]) == 2
    assert train_main(["physics", "--out", str(out), "--resume", "--steps", "6"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "that run has lr = 0.001, this one 0.5" in err[0]
    assert err[1] == (f"error: {out / CHECKPOINT} is a run of the paramnet stage, not physics: "
                      f"napari-mr-reparam-train paramnet --resume --out {out}")
    assert (out / CHECKPOINT).read_bytes() == before


def test_the_help_says_a_resume_without_config_takes_the_recorded_recipe(capsys):
    with pytest.raises(SystemExit):
        train_main(["physics", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "with --resume and no --config, the settings the run's checkpoint records" in text


def test_a_resume_with_another_acquisition_table_names_the_entries_that_differ(tmp_path):
    from napari_mr_reparam.training.loop import _refuse_other_settings

    recorded = {"acquisition": {"jpeg": 0.2, "ringing": 0.5}, "lr": 0.001}
    with pytest.raises(ValueError, match=r"that run has acquisition\.jpeg = 0\.2, this one 0\.5; resume"):
        _refuse_other_settings(tmp_path / "checkpoint.pt", recorded,
                               {"acquisition": {"jpeg": 0.5, "ringing": 0.5}, "lr": 0.001})
