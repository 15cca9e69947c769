"""benchmarks/bench_value_ceiling.py: tissue values from one image, anatomy known."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_value_ceiling as bvc  # noqa: E402


def _fractions(h=24, w=24):
    f = np.zeros((1, h, w, 3), np.float32)
    f[0, 4:20, 4:12, 1] = 1.0
    f[0, 4:20, 12:20, 2] = 1.0
    f[..., 0] = 1.0 - f[..., 1:].sum(-1)
    return f


def test_class_values_recover_each_class_and_its_share():
    f = _fractions()
    values, share = bvc.class_values(f[..., 1] * 0.3 + f[..., 2] * 0.8, f)
    assert values == pytest.approx([0.0, 0.3, 0.8], abs=1e-6)
    assert share.sum() == pytest.approx(1.0) and share[1] == pytest.approx(share[2])


def test_the_nearest_tables_are_those_the_values_scale_from():
    signals = np.array([[0.0, 1.0, 2.0], [0.0, 2.0, 1.0], [0.0, 1.0, 2.1]])
    best, gain = bvc.nearest_tables(np.array([0.0, 0.5, 1.0]), np.array([0.2, 0.4, 0.4]), signals, 2)
    assert list(best) == [0, 2] and gain[0] == pytest.approx(0.5)


def test_drawn_tables_name_the_held_out_classes_by_their_training_tissues():
    tables = bvc.drawn_tables(["background", "csf", "deep_grey", "eye"], 50)
    pd, t1, t2 = tables
    assert tables.shape == (3, 50, 4) and (pd[:, 0] == 0).all()
    assert (t2[:, 1] > 2.5 * t2[:, 2]).all()  # CSF far longer than a grey/white mix
    assert np.array_equal(t1[:, 3], t1[:, 1])  # the eye takes CSF's values


def test_shading_finds_a_smooth_bias_the_render_lacks():
    f = _fractions(48, 48)
    render = bvc.render_values(f, np.array([0.0, 0.5, 1.0]))
    bias = np.linspace(0.8, 1.2, 48, dtype=np.float32)[None, None, :] * np.ones((1, 48, 1), np.float32)
    shade = bvc.shading(render * bias, render, 4.0)
    tissue = render > 0.05
    assert np.abs(shade - bias)[tissue].max() < 0.05


def test_true_class_signals_give_each_network_class_its_subjects_value(tmp_path):
    import bench_external
    from test_bench_external import _label_map

    from napari_mr_reparam.models.tissue_net import CLASSES

    subject = bench_external.heldout_subject(_label_map(tmp_path / "s.nii.gz"), 0, 2)
    target = bench_external.Acq(100.0, 5000.0)
    own = np.asarray(bench_external.signal(target, *subject.values[:, :, None]), np.float64)[:, 0]
    per_class = bvc.true_class_signals(subject, subject.class_fractions(), target, list(CLASSES))
    assert per_class[CLASSES.index("csf")] == pytest.approx(own[subject.names.index("csf")])
    assert per_class[CLASSES.index("white_matter")] == pytest.approx(own[subject.names.index("white_matter")])
    assert per_class[0] == 0.0


def test_a_tissue_network_can_stand_in_for_the_anatomy(tmp_path):
    from test_bench_external import _label_map

    from napari_mr_reparam.models.tissue_net import TissueNet

    path = _label_map(tmp_path / "s.nii.gz")
    net = TissueNet(base=4, depth=2, work_size=16).eval()
    physics = bvc.ext.load_models(["physics"], "cpu", baselines=False)[-1]
    for options in ({}, {"guided": True}, {"true_values": True, "shade_px": 2.0}, {"guided": True, "blend": physics}):
        summaries = bvc.run([path], 2, 2, 40, 4, net=net, log=lambda *a, **k: None, **options)
        assert "training means" not in summaries and set(summaries) >= {"default", "T1w SE", "MPRAGE"}
        assert all(np.isfinite(s["psnr_mean"]) for s in summaries.values())


def test_a_network_that_is_not_a_tissue_network_is_refused_in_one_line(capsys):
    with pytest.raises(SystemExit):
        bvc.main(["--anatomy", "physics"])
    assert "not a tissue network" in capsys.readouterr().err
