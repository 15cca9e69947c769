"""Multi-echo trains among a joint fit's inputs, put in the ideal equation's form."""

import numpy as np
import pytest

from napari_mr_reparam import epg
from napari_mr_reparam.echo_trains import echo_trains, ideal_form
from napari_mr_reparam.fit_information import acquisition_values
from napari_mr_reparam.simulate import Acquisition


def test_a_train_is_found_among_the_inputs_and_other_inputs_are_not_part_of_it():
    echoes = [Acquisition(10.0 * k, 2000) for k in range(1, 9)]
    others = [Acquisition(15, 500), Acquisition(100, 9000, "inversion_recovery", 2500)]
    [(members, spacing, numbers)] = echo_trains(others[:1] + echoes + others[1:])
    assert members == list(range(1, 9)) and spacing == 10.0
    np.testing.assert_array_equal(numbers, np.arange(1, 9))
    assert echo_trains(echoes[:2] + others) == []  # a dual echo is no train
    assert echo_trains([Acquisition(10.0 * k, 2000 + k) for k in range(1, 9)]) == []  # echoes of several TRs


def test_the_ideal_form_makes_a_trains_echoes_decay_as_its_t2():
    n, esp, t2 = 8, 10.0, 60.0
    amplitudes = np.mean([epg.cpmg_echoes(n, esp, np.array([t2]), 0.8 * p) for p in epg.slice_profile()], axis=0)
    images = [np.full((1, 4, 4), 1000.0 * a, np.float32) for a in amplitudes[0]]
    acqs = [acquisition_values(Acquisition(esp * k, 3000)) for k in range(1, n + 1)]
    body = np.ones((1, 4, 4), bool)
    out, b1 = ideal_form(images, acqs, body)
    values = np.array([o[0, 0, 0] for o in out])
    tes = esp * np.arange(1, n + 1)
    slope = np.polyfit(tes, np.log(values), 1)[0]
    assert abs(-1 / slope / t2 - 1) < 0.03  # the raw echoes decay more slowly (stimulated echoes)
    assert abs(np.polyfit(tes, np.log(1000.0 * amplitudes[0]), 1)[0] * -t2 - 1) > 0.05
    assert np.nanmedian(b1) == pytest.approx(0.8, abs=0.05)
