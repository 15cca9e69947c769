import numpy as np
import pytest
import torch

from napari_mr_reparam.models import (
    Autoencoder, Encoder, ParamNet, ReparamNet, parameter_vector, xavier_init_,
)
from napari_mr_reparam.models.paramnet import param_tensor


def count(module):
    return sum(p.numel() for p in module.parameters())


def _hand_counted(width=1.0):
    """Parameters of encoder + Param-Net from the layout, by hand."""
    enc = [64, 64, 128, 256, 512, 512, 512, 512]
    encoder = 9 * 1 * enc[0] + sum(9 * a * b + 2 * b for a, b in zip(enc[:-1], enc[1:]))
    blocks = [(512, 512), (512, 512), (512, 512), (512, 256), (256, 128), (128, 64), (64, 64), (64, 32)]
    paramnet = 0
    for cin, cout in blocks:
        paramnet += 9 * cin * cin + cin                       # transposed conv
        paramnet += 2 * (9 * 2 * cin * cin + cin + 2 * cin)   # merge and inject convs + affine IN
        paramnet += 9 * cin * cout + cout + 2 * cout          # out conv + IN
    paramnet += 9 * 32 * 16 + 16 + 32 + 9 * 16 + 1            # head
    return encoder, paramnet


def test_full_width_layout_and_counts():
    encoder, paramnet = _hand_counted()
    net = ReparamNet("d2p", width=1.0)
    assert count(net.encoder) == encoder
    assert count(net.paramnet) == paramnet
    assert 60e6 < count(net) < 78e6  # the paper's ~69 M
    assert Encoder(1.0).channels == [64, 64, 128, 256, 512, 512, 512, 512]


def test_encoder_feature_sizes_and_autoencoder_range():
    enc = Encoder(0.0625).eval()
    with torch.no_grad():
        feats = enc(torch.zeros(1, 1, 256, 256))
    assert [f.shape[-1] for f in feats] == [256, 128, 64, 32, 16, 8, 4, 2]
    ae = Autoencoder(0.0625).eval()
    with torch.no_grad():
        y = ae(torch.rand(2, 1, 256, 256) * 2 - 1)
    assert y.shape == (2, 1, 256, 256) and y.abs().max() <= 1


def test_eighth_width_is_about_a_million_parameters():
    assert 0.9e6 < count(ReparamNet("d2p", width=0.125)) < 1.3e6


@pytest.mark.parametrize("task", ["d2p", "p2p"])
def test_efficient_injection_equals_naive(task):
    torch.manual_seed(0)
    fast = xavier_init_(ReparamNet(task, width=0.125)).double().eval()
    slow = ReparamNet(task, width=0.125, injection="naive").double().eval()
    slow.load_state_dict(fast.state_dict())
    x = torch.rand(2, 1, 256, 256, dtype=torch.float64) * 2 - 1
    args = (torch.tensor([30.0, 400.0]), torch.tensor([2000.0, 9000.0]),
            torch.tensor([40.0, 60.0]), torch.tensor([3000.0, 5000.0]))
    with torch.no_grad():
        diff = (fast(x, *args) - slow(x, *args)).abs().max().item()
    assert diff <= 1e-5


def test_parameter_layout_matches_the_authors():
    v = parameter_vector("p2p", 100.0, 3000.0, 50.0, 4500.0)
    assert v[0].tolist() == pytest.approx([0.05, 4.5, 0.1, 3.0])  # seconds: input TE, input TR, target TE, TR
    t = param_tensor(parameter_vector("d2p", 100.0, 3000.0), 6, 1, 1)
    assert t[0, :, 0, 0].tolist() == pytest.approx([0.1, 3.0, 0.1, 3.0, 0.1, 3.0])


