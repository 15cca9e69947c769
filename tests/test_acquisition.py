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
