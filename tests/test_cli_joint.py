"""The joint commands: ``maps``, ``predict --joint`` and ``predict --preset``."""

import json

import nibabel as nib
import numpy as np
import pytest
from helpers import below_sustained_peak

from napari_mr_reparam import physics
from napari_mr_reparam.cli import main
from napari_mr_reparam.io import load_volume

ACQS = {"pdw": (15, 3000), "t2w": (100, 3000), "t1w": (15, 500)}


@pytest.fixture
def scans(tmp_path):
    rng = np.random.default_rng(0)
    shape = (20, 20, 2)
    pd, t1, t2 = (np.zeros(shape, np.float32) for _ in range(3))
    inside = (slice(3, 17), slice(3, 17))
    pd[inside] = 0.8
    t1[inside] = rng.uniform(500, 2000, (14, 14, 2))
    t2[inside] = rng.uniform(40, 200, (14, 14, 2))
    paths = {}
    for name, (te, tr) in ACQS.items():
        paths[name] = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(np.asarray(physics.spin_echo(pd, t1, t2, te, tr), np.float32) * 1000,
                                 np.eye(4)), paths[name])
    truth = {"pd": pd, "t1": t1, "t2": t2, "inside": pd > 0}
    return paths, truth


def _times(option):
    index = 0 if option == "--input-te" else 1
    return [option, *[str(v[index]) for v in ACQS.values()]]


def test_maps_writes_pd_t1_t2_in_ms_with_a_sidecar(scans, tmp_path, capsys):
    paths, truth = scans
    out = tmp_path / "maps"
    rc = main(["maps", *map(str, paths.values()), "-o", str(out), *_times("--input-te"),
               *_times("--input-tr"), "--model", "none"])
    assert rc == 0
    t1 = nib.load(out / "T1map.nii.gz").get_fdata()
    t2 = nib.load(out / "T2map.nii.gz").get_fdata()
    inside = truth["inside"]
    assert np.median(np.abs(t1[inside] / truth["t1"][inside] - 1)) < 0.02
    assert np.median(np.abs(t2[inside] / truth["t2"][inside] - 1)) < 0.02
    meta = json.loads((out / "maps.json").read_text())
    assert [a["EchoTime_ms"] for a in meta["acquisitions"]] == [15, 100, 15]
    assert meta["free_parameters"] == {"t1": True, "t2": True}
    assert meta["determined_fraction"]["t2"] > 0.5
    said = capsys.readouterr()
    assert "T1/T2 in ms); determined by the inputs in: PD " in said.out
    assert "the 3 inputs come from files of their own and are fitted at one receiver gain" in said.err
    assert main(["maps", *map(str, paths.values()), "-o", str(tmp_path / "again"), *_times("--input-te"),
                 *_times("--input-tr"), "--model", "none", "--scale", "shared"]) == 0
    assert "one receiver gain" not in capsys.readouterr().err  # asked for: no notice
    for number, path in enumerate(paths.values()):  # sidecars that name each scan's series
        path.with_name(path.name.replace(".nii.gz", ".json")).write_text(json.dumps({"SeriesNumber": number + 3}))
    from napari_mr_reparam.cli_joint import gains_of, load_inputs

    assert gains_of(load_inputs(list(paths.values())), "auto") == "per_input"
    pd = json.loads((out / "PD.json").read_text())  # a joint fit's PD: the first input's units
    assert pd["Units"] == "relative (the first input's intensity units)"
    assert pd["GeneratedBy"][0]["Model"] == "joint maps"
    assert "WeightsSHA256" not in pd["GeneratedBy"][0]  # --model none: no network took part
    # nothing replaced unasked
    assert main(["maps", *map(str, paths.values()), "-o", str(out), *_times("--input-te"),
                 *_times("--input-tr"), "--model", "none"]) == 2


def test_maps_take_the_times_given_over_sidecars_written_in_ms(scans, tmp_path, capsys):
    paths, _ = scans
    for name, (te, tr) in ACQS.items():
        (tmp_path / f"{name}.json").write_text(json.dumps({"EchoTime": te, "RepetitionTime": tr}))
    inputs = [*map(str, paths.values()), "--model", "none"]
    assert main(["maps", *inputs, "-o", str(tmp_path / "m"), *_times("--input-te"), *_times("--input-tr")]) == 0
    err = capsys.readouterr().err
    assert err.count("the input times given are used") == 3 and "pdw.json are ignored (EchoTime 15 can" in err
    assert main(["maps", *inputs, "-o", str(tmp_path / "n"), *_times("--input-te")]) == 2
    err = capsys.readouterr().err
    assert "error: pdw.json: RepetitionTime 3000 looks like milliseconds" in err
    assert "or give the input's times with --input-te/--input-tr, which set the sidecar aside" in err
    assert main(["predict", "--joint", *inputs, *_times("--input-te"), *_times("--input-tr"), "--te", "80",
                 "--tr", "2000", "-o", str(tmp_path / "p.nii.gz")]) == 0
    assert (tmp_path / "p.nii.gz").is_file()


def test_maps_without_smoothing_fit_each_voxel_alone(scans, tmp_path):
    paths, truth = scans
    common = [*map(str, paths.values()), *_times("--input-te"), *_times("--input-tr"), "--model", "none"]
    assert main(["maps", *common, "-o", str(tmp_path / "a")]) == 0
    assert main(["maps", *common, "-o", str(tmp_path / "b"), "--no-smooth"]) == 0
    first = json.loads((tmp_path / "a" / "maps.json").read_text())
    assert first["smoothed"] is True and first["prior"] == "none" and first["prior_source"] == "default"
    assert json.loads((tmp_path / "b" / "maps.json").read_text())["smoothed"] is False
    inside = truth["inside"]
    t1 = nib.load(tmp_path / "b" / "T1map.nii.gz").get_fdata()
    assert np.median(np.abs(t1[inside] / truth["t1"][inside] - 1)) < 0.02
    assert main(["predict", "--joint", *common[:3], *_times("--input-te"), *_times("--input-tr"),
                 "--no-smooth", "--te", "80", "--tr", "2000", "-o", str(tmp_path / "p.nii.gz")]) == 0


def test_joint_predict_renders_targets_and_presets(scans, tmp_path):
    paths, truth = scans
    out = tmp_path / "t2w_80.nii.gz"
    args = [*map(str, paths.values()), *_times("--input-te"), *_times("--input-tr"), "--model", "none"]
    assert main(["predict", "--joint", *args, "--te", "80", "--tr", "2500", "-o", str(out)]) == 0
    expected = np.asarray(physics.spin_echo(truth["pd"], truth["t1"], truth["t2"], 80, 2500)) * 1000
    got = nib.load(out).get_fdata()
    # random maps: each slice's lone maxima are clipped (slices: the file's third axis)
    kept = truth["inside"] & np.moveaxis(below_sustained_peak(np.moveaxis(got, -1, 0)), 0, -1)
    assert kept.mean() > 0.5 * truth["inside"].mean()
    assert np.abs(got - expected)[kept].max() < 0.02 * expected.max()
    assert (got <= expected + 0.02 * expected.max())[truth["inside"]].all()  # clipping only lowers
    flair = tmp_path / "flair.nii.gz"
    assert main(["predict", "--joint", *args, "--preset", "FLAIR", "--ti", "2200", "-o", str(flair)]) == 0
    sidecar = json.loads((tmp_path / "flair.json").read_text())
    assert sidecar["InversionTime"] == pytest.approx(2.2) and sidecar["ScanningSequence"] == "IR"
    # each input as the maps read it, in seconds
    assert [i["File"] for i in sidecar["Inputs"]] == [p.name for p in paths.values()]
    assert [i["EchoTime"] for i in sidecar["Inputs"]] == pytest.approx([v[0] / 1000 for v in ACQS.values()])
    # the same BIDS keys as every other output: read back as the acquisition it is
    back = load_volume(flair)
    assert (back.sequence, back.te_ms, back.tr_ms, back.ti_ms) == ("inversion_recovery", 120, 9000, 2200)


def test_inputs_of_another_shape_without_an_affine_give_one_line_and_write_nothing(scans, tmp_path, capsys):
    import tifffile

    paths, _ = scans
    odd = tmp_path / "odd.tif"
    tifffile.imwrite(odd, np.random.default_rng(0).random((18, 20)).astype(np.float32))
    out = tmp_path / "out"
    rc = main(["maps", str(paths["pdw"]), str(odd), "--input-te", "15", "100", "--input-tr", "3000",
               "--model", "none", "-o", str(out)])
    assert rc == 2
    assert "on different grids" in capsys.readouterr().err
    assert not out.exists()
    target = tmp_path / "x.nii.gz"
    rc = main(["predict", "--joint", str(paths["pdw"]), str(odd), "--input-te", "15", "100",
               "--input-tr", "3000", "--model", "none", "--te", "50", "--tr", "2000", "-o", str(target)])
    assert rc == 2 and not target.exists()


def test_bad_options_are_refused(scans, tmp_path, capsys):
    paths, _ = scans
    out = tmp_path / "x.nii.gz"
    assert main(["maps", str(paths["pdw"]), str(paths["t2w"]), "--input-te", "15", "100", "50",
                 "--input-tr", "3000", "--model", "none", "-o", str(tmp_path / "m")]) == 2
    assert "3 values for --input-te but 2 inputs" in capsys.readouterr().err
    assert main(["predict", str(paths["pdw"]), "--preset", "T3w", "-o", str(out)]) == 2
    assert "unknown preset" in capsys.readouterr().err
    assert main(["predict", str(paths["pdw"]), "-o", str(out)]) == 2
    assert "--preset" in capsys.readouterr().err
    assert main(["predict", str(paths["pdw"]), "--te", "50", "--tr", "2000", "--input-te", "15", "20",
                 "-o", str(out)]) == 2
    assert "one value unless --joint" in capsys.readouterr().err
    assert not out.exists()


def test_preset_on_one_input_uses_the_physics_model(scans, tmp_path, capsys):
    paths, _ = scans
    out = tmp_path / "preset_t1w.nii.gz"
    rc = main(["predict", str(paths["pdw"]), "--preset", "T1w", "--input-te", "15", "--input-tr", "3000",
               "-o", str(out)])
    assert rc == 0 and out.exists()
    assert "T1w: spin echo, TE 15 / TR 500 ms" in capsys.readouterr().err


def test_maps_of_a_multi_echo_dicom_train_fit_the_flip_angle(tmp_path, capsys):
    from dicom_helpers import write_series

    from napari_mr_reparam import epg

    rng = np.random.default_rng(2)
    shape = (2, 16, 16)
    t2 = np.exp(rng.uniform(np.log(40), np.log(150), shape))
    scale = np.full(shape, 0.75)
    n, esp = 12, 10.0
    echoes = np.mean([epg.cpmg_echoes(n, esp, t2, scale * p) for p in epg.slice_profile()], axis=0)
    volumes = [np.rint(3000 * echoes[..., k]) for k in range(n)]
    write_series(tmp_path / "mese", volumes, te=tuple(esp * (k + 1) for k in range(n)), tr=3000.0)
    out = tmp_path / "maps"
    assert main(["maps", str(tmp_path / "mese"), "-o", str(out), "--model", "none"]) == 0
    b1 = nib.load(out / "b1.nii.gz").get_fdata()
    fitted = nib.load(out / "T2map.nii.gz").get_fdata()
    truth = np.transpose(t2, (2, 1, 0))  # NIfTI axes (x, y, z) of the (z, y, x) slices
    assert np.median(np.abs(fitted / truth - 1)) < 0.03
    assert np.median(np.abs(b1 - 0.75)) < 0.03
    assert json.loads((out / "maps.json").read_text())["echo_train"] == "epg"
    ideal = tmp_path / "ideal"
    assert main(["maps", str(tmp_path / "mese"), "-o", str(ideal), "--model", "none", "--echo-train", "ideal"]) == 0
    assert not (ideal / "b1.nii.gz").exists()
    assert np.median(nib.load(ideal / "T2map.nii.gz").get_fdata() / truth - 1) > 0.1