def test_d2p_ignores_input_times_and_p2p_needs_them():
    net = ReparamNet("d2p", width=0.0625).eval()
    x = torch.rand(1, 1, 256, 256)
    with torch.no_grad():
        assert torch.equal(net(x, 80.0, 3000.0), net(x, 80.0, 3000.0, 10.0, 500.0))
    with pytest.raises(ValueError, match="input image's TE and TR"):
        ReparamNet("p2p", width=0.0625)(x, 80.0, 3000.0)
    with pytest.raises(ValueError):
        ParamNet(0.0625, injection="magic")


def test_physics_net_maps_are_bounded_and_render_follows_the_equation():
    from napari_mr_reparam import peaks, physics
    from napari_mr_reparam.models.physics_net import T1_RANGE_MS, T2_RANGE_MS, PhysicsNet

    torch.manual_seed(0)
    net = PhysicsNet(base=4, depth=3, task="p2p").eval()
    x = torch.rand(2, 1, 256, 256)
    with torch.no_grad():
        maps = net.maps(x, torch.tensor([50.0, 20.0]), torch.tensor([4500.0, 600.0]))
        assert maps["t1"].shape == (2, 1, 128, 128)  # the 128-px working size
        assert 0 <= maps["pd"].min() and maps["pd"].max() <= 1
        assert T1_RANGE_MS[0] <= maps["t1"].min() and maps["t1"].max() <= T1_RANGE_MS[1]
        assert T2_RANGE_MS[0] <= maps["t2"].min() and maps["t2"].max() <= T2_RANGE_MS[1]
        raw = net.render(maps, 80.0, 3000.0, normalize=False)
        expected = physics.spin_echo(maps["pd"], maps["t1"], maps["t2"], 80.0, 3000.0)
        assert torch.allclose(raw, expected)
        te, tr = torch.tensor([[30.0, 90.0, 200.0]] * 2), torch.tensor([[800.0, 3000.0, 9000.0]] * 2)
        several = net.render({k: maps[k] for k in ("pd", "t1", "t2")}, te, tr)
        assert several.shape == (2, 3, 128, 128) and torch.allclose(several.amax(dim=(-2, -1)), torch.ones(2, 3))
        count = maps["peak_count"]  # calibrated on the input: the maps carry it to every render
        assert count.shape == (2,) and int(count.min()) >= 1
        calibrated = net.render(maps, te, tr)
        raw = net.render(maps, te, tr, normalize=False)
        expected = peaks.normalize(raw, count.reshape(2, 1)).clamp_max(1.0)
        assert torch.allclose(calibrated, expected)
        out = net(x * 2 - 1, torch.tensor([80.0, 80.0]), torch.tensor([3000.0, 3000.0]),
                  torch.tensor([50.0, 20.0]), torch.tensor([4500.0, 600.0]))
        assert out.shape == (2, 1, 256, 256) and out.min() >= -1 and out.max() <= 1


def test_data_consistency_pulls_the_input_render_toward_the_input():
    from napari_mr_reparam.models.physics_net import PhysicsNet

    torch.manual_seed(0)
    net = PhysicsNet(base=4, depth=3, task="p2p").eval()
    x = torch.rand(2, 1, 64, 64) * torch.linspace(0.2, 1.0, 64)  # bright and dark regions
    te, tr = torch.tensor([50.0, 20.0]), torch.tensor([4500.0, 600.0])
    with torch.no_grad():
        plain = net.maps(x, te, tr)
        assert net.consistency == 0  # training sees the network's own maps
        errors = []
        for weight in (0.0, 0.5, 1.0):
            net.consistency = weight
            maps = net.maps(x, te, tr)
            errors.append((net.render(maps, te, tr) - x).abs().mean().item())
        assert not torch.equal(maps["pd"], plain["pd"])
    assert errors[0] > errors[1] > errors[2]


def _uniform_maps(pd=0.8, t1=1000.0, t2=100.0, size=16):
    full = torch.ones(1, 1, size, size)
    return {"pd": full * pd, "t1": full * t1, "t2": full * t2}


