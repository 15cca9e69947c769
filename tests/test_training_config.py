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
    with pytest.raises(ValueError, match="fraction_sharpening"):
        TrainConfig(fraction_sharpening=0.5)
    with pytest.raises(ValueError, match="only acts with fraction_sharpening"):
        TrainConfig(fraction_texture=1.0)
    with pytest.raises(ValueError, match="fraction_sharpening_min"):
        TrainConfig(fraction_sharpening=4.0, fraction_sharpening_min=8.0)
    with pytest.raises(ValueError, match="csf_expansion"):
        TrainConfig(csf_expansion=0.5)
    with pytest.raises(ValueError, match="sulcus_width"):
        TrainConfig(sulcus_width=-1.0)
    options = TrainConfig(fraction_sharpening=4.0, csf_expansion=2.0, sulcus_width=1.5).stream_options()
    assert (options["sharpening"], options["sharpening_min"], options["csf_expansion"]) == (4.0, 1.0, 2.0)
    assert options["sulcus_width"] == 1.5
    for bad, match in (({"noise_max": -0.1}, "noise_max"), ({"bias_strength": 1.0}, "bias_strength"),
                       ({"image_loss": "l1"}, "unknown image_loss"), ({"subject_every": 0}, "subject_every"),
                       ({"tilt_deg": -1.0}, "tilt_deg"), ({"input_gain": -0.1}, "input_gain"),
                       ({"max_scale": 1.0}, "max_scale"), ({"anisotropy": -0.1}, "anisotropy"),
                       ({"deform_mm": -1.0}, "deform_mm"), ({"subject_workers": -1}, "subject_workers")):
        with pytest.raises(ValueError, match=match):
            TrainConfig(**bad)
    options = TrainConfig(noise_max=0.0, bias_strength=0.0, fine_brain=True, subject_every=96).stream_options()
    assert (options["noise_max"], options["bias_strength"]) == (0.0, 0.0)
    assert (options["fine_brain"], options["refresh_every"]) == (True, 96)
    assert TrainConfig(input_gain=0.1).stream_options()["input_gain"] == 0.1
    assert TrainConfig(subject_workers=2).stream_options()["subject_workers"] == 2
    geometry = TrainConfig(deform_mm=8.0, max_scale=0.1, max_rotation_deg=10.0, anisotropy=0.05).stream_options()
    assert [geometry[k] for k in ("deform_mm", "max_scale", "max_rotation_deg", "anisotropy")] == [8.0, 0.1, 10.0, 0.05]


def test_bundled_recipes_parse():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "training"
    names = {p.stem for p in folder.glob("*.toml")}
    assert {"autoencoder", "d2p", "p2p"} <= names
    for path in folder.glob("*.toml"):
        load_config(path)

