"""Widening a trained physics network without changing what it computes (training/widen.py)."""

import pytest
import torch

from napari_mr_reparam.models.physics_net import PhysicsNet, condition_vector
from napari_mr_reparam.training.widen import main, widened_state


def _net(base):
    torch.manual_seed(0)
    net = PhysicsNet(base=base, depth=4, input_sequences=True)
    for p in net.parameters():  # FiLM starts at zero; give every part a say
        p.data.normal_(0, 0.2)
    return net.eval()


def test_the_widened_network_computes_what_the_narrow_one_does():
    narrow = _net(8)
    wide = PhysicsNet(base=16, depth=4, input_sequences=True).eval()
    wide.load_state_dict(widened_state(narrow.state_dict(), 4), strict=True)
    x = torch.rand(2, 1, 32, 32)
    cond = condition_vector([15.0, 100.0], [500.0, 4000.0], ["spin_echo", "mprage"], [0.0, 900.0], [0.0, 9.0])
    with torch.no_grad():
        a, b = narrow.run(x, cond), wide.run(x, cond)
    assert torch.allclose(a, b, atol=1e-4 * float(a.abs().max()))
    # the two copies of a channel take different halves of a weight, so they can learn apart
    w = wide.down[1].conv1.weight
    assert not torch.allclose(w[:, 0], w[:, 8])


def test_the_command_writes_a_checkpoint_and_keeps_an_existing_file(tmp_path, capsys):
    narrow = _net(8)
    source = tmp_path / "narrow.pt"
    torch.save({"model": narrow.state_dict(), "card": {"width": 0.0625, "depth": 4}}, source)
    out = tmp_path / "wide.pt"
    assert main([str(source), str(out)]) == 0
    assert "width 0.125" in capsys.readouterr().out
    state = torch.load(out, weights_only=True)["model"]
    assert state["down.0.conv1.weight"].shape[0] == 16
    with pytest.raises(SystemExit):
        main([str(source), str(out)])
