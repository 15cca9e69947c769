"""Acquisitions (acquisition.py): the one input acquisition Default-to-Param reads."""

import pytest

from napari_mr_reparam.acquisition import default_input_mismatch


@pytest.mark.parametrize("stated, expected", [
    ({}, None),
    ({"te": 50.0, "tr": 4500.0, "sequence": "spin_echo"}, None),
    ({"tr": 600.0}, ("times", 50.0, 600.0)),  # an unstated time is the default's
    ({"te": 20.0, "tr": 600.0}, ("times", 20.0, 600.0)),
    ({"te": 50.0, "tr": 4500.0, "ti": 2500.0}, ("sequence", "inversion_recovery")),  # a TI alone: an inversion
    ({"sequence": "mprage"}, ("sequence", "mprage")),
])
def test_default_input_mismatch_names_what_differs(stated, expected):
    assert default_input_mismatch(**stated) == expected


def test_a_flip_angle_below_a_degree_is_radians_in_python_as_on_the_command_line():
    from napari_mr_reparam.acquisition import Acquisition

    with pytest.raises(ValueError, match=r"^flip angle 0\.16 looks like radians \(9\.2 degrees\); flip angles are "
                                         r"given in degrees$"):
        Acquisition(3, 20, "gradient_echo", None, 0.16)
    assert Acquisition(3, 20, "gradient_echo", None, 1.0).flip_deg == 1.0


@pytest.mark.parametrize("args, message", [
    ((25, 11000, "double_inversion_recovery", 3400, None, 0.4), r"^TI2 0\.4 looks like seconds.*did you mean 400 ms"),
    ((25, 11000, "double_inversion_recovery", 3400, None, -5.0), r"^TI2 must be a positive number of milliseconds"),
    ((25, 11000, "double_inversion_recovery", 3400, None, float("-inf")), r"^TI2 must be a positive number"),
    ((120, 9000, "inversion_recovery", 8950), r"^TI \+ TE \(8950 \+ 120 ms\) must be shorter than TR \(9000 ms\): "
                                              r"the echo would come after the next inversion$"),
    ((25, 11000, "double_inversion_recovery", 10990, None, 400), r"after the next first inversion"),
    ((50, 2300, "mprage", 900, 9), r"^an MPRAGE's TE \(50 ms\) lies between two pulses of its readout, at most 15"),
    ((1e30, 1e31), r"^TE 1e\+30 ms is beyond any scan \(at most 1e\+06 ms, 1000 s\)$"),
])
def test_impossible_acquisitions_are_one_line_refusals(args, message):
    from napari_mr_reparam.acquisition import Acquisition

    with pytest.raises(ValueError, match=message):
        Acquisition(*args)
    Acquisition(120, 9000, "inversion_recovery", 2500)  # the FLAIR preset, as it is, is taken
    Acquisition(3, 2300, "mprage", 900, 9)
    Acquisition(7.22, 2530, "mprage", 1200, 7)  # a multi-echo MPRAGE's last echo
    Acquisition(25, 11000, "double_inversion_recovery", 3400, None, 400)
