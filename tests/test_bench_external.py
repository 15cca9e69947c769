"""The external benchmark (benchmarks/bench_external.py) on a tiny configuration: every
row group prints its table with a row for every model, and the JSON holds the figures."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_external  # noqa: E402

from helpers import mrilab_path  # noqa: E402


def _label_map(path: Path, size: int = 40) -> Path:
    """A ball of white matter with ventricles, cortex, CSF and two unnamed head labels,
    FreeSurfer-numbered, at 1 mm."""
    import nibabel as nib

    z, y, x = np.indices((size,) * 3) - size / 2
    r = np.sqrt(z**2 + y**2 + x**2)
    labels = np.zeros((size,) * 3, np.int16)
    for radius, label in ((19, 507), (17, 515), (15, 24), (14, 3), (11, 2), (4, 4)):
        labels[r < radius] = label
    labels[(r < 11) & (x > 5)] = 41
    nib.save(nib.Nifti1Image(labels, np.eye(4)), str(path))
    return path


def _run(tmp_path, capsys, *args):
    out = tmp_path / "out.json"
    assert bench_external.main([*args, "--json", str(out), "--device", "cpu"]) == 0
    return capsys.readouterr().out, json.loads(out.read_text())


def _table_rows(text: str, title: str) -> list[str]:
    block = text.split(f"### {title}")[1].split("###")[0]
    return [line for line in block.splitlines() if line.startswith("| ") and not line.startswith("| model")]


def test_heldout_sample_and_template_tables_have_every_row(tiny_weights, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench_external, "SAMPLE_EVERY", 8)  # 3 of the demo's 24 slices
    subjects = [str(_label_map(tmp_path / "s.nii.gz"))]
    text, report = _run(tmp_path, capsys, "--groups", "heldout", "sample", "mni152",
                        "--subjects", *subjects, "--slices", "2", "--targets", "4")
    assert report["models"] == ["identity", "physics", "d2p", "p2p"]

    heldout = _table_rows(text, bench_external.TITLES["heldout"])
    # identity: all seven inputs; tiny physics and p2p: the four spin-echo ones; d2p: the default
    assert len(heldout) == 7 + 4 + 1 + 4
    assert {r.split(" | ")[1] for r in heldout} == {f"{n} input" for n in bench_external.INPUT_NAMES}
    rows = report["heldout"]["rows"]
    assert all(r["summary"]["count"] == 2 * 4 for r in rows)  # slices x targets
    assert all(r["summary"]["psnr_t1_like_mean"] > 0 for r in rows)
    identity = next(r for r in rows if r["model"] == "identity" and r["what"] == "default input")
    assert identity["saw"] is None and 0 < identity["summary"]["psnr_mean"] < 100

    sample = _table_rows(text, bench_external.TITLES["sample"])
    assert [r.split(" | ")[0] for r in sample] == ["| identity", "| physics", "| d2p", "| p2p"]
    assert all(len(r["targets"]) == 3 and r["targets"][0]["images"] == 3 for r in report["sample"]["rows"])

    template = report["mni152"]["rows"]
    kinds = {(r["model"].split(" ")[0], r["target"]) for r in template}
    assert ("identity", "T1-like") in kinds and ("physics", "FLAIR-like") in kinds
    assert ("p2p", "T2-like") in kinds and ("p2p", "FLAIR-like") not in kinds  # spin echo only
    identity_t1 = next(r for r in template if r["model"] == "identity")
    assert identity_t1["right"]  # the T1-weighted template itself: WM > GM > CSF


def test_the_same_draws_give_the_same_subject(tmp_path):
    path = _label_map(tmp_path / "s.nii.gz")
    a, b = (bench_external.heldout_subject(path, 3, 2) for _ in range(2))
    acq = a.inputs[1]
    assert np.array_equal(a.acquire(acq), b.acquire(acq))
    assert a.thickness in range(bench_external.SLICE_MM[0], bench_external.SLICE_MM[1] + 1)
    assert a.classes.shape[-2:] == (bench_external.MATRIX,) * 2
    other = bench_external.heldout_subject(path, 4, 2)
    assert not np.array_equal(a.values, other.values)


def test_the_gradient_echo_input_is_drawn_apart_from_the_rest(tmp_path, monkeypatch):
    path = _label_map(tmp_path / "s.nii.gz")
    a = bench_external.heldout_subject(path, 3, 2)
    gre = a.inputs[-1]
    assert gre.name == "T1w GRE" and gre.sequence == "gradient_echo" and 15 <= gre.flip <= 30
    monkeypatch.setattr(bench_external, "gradient_echo_input",
                        lambda rng: bench_external.Acq(5.0, 20.0, "gradient_echo", flip=20.0, name="T1w GRE"))
    b = bench_external.heldout_subject(path, 3, 2)  # the other draws do not depend on it
    assert a.inputs[:-1] == b.inputs[:-1] and a.noise == b.noise and a.thickness == b.thickness
    assert np.array_equal(a.values, b.values) and np.array_equal(a.bias, b.bias)


def test_ordering_rules():
    assert bench_external.ordering_right("WM > GM > CSF", csf=10, gm=50, wm=80)
    assert not bench_external.ordering_right("CSF > GM > WM", csf=10, gm=50, wm=80)
    assert bench_external.ordering_right("GM > WM, CSF >= 0.9 GM", csf=46, gm=50, wm=40)
    assert not bench_external.ordering_right("GM > WM, CSF >= 0.9 GM", csf=40, gm=50, wm=40)


def test_mrilab_rows_cover_both_tasks(tiny_weights, tmp_path, capsys):
    spec = f"mrilab:{mrilab_path()}"
    text, report = _run(tmp_path, capsys, "--groups", "mrilab", "--mrilab", spec, "--limit", "4")
    rows = _table_rows(text, bench_external.TITLES["mrilab"])
    assert len(rows) == 2 + 2 + 1 + 2  # identity, physics (both tasks), d2p, p2p (both tasks)
    assert all(r["summary"]["count"] == 4 for r in report["mrilab"]["rows"])


def test_an_existing_json_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "out.json"
    out.write_text("{}")
    with pytest.raises(SystemExit):
        bench_external.main(["--json", str(out)])
    assert out.read_text() == "{}"
    assert "exists" in capsys.readouterr().err


class _ImageEngine:
    """An engine that predicts the input times a gain that depends on the input's sequence."""

    renders_from_maps = False

    def __init__(self, reads_sequence: bool):
        self.reads_sequence = reads_sequence

    def predict(self, images, target, input=None):
        gain = 0.5 if self.reads_sequence and input.sequence == "inversion_recovery" else 1.0
        return np.asarray(images) * gain


