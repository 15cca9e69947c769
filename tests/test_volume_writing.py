import json

import numpy as np
import pytest
from test_io import _oblique_nifti, _plate_nifti

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


def _tilted_slab(path):
    """Four 4 mm coronal slices, tilted 15 degrees about the patient's left-right axis."""
    import nibabel as nib
    from scipy.spatial.transform import Rotation

    affine = np.eye(4)
    affine[:3, :3] = Rotation.from_euler("x", 15, degrees=True).as_matrix() @ np.diag([0.9, 4.0, 0.9])
    nib.save(nib.Nifti1Image(np.random.default_rng(7).random((48, 4, 40)).astype(np.float32), affine), str(path))


@pytest.mark.parametrize("make, plane, shape", [
    (_plate_nifti, "coronal", (1, 192, 192)),
    (lambda path: _plate_nifti(path, shape=(64, 48, 4)), "coronal", (4, 48, 64)),
    (_tilted_slab, "coronal", (4, 40, 48)),
    (lambda path: _oblique_nifti(path), "axial", (12, 30, 20)),
], ids=["one coronal slice", "coronal slices", "tilted coronal slab", "oblique axial"])
def test_a_volume_read_in_its_plane_is_written_back_in_place(tmp_path, make, plane, shape):
    """read -> save_volume(like=) -> read keeps the stack, its plane, its place and its spacing."""
    import nibabel as nib

    from napari_mr_reparam.orientation import slice_plane

    make(tmp_path / "in.nii.gz")
    volume = load_volume(tmp_path / "in.nii.gz")
    assert volume.data.shape == shape and slice_plane(volume) == plane
    out = save_volume(tmp_path / "out.nii.gz", volume.data * 2, like=volume)
    source, written = nib.load(str(tmp_path / "in.nii.gz")), nib.load(str(out))
    assert np.allclose(written.affine, source.affine) and written.shape == source.shape
    np.testing.assert_array_equal(np.asarray(written.dataobj), np.asarray(source.dataobj) * 2)
    again = load_volume(out)
    np.testing.assert_array_equal(again.data, volume.data * 2)
    assert slice_plane(again) == plane and again.spacing == pytest.approx(volume.spacing)


def test_a_coronal_dicom_series_written_as_nifti_reads_back_as_the_same_slices(tmp_path):
    """A 2-D coronal (and sagittal) series keeps its slices through a NIfTI written from it."""
    from dicom_helpers import CORONAL, write_series

    from napari_mr_reparam import dicom
    from napari_mr_reparam.orientation import slice_plane

    sagittal = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
    for name, orientation, slices in (("cor1", CORONAL, 1), ("cor4", CORONAL, 4), ("sag4", sagittal, 4)):
        data = np.random.default_rng(slices).random((slices, 16, 20)).astype(np.float32)
        write_series(tmp_path / name, [data], orientation=orientation)
        [series] = dicom.read_series(tmp_path / name)
        again = load_volume(save_volume(tmp_path / f"{name}.nii.gz", series.data, like=series))
        np.testing.assert_array_equal(again.data, series.data)
        assert slice_plane(again) == slice_plane(series) != "axial", name
        assert again.spacing == pytest.approx(series.spacing), name


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
    with pytest.raises(ValueError, match=r"^out\.nii: data of shape \(3, [0-9]+, [0-9]+\) do not fit"):
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
    # a dotted name ending in a slash, or an existing folder, is a folder
    assert output_paths(f"{tmp_path}/out.v2/", names[:1]) == [tmp_path / "out.v2" / "a_TE80.nii"]
    (tmp_path / "run.1").mkdir()
    assert output_paths(tmp_path / "run.1", names[:1]) == [tmp_path / "run.1" / "a_TE80.nii"]
    with pytest.raises(ValueError, match=r"^several targets need an output folder for -o, not a file \(\S+\): give a folder$"):
        output_paths(tmp_path / "x.nii.gz", names[:2], several="several targets")
    with pytest.raises(ValueError, match=r"^x\.mha: unsupported output type"):
        output_paths(tmp_path / "x.mha", names[:1])
    with pytest.raises(ValueError, match=r"^--suffix \.mha: unsupported output type"):
        output_paths(folder, names, ".mha")
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        output_paths(tmp_path / "afile", names)


