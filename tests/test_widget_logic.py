"""The widget's Qt-free logic: presets, several inputs' acquisitions, renders from cached maps."""

from types import SimpleNamespace

import numpy as np
import pytest
from helpers import below_sustained_peak

from napari_mr_reparam.widget_logic import (
    CUSTOM, InputSpec, MapsCache, Request, determined_line, input_from_metadata, input_times_to_type,
    joint_acquisitions, joint_inputs, layer_names, matching_preset, on_step, preset_choices, preset_controls,
    preset_over_stated, preset_refusal, render_request,
)


def _layer(name, shape=(2, 8, 8), **meta):
    return SimpleNamespace(name=name, data=np.ones(shape, np.float32), metadata=meta)


def test_every_preset_is_offered_and_matches_its_own_values():
    from napari_mr_reparam.presets import PRESETS

    assert preset_choices() == [CUSTOM, *PRESETS]
    for name in PRESETS:
        assert matching_preset(preset_controls(name)) == name
    values = {**preset_controls("FLAIR"), "te": 110.0}
    assert matching_preset(values) == CUSTOM
    # a value the sequence does not read does not matter
    assert matching_preset({**preset_controls("T2w"), "ti": 999.0}) == "T2w"


def test_only_the_physics_model_renders_other_sequences():
    assert preset_refusal("T1w", "d2p") == "" and preset_refusal("FLAIR", "physics") == ""
    assert "only the physics model" in preset_refusal("MPRAGE", "p2p")


def test_input_presets_set_the_input_controls_and_are_found_from_them():
    assert preset_choices(inputs=True) == [CUSTOM, "T1w", "T2w", "PDw", "FLAIR", "STIR", "MPRAGE"]
    values = preset_controls("MPRAGE")
    assert {k: values[k] for k in ("sequence", "te", "tr", "ti", "flip")} == {
        "sequence": "mprage", "te": 3.0, "tr": 2300.0, "ti": 900, "flip": 9}
    for name in preset_choices(inputs=True)[1:]:
        assert matching_preset(preset_controls(name), inputs=True) == name
    assert matching_preset({**values, "te": 4.0}, inputs=True) == CUSTOM  # an edit makes it Custom
    assert matching_preset({**values, "te": 2.98}, inputs=True) == "MPRAGE"  # a Siemens MPRAGE's tags
    assert matching_preset({**preset_controls("T2w"), "te": 100.5}) == CUSTOM  # the target's: as given
    assert matching_preset({**values, "flip": None}, inputs=True) == CUSTOM
    assert matching_preset(preset_controls("DIR"), inputs=True) == CUSTOM  # no input preset
    # a layer's metadata (a BIDS sidecar, DICOM tags) names the preset it matches
    spec = input_from_metadata(_layer("t1", te_ms=3, tr_ms=2300, ti_ms=900, flip_deg=9, sequence="mprage"))
    found = {"sequence": spec.sequence, "te": spec.te_ms, "tr": spec.tr_ms, "ti": spec.ti_ms, "flip": spec.flip_deg}
    assert matching_preset(found, inputs=True) == "MPRAGE"
    assert spec.acquisition().ti_ms == 900.0 and spec.acquisition().flip_deg == 9.0
    spec = input_from_metadata(_layer("pd", te_ms=15, tr_ms=3000))
    assert matching_preset({"sequence": spec.sequence, "te": spec.te_ms, "tr": spec.tr_ms}, inputs=True) == "PDw"
    assert preset_refusal("MPRAGE", "p2p", inputs=True) == (  # not "MPRAGE is mprage"
        "MPRAGE: only the physics model reads such an input (the other models read spin-echo inputs)")
    assert preset_refusal("FLAIR", "d2p", inputs=True).startswith(
        "FLAIR is inversion recovery: only the physics model reads such an input")
    assert preset_refusal("T1w", "p2p", inputs=True) == preset_refusal("FLAIR", "physics", inputs=True) == ""


def test_inputs_come_prefilled_from_layer_metadata():
    spec = input_from_metadata(_layer("ir", te_ms=10, tr_ms=5000, ti_ms=300))
    assert (spec.sequence, spec.te_ms, spec.tr_ms, spec.ti_ms) == ("inversion_recovery", 10.0, 5000.0, 300.0)
    gre = input_from_metadata(_layer("gre", te_ms=5, tr_ms=20, flip_deg=15, sequence="gradient_echo"))
    assert gre.acquisition().flip_deg == 15.0
    assert input_from_metadata(_layer("bare")).te_ms is None


