import math

import numpy as np
import pytest
import torch

from napari_mr_reparam import physics


def test_spin_echo_hand_computed():
    # CSF at 1.5 T (BrainWeb): PD 1, T1 2569 ms, T2 329 ms; TE 50 ms, TR 4500 ms
    expected = 1.0 * (1 - math.exp(-4500 / 2569)) * math.exp(-50 / 329)
    assert physics.spin_echo(1.0, 2569.0, 329.0, 50.0, 4500.0) == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(0.70998, abs=1e-4)


def test_inversion_recovery_nulls_at_t1_ln2():
    t1 = 2569.0
    ti_null = t1 * math.log(2)
    signal = physics.inversion_recovery(1.0, t1, 329.0, 1.0, 1e9, ti_null)
    assert float(signal) == pytest.approx(0.0, abs=1e-6)
    # magnitude: never negative, and a short TI gives a negative longitudinal magnetization
    short = physics.inversion_recovery(1.0, t1, 329.0, 10.0, 9000.0, 100.0)
    expected = abs((1 - 2 * math.exp(-100 / t1) + math.exp(-9000 / t1)) * math.exp(-10 / 329))
    assert float(short) == pytest.approx(expected, rel=1e-6)


def test_incomplete_inversion_moves_the_null():
    """An inversion to -k Mz nulls a tissue at TI = T1 ln(1 + k) when TR >> T1."""
    t1, k = 800.0, 0.8
    null = t1 * np.log(1 + k)
    assert physics.inversion_recovery(1.0, t1, 80.0, 10.0, 1e7, null, efficiency=k) < 1e-6
    assert physics.inversion_recovery(1.0, t1, 80.0, 10.0, 1e7, t1 * np.log(2), efficiency=k) > 0.05
    assert physics.render("inversion_recovery", 1.0, t1, 80.0, 10.0, 1e7, ti=null,
                          inversion_efficiency=k) < 1e-6
    assert physics.inversion_recovery(1.0, t1, 80.0, 10.0, 3000, 500) == pytest.approx(
        physics.inversion_recovery(1.0, t1, 80.0, 10.0, 3000, 500, efficiency=1.0))


def test_gradient_echo_hand_computed_and_ernst_angle():
    t1, t2s, te, tr, flip = 833.0, 69.0, 5.0, 30.0, 15.0
    e1 = math.exp(-tr / t1)
    a = math.radians(flip)
    expected = 0.86 * math.sin(a) * (1 - e1) / (1 - math.cos(a) * e1) * math.exp(-te / t2s)
    assert float(physics.gradient_echo(0.86, t1, t2s, te, tr, flip)) == pytest.approx(expected, rel=1e-6)
    ernst = physics.ernst_angle_deg(tr, t1)
    angles = np.linspace(1, 90, 891)
    signals = physics.gradient_echo(1.0, np.full_like(angles, t1), np.full_like(angles, t2s), te, tr, angles)
    assert angles[np.argmax(signals)] == pytest.approx(ernst, abs=0.2)


def test_background_gives_zero_not_nan():
    zeros = np.zeros(3, np.float32)
    for seq, kw in (("spin_echo", {}), ("inversion_recovery", {"ti": 500.0}),
                    ("gradient_echo", {"flip_deg": 30.0})):
        out = physics.render(seq, zeros, zeros, zeros, 20.0, 1000.0, **kw)
        assert np.all(out == 0) and not np.any(np.isnan(out))


def test_contrast_follows_physics():
    csf, wm = (1.0, 2569.0, 329.0), (0.77, 500.0, 70.0)
    t2w = [physics.spin_echo(*t, 120.0, 6000.0) for t in (csf, wm)]
    t1w = [physics.spin_echo(*t, 15.0, 500.0) for t in (csf, wm)]
    assert t2w[0] > t2w[1]  # long TE: CSF bright
    assert t1w[0] < t1w[1]  # short TR: CSF dark


def test_torch_matches_numpy_and_is_differentiable():
    rng = np.random.default_rng(0)
    pd, t1, t2 = rng.uniform(0.5, 1, 10), rng.uniform(300, 3000, 10), rng.uniform(30, 300, 10)
    ref = physics.spin_echo(pd, t1, t2, 40.0, 3000.0)
    tp = torch.tensor(pd, requires_grad=True)
    tt1 = torch.tensor(t1, requires_grad=True)
    tt2 = torch.tensor(t2, requires_grad=True)
    out = physics.spin_echo(tp, tt1, tt2, 40.0, 3000.0)
    assert np.allclose(out.detach().numpy(), ref, rtol=1e-6)
    out.sum().backward()
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in (tp, tt1, tt2))
    # d/dPD of the spin-echo signal is the relaxation factor
    assert np.allclose(tp.grad.numpy(), ref / pd)


def test_unknown_sequence_and_missing_parameters():
    with pytest.raises(ValueError, match="unknown sequence"):
        physics.render("bssfp", 1.0, 1.0, 1.0, 1.0, 2.0)
    with pytest.raises(ValueError, match="inversion time"):
        physics.render("inversion_recovery", 1.0, 1.0, 1.0, 1.0, 2.0)
    with pytest.raises(ValueError, match="flip angle"):
        physics.render("gradient_echo", 1.0, 1.0, 1.0, 1.0, 2.0)


