import json

import nibabel as nib
import numpy as np
import pytest
from test_io import _oblique_nifti

from napari_mr_reparam._reader import napari_get_reader
from napari_mr_reparam._writer import WriteRefused, write_single_image
from napari_mr_reparam.io import Volume

PLUGIN = "napari-mr-reparam"


def test_reader_claims_only_what_it_can_read(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "folder.nii").mkdir()
    for path in ("notes.txt", "missing.nii.gz"):
        assert napari_get_reader(str(tmp_path / path)) is None, path
    assert napari_get_reader([str(tmp_path / "a.nii"), str(tmp_path / "b.nii")]) is None


def test_a_picture_file_that_holds_no_picture_says_why(tmp_path, make_napari_viewer):
    import gzip

    (tmp_path / "broken.png").write_text("not an image")
    (tmp_path / "scan.png").write_bytes(gzip.compress(b"\x5c\x01" + bytes(400)))  # a .nii.gz renamed
    for name in ("broken.png", "scan.png"):
        with pytest.raises(ValueError, match=rf"^{name}: not a readable image file \(cannot identify image file"):
            napari_get_reader(str(tmp_path / name))(str(tmp_path / name))
    viewer = make_napari_viewer()
    with pytest.raises(ValueError, match=r"scan.png: not a readable image file"):  # as napari opens it
        viewer.open(str(tmp_path / "scan.png"), plugin=PLUGIN)
    assert len(viewer.layers) == 0


def test_a_picture_opens_as_a_2d_layer_seen_beside_a_volume_and_saves_as_one_slice(tmp_path, make_napari_viewer):
    import nibabel as nib
    from PIL import Image

    picture = (np.add.outer(np.arange(40), np.arange(30)) * 3).astype(np.uint8)
    Image.fromarray(picture).save(tmp_path / "slice.png")
    nib.save(nib.Nifti1Image(np.ones((30, 40, 12), np.float32), np.eye(4)), str(tmp_path / "vol.nii.gz"))
    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "vol.nii.gz"), plugin=PLUGIN)
    [layer] = viewer.open(str(tmp_path / "slice.png"), plugin=PLUGIN)
    assert layer.data.ndim == 2 and layer.axis_labels == ("y", "x")  # napari shows it on every slice
    np.testing.assert_array_equal(layer.data, picture)
    viewer.layers.selection = {layer}
    viewer.layers.save(str(tmp_path / "copy.nii.gz"), selected=True, plugin=PLUGIN)
    assert nib.load(str(tmp_path / "copy.nii.gz")).shape[2] == 1  # one slice, as a picture is


def test_a_folder_without_dicom_says_why_in_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "empty").mkdir()
    for name in ("b.nii.gz", "a.nii.gz"):
        (tmp_path / name).write_bytes(b"")
    reader = napari_get_reader(str(tmp_path))  # napari asks which reader opens a folder: this one chosen
    with pytest.raises(ValueError, match=rf"^{tmp_path.name}: no DICOM files found; open its files themselves "
                                         r"\(a\.nii\.gz, b\.nii\.gz\)$"):
        reader(str(tmp_path))
    with pytest.raises(ValueError, match=r"^empty: no DICOM files found; a folder opens here as one DICOM series$"):
        napari_get_reader(str(tmp_path / "empty"))(str(tmp_path / "empty"))


def test_reader_layer_tuple(tmp_path):
    data, affine = _oblique_nifti(tmp_path / "scan.nii.gz")
    (tmp_path / "scan.json").write_text(json.dumps({"EchoTime": 0.05, "RepetitionTime": 4.5}))
    reader = napari_get_reader(str(tmp_path / "scan.nii.gz"))
    [(stack, kwargs, kind)] = reader(str(tmp_path / "scan.nii.gz"))
    assert kind == "image" and stack.shape == (12, 30, 20) and stack.dtype == np.float32
    assert kwargs["name"] == "scan" and kwargs["colormap"] == "gray"
    assert kwargs["scale"] == pytest.approx((3.0, 1.2, 0.9))
    meta = kwargs["metadata"]
    assert (meta["te_ms"], meta["tr_ms"]) == (50.0, 4500.0)
    assert np.allclose(meta["affine"], affine) and meta["header"] is not None
    assert meta["source"] == str(tmp_path / "scan.nii.gz")
    assert isinstance(meta["volume"], Volume) and meta["volume"].data.size == 0


