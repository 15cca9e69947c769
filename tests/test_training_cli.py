"""The ``napari-mr-reparam-train`` command (training/cli.py): evaluate and export record
the figures, --set overrides a recipe, bad input is a one-line error."""

import json
from pathlib import Path

import numpy as np
import pytest

from napari_mr_reparam.training.cli import main as train_main
from napari_mr_reparam.training.config import load_config


def test_evaluate_then_export_records_the_metrics(tiny_paramnet_run, mrilab_spec, tmp_path, capsys):
    _, _, ckpt = tiny_paramnet_run
    # evaluate prints the table with identity, and writes the JSON keys
    report_file = tmp_path / "eval.json"
    code = train_main(["evaluate", "--weights", str(ckpt), "--phantom", mrilab_spec, "--split", "slices",
                       "--limit", "6", "--json", str(report_file), "--device", "cpu"])
    assert code == 0
    report = json.loads(report_file.read_text())
    for key in ("psnr_mean", "psnr_std", "mae_mean", "mae_std", "ssim_mean"):
        assert np.isfinite(report[key]) and np.isfinite(report["identity"][key])
    out = capsys.readouterr().out
    assert "identity" in out and report["psnr_by_target_te"]
    table = out[out.index("\nmodel"):out.index("\nconvention")].strip("\n").splitlines()
    assert len({len(line) for line in table}) == 1, table  # the checkpoint's long path keeps the columns
    assert table[2].startswith(f"{ckpt.name} (d2p) ")
    # export to safetensors with a card carrying the metrics and the hash
    out = tmp_path / "tiny.safetensors"
    assert train_main(["export", str(ckpt), "--name", "tiny", "--out", str(out),
                       "--metrics", str(report_file)]) == 0
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["sha256"] and card["task"] == "d2p"
    assert not Path(card["config"]["out"]).is_absolute()  # the run's folder by its name, not this machine's path
    (recorded,) = card["metrics"].values()
    assert recorded["count"] == report["count"] and recorded["identity"] == report["identity"]
    assert recorded["psnr_mean"] == report["psnr_mean"] and "convention" not in recorded