def test_data_consistency_leaves_maps_that_explain_the_input_alone():
    from napari_mr_reparam.models.physics_net import PhysicsNet

    net = PhysicsNet(base=4, depth=3)
    net.consistency = 1.0
    maps = _uniform_maps()
    maps["t2"][..., :8] = 300.0  # some contrast, so the input is not flat
    te, tr = torch.tensor([80.0]), torch.tensor([2500.0])
    image = net.render(maps, te, tr)
    out = net.consistent_maps(maps, image, te, tr)
    for key in maps:
        torch.testing.assert_close(out[key], maps[key], rtol=1e-4, atol=0)


@pytest.mark.parametrize("te, tr, moves_most", [(300.0, 3000.0, "t2"), (10.0, 10000.0, "pd")])
def test_data_consistency_corrects_the_map_the_input_is_sensitive_to(te, tr, moves_most):
    from napari_mr_reparam.models.physics_net import PhysicsNet

    net = PhysicsNet(base=4, depth=3)
    net.consistency = 1.0
    maps = _uniform_maps()
    te_, tr_ = torch.tensor([te]), torch.tensor([tr])
    image = net.render(maps, te_, tr_)
    image[..., :8] *= 0.8  # the left half is darker than the maps say
    out = net.consistent_maps(maps, image, te_, tr_)
    change = {k: (out[k] / maps[k]).log()[..., 0, 0].abs().item() for k in maps}
    assert change[moves_most] == max(change.values()) and change[moves_most] > 0.01


@pytest.mark.parametrize("sequence, acquisition", [
    ("mprage", dict(ti=900.0, flip=9.0, te=3.0, tr=2300.0)),
    ("inversion_recovery", dict(ti=2500.0, flip=None, te=120.0, tr=9000.0)),
])
def test_other_sequences_move_pd_alone_and_least_where_the_signal_hangs_on_t1(sequence, acquisition):
    from napari_mr_reparam.models.physics_net import PhysicsNet, log_sensitivities

    net = PhysicsNet(base=4, depth=3)
    maps = _uniform_maps(t1=800.0)
    maps["t1"][..., 8:] = 1400.0  # two tissues, one more sensitive to T1 than the other
    te, tr = torch.tensor([acquisition["te"]]), torch.tensor([acquisition["tr"]])
    ti = torch.tensor([acquisition["ti"]])
    flip = None if acquisition["flip"] is None else torch.tensor([acquisition["flip"]])
    args = (sequence, ti, flip)
    image = net.render(maps, te, tr, *args, normalize=False)
    image = image / image.amax()
    image[:, :, :8] *= 0.9  # the top rows darker than the maps say
    out = net.consistent_maps(maps, image, te, tr, 1.0, *args)
    torch.testing.assert_close(out["t1"], maps["t1"])
    torch.testing.assert_close(out["t2"], maps["t2"])
    moved = (out["pd"] / maps["pd"]).log()[0, 0]
    assert (moved[:8] < -0.002).all() and (moved[8:] > 0).all()  # the darkened rows lose PD
    t1_slope = log_sensitivities(net.render, maps, (te, tr, *args))["t1"][0, 0, 0].abs()
    steep, flat = (0, 8) if t1_slope[0] > t1_slope[8] else (8, 0)  # the two tissues' columns
    assert moved[0, steep] > moved[0, flat]  # the same mismatch moves PD less where T1 explains it


def test_log_sensitivities_agree_with_the_spin_echo_closed_form():
    from napari_mr_reparam.models.physics_net import PhysicsNet, log_sensitivities

    maps = _uniform_maps(t1=900.0, t2=90.0)
    acq = (torch.tensor([60.0]).reshape(-1, 1, 1, 1), torch.tensor([2000.0]).reshape(-1, 1, 1, 1))
    closed = log_sensitivities(PhysicsNet.render, maps, (*acq, "spin_echo", None, None))
    numeric = log_sensitivities(PhysicsNet.render, maps, (*acq, "gradient_echo", None, 90.0))
    for key in ("t1", "t2"):  # a 90-degree spoiled gradient echo with T2* = T2 is the spin echo's equation
        torch.testing.assert_close(numeric[key], closed[key], rtol=2e-3, atol=1e-4)


