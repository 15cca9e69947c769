"""The widget's work off the GUI thread (_widget_work.py)."""

import numpy as np

from napari_mr_reparam._widget_work import with_range


def test_a_volumes_contrast_limits_come_from_its_finite_voxels_and_an_all_nan_one_gets_a_plain_range():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # computed in a worker thread: no warning either
        assert with_range(np.array([[np.nan, 2.0], [0.5, 3.0]], np.float32))[1] == (0.5, 3.0)
        assert with_range(np.full((2, 3, 3), np.nan, np.float32))[1] == (0.0, 1.0)
        assert with_range(np.zeros((2, 2), np.float32))[1] == (0.0, 1.0)