def test_export_refuses_what_is_not_an_evaluate_report(tmp_path, capsys):
    reports = {"broken.json": "{bad", "list.json": "[1, 2]", "other.json": '{"loss": 1}'}
    for name, text in reports.items():
        (tmp_path / name).write_text(text)
    out = tmp_path / "out.safetensors"
    for name in [*reports, "missing.json"]:
        assert train_main(["export", "d2p", "--name", "d2p", "--out", str(out),
                           "--metrics", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 4 and "Traceback" not in err and "list.json" in err
    assert not out.exists()


def test_export_records_only_reports_that_scored_the_checkpoint(tmp_path, capsys, monkeypatch):
    import shutil

    from napari_mr_reparam.weights import BUNDLED_DIR

    monkeypatch.chdir(tmp_path)
    shutil.copy(BUNDLED_DIR / "d2p.safetensors", "w.safetensors")
    card = json.loads((BUNDLED_DIR / "d2p.json").read_text())
    (tmp_path / "w.json").write_text(json.dumps(dict(card, name="w")))
    reports = {"other.json": "physics_mrilab", "unnamed.json": None,  # scored elsewhere, or unsaid
               "path.json": str(tmp_path / "w.safetensors"), "name.json": "w"}  # as evaluate names w
    for name, model in reports.items():
        (tmp_path / name).write_text(json.dumps({"psnr_mean": 30.0, "split": "paper", "task": "d2p",
                                                 "phantom": name, **({"model": model} if model else {})}))
    for name in ("other.json", "unnamed.json"):
        assert train_main(["export", "w.safetensors", "--name", "w", "--out", "out.safetensors",
                           "--metrics", name]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "error: other.json: scores physics_mrilab, not w.safetensors; record a report of evaluate --weights w.safetensors",
        "error: unnamed.json: scores an unnamed model, not w.safetensors; record a report of evaluate --weights "
        "w.safetensors"]
    assert not (tmp_path / "out.safetensors").exists()
    assert train_main(["export", "w.safetensors", "--name", "w", "--out", "out.safetensors",
                       "--metrics", "path.json", "--metrics", "name.json"]) == 0
    recorded = json.loads((tmp_path / "out.json").read_text())["metrics"]
    assert recorded["name.json|paper|d2p"]["psnr_mean"] == recorded["path.json|paper|d2p"]["psnr_mean"] == 30.0


def test_export_records_the_external_benchmark_rows_of_the_checkpoint(tmp_path, capsys, monkeypatch):
    import shutil

    from napari_mr_reparam.weights import BUNDLED_DIR

    report = {"models": ["physics", "`w.safetensors`"],
              "heldout": {"rows": [{"model": "physics", "what": "default input", "summary": {"psnr_mean": 1.0}},
                                   {"model": "`w.safetensors`", "what": "default input",
                                    "summary": {"count": 4, "psnr_mean": 20.5, "loss": 3}}]},
              "sample": {"rows": [{"model": "`w.safetensors`", "targets": [{"psnr": 21.0}]}]}}
    (tmp_path / "ext.json").write_text(json.dumps(report))
    monkeypatch.chdir(tmp_path)
    assert train_main(["export", "d2p", "--name", "d2p", "--out", "out.safetensors",
                       "--external", "ext.json"]) == 2  # no rows score "d2p"
    assert "no rows score d2p" in capsys.readouterr().err
    shutil.copy(BUNDLED_DIR / "d2p.safetensors", "w.safetensors")
    shutil.copy(BUNDLED_DIR / "d2p.json", "w.json")
    assert train_main(["export", "w.safetensors", "--name", "w", "--out", "out.safetensors",
                       "--external", "ext.json"]) == 0
    card = json.loads((tmp_path / "out.json").read_text())
    assert card["external"] == {"heldout": [{"what": "default input", "count": 4, "psnr_mean": 20.5}],
                                "sample": [{"targets": [{"psnr": 21.0}]}]}


def test_export_finds_the_external_rows_of_the_checkpoint_however_its_path_was_written(tmp_path, monkeypatch):
    import shutil

    from napari_mr_reparam.weights import BUNDLED_DIR

    (tmp_path / "runs").mkdir()
    shutil.copy(BUNDLED_DIR / "d2p.safetensors", tmp_path / "runs" / "w.safetensors")
    shutil.copy(BUNDLED_DIR / "d2p.json", tmp_path / "runs" / "w.json")
    absolute = f"`{tmp_path / 'runs' / 'w.safetensors'}`"  # benchmarked by its absolute path
    report = {"heldout": {"rows": [{"model": absolute, "what": "default input", "summary": {"psnr_mean": 20.5}},
                                   {"model": "`other.safetensors`", "what": "default input",
                                    "summary": {"psnr_mean": 9.0}}]}}
    (tmp_path / "ext.json").write_text(json.dumps(report))
    monkeypatch.chdir(tmp_path)
    for written in ("runs/w.safetensors", "./runs/../runs/w.safetensors"):
        assert train_main(["export", written, "--name", "w", "--out", "out.safetensors", "--overwrite",
                           "--external", "ext.json"]) == 0
        card = json.loads((tmp_path / "out.json").read_text())
        assert card["external"] == {"heldout": [{"what": "default input", "psnr_mean": 20.5}]}


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    assert train_main(["simulate", "--phantom", "nowhere", "--out", str(tmp_path)]) == 2
    assert train_main(["simulate", "--phantom", "mrilab:/no/such.npz", "--out", str(tmp_path)]) == 2
    assert train_main(["paramnet", "--config", str(tmp_path / "missing.toml")]) == 2
    assert train_main(["evaluate", "--model", "identity", "--limit", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 4 and "Traceback" not in err and "--limit takes a number" in err


def test_steps_below_one_are_one_line_naming_steps_and_write_nothing(tmp_path, capsys):
    for steps in ("0", "-3"):
        assert train_main(["physics", "--steps", steps, "--batch-size", "2", "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.splitlines() == ["error: steps must be >= 1, got 0",
                                                    "error: steps must be >= 1, got -3"]
    assert not (tmp_path / "run").exists()


def test_steps_help_says_it_is_the_total_the_schedule_spans(capsys):
    with pytest.raises(SystemExit):
        train_main(["physics", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "the total optimizer steps the run reaches, on --resume too (not steps to add)" in text
    assert "the learning-rate schedule spans that total" in text


def test_set_overrides_any_recipe_value(tmp_path, capsys):
    from napari_mr_reparam.training.cli import _settings

    assert _settings(["map_weight=0.1", "native_input=true", "variant=direct", 'name="x"']) == {
        "map_weight": 0.1, "native_input": True, "variant": "direct", "name": "x"}
    with pytest.raises(ValueError, match="unknown settings: mapweight"):
        load_config(None, **_settings(["mapweight=1"]))
    assert train_main(["physics", "--set", "nonsense", "--out", str(tmp_path)]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"^--set lr is given twice; give it once$"):
        _settings(["lr=0.1", "lr=0.2"])
    assert train_main(["physics", "--set", "stage=tissue", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --set stage: the stage is the command's (physics); run napari-mr-reparam-train tissue for another")


def test_resume_without_a_checkpoint_or_a_recipe_starts_nothing(tmp_path, capsys):
    typo = tmp_path / "typo"
    assert train_main(["physics", "--resume", "--out", str(typo)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --resume: no checkpoint in {typo} and no --config: nothing to resume; give the run's folder "
        "(--out), or its recipe to start it")
    assert train_main(["physics", "--resume", "--set", f'out="{typo}"']) == 2  # --set out is looked in too
    assert f"no checkpoint in {typo}" in capsys.readouterr().err
    assert not typo.exists()


def test_a_relative_data_path_that_is_missing_says_where_it_was_looked_for(tmp_path, monkeypatch):
    from napari_mr_reparam.messages import not_found

    monkeypatch.chdir(tmp_path)
    assert not_found("segmentation", "../shared/seg.nii.gz") == (
        f"segmentation not found: ../shared/seg.nii.gz (relative to the current folder: {tmp_path}/../shared/seg.nii.gz)")
    assert not_found("recipe", "/abs/r.toml") == "recipe not found: /abs/r.toml"


def test_a_missing_recipe_says_where_the_bundled_weights_recipes_are(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside a clone, as an installed package is run
    assert train_main(["physics", "--config", "training/physics_general.toml", "--steps", "1"]) == 2
    assert capsys.readouterr().err.strip().endswith(
        "; the bundled weights' recipes are in the repository's training/ folder, run from its root")




def test_a_run_folder_with_a_checkpoint_is_resumed_or_overwritten_never_replaced_unasked(tmp_path, capsys):
    (tmp_path / "checkpoint.pt").write_bytes(b"a run's weights")
    assert train_main(["physics", "--out", str(tmp_path), "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint.pt exists: --resume continues that run, --overwrite starts a new one" in err
    assert err.count("\n") == 1 and (tmp_path / "checkpoint.pt").read_bytes() == b"a run's weights"


def test_export_keeps_another_weights_files_card_and_writes_safetensors_only(tmp_path, capsys, monkeypatch):
    import shutil

    from napari_mr_reparam.weights import BUNDLED_DIR

    monkeypatch.chdir(tmp_path)
    shutil.copy(BUNDLED_DIR / "d2p.safetensors", "w.safetensors")
    shutil.copy(BUNDLED_DIR / "d2p.json", "w.json")
    (tmp_path / "x.json").write_text('{"mine": true}')  # the card of x.pt, say
    assert train_main(["export", "w.safetensors", "--name", "x", "--out", "x.safetensors"]) == 2
    assert train_main(["export", "w.safetensors", "--name", "x", "--out", "y.pt"]) == 2
    err = capsys.readouterr().err
    assert "x.json exists; pass --overwrite" in err and "name the output NAME.safetensors" in err
    assert (tmp_path / "x.json").read_text() == '{"mine": true}' and not (tmp_path / "y.pt").exists()


def test_simulate_and_evaluate_keep_what_is_in_their_way_unless_told(tmp_path, capsys):
    (tmp_path / "dataset.npz").write_bytes(b"an earlier dataset")
    assert train_main(["simulate", "--phantom", "nowhere", "--out", str(tmp_path)]) == 2
    (tmp_path / "report.json").write_text("{}")
    assert train_main(["evaluate", "--model", "identity", "--json", str(tmp_path / "report.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("exists; pass --overwrite to replace it") == 2
    assert (tmp_path / "dataset.npz").read_bytes() == b"an earlier dataset"
    assert (tmp_path / "report.json").read_text() == "{}"


def _tiny_checkpoint(path, spoil: bool = False):
    """A training checkpoint of a tiny physics network (its first tensor NaN with ``spoil``)."""
    import torch

    from napari_mr_reparam.models.physics_net import PhysicsNet

    state = PhysicsNet(base=4, depth=3, task="p2p").state_dict()
    if spoil:
        next(iter(state.values())).fill_(float("nan"))
    card = {"arch": "physics", "task": "p2p", "width": 0.03, "base": 4, "depth": 3, "name": "physics"}
    torch.save({"model": state, "optimizer": {}, "step": 1, "card": card}, path)
    return str(path)


def test_export_takes_a_plain_name_only_and_writes_nothing_outside(tmp_path, capsys, monkeypatch):
    from napari_mr_reparam import weights

    bundle = tmp_path / "pkg" / "weights"
    bundle.mkdir(parents=True)
    monkeypatch.setattr(weights, "BUNDLED_DIR", bundle)
    ckpt = _tiny_checkpoint(tmp_path / "c.pt")
    for name in ("../../../../evil", "a/b", "..", ".hidden", "a b", "SHA256SUMS"):
        assert train_main(["export", ckpt, "--name", name]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 6 and all(line.startswith("error: --name ") for line in err)
    assert "a plain file name" in err[0] and "record of hashes" in err[-1]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["c.pt", "pkg", "weights"]


def test_export_refuses_a_checkpoint_whose_weights_are_not_finite(tmp_path, capsys):
    ckpt = _tiny_checkpoint(tmp_path / "nan.pt", spoil=True)
    assert train_main(["export", ckpt, "--name", "x", "--out", str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {ckpt}: holds values that are not finite (NaN or infinity)") and err.count("\n") == 1
    assert not (tmp_path / "x.safetensors").exists()


def test_export_refuses_an_autoencoder_run_which_predicts_no_image(tiny_paramnet_run, tmp_path, capsys):
    _, autoencoder, _ = tiny_paramnet_run
    assert train_main(["export", str(autoencoder), "--name", "ae", "--out", str(tmp_path / "ae.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "an autoencoder run, the paper models' encoder, predicts no image: give it to paramnet" in err
    assert err.count("\n") == 1 and not (tmp_path / "ae.safetensors").exists()


def test_export_into_the_bundled_folder_records_the_hashes_of_the_weights_and_card(tmp_path, monkeypatch):
    from napari_mr_reparam import weights

    monkeypatch.setattr(weights, "BUNDLED_DIR", tmp_path)
    for name in ("one", "two"):
        assert train_main(["export", _tiny_checkpoint(tmp_path / f"{name}.pt"), "--name", name]) == 0
    record = json.loads((tmp_path / weights.HASHES_FILE).read_text())
    assert set(record) == {"one.safetensors", "one.json", "two.safetensors", "two.json"}
    assert record["one.json"] == weights.sha256_of(tmp_path / "one.json")
    assert weights.load_weights("two")[1]["name"] == "two"
    card = json.loads((tmp_path / "two.json").read_text())
    (tmp_path / "two.json").write_text(json.dumps(dict(card, task="d2p")))
    with pytest.raises(weights.WeightsError, match="two.json: sha256 does not match SHA256SUMS.json"):
        weights.load_weights("two")
    assert train_main(["export", str(tmp_path / "two.pt"), "--name", "two", "--overwrite"]) == 0
    assert weights.load_weights("two")[1]["task"] == "p2p"  # exported again: recorded again


def test_export_into_an_installed_packages_folder_is_refused_for_a_file_of_ones_own(tmp_path, capsys, monkeypatch):
    from napari_mr_reparam import weights

    installed = tmp_path / "lib" / "site-packages" / "napari_mr_reparam" / "weights"
    installed.mkdir(parents=True)
    monkeypatch.setattr(weights, "BUNDLED_DIR", installed)
    assert train_main(["export", _tiny_checkpoint(tmp_path / "mine.pt"), "--name", "mine"]) == 2
    assert capsys.readouterr().err.startswith("error: the package is installed, not a clone: weights written into "
                                              f"its folder ({installed}) are lost on its next upgrade; give --out")
    assert list(installed.iterdir()) == []
    assert train_main(["export", str(tmp_path / "mine.pt"), "--name", "mine", "--out",
                       str(tmp_path / "mine.safetensors")]) == 0
    assert weights.load_weights(tmp_path / "mine.safetensors")[1]["name"] == "mine"


def test_a_physics_run_into_a_file_is_refused_before_training(tmp_path, capsys, monkeypatch):
    from napari_mr_reparam.training import loop

    monkeypatch.setattr(loop, "build_stage", lambda *a: pytest.fail("training started"))
    (tmp_path / "afile").write_text("mine")
    assert train_main(["physics", "--steps", "2", "--out", str(tmp_path / "afile")]) == 2
    assert capsys.readouterr().err == (f"error: out: {tmp_path / 'afile'} is a file; the run folder (--out) "
                                       "must be a folder\n")
    assert (tmp_path / "afile").read_text() == "mine"


def test_a_phantom_file_that_is_no_mrilab_npz_is_one_line_without_numpys_pickle_hint(tmp_path, capsys):
    (tmp_path / "some.json").write_text("{}")
    spec = f"mrilab:{tmp_path / 'some.json'}"
    assert train_main(["physics", "--phantom", spec, "--steps", "1", "--out", str(tmp_path / "run")]) == 2
    assert train_main(["simulate", "--phantom", spec, "--out", str(tmp_path / "sim")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all("not an MRiLab .npz phantom" in line for line in err)
    assert "pickle" not in " ".join(line.replace("some.json", "") for line in err)


def test_unknown_tables_are_refused_listing_the_known_ones(tmp_path, capsys, mrilab_spec):
    with pytest.raises(SystemExit) as refused:  # a bad option value: argparse's one line, status 2
        train_main(["simulate", "--phantom", "mni152", "--table", "nope", "--out", str(tmp_path)])
    assert refused.value.code == 2
    assert train_main(["simulate", "--phantom", mrilab_spec, "--table", "3t", "--out", str(tmp_path)]) == 2
    assert train_main(["physics", "--set", 'tables=["nope"]', "--steps", "1", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: argument --table: unknown tissue table 'nope'; known: brainweb_1.5t, mrilab, 3t")
    assert "an MRiLab phantom has its own maps" in err[1]
    assert err[2] == "error: tables: unknown tissue table 'nope'; known: brainweb_1.5t, mrilab, 3t"
    assert not list(tmp_path.iterdir())


def test_evaluate_refuses_a_model_and_weights_together(tmp_path, capsys):
    ckpt = _tiny_checkpoint(tmp_path / "c.pt")
    assert train_main(["evaluate", "--model", "physics", "--weights", ckpt]) == 2
    assert capsys.readouterr().err == (f"error: --model physics and --weights {ckpt} each name the model to score; "
                                       "give one (--weights scores a file, --model a bundled model or identity)\n")


def test_a_recipe_of_an_unknown_stage_suggests_no_command(tmp_path, capsys):
    (tmp_path / "foo.toml").write_text('stage = "foo"\n')
    assert train_main(["physics", "--config", str(tmp_path / "foo.toml")]) == 2
    err = capsys.readouterr().err
    assert "unknown stage 'foo'; known: autoencoder, paramnet, physics, tissue, contrast" in err
    assert "napari-mr-reparam-train foo" not in err


@pytest.mark.parametrize("command", ["simulate", "evaluate", "physics"])
def test_the_phantom_help_names_every_kind_the_recipes_use(command, capsys):
    with pytest.raises(SystemExit):
        train_main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "mni152, mrilab:PATH, segmentation:PATH or freesurfer:PATH" in text


def test_a_param_net_without_an_autoencoder_or_with_another_widths_is_one_line(tiny_paramnet_run, tmp_path, capsys):
    _, ae, _ = tiny_paramnet_run  # width 0.0625
    assert train_main(["paramnet", "--steps", "2", "--out", str(tmp_path / "a")]) == 2
    assert train_main(["paramnet", "--steps", "1", "--width", "0.125", "--autoencoder", str(ae),
                       "--device", "cpu", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "Traceback" not in " ".join(err)
    assert err[0].startswith("error: phase 2 (paramnet) trains on the frozen encoder of the autoencoder from phase 1")
    assert err[1] == (f"error: {ae}: weights do not fit this network (tensors of other shapes: size mismatch for "
                      "layers.0.0.weight); it is an autoencoder of width 0.0625, this run's width is 0.125")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_simulate_takes_the_image_sizes_training_takes_and_says_when_it_has_fewer_slices(tmp_path, capsys,
                                                                                          mrilab_spec):
    with pytest.raises(SystemExit) as refused:
        train_main(["simulate", "--phantom", mrilab_spec, "--size", "7", "--out", str(tmp_path / "a")])
    assert refused.value.code == 2
    assert "--size: must be between 16 and 2048 pixels, as training's size, got 7" in capsys.readouterr().err
    assert train_main(["simulate", "--phantom", mrilab_spec, "--pairs", "1", "--slices", "500", "--size", "16",
                       "--out", str(tmp_path / "b")]) == 0
    err = capsys.readouterr().err
    assert "fewer than the 500 asked for; the dataset has those" in err
