import json

import numpy as np
import pytest
from test_io import _oblique_nifti

from napari_mr_reparam.io import load_volume
from napari_mr_reparam.sidecars import acquisition_sidecar, inherited_sidecars, read_sidecar, sidecar_path
from napari_mr_reparam.volume_writing import save_volume


def test_sidecar_times_in_ms(tmp_path):
    _oblique_nifti(tmp_path / "a.nii.gz")
    assert sidecar_path(tmp_path / "a.nii.gz") == tmp_path / "a.json"
    assert sidecar_path(tmp_path / "b.nii") == tmp_path / "b.json"
    (tmp_path / "a.json").write_text(json.dumps(
        {"EchoTime": 0.05, "RepetitionTime": 4.5, "InversionTime": 0.9, "FlipAngle": 90}))
    assert read_sidecar(tmp_path / "a.nii.gz") == {"te_ms": 50.0, "tr_ms": 4500.0, "ti_ms": 900.0,
                                                   "flip_deg": 90.0}
    volume = load_volume(tmp_path / "a.nii.gz")
    assert (volume.te_ms, volume.tr_ms, volume.ti_ms) == (50.0, 4500.0, 900.0)
    assert "sidecar_times_ignored" not in load_volume(tmp_path / "a.nii.gz", times_given={"te_ms", "tr_ms"}).extra
    (tmp_path / "a.json").write_text(json.dumps({"EchoTime": 30, "RepetitionTime": 2500}))  # written in ms
    with pytest.raises(ValueError, match=r"^a\.json: EchoTime 30 looks like milliseconds; BIDS sidecars "
                                         r"store seconds \(did you mean 0\.03 s\?\); fix it, or give the "
                                         r"input's times with --input-te/--input-tr, which set the sidecar aside$"):
        load_volume(tmp_path / "a.nii.gz")
    with pytest.raises(ValueError, match="^a.json: RepetitionTime 2500 looks like milliseconds"):  # in use
        load_volume(tmp_path / "a.nii.gz", times_given={"te_ms"})
    volume = load_volume(tmp_path / "a.nii.gz", times_given={"te_ms", "tr_ms"})  # those given win
    assert (volume.te_ms, volume.tr_ms) == (None, None)
    assert volume.extra["sidecar_times_ignored"] == ("the times in a.json are ignored (EchoTime 30 can only be "
                                                     "milliseconds; BIDS sidecars store seconds)")
    (tmp_path / "a.json").write_text(json.dumps({"EchoTime": 30, "RepetitionTime": 2500, "InversionTime": 900,
                                                 "FlipAngle": 90}))
    with pytest.raises(ValueError, match="InversionTime 900 looks like milliseconds.* with "
                                         "--input-te/--input-tr/--input-ti, which"):  # its TI would be used
        load_volume(tmp_path / "a.nii.gz", times_given={"te_ms", "tr_ms"})
    volume = load_volume(tmp_path / "a.nii.gz", times_given={"te_ms", "tr_ms", "ti_ms"})
    assert (volume.ti_ms, volume.flip_deg) == (None, 90.0)
    (tmp_path / "a.json").write_text(json.dumps({"EchoTime": 1.0, "RepetitionTime": 15, "InversionTime": 4}))
    assert read_sidecar(tmp_path / "a.nii.gz") == {"te_ms": 1000.0, "tr_ms": 15000.0, "ti_ms": 4000.0}
    assert read_sidecar(tmp_path / "none.nii") == {}


