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


def test_the_preview_of_an_empty_slice_is_that_slice_empty_not_an_error():
    from types import SimpleNamespace

    from napari_mr_reparam._widget_work import compute
    from napari_mr_reparam.widget_logic import Request

    class Engine:
        renders_from_maps = False

        def predict(self, *a, **k):
            raise AssertionError("an empty slice is not predicted")

    engines = SimpleNamespace(get=lambda model, device: Engine())
    data = np.random.default_rng(0).random((3, 4, 4)).astype(np.float32)
    data[0] = 0  # the edge slice of a head: air
    request = Request(SimpleNamespace(data=data), "d2p", "cpu", te=100.0, tr=4000.0, slice_index=0)
    kind, (pred, limits) = compute(engines, request, data, SimpleNamespace(advance=None, cancelled=None))
    assert kind == "prediction" and pred.shape == (4, 4) and not pred.any() and limits is None
