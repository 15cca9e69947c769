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
