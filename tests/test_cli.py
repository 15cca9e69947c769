import json

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from test_io import _oblique_nifti

from napari_mr_reparam.cli import main
from napari_mr_reparam.weights import sha256_of


@pytest.fixture
def scan(tmp_path):
    data, affine = _oblique_nifti(tmp_path / "scan.nii.gz", shape=(40, 36, 3))
    return tmp_path / "scan.nii.gz", data, affine


def test_predict_nifti_keeps_geometry(scan, tiny_weights, tmp_path, capsys):
    path, data, affine = scan
    out = tmp_path / "pred.nii.gz"
    assert main(["predict", str(path), "-o", str(out), "--te", "100", "--tr", "3000", "-q"]) == 0
    img = nib.load(str(out))
    assert img.shape == data.shape and np.allclose(img.affine, affine)
    pred = np.asarray(img.dataobj)
    assert pred.dtype == np.float32 and np.isfinite(pred).all() and pred.max() <= data.max() * 1.0001
    assert json.loads((tmp_path / "pred.json").read_text())["EchoTime"] == 0.1
    assert "TE 100 / TR 3000 ms" in capsys.readouterr().out


def test_predict_png_and_npy(tmp_path, tiny_weights):
    image = (np.random.default_rng(0).random((50, 70)) * 255).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "slice.png")
    for suffix in (".png", ".npy", ".tif"):
        out = tmp_path / f"out{suffix}"
        assert main(["predict", str(tmp_path / "slice.png"), "-o", str(out), "--te", "30", "--tr", "800",
                     "-q"]) == 0
        assert out.is_file()
    assert np.load(tmp_path / "out.npy").shape == (1, 50, 70)


def test_p2p_reads_the_sidecar_or_says_it_assumes_the_default(scan, tiny_weights, tmp_path, capsys):
    path, _, _ = scan
    args = ["predict", str(path), "--te", "100", "--tr", "3000", "--model", "p2p", "-q"]
    assert main(args + ["-o", str(tmp_path / "a.nii.gz")]) == 0
    assert "taking the input to be at TE 50 ms / TR 4500 ms" in capsys.readouterr().err
    (tmp_path / "scan.json").write_text(json.dumps({"EchoTime": 0.02, "RepetitionTime": 0.6}))
    assert main(args + ["-o", str(tmp_path / "b.nii.gz")]) == 0
    assert "taking the input" not in capsys.readouterr().err


def test_input_times_given_win_over_a_sidecar_written_in_ms(scan, tiny_weights, tmp_path, capsys):
    path, _, _ = scan
    (tmp_path / "scan.json").write_text(json.dumps({"EchoTime": 30, "RepetitionTime": 2500}))
    common = ["predict", str(path), "--te", "100", "--tr", "3000", "-q"]
    assert main(common + ["-o", str(tmp_path / "a.nii.gz"), "--input-te", "30", "--input-tr", "2500"]) == 0
    err = capsys.readouterr().err
    assert ("notice: scan.nii.gz: the times in scan.json are ignored (EchoTime 30 can only be milliseconds; "
            "BIDS sidecars store seconds); the input times given are used") in err
    assert (tmp_path / "a.nii.gz").is_file()
    for given, used in ((["--input-te", "30"], "RepetitionTime 2500"), (["--input-tr", "2500"], "EchoTime 30")):
        assert main(common + ["-o", str(tmp_path / "b.nii.gz"), *given]) == 2  # the other would be used
        assert f"scan.json: {used} looks like milliseconds" in capsys.readouterr().err
        assert not (tmp_path / "b.nii.gz").exists()
    assert main(["predict", str(path), "--preset", "T2w", "--input-preset", "PDw", "-q",
                 "-o", str(tmp_path / "c.nii.gz")]) == 0
    assert "the times in scan.json are ignored" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--te", "3000", "--tr", "100"], "shorter than TR"),
    (["--te", "-5", "--tr", "100"], "positive"),
    (["--te", "abc", "--tr", "100"], "not a number"),
    (["--te", "50", "--tr", "4000", "--model", "gan"], "unknown model 'gan'; known: d2p, p2p"),
    (["--te", "50", "--tr", "4000", "--model", "runs/gone.pt"], "no weights file 'runs/gone.pt': no such file"),
    (["--te", "50", "--tr", "4000", "--model", "d2p", "--flip-average"], "flip averaging applies to the physics model only"),
    (["--te", "50", "--tr", "4000", "--model", "d2p", "--no-detail"], "applies to the physics model only"),
    (["--te", "0.1", "--tr", "5"], "TE 0.1 looks like seconds; times are in milliseconds (did you mean 100 ms?)"),
    (["--te", "100", "--tr", "5"], "did you mean 5000 ms?"),
    (["--te", "100", "--tr", "3000", "--model", "p2p", "--input-te", "0.05", "--input-tr", "4500"],
     "input TE 0.05 looks like seconds"),
    (["--te", "100", "--tr", "3000", "--model", "d2p", "--input-te", "20", "--input-tr", "600"],
     "reads inputs at TE 50 / TR 4500 ms only; for an input at TE 20 / TR 600 ms use --model p2p"),
    (["--te", "100", "--tr", "3000", "--model", "d2p", "--sequence", "inversion_recovery", "--ti", "2500"],
     "needs the physics model"),
    (["--te", "100", "--tr", "9000", "--model", "physics", "--sequence", "inversion_recovery"], "needs --ti"),
    (["--te", "100", "--tr", "9000", "--model", "physics", "--ti", "2500"], "--ti applies to"),
    (["--te", "10", "--tr", "500", "--model", "physics", "--sequence", "gradient_echo", "--flip", "400"],
     "between 0 and 180"),
    (["--te", "25", "--tr", "11000", "--sequence", "double_inversion_recovery", "--ti", "3400"],
     "error: --sequence double_inversion_recovery needs a second --ti (TI1 TI2)"),
    (["--te", "3", "--tr", "2300", "--sequence", "mprage", "--ti", "900"], "error: --sequence mprage needs --flip"),
    (["--te", "100", "--tr", "9000", "--sequence", "inversion_recovery", "--ti", "2500", "600"],
     "error: a second --ti (TI1 TI2) applies to --sequence double_inversion_recovery only"),
    (["--te", "25", "--tr", "11000", "--sequence", "double_inversion_recovery", "--ti", "325", "3400"],
     "error: TI2 (3400 ms), the second inversion time, must be shorter than TI (325 ms)"),
])
def test_bad_parameters_are_one_line_errors(scan, tiny_weights, tmp_path, capsys, extra, message):
    path, _, _ = scan
    try:
        code = main(["predict", str(path), "-o", str(tmp_path / "x.nii.gz"), *extra])
    except SystemExit as exc:  # argparse rejects malformed numbers itself
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "x.nii.gz").exists()


def test_out_of_range_target_warns_but_runs(scan, tiny_weights, tmp_path, capsys):
    path, _, _ = scan
    assert main(["predict", str(path), "-o", str(tmp_path / "x.nii.gz"), "--te", "5", "--tr", "100",
                 "--model", "p2p", "-q"]) == 0
    assert "outside the trained range" in capsys.readouterr().err


@pytest.mark.parametrize("target", [["--te", "4", "--tr", "20", "--sequence", "gradient_echo", "--flip", "15"],
                                    ["--te", "5", "--tr", "100"], ["--preset", "MPRAGE"]])
def test_the_physics_model_renders_any_target_without_a_range_warning(scan, tiny_weights, tmp_path, capsys,
                                                                       target):
    path, _, _ = scan
    assert main(["predict", str(path), "-o", str(tmp_path / "x.nii.gz"), *target, "--input-te", "50",
                 "--input-tr", "4500", "-q"]) == 0
    assert "outside the trained range" not in capsys.readouterr().err


def test_existing_output_is_kept_without_overwrite(scan, tiny_weights, tmp_path, capsys):
    path, _, _ = scan
    out = tmp_path / "keep.nii.gz"
    out.write_bytes(b"precious")
    assert main(["predict", str(path), "-o", str(out), "--te", "80", "--tr", "3000"]) == 2
    assert out.read_bytes() == b"precious" and "--overwrite" in capsys.readouterr().err
    assert main(["predict", str(path), "-o", str(out), "--te", "80", "--tr", "3000", "--overwrite", "-q"]) == 0
    assert nib.load(str(out)).shape == (40, 36, 3)