def _bad_niftis(folder):
    """Files the reader claims by extension but cannot read, and the message each gets."""
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4, 40), np.float32), np.eye(4)), str(folder / "series.nii.gz"))
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4, 2, 2), np.float32), np.eye(4)), str(folder / "five.nii.gz"))
    (folder / "garbage.nii").write_text("not nifti")
    _oblique_nifti(folder / "whole.nii.gz")
    blob = (folder / "whole.nii.gz").read_bytes()
    (folder / "cut.nii.gz").write_bytes(blob[: len(blob) // 2])
    (folder / "empty.nii").write_bytes(b"")
    return {"series.nii.gz": "series.nii.gz: a 4-D image of 40 volumes (a time series?); at most 32 open as one "
                             "image each: save the volumes you need as 3-D files",
            "five.nii.gz": "five.nii.gz: expected a 2-D image or 3-D volume, got shape (8, 8, 4, 2, 2)",
            "garbage.nii": "garbage.nii: not a readable NIfTI file (",
            "cut.nii.gz": "cut.nii.gz: not a readable NIfTI file (",
            "empty.nii": "empty.nii: the file is empty"}


def test_a_nifti_it_cannot_read_is_one_message_through_npe2(tmp_path):
    import npe2

    npe2.PluginManager.instance().discover()  # as napari does at start
    for name, message in _bad_niftis(tmp_path).items():
        with pytest.raises(ValueError) as info:
            npe2.read([str(tmp_path / name)], stack=False, plugin_name=PLUGIN)
        assert str(info.value).startswith(message) and "\n" not in str(info.value), name


def test_a_nifti_it_cannot_read_leaves_the_viewer_as_it_was(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(np.ones((3, 4, 4), np.float32), name="mine")
    for name, message in _bad_niftis(tmp_path).items():
        with pytest.raises(ValueError) as info:
            viewer.open(str(tmp_path / name), plugin=PLUGIN)
        assert str(info.value).startswith(message), name
    assert [layer.name for layer in viewer.layers] == ["mine"]


def test_the_sidecars_sequence_reaches_the_layer_and_the_widgets_input(tmp_path):
    from napari_mr_reparam.widget_logic import input_from_metadata

    _oblique_nifti(tmp_path / "ge.nii.gz")
    (tmp_path / "ge.json").write_text(json.dumps({"EchoTime": 0.004, "RepetitionTime": 0.02, "FlipAngle": 15,
                                                  "ScanningSequence": "GR"}))
    [(stack, kwargs, _)] = napari_get_reader(str(tmp_path / "ge.nii.gz"))(str(tmp_path / "ge.nii.gz"))
    assert kwargs["metadata"]["sequence"] == "gradient_echo"

    class Layer:
        metadata = kwargs["metadata"]

    spec = input_from_metadata(Layer())
    assert (spec.sequence, spec.te_ms, spec.tr_ms, spec.flip_deg) == ("gradient_echo", 4.0, 20.0, 15.0)
    [path] = write_single_image(str(tmp_path / "saved.nii.gz"), stack, kwargs)  # and is saved again
    assert json.loads((tmp_path / "saved.json").read_text())["ScanningSequence"] == "GR"


def test_writer_falls_back_to_the_layer_scale(tmp_path):
    stack = np.ones((4, 5, 6), np.float32)
    [path] = write_single_image(str(tmp_path / "new.nii"), stack, {"scale": (2.0, 0.5, 0.5),
                                                                   "metadata": {"te_ms": 30.0}})
    img = nib.load(path)
    assert img.header.get_zooms() == pytest.approx((0.5, 0.5, 2.0))
    assert json.loads((tmp_path / "new.json").read_text())["EchoTime"] == pytest.approx(0.03)


@pytest.mark.parametrize("shape, scale, translate", [
    ((5, 20, 30), (3.0, 1.0, 1.0), (10.0, 20.0, 30.0)),
    ((4, 6, 8), (2.0, 0.5, 0.75), (-3.0, 1.5, 9.0)),
])
def test_a_layer_of_no_file_is_read_back_where_the_viewer_showed_it(tmp_path, shape, scale, translate):
    from napari_mr_reparam._reader import napari_get_reader

    stack = np.random.default_rng(0).random(shape).astype(np.float32)
    [path] = write_single_image(str(tmp_path / "placed.nii.gz"), stack,
                                {"scale": scale, "translate": translate, "metadata": {}})
    [(data, kwargs, _)] = napari_get_reader(path)(path)
    assert np.allclose(data, stack) and kwargs["scale"] == pytest.approx(scale)
    assert kwargs["translate"] == pytest.approx(translate)


def test_a_layer_moved_in_the_viewer_is_saved_where_it_was_moved_to(tmp_path):
    _oblique_nifti(tmp_path / "scan.nii.gz")
    [(data, kwargs, _)] = napari_get_reader(str(tmp_path / "scan.nii.gz"))(str(tmp_path / "scan.nii.gz"))
    moved = tuple(np.asarray(kwargs["translate"]) + (0.0, 10.0, -4.5))  # dragged in napari
    write_single_image(str(tmp_path / "moved.nii.gz"), data, {**kwargs, "translate": moved})
    write_single_image(str(tmp_path / "kept.nii.gz"), data, kwargs)
    [(again, placed, _)] = napari_get_reader(str(tmp_path / "moved.nii.gz"))(str(tmp_path / "moved.nii.gz"))
    assert np.allclose(again, data) and placed["translate"] == pytest.approx(moved, abs=1e-3)
    assert np.allclose(nib.load(tmp_path / "kept.nii.gz").affine, nib.load(tmp_path / "scan.nii.gz").affine)


def test_writer_keeps_a_sidecar_it_was_not_asked_to_replace(tmp_path):
    stack = np.ones((2, 5, 6), np.float32)
    (tmp_path / "new.json").write_text('{"mine": true}')
    with pytest.raises(WriteRefused, match=r"^new\.json already exists beside new\.nii\.gz and would be replaced by "
                                         r"its sidecar; save under another name, or move it away first$"):
        write_single_image(str(tmp_path / "new.nii.gz"), stack, {"metadata": {"te_ms": 30.0}})
    assert (tmp_path / "new.json").read_text() == '{"mine": true}' and not (tmp_path / "new.nii.gz").exists()
    (tmp_path / "new.json").unlink()
    write_single_image(str(tmp_path / "new.nii.gz"), stack, {"metadata": {"te_ms": 30.0}})
    # a file napari asked to replace is replaced, its sidecar's times with it
    write_single_image(str(tmp_path / "new.nii.gz"), stack * 2, {"metadata": {"te_ms": 40.0}})
    assert json.loads((tmp_path / "new.json").read_text())["EchoTime"] == pytest.approx(0.04)


#: A scanner's sidecar of an inversion recovery scan (dcm2niix's fields).
SCANNER_SIDECAR = {"EchoTime": 0.012, "RepetitionTime": 9.0, "InversionTime": 2.5, "FlipAngle": 150,
                   "ScanningSequence": "SE_IR", "SequenceVariant": "SK_SP_MP", "SequenceName": "*tir2d1_16",
                   "Manufacturer": "Siemens", "MagneticFieldStrength": 3, "ProtocolName": "t2_tirm_tra_dark-fluid",
                   "SeriesDescription": "keep me", "ConversionSoftware": "dcm2niix"}
SCANNERS = ("SequenceVariant", "SequenceName", "Manufacturer", "MagneticFieldStrength", "ProtocolName",
            "SeriesDescription", "ConversionSoftware")


def test_a_layer_saved_over_its_file_keeps_the_sidecars_other_fields(make_napari_viewer, tmp_path):
    _oblique_nifti(tmp_path / "sub-01_FLAIR.nii.gz")
    side = tmp_path / "sub-01_FLAIR.json"
    side.write_text(json.dumps(SCANNER_SIDECAR))
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(tmp_path / "sub-01_FLAIR.nii.gz"), plugin=PLUGIN)
    viewer.layers.selection = {layer}
    # saved back over the file it was opened from: napari asks about the .nii.gz only
    assert viewer.layers.save(str(tmp_path / "sub-01_FLAIR.nii.gz"), selected=True, plugin=PLUGIN) == [
        str(tmp_path / "sub-01_FLAIR.nii.gz")]
    saved = json.loads(side.read_text())
    assert {k: saved[k] for k in SCANNERS} == {k: SCANNER_SIDECAR[k] for k in SCANNERS}
    assert (saved["EchoTime"], saved["RepetitionTime"], saved["InversionTime"], saved["ScanningSequence"]) == (
        0.012, 9.0, 2.5, "IR")
    [again] = viewer.open(str(tmp_path / "sub-01_FLAIR.nii.gz"), plugin=PLUGIN)
    assert (again.metadata["sequence"], again.metadata["ti_ms"]) == ("inversion_recovery", 2500.0)
    # a spin-echo prediction saved over it: the acquisition is its own, nothing of the inversion's kept
    layer.metadata.update(te_ms=100.0, tr_ms=4000.0, sequence="spin_echo", ti_ms=None, flip_deg=None, model="physics")
    viewer.layers.selection = {layer}
    viewer.layers.save(str(tmp_path / "sub-01_FLAIR.nii.gz"), selected=True, plugin=PLUGIN)
    saved = json.loads(side.read_text())
    assert {k: saved[k] for k in SCANNERS} == {k: SCANNER_SIDECAR[k] for k in SCANNERS}
    assert "InversionTime" not in saved and "FlipAngle" not in saved
    assert (saved["EchoTime"], saved["RepetitionTime"], saved["ScanningSequence"]) == (0.1, 4.0, "SE")
    assert saved["GeneratedBy"][0]["Model"] == "physics"
    [again] = viewer.open(str(tmp_path / "sub-01_FLAIR.nii.gz"), plugin=PLUGIN)
    assert (again.metadata["sequence"], again.metadata["ti_ms"], again.metadata["te_ms"]) == ("spin_echo", None, 100.0)


def test_a_sidecar_whose_sequence_names_would_misread_the_new_image_loses_them(tmp_path):
    stack = np.ones((2, 5, 6), np.float32)
    write_single_image(str(tmp_path / "t1.nii.gz"), stack, {})
    mprage = {"EchoTime": 0.003, "RepetitionTime": 2.3, "InversionTime": 0.9, "ScanningSequence": "GR_IR",
              "SequenceVariant": "SK_SP_MP", "SequenceName": "*tfl3d1_16ns", "Manufacturer": "Siemens"}
    (tmp_path / "t1.json").write_text(json.dumps(mprage))
    # a gradient echo: "MP" beside its GR would read back as MPRAGE
    write_single_image(str(tmp_path / "t1.nii.gz"), stack, {"metadata": {"te_ms": 5.0, "tr_ms": 20.0, "flip_deg": 15,
                                                                         "sequence": "gradient_echo"}})
    saved = json.loads((tmp_path / "t1.json").read_text())
    assert saved["Manufacturer"] == "Siemens" and saved["ScanningSequence"] == "GR"
    assert not {"SequenceVariant", "SequenceName", "InversionTime"} & set(saved)
    from napari_mr_reparam.sidecars import read_sidecar

    assert read_sidecar(tmp_path / "t1.nii.gz")["sequence"] == "gradient_echo"


def test_a_sidecar_that_cannot_be_read_is_not_replaced_unasked(tmp_path):
    stack = np.ones((2, 5, 6), np.float32)
    write_single_image(str(tmp_path / "scan.nii.gz"), stack, {})
    before = (tmp_path / "scan.nii.gz").read_bytes()
    for text in ("EchoTime: 0.03", "[1, 2]"):
        (tmp_path / "scan.json").write_text(text)
        with pytest.raises(WriteRefused, match=r"^scan\.json is not a readable BIDS sidecar, so its fields cannot "
                                             r"be kept; fix it or move it away first$"):
            write_single_image(str(tmp_path / "scan.nii.gz"), stack * 2, {"metadata": {"te_ms": 30.0}})
        assert (tmp_path / "scan.json").read_text() == text and (tmp_path / "scan.nii.gz").read_bytes() == before


def test_open_and_save_through_napari(make_napari_viewer, tmp_path):
    data, affine = _oblique_nifti(tmp_path / "scan.nii.gz")
    (tmp_path / "scan.json").write_text(json.dumps({"EchoTime": 0.05, "RepetitionTime": 4.5}))
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(tmp_path / "scan.nii.gz"), plugin=PLUGIN)
    assert layer.name == "scan" and layer.metadata["te_ms"] == 50.0
    assert np.allclose(layer.metadata["affine"], affine)
    assert tuple(layer.scale) == pytest.approx((3.0, 1.2, 0.9))
    assert viewer.dims.axis_labels == ("slice", "y", "x")  # the slider reads "slice", not "-3"

    layer.data = layer.data * 2
    layer.metadata.update(te_ms=80.0, tr_ms=3000.0, model="d2p")
    out = tmp_path / "saved.nii.gz"
    viewer.layers.selection = {layer}
    written = viewer.layers.save(str(out), selected=True, plugin=PLUGIN)
    assert written == [str(out)]
    reread = nib.load(str(out))
    assert np.allclose(reread.affine, affine) and np.array_equal(np.asarray(reread.dataobj), data * 2)
    sidecar = json.loads((tmp_path / "saved.json").read_text())
    assert sidecar["RepetitionTime"] == 3.0 and sidecar["GeneratedBy"][0]["Model"] == "d2p"

    [again] = viewer.open(str(out), plugin=PLUGIN)
    assert np.array_equal(again.data, layer.data) and again.metadata["te_ms"] == 80.0


def test_a_sidecar_written_in_ms_opens_with_its_times_left_to_the_widget(make_napari_viewer, tmp_path,
                                                                         tiny_weights):
    from napari_mr_reparam._widget import ReparamWidget

    data, _ = _oblique_nifti(tmp_path / "scan.nii.gz")
    (tmp_path / "scan.json").write_text(json.dumps({"EchoTime": 30, "RepetitionTime": 2500}))
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(tmp_path / "scan.nii.gz"), plugin=PLUGIN)  # the image opens
    assert layer.data.shape == (12, 30, 20)
    assert (layer.metadata["te_ms"], layer.metadata["tr_ms"]) == (None, None)
    reason = "the times in scan.json are ignored (EchoTime 30 can only be milliseconds; BIDS sidecars store seconds)"
    assert layer.metadata["sidecar_times_ignored"] == reason
    widget = ReparamWidget(viewer)  # says why, and that its input times are the fields' (as --input-te/-tr)
    viewer.window.add_dock_widget(widget)
    widget.reset_choices()
    widget.model.value = "p2p"
    widget.image.value = layer
    assert widget.status.value == f"scan: {reason}; type the input's times in ms where they show ?"


