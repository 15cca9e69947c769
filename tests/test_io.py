import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from napari_mr_reparam import io, volume_writing
from napari_mr_reparam.io import load_volume, probe
from napari_mr_reparam.orientation import to_original
from napari_mr_reparam.sidecars import sidecar_path
from napari_mr_reparam.volume_writing import save_volume


def _oblique_nifti(path, shape=(20, 30, 12), zooms=(0.9, 1.2, 3.0), dtype=np.float32):
    """An oblique (rotated about all axes), anisotropic, LPS-ish volume; returns (data, affine)."""
    rot = Rotation.from_euler("xyz", [20, -35, 10], degrees=True).as_matrix()
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([-1, -1, 1]) @ np.diag(zooms)  # i -> L, j -> P, k -> S
    affine[:3, 3] = [10, -20, 5]
    data = (np.random.default_rng(0).random(shape) * 1000).astype(dtype)
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return data, affine


def test_oblique_anisotropic_round_trip(tmp_path):
    data, affine = _oblique_nifti(tmp_path / "scan.nii.gz")
    volume = load_volume(tmp_path / "scan.nii.gz")
    assert volume.kind == "nifti" and volume.data.dtype == np.float32
    assert volume.data.shape == (12, 30, 20)  # slices along S; rows A->P, columns R->L
    assert volume.spacing == pytest.approx((3.0, 1.2, 0.9))
    assert np.array_equal(to_original(volume, volume.data), data)
    assert volume.stack_shape == volume.data.shape

    out = save_volume(tmp_path / "pred.nii.gz", volume.data * 2, like=volume, te_ms=80, tr_ms=3000,
                      model="d2p", extra={"Note": "test"})
    written = nib.load(str(out))
    assert np.allclose(written.affine, affine)
    assert written.get_data_dtype() == np.float32
    assert np.array_equal(np.asarray(written.dataobj), data * 2)
    sidecar = json.loads(sidecar_path(out).read_text())
    assert sidecar["EchoTime"] == pytest.approx(0.08) and sidecar["RepetitionTime"] == pytest.approx(3.0)
    assert sidecar["GeneratedBy"][0]["Name"] == "napari-mr-reparam"
    assert sidecar["GeneratedBy"][0]["Model"] == "d2p" and sidecar["Note"] == "test"

    again = load_volume(out)
    assert (again.te_ms, again.tr_ms) == (pytest.approx(80), pytest.approx(3000))
    assert np.array_equal(again.data, volume.data * 2)
    assert np.allclose(again.affine, affine) and again.spacing == pytest.approx(volume.spacing)


def test_singleton_4d_and_2d_nifti(tmp_path):
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4, 1)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / "four.nii"))
    volume = load_volume(tmp_path / "four.nii")
    assert volume.data.shape == (4, 3, 2)
    out = save_volume(tmp_path / "four_out.nii", volume.data, like=volume)
    assert np.array_equal(np.asarray(nib.load(str(out)).dataobj), data[..., 0])
    nib.save(nib.Nifti1Image(data[:, :, 0, 0], np.eye(4)), str(tmp_path / "flat.nii"))
    assert load_volume(tmp_path / "flat.nii").data.shape == (1, 3, 2)


def _plate_nifti(path, shape=(192, 192, 1), step_mm=5.0):
    """A coronal 2-D series as the package writes it from DICOM: voxels (column, row, slice),
    columns right -> left, rows superior -> inferior, slices anterior -> posterior."""
    affine = np.array([[-1.3, 0, 0, 120], [0, 0, -step_mm, 14], [0, -1.3, 0, 124], [0, 0, 0, 1]])
    data = (np.random.default_rng(3).random(shape) * 1000).astype(np.float32)
    image = nib.MGHImage(data, affine) if path.name.endswith(".mgz") else nib.Nifti1Image(data, affine)
    nib.save(image, str(path))
    return data


