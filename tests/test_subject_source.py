"""Subjects drawn in background processes (subject_source.py)."""

import numpy as np
import pytest

from napari_mr_reparam.datasets import StreamingSampler
from napari_mr_reparam.stream_options import StreamOptions, SubjectOptions
from napari_mr_reparam.subject_source import BackgroundSubjects, draw_subject

from helpers import tiny_phantom

OPTIONS = StreamOptions(subject=SubjectOptions(deform_mm=3.0, sharpening=1.0), bias_strength=0.2)


def _same(a, b):
    (subject_a, bias_a), (subject_b, bias_b) = a, b
    return subject_a.name == subject_b.name and np.array_equal(bias_a, bias_b) and all(
        np.array_equal(getattr(subject_a, k), getattr(subject_b, k)) for k in ("pd", "t1", "t2", "t2star"))


def test_background_subjects_are_the_numbered_draws_in_order():
    bases = [tiny_phantom(n=8), tiny_phantom(n=8, h=28)]
    source = BackgroundSubjects(bases, seed=5, options=OPTIONS, workers=2)
    try:
        made = [source.next() for _ in range(4)]
    finally:
        source.close()
    for number, subject in enumerate(made):
        expected = draw_subject(bases, np.random.default_rng([5, number]), OPTIONS)
        assert _same(subject, expected)
    assert not _same(made[0], made[1])
    with pytest.raises(ValueError, match="at least one worker"):
        BackgroundSubjects(bases, 0, OPTIONS, workers=0)


def test_a_stream_is_the_same_for_any_number_of_workers():
    batches = []
    for workers in (1, 2):
        options = StreamOptions(subject=SubjectOptions(deform_mm=3.0), subject_every=2, subject_workers=workers)
        sampler = StreamingSampler([tiny_phantom(n=8)], size=None, seed=3, pool=2, options=options)
        batches.append(sampler.batch(6))
        sampler.background.close()
    assert all(np.array_equal(batches[0][k], batches[1][k]) for k in batches[0])
    inline = StreamingSampler([tiny_phantom(n=8)], size=None, seed=3, pool=2,
                              options=StreamOptions(subject=SubjectOptions(deform_mm=3.0), subject_every=2))
    assert inline.background is None
    assert not np.array_equal(inline.batch(6)["input"], batches[0]["input"])