def test_an_unreadable_sidecar_opens_the_image_with_a_notice(tmp_path):
    from napari_mr_reparam._reader import read_layers

    _oblique_nifti(tmp_path / "scan.nii.gz")
    (tmp_path / "scan.json").write_text("EchoTime: 0.03")
    [(_, kwargs, _)] = read_layers(str(tmp_path / "scan.nii.gz"))
    assert kwargs["metadata"]["te_ms"] is None
    assert kwargs["metadata"]["sidecar_times_ignored"].startswith(
        "scan.json is ignored (not a readable BIDS sidecar: Expecting value: line 1 column 1")


# ----------------------------------------------------------------------------- DICOM


def test_reader_claims_dicom_folders_and_files(tmp_path):
    from dicom_helpers import ramp, write_series

    files = write_series(tmp_path / "series", [ramp(2, 8, 8)])
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("hi")
    assert napari_get_reader(str(tmp_path / "series")) is not None
    assert napari_get_reader([str(f) for f in files]) is not None
    assert napari_get_reader([str(files[0]), str(tmp_path / "other" / "notes.txt")]) is None


def test_dicom_folder_opens_through_napari_one_layer_per_echo(make_napari_viewer, tmp_path, tiny_weights):
    from dicom_helpers import ramp, write_series

    from napari_mr_reparam._widget import ReparamWidget

    write_series(tmp_path / "dual", [ramp(), ramp() // 3], te=(90.0, 15.0), tr=3000.0)
    viewer = make_napari_viewer()
    layers = viewer.open(str(tmp_path / "dual"), plugin=PLUGIN)
    assert [l.name for l in layers] == ["dual TE 15 / TR 3000 ms", "dual TE 90 / TR 3000 ms"]
    short, long = layers
    assert tuple(short.scale) == pytest.approx((3.0, 1.5, 1.25))
    np.testing.assert_array_equal(long.data, ramp())
    assert (short.metadata["te_ms"], short.metadata["tr_ms"], short.metadata["ti_ms"]) == (15.0, 3000.0, None)
    assert short.metadata["sequence"] == "spin_echo" and short.metadata["manufacturer"] == "ACME"

    widget = ReparamWidget(viewer)  # the widget takes the input acquisition from the tags
    viewer.window.add_dock_widget(widget)
    widget.reset_choices()
    widget.model.value = "p2p"
    widget.image.value = long
    assert (widget.input_te.value, widget.input_tr.value) == (90.0, 3000.0)
    widget.image.value = short
    assert (widget.input_te.value, widget.input_tr.value) == (15.0, 3000.0)

    viewer.layers.selection = {long}
    out = tmp_path / "saved.nii.gz"
    viewer.layers.save(str(out), selected=True, plugin=PLUGIN)
    assert np.allclose(nib.load(str(out)).affine, long.metadata["affine"])


def test_bad_dicom_folder_is_one_message(tmp_path):
    from dicom_helpers import ramp, write_series

    from napari_mr_reparam._reader import read_dicom_layers

    def spoil(ds, echo, k):
        if k == 1:
            ds.PixelSpacing = [2.0, 2.0]

    write_series(tmp_path / "mixed", [ramp(3, 8, 8)], extra=spoil)
    reader = napari_get_reader(str(tmp_path / "mixed"))
    assert reader is read_dicom_layers
    with pytest.raises(ValueError, match="^mixed .*do not form one volume"):
        reader(str(tmp_path / "mixed"))


def test_a_freesurfer_volume_opens_through_npe2_as_its_nifti_does(tmp_path):
    import npe2

    data, affine = _oblique_nifti(tmp_path / "scan.nii.gz")
    nib.save(nib.MGHImage(data, affine), str(tmp_path / "orig.mgz"))
    (tmp_path / "cut.mgz").write_bytes((tmp_path / "orig.mgz").read_bytes()[:300])
    npe2.PluginManager.instance().discover()
    [(stack, kwargs, kind)] = npe2.read([str(tmp_path / "orig.mgz")], stack=False, plugin_name=PLUGIN)
    [(nifti, nifti_kwargs, _)] = npe2.read([str(tmp_path / "scan.nii.gz")], stack=False, plugin_name=PLUGIN)
    assert kind == "image" and np.array_equal(stack, nifti) and kwargs["name"] == "orig"
    assert kwargs["scale"] == pytest.approx(nifti_kwargs["scale"])
    with pytest.raises(ValueError) as info:
        npe2.read([str(tmp_path / "cut.mgz")], stack=False, plugin_name=PLUGIN)
    assert str(info.value).startswith("cut.mgz: not a readable FreeSurfer file (") and "\n" not in str(info.value)


def test_a_label_map_opens_as_labels_and_an_integer_scan_as_an_image(tmp_path):
    import npe2

    rng = np.random.default_rng(0)
    labels = rng.choice(np.array([0, 2, 3, 4, 41, 42], np.int32), size=(16, 16, 8))
    nib.save(nib.MGHImage(labels, np.eye(4)), str(tmp_path / "aseg.mgz"))
    nib.save(nib.Nifti1Image(rng.integers(0, 3000, (16, 16, 8)).astype(np.int16), np.eye(4)),
             str(tmp_path / "scan.nii.gz"))
    nib.save(nib.MGHImage(rng.choice(np.array([0, 110, 80], np.uint8), size=(16, 16, 8)), np.eye(4)),
             str(tmp_path / "T1.mgz"))  # 8-bit, few values: an image all the same
    npe2.PluginManager.instance().discover()
    [(data, kwargs, kind)] = npe2.read([str(tmp_path / "aseg.mgz")], stack=False, plugin_name=PLUGIN)
    assert kind == "labels" and data.dtype == np.int32 and set(np.unique(data)) == {0, 2, 3, 4, 41, 42}
    assert "colormap" not in kwargs and kwargs["name"] == "aseg"
    for name in ("scan.nii.gz", "T1.mgz"):
        [(_, _, kind)] = npe2.read([str(tmp_path / name)], stack=False, plugin_name=PLUGIN)
        assert kind == "image", name


def test_a_4d_nifti_opens_as_one_layer_per_volume_with_its_times(make_napari_viewer, tmp_path):
    data = np.random.default_rng(1).random((16, 16, 4, 3)).astype(np.float32) * 100
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / "echoes.nii.gz"))
    (tmp_path / "echoes.json").write_text(json.dumps({"EchoTime": [0.01, 0.04, 0.08], "RepetitionTime": 2.5}))
    viewer = make_napari_viewer()
    layers = viewer.open(str(tmp_path / "echoes.nii.gz"), plugin=PLUGIN)
    assert [layer.name for layer in layers] == ["echoes #1 TE 10 / TR 2500 ms", "echoes #2 TE 40 / TR 2500 ms",
                                                "echoes #3 TE 80 / TR 2500 ms"]
    assert [layer.metadata["te_ms"] for layer in layers] == [10.0, 40.0, 80.0]
    assert np.array_equal(layers[2].data, np.transpose(data[..., 2], (2, 1, 0))[:, ::-1, ::-1])


