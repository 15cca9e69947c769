"""The error split of benchmarks/bench_error_sources.py: tissue values against anatomy."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_error_sources as bes  # noqa: E402
import bench_external  # noqa: E402
from test_bench_external import _label_map  # noqa: E402


def _two_classes(h=32, w=32):
    """Fractions (h, w, 3) of background and two tissues, and the truth they give."""
    fractions = np.zeros((h, w, 3), np.float32)
    fractions[8:24, 8:16, 1] = 1.0
    fractions[8:24, 16:24, 2] = 1.0
    fractions[..., 0] = 1.0 - fractions[..., 1:].sum(-1)
    return fractions, fractions[..., 1] * 0.4 + fractions[..., 2] * 0.9


def test_wrong_tissue_values_are_told_from_wrong_anatomy():
    fractions, truth = _two_classes()
    values_wrong = fractions[..., 1] * 0.7 + fractions[..., 2] * 0.9  # right anatomy, one value off
    split = bes.split(values_wrong, truth, fractions)
    assert split["anatomy only"] > 90 and split["tissue values only"] == pytest.approx(split["as predicted"])

    anatomy_wrong = truth.copy()
    anatomy_wrong[10:14, 12:20] = 0.0  # a hole: right values where tissue is, tissue missing
    split = bes.split(anatomy_wrong, truth, fractions)
    assert split["anatomy only"] < split["as predicted"] + 1.0
    assert split["tissue values only"] > split["anatomy only"] + 3


def test_global_gain_recovers_a_scaled_prediction():
    fractions, truth = _two_classes()
    split = bes.split(0.5 * truth, truth, fractions)
    assert split["global gain"] > 90 > 30 > split["as predicted"]


def test_effects_take_one_departure_away(tmp_path):
    path = _label_map(tmp_path / "s.nii.gz")
    base = bes.drawn_subject(path, 0, 2)
    assert bes.drawn_subject(path, 0, 2, "thin").thickness == 1
    assert bes.drawn_subject(path, 0, 2, "no-noise").noise == 0.0
    assert np.allclose(bes.drawn_subject(path, 0, 2, "training-values").values,
                       bench_external.training_mean_values(base.names))
    assert bes.drawn_subject(path, 0, 2, "no-bias").bias.std() == 0.0
    assert base.thickness == bench_external.heldout_subject(path, 0, 2).thickness  # the benchmark's own
    with pytest.raises(ValueError, match="unknown effect"):
        bes.drawn_subject(path, 0, 2, "no-skull")


def test_identity_table_has_every_input_and_shares_sum_to_one(tmp_path):
    path = _label_map(tmp_path / "s.nii.gz")
    result = bes.run("identity", [path], slices=2, n_targets=4, log=lambda *a, **k: None)
    assert set(result["psnr"]) == set(bench_external.INPUT_NAMES)
    for shares in result["share"].values():
        assert sum(shares.values()) == pytest.approx(1.0)
    text = bes.table(result)
    assert text.count("\n| ") == len(bench_external.INPUT_NAMES) + 1  # + the mean row


def test_pure_medians_read_the_maps_where_a_tissue_fills_the_pixel():
    names = ["background", "csf", "grey_matter", "white_matter"]
    fractions = np.zeros((1, 4, 4, 4), np.float32)
    fractions[0, :2, :, 2] = 1.0          # grey matter, pure
    fractions[0, 2:, :, 1] = 0.5          # half CSF, half grey: pure in nothing
    fractions[0, 2:, :, 2] = 0.5
    maps = {"t1": np.full((1, 4, 4), 1400.0), "t2": np.full((1, 4, 4), 100.0)}
    maps["t2"][0, 2:] = 900.0             # the mixed pixels read long
    out = bes.pure_medians(maps, fractions, names)
    assert out["grey_matter"] == {"t1": 1400.0, "t2": 100.0}
    assert out["csf"] == {"t1": None, "t2": None} and out["white_matter"]["t2"] is None
