import json
import pickle
import re

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


def _flip_last_byte(path):
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 0xFF
    path.write_bytes(bytes(blob))


def test_a_bundled_card_must_record_its_sha256(tiny_weights):
    card_file = tiny_weights / "physics.json"
    card = json.loads(card_file.read_text())
    del card["sha256"]
    card_file.write_text(json.dumps(card))
    _flip_last_byte(tiny_weights / "physics.safetensors")
    for load in (load_weights, Reparameterizer):
        with pytest.raises(WeightsError, match="^physics.safetensors: bundled weights whose card records "
                                               "no sha256; refusing to load$"):
            load("physics")


def test_a_users_card_is_checked_by_the_sha256_it_records(tiny_weights, tmp_path):
    state, card = load_weights("physics")
    path = save_weights(state, card, tmp_path / "mine" / "mine.safetensors")
    _flip_last_byte(path)
    with pytest.raises(WeightsError, match="mine.safetensors: sha256 does not match its card"):
        load_weights(path)
    card.pop("sha256")  # no record to check the file against: taken as it is
    path.with_suffix(".json").write_text(json.dumps(card))
    assert load_weights(path)[1]["arch"] == "physics"


def _empty(path):
    path.write_bytes(b"")


def _text(path):
    path.write_text("hello, not a checkpoint\n")


def _bad_card(path):
    save_weights({"w": torch.zeros(2)}, {"arch": "physics"}, path)
    path.with_suffix(".json").write_text("{not json")


def _list_card(path):
    save_weights({"w": torch.zeros(2)}, {"arch": "physics"}, path)
    path.with_suffix(".json").write_text("[1, 2]")


@pytest.mark.parametrize("name,make,why", [
    ("empty.pt", _empty, "empty file"),
    ("empty.safetensors", _empty, "empty file"),
    ("text.pt", _text, "not a PyTorch checkpoint or safetensors file"),
    ("x.pt", lambda path: path.write_text("xyz"), "not a PyTorch checkpoint or safetensors file"),
    ("card.safetensors", _bad_card, "card card.json is not valid JSON: Expecting property name"),
    ("card.safetensors", _list_card, "card card.json is not a JSON object"),
    ("tensor.pt", lambda path: torch.save(torch.zeros(2), path), "no model state found"),
    ("card.pt", lambda path: torch.save({"model": {"w": torch.zeros(2)}, "card": "physics"}, path),
     "the checkpoint's card is not a mapping"),
])
def test_broken_files_are_one_line_naming_the_file_and_why(tmp_path, name, make, why):
    (tmp_path / "run").mkdir()
    make(tmp_path / "run" / name)
    with pytest.raises(WeightsError) as caught:
        load_weights(tmp_path / "run" / name)
    message = str(caught.value)  # named by its path: every run's file is checkpoint.pt
    assert message.startswith(f"{tmp_path / 'run' / name}: {why}") and "\n" not in message and "()" not in message