def test_a_layer_saved_as_a_dicom_series_through_napari_opens_again(make_napari_viewer, tmp_path):
    import pydicom
    from dicom_helpers import oblique, ramp, write_series

    write_series(tmp_path / "scan", [ramp()], te=(20.0,), tr=500.0, orientation=oblique(15),
                 extra=lambda ds, e, k: setattr(ds, "PatientID", "P7"))
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(tmp_path / "scan"), plugin=PLUGIN)
    layer.data = layer.data / 2
    layer.metadata.update(te_ms=100.0, tr_ms=4000.0, model="physics")
    viewer.layers.selection = {layer}
    out = tmp_path / "synthetic.dcm"
    assert viewer.layers.save(str(out), selected=True, plugin=PLUGIN) == [str(out)]
    first = pydicom.dcmread(sorted(out.iterdir())[0])
    assert first.PatientID == "P7" and list(first.ImageType)[:2] == ["DERIVED", "SECONDARY"]

    [again] = viewer.open(str(out), plugin=PLUGIN)
    assert (again.metadata["te_ms"], again.metadata["tr_ms"]) == (100.0, 4000.0)
    assert np.allclose(again.metadata["affine"], layer.metadata["affine"], atol=1e-4)
    np.testing.assert_allclose(again.data, layer.data, atol=0.05)
    viewer.layers.save(str(out), selected=True, plugin=PLUGIN)  # napari asked first: an earlier series is replaced
    assert len(list(out.iterdir())) == ramp().shape[0]


