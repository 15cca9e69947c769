import json
import pickle

import numpy as np
import pytest
import torch

from napari_mr_reparam import weights
from napari_mr_reparam.inference import Reparameterizer
from napari_mr_reparam.weights import WeightsError, load_weights, save_weights, sha256_of


BUNDLED = {"d2p": ("paper", "d2p"), "p2p": ("paper", "p2p"), "physics": ("physics", "p2p"),
           "physics_mrilab": ("physics", "p2p")}


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_models_are_verified_and_described(name):
    assert name in weights.bundled_names()
    state, card = load_weights(name)
    assert card["sha256"] == sha256_of(weights.BUNDLED_DIR / f"{name}.safetensors")
    assert (card["arch"], card["task"]) == BUNDLED[name] and card["width"] > 0
    assert "config" in card and state


@pytest.mark.slow
@pytest.mark.parametrize("name,task", [("d2p", "d2p"), ("p2p", "p2p"), ("physics_mrilab", "d2p"),
                                       ("physics_mrilab", "p2p")])
def test_bundled_models_beat_identity_on_held_out_mrilab_images(name, task):
    """The bundled weights are trained: on held-out test images of the MRiLab protocol
    they must be far closer to the truth than returning the input unchanged."""
    from helpers import mrilab_path

    from napari_mr_reparam.training.evaluate import evaluate

    engine = Reparameterizer(name, device="cpu", batch_size=8)
    report = evaluate(engine, task, f"mrilab:{mrilab_path()}", split="paper", limit=32)
    assert report["psnr_mean"] > report["identity"]["psnr_mean"] + 5.0
    assert report["mae_mean"] < 0.5 * report["identity"]["mae_mean"]


def test_tampered_weights_are_refused(tiny_weights):
    path = tiny_weights / "d2p.safetensors"
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(WeightsError, match="sha256 does not match"):
        load_weights("d2p")


def test_pickles_carrying_code_are_refused_without_running(tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"model": Evil()}, fh)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's pickle-protocol note is filtered on this path
        with pytest.raises(WeightsError, match="refused") as caught:
            load_weights(path)
    assert not marker.exists()
    message = str(caught.value)
    assert "\n" not in message and "weights_only" not in message and "could run code" in message


def test_checkpoints_and_unknown_names(tmp_path, tiny_weights):
    state, card = load_weights("p2p")
    torch.save({"model": state, "card": card}, tmp_path / "ckpt.pt")
    assert load_weights(tmp_path / "ckpt.pt")[1]["task"] == "p2p"
    with pytest.raises(WeightsError, match="no weights 'nope'"):
        load_weights("nope")
    with pytest.raises(ValueError, match="unknown model 'nope'; known: d2p, p2p"):
        Reparameterizer("nope")


@pytest.mark.parametrize("written", ["missing.pt", "runs/missing", "w.safetensors"])
def test_a_missing_weights_file_is_named_as_a_file(written, tmp_path, tiny_weights):
    with pytest.raises(WeightsError, match=r"no weights file '.*': no such file"):
        Reparameterizer(str(tmp_path / written) if "/" in written else written)
    (tmp_path / "folder.pt").mkdir()
    with pytest.raises(WeightsError, match="it is a folder"):
        Reparameterizer(str(tmp_path / "folder.pt"))


def test_card_required_for_user_safetensors(tmp_path, tiny_weights):
    state, _ = load_weights("d2p")
    save_weights(state, {"note": "no arch"}, tmp_path / "x.safetensors")
    with pytest.raises(WeightsError, match="no card says"):
        Reparameterizer(weights=str(tmp_path / "x.safetensors"))
    card = json.loads((tmp_path / "x.json").read_text())
    assert card["sha256"] == sha256_of(tmp_path / "x.safetensors")


def test_engine_predicts_in_input_units_and_keeps_nan(tiny_weights):
    engine = Reparameterizer("d2p", device="cpu", batch_size=2)
    volume = np.random.default_rng(0).uniform(0, 500, (3, 40, 30)).astype(np.float32)
    volume[1, 0, 0] = np.nan
    volume[2] = 0  # blank slice stays blank
    pred = engine.predict_volume(volume, 80, 3000)
    assert pred.shape == volume.shape and np.isnan(pred[1, 0, 0])
    assert np.nanmax(pred[0]) <= np.nanmax(volume[0]) * 1.0001 and pred[2].max() == 0
    with pytest.raises(ValueError, match="2-D image or a 3-D volume"):
        engine.predict_volume(np.zeros((2, 2, 2, 2)), 80, 3000)
