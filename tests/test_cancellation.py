"""Stopping long work: the callback is asked, and the engine's Cancelled is the same class."""

import pytest

from napari_mr_reparam.cancellation import Cancelled, stop_if_cancelled


def test_work_stops_only_when_the_callback_says_so():
    stop_if_cancelled(None)
    stop_if_cancelled(lambda: False)
    with pytest.raises(Cancelled):
        stop_if_cancelled(lambda: True)


def test_the_engines_cancelled_is_the_same_exception():
    from napari_mr_reparam import inference

    assert inference.Cancelled is Cancelled