def test_maps_of_a_dicom_inversion_series_with_clipped_voxels(tmp_path):
    """Three TIs give the series' inversion efficiency; voxels stored at the top of the
    12-bit range are lower bounds, and their T1 is still found."""
    from dicom_helpers import write_series

    rng = np.random.default_rng(3)
    shape = (2, 16, 16)
    t1 = np.exp(rng.uniform(np.log(200), np.log(1500), shape))
    tis, tr, k = (100.0, 300.0, 900.0), 3000.0, 0.85
    volumes = [np.minimum(np.rint(8000 * physics.inversion_recovery(1.0, t1, 80.0, 10.0, tr, ti, efficiency=k)), 4095)
               for ti in tis]
    clipped = np.logical_or.reduce([v >= 4095 for v in volumes])  # in one of two images, nearly all voxels
    assert 0.5 < clipped.mean() < 1  # taken as values, they give efficiency 1 and T1 15 % off

    def twelve_bits(ds, echo, slice_index):
        ds.BitsStored, ds.HighBit = 12, 11

    write_series(tmp_path / "ir", volumes, te=(10.0,) * 3, tr=tr, ti=tis, extra=twelve_bits)
    out = tmp_path / "maps"
    assert main(["maps", str(tmp_path / "ir"), "-o", str(out), "--model", "none"]) == 0
    assert json.loads((out / "maps.json").read_text())["inversion_efficiency"] == pytest.approx(k, abs=0.021)
    fitted = np.transpose(nib.load(out / "T1map.nii.gz").get_fdata(), (2, 1, 0))
    assert np.median(np.abs(fitted[clipped] / t1[clipped] - 1)) < 0.03


def test_input_presets_one_per_input_and_options_override_them(scans, tmp_path, capsys):
    paths, _ = scans
    inputs = [str(paths["pdw"]), str(paths["t2w"])]
    assert main(["maps", *inputs, "--input-preset", "pdw", "T2w", "--input-tr", "3000", "--model", "none",
                 "-o", str(tmp_path / "m")]) == 0
    acqs = json.loads((tmp_path / "m" / "maps.json").read_text())["acquisitions"]
    assert [(a["sequence"], a["EchoTime_ms"], a["RepetitionTime_ms"]) for a in acqs] == [
        ("spin_echo", 15.0, 3000.0), ("spin_echo", 100.0, 3000.0)]  # T2w's TR 4000 replaced
    assert main(["maps", *inputs, "--input-preset", "PDw", "T1w", "FLAIR", "--model", "none",
                 "-o", str(tmp_path / "n")]) == 2
    assert "3 values for --input-preset but 2 inputs" in capsys.readouterr().err
    assert not (tmp_path / "n").exists()


