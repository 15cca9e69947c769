"""Evaluation scores what users run: the command line, the widget's engine call and
``evaluate``'s prediction give the same numbers for the same volume."""

import nibabel as nib
import numpy as np
import pytest

from napari_mr_reparam.acquisition import Acquisition
from napari_mr_reparam.cli import main
from napari_mr_reparam.inference import Reparameterizer
from napari_mr_reparam.simulate import normalize_to_max
from napari_mr_reparam.training.evaluate import IdentityModel, predict_test_images

TARGET, INPUT = (80.0, 2500.0), (30.0, 900.0)


@pytest.fixture
def scan(tmp_path):
    rng = np.random.default_rng(3)
    data = rng.uniform(0, 1, (36, 40, 4)).astype(np.float32)  # x, y, z: four axial slices
    path = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    return path


def _by_cli(path, model, out):
    given = [] if model == "d2p" else ["--input-te", f"{INPUT[0]:g}", "--input-tr", f"{INPUT[1]:g}"]
    assert main(["predict", str(path), "-o", str(out), "--model", model, "--te", f"{TARGET[0]:g}",
                 "--tr", f"{TARGET[1]:g}", *given, "--device", "cpu", "-q"]) == 0  # d2p refuses input times
    return np.load(out)


def _by_widget(viewer, qtbot, volume, model):
    from napari_mr_reparam._widget import ReparamWidget

    layer = viewer.add_image(volume, name="scan")
    widget = ReparamWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.reset_choices()
    widget.image.value = layer
    widget.device.value = "cpu"
    widget.model.value = model
    widget.input_te.value, widget.input_tr.value = INPUT
    widget.te.value, widget.tr.value = TARGET
    widget.run.clicked.emit()

    def done():
        preds = [l for l in viewer.layers if (l.metadata or {}).get("mr_reparam_role") == "prediction"]
        return widget.is_idle() and preds and preds[0].metadata.get("te_ms") == TARGET[0]

    qtbot.waitUntil(lambda: bool(done()), timeout=120000)
    (pred,) = [l for l in viewer.layers if (l.metadata or {}).get("mr_reparam_role") == "prediction"]
    return np.asarray(pred.data)


@pytest.mark.parametrize("model", ["physics", "d2p", "p2p"])
def test_cli_widget_and_evaluation_predict_the_same_numbers(model, scan, tiny_weights, tmp_path,
                                                            make_napari_viewer, qtbot):
    from napari_mr_reparam.io import load_volume

    volume = load_volume(scan).data
    n = len(volume)
    by_cli = _by_cli(scan, model, tmp_path / "out.npy")
    by_widget = _by_widget(make_napari_viewer(), qtbot, volume, model)
    engine = Reparameterizer(model, device="cpu")
    # evaluation gives every image its own target and input times: here all the same
    by_evaluation = predict_test_images(
        engine, volume, Acquisition(np.full(n, TARGET[0]), np.full(n, TARGET[1])),
        Acquisition(np.full(n, INPUT[0]), np.full(n, INPUT[1])))
    assert by_cli.shape == volume.shape and np.ptp(by_cli) > 0
    np.testing.assert_allclose(by_widget, by_cli, rtol=1e-6, atol=1e-6)
    # the evaluation scores a physics model's renders (input units) each at its own maximum
    expected = normalize_to_max(by_cli) if engine.renders_from_maps else by_cli
    np.testing.assert_allclose(by_evaluation, expected, rtol=1e-5, atol=1e-5)


def test_the_identity_baseline_returns_its_input():
    images = np.random.default_rng(0).uniform(0, 1, (3, 8, 8)).astype(np.float32)
    counted = []
    out = predict_test_images(IdentityModel("d2p"), images, Acquisition(80, 2500), progress=counted.append)
    np.testing.assert_array_equal(out, images)
    assert counted == [3]