def test_joint_inputs_keep_the_readers_clipped_voxels_where_the_layer_has_its_shape():
    from napari_mr_reparam.io import Volume

    mask = np.zeros((2, 8, 8), bool)
    mask[0, 1, 1] = True
    read = _layer("read", volume=Volume(np.empty((0, 8, 8)), kind="image", original_shape=(2, 8, 8),
                                        extra={"saturated": mask}))
    cropped = _layer("cropped", (2, 8, 8), volume=Volume(np.empty((0, 8, 8)), kind="image", original_shape=(2, 8, 8),
                                                          extra={"saturated": mask[:1]}))
    arrays, clipped, resampled, _, _, _ = joint_inputs([InputSpec(read, "spin_echo"), InputSpec(cropped, "spin_echo"),
                                                  InputSpec(_layer("plain"), "spin_echo")])
    assert clipped[0] is mask and clipped[1] is None and clipped[2] is None
    assert resampled == [] and all(a.shape == (2, 8, 8) for a in arrays)


def test_joint_inputs_of_other_grids_are_resampled_onto_the_first(tmp_path):
    import nibabel as nib

    from napari_mr_reparam._reader import read_layers

    fine, coarse = np.eye(4), np.diag([2.0, 2.0, 1.0, 1.0])
    coarse[:2, 3] = 0.5
    nib.save(nib.Nifti1Image(np.ones((16, 16, 3), np.float32), fine), tmp_path / "fine.nii.gz")
    nib.save(nib.Nifti1Image(np.full((8, 8, 3), 2.0, np.float32), coarse), tmp_path / "coarse.nii.gz")
    layers = []
    for name in ("fine", "coarse"):
        data, kwargs, _ = read_layers(str(tmp_path / f"{name}.nii.gz"))[0]
        layers.append(SimpleNamespace(data=data, name=kwargs["name"], metadata=kwargs["metadata"]))
    specs = [InputSpec(layers[0], "spin_echo", 15.0, 3000.0), InputSpec(layers[1], "spin_echo", 100.0, 3000.0)]
    assert [a.te_ms for a in joint_acquisitions(specs)] == [15.0, 100.0]  # no refusal: the reader placed both
    arrays, _, resampled, _, _, spacing = joint_inputs(specs)
    assert resampled == ["coarse"] and arrays[1].shape == arrays[0].shape == (3, 16, 16)
    assert np.allclose(arrays[1], 2.0) and spacing == (1.0, 1.0, 1.0)  # the first input's grid (1 mm)


def test_joint_inputs_give_the_first_layers_voxel_spacing_for_the_smoothing():
    thick = SimpleNamespace(data=np.ones((4, 8, 8), np.float32), name="slabs", metadata={}, scale=(5.0, 0.9, 0.9))
    *_, spacing = joint_inputs([InputSpec(thick, "spin_echo", 15.0, 3000.0),
                                InputSpec(SimpleNamespace(data=np.ones((4, 8, 8), np.float32), name="b", metadata={},
                                                          scale=(5.0, 0.9, 0.9)), "spin_echo", 100.0, 3000.0)])
    assert spacing == (5.0, 0.9, 0.9)


def test_joint_inputs_are_checked_with_one_line_messages():
    a, b = _layer("a", te_ms=15, tr_ms=3000), _layer("b", te_ms=100, tr_ms=3000)
    acqs = joint_acquisitions([input_from_metadata(a), input_from_metadata(b)])
    assert [x.te_ms for x in acqs] == [15.0, 100.0]
    with pytest.raises(ValueError, match=r"^the inputs are on different grids \(2x8x8 and 3x8x8\) and c has no affine"):
        joint_acquisitions([input_from_metadata(a), input_from_metadata(_layer("c", (3, 8, 8), te_ms=1, tr_ms=9))])
    with pytest.raises(ValueError, match=r"^b: no TR known"):
        joint_acquisitions([input_from_metadata(a), InputSpec(b, "spin_echo", 100.0, None)])
    with pytest.raises(ValueError, match="no TI known"):
        joint_acquisitions([input_from_metadata(a), InputSpec(b, "inversion_recovery", 10.0, 3000.0)])
    with pytest.raises(ValueError, match="given once"):
        joint_acquisitions([input_from_metadata(a), input_from_metadata(a)])
    with pytest.raises(ValueError, match="TE .* must be shorter than TR"):
        joint_acquisitions([input_from_metadata(a), InputSpec(b, "spin_echo", 4000.0, 3000.0)])