def test_one_mprage_input_named_by_its_preset_renders_a_target_preset(scans, tmp_path, capsys, monkeypatch):
    import sys

    paths, _ = scans
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)  # a terminal: the bar is drawn
    out = tmp_path / "as_t2w.nii.gz"
    assert main(["predict", str(paths["t1w"]), "--input-preset", "MPRAGE", "--preset", "T2w", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "input preset MPRAGE: mprage" in err and "preset T2w: spin echo" in err
    image = np.asarray(nib.load(out).dataobj)
    assert image.shape == (20, 20, 2) and np.isfinite(image).all() and image.max() > 0
    assert "t1w.nii.gz: 100%" in err and "2/2" in err  # the maps' progress, by slice
    assert main(["predict", str(paths["t1w"]), "--input-preset", "MPRAGE", "--preset", "T2w", "-q", "--overwrite",
                 "-o", str(out)]) == 0
    assert "%|" not in capsys.readouterr().err  # --quiet: no bar


def test_preset_on_several_inputs_reports_a_bad_one_as_an_error_and_exits_2(scans, tmp_path, capsys):
    paths, _ = scans
    flat = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.full((20, 20, 2), 7, np.float32), np.eye(4)), flat)
    out = tmp_path / "out"
    rc = main(["predict", str(paths["pdw"]), str(flat), "--preset", "T1w", "--input-te", "15",
               "--input-tr", "3000", "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and (out / "pdw_T1w.nii.gz").exists() and not (out / "flat_T1w.nii.gz").exists()
    assert f"error: {flat}: the volume holds no image" in err and "failed" not in err


@pytest.mark.parametrize("options, message", [
    (["--preset", "T2w", "--te", "0.09"], "TE 0.09 looks like seconds"),
    (["--preset", "FLAIR", "--ti", "2.5"], "TI 2.5 looks like seconds"),
    (["--joint", "--te", "0.1", "--tr", "3000"], "TE 0.1 looks like seconds"),
    (["--preset", "T2w", "--input-te", "0.015"], "input TE 0.015 looks like seconds"),
    (["--preset", "T2w", "--model", "nosuch"], "unknown model 'nosuch'"),
    (["--preset", "STIR", "--model", "p2p"], "predicts spin-echo images only"),
])
def test_preset_and_joint_refuse_bad_options_before_reading_any_input(tmp_path, capsys, options, message):
    missing = tmp_path / "not_there.nii.gz"  # never read: the options are refused first
    times = ["--input-tr", "3000"] + ([] if "--input-te" in options else ["--input-te", "15"])
    rc = main(["predict", str(missing), *options, *times, "-o", str(tmp_path / "x.nii.gz")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("error: ") and message in err[-1]
    assert not any(line.startswith(("failed", "Traceback")) for line in err)


def test_maps_refuse_input_times_in_seconds_before_reading_any_input(tmp_path, capsys):
    rc = main(["maps", str(tmp_path / "a.nii.gz"), str(tmp_path / "b.nii.gz"), "--input-te", "15", "100",
               "--input-tr", "3", "-o", str(tmp_path / "m")])
    assert rc == 2
    assert "error: input TR 3 looks like seconds" in capsys.readouterr().err


def test_joint_dir_takes_both_inversion_times(scans, tmp_path, capsys):
    paths, _ = scans
    out = tmp_path / "dir.nii.gz"
    args = [*map(str, paths.values()), *_times("--input-te"), *_times("--input-tr"), "--model", "none"]
    assert main(["predict", "--joint", *args, "--preset", "DIR", "--ti", "3000", "500", "-o", str(out)]) == 0
    assert "DIR: double inversion recovery, TE 25 / TR 11000 / TI1 3000 / TI2 500 ms" in capsys.readouterr().err
    assert np.isfinite(nib.load(out).get_fdata()).all()
    sidecar = json.loads((tmp_path / "dir.json").read_text())  # both TIs, seconds
    assert (sidecar["InversionTime"], sidecar["InversionTime2"]) == (3.0, 0.5)
    assert main(["predict", str(paths["pdw"]), "--te", "100", "--tr", "9000", "--sequence", "inversion_recovery",
                 "--ti", "2500", "600", "-o", str(tmp_path / "x.nii.gz")]) == 2
    assert "error: a second --ti (TI1 TI2) applies to --sequence double_inversion_recovery only" in \
        capsys.readouterr().err


def test_maps_say_when_an_option_replaces_the_times_of_the_tags(tmp_path, capsys):
    from dicom_helpers import ramp, write_series

    write_series(tmp_path / "dual", [ramp(2, 8, 8), ramp(2, 8, 8) // 2], te=(15.0, 90.0), tr=3000.0)
    args = ["maps", str(tmp_path / "dual"), "--model", "none"]
    assert main([*args, "-o", str(tmp_path / "a"), "--input-te", "20"]) == 0
    err = capsys.readouterr().err
    assert "notice: --input-te replaces the TE that the DICOM tags or sidecars of 2 of 2 inputs state " \
           "(15, 90 ms)" in err
    assert main([*args, "-o", str(tmp_path / "b"), "--input-tr", "3000"]) == 0  # the same: no notice
    assert "notice" not in capsys.readouterr().err


def test_preset_on_a_dicom_series_predicts_each_acquisition_as_predict_does(tmp_path, tiny_weights, capsys):
    from dicom_helpers import ramp, write_series

    write_series(tmp_path / "dual", [ramp(2, 16, 16), ramp(2, 16, 16) // 2], te=(15.0, 90.0), tr=3000.0)
    out = tmp_path / "out"
    assert main(["predict", str(tmp_path / "dual"), "--preset", "T1w", "-o", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.nii.gz")) == ["dual_acq1_T1w.nii.gz", "dual_acq2_T1w.nii.gz"]
    assert "dual: 2 acquisitions, each predicted separately" in capsys.readouterr().err
    one = tmp_path / "one.nii.gz"
    assert main(["predict", str(tmp_path / "dual"), "--preset", "T1w", "--acquisition", "2", "-o", str(one)]) == 0
    assert one.is_file()
    assert main(["predict", str(tmp_path / "dual"), "--preset", "T1w", "--acquisition", "3",
                 "-o", str(tmp_path / "three.nii.gz")]) == 2
    assert "--acquisition 3, but the series has 2 acquisition(s)" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "dual"), "--preset", "T1w", "-o", str(tmp_path / "f.nii.gz")]) == 2
    assert ("dual: the input holds 2 acquisitions, each predicted separately; give an output folder for -o, not "
            "a file, or choose one with --acquisition N") in capsys.readouterr().err
    assert not (tmp_path / "f.nii.gz").exists()


def test_preset_takes_a_folder_of_nifti_files_as_predict_does(scans, tiny_weights, tmp_path):
    import shutil

    paths, _ = scans
    folder = tmp_path / "subjects"
    folder.mkdir()
    for name in ("pdw", "t2w"):
        shutil.copy(paths[name], folder / paths[name].name)
    out = tmp_path / "out"
    assert main(["predict", str(folder), "--preset", "T1w", "--input-te", "15", "--input-tr", "3000",
                 "-o", str(out), "-q"]) == 0
    assert sorted(p.name for p in out.glob("*.nii.gz")) == ["pdw_T1w.nii.gz", "t2w_T1w.nii.gz"]


def test_preset_on_several_inputs_needs_a_folder(scans, tmp_path, capsys):
    paths, _ = scans
    out = tmp_path / "x.nii.gz"
    assert main(["predict", str(paths["pdw"]), str(paths["t2w"]), "--preset", "T1w", "--input-te", "15",
                 "--input-tr", "3000", "-o", str(out)]) == 2
    assert "several inputs need an output folder for -o, not a file (" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("output, message", [("afile", "exists and is not a folder"),
                                             ("maps.nii.gz", "-o names the output folder here")])
def test_maps_refuse_an_output_that_cannot_be_their_folder_before_any_work(tmp_path, capsys, output, message):
    (tmp_path / "afile").write_text("mine")
    rc = main(["maps", str(tmp_path / "not_read.nii.gz"), "--input-te", "15", "--input-tr", "500",
               "-o", str(tmp_path / output)])
    assert rc == 2 and message in capsys.readouterr().err
    assert (tmp_path / "afile").read_text() == "mine" and not (tmp_path / "maps.nii.gz").exists()


def test_inputs_on_other_grids_are_resampled_onto_the_first(tmp_path, capsys):
    """A T2-weighted image of 2 mm pixels, another of the same grid moved 3 mm, beside a
    PD-weighted one of 1 mm: both resampled onto the first's grid by their affines, the maps
    written on it and right inside blocks of one tissue."""
    rng = np.random.default_rng(1)
    blocks = (10, 10, 2)
    t1 = np.kron(rng.uniform(500, 2000, blocks), np.ones((4, 4, 1))).astype(np.float32)  # 40 x 40 x 2, 4-voxel blocks
    t2 = np.kron(rng.uniform(40, 200, blocks), np.ones((4, 4, 1))).astype(np.float32)
    pd = np.full(t1.shape, 0.8, np.float32)

    def save(name, te, tr, sl, affine):
        image = np.asarray(physics.spin_echo(pd, t1, t2, te, tr), np.float32) * 1000
        h, w, d = image[sl].shape
        coarse = image[sl].reshape(h // 2, 2, w // 2, 2, d).mean(axis=(1, 3))  # 2 mm pixels
        nib.save(nib.Nifti1Image(coarse if name != "pdw" else image[sl], affine), tmp_path / f"{name}.nii.gz")
        return str(tmp_path / f"{name}.nii.gz")

    two = np.diag([2.0, 2.0, 1.0, 1.0])
    two[:2, 3] = 0.5  # a 2 mm pixel's centre between two 1 mm centres
    moved = two.copy()
    moved[0, 3] += 4.0  # its field of view starts 4 mm (two of its pixels) further along x
    files = [save("pdw", 15, 3000, np.s_[:], np.eye(4)), save("t2w", 100, 3000, np.s_[:], two),
             save("t1w", 15, 500, np.s_[4:], moved)]
    out = tmp_path / "maps"
    rc = main(["maps", *files, "--input-te", "15", "100", "15", "--input-tr", "3000", "3000", "500",
               "--model", "none", "--no-smooth", "-o", str(out)])
    assert rc == 0
    err = capsys.readouterr().err
    assert "notice: t2w.nii.gz, t1w.nii.gz resampled onto the grid of pdw.nii.gz (2x40x40, 1 x 1 x 1 mm)" in err
    got = nib.load(out / "T2map.nii.gz")
    assert got.shape == (40, 40, 2) and np.allclose(got.affine, np.eye(4))
    assert json.loads((out / "maps.json").read_text())["resampled_onto_first_grid"] == files[1:]
    # --model none: no network fills in where the T1-weighted image does not reach
    assert ("notice: 10 % of the object is not measured by every input (outside some input's field of view): "
            "fitted there to the inputs that measure it\n") in err
    assert json.loads((out / "maps.json").read_text())["partly_measured_fraction"] == pytest.approx(0.1)
    centre = np.zeros(t1.shape, bool)
    centre[1::4, :, :] = centre[2::4, :, :] = True  # the 2 x 2 voxels at each block's centre
    centre[:, 0::4, :] = centre[:, 3::4, :] = False
    for name, truth in (("T2map", t2), ("T1map", t1)):
        fitted = nib.load(out / f"{name}.nii.gz").get_fdata()
        assert np.median(np.abs(fitted[centre] / truth[centre] - 1)) < 0.02, name
    # the first 4 mm along x lie outside the T1-weighted image: T1 is measured beside them only
    assert np.median(np.abs(nib.load(out / "T1map.nii.gz").get_fdata()[:4][centre[:4]] / t1[:4][centre[:4]] - 1)) > 0.05


def test_a_sidecar_names_the_inputs_sequence_as_predict_reads_it(scans, tmp_path):
    import argparse

    from napari_mr_reparam.cli_joint import acquisitions_of

    paths, _ = scans
    (tmp_path / "pdw.json").write_text(json.dumps({"EchoTime": 0.004, "RepetitionTime": 0.02, "FlipAngle": 15,
                                                   "ScanningSequence": "GR"}))
    [acq] = acquisitions_of([load_volume(paths["pdw"])], argparse.Namespace())
    assert (acq.sequence, acq.te_ms, acq.tr_ms, acq.flip_deg) == ("gradient_echo", 4.0, 20.0, 15.0)


def test_maps_of_an_input_that_names_nothing_read_it_as_the_preset_it_looks_like(scans, tmp_path, monkeypatch,
                                                                                 capsys):
    from napari_mr_reparam import contrast, weights

    paths, _ = scans
    monkeypatch.setattr(contrast, "guess_input", lambda volume, weights=None, classifier=None:
                        contrast.ContrastGuess("PDw", 0.8, {"PDw": 0.8}))
    assert main(["maps", str(paths["pdw"]), "-o", str(tmp_path / "m")]) == 0
    assert "the image looks like PDw (80 %): read as PDw: spin echo, TE 15 / TR 3000 ms" in capsys.readouterr().err
    monkeypatch.undo()
    monkeypatch.setattr(weights, "BUNDLED_DIR", tmp_path)  # no classifier: the times are asked for
    assert main(["maps", str(paths["pdw"]), "-o", str(tmp_path / "n")]) == 2
    assert "no TE or TR known" in capsys.readouterr().err


def test_maps_of_a_3d_input_that_looks_t1_weighted_and_mprage_like_read_it_as_mprage(scans, tmp_path,
                                                                                     monkeypatch, capsys):
    from napari_mr_reparam import contrast

    paths, _ = scans  # 1 mm voxels, two slices: a 3-D volume
    monkeypatch.setattr(contrast, "guess_input", lambda volume, weights=None, classifier=None:
                        contrast.ContrastGuess("T1w", 0.6, {"T1w": 0.6, "MPRAGE": 0.3}))
    assert main(["maps", str(paths["pdw"]), "-o", str(tmp_path / "m")]) == 0
    assert ("the image looks like T1w (60 %); on 3-D voxels (1x1x1 mm) and MPRAGE-like (30 %), as most 3-D "
            "T1-weighted scans are: read as MPRAGE: mprage, TE 3 / TR 2300 / TI 900 ms") in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--preset", "T2w", "--ti", "500"], "error: T2w is spin echo, which has no inversion: TI 500 ms would be "
                                         "unused; leave it out"),
    (["--preset", "FLAIR", "--flip", "20"], "error: FLAIR is inversion recovery, which reads no flip angle: "
                                            "flip angle 20 deg would be unused"),
    (["--joint", "--te", "25", "--tr", "11000", "--ti", "3400", "325", "--flip", "20"],
     "error: the target is double inversion recovery, which reads no flip angle"),
])
def test_a_preset_value_its_sequence_does_not_read_is_refused_before_any_file_is_read(tmp_path, capsys, extra,
                                                                                     message):
    missing = tmp_path / "not_read.nii.gz"
    assert main(["predict", str(missing), "-o", str(tmp_path / "o.nii.gz"), "-q", *extra]) == 2
    assert capsys.readouterr().err.strip().startswith(message)
    assert not list(tmp_path.iterdir())


def test_preset_and_joint_forms_honour_the_engine_options_as_the_plain_form(scans, tiny_weights, tmp_path,
                                                                            monkeypatch):
    from napari_mr_reparam import weights
    from napari_mr_reparam.inference import Reparameterizer
    from napari_mr_reparam.models.physics_net import PhysicsNet

    card = {"arch": "physics", "task": "p2p", "width": 0.03, "base": 4, "depth": 3, "name": "mine"}
    mine = weights.save_weights(PhysicsNet(base=4, depth=3, task="p2p").state_dict(), card,
                                tmp_path / "mine.safetensors")
    seen, original = [], Reparameterizer.compute_maps
    monkeypatch.setattr(Reparameterizer, "compute_maps", lambda self, *a, **k: seen.append(
        (self.info.name, self.batch_size, self.options)) or original(self, *a, **k))
    paths, _ = scans
    options = ["--weights", str(mine), "--batch-size", "1", "--consistency", "0.2", "--flip-average"]
    out = tmp_path / "pred.nii.gz"
    assert main(["predict", str(paths["pdw"]), "--input-preset", "PDw", "--preset", "T2w", "-o", str(out),
                 "--no-detail", "-q", *options]) == 0
    [(name, batch, used)] = seen
    assert (name, batch, used.consistency, used.flip_average, used.keep_detail) == ("mine", 1, 0.2, True, False)
    assert json.loads(out.with_name("pred.json").read_text())["GeneratedBy"][0]["Model"] == "mine"
    # --joint: the network's prior of a dual echo is loaded the same way
    assert main(["predict", "--joint", str(paths["pdw"]), str(paths["t2w"]), "--input-te", "15", "100",
                 "--input-tr", "3000", "3000", "--preset", "T1w", "-o", str(tmp_path / "j.nii.gz"), "-q",
                 *options]) == 0
    assert seen[-1][:2] == ("mine", 1) and seen[-1][2].consistency == 0.2
    made = json.loads((tmp_path / "j.json").read_text())["GeneratedBy"][0]
    assert (made["Model"], made["WeightsSHA256"]) == ("joint maps", weights.sha256_of(mine))  # its prior's weights


@pytest.mark.parametrize("extra, message", [
    (["--preset", "FLAIR", "--model", "d2p"], "error: d2p predicts spin-echo images only, and FLAIR is inversion "
                                              "recovery; use --model physics, or a spin-echo preset"),
    (["--preset", "DIR", "--model", "p2p"], "error: p2p predicts spin-echo images only"),
    (["--preset", "T2w", "--model", "d2p", "--consistency", "0.5"], "error: d2p: data consistency applies to "
                                                                    "the physics model only"),
    (["--preset", "T2w", "--model", "none", "--flip-average"], "error: --flip-average applies to a network"),
])
def test_a_model_the_preset_form_cannot_use_is_refused_not_replaced(scans, tiny_weights, tmp_path, capsys,
                                                                   extra, message):
    paths, _ = scans
    out = tmp_path / "o.nii.gz"
    assert main(["predict", str(paths["pdw"]), "--input-preset", "PDw", "-o", str(out), "-q", *extra]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(message) and not out.exists()


def test_no_detail_is_refused_where_joint_maps_keep_the_inputs_resolution(scans, tiny_weights, tmp_path, capsys):
    paths, _ = scans
    assert main(["predict", "--joint", str(paths["pdw"]), str(paths["t2w"]), "--input-te", "15", "100",
                 "--input-tr", "3000", "3000", "--preset", "T1w", "-o", str(tmp_path / "j.nii.gz"), "-q",
                 "--no-detail"]) == 2
    assert "--no-detail applies to renders from one image's network maps" in capsys.readouterr().err
    from dicom_helpers import ramp, write_series

    write_series(tmp_path / "dual", [ramp(2, 16, 16), ramp(2, 16, 16) // 2], te=(15.0, 90.0), tr=3000.0)
    out = tmp_path / "d.nii.gz"
    assert main(["predict", "--joint", str(tmp_path / "dual"), "--preset", "T1w", "-o", str(out), "-q",
                 "--no-detail"]) == 2  # one folder, two acquisitions: joint maps too
    assert "--no-detail applies to renders from one image's network maps" in capsys.readouterr().err
    assert not out.exists()


def test_sequence_and_preset_together_are_refused(tmp_path, capsys):
    missing = tmp_path / "not_read.nii.gz"
    assert main(["predict", str(missing), "-o", str(tmp_path / "o.nii.gz"), "--preset", "FLAIR", "--sequence",
                 "inversion_recovery", "-q"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --sequence and --preset both name the target's sequence (FLAIR is inversion recovery); leave "
        "out --sequence, or --preset")
    assert not list(tmp_path.iterdir())


def test_a_folder_of_nifti_files_for_maps_says_to_give_the_files(scans, tmp_path, capsys):
    paths, _ = scans
    assert main(["maps", str(tmp_path), "-o", str(tmp_path / "out"), "--model", "none"]) == 2
    assert capsys.readouterr().err.strip() == (f"error: {tmp_path}: the folder holds no DICOM series; expected a "
                                               "DICOM series (give NIfTI files and images as files)")


def test_maps_help_lists_the_input_sequences_the_fit_reads(capsys):
    from napari_mr_reparam.fit_information import FIT_SEQUENCES

    with pytest.raises(SystemExit):
        main(["maps", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert f"--input-sequence SEQ [SEQ ...] {', '.join(FIT_SEQUENCES)} per input" in out
    assert "input flip angle(s), degrees (gradient_echo, mprage): one value, or one per input in order" in out
    assert ("-o OUTPUT, --output OUTPUT output folder: PD, T1map, T2map, determined (bits: 1 PD, 2 T1, 4 T2 where "
            "the inputs determine it) and, for a multi-echo train fitted with --echo-train epg, b1") in out
    assert "input inversion time(s), ms (inversion_recovery, mprage)" in out


def test_maps_refuses_an_unknown_input_sequence_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["maps", str(tmp_path / "a.nii.gz"), "-o", str(tmp_path / "out"), "--input-sequence", "flair"])
    assert stop.value.code == 2
    assert "error: argument --input-sequence: invalid choice: 'flair'" in capsys.readouterr().err


def test_maps_refuses_an_existing_map_sidecar_before_fitting(scans, tmp_path, capsys, monkeypatch):
    from napari_mr_reparam import cli_joint

    paths, _ = scans
    out = tmp_path / "maps"
    out.mkdir()
    (out / "T1map.json").write_text("{}")
    monkeypatch.setattr(cli_joint, "fit_inputs", lambda *a, **k: pytest.fail("nothing is fitted"))
    assert main(["maps", *map(str, paths.values()), "-o", str(out), *_times("--input-te"),
                 *_times("--input-tr"), "--model", "none"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {out / 'T1map.json'} exists; pass --overwrite to replace it"
    assert [p.name for p in out.iterdir()] == ["T1map.json"]


def test_maps_shows_its_progress_unless_quiet(scans, tmp_path, capsys, monkeypatch):
    import sys

    paths, _ = scans
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)  # a terminal: the bar is drawn
    common = ["maps", *map(str, paths.values()), *_times("--input-te"), *_times("--input-tr"), "--model", "none"]
    assert main(common + ["-o", str(tmp_path / "a")]) == 0
    assert "maps: 100%" in capsys.readouterr().err
    assert main(common + ["-o", str(tmp_path / "b"), "-q"]) == 0
    assert "maps:" not in capsys.readouterr().err and (tmp_path / "b" / "T1map.nii.gz").exists()


def test_maps_of_a_volume_without_an_image_name_its_file_and_write_nothing(tmp_path, capsys):
    flat = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.full((20, 20, 2), 7, np.float32), np.eye(4)), flat)
    assert main(["maps", str(flat), "-o", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == "error: flat.nii.gz: the volume holds no image: every voxel is 7"
    assert not (tmp_path / "out").exists()


def test_maps_of_a_study_folder_leave_out_its_localizer_with_a_notice(tmp_path, capsys):
    from dicom_helpers import CORONAL, oblique, ramp, write_series

    write_series(tmp_path / "study" / "dual", [ramp() + 100, ramp() // 2 + 50], te=(80.0, 10.0), tr=3000.0)
    for i, orientation in enumerate((CORONAL, oblique(90))):
        write_series(tmp_path / "study" / f"loc{i}", [ramp(1)], orientation=orientation, series_uid="1.2.3.4",
                     extra=lambda ds, e, k: setattr(ds, "SeriesDescription", "localizer"))
    out = tmp_path / "maps"
    assert main(["maps", str(tmp_path / "study"), "--model", "none", "-o", str(out), "-q"]) == 0
    assert "notice: study: series 'localizer' left out: " in capsys.readouterr().err
    assert (out / "T2map.nii.gz").is_file()


def test_maps_takes_each_resampled_inputs_noise_from_its_own_grid(tmp_path):
    """A dual echo half a voxel off the first scan's grid: `maps` fits it with the noise it
    holds where it was acquired, not the quieter level its resampled background shows."""
    from napari_mr_reparam.image_noise import estimate_noise, noise_on_own_grids

    rng = np.random.default_rng(2)
    shape = (24, 24, 6)
    pd = np.zeros(shape, np.float32)
    pd[6:18, 6:18] = 0.8
    t1, t2 = np.full(shape, 900, np.float32), np.full(shape, 80, np.float32)
    shifted = np.eye(4)
    shifted[:3, 3] = 0.5
    files = []
    for name, te, tr, affine in (("t1w", 15, 500, np.eye(4)), ("pdw", 15, 3000, shifted), ("t2w", 100, 3000, shifted)):
        clean = np.asarray(physics.spin_echo(pd, t1, t2, te, tr), np.float32) * 1000
        sd = 0.01 * clean.max()
        noisy = np.hypot(clean + rng.normal(0, sd, shape), rng.normal(0, sd, shape)).astype(np.float32)
        nib.save(nib.Nifti1Image(noisy, affine), tmp_path / f"{name}.nii.gz")
        files.append(str(tmp_path / f"{name}.nii.gz"))
    out = tmp_path / "maps"
    rc = main(["maps", *files, "--input-te", "15", "15", "100", "--input-tr", "500", "3000", "3000",
               "--model", "none", "-o", str(out)])
    assert rc == 0
    taken = json.loads((out / "maps.json").read_text())["noise"]
    own = noise_on_own_grids([load_volume(f) for f in files])
    assert taken == pytest.approx(own, abs=1e-5)
    from napari_mr_reparam.grids import on_one_grid

    after = estimate_noise([v.data for v in on_one_grid([load_volume(f) for f in files])[0]])
    assert max(after[1:]) < 0.6 * min(taken[1:])  # what the fit took before


def test_a_4d_nifti_gives_maps_from_its_volumes_and_predict_one_output_each(scans, tmp_path, capsys, tiny_weights):
    paths, truth = scans
    four = _four_d(scans, tmp_path)
    out = tmp_path / "maps4d"
    assert main(["maps", str(four), "-o", str(out), "--model", "none"]) == 0
    t1 = nib.load(out / "T1map.nii.gz").get_fdata()
    inside = truth["inside"]
    assert t1.shape == truth["t1"].shape
    assert np.median(np.abs(t1[inside] / truth["t1"][inside] - 1)) < 0.02
    meta = json.loads((out / "maps.json").read_text())
    assert [(a["EchoTime_ms"], a["RepetitionTime_ms"]) for a in meta["acquisitions"]] == [
        (15, 3000), (100, 3000), (15, 500)]

    each = tmp_path / "each"
    assert main(["predict", str(four), "-o", str(each), "--model", "physics", "--te", "40", "--tr", "2000",
                 "-q"]) == 0
    assert sorted(p.name for p in each.glob("*.nii.gz")) == [
        f"series_acq{i}_TE40_TR2000.nii.gz" for i in (1, 2, 3)]
    assert nib.load(each / "series_acq1_TE40_TR2000.nii.gz").shape == truth["t1"].shape
    assert "series: 3 acquisitions, each predicted separately" in capsys.readouterr().err
    one = tmp_path / "one.nii.gz"
    assert main(["predict", str(four), "-o", str(one), "--model", "physics", "--te", "40", "--tr", "2000",
                 "--acquisition", "3", "-q"]) == 0 and one.is_file()
    assert main(["predict", str(paths["t1w"]), "-o", str(tmp_path / "x.nii.gz"), "--te", "40", "--tr", "2000",
                 "--acquisition", "1"]) == 2
    assert "or one volume of a 4-D NIfTI file, and this input is neither" in capsys.readouterr().err


def test_a_4d_niftis_volume_chosen_for_a_preset_is_named_by_its_number(scans, tmp_path, capsys, tiny_weights):
    """``--preset --acquisition N`` names a 4-D file's volume ``FILE_acqN`` as a DICOM
    series' acquisition, so two volumes do not share one output; --joint takes them all."""
    four = _four_d(scans, tmp_path)
    out = tmp_path / "chosen"
    for n in (1, 2):
        assert main(["predict", str(four), "--preset", "T1w", "--acquisition", str(n), "-o", f"{out}/", "-q"]) == 0
    assert sorted(p.name for p in out.glob("*.nii.gz")) == ["series_acq1_T1w.nii.gz", "series_acq2_T1w.nii.gz"]
    capsys.readouterr()
    joint = tmp_path / "joint.nii.gz"
    assert main(["predict", "--joint", str(four), "--acquisition", "2", "--te", "80", "--tr", "3000",
                 "-o", str(joint)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --acquisition 2 picks one acquisition to predict from alone, and --joint fits")
    assert len(err.splitlines()) == 1 and not joint.exists()


def test_predict_help_says_how_a_4d_files_volumes_are_numbered(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "the N-th of a DICOM series (1 = shortest TI, then TE) or the N-th volume of a 4-D NIfTI file " \
           "(in the file's order)" in out


def _four_d(scans, tmp_path):
    """The scans as one 4-D NIfTI file, its sidecar listing each volume's times."""
    paths, _ = scans
    stacked = np.stack([np.asarray(nib.load(paths[name]).dataobj) for name in ACQS], axis=-1)
    four = tmp_path / "series.nii.gz"
    nib.save(nib.Nifti1Image(stacked, np.eye(4)), four)
    (tmp_path / "series.json").write_text(json.dumps({"EchoTime": [0.015, 0.1, 0.015],
                                                      "RepetitionTime": [3.0, 3.0, 0.5]}))
    return four


def test_maps_of_one_input_are_the_networks_and_their_sidecars_say_so(scans, tmp_path, tiny_weights, capsys):
    paths, _ = scans
    out = tmp_path / "one"
    assert main(["maps", str(paths["pdw"]), "--input-te", "15", "--input-tr", "3000", "-o", str(out), "-q"]) == 0
    assert capsys.readouterr().out.strip().endswith(  # not "determined ... 0 %": what they are
        "PD, T1, T2 maps (T1/T2 in ms); the physics network's reading of one image (one image measures none of "
        "them: give two or three images of the subject to measure them)")
    pd = json.loads((out / "PD.json").read_text())
    assert pd["Units"] == "fraction of water's proton density (the network's estimate)"
    assert {json.loads((out / f"{name}.json").read_text())["GeneratedBy"][0]["Model"]
            for name in ("PD", "T1map", "T2map", "determined")} == {"physics"}
    from napari_mr_reparam.weights import sha256_of

    assert {json.loads((out / f"{name}.json").read_text())["GeneratedBy"][0]["WeightsSHA256"]
            for name in ("PD", "T1map", "T2map", "maps")} == {sha256_of(tiny_weights / "physics.safetensors")}


def test_maps_say_when_the_times_given_replace_a_sidecars(scans, tmp_path, capsys):
    """Sidecars in seconds that state other times: the options win, with a notice, as
    ``predict`` gives one."""
    paths, _ = scans
    for name in ACQS:
        (tmp_path / f"{name}.json").write_text(json.dumps({"EchoTime": 0.02, "RepetitionTime": 2.0}))
    assert main(["maps", *map(str, paths.values()), "-o", str(tmp_path / "m"), *_times("--input-te"),
                 *_times("--input-tr"), "--model", "none", "-q"]) == 0
    err = capsys.readouterr().err
    assert "notice: --input-te replaces the TE that the DICOM tags or sidecars of 3 of 3 inputs state " \
           "(20, 20, 20 ms)" in err
    assert "notice: --input-tr replaces the TR that the DICOM tags or sidecars of 3 of 3 inputs state" in err


def test_maps_and_predict_refuse_a_folder_of_unrelated_series_in_one_line(tmp_path, tiny_weights, capsys):
    """Two series of other studies in one folder are not two acquisitions of one: `maps` and
    `predict` refuse the folder in one line that lists them, and write nothing."""
    from dicom_helpers import ramp, write_series

    for sub, number, study, size in (("a", 4, "1.2.1", 16), ("b", 9, "1.2.2", 12)):
        write_series(tmp_path / "mixed" / sub, [ramp(1, size, size)], te=(25.0,), tr=3000.0,
                     extra=lambda ds, e, k, n=number, s=study: (setattr(ds, "SeriesNumber", n),
                                                                setattr(ds, "StudyInstanceUID", s)))
    refusal = ("mixed: the files hold 2 DICOM series, not one scan's acquisitions (their studies or "
               "slice grids differ): series 4 'test series' (1 file), series 9 'test series' (1 file); give "
               "the folder or files of one series\n")  # --preset names the folder by its path
    for command in (["maps", str(tmp_path / "mixed"), "--model", "none", "-o", str(tmp_path / "out")],
                    ["predict", str(tmp_path / "mixed"), "--te", "90", "--tr", "3000", "-o", str(tmp_path / "out")],
                    ["predict", str(tmp_path / "mixed"), "--preset", "T2w", "-o", str(tmp_path / "out")]):
        assert main([*command, "-q"]) == 2
        err = capsys.readouterr().err.replace("preset T2w: spin echo, TE 100 / TR 4000 ms\n", "")
        assert err.startswith("error: ") and err.endswith(refusal) and len(err.splitlines()) == 1
        assert not (tmp_path / "out").exists()


def test_acquisitions_of_one_folder_off_each_others_grid_are_named_apart(tmp_path, capsys):
    """Two echoes of one series far apart: the refusal names each by its place among the
    inputs, not the folder twice."""
    from dicom_helpers import ramp, write_series

    def far(ds, echo, k):
        if echo == 1:
            ds.ImagePositionPatient = [float(v) + (500.0 if i == 2 else 0.0) for i, v in
                                       enumerate(ds.ImagePositionPatient)]

    write_series(tmp_path / "dual", [ramp(2, 8, 8), ramp(2, 8, 8) // 2], te=(15.0, 90.0), tr=3000.0, extra=far)
    assert main(["maps", str(tmp_path / "dual"), "--model", "none", "-o", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith(
        "error: dual (input 2) lies outside the field of view of dual (input 1) by their affines")


def test_preset_names_the_acquisition_used_and_its_plane_as_predict_does(tmp_path, tiny_weights, capsys):
    """`predict --preset --acquisition N` names the acquisition (``SERIES_acqN (TE ..)``, at
    the times used, an option's over its tags') and says its slices are coronal."""
    from dicom_helpers import CORONAL, ramp, write_series

    write_series(tmp_path / "dual", [ramp(3, 16, 16), ramp(3, 16, 16) // 2], te=(15.0, 90.0), tr=3000.0,
                 orientation=CORONAL)
    one = tmp_path / "one.nii.gz"
    assert main(["predict", str(tmp_path / "dual"), "--preset", "T1w", "--acquisition", "2", "--input-te", "80",
                 "-o", str(one)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("ok dual_acq2 (TE 80 / TR 3000 ms): T1w: ")
    assert "notice: dual_acq2: its slices are coronal" in captured.err and one.is_file()


def test_a_series_plane_is_told_once_not_per_acquisition(tmp_path, tiny_weights, capsys):
    from dicom_helpers import CORONAL, ramp, write_series

    write_series(tmp_path / "dual", [ramp(3, 16, 16), ramp(3, 16, 16) // 2], te=(15.0, 90.0), tr=3000.0,
                 orientation=CORONAL)
    for n, extra in enumerate((["--te", "40", "--tr", "3000"], ["--preset", "T1w"])):
        assert main(["predict", str(tmp_path / "dual"), *extra, "-o", str(tmp_path / f"out{n}")]) == 0
        assert capsys.readouterr().err.count("its slices are coronal") == 1


def test_several_presets_are_rendered_from_one_fit(tmp_path, tiny_weights, capsys, monkeypatch):
    from dicom_helpers import ramp, write_series

    from napari_mr_reparam import cli_joint

    write_series(tmp_path / "pdw", [ramp(3, 16, 16)], te=(15.0,), tr=3000.0)
    write_series(tmp_path / "t2w", [ramp(3, 16, 16) // 2], te=(90.0,), tr=3000.0)
    fits = []
    real = cli_joint.fit_inputs
    monkeypatch.setattr(cli_joint, "fit_inputs", lambda *a, **k: fits.append(1) or real(*a, **k))
    out = tmp_path / "out"
    assert main(["predict", "--joint", str(tmp_path / "pdw"), str(tmp_path / "t2w"), "--preset", "T1w", "FLAIR",
                 "DIR", "-o", str(out), "-q"]) == 0
    assert len(fits) == 1 and sorted(p.name for p in out.glob("*.nii.gz")) == [
        "pdw_joint_DIR.nii.gz", "pdw_joint_FLAIR.nii.gz", "pdw_joint_T1w.nii.gz"]
    capsys.readouterr()
    assert main(["predict", "--joint", str(tmp_path / "pdw"), str(tmp_path / "t2w"), "--preset", "T1w", "FLAIR",
                 "--te", "20", "-o", str(tmp_path / "other"), "-q"]) == 2
    assert "--te override one --preset's values; with several presets (T1w, FLAIR)" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "pdw"), "--model", "p2p", "--preset", "T1w", "T2w",
                 "-o", str(tmp_path / "p2p"), "-q"]) == 2
    assert "p2p takes one --preset at a time" in capsys.readouterr().err


def test_a_joint_fits_plane_notice_names_the_first_input(tmp_path, tiny_weights, capsys):
    from dicom_helpers import CORONAL, ramp, write_series

    write_series(tmp_path / "pdw", [ramp(3, 16, 16)], te=(15.0,), tr=3000.0, orientation=CORONAL)
    write_series(tmp_path / "t2w", [ramp(3, 16, 16) // 2], te=(90.0,), tr=3000.0, orientation=CORONAL)
    assert main(["predict", "--joint", str(tmp_path / "pdw"), str(tmp_path / "t2w"), "--preset", "T1w",
                 "-o", str(tmp_path / "joint.nii.gz"), "-q"]) == 0
    assert "notice: pdw: its slices are coronal" in capsys.readouterr().err


def test_inputs_from_several_paths_one_bringing_several_images_take_a_gain_per_path():
    from types import SimpleNamespace

    from napari_mr_reparam.cli_joint import _named_by_source, gains_of

    def vols(*sources):
        return [SimpleNamespace(source=s) for s in sources]

    ir_and_train = vols("ir", "ir", "ir", "train", "train")
    assert gains_of(ir_and_train, "auto") == ["ir", "ir", "ir", "train", "train"]
    assert gains_of(ir_and_train, "shared") == "shared" and gains_of(ir_and_train, "per-input") == "per_input"
    assert gains_of(vols("t1w.nii", "t2w.nii"), "auto") == "shared"  # lone images: as before
    assert gains_of(vols("series", "series"), "auto") == "shared"  # one series
    assert gains_of(vols("t1w.nii", "t2w.nii"), "per-series") == ["t1w.nii", "t2w.nii"]
    from collections import Counter

    volumes = vols("ir", "ir", "train", "train", "train", "flair.nii")
    count = Counter(v.source for v in volumes)
    assert _named_by_source(volumes, [2, 3, 4, 5], count) == "train (inputs 3-5), flair.nii"
    assert _named_by_source(volumes, [1], count) == "ir (input 2)"


def test_notices_name_input_paths_from_where_they_part():
    from collections import Counter
    from types import SimpleNamespace

    from napari_mr_reparam.cli_joint import _named_by_source, series_gains_note

    sources = ["data/T1/site4/plate5"] * 3 + ["data/T2/site4/plate5"] * 2
    volumes = [SimpleNamespace(source=s) for s in sources]
    resampled = _named_by_source(volumes, [3, 4], Counter(sources))
    maps = SimpleNamespace(scales=[1.0, 1.0, 1.0, 2.5, 2.5], gains_found=["misfit"] * 5)
    gains = series_gains_note(sources, maps)
    assert resampled == "T2/site4/plate5 (inputs 4, 5)"
    assert gains == ("one receiver gain per input path, relative to the first, T1/site4/plate5: T2/site4/plate5 x2.5 "
                     "(from the fit's misfit)")


def test_maps_as_png_of_a_volume_are_refused_before_the_fit_and_leave_no_folder(scans, tmp_path, capsys):
    paths, _ = scans
    out = tmp_path / "maps"
    assert main(["maps", str(paths["pdw"]), str(paths["t2w"]), *_times("--input-te")[:3], *_times("--input-tr")[:3],
                 "--model", "none", "-o", str(out), "--suffix", ".png", "-q"]) == 2
    assert "a PNG holds one slice, the maps have" in capsys.readouterr().err and not out.exists()


def test_the_gain_note_names_each_series_from_where_their_paths_part():
    from types import SimpleNamespace

    from napari_mr_reparam.cli_joint import series_gains_note

    maps = SimpleNamespace(scales=[1.0, 1.0, 2.5], gains_found=("first", "misfit"))
    note = series_gains_note(["/d/T1/site/plate5", "/d/T1/site/plate5", "/d/T2/site/plate5"], maps)
    assert note == ("one receiver gain per input path, relative to the first, T1/site/plate5: T2/site/plate5 x2.5 "
                    "(from the fit's misfit)")


def test_several_inputs_that_name_nothing_are_refused_not_guessed(scans, tmp_path, capsys, monkeypatch):
    """Two images read as the contrast they look like could get one acquisition: maps of
    them would mean nothing, so several inputs of one subject are never guessed."""
    from napari_mr_reparam import contrast

    paths, _ = scans
    monkeypatch.setattr(contrast, "guess_input", lambda volume, weights=None, classifier=None:
                        contrast.ContrastGuess("PDw", 0.8, {"PDw": 0.8}))
    inputs = [str(paths["pdw"]), str(paths["t2w"])]
    for command in (["maps", *inputs, "-o", str(tmp_path / "m")],
                    ["predict", "--joint", *inputs, "--preset", "T2w", "-o", str(tmp_path / "j.nii.gz")]):
        assert main([*command, "--model", "none", "-q"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.endswith("error: pdw.nii.gz, t2w.nii.gz: no TE or TR known; give --input-te/--input-tr (one per "
                            "input) or --input-preset NAME, or a BIDS sidecar beside it; several images of one "
                            "subject are not read as the contrast each looks like")
        assert "looks like PDw" not in err
    assert not (tmp_path / "m").exists() and not (tmp_path / "j.nii.gz").exists()
    (tmp_path / "pdw.json").write_text(json.dumps({"EchoTime": 0.015, "RepetitionTime": 3.0}))  # one named
    assert main(["maps", *inputs, "-o", str(tmp_path / "m"), "--model", "none", "-q"]) == 2
    assert "error: t2w.nii.gz: no TE or TR known" in capsys.readouterr().err


def test_an_input_ti_or_flip_is_read_by_one_rule_and_never_dropped(scans, tmp_path, capsys):
    """maps and --joint read an input of a TI as inversion recovery; a flip angle its
    sequence does not read is refused, not dropped."""
    paths, _ = scans
    inputs = [str(paths["pdw"]), str(paths["t2w"]), "--input-te", "15", "100", "--input-tr", "3000",
              "--model", "none", "-q"]
    assert main(["maps", *inputs, "-o", str(tmp_path / "m"), "--input-flip", "12"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: pdw.nii.gz: --input-flip 12 applies to gradient_echo or mprage inputs, and this input is read as "
        "spin echo; leave out --input-flip, or name its sequence with --input-sequence gradient_echo or mprage")
    assert main(["maps", *inputs, "-o", str(tmp_path / "m"), "--input-sequence", "spin_echo", "gradient_echo",
                 "--input-flip", "90", "12"]) == 2
    assert "error: pdw.nii.gz: --input-flip 90 applies to gradient_echo or mprage" in capsys.readouterr().err
    assert main(["maps", *inputs, "-o", str(tmp_path / "m"), "--input-sequence", "gradient_echo", "spin_echo",
                 "--input-ti", "900"]) == 2  # one value that no input reads
    assert "error: pdw.nii.gz: --input-ti 900 applies to inversion_recovery or mprage" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
    assert main(["maps", *inputs, "-o", str(tmp_path / "m"), "--input-ti", "900"]) == 0
    acqs = json.loads((tmp_path / "m" / "maps.json").read_text())["acquisitions"]
    assert [(a["sequence"], a["InversionTime_ms"]) for a in acqs] == [("inversion_recovery", 900)] * 2


def test_a_gradient_echo_input_tr_of_a_few_ms_is_taken_as_the_api_takes_it(scans, tmp_path, capsys):
    paths, _ = scans
    common = ["maps", str(paths["pdw"]), str(paths["t1w"]), "--input-te", "2.5", "--input-tr", "7.5",
              "--input-flip", "12", "40", "--model", "none", "-q"]
    assert main([*common, "--input-sequence", "gradient_echo", "-o", str(tmp_path / "m")]) == 0
    acqs = json.loads((tmp_path / "m" / "maps.json").read_text())["acquisitions"]
    assert [(a["sequence"], a["RepetitionTime_ms"]) for a in acqs] == [("gradient_echo", 7.5)] * 2
    assert main([*common, "-o", str(tmp_path / "n")]) == 2  # its sequence unknown: most likely seconds
    assert capsys.readouterr().err.strip().endswith(
        "error: input TR 7.5 looks like seconds; times are in milliseconds (did you mean 7500 ms?); a gradient "
        "echo's TR may be a few ms: name the input's sequence with --input-sequence gradient_echo")
    assert main([*common, "--input-sequence", "spin_echo", "-o", str(tmp_path / "n")]) == 2
    assert capsys.readouterr().err.strip().endswith("error: input TR 7.5 looks like seconds; times are in "
                                                    "milliseconds (did you mean 7500 ms?)")


def test_maps_and_joint_refuse_an_input_given_twice_before_any_work(scans, tmp_path, capsys, monkeypatch):
    from napari_mr_reparam import cli_joint

    monkeypatch.setattr(cli_joint, "load_inputs", lambda *a, **k: pytest.fail("nothing is read"))
    paths, _ = scans
    same = [str(paths["pdw"]), f"{tmp_path}/./pdw.nii.gz"]
    times = ["--input-te", "15", "100", "--input-tr", "500", "3000", "--model", "none", "-q"]
    for command in (["maps", *same, "-o", str(tmp_path / "m")],
                    ["predict", "--joint", *same, "--preset", "T2w", "-o", str(tmp_path / "j.nii.gz")]):
        assert main([*command, *times]) == 2
        assert capsys.readouterr().err.strip().endswith(
            f"error: {same[1]} is given twice ({same[0]} and {same[1]}): it would be fitted as two images of the "
            "subject; give it once")
    assert not (tmp_path / "m").exists() and not (tmp_path / "j.nii.gz").exists()


def test_a_map_written_over_an_input_is_refused_even_with_overwrite(scans, tmp_path, capsys):
    paths, _ = scans
    folder = tmp_path / "mt"
    folder.mkdir()
    t1map = folder / "T1map.nii.gz"
    t1map.write_bytes(paths["pdw"].read_bytes())
    before = t1map.read_bytes()
    assert main(["maps", str(t1map), str(paths["t2w"]), "--input-te", "15", "100", "--input-tr", "3000",
                 "--model", "none", "-o", str(folder), "--overwrite", "-q"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {t1map} would be written over the input {t1map}; an output never replaces an input or its "
        "sidecar (not even with --overwrite): choose another output name or folder")
    assert t1map.read_bytes() == before and sorted(p.name for p in folder.iterdir()) == ["T1map.nii.gz"]
    joint = tmp_path / "pdw.nii"  # its sidecar is pdw.json, the input pdw.nii.gz's
    (tmp_path / "pdw.json").write_text(json.dumps({"EchoTime": 0.015, "RepetitionTime": 3.0}))
    assert main(["predict", "--joint", str(paths["pdw"]), str(paths["t2w"]), "--input-te", "15", "100",
                 "--input-tr", "3000", "--model", "none", "--preset", "T2w", "-o", str(joint), "--overwrite"]) == 2
    assert f"error: {tmp_path / 'pdw.json'} would be written over the sidecar of the input" in capsys.readouterr().err
    assert not joint.exists()


def _multi_echo_train(folder):
    """A multi-echo spin-echo train (12 echoes, echo spacing 10 ms) as a DICOM series."""
    from dicom_helpers import write_series

    from napari_mr_reparam import epg

    t2 = np.exp(np.random.default_rng(2).uniform(np.log(40), np.log(150), (2, 16, 16)))
    echoes = np.mean([epg.cpmg_echoes(12, 10.0, t2, 0.75 * p) for p in epg.slice_profile()], axis=0)
    write_series(folder, [np.rint(3000 * echoes[..., k]) for k in range(12)], te=tuple(10.0 * (k + 1)
                                                                                       for k in range(12)), tr=3000.0)
    return folder


def test_maps_overwrite_removes_the_earlier_runs_outputs_this_run_does_not_write(tmp_path, capsys):
    train = _multi_echo_train(tmp_path / "mese")
    out = tmp_path / "maps"
    assert main(["maps", str(train), "-o", str(out), "--model", "none", "-q"]) == 0
    assert (out / "b1.nii.gz").is_file()
    (out / "notes.txt").write_text("mine")
    (out / "b1_mine.nii.gz").write_bytes(b"not ours")
    capsys.readouterr()
    assert main(["maps", str(train), "-o", str(out), "--model", "none", "--echo-train", "ideal", "--overwrite",
                 "-q"]) == 0
    err = capsys.readouterr().err
    assert (f"notice: {out}: removed b1.nii.gz, b1.json, written there by an earlier run of maps and not by this one "
            "(--overwrite replaces a run's outputs; other files are kept)") in err
    assert sorted(p.name for p in out.iterdir()) == [
        "PD.json", "PD.nii.gz", "T1map.json", "T1map.nii.gz", "T2map.json", "T2map.nii.gz", "b1_mine.nii.gz",
        "determined.json", "determined.nii.gz", "maps.json", "notes.txt"]
    assert json.loads((out / "maps.json").read_text())["flip_angle_scale"] is None
    import nibabel as nib

    bits = nib.load(out / "determined.nii.gz")  # a mask of bits, stored as one
    assert bits.get_data_dtype() == np.uint8 and set(np.unique(np.asarray(bits.dataobj))) <= set(range(8))
    mine = tmp_path / "mine"  # a folder of the user's own files of map names, no record of a run: all kept
    mine.mkdir()
    (mine / "b1.nii.gz").write_bytes(b"the user's own")
    assert main(["maps", str(train), "-o", str(mine), "--model", "none", "--echo-train", "ideal", "--overwrite",
                 "-q"]) == 0
    assert (mine / "b1.nii.gz").read_bytes() == b"the user's own" and "removed" not in capsys.readouterr().err


def test_joint_inputs_are_recorded_by_the_paths_that_tell_them_apart_with_their_source(tmp_path):
    from dicom_helpers import ramp, write_series

    write_series(tmp_path / "T1" / "site" / "plate5", [ramp(2, 16, 16), ramp(2, 16, 16) // 2], te=(15.0, 15.0),
                 ti=(100.0, 900.0), tr=3000.0, scanning="IR")
    write_series(tmp_path / "T2" / "site" / "plate5", [ramp(2, 16, 16)], te=(100.0,), tr=3000.0)
    out = tmp_path / "joint.nii.gz"
    assert main(["predict", "--joint", str(tmp_path / "T1" / "site" / "plate5"),
                 str(tmp_path / "T2" / "site" / "plate5"), "--te", "80", "--tr", "3000", "--model", "none", "-q",
                 "-o", str(out)]) == 0
    records = json.loads((tmp_path / "joint.json").read_text())["Inputs"]
    assert [(r["File"], r.get("Acquisition"), r["Source"]) for r in records] == [
        ("T1/site/plate5", "plate5_acq1", "DICOM tags"), ("T1/site/plate5", "plate5_acq2", "DICOM tags"),
        ("T2/site/plate5", None, "DICOM tags")]


def test_a_preset_outputs_sidecar_names_the_target_preset_and_where_the_input_came_from(scans, tmp_path):
    paths, _ = scans
    out = tmp_path / "pred_t2w.nii.gz"
    assert main(["predict", str(paths["pdw"]), "--preset", "T2w", "--input-preset", "PDw", "--model", "none",
                 "-o", str(out), "-q"]) == 0
    meta = json.loads((tmp_path / "pred_t2w.json").read_text())
    assert meta["Preset"] == "T2w"
    assert (meta["Input"]["File"], meta["Input"]["Source"], meta["Input"]["Preset"]) == ("pdw.nii.gz", "given", "PDw")
    (tmp_path / "t1w.json").write_text(json.dumps({"EchoTime": 0.015, "RepetitionTime": 0.5}))
    joint = tmp_path / "flair.nii.gz"
    assert main(["predict", "--joint", str(paths["t1w"]), str(paths["t2w"]), "--input-te", "15", "100",
                 "--input-tr", "500", "3000", "--model", "none", "--preset", "FLAIR", "-o", str(joint), "-q"]) == 0
    meta = json.loads((tmp_path / "flair.json").read_text())
    assert meta["Preset"] == "FLAIR"
    assert [(r["File"], r["Source"]) for r in meta["Inputs"]] == [("t1w.nii.gz", "given"), ("t2w.nii.gz", "given")]


def test_a_one_slice_scan_moved_onto_the_first_slice_is_said_and_recorded(tmp_path, capsys):
    import nibabel as nib

    from napari_mr_reparam.cli_joint import on_first_grid
    from napari_mr_reparam.io import load_volume

    paths = []
    for folder, z in (("ir", 0.0), ("train", 2.9)):
        (tmp_path / folder).mkdir()
        affine = np.diag([1.0, 1.0, 5.0, 1.0])
        affine[2, 3] = z
        nib.save(nib.Nifti1Image(np.random.default_rng(0).random((20, 20, 1)).astype(np.float32) + 1, affine),
                 tmp_path / folder / "plate5.nii.gz")
        paths.append(str(tmp_path / folder / "plate5.nii.gz"))
    out, names = on_first_grid([load_volume(p) for p in paths])
    err = capsys.readouterr().err
    assert "notice: train/plate5.nii.gz: its slice moved 2.9 mm onto the first's: the slabs share 42 %\n" in err
    assert names == [f"{paths[1]} (its slice moved 2.9 mm onto the first's: the slabs share 42 %)"]


def _nan_patch(path) -> None:
    """Twenty voxels of the object in ``path`` made NaN (not measured)."""
    image = nib.load(path)
    data = image.get_fdata().astype(np.float32)
    data[5:10, 5:9, 0] = np.nan
    nib.save(nib.Nifti1Image(data, image.affine), path)


def test_inputs_with_voxels_not_measured_are_named_and_the_share_is_said_truly(scans, tmp_path, capsys):
    paths, _ = scans
    _nan_patch(paths["t2w"])
    times = [*_times("--input-te"), *_times("--input-tr"), "--model", "none", "-q"]
    assert main(["maps", *map(str, paths.values()), *times, "-o", str(tmp_path / "m")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert "notice: t2w.nii.gz: 20 voxels are NaN or infinite (not measured): fitted there to the other inputs" in err
    assert ("notice: 5 % of the object is not measured by every input (NaN or infinite in some input): fitted there "
            "to the inputs that measure it") in err
    assert not any("field of view" in line for line in err)
    assert main(["predict", "--joint", *map(str, paths.values()), *times, "--preset", "T2w",
                 "-o", str(tmp_path / "j.nii.gz")]) == 0
    assert "notice: t2w.nii.gz: 20 voxels are NaN or infinite (not measured): fitted there to the other inputs" \
        in capsys.readouterr().err.splitlines()
    assert main(["maps", str(paths["t2w"]), "--input-te", "100", "--input-tr", "3000", "--model", "none", "-q",
                 "-o", str(tmp_path / "one")]) == 0
    assert capsys.readouterr().err.splitlines() == [
        "notice: t2w.nii.gz: 20 voxels are NaN or infinite (not measured): NaN in the maps"]
    for path in paths.values():  # the same patch in every input: no input measures it
        _nan_patch(path)
    assert main(["maps", *map(str, paths.values()), *times, "-o", str(tmp_path / "every")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert "notice: t2w.nii.gz: 20 voxels are NaN or infinite (not measured): no input measures them: NaN in the maps" \
        in err
    assert np.isnan(nib.load(tmp_path / "every" / "T2map.nii.gz").get_fdata()).sum() == 20


def test_an_impossible_input_time_names_its_input(scans, tmp_path, capsys):
    paths, _ = scans
    times = ["--input-te", "15", "5000", "15", *_times("--input-tr"), "--model", "none", "-q"]
    assert main(["maps", *map(str, paths.values()), *times, "-o", str(tmp_path / "m")]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == "error: t2w.nii.gz: TE (5000 ms) must be shorter than TR (3000 ms)"
    assert main(["predict", "--joint", *map(str, paths.values()), *times, "--preset", "T2w",
                 "-o", str(tmp_path / "j.nii.gz")]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == "error: t2w.nii.gz: TE (5000 ms) must be shorter than TR (3000 ms)"


def test_joint_inputs_given_as_single_dicom_files_are_recorded_by_those_files(tmp_path):
    from dicom_helpers import ramp, write_series

    files = write_series(tmp_path / "plate4", [ramp(1, 16, 16), ramp(1, 16, 16) // 2], te=(15.0, 90.0), tr=3000.0,
                         shuffle=False)
    out = tmp_path / "joint.nii.gz"
    assert main(["predict", "--joint", *map(str, files), "--te", "80", "--tr", "3000", "--model", "none", "-q",
                 "-o", str(out)]) == 0
    records = json.loads((tmp_path / "joint.json").read_text())["Inputs"]
    assert [(r["File"], r.get("Acquisition"), r["EchoTime"]) for r in records] == [
        ("IM0000", None, 0.015), ("IM0001", None, 0.09)]


def test_each_maps_sidecar_says_how_much_of_it_the_inputs_determine(tmp_path):
    from dicom_helpers import write_series

    t1 = np.exp(np.random.default_rng(3).uniform(np.log(200), np.log(1500), (2, 16, 16)))
    tis = (100.0, 300.0, 900.0)
    write_series(tmp_path / "ir", [np.rint(3000 * physics.inversion_recovery(1.0, t1, 80.0, 10.0, 3000.0, ti))
                                   for ti in tis], te=(10.0,) * 3, tr=3000.0, ti=tis, scanning="IR")
    out = tmp_path / "maps"
    assert main(["maps", str(tmp_path / "ir"), "-o", str(out), "--model", "none", "-q"]) == 0
    summary = json.loads((out / "maps.json").read_text())
    sidecars = {key: json.loads((out / f"{name}.json").read_text()) for key, name in
                (("pd", "PD"), ("t1", "T1map"), ("t2", "T2map"))}
    assert {key: (s["determined_fraction"], s["prior_source"]) for key, s in sidecars.items()} == {
        key: (summary["determined_fraction"][key], "default") for key in sidecars}
    assert sidecars["t2"]["determined_fraction"] == 0 and sidecars["t1"]["determined_fraction"] > 0.9


def test_series_of_two_people_are_refused_before_any_notice_on_them(tmp_path, capsys):
    from dicom_helpers import CORONAL, write_series

    def person(name):
        def edit(ds, echo, k):
            ds.PatientID = name
        return edit

    grid = dict(orientation=CORONAL, origin=(-20.0, 0.0, 14.0), row_mm=1.0, col_mm=1.0, step_mm=2.0)
    image = np.arange(4 * 16 * 16, dtype=np.float32).reshape(4, 16, 16) + 100.0
    write_series(tmp_path / "a", [image], te=(15.0,), tr=3000.0, extra=person("one"), **grid)
    write_series(tmp_path / "b", [image * 0.5], te=(90.0,), tr=3000.0, extra=person("two"), **grid)
    out = tmp_path / "joint.nii.gz"
    assert main(["predict", "--joint", str(tmp_path / "a"), str(tmp_path / "b"), "--preset", "T2w",
                 "-o", str(out)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == "error: b and a are scans of different people (their DICOM PatientID differ): joint maps " \
                      "need images of one subject"
    assert not any(line.startswith("notice:") for line in err) and not out.exists()


def test_joint_targets_take_a_given_sequence_as_given():
    from types import SimpleNamespace

    from napari_mr_reparam.cli_joint import _targets

    def sequences(**given):
        args = SimpleNamespace(**{"preset": None, "te": [20], "tr": [9000], "ti": None, "flip": None,
                                  "sequence": None, **given})
        return [p.sequence for _, p in _targets(args)]

    assert sequences(ti=[2500]) == ["inversion_recovery"]
    assert sequences(ti=[2500, 500]) == ["double_inversion_recovery"]
    assert sequences(flip=20.0) == ["gradient_echo"]
    assert sequences(sequence="double_inversion_recovery", ti=[2500, 500]) == ["double_inversion_recovery"]
    with pytest.raises(ValueError, match="has no second inversion"):
        sequences(sequence="inversion_recovery", ti=[2500, 500])
    with pytest.raises(ValueError, match="has no inversion"):
        sequences(sequence="spin_echo", ti=[2500])


def test_a_dicom_file_given_with_its_series_folder_is_refused_not_fitted_twice(tmp_path, capsys):
    from dicom_helpers import ramp, write_series

    files = write_series(tmp_path / "dual", [ramp(1, 8, 8), ramp(1, 8, 8) // 2], te=(15.0, 90.0), tr=3000.0)
    one = str(files[0])
    for command in (["maps", str(tmp_path / "dual"), one, "-o", str(tmp_path / "m")],
                    ["predict", "--joint", str(tmp_path / "dual"), one, "--preset", "T2w",
                     "-o", str(tmp_path / "j.nii.gz")]):
        assert main([*command, "--model", "none", "-q"]) == 2
        assert capsys.readouterr().err.strip().endswith(
            f"error: {one} is read in {tmp_path / 'dual'} too: it would be fitted as two images of the subject; "
            "give the series' folder or its files, not both")
    # predicted one by one, it would be written twice
    assert main(["predict", one, str(tmp_path / "dual"), "--te", "100", "--tr", "3000", "--model", "none",
                 "-o", str(tmp_path / "p")]) == 2
    assert capsys.readouterr().err.strip().endswith(
        f"error: {one} is read in {tmp_path / 'dual'} too: both would be written to the same outputs; give the "
        "series' folder or its files, not both")
    assert not (tmp_path / "m").exists() and not (tmp_path / "j.nii.gz").exists() and not (tmp_path / "p").exists()


def test_joint_predict_says_when_the_inputs_leave_a_time_open(scans, tmp_path, capsys):
    paths, _ = scans
    dual = [str(paths[name]) for name in ("pdw", "t2w")]
    te = [str(ACQS[name][0]) for name in ("pdw", "t2w")]
    tr = [str(ACQS[name][1]) for name in ("pdw", "t2w")]
    common = ["predict", "--joint", *dual, "--input-te", *te, "--input-tr", *tr, "--model", "none", "--preset", "T1w"]
    assert main([*common, "-o", str(tmp_path / "out_t1w.nii.gz")]) == 0
    err = capsys.readouterr().err
    assert "notice: the inputs determine T1 in 0 % of the object; elsewhere T1 comes from a broad default " \
           "(T1 1000 ms, T2 100 ms)" in err
    # all three: T1 and T2 both measured, no notice
    three = ["predict", "--joint", *map(str, paths.values()), *_times("--input-te"), *_times("--input-tr"),
             "--model", "none", "--preset", "T1w", "-o", str(tmp_path / "out3.nii.gz")]
    assert main(three) == 0
    assert "determine" not in capsys.readouterr().err


@pytest.mark.parametrize("protocols", ["two", "one"])
def test_a_folder_of_series_of_other_protocols_takes_a_gain_each_and_says_so(tmp_path, capsys, protocols):
    from dicom_helpers import ramp, write_series

    times = [(15.0, 500.0), (100.0, 4000.0)] if protocols == "two" else [(15.0, 3000.0), (100.0, 3000.0)]
    (tmp_path / "study").mkdir()
    for name, (te, tr) in zip("ab", times):  # two series in one folder, as a PACS export holds them
        for path in write_series(tmp_path / name, [ramp(3, 8, 8, scale=1 + (name == "b"))], te=(te,), tr=tr):
            path.rename(tmp_path / "study" / f"{name}_{path.name}")
    assert main(["maps", str(tmp_path / "study"), "-o", str(tmp_path / "maps"), "-q"]) == 0
    err = capsys.readouterr().err  # named by their tags: two protocols take a gain each, one protocol one gain
    assert ("the 2 inputs are series of other protocols (named by their sidecars or DICOM tags), so each is "
            "fitted at a receiver gain of its own" in err) == (protocols == "two")
    scales = json.loads((tmp_path / "maps" / "maps.json").read_text())["scales"]
    assert (scales == [1.0, 1.0]) == (protocols == "one")
    assert main(["maps", str(tmp_path / "study"), "-o", str(tmp_path / "shared"), "--scale", "shared", "-q"]) == 0
    said = "study: its 2 series are fitted at one receiver gain, as one protocol's images are"
    assert (said in capsys.readouterr().err) == (protocols == "two")  # asked for one gain: said it may be wrong


def test_an_inversion_set_and_a_train_as_files_of_their_series_take_the_gains_of_their_dicom_folders():
    from types import SimpleNamespace

    from napari_mr_reparam.acquisition import Acquisition
    from napari_mr_reparam.cli_joint import _named_by_source, gains_of, series_gains_note

    # as dcm2niix writes them: a file and a SeriesNumber per TI, a file per echo of the train's one series
    ir = [SimpleNamespace(source=f"ir/{30 + k}.nii.gz", extra={"series_id": str(30 + k)}) for k in range(4)]
    train = [SimpleNamespace(source=f"train/38_e{k}.nii.gz", extra={"series_id": "38"}) for k in range(1, 9)]
    acqs = [Acquisition(10, 1000 + ti, "inversion_recovery", ti_ms=ti) for ti in (50, 100, 200, 400)] + \
        [Acquisition(10 * k, 2000) for k in range(1, 9)]
    scale = gains_of(ir + train, "auto", acqs)
    assert len(set(scale)) == 2 and len(set(scale[:4])) == 1 and len(set(scale[4:])) == 1
    volumes = ir + train
    maps = SimpleNamespace(scales=[1.0] * 4 + [0.78] * 8, gains_found=("first", "misfit"))
    assert series_gains_note([v.source for v in volumes], maps, scale) == (
        "one receiver gain per series, relative to the first, ir (inputs 1-4): train (inputs 5-12) x0.78 (from the fit's misfit)")
    from collections import Counter

    assert _named_by_source(volumes, list(range(4, 12)), Counter(v.source for v in volumes)) == "train (inputs 5-12)"


def test_an_inversion_recovery_input_without_its_ti_is_refused_not_guessed(scans, tmp_path, capsys):
    paths, _ = scans
    names = list(paths)
    ir = paths[names[1]]
    (tmp_path / f"{names[0]}.json").write_text(json.dumps({"EchoTime": ACQS[names[0]][0] / 1000,
                                                             "RepetitionTime": ACQS[names[0]][1] / 1000}))
    (tmp_path / f"{names[1]}.json").write_text(json.dumps({"EchoTime": 0.015, "RepetitionTime": 3.0,
                                                             "ScanningSequence": "IR"}))
    for argv in (["maps", str(paths[names[0]]), str(ir), "-o", str(tmp_path / "m")],
                 ["predict", "--joint", str(paths[names[0]]), str(ir), "--preset", "T2w", "-o", str(tmp_path / "j.nii.gz")],
                 ["predict", str(ir), "--preset", "T2w", "-o", str(tmp_path / "p.nii.gz")]):
        assert main([*argv, "--model", "none" if argv[0] == "maps" else "physics", "-q"]) == 2
        err = capsys.readouterr().err.splitlines()[-1]
        assert err.endswith(f"{ir.name}: an inversion recovery input needs its inversion time: --input-ti MS, "
                            "or its sidecar's InversionTime (s)"), err
    assert not any((tmp_path / n).exists() for n in ("m", "j.nii.gz", "p.nii.gz"))


def test_a_rendered_double_inversion_recovery_is_refused_as_an_input(scans, tmp_path, capsys):
    paths, _ = scans
    path = next(iter(paths.values()))
    from napari_mr_reparam.sidecars import sidecar_path

    sidecar_path(path).write_text(json.dumps({"EchoTime": 0.025, "RepetitionTime": 11.0, "InversionTime": 3.4,
                                              "InversionTime2": 0.4, "ScanningSequence": "IR"}))
    for argv in (["maps", str(path), "--model", "none"], ["predict", str(path), "--preset", "T2w"],
                 ["predict", str(path), "--te", "100", "--tr", "4000"]):
        out = tmp_path / ("m" if argv[0] == "maps" else "out.nii.gz")
        assert main([*argv, "-o", str(out), "-q"]) == 2
        last = capsys.readouterr().err.splitlines()[-1]
        assert last.startswith("error: ") and last.endswith(
            f"{path.name}: a double inversion recovery image cannot be an input (inputs: spin echo, "
            "inversion recovery, gradient echo, MPRAGE); if it is one of those, say which with --input-sequence")
    assert not (tmp_path / "out.nii.gz").exists() and not (tmp_path / "m").exists()


def test_joint_targets_in_a_folder_are_named_after_the_first_input(scans, tmp_path, capsys):
    paths, _ = scans
    first = next(iter(paths.values()))
    assert main(["predict", "--joint", *map(str, paths.values()), *_times("--input-te"), *_times("--input-tr"),
                 "--model", "none", "--te", "100", "200", "--tr", "3000", "3000", "-o", str(tmp_path / "out"),
                 "-q"]) == 0
    stem = first.name.split(".")[0]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.nii.gz")) == [
        f"{stem}_joint_TE100_TR3000.nii.gz", f"{stem}_joint_TE200_TR3000.nii.gz"]
    again = ["predict", "--joint", *map(str, paths.values()), *_times("--input-te"), *_times("--input-tr"),
             "--model", "none", "--te", "100", "200", "--tr", "3000", "3000", "-o", str(tmp_path / "out"), "-q"]
    assert main([*again, "--skip-existing"]) == 0 and "its outputs exist" in capsys.readouterr().err


def test_maps_and_predict_warn_before_a_job_the_memory_cannot_hold(scans, tmp_path, capsys, monkeypatch):
    from napari_mr_reparam import memory

    paths, _ = scans
    monkeypatch.setattr(memory, "available_bytes", lambda: 1e8)  # less than the program itself takes
    assert main(["maps", *map(str, paths.values()), "-o", str(tmp_path / "maps"), *_times("--input-te"),
                 *_times("--input-tr"), "--model", "none"]) == 0
    err = capsys.readouterr().err
    assert "warning: this needs about 300 MB of memory and 100 MB is available" in err
    assert main(["predict", str(paths["t2w"]), "-o", str(tmp_path / "p.nii.gz"), "--te", "50", "--tr", "3000",
                 "--input-te", "100", "--input-tr", "3000", "-q"]) == 0
    assert "warning: t2w.nii.gz: this needs about" in capsys.readouterr().err
    monkeypatch.setattr(memory, "available_bytes", lambda: 64e9)
    assert main(["maps", *map(str, paths.values()), "-o", str(tmp_path / "maps2"), *_times("--input-te"),
                 *_times("--input-tr"), "--model", "none"]) == 0
    assert "of memory and" not in capsys.readouterr().err


def test_presets_of_several_inputs_keep_each_input_type_and_end_with_a_count(tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray((np.arange(24 * 20).reshape(24, 20) % 200 + 20).astype(np.uint8)).save(folder / "d.png")
    nib.save(nib.Nifti1Image(_ramp_volume(), np.eye(4)), folder / "e.nii.gz")
    assert main(["predict", str(folder), "--input-preset", "T1w", "--preset", "T2w", "-o", str(tmp_path / "out"),
                 "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.suffix != ".json") == [
        "d_T2w.png", "e_T2w.nii.gz"]  # as --te/--tr names them: the input's own type
    assert "2 of 2 inputs done" in capsys.readouterr().out


def _ramp_volume():
    return (np.arange(20 * 20 * 2, dtype=np.float32).reshape(20, 20, 2) % 37 + 5) * 10


def test_maps_stopped_part_way_leave_no_half_set_and_run_again(scans, tmp_path, capsys, monkeypatch):
    import napari_mr_reparam.volume_writing as writing

    paths, _ = scans
    argv = ["maps", *map(str, paths.values()), "-o", str(tmp_path / "m"), *_times("--input-te"),
            *_times("--input-tr"), "--model", "none", "-q"]
    save, calls = writing.save_volume, []

    def stopped_at_the_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C while T2map is written
        return save(*args, **kwargs)

    monkeypatch.setattr(writing, "save_volume", stopped_at_the_third)
    assert main(argv) == 130 and list((tmp_path / "m").iterdir()) == []

    def stopped_once_placed(*args, **kwargs):  # Ctrl-C once the last map is in place, before it returns
        calls.append(1)
        save(*args, **kwargs)
        if len(calls) == 7:
            raise KeyboardInterrupt
        return args[0]

    monkeypatch.setattr(writing, "save_volume", stopped_once_placed)
    assert main(argv) == 130 and list((tmp_path / "m").iterdir()) == []
    monkeypatch.setattr(writing, "save_volume", save)
    assert main(argv) == 0 and (tmp_path / "m" / "maps.json").is_file()


def test_a_map_given_as_an_input_is_refused_in_one_line(scans, tmp_path, capsys):
    paths, _ = scans
    out = tmp_path / "maps"
    assert main(["maps", *map(str, paths.values()), "-o", str(out), *_times("--input-te"), *_times("--input-tr"),
                 "--model", "none", "-q"]) == 0
    for command in (["maps", str(out / "T1map.nii.gz"), "-o", str(tmp_path / "again")],
                    ["predict", str(out / "T1map.nii.gz"), "--preset", "T2w", "-o", str(tmp_path / "p.nii.gz")]):
        capsys.readouterr()
        assert main(command + ["-q"]) == 2
        [line] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
        assert line.endswith("T1map.nii.gz: holds a T1 map (ms), not a scan; give an image acquired at a TE and TR")
        assert line.count("T1map") == 1  # named once
    assert not (tmp_path / "again").exists() and not (tmp_path / "p.nii.gz").exists()
