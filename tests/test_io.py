import json

import nibabel as nib
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from napari_mr_reparam.io import load_volume, read_sidecar, save_volume, sidecar_path, to_original


def _oblique_nifti(path, shape=(20, 30, 12), zooms=(0.9, 1.2, 3.0), dtype=np.float32):
    rot = Rotation.from_euler("xyz", [20, -35, 10], degrees=True).as_matrix()
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag(zooms) @ np.diag([-1, 1, -1])  # an LPI-ish, oblique grid
    affine[:3, 3] = [10, -20, 5]
    data = (np.random.default_rng(0).random(shape) * 1000).astype(dtype)
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return data, affine


def test_oblique_anisotropic_round_trip(tmp_path):
    data, affine = _oblique_nifti(tmp_path / "scan.nii.gz")
    volume = load_volume(tmp_path / "scan.nii.gz")
    assert volume.data.dtype == np.float32 and volume.data.shape[0] == 12  # slices along S
    assert sorted(np.round(volume.spacing, 3)) == [0.9, 1.2, 3.0] and volume.spacing[0] == pytest.approx(3.0)
    assert np.array_equal(to_original(volume, volume.data), data)
    out = save_volume(tmp_path / "pred.nii.gz", volume.data * 2, like=volume, te_ms=80, tr_ms=3000,
                      model="d2p")
    written = nib.load(str(out))
    assert np.allclose(written.affine, affine)
    assert np.allclose(np.asarray(written.dataobj), data * 2)
    sidecar = json.loads(sidecar_path(out).read_text())
    assert sidecar["EchoTime"] == pytest.approx(0.08) and sidecar["GeneratedBy"][0]["Model"] == "d2p"
    again = load_volume(out)
    assert (again.te_ms, again.tr_ms) == (pytest.approx(80), pytest.approx(3000))
    assert np.allclose(again.data, volume.data * 2)


def test_axial_stack_orientation(tmp_path):
    data = np.zeros((4, 5, 6), np.float32)  # RAS: x right, y anterior, z superior
    data[3, 4, 5] = 1  # most right, anterior, superior voxel
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / "ras.nii"))
    stack = load_volume(tmp_path / "ras.nii").data
    assert stack.shape == (6, 5, 4)
    z, y, x = np.argwhere(stack == 1)[0]
    assert (z, y, x) == (5, 0, 0)  # top slice, anterior row first, patient right on the left


def test_sidecar_times_in_ms(tmp_path):
    _oblique_nifti(tmp_path / "a.nii.gz")
    (tmp_path / "a.json").write_text(json.dumps({"EchoTime": 0.05, "RepetitionTime": 4.5, "FlipAngle": 90}))
    assert read_sidecar(tmp_path / "a.nii.gz") == {"te_ms": 50.0, "tr_ms": 4500.0, "flip_deg": 90.0}
    (tmp_path / "a.json").write_text("{not json")
    assert read_sidecar(tmp_path / "a.nii.gz") == {}


def test_2d_images(tmp_path):
    from PIL import Image

    gray = (np.arange(48 * 64) % 255).astype(np.uint8).reshape(48, 64)
    Image.fromarray(gray).save(tmp_path / "g.png")
    Image.fromarray(np.stack([gray] * 3, -1)).save(tmp_path / "rgb.png")
    import tifffile

    tifffile.imwrite(str(tmp_path / "s.tif"), gray.astype(np.float64))
    for name in ("g.png", "rgb.png", "s.tif"):
        v = load_volume(tmp_path / name)
        assert v.data.shape == (1, 48, 64) and v.data.dtype == np.float32
        assert np.allclose(v.data[0], gray, atol=1.0)
    out = save_volume(tmp_path / "o.png", v.data)
    assert load_volume(out).data.shape == (1, 48, 64)
    with pytest.raises(ValueError, match="one slice"):
        save_volume(tmp_path / "o2.png", np.zeros((3, 4, 4)))


def test_integer_and_float64_data_become_float32(tmp_path):
    for dtype in (np.int16, np.float64):
        _oblique_nifti(tmp_path / f"{np.dtype(dtype).name}.nii", dtype=dtype)
        assert load_volume(tmp_path / f"{np.dtype(dtype).name}.nii").data.dtype == np.float32


def test_never_overwrites_and_writes_atomically(tmp_path):
    target = tmp_path / "out.npy"
    save_volume(target, np.ones((2, 3, 3)))
    with pytest.raises(FileExistsError, match="exists"):
        save_volume(target, np.zeros((2, 3, 3)))
    assert np.load(target).sum() == 18
    save_volume(target, np.zeros((2, 3, 3)), overwrite=True)
    assert np.load(target).sum() == 0
    with pytest.raises(ValueError, match="unsupported output"):
        save_volume(tmp_path / "x.mha", np.zeros((1, 2, 2)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npy"]  # no temp files left


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_text("hello, not a volume"), "not a readable NIfTI"),
])
def test_bad_files(tmp_path, make, message):
    path = tmp_path / "bad.nii"
    make(path)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        load_volume(path)


def test_truncated_and_wrong_dimensionality(tmp_path):
    _oblique_nifti(tmp_path / "t.nii")
    blob = (tmp_path / "t.nii").read_bytes()
    (tmp_path / "cut.nii").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="cut.nii"):
        load_volume(tmp_path / "cut.nii")
    nib.save(nib.Nifti1Image(np.zeros(10, np.float32), np.eye(4)), str(tmp_path / "one.nii"))
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3, 2, 2), np.float32), np.eye(4)), str(tmp_path / "five.nii"))
    for name in ("one.nii", "five.nii"):
        with pytest.raises(ValueError, match="expected a 2-D image or 3-D volume"):
            load_volume(tmp_path / name)


def test_absurd_header_is_refused_before_allocating(tmp_path):
    header = nib.Nifti1Header()
    header.set_data_shape((30000, 30000, 30000))
    header.set_data_dtype(np.float32)
    path = tmp_path / "huge.nii"
    with open(path, "wb") as fh:
        header.write_to(fh)
        fh.write(b"\0" * 64)
    with pytest.raises(ValueError, match="too large"):
        load_volume(path)
