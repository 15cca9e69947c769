import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_napari_settings(tmp_path_factory):
    """napari reads and writes its settings here, not in the user's profile."""
    import os

    os.environ["NAPARI_CONFIG"] = str(tmp_path_factory.mktemp("napari") / "settings.yaml")
    yield


@pytest.fixture
def tiny_weights(tmp_path, monkeypatch):
    """Random tiny d2p, p2p and physics weight sets, installed as the bundled ones for one test."""
    import torch

    from napari_mr_reparam import weights
    from napari_mr_reparam.models import ReparamNet, xavier_init_

    for task in ("d2p", "p2p"):
        torch.manual_seed(0)
        net = xavier_init_(ReparamNet(task, width=0.0625))
        card = {"arch": "paper", "task": task, "width": 0.0625, "name": task}
        weights.save_weights(net.state_dict(), card, tmp_path / f"{task}.safetensors")
    from napari_mr_reparam.models.physics_net import PhysicsNet

    net = PhysicsNet(base=4, depth=3, task="p2p")
    card = {"arch": "physics", "task": "p2p", "width": 0.03, "base": 4, "depth": 3, "name": "physics",
            "config": {"keep_detail": True}}  # as the bundled generalist: trained on guided renders
    weights.save_weights(net.state_dict(), card, tmp_path / "physics.safetensors")
    monkeypatch.setattr(weights, "BUNDLED_DIR", tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def mrilab_spec():
    """The shared MRiLab phantom as a phantom spec (skips without ../shared/)."""
    from helpers import mrilab_path

    return f"mrilab:{mrilab_path()}"


@pytest.fixture(scope="session")
def tiny_paramnet_run(tmp_path_factory, mrilab_spec):
    """A tiny autoencoder (1 natural-image step, 1 MR step) and a Default-to-Param Param-Net
    of 3 steps on its frozen encoder: (the Param-Net's config, the autoencoder's checkpoint,
    the Param-Net's checkpoint). Tests that change the run work on a copy."""
    from helpers import tiny_train_config

    from napari_mr_reparam.training.loop import train

    root = tmp_path_factory.mktemp("tiny_runs")
    ae = train(tiny_train_config(root / "ae", mrilab_spec, stage="autoencoder", natural_steps=1, steps=2),
               quiet=True)
    cfg = tiny_train_config(root / "d2p", mrilab_spec, stage="paramnet", task="d2p", steps=3,
                            autoencoder=str(ae))
    return cfg, ae, train(cfg, quiet=True)
