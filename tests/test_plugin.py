"""Every contribution in napari.yaml, opened the way napari opens it (npe2, menus, File > Save)."""

import json

import numpy as np
import pytest

PLUGIN = "napari-mr-reparam"


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def test_the_widget_opens_from_the_plugins_menu_and_predicts(viewer, tiny_weights, qtbot, recwarn):
    dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "MR Re-parameterization")
    assert dock is not None and type(widget).__name__ == "ReparamWidget"
    viewer.open_sample(PLUGIN, "head_and_truths")
    widget.reset_choices()
    assert widget.image.value is viewer.layers[0]
    widget.ground_truth.value = viewer.layers["head TE120 TR6000"]
    widget.te.value, widget.tr.value = 120.0, 6000.0
    widget.run.clicked.emit()
    qtbot.waitUntil(lambda: widget.is_idle() and "volume: PSNR" in widget.metrics.value, timeout=120000)
    names = [layer.name for layer in viewer.layers]  # one view: the prediction on top, where it is seen
    assert names[0] == "head TE50 TR4500" and names[-2:] == ["|difference| physics TE120 TR6000",
                                                            "prediction physics TE120 TR6000"]
    assert not [w for w in recwarn if "Private attribute access" in str(w.message)]


@pytest.mark.parametrize("key, count", [("head", 1), ("ground_truths", 3), ("head_and_truths", 4)])
def test_each_sample_opens(viewer, key, count):
    layers = viewer.open_sample(PLUGIN, key)
    assert len(layers) == count == len(viewer.layers)
    assert all(layer.metadata.get("te_ms") for layer in viewer.layers)


def test_the_reader_and_writer_round_trip_through_napari(viewer, tmp_path):
    from napari_mr_reparam.volume_writing import save_volume

    data = np.random.default_rng(0).uniform(0, 100, (3, 8, 9)).astype(np.float32)
    source = save_volume(tmp_path / "scan.nii.gz", data, te_ms=30, tr_ms=2000)
    (layer,) = viewer.open(str(source), plugin=PLUGIN)
    assert layer.metadata["te_ms"] == pytest.approx(30) and np.allclose(layer.data, data)
    layer.metadata.update(te_ms=80.0, tr_ms=3000.0, sequence="inversion_recovery", ti_ms=2500.0)
    out = tmp_path / "saved.nii.gz"
    written = viewer.layers.save(str(out), selected=False, plugin=PLUGIN)
    assert written == [str(out)]
    sidecar = json.loads((tmp_path / "saved.json").read_text())
    assert sidecar["EchoTime"] == pytest.approx(0.08) and sidecar["InversionTime"] == pytest.approx(2.5)
    (back,) = viewer.open(str(out), plugin=PLUGIN)
    assert np.allclose(back.data, data)


def test_a_save_the_writer_refuses_tells_napari_why(viewer, tmp_path):
    from napari_mr_reparam._writer import WriteRefused

    layer = viewer.add_image(np.ones((2, 4, 4), np.float32), name="g")
    (tmp_path / "g.json").write_text("{}")  # another file's sidecar name
    with pytest.raises(WriteRefused, match=r"^g\.json already exists beside g\.nii\.gz"):
        layer.save(str(tmp_path / "g.nii.gz"), plugin=PLUGIN)
    assert (tmp_path / "g.json").read_text() == "{}" and not (tmp_path / "g.nii.gz").exists()


def test_npe2_finds_the_reader_and_writer(tmp_path):
    import npe2

    from napari_mr_reparam.volume_writing import save_volume

    source = save_volume(tmp_path / "scan.nii", np.ones((2, 4, 4), np.float32) * np.arange(4))
    layers = npe2.read([str(source)], stack=False, plugin_name=PLUGIN)
    assert layers[0][0].shape == (2, 4, 4)
    written = npe2.write(str(tmp_path / "out.nii.gz"), [layers[0]], plugin_name=PLUGIN)
    assert written == [str(tmp_path / "out.nii.gz")]


