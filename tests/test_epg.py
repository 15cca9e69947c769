"""Echoes of a CPMG train with imperfect refocusing, and the per-voxel fit of T2 and flip angle."""

import numpy as np
import pytest

from napari_mr_reparam import epg


def _train(t2, scale, n=32, spacing=10.0):
    """Slice-averaged echoes (V, n) at continuous T2 and flip-angle scales (the fit's model)."""
    return np.mean([epg.cpmg_echoes(n, spacing, t2, scale * p) for p in epg.slice_profile()], axis=0)


def test_180_degree_refocusing_gives_the_pure_exponential():
    echoes = epg.cpmg_echoes(16, 12.5, 80.0, 1.0)
    assert np.allclose(echoes, np.exp(-12.5 * np.arange(1, 17) / 80.0), atol=1e-5)


@pytest.mark.parametrize("scale", [2 / 3, 0.8])
def test_first_two_echoes_match_their_closed_form(scale):
    # 90s excitation, 180s refocusing: echo 1 is the spin echo sin^2(a/2); echo 2 adds the
    # stimulated echo of pulses 1 and 2, (1/2) sin^2(a), stored for one spacing (T1).
    t2, t1, esp = 150.0, 900.0, 10.0
    a = np.pi * scale
    e2, e1 = np.exp(-esp / t2), np.exp(-esp / t1)
    exc = np.sin(a / 2)
    echoes = epg.cpmg_echoes(2, esp, t2, scale, t1_ms=t1)
    assert echoes[0] == pytest.approx(exc * np.sin(a / 2) ** 2 * e2, rel=1e-4)
    assert echoes[1] == pytest.approx(exc * (np.sin(a / 2) ** 4 * e2**2 + 0.5 * np.sin(a) ** 2 * e2 * e1), rel=1e-4)
    # and the train is not the exponential: echo 2 above what exp(-TE/T2) gives after echo 1
    assert echoes[1] / echoes[0] > e2 * 1.05


def test_echo_numbers_find_trains():
    spacing, numbers = epg.echo_numbers([10 * k for k in range(1, 9)])
    assert spacing == pytest.approx(10) and list(numbers) == list(range(1, 9))
    spacing, numbers = epg.echo_numbers([9.64 * k for k in range(2, 9)])  # echo 1 left out
    assert spacing == pytest.approx(9.64) and list(numbers) == list(range(2, 9))
    assert epg.echo_numbers([10, 80]) is None  # a dual echo: too few to fit a flip angle
    assert epg.echo_numbers([15, 25, 35, 45, 55, 65]) is None  # not multiples of the spacing
    assert epg.echo_numbers([10, 20, 20, 30, 40, 50]) is None  # repeated TE


def test_fit_recovers_t2_and_flip_angle_where_the_exponential_is_biased():
    rng = np.random.default_rng(3)
    t2 = np.exp(rng.uniform(np.log(20), np.log(300), 400))
    scale = rng.uniform(0.6, 0.95, 400)
    numbers = np.arange(1, 33)
    signals = 1000 * _train(t2, scale).T + rng.normal(0, 1.0, (32, 400))
    fit = epg.fit_train(signals, numbers, 10.0)
    assert np.median(np.abs(fit["t2"] / t2 - 1)) < 0.01
    assert np.percentile(np.abs(fit["t2"] / t2 - 1), 90) < 0.03
    assert np.median(np.abs(fit["scale"] - scale)) < 0.02
    assert np.median(fit["residual"]) < 0.01
    # the mono-exponential fit of echoes 2..32 (log-linear) makes T2 too long
    tes = 10.0 * numbers[1:]
    slope = np.polyfit(tes, np.log(np.clip(signals[1:], 1e-3, None)), 1)[0]
    assert np.median(-1 / slope / t2 - 1) > 0.1
    # the ideal form of the train decays as exp(-TE/T2) with the fitted T2
    ideal = signals * epg.ideal_ratio(fit, 10.0 * numbers)
    expected = fit["amplitude"] * np.exp(-10.0 * numbers[:, None] / fit["t2"])
    strong = expected > 50
    assert np.median(np.abs(ideal[strong] / expected[strong] - 1)) < 0.01