def test_times_that_can_only_be_seconds_are_refused_and_an_unknown_model_is_not_named(tmp_path):
    import json

    from napari_mr_reparam.sidecars import acquisition_sidecar

    stack = np.random.default_rng(0).random((2, 6, 5)).astype(np.float32)
    with pytest.raises(ValueError, match=r"^TE 0.1 looks like seconds; times are in milliseconds \(did you mean 100"):
        save_volume(tmp_path / "s.nii.gz", stack, te_ms=0.1, tr_ms=3)
    with pytest.raises(ValueError, match=r"^TR 3 looks like seconds"):
        save_volume(tmp_path / "s.nii.gz", stack, te_ms=100, tr_ms=3)
    with pytest.raises(ValueError, match=r"^TE \(100 ms\) must be shorter than TR \(50 ms\)$"):
        save_volume(tmp_path / "s.nii.gz", stack, te_ms=100, tr_ms=50)
    assert list(tmp_path.iterdir()) == []  # nothing written
    # a spoiled gradient echo's TR may be a few ms
    save_volume(tmp_path / "gre.nii.gz", stack, te_ms=4, tr_ms=8, extra=acquisition_sidecar("gradient_echo", None, 15))
    made = json.loads((tmp_path / "gre.json").read_text())["GeneratedBy"][0]
    assert "Model" not in made and made["Name"] == "napari-mr-reparam"
    save_volume(tmp_path / "p.nii.gz", stack, te_ms=100, tr_ms=3000, model="physics")
    assert json.loads((tmp_path / "p.json").read_text())["GeneratedBy"][0]["Model"] == "physics"
    assert "WeightsSHA256" not in json.loads((tmp_path / "p.json").read_text())["GeneratedBy"][0]
    # the weights that made it, by their file's hash: in the sidecar, and in a DICOM series' derivation
    save_volume(tmp_path / "w.nii.gz", stack, te_ms=100, tr_ms=3000, model="physics", weights_sha256="ab" * 32)
    assert json.loads((tmp_path / "w.json").read_text())["GeneratedBy"][0]["WeightsSHA256"] == "ab" * 32
    import pydicom

    save_volume(tmp_path / "w.dcm", stack, te_ms=100, tr_ms=3000, model="physics", weights_sha256="ab" * 32)
    first = pydicom.dcmread(sorted((tmp_path / "w.dcm").iterdir())[0])
    assert f"physics (weights sha256 {'ab' * 32})" in first.DerivationDescription


def test_an_existing_output_names_the_keyword_that_replaces_it(tmp_path):
    stack = np.random.default_rng(0).random((2, 6, 5)).astype(np.float32)
    out = save_volume(tmp_path / "a.nii.gz", stack)
    with pytest.raises(FileExistsError) as caught:
        save_volume(out, stack)
    assert str(caught.value) == f"{out} exists; overwrite=True replaces it (--overwrite on the command line)"
    save_volume(out, stack, overwrite=True)


