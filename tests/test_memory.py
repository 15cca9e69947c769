"""The fits' memory setting: numpy's huge-page request off inside, as it was after."""

import numpy as np
import pytest

from napari_mr_reparam import joint_fit, memory

switch = memory._switch()
getter = getattr(getattr(getattr(np, "_core", None) or np.core, "multiarray"), "_get_madvise_hugepage", None)
needs_switch = pytest.mark.skipif(switch is None or getter is None, reason="this numpy has no huge-page switch")


@needs_switch
def test_the_request_is_off_inside_and_put_back_after():
    for before in (True, False):
        switch(before)
        with memory.ordinary_pages():
            assert getter() is False
        assert getter() is before
    switch(True)


@needs_switch
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


def test_a_job_larger_than_the_memory_available_is_told_in_one_line(monkeypatch):
    voxels = 512 * 512 * 176
    assert memory.need_bytes(voxels, joint=True) > memory.need_bytes(voxels, joint=False) > 2e9
    monkeypatch.setattr(memory, "available_bytes", lambda: 3e9)
    line = memory.shortage(voxels, joint=True, name="t1.nii.gz")
    assert line.startswith("t1.nii.gz: this needs about 5.8 GB of memory and 3.0 GB is available")
    assert "\n" not in line and memory.shortage(256 * 256 * 20, joint=True) is None
    monkeypatch.setattr(memory, "available_bytes", lambda: None)  # the system cannot say: nothing to tell
    assert memory.shortage(voxels, joint=True) is None
