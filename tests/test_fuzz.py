"""Property-based tests: the reader and the parameter parsing never fail uncleanly."""

import argparse

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_mr_reparam.cli import _positive_ms
from napari_mr_reparam.io import load_volume
from napari_mr_reparam.simulate import validate_times

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(st.text(max_size=20))
def test_time_parsing_accepts_positive_numbers_only(text):
    try:
        value = _positive_ms(text)
    except argparse.ArgumentTypeError as exc:
        assert "millisecond" in str(exc)
    else:
        assert value > 0 and np.isfinite(value)


@FAST
@given(st.floats(allow_nan=True, allow_infinity=True), st.floats(allow_nan=True, allow_infinity=True))
def test_time_validation_is_a_clear_yes_or_no(te, tr):
    try:
        validate_times(te, tr)
    except ValueError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert 0 < te < tr


@FAST
@given(data=st.binary(max_size=600), suffix=st.sampled_from([".nii", ".nii.gz", ".png", ".tif", ".jpg"]))
def test_reader_never_crashes_on_garbage(tmp_path_factory, data, suffix):
    path = tmp_path_factory.mktemp("fuzz") / f"x{suffix}"
    path.write_bytes(data)
    try:
        volume = load_volume(path)
    except ValueError as exc:
        assert "\n" not in str(exc) and "x" in str(exc)
    else:
        assert volume.data.ndim == 3 and volume.data.dtype == np.float32


@FAST
@given(st.lists(st.integers(1, 6), min_size=1, max_size=5), st.sampled_from([np.int16, np.uint8, np.float64]))
def test_reader_takes_any_small_nifti(tmp_path_factory, shape, dtype):
    import nibabel as nib

    path = tmp_path_factory.mktemp("nii") / "v.nii"
    nib.save(nib.Nifti1Image(np.ones(shape, dtype), np.eye(4)), str(path))
    try:
        volume = load_volume(path)
    except ValueError as exc:
        assert "expected a 2-D image or 3-D volume" in str(exc)
        assert len([s for s in shape]) not in (2, 3) or len(shape) == 4
    else:
        assert volume.data.size == int(np.prod(shape))