def test_keep_sidecar_keeps_what_the_writer_does_not_write_and_overwrite_alone_replaces_it_all(tmp_path):
    import json

    from napari_mr_reparam import __version__

    stack = np.ones((2, 6, 5), np.float32)
    out = save_volume(tmp_path / "a.nii.gz", stack, te_ms=20, tr_ms=600)
    scanner = {"EchoTime": 0.09, "InversionTime": 2.5, "ScanningSequence": "IR", "Manufacturer": "GE",
               "Preset": "FLAIR", "Quantity": "T2", "Units": "ms", "Inputs": [], "GeneratedBy": [{"Name": "x"}]}
    (tmp_path / "a.json").write_text(json.dumps(scanner))
    save_volume(out, stack, te_ms=100, tr_ms=3000, model="physics", overwrite=True, keep_sidecar=True)
    assert json.loads((tmp_path / "a.json").read_text()) == {
        "Manufacturer": "GE", "EchoTime": 0.1, "RepetitionTime": 3.0,
        "GeneratedBy": [{"Name": "napari-mr-reparam", "Version": __version__, "Model": "physics"}]}
    (tmp_path / "a.json").write_text(json.dumps(scanner))
    save_volume(out, stack, te_ms=100, tr_ms=3000, overwrite=True)  # the command line's --overwrite
    assert "Manufacturer" not in json.loads((tmp_path / "a.json").read_text())
    save_volume(tmp_path / "b.nii.gz", stack, te_ms=20, tr_ms=600, keep_sidecar=True)  # nothing to keep
    assert set(json.loads((tmp_path / "b.json").read_text())) == {"EchoTime", "RepetitionTime", "GeneratedBy"}


def test_a_file_where_a_folder_is_needed_is_one_line(tmp_path):
    from napari_mr_reparam.volume_writing import output_paths

    (tmp_path / "afile").write_text("mine")
    stack = np.random.default_rng(0).random((2, 6, 5)).astype(np.float32)
    target = tmp_path / "afile" / "x.nii.gz"
    with pytest.raises(ValueError) as caught:
        save_volume(target, stack)
    assert str(caught.value) == f"{target}: {tmp_path / 'afile'} is a file, not a folder; choose another output path"
    with pytest.raises(ValueError, match="afile is a file, not a folder"):
        output_paths(tmp_path / "afile" / "out", [("a", ".nii.gz"), ("b", ".nii.gz")])
    assert (tmp_path / "afile").read_text() == "mine"


def test_the_input_record_holds_the_acquisition_in_the_sidecars_units(tmp_path):
    import json

    from napari_mr_reparam.acquisition import Acquisition
    from napari_mr_reparam.volume_writing import INPUT_UNITS, input_record

    extra = input_record(Acquisition(3, 2300, "mprage", 900, 9), "guessed", "scan.nii.gz", "MPRAGE")
    assert extra == {"Input": {"File": "scan.nii.gz", "EchoTime": 0.003, "RepetitionTime": 2.3,
                               "ScanningSequence": ["GR", "IR"], "PulseSequenceType": "MPRAGE", "InversionTime": 0.9,
                               "FlipAngle": 9.0, "Source": "guessed", "Preset": "MPRAGE", "Units": INPUT_UNITS}}
    assert "seconds" in INPUT_UNITS and "degrees" in INPUT_UNITS
    stack = np.random.default_rng(0).random((2, 6, 5)).astype(np.float32)
    save_volume(tmp_path / "p.nii.gz", stack, te_ms=100, tr_ms=3000, extra=extra)
    assert json.loads((tmp_path / "p.json").read_text())["Input"] == json.loads(json.dumps(extra["Input"]))


def _read_only_folder(path):
    """A folder no file can be written in; the test is skipped where chmod does not bite (root)."""
    import os

    path.mkdir()
    path.chmod(0o555)
    if os.access(path, os.W_OK):
        path.chmod(0o755)
        pytest.skip("chmod does not keep this user from writing (root)")
    return path


