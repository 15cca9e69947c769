"""End-to-end training on a tiny setting: autoencoder, Param-Net, evaluate, export, resume, DDP."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import mrilab_path, tiny_phantom

from napari_mr_reparam.training.cli import main as train_main
from napari_mr_reparam.training.config import TrainConfig, load_config
from napari_mr_reparam.training.loop import train

TINY = dict(width=0.0625, pairs=8, slices=4, batch_size=2, checkpoint_every=2, log_every=1,
            threads=1)


@pytest.fixture(scope="module")
def phantom_spec():
    return f"mrilab:{mrilab_path()}"


def _cfg(tmp_path, phantom_spec, **kw):
    return TrainConfig(**{**TINY, "phantoms": [phantom_spec], "out": str(tmp_path / kw.pop("run", "run")),
                          **kw})


def test_recipe_loading(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('stage = "paramnet"\ntask = "p2p"\nsteps = 5\n')
    cfg = load_config(recipe, steps=7, out=None)
    assert (cfg.task, cfg.steps) == ("p2p", 7)
    recipe.write_text('stepz = 5\n')
    with pytest.raises(ValueError, match="unknown recipe keys"):
        load_config(recipe)
    with pytest.raises(ValueError, match="unknown stage"):
        TrainConfig(stage="gan")
    with pytest.raises(ValueError, match="fraction_sharpening"):
        TrainConfig(fraction_sharpening=0.5)
    with pytest.raises(ValueError, match="only acts with fraction_sharpening"):
        TrainConfig(fraction_texture=1.0)
    with pytest.raises(ValueError, match="fraction_sharpening_min"):
        TrainConfig(fraction_sharpening=4.0, fraction_sharpening_min=8.0)
    with pytest.raises(ValueError, match="csf_expansion"):
        TrainConfig(csf_expansion=0.5)
    with pytest.raises(ValueError, match="sulcus_width"):
        TrainConfig(sulcus_width=-1.0)
    options = TrainConfig(fraction_sharpening=4.0, csf_expansion=2.0, sulcus_width=1.5).stream_options()
    assert (options["sharpening"], options["sharpening_min"], options["csf_expansion"]) == (4.0, 1.0, 2.0)
    assert options["sulcus_width"] == 1.5
    for bad, match in (({"noise_max": -0.1}, "noise_max"), ({"bias_strength": 1.0}, "bias_strength"),
                       ({"image_loss": "l1"}, "unknown image_loss"), ({"subject_every": 0}, "subject_every"),
                       ({"tilt_deg": -1.0}, "tilt_deg"), ({"input_gain": -0.1}, "input_gain"),
                       ({"max_scale": 1.0}, "max_scale"), ({"anisotropy": -0.1}, "anisotropy"),
                       ({"deform_mm": -1.0}, "deform_mm"), ({"subject_workers": -1}, "subject_workers")):
        with pytest.raises(ValueError, match=match):
            TrainConfig(**bad)
    options = TrainConfig(noise_max=0.0, bias_strength=0.0, fine_brain=True, subject_every=96).stream_options()
    assert (options["noise_max"], options["bias_strength"]) == (0.0, 0.0)
    assert (options["fine_brain"], options["refresh_every"]) == (True, 96)
    assert TrainConfig(input_gain=0.1).stream_options()["input_gain"] == 0.1
    assert TrainConfig(subject_workers=2).stream_options()["subject_workers"] == 2
    geometry = TrainConfig(deform_mm=8.0, max_scale=0.1, max_rotation_deg=10.0, anisotropy=0.05).stream_options()
    assert [geometry[k] for k in ("deform_mm", "max_scale", "max_rotation_deg", "anisotropy")] == [8.0, 0.1, 10.0, 0.05]


def test_log_mse_loss_weighs_images_by_their_relative_error():
    from napari_mr_reparam.training.physics_stage import LOG_MSE_FLOOR, image_loss

    target = torch.zeros(2, 1, 8, 8)
    pred = target.clone()
    pred[0] += 0.5  # one image far off, the other a little
    pred[1] += 0.01
    pred.requires_grad_(True)
    assert image_loss(pred, target, "mse").item() == pytest.approx((0.25 + 1e-4) / 2)
    loss = image_loss(pred, target, "log_mse")
    per_image = torch.tensor([0.25, 1e-4])
    expected = per_image.mean() * torch.log(per_image + LOG_MSE_FLOOR).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    # MSE's gradient is 50 times larger on the far image; here the near one pulls as hard
    # per unit of its own error, so its gradient per pixel is the larger
    g_far, g_near = pred.grad[0].abs().mean().item(), pred.grad[1].abs().mean().item()
    assert g_near > g_far


def test_stream_without_acquisition_effects_gives_clean_images():
    from napari_mr_reparam.datasets import StreamingSampler
    from napari_mr_reparam.simulate import Acquisition, simulate_images

    phantom = tiny_phantom()
    sampler = StreamingSampler([phantom], size=None, seed=0, pool=1, noise_max=0.0, bias_strength=0.0)
    subject, bias = sampler.pool[0]
    assert np.allclose(bias, 1.0)
    example = sampler.example()
    index = None
    for k in range(subject.shape[0]):  # the example's slice, found by its input image
        image = simulate_images(subject, Acquisition(50.0, 4500.0), [k], None)[0] / 255.0
        if np.array_equal(image.astype(np.float32), example["input"][0]):
            index = k
    assert index is not None  # no noise: the input is the subject's plain render


def test_bundled_recipes_parse():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "training"
    names = {p.stem for p in folder.glob("*.toml")}
    assert {"autoencoder", "d2p", "p2p"} <= names
    for path in folder.glob("*.toml"):
        load_config(path)


def test_autoencoder_then_paramnet_then_evaluate(tmp_path, phantom_spec, capsys):
    ae = train(_cfg(tmp_path, phantom_spec, stage="autoencoder", natural_steps=1, steps=2, run="ae"),
               quiet=True)
    assert ae.is_file()
    cfg = _cfg(tmp_path, phantom_spec, stage="paramnet", task="d2p", steps=3, autoencoder=str(ae),
               run="d2p")
    ckpt = train(cfg, quiet=True)
    blob = torch.load(ckpt, weights_only=True)
    assert blob["step"] == 3 and blob["card"]["task"] == "d2p"
    # the encoder stayed frozen: equal to the autoencoder's
    ae_state = torch.load(ae, weights_only=True)["model"]
    for key, value in blob["model"].items():
        if key.startswith("encoder."):
            assert torch.equal(value, ae_state[key]), key
    # resume continues from the checkpoint
    cfg.steps = 4
    train(cfg, resume=True, quiet=True)
    assert torch.load(ckpt, weights_only=True)["step"] == 4
    # evaluate prints the table with identity, and writes the JSON keys
    report_file = tmp_path / "eval.json"
    code = train_main(["evaluate", "--weights", str(ckpt), "--phantom", phantom_spec, "--split", "slices",
                       "--limit", "6", "--json", str(report_file), "--device", "cpu"])
    assert code == 0
    report = json.loads(report_file.read_text())
    for key in ("psnr_mean", "psnr_std", "mae_mean", "mae_std", "ssim_mean"):
        assert np.isfinite(report[key]) and np.isfinite(report["identity"][key])
    assert "identity" in capsys.readouterr().out and report["psnr_by_target_te"]
    # export to safetensors with a card carrying the metrics and the hash
    out = tmp_path / "tiny.safetensors"
    assert train_main(["export", str(ckpt), "--name", "tiny", "--out", str(out),
                       "--metrics", str(report_file)]) == 0
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["sha256"] and card["task"] == "d2p"
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


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    assert train_main(["simulate", "--phantom", "nowhere", "--out", str(tmp_path)]) == 2
    assert train_main(["simulate", "--phantom", "mrilab:/no/such.npz", "--out", str(tmp_path)]) == 2
    assert train_main(["paramnet", "--config", str(tmp_path / "missing.toml")]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 3 and "Traceback" not in err


def test_two_process_data_parallel_ranks_agree(tmp_path, phantom_spec):
    recipe = tmp_path / "ddp.toml"
    out = tmp_path / "ddp"
    recipe.write_text(
        f'stage = "paramnet"\ntask = "p2p"\nwidth = 0.0625\npairs = 8\nslices = 4\nbatch_size = 2\n'
        f'steps = 3\nthreads = 1\ndevice = "cpu"\nphantoms = ["{phantom_spec}"]\nout = "{out}"\n')
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "napari_mr_reparam.training.cli", "paramnet", "--config", str(recipe)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    digests = [(out / f"rank{r}.sha256").read_text() for r in (0, 1)]
    assert digests[0] == digests[1]
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 3


@pytest.mark.parametrize("variant,arch", [("maps", "physics"), ("direct", "direct"), ("hybrid", "hybrid")])
def test_physics_stage_variants_train_and_predict(tmp_path, phantom_spec, variant, arch):
    from napari_mr_reparam.acquisition import Acquisition
    from napari_mr_reparam.inference import Reparameterizer

    cfg = _cfg(tmp_path, phantom_spec, stage="physics", task="p2p", variant=variant, depth=3,
               work_size=64, steps=2, run=variant)
    ckpt = train(cfg, quiet=True)
    card = torch.load(ckpt, weights_only=True)["card"]
    assert (card["arch"], card["depth"], card["work_size"]) == (arch, 3, 64)
    engine = Reparameterizer(str(ckpt), weights=str(ckpt), device="cpu")
    assert engine.renders_from_maps == (arch == "physics")
    images = np.random.default_rng(0).uniform(0, 1, (3, 50, 40)).astype(np.float32)
    out = engine.predict(images, Acquisition(np.array([30.0, 80.0, 200.0]), 3000.0), Acquisition(50.0, 4500.0))
    assert out.shape == images.shape and np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_physics_on_the_phantoms_own_grid_trains_predicts_and_evaluates(tmp_path, phantom_spec):
    from napari_mr_reparam.inference import Reparameterizer
    from napari_mr_reparam.training.evaluate import evaluate
    from napari_mr_reparam.training.physics_stage import PhysicsStage

    cfg = _cfg(tmp_path, phantom_spec, stage="physics", task="p2p", depth=3, work_size=64,
               native_input=True, steps=2, run="native")
    batch = PhysicsStage(cfg).batches.next(np.random.default_rng(0), 2)
    assert batch["input"].shape[-2:] == (108, 90)  # MRiLab's own in-plane grid, not 256x256
    ckpt = train(cfg, quiet=True)
    assert torch.load(ckpt, weights_only=True)["card"]["native_input"] is True
    engine = Reparameterizer(str(ckpt), weights=str(ckpt), device="cpu")
    assert engine.native_input
    maps = engine.compute_maps(np.random.default_rng(0).uniform(0, 1, (2, 50, 40)))
    assert maps.pd.shape == (2, 50, 40)  # fits in work_size: worked on its own grid
    maps = engine.compute_maps(np.random.default_rng(0).uniform(0, 1, (1, 160, 80)))
    assert maps.pd.shape == (1, 64, 32)  # larger: area-averaged to fit, aspect kept
    report = evaluate(engine, "p2p", phantom_spec, limit=4)
    assert report["count"] == 4 and np.isfinite(report["psnr_mean"])
    bands = report["psnr_by_target_te"]  # the four images, each in its target TE's band
    assert sum(b["count"] for b in bands) == 4
    assert all(b["range"][0] >= 20 and np.isfinite(b["mean"]) for b in bands)
    assert report["calibrate_peak"] is True
    report_file = tmp_path / "max_peak.json"
    assert train_main(["evaluate", "--weights", str(ckpt), "--phantom", phantom_spec, "--limit", "4",
                       "--max-peak", "--json", str(report_file), "--device", "cpu"]) == 0
    assert json.loads(report_file.read_text())["calibrate_peak"] is False


def test_map_supervision_uses_the_phantoms_maps(tmp_path, phantom_spec):
    from napari_mr_reparam.training.physics_stage import PhysicsStage, map_loss

    with pytest.raises(ValueError, match="native_input"):
        _cfg(tmp_path, phantom_spec, stage="physics", map_weight=0.1)
    cfg = _cfg(tmp_path, phantom_spec, stage="physics", task="d2p", depth=3, work_size=128,
               native_input=True, map_weight=0.1, targets_per_input=2, steps=2, run="maps")
    stage = PhysicsStage(cfg)
    batch = stage.batches.next(np.random.default_rng(0), 2)
    assert batch["maps"].shape == (2, 3, 108, 90) and batch["target"].shape == (2, 2, 108, 90)
    truth = torch.from_numpy(batch["maps"])
    exact = {"pd": truth[:, :1] * 0.5, "t1": truth[:, 1:2].clamp(50, 6000), "t2": truth[:, 2:3].clamp(2, 3000)}
    assert float(map_loss(exact, truth)) < 1e-10  # PD is compared up to a factor
    wrong = dict(exact, t1=exact["t1"] * 2)
    assert float(map_loss(wrong, truth)) > 0.1
    tensors = {k: torch.from_numpy(v) for k, v in batch.items()}
    assert torch.isfinite(stage.loss(stage.model, tensors))
    assert train(cfg, quiet=True).is_file()


def test_stream_examples_carry_the_maps_behind_them():
    from helpers import tiny_phantom

    from napari_mr_reparam.datasets import StreamingSampler

    sampler = StreamingSampler([tiny_phantom(n=12)], size=None, seed=0, randomize=False, with_maps=True)
    ex = sampler.example(targets=2)
    assert ex["maps"].shape == (3, *ex["input"].shape[-2:])
    assert ex["maps"][1].max() == 2569  # the core's T1 (ms)


def test_set_overrides_any_recipe_value(tmp_path, capsys):
    from napari_mr_reparam.training.cli import _settings

    assert _settings(["map_weight=0.1", "native_input=true", "variant=direct", 'name="x"']) == {
        "map_weight": 0.1, "native_input": True, "variant": "direct", "name": "x"}
    with pytest.raises(ValueError, match="unknown settings: mapweight"):
        load_config(None, **_settings(["mapweight=1"]))
    assert train_main(["physics", "--set", "nonsense", "--out", str(tmp_path)]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_input_gain_scales_inputs_only_and_stays_in_range():
    from napari_mr_reparam.datasets import StreamingSampler, random_gain

    rng = np.random.default_rng(0)
    image = np.linspace(0, 1, 101, dtype=np.float32)
    gains = []
    for _ in range(200):
        out = random_gain(image, rng, 0.2)
        assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
        gains.append(out[10] / image[10])
        if gains[-1] > 1:
            assert out[-1] == 1.0  # clipped at the top
    assert 1 / 1.2 - 1e-6 <= min(gains) < 0.9 and 1.1 < max(gains) <= 1.2 + 1e-6
    plain = StreamingSampler([tiny_phantom()], size=None, seed=0, pool=1, noise_max=0.0,
                             bias_strength=0.0, input_gain=0.0)
    still = plain.example()
    assert still["input"].max() == pytest.approx(1.0)  # no gain drawn: its own maximum
    sampler = StreamingSampler([tiny_phantom()], size=None, seed=0, pool=1, noise_max=0.0,
                               bias_strength=0.0, input_gain=0.5)
    maxima = [sampler.example()["input"].max() for _ in range(20)]
    targets = [sampler.example()["target"].max() for _ in range(5)]
    assert min(maxima) < 0.99 and targets == pytest.approx([1.0] * 5)  # targets untouched
