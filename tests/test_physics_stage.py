"""The physics stage (training/physics_stage.py): its variants train and predict, it reads
images on the phantom's own grid, supervises the maps, and weighs images by their error."""

import json

import numpy as np
import pytest
import torch
from helpers import tiny_train_config

from napari_mr_reparam.training.cli import main as train_main
from napari_mr_reparam.training.loop import train


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


@pytest.mark.parametrize("variant,arch", [("maps", "physics"), ("direct", "direct"), ("hybrid", "hybrid")])
def test_physics_stage_variants_train_and_predict(tmp_path, mrilab_spec, variant, arch):
    from napari_mr_reparam.acquisition import Acquisition
    from napari_mr_reparam.inference import Reparameterizer

    cfg = tiny_train_config(tmp_path / variant, mrilab_spec, stage="physics", task="p2p", variant=variant,
                            depth=3, work_size=64, steps=2)
    ckpt = train(cfg, quiet=True)
    card = torch.load(ckpt, weights_only=True)["card"]
    assert (card["arch"], card["depth"], card["work_size"]) == (arch, 3, 64)
    engine = Reparameterizer(str(ckpt), weights=str(ckpt), device="cpu")
    assert engine.renders_from_maps == (arch == "physics")
    images = np.random.default_rng(0).uniform(0, 1, (3, 50, 40)).astype(np.float32)
    out = engine.predict(images, Acquisition(np.array([30.0, 80.0, 200.0]), 3000.0), Acquisition(50.0, 4500.0))
    assert out.shape == images.shape and np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_physics_on_the_phantoms_own_grid_trains_predicts_and_evaluates(tmp_path, mrilab_spec):
    from napari_mr_reparam.inference import Reparameterizer
    from napari_mr_reparam.training.evaluate import evaluate
    from napari_mr_reparam.training.physics_stage import PhysicsStage

    cfg = tiny_train_config(tmp_path / "native", mrilab_spec, stage="physics", task="p2p", depth=3,
                            work_size=64, native_input=True, steps=2)
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
    report = evaluate(engine, "p2p", mrilab_spec, limit=4)
    assert report["count"] == 4 and np.isfinite(report["psnr_mean"])
    bands = report["psnr_by_target_te"]  # the four images, each in its target TE's band
    assert sum(b["count"] for b in bands) == 4
    assert all(b["range"][0] >= 20 and np.isfinite(b["mean"]) for b in bands)
    assert report["calibrate_peak"] is True
    report_file = tmp_path / "max_peak.json"
    assert train_main(["evaluate", "--weights", str(ckpt), "--phantom", mrilab_spec, "--limit", "4",
                       "--max-peak", "--json", str(report_file), "--device", "cpu"]) == 0
    assert json.loads(report_file.read_text())["calibrate_peak"] is False


def test_map_supervision_uses_the_phantoms_maps(tmp_path, mrilab_spec):
    from napari_mr_reparam.training.physics_stage import PhysicsStage, map_loss

    with pytest.raises(ValueError, match="native_input"):
        tiny_train_config(tmp_path / "run", mrilab_spec, stage="physics", map_weight=0.1)
    cfg = tiny_train_config(tmp_path / "maps", mrilab_spec, stage="physics", task="d2p", depth=3,
                            work_size=128, native_input=True, map_weight=0.1, targets_per_input=2, steps=2)
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



def test_keep_detail_trains_through_the_engines_guided_render(tmp_path, mrilab_spec):
    from napari_mr_reparam.detail import guided_upsample
    from napari_mr_reparam.models import from_model_range, to_model_range
    from napari_mr_reparam.training.physics_stage import PhysicsStage

    with pytest.raises(ValueError, match="keep_detail"):
        tiny_train_config(tmp_path / "bad", mrilab_spec, stage="physics", variant="direct", keep_detail=True)
    cfg = tiny_train_config(tmp_path / "detail", mrilab_spec, stage="physics", task="p2p", depth=3,
                            work_size=32, native_input=True, keep_detail=True, steps=2)
    stage = PhysicsStage(cfg)
    assert stage.model.keep_detail
    image = to_model_range(torch.rand(2, 1, 64, 64))
    te, tr = torch.tensor([[30.0, 90.0]] * 2), torch.tensor([[3000.0, 600.0]] * 2)
    inp = torch.tensor([50.0, 50.0]), torch.tensor([4500.0, 4500.0])
    out, maps = stage.model(image, te, tr, *inp, return_maps=True)
    guided = guided_upsample(stage.model.render(maps, te, tr), from_model_range(image))
    torch.testing.assert_close(from_model_range(out), guided)  # the engine's render, not a resize
    stage.model.keep_detail = False
    assert not torch.allclose(stage.model(image, te, tr, *inp), out)
    ckpt = train(cfg, quiet=True)
    assert torch.load(ckpt, weights_only=True)["card"]["trained_with_detail"] is True


def test_truth_maps_shrink_to_the_grid_with_times_mixed_by_water():
    import torch

    from napari_mr_reparam.training.physics_stage import map_loss, shrink_maps

    truth = torch.zeros(1, 3, 2, 2)
    truth[0, 0] = torch.tensor([[0.8, 0.8], [1.0, 0.0]])   # PD: three tissue pixels, one empty
    truth[0, 1] = torch.tensor([[1400.0, 1400.0], [4000.0, 0.0]])
    truth[0, 2] = torch.tensor([[100.0, 100.0], [2000.0, 0.0]])
    small = shrink_maps(truth, (1, 1))[0, :, 0, 0]
    assert float(small[0]) == pytest.approx(2.6 / 4)
    expected_t2 = float(np.exp((1.6 * np.log(100.0) + 1.0 * np.log(2000.0)) / 2.6))
    assert float(small[2]) == pytest.approx(expected_t2, rel=1e-4)
    assert float(small[2]) < 0.5 * float(truth[0, 2].sum() / 3)  # a plain mean is CSF-like
    empty = shrink_maps(torch.zeros(1, 3, 2, 2), (1, 1))
    assert float(empty.abs().sum()) == 0.0
    maps = {"pd": small[None, :1, None, None], "t1": small[None, 1:2, None, None],
            "t2": small[None, 2:3, None, None]}
    assert float(map_loss(maps, truth)) < 1e-8
    assert float(map_loss(maps, truth, geometric=False)) > 0.1