@pytest.mark.parametrize("name", ["plate.nii.gz", "plate.mgz"])
def test_a_single_coronal_slice_reads_as_one_slice(tmp_path, name):
    from napari_mr_reparam.orientation import slice_plane

    data = _plate_nifti(tmp_path / name)
    volume = load_volume(tmp_path / name)
    assert volume.data.shape == (1, 192, 192) and slice_plane(volume) == "coronal"
    np.testing.assert_array_equal(volume.data[0], data[:, :, 0].T)  # rows and columns as acquired
    assert volume.spacing == pytest.approx((5.0, 1.3, 1.3))
    assert np.array_equal(to_original(volume, volume.data), data)


def test_a_thick_coronal_slab_reads_as_its_slices(tmp_path):
    from napari_mr_reparam.orientation import slice_plane

    data = np.random.default_rng(4).random((40, 4, 48)).astype(np.float32)  # RAS+: j anterior, 4 mm
    nib.save(nib.Nifti1Image(data, np.diag([1.0, 4.0, 1.0, 1.0])), str(tmp_path / "slab.nii"))
    volume = load_volume(tmp_path / "slab.nii")
    assert volume.data.shape == (4, 48, 40) and slice_plane(volume) == "coronal"
    assert volume.spacing == pytest.approx((4.0, 1.0, 1.0))
    # slices anterior -> posterior, the head's top up, the patient's right on the left
    np.testing.assert_array_equal(volume.data, data[::-1, ::-1, ::-1].transpose(1, 2, 0))
    sagittal = np.random.default_rng(5).random((3, 40, 48)).astype(np.float32)  # 5 mm along R
    nib.save(nib.Nifti1Image(sagittal, np.diag([5.0, 1.0, 1.0, 1.0])), str(tmp_path / "sag.nii"))
    volume = load_volume(tmp_path / "sag.nii")
    assert volume.data.shape == (3, 48, 40) and slice_plane(volume) == "sagittal"
    # slices left -> right, the head's top up, the face on the left
    np.testing.assert_array_equal(volume.data, sagittal[:, ::-1, ::-1].transpose(0, 2, 1))


def test_an_isotropic_volume_reads_as_axial_slices_whatever_its_voxel_order(tmp_path):
    from napari_mr_reparam.orientation import ras_to_stack, slice_plane

    data = np.random.default_rng(6).random((160, 192, 224)).astype(np.float32)
    lia = np.array([[-1.0, 0, 0, 80], [0, 0, 1, -112], [0, -1, 0, 96], [0, 0, 0, 1]])  # as FreeSurfer's
    nib.save(nib.Nifti1Image(data, lia), str(tmp_path / "lia.nii"))
    volume = load_volume(tmp_path / "lia.nii")
    ras = data[::-1, ::-1].transpose(0, 2, 1)  # i: L, j: I, k: A -> R, A, S
    assert volume.data.shape == (192, 224, 160) and slice_plane(volume) == "axial"
    np.testing.assert_array_equal(volume.data, ras_to_stack(ras))
    assert volume.spacing == pytest.approx((1.0, 1.0, 1.0))


def test_2d_images(tmp_path):
    import tifffile
    from PIL import Image

    gray = (np.arange(48 * 64) % 255).astype(np.uint8).reshape(48, 64)
    Image.fromarray(gray).save(tmp_path / "g.png")
    Image.fromarray(np.stack([gray] * 3, -1)).save(tmp_path / "rgb.png")
    Image.fromarray(gray).save(tmp_path / "g.jpg", quality=100)
    tifffile.imwrite(str(tmp_path / "s.tif"), gray.astype(np.float64))
    tifffile.imwrite(str(tmp_path / "rgb.tif"), np.stack([gray] * 3, -1), photometric="rgb")
    for name in ("g.png", "rgb.png", "g.jpg", "s.tif", "rgb.tif"):
        v = load_volume(tmp_path / name)
        assert v.kind == "image" and v.data.shape == (1, 48, 64) and v.data.dtype == np.float32, name
        assert np.allclose(v.data[0], gray, atol=3.0), name
        assert probe(tmp_path / name) == (48, 64)