@pytest.mark.parametrize("cut", [lambda blob: blob[:len(blob) // 2], lambda blob: b"PK\x03\x04" + blob[-20:]])
def test_a_damaged_checkpoint_says_so_in_one_sentence(tmp_path, tiny_weights, cut):
    state, _ = load_weights("physics")
    torch.save({"model": state}, tmp_path / "whole.pt")
    (tmp_path / "cut.pt").write_bytes(cut((tmp_path / "whole.pt").read_bytes()))
    with pytest.raises(WeightsError, match=r"^cut.pt: not a readable checkpoint, damaged or cut short \([^.]+\)$"):
        load_weights(tmp_path / "cut.pt")


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


def test_the_bundled_record_lists_and_matches_every_bundled_weights_file_and_card():
    record = json.loads((weights.BUNDLED_DIR / weights.HASHES_FILE).read_text())
    names = weights.bundled_names()
    assert set(record) == {f"{n}{suffix}" for n in names for suffix in (".safetensors", ".json")}
    for name in names:
        for suffix in (".safetensors", ".json"):
            assert record[f"{name}{suffix}"] == sha256_of(weights.BUNDLED_DIR / f"{name}{suffix}")
        card = json.loads((weights.BUNDLED_DIR / f"{name}.json").read_text())
        assert card["sha256"] == record[f"{name}.safetensors"]  # the cards' own hashes kept as they were
    assert weights.HASHES_FILE.removesuffix(".json") not in names


@pytest.fixture
def recorded_bundle(tmp_path, monkeypatch):
    """A tiny physics set written into a stand-in bundled folder, so recorded in its hash list."""
    from napari_mr_reparam.models.physics_net import PhysicsNet

    monkeypatch.setattr(weights, "BUNDLED_DIR", tmp_path)
    card = {"arch": "physics", "task": "p2p", "width": 0.03, "base": 4, "depth": 3, "name": "physics"}
    save_weights(PhysicsNet(base=4, depth=3, task="p2p").state_dict(), card, tmp_path / "physics.safetensors")
    return tmp_path


def test_an_edited_bundled_card_is_refused_as_an_edited_weights_file_is(recorded_bundle):
    record = json.loads((recorded_bundle / weights.HASHES_FILE).read_text())
    assert set(record) == {"physics.safetensors", "physics.json"}
    assert load_weights("physics")[1]["task"] == "p2p"
    card_file = recorded_bundle / "physics.json"
    original = card_file.read_text()
    card_file.write_text(original.replace('"task": "p2p"', '"task": "d2p"'))  # the card's own sha256 still right
    for load in (load_weights, Reparameterizer):
        with pytest.raises(WeightsError, match=r"^physics\.json: sha256 does not match SHA256SUMS\.json, the "
                                               r"bundled files' record; refusing to load$"):
            load("physics")
    card_file.write_text(original)
    _flip_last_byte(recorded_bundle / "physics.safetensors")
    with pytest.raises(WeightsError, match=r"^physics\.safetensors: sha256 does not match SHA256SUMS\.json"):
        load_weights("physics")


def test_a_bundled_set_the_record_does_not_list_is_refused(recorded_bundle, monkeypatch):
    import shutil

    for suffix in (".safetensors", ".json"):
        shutil.copy(recorded_bundle / f"physics{suffix}", recorded_bundle / f"copy{suffix}")
    assert load_weights("copy")  # a stand-in folder (a test's): a set written before its record, card-checked
    monkeypatch.setattr(weights, "PACKAGE_DIR", recorded_bundle.resolve())  # as the package's own folder
    with pytest.raises(WeightsError, match=r"^copy\.safetensors: bundled, but not in SHA256SUMS\.json; refusing"):
        load_weights("copy")
    record = json.loads((recorded_bundle / weights.HASHES_FILE).read_text())
    (recorded_bundle / weights.HASHES_FILE).write_text(json.dumps({"copy.safetensors": record["physics.safetensors"],
                                                                   **record}))
    with pytest.raises(WeightsError, match=r"^copy\.json: bundled, but not in SHA256SUMS\.json; refusing"):
        load_weights("copy")


def test_the_packages_own_folder_must_hold_its_record(monkeypatch):
    monkeypatch.setattr(weights, "HASHES_FILE", "missing.json")
    with pytest.raises(WeightsError, match=r"^d2p\.safetensors: the bundled weights' record of hashes "
                                           r"\(missing\.json\) is missing; refusing to load$"):
        load_weights("d2p")


def test_weights_saved_outside_the_bundled_folder_write_no_record(tiny_weights, tmp_path):
    state, card = load_weights("physics")
    save_weights(state, card, tmp_path / "mine" / "mine.safetensors")
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["mine.json", "mine.safetensors"]
    edited = dict(json.loads((tmp_path / "mine" / "mine.json").read_text()), note="edited")
    (tmp_path / "mine" / "mine.json").write_text(json.dumps(edited))  # a user's card: its own to edit
    assert load_weights(tmp_path / "mine" / "mine.safetensors")[1]["note"] == "edited"


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_weights_that_are_not_finite_are_refused_in_one_line(tmp_path, suffix):
    state = {"a.weight": torch.ones(3), "b.weight": torch.tensor([1.0, float("nan")]),
             "c.bias": torch.tensor([float("inf")]), "n": torch.tensor(3)}
    path = tmp_path / f"diverged{suffix}"
    if suffix == ".safetensors":
        save_weights(state, {"arch": "physics"}, path)
    else:
        torch.save({"model": state, "card": {"arch": "physics"}}, path)
    with pytest.raises(WeightsError, match=rf"^{re.escape(str(path))}: holds values that are not finite \(NaN or "
                                           r"infinity\) in b\.weight and 1 other tensor\(s\): the weights of a run "
                                           r"that diverged; refusing to load$"):
        load_weights(path)


def test_weights_that_do_not_fit_are_one_line_naming_what():
    from napari_mr_reparam.models.physics_net import PhysicsNet

    net = PhysicsNet(base=4, depth=3, task="p2p")
    for state, words in (({k: v[..., :1] if v.ndim else v for k, v in net.state_dict().items()},
                          r"tensors of other shapes: size mismatch for \S+\)$"),
                         ({"x": torch.zeros(1)}, r"missing tensors: \S+, \S+, \S+, \.\.\.\)$")):
        with pytest.raises(RuntimeError) as failed:
            net.load_state_dict(state)
        refused = weights.does_not_fit("w.pt", failed.value)
        assert isinstance(refused, WeightsError)
        with pytest.raises(WeightsError, match=rf"^w\.pt: weights do not fit this network \({words}"):
            raise refused


def test_a_checkpoint_with_one_byte_changed_is_refused_by_its_checksum(tmp_path, tiny_weights):
    state, _ = load_weights("physics")
    torch.save({"model": state}, tmp_path / "whole.pt")
    blob = bytearray((tmp_path / "whole.pt").read_bytes())
    import zipfile

    with zipfile.ZipFile(tmp_path / "whole.pt") as archive:  # a byte inside the largest tensor's data
        info = max(archive.infolist(), key=lambda i: i.file_size)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    blob[start + info.file_size // 2] ^= 0x40
    (tmp_path / "flipped.pt").write_bytes(bytes(blob))
    with pytest.raises(WeightsError, match=r"^flipped\.pt: damaged: its part .* does not match the checksum written "
                                           r"with it \(a byte changed since it was saved\); use an intact copy$"):
        load_weights(tmp_path / "flipped.pt")
    assert load_weights(tmp_path / "whole.pt")[0].keys() == state.keys()


def test_an_engine_names_the_sha256_of_the_file_it_read(tmp_path, tiny_weights):
    bundled = Reparameterizer("p2p")
    assert bundled.info.sha256 == weights.bundled_sha256("p2p") == sha256_of(weights.BUNDLED_DIR / "p2p.safetensors")
    state, card = load_weights("p2p")
    torch.save({"model": state, "card": card}, tmp_path / "ckpt.pt")  # a run's card: it records no file's hash
    assert Reparameterizer(weights=str(tmp_path / "ckpt.pt")).info.sha256 == sha256_of(tmp_path / "ckpt.pt")
    assert weights.bundled_sha256("nope") is None
