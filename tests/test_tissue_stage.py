"""The tissue stage (training/tissue_stage.py): its loss and a short run on the stream."""

import pytest
import torch
from helpers import tiny_train_config

from napari_mr_reparam.training.loop import train
from napari_mr_reparam.training.tissue_stage import fraction_loss


def test_the_loss_is_least_at_the_true_fractions_and_counts_the_background():
    tissues = torch.zeros(1, 2, 4, 4)
    tissues[0, 0, :2] = 1.0  # top half tissue 1, bottom half background
    truth = torch.cat([1 - tissues.sum(1, keepdim=True), tissues], 1)
    right = fraction_loss(20 * truth - 10, tissues)
    swapped = fraction_loss(20 * truth.flip(2) - 10, tissues)
    assert right.item() < 1e-3 < 1.0 < swapped.item()
    coarse = fraction_loss(torch.zeros(1, 3, 2, 2), tissues)  # truth area-averaged to the logits
    assert coarse.item() == pytest.approx(torch.log(torch.tensor(3.0)).item(), rel=1e-5)


def test_a_short_run_writes_a_tissue_card(tmp_path):
    cfg = tiny_train_config(tmp_path / "t", "mni152", stage="tissue", data="stream", steps=2,
                            acquisition={}, input_sequences=["spin_echo", "mprage"], targets_per_input=1,
                            native_input=True, work_size=32, depth=2)
    blob = torch.load(train(cfg, quiet=True), weights_only=True)
    assert blob["card"]["arch"] == "tissue" and blob["step"] == 2
    with pytest.raises(ValueError, match="stream with acquisition effects"):
        train(tiny_train_config(tmp_path / "p", "mni152", stage="tissue", steps=1), quiet=True)