def test_rgb_becomes_luminance(tmp_path):
    from PIL import Image

    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[:, :3, 0] = 255  # red half, green half
    rgb[:, 3:, 1] = 255
    Image.fromarray(rgb).save(tmp_path / "rg.png")
    volume = load_volume(tmp_path / "rg.png")
    data = volume.data[0]
    assert np.allclose(data[:, :3], 0.2125 * 255, atol=0.01)
    assert np.allclose(data[:, 3:], 0.7154 * 255, atol=0.01)
    # a colour picture is said to be one: its luminance is not the scanner's grey values
    assert volume.extra["notices"] == [
        "rg.png: a colour picture (its red, green and blue differ in 100.0 % of its pixels): read as its "
        "luminance; a colour map or an annotation is not the scanner's grey values, so give the grey image "
        "where there is one"]


def test_a_grey_picture_in_rgb_is_read_without_a_notice(tmp_path):
    import tifffile
    from PIL import Image

    gray = np.add.outer(np.arange(48), np.arange(64)).astype(np.uint8) * 2
    Image.fromarray(np.stack([gray] * 3, -1)).save(tmp_path / "g.jpg", quality=75)  # JPEG's rounding
    tifffile.imwrite(str(tmp_path / "g.tif"), np.stack([gray] * 3, -1), photometric="rgb")
    for name in ("g.jpg", "g.tif"):
        assert "notices" not in load_volume(tmp_path / name).extra, name
    marked = np.stack([gray] * 3, -1)
    marked[10:20, 10:20] = (255, 0, 0)  # a red annotation
    tifffile.imwrite(str(tmp_path / "marked.tif"), marked, photometric="rgb")
    assert "differ in 3.3 % of its pixels" in load_volume(tmp_path / "marked.tif").extra["notices"][0]


@pytest.mark.parametrize("dtype", [np.int16, np.float64, np.uint8])
def test_integer_and_float64_data_become_float32(tmp_path, dtype):
    data, _ = _oblique_nifti(tmp_path / "v.nii", dtype=dtype)
    volume = load_volume(tmp_path / "v.nii")
    assert volume.data.dtype == np.float32
    assert np.array_equal(to_original(volume, volume.data), data.astype(np.float32))


def test_nan_stays_nan(tmp_path):
    data = np.ones((3, 4, 5), np.float32)
    data[1, 2, 3] = np.nan
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / "nan.nii"))
    assert np.isnan(load_volume(tmp_path / "nan.nii").data).sum() == 1


@pytest.mark.parametrize("name, make, error, message", [
    ("missing.nii", lambda p: None, FileNotFoundError, "no such file"),
    ("empty.nii", lambda p: p.write_bytes(b""), ValueError, "empty"),
    ("empty.png", lambda p: p.write_bytes(b""), ValueError, "empty"),
    ("text.nii", lambda p: p.write_text("hello, not a volume"), ValueError, "not a readable NIfTI"),
    ("text.png", lambda p: p.write_text("hello, not an image"), ValueError, "not a readable image"),
    ("text.tif", lambda p: p.write_text("hello, not an image"), ValueError, "not a readable TIFF"),
    ("notes.txt", lambda p: p.write_text("hi"), ValueError, "unsupported file type"),
])
def test_bad_files(tmp_path, name, make, error, message):
    path = tmp_path / name
    make(path)
    with pytest.raises(error, match=message) as info:
        load_volume(path)
    assert name in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["cut.nii", "cut.nii.gz"])
def test_truncated_files(tmp_path, name):
    _oblique_nifti(tmp_path / f"whole{name[3:]}")
    blob = (tmp_path / f"whole{name[3:]}").read_bytes()
    (tmp_path / name).write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match=name.replace(".", r"\.")) as info:
        load_volume(tmp_path / name)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("shape", [(10,), (3, 3, 3, 2, 2), (3, 3, 3, 2)])