def test_mprage_orders_tissues_as_a_t1_weighted_scan_and_matches_torch():
    import torch

    from napari_mr_reparam.tissues import get_table

    for name in ("brainweb_1.5t", "3t"):
        t = get_table(name)
        s = {k: physics.mprage(t[k].pd, t[k].t1, t[k].t2star, 3.0, 2300.0, 900.0, 9.0)
             for k in ("csf", "grey_matter", "white_matter")}
        assert s["csf"] < s["grey_matter"] < s["white_matter"]
    args = (0.8, 900.0, 50.0, 3.0, 2300.0, 1000.0, 8.0)
    as_torch = physics.mprage(*[torch.tensor(float(a)) for a in args])
    assert float(as_torch) == pytest.approx(float(physics.mprage(*args)), rel=1e-5)
    # a TI far past T1 recovers fully; the centre line is read after one earlier pulse
    full = physics.mprage(1.0, 100.0, 1e9, 1.0, 50000.0, 20000.0, 5.0, echo_spacing=1e-3, readouts=2)
    assert float(full) == pytest.approx(math.sin(math.radians(5)) * math.cos(math.radians(5)), rel=1e-3)
    assert physics.render("mprage", 0.8, 900.0, 80.0, 3.0, 2300.0, ti=900.0, flip_deg=9.0) > 0
    with pytest.raises(ValueError, match="MPRAGE needs"):
        physics.render("mprage", 0.8, 900.0, 80.0, 3.0, 2300.0)


def _mprage_by_pulses(t1, tr, ti, flip_deg, spacing, readouts, cycles=40):
    """Mz followed pulse by pulse over many cycles: the signal at the train's centre."""
    e = lambda t: math.exp(-t / t1)  # noqa: E731
    c, mz, wait = math.cos(math.radians(flip_deg)), 1.0, ti - readouts / 2 * spacing
    for _ in range(cycles):
        mz = 1 - (1 + mz) * e(wait)  # inversion, then the wait
        for k in range(readouts):
            if k == readouts // 2:
                centre = mz
            mz = 1 - (1 - mz * c) * e(spacing)
        mz = 1 - (1 - mz) * e(tr - wait - readouts * spacing)
    return abs(centre * math.sin(math.radians(flip_deg)))


@pytest.mark.parametrize("ti, readouts", [(900.0, 176), (300.0, 84), (1900.0, 114)])
def test_mprage_shortens_a_train_that_does_not_fit_around_its_ti(ti, readouts):
    # TI 300 ms: 42 pulses fit before it; TR - TI 400 ms: 57 pulses fit after it
    for t1 in (300.0, 830.0, 4160.0):
        got = float(physics.mprage(1.0, t1, 1e12, 0.0, 2300.0, ti, 9.0))
        assert got == pytest.approx(_mprage_by_pulses(t1, 2300.0, ti, 9.0, 7.0, readouts), rel=2e-3)


def test_water_mean_time_is_the_water_weighted_geometric_mean_for_numpy_and_torch():
    # a tenth of CSF's water in a grey-matter voxel: the geometric mean, not the plain one
    water = np.array([0.8 * 0.9 + 1.0 * 0.1, 0.0])
    logs = np.array([0.8 * 0.9 * math.log(96.0) + 1.0 * 0.1 * math.log(1650.0), 0.0])
    expected = math.exp(logs[0] / water[0])
    got = physics.water_mean_time(water, logs)
    assert got[0] == pytest.approx(expected, rel=1e-6)
    assert got[0] < 0.9 * 96.0 + 0.1 * 1650.0
    assert got[1] == 0.0  # no water: no time
    as_torch = physics.water_mean_time(torch.tensor(water), torch.tensor(logs))
    assert as_torch.numpy() == pytest.approx(got)


def test_float32_maps_render_in_float32_and_plain_numbers_in_float64():
    maps = [np.full(4, v, np.float32) for v in (1.0, 900.0, 80.0)]
    assert physics.spin_echo(*maps, 20, 600).dtype == np.float32  # no float64 copy of a volume
    assert physics.inversion_recovery(*maps, 20.0, 6000.0, 400.0).dtype == np.float32
    assert physics.spin_echo(*[m.astype(np.float64) for m in maps], 20, 600).dtype == np.float64
    assert np.asarray(physics.spin_echo(1.0, 900.0, 80.0, 20, 600)).dtype == np.float64
    np.testing.assert_allclose(physics.spin_echo(*maps, 20, 600),
                               physics.spin_echo(*[m.astype(np.float64) for m in maps], 20, 600), rtol=1e-6)


def test_a_gradient_echo_is_a_magnitude_and_the_ernst_angle_needs_positive_times():
    pd, t1, t2 = np.array([1.0]), np.array([800.0]), np.array([80.0])
    assert physics.gradient_echo(pd, t1, t2, 5, 20, 180.0)[0] == pytest.approx(0.0, abs=1e-12)
    assert physics.gradient_echo(pd, t1, t2, 5, 20, 180.0)[0] >= 0
    assert physics.gradient_echo(pd, t1, t2, 5, 20, -30.0)[0] == pytest.approx(
        physics.gradient_echo(pd, t1, t2, 5, 20, 30.0)[0])
    with pytest.raises(ValueError, match="needs TR and T1 above 0 ms"):
        physics.ernst_angle_deg(10, 0)