def test_joint_maps_are_cached_per_set_of_inputs_and_render_any_preset():
    from napari_mr_reparam import physics
    from napari_mr_reparam.joint_fit import joint_maps

    rng = np.random.default_rng(0)
    t1, t2 = rng.uniform(600, 1500, (2, 6, 6)), rng.uniform(50, 120, (2, 6, 6))
    pdw = _layer("pdw", te_ms=15, tr_ms=3000)
    t2w = _layer("t2w", te_ms=100, tr_ms=3000)
    pdw.data = physics.spin_echo(1.0, t1, t2, 15, 3000).astype(np.float32)
    t2w.data = physics.spin_echo(1.0, t1, t2, 100, 3000).astype(np.float32)
    inputs = (input_from_metadata(pdw), input_from_metadata(t2w))
    request = Request(pdw, "physics", "cpu", te=60.0, tr=3000.0, inputs=inputs)
    maps = joint_maps([pdw.data, t2w.data], joint_acquisitions(inputs))
    cache = MapsCache()
    cache.put(request, None, maps)
    assert cache.get(request) is not None
    other = Request(pdw, "physics", "cpu", te=60.0, tr=3000.0, inputs=(inputs[0], InputSpec(t2w, te_ms=90.0, tr_ms=3000.0)))
    assert cache.get(other) is None  # another acquisition typed: another fit
    rendered = render_request(None, maps, request)
    truth = physics.spin_echo(1.0, t1, t2, 60, 3000)
    assert np.allclose(maps.render(60, 3000, clip_overshoot=False), truth, rtol=0.02)  # T2 from the dual echo
    kept = below_sustained_peak(rendered)  # the render users see: lone maxima of random maps clipped
    assert kept.mean() > 0.5 and np.allclose(rendered[kept], truth[kept], rtol=0.02)
    line = determined_line(maps.summary())  # a dual echo at one TR measures T2, not T1
    assert line.startswith("The inputs determine PD ") and ", T1 0 %, T2 " in line and ", T2 0 %" not in line
    assert line.endswith("a broad default (T1 1000 ms, T2 100 ms); T1 is the default everywhere, not a "
                         "measurement")  # no engine: no network maps
    network = {**maps.summary(), "prior_source": "network", "prior_parameters": ["pd", "t1", "t2"]}
    assert determined_line(network).endswith("the network's maps (PD, T1 and T2); T1 is the network's estimate "
                                             "everywhere, not a measurement")  # an echo train, say
    none = {**network, "determined_fraction": {"pd": 0.0, "t1": 0.0, "t2": 0.001}}  # a pair: one line of values
    assert determined_line(none).startswith("Fewer images than unknowns (PD, T1, T2): the images fix how the "
                                            "three relate, and the network's maps (PD, T1 and T2) pick the values")
    assert "gain" not in determined_line(maps.summary())  # one gain shared
    assert "registered" not in determined_line(maps.summary())
    assert determined_line(maps.summary(), register=True).endswith(
        "; none registered: every input is an image of the first input's series")
    separate = {**network, "scales": [1.0, 2.31]}  # one gain per image, estimated
    assert determined_line(separate).endswith("; each further image's gain over the first's: 2.31")
    series = {**network, "scales": [1.0] * 5 + [2.92] * 32,  # an inversion-recovery set and an echo train
              "resampled_onto_first_grid": [f"train TE {8 * k}" for k in range(1, 33)]}
    assert determined_line(series).endswith("; each further image's gain over the first's: 1.00 (images 2-5), "
                                            "2.92 (images 6-37); resampled onto the first input's grid by their "
                                            "affines: train TE 8 and 31 more")
    assert determined_line({**network, "scales": [1.0, 2.0, 1.5]}).endswith("first's: 2.00, 1.50")
    assert "not measured" not in determined_line(maps.summary())  # every input measured every voxel
    few = {**maps.summary(), "partly_measured_fraction": 0.002, "partly_measured_prior": "default"}
    assert determined_line(few).endswith("; under 1 % of the object is not measured by every input (outside "
                                         "some input's field of view, or NaN or infinite in it): fitted there to "
                                         "the inputs that measure it")
    partly = {**maps.summary(), "partly_measured_fraction": 0.213, "partly_measured_prior": "network"}
    assert determined_line(partly).endswith("; 21 % of the object is not measured by every input (outside some "
                                            "input's field of view, or NaN or infinite in it): fitted there to the "
                                            "inputs that measure it, the network's maps of the first input filling "
                                            "in what they leave open")
    per_input = Request(pdw, "physics", "cpu", te=60.0, tr=3000.0, inputs=inputs, gain_per_input=True)
    assert cache.get(per_input) is None  # gains of their own: another fit
    dir_ = render_request(None, maps, Request(pdw, "physics", "cpu", te=25.0, tr=11000.0,
                                               sequence="double_inversion_recovery", ti=3400.0, ti2=325.0,
                                               inputs=inputs))
    assert dir_.shape == pdw.data.shape and np.isfinite(dir_).all()
    on_screen = render_request(None, maps, Request(pdw, "physics", "cpu", te=60.0, tr=3000.0, inputs=inputs,
                                                   slice_index=1))  # a preview while a slider moves
    np.testing.assert_allclose(on_screen, rendered[1:2], rtol=1e-5)
    cache.forget(t2w)
    assert cache.get(request) is None


