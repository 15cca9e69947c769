"""The error budget's prior rows (benchmarks/error_budget.py): the tables' mean and the
whole-brain move that carries mixed voxels along."""

import sys
from pathlib import Path

import numpy as np
import pytest

from napari_mr_reparam.tissues import TABLES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import error_budget  # noqa: E402

BRAIN = ("white_matter", "grey_matter", "csf")


def test_geometric_mean_table_lies_between_the_tables():
    mean = error_budget.geometric_mean_table(TABLES.values())
    for name in BRAIN:
        for key in ("pd", "t1", "t2"):
            values = [getattr(t[name], key) for t in TABLES.values()]
            assert min(values) <= getattr(mean[name], key) <= max(values)
    assert mean["csf"].t2 == pytest.approx((329 * 2200 * 1650) ** (1 / 3))


def test_recalibrated_moves_pure_voxels_onto_the_target_and_mixed_ones_between():
    source, target = TABLES["mrilab"], TABLES["3t"]
    pure = {k: np.array([getattr(source[n], k) for n in BRAIN], np.float64) for k in ("pd", "t1", "t2")}
    # one voxel halfway (in log) between white and grey matter, one outside the brain
    mixed = {k: np.sqrt(v[0] * v[1]) for k, v in pure.items()}
    truth = {k: np.append(v, [mixed[k], 123.0]) for k, v in pure.items()}
    brain = np.array([True, True, True, True, False])
    out = error_budget.recalibrated(truth, brain, source, target)
    for k in ("pd", "t1", "t2"):
        assert out[k][:3] == pytest.approx([getattr(target[n], k) for n in BRAIN])
        lo, hi = sorted(getattr(target[n], k) for n in BRAIN[:2])
        assert lo <= out[k][3] <= hi
        assert out[k][4] == 123.0
    assert truth["t1"][0] == source["white_matter"].t1  # the input is left as it was
    only_t1 = error_budget.recalibrated(truth, brain, source, target, keys=("t1",))
    assert np.array_equal(only_t1["t2"], truth["t2"]) and only_t1["t1"][1] == pytest.approx(target["grey_matter"].t1)


def test_brain_fractions_and_the_mixture_table_read_linear_mixtures():
    import bench_maps

    table = TABLES["mrilab"]
    csf = np.linspace(0.0, 1.0, 101)  # grey matter to CSF, as the phantom mixes them
    truth = {k: (1 - csf) * getattr(table["grey_matter"], k) + csf * getattr(table["csf"], k)
             for k in ("pd", "t1", "t2")}
    mask = np.ones(csf.shape, bool)
    fractions = bench_maps.brain_fractions(truth, mask, table)
    assert fractions[0] == pytest.approx(0.0, abs=1e-9)
    assert fractions[1] == pytest.approx(1 - csf) and fractions[2] == pytest.approx(csf)
    exact = bench_maps.mixture_table(truth, truth, mask, table)
    assert "| 0.30-0.50 | 20 | +0.00 | +0.00 | +0.00 |" in exact
    long_t2 = bench_maps.mixture_table(truth, {**truth, "t2": 2 * truth["t2"]}, mask, table)
    assert f"| +0.00 | +{np.log(2):.2f} |" in long_t2
