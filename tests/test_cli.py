import json

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from test_io import _oblique_nifti

from napari_mr_reparam.cli import main


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
    assert "TE 100/TR 3000 ms" in capsys.readouterr().out


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


@pytest.mark.parametrize("extra, message", [
    (["--te", "3000", "--tr", "100"], "shorter than TR"),
    (["--te", "-5", "--tr", "100"], "positive"),
    (["--te", "abc", "--tr", "100"], "not a number"),
    (["--te", "50", "--tr", "4000", "--model", "gan"], "unknown model 'gan'; known: d2p, p2p"),
    (["--te", "50", "--tr", "4000", "--model", "runs/gone.pt"], "no weights file 'runs/gone.pt': no such file"),
    (["--te", "50", "--tr", "4000", "--flip-average"], "flip averaging applies to the physics model only"),
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
    assert main(["predict", str(path), "-o", str(tmp_path / "x.nii.gz"), "--te", "5", "--tr", "100", "-q"]) == 0
    assert "outside the trained range" in capsys.readouterr().err


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
                 "--tr", "3000"]) == 1
    assert "bad.nii" in capsys.readouterr().err and not (tmp_path / "o.nii").exists()


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
    assert code == 1  # one input was broken; the others were written
    written = sorted(p.name for p in (tmp_path / "out").iterdir() if p.suffix != ".json")
    assert written == ["a_TE30_TR800.nii.gz", "a_TE90_TR4000.nii.gz", "b_TE30_TR800.nii.gz",
                       "b_TE90_TR4000.nii.gz"]
    assert len(calls) == 2  # maps once per input, not per target
    captured = capsys.readouterr()
    assert "2 of 3 files done" in captured.out and "failed" in captured.err


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


def test_input_sequence_comes_from_options_or_sidecar(scan, tiny_weights, tmp_path, capsys):
    path, _, _ = scan
    args = ["predict", str(path), "--te", "100", "--tr", "3000", "--model", "physics", "-q",
            "--input-te", "3", "--input-tr", "2300"]
    assert main(args + ["-o", str(tmp_path / "a.nii.gz"), "--input-sequence", "mprage"]) == 1
    assert "needs its inversion time: --input-ti" in capsys.readouterr().err
    assert main(args + ["-o", str(tmp_path / "a.nii.gz"), "--input-sequence", "mprage", "--input-ti", "900",
                        "--input-flip", "9"]) == 1
    assert "reads spin-echo inputs only" in capsys.readouterr().err  # the tiny physics net is an old one
    (tmp_path / "scan.json").write_text(json.dumps({"EchoTime": 0.003, "RepetitionTime": 2.3,
                                                    "InversionTime": 0.9, "FlipAngle": 9,
                                                    "ScanningSequence": ["GR", "IR"]}))
    assert main(args[:-4] + ["-o", str(tmp_path / "b.nii.gz")]) == 1
    assert "reads spin-echo inputs only" in capsys.readouterr().err
