"""The stream's options (stream_options.py): one object each, checked where defined, that
random_subject takes whole or one option at a time."""

import numpy as np
import pytest
from helpers import tiny_phantom

from napari_mr_reparam.phantoms import random_subject
from napari_mr_reparam.stream_options import StreamOptions, SubjectOptions


def test_options_are_checked_where_they_are_defined():
    for bad, match in (({"sharpening": 0.5}, "sharpening must be >= 1"),
                       ({"texture": 1.0}, "texture only acts with sharpening"),
                       ({"sharpening": 4.0, "sharpening_min": 8.0}, "sharpening_min must lie"),
                       ({"sulcus_width": -1.0}, "sulcus_width"), ({"tilt_deg": -1.0}, "tilt_deg"),
                       ({"max_scale": 1.0}, "max_scale and anisotropy"),
                       ({"extra_reassign": 2.0}, "extra_reassign is a chance"),
                       ({"other_planes": 1.5}, "other_planes is a chance"),
                       ({"partial_volume": "voxels"}, "partial_volume must be one of signals, times")):
        with pytest.raises(ValueError, match=match):
            SubjectOptions(**bad)
    for bad, match in (({"noise_max": -0.1}, "noise_max"), ({"bias_strength": 1.0}, "bias_strength"),
                       ({"subject_every": 0}, "subject_every"), ({"subject_workers": -1}, "subject_workers")):
        with pytest.raises(ValueError, match=match):
            StreamOptions(**bad)
    assert SubjectOptions(tables=["3t", "mrilab"]).tables == ("3t", "mrilab")  # frozen, hashable
    assert hash(SubjectOptions(tables=["3t"])) == hash(SubjectOptions(tables=("3t",)))
    assert StreamOptions(input_sequences=None).input_sequences == ()


def test_random_subject_takes_the_options_whole_or_one_at_a_time():
    base = tiny_phantom(n=8)
    options = SubjectOptions(deform_mm=2.0, anisotropy=0.1, tilt_deg=4.0, value_jitter=0.05)
    whole = random_subject(base, 3, options)
    single = random_subject(base, 3, deform_mm=2.0, anisotropy=0.1, tilt_deg=4.0, value_jitter=0.05)
    assert all(np.array_equal(getattr(whole, k), getattr(single, k)) for k in ("pd", "t1", "t2", "t2star"))
    changed = random_subject(base, 3, options, tilt_deg=0.0)  # one option replaced
    assert not np.array_equal(changed.t1, whole.t1)
    with pytest.raises(ValueError, match="tilt_deg"):
        random_subject(base, 3, options, tilt_deg=-1.0)