def test_sequence_support_is_what_the_engine_does_with_it():
    assert bench_external._engine_reads_sequence(_ImageEngine(True))
    assert not bench_external._engine_reads_sequence(_ImageEngine(False))


def _real_t1() -> Path:
    if not bench_external.REAL_T1.is_file():
        pytest.skip(f"real T1 scan not found at {bench_external.REAL_T1}: these tests need ../shared/")
    return bench_external.REAL_T1


def test_the_real_scans_masks_are_eroded_tissue_and_its_own_t1_order_is_right():
    images, masks, index = bench_external.real_t1_masks(3, _real_t1())
    assert images.shape[0] == len(index) == 3
    np.testing.assert_allclose(images.max(axis=(1, 2)), 1.0)
    assert set(masks) == {"CSF", "GM", "WM"} and all(m.shape == images.shape for m in masks.values())
    assert all(m.sum() > 200 for m in masks.values())  # the middle slice cuts the lateral ventricles
    assert not (masks["CSF"] & masks["GM"]).any() and not (masks["GM"] & masks["WM"]).any()
    assert not (masks["CSF"] & masks["WM"]).any()
    # eroded in-plane: a masked voxel's four neighbours carry the tissue's labels too
    from napari_mr_reparam.phantoms.freesurfer import read_npz_array

    labels = read_npz_array(_real_t1(), "seg")[index]
    for kind, m in masks.items():
        tissue = np.isin(labels, bench_external.REAL_T1_LABELS[kind])
        assert tissue.sum() > m.sum() and not m[:, [0, -1]].any() and not m[:, :, [0, -1]].any()
        inner = m[:, 1:-1, 1:-1]
        for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
            assert tissue[:, dy:dy + m.shape[1] - 2, dx:dx + m.shape[2] - 2][inner].all()
    rows = bench_external.run_real_t1([bench_external.Model("identity")], 3, log=lambda *a, **k: None)["rows"]
    assert [(r["target"], r["order"], r["right"]) for r in rows] == [("T1-like", "WM > GM > CSF", True)]
    assert rows[0]["ratios"]["GM/WM"] < 1 and rows[0]["ratios"]["CSF/GM"] < 1


def test_the_literature_reference_orders_tissues_as_the_rules_say():
    for kind, (acq, rule) in bench_external.ORDER_RULES.items():
        ratios = bench_external.literature_ratios(acq)
        gm, wm = ratios["GM/WM"], 1.0
        csf = ratios["CSF/GM"] * gm
        assert bench_external.ordering_right(rule, csf, gm, wm), kind


def test_the_real_scan_table_and_figure(tiny_weights, tmp_path, capsys):
    _real_t1()
    figure = tmp_path / "real.png"
    text, report = _run(tmp_path, capsys, "--groups", "real_t1", "--slices", "3", "--figure", str(figure))
    rows = _table_rows(text, bench_external.TITLES["real_t1"])
    assert {r.split(" | ")[0] for r in rows} == {"| identity", "| physics", "| d2p (reads every input as TE 50 "
                                                 "/ TR 4500)", "| p2p"}
    assert all(r.count(" (") >= 3 for r in rows)  # target, then both ratios with their reference
    assert report["real_t1"]["voxels"]["CSF"] > 200
    from PIL import Image

    with Image.open(figure) as png:
        assert png.mode == "L" and png.width > 3 * png.height  # the input and four predictions in a row
    with pytest.raises(SystemExit):
        bench_external.main(["--groups", "real_t1", "--figure", str(figure)])
    assert "exists" in capsys.readouterr().err


def test_engine_options_reach_the_physics_model_only(capsys):
    models = {m.label: m for m in bench_external.load_models(["physics"], "cpu", options={"consistency": 1.0,
                                                                                          "flip_average": True})}
    assert models["physics"].engine.consistency == 1.0 and models["physics"].engine.flip_average
    assert not models["d2p"].engine.renders_from_maps  # loaded unchanged, no error
    with pytest.raises(SystemExit):
        bench_external.main(["--consistency", "2", "--groups", "mni152"])
    assert "data consistency must be between 0 and 1" in capsys.readouterr().err
