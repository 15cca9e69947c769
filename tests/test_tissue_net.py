"""The tissue network (models/tissue_net.py): fractions that sum to one, on the work grid,
started from the physics network's U-Net."""

import torch

from napari_mr_reparam.models.physics_net import PhysicsNet
from napari_mr_reparam.models.tissue_net import CLASSES, TissueNet
from napari_mr_reparam.tissues import TISSUES


def test_fractions_sum_to_one_on_the_work_grid_for_any_sequence():
    net = TissueNet(base=4, depth=2, work_size=16).eval()
    image = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        out = net.fractions(image, [15.0, 3.0], [500.0, 2300.0], ["spin_echo", "mprage"], [0.0, 900.0], [0.0, 9.0])
    assert out.shape == (2, len(CLASSES), 16, 16) and CLASSES == ("background", *TISSUES)
    assert torch.allclose(out.sum(1), torch.ones(2, 16, 16), atol=1e-5)


def test_it_starts_from_the_physics_networks_body_but_not_its_head():
    physics = PhysicsNet(base=4, depth=2, input_sequences=True)
    net = TissueNet(base=4, depth=2)
    head_before = net.head.weight.clone()
    missing, unexpected = net.load_initial_state(physics.state_dict())
    assert missing == [] and unexpected == []
    assert torch.equal(net.down[0].conv1.weight, physics.down[0].conv1.weight)
    assert torch.equal(net.head.weight, head_before)


def test_a_card_rebuilds_the_network():
    net = TissueNet.from_card({"arch": "tissue", "base": 4, "depth": 2, "work_size": 32, "native_input": True})
    assert (net.base, net.depth, net.work_size, net.native_input) == (4, 2, 32, True)