def test_a_double_inversion_recovery_layer_saves_both_inversion_times(tmp_path):
    meta = {"metadata": {"te_ms": 25.0, "tr_ms": 11000.0, "sequence": "double_inversion_recovery",
                         "ti_ms": 3400.0, "ti2_ms": 325.0}}
    write_single_image(str(tmp_path / "dir.nii.gz"), np.ones((2, 5, 6), np.float32), meta)
    sidecar = json.loads((tmp_path / "dir.json").read_text())
    assert sidecar["InversionTime"] == pytest.approx(3.4) and sidecar["InversionTime2"] == pytest.approx(0.325)


def test_a_scan_of_few_grey_levels_opens_as_an_image_and_a_complex_one_with_a_notice(tmp_path):
    from napari_mr_reparam._reader import read_layers

    scan = np.clip(np.random.default_rng(0).normal(100, 25, (16, 16, 8)), 0, 161).round().astype(np.int16)
    nib.save(nib.Nifti1Image(scan, np.eye(4)), str(tmp_path / "t1.nii.gz"))
    [(_, _, kind)] = read_layers(str(tmp_path / "t1.nii.gz"))
    assert kind == "image"
    nib.save(nib.Nifti1Image(scan * (1 + 1j), np.eye(4)), str(tmp_path / "recon.nii.gz"))
    with pytest.warns(UserWarning, match=r"^recon\.nii\.gz: complex voxel values; their magnitude is read$"):
        [(data, _, kind)] = read_layers(str(tmp_path / "recon.nii.gz"))
    assert kind == "image" and np.isclose(data.max(), scan.max() * np.sqrt(2))


