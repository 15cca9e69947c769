import json

import nibabel as nib
import numpy as np
import pytest
from test_io import _oblique_nifti

from napari_mr_reparam._reader import napari_get_reader
from napari_mr_reparam._writer import write_single_image
from napari_mr_reparam.io import Volume

PLUGIN = "napari-mr-reparam"


def test_reader_claims_only_what_it_can_read(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "broken.nii").write_text("not nifti")
    (tmp_path / "folder.nii").mkdir()
    for path in ("notes.txt", "broken.nii", "folder.nii", "missing.nii.gz"):
        assert napari_get_reader(str(tmp_path / path)) is None, path
    assert napari_get_reader(str(tmp_path)) is None
    assert napari_get_reader([str(tmp_path / "a.nii"), str(tmp_path / "b.nii")]) is None


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


def test_writer_falls_back_to_the_layer_scale(tmp_path):
    stack = np.ones((4, 5, 6), np.float32)
    [path] = write_single_image(str(tmp_path / "new.nii"), stack, {"scale": (2.0, 0.5, 0.5),
                                                                   "metadata": {"te_ms": 30.0}})
    img = nib.load(path)
    assert img.header.get_zooms() == pytest.approx((0.5, 0.5, 2.0))
    assert json.loads((tmp_path / "new.json").read_text())["EchoTime"] == pytest.approx(0.03)


def test_open_and_save_through_napari(make_napari_viewer, tmp_path):
    data, affine = _oblique_nifti(tmp_path / "scan.nii.gz")
    (tmp_path / "scan.json").write_text(json.dumps({"EchoTime": 0.05, "RepetitionTime": 4.5}))
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(tmp_path / "scan.nii.gz"), plugin=PLUGIN)
    assert layer.name == "scan" and layer.metadata["te_ms"] == 50.0
    assert np.allclose(layer.metadata["affine"], affine)
    assert tuple(layer.scale) == pytest.approx((3.0, 1.2, 0.9))

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
