"""Training batch sources (training/data.py): one entry per data kind and stage, and the
autoencoder's two phases across a resume."""

import pytest
from helpers import mrilab_path

from napari_mr_reparam.training import data
from napari_mr_reparam.training.config import TrainConfig
from napari_mr_reparam.training.loop import train


@pytest.fixture
def phases(monkeypatch):
    """Which phase each autoencoder batch came from (True: natural images)."""
    drawn = []
    real = data.ReconstructionBatches.next

    def spy(self, rng, batch_size):
        drawn.append(self.natural is not None and self.step < self.cfg.natural_steps)
        return real(self, rng, batch_size)

    monkeypatch.setattr(data.ReconstructionBatches, "next", spy)
    return drawn


def test_a_resumed_autoencoder_does_not_replay_its_natural_images(tmp_path, phases):
    cfg = TrainConfig(stage="autoencoder", width=0.0625, pairs=8, slices=4, batch_size=2, natural_steps=2,
                      steps=2, checkpoint_every=2, log_every=1, threads=1,
                      phantoms=[f"mrilab:{mrilab_path()}"], out=str(tmp_path / "ae"))
    train(cfg, quiet=True)
    cfg.steps = 4
    train(cfg, resume=True, quiet=True)
    assert phases == [True, True, False, False]


def test_one_entry_gives_each_stage_its_protocol_batches(mrilab_spec):
    import numpy as np

    from helpers import tiny_train_config

    rng = np.random.default_rng(0)
    paper = data.training_batches(tiny_train_config("unused", mrilab_spec, stage="paramnet", task="p2p", size=128))
    assert isinstance(paper, data.ProtocolBatches)
    batch = paper.next(rng, 3)
    assert batch["input"].shape == batch["target"].shape == (3, 1, 128, 128) and batch["target_te"].shape == (3,)
    physics = data.training_batches(tiny_train_config("unused", mrilab_spec, stage="physics", task="p2p",
                                                      size=32, targets_per_input=2, depth=3))
    assert isinstance(physics, data.ProtocolTargets)
    batch = physics.next(rng, 3)
    assert batch["input"].shape == (3, 1, 32, 32) and batch["target"].shape == (3, 2, 32, 32)
    assert batch["target_te"].shape == (3, 2)
    with pytest.raises(ValueError, match="unknown data 'disk'; known: paper, stream"):  # refused at config time
        data.training_batches(TrainConfig(data="disk"))


@pytest.mark.parametrize("stage", ["paramnet", "physics"])
def test_an_empty_training_split_is_one_line_before_training(stage, mrilab_spec, tmp_path):
    from helpers import tiny_train_config

    cfg = tiny_train_config("unused", mrilab_spec, stage=stage, task="d2p", pairs=1, slices=1, depth=3)
    with pytest.raises(ValueError, match=r"^the training split holds no samples: the train part of the paper "
                                         r"split of 1 pairs x 1 slices is empty; give more pairs or slices$"):
        data.training_batches(cfg)


def test_loader_workers_make_the_streams_batches_ahead_each_worker_its_own(mrilab_spec):
    import numpy as np

    from helpers import tiny_train_config

    cfg = tiny_train_config("unused", mrilab_spec, stage="physics", task="p2p", data="stream", size=32,
                            targets_per_input=2, depth=3, loader_workers=2, batch_size=2)
    source = data.training_batches(cfg)
    assert isinstance(source, data.WorkerBatches)
    first, second = source.next(None, 2), source.next(None, 2)
    assert tuple(first["input"].shape) == (2, 1, 32, 32) and tuple(first["target"].shape) == (2, 2, 32, 32)
    assert not np.array_equal(np.asarray(first["input"]), np.asarray(second["input"]))  # two workers' streams
    again = data.training_batches(cfg).next(None, 2)
    np.testing.assert_array_equal(np.asarray(again["input"]), np.asarray(first["input"]))  # the same run
    resumed = data.training_batches(cfg)
    resumed.skip(100)
    assert not np.array_equal(np.asarray(resumed.next(None, 2)["input"]), np.asarray(first["input"]))
    with pytest.raises(ValueError, match="batches of 2"):
        source.next(None, 3)
    with pytest.raises(ValueError, match="loader_workers"):
        TrainConfig(loader_workers=-1)


def test_a_resumed_stream_draws_examples_it_has_not_drawn(mrilab_spec):
    import numpy as np

    from helpers import tiny_train_config

    cfg = tiny_train_config("unused", mrilab_spec, stage="physics", task="p2p", data="stream", size=32,
                            targets_per_input=2, depth=3)
    fresh, resumed, again = (data.training_batches(cfg) for _ in range(3))
    resumed.skip(100)
    again.skip(0)
    first = fresh.next(None, 2)["input"]
    np.testing.assert_array_equal(again.next(None, 2)["input"], first)
    assert not np.array_equal(resumed.next(None, 2)["input"], first)