def test_a_freesurfer_headers_acquisition_is_in_the_layer_metadata(tmp_path):
    from napari_mr_reparam._reader import read_layers

    img = nib.MGHImage(np.random.default_rng(0).random((8, 8, 6)).astype(np.float32), np.eye(4))
    img.header["tr"], img.header["te"], img.header["ti"], img.header["flip_angle"] = 2300, 2.98, 900, np.deg2rad(9)
    nib.save(img, str(tmp_path / "T1.mgz"))
    [(_, kwargs, _)] = read_layers(str(tmp_path / "T1.mgz"))
    meta = kwargs["metadata"]
    assert (meta["te_ms"], meta["tr_ms"], meta["ti_ms"], meta["flip_deg"], meta["sequence"]) == (
        2.98, 2300.0, 900.0, 9.0, "mprage")


def _writer_contribution():
    """The plugin's writer as napari's Save dialog passes it when its filter is chosen."""
    from npe2 import PluginManager

    return next(w for w in PluginManager.instance().iter_compatible_writers(["image"])
                if w.plugin_name == PLUGIN)


def test_a_name_without_extension_gets_nii_gz_from_the_save_dialog_as_from_code(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    layer = viewer.add_image(np.arange(2 * 5 * 6, dtype=np.float32).reshape(2, 5, 6), name="flair",
                             metadata={"te_ms": 120.0, "tr_ms": 9000.0})
    viewer.layers.selection = {layer}
    # napari's Save dialog, the plugin's filter chosen and "flair" typed: the name as typed, the writer given
    assert viewer.layers.save(str(tmp_path / "flair"), selected=True, _writer=_writer_contribution()) == [
        str(tmp_path / "flair.nii.gz")]
    assert nib.load(tmp_path / "flair.nii.gz").shape == (6, 5, 2) and (tmp_path / "flair.json").exists()
    assert viewer.layers.save(str(tmp_path / "code"), selected=True, plugin=PLUGIN) == [str(tmp_path / "code.nii.gz")]


def test_a_name_without_extension_does_not_replace_a_file_napari_did_not_ask_about(tmp_path):
    stack = np.arange(2 * 5 * 6, dtype=np.float32).reshape(2, 5, 6)
    write_single_image(str(tmp_path / "flair"), stack, {"metadata": {"te_ms": 30.0}})
    with pytest.raises(WriteRefused, match=r"^flair\.nii\.gz already exists; type its full name to replace it$"):
        write_single_image(str(tmp_path / "flair"), stack * 2, {"metadata": {"te_ms": 40.0}})
    assert json.loads((tmp_path / "flair.json").read_text())["EchoTime"] == pytest.approx(0.03)


def test_an_extension_the_writer_does_not_offer_is_refused_naming_those_it_does(tmp_path):
    stack = np.arange(2 * 5 * 6, dtype=np.float32).reshape(2, 5, 6)
    with pytest.raises(WriteRefused, match=r"^flair\.npy: this writer saves \.nii\.gz, \.nii, \.dcm only; end the "
                                         r"name with one \(or give none for \.nii\.gz\)$"):
        write_single_image(str(tmp_path / "flair.npy"), stack, {})
    assert list(tmp_path.iterdir()) == []


def test_a_colour_layer_is_refused_not_saved_as_slices_of_its_channels(tmp_path):
    rgb = np.zeros((32, 48, 3), np.float32)
    with pytest.raises(WriteRefused, match=r"^photo is an RGB\(A\) colour image; this writer saves grey-level"):
        write_single_image(str(tmp_path / "photo.nii.gz"), rgb, {"name": "photo", "rgb": True})
    assert list(tmp_path.iterdir()) == []


def _maps(names=("scan PD map (relative)", "scan T1 map (ms)", "scan T2 map (ms)")):
    """Layer data tuples as napari hands several selected map layers to a writer."""
    stack = np.arange(2 * 5 * 6, dtype=np.float32).reshape(2, 5, 6)
    return [(stack * (k + 1), {"name": name, "metadata": {"quantity": (name.split() * 2)[1], "unit": "ms"}},
             "image") for k, name in enumerate(names)]


def test_several_layers_save_in_a_folder_one_file_and_sidecar_each(tmp_path):
    from napari_mr_reparam._writer import write_images

    written = write_images(str(tmp_path / "out" / "maps3"), _maps())
    folder = tmp_path / "out" / "maps3"
    assert written == [str(folder / f"scan {q} map ({u}).nii.gz") for q, u in
                       (("PD", "relative"), ("T1", "ms"), ("T2", "ms"))]
    assert len(list(folder.iterdir())) == 6
    assert json.loads((folder / "scan T2 map (ms).json").read_text())["Quantity"] == "T2"
    from napari_mr_reparam.io import load_volume

    assert np.allclose(load_volume(written[2]).data, _maps()[2][0])


def test_several_layers_given_a_file_name_in_the_save_dialog_are_refused_in_one_line(make_napari_viewer, tmp_path):
    from npe2 import PluginManager

    viewer = make_napari_viewer()
    viewer.layers.selection = {viewer.add_image(data, name=meta["name"]) for data, meta, _ in _maps(("a", "b"))}
    # the dialog passes the writer of the filter chosen (npe2 routes a name with an extension only to a
    # writer that lists it, and this one, for a folder, lists none)
    writer = next(w for w in PluginManager.instance().iter_compatible_writers(["image"] * 2) if w.plugin_name == PLUGIN)
    with pytest.raises(WriteRefused, match=r"^two\.nii\.gz: several layers are saved in a folder, each as <layer "
                                         r"name>\.nii\.gz with its sidecar; give a folder name without an extension$"):
        viewer.layers.save(str(tmp_path / "two.nii.gz"), selected=True, _writer=writer)
    assert list(tmp_path.iterdir()) == []


def test_several_layers_are_refused_before_anything_is_written(tmp_path):
    from napari_mr_reparam._writer import file_stem, write_images

    folder = tmp_path / "maps"
    folder.mkdir()
    (folder / "b.json").write_text("{}")  # one file of three layers' already there
    with pytest.raises(WriteRefused, match=rf"^{folder}: b\.json already exists there; save in another folder, "
                                         r"or move them away first$"):
        write_images(str(folder), _maps(("a", "b", "c")))
    assert [p.name for p in folder.iterdir()] == ["b.json"]
    with pytest.raises(WriteRefused, match=r"^layers 'T1' and 't1' would both be saved as t1\.nii\.gz; rename one$"):
        write_images(str(tmp_path / "new"), _maps(("T1", "x", "t1")))
    with pytest.raises(WriteRefused, match=r"^layers 'a/b' and 'a:b' would both be saved as a_b\.nii\.gz"):
        write_images(str(tmp_path / "new"), _maps(("a/b", "a:b")))
    with pytest.raises(WriteRefused, match=r"^maps\.nii\.gz: several layers are saved in a folder"):
        write_images(str(tmp_path / "maps.nii.gz"), _maps())
    (tmp_path / "afile").write_text("x")
    with pytest.raises(WriteRefused, match=r"afile is a file, not a folder"):
        write_images(str(tmp_path / "afile"), _maps())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "maps"]
    assert [file_stem(n) for n in ("a/b\\c", ' "x?" ', "..", "", None)] == ["a_b_c", "_x__", "layer", "layer",
                                                                           "layer"]