def test_bad_input_file(tmp_path, tiny_weights, capsys):
    (tmp_path / "bad.nii").write_text("garbage")
    assert main(["predict", str(tmp_path / "bad.nii"), "-o", str(tmp_path / "o.nii"), "--te", "80",
                 "--tr", "3000", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "bad.nii" in err and not (tmp_path / "o.nii").exists()
    assert f"{tmp_path / 'bad.nii'}: bad.nii:" not in err  # the file named once before the reason


def test_folder_of_inputs_several_targets_physics_maps_once(tmp_path, tiny_weights, monkeypatch, capsys):
    from napari_mr_reparam.inference import Reparameterizer

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a", "b"):
        _oblique_nifti(folder / f"{name}.nii.gz", shape=(30, 28, 2))
    (folder / "broken.nii").write_text("nope")
    calls = []
    original = Reparameterizer.compute_maps
    monkeypatch.setattr(Reparameterizer, "compute_maps",
                        lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    code = main(["predict", str(folder), "-o", str(tmp_path / "out"), "--model", "physics",
                 "--te", "30", "90", "--tr", "800", "4000", "--input-te", "50", "--input-tr", "4500", "-q"])
    assert code == 2  # one input was broken; the others were written
    written = sorted(p.name for p in (tmp_path / "out").iterdir() if p.suffix != ".json")
    assert written == ["a_TE30_TR800.nii.gz", "a_TE90_TR4000.nii.gz", "b_TE30_TR800.nii.gz",
                       "b_TE90_TR4000.nii.gz"]
    assert len(calls) == 2  # maps once per input, not per target
    captured = capsys.readouterr()
    assert "2 of 3 inputs done" in captured.out and "error: " in captured.err and "broken.nii" in captured.err


def test_the_progress_bar_stops_short_at_failed_inputs_and_their_errors_come_after_it(tmp_path, tiny_weights,
                                                                                       capsys, monkeypatch):
    import re
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)  # a terminal: the bar is drawn

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a", "c"):
        _oblique_nifti(folder / f"{name}.nii.gz", shape=(30, 28, 2))
    nib.save(nib.Nifti1Image(-np.ones((30, 28, 2), np.float32), np.eye(4)), str(folder / "b.nii.gz"))
    (folder / "d.nii").write_text("nope")
    assert main(["predict", str(folder), "-o", str(tmp_path / "out"), "--model", "physics", "--te", "90",
                 "--tr", "4000", "--input-te", "50", "--input-tr", "4500"]) == 2  # the bar drawn: no -q
    err = capsys.readouterr().err
    assert re.findall(r"(\d+)/4 \[", err)[-1] == "2" and "4/4" not in err  # closed where the work stopped
    after_bar = err[err.rindex("2/4 ["):].splitlines()[1:]
    assert [line.split(":")[0] for line in after_bar] == ["error", "error"]
    assert "b.nii.gz" in after_bar[0] and "d.nii" in after_bar[1]
    assert main(["predict", str(folder / "b.nii.gz"), "-o", str(tmp_path / "b"), "--model", "physics",
                 "--te", "90", "--tr", "4000", "--input-te", "50", "--input-tr", "4500"]) == 2
    err = capsys.readouterr().err
    assert "1/1" not in err and err.strip().splitlines()[-1].startswith(f"error: {folder / 'b.nii.gz'}: ")


@pytest.mark.parametrize("target", [["--te", "90", "--tr", "4000"], ["--preset", "T2w"]])
def test_a_batch_run_again_skips_the_inputs_whose_outputs_exist(tmp_path, tiny_weights, capsys, target):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a", "b"):
        _oblique_nifti(folder / f"{name}.nii.gz", shape=(30, 28, 2))
    argv = ["predict", str(folder), "-o", str(tmp_path / "out"), "--model", "physics", *target,
            "--input-te", "50", "--input-tr", "4500", "-q"]
    assert main(["predict", str(folder / "a.nii.gz"), *argv[2:]]) == 0  # the run that stopped after a
    first = sorted(p.name for p in (tmp_path / "out").iterdir())
    capsys.readouterr()
    assert main(argv) == 2 and "exists; pass --overwrite" in capsys.readouterr().err  # as before: refused
    assert main([*argv, "--skip-existing"]) == 0
    err = capsys.readouterr().err
    assert f"skipped {folder / 'a.nii.gz'}: its outputs exist" in err
    assert len(list((tmp_path / "out").iterdir())) == 2 * len(first)  # b's written beside a's
    assert main([*argv, "--skip-existing"]) == 0 and capsys.readouterr().err.count("skipped") == 2
    assert main([*argv, "--skip-existing", "--overwrite"]) == 2
    assert "--skip-existing leaves existing outputs, --overwrite replaces them" in capsys.readouterr().err
    sidecar = next((tmp_path / "out").glob("a_*.json"))
    sidecar.unlink()  # a run stopped while it wrote a's
    for output in (tmp_path / "out").glob("b_*"):
        output.unlink()  # b's not written yet either
    assert main([*argv, "--skip-existing"]) == 2
    said = capsys.readouterr()
    assert said.err.count("error: ") == 1 and said.err.strip().endswith(
        "exists, but not every output of a.nii.gz does: remove it to predict that input again")
    assert len(list((tmp_path / "out").glob("b_*"))) == len(first) and "1 of 2 inputs done" in said.out  # b goes on


def test_a_folder_of_nifti_files_and_a_dicom_series_gives_each_as_an_input(tmp_path, tiny_weights, capsys):
    from dicom_helpers import ramp, write_series

    folder = tmp_path / "study"
    write_series(folder, [ramp(3, 28, 30) * 10], te=(50.0,), tr=4500.0)
    _oblique_nifti(folder / "t2w.nii.gz", shape=(30, 28, 2))
    assert main(["predict", str(folder), "-o", str(tmp_path / "out"), "--model", "physics", "--te", "90",
                 "--tr", "4000", "--input-te", "50", "--input-tr", "4500", "-q"]) == 0
    err = capsys.readouterr().err
    assert err.count("notice: study: holds DICOM files beside its 1 other image file: each is an input, and the "
                     "folder's DICOM series too") == 1
    assert len(list((tmp_path / "out").glob("*.nii.gz"))) == 2  # the NIfTI's and the series'


def test_flip_average_gives_the_mirror_of_the_mirrored_scan(scan, tiny_weights, tmp_path):
    path, _, _ = scan
    image = nib.load(str(path))
    mirrored = tmp_path / "mirrored.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj)[::-1].copy(), image.affine), str(mirrored))
    outputs = []
    for source, name in ((path, "plain.nii.gz"), (mirrored, "mirror.nii.gz")):
        assert main(["predict", str(source), "-o", str(tmp_path / name), "--te", "80", "--tr", "3000",
                     "--model", "physics", "--flip-average", "-q"]) == 0
        outputs.append(np.asarray(nib.load(str(tmp_path / name)).dataobj, dtype=np.float32))
    np.testing.assert_allclose(outputs[1][::-1], outputs[0], atol=1.5)  # 8-bit rounding


def test_mismatched_targets(scan, tiny_weights, tmp_path, capsys):
    path, _, _ = scan
    assert main(["predict", str(path), "-o", str(tmp_path), "--te", "30", "60", "--tr", "800"]) == 2
    assert "as many --tr as --te" in capsys.readouterr().err


# ----------------------------------------------------------------------------- DICOM


@pytest.fixture
def dual_echo(tmp_path):
    from dicom_helpers import ramp, write_series

    write_series(tmp_path / "dual", [ramp(3, 16, 16)[::-1], ramp(3, 16, 16) // 3],
                 te=(90.0, 15.0), tr=3000.0)
    return tmp_path / "dual"


def _input_times(monkeypatch) -> list:
    from napari_mr_reparam.inference import Reparameterizer

    seen, original = [], Reparameterizer.compute_maps
    monkeypatch.setattr(Reparameterizer, "compute_maps",
                        lambda self, volume, input=None, **k: seen.append((input.te_ms, input.tr_ms))
                        or original(self, volume, input, **k))
    return seen


def test_predict_from_a_dicom_series_one_output_per_acquisition(dual_echo, tiny_weights, tmp_path, capsys,
                                                                monkeypatch):
    from napari_mr_reparam.dicom import read_series

    seen = _input_times(monkeypatch)
    out = tmp_path / "out"
    assert main(["predict", str(dual_echo), "-o", str(out), "--model", "physics", "--te", "40",
                 "--tr", "3000", "-q"]) == 0
    assert seen == [(15.0, 3000.0), (90.0, 3000.0)]  # the input times come from the tags
    assert sorted(p.name for p in out.iterdir()) == [
        "dual_acq1_TE40_TR3000.json", "dual_acq1_TE40_TR3000.nii.gz",
        "dual_acq2_TE40_TR3000.json", "dual_acq2_TE40_TR3000.nii.gz"]
    img = nib.load(str(out / "dual_acq1_TE40_TR3000.nii.gz"))
    [short, _] = read_series(dual_echo)
    assert img.shape == (16, 16, 3) and np.allclose(img.affine, short.affine, atol=1e-4)
    err = capsys.readouterr().err
    assert "dual: 2 acquisitions, each predicted separately (choose one with --acquisition N): " \
           "1: TE 15 / TR 3000 ms; 2: TE 90 / TR 3000 ms" in err
    assert "no input TE/TR given" not in err


def test_dicom_acquisition_chosen_and_an_option_overrides_a_tag(dual_echo, tiny_weights, tmp_path, capsys,
                                                                 monkeypatch):
    seen = _input_times(monkeypatch)
    out = tmp_path / "one.nii.gz"
    assert main(["predict", str(dual_echo), "-o", str(out), "--model", "physics", "--te", "40",
                 "--tr", "3000", "--acquisition", "2", "--input-te", "80", "-q"]) == 0
    assert seen == [(80.0, 3000.0)] and out.is_file()
    captured = capsys.readouterr()
    assert "notice: dual_acq2: --input-te 80 ms overrides the DICOM EchoTime 90 ms" in captured.err
    assert "each predicted separately" not in captured.err
    assert "ok dual_acq2 (TE 80 / TR 3000 ms): " in captured.out  # the acquisition used, not the tags'

    assert main(["predict", str(dual_echo), "-o", str(tmp_path / "x.nii.gz"), "--te", "40",
                 "--tr", "3000", "--acquisition", "3"]) == 2
    assert "error: dual: --acquisition 3, but the series has 2 acquisition(s) (1-2)" in capsys.readouterr().err
    assert not (tmp_path / "x.nii.gz").exists()


def test_a_time_a_dicom_tag_states_wrongly_names_the_option_that_gives_it(tmp_path, tiny_weights, capsys):
    from dicom_helpers import ramp, write_series

    write_series(tmp_path / "s", [ramp(3, 8, 8)], te=(0.015,), tr=500.0)  # EchoTime written in seconds
    out = tmp_path / "out.nii.gz"
    assert main(["predict", str(tmp_path / "s"), "-o", str(out), "--te", "100", "--tr", "4000", "-q"]) == 2
    err = capsys.readouterr().err
    assert "TE 0.015 looks like seconds" in err and "give the right value with --input-te or --input-tr" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
    assert main(["predict", str(tmp_path / "s"), "-o", str(out), "--te", "100", "--tr", "4000", "--input-te", "15",
                 "-q"]) == 0


def test_one_file_of_a_series_given_alone_says_to_give_its_folder(tmp_path, tiny_weights, capsys):
    from dicom_helpers import ramp, write_series

    files = write_series(tmp_path / "s", [ramp(4, 8, 8)], te=(15.0,), tr=500.0)
    out = tmp_path / "out.nii.gz"
    assert main(["predict", str(files[0]), "-o", str(out), "--te", "100", "--tr", "4000", "-q"]) == 0
    assert f"{files[0].name} is one of 4 slices of series" in capsys.readouterr().err


def test_a_series_folder_with_a_thumbnail_reads_the_series(tmp_path, tiny_weights, capsys):
    from dicom_helpers import ramp, write_series

    write_series(tmp_path / "s", [ramp(3, 8, 8)], te=(15.0,), tr=500.0)
    Image.fromarray(np.full((64, 64), 200, np.uint8)).save(tmp_path / "s" / "thumbnail.png")  # as PACS exports add
    said = "its DICOM series is read; the image file(s) beside it are left out (thumbnail.png)"
    out = tmp_path / "out.nii.gz"
    assert main(["predict", str(tmp_path / "s"), "-o", str(out), "--te", "100", "--tr", "4000", "-q"]) == 0
    assert said in capsys.readouterr().err and nib.load(out).shape[:2] != (64, 64)
    assert main(["maps", str(tmp_path / "s"), "-o", str(tmp_path / "maps"), "-q"]) == 0
    assert said in capsys.readouterr().err and nib.load(tmp_path / "maps" / "T2map.nii.gz").shape[:2] != (64, 64)


def test_dicom_without_echo_time_says_which_option_gives_it(tmp_path, tiny_weights, capsys):
    from dicom_helpers import ramp, write_series

    write_series(tmp_path / "s", [ramp(2, 8, 8)], drop=("EchoTime",))
    out = tmp_path / "out.nii.gz"
    assert main(["predict", str(tmp_path / "s"), "-o", str(out), "--model", "p2p", "--te", "40",
                 "--tr", "3000", "-q"]) == 2
    err = capsys.readouterr().err
    assert "the DICOM files have no EchoTime (0018,0081) tag; give the input value with --input-te MS" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
    assert main(["predict", str(tmp_path / "s"), "-o", str(out), "--model", "p2p", "--te", "40",
                 "--tr", "3000", "--input-te", "20", "-q"]) == 0


def test_mprage_dicom_whose_repetition_time_is_the_readout_spacing_asks_for_the_cycle(tmp_path, tiny_weights,
                                                                                     capsys):
    from dicom_helpers import ramp, write_series

    write_series(tmp_path / "s", [ramp(2, 8, 8)], te=(3.2,), tr=8.2, ti=(450.0,), flip=12.0, scanning="GR",
                 variant=["SS", "MP"])
    out = tmp_path / "out.nii.gz"
    common = ["predict", str(tmp_path / "s"), "-o", str(out), "--model", "p2p", "--te", "40", "--tr", "3000", "-q"]
    assert main(common) == 2
    err = capsys.readouterr().err
    assert "RepetitionTime tag (8.2 ms) is the readout's pulse spacing of an MPRAGE-type series" in err
    assert "--input-tr MS" in err and len(err.strip().splitlines()) == 1 and not out.exists()


def test_siemens_mprage_dicom_is_refused_by_p2p_in_one_line(tmp_path, tiny_weights, capsys):
    from dicom_helpers import ramp, write_series

    write_series(tmp_path / "s", [ramp(2, 8, 8)], te=(3.0,), tr=2300.0, ti=(900.0,), flip=9.0,
                 scanning=["GR", "IR"], variant=["SK", "SP", "MP"])
    out = tmp_path / "out.nii.gz"
    assert main(["predict", str(tmp_path / "s"), "-o", str(out), "--te", "100", "--tr", "5000", "-q",
                 "--model", "p2p"]) == 2
    err = capsys.readouterr().err
    assert "mprage" in err.lower() and len(err.strip().splitlines()) == 1 and not out.exists()


def test_siemens_mprage_dicom_is_read_as_mprage_by_the_bundled_physics(tmp_path, capsys):
    from dicom_helpers import ramp, write_series

    write_series(tmp_path / "s", [ramp(2, 32, 32)], te=(3.0,), tr=2300.0, ti=(900.0,), flip=9.0,
                 scanning=["GR", "IR"], variant=["SK", "SP", "MP"])
    out = tmp_path / "out.nii.gz"
    assert main(["predict", str(tmp_path / "s"), "-o", str(out), "--te", "100", "--tr", "5000", "-q"]) == 0
    assert out.exists() and "spin echo" not in capsys.readouterr().err


def test_multi_echo_dicom_without_echo_time_asks_for_it_once(tmp_path, tiny_weights, capsys):
    """A series of several acquisitions without EchoTime: one line for the series (not one
    per acquisition, nor a count of inputs done), nothing written; given, the ok line shows it."""
    from dicom_helpers import CORONAL, ramp, write_series

    write_series(tmp_path / "s", [ramp(2, 8, 8), ramp(2, 8, 8) // 2], te=(10.0, 30.0), drop=("EchoTime",),
                 orientation=CORONAL)
    common = ["predict", str(tmp_path / "s"), "--te", "40", "--tr", "3000", "-q"]
    for model in ("p2p", "physics"):
        assert main([*common, "--model", model, "-o", str(tmp_path / "out")]) == 2
        captured = capsys.readouterr()
        assert captured.err == ("error: s: the DICOM files have no EchoTime (0018,0081) tag; give the input value "
                                "with --input-te MS, or name the input's acquisition with --input-preset NAME\n")
        assert captured.out == "" and not (tmp_path / "out").exists()
    one_for_both = ("error: s: its 2 acquisitions have no EchoTime tag and differ in nothing else the tags "
                    "state, so one --input-te cannot be each one's")
    assert main([*common, "--model", "physics", "-o", str(tmp_path / "out"), "--input-te", "20"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(one_for_both) and len(captured.err.splitlines()) == 1
    assert not (tmp_path / "out").exists()
    maps = ["maps", str(tmp_path / "s"), "-o", str(tmp_path / "maps"), "--model", "none", "-q"]
    assert main([*maps, "--input-te", "20"]) == 2  # the joint fit: each echo its own TE, or none
    assert capsys.readouterr().err.startswith(one_for_both) and not (tmp_path / "maps").exists()
    assert main([*maps, "--input-te", "10", "30"]) == 0
    write_series(tmp_path / "ir", [ramp(2, 8, 8), ramp(2, 8, 8) // 2], te=(10.0, 10.0), ti=(100.0, 900.0),
                 drop=("EchoTime",))  # told apart by their TIs: one TE is each one's
    assert main(["maps", str(tmp_path / "ir"), "-o", str(tmp_path / "ir_maps"), "--model", "none", "-q",
                 "--input-te", "10"]) == 0
    out = tmp_path / "echo2.nii.gz"
    assert main([*common, "--model", "p2p", "-o", str(out), "--acquisition", "2", "--input-te", "30"]) == 0
    assert out.exists()
    assert "ok s_acq2 (TE 30 (echo 2) / TR 2000 ms): " in capsys.readouterr().out


def test_bad_dicom_series_is_one_error_and_nothing_written(tmp_path, tiny_weights, capsys):
    from dicom_helpers import ramp, write_series

    def spoil(ds, echo, k):
        if k == 1:
            ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0]

    files = write_series(tmp_path / "mixed", [ramp(3, 8, 8)], extra=spoil)
    out = tmp_path / "out"
    assert main(["predict", str(tmp_path / "mixed"), "-o", str(out), "--te", "40", "--tr", "3000"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: mixed (TE 20 / TR 2000 ms): the images do not form one volume")
    assert len(err.splitlines()) == 1 and not out.exists()

    files[0].write_bytes(files[0].read_bytes()[:300])  # truncated, given as files
    assert main(["predict", *map(str, files), "-o", str(out), "--te", "40", "--tr", "3000"]) == 2
    assert f"error: {files[0].name}: not a readable DICOM file" in capsys.readouterr().err
    assert not out.exists()


def test_d2p_takes_its_own_input_times(scan, tiny_weights, tmp_path):
    path, _, _ = scan
    assert main(["predict", str(path), "-o", str(tmp_path / "x.nii.gz"), "--te", "80", "--tr", "3000",
                 "--input-te", "50", "--input-tr", "4500", "-q"]) == 0


def test_input_outside_the_trained_range_warns(scan, tiny_weights, tmp_path, capsys):
    path, _, _ = scan
    assert main(["predict", str(path), "-o", str(tmp_path / "x.nii.gz"), "--te", "80", "--tr", "3000",
                 "--model", "p2p", "--input-te", "5", "--input-tr", "4500", "-q"]) == 0
    assert "input TE 5 ms is outside the trained range" in capsys.readouterr().err


@pytest.mark.parametrize("sequence, extra, fields", [
    ("inversion_recovery", ["--ti", "2500"], {"InversionTime": 2.5, "ScanningSequence": "IR"}),
    ("gradient_echo", ["--flip", "20"], {"FlipAngle": 20.0, "ScanningSequence": "GR"}),
])
def test_physics_sequences_are_recorded_in_the_sidecar(scan, tiny_weights, tmp_path, sequence, extra, fields):
    path, _, _ = scan
    assert main(["predict", str(path), "-o", str(tmp_path / "out"), "--te", "100", "--tr", "9000",
                 "--model", "physics", "--sequence", sequence, *extra, "-q"]) == 0
    (out,) = [p for p in (tmp_path / "out").iterdir() if p.suffix != ".json"]
    assert out.name == "scan_TE100_TR9000" + ("_TI2500" if "--ti" in extra else "_FA20") + ".nii.gz"
    sidecar = json.loads(out.with_name(out.name.replace(".nii.gz", ".json")).read_text())
    assert {k: sidecar[k] for k in fields} == fields and sidecar["EchoTime"] == 0.1


@pytest.mark.parametrize("fill, message", [(np.nan, "every voxel is NaN"), (7.0, "every voxel is 7")])
def test_a_volume_without_an_image_is_refused(tmp_path, tiny_weights, capsys, fill, message):
    path = tmp_path / "empty.nii.gz"
    nib.save(nib.Nifti1Image(np.full((8, 8, 3), fill, np.float32), np.eye(4)), str(path))
    for model in ("d2p", "physics"):
        out = tmp_path / f"pred_{model}.nii.gz"  # d2p.json beside it is the test weights' card
        assert main(["predict", str(path), "-o", str(out), "--te", "80", "--tr", "3000", "--model", model,
                     "-q"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and not out.exists()


def test_demo_without_a_display_says_how_to_run_it(monkeypatch, capsys):
    import sys

    monkeypatch.setattr(sys, "platform", "linux")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert "no display found" in err and "xvfb-run -a napari-mr-reparam demo" in err


def test_demo_without_a_qt_binding_says_which_to_install(monkeypatch, capsys):
    import sys

    from napari_mr_reparam import demo

    monkeypatch.setitem(sys.modules, "qtpy", None)  # as if no binding were installed: its import fails
    monkeypatch.setattr(demo, "run_demo", lambda **kw: pytest.fail("the window opened"))
    assert main(["demo"]) == 2
    assert capsys.readouterr().err == ("error: no Qt binding is installed, which napari's window needs: install "
                                       "one, e.g. pip install 'napari-mr-reparam[qt]' (PyQt6)\n")


@pytest.mark.parametrize("extra, message", [(["--device", "cuda"], "error: CUDA was asked for but no CUDA GPU"),
                                            (["--model", "gan"], "error: unknown model 'gan'; known: ")])
def test_demo_refuses_a_device_or_model_it_cannot_use_before_opening_a_window(monkeypatch, capsys, extra, message):
    import torch

    from napari_mr_reparam import demo

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(demo, "missing_display", lambda: False)
    monkeypatch.setattr(demo, "run_demo", lambda **kw: pytest.fail("the window opened"))
    assert main(["demo", *extra]) == 2
    assert capsys.readouterr().err.startswith(message)


def test_input_sequence_comes_from_options_or_sidecar(scan, tiny_weights, tmp_path, capsys):
    path, _, _ = scan
    args = ["predict", str(path), "--te", "100", "--tr", "3000", "--model", "physics", "-q",
            "--input-te", "3", "--input-tr", "2300"]
    for more in ([], ["--input-ti", "900", "--input-flip", "9"]):  # what it is, before what it lacks
        assert main(args + ["-o", str(tmp_path / "a.nii.gz"), "--input-sequence", "mprage", *more]) == 2
        assert "reads spin-echo inputs only" in capsys.readouterr().err  # the tiny physics net is an old one
    (tmp_path / "scan.json").write_text(json.dumps({"EchoTime": 0.003, "RepetitionTime": 2.3,
                                                    "InversionTime": 0.9, "FlipAngle": 9,
                                                    "ScanningSequence": ["GR", "IR"]}))
    assert main(args[:-4] + ["-o", str(tmp_path / "b.nii.gz")]) == 2
    assert "reads spin-echo inputs only" in capsys.readouterr().err


def test_no_detail_renders_from_the_maps_alone(scan, tiny_weights, tmp_path):
    import nibabel as nib

    path, _, _ = scan
    common = ["--te", "90", "--tr", "4000", "--input-te", "50", "--input-tr", "4500", "-q"]
    assert main(["predict", str(path), "-o", str(tmp_path / "kept.nii.gz"), *common]) == 0
    assert main(["predict", str(path), "-o", str(tmp_path / "maps.nii.gz"), "--no-detail", *common]) == 0
    kept, alone = (np.asarray(nib.load(tmp_path / f"{n}.nii.gz").dataobj) for n in ("kept", "maps"))
    assert kept.shape == alone.shape and not np.allclose(kept, alone)


# ---------------------------------------------------------------- the input named by a preset

@pytest.fixture
def sequence_weights(tiny_weights, tmp_path):
    """A tiny physics net conditioned on the input's sequence (it reads MPRAGE inputs)."""
    import torch

    from napari_mr_reparam import weights
    from napari_mr_reparam.models.physics_net import PhysicsNet

    torch.manual_seed(0)
    net = PhysicsNet(base=4, depth=3, task="p2p", input_sequences=True)
    torch.nn.init.normal_(net.film[-1].weight, std=0.5)  # conditions that change the maps
    card = {"arch": "physics", "task": "p2p", "width": 0.03, "base": 4, "depth": 3, "name": "seq",
            "input_sequences": True}
    return str(weights.save_weights(net.state_dict(), card, tmp_path / "seq.safetensors"))


def _input_acquisitions(monkeypatch) -> list:
    from napari_mr_reparam.inference import Reparameterizer

    seen, original = [], Reparameterizer.compute_maps
    monkeypatch.setattr(Reparameterizer, "compute_maps",
                        lambda self, volume, input=None, **k: seen.append(input)
                        or original(self, volume, input, **k))
    return seen


def test_input_preset_is_the_five_options_and_each_option_overrides_it(scan, sequence_weights, tmp_path,
                                                                       capsys, monkeypatch):
    from napari_mr_reparam.acquisition import Acquisition

    path, _, _ = scan
    common = ["predict", str(path), "--weights", sequence_weights, "--te", "100", "--tr", "4000", "-q"]
    seen = _input_acquisitions(monkeypatch)
    assert main(common + ["-o", str(tmp_path / "named.nii.gz"), "--input-preset", "mprage"]) == 0
    assert main(common + ["-o", str(tmp_path / "typed.nii.gz"), "--input-sequence", "mprage", "--input-te", "3",
                          "--input-tr", "2300", "--input-ti", "900", "--input-flip", "9"]) == 0
    named, typed = (np.asarray(nib.load(tmp_path / f"{n}.nii.gz").dataobj) for n in ("named", "typed"))
    np.testing.assert_array_equal(named, typed)
    assert seen == [Acquisition(3, 2300, "mprage", 900, 9)] * 2
    assert "input preset MPRAGE: mprage, TE 3 / TR 2300 / TI 900 ms, flip 9 deg" in capsys.readouterr().err
    # an explicit option replaces that value of the preset, and only that one
    assert main(common + ["-o", str(tmp_path / "te5.nii.gz"), "--input-preset", "MPRAGE", "--input-te", "5",
                          "--input-ti", "1000"]) == 0
    assert seen[-1] == Acquisition(5, 2300, "mprage", 1000, 9)
    te5 = np.asarray(nib.load(tmp_path / "te5.nii.gz").dataobj)
    assert not np.allclose(te5, named)


def test_input_preset_wins_over_the_sidecar_as_the_options_do(scan, tiny_weights, tmp_path, capsys,
                                                              monkeypatch):
    from napari_mr_reparam.acquisition import Acquisition

    path, _, _ = scan
    (tmp_path / "scan.json").write_text(json.dumps({"EchoTime": 0.1, "RepetitionTime": 4.0}))
    seen = _input_acquisitions(monkeypatch)
    assert main(["predict", str(path), "-o", str(tmp_path / "a.nii.gz"), "--te", "100", "--tr", "3000",
                 "--input-preset", "PDw", "-q"]) == 0
    assert seen == [Acquisition(15, 3000)]


def test_input_preset_on_a_dicom_series_overrides_its_tags_with_a_notice(dual_echo, tiny_weights, tmp_path,
                                                                         capsys, monkeypatch):
    seen = _input_times(monkeypatch)
    assert main(["predict", str(dual_echo), "-o", str(tmp_path / "one.nii.gz"), "--te", "40", "--tr", "3000",
                 "--acquisition", "2", "--input-preset", "T2w", "-q"]) == 0
    assert seen == [(100.0, 4000.0)]
    err = capsys.readouterr().err
    assert "notice: dual_acq2: --input-preset T2w (TE 100 ms) overrides the DICOM EchoTime 90 ms" in err
    assert "notice: dual_acq2: --input-preset T2w (TR 4000 ms) overrides the DICOM RepetitionTime 3000 ms" in err


@pytest.mark.parametrize("name, message", [
    ("DIR", "error: DIR (double inversion recovery) is a target only: the models read no such input; "
            "input presets: T1w, T2w, PDw, FLAIR, STIR, MPRAGE"),
    ("T3w", "error: unknown input preset 'T3w'; input presets: T1w, T2w, PDw, FLAIR, STIR, MPRAGE"),
])
def test_an_input_preset_no_input_can_have_is_one_line_and_writes_nothing(scan, tiny_weights, tmp_path,
                                                                         capsys, name, message):
    path, _, _ = scan
    out = tmp_path / "out"
    for extra in ([], ["--preset", "T2w"]):
        assert main(["predict", str(path), "-o", str(out), "--te", "100", "--tr", "3000", "--input-preset", name,
                     *extra]) == 2
        assert capsys.readouterr().err.strip() == message
    assert main(["maps", str(path), "-o", str(out), "--input-preset", name]) == 2
    assert capsys.readouterr().err.strip() == message
    assert not out.exists()


def test_models_that_read_spin_echo_only_refuse_other_input_presets(scan, tiny_weights, tmp_path, capsys):
    path, _, _ = scan
    out = tmp_path / "out.nii.gz"
    common = ["predict", str(path), "-o", str(out), "--te", "100", "--tr", "3000", "-q"]
    assert main(common + ["--model", "p2p", "--input-preset", "FLAIR"]) == 2
    assert "scan.nii.gz: p2p reads spin-echo inputs only; the physics model reads inversion recovery" \
        in capsys.readouterr().err
    ir_without_ti = ["--input-sequence", "inversion_recovery", "--input-te", "100", "--input-tr", "9000"]
    assert main(common + ["--model", "p2p"] + ir_without_ti) == 2  # refused for what it is, not asked for a TI
    assert "p2p reads spin-echo inputs only" in capsys.readouterr().err
    assert main(common + ["--model", "d2p", "--input-preset", "T1w"]) == 2
    assert "error: d2p reads inputs at TE 50 / TR 4500 ms only; for an input at TE 15 / TR 500 ms use " \
           "--model p2p or --model physics" in capsys.readouterr().err
    assert not out.exists()
    assert main(common + ["--model", "p2p", "--input-preset", "T1w"]) == 0 and out.exists()


def test_one_input_preset_unless_joint(scan, tiny_weights, tmp_path, capsys):
    path, _, _ = scan
    assert main(["predict", str(path), "-o", str(tmp_path / "o.nii.gz"), "--te", "100", "--tr", "3000",
                 "--input-preset", "T1w", "T2w"]) == 2
    assert capsys.readouterr().err.strip() == "error: --input-preset takes one value unless --joint " \
                                              "(several images of one subject)"


def test_the_default_input_notice_names_the_input_preset(scan, tiny_weights, tmp_path, capsys):
    path, _, _ = scan
    assert main(["predict", str(path), "-o", str(tmp_path / "a.nii.gz"), "--te", "100", "--tr", "3000",
                 "-q"]) == 0
    assert "taking the input to be at TE 50 ms / TR 4500 ms; name its acquisition with --input-preset " \
           "(T1w, T2w, PDw, FLAIR, STIR, MPRAGE) or --input-te/--input-tr" in capsys.readouterr().err


def test_help_says_the_options_override_the_input_preset(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    out = " ".join(capsys.readouterr().out.split()).replace("--input- ", "--input-")  # wrapped at hyphens
    assert "--input-preset NAME [NAME ...]" in out
    assert ("any of --input-sequence, --input-te, --input-tr, --input-ti, --input-flip given as well "
            "overrides that value. Like those options it wins over DICOM tags and a BIDS sidecar") in out


@pytest.mark.parametrize("output, extra, message", [
    ("x.mha", [], "error: x.mha: unsupported output type; use .nii, .nii.gz"),
    ("out", ["--suffix", ".mha"], "error: --suffix .mha: unsupported output type"),
    ("x.mha", ["--preset", "T2w"], "error: x.mha: unsupported output type"),
])
def test_an_output_type_that_cannot_be_written_is_refused_before_any_work(tmp_path, capsys, output, extra,
                                                                           message):
    missing = tmp_path / "not_read.nii.gz"  # the output is checked first, so this is never opened
    times = [] if "--preset" in extra else ["--te", "100", "--tr", "3000"]
    assert main(["predict", str(missing), *times, *extra, "-o", str(tmp_path / output),
                 "--input-te", "20", "--input-tr", "500", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(message) and not list(tmp_path.iterdir())


def test_suffix_may_leave_out_its_dot(scan, tiny_weights, tmp_path):
    path, _, _ = scan
    assert main(["predict", str(path), "-o", str(tmp_path / "out"), "--te", "100", "--tr", "3000",
                 "--suffix", "nii.gz", "-q"]) == 0
    assert (tmp_path / "out" / "scan_TE100_TR3000.nii.gz").is_file()


def test_a_jpeg_input_in_folder_mode_gives_a_png(tmp_path, tiny_weights, capsys):
    image = (np.random.default_rng(1).random((40, 48)) * 255).astype(np.uint8)
    Image.fromarray(image).convert("RGB").save(tmp_path / "photo.jpg")
    assert main(["predict", str(tmp_path / "photo.jpg"), "-o", str(tmp_path / "out"), "--te", "100",
                 "--tr", "3000", "-q"]) == 0
    written = tmp_path / "out" / "photo_TE100_TR3000.png"
    assert written.is_file() and np.asarray(Image.open(written)).shape == (40, 48)


def test_a_dicom_inversion_recovery_input_is_read_as_one_without_a_spin_echo_notice(
        tmp_path, sequence_weights, capsys, monkeypatch):
    from dicom_helpers import ramp, write_series

    seen = _input_acquisitions(monkeypatch)
    write_series(tmp_path / "ir", [ramp(2, 16, 16)], te=(12.0,), ti=(400.0,), scanning="IR")
    out = tmp_path / "ir.nii.gz"
    assert main(["predict", str(tmp_path / "ir"), "-o", str(out), "--weights", sequence_weights,
                 "--te", "80", "--tr", "3000", "-q"]) == 0
    assert (seen[0].sequence, seen[0].ti_ms) == ("inversion_recovery", 400.0)
    assert "spin echo" not in capsys.readouterr().err
    write_series(tmp_path / "epi", [ramp(2, 16, 16)], scanning="EP")
    assert main(["predict", str(tmp_path / "epi"), "-o", str(tmp_path / "epi.nii.gz"), "--weights",
                 sequence_weights, "--te", "80", "--tr", "3000", "-q"]) == 0
    assert "the DICOM tags do not name the input's sequence; it is taken as a spin echo" in capsys.readouterr().err


def test_an_existing_file_is_not_taken_as_the_output_folder(tmp_path, capsys):
    (tmp_path / "afile").write_text("mine")
    missing = [str(tmp_path / "not_read.nii.gz"), str(tmp_path / "nor_this.nii.gz")]
    assert main(["predict", *missing, "-o", str(tmp_path / "afile"), "--te", "100", "--tr", "3000",
                 "-q"]) == 2
    assert "afile: exists and is not a folder" in capsys.readouterr().err
    assert (tmp_path / "afile").read_text() == "mine"


@pytest.mark.parametrize("output", ["afile/x.nii.gz", "afile/out"])
def test_an_output_inside_a_file_says_the_file_is_not_a_folder(scan, tmp_path, capsys, output):
    path, _, _ = scan
    (tmp_path / "afile").write_text("mine")
    assert main(["predict", str(path), "-o", str(tmp_path / output), "--te", "100", "--tr", "3000", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: -o {tmp_path / output}: {tmp_path / 'afile'} is a file, not a folder; choose another " \
                  "output path"
    assert (tmp_path / "afile").read_text() == "mine"


def test_one_input_time_given_keeps_the_other_from_the_tags_or_sidecar(scan, tmp_path, tiny_weights, monkeypatch,
                                                                       capsys):
    from dicom_helpers import ramp, write_series

    seen = _input_times(monkeypatch)
    write_series(tmp_path / "s", [ramp(2, 8, 8)], tr=2000.0, drop=("EchoTime",))
    assert main(["predict", str(tmp_path / "s"), "-o", str(tmp_path / "a.nii.gz"), "--te", "40", "--tr", "3000",
                 "--input-te", "20", "-q"]) == 0
    path, _, _ = scan
    (tmp_path / "scan.json").write_text(json.dumps({"EchoTime": 0.03}))  # no RepetitionTime
    assert main(["predict", str(path), "-o", str(tmp_path / "b.nii.gz"), "--te", "40", "--tr", "3000",
                 "--input-tr", "2500", "-q"]) == 0
    assert seen == [(20.0, 2000.0), (30.0, 2500.0)]  # not the default TR 4500 / TE 50


@pytest.mark.parametrize("sidecar, given, message", [
    ({"EchoTime": 0.03}, [], "the input's TE is known (30 ms) but not its TR, which is not guessed; give it with "
                             "--input-tr MS"),
    (None, ["--input-te", "100"], "the input's TE is known (100 ms) but not its TR, which is not guessed; give it "
                                  "with --input-tr MS"),
    (None, ["--input-tr", "6000"], "the input's TR is known (6000 ms) but not its TE, which is not guessed; give "
                                   "it with --input-te MS"),
])
@pytest.mark.parametrize("target", [["--te", "100", "--tr", "6000"], ["--preset", "FLAIR"]])
def test_one_input_time_without_the_other_is_not_guessed(scan, tmp_path, tiny_weights, capsys, sidecar, given,
                                                         message, target):
    path, _, _ = scan
    if sidecar:
        (tmp_path / "scan.json").write_text(json.dumps(sidecar))
    out = tmp_path / "c.nii.gz"
    assert main(["predict", str(path), "-o", str(out), *target, *given, "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and not out.exists()
    assert message in err and "4500" not in err  # the plain path and --preset's say it alike


def _stub_guess(monkeypatch, preset):
    from napari_mr_reparam import contrast

    monkeypatch.setattr(contrast, "guess_input", lambda volume, weights=None, classifier=None:
                        contrast.ContrastGuess(preset, 0.9, {preset: 0.9}))


def test_an_input_that_names_nothing_is_read_as_the_preset_it_looks_like(tmp_path, monkeypatch, capsys):
    _stub_guess(monkeypatch, "T1w")
    scan = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((32, 32, 2)).astype(np.float32), np.eye(4)), scan)
    out = tmp_path / "out.nii.gz"
    assert main(["predict", str(scan), "-o", str(out), "--te", "100", "--tr", "5000", "-q"]) == 0
    err = capsys.readouterr().err
    assert "the image looks like T1w (90 %): read as T1w: spin echo, TE 15 / TR 500 ms" in err
    assert "taking the input to be at TE 50" not in err and out.exists()
    # named in any way, nothing is guessed
    assert main(["predict", str(scan), "-o", str(tmp_path / "b.nii.gz"), "--te", "100", "--tr", "5000", "-q",
                 "--input-sequence", "spin_echo"]) == 0
    assert "looks like" not in capsys.readouterr().err


def test_a_3d_t1_weighted_input_that_looks_mprage_like_is_read_as_mprage(tmp_path, monkeypatch, capsys):
    from napari_mr_reparam import contrast

    monkeypatch.setattr(contrast, "guess_input", lambda volume, weights=None, classifier=None:
                        contrast.ContrastGuess("T1w", 0.6, {"T1w": 0.6, "MPRAGE": 0.3}))
    data = np.random.default_rng(0).random((32, 32, 6)).astype(np.float32)
    for zoom, reading in ((1.0, "MPRAGE: mprage, TE 3 / TR 2300 / TI 900 ms"), (5.0, "T1w: spin echo, TE 15")):
        scan = tmp_path / f"scan{zoom:g}.nii.gz"
        nib.save(nib.Nifti1Image(data, np.diag([1.0, 1.0, zoom, 1.0])), scan)
        assert main(["predict", str(scan), "-o", str(tmp_path / f"out{zoom:g}.nii.gz"), "--te", "100",
                     "--tr", "5000", "-q"]) == 0
        err = capsys.readouterr().err
        assert f"read as {reading}" in err
        assert ("on 3-D voxels (1x1x1 mm) and MPRAGE-like (30 %)" in err) == (zoom == 1.0)


def test_a_guess_the_model_cannot_read_falls_back_to_the_default_input(tmp_path, tiny_weights, monkeypatch,
                                                                      capsys):
    _stub_guess(monkeypatch, "FLAIR")
    scan = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((16, 16, 2)).astype(np.float32), np.eye(4)), scan)
    assert main(["predict", str(scan), "-o", str(tmp_path / "o.nii.gz"), "--te", "100", "--tr", "5000", "-q",
                 "--model", "p2p"]) == 0
    err = capsys.readouterr().err
    assert "looks like" not in err and "taking the input to be at TE 50 ms / TR 4500 ms" in err


@pytest.mark.parametrize("extra, option", [
    (["--te", "10", "--tr", "500", "--sequence", "gradient_echo", "--flip", "0"], "--flip"),
    (["--preset", "MPRAGE", "--flip", "200"], "--flip"),
    (["--te", "10", "--tr", "500", "--input-sequence", "gradient_echo", "--input-te", "5", "--input-tr", "30",
      "--input-flip", "-10"], "--input-flip"),
    (["--preset", "T2w", "--input-preset", "MPRAGE", "--input-flip", "360"], "--input-flip"),
])
def test_a_flip_angle_outside_0_to_180_degrees_is_one_line_before_any_file_is_read(tmp_path, capsys, extra,
                                                                                  option):
    missing = tmp_path / "not_read.nii.gz"  # the angle is checked first, so this is never opened
    assert main(["predict", str(missing), "-o", str(tmp_path / "o.nii.gz"), "-q", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: {option} must be between 0 and 180 degrees (more than 0, at most 180)")
    assert main(["maps", str(missing), "-o", str(tmp_path / "maps"), "--input-flip", "0"]) == 2
    assert "error: --input-flip must be between 0 and 180 degrees" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("extra, said", [
    (["--te", "10", "--tr", "500", "--sequence", "gradient_echo", "--flip", "0.5"],
     "--flip 0.5 looks like radians (28.6 degrees)"),
    (["--preset", "T2w", "--input-preset", "MPRAGE", "--input-flip", "0.15"],
     "--input-flip 0.15 looks like radians (8.6 degrees)"),
])
def test_a_flip_angle_in_radians_is_refused_with_its_degrees(tmp_path, capsys, extra, said):
    missing = tmp_path / "not_read.nii.gz"
    assert main(["predict", str(missing), "-o", str(tmp_path / "o.nii.gz"), "-q", *extra]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: {said}; flip angles are given in degrees"


@pytest.mark.parametrize("sidecar, extra, message", [
    ({"EchoTime": 0.02, "RepetitionTime": 0.6}, [],
     "scan.nii.gz: d2p reads inputs at TE 50 / TR 4500 ms only; for an input at TE 20 / TR 600 ms (its sidecar) "
     "use --model p2p or --model physics"),
    ({"EchoTime": 0.12, "RepetitionTime": 9.0, "InversionTime": 2.5, "ScanningSequence": "IR"}, [],
     "scan.nii.gz: d2p reads spin-echo inputs at TE 50 / TR 4500 ms only; for an input of inversion recovery "
     "(its sidecar) use --model physics"),
    (None, ["--input-sequence", "gradient_echo"], "d2p reads spin-echo inputs at TE 50 / TR 4500 ms only; "
                                                  "for an input of gradient echo use --model physics"),
    (None, ["--input-ti", "900"], "for an input of inversion recovery use --model physics"),
])
def test_d2p_refuses_an_input_stated_to_be_acquired_otherwise(scan, tiny_weights, tmp_path, capsys, sidecar,
                                                             extra, message):
    path, _, _ = scan
    if sidecar is not None:
        (tmp_path / "scan.json").write_text(json.dumps(sidecar))
    out = tmp_path / "out.nii.gz"
    assert main(["predict", str(path), "-o", str(out), "--te", "100", "--tr", "3000", "--model", "d2p", "-q",
                 *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and err.endswith(message) and len(err.splitlines()) == 1
    assert not out.exists()
    (tmp_path / "scan.json").write_text(json.dumps({"EchoTime": 0.05, "RepetitionTime": 4.5, "FlipAngle": 90}))
    assert main(["predict", str(path), "-o", str(out), "--te", "100", "--tr", "3000", "--model", "d2p",
                 "-q"]) == 0


def test_d2p_refuses_a_dicom_acquisition_at_other_times(dual_echo, tiny_weights, tmp_path, capsys):
    out = tmp_path / "out.nii.gz"
    assert main(["predict", str(dual_echo), "-o", str(out), "--te", "100", "--tr", "3000", "--model", "d2p",
                 "--acquisition", "1", "-q"]) == 2
    assert ("d2p reads inputs at TE 50 / TR 4500 ms only; for an input at TE 15 / TR 3000 ms (its DICOM tags) "
            "use --model p2p") in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("form", [["--te", "100", "--tr", "3000"], ["--preset", "T2w"]])
def test_acquisition_for_an_input_that_is_not_dicom_is_refused(scan, dual_echo, tmp_path, capsys, form):
    path, _, _ = scan
    out = tmp_path / "out"
    assert main(["predict", str(dual_echo), str(path), "-o", str(out), "--acquisition", "2", "-q", *form]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: scan.nii.gz: --acquisition 2 picks one acquisition of a DICOM series or one volume of a 4-D "
        "NIfTI file, and this input is neither; leave out --acquisition for it")
    assert not out.exists()


@pytest.mark.parametrize("form", [["--te", "100", "--tr", "3000"], ["--preset", "T2w"]])
def test_inputs_of_one_file_name_are_told_apart_by_their_folders(tmp_path, tiny_weights, capsys, form):
    for folder in ("subj01", "subj02"):  # each subject's mri/scan.nii.gz, as FreeSurfer lays them out
        (tmp_path / folder / "mri").mkdir(parents=True)
        _oblique_nifti(tmp_path / folder / "mri" / "scan.nii.gz", shape=(16, 16, 2))
    out = tmp_path / "out"
    first, second = tmp_path / "subj01" / "mri" / "scan.nii.gz", tmp_path / "subj02" / "mri" / "scan.nii.gz"
    assert main(["predict", str(first), str(second), "-o", str(out), "-q", "--input-te", "50", "--input-tr",
                 "4500", *form]) == 0
    tag = "T2w" if "--preset" in form else "TE100_TR3000"
    assert sorted(p.name for p in out.glob("*.nii.gz")) == [f"subj01_mri_scan_{tag}.nii.gz",
                                                             f"subj02_mri_scan_{tag}.nii.gz"]


@pytest.mark.parametrize("form", [["--te", "100", "--tr", "3000"], ["--preset", "T2w"]])
def test_two_inputs_that_one_name_cannot_tell_apart_are_refused_before_anything_is_computed(tmp_path, capsys,
                                                                                           monkeypatch, form):
    from napari_mr_reparam.inference import Reparameterizer

    monkeypatch.setattr(Reparameterizer, "__init__", lambda *a, **k: pytest.fail("nothing is computed"))
    first, second = tmp_path / "scan.nii", tmp_path / "scan.nii.gz"
    for path in (first, second):
        _oblique_nifti(path, shape=(16, 16, 2))
    out = tmp_path / "out"
    assert main(["predict", str(first), str(second), "-o", str(out), "-q", *form]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"error: {first} and {second} would both be written to {out / 'scan_'}")
    assert err.endswith("(inputs of one file name); rename one, or predict them in separate runs")
    assert not out.exists()


def test_an_unreadable_sidecar_is_one_error_or_a_notice_when_the_times_are_given(scan, tiny_weights, tmp_path,
                                                                                capsys):
    path, _, _ = scan
    (tmp_path / "scan.json").write_text('{"EchoTime": 0.02,}')
    common = ["predict", str(path), "--te", "100", "--tr", "3000", "-q"]
    assert main(common + ["-o", str(tmp_path / "a.nii.gz")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "scan.json: not a readable BIDS sidecar (Expecting property name" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1 and not (tmp_path / "a.nii.gz").exists()
    assert main(common + ["-o", str(tmp_path / "b.nii.gz"), "--input-te", "20", "--input-tr", "600"]) == 0
    assert "notice: scan.nii.gz: scan.json is ignored (not a readable BIDS sidecar: Expecting property name" \
        in capsys.readouterr().err


def test_an_input_too_thin_for_the_bundled_network_is_one_line(tmp_path, capsys):
    path = tmp_path / "thin.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((2, 40, 3)).astype(np.float32), np.eye(4)), path)
    out = tmp_path / "out.nii.gz"
    assert main(["predict", str(path), "-o", str(out), "--te", "100", "--tr", "3000", "--input-preset", "T1w",
                 "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and err[-1].endswith(
        "thin.nii.gz: the slices are 40 x 2 pixels: too thin for physics, which needs 8 pixels or more along "
        "each side of a slice")
    assert "Traceback" not in "".join(err) and not out.exists()


@pytest.mark.parametrize("form", [["--te", "100", "--tr", "3000"], ["--preset", "T2w"],
                                  ["--joint", "--te", "100", "--tr", "3000"]])
def test_a_folder_with_nothing_to_read_is_named_with_what_was_expected(tmp_path, capsys, form):
    empty, notes = tmp_path / "empty", tmp_path / "notes"
    empty.mkdir()
    notes.mkdir()
    (notes / "readme.txt").write_text("not a scan")
    for folder, has in ((empty, "is empty"), (notes, "holds no file to read")):
        assert main(["predict", str(folder), "-o", str(tmp_path / "out"), "-q", *form]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith(f"error: {folder}: the folder {has}; expected ")
        assert err.endswith("or a DICOM series")  # --preset takes a folder's files as predict does
    assert main(["maps", str(empty), "-o", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == (f"error: {empty}: the folder is empty; expected a DICOM series "
                                               "(give NIfTI files and images as files)")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("form", [["--te", "100", "--tr", "3000"], ["--preset", "T2w"]])
def test_an_existing_sidecar_of_the_output_is_refused_before_anything_is_computed(scan, tmp_path, capsys,
                                                                                  monkeypatch, form):
    from napari_mr_reparam.inference import Reparameterizer

    path, _, _ = scan
    (tmp_path / "pred.json").write_text('{"mine": true}')
    monkeypatch.setattr(Reparameterizer, "__init__", lambda *a, **k: pytest.fail("nothing is computed"))
    assert main(["predict", str(path), "-o", str(tmp_path / "pred.nii.gz"), "-q", *form]) == 2
    assert capsys.readouterr().err.strip().endswith(f"error: {tmp_path / 'pred.json'} exists; pass --overwrite "
                                                     "to replace it")
    assert (tmp_path / "pred.json").read_text() == '{"mine": true}' and not (tmp_path / "pred.nii.gz").exists()


def test_batch_size_must_be_one_or_more(scan, tmp_path, capsys):
    path, _, _ = scan
    with pytest.raises(SystemExit) as stop:
        main(["predict", str(path), "-o", str(tmp_path / "o.nii.gz"), "--te", "100", "--tr", "3000",
              "--batch-size", "0"])
    assert stop.value.code == 2
    assert "error: argument --batch-size: must be 1 or more, got 0" in capsys.readouterr().err


def test_a_coronal_2d_dicom_series_is_predicted_with_a_notice_of_its_plane(tmp_path, tiny_weights, capsys):
    from dicom_helpers import CORONAL, ramp, write_series

    write_series(tmp_path / "cor", [ramp(3, 16, 16)], te=(90.0,), tr=3000.0, orientation=CORONAL)
    out = tmp_path / "out.nii.gz"
    assert main(["predict", str(tmp_path / "cor"), "-o", str(out), "--model", "physics", "--te", "40",
                 "--tr", "3000", "-q"]) == 0
    assert "cor: its slices are coronal; the network was trained on axial slices" in capsys.readouterr().err


def test_a_segmentation_is_refused_as_an_input_in_one_line(tmp_path, capsys):
    labels = np.random.default_rng(0).choice(np.array([0, 2, 3, 41], np.int32), size=(16, 16, 4))
    nib.save(nib.MGHImage(labels, np.eye(4)), str(tmp_path / "aseg.mgz"))
    for command in (["predict", str(tmp_path / "aseg.mgz"), "-o", str(tmp_path / "out"), "--te", "100",
                     "--tr", "5000", "--input-preset", "T1w", "-q"],
                    ["maps", str(tmp_path / "aseg.mgz"), "-o", str(tmp_path / "maps"), "--input-preset", "T1w"]):
        assert main(command) == 2
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert last.startswith("error: ") and last.endswith(
            "aseg.mgz: holds 4 integer labels (a segmentation, such as aseg.mgz), not an MR image; give the scan itself")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aseg.mgz"]  # nothing written


@pytest.mark.parametrize("model", ["physics", "d2p"])
def test_an_infinite_voxel_is_not_measured_and_blanks_nothing_else(tmp_path, tiny_weights, capsys, model):
    import warnings

    data = np.random.default_rng(0).uniform(100, 800, (24, 20, 3)).astype(np.float32)
    data[5, 6, 1], data[7, 8, 2] = np.inf, -np.inf
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / "inf.nii.gz"))
    out = tmp_path / "out.nii.gz"
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert main(["predict", str(tmp_path / "inf.nii.gz"), "-o", str(out), "--te", "100", "--tr", "3000",
                     "--model", model, "-q"]) == 0
    assert "Warning" not in capsys.readouterr().err
    np.testing.assert_array_equal(np.isnan(np.asarray(nib.load(out).dataobj)), ~np.isfinite(data))


def test_a_volume_without_positive_signal_is_refused(tmp_path, tiny_weights, capsys):
    data = -np.random.default_rng(0).uniform(0.5, 1.0, (16, 16, 3)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / "neg.nii.gz"))
    out = tmp_path / "out.nii.gz"
    assert main(["predict", str(tmp_path / "neg.nii.gz"), "-o", str(out), "--te", "100", "--tr", "3000", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {tmp_path / 'neg.nii.gz'}: the volume holds no image: no voxel is above 0 (")
    assert err.endswith("an MR magnitude image has positive signal, so give the magnitude image")
    assert len(err.splitlines()) == 1 and not out.exists()


def test_the_sidecar_records_the_input_as_used(scan, tiny_weights, tmp_path, monkeypatch):
    from napari_mr_reparam.volume_writing import INPUT_UNITS

    path, _, _ = scan
    runs = iter(range(100))

    def used(*extra, model="physics"):
        out = tmp_path / f"out{next(runs)}.nii.gz"
        assert main(["predict", str(path), "-o", str(out), "--te", "100", "--tr", "3000", "--model", model, "-q",
                     *extra]) == 0
        meta = json.loads(out.with_name(out.name.replace(".nii.gz", ".json")).read_text())
        assert (meta["EchoTime"], meta["RepetitionTime"], meta["ScanningSequence"]) == (0.1, 3.0, "SE")
        record = meta["Input"]
        assert record.pop("File") == "scan.nii.gz" and record.pop("Units") == INPUT_UNITS
        assert record.pop("ScanningSequence") and record.pop("PulseSequenceType")
        return record

    assert used("--input-te", "30", "--input-tr", "2500") == {"EchoTime": 0.03, "RepetitionTime": 2.5,
                                                              "Source": "given"}
    assert used("--input-preset", "PDw") == {"EchoTime": 0.015, "RepetitionTime": 3.0, "Source": "given",
                                             "Preset": "PDw"}
    assert used(model="d2p") == {"EchoTime": 0.05, "RepetitionTime": 4.5, "Source": "default"}
    _stub_guess(monkeypatch, "T2w")
    assert used() == {"EchoTime": 0.1, "RepetitionTime": 4.0, "Source": "guessed", "Preset": "T2w"}
    (tmp_path / "scan.json").write_text(json.dumps({"EchoTime": 0.02, "RepetitionTime": 0.6}))
    assert used() == {"EchoTime": 0.02, "RepetitionTime": 0.6, "Source": "BIDS sidecar"}
    assert used("--input-te", "25") == {"EchoTime": 0.025, "RepetitionTime": 0.6, "Source": "given and BIDS sidecar"}


@pytest.mark.parametrize("form", [["--te", "100", "--tr", "3000"], ["--preset", "T2w"]])
def test_an_input_given_twice_is_refused_before_anything_is_computed(scan, tmp_path, capsys, monkeypatch, form):
    from napari_mr_reparam.inference import Reparameterizer

    monkeypatch.setattr(Reparameterizer, "__init__", lambda *a, **k: pytest.fail("nothing is computed"))
    path, _, _ = scan
    out = tmp_path / "out"
    for given in ([str(path), str(path)], [str(tmp_path), str(path)]):  # itself, or in a folder given too
        assert main(["predict", *given, "-o", str(out), "-q", *form]) == 2
        err = capsys.readouterr().err.strip()
        assert err == f"error: {path} is given twice: both would be written to the same outputs; give it once"
    assert not out.exists()


def test_inputs_whose_outputs_share_a_sidecar_are_refused_before_anything_is_computed(tmp_path, capsys,
                                                                                      monkeypatch):
    from napari_mr_reparam.inference import Reparameterizer

    monkeypatch.setattr(Reparameterizer, "__init__", lambda *a, **k: pytest.fail("nothing is computed"))
    (tmp_path / "in").mkdir()
    for name in ("x.nii", "x.nii.gz"):
        _oblique_nifti(tmp_path / "in" / name, shape=(16, 16, 2))
    out = tmp_path / "out"
    assert main(["predict", str(tmp_path / "in"), "-o", str(out), "--te", "100", "--tr", "3000", "-q"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {tmp_path / 'in' / 'x.nii'} and {tmp_path / 'in' / 'x.nii.gz'} would both be written to "
        f"{out / 'x_TE100_TR3000.json'} (inputs of one file name); rename one, or predict them in separate runs")
    assert not out.exists()


def test_the_paper_models_render_spin_echo_presets(scan, tiny_weights, tmp_path, capsys):
    path, _, _ = scan
    for model, extra in (("p2p", ["--input-te", "15", "--input-tr", "500"]), ("d2p", [])):
        out = tmp_path / f"{model}_T2w.nii.gz"  # beside the test weights' cards, d2p.json and p2p.json
        assert main(["predict", str(path), "--preset", "T2w", "--model", model, "-o", str(out), "-q", *extra]) == 0
        assert "preset T2w: spin echo, TE 100 / TR 4000 ms" in capsys.readouterr().err
        meta = json.loads((tmp_path / f"{model}_T2w.json").read_text())
        assert (meta["EchoTime"], meta["RepetitionTime"], meta["GeneratedBy"][0]["Model"]) == (0.1, 4.0, model)
        assert meta["GeneratedBy"][0]["WeightsSHA256"] == sha256_of(tiny_weights / f"{model}.safetensors")
    # a value overridden; a folder names the output after the preset, as for the physics model
    assert main(["predict", str(path), "--preset", "PDw", "--tr", "2500", "--model", "d2p", "-o",
                 str(tmp_path / "folder"), "-q"]) == 0
    assert json.loads((tmp_path / "folder" / "scan_PDw.json").read_text())["RepetitionTime"] == 2.5


@pytest.mark.parametrize("extra, message", [
    (["--preset", "FLAIR"], "p2p predicts spin-echo images only, and FLAIR is inversion recovery; use --model "
                            "physics, or a spin-echo preset (T1w, T2w, PDw)"),
    (["--preset", "T2w", "--ti", "500"], "T2w is spin echo, which has no inversion: TI 500 ms would be unused; "
                                         "leave it out"),
])
def test_the_paper_models_refuse_what_a_spin_echo_preset_cannot_be_in_one_line(scan, tiny_weights, tmp_path,
                                                                               capsys, extra, message):
    path, _, _ = scan
    out = tmp_path / "out.nii.gz"
    assert main(["predict", str(path), "--model", "p2p", "-o", str(out), "-q", *extra]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: {message}"
    assert not out.exists()


def test_help_says_what_each_option_takes(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--model MODEL bundled model the widget starts with: physics (the default)" in out
    assert "--device DEVICE auto (the default: CUDA, then MPS, then CPU), cpu, cuda or mps" in out
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "two, TI1 and TI2, for double inversion recovery (--sequence double_inversion_recovery, --preset DIR)" \
        in out and "--joint --preset" not in out
    assert ("the others need a physics model: inversion_recovery --ti, gradient_echo --flip, mprage --ti and "
            "--flip, double_inversion_recovery --ti TI1 TI2") in out


def test_plain_predict_reads_an_input_ti_as_joint_does_and_never_drops_a_flip(scan, sequence_weights, tmp_path,
                                                                              capsys):
    path, _, _ = scan
    common = ["predict", str(path), "--te", "100", "--tr", "3000", "--input-te", "15", "--input-tr", "3000", "-q",
              "--weights", sequence_weights]
    assert main([*common, "-o", str(tmp_path / "ir.nii.gz"), "--input-ti", "900"]) == 0
    record = json.loads((tmp_path / "ir.json").read_text())["Input"]
    assert (record["ScanningSequence"], record["InversionTime"]) == ("IR", 0.9)
    capsys.readouterr()
    for extra, option in ((["--input-flip", "12"], "--input-flip 12 applies to gradient_echo or mprage inputs"),
                          (["--input-sequence", "spin_echo", "--input-ti", "900"],
                           "--input-ti 900 applies to inversion_recovery or mprage inputs"),
                          (["--input-sequence", "inversion_recovery", "--input-ti", "900", "--input-flip", "12"],
                           "--input-flip 12 applies to gradient_echo or mprage inputs")):
        out = tmp_path / "x.nii.gz"
        assert main([*common, "-o", str(out), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith(f"error: {path}: {option}, and this input is read as ") and not out.exists()
    assert main(["predict", str(path), "--te", "100", "--tr", "3000", "-q", "-o", str(tmp_path / "by_d2p.nii.gz"),
                 "--model", "d2p", "--input-flip", "12"]) == 2
    assert "--input-flip 12 applies to gradient_echo or mprage" in capsys.readouterr().err


def test_a_gradient_echo_input_tr_of_a_few_ms_given_as_an_option_is_read(scan, sequence_weights, tmp_path, capsys):
    path, _, _ = scan
    out = tmp_path / "gre.nii.gz"
    assert main(["predict", str(path), "-o", str(out), "--te", "100", "--tr", "3000", "-q", "--weights",
                 sequence_weights, "--input-sequence",
                 "gradient_echo", "--input-te", "2.5", "--input-tr", "7.5", "--input-flip", "12"]) == 0
    record = json.loads((tmp_path / "gre.json").read_text())["Input"]
    assert (record["ScanningSequence"], record["RepetitionTime"], record["FlipAngle"]) == ("GR", 0.0075, 12.0)
    assert main(["predict", str(path), "-o", str(tmp_path / "se.nii.gz"), "--te", "100", "--tr", "3000", "-q",
                 "--input-te", "2.5", "--input-tr", "7.5"]) == 2
    assert "input TR 7.5 looks like seconds" in capsys.readouterr().err


@pytest.mark.parametrize("form", [["--te", "100", "--tr", "3000"], ["--preset", "T2w"]])
def test_an_output_over_its_input_or_the_inputs_sidecar_is_refused_even_with_overwrite(scan, tmp_path, capsys,
                                                                                       monkeypatch, form):
    from napari_mr_reparam.inference import Reparameterizer

    monkeypatch.setattr(Reparameterizer, "__init__", lambda *a, **k: pytest.fail("nothing is computed"))
    path, _, _ = scan
    side = tmp_path / "scan.json"
    side.write_text(json.dumps({"EchoTime": 0.015, "RepetitionTime": 0.5}))
    before = path.read_bytes(), side.read_text()
    for output, what in ((path, f"{path} would be written over the input {path}"),
                         (tmp_path / "scan.nii", f"{side} would be written over the sidecar of the input {path}")):
        assert main(["predict", str(path), "-o", str(output), "--overwrite", "-q", *form]) == 2
        assert capsys.readouterr().err.strip().endswith(
            f"error: {what}; an output never replaces an input or its sidecar (not even with --overwrite): "
            "choose another output name or folder")
    assert (path.read_bytes(), side.read_text()) == before and not (tmp_path / "scan.nii").exists()


@pytest.mark.parametrize("option", [["--register"], ["--scale", "per-input"], ["--scale", "auto"],
                                    ["--echo-train", "ideal"], ["--no-smooth"]])
@pytest.mark.parametrize("form", [["--te", "100", "--tr", "3000"], ["--preset", "T2w"]])
def test_options_of_the_joint_fit_are_refused_without_joint(scan, tmp_path, capsys, form, option):
    path, _, _ = scan
    out = tmp_path / "x.nii.gz"
    assert main(["predict", str(path), "-o", str(out), *form, *option]) == 2
    assert capsys.readouterr().err.strip() == (f"error: {option[0]} applies to --joint (several images of one "
                                               "subject) and maps; without --joint each input is predicted alone")
    assert not out.exists()


@pytest.mark.parametrize("sidecar, field", [({"EchoTime": "0.03", "RepetitionTime": 3.0}, 'EchoTime "0.03"'),
                                            ({"EchoTime": 0.03, "RepetitionTime": 0}, "RepetitionTime 0"),
                                            ({"EchoTime": -0.03, "RepetitionTime": 3.0}, "EchoTime -0.03")])
def test_a_sidecar_time_that_is_no_time_is_named_not_taken_for_missing(scan, tiny_weights, tmp_path, capsys,
                                                                        sidecar, field):
    path, _, _ = scan
    (tmp_path / "scan.json").write_text(json.dumps(sidecar))
    out = tmp_path / "x.nii.gz"
    assert main(["predict", str(path), "-o", str(out), "--te", "100", "--tr", "3000", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path}: scan.json: {field} is not a time (BIDS sidecars state it as a positive "
                          "number of seconds); fix it, or give the input's value with --input-")
    assert "no input acquisition given" not in err and len(err.splitlines()) == 1 and not out.exists()
    assert main(["predict", str(path), "-o", str(out), "--te", "100", "--tr", "3000", "-q", "--input-te", "30",
                 "--input-tr", "3000"]) == 0
    assert f"{field} in scan.json is ignored (not a positive number of seconds)" in capsys.readouterr().err


def test_the_ok_line_words_a_targets_ti_and_flip(scan, tiny_weights, tmp_path, capsys):
    path, _, _ = scan
    assert main(["predict", str(path), "-o", str(tmp_path / "ir.nii.gz"), "--sequence", "inversion_recovery",
                 "--te", "100", "--tr", "9000", "--ti", "2500", "-q"]) == 0
    assert "TE 100 / TR 9000 ms, TI 2500 ms -> " in capsys.readouterr().out
    assert main(["predict", str(path), "-o", str(tmp_path / "gre.nii.gz"), "--sequence", "gradient_echo",
                 "--te", "4", "--tr", "20", "--flip", "15", "-q"]) == 0
    assert "TE 4 / TR 20 ms, flip 15 deg -> " in capsys.readouterr().out


def test_a_file_output_for_a_4d_niftis_volumes_says_it_holds_them(tmp_path, capsys):
    data = np.random.default_rng(0).random((16, 16, 2, 2)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "four.nii.gz")
    out = tmp_path / "x.nii.gz"
    for form in (["--te", "100", "--tr", "3000"], ["--preset", "T2w"]):
        assert main(["predict", str(tmp_path / "four.nii.gz"), "-o", str(out), "-q", *form]) == 2
        assert capsys.readouterr().err.strip().endswith(
            "four.nii.gz: the input holds 2 volumes, each predicted separately; give an output folder for "
            "-o, not a file, or choose one with --acquisition N")
    assert not out.exists()


def test_an_image_models_preset_is_recorded_in_the_outputs_sidecar(scan, tiny_weights, tmp_path):
    path, _, _ = scan
    assert main(["predict", str(path), "--preset", "T2w", "--model", "p2p", "--input-te", "30", "--input-tr",
                 "2500", "-o", str(tmp_path / "t2w.nii.gz"), "-q"]) == 0
    meta = json.loads((tmp_path / "t2w.json").read_text())
    assert meta["Preset"] == "T2w" and meta["Input"]["Source"] == "given"


def test_each_readme_example_block_writes_each_output_once_and_never_over_an_input():
    """Run top to bottom, no line of a README block is refused for an output an earlier
    line wrote, nor writes over a file another line reads."""
    import re
    import shlex
    from pathlib import Path

    from napari_mr_reparam.cli import build_parser

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    parser = build_parser()
    for block in re.findall(r"```bash\n(.*?)```", readme, re.S):
        lines = [line.split(" #")[0] for line in block.replace("\\\n", " ").splitlines()]
        commands = [parser.parse_args(shlex.split(line)[1:]) for line in lines
                    if line.startswith(("napari-mr-reparam predict", "napari-mr-reparam maps"))]
        outputs = [c.output.rstrip("/") for c in commands]
        inputs = {i.rstrip("/") for c in commands for i in c.input}
        assert len(outputs) == len(set(outputs)), block
        assert not inputs & set(outputs), block


def test_an_input_with_voxels_not_measured_says_how_many_and_what_becomes_of_them(tmp_path, tiny_weights, capsys):
    data = np.random.default_rng(0).uniform(100, 800, (24, 20, 3)).astype(np.float32)
    data[2:7, 3:7, 1], data[0, 0, 0] = np.nan, np.inf
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / "nan.nii.gz"))
    (tmp_path / "nan.json").write_text(json.dumps({"EchoTime": 0.05, "RepetitionTime": 4.5}))
    out = tmp_path / "out.nii.gz"
    assert main(["predict", str(tmp_path / "nan.nii.gz"), "-o", str(out), "--te", "100", "--tr", "3000", "-q"]) == 0
    assert capsys.readouterr().err.splitlines() == [
        "notice: nan.nii.gz: 21 voxels are NaN or infinite (not measured): read as 0, NaN in the output"]
    assert np.isnan(np.asarray(nib.load(out).dataobj)).sum() == 21


def test_d2p_says_it_takes_an_input_that_states_no_acquisition_as_its_own(scan, tiny_weights, tmp_path, capsys):
    path, _, _ = scan
    args = ["predict", str(path), "--te", "100", "--tr", "3000", "--model", "d2p", "-q"]
    assert main([*args, "-o", str(tmp_path / "a.nii.gz")]) == 0
    assert capsys.readouterr().err.splitlines() == [
        ("notice: scan.nii.gz: no input TE/TR given or in its metadata; taken as TE 50 / TR 4500 ms, the one input "
         "acquisition d2p reads")]
    (tmp_path / "scan.json").write_text(json.dumps({"EchoTime": 0.05, "RepetitionTime": 4.5}))
    assert main([*args, "-o", str(tmp_path / "b.nii.gz")]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("given, notice", [
    (["--input-te", "30", "--input-tr", "2500"],
     "notice: scan.nii.gz: --input-te and --input-tr replace the TE and TR that its BIDS sidecar states (50, 4500 ms)"),
    (["--input-te", "50", "--input-tr", "2500"],
     "notice: scan.nii.gz: --input-tr replaces the TR that its BIDS sidecar states (4500 ms)"),
    (["--input-te", "50", "--input-tr", "4500"], None),
])
def test_input_times_that_replace_the_sidecars_say_so_in_one_line(scan, tiny_weights, tmp_path, capsys, given,
                                                                  notice):
    path, _, _ = scan
    (tmp_path / "scan.json").write_text(json.dumps({"EchoTime": 0.05, "RepetitionTime": 4.5}))
    assert main(["predict", str(path), "-o", str(tmp_path / "a.nii.gz"), "--te", "100", "--tr", "3000", "-q",
                 *given]) == 0
    assert capsys.readouterr().err.splitlines() == ([notice] if notice else [])


@pytest.mark.parametrize("sequence, target, name, fields", [
    ("mprage", ["--te", "3", "--tr", "2300", "--ti", "900", "--flip", "9"], "scan_TE3_TR2300_TI900_FA9",
     {"PulseSequenceType": "MPRAGE", "InversionTime": 0.9, "FlipAngle": 9.0}),
    ("double_inversion_recovery", ["--te", "25", "--tr", "11000", "--ti", "3400", "325"],
     "scan_TE25_TR11000_TI3400-325",
     {"PulseSequenceType": "double inversion recovery", "InversionTime": 3.4, "InversionTime2": 0.325}),
])
def test_sequence_takes_the_mprage_and_double_inversion_recovery_targets(scan, tiny_weights, tmp_path, capsys,
                                                                         sequence, target, name, fields):
    path, _, _ = scan
    args = ["predict", str(path), "--sequence", sequence, *target, "--input-te", "50", "--input-tr", "4500", "-q"]
    assert main([*args, "-o", str(tmp_path / "out")]) == 0
    assert np.isfinite(np.asarray(nib.load(tmp_path / "out" / f"{name}.nii.gz").dataobj)).all()
    sidecar = json.loads((tmp_path / "out" / f"{name}.json").read_text())
    assert {k: sidecar[k] for k in fields} == fields
    for model in ("d2p", "p2p"):
        assert main([*args, "--model", model, "-o", str(tmp_path / model)]) == 2
        assert capsys.readouterr().err.splitlines()[-1] == (
            f"error: {model} predicts spin-echo images only; --sequence {sequence} needs the physics model "
            "(--model physics)")
        assert not (tmp_path / model).exists()


def test_an_input_that_fails_is_named_with_the_times_it_was_read_at(dual_echo, tiny_weights, tmp_path, capsys,
                                                                    monkeypatch):
    import napari_mr_reparam.volume_writing as writing

    def refused(*args, **kwargs):
        raise OSError("cannot write there: read-only file system")

    monkeypatch.setattr(writing, "save_volume", refused)
    assert main(["predict", str(dual_echo), "-o", str(tmp_path / "one.nii.gz"), "--te", "40", "--tr", "3000",
                 "--acquisition", "2", "--input-te", "80", "-q"]) == 2
    assert "error: dual_acq2 (TE 80 / TR 3000 ms): cannot write there" in capsys.readouterr().err


def test_a_folder_of_files_names_its_subfolders_left_unread_and_a_link_to_nothing_fails(tmp_path, tiny_weights,
                                                                                       capsys):
    from dicom_helpers import ramp, write_series

    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    _oblique_nifti(folder / "a.nii.gz", shape=(30, 28, 2))
    write_series(folder / "series", [ramp(3, 28, 30) * 10], te=(50.0,), tr=4500.0)
    _oblique_nifti(folder / "sub" / "b.nii.gz", shape=(30, 28, 2))
    (folder / "gone.nii.gz").symlink_to(tmp_path / "nowhere.nii.gz")
    times = ["--te", "90", "--tr", "4000", "--input-te", "50", "--input-tr", "4500", "-q"]
    assert main(["predict", str(folder), "-o", str(tmp_path / "out"), *times]) == 2
    err = capsys.readouterr().err
    assert (f"notice: {folder}: its subfolders series, sub are not read (the files in it are): give each as an "
            "input of its own") in err
    assert "error: " in err and "gone.nii.gz" in err
    assert [p.name for p in (tmp_path / "out").glob("*.nii.gz")] == ["a_TE90_TR4000.nii.gz"]
    # a subfolder the folder does not read is an input of its own beside it, not one read twice
    assert main(["predict", str(folder / "a.nii.gz"), str(folder / "series"), "-o", str(tmp_path / "two"),
                 *times]) == 0
    (folder / "gone.nii.gz").unlink()
    assert main(["predict", str(folder), str(folder / "sub"), "-o", str(tmp_path / "four"), *times]) == 0
    assert f"notice: {folder}: its subfolder series is not read (the files in it are): give it as an input of " \
           "its own" in capsys.readouterr().err  # sub, given, is read
    assert main(["predict", str(folder / "a.nii.gz"), str(folder / "sub"), "-o", str(tmp_path / "three"),
                 *times]) == 0


def test_a_quoted_tilde_is_the_home_folder(scan, tiny_weights, tmp_path, monkeypatch):
    path, _, _ = scan
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "home").mkdir()
    assert main(["predict", str(path), "-o", "~/pred.nii.gz", "--te", "100", "--tr", "3000", "-q"]) == 0
    assert (tmp_path / "home" / "pred.nii.gz").is_file() and not (tmp_path / "~").exists()


def test_a_log_file_gets_no_progress_bar(scan, tiny_weights, tmp_path, capsys):
    path, _, _ = scan  # capsys's stderr is no terminal, as a log file is not
    assert main(["predict", str(path), "-o", str(tmp_path / "p.nii.gz"), "--te", "100", "--tr", "3000"]) == 0
    said = capsys.readouterr()
    assert "%|" not in said.err and "ok " in said.out


def test_a_preset_target_from_a_series_without_an_echo_time_names_the_series_once(tmp_path, tiny_weights, capsys):
    from dicom_helpers import ramp, write_series

    write_series(tmp_path / "noTE", [ramp(2, 8, 8)], tr=2000.0, drop=("EchoTime",))
    assert main(["predict", str(tmp_path / "noTE"), "--preset", "T2w", "-o", str(tmp_path / "a.nii.gz"), "-q"]) == 2
    [line] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert line.startswith("error: noTE (TE ? (echo 1) / TR 2000 ms): the input's TR is known (2000 ms) but not its TE")
    assert not (tmp_path / "a.nii.gz").exists()


def test_outputs_in_a_derivative_dataset_go_to_their_subjects_folders(tmp_path, tiny_weights):
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "dataset_description.json").write_text(json.dumps({"Name": "raw", "BIDSVersion": "1.10.0"}))
    scans = []
    for sub in ("01", "02"):
        anat = ds / f"sub-{sub}" / "anat"
        anat.mkdir(parents=True)
        _oblique_nifti(anat / f"sub-{sub}_T2w.nii.gz", shape=(40, 36, 3))
        (anat / f"sub-{sub}_T2w.json").write_text(json.dumps({"EchoTime": 0.1, "RepetitionTime": 4.0}))
        scans.append(str(anat / f"sub-{sub}_T2w.nii.gz"))
    out = ds / "derivatives" / "reparam"
    assert main(["predict", *scans, "--te", "20", "--tr", "600", "-o", f"{out}/", "-q"]) == 0
    for sub in ("01", "02"):
        assert (out / f"sub-{sub}" / "anat" / f"sub-{sub}_T2w_TE20_TR600.nii.gz").is_file()
    assert json.loads((out / "dataset_description.json").read_text())["DatasetType"] == "derivative"
    assert main(["predict", scans[0], "--preset", "FLAIR", "-o", f"{out}/", "-q"]) == 0
    assert (out / "sub-01" / "anat" / "sub-01_T2w_FLAIR.nii.gz").is_file()
    assert main(["predict", scans[0], "--te", "20", "--tr", "600", "-o", f"{tmp_path / 'flat'}/", "-q"]) == 0
    assert (tmp_path / "flat" / "sub-01_T2w_TE20_TR600.nii.gz").is_file()  # not a derivative dataset: flat