def test_the_ideal_form_never_raises_a_failed_fit_s_echoes_tenfold_or_more():
    from napari_mr_reparam import epg

    n, esp = 16, 10.0
    numbers = np.arange(1, n + 1)
    bad = np.r_[1000.0, np.full(n - 1, 0.5)][:, None]  # falls to the noise at once: no train does that
    ratio = epg.ideal_ratio(epg.fit_train(bad, numbers, esp), esp * numbers)
    assert ratio.max() <= epg.MAX_IDEAL_RATIO  # it reached 1e6 before: noise raised a millionfold
    good = np.mean([epg.cpmg_echoes(n, esp, np.array([80.0]), 0.8 * p) for p in epg.slice_profile()], axis=0).T
    fit = epg.fit_train(good * 1000, numbers, esp)
    ideal = (good * 1000)[:, 0] * epg.ideal_ratio(fit, esp * numbers)[:, 0]
    np.testing.assert_allclose(ideal, ideal[0] * np.exp(-esp * (numbers - 1) / fit["t2"][0]), rtol=5e-3)


def test_the_dictionary_is_per_single_spin_echo_so_an_ideal_form_keeps_the_image_scale():
    # a train of the nominal flip angle: echo 1 is what one spin echo of that slice gives,
    # so its ideal form (and a render at its TE) keeps the image's scale; later echoes,
    # raised by stimulated echoes, are brought down to the single echo's decay
    spacing, t2 = 10.0, 100.0
    table = epg.train_dictionary(8, spacing)
    row = int(np.argmin(np.abs(epg.t2_grid() - t2)))
    col = int(np.argmin(np.abs(epg.scale_grid() - 1.0)))
    echoes = table[row, col]
    t2_grid = epg.t2_grid()[row]
    assert echoes[0] == pytest.approx(np.exp(-spacing / t2_grid), rel=0.01)
    assert (echoes[1:] > np.exp(-spacing * np.arange(2, 9) / t2_grid)).all()
    fit = epg.fit_train(1000.0 * echoes[:, None], np.arange(1, 9), spacing)
    ratio = epg.ideal_ratio(fit, spacing * np.arange(1, 9))
    assert ratio[0, 0] == pytest.approx(1.0, abs=0.02) and (ratio[1:, 0] < 1).all()
    # pulses 10 % over their angle (a transmit field): echo 1 is still a single echo of them
    over = int(np.argmin(np.abs(epg.scale_grid() - 1.1)))
    assert table[row, over, 0] == pytest.approx(np.exp(-spacing / t2_grid), rel=0.01)


def test_train_slopes_are_the_phase_graph_s_own_derivatives_between_grid_points():
    t2, scale, n, spacing = np.array([35.0, 140.0, 700.0]), np.array([0.83, 0.91, 1.07]), 8, 10.0

    def echoes(t2, scale, t1=epg.T1_MS):  # per single spin echo of the slice, as the dictionary
        single = np.array([epg.single_echo_amplitude(s * epg.slice_profile()) for s in scale])
        return np.mean([epg.cpmg_echoes(n, spacing, t2, scale * p, t1) for p in epg.slice_profile()],
                       axis=0) / single[:, None]

    got = epg.train_slopes(np.arange(1, n + 1), spacing, t2, scale)
    h = 0.02
    expected = {"echoes": echoes(t2, scale),
                "t2": (echoes(t2 * np.exp(h), scale) - echoes(t2 * np.exp(-h), scale)) / (2 * h),
                "scale": (echoes(t2, scale + h) - echoes(t2, scale - h)) / (2 * h),
                "t1": (echoes(t2, scale, epg.T1_MS * np.exp(0.1)) - echoes(t2, scale, epg.T1_MS * np.exp(-0.1))) / 0.2}
    for key, values in expected.items():
        assert got[key].shape == (3, n)
        assert np.abs(got[key] - values).max() < 0.02 * np.abs(values).max(), key
