import json

import nibabel as nib
import numpy as np
from test_io import _oblique_nifti

from napari_mr_reparam._reader import napari_get_reader
from napari_mr_reparam._writer import write_single_image


def test_reader_claims_only_what_it_can_read(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "broken.nii").write_text("not nifti")
    assert napari_get_reader(str(tmp_path / "notes.txt")) is None
    assert napari_get_reader(str(tmp_path)) is None
    assert napari_get_reader(str(tmp_path / "broken.nii")) is None
    assert napari_get_reader([str(tmp_path / "a.nii"), str(tmp_path / "b.nii")]) is None


def test_read_and_write_back_through_napari(make_napari_viewer, tmp_path):
    data, affine = _oblique_nifti(tmp_path / "scan.nii.gz")
    (tmp_path / "scan.json").write_text(json.dumps({"EchoTime": 0.05, "RepetitionTime": 4.5}))
    viewer = make_napari_viewer()
    layers = viewer.open(str(tmp_path / "scan.nii.gz"), plugin="napari-mr-reparam")
    layer = layers[0]
    assert layer.name == "scan" and layer.metadata["te_ms"] == 50.0
    assert np.allclose(layer.metadata["affine"], affine)
    assert sorted(np.round(layer.scale, 3)) == [0.9, 1.2, 3.0]
    out = tmp_path / "saved.nii.gz"
    written = write_single_image(str(out), layer.data, {"metadata": layer.metadata})
    assert written == [str(out)]
    reread = nib.load(str(out))
    assert np.allclose(reread.affine, affine) and np.allclose(np.asarray(reread.dataobj), data)
    assert json.loads((tmp_path / "saved.json").read_text())["RepetitionTime"] == 4.5
