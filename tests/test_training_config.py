"""Training configuration (training/config.py): recipes load, bad values are refused, and
the stream's options reach it."""

from pathlib import Path

import pytest

from napari_mr_reparam.training.config import TrainConfig, load_config

ROOT = Path(__file__).resolve().parents[1]


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
                              ("width", 0, "width must be above 0 and <= 4, got 0$"),
                              ("width", 1e9, "width must be above 0 and <= 4, got 1000000000.0$"),
                              ("loader_workers", -1, "loader_workers must be >= 0, got -1$"),
                              ("checkpoint_every", 0, "checkpoint_every must be >= 1, got 0"),
                              ("log_every", 0, "log_every must be >= 1"),
                              ("targets_per_input", 0, "targets_per_input must be >= 1"),
                              ("depth", 0, "depth must be between 1 and 7, got 0$"),
                              ("depth", 10, "depth must be between 1 and 7, got 10$"),
                              ("work_size", 3, "work_size must be between 16 and 1024"),
                              ("size", 0, "size must be between 16 and 2048, got 0$"),
                              ("pairs", 0, "pairs must be >= 1, got 0$"), ("slices", 0, "slices must be >= 1, got 0$"),
                              ("seed", -1, "seed must be between 0 and 4294967295, got -1$"),
                              ("dataset_seed", -1, "dataset_seed must be between 0 and 4294967295, got -1$"),
                              ("beta1", 1.5, r"beta1 must be >= 0 and below 1, got 1.5$"),
                              ("beta2", 1.0, r"beta2 must be >= 0 and below 1, got 1.0$"),
                              ("map_weight", -1, "map_weight must be >= 0, got -1$"),
                              ("natural_steps", -5, "natural_steps must be >= 0, got -5$"),
                              ("threads", -1, "threads must be >= 0"), ("lr", -1, "lr must be above 0"),
                              ("lr", 2, "lr must be above 0 and <= 1, got 2$"),
                              ("lr", float("inf"), "lr must be a finite number above 0 and <= 1, got inf$"),
                              ("lr", float("nan"), "lr must be a finite number above 0 and <= 1, got nan$"),
                              ("deform_mm", float("inf"), "deform_mm must be a finite number, got inf$"),
                              ("lr_final_fraction", 2, "lr_final_fraction must be between 0 and 1")):
        with pytest.raises(ValueError, match=f"^{words}"):
            load_config(**{key: value})


def test_every_number_setting_has_its_range_where_it_is_defined_or_is_the_streams():
    """A number setting is checked by the Range of its own field, or (a stream option) by
    the stream's options, which name it: none goes unchecked."""
    from dataclasses import fields

    from napari_mr_reparam.stream_options import StreamOptions, SubjectOptions
    from napari_mr_reparam.training.config import RECIPE_KEYS, Range

    stream = {RECIPE_KEYS.get(f.name, f.name) for kind in (SubjectOptions, StreamOptions) for f in fields(kind)}
    for f in fields(TrainConfig):
        if type(f.default) in (int, float):
            assert isinstance(f.metadata.get("range"), Range) or f.name in stream, f.name
    assert str(Range(0, 1, below=True)) == ">= 0 and below 1" and str(Range(1)) == ">= 1"
    assert Range(0, above=True).holds(1e-9) and not Range(0, above=True).holds(0)


def test_settings_that_do_not_fit_together_or_name_nothing_are_one_line():
    for values, words in (({"phantoms": []}, "phantoms must name at least one phantom"),
                          ({"tables": ["nope"]}, "tables: unknown tissue table 'nope'; known: brainweb_1.5t, "
                                                 "mrilab, 3t$"),
                          ({"stage": "paramnet", "size": 200}, "size must be a multiple of 128 for the paper "
                                                               "networks"),
                          ({"stage": "physics", "depth": 7, "work_size": 32, "native_input": True},
                           "depth 7 halves the image 6 times: work_size must be >= 64, got 32$"),
                          ({"stage": "physics", "depth": 6, "size": 16}, "depth 6 .* work_size and size must be >= 32, got 16$"),
                          ({"task": "p2p", "pairs": 1}, "task p2p on paper data .* pairs must be >= 2, got 1$"),
                          ({"data": "disk"}, "unknown data 'disk'; known: paper, stream$"),
                          ({"split": "half"}, "unknown split 'half'; known: paper, slices$")):
        with pytest.raises(ValueError, match=f"^{words}"):
            load_config(**values)
    assert load_config(stage="physics", depth=5, size=16 * 2).size == 32
    assert load_config(tables=["3t"], task="d2p", pairs=1).pairs == 1


