"""The fits' memory setting: numpy's huge-page request off inside, as it was after."""

import numpy as np
import pytest

from napari_mr_reparam import joint_fit, memory

switch = memory._switch()
getter = getattr(getattr(getattr(np, "_core", None) or np.core, "multiarray"), "_get_madvise_hugepage", None)
pytestmark = pytest.mark.skipif(switch is None or getter is None, reason="this numpy has no huge-page switch")


def test_the_request_is_off_inside_and_put_back_after():
    for before in (True, False):
        switch(before)
        with memory.ordinary_pages():
            assert getter() is False
        assert getter() is before
    switch(True)


def test_put_back_after_an_error_and_the_fits_keep_their_names():
    switch(True)

    @memory.on_ordinary_pages
    def failing():
        assert getter() is False
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        failing()
    assert getter() is True
    assert joint_fit.fit_maps.__name__ == "fit_maps" and "Joint PD/T1/T2 maps" in joint_fit.fit_maps.__doc__
    assert joint_fit.joint_maps.__name__ == "joint_maps"