def test_layer_names_say_the_new_sequences():
    assert layer_names("joint(2)", 25, 11000, "double_inversion_recovery", 3400, None, 325)["prediction"] == \
        "prediction joint(2) DIR TE25 TR11000 TI3400 TI2 325"


def test_one_input_carries_its_sequence_to_the_engine_and_the_maps_cache():
    from napari_mr_reparam.acquisition import Acquisition
    from napari_mr_reparam.widget_logic import MapsCache

    layer = SimpleNamespace(data=np.zeros((2, 4, 4)))
    spin = Request(layer, "physics", "cpu", te=20.0, tr=600.0, input_te=120.0, input_tr=9000.0)
    flair = Request(layer, "physics", "cpu", te=20.0, tr=600.0, input_te=120.0, input_tr=9000.0,
                    input_sequence="inversion_recovery", input_ti=2500.0)
    assert spin.given() == Acquisition(120.0, 9000.0)
    assert flair.given() == Acquisition(120.0, 9000.0, "inversion_recovery", 2500.0)
    assert Request(layer, "d2p", "cpu", te=20.0, tr=600.0).given() is None
    cache = MapsCache()
    cache.put(spin, "engine", "spin-echo maps")
    assert cache.get(flair) is None and cache.get(spin) == ("engine", "spin-echo maps")



def test_the_maps_cache_keeps_the_most_recently_used_sets_only():
    from dataclasses import replace

    from napari_mr_reparam.widget_logic import MAX_CACHED_MAPS, MapsCache

    layer = SimpleNamespace(data=np.zeros((2, 4, 4)))
    tried = [Request(layer, "physics", "cpu", te=20.0, tr=600.0, input_te=15.0, input_tr=500.0, consistency=c)
             for c in (0.0, 0.25, 0.5, 0.75, 1.0)]  # each weight tried is a set of maps (200 MB on a big volume)
    cache = MapsCache()
    for k, request in enumerate(tried[:MAX_CACHED_MAPS]):
        cache.put(request, "engine", k)
    assert cache.get(tried[0]) == ("engine", 0)  # used: kept over the ones after it
    cache.put(tried[MAX_CACHED_MAPS], "engine", "new")
    assert cache.get(tried[1]) is None and cache.get(tried[0]) == ("engine", 0)
    assert cache.get(replace(tried[MAX_CACHED_MAPS], te=100.0)) == ("engine", "new")  # any target of it
    assert len(cache._entries) == MAX_CACHED_MAPS


def test_a_paper_model_refuses_an_input_it_cannot_read():
    from napari_mr_reparam.widget_logic import input_refusal

    default = _layer("head", te_ms=50.0, tr_ms=4500.0, flip_deg=90.0)
    for model in ("d2p", "p2p", "physics"):
        assert input_refusal(model, default) == "" and input_refusal(model, _layer("no metadata")) == ""
    assert input_refusal("d2p", _layer("short", te_ms=20.0, tr_ms=600.0)) == (
        "short is at TE 20 / TR 600 ms: Default-to-Param reads inputs at TE 50 / TR 4500 ms only; choose "
        "Param-to-Param or Physics")
    assert input_refusal("d2p", _layer("tr only", tr_ms=600.0)).startswith("tr only is at TE 50 / TR 600 ms")
    assert input_refusal("d2p", _layer("flair", te_ms=50.0, tr_ms=4500.0, ti_ms=2500.0)) == (
        "flair is inversion recovery: Default-to-Param reads spin-echo inputs at TE 50 / TR 4500 ms only; "
        "choose Physics")
    mprage = _layer("t1", te_ms=3.0, tr_ms=2300.0, ti_ms=900.0, flip_deg=9.0, sequence="mprage")
    assert input_refusal("d2p", mprage).startswith("t1 is MPRAGE: Default-to-Param reads spin-echo inputs")
    assert input_refusal("p2p", mprage, "mprage") == (
        "t1 is MPRAGE: Param-to-Param reads spin-echo inputs only; choose Physics (or a spin-echo Input "
        "preset, if it is one)")
    assert input_refusal("p2p", mprage, "spin_echo") == "" and input_refusal("physics", mprage, "mprage") == ""