def test_wrong_dimensionality(tmp_path, shape):
    nib.save(nib.Nifti1Image(np.zeros(shape, np.float32), np.eye(4)), str(tmp_path / "odd.nii"))
    with pytest.raises(ValueError, match=r"odd.nii: expected a 2-D image or 3-D volume, got shape"):
        load_volume(tmp_path / "odd.nii")


def test_absurd_header_is_refused_before_allocating(tmp_path):
    header = nib.Nifti1Header()
    header.set_data_shape((30000, 30000, 30000))
    header.set_data_dtype(np.float32)
    path = tmp_path / "huge.nii"
    with open(path, "wb") as fh:
        header.write_to(fh)
        fh.write(b"\0" * 64)
    with pytest.raises(ValueError, match="huge.nii: the header claims .* too large"):
        probe(path)
    with pytest.raises(ValueError, match="huge.nii: the header claims .* too large"):
        load_volume(path)


def test_a_volume_larger_than_the_memory_available_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from napari_mr_reparam import memory

    _oblique_nifti(tmp_path / "scan.nii.gz", shape=(40, 36, 3))  # 17 KB as float32
    monkeypatch.setattr(memory, "available_bytes", lambda: 1e4)
    with pytest.raises(ValueError, match=r"^scan\.nii\.gz: its shape \(40, 36, 3\) needs 17 KB of memory to read "
                                         r"and 10 KB is available; crop it, or free memory$"):
        load_volume(tmp_path / "scan.nii.gz")
    monkeypatch.setattr(memory, "available_bytes", lambda: None)  # the system cannot say: read
    assert load_volume(tmp_path / "scan.nii.gz").data.shape == (3, 36, 40)


def test_a_freesurfer_volume_reads_as_the_nifti_of_its_grid_does_and_writes_back_as_nifti(tmp_path):
    data, affine = _oblique_nifti(tmp_path / "scan.nii.gz")
    nib.save(nib.MGHImage(data, affine), str(tmp_path / "orig.mgz"))
    nifti, mgz = load_volume(tmp_path / "scan.nii.gz"), load_volume(tmp_path / "orig.mgz")
    assert mgz.kind == "nifti" and probe(tmp_path / "orig.mgz") == data.shape
    assert np.array_equal(mgz.data, nifti.data) and mgz.spacing == pytest.approx(nifti.spacing)
    out = save_volume(tmp_path / "pred.nii.gz", mgz.data, like=mgz, te_ms=80, tr_ms=3000)
    written = nib.load(str(out))
    assert isinstance(written, nib.Nifti1Image) and np.allclose(written.affine, affine)
    assert np.array_equal(np.asarray(written.dataobj), data)
    # a folder of outputs names an .mgz input's predictions .nii.gz
    named = volume_writing.output_paths(tmp_path / "out", [("orig_TE80_TR3000", ".mgz")])
    assert named == [tmp_path / "out" / "orig_TE80_TR3000.nii.gz"]