def test_flip_average_makes_the_maps_mirror_equivariant():
    from napari_mr_reparam.models.physics_net import PhysicsNet

    torch.manual_seed(0)
    net = PhysicsNet(base=8, depth=3, task="d2p").eval()
    with torch.no_grad():
        for p in net.film.parameters():
            p.normal_(0, 0.1)  # FiLM off zero, so the conditioning acts too
    image = torch.rand(1, 1, 24, 20)
    mirrored = image.flip(-1)
    with torch.no_grad():
        plain = net.maps(image)["t2"]
        assert not torch.allclose(net.maps(mirrored)["t2"].flip(-1), plain, rtol=1e-3)  # a plain
        net.flip_average = True  # network reads a mirrored head differently; averaged, it cannot
        averaged = net.maps(image)["t2"]
        assert torch.allclose(net.maps(mirrored)["t2"].flip(-1), averaged, rtol=1e-5)
        assert not torch.allclose(averaged, plain, rtol=1e-3)
        net.train()  # training sees single readings (group norm: train and eval agree)
        assert torch.allclose(net.maps(image)["t2"], plain, rtol=1e-5)


def test_networks_conditioned_on_the_input_sequence_and_old_ones_still_read_spin_echo():
    import torch

    from napari_mr_reparam.models.physics_net import SEQUENCE_CONDITIONS, PhysicsNet, condition_vector

    cond = condition_vector([10.0, 3.0], [500.0, 2300.0], ["spin_echo", "mprage"], [0.0, 900.0], [0.0, 9.0])
    assert cond.shape == (2, SEQUENCE_CONDITIONS)
    np.testing.assert_allclose(cond[1, 2:].numpy(), [0, 0, 0, 1, 0.9, 0.1], atol=1e-6)
    assert condition_vector([10.0], [500.0]).shape == (1, 2)
    image = torch.rand(2, 1, 32, 32)
    new = PhysicsNet.from_card({"base": 4, "depth": 2, "task": "p2p", "input_sequences": True}).eval()
    torch.manual_seed(0)
    torch.nn.init.normal_(new.film[-1].weight, std=0.5)  # the conditions now reach the U-Net
    a = new.maps(image, 3.0, 2300.0, "mprage", 900.0, 9.0)["t1"]
    b = new.maps(image, 3.0, 2300.0, "gradient_echo", None, 9.0)["t1"]
    assert not torch.allclose(a, b)
    old = PhysicsNet.from_card({"base": 4, "depth": 2, "task": "p2p"}).eval()
    assert old.film[0].in_features == 2 and old.maps(image, 20.0, 600.0)["t1"].shape == (2, 1, 32, 32)
    with pytest.raises(ValueError, match="spin-echo inputs only"):
        old.maps(image, 3.0, 2300.0, "mprage", 900.0, 9.0)


def test_condition_vector_stays_on_the_device_of_the_times():
    """Training on a GPU passes TE/TR as device tensors; every column must follow them
    (the "meta" device stands in for CUDA: mixing it with CPU tensors fails the same way)."""
    import torch

    from napari_mr_reparam.models.physics_net import SEQUENCE_CONDITIONS, condition_vector

    te = torch.tensor([10.0, 3.0], device="meta")
    tr = torch.tensor([500.0, 2300.0], device="meta")
    cond = condition_vector(te, tr, ["spin_echo", "mprage"], torch.tensor([0.0, 900.0], device="meta"), 9.0)
    assert cond.device.type == "meta" and cond.shape == (2, SEQUENCE_CONDITIONS)
