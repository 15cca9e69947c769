import numpy as np
import pytest

from napari_mr_reparam.units import ms_to_s, refuse_milliseconds, refuse_seconds, s_to_ms


def test_conversions():
    assert s_to_ms(0.1) == 100.0 and ms_to_s(4500) == 4.5


@pytest.mark.parametrize("times, message", [
    ({"te": 0.1}, "TE 0.1 looks like seconds; times are in milliseconds (did you mean 100 ms?)"),
    ({"tr": 5}, "TR 5 looks like seconds"),
    ({"ti": 2.5}, "TI 2.5 looks like seconds"),
    ({"input_tr": 4.5}, "input TR 4.5 looks like seconds; times are in milliseconds (did you mean 4500 ms?)"),
    ({"te": np.array([50.0, 0.02])}, "did you mean 20 ms?"),
])
def test_values_that_can_only_be_seconds_are_refused(times, message):
    with pytest.raises(ValueError) as caught:
        refuse_seconds(**times)
    assert message in str(caught.value)


def test_millisecond_values_pass():
    refuse_seconds(te=1.0, tr=10.0, ti=10.0, input_te=50, input_tr=4500)
    refuse_seconds(te=None, tr=np.array([600.0, 6000.0]))


def test_sidecar_times_that_can_only_be_milliseconds_are_refused():
    with pytest.raises(ValueError, match=r"RepetitionTime 2500 looks like milliseconds.*did you mean 2\.5 s"):
        refuse_milliseconds("RepetitionTime", 2500)
    with pytest.raises(ValueError, match="InversionTime 900 looks like milliseconds"):
        refuse_milliseconds("InversionTime", 900)
    refuse_milliseconds("EchoTime", 1.0)  # a TE of 1000 ms, as a render may have
    refuse_milliseconds("RepetitionTime", 15.0)