def test_a_truncated_or_mislabelled_freesurfer_volume_is_one_line(tmp_path):
    data, affine = _oblique_nifti(tmp_path / "scan.nii.gz")
    nib.save(nib.MGHImage(data, affine), str(tmp_path / "orig.mgz"))
    whole = (tmp_path / "orig.mgz").read_bytes()
    (tmp_path / "cut.mgz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=r"^cut\.mgz: not a readable FreeSurfer file"):
        load_volume(tmp_path / "cut.mgz")
    (tmp_path / "named.mgz").write_bytes((tmp_path / "scan.nii.gz").read_bytes())  # a NIfTI named .mgz
    with pytest.raises(ValueError, match=r"^named\.mgz: not a readable FreeSurfer file"):
        load_volume(tmp_path / "named.mgz")


def test_a_4d_nifti_of_a_few_volumes_reads_as_one_volume_each_with_its_times(tmp_path):
    rng = np.random.default_rng(2)
    data = (rng.random((20, 30, 12, 3)) * 1000).astype(np.float32)
    _, affine = _oblique_nifti(tmp_path / "scan.nii.gz")
    nib.save(nib.Nifti1Image(data, affine), str(tmp_path / "echoes.nii.gz"))
    path = tmp_path / "echoes.nii.gz"
    assert io.volume_count(path) == 3 and io.volume_count(tmp_path / "scan.nii.gz") == 1
    (tmp_path / "echoes.json").write_text(json.dumps({"EchoTime": [0.01, 0.05, 0.1], "RepetitionTime": 3.0}))
    volumes = io.load_volumes(path)
    assert [v.te_ms for v in volumes] == [10.0, 50.0, 100.0] and {v.tr_ms for v in volumes} == {3000.0}
    assert [v.extra["volume"] for v in volumes] == [1, 2, 3] and {v.extra["series"] for v in volumes} == {"echoes"}
    for k, volume in enumerate(volumes):
        assert volume.data.shape == (12, 30, 20) and volume.spacing == pytest.approx((3.0, 1.2, 0.9))
        assert np.array_equal(to_original(volume, volume.data), data[..., k])
    save_volume(tmp_path / "second.nii.gz", volumes[1].data, like=volumes[1])  # written back 3-D, in place
    again = nib.load(str(tmp_path / "second.nii.gz"))
    assert again.shape == (20, 30, 12) and np.allclose(again.affine, affine)
    assert np.array_equal(np.asarray(again.dataobj), data[..., 1])
    assert len(io.load_volumes(tmp_path / "scan.nii.gz")) == 1  # a 3-D file: itself

    (tmp_path / "echoes.json").write_text(json.dumps({"EchoTime": [0.01, 0.05], "RepetitionTime": 3.0}))
    with pytest.raises(ValueError, match=r"echoes.json: EchoTime lists 2 values for the image's 3 volumes"):
        io.load_volumes(path)
    (tmp_path / "echoes.json").write_text(json.dumps({"EchoTime": [10, 50, 100], "RepetitionTime": 3.0}))
    with pytest.raises(ValueError, match=r"echoes.json: .*EchoTime"):  # milliseconds, where BIDS has seconds
        io.load_volumes(path)
    with pytest.raises(ValueError, match="give one volume as a 3-D file"):
        load_volume(path)  # where one image is wanted: one line saying what to do


def test_a_long_4d_series_is_refused_in_one_line(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3, io.MAX_SERIES_VOLUMES + 1), np.float32), np.eye(4)),
             str(tmp_path / "bold.nii.gz"))
    with pytest.raises(ValueError, match=r"bold.nii.gz: a 4-D image of 33 volumes \(a time series\?\)") as info:
        io.load_volumes(tmp_path / "bold.nii.gz")
    assert "\n" not in str(info.value)


def _segmentation(shape=(24, 24, 16)):
    """A piecewise-constant map of FreeSurfer codes: blocks of white and grey matter, ventricle."""
    labels = np.zeros(shape, np.int16)
    labels[4:20, 4:20, 2:14] = 2
    labels[4:12, 4:20, 2:14] = 3
    labels[14:18, 8:14, 4:10] = 4
    labels[8:10, 8:10, 6:8] = 1001
    return labels