def test_a_colour_layer_is_refused():
    from napari_mr_reparam.widget_logic import image_refusal

    assert image_refusal(SimpleNamespace(name="photo", rgb=True)) == (
        "photo is an RGB(A) colour image; the models take grey-level images: open the file with the "
        "napari-mr-reparam reader (it reads colour as grey levels)")
    scan = SimpleNamespace(name="scan", data=np.arange(16, dtype=np.float32).reshape(1, 4, 4))
    assert image_refusal(scan) == "" and image_refusal(SimpleNamespace(name="g", rgb=False)) == ""
    rendered = SimpleNamespace(name="dir", data=scan.data, metadata={"sequence": "double_inversion_recovery"})
    assert image_refusal(rendered) == ("dir is double inversion recovery: no model reads one as its input (spin echo, "
                                       "inversion recovery, gradient echo, MPRAGE); choose another layer")
    t1 = SimpleNamespace(name="T1map", data=scan.data, metadata={"quantity": "T1", "unit": "ms"})
    assert image_refusal(t1) == "T1map: holds a T1 map (ms), not a scan; give an image acquired at a TE and TR"


@pytest.mark.parametrize("data, said", [
    (np.full((2, 4, 4), np.nan), "nan holds no image: every voxel is NaN or infinite; choose another layer"),
    (np.full((2, 4, 4), np.inf), "inf holds no image: every voxel is NaN or infinite; choose another layer"),
    (np.zeros((2, 4, 4), np.float32), "zeros holds no image: every voxel is 0; choose another layer"),
    (np.full((4, 4), 7.0), "seven holds no image: every voxel is 7; choose another layer"),
])
def test_a_layer_with_no_image_in_it_is_refused_in_one_line_that_names_it(data, said):
    from napari_mr_reparam.widget_logic import guessed_input_preset, image_refusal

    layer = SimpleNamespace(name=said.split(" ")[0], data=data, metadata={})
    assert image_refusal(layer) == said
    assert guessed_input_preset(layer, "physics") is None  # nothing to guess from: no error either


def test_a_layer_of_four_dimensions_is_refused_with_what_to_do():
    from napari_mr_reparam.widget_logic import guessed_input_preset, image_refusal

    layer = SimpleNamespace(name="echoes", data=np.random.default_rng(0).random((2, 3, 8, 8)), metadata={})
    assert image_refusal(layer) == (
        "echoes has 4 dimensions (2, 3, 8, 8); the models take a 2-D image or a 3-D volume: split it into "
        "volumes (right-click the layer > Split Stack) and choose one")
    assert guessed_input_preset(layer, "physics") is None


def test_an_input_sequence_without_its_ti_or_flip_is_refused_asking_for_them():
    layer = _layer("t1")
    mprage = Request(layer, "physics", "cpu", te=100.0, tr=4000.0, input_te=3.0, input_tr=2300.0,
                     input_sequence="mprage", input_ti=None, input_flip=9.0)
    with pytest.raises(ValueError, match=r"^t1: no TI known for its MPRAGE acquisition; type it in Input TI$"):
        mprage.given()
    from dataclasses import replace

    with pytest.raises(ValueError, match=r"^t1: no TI or flip angle known for its MPRAGE acquisition; type them "
                                         r"in Input TI and Input flip$"):
        replace(mprage, input_flip=None).given()
    gre = replace(mprage, input_sequence="gradient_echo", input_flip=None)
    with pytest.raises(ValueError, match=r"^t1: no flip angle known for its gradient echo acquisition"):
        gre.given()
    assert replace(mprage, input_ti=900.0).given().ti_ms == 900.0


def test_an_impossible_input_acquisition_names_the_input():
    request = Request(_layer("t2"), "physics", "cpu", te=100.0, tr=4000.0, input_te=50.0, input_tr=40.0)
    with pytest.raises(ValueError, match=r"^t2's acquisition \(Input TE/TR\): TE \(50 ms\) must be shorter than "
                                         r"TR \(40 ms\)$"):
        request.given()