def test_npe2_offers_the_reader_for_siemens_ima_files(tmp_path):
    import npe2

    from dicom_helpers import ramp, write_series

    files = [f.rename(f.with_suffix(".IMA")) for f in write_series(tmp_path / "siemens", [ramp(2, 8, 8)])]
    pm = npe2.PluginManager.instance()
    pm.discover()
    assert PLUGIN in {r.plugin_name for r in pm.iter_compatible_readers([str(files[0])])}
    (layer,) = npe2.read([str(f) for f in files], stack=True, plugin_name=PLUGIN)
    assert layer[0].shape == (2, 8, 8) and layer[1]["metadata"]["te_ms"] == pytest.approx(20.0)


def test_npe2_offers_the_reader_for_a_dicom_file_without_an_extension_and_for_no_other_type(tmp_path):
    import npe2

    from dicom_helpers import ramp, write_series

    from napari_mr_reparam._reader import napari_get_reader

    files = write_series(tmp_path / "series", [ramp(3, 8, 8)], shuffle=False)
    (tmp_path / "IM0001").write_bytes(files[1].read_bytes())  # one file of the series, copied alone
    pm = npe2.PluginManager.instance()
    pm.discover()
    assert PLUGIN in {r.plugin_name for r in pm.iter_compatible_readers([str(tmp_path / "IM0001")])}
    (layer,) = npe2.read([str(tmp_path / "IM0001")], stack=False, plugin_name=PLUGIN)
    assert layer[0].shape == (1, 8, 8) and layer[1]["metadata"]["te_ms"] == pytest.approx(20.0)
    with pytest.warns(UserWarning, match=r"^IM0001 is one of 3 slices of series .* open its folder"):
        npe2.read([str(files[1])], stack=False, plugin_name=PLUGIN)  # beside its series: said
    for name in ("x.npy", "x.pcoraw", "x.zarr", "x.csv"):  # other types are left to their readers
        assert PLUGIN not in {r.plugin_name for r in pm.iter_compatible_readers([str(tmp_path / name)])}, name
    (tmp_path / "README").write_text("not DICOM")
    assert napari_get_reader(str(tmp_path / "README")) is None


def test_several_selected_layers_save_as_one_file_each_through_napari_and_npe2(viewer, tmp_path):
    from npe2 import PluginManager

    from napari_mr_reparam._writer import WriteRefused

    stack = np.arange(2 * 4 * 5, dtype=np.float32).reshape(2, 4, 5)
    layers = [viewer.add_image(stack * k, name=f"head {q} map", metadata={"quantity": q, "unit": "ms"})
              for k, q in enumerate(("PD", "T1", "T2"), 1)]
    viewer.layers.selection = set(layers)
    # napari's Save dialog: the plugin's filter for these three layers writes them all
    [writer] = [w for w in PluginManager.instance().iter_compatible_writers(["image"] * 3) if w.plugin_name == PLUGIN]
    folder = tmp_path / "out" / "maps3"
    written = viewer.layers.save(str(folder), selected=True, _writer=writer)
    assert written == [str(folder / f"head {q} map.nii.gz") for q in ("PD", "T1", "T2")]
    assert json.loads((folder / "head T2 map.json").read_text())["Quantity"] == "T2"
    (again,) = viewer.open(written[1], plugin=PLUGIN)
    assert np.allclose(again.data, stack * 2)
    viewer.layers.selection = set(layers)  # opening selected the new layer
    # by the plugin's name, and through npe2
    assert viewer.layers.save(str(tmp_path / "code"), selected=True, plugin=PLUGIN) == [
        str(tmp_path / "code" / f"head {q} map.nii.gz") for q in ("PD", "T1", "T2")]
    import npe2

    assert len(npe2.write(str(tmp_path / "npe2"), layers, plugin_name=PLUGIN)) == 3
    # nothing replaced unasked: one file there refuses the whole save, naming it
    with pytest.raises(WriteRefused, match=r"head PD map\.nii\.gz, head PD map\.json, .* already exist there"):
        viewer.layers.save(str(folder), selected=True, plugin=PLUGIN)
    # one layer still goes to the one-file writer
    viewer.layers.selection = {layers[0]}
    assert viewer.layers.save(str(tmp_path / "one"), selected=True, plugin=PLUGIN) == [str(tmp_path / "one.nii.gz")]