def test_an_integer_scan_of_few_grey_levels_is_an_image_and_a_segmentation_labels(tmp_path):
    rng = np.random.default_rng(0)
    scan = np.clip(rng.normal(100, 25, (24, 24, 16)), 0, 161).round().astype(np.int16)  # 8-bit origin
    assert np.unique(scan).size <= io.MAX_LABELS
    nib.save(nib.Nifti1Image(scan, np.eye(4)), str(tmp_path / "t1.nii.gz"))
    assert io.label_count(load_volume(tmp_path / "t1.nii.gz")) == 0
    nib.save(nib.Nifti1Image(_segmentation(), np.eye(4)), str(tmp_path / "plain.nii.gz"))  # its name says nothing
    assert io.label_count(load_volume(tmp_path / "plain.nii.gz")) == 5
    nib.save(nib.Nifti1Image(_segmentation() + 100, np.eye(4)), str(tmp_path / "other.nii.gz"))  # not FreeSurfer's
    assert io.label_count(load_volume(tmp_path / "other.nii.gz")) == 0
    noisy = rng.choice(np.array([0, 2, 3, 4], np.int16), size=(24, 24, 16))  # codes, but not piecewise constant
    for name, count in (("noisy.nii.gz", 0), ("sub-1_dseg.nii.gz", 4), ("aparc+aseg.nii.gz", 4)):
        nib.save(nib.Nifti1Image(noisy, np.eye(4)), str(tmp_path / name))
        assert io.label_count(load_volume(tmp_path / name)) == count, name
    # stored as floats (as SynthSeg's training maps 01 and others are): labels by their values and shape alone
    for name, data, count in (("seg.nii.gz", _segmentation().astype(np.float32), 5),
                              ("noisy_seg.nii.gz", noisy.astype(np.float32), 0),
                              ("halves_seg.nii.gz", _segmentation().astype(np.float32) + 0.5, 0),
                              ("few_levels.nii.gz", scan.astype(np.float32), 0)):
        nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / name))
        assert io.label_count(load_volume(tmp_path / name)) == count, name


def test_freesurfer_codes_are_the_label_tables():
    assert io.freesurfer_codes([0, 2, 41, 1035, 2035, 3001, 5002, 502])
    assert not io.freesurfer_codes([2, 41, 6])  # 6 is no structure FreeSurfer's segmentations hold
    assert not io.freesurfer_codes([1, 2])


SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.mark.skipif(not (SHARED / "anatomy").is_dir(), reason="needs ../shared/anatomy")
@pytest.mark.parametrize("name", ["synthseg/training_seg_01.nii.gz", "synthseg/training_seg_02.nii.gz",
                                  "synthseg/training_seg_17.nii.gz"])  # 01 stores floats
def test_synthseg_maps_are_label_maps_by_their_values_alone(tmp_path, name):
    import shutil

    shutil.copy(SHARED / "anatomy" / name, tmp_path / "map.nii.gz")  # a name that says nothing
    assert io.label_count(load_volume(tmp_path / "map.nii.gz")) > 40