def test_a_target_is_named_by_its_preset_or_sequence_and_its_times():
    from napari_mr_reparam.widget_logic import target_words

    layer = _layer("t1")
    flair = Request(layer, "physics", "cpu", te=120.0, tr=9000.0, sequence="inversion_recovery", ti=2500.0)
    assert target_words(flair) == "FLAIR, TE 120 / TR 9000 / TI 2500 ms"
    custom = Request(layer, "physics", "cpu", te=80.0, tr=3000.0)
    assert target_words(custom) == "spin echo, TE 80 / TR 3000 ms"
    gre = Request(layer, "physics", "cpu", te=5.0, tr=30.0, sequence="gradient_echo", flip_deg=20.0)
    assert target_words(gre) == "gradient echo, TE 5 / TR 30 ms, flip 20°"


def test_a_time_that_can_only_be_seconds_gets_the_command_lines_hint():
    from napari_mr_reparam.widget_logic import seconds_hint

    assert seconds_hint(te=100.0, tr=2.3) == "TR 2.3 looks like seconds; times are in milliseconds (did you mean " \
                                             "2300 ms?)"
    assert seconds_hint(input_te=0.05, input_tr=4500.0) == ("input TE 0.05 looks like seconds; times are in "
                                                            "milliseconds (did you mean 50 ms?)")
    assert seconds_hint(input_ti=0.9).startswith("input TI 0.9 looks like seconds")
    assert seconds_hint(te=100.0, tr=3000.0, ti=2500.0, input_te=15.0, input_tr=500.0, input_ti=0) == ""
    assert seconds_hint("gradient_echo", te=4.0, tr=8.0) == ""  # a gradient echo's TR may be a few ms
    assert seconds_hint(input_te=0.03856).endswith("(did you mean 38.56 ms?)")  # the digits typed, all of them
    assert seconds_hint(tr=2.2999999523).endswith("(did you mean 2300 ms?)")  # a slider's float


def test_a_ground_truth_of_another_sequence_gets_a_warning():
    from napari_mr_reparam.widget_logic import truth_mismatch

    prediction = {"te_ms": 120.0, "tr_ms": 9000.0, "ti_ms": 2500.0, "sequence": "inversion_recovery"}
    assert truth_mismatch("head", {"te_ms": 120.0, "tr_ms": 9000.0, "sequence": "spin_echo"}, prediction) == (
        "⚠ the ground truth is spin echo, the prediction inversion recovery: the difference and PSNR/SSIM "
        "compare different contrasts")
    assert truth_mismatch("flair", {"te_ms": 120.0, "tr_ms": 9000.0, "ti_ms": 2500.0}, prediction) == ""
    assert truth_mismatch("mprage", {"sequence": "mprage"}, {**prediction, "sequence": "gradient_echo"}).startswith(
        "⚠ the ground truth is MPRAGE, the prediction gradient echo")
    assert truth_mismatch("unknown", {}, prediction) == ""


def test_a_slider_action_lands_on_a_multiple_of_the_step_within_the_range():
    assert on_step(4995.00066, 10, 0.01, 15000) == 5000
    assert on_step(499.50667, 1, 0.01, 1500) == 500  # round half to even is fine: a multiple either way
    assert on_step(0.01, 10, 0.01, 15000) == 10  # the seconds floor is below the grid
    assert on_step(15003, 10, 0.01, 15000) == 15000
    assert on_step(1.0, 5, 10, 5000) == 10
    assert on_step(0.3, 0.05, 0, 1) == 0.3


def test_a_layer_read_from_a_3d_file_that_looks_mprage_like_is_offered_as_mprage(monkeypatch):
    from napari_mr_reparam import contrast
    from napari_mr_reparam.io import Volume
    from napari_mr_reparam.widget_logic import guessed_input_preset

    monkeypatch.setattr(contrast, "guess_input", lambda volume, weights=None, classifier=None:
                        contrast.ContrastGuess("T1w", 0.6, {"T1w": 0.6, "MPRAGE": 0.3}))
    data = np.arange(4 * 8 * 8, dtype=np.float32).reshape(4, 8, 8)  # an image in it: guessed
    read = SimpleNamespace(data=data, name="t1", metadata={"volume": Volume(data=data, spacing=(1.0, 1.0, 1.0))})
    drawn = SimpleNamespace(data=data, name="t1", metadata={})  # no file: placement unknown
    assert guessed_input_preset(read, "physics").reading == "MPRAGE"
    assert guessed_input_preset(drawn, "physics").reading == "T1w"
    assert guessed_input_preset(read, "p2p").reading == "T1w"  # reads spin-echo inputs only


