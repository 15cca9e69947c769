"""The inference engine: normalization round trip, maps once, out-of-memory fallback."""

import warnings

import numpy as np
import pytest
import torch

from napari_mr_reparam.inference import Reparameterizer


@pytest.fixture
def volume():
    rng = np.random.default_rng(0)
    data = rng.uniform(0, 800, (5, 40, 30)).astype(np.float32)
    data[1, :3, :3] = np.nan
    return data


def test_prediction_keeps_shape_units_and_nan(tiny_weights, volume):
    engine = Reparameterizer("d2p", device="cpu", batch_size=2)
    pred = engine.predict_volume(volume, 100, 3000)
    assert pred.shape == volume.shape and pred.dtype == np.float32
    assert np.isnan(pred[1, :3, :3]).all() and np.isfinite(pred[0]).all()
    # each slice comes back in the input's units: never above the slice's own maximum
    assert (np.nanmax(pred, axis=(1, 2)) <= np.nanmax(volume, axis=(1, 2)) + 1e-3).all()


def test_physics_maps_render_like_a_direct_prediction(tiny_weights, volume):
    engine = Reparameterizer("physics", device="cpu", batch_size=2)
    maps = engine.compute_maps(volume, 50, 4500)
    assert maps.pd.shape[0] == volume.shape[0]
    rendered = engine.render(maps, 80, 2500)
    direct = engine.predict_volume(volume, 80, 2500, 50, 4500)
    np.testing.assert_allclose(rendered, direct, rtol=1e-5, atol=1e-3, equal_nan=True)


def test_flip_averaged_maps_are_the_mirror_of_the_mirrored_volumes(tiny_weights, volume):
    engine = Reparameterizer("physics", device="cpu", flip_average=True)
    assert engine.net.flip_average
    maps = engine.compute_maps(volume, 50, 4500)
    mirrored = engine.compute_maps(volume[..., ::-1].copy(), 50, 4500)
    np.testing.assert_allclose(mirrored.t2[..., ::-1], maps.t2, rtol=1e-4, equal_nan=True)
    with pytest.raises(ValueError, match="physics model only"):
        Reparameterizer("d2p", device="cpu", flip_average=True)
    engine.flip_average = False  # a loaded engine switches without reloading
    assert not engine.net.flip_average and not Reparameterizer("d2p", device="cpu").flip_average


def test_out_of_gpu_memory_halves_batches_then_falls_back_to_cpu(tiny_weights, volume, monkeypatch):
    expected = Reparameterizer("d2p", device="cpu", batch_size=8).predict_volume(volume, 100, 3000)
    engine = Reparameterizer("d2p", device="cpu", batch_size=8)
    engine.device = torch.device("cuda")  # pretend to sit on a GPU that is always full
    real_run = Reparameterizer._run_batch
    tried = []

    def full_gpu(self, images, *args):
        tried.append((self.device.type, len(images)))
        if self.device.type == "cuda":
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_run(self, images, *args)

    monkeypatch.setattr(Reparameterizer, "_run_batch", full_gpu)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pred = engine.predict_volume(volume, 100, 3000)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert [n for d, n in tried if d == "cuda"] == [5, 4, 2, 1]
    assert sum("retrying with batches" in m for m in messages) == 3
    assert any("falling back to the CPU" in m for m in messages)
    assert engine.device.type == "cpu" and engine.batch_size == 1
    np.testing.assert_allclose(pred, expected, rtol=1e-4, atol=1e-2, equal_nan=True)


def test_out_of_memory_on_the_cpu_is_not_hidden(tiny_weights, volume, monkeypatch):
    engine = Reparameterizer("d2p", device="cpu", batch_size=8)

    def no_memory(self, *args):
        raise torch.OutOfMemoryError("out of memory (simulated)")

    monkeypatch.setattr(Reparameterizer, "_run_batch", no_memory)
    with pytest.raises(torch.OutOfMemoryError):
        engine.predict_volume(volume, 100, 3000)