def test_a_complex_nifti_reads_as_its_magnitude_with_a_notice(tmp_path):
    import warnings

    data = (np.random.default_rng(0).normal(size=(8, 8, 4)) + 1j).astype(np.complex64)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / "recon.nii.gz"))
    nib.save(nib.Nifti1Image(np.stack([data, 2 * data], -1), np.eye(4)), str(tmp_path / "echoes.nii.gz"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's ComplexWarning no more
        volume = load_volume(tmp_path / "recon.nii.gz")
        volumes = io.load_volumes(tmp_path / "echoes.nii.gz")
    assert np.allclose(to_original(volume, volume.data), np.abs(data))
    assert volume.extra["notices"] == ["recon.nii.gz: complex voxel values; their magnitude is read"]
    assert np.allclose(to_original(volumes[1], volumes[1].data), 2 * np.abs(data))
    assert volumes[1].extra["notices"] == ["echoes.nii.gz: complex voxel values; their magnitude is read"]
    _oblique_nifti(tmp_path / "real.nii.gz")
    assert "notices" not in load_volume(tmp_path / "real.nii.gz").extra
    with pytest.raises(ValueError, match=r"^recon\.nii\.gz: holds complex values; tissue maps are real numbers$"):
        io.load_nifti_frames(tmp_path / "recon.nii.gz", 4)


def _mgh(path, tr=0.0, te=0.0, ti=0.0, flip_deg=0.0):
    img = nib.MGHImage(np.random.default_rng(0).random((8, 8, 6)).astype(np.float32), np.eye(4))
    img.header["tr"], img.header["te"], img.header["ti"] = tr, te, ti
    img.header["flip_angle"] = np.deg2rad(flip_deg)
    nib.save(img, str(path))
    return path


@pytest.mark.parametrize("times, expected", [
    ((2300, 2.98, 900, 9), (2.98, 2300.0, 900.0, 9.0, "mprage", None)),  # Siemens MPRAGE (mri_convert)
    ((8.2, 3.2, 450, 12), (3.2, None, 450.0, 12.0, "mprage", 8.2)),  # GE BRAVO: TR is the readout's spacing
    ((2300, 3.0, 900, 0), (3.0, 2300.0, 900.0, None, "mprage", None)),  # no flip: short TE and TR
    ((9000, 90, 2500, 150), (90.0, 9000.0, 2500.0, 150.0, "inversion_recovery", None)),  # FLAIR
    ((4000, 100, 0, 90), (100.0, 4000.0, None, 90.0, None, None)),  # no TI: no sequence named
    ((0, 0, 0, 0), (None, None, None, None, None, None))])  # zero: unknown
def test_a_freesurfer_header_states_the_acquisition(tmp_path, times, expected):
    volume = load_volume(_mgh(tmp_path / "orig.mgz", *times))
    assert (volume.te_ms, volume.tr_ms, volume.ti_ms, volume.flip_deg, volume.sequence,
            volume.extra.get("readout_tr_ms")) == expected
    stated = any(v is not None for v in expected[:4])
    assert volume.extra.get("times_from") == ("FreeSurfer header" if stated else None)  # the sidecar's Source


def test_a_sidecar_wins_over_a_freesurfer_header(tmp_path):
    path = _mgh(tmp_path / "T1.mgz", 2300, 2.98, 900, 9)
    (tmp_path / "T1.json").write_text(json.dumps({"EchoTime": 0.1, "RepetitionTime": 4.0, "ScanningSequence": "SE"}))
    volume = load_volume(path)
    assert (volume.te_ms, volume.tr_ms, volume.ti_ms, volume.flip_deg, volume.sequence) == (
        100.0, 4000.0, None, None, "spin_echo")
    assert "times_from" not in volume.extra


def test_a_folder_or_dicom_file_given_to_load_volume_points_to_the_dicom_reader(tmp_path):
    (tmp_path / "series").mkdir()
    (tmp_path / "IM0001.dcm").write_bytes(b"\0" * 200)
    for path in (tmp_path / "series", tmp_path / "IM0001.dcm"):
        with pytest.raises(ValueError, match=r"DICOM .*is read by napari_mr_reparam\.dicom\.read_series\)?$"):
            io.load_volume(path)


def test_a_gzip_file_named_nii_reads_as_its_nii_gz(tmp_path):
    """nibabel tells compression by the suffix; a .nii.gz renamed .nii is still read."""
    data, affine = _oblique_nifti(tmp_path / "scan.nii.gz")
    (tmp_path / "scan.nii.gz").rename(tmp_path / "renamed.nii")
    assert probe(tmp_path / "renamed.nii") == data.shape
    volume = load_volume(tmp_path / "renamed.nii")
    assert np.array_equal(to_original(volume, volume.data), data)
    np.testing.assert_allclose(volume.affine, affine)
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3, 2), np.float32), np.eye(4)), str(tmp_path / "two.nii.gz"))
    (tmp_path / "two.nii.gz").rename(tmp_path / "two.nii")
    assert io.volume_count(tmp_path / "two.nii") == 2 and len(io.load_volumes(tmp_path / "two.nii")) == 2