def test_the_images_of_one_series_are_those_the_reader_read_together():
    from types import SimpleNamespace as NS

    from napari_mr_reparam.widget_logic import series_siblings

    class Image(NS):  # stands in for napari's Image layer (the class name is what counts)
        pass

    def layer(series, shape=(2, 8, 8), role=None, source="/study"):
        meta = {"source": source, "volume": NS(extra={"series": series})}
        if role:
            meta["mr_reparam_role"] = role
        return Image(data=np.zeros(shape), metadata=meta)

    first, echo2, echo3 = layer("train"), layer("train"), layer("train")
    other_series, other_shape = layer("another"), layer("train", shape=(2, 4, 4))
    output, elsewhere = layer("train", role="prediction"), layer("train", source="/another")
    layers = [first, other_series, echo2, output, other_shape, elsewhere, echo3]
    assert series_siblings(first, layers) == [echo2, echo3]
    assert series_siblings(first, layers, used=[echo2]) == [echo3]
    assert series_siblings(output, layers) == [] and series_siblings(None, layers) == []
    assert series_siblings(Image(data=np.zeros((2, 8, 8)), metadata={}), layers) == []
    timed = [layer("ir") for _ in range(4)]  # the series opened twice: TI 50 and 100 ms, each twice
    for image, ti in zip(timed, (50.0, 100.0, 50.0, 100.0)):
        image.metadata.update(te_ms=10.0, tr_ms=1000.0, ti_ms=ti)
    assert series_siblings(timed[0], timed) == [timed[1]]
    # a train's echoes written a file each (dcm2niix), their sidecars naming one series
    echoes = [Image(data=np.zeros((2, 8, 8)), metadata={"source": f"/nii/38_e{k}.nii.gz", "te_ms": 10.0 * k,
                                                        "volume": NS(extra={"series_id": n})})
              for k, n in ((1, "38"), (2, "38"), (3, "38"), (1, "39"))]
    assert series_siblings(echoes[0], echoes) == echoes[1:3]
    # an inversion-recovery set's TIs, a DICOM series each (dcm2niix: a file and series number each)
    tis = [Image(data=np.zeros((2, 8, 8)), metadata={
        "source": f"/nii/{n}.nii.gz", "ti_ms": ti, "volume": NS(extra={"series_id": n}, sequence="inversion_recovery",
                                                                te_ms=te)})
        for n, ti, te in (("32", 50.0, 10.0), ("33", 100.0, 10.0), ("34", 200.0, 10.0), ("35", 400.0, 20.0))]
    assert series_siblings(tis[0], tis) == tis[1:3]


def test_each_input_layers_source_names_its_series_for_the_gains():
    from types import SimpleNamespace

    from napari_mr_reparam.series_gains import by_source
    from napari_mr_reparam.widget_logic import InputSpec, input_sources

    def spec(source):
        return InputSpec(SimpleNamespace(name="x", metadata={"source": source} if source else {}))

    ir, train, plain = [spec("ir")] * 2, [spec("train")] * 3, spec(None)
    sources = input_sources([*ir, *train, plain])
    assert sources[:5] == ["ir", "ir", "train", "train", "train"] and sources[5] == id(plain.layer)
    assert by_source(sources) == sources  # a gain per folder where one brought several images
    assert by_source(input_sources([spec("t1w.nii"), spec("t2w.nii")])) == "shared"


def test_an_input_time_the_command_line_would_not_guess_is_to_be_typed():
    dicom = SimpleNamespace(kind="dicom")
    assert input_times_to_type(_layer("no EchoTime", tr_ms=2000.0, volume=dicom)) == ["TE"]
    assert input_times_to_type(_layer("no tags", volume=dicom)) == ["TE", "TR"]
    assert input_times_to_type(_layer("TE only", te_ms=30.0)) == ["TR"]  # one time is not guessed from the other
    assert input_times_to_type(_layer("plain")) == []  # names nothing: its look, or the default
    assert input_times_to_type(_layer("sidecar", te_ms=30.0, tr_ms=3000.0)) == []
    bravo = _layer("bravo", te_ms=3.2, sequence="mprage", readout_tr_ms=8.2, volume=dicom)
    assert input_times_to_type(bravo) == []  # its TR is the MPRAGE preset's, said so


@pytest.mark.parametrize("te, tr, said", [
    (0.0, 2000.0, "no TE known for its spin echo acquisition; type it in Input TE"),
    (30.0, 0.0, "no TR known for its spin echo acquisition; type it in Input TR"),
    (0.0, 0.0, "no TE or TR known for its spin echo acquisition; type them in Input TE and Input TR"),
])
def test_an_input_time_not_known_is_refused_asking_for_it(te, tr, said):
    request = Request(_layer("scan"), "p2p", "cpu", te=100.0, tr=4000.0, input_te=te, input_tr=tr)
    with pytest.raises(ValueError, match=f"^scan: {said}$"):
        request.given()


