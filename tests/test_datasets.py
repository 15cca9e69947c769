import hashlib

import numpy as np
import pytest
from helpers import mrilab_path, tiny_phantom

from napari_mr_reparam.datasets import (
    TE_RANGE_MS, TR_RANGE_MS, ProtocolDataset, build_protocol_dataset, sample_te_tr,
)


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_parameter_distribution():
    te, tr = sample_te_tr(np.random.default_rng(0), 20000)
    assert TE_RANGE_MS[0] <= te.min() and te.max() <= TE_RANGE_MS[1]
    assert TR_RANGE_MS[0] <= tr.min() and tr.max() <= TR_RANGE_MS[1]
    # TR uniform: mean in the middle; TE skewed to short values
    assert np.mean(tr) == pytest.approx(sum(TR_RANGE_MS) / 2, rel=0.02)
    assert np.median(te) < 200 and np.mean(te < 500) > 0.75  # log-uniform: 82 % below 500 ms
    assert (te < tr).all()


def test_splits_and_p2p_inputs():
    ds = build_protocol_dataset(tiny_phantom(n=60), seed=3, pairs=200, slices=24, size=32)
    assert ds.train_paper.sum() == 1500 and (~ds.train_paper).sum() == 3300
    slice_train = ds.train_slices[0]
    assert (ds.train_slices == slice_train).all(), "slices split holds out whole slices"
    assert 0 < slice_train.sum() < 24
    assert (ds.p2p_input_pair != np.arange(200)[:, None]).all()
    p, s = ds.samples("slices", "test")
    assert not slice_train[s].any()
    with pytest.raises(ValueError):
        ds.samples("random", "test")


def test_same_seed_same_bytes_anywhere(tmp_path):
    ph = tiny_phantom(n=12)
    a = build_protocol_dataset(ph, seed=7, pairs=6, slices=4, size=32).save(tmp_path / "a")
    b = build_protocol_dataset(ph, seed=7, pairs=6, slices=4, size=32).save(tmp_path / "deeper" / "b")
    c = build_protocol_dataset(ph, seed=8, pairs=6, slices=4, size=32).save(tmp_path / "c")
    for name in ("dataset.npz", "manifest.json"):
        assert _digest(a / name) == _digest(b / name)
    assert _digest(a / "dataset.npz") != _digest(c / "dataset.npz")
    assert str(tmp_path) not in (a / "manifest.json").read_text()


def test_round_trip_and_network_images(tmp_path):
    ds = build_protocol_dataset(tiny_phantom(n=12), seed=1, pairs=5, slices=3, size=48)
    back = ProtocolDataset.load(ds.save(tmp_path))
    assert np.array_equal(back.images, ds.images) and back.size == 48
    x = back.images_at(np.array([0, 1]), np.array([0, 2]))
    assert x.shape == (2, 48, 48) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert back.masks_at(np.array([1])).shape == (1, 48, 48)
    manifest = ds.manifest()
    assert len(manifest["samples"]) == 15 and manifest["samples"][0]["te_ms"] == float(ds.te_ms[0])


def test_mrilab_protocol_is_quick_and_compact(tmp_path):
    from napari_mr_reparam.phantoms import load_phantom

    ds = build_protocol_dataset(load_phantom(f"mrilab:{mrilab_path()}"), seed=0)
    folder = ds.save(tmp_path)
    assert ds.images.shape[:2] == (200, 24)
    assert (folder / "dataset.npz").stat().st_size < 60e6


def test_native_grid_images_and_padded_batches():
    from napari_mr_reparam.datasets import StreamingSampler, stack_padded

    ds = build_protocol_dataset(tiny_phantom(n=12), seed=1, pairs=3, slices=2, size=48)
    native = ds.images_at(np.array([0]), np.array([1]), native=True)
    assert native.shape == (1, *ds.images.shape[2:])
    assert np.allclose(native, ds.images[0, 1] / 255.0)
    assert ds.default_at(np.array([0, 1]), native=True).shape == (2, *ds.default.shape[1:])
    stacked = stack_padded([np.ones((1, 4, 6)), np.ones((1, 6, 5))])
    assert stacked.shape == (2, 1, 6, 6) and stacked[0, 0, 0].sum() == 0 and stacked[0, 0, 1].sum() == 6
    sampler = StreamingSampler([tiny_phantom(n=12)], size=None, seed=0, randomize=False)
    batch = sampler.batch(2, targets=3)
    assert batch["input"].shape[-2:] == tiny_phantom(n=12).shape[1:]
    assert batch["target"].shape[:2] == (2, 3)


def test_sampler_draws_its_subjects_with_the_stream_options():
    from napari_mr_reparam.datasets import StreamingSampler
    from napari_mr_reparam.stream_options import StreamOptions, SubjectOptions
    from napari_mr_reparam.subject_source import draw_subject

    options = StreamOptions(subject=SubjectOptions(deform_mm=7.0, anisotropy=0.1, tilt_deg=5.0),
                            bias_strength=0.3)
    bases = [tiny_phantom(n=8)]
    sampler = StreamingSampler(bases, size=None, seed=4, pool=1, options=options)
    assert sampler.options is options
    (subject, bias), = sampler.pool
    expected, expected_bias = draw_subject(bases, np.random.default_rng(4), options)
    assert np.array_equal(subject.t1, expected.t1) and np.array_equal(bias, expected_bias)
    default, _ = draw_subject(bases, np.random.default_rng(4), StreamOptions())
    assert not np.array_equal(subject.t1, default.t1)  # the options changed the head


def test_stream_without_acquisition_effects_gives_clean_images():
    from napari_mr_reparam.datasets import StreamingSampler
    from napari_mr_reparam.stream_options import StreamOptions
    from napari_mr_reparam.simulate import Acquisition, simulate_images

    phantom = tiny_phantom()
    sampler = StreamingSampler([phantom], size=None, seed=0, pool=1,
                               options=StreamOptions(noise_max=0.0, bias_strength=0.0))
    subject, bias = sampler.pool[0]
    assert np.allclose(bias, 1.0)
    example = sampler.example()
    index = None
    for k in range(subject.shape[0]):  # the example's slice, found by its input image
        image = simulate_images(subject, Acquisition(50.0, 4500.0), [k], None)[0] / 255.0
        if np.array_equal(image.astype(np.float32), example["input"][0]):
            index = k
    assert index is not None  # no noise: the input is the subject's plain render


def test_stream_examples_carry_the_maps_behind_them():
    from napari_mr_reparam.datasets import StreamingSampler

    sampler = StreamingSampler([tiny_phantom(n=12)], size=None, seed=0, randomize=False, with_maps=True)
    ex = sampler.example(targets=2)
    assert ex["maps"].shape == (3, *ex["input"].shape[-2:])
    assert ex["maps"][1].max() == 2569  # the core's T1 (ms)