def test_a_real_valued_image_its_sidecar_names_is_read_as_its_magnitude(tmp_path):
    """dcm2niix writes an inversion recovery's real-valued reconstruction with ImageType R in
    its sidecar, as the DICOM series was: read as its magnitude, said; unnamed, refused later."""
    from napari_mr_reparam.inference import require_magnitude

    signed = np.linspace(-100, 300, 4 * 8 * 8, dtype=np.float32).reshape(8, 8, 4)
    for name, image_type in (("ir_real", ["ORIGINAL", "PRIMARY", "R", "IR"]), ("ir_text", "ORIGINAL\\PRIMARY\\REAL"),
                             ("ir", None)):
        nib.save(nib.Nifti1Image(signed, np.eye(4)), str(tmp_path / f"{name}.nii.gz"))
        side = {"EchoTime": 0.012, "RepetitionTime": 1.0, "InversionTime": 0.05, "ScanningSequence": "IR"}
        (tmp_path / f"{name}.json").write_text(json.dumps({**side, **({"ImageType": image_type} if image_type else {})}))
        volume = load_volume(tmp_path / f"{name}.nii.gz")
        if image_type:
            assert float(volume.data.min()) >= 0 and float(volume.data.max()) == 300
            assert volume.extra["notices"] == [f"{name}.nii.gz: real-valued (signed) voxel values, as its sidecar's "
                                               "ImageType says; their magnitude is read"]
            require_magnitude(volume.data)
        else:
            with pytest.raises(ValueError, match="signed values"):
                require_magnitude(volume.data)


def test_a_one_slice_file_takes_its_sidecars_slice_thickness_as_its_slab(tmp_path):
    # dcm2niix writes a one-slice series' SpacingBetweenSlices (40 mm) as the slice's size;
    # its sidecar's SliceThickness (5 mm) is the slab, as a one-slice DICOM series reads.
    data = np.ones((8, 6, 1), np.float32)
    affine = np.diag([1.0, 1.0, 40.0, 1.0])
    nib.save(nib.Nifti1Image(data, affine), str(tmp_path / "one.nii.gz"))
    (tmp_path / "one.json").write_text(json.dumps({"EchoTime": 0.01, "RepetitionTime": 2.0,
                                                   "SliceThickness": 5, "SpacingBetweenSlices": 40}))
    volume = load_volume(tmp_path / "one.nii.gz")
    assert np.linalg.norm(volume.affine[:3, 2]) == pytest.approx(5.0)
    assert volume.spacing[0] == pytest.approx(5.0)
    nib.save(nib.Nifti1Image(np.ones((8, 6, 3), np.float32), affine), str(tmp_path / "three.nii.gz"))
    (tmp_path / "three.json").write_text((tmp_path / "one.json").read_text())
    assert load_volume(tmp_path / "three.nii.gz").spacing[0] == pytest.approx(40.0)  # its slices' spacing


def test_a_one_slice_file_written_back_keeps_its_qform_and_sform_codes(tmp_path):
    data = np.ones((8, 6, 1), np.float32)
    image = nib.Nifti1Image(data, np.diag([1.0, 1.0, 40.0, 1.0]))
    image.set_qform(image.affine, code=1)
    image.set_sform(image.affine, code=1)
    nib.save(image, str(tmp_path / "one.nii.gz"))
    (tmp_path / "one.json").write_text(json.dumps({"EchoTime": 0.01, "RepetitionTime": 2.0, "SliceThickness": 5}))
    volume = load_volume(tmp_path / "one.nii.gz")
    save_volume(tmp_path / "out.nii.gz", volume.data, volume)
    out = nib.load(tmp_path / "out.nii.gz")
    assert (int(out.header["qform_code"]), int(out.header["sform_code"])) == (1, 1)
    np.testing.assert_allclose(out.affine, np.diag([1.0, 1.0, 5.0, 1.0]), atol=1e-6)


def test_a_volume_states_its_acquisition_as_predict_takes_it(tmp_path):
    import json

    import nibabel as nib

    from napari_mr_reparam import Acquisition
    from napari_mr_reparam.io import load_volume

    path = tmp_path / "flair.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((8, 8, 3)).astype(np.float32), np.eye(4)), path)
    assert load_volume(path).acquisition() is None  # nothing stated: to be named
    path.with_name("flair.json").write_text(json.dumps({"EchoTime": 0.12, "RepetitionTime": 9.0,
                                                         "InversionTime": 2.5, "FlipAngle": 90}))
    assert load_volume(path).acquisition() == Acquisition(120.0, 9000.0, "inversion_recovery", 2500.0)