@pytest.mark.parametrize("text, problem", [
    ("{not json", "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    ("[0.05, 4.5]", "it holds a JSON list, not an object"),
    (b"\xff\xfe{", "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"),
])
def test_an_unreadable_sidecar_is_one_error_unless_the_times_are_given(tmp_path, text, problem):
    _oblique_nifti(tmp_path / "a.nii.gz")
    side = tmp_path / "a.json"
    side.write_bytes(text) if isinstance(text, bytes) else side.write_text(text)
    with pytest.raises(ValueError) as error:
        load_volume(tmp_path / "a.nii.gz", times_given={"te_ms"})
    assert str(error.value) == (f"a.json: not a readable BIDS sidecar ({problem}); fix it or move it away, or give "
                                "the input's times (--input-te and --input-tr) to read the image without it")
    volume = load_volume(tmp_path / "a.nii.gz", times_given={"te_ms", "tr_ms"})
    assert (volume.te_ms, volume.tr_ms, volume.sequence) == (None, None, None)
    assert volume.extra["sidecar_times_ignored"] == f"a.json is ignored (not a readable BIDS sidecar: {problem})"


def test_scanning_sequence_names_the_input_sequence(tmp_path):
    import json

    from napari_mr_reparam.sidecars import read_sidecar, sequence_of

    assert sequence_of(["GR", "IR"]) == "mprage" and sequence_of("IR\\SE") == "inversion_recovery"
    assert sequence_of("GR") == "gradient_echo" and sequence_of(["SE"]) == "spin_echo"
    assert sequence_of("EP") is None and sequence_of(None) is None
    side = tmp_path / "t1.json"
    side.write_text(json.dumps({"EchoTime": 0.003, "RepetitionTime": 2.3, "InversionTime": 0.9,
                                "FlipAngle": 9, "ScanningSequence": "GR\\IR"}))
    assert read_sidecar(side) == {"te_ms": 3.0, "tr_ms": 2300.0, "ti_ms": 900.0, "flip_deg": 9.0,
                                  "sequence": "mprage"}


def test_sidecar_times_are_written_without_float_noise(tmp_path):
    save_volume(tmp_path / "p.nii.gz", np.ones((2, 4, 4), np.float32), te_ms=38.56, tr_ms=2000,
                extra=acquisition_sidecar(ti_ms=123.45))
    text = (tmp_path / "p.json").read_text()
    assert '"EchoTime": 0.03856,' in text and '"InversionTime": 0.12345' in text


def test_a_second_inversion_time_is_written_in_seconds():
    assert acquisition_sidecar("double_inversion_recovery", 3000, ti2_ms=500) == {
        "ScanningSequence": "IR", "PulseSequenceType": "double inversion recovery",
        "InversionTime": 3.0, "InversionTime2": 0.5}
    assert "InversionTime2" not in acquisition_sidecar("inversion_recovery", 900)


DCM2NIIX_MPRAGE = {"EchoTime": 0.003, "RepetitionTime": 2.3, "InversionTime": 0.9, "FlipAngle": 9,
                   "ScanningSequence": "GR_IR", "SequenceVariant": "SK_SP_MP", "MRAcquisitionType": "3D",
                   "SequenceName": "*tfl3d1_16ns"}
GE_BRAVO = {"EchoTime": 0.0032, "RepetitionTime": 0.0082, "InversionTime": 0.45, "FlipAngle": 12,
            "ScanningSequence": "GR", "SequenceVariant": "SS_SK_MP", "MRAcquisitionType": "3D"}


def test_a_dcm2niix_mprage_sidecar_reads_as_mprage(tmp_path):
    side = tmp_path / "t1.json"
    side.write_text(json.dumps(DCM2NIIX_MPRAGE))
    assert read_sidecar(side) == {"te_ms": 3.0, "tr_ms": 2300.0, "ti_ms": 900.0, "flip_deg": 9.0,
                                  "sequence": "mprage"}


def test_a_ge_bravo_sidecar_reads_as_mprage_whose_tr_is_the_readout_spacing(tmp_path):
    from napari_mr_reparam.dicom import unknown_cycle

    _oblique_nifti(tmp_path / "bravo.nii.gz")
    (tmp_path / "bravo.json").write_text(json.dumps(GE_BRAVO))
    assert read_sidecar(tmp_path / "bravo.json") == {"te_ms": 3.2, "ti_ms": 450.0, "flip_deg": 12.0,
                                                     "sequence": "mprage", "readout_tr_ms": 8.2}
    volume = load_volume(tmp_path / "bravo.nii.gz")
    assert (volume.sequence, volume.tr_ms, volume.extra["readout_tr_ms"]) == ("mprage", None, 8.2)
    assert unknown_cycle(volume).startswith("its RepetitionTime tag (8.2 ms) is the readout's pulse spacing")


@pytest.mark.parametrize("meta, expected", [
    ({"ScanningSequence": "SE_IR", "SequenceVariant": "SK_SP_MP", "InversionTime": 2.5}, "inversion_recovery"),
    ({"ScanningSequence": "GR", "SequenceVariant": "SP"}, "gradient_echo"),
    ({"ScanningSequence": "GR", "SequenceVariant": ["SK", "MP"]}, "mprage"),
    ({"ScanningSequence": "SE", "InversionTime": 0.15}, "inversion_recovery"),
    ({"ScanningSequence": "EP"}, None),
    ({"SequenceName": "*tfl3d1_16ns", "InversionTime": 0.9}, "mprage"),  # no ScanningSequence
    ({"PulseSequenceName": "tfl3d1", "InversionTime": 1.0}, "mprage"),
    ({"SequenceName": "*tfl3d1_16ns"}, None), ({"InversionTime": 0.9}, None)])
def test_a_sidecar_names_its_sequence_from_its_codes(meta, expected):
    from napari_mr_reparam.sidecars import sidecar_sequence

    assert sidecar_sequence(meta) == expected


def test_sequence_codes_may_be_listed_or_joined():
    from napari_mr_reparam.sidecars import sequence_codes

    for value in (["GR", "IR"], "GR\\IR", "GR_IR", "gr, ir", ("GR", "IR")):
        assert sequence_codes(value) == {"GR", "IR"}, value
    assert sequence_codes(None) == set() and sequence_codes(3) == set()


@pytest.mark.parametrize("value, shown", [("0.03", '"0.03"'), (0, "0"), (-0.03, "-0.03"), (True, "true"),
                                          ([0.03], "[0.03]")])
def test_a_sidecar_time_that_is_no_time_is_one_line_naming_the_sidecar_and_field(tmp_path, value, shown):
    _oblique_nifti(tmp_path / "a.nii.gz")
    (tmp_path / "a.json").write_text(json.dumps({"EchoTime": value, "RepetitionTime": 3.0}))
    with pytest.raises(ValueError) as caught:
        read_sidecar(tmp_path / "a.nii.gz")
    assert str(caught.value) == (f"a.json: EchoTime {shown} is not a time (BIDS sidecars state it as a positive "
                                 "number of seconds); fix it, or give the input's value with --input-te MS, which "
                                 "sets it aside")
    assert read_sidecar(tmp_path / "a.nii.gz", times_given={"te_ms"}) == {
        "tr_ms": 3000.0, "times_ignored": f"EchoTime {shown} in a.json is ignored (not a positive number of seconds)"}


def test_a_sidecar_time_left_null_is_unstated_and_an_inversion_time_of_0_is_no_inversion(tmp_path):
    _oblique_nifti(tmp_path / "a.nii.gz")
    (tmp_path / "a.json").write_text(json.dumps({"EchoTime": None, "RepetitionTime": 3.0, "InversionTime": 0}))
    assert read_sidecar(tmp_path / "a.nii.gz") == {"tr_ms": 3000.0}
    (tmp_path / "a.json").write_text(json.dumps({"EchoTime": 0.01, "RepetitionTime": 3.0, "InversionTime": -1}))
    with pytest.raises(ValueError, match=r"^a\.json: InversionTime -1 is not a time .* --input-ti MS, which"):
        read_sidecar(tmp_path / "a.nii.gz")


@pytest.mark.parametrize("fields, series", [
    ({"SeriesNumber": 7}, "7"),
    ({"SeriesInstanceUID": "1.2.3", "SeriesNumber": 7}, "1.2.3"),
    ({"SeriesNumber": True}, None),
    ({}, None),
])
def test_a_sidecar_names_its_scans_series(tmp_path, fields, series):
    (tmp_path / "scan.json").write_text(json.dumps({"EchoTime": 0.1, "RepetitionTime": 3.0, **fields}))
    assert read_sidecar(tmp_path / "scan.nii.gz").get("series_id") == series


@pytest.mark.parametrize("fields, sequence", [
    ({"InversionTime": 0.9, "FlipAngle": 9}, "mprage"),  # no ScanningSequence: the small flip tells
    ({"FlipAngle": 15}, "gradient_echo"),
    ({"InversionTime": 2.5, "FlipAngle": 90}, None),  # a spin echo's excitation: left to the TI's rule
    ({"FlipAngle": 9, "ScanningSequence": "SE"}, "spin_echo"),  # what the sidecar names wins
])
def test_a_sidecar_that_names_no_sequence_is_read_by_its_flip(tmp_path, fields, sequence):
    (tmp_path / "scan.json").write_text(json.dumps({"EchoTime": 0.003, "RepetitionTime": 2.3, **fields}))
    assert read_sidecar(tmp_path / "scan.nii.gz").get("sequence") == sequence


def test_a_second_inversion_time_names_a_double_inversion_recovery(tmp_path):
    # as this package writes a rendered DIR: read back, it is not an inversion recovery at TI1
    (tmp_path / "dir.json").write_text(json.dumps({"EchoTime": 0.025, "RepetitionTime": 11.0, "InversionTime": 3.4,
                                                   "InversionTime2": 0.4, "ScanningSequence": "IR"}))
    assert read_sidecar(tmp_path / "dir.nii.gz")["sequence"] == "double_inversion_recovery"


def test_a_bids_datasets_files_inherit_the_sidecars_above_them(tmp_path):
    anat = tmp_path / "ds" / "sub-01" / "anat"
    anat.mkdir(parents=True)
    scan = anat / "sub-01_T2w.nii.gz"
    (tmp_path / "ds" / "T2w.json").write_text(json.dumps({"EchoTime": 0.12, "RepetitionTime": 6.0, "FlipAngle": 90}))
    (tmp_path / "ds" / "acq-fast_T2w.json").write_text(json.dumps({"EchoTime": 0.08}))  # another acquisition's
    (tmp_path / "ds" / "sub-01" / "sub-01_T1w.json").write_text(json.dumps({"EchoTime": 0.01}))  # another suffix's
    assert read_sidecar(scan) == {}  # no dataset_description.json: no BIDS dataset, nothing inherited
    (tmp_path / "ds" / "dataset_description.json").write_text(json.dumps({"Name": "x", "BIDSVersion": "1.9.0"}))
    assert read_sidecar(scan) == {"te_ms": 120.0, "tr_ms": 6000.0, "flip_deg": 90.0}
    (tmp_path / "ds" / "sub-01" / "sub-01_T2w.json").write_text(json.dumps({"RepetitionTime": 5.0}))
    (anat / "sub-01_T2w.json").write_text(json.dumps({"EchoTime": 0.1}))  # its own wins, the nearer next
    assert read_sidecar(scan) == {"te_ms": 100.0, "tr_ms": 5000.0, "flip_deg": 90.0}
    (tmp_path / "ds" / "T2w.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"^ds/T2w\.json: not a readable BIDS sidecar"):
        read_sidecar(scan)


def test_a_derivative_datasets_files_inherit_nothing_of_the_raw_dataset(tmp_path):
    ds = tmp_path / "ds"
    (ds / "derivatives" / "mrreparam").mkdir(parents=True)
    (ds / "dataset_description.json").write_text(json.dumps({"Name": "x", "BIDSVersion": "1.9.0"}))
    (ds / "T1w.json").write_text(json.dumps({"EchoTime": 0.003, "RepetitionTime": 2.3, "InversionTime": 0.9}))
    out = ds / "derivatives" / "mrreparam" / "sub-02_T2w_T1w.nii.gz"  # a prediction named _T1w
    out.with_name("sub-02_T2w_T1w.json").write_text(json.dumps({"EchoTime": 0.015, "RepetitionTime": 0.5}))
    assert read_sidecar(out) == {"te_ms": 15.0, "tr_ms": 500.0}  # its own only: no TI from the raw data's
    assert inherited_sidecars(out) == []
    (ds / "derivatives" / "mrreparam" / "dataset_description.json").write_text(json.dumps({"Name": "d"}))
    (ds / "derivatives" / "mrreparam" / "T1w.json").write_text(json.dumps({"FlipAngle": 8}))
    assert inherited_sidecars(out) == [ds / "derivatives" / "mrreparam" / "T1w.json"]  # its own dataset's


def test_an_unreadable_inherited_sidecar_leaves_the_files_own_read_where_the_times_are_given(tmp_path):
    anat = tmp_path / "ds" / "sub-01" / "anat"
    anat.mkdir(parents=True)
    (tmp_path / "ds" / "dataset_description.json").write_text(json.dumps({"Name": "x"}))
    (tmp_path / "ds" / "IRT1.json").write_text("{broken")
    scan = anat / "sub-01_inv-1_IRT1.nii.gz"
    (anat / "sub-01_inv-1_IRT1.json").write_text(json.dumps({"EchoTime": 0.015, "RepetitionTime": 5.0,
                                                             "InversionTime": 0.4, "ScanningSequence": "IR"}))
    with pytest.raises(ValueError, match=r"^ds/IRT1\.json: not a readable BIDS sidecar"):
        read_sidecar(scan)
    got = read_sidecar(scan, times_given=("te_ms", "tr_ms"))
    assert got["sequence"] == "inversion_recovery" and got["ti_ms"] == 400.0
    assert got["times_ignored"].startswith("ds/IRT1.json is ignored (not a readable BIDS sidecar")
