"""Training stages (training/tasks.py): the process rank is handed to every batch source."""

from napari_mr_reparam.training import data, physics_stage, tasks
from napari_mr_reparam.training.config import TrainConfig


def test_the_rank_reaches_every_stages_batches(monkeypatch):
    seen = []

    def record(cfg, rank=0):
        seen.append((cfg.stage, rank))
        return object()

    monkeypatch.setattr(tasks, "training_batches", record)
    monkeypatch.setattr(data, "training_batches", record)
    monkeypatch.setattr(physics_stage, "training_batches", record)
    for stage in ("paramnet", "autoencoder", "physics"):
        tasks.build_stage(TrainConfig(stage=stage, width=0.0625, natural_steps=0, data="stream",
                                      depth=3), rank=3)
    assert seen == [("paramnet", 3), ("autoencoder", 3), ("physics", 3)]
