import numpy as np
import pytest
from test_io import _oblique_nifti

from napari_mr_reparam import io, volume_writing
from napari_mr_reparam.io import load_volume
from napari_mr_reparam.volume_writing import save_volume


def test_stack_without_like_reads_back_the_same(tmp_path):
    stack = np.random.default_rng(1).random((3, 5, 7)).astype(np.float32)
    out = save_volume(tmp_path / "plain.nii", stack)
    assert np.array_equal(load_volume(out).data, stack)
    like = io.Volume(data=stack, spacing=(2.0, 0.5, 0.25), kind="image")
    back = load_volume(save_volume(tmp_path / "spaced.nii.gz", stack, like=like))
    assert np.array_equal(back.data, stack) and back.spacing == pytest.approx((2.0, 0.5, 0.25))


def test_tiff_stack_and_image_outputs(tmp_path):
    import tifffile

    stack = np.random.default_rng(2).random((5, 8, 9)).astype(np.float32)
    tifffile.imwrite(str(tmp_path / "stack.tif"), stack)
    assert np.array_equal(load_volume(tmp_path / "stack.tif").data, stack)
    for name in ("o.tif", "o.npy"):
        out = save_volume(tmp_path / name, stack)
        assert np.array_equal(load_volume(out).data if name.endswith("tif") else np.load(out), stack)
    assert not (tmp_path / "o.json").exists()  # sidecars only beside NIfTI
    png = load_volume(save_volume(tmp_path / "o.png", stack[2] * 3))
    assert png.data.shape == (1, 8, 9) and png.data.max() == 255
    with pytest.raises(ValueError, match=r"^o2\.png: a PNG holds one slice, the data have 5"):
        save_volume(tmp_path / "o2.png", stack)  # the message names the file asked for
    assert not list(tmp_path.glob(".o2.png*"))
    with pytest.raises(ValueError, match="unsupported output"):
        save_volume(tmp_path / "x.mha", stack)


def test_never_overwrites_and_writes_atomically(tmp_path):
    target = tmp_path / "out.npy"
    save_volume(target, np.ones((2, 3, 3)))
    with pytest.raises(FileExistsError, match="out.npy exists"):
        save_volume(target, np.zeros((2, 3, 3)))
    assert np.load(target).sum() == 18
    save_volume(target, np.zeros((2, 3, 3)), overwrite=True)
    assert np.load(target).sum() == 0
    (tmp_path / "taken.json").write_text("{}")  # an existing sidecar is not replaced either
    with pytest.raises(FileExistsError, match="taken.json"):
        save_volume(tmp_path / "taken.nii.gz", np.ones((2, 3, 3)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npy", "taken.json"]  # no temp files


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def broken(path, data, like):
        path.write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setitem(volume_writing._WRITERS, ".nii.gz", broken)
    with pytest.raises(OSError, match="disk full"):
        save_volume(tmp_path / "out.nii.gz", np.ones((2, 3, 3)))
    assert list(tmp_path.iterdir()) == []


def test_shape_mismatch_with_like_is_refused(tmp_path):
    _oblique_nifti(tmp_path / "scan.nii")
    volume = load_volume(tmp_path / "scan.nii")
    with pytest.raises(ValueError, match="do not fit"):
        save_volume(tmp_path / "out.nii", volume.data[:3], like=volume)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.nii"]


def test_an_output_folder_is_not_a_file(tmp_path):
    from napari_mr_reparam.volume_writing import check_output_folder

    (tmp_path / "afile").write_text("x")
    assert check_output_folder(tmp_path / "new") == tmp_path / "new" and not (tmp_path / "new").exists()
    with pytest.raises(ValueError, match="afile: exists and is not a folder"):
        check_output_folder(tmp_path / "afile")
    with pytest.raises(ValueError, match="names the output folder here"):
        check_output_folder(tmp_path / "maps.nii.gz")


def test_output_paths_one_file_or_a_folder_of_named_files(tmp_path):
    from napari_mr_reparam.volume_writing import output_paths

    assert output_paths(tmp_path / "x.nii.gz", [("scan_TE80", ".nii")]) == [tmp_path / "x.nii.gz"]
    names = [("a_TE80", ".nii"), ("b_TE80", ".jpg"), ("c_T1w", ".png")]
    folder = tmp_path / "out"
    assert output_paths(folder, names) == [folder / "a_TE80.nii", folder / "b_TE80.png", folder / "c_T1w.png"]
    assert output_paths(folder, names, "tif") == [folder / f"{stem}.tif" for stem, _ in names]
    assert not folder.exists()  # made when written to
    with pytest.raises(ValueError, match="^several targets need an output folder for -o, not a file$"):
        output_paths(tmp_path / "x.nii.gz", names[:2], several="several targets")
    with pytest.raises(ValueError, match=r"^x\.mha: unsupported output type"):
        output_paths(tmp_path / "x.mha", names[:1])
    with pytest.raises(ValueError, match=r"^--suffix \.mha: unsupported output type"):
        output_paths(folder, names, ".mha")
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        output_paths(tmp_path / "afile", names)
