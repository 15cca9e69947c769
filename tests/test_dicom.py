"""DICOM series: geometry, acquisition parameters, split per acquisition, bad input."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from dicom_helpers import AXIAL, CORONAL, oblique, ramp, ras_affine, write_series
from napari_mr_reparam import dicom, io
from napari_mr_reparam.orientation import file_to_stack, ras_orientation, stack_spacing
from napari_mr_reparam.volume_writing import save_volume

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "real_scans" / "hazen_relaxometry"


def _nifti_of(tmp_path, stack_zyx, affine) -> io.Volume:
    """The package's reading of a NIfTI holding the same voxels (column, row, slice order)."""
    path = tmp_path / "same.nii.gz"
    nib.save(nib.Nifti1Image(np.ascontiguousarray(stack_zyx.transpose(2, 1, 0)), affine), str(path))
    return io.load_volume(path)


@pytest.mark.parametrize("orientation", [AXIAL, oblique(20)], ids=["axial", "oblique"])
def test_geometry_matches_a_nifti_of_the_same_data(tmp_path, orientation):
    data = ramp()
    write_series(tmp_path / "s", [data], orientation=orientation)
    [vol] = dicom.read_series(tmp_path / "s")
    expected = ras_affine(orientation, (-30.0, -40.0, 10.0), 1.5, 1.25, 3.0)
    np.testing.assert_allclose(vol.affine, expected, atol=1e-4)
    assert vol.spacing == pytest.approx((3.0, 1.5, 1.25))
    np.testing.assert_array_equal(vol.data, data)  # slices inferior -> superior, as acquired
    same = _nifti_of(tmp_path, data, expected)
    np.testing.assert_array_equal(vol.data, same.data)
    assert vol.spacing == pytest.approx(same.spacing)


def test_written_nifti_keeps_the_scan_in_place(tmp_path):
    data = ramp()
    write_series(tmp_path / "s", [data], orientation=CORONAL)
    [vol] = dicom.read_series(tmp_path / "s")
    np.testing.assert_array_equal(vol.data, data)  # coronal slices kept as acquired
    out = save_volume(tmp_path / "out.nii.gz", vol.data * 2, like=vol)
    img = nib.load(str(out))
    np.testing.assert_allclose(img.affine, vol.affine, atol=1e-4)
    expected = ras_affine(CORONAL, (-30.0, -40.0, 10.0), 1.5, 1.25, 3.0)
    np.testing.assert_allclose(img.affine, expected, atol=1e-4)
    # voxel (column i, row j, slice k) of the file is the DICOM pixel (row j, column i) of slice k
    np.testing.assert_array_equal(np.asarray(img.dataobj), (data * 2).transpose(2, 1, 0))