@pytest.mark.parametrize("name", ["x.nii.gz", "x.npy", "x.dcm"])
def test_a_read_only_folder_is_one_line_naming_the_output(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    folder = _read_only_folder(tmp_path / "rofs")
    try:
        with pytest.raises(OSError) as info:
            save_volume(f"rofs/{name}", np.ones((2, 3, 3), np.float32))
        assert str(info.value) == f"cannot write rofs/{name}: permission denied"
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


def test_a_failure_of_the_system_names_the_output_not_its_temporary_file(tmp_path, monkeypatch):
    import errno
    import os

    def read_only(path, data, like):  # as a read-only file system answers, whoever runs it
        path.write_bytes(b"half a file")
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(volume_writing._WRITERS, ".nii.gz", read_only)
    with pytest.raises(OSError) as info:
        save_volume("rofs/x.nii.gz", np.ones((2, 3, 3)))
    assert str(info.value) == "cannot write rofs/x.nii.gz: read-only file system"
    assert list((tmp_path / "rofs").iterdir()) == []  # the temporary file removed


def test_an_output_where_nothing_can_be_written_is_refused_before_any_work(tmp_path, monkeypatch):
    from pathlib import Path

    import os

    from napari_mr_reparam.volume_writing import output_paths

    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != tmp_path)  # as a read-only disk
    for output in (tmp_path / "pred.nii.gz", tmp_path / "new" / "deeper"):
        with pytest.raises(OSError, match=rf"^cannot write in {tmp_path} \(read-only, or no permission\): choose"):
            output_paths(output, [("scan", ".nii.gz")])
    with pytest.raises(OSError, match=r"^cannot write in "):
        volume_writing.check_output_folder(tmp_path / "maps")  # maps' folder, before the fit
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(os, "access", lambda path, mode: True)
    (tmp_path / "pred.nii.gz").write_bytes(b"an earlier output")  # to be replaced (--overwrite) ...
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != tmp_path)  # ... in a read-only folder
    with pytest.raises(OSError, match=rf"^cannot write in {tmp_path} \(read-only, or no permission\): choose"):
        output_paths(tmp_path / "pred.nii.gz", [("scan", ".nii.gz")])


def test_a_name_as_long_as_the_file_system_takes_is_written(tmp_path):
    name = "s" * (255 - len(".nii.gz")) + ".nii.gz"  # 255 characters: most file systems' limit
    out = save_volume(tmp_path / name, np.ones((2, 4, 4), np.float32), te_ms=20, tr_ms=600)
    assert out.is_file() and sorted(p.name for p in tmp_path.iterdir()) == sorted([name, name[:-7] + ".json"])


def test_a_stop_between_an_image_and_its_sidecar_keeps_neither(tmp_path, monkeypatch):
    import os

    real, moves = os.replace, []

    def stopped_at_the_sidecar(src, dst):
        moves.append(dst)
        if len(moves) == 2:
            raise KeyboardInterrupt  # Ctrl-C after the image is in place, before its sidecar
        return real(src, dst)

    monkeypatch.setattr(os, "replace", stopped_at_the_sidecar)
    with pytest.raises(KeyboardInterrupt):
        save_volume(tmp_path / "x.nii.gz", np.ones((2, 4, 4), np.float32), te_ms=20, tr_ms=600)
    assert list(tmp_path.iterdir()) == []  # neither the image nor a temporary file


def test_an_output_in_a_derivative_dataset_describes_the_dataset_once(tmp_path):
    from napari_mr_reparam import __version__

    dataset = tmp_path / "ds" / "derivatives" / "reparam"
    data = np.ones((2, 4, 4), np.float32)
    save_volume(dataset / "sub-01" / "anat" / "a.nii.gz", data, te_ms=20, tr_ms=600)
    described = json.loads((dataset / "dataset_description.json").read_text())
    assert described["DatasetType"] == "derivative" and described["Name"] == "reparam"
    assert described["BIDSVersion"] and described["GeneratedBy"][0]["Version"] == __version__
    (dataset / "dataset_description.json").write_text('{"Name": "mine"}')
    save_volume(dataset / "b.dcm", data, te_ms=20, tr_ms=600)  # a DICOM series too; the user's own kept
    assert json.loads((dataset / "dataset_description.json").read_text()) == {"Name": "mine"}
    save_volume(tmp_path / "out" / "c.nii.gz", data, te_ms=20, tr_ms=600)  # no derivative dataset: none
    assert not list(tmp_path.glob("out/*description*"))
    (dataset / "dataset_description.json").unlink()
    save_volume(dataset / "d.dcm", data, te_ms=20, tr_ms=600)
    assert (dataset / "dataset_description.json").is_file()
