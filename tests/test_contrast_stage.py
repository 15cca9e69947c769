"""The contrast stage (training/contrast_stage.py): labels from a batch and a short run."""

import numpy as np
import pytest
import torch
from helpers import tiny_train_config

from napari_mr_reparam.contrast import CLASSES, load_classifier
from napari_mr_reparam.physics import INPUT_SEQUENCES
from napari_mr_reparam.training.contrast_stage import batch_labels
from napari_mr_reparam.training.loop import train


def test_batch_labels_follow_each_example_acquisition():
    batch = {"input_seq": np.array([INPUT_SEQUENCES.index(s) for s in
                                    ("spin_echo", "spin_echo", "inversion_recovery", "mprage")], np.float32),
             "input_te": np.array([15, 100, 120, 3], np.float32), "input_tr": np.array([500, 4000, 9000, 2300], np.float32),
             "input_ti": np.array([0, 0, 2500, 900], np.float32), "input_flip": np.array([0, 0, 0, 9], np.float32)}
    assert [CLASSES[i] for i in batch_labels(batch)] == ["T1w", "T2w", "FLAIR", "MPRAGE"]


def test_a_short_run_writes_a_classifier_the_package_loads(tmp_path):
    cfg = tiny_train_config(tmp_path / "c", "mni152", stage="contrast", data="stream", task="p2p", steps=2,
                            acquisition={}, input_sequences=["spin_echo", "mprage"], native_input=True,
                            targets_per_input=1, width=0.03125)
    checkpoint = train(cfg, quiet=True)
    blob = torch.load(checkpoint, weights_only=True)
    assert blob["card"]["arch"] == "contrast" and blob["card"]["classes"] == list(CLASSES)
    net, card = load_classifier(str(checkpoint))
    assert net(torch.rand(2, 1, 40, 56)).shape == (2, len(CLASSES))
    with pytest.raises(ValueError, match="p2p stream with acquisition effects"):
        train(tiny_train_config(tmp_path / "p", "mni152", stage="contrast", steps=1), quiet=True)


def test_classifier_weights_that_do_not_fit_their_card_are_one_line(tmp_path):
    from napari_mr_reparam.weights import WeightsError, load_weights, save_weights

    state, card = load_weights("contrast")
    bad = tmp_path / "wide.safetensors"
    save_weights(state, {**card, "base": int(card["base"]) * 2}, bad)
    with pytest.raises(WeightsError, match="do not fit the contrast classifier its card names"):
        load_classifier(str(bad))
    unnamed = tmp_path / "unnamed.safetensors"
    save_weights(state, {key: value for key, value in card.items() if key != "work_size"}, unnamed)
    with pytest.raises(WeightsError, match="its card gives no 'work_size'"):
        load_classifier(str(unnamed))