def test_physics_engine_applies_data_consistency_and_checks_its_weight(tiny_weights, volume):
    from napari_mr_reparam import DEFAULT_CONSISTENCY

    engine = Reparameterizer("physics", device="cpu")
    assert engine.consistency == DEFAULT_CONSISTENCY and engine.net.consistency == DEFAULT_CONSISTENCY
    off = Reparameterizer("physics", device="cpu", consistency=0)
    with_dc, without = engine.compute_maps(volume), off.compute_maps(volume)
    assert not np.allclose(with_dc.pd, without.pd)
    assert off.net.consistency == 0
    with pytest.raises(ValueError, match="between 0 and 1"):
        Reparameterizer("physics", device="cpu", consistency=1.5)
    with pytest.raises(ValueError, match="physics model only"):
        Reparameterizer("d2p", device="cpu", consistency=0.5)
    assert Reparameterizer("d2p", device="cpu").consistency is None


def test_the_peak_the_input_calibrates_reaches_every_render(tiny_weights, volume, monkeypatch):
    from napari_mr_reparam import peaks

    monkeypatch.setattr(peaks, "calibrated_count", lambda rendered, image: np.full(len(image), 4))
    engine = Reparameterizer("physics", device="cpu", batch_size=2)
    maps = engine.compute_maps(volume, 50, 4500)
    assert engine.calibrate_peak and maps.peak_count.tolist() == [4] * len(volume)
    rendered = engine.render(maps, 80, 2500)
    np.testing.assert_allclose(rendered, engine.predict_volume(volume, 80, 2500, 50, 4500),
                               rtol=1e-5, atol=1e-3, equal_nan=True)
    engine.calibrate_peak = False
    plain = engine.compute_maps(volume, 50, 4500)
    assert np.all(plain.peak_count == 1)
    by_max = engine.render(plain, 80, 2500)
    assert (np.nanmax(rendered, axis=(1, 2)) > np.nanmax(by_max, axis=(1, 2))).all()  # a lower peak
    assert (np.nanmax(rendered, axis=(1, 2)) <= np.nanmax(volume, axis=(1, 2)) * (1 + 1e-4)).all()
    assert not Reparameterizer("d2p", device="cpu").calibrate_peak
    with pytest.raises(ValueError, match="physics model only"):
        Reparameterizer("d2p", device="cpu", calibrate_peak=False)


def test_training_renders_keep_the_maximum():
    from napari_mr_reparam.models.physics_net import PhysicsNet

    net = PhysicsNet(base=4, depth=3, task="d2p").train()
    maps = net.maps(torch.rand(2, 1, 64, 64))
    assert "peak_count" not in maps
    assert torch.allclose(net.render(maps, 80.0, 3000.0).amax(dim=(-2, -1)), torch.ones(2, 1))


def test_times_that_can_only_be_seconds_are_refused(tiny_weights, volume):
    engine = Reparameterizer("d2p", device="cpu")
    with pytest.raises(ValueError, match=r"TE 0.1 looks like seconds.*did you mean 100 ms\?"):
        engine.predict_volume(volume, 0.1, 3000)
    with pytest.raises(ValueError, match="input TR 4.5 looks like seconds"):
        engine.predict_images(np.zeros((1, 8, 8), np.float32), 100, 3000, 50, 4.5)
    physics = Reparameterizer("physics", device="cpu")
    maps = physics.compute_maps(volume, 50, 4500)
    with pytest.raises(ValueError, match="TI 2.5 looks like seconds"):
        physics.render(maps, 100, 9000, "inversion_recovery", 2.5)
    with pytest.raises(ValueError, match="input TE 0.05"):
        physics.compute_maps(volume, 0.05, 4500)


@pytest.mark.parametrize("fill", [np.nan, 0.0])
def test_a_volume_without_an_image_is_refused(tiny_weights, fill):
    engine = Reparameterizer("d2p", device="cpu")
    with pytest.raises(ValueError, match="holds no image"):
        engine.predict_volume(np.full((2, 8, 8), fill, np.float32), 100, 3000)
