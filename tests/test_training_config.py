"""Training configuration (training/config.py): recipes load, bad values are refused, and
the stream's options reach it."""

import pytest

from napari_mr_reparam.training.config import TrainConfig, load_config


def test_recipe_loading(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('stage = "paramnet"\ntask = "p2p"\nsteps = 5\n')
    cfg = load_config(recipe, steps=7, out=None)
    assert (cfg.task, cfg.steps) == ("p2p", 7)
    recipe.write_text('stepz = 5\n')
    with pytest.raises(ValueError, match="unknown recipe keys"):
        load_config(recipe)
    with pytest.raises(ValueError, match="unknown stage"):
        TrainConfig(stage="gan")
    with pytest.raises(ValueError, match="fraction_sharpening must be >= 1 and fraction_texture"):
        TrainConfig(fraction_sharpening=0.5)  # the stream's check, in the recipe's names
    with pytest.raises(ValueError, match="only acts with fraction_sharpening"):
        TrainConfig(fraction_texture=1.0)
    with pytest.raises(ValueError, match="fraction_sharpening_min"):
        TrainConfig(fraction_sharpening=4.0, fraction_sharpening_min=8.0)
    with pytest.raises(ValueError, match="csf_expansion"):
        TrainConfig(csf_expansion=0.5)
    subject = TrainConfig(fraction_sharpening=4.0, csf_expansion=2.0).stream_options().subject
    assert (subject.sharpening, subject.sharpening_min, subject.csf_expansion) == (4.0, 1.0, 2.0)
    for bad, match in (({"noise_max": -0.1}, "noise_max"), ({"bias_strength": 1.0}, "bias_strength"),
                       ({"image_loss": "l1"}, "unknown image_loss"), ({"subject_every": 0}, "subject_every"),
                       ({"tilt_deg": -1.0}, "tilt_deg"), ({"extra_reassign": 1.5}, "extra_reassign"),
                       ({"max_scale": 1.0}, "max_scale"), ({"anisotropy": -0.1}, "anisotropy"),
                       ({"deform_mm": -1.0}, "deform_mm"), ({"subject_workers": -1}, "subject_workers"),
                       ({"tissue_jitter": -0.1}, "tissue_jitter"),
                       ({"input_sequences": ["spin_echo"]}, "need an acquisition table")):
        with pytest.raises(ValueError, match=match):
            TrainConfig(**bad)
    options = TrainConfig(noise_max=0.0, bias_strength=0.0, subject_every=96).stream_options()
    assert (options.noise_max, options.bias_strength, options.subject_every) == (0.0, 0.0, 96)
    assert TrainConfig(subject_workers=2).stream_options().subject_workers == 2
    geometry = TrainConfig(deform_mm=8.0, max_scale=0.1, max_rotation_deg=10.0, anisotropy=0.05).stream_options()
    assert [getattr(geometry.subject, k) for k in ("deform_mm", "max_scale", "max_rotation_deg", "anisotropy")
            ] == [8.0, 0.1, 10.0, 0.05]


def test_every_stream_option_of_a_recipe_reaches_the_stream_and_has_the_streams_default():
    from dataclasses import fields

    from napari_mr_reparam.stream_options import StreamOptions, SubjectOptions
    from napari_mr_reparam.training.config import RECIPE_KEYS

    keys = {f.name for f in fields(TrainConfig)}
    reached = []
    for kind, parent in ((SubjectOptions, "subject"), (StreamOptions, None)):
        for option in fields(kind):
            key = RECIPE_KEYS.get(option.name, option.name)
            if key not in keys or key in ("tables", "input_sequences"):
                continue
            default = getattr(TrainConfig(), key)
            assert default == option.default, key  # one default, the stream's
            special = {"fraction_sharpening_min": {"fraction_sharpening": 4.0, key: 2.0},
                       "fraction_texture": {"fraction_sharpening": 4.0, key: 0.5},
                       "bias_strength": {key: 0.5}, "extra_reassign": {key: 0.5}, "max_scale": {key: 0.1},
                       "anisotropy": {key: 0.1}, "partial_volume": {key: "times"}}
            changed = special[key] if key in special else {key: default + 1}
            options = TrainConfig(**changed).stream_options()
            assert getattr(options.subject if parent else options, option.name) == changed[key], key
            reached.append(key)
    assert {"fraction_sharpening", "fraction_texture", "tilt_deg", "tissue_jitter", "extra_reassign",
            "anisotropy", "subject_every", "subject_workers", "noise_max", "partial_volume"} <= set(reached)
    options = TrainConfig(tables=["3t"], acquisition={"jpeg": 0.2},
                          input_sequences=["spin_echo", "mprage"]).stream_options()
    assert options.subject.tables == ("3t",) and options.input_sequences == ("spin_echo", "mprage")
    assert options.effects is not None and TrainConfig().stream_options().effects is None


def test_retired_options_load_when_off_and_are_refused_when_on(tmp_path):
    import json

    from napari_mr_reparam.training.config import RETIRED, config_from_record
    from napari_mr_reparam.weights import BUNDLED_DIR

    recipe = tmp_path / "r.toml"
    recipe.write_text("input_gain = 0.0\nsteps = 5\n")
    assert load_config(recipe).steps == 5
    recipe.write_text("input_gain = 0.1\n")
    with pytest.raises(ValueError, match="input_gain no longer exist"):
        load_config(recipe)
    with pytest.raises(ValueError, match="fine_brain no longer exist"):
        load_config(None, fine_brain=True)
    for name in RETIRED:
        assert not hasattr(TrainConfig(), name)
    cards = sorted(BUNDLED_DIR.glob("*.json"))
    assert cards
    for path in cards:  # every bundled card's recorded config still reads
        config = json.loads(path.read_text()).get("config")
        if config is not None:
            rebuilt = config_from_record(config).to_dict()
            assert {k: v for k, v in config.items() if k not in RETIRED} == {k: rebuilt[k] for k in config
                                                                             if k not in RETIRED}


def test_bundled_recipes_parse():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "training"
    names = {p.stem for p in folder.glob("*.toml")}
    assert {"autoencoder", "d2p", "p2p"} <= names
    for path in folder.glob("*.toml"):
        load_config(path)


def test_a_recipe_run_by_another_stages_command_is_refused_naming_its_own(tmp_path):
    recipe = tmp_path / "phys.toml"
    recipe.write_text('stage = "physics"\nsteps = 2\n')
    with pytest.raises(ValueError, match=r"is a recipe for the physics stage, not paramnet: "
                                         r"napari-mr-reparam-train physics --config .*phys.toml$"):
        load_config(recipe, stage="paramnet")
    assert load_config(recipe, stage="physics").steps == 2


def test_a_setting_of_the_wrong_kind_is_one_line_naming_it():
    from napari_mr_reparam.training.config import load_config

    for key, value, words in (("steps", "two", "steps must be a whole number"),
                              ("loader_workers", "two", "loader_workers must be a whole number"),
                              ("lr", "fast", "lr must be a number"), ("amp", 1, "amp must be true or false"),
                              ("steps", True, "steps must be a whole number")):
        with pytest.raises(ValueError, match=words):
            load_config(**{key: value})
    assert load_config(lr=1, width=1).lr == 1  # a whole number where a number is asked


def test_settings_out_of_range_are_one_line_naming_them():
    for key, value, words in (("steps", -3, "steps must be >= 1, got -3$"), ("steps", 0, "steps must be >= 1, got 0"),
                              ("batch_size", 0, "batch_size must be >= 1, got 0$"),
                              ("width", 0, "width must be above 0, got 0$"),
                              ("loader_workers", -1, "loader_workers must be >= 0, got -1$"),
                              ("checkpoint_every", 0, "checkpoint_every must be >= 1, got 0"),
                              ("log_every", 0, "log_every must be >= 1"),
                              ("targets_per_input", 0, "targets_per_input must be >= 1"),
                              ("depth", 0, "depth must be >= 1"), ("work_size", 3, "work_size must be >= 16"),
                              ("threads", -1, "threads must be >= 0"), ("lr", -1, "lr must be above 0"),
                              ("lr_final_fraction", 2, "lr_final_fraction must be between 0 and 1")):
        with pytest.raises(ValueError, match=f"^{words}"):
            load_config(**{key: value})


def test_tables_and_lists_of_the_wrong_kind_are_one_line_naming_the_key_and_its_kind():
    for key, value, words in (("acquisition", 5, r"acquisition must be a table \(\{name = value, \.\.\.\}\), got 5"),
                              ("acquisition", [0.1], "acquisition must be a table"),
                              ("phantoms", "mni152", "phantoms must be a list of text"),
                              ("phantoms", [1], r"phantoms must be a list of text, got \[1\]"),
                              ("tables", [True], "tables must be a list of text"),
                              ("input_sequences", "spin_echo", "input_sequences must be a list of text"),
                              ("acquisition", {"zoom": 5}, r"acquisition zoom must be a list of 2 numbers, got 5"),
                              ("acquisition", {"normalizations": [1, 2]}, "acquisition normalizations must be a list of 3"),
                              ("acquisition", {"jpeg": "often"}, "acquisition jpeg must be a number, got 'often'"),
                              ("acquisition", {"zoom": [1, "x"]}, "acquisition zoom must be a list of 2 numbers")):
        with pytest.raises(ValueError, match=f"^{words}"):
            load_config(**{key: value})
    with pytest.raises(ValueError, match="unknown acquisition effects: bogus"):  # the effects' own check
        load_config(acquisition={"noise_max": 0.1, "bogus": 1})
    assert load_config(acquisition={"zoom": [1, 1.5], "jpeg": 0}).acquisition == {"zoom": [1, 1.5], "jpeg": 0}


def test_set_of_a_table_of_the_wrong_kind_is_one_line(tmp_path, capsys):
    from napari_mr_reparam.training.cli import main as train_main

    assert train_main(["physics", "--set", "acquisition=5", "--out", str(tmp_path / "r"), "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert err == "error: acquisition must be a table ({name = value, ...}), got 5\n"
