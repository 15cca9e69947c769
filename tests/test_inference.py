"""The inference engine: normalization round trip, maps once, out-of-memory fallback."""

import warnings

import numpy as np
import pytest
import torch

from napari_mr_reparam.acquisition import Acquisition
from napari_mr_reparam.inference import InferenceOptions, Reparameterizer


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
    maps = engine.compute_maps(volume, Acquisition(50, 4500))
    assert maps.pd.shape[0] == volume.shape[0]
    rendered = engine.render(maps, Acquisition(80, 2500))
    direct = engine.predict_volume(volume, 80, 2500, 50, 4500)
    np.testing.assert_allclose(rendered, direct, rtol=1e-5, atol=1e-3, equal_nan=True)
    # several targets: the maps once, then one render each, as one request
    many = list(engine.predict_many(volume, [Acquisition(80, 2500), Acquisition(30, 600)], Acquisition(50, 4500)))
    np.testing.assert_array_equal(many[0], rendered)
    np.testing.assert_array_equal(many[1], engine.render(maps, Acquisition(30, 600)))


def test_flip_averaged_maps_are_the_mirror_of_the_mirrored_volumes(tiny_weights, volume):
    engine = Reparameterizer("physics", device="cpu", flip_average=True)
    maps = engine.compute_maps(volume, Acquisition(50, 4500))
    mirrored = engine.compute_maps(volume[..., ::-1].copy(), Acquisition(50, 4500))
    np.testing.assert_allclose(mirrored.t2[..., ::-1], maps.t2, rtol=1e-4, equal_nan=True)
    with pytest.raises(ValueError, match="physics model only"):
        Reparameterizer("d2p", device="cpu", flip_average=True)
    # a request switches it off for itself alone; the shared engine and its network keep theirs
    plain = engine.compute_maps(volume, Acquisition(50, 4500), options=InferenceOptions(flip_average=False))
    assert not np.allclose(plain.t2, maps.t2)
    assert engine.flip_average and not engine.net.flip_average
    assert not Reparameterizer("d2p", device="cpu").flip_average


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
    assert engine.consistency == DEFAULT_CONSISTENCY and engine.net.consistency == 0
    off = InferenceOptions(consistency=0)
    with_dc, without = engine.compute_maps(volume), engine.compute_maps(volume, options=off)
    assert not np.allclose(with_dc.pd, without.pd)
    np.testing.assert_array_equal(engine.compute_maps(volume).pd, with_dc.pd)  # nothing stuck
    assert engine.consistency == DEFAULT_CONSISTENCY and engine.net.consistency == 0
    np.testing.assert_array_equal(Reparameterizer("physics", device="cpu", consistency=0).compute_maps(volume).pd,
                                  without.pd)
    with pytest.raises(ValueError, match="between 0 and 1"):
        Reparameterizer("physics", device="cpu", consistency=1.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        engine.predict_volume(volume, 80, 2500, consistency=-0.1)
    with pytest.raises(ValueError, match="physics model only"):
        Reparameterizer("d2p", device="cpu", consistency=0.5)
    with pytest.raises(ValueError, match="physics model only"):
        Reparameterizer("d2p", device="cpu").predict_volume(volume, 80, 2500, consistency=0.5)
    assert Reparameterizer("d2p", device="cpu").consistency is None


def test_the_peak_the_input_calibrates_reaches_every_render(tiny_weights, volume, monkeypatch):
    from napari_mr_reparam import peaks

    monkeypatch.setattr(peaks, "calibrated_count", lambda rendered, image: np.full(len(image), 4))
    engine = Reparameterizer("physics", device="cpu", batch_size=2, keep_detail=False)
    maps = engine.compute_maps(volume, Acquisition(50, 4500))
    assert engine.calibrate_peak and maps.peak_count.tolist() == [4] * len(volume)
    rendered = engine.render(maps, Acquisition(80, 2500))
    np.testing.assert_allclose(rendered, engine.predict_volume(volume, 80, 2500, 50, 4500),
                               rtol=1e-5, atol=1e-3, equal_nan=True)
    plain = engine.compute_maps(volume, Acquisition(50, 4500), options=InferenceOptions(calibrate_peak=False))
    assert np.all(plain.peak_count == 1)
    by_max = engine.render(plain, Acquisition(80, 2500))
    top, top_by_max = np.nanmax(rendered, axis=(1, 2)), np.nanmax(by_max, axis=(1, 2))
    assert (top <= top_by_max * (1 + 1e-6)).all() and (top < top_by_max).any()  # clipped at a lower peak
    # a darker contrast (longer TE, shorter TR) than the input's comes out darker: input units
    assert (np.nanmax(rendered, axis=(1, 2)) <= np.nanmax(volume, axis=(1, 2)) * (1 + 1e-4)).all()
    assert not Reparameterizer("d2p", device="cpu").calibrate_peak
    with pytest.raises(ValueError, match="physics model only"):
        Reparameterizer("d2p", device="cpu", calibrate_peak=False)


def test_physics_weights_under_another_name_render_from_maps(tiny_weights, volume, tmp_path):
    import json
    import shutil

    source = tiny_weights / "physics.safetensors"
    (tmp_path / "mine").mkdir()
    renamed = tmp_path / "mine" / "my_maps_model.safetensors"
    shutil.copy(source, renamed)
    card = json.loads(source.with_suffix(".json").read_text())
    card["name"] = "my maps model"
    renamed.with_suffix(".json").write_text(json.dumps(card))
    engine, bundled = Reparameterizer(weights=str(renamed), device="cpu"), Reparameterizer("physics", device="cpu")
    assert engine.renders_from_maps and engine.info.name == "my maps model"
    assert not Reparameterizer("d2p", device="cpu").renders_from_maps
    target = Acquisition(80, 2500)
    np.testing.assert_array_equal(engine.predict(volume, target), bundled.predict(volume, target))


def test_a_users_checkpoint_goes_by_its_file_not_the_recipes_set(tiny_weights, tmp_path):
    import torch

    from napari_mr_reparam.weights import load_weights

    state, card = load_weights("physics")  # a training checkpoint's card names the recipe's set
    (tmp_path / "run").mkdir()
    ckpt = tmp_path / "run" / "checkpoint.pt"
    torch.save({"model": state, "card": card}, ckpt)
    assert Reparameterizer(weights=str(ckpt), device="cpu").info.name == str(ckpt)
    copy = tmp_path / "run" / "mine.safetensors"  # a copy whose card still says "physics"
    copy.write_bytes((tiny_weights / "physics.safetensors").read_bytes())
    copy.with_suffix(".json").write_text((tiny_weights / "physics.json").read_text())
    assert Reparameterizer(str(copy), device="cpu").info.name == str(copy)
    assert Reparameterizer("physics", device="cpu").info.name == "physics"


def test_weights_that_do_not_fit_the_model_their_card_names_are_one_line(tiny_weights, tmp_path):
    from napari_mr_reparam.weights import WeightsError, load_weights

    state, card = load_weights("physics")
    state["head.weight"] = torch.zeros(6, 256)  # another network's head
    torch.save({"model": state, "card": card}, tmp_path / "other.pt")
    with pytest.raises(WeightsError) as caught:
        Reparameterizer(weights=str(tmp_path / "other.pt"), device="cpu")
    assert str(caught.value) == (f"{tmp_path / 'other.pt'}: its tensors do not fit the physics model its card "
                                 "names (1 of another shape; first: head.weight is 6x256 in the file, "
                                 f"{'x'.join(map(str, load_weights('physics')[0]['head.weight'].shape))} "
                                 "in the model)")
    del state["head.weight"]
    state["extra"] = torch.zeros(1)
    torch.save({"model": state, "card": card}, tmp_path / "other.pt")
    with pytest.raises(WeightsError, match=r"\(1 missing, 1 unexpected; first: missing head.weight\)$"):
        Reparameterizer(weights=str(tmp_path / "other.pt"), device="cpu")


def test_a_card_that_describes_no_model_names_the_file(tiny_weights, tmp_path):
    from napari_mr_reparam.weights import WeightsError, load_weights

    state, card = load_weights("d2p")
    for broken, message in (({"task": None}, "its card gives no 'task'"),
                            ({"arch": "mystery"}, "unknown architecture 'mystery'")):
        ckpt = tmp_path / "odd.pt"
        torch.save({"model": state, "card": {k: v for k, v in dict(card, **broken).items() if v}}, ckpt)
        with pytest.raises(WeightsError, match=f"^{ckpt}: .*{message}"):
            Reparameterizer(weights=str(ckpt), device="cpu")


def test_per_slice_acquisitions_match_one_request_per_slice(tiny_weights, volume):
    for name in ("physics", "d2p"):
        engine = Reparameterizer(name, device="cpu", batch_size=2)
        te, tr = np.array([30, 60, 90, 120, 200], np.float32), np.array([900, 2000, 3000, 5000, 8000], np.float32)
        together = engine.predict(volume, Acquisition(te, tr))
        for k in range(len(volume)):  # the volume, read as a whole (physics: at one level), at slice k's
            alone = engine.predict(volume, Acquisition(float(te[k]), float(tr[k])))
            np.testing.assert_allclose(together[k], alone[k], rtol=1e-4, atol=1e-2, equal_nan=True)


def test_requests_report_progress_and_can_be_cancelled(tiny_weights, volume):
    from napari_mr_reparam.inference import Cancelled

    for name in ("physics", "d2p"):
        engine = Reparameterizer(name, device="cpu", batch_size=2)
        seen = []
        targets = [Acquisition(80, 2500), Acquisition(30, 600)]
        list(engine.predict_many(volume, targets, progress=seen.append))
        assert sum(seen) == engine.work_units(len(volume), len(targets))
        asked = []
        deep = np.concatenate([volume] * 3)  # 8 batches
        with pytest.raises(Cancelled):
            engine.predict(deep, targets[0], cancelled=lambda: asked.append(1) or len(asked) > 1)
        # stopped once told: the batches already under way (one per CPU thread) ask too, no more
        assert 2 <= len(asked) <= 2 + torch.get_num_threads() < 8


def test_bad_requests_get_one_line_reasons(tiny_weights, volume):
    engine = Reparameterizer("d2p", device="cpu")
    with pytest.raises(ValueError, match="spin-echo images only"):
        engine.predict(volume, Acquisition(20, 600, "gradient_echo", flip_deg=15))
    with pytest.raises(ValueError, match="shorter than TR"):
        engine.predict_volume(volume, 3000, 2500)
    with pytest.raises(TypeError, match="Acquisition"):
        Reparameterizer("physics", device="cpu").compute_maps(volume, 50)


def test_importing_the_engine_loads_no_simulator_scipy_or_qt():
    import subprocess
    import sys

    code = ("import sys, napari_mr_reparam.inference; "
            "print(','.join(m for m in ('scipy', 'napari_mr_reparam.simulate', 'napari_mr_reparam.phantoms', "
            "'qtpy', 'napari') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


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
    with pytest.raises(ValueError, match="TR 4.5 looks like seconds"):
        engine.predict_volume(volume, 100, 3000, 50, 4.5)
    physics = Reparameterizer("physics", device="cpu")
    with pytest.raises(ValueError, match="TI 2.5 looks like seconds"):
        physics.predict(volume, Acquisition(100, 9000, "inversion_recovery", 2.5))
    with pytest.raises(ValueError, match="TE 0.05 looks like seconds"):
        physics.compute_maps(volume, Acquisition(0.05, 4500))


@pytest.mark.parametrize("fill", [np.nan, 0.0])
def test_a_volume_without_an_image_is_refused(tiny_weights, fill):
    engine = Reparameterizer("d2p", device="cpu")
    with pytest.raises(ValueError, match="holds no image"):
        engine.predict_volume(np.full((2, 8, 8), fill, np.float32), 100, 3000)


def test_inputs_of_other_sequences_reach_a_network_conditioned_on_them(tiny_weights, volume, tmp_path):
    from napari_mr_reparam import weights
    from napari_mr_reparam.models.physics_net import PhysicsNet

    torch.manual_seed(0)
    net = PhysicsNet(base=4, depth=3, task="p2p", input_sequences=True)
    torch.nn.init.normal_(net.film[-1].weight, std=0.5)  # conditions that change the maps
    card = {"arch": "physics", "task": "p2p", "width": 0.03, "base": 4, "depth": 3, "name": "seq",
            "input_sequences": True, "config": {"keep_detail": True}}
    path = weights.save_weights(net.state_dict(), card, tmp_path / "seq.safetensors")
    engine = Reparameterizer(weights=str(path), device="cpu")
    target = Acquisition(80, 2500)
    mprage = engine.predict(volume, target, Acquisition(3, 2300, "mprage", 900, 9))
    gre = engine.predict(volume, target, Acquisition(3, 2300, "gradient_echo", None, 9))
    assert mprage.shape == volume.shape and not np.allclose(mprage, gre)
    # renders keep the input's detail whatever its sequence
    assert engine.compute_maps(volume, Acquisition(3, 2300, "mprage", 900, 9)).guide is not None
    assert engine.compute_maps(volume, Acquisition(120, 9000, "inversion_recovery", 2500)).guide is not None
    keywords = engine.predict_volume(volume, 80, 2500, 3, 2300, input_sequence="mprage", input_ti_ms=900,
                                     input_flip_deg=9)
    np.testing.assert_array_equal(keywords, mprage)
    with pytest.raises(ValueError, match="spin-echo inputs only"):
        Reparameterizer("physics", device="cpu").predict(volume, target, Acquisition(3, 2300, "mprage", 900, 9))
    with pytest.raises(ValueError, match="spin-echo inputs only"):
        Reparameterizer("p2p", device="cpu").predict(volume, target, Acquisition(3, 2300, "mprage", 900, 9))


def test_renders_keep_the_inputs_detail(tiny_weights):
    rng = np.random.default_rng(3)
    volume = rng.uniform(100, 800, (2, 300, 260)).astype(np.float32)  # finer than the working grid
    engine = Reparameterizer("physics", device="cpu")
    given = Acquisition(30, 800)
    assert engine.keep_detail and engine.options.keep_detail
    maps = engine.compute_maps(volume, given)
    assert maps.guide.shape == volume.shape[-2:]
    # the input's own acquisition gives the input back, detail and all
    detail = volume - volume.mean()
    own = engine.render(maps, given)
    assert own.shape == volume.shape and np.corrcoef(own.ravel(), detail.ravel())[0, 1] > 0.9
    # another target keeps the input's fine structure, which the maps' grid alone cannot hold
    plain = Reparameterizer("physics", device="cpu", keep_detail=False)
    kept, smooth = engine.render(maps, Acquisition(90, 4000)), plain.predict(volume, Acquisition(90, 4000), given)
    assert plain.compute_maps(volume, given).guide is None
    assert np.corrcoef(kept.ravel(), detail.ravel())[0, 1] > np.corrcoef(smooth.ravel(), detail.ravel())[0, 1] + 0.2
    with pytest.raises(ValueError, match="physics model only"):
        Reparameterizer("d2p", device="cpu").predict(volume, Acquisition(90, 4000), options=InferenceOptions(keep_detail=True))
    # some slices only, as the widget and the benchmarks take them
    part = maps.slices(np.array([1]))
    np.testing.assert_array_equal(engine.render(part, Acquisition(90, 4000))[0], kept[1])


def test_only_models_that_predict_each_target_warn_outside_their_trained_range(tiny_weights):
    from napari_mr_reparam.inference import bound_target_range

    physics = Reparameterizer("physics")
    assert bound_target_range(physics.info.card) is None  # it renders any TE/TR from its maps
    assert physics.target_warnings(4, 20) == [] and physics.target_warnings(5, 100) == []
    for name in ("d2p", "p2p"):
        engine = Reparameterizer(name)
        assert bound_target_range(engine.info.card) == engine.trained_ranges["target"]
        assert "TR 20 ms is outside the trained range" in " ".join(engine.target_warnings(4, 20))
        assert engine.target_warnings(50, 3000) == []
    assert bound_target_range({"arch": "hybrid"}) is not None  # its learned correction is per target


@pytest.mark.parametrize("shape, grid", [((2, 40, 3), ""), ((2, 1, 40), ""), ((1, 600, 10), " (read at 128 x 2)")])
def test_slices_too_thin_for_the_network_are_one_line(tiny_weights, tmp_path, shape, grid):
    from napari_mr_reparam import weights
    from napari_mr_reparam.models.physics_net import PhysicsNet

    card = {"arch": "physics", "task": "p2p", "base": 4, "depth": 3, "name": "native", "native_input": True}
    path = weights.save_weights(PhysicsNet(base=4, depth=3).state_dict(), card, tmp_path / "native.safetensors")
    engine = Reparameterizer("physics", weights=str(path), device="cpu")
    data = np.random.default_rng(0).random(shape).astype(np.float32)
    message = (f"the slices are {shape[1]} x {shape[2]} pixels{grid}: too thin for native, which needs 4 pixels "
               "or more along each side of a slice")
    with pytest.raises(ValueError, match=f"^{message.replace('(', '.').replace(')', '.')}$"):
        engine.predict(data, Acquisition(80, 3000))
    assert engine.predict(np.random.default_rng(0).random((2, 40, 4)).astype(np.float32),
                          Acquisition(80, 3000)).shape == (2, 40, 4)


@pytest.mark.parametrize("name", ["physics", "d2p"])
def test_an_infinite_voxel_is_not_measured_and_blanks_nothing_else(tiny_weights, volume, name):
    data = volume.copy()
    data[2, 10, 10], data[3, 5, 5] = np.inf, -np.inf
    engine = Reparameterizer(name, device="cpu", batch_size=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no numpy warning of a division by infinity
        pred = engine.predict_volume(data, 100, 3000)
    np.testing.assert_array_equal(np.isnan(pred), ~np.isfinite(data))  # NaN there alone, as for a NaN voxel


def test_a_volume_without_positive_signal_is_refused(tiny_weights):
    from napari_mr_reparam.inference import require_contrast

    data = -np.random.default_rng(0).uniform(0.1, 1.0, (2, 8, 8)).astype(np.float32)
    message = "the volume holds no image: no voxel is above 0 (the largest is {}); an MR magnitude image has " \
              "positive signal, so give the magnitude image"
    with pytest.raises(ValueError) as caught:
        Reparameterizer("d2p", device="cpu").predict_volume(data, 100, 3000)
    assert str(caught.value) == message.format(f"{float(data.max()):g}")
    data[0, 0, 0] = -0.0
    with pytest.raises(ValueError) as caught:
        require_contrast(data)
    assert str(caught.value) == message.format("0")
    require_contrast(np.where(data < -0.5, 1.0, data * 0.05))  # some positive signal, the rest near 0: an image


def test_a_signed_image_is_refused_with_a_hint_and_noise_around_zero_is_not():
    from napari_mr_reparam.inference import require_contrast
    from napari_mr_reparam.joint_fit import fit_maps
    from napari_mr_reparam.simulate import Acquisition

    rng = np.random.default_rng(0)
    noisy = rng.uniform(0.5, 1.0, (2, 16, 16)).astype(np.float32)
    noisy[:, :, :8] = rng.normal(0, 0.05, (2, 16, 8))  # a background of noise around 0, ringing and all
    require_contrast(noisy)
    signed = noisy.copy()
    signed[:, :8] = -0.6  # an inversion recovery's real-valued image: tissue not yet recovered is negative
    with pytest.raises(ValueError, match=r"^the volume holds signed values \(50 % of its voxels below -20 % of its "
                                         r"bright signal, down to -0.6\): a real-valued reconstruction, not a "
                                         r"magnitude image; give the magnitude \(absolute value\)$"):
        require_contrast(signed)
    mostly_below = noisy - 0.6 * noisy.max()  # an image shifted below zero: its bright signal is its magnitude's
    with pytest.raises(ValueError, match=r"^the volume holds signed values"):
        require_contrast(mostly_below)
    with pytest.raises(ValueError, match=r"^input 2 holds signed values \(50 %"):
        fit_maps([noisy, signed], [Acquisition(15, 3000), Acquisition(10, 2000, "inversion_recovery", 400)])


@pytest.mark.parametrize("given, error, message", [
    ({"te_ms": None}, TypeError, "te_ms takes a time in ms (a number), or one per slice; got None"),
    ({"te_ms": [100, 50]}, ValueError, "te_ms takes a time in ms (a number), or one per slice (5); got 2 values"),
    ({"tr_ms": "3000"}, TypeError, "tr_ms takes a time in ms (a number), or one per slice; got '3000'"),
    ({"input_tr_ms": [[4500]]}, ValueError,
     "input_tr_ms takes a time in ms (a number), or one per slice (5); got an array of shape (1, 1)"),
    ({"flip_deg": {}}, TypeError, "flip_deg takes an angle in degrees (a number), or one per slice; got dict"),
])
def test_a_time_that_is_not_a_number_names_its_parameter(tiny_weights, volume, given, error, message):
    engine = Reparameterizer("d2p", device="cpu")
    with pytest.raises(error) as caught:
        engine.predict_volume(volume, **{"te_ms": 100, "tr_ms": 3000, **given})
    assert str(caught.value) == message
    assert engine.predict_volume(volume, [100] * 5, 3000).shape == volume.shape  # one per slice
    with pytest.raises(ValueError) as caught:
        engine.predict(volume, Acquisition(np.array([100.0, 50.0]), 3000))
    assert str(caught.value) == ("the target's te_ms gives 2 values for a volume of 5 slices; give one value, "
                                 "or one per slice")


def test_the_readme_examples_import_the_engine_they_use():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "Reparameterizer(" in b]
    assert len(blocks) >= 2
    for block in blocks:
        assert "from napari_mr_reparam.inference import Reparameterizer" in block


def test_a_volume_of_one_value_besides_unmeasured_voxels_says_so():
    from napari_mr_reparam.inference import require_contrast

    data = np.full((2, 4, 4), 100.0, np.float32)
    with pytest.raises(ValueError, match=r"^the volume holds no image: every voxel is 100$"):
        require_contrast(data)
    data[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match=r"^the volume holds no image: every measured voxel is 100$"):
        require_contrast(data)


def test_the_input_preset_classifier_is_no_model_to_predict_with():
    from napari_mr_reparam.inference import Reparameterizer
    from napari_mr_reparam.weights import WeightsError

    with pytest.raises(WeightsError, match="^contrast: the input-preset classifier names an image's preset and "
                                           "predicts no image; models: d2p, p2p, physics"):
        Reparameterizer("contrast", device="cpu")


def test_a_volume_is_read_at_one_level_so_a_bright_voxel_does_not_dim_its_slice():
    from napari_mr_reparam.inference import _normalized_slices, volume_read

    tissue = np.random.default_rng(0).uniform(0.4, 0.5, (4, 32, 32)).astype(np.float32)
    tissue[1, 3, 3] = 5.0  # a vessel in one slice: at its own maximum that slice reads dim
    images, scale, _, _ = _normalized_slices(tissue)
    assert images[1].mean() < 0.5 * images[0].mean()
    read, level = volume_read(images, scale)
    assert 0.45 < level <= 0.5 and read.max() == 1.0  # the tissue's own top, not the vessel's
    assert abs(read[1].mean() - read[0].mean()) < 0.01  # every slice alike


def test_physics_maps_read_the_volume_at_one_level_and_render_at_it(tiny_weights, monkeypatch):
    engine = Reparameterizer("physics")
    volume = np.random.default_rng(1).uniform(100, 200, (3, 32, 32)).astype(np.float32)
    volume[0, 5, 5] = 2000.0
    seen = []
    real = engine._maps_batch
    monkeypatch.setattr(engine, "_maps_batch", lambda chunk, *a: seen.append(chunk.copy()) or real(chunk, *a))
    maps = engine.compute_maps(volume, Acquisition(50.0, 4500.0))
    read = np.concatenate(seen)
    assert read[0].mean() == pytest.approx(read[1].mean(), rel=0.02)  # the bright voxel dims nothing
    # renders in the input's units: at the input's own acquisition, each slice as bright as the input
    own = engine.render(maps, Acquisition(50.0, 4500.0))
    for k in range(3):
        assert np.median(own[k] / volume[k]) == pytest.approx(1.0, rel=0.1)


def test_slices_at_the_end_of_a_coil_keep_the_volume_s_scale_and_noise_alone_goes_dark(tiny_weights):
    from napari_mr_reparam.inference import InferenceOptions

    engine = Reparameterizer("physics")
    volume = np.random.default_rng(5).uniform(100, 200, (24, 32, 32)).astype(np.float32)
    volume[12:] *= 0.9 ** np.arange(1, 13)[:, None, None]  # the end of a coil: down to 0.28 of the signal
    volume[-1] = np.random.default_rng(6).uniform(0, 2, (32, 32))  # beyond the head: noise alone
    maps = engine.compute_maps(volume, Acquisition(50.0, 4500.0), options=InferenceOptions(keep_detail=False))
    assert np.all(maps.scale[:-1] == maps.scale[0])  # no step where a slice's brightest falls below half the level
    assert maps.scale[-1] < 0.05 * maps.scale[0]


def test_a_slice_with_little_in_it_renders_dark_not_at_the_volumes_level(tiny_weights):
    engine = Reparameterizer("physics")
    volume = np.random.default_rng(2).uniform(100, 200, (3, 32, 32)).astype(np.float32)
    volume[2] = np.random.default_rng(3).uniform(0, 2, (32, 32))  # above the head: noise alone
    maps = engine.compute_maps(volume, Acquisition(50.0, 4500.0))
    out = engine.render(maps, Acquisition(100.0, 3000.0))
    assert np.nanmax(out[2]) < 0.05 * np.nanmax(out[0])  # not its noise at the tissue's level
    assert maps.scale[2] < 0.05 * maps.scale[0]


def test_the_volume_level_is_numpys_percentile():
    from napari_mr_reparam.inference import _percentile_in_place

    rng = np.random.default_rng(4)
    for n in (1, 2, 9, 5000):
        values = rng.random(n).astype(np.float32)
        assert _percentile_in_place(values.copy(), 99.9) == pytest.approx(float(np.percentile(values, 99.9)))


def test_a_physics_model_keeps_the_input_s_detail_by_default_only_if_its_training_rendered_so(tiny_weights,
                                                                                            tmp_path):
    from napari_mr_reparam import weights
    from napari_mr_reparam.models.physics_net import PhysicsNet

    assert Reparameterizer("physics", device="cpu").keep_detail  # trained on guided renders
    card = {"arch": "physics", "task": "p2p", "width": 0.03, "base": 4, "depth": 3, "name": "plain",
            "config": {}}  # trained on plainly resized renders, as the MRiLab weights
    path = weights.save_weights(PhysicsNet(base=4, depth=3, task="p2p").state_dict(), card,
                                tmp_path / "plain.safetensors")
    plain = Reparameterizer(weights=str(path), device="cpu")
    assert not plain.keep_detail and Reparameterizer(weights=str(path), device="cpu", keep_detail=True).keep_detail


def test_a_complex_volume_is_read_as_its_magnitude_with_a_warning(tiny_weights, volume):
    engine = Reparameterizer("physics", device="cpu")
    finite = np.nan_to_num(volume)
    phase = np.exp(1j * np.linspace(0, np.pi, finite.size).reshape(finite.shape))
    with pytest.warns(UserWarning, match="complex voxel values; their magnitude is read"):
        got = engine.predict(finite * phase, Acquisition(100, 3000), Acquisition(50, 4500))
    np.testing.assert_allclose(got, engine.predict(finite, Acquisition(100, 3000), Acquisition(50, 4500)),
                               rtol=1e-5, atol=1e-4)


def test_default_to_param_refuses_an_input_it_would_read_as_its_own(tiny_weights, volume):
    engine = Reparameterizer("d2p", device="cpu")
    with pytest.raises(ValueError, match=r"^d2p reads inputs at TE 50 / TR 4500 ms only; for an input at "
                                         r"TE 15 / TR 3000 ms use the model 'p2p' or 'physics'"):
        engine.predict_volume(volume, 100, 3000, input_te_ms=15, input_tr_ms=3000)
    default = engine.predict_volume(volume, 100, 3000)
    np.testing.assert_array_equal(engine.predict_volume(volume, 100, 3000, 50, 4500), default)


@pytest.mark.parametrize("given, message", [
    ({"input_te_ms": 15}, "input_te_ms without input_tr_ms: give the input's TE and TR (ms) both; neither is guessed"),
    ({"input_tr_ms": 600}, "input_tr_ms without input_te_ms: give the input's TE and TR (ms) both; neither is guessed"),
    ({"input_sequence": "mprage", "input_ti_ms": 900, "input_flip_deg": 9},
     "an input_sequence without input_te_ms and input_tr_ms: give the input's TE and TR (ms) both; "
     "neither is guessed"),
])
def test_the_keyword_api_guesses_no_input_time(tiny_weights, volume, given, message):
    engine = Reparameterizer("physics", device="cpu")
    with pytest.raises(ValueError) as caught:
        engine.predict_volume(volume, 100, 3000, **given)
    assert str(caught.value) == message


def test_an_input_without_its_acquisition_is_read_as_the_default_one_with_a_warning(tiny_weights, volume):
    import warnings

    engine = Reparameterizer("physics", device="cpu")
    with pytest.warns(UserWarning, match=r"^no input acquisition given: the input is read as TE 50 / TR 4500 ms"):
        unstated = engine.predict_volume(volume, 100, 3000)
    np.testing.assert_array_equal(unstated, engine.predict_volume(volume, 100, 3000, 50, 4500))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Default-to-Param reads every input so: nothing to say
        Reparameterizer("d2p", device="cpu").predict_volume(volume, 100, 3000)
    from napari_mr_reparam import Acquisition

    for call in (lambda: engine.predict(volume, Acquisition(100, 3000)),  # the other entries say it too, once,
                 lambda: engine.compute_maps(volume)):  # and point at the script that called them
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            call()
        [one] = [w for w in said if "no input acquisition given" in str(w.message)]
        assert one.filename == __file__


def test_voxels_stored_without_signal_render_none_as_a_joint_fits_background_does(tiny_weights, volume):
    data = np.nan_to_num(volume) + 100.0
    data[:, :6, :] = 0.0  # air, or outside a skull-stripped brain's mask: stored 0
    data[1, :3, :3] = np.nan  # not measured: stays NaN
    engine = Reparameterizer("physics", device="cpu")
    maps = engine.compute_maps(data, Acquisition(50, 4500))
    for target in (Acquisition(15, 500), Acquisition(3, 2300, "mprage", 900, 9)):
        out = engine.render(maps, target)
        assert np.isnan(out[1, :3, :3]).all() and (out[1, 3:6] == 0).all() and (out[[0, 2, 3, 4], :6] == 0).all()
        assert (out[:, 6:] > 0).mean() > 0.9
        one = engine.render(maps.slices(slice(2, 3)), target)  # the slice a slider previews
        np.testing.assert_array_equal(one[0], out[2])


def test_dark_tissue_a_windowed_picture_stores_as_0_inside_the_head_is_rendered_from_its_maps(tiny_weights):
    from napari_mr_reparam.inference import empty_outside

    image = np.zeros((2, 40, 40), np.float32)
    image[:, 5:35, 5:35] = 500.0  # the head
    image[:, 15:25, 15:25] = 0.0  # a ventricle windowed to 0, enclosed by brighter tissue
    empty = empty_outside(image, np.zeros(image.shape, bool))
    assert empty[:, :5].all() and not empty[:, 15:25, 15:25].any() and not empty[:, 5:35, 5:35].any()
    engine = Reparameterizer("physics", device="cpu")
    out = engine.predict(image, Acquisition(100, 4000), Acquisition(15, 500))
    assert (out[:, :5] == 0).all() and (out[:, 15:25, 15:25] > 0).any()
