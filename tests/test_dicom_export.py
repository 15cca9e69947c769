"""Predictions and maps written as a DICOM series, and read back."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from dicom_helpers import CORONAL, oblique, ramp, write_series

from napari_mr_reparam import dicom, dicom_export, io
from napari_mr_reparam.orientation import to_original
from napari_mr_reparam.sidecars import acquisition_sidecar
from napari_mr_reparam.volume_writing import save_volume


def _source(tmp_path, **kwargs):
    files = write_series(tmp_path / "scan", [ramp(4, 12, 10)], **kwargs)
    return dicom.read_series(tmp_path / "scan")[0], files


def _one_file(folder: Path):
    return pydicom.dcmread(sorted(folder.iterdir())[0])


def test_round_trip_keeps_geometry_values_and_the_study(tmp_path):
    def patient(ds, echo, k):
        ds.PatientName, ds.PatientID, ds.StudyInstanceUID = "Doe^Jane", "P123", "1.2.3.4"
        ds.SeriesNumber = 7

    volume, _ = _source(tmp_path, orientation=oblique(25), extra=patient)
    data = volume.data * 0.37
    out = save_volume(tmp_path / "synth.dcm", data, like=volume, te_ms=100, tr_ms=4000, model="physics",
                      extra=acquisition_sidecar("spin_echo"))
    assert out.is_dir() and len(list(out.iterdir())) == 4
    back = dicom.read_series(out)
    assert len(back) == 1
    got = back[0]
    np.testing.assert_allclose(got.affine, volume.affine, atol=1e-4)
    slope = float(_one_file(out).RescaleSlope)
    assert slope <= 0.1  # 1300 at most: stored to a tenth or finer
    np.testing.assert_allclose(got.data, data, atol=slope / 2 + 1e-6)
    assert (got.te_ms, got.tr_ms, got.sequence) == (100.0, 4000.0, "spin_echo")
    ds = _one_file(out)
    assert (str(ds.PatientName), ds.PatientID, ds.StudyInstanceUID) == ("Doe^Jane", "P123", "1.2.3.4")
    assert ds.SeriesInstanceUID != volume.extra["series_uid"]
    assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert ds.SeriesNumber == 7 + dicom_export.SERIES_NUMBER_OFFSET
    assert "TE 100 TR 4000" in ds.SeriesDescription and "physics" in ds.DerivationDescription


def test_a_3d_volume_laid_out_again_goes_back_to_its_own_slices(tmp_path):
    volumes = [ramp(18, 16, 16)]
    write_series(tmp_path / "sag", volumes, orientation=CORONAL, row_mm=1.0, col_mm=1.0, step_mm=1.0,
                 extra=lambda ds, e, k: setattr(ds, "MRAcquisitionType", "3D"))
    volume = dicom.read_series(tmp_path / "sag")[0]
    out = save_volume(tmp_path / "out.dcm", volume.data, like=volume, te_ms=20, tr_ms=600)
    got = dicom.read_series(out)[0]
    assert got.data.shape == volume.data.shape
    np.testing.assert_allclose(got.affine, volume.affine, atol=1e-4)
    np.testing.assert_allclose(got.data, volume.data, atol=0.5)
    assert _one_file(out).MRAcquisitionType == "3D"


def test_a_nifti_input_gives_a_series_of_its_own_at_its_place(tmp_path):
    a = np.deg2rad(15)
    rotation = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([-0.9, 1.1, 2.5])
    affine[:3, 3] = (40.0, -20.0, 5.0)
    values = np.random.default_rng(1).uniform(0, 900, (10, 12, 5)).astype(np.float32)
    nib.save(nib.Nifti1Image(values, affine), tmp_path / "scan.nii.gz")
    volume = io.load_volume(tmp_path / "scan.nii.gz")
    out = save_volume(tmp_path / "pred.dcm", volume.data, like=volume, te_ms=15, tr_ms=500)
    got = dicom.read_series(out)[0]
    _assert_same_voxels_at_same_places(got, values, affine, float(_one_file(out).RescaleSlope) / 2 + 1e-4)
    ds = _one_file(out)
    assert ds.PatientID == "" and ds.StudyInstanceUID
    assert "SourceImageSequence" not in ds  # no source image to name
    # another series made from the same input joins its study and frame of reference
    other = _one_file(save_volume(tmp_path / "pred2.dcm", volume.data, like=volume, te_ms=100, tr_ms=3000))
    assert (other.StudyInstanceUID, other.FrameOfReferenceUID) == (ds.StudyInstanceUID, ds.FrameOfReferenceUID)
    assert other.SeriesInstanceUID != ds.SeriesInstanceUID
    nib.save(nib.Nifti1Image(values, affine), tmp_path / "another.nii.gz")
    apart = io.load_volume(tmp_path / "another.nii.gz")
    third = _one_file(save_volume(tmp_path / "pred3.dcm", apart.data, like=apart, te_ms=15, tr_ms=500))
    assert third.StudyInstanceUID != ds.StudyInstanceUID  # another input: a study of its own


def test_a_maps_quantity_is_an_image_type_cut_at_a_words_end():
    assert dicom_export._image_type_code("refocusing flip-angle scale") == "REFOCUSING_FLIP"
    assert dicom_export._image_type_code("T2") == "T2"
    assert dicom_export._image_type_code("an_extraordinarily long word") == "AN"


def test_maps_keep_their_units_and_signed_values_their_sign(tmp_path):
    volume, _ = _source(tmp_path)
    t1 = np.full(volume.data.shape, 1234.5, np.float32)
    out = save_volume(tmp_path / "T1map.dcm", t1, like=volume, model="joint maps",
                      extra={"Quantity": "T1", "Units": "ms"})
    ds = _one_file(out)
    assert float(ds.RescaleSlope) == pytest.approx(0.1)
    assert ds.pixel_array.max() * float(ds.RescaleSlope) == pytest.approx(1234.5)
    assert "T1 map (ms)" in ds.SeriesDescription and list(ds.ImageType)[-1] == "T1"
    (mapping,) = ds.RealWorldValueMappingSequence  # the unit where viewers of parametric maps read it
    assert mapping.MeasurementUnitsCodeSequence[0].CodeValue == "ms"
    assert mapping.MeasurementUnitsCodeSequence[0].CodingSchemeDesignator == "UCUM"
    assert float(mapping.RealWorldValueSlope) == pytest.approx(0.1) and float(mapping.RealWorldValueIntercept) == 0
    assert "RealWorldValueMappingSequence" not in _one_file(save_volume(tmp_path / "t2w.dcm", t1, like=volume))
    diff = np.linspace(-50, 50, volume.data.size, dtype=np.float32).reshape(volume.data.shape)
    signed = save_volume(tmp_path / "diff.dcm", diff, like=volume)
    got = dicom.read_series(signed)[0].data
    assert _one_file(signed).PixelRepresentation == 1
    np.testing.assert_allclose(got, diff, atol=0.005 + 1e-5)  # stored in hundredths (50 / 32767 < 0.01)


def _philips(slope=1.65, intercept=2.5, scale=0.073):
    """A ``write_series`` edit making a Philips series with the private scale slope."""
    def edit(ds, echo, k):
        ds.Manufacturer = "Philips Medical Systems"
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        ds.add_new((0x2005, 0x100E), "FL", scale)
    return edit


def _display_values(folder: Path) -> dict:
    """Per slice position, a series' values as a viewer displays them: stored x RescaleSlope +
    RescaleIntercept (no private tag)."""
    shown = {}
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        where = tuple(np.round(np.asarray(ds.ImagePositionPatient, float), 2))
        shown[where] = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    return shown


def test_an_image_of_a_philips_series_is_written_in_its_display_values(tmp_path):
    """Read in Philips' floating-point values (DV / (RescaleSlope x scale slope)), an image
    written as DICOM beside its series shows as the series does; a map keeps its units and
    a NIfTI file the floating-point values."""
    volume, _ = _source(tmp_path, extra=_philips())
    assert volume.extra["display_scale"] == pytest.approx(1.65 * 0.073)
    out = save_volume(tmp_path / "same.dcm", volume.data, like=volume, te_ms=20, tr_ms=2000)
    source, written = _display_values(tmp_path / "scan"), _display_values(out)
    assert written.keys() == source.keys()
    slope = float(_one_file(out).RescaleSlope)
    for where, shown in source.items():
        np.testing.assert_allclose(written[where], shown, atol=slope / 2 + 1e-3)
    t1 = np.full(volume.data.shape, 1234.5, np.float32)
    t1_map = save_volume(tmp_path / "T1map.dcm", t1, like=volume, extra={"Quantity": "T1", "Units": "ms"})
    np.testing.assert_allclose(dicom.read_series(t1_map)[0].data, t1, atol=0.05 + 1e-3)
    nifti = save_volume(tmp_path / "same.nii.gz", volume.data, like=volume, te_ms=20, tr_ms=2000)
    np.testing.assert_array_equal(io.load_volume(nifti).data, volume.data)


def test_an_enhanced_philips_image_is_written_in_its_display_values(tmp_path):
    """The scale slope of an enhanced image's frames (in their private functional group) with
    the shared rescale: the written image displays as the frames do."""
    from dicom_helpers import write_enhanced

    write_enhanced(tmp_path / "enhanced" / "IM0001", [ramp(4, 12, 10)], philips_scale=(0.25,), rescale=(2.0, 3.0))
    volume = dicom.read_series(tmp_path / "enhanced")[0]
    assert volume.extra["display_scale"] == pytest.approx(2.0 * 0.25)
    np.testing.assert_allclose(volume.data, (ramp(4, 12, 10) * 2.0 + 3.0) / 0.5)
    out = save_volume(tmp_path / "same.dcm", volume.data, like=volume, te_ms=20, tr_ms=2000)
    slope = float(_one_file(out).RescaleSlope)
    np.testing.assert_allclose(dicom.read_series(out)[0].data, ramp(4, 12, 10) * 2.0 + 3.0, atol=slope / 2 + 1e-3)


def test_an_existing_folder_is_replaced_only_when_asked_and_only_if_a_series(tmp_path):
    volume, _ = _source(tmp_path)
    out = save_volume(tmp_path / "out.dcm", volume.data, like=volume, te_ms=20, tr_ms=500)
    with pytest.raises(FileExistsError, match="exists"):
        save_volume(out, volume.data, like=volume, te_ms=30, tr_ms=500)
    save_volume(out, volume.data, like=volume, te_ms=30, tr_ms=500, overwrite=True)
    assert dicom.read_series(out)[0].te_ms == 30.0 and len(list(out.iterdir())) == 4
    mine = tmp_path / "mine.dcm"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="other than"):
        save_volume(mine, volume.data, like=volume, overwrite=True)
    assert (mine / "notes.txt").read_text() == "keep me"
    (tmp_path / "file.dcm").write_text("a file")
    with pytest.raises(FileExistsError, match="is a file"):
        save_volume(tmp_path / "file.dcm", volume.data, like=volume, overwrite=True)
    assert (tmp_path / "file.dcm").read_text() == "a file"


def test_a_failed_write_leaves_nothing(tmp_path, monkeypatch):
    volume, _ = _source(tmp_path)
    calls = []

    def failing(path, *args):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(path, *args)

    real = dicom_export._write_slice
    monkeypatch.setattr(dicom_export, "_write_slice", failing)
    with pytest.raises(OSError, match="disk full"):
        save_volume(tmp_path / "out.dcm", volume.data, like=volume)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan"]


def test_the_command_line_writes_a_series_per_target(tmp_path):
    from napari_mr_reparam.cli import main

    _source(tmp_path, te=(30.0,), tr=3000.0)
    code = main(["predict", str(tmp_path / "scan"), "--model", "physics", "--te", "100", "80", "--tr", "4000",
                 "4000", "-o", str(tmp_path / "out"), "--suffix", ".dcm", "-q"])
    assert code == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["scan_TE100_TR4000.dcm", "scan_TE80_TR4000.dcm"]
    got = dicom.read_series(tmp_path / "out" / written[0])[0]
    assert (got.te_ms, got.tr_ms) == (100.0, 4000.0) and got.data.shape == (4, 12, 10)


def test_maps_as_dicom_series_carry_their_quantity(tmp_path):
    from napari_mr_reparam.cli import main

    base = ramp(4, 12, 10)
    write_series(tmp_path / "echoes", [base * np.exp(-20 / 80), base * np.exp(-80 / 80)], te=(20.0, 80.0), tr=3000.0)
    code = main(["maps", str(tmp_path / "echoes"), "-o", str(tmp_path / "maps"), "--suffix", ".dcm",
                 "--model", "none", "-q"])
    assert code == 0
    assert {p.name for p in (tmp_path / "maps").iterdir()} == {"PD.dcm", "T1map.dcm", "T2map.dcm",
                                                              "determined.dcm", "maps.json"}
    t2 = dicom.read_series(tmp_path / "maps" / "T2map.dcm")[0]
    ds = _one_file(tmp_path / "maps" / "T2map.dcm")
    assert ds.SeriesDescription.startswith("T2 map (ms)") and list(ds.ImageType)[-1] == "T2"
    inside = base > 0
    assert np.median(t2.data[inside]) == pytest.approx(80, rel=0.05)
    numbers = {_one_file(tmp_path / "maps" / f"{name}.dcm").SeriesNumber
               for name in ("PD", "T1map", "T2map", "determined")}
    assert len(numbers) == 4  # a viewer lists the four apart


def test_series_from_one_source_are_numbered_apart_and_a_rewrite_keeps_its_number(tmp_path):
    def numbered(ds, echo, k):
        ds.SeriesNumber = 5

    volume, _ = _source(tmp_path, extra=numbered)
    first = save_volume(tmp_path / "a.dcm", volume.data, like=volume, te_ms=20, tr_ms=500)
    second = save_volume(tmp_path / "b.dcm", volume.data, like=volume, te_ms=30, tr_ms=500)
    a, b = _one_file(first).SeriesNumber, _one_file(second).SeriesNumber
    assert a >= 5 + dicom_export.SERIES_NUMBER_OFFSET and b != a
    save_volume(first, volume.data, like=volume, te_ms=40, tr_ms=500, overwrite=True)
    assert _one_file(first).SeriesNumber == a


def test_overwrite_onto_a_folder_that_is_no_series_is_refused_before_any_work(tmp_path, monkeypatch):
    from napari_mr_reparam import inference
    from napari_mr_reparam.cli import main

    _source(tmp_path, te=(30.0,), tr=3000.0)
    mine = tmp_path / "mine.dcm"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr(inference.Reparameterizer, "__init__", no_model)
    code = main(["predict", str(tmp_path / "scan"), "--te", "100", "--tr", "4000", "-o", str(mine),
                 "--overwrite", "-q"])
    assert code == 2
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("charset, name", [("ISO_IR 100", "Müller^Jürgen"), ("ISO_IR 192", "山田^太郎")])
def test_a_patient_name_keeps_its_character_set(tmp_path, charset, name):
    def patient(ds, echo, k):
        ds.SpecificCharacterSet, ds.PatientName, ds.SeriesDescription = charset, name, "Tête T1"

    volume, _ = _source(tmp_path, extra=patient)
    out = save_volume(tmp_path / "out.dcm", volume.data, like=volume, te_ms=100, tr_ms=4000)
    ds = _one_file(out)
    assert ds.SpecificCharacterSet == charset and str(ds.PatientName) == name
    assert ds.SeriesDescription == "synthetic TE 100 TR 4000 from Tête T1"


def test_gdcm_reads_the_series_where_the_source_lies(tmp_path):
    """SimpleITK's DICOM reader (GDCM, as 3-D Slicer and ITK-SNAP read series) places the
    written series where it places its source."""
    sitk = pytest.importorskip("SimpleITK")

    def read(folder):
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
        return reader.Execute()

    volume, _ = _source(tmp_path, orientation=oblique(20))
    save_volume(tmp_path / "out.dcm", volume.data * 0.5, like=volume, te_ms=100, tr_ms=4000)
    source, written = read(tmp_path / "scan"), read(tmp_path / "out.dcm")
    np.testing.assert_allclose(written.GetOrigin(), source.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(written.GetDirection(), source.GetDirection(), atol=1e-6)
    np.testing.assert_allclose(written.GetSpacing(), source.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(source) * 0.5, atol=0.05)


def test_data_that_do_not_fit_the_source_are_one_line_and_nothing_is_written(tmp_path):
    volume, _ = _source(tmp_path)
    with pytest.raises(ValueError, match=r"^out\.dcm: data of shape \(2, 12, 10\) do not fit"):
        save_volume(tmp_path / "out.dcm", volume.data[:2], like=volume)
    assert not (tmp_path / "out.dcm").exists()


def test_a_double_inversion_recovery_written_as_dicom_reads_back_as_one(tmp_path):
    volume, _ = _source(tmp_path)
    out = save_volume(tmp_path / "dir.dcm", volume.data, like=volume, te_ms=25, tr_ms=11000,
                      extra=acquisition_sidecar("double_inversion_recovery", 3400, None, 400))
    got = dicom.read_series(out)[0]
    assert got.sequence == "double_inversion_recovery"  # not an inversion recovery at TI 3400 ms
    assert len(_one_file(out).SequenceName) <= 16  # a short string (VR SH)
    prediction = save_volume(tmp_path / "ir.dcm", volume.data, like=volume, te_ms=25, tr_ms=5000,
                             extra=acquisition_sidecar("inversion_recovery", 2000))
    assert dicom.read_series(prediction)[0].sequence == "inversion_recovery"


def test_a_series_made_from_one_acquisition_of_a_set_names_it(tmp_path):
    from dicom_helpers import write_series as write_source

    write_source(tmp_path / "ir", [ramp(2, 8, 8), ramp(2, 8, 8) // 2], te=(10.0, 10.0), ti=(100.0, 800.0),
                 extra=lambda ds, echo, k: (setattr(ds, "SeriesDescription", "IR set"), setattr(ds, "EchoNumbers", 1)))
    second = dicom.read_series(tmp_path / "ir")[1]
    out = save_volume(tmp_path / "flair.dcm", second.data, like=second, te_ms=120, tr_ms=9000,
                      extra=acquisition_sidecar("inversion_recovery", 2500))
    assert _one_file(out).SeriesDescription == "synthetic TE 120 TR 9000 TI 2500 from IR set TI 800"


def test_slices_thinner_than_their_spacing_keep_their_thickness(tmp_path):
    def thinner(ds, echo, k):
        ds.SliceThickness, ds.SpacingBetweenSlices = 2.5, 3.0  # a 0.5 mm gap between 2.5 mm slices

    volume, _ = _source(tmp_path, extra=thinner)
    out = save_volume(tmp_path / "gap.dcm", volume.data, like=volume, te_ms=100, tr_ms=4000, model="physics")
    ds = _one_file(out)
    assert (float(ds.SliceThickness), float(ds.SpacingBetweenSlices)) == (2.5, 3.0)
    nifti = tmp_path / "n.nii.gz"  # no source series: the spacing is all there is to say
    nib.save(nib.Nifti1Image(ramp(4, 12, 10).transpose(2, 1, 0), np.diag([1.0, 1.0, 4.0, 1.0])), nifti)
    volume = io.load_volume(nifti)
    ds = _one_file(save_volume(tmp_path / "n.dcm", volume.data, like=volume, te_ms=100, tr_ms=4000))
    assert float(ds.SliceThickness) == float(ds.SpacingBetweenSlices) == 4.0


def _assert_same_voxels_at_same_places(got, values, affine, atol):
    """Every voxel of the series read back (``got``) holds the value the NIfTI ``values``
    hold at its place (``affine``): the same grid, its axes in any order or direction."""
    read = to_original(got, got.data)
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in read.shape], indexing="ij"), -1).reshape(-1, 3)
    there = (np.linalg.inv(affine) @ got.affine @ np.c_[ijk, np.ones(len(ijk))].T)[:3].T
    np.testing.assert_allclose(there, np.round(there), atol=1e-3)  # on the NIfTI's own voxels
    np.testing.assert_allclose(read.reshape(-1), values[tuple(np.round(there).astype(int).T)], atol=atol)


@pytest.mark.parametrize("plane, affine", [
    ("axial", np.diag([1.0, 1.0, 3.0, 1.0])),  # RAS: a series of it would show the head upside down
    ("coronal", np.array([[-1.0, 0, 0, 0], [0, 0, 3.0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1]])),
])
def test_a_nifti_input_is_written_in_the_order_scanners_write(tmp_path, plane, affine):
    values = np.random.default_rng(2).uniform(0, 900, (12, 10, 4)).astype(np.float32)
    nib.save(nib.Nifti1Image(values, affine), tmp_path / "scan.nii.gz")
    volume = io.load_volume(tmp_path / "scan.nii.gz")
    out = save_volume(tmp_path / "pred.dcm", volume.data, like=volume, te_ms=15, tr_ms=500)
    ds = _one_file(out)
    expected = {"axial": [1, 0, 0, 0, 1, 0], "coronal": [1, 0, 0, 0, 0, -1]}[plane]
    assert [round(float(v)) for v in ds.ImageOrientationPatient] == expected  # anterior or superior at the top
    _assert_same_voxels_at_same_places(dicom.read_series(out)[0], values, affine, float(ds.RescaleSlope) / 2 + 1e-4)


def test_a_second_run_into_the_same_folder_numbers_its_series_past_the_first_runs(tmp_path):
    def numbered(ds, echo, k):
        ds.SeriesNumber = 7

    volume, _ = _source(tmp_path, extra=numbered)
    first = save_volume(tmp_path / "out" / "t2w.dcm", volume.data, like=volume, te_ms=100, tr_ms=4000)
    dicom_export._NUMBERS_GIVEN.clear()  # another run: a process of its own
    second = save_volume(tmp_path / "out" / "pd.dcm", volume.data, like=volume, te_ms=15, tr_ms=4000)
    assert _one_file(first).SeriesNumber == 1007 and _one_file(second).SeriesNumber == 1008
    dicom_export._NUMBERS_GIVEN.clear()  # written again by a third run: it keeps its number
    save_volume(first, volume.data * 2, like=volume, te_ms=100, tr_ms=4000, overwrite=True)
    assert _one_file(first).SeriesNumber == 1007


def test_each_derived_image_names_the_source_image_it_was_made_from(tmp_path):
    volume, _ = _source(tmp_path, orientation=oblique(25))
    out = save_volume(tmp_path / "synth.dcm", volume.data, like=volume, te_ms=100, tr_ms=4000)
    by_position = {}
    for file in volume.extra["files"]:
        ds = pydicom.dcmread(file, stop_before_pixels=True)
        by_position[tuple(round(float(v), 3) for v in ds.ImagePositionPatient)] = ds.SOPInstanceUID
    for file in sorted(out.iterdir()):
        ds = pydicom.dcmread(file, stop_before_pixels=True)
        (item,) = ds.SourceImageSequence
        assert item.ReferencedSOPClassUID == dicom_export.MR_IMAGE_STORAGE
        assert item.ReferencedSOPInstanceUID == by_position[tuple(round(float(v), 3) for v in ds.ImagePositionPatient)]