def test_a_layer_that_cannot_be_written_leaves_none_of_the_save(tmp_path):
    from napari_mr_reparam._writer import write_images

    layers = _maps(("a", "b"))
    layers[1][1]["metadata"].update(te_ms=0.05)  # seconds: refused, once "a" is written
    with pytest.raises(WriteRefused, match="seconds"):
        write_images(str(tmp_path / "out" / "maps"), layers)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_the_writer_cannot_write_in_is_one_line_naming_the_output(tmp_path, monkeypatch):
    import errno
    import os

    from napari_mr_reparam import volume_writing

    def read_only(path, data, like):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setitem(volume_writing._WRITERS, ".nii.gz", read_only)
    with pytest.raises(WriteRefused, match=rf"^cannot write {tmp_path}/x\.nii\.gz: read-only file system$"):
        write_single_image(str(tmp_path / "x.nii.gz"), np.ones((2, 5, 6), np.float32), {})
    assert list(tmp_path.iterdir()) == []


def test_series_of_one_session_lie_where_the_scanner_placed_them(tmp_path):
    from dicom_helpers import ramp, write_series

    from napari_mr_reparam import dicom
    from napari_mr_reparam._reader import read_dicom_layers
    from napari_mr_reparam.orientation import stack_affine

    write_series(tmp_path / "t1", [ramp(3, 8, 8)], origin=(-30.0, -40.0, 10.0))
    write_series(tmp_path / "t2", [ramp(3, 8, 8)], origin=(-25.0, -42.5, 13.0))  # another field of view

    def world(layer, index):  # where napari shows a voxel: index x scale + translate
        return np.asarray(index, float) * np.asarray(layer["scale"]) + np.asarray(layer["translate"])

    [(_, a, _)], [(_, b, _)] = read_dicom_layers(str(tmp_path / "t1")), read_dicom_layers(str(tmp_path / "t2"))
    va, vb = dicom.read_series(tmp_path / "t1")[0], dicom.read_series(tmp_path / "t2")[0]
    # b's first voxel, in the scanner, is this voxel of a's grid
    index_in_a = (np.linalg.inv(stack_affine(va)) @ stack_affine(vb) @ [0, 0, 0, 1])[:3]
    np.testing.assert_allclose(world(a, index_in_a), world(b, [0, 0, 0]), atol=1e-3)
    assert not np.allclose(a["translate"], b["translate"])