def test_parameters_and_split_per_echo(tmp_path):
    echoes = [ramp(), ramp() // 2]
    write_series(tmp_path / "s", echoes, te=(80.0, 10.0), tr=3000.0)
    vols = dicom.read_series(tmp_path / "s")
    assert [v.te_ms for v in vols] == [10.0, 80.0]  # sorted by TE
    assert all(v.tr_ms == 3000.0 and v.ti_ms is None and v.flip_deg == 90.0 for v in vols)
    np.testing.assert_array_equal(vols[0].data, echoes[1])
    np.testing.assert_array_equal(vols[1].data, echoes[0])
    extra = vols[0].extra
    assert extra["sequence"] == "spin_echo" and extra["field_strength_t"] == 3.0
    assert extra["manufacturer"] == "ACME" and len(extra["files"]) == 4
    assert dicom.describe(vols[0]) == "TE 10 / TR 3000 ms"


def test_files_without_the_preamble_are_found_and_read(tmp_path):
    """Older exports write the data set alone: no 128-byte preamble, no file meta, no .dcm."""
    import pydicom

    paths = write_series(tmp_path / "s", [ramp(), ramp() // 2], te=(10.0, 80.0), tr=3000.0)
    for path in paths:
        ds = pydicom.dcmread(path)
        del ds.file_meta
        ds.preamble = None
        pydicom.dcmwrite(str(path), ds, enforce_file_format=False, implicit_vr=True, little_endian=True)
    (tmp_path / "s" / "notes").write_bytes(b"\x08\x00 not a DICOM file at all")
    assert dicom.looks_like_series(tmp_path / "s") and not dicom.is_dicom(tmp_path / "s" / "notes")
    vols = dicom.read_series(tmp_path / "s")
    assert [v.te_ms for v in vols] == [10.0, 80.0]
    np.testing.assert_array_equal(vols[0].data, ramp())


def test_inversion_recovery_split_and_sorted_by_ti(tmp_path):
    vols_in = [ramp(2, 8, 8), ramp(2, 8, 8) // 2, ramp(2, 8, 8) // 4]
    write_series(tmp_path / "ir", vols_in, te=(12.0, 12.0, 12.0), ti=(800.0, 50.0, 200.0),
                 tr=4000.0, scanning=["SE", "IR"])
    vols = dicom.read_series(tmp_path / "ir")
    assert [v.ti_ms for v in vols] == [50.0, 200.0, 800.0]
    assert {v.extra["sequence"] for v in vols} == {"inversion_recovery"}
    np.testing.assert_array_equal(vols[0].data, vols_in[1])
    assert dicom.describe(vols[0]) == "TE 12 / TR 4000 ms, TI 50 ms"


@pytest.mark.parametrize("codes, ti, expected", [
    ("SE", None, "spin_echo"), (["SE", "IR"], 300.0, "inversion_recovery"),
    ("IR", None, "inversion_recovery"), ("SE", 300.0, "inversion_recovery"),
    ("GR", None, "gradient_echo"), (["GR", "IR"], 900.0, "mprage"), ("GR", 450.0, "mprage"),
    (("GR", ["SK", "MP"]), None, "mprage"), ("EP", None, None)])
def test_sequence_names(codes, ti, expected):
    from pydicom.dataset import Dataset

    ds = Dataset()
    codes, variant = codes if isinstance(codes, tuple) else (codes, None)
    ds.ScanningSequence = codes
    if variant is not None:
        ds.SequenceVariant = variant
    if ti is not None:
        ds.InversionTime = ti
    assert dicom.sequence_name(ds) == expected


@pytest.mark.parametrize("codes, variant, ti", [
    (["GR", "IR"], ["SK", "SP", "MP"], 900.0), ("GR", ["SS", "SK", "MP"], 450.0), (["SE", "IR"], ["SK", "SP", "MP"], 2500.0),
    ("GR", "SP", None), ("SE", None, None), ("SE", None, 150.0), ("EP", None, None)])
def test_a_scan_reads_as_one_sequence_from_its_dicom_tags_and_its_dcm2niix_sidecar(codes, variant, ti):
    from pydicom.dataset import Dataset

    from napari_mr_reparam.sidecars import sidecar_sequence

    ds, meta = Dataset(), {}
    ds.ScanningSequence = codes
    meta["ScanningSequence"] = "_".join(codes) if isinstance(codes, list) else codes  # as dcm2niix writes it
    if variant is not None:
        ds.SequenceVariant = variant
        meta["SequenceVariant"] = "_".join(variant) if isinstance(variant, list) else variant
    if ti is not None:
        ds.InversionTime, meta["InversionTime"] = ti, ti / 1000
    assert dicom.sequence_name(ds) == sidecar_sequence(meta)
    if variant is not None and "MP" in variant and "GR" in codes:  # MPRAGE, GE's BRAVO
        assert sidecar_sequence(meta) == "mprage"


@pytest.mark.parametrize("tr, ti, expected", [(2300.0, 900.0, (2300.0, None)), (8.2, 450.0, (None, 8.2)),
                                              (8.2, None, (None, 8.2)), (None, 900.0, (None, None))])
def test_mprage_cycle_from_the_repetition_time_tag(tr, ti, expected):
    assert dicom.mprage_cycle(tr, ti) == expected


def test_mprage_series_siemens_and_ge_conventions(tmp_path):
    """Siemens store the inversion-to-inversion time as RepetitionTime; GE and Philips the
    readout's pulse spacing, which must not be taken for the MPRAGE TR."""
    write_series(tmp_path / "siemens", [ramp(2, 8, 8)], te=(3.0,), tr=2300.0, ti=(900.0,), flip=9.0,
                 scanning=["GR", "IR"], variant=["SK", "SP", "MP"])
    [vol] = dicom.read_series(tmp_path / "siemens")
    assert (vol.sequence, vol.tr_ms, vol.ti_ms, vol.flip_deg) == ("mprage", 2300.0, 900.0, 9.0)
    assert vol.extra["readout_tr_ms"] is None and dicom.unknown_cycle(vol) is None
    write_series(tmp_path / "ge", [ramp(2, 8, 8)], te=(3.2,), tr=8.2, ti=(450.0,), flip=12.0,
                 scanning="GR", variant=["SS", "SK"])
    [vol] = dicom.read_series(tmp_path / "ge")
    assert (vol.sequence, vol.tr_ms, vol.extra["readout_tr_ms"]) == ("mprage", None, 8.2)
    assert "readout's pulse spacing" in dicom.unknown_cycle(vol) and "--input-tr MS" in dicom.unknown_cycle(vol)
    with pytest.raises(ValueError, match=r"RepetitionTime tag \(8.2 ms\) is the readout's pulse spacing"):
        dicom.read_series(tmp_path / "ge", require=("RepetitionTime",))
    # a Siemens series whose RepetitionTime was written in seconds: not a readout's spacing, a hint
    write_series(tmp_path / "seconds", [ramp(2, 8, 8)], te=(3.0,), tr=2.3, ti=(900.0,), flip=9.0,
                 scanning=["GR", "IR"], variant=["SK", "SP", "MP"],
                 extra=lambda ds, echo, k: setattr(ds, "Manufacturer", "SIEMENS"))
    [vol] = dicom.read_series(tmp_path / "seconds")
    assert dicom.unknown_cycle(vol) == (
        "its RepetitionTime tag (2.3) can only be seconds: Siemens store the time from one inversion to the next "
        "there; did you mean 2300 ms? give it with --input-tr 2300 (Input TR in the widget)")


def test_a_list_of_files_and_other_files_in_the_folder(tmp_path):
    files = write_series(tmp_path / "s", [ramp(3, 8, 8)])
    (tmp_path / "s" / "notes.txt").write_text("not an image")
    [from_folder] = dicom.read_series(tmp_path / "s")
    [from_list] = dicom.read_series([str(f) for f in files])
    np.testing.assert_array_equal(from_folder.data, from_list.data)


def test_philips_floating_point_values(tmp_path):
    """Philips' private scale slope: values are DV / (RescaleSlope x scale slope)."""
    def philips(ds, echo, k):
        ds.Manufacturer = "Philips Medical Systems"
        ds.RescaleSlope, ds.RescaleIntercept = (2.0, 4.0)[echo], 0
        ds.add_new((0x2005, 0x100E), "FL", (0.5, 0.25)[echo])

    write_series(tmp_path / "p", [ramp(2, 8, 8), ramp(2, 8, 8)], te=(10.0, 20.0), extra=philips)
    a, b = dicom.read_series(tmp_path / "p")
    np.testing.assert_allclose(a.data, ramp(2, 8, 8) / 0.5)  # 2 x PV / (2 x 0.5)
    np.testing.assert_allclose(b.data, ramp(2, 8, 8) / 0.25)


def test_clipped_voxels_are_marked(tmp_path):
    """Stored values at the top of a 12-bit range are clipped: ``extra["saturated"]``."""
    def twelve_bits(ds, echo, k):
        ds.BitsStored, ds.HighBit = 12, 11

    data = ramp(2, 8, 8)  # below 4095
    data[1, 2, 3] = 4095
    write_series(tmp_path / "c", [data], extra=twelve_bits)
    [vol] = dicom.read_series(tmp_path / "c")
    assert vol.extra["saturated"].shape == vol.data.shape
    assert vol.extra["saturated"][1, 2, 3] and vol.extra["saturated"].sum() == 1
    write_series(tmp_path / "n", [ramp(2, 8, 8)])
    assert "saturated" not in dicom.read_series(tmp_path / "n")[0].extra


def test_a_series_is_named_by_its_folder_and_a_file_given_alone_by_its_own_name(tmp_path):
    [first, *_] = write_series(tmp_path / "t2_tse", [ramp(3, 8, 8)])
    assert dicom.read_series(tmp_path / "t2_tse")[0].extra["series"] == "t2_tse"
    assert dicom.read_series(first)[0].extra["series"] == first.name  # IM0000, not its folder


def test_single_slice_takes_its_thickness(tmp_path):
    write_series(tmp_path / "one", [ramp(1, 8, 8)], step_mm=5.0)
    [vol] = dicom.read_series(tmp_path / "one")
    assert vol.data.shape == (1, 8, 8) and vol.spacing[0] == 5.0
    assert abs(np.linalg.det(vol.affine[:3, :3])) == pytest.approx(5.0 * 1.5 * 1.25)


# ----------------------------------------------------------------------------- bad input


def _nothing_written(folder: Path, before: set) -> None:
    assert set(folder.rglob("*")) == before


def test_no_dicom_in_the_folder(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    with pytest.raises(ValueError, match=f"^{tmp_path.name}: no DICOM files found$"):
        dicom.read_series(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        dicom.read_series(tmp_path / "missing")
    with pytest.raises(ValueError, match="^no DICOM files given$"):
        dicom.read_series([])


@pytest.mark.parametrize("tag, value, word", [
    ("PixelSpacing", [2.0, 2.0], "PixelSpacing"),
    ("ImageOrientationPatient", [1.0, 0.0, 0.0, 0.0, 0.0, -1.0], "ImageOrientationPatient"),
    ("Rows", None, "Rows")])
def test_mixed_geometry_in_one_acquisition(tmp_path, tag, value, word):
    def spoil(ds, echo, k):
        if k == 2:
            if tag == "Rows":
                ds.Rows, ds.PixelData = 8, np.zeros((8, 16), np.uint16).tobytes()
            else:
                setattr(ds, tag, value)

    write_series(tmp_path / "s", [ramp()], extra=spoil)
    before = set(tmp_path.rglob("*"))
    with pytest.raises(ValueError, match=rf"^s \(TE 20 / TR 2000 ms\): the images do not form one "
                                         rf"volume \(.*{word}.*\)$"):
        dicom.read_series(tmp_path / "s")
    _nothing_written(tmp_path, before)


def test_missing_slice_and_repeated_slice_say_where(tmp_path, capsys):
    files = write_series(tmp_path / "gap", [ramp(8, 8, 8)], shuffle=False)  # slices at z 10, 13, ... 31 mm
    files[2].unlink()
    with pytest.raises(ValueError, match=r"do not form one volume \(a slice is missing between IM0001 and IM0003 "
                                         r"\(ImagePositionPatient z 13 and 19 mm\): a step of 6 mm where the others "
                                         r"are 3 mm\)$"):
        dicom.read_series(tmp_path / "gap")
    assert capsys.readouterr().err == ""  # dicom-numpy's log of the spacings stays off the terminal
    files[5].unlink()
    with pytest.raises(ValueError, match=r"\(a slice is missing between IM0001 and IM0003 .*; 1 more uneven step\)$"):
        dicom.read_series(tmp_path / "gap")

    def same_place(ds, echo, k):
        ds.ImagePositionPatient = [-30.0, -40.0, 10.0]

    write_series(tmp_path / "dup", [ramp(2, 8, 8)], extra=same_place)
    with pytest.raises(ValueError, match=r"\(two images at the same slice position: IM000[01] and IM000[01]\)$"):
        dicom.read_series(tmp_path / "dup")


def test_a_copy_of_a_file_is_left_out_with_a_notice(tmp_path):
    """A file copied beside itself (same SOPInstanceUID) is the same image: read once."""
    import shutil

    files = write_series(tmp_path / "s", [ramp()], shuffle=False)
    shutil.copy(files[1], tmp_path / "s" / "IM0001 (1)")
    left_out = []
    [vol] = dicom.read_series(tmp_path / "s", left_out=left_out)
    np.testing.assert_array_equal(vol.data, ramp())
    assert left_out == ["s: IM0001 (1) left out: a copy of IM0001 (same SOPInstanceUID)"]
    [again] = dicom.read_series(tmp_path / "s")  # strict reading too
    assert len(again.extra["files"]) == 4


@pytest.mark.parametrize("tag, option", [("EchoTime", "--input-te"), ("RepetitionTime", "--input-tr")])
def test_missing_times_name_the_tag_and_the_option(tmp_path, tag, option):
    write_series(tmp_path / "s", [ramp(2, 8, 8)], drop=(tag,))
    [vol] = dicom.read_series(tmp_path / "s")  # readable without them ...
    assert getattr(vol, {"EchoTime": "te_ms", "RepetitionTime": "tr_ms"}[tag]) is None
    with pytest.raises(ValueError, match=rf"^s: 1 of 1 acquisitions have no {tag} \(0018,008.\) "
                                         rf"tag; give the value with {option} MS"):
        dicom.read_series(tmp_path / "s", require=("EchoTime", "RepetitionTime"))


def test_missing_position_is_named(tmp_path):
    write_series(tmp_path / "s", [ramp(2, 8, 8)], drop=("ImagePositionPatient",))
    with pytest.raises(ValueError, match="no ImagePositionPatient tag"):
        dicom.read_series(tmp_path / "s")


def test_truncated_and_corrupt_files_are_named(tmp_path):
    files = write_series(tmp_path / "s", [ramp(3, 16, 16)])
    files[1].write_bytes(files[1].read_bytes()[:-200])
    with pytest.raises(ValueError, match=rf"^{files[1].name}: not a readable DICOM file"):
        dicom.read_series(tmp_path / "s")
    files[1].write_bytes(files[1].read_bytes()[:300])  # cut inside the header
    with pytest.raises(ValueError, match=rf"^{files[1].name}: not a readable DICOM file"):
        dicom.read_series(tmp_path / "s")
    files[1].write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 40)
    with pytest.raises(ValueError, match=rf"^{files[1].name}: not a readable DICOM file"):
        dicom.read_series(tmp_path / "s")


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm"])
def test_compressed_pixel_data_reads_as_the_uncompressed_image(tmp_path, name):
    """pydicom's own MR image, stored as archives and PACS export it: RLE, JPEG 2000 and
    JPEG-LS lossless (its decoders are dependencies)."""
    import shutil

    from pydicom.data import get_testdata_file

    def read(file):
        folder = tmp_path / Path(file).stem
        folder.mkdir()
        shutil.copy(get_testdata_file(file), folder)
        (volume,) = dicom.read_series(folder)
        return volume

    plain, packed = read("MR_small.dcm"), read(name)
    assert plain.data.shape == (1, 64, 64) and np.ptp(plain.data) > 0
    np.testing.assert_array_equal(packed.data, plain.data)
    np.testing.assert_allclose(packed.affine, plain.affine)


def test_pixel_data_no_decoder_reads_is_one_line_with_the_reason(tmp_path):
    import shutil

    from pydicom.data import get_testdata_file

    shutil.copy(get_testdata_file("JPEG-lossy.dcm"), tmp_path)  # a 12-bit JPEG whose scan is malformed
    with pytest.raises(ValueError, match=r"^JPEG-lossy.dcm: not a readable DICOM file \(Unable to decode") as caught:
        dicom.read_series(tmp_path)
    message = str(caught.value)
    reason = message.split("plugins:", 1)[1].strip(" )")
    assert "\n" not in message and len(reason) > 10  # a decoder's own reason, on the line


def test_a_listed_file_that_is_not_dicom(tmp_path):
    (tmp_path / "scan.nii").write_bytes(b"\0" * 400)
    with pytest.raises(ValueError, match="scan.nii: not a DICOM file"):
        dicom.read_series([tmp_path / "scan.nii"])


# ----------------------------------------------------------------------------- real scans


def _real(sub: str) -> Path:
    path = REAL / sub
    if not path.is_dir():
        pytest.skip(f"real phantom scans not found at {path}: these tests need ../shared/")
    return path


def test_real_philips_multi_echo_series():
    vols = dicom.read_series(_real("T2/site4_philips/plate4"))
    assert [v.te_ms for v in vols] == [5.0 * (i + 1) for i in range(32)]
    assert {v.tr_ms for v in vols} == {2000.0}
    assert {v.data.shape for v in vols} == {(1, 192, 192)}
    assert vols[0].spacing == pytest.approx((5.0, 1.3020834, 1.3020834))
    first = vols[0].extra
    assert (first["sequence"], first["field_strength_t"]) == ("spin_echo", 1.5)
    assert first["manufacturer"].startswith("Philips")
    # the signal decays along the echo train
    assert vols[0].data.mean() > vols[15].data.mean() > vols[31].data.mean() > 0


def test_real_ge_inversion_recovery_series():
    vols = dicom.read_series(_real("T1/site3_ge/plate5"))
    assert [v.ti_ms for v in vols] == [50.0, 100.0, 200.0, 400.0, 600.0, 800.0]
    assert {(v.te_ms, v.tr_ms) for v in vols} == {(10.0, 1000.0)}
    assert {v.extra["sequence"] for v in vols} == {"inversion_recovery"}
    assert vols[0].extra["manufacturer"].startswith("GE")


def test_real_siemens_inversion_recovery_series_tr_grows_with_ti():
    vols = dicom.read_series(_real("T1/site1_20200218/plate5"))
    assert [v.ti_ms for v in vols] == [50.0, 100.0, 200.0, 400.0, 600.0, 800.0]
    assert {v.te_ms for v in vols} == {12.0}
    assert vols[0].tr_ms == 1000.0 and vols[-1].tr_ms == 2460.0


TI_SET = [50.0, 100.0, 200.0, 400.0, 600.0, 800.0]
# The README of ../shared/real_scans: series -> (TEs, TRs, TIs, field strength T)
README_TABLE = {
    "T1/site1_20200218/plate5": ([12.0], [1000.0, 1000.0, 1000.0, 1260.0, 1860.0, 2460.0], TI_SET, 1.5),
    "T1/site2_20180925/plate5": ([12.0], [1000.0, 1000.0, 1000.0, 1260.0, 1860.0, 2460.0], TI_SET, 1.5),
    "T1/site3_ge/plate4": ([10.0], [1000.0], TI_SET, 1.5),
    "T1/site4_philips/plate5": ([10.0], [1000.0], TI_SET, 1.5),
    "T1/site5_philips_3T/plate4": ([10.0], [1000.0], TI_SET, 3.0),
    "T2/site1_20200218/plate4": ([round(12.7 * (i + 1), 3) for i in range(32)], [2000.0], [None], 1.5),
    "T2/site3_ge/plate5": ([round(9.64 * (i + 1), 3) for i in range(8)], [2000.0], [None], 1.5),
    "T2/site5_philips_3T/plate5": ([8.0 * (i + 1) for i in range(32)], [2300.0], [None], 3.0),
}


@pytest.mark.parametrize("series", sorted(README_TABLE))
def test_real_series_parameters_match_the_table(series):
    tes, trs, tis, tesla = README_TABLE[series]
    vols = dicom.read_series(_real(series))
    assert len(vols) == max(len(tes), len(tis))
    assert sorted({v.te_ms for v in vols}) == pytest.approx(tes)
    assert [v.ti_ms for v in vols] == (tis if tis != [None] else [None] * len(vols))
    assert [v.tr_ms for v in vols] == pytest.approx(trs * (len(vols) // len(trs)))
    assert {v.extra["field_strength_t"] for v in vols} == {tesla}
    assert {v.extra["sequence"] for v in vols} == {"inversion_recovery" if series.startswith("T1") else "spin_echo"}


@pytest.mark.parametrize("series", ["T1/site3_ge/plate5", "T1/site4_philips/plate5", "T1/site5_philips_3T/plate5"])
def test_real_inversion_recovery_signal_falls_to_its_null_then_recovers(series):
    """Magnitude IR at TR 1000 ms: in the brightest spheres the signal falls from TI 50 to a
    null near TI 400 and recovers. Philips images rescale each TI differently; only their
    floating-point values (RescaleSlope x private scale slope undone) show this curve."""
    vols = dicom.read_series(_real(series))
    bright = vols[-1].data > np.percentile(vols[-1].data, 90)
    signal = [float(np.median(v.data[bright])) for v in vols]  # TI 50 ... 800
    null = int(np.argmin(signal))
    assert vols[null].ti_ms == 400.0
    assert all(np.diff(signal[: null + 1]) < 0) and all(np.diff(signal[null:]) > 0)


def test_echoes_without_echo_time_stay_apart_by_their_echo_numbers(tmp_path):
    # a multi-echo series whose EchoTime was removed (anonymized, say): its echoes share
    # every slice position, so they must not be merged into one impossible volume
    write_series(tmp_path / "s", [ramp(2, 8, 8), ramp(2, 8, 8) // 2, ramp(2, 8, 8) // 4],
                 te=(10.0, 20.0, 30.0), drop=("EchoTime",))
    volumes = dicom.read_series(tmp_path / "s")
    assert len(volumes) == 3 and all(v.te_ms is None for v in volumes)
    assert [float(v.data.max()) for v in volumes] == sorted((float(v.data.max()) for v in volumes), reverse=True)
    assert [dicom.describe(v) for v in volumes] == [f"TE ? (echo {n}) / TR 2000 ms" for n in (1, 2, 3)]
    with pytest.raises(ValueError, match="3 of 3 acquisitions have no EchoTime"):
        dicom.read_series(tmp_path / "s", require=("EchoTime",))


@pytest.mark.parametrize("acquisition, voxel", [("3D", (1.5, 1.25, 3.0)), ("", (1.0, 1.0, 1.1))],
                         ids=["3D tag", "isotropic voxels"])
def test_a_volume_acquired_in_another_plane_reads_as_axial_slices(tmp_path, acquisition, voxel):
    """A 3-D (or near-isotropic) coronal series is laid out as a NIfTI of it is: axial
    slices, inferior to superior; its affine and a written NIfTI keep it in place."""
    row_mm, col_mm, step_mm = voxel
    data = ramp(n=16, h=12, w=10)

    def tag(ds, echo, k):
        if acquisition:
            ds.MRAcquisitionType = acquisition
    write_series(tmp_path / "s", [data], orientation=CORONAL, row_mm=row_mm, col_mm=col_mm, step_mm=step_mm,
                 extra=tag)
    [vol] = dicom.read_series(tmp_path / "s")
    expected = ras_affine(CORONAL, (-30.0, -40.0, 10.0), row_mm, col_mm, step_mm)
    np.testing.assert_allclose(vol.affine, expected, atol=1e-4)
    to_ras = ras_orientation(expected)  # the axial reading (a NIfTI of thick slices keeps them coronal)
    np.testing.assert_array_equal(vol.data, file_to_stack(data.transpose(2, 1, 0), to_ras))
    assert vol.data.shape == (12, 16, 10)
    assert vol.spacing == pytest.approx(stack_spacing((col_mm, row_mm, step_mm), to_ras))
    out = save_volume(tmp_path / "out.nii.gz", vol.data * 2, like=vol)
    img = nib.load(str(out))
    np.testing.assert_allclose(img.affine, expected, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(img.dataobj), (data * 2).transpose(2, 1, 0))
    # a 2-D acquisition of those voxels keeps its coronal slices
    write_series(tmp_path / "t", [data], orientation=CORONAL, row_mm=row_mm, col_mm=col_mm, step_mm=step_mm,
                 extra=lambda ds, e, k: setattr(ds, "MRAcquisitionType", "2D"))
    [flat] = dicom.read_series(tmp_path / "t")
    np.testing.assert_array_equal(flat.data, data)


def test_an_enhanced_multi_frame_image_reads_as_its_classic_series(tmp_path):
    """One enhanced MR file of two echoes (frames shuffled, position and echo time per frame,
    the rest shared) gives the volumes the same series as classic files gives."""
    from dicom_helpers import write_enhanced

    echoes = [ramp(), ramp() // 2]
    write_series(tmp_path / "classic", echoes, te=(80.0, 10.0), tr=3000.0, orientation=oblique(20))
    write_enhanced(tmp_path / "enhanced" / "IM0001", echoes, te=(80.0, 10.0), tr=3000.0, orientation=oblique(20))
    classic, enhanced = dicom.read_series(tmp_path / "classic"), dicom.read_series(tmp_path / "enhanced")
    assert [v.te_ms for v in enhanced] == [10.0, 80.0] and all(v.tr_ms == 3000.0 for v in enhanced)
    for a, b in zip(classic, enhanced):
        np.testing.assert_array_equal(a.data, b.data)
        np.testing.assert_allclose(a.affine, b.affine, atol=1e-4)
        assert a.spacing == pytest.approx(b.spacing) and b.extra["sequence"] == "spin_echo"
    from napari_mr_reparam._reader import napari_get_reader

    layers = napari_get_reader(str(tmp_path / "enhanced"))(str(tmp_path / "enhanced"))  # as napari opens it
    assert [kwargs["metadata"]["te_ms"] for _, kwargs, _ in layers] == [10.0, 80.0]


def test_an_enhanced_inversion_recovery_image_splits_per_inversion_time(tmp_path):
    from dicom_helpers import write_enhanced

    images = [ramp(), ramp() * 2]
    write_enhanced(tmp_path / "ir" / "IM0001", images, te=(12.0, 12.0), tr=4000.0, ti=(400.0, 100.0),
                   inversion="YES")
    vols = dicom.read_series(tmp_path / "ir")
    assert [v.ti_ms for v in vols] == [100.0, 400.0]
    assert all(v.extra["sequence"] == "inversion_recovery" for v in vols)
    np.testing.assert_array_equal(vols[0].data, images[1])
    # Philips: each frame's private scale slope (in its private group) makes values comparable
    write_enhanced(tmp_path / "philips" / "IM0001", images, te=(12.0, 12.0), tr=4000.0, ti=(400.0, 100.0),
                   inversion="YES", philips_scale=(2.0, 8.0))
    vols = dicom.read_series(tmp_path / "philips")
    np.testing.assert_allclose(vols[0].data, images[1] / 8.0)
    np.testing.assert_allclose(vols[1].data, images[0] / 2.0)
    assert [v.extra["display_scale"] for v in vols] == [8.0, 2.0]  # back to what a viewer displays


def test_the_display_scale_is_the_slices_common_factor():
    """One factor takes a volume back to its display values: its slices' (their median where
    they differ); 1 for a series read as displayed."""
    assert dicom.display_scale(np.array([0.125, 0.125], np.float32)) == 0.125
    assert dicom.display_scale(np.array([0.5, 0.5, 2.0], np.float32)) == 0.5
    assert dicom.display_scale(np.ones(3, np.float32)) == 1.0


def test_an_enhanced_image_without_per_frame_groups_gives_one_line(tmp_path):
    import pydicom

    from dicom_helpers import write_enhanced

    path = write_enhanced(tmp_path / "bad" / "IM0001", [ramp()])
    ds = pydicom.dcmread(str(path))
    del ds.PerFrameFunctionalGroupsSequence
    ds.save_as(str(path))
    with pytest.raises(ValueError, match=r"^IM0001: a multi-frame image without a functional group per frame"):
        dicom.read_series(tmp_path / "bad")


def test_a_study_folder_leaves_out_a_series_that_forms_no_volume_where_asked(tmp_path):
    """A dual echo and a three-plane localizer in one folder: strict reading refuses the
    folder; given a list, the localizer is left out, named, and the dual echo reads."""
    from dicom_helpers import AXIAL, CORONAL

    from napari_mr_reparam._reader import read_dicom_layers

    write_series(tmp_path / "study" / "dual", [ramp(), ramp() // 2], te=(80.0, 10.0), tr=3000.0)
    for i, orientation in enumerate((AXIAL, CORONAL, oblique(90))):  # one image per plane, one series
        write_series(tmp_path / "study" / f"loc{i}", [ramp(1)], orientation=orientation, series_uid="1.2.3.4",
                     extra=lambda ds, e, k: (setattr(ds, "SeriesDescription", "localizer"),
                                             setattr(ds, "SeriesNumber", 1)))
    with pytest.raises(ValueError, match="do not form one volume"):
        dicom.read_series(tmp_path / "study")
    left_out = []
    vols = dicom.read_series(tmp_path / "study", left_out=left_out)
    assert [v.te_ms for v in vols] == [10.0, 80.0]
    assert len(left_out) == 1 and left_out[0].startswith("study: series 1 'localizer' left out: ")
    with pytest.warns(UserWarning, match="series 1 'localizer' left out"):
        layers = read_dicom_layers(str(tmp_path / "study"))
    assert len(layers) == 2
    # files of that one series alone stay refused: nothing else reads
    localizer = [*sorted((tmp_path / "study" / "loc0").iterdir()), *sorted((tmp_path / "study" / "loc1").iterdir())]
    with pytest.raises(ValueError, match="do not form one volume"):
        dicom.read_series(localizer, left_out=[])


def _of_series(number: int, study: str):
    """``write_series``' ``extra`` that names the series' number and study."""
    return lambda ds, echo, k: (setattr(ds, "SeriesNumber", number), setattr(ds, "StudyInstanceUID", study))


def test_unrelated_series_in_one_folder_are_refused_in_one_line(tmp_path):
    """Files of two series that are not one scan's acquisitions (other study, other grid)
    are not read as acquisitions of one series: one line lists them."""
    write_series(tmp_path / "mixed", [ramp(2, 8, 8)], te=(20.0,), extra=_of_series(3, "1.2.1"))
    write_series(tmp_path / "mixed" / "b", [ramp(3, 8, 8)], te=(90.0,), step_mm=5.0, extra=_of_series(7, "1.2.2"))
    for left_out in (None, []):
        with pytest.raises(ValueError, match=r"^mixed: the files hold 2 DICOM series, not one scan's acquisitions "
                                             r"\(their studies or slice grids differ\): series 3 'test series' "
                                             r"\(2 files\), series 7 'test series' \(3 files\); give the folder "
                                             r"or files of one series$"):
            dicom.read_series(tmp_path / "mixed", left_out=left_out)
    assert len(dicom.read_series(tmp_path / "mixed" / "b")) == 1  # one series' folder reads


def test_series_of_one_number_and_description_are_told_apart_by_uid_and_file(tmp_path):
    write_series(tmp_path / "same", [ramp(2, 8, 8)], series_uid="1.2.3.111", extra=_of_series(38, "1.2.1"))
    write_series(tmp_path / "same" / "b", [ramp(3, 8, 8)], step_mm=5.0, series_uid="1.2.3.222",
                 extra=_of_series(38, "1.2.2"))
    with pytest.raises(ValueError, match=r": series 38 'test series' \(UID ending 2\.3\.111, first file same/IM0000\) "
                                         r"\(2 files\), series 38 'test series' \(UID ending 2\.3\.222, first file "
                                         r"b/IM0000\) \(3 files\);"):
        dicom.read_series(tmp_path / "same")


def test_an_image_without_a_tag_its_series_states_is_named(tmp_path):
    def no_te(ds, echo, k):
        if k == 1:
            del ds.EchoTime

    write_series(tmp_path / "s", [ramp()], extra=no_te)
    with pytest.raises(ValueError, match=r"^s: IM\d{4} of series 'test series' states no EchoTime, unlike the series' "
                                         r"other images$"):
        dicom.read_series(tmp_path / "s")


def test_inversion_times_exported_one_series_each_read_as_one_series(tmp_path):
    """An inversion-recovery set exported one series per TI (as the hazen T1 sets are): one
    study, one grid; read as the acquisitions of one series."""
    for i, ti in enumerate((100.0, 800.0)):
        write_series(tmp_path / "ir" / f"ti{ti:g}", [ramp(2, 8, 8)], te=(10.0,), ti=(ti,),
                     extra=_of_series(i + 1, "1.2.1"))
    vols = dicom.read_series(tmp_path / "ir")
    assert [v.ti_ms for v in vols] == [100.0, 800.0] and len({v.extra["series_uid"] for v in vols}) == 2


def test_real_valued_images_are_read_as_their_magnitude_and_phase_images_are_refused(tmp_path):
    signed = ramp(n=2) - 1600  # an inversion recovery's real image: negative where not yet recovered

    def stored_signed(ds, echo, k):  # uint16 pixels with an intercept, as scanners store a signed image
        ds.ImageType = ["ORIGINAL", "PRIMARY", "R", "NORM"]
        ds.RescaleIntercept, ds.RescaleSlope = -4096, 1

    write_series(tmp_path / "ir", [signed + 4096], ti=(50.0,), scanning="IR", extra=stored_signed)
    notices = []
    (volume,) = dicom.read_series(tmp_path / "ir", left_out=notices)
    assert float(volume.data.min()) >= 0 and np.allclose(np.sort(volume.data.ravel()), np.sort(np.abs(signed).ravel()))
    assert notices == ["ir: real-valued (signed) voxel values; their magnitude is read"]
    assert volume.extra["notices"] == notices

    def phase(ds, echo, k):
        ds.ImageType = ["ORIGINAL", "PRIMARY", "P", "ND"]

    write_series(tmp_path / "phase", [ramp(n=2)], extra=phase)
    with pytest.raises(ValueError, match=r"^phase: a phase image \(ImageType P\); the models read magnitude images: "
                                         r"choose the magnitude series$"):
        dicom.read_series(tmp_path / "phase")


def test_a_monochrome1_image_is_read_as_the_signal_shown(tmp_path):
    image = ramp(n=2)

    def monochrome1(ds, echo, k):  # stored inverted: its lowest value shown white
        ds.PhotometricInterpretation = "MONOCHROME1"

    write_series(tmp_path / "m1", [image.max() + 100 - image], extra=monochrome1)
    notices = []
    (volume,) = dicom.read_series(tmp_path / "m1", left_out=notices)
    np.testing.assert_allclose(volume.data, image - image.min())  # bright stays bright
    assert notices == [f"m1: MONOCHROME1 (its lowest value shown white): read as its maximum "
                       f"({image.max() + 100 - image.min():g}) less each value, so that bright tissue reads "
                       "high, as the models take it"]


def test_values_stored_above_bits_stored_are_read_whole(tmp_path):
    image = ramp(n=2) * 4  # up to 5548: above 12 bits

    def twelve_bits(ds, echo, k):
        ds.BitsStored, ds.HighBit = 12, 11

    write_series(tmp_path / "b12", [image], extra=twelve_bits)
    notices = []
    (volume,) = dicom.read_series(tmp_path / "b12", left_out=notices)
    np.testing.assert_array_equal(volume.data, image)  # not 5548 & 4095
    assert notices == [f"b12: 1 image stores values above their BitsStored (12 bits), up to {image.max():g}: read as "
                       "stored, whole (with those bits dropped the brightest voxels would read dark)"]
    write_series(tmp_path / "fits", [ramp(n=2)], extra=twelve_bits)  # within 12 bits: nothing to say
    notices = []
    (volume,) = dicom.read_series(tmp_path / "fits", left_out=notices)
    assert notices == [] and volume.data.max() == ramp(n=2).max()


def test_pixel_spacings_that_differ_by_their_rounding_are_one_spacing(tmp_path):
    def rounded(ds, echo, k):  # one image's spacing written to fewer decimals
        if k == 1:
            ds.PixelSpacing = [f"{float(v) * (1 + 3e-7):.9g}" for v in ds.PixelSpacing]

    write_series(tmp_path / "s", [ramp(n=3)], extra=rounded)
    (volume,) = dicom.read_series(tmp_path / "s")
    assert volume.spacing[1:] == pytest.approx((1.5, 1.25))

    def other(ds, echo, k):
        if k == 1:
            ds.PixelSpacing = [1.6, 1.25]

    write_series(tmp_path / "o", [ramp(n=3)], extra=other)
    with pytest.raises(ValueError, match="the images do not form one volume"):
        dicom.read_series(tmp_path / "o")


def test_an_inversion_recovery_without_its_inversion_time_is_labelled_with_one_to_give(tmp_path):
    write_series(tmp_path / "ir", [ramp(n=2)], scanning=["SE", "IR"], drop=("InversionTime",))
    (volume,) = dicom.read_series(tmp_path / "ir")
    assert volume.extra["sequence"] == "inversion_recovery" and dicom.describe(volume) == "TE 20 / TR 2000 ms, TI ?"


def test_a_signed_real_scanner_series_is_read_as_magnitudes():
    folder = REAL / "T1" / "site2_20180925" / "plate5"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent: the shared real scans are not beside the repository")
    notices = []
    volumes = dicom.read_series(folder, left_out=notices)
    assert len(volumes) == 6 and all(float(v.data.min()) >= 0 for v in volumes)
    assert notices == ["plate5: real-valued (signed) voxel values; their magnitude is read"]


def test_localizers_are_left_out_with_a_notice(tmp_path):
    """Scout images (ImageType LOCALIZER or SCOUT) beside a scan, in series of their own or in
    the scan's, are left out, each series in one line; strict reading leaves them out too."""
    def localizer(kind, number=1):
        return lambda ds, e, k: (setattr(ds, "ImageType", ["ORIGINAL", "PRIMARY", kind]),
                                 setattr(ds, "SeriesNumber", number), setattr(ds, "SeriesDescription", "scout"),
                                 setattr(ds, "EchoTime", 1.6), setattr(ds, "RepetitionTime", 5.2))

    write_series(tmp_path / "study", [ramp()], series_uid="1.2.3.9", extra=_of_series(5, "1.2.1"))
    write_series(tmp_path / "study" / "ax", [ramp(1, 32, 32)], step_mm=8.0, extra=localizer("LOCALIZER"))
    write_series(tmp_path / "study" / "sag", [ramp(5, 32, 32)], orientation=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0),
                 extra=localizer("SCOUT", 2))
    write_series(tmp_path / "study" / "in", [ramp(1, 8, 8)], series_uid="1.2.3.9", origin=(0.0, 0.0, 90.0),
                 extra=lambda ds, e, k: (localizer("LOCALIZER", 5)(ds, e, k), setattr(ds, "StudyInstanceUID", "1.2.1")))
    left_out = []
    [vol] = dicom.read_series(tmp_path / "study", left_out=left_out)
    np.testing.assert_array_equal(vol.data, ramp())
    assert (vol.te_ms, vol.extra["series_description"]) == (20.0, "test series")
    assert sorted(left_out) == ["study: IM0000 of series 5 'scout' left out: a localizer (ImageType LOCALIZER)",
                                "study: series 1 'scout' left out: a localizer (ImageType LOCALIZER)",
                                "study: series 2 'scout' left out: a localizer (ImageType SCOUT)"]
    assert len(dicom.read_series(tmp_path / "study")) == 1
    [alone] = dicom.read_series(tmp_path / "study" / "sag")  # localizers alone are read as given
    assert alone.data.shape == (5, 32, 32)


def test_a_series_this_package_wrote_is_left_out_beside_measured_ones(tmp_path):
    """A prediction written as a DICOM series into the scan's study folder is not read back as
    a second measured acquisition; on its own it still opens."""
    from napari_mr_reparam import dicom_export

    write_series(tmp_path / "study" / "t1", [ramp()], te=(15.0,), tr=500.0)
    [scan] = dicom.read_series(tmp_path / "study" / "t1")
    dicom_export.write_series(tmp_path / "study" / "t2_synthetic.dcm", scan.data.transpose(2, 1, 0) * 2,
                              scan.affine, source_files=scan.extra["files"], te_ms=100.0, tr_ms=4000.0)
    left_out = []
    [vol] = dicom.read_series(tmp_path / "study", left_out=left_out)
    assert (vol.te_ms, vol.tr_ms) == (15.0, 500.0)
    assert len(left_out) == 1 and left_out[0].startswith("study: series 1000 'synthetic TE 100 TR 4000 from test "
                                                         "series' left out: written by napari-mr-reparam")
    [ours] = dicom.read_series(tmp_path / "study" / "t2_synthetic.dcm")
    assert (ours.te_ms, ours.tr_ms) == (100.0, 4000.0)


def test_a_dicomdir_given_reads_the_folder_it_indexes(tmp_path):
    from dicom_helpers import write_dicomdir

    index = write_dicomdir(tmp_path / "cd", write_series(tmp_path / "src", [ramp(), ramp() // 2], te=(10.0, 80.0)))
    assert dicom.is_dicomdir(index) and not dicom.is_dicomdir(next((tmp_path / "src").iterdir()))
    vols = dicom.read_series(index)
    assert [v.te_ms for v in vols] == [10.0, 80.0] and vols[0].extra["series"] == "cd"
    np.testing.assert_array_equal(vols[0].data, ramp())


def test_slices_placed_a_little_unevenly_end_where_their_tags_put_them(tmp_path):
    """Slice positions that wander by a few hundredths of a step (within dicom-numpy's 10 %)
    get the step from the first to the last slice: each end lies where its tags say."""
    shifts = [0.0, 0.08, -0.05, 0.1, 0.12, 0.2]  # mm, added along the slice normal

    def jittered(ds, echo, k):
        ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1],
                                   float(ds.ImagePositionPatient[2]) + shifts[k]]

    write_series(tmp_path / "j", [ramp(n=6)], extra=jittered)
    (volume,) = dicom.read_series(tmp_path / "j")
    step = (5 * 3.0 + shifts[-1]) / 5
    assert volume.spacing[0] == pytest.approx(step)
    ijk_to_ras = volume.affine
    last = ijk_to_ras @ [0, 0, 5, 1]  # LPS z is RAS z
    assert last[2] == pytest.approx(10.0 + 5 * 3.0 + shifts[-1])
