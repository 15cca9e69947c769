"""The signal equations a joint fit takes, their slopes, and what a set of acquisitions measures."""

import math

import numpy as np
import pytest

from napari_mr_reparam import physics
from napari_mr_reparam.fit_information import (
    acquisition_values,
    free_parameters,
    signal_and_slopes,
)
from napari_mr_reparam.simulate import Acquisition


def test_determined_parameters_follow_the_acquisitions():
    se = Acquisition(15, 3000)
    assert free_parameters([se]) == {"t1": False, "t2": False}
    assert free_parameters([se, Acquisition(100, 3000)]) == {"t1": False, "t2": True}
    assert free_parameters([se, Acquisition(15, 500)]) == {"t1": True, "t2": False}
    assert free_parameters([se, Acquisition(100, 3000), Acquisition(15, 500)]) == {"t1": True, "t2": True}


@pytest.mark.parametrize("acq", [Acquisition(20, 600), Acquisition(100, 4000),
                                 Acquisition(120, 9000, "inversion_recovery", 2500),
                                 Acquisition(10, 1000, "inversion_recovery", 100),
                                 Acquisition(4, 20, "gradient_echo", flip_deg=20),
                                 Acquisition(3, 2300, "mprage", 900, 9)])
def test_signal_and_its_slopes_match_the_signal_equation(acq):
    import torch

    v = acquisition_values(acq)
    t1 = torch.tensor([80.0, 300.0, 900.0, 1500.0, 4000.0], dtype=torch.float64)
    t2 = torch.tensor([10.0, 45.0, 90.0, 300.0, 2000.0], dtype=torch.float64)

    def equation(a, b):  # magnitude per unit PD (a gradient echo's T2* taken as T2)
        return np.abs(np.asarray(physics.render(v.sequence, 1.0, a.numpy(), b.numpy(), v.te, v.tr, ti=v.ti,
                                                flip_deg=v.flip_deg, t2star=b.numpy()), np.float64))

    f, d1, d2 = signal_and_slopes(v, t1, t2, torch)
    np.testing.assert_allclose(f.numpy(), equation(t1, t2), rtol=1e-6, atol=1e-12)
    h = 1e-5
    up, down = math.exp(h), math.exp(-h)
    np.testing.assert_allclose(d1.numpy(), (equation(t1 * up, t2) - equation(t1 * down, t2)) / (2 * h),
                               rtol=1e-3, atol=1e-7)
    np.testing.assert_allclose(d2.numpy(), (equation(t1, t2 * up) - equation(t1, t2 * down)) / (2 * h),
                               rtol=1e-3, atol=1e-7)


def test_an_input_of_a_sequence_the_fit_cannot_take_is_refused_in_one_line():
    from napari_mr_reparam.fit_information import AcquisitionValues, checked_values

    with pytest.raises(ValueError, match="an input cannot be 'double_inversion_recovery'"):
        checked_values(AcquisitionValues("double_inversion_recovery", 20.0, 10000.0, 3000.0, None))