def test_one_file_of_a_series_opens_its_slice_with_a_notice_to_open_the_folder(tmp_path):
    """napari opens files given together one layer each: a file of a series says to open the folder."""
    from dicom_helpers import ramp, write_series

    files = write_series(tmp_path / "dual", [ramp(3, 8, 8), ramp(3, 8, 8) // 2], te=(10.0, 80.0), shuffle=False)
    [alone] = write_series(tmp_path / "dual" / "one", [ramp(1, 8, 8)])
    reader = napari_get_reader(str(files[1]))
    with pytest.warns(UserWarning, match=r"^IM0001 is one of 3 slices of series 'test series' in its folder: "
                                         r"give or open its folder for the volume$"):
        [(stack, _, _)] = reader(str(files[1]))
    assert stack.shape == (1, 8, 8)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reader([str(alone)])  # a series of one file: nothing to say
        reader([str(f) for f in files[:3]])  # the files given together: read as one series


def test_a_dicomdir_opens_the_folder_it_indexes(tmp_path):
    from dicom_helpers import ramp, write_dicomdir, write_series

    from napari_mr_reparam._reader import read_dicom_layers

    index = write_dicomdir(tmp_path / "cd", write_series(tmp_path / "src", [ramp(3, 8, 8)]))
    assert napari_get_reader(str(index)) is read_dicom_layers
    [(stack, kwargs, _)] = read_dicom_layers(str(index))
    assert stack.shape == (3, 8, 8) and kwargs["name"].startswith("cd ")


def test_other_files_in_a_dicom_folder_are_named_not_skipped_silently(tmp_path):
    import warnings

    from dicom_helpers import ramp, write_series

    from napari_mr_reparam._reader import read_dicom_layers

    write_series(tmp_path / "study", [ramp(3, 8, 8)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_dicom_layers(str(tmp_path / "study"))  # DICOM alone: nothing to say
    (tmp_path / "study" / "t1.nii.gz").write_bytes(b"not read here")
    (tmp_path / "study" / "notes.txt").write_text("scan notes")
    with pytest.warns(UserWarning, match=r"^study: its DICOM series are read; 2 other files there \(notes\.txt, "
                                         r"t1\.nii\.gz\) are not: open them on their own$"):
        [(stack, _, _)] = read_dicom_layers(str(tmp_path / "study"))
    assert stack.shape == (3, 8, 8)


def test_a_dicom_folder_is_walked_once_to_read_it_and_name_the_other_files(tmp_path, monkeypatch):
    from collections import Counter

    from dicom_helpers import ramp, write_series

    from napari_mr_reparam import dicom
    from napari_mr_reparam._reader import read_dicom_layers

    write_series(tmp_path / "study", [ramp(3, 8, 8)])
    (tmp_path / "study" / "notes.txt").write_text("scan notes")
    checked, walks = Counter(), []
    is_dicom, files_under = dicom.is_dicom, dicom._files_under
    monkeypatch.setattr(dicom, "is_dicom", lambda p: checked.update([str(p)]) or is_dicom(p))
    monkeypatch.setattr(dicom, "_files_under", lambda folder: walks.append(folder) or files_under(folder))
    with pytest.warns(UserWarning, match=r"^study: its DICOM series are read; 1 other file there \(notes\.txt\)"):
        [(stack, _, _)] = read_dicom_layers(str(tmp_path / "study"))
    assert stack.shape == (3, 8, 8) and len(walks) == 1
    assert len(checked) == 4 and set(checked.values()) == {1}  # each file's header looked at once


def test_a_map_written_as_dicom_reopens_named_by_what_it_holds(tmp_path):
    from napari_mr_reparam._reader import read_dicom_layers
    from napari_mr_reparam.volume_writing import save_volume

    t2 = np.full((3, 8, 8), 80.0, np.float32)
    save_volume(tmp_path / "T2map.dcm", t2, model="joint maps", extra={"Quantity": "T2", "Units": "ms"})
    ((data, kwargs, _),) = read_dicom_layers(tmp_path / "T2map.dcm")
    assert "T2 map (ms)" in kwargs["name"] and "TE ?" not in kwargs["name"]
    # what it holds is in its metadata, so that saved again its sidecar says so
    assert (kwargs["metadata"]["quantity"], kwargs["metadata"]["unit"]) == ("T2", "ms")
    from napari_mr_reparam._writer import write_image

    write_image(str(tmp_path / "again.nii.gz"), data, {"metadata": kwargs["metadata"]})
    again = json.loads((tmp_path / "again.json").read_text())
    assert (again["Quantity"], again["Units"]) == ("T2", "ms") and "EchoTime" not in again
    from napari_mr_reparam._reader import read_layers

    [(_, nifti, _)] = read_layers(str(tmp_path / "again.nii.gz"))  # and the NIfTI map, by its sidecar
    assert (nifti["metadata"]["quantity"], nifti["metadata"]["unit"]) == ("T2", "ms")
    # a PD map, in units without a UCUM code, the same way
    pd = np.full((3, 8, 8), 0.7, np.float32)
    save_volume(tmp_path / "PD.dcm", pd, model="physics", extra={"Quantity": "PD", "Units": "relative (the first "
                                                                                 "input's intensity units)"})
    ((_, kwargs, _),) = read_dicom_layers(tmp_path / "PD.dcm")
    assert (kwargs["metadata"]["quantity"], kwargs["metadata"]["unit"]) == (
        "PD", "relative (the first input's intensity units)")