def test_lone_scans_of_several_files_fitted_at_one_gain_get_a_hint():
    from napari_mr_reparam.widget_logic import one_gain_hint

    def request(*layers, per_input=False, times=((15.0, 500.0), (100.0, 4000.0))):
        specs = tuple(InputSpec(layer, te_ms=te, tr_ms=tr) for layer, (te, tr) in zip(layers, times))
        return Request(layers[0], "physics", "cpu", te=60.0, tr=3000.0, inputs=specs, gain_per_input=per_input)

    t1w, t2w = _layer("t1w", source="t1w.nii.gz"), _layer("t2w", source="t2w.nii.gz")
    assert one_gain_hint(request(t1w, t2w)).startswith("; one gain for all, as images of one series saved apart")
    assert one_gain_hint(request(t1w, t2w, times=((15.0, 3000.0), (100.0, 3000.0)))) == ""  # a dual echo: one gain
    assert one_gain_hint(request(t1w, t2w, per_input=True)) == ""  # asked for a gain each
    assert one_gain_hint(request(_layer("a"), _layer("b"))) == ""  # made in napari: one unit
    assert one_gain_hint(request(t1w)) == ""


def test_a_number_typed_beyond_a_range_is_said_with_the_range_and_what_was_taken():
    from napari_mr_reparam.widget_logic import typed_beyond_line

    assert typed_beyond_line("TE", "ms", 7000, 1500, 0.01, 1500) == \
        "TE 7000 ms is above the 0.01-1500 ms this field takes: set to 1500 ms"
    assert typed_beyond_line("Flip angle", "°", -3, 30, 1, 90) == \
        "Flip angle -3° is below the 1-90° this field takes: kept 30°"


def test_an_impossible_input_value_names_the_field_it_is_in():
    from napari_mr_reparam.widget_logic import Request

    layer = SimpleNamespace(name="gr")
    flip = Request(layer, "physics", "cpu", te=30.0, tr=500.0, input_te=5.0, input_tr=20.0,
                   input_sequence="gradient_echo", input_flip=0.5)
    with pytest.raises(ValueError, match=r"^gr's acquisition \(Input flip\): flip angle 0\.5 looks like radians"):
        flip.given()
    times = Request(layer, "physics", "cpu", te=30.0, tr=500.0, input_te=50.0, input_tr=40.0)
    with pytest.raises(ValueError, match=r"^gr's acquisition \(Input TE/TR\): TE \(50 ms\) must be shorter"):
        times.given()


def test_lazy_layers_are_checked_and_placed_without_reading_their_voxels():
    """The checks the GUI thread makes as a layer is chosen and before a job (its image,
    a guess of its preset, the joint inputs' grids) read no voxel of a dask layer."""
    import dask.array as da

    from napari_mr_reparam.widget_logic import guessed_input_preset, image_refusal

    def unread(block):
        raise AssertionError("a voxel was read")

    def lazy(name, **meta):
        data = da.zeros((2, 8, 8), chunks=(1, 8, 8), dtype=np.float32).map_blocks(unread, dtype=np.float32)
        return SimpleNamespace(name=name, data=data, metadata=meta, scale=(1.0, 1.0, 1.0))

    a, b = lazy("a", te_ms=15, tr_ms=3000), lazy("b", te_ms=100, tr_ms=3000)
    assert image_refusal(a) == "" and guessed_input_preset(lazy("plain"), "physics") is None
    assert [x.te_ms for x in joint_acquisitions([input_from_metadata(a), input_from_metadata(b)])] == [15.0, 100.0]


def test_an_input_preset_over_what_a_file_states_names_each_value_it_replaces():
    flair = _layer("flair", te_ms=120.0, tr_ms=9000.0, ti_ms=2500.0, sequence="inversion_recovery")
    assert preset_over_stated(flair, "FLAIR", {**preset_controls("FLAIR"), "te": 120.0, "tr": 9000.0,
                                               "ti": 2500.0}) is None  # the same acquisition
    assert preset_over_stated(flair, "T2w", preset_controls("T2w")) == (
        "flair: Input preset T2w replaces what its file states (inversion recovery -> spin echo, TE 120 -> 100 ms, "
        "TR 9000 -> 4000 ms); Input preset Custom takes the file's values back")
    assert preset_over_stated(_layer("plain"), "T2w", preset_controls("T2w")) is None  # nothing stated
