"""Training stages (training/tasks.py): the process rank is handed to every batch source,
and the Param-Net takes its frozen encoder from a fitting autoencoder, never a random one."""

import pytest
import torch

from napari_mr_reparam.models import Autoencoder
from napari_mr_reparam.training import data, physics_stage, tasks
from napari_mr_reparam.training.config import TrainConfig


def _autoencoder(path, width):
    torch.save({"model": Autoencoder(width=width).state_dict(), "card": {"arch": "autoencoder", "width": width}},
               path)
    return str(path)


def test_the_rank_reaches_every_stages_batches(monkeypatch, tmp_path):
    seen = []

    def record(cfg, rank=0):
        seen.append((cfg.stage, rank))
        return object()

    monkeypatch.setattr(tasks, "training_batches", record)
    monkeypatch.setattr(data, "training_batches", record)
    monkeypatch.setattr(physics_stage, "training_batches", record)
    ae = _autoencoder(tmp_path / "ae.pt", 0.0625)
    for stage in ("paramnet", "autoencoder", "physics"):
        tasks.build_stage(TrainConfig(stage=stage, width=0.0625, natural_steps=0, data="stream",
                                      depth=3, autoencoder=ae if stage == "paramnet" else ""), rank=3)
    assert seen == [("paramnet", 3), ("autoencoder", 3), ("physics", 3)]


def test_a_param_net_without_an_autoencoder_is_refused_saying_how_to_get_one(monkeypatch):
    monkeypatch.setattr(tasks, "training_batches", lambda cfg, rank=0: pytest.fail("data loaded"))
    with pytest.raises(ValueError, match=r"^phase 2 \(paramnet\) trains on the frozen encoder of the autoencoder "
                                         r"from phase 1: give its checkpoint with --autoencoder .*"
                                         r"napari-mr-reparam-train autoencoder --config training/autoencoder\.toml$"):
        tasks.build_stage(TrainConfig(stage="paramnet", width=0.0625))


def test_an_autoencoder_of_another_width_is_one_line_saying_so(monkeypatch, tmp_path):
    from napari_mr_reparam.weights import WeightsError

    monkeypatch.setattr(tasks, "training_batches", lambda cfg, rank=0: pytest.fail("data loaded"))
    ae = _autoencoder(tmp_path / "ae.pt", 0.125)
    with pytest.raises(WeightsError, match=r"ae\.pt: weights do not fit this network \(tensors of other shapes: "
                                           r"size mismatch for \S+\); it is an autoencoder of width 0\.125, "
                                           r"this run's width is 0\.0625$"):
        tasks.build_stage(TrainConfig(stage="paramnet", width=0.0625, autoencoder=ae))


def test_a_paramnet_run_whose_autoencoder_checkpoint_is_missing_says_to_train_phase_1(tmp_path):
    cfg = TrainConfig(stage="paramnet", autoencoder=str(tmp_path / "ae" / "checkpoint.pt"))
    with pytest.raises(FileNotFoundError, match="no autoencoder checkpoint .*train it first with "
                                                "napari-mr-reparam-train autoencoder"):
        tasks.ParamNetStage(cfg)
