"""The inversion efficiency of an inversion-recovery series, from three or more TIs."""

import numpy as np
import pytest
from helpers import inversion_series

from napari_mr_reparam import physics
from napari_mr_reparam.joint_fit import fit_maps
from napari_mr_reparam.simulate import Acquisition


def test_inversion_efficiency_from_three_tis_and_held_out_ti_rendered_with_it():
    from napari_mr_reparam.inversion import inversion_efficiency

    k = 0.85
    pd, t1, acqs, images = inversion_series(k, (100, 200, 400, 800))
    body = pd > 0
    three, held = [0, 1, 3], 2
    assert inversion_efficiency([images[i] for i in three], [acqs[i] for i in three]) == pytest.approx(k, abs=0.021)
    maps = fit_maps([images[i] for i in three], [acqs[i] for i in three])
    assert maps.inversion_efficiency == pytest.approx(k, abs=0.021)
    a = acqs[held]
    real = images[held][body]
    pred = maps.render(a.te_ms, a.tr_ms, "inversion_recovery", ti_ms=a.ti_ms, clip_overshoot=False)[body]
    assert np.linalg.norm(pred - real) / np.linalg.norm(real) < 0.02
    ideal = maps.render(a.te_ms, a.tr_ms, "inversion_recovery", ti_ms=a.ti_ms, inversion=1.0,
                        clip_overshoot=False)[body]
    assert np.linalg.norm(ideal - real) > 2 * np.linalg.norm(pred - real)  # the series' own inversion renders it
    # no inversion-recovery input: a perfect inversion
    se = [Acquisition(15, 3000), Acquisition(100, 3000)]
    spin = fit_maps([np.ones((4, 4), np.float32), 0.5 * np.ones((4, 4), np.float32)], se)
    assert spin.inversion_efficiency is None
    np.testing.assert_allclose(spin.render(10, 1000, "inversion_recovery", ti_ms=100),
                               physics.inversion_recovery(spin.pd, spin.t1, spin.t2, 10, 1000, 100), rtol=1e-5)