def test_a_recipe_of_an_unknown_stage_names_the_known_stages_not_a_command(tmp_path):
    recipe = tmp_path / "foo.toml"
    recipe.write_text('stage = "foo"\n')
    with pytest.raises(ValueError, match=r"foo\.toml: unknown stage 'foo'; known: autoencoder, paramnet, physics, "
                                         r"tissue, contrast$"):
        load_config(recipe, stage="physics")


def test_bad_settings_are_refused_before_any_data_is_loaded(tmp_path, monkeypatch, capsys):
    from napari_mr_reparam.training import loop
    from napari_mr_reparam.training.cli import main as train_main

    def no_data(*args, **kwargs):
        raise AssertionError("the stage (its data) was built before the settings were checked")

    monkeypatch.setattr(loop, "build_stage", no_data)
    recipe = str(ROOT / "training" / "contrast.toml")
    for setting in ("beta1=1.5", "seed=-1", "map_weight=-1", "natural_steps=-5", "lr=inf", 'tables=["nope"]'):
        assert train_main(["contrast", "--config", recipe, "--steps", "1", "--set", setting,
                           "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert [line.split(" ")[1] for line in err] == ["beta1", "seed", "map_weight", "natural_steps", "lr", "tables:"]
    assert all(line.startswith("error: ") for line in err) and not (tmp_path / "run").exists()


def test_a_resumed_runs_recorded_config_is_its_settings_under_the_options_given(tmp_path):
    from napari_mr_reparam.training.config import resumed_config

    recorded = TrainConfig(stage="physics", lr=0.01, steps=4, out="elsewhere").to_dict()
    cfg = resumed_config(tmp_path / "run" / "checkpoint.pt", recorded, stage="physics", steps=8,
                         out=str(tmp_path / "run"), name=None)
    assert (cfg.lr, cfg.steps, cfg.out, cfg.acquisition) == (0.01, 8, str(tmp_path / "run"), None)
    with pytest.raises(ValueError, match=r"checkpoint\.pt is a run of the physics stage, not paramnet: "
                                         r"napari-mr-reparam-train physics --resume --out .*run$"):
        resumed_config(tmp_path / "run" / "checkpoint.pt", recorded, stage="paramnet")


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


def test_one_entry_of_the_acquisition_table_is_set_keeping_the_rest(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('stage = "physics"\n[acquisition]\njpeg = 0.2\nringing = 0.5\n')
    cfg = load_config(recipe, **{"acquisition.jpeg": 0.6})
    assert cfg.acquisition == {"jpeg": 0.6, "ringing": 0.5}
    assert load_config(None, **{"acquisition.ringing": 0.3}).acquisition == {"ringing": 0.3}
    with pytest.raises(ValueError, match="unknown acquisition effects: nope"):
        load_config(recipe, **{"acquisition.nope": 1.0})
    with pytest.raises(ValueError, match=r"unknown settings: lr\.x"):
        load_config(recipe, **{"lr.x": 1.0})


def test_a_record_from_before_an_option_reads_with_the_value_its_run_had(tmp_path):
    import json

    from napari_mr_reparam.training.config import config_from_record, resumed_config
    from napari_mr_reparam.weights import BUNDLED_DIR

    card = json.loads((BUNDLED_DIR / "contrast.json").read_text())["config"]
    assert "partial_volume" not in card  # trained before the option: on the tissue times' mixture
    assert config_from_record(card).partial_volume == "times"
    assert TrainConfig().partial_volume == "signals"  # today's default, which that run never had
    assert resumed_config(tmp_path / "checkpoint.pt", card).partial_volume == "times"
    physics = json.loads((BUNDLED_DIR / "physics.json").read_text())["config"]
    assert config_from_record(physics).partial_volume == physics["partial_volume"] == "signals"
