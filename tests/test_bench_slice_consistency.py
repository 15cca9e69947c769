"""The slice-consistency benchmark (benchmarks/bench_slice_consistency.py): its two figures."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_slice_consistency as bench  # noqa: E402


def test_an_even_tissue_scores_no_jump_and_no_drift_and_a_ramp_its_own():
    wm = np.zeros((8, 20, 20), bool)
    wm[:, 5:17, 5:17] = True  # 144 voxels a slice: too few to count
    assert bench.wm_profile(np.ones((8, 20, 20)), wm).size == 0
    wm[:, 2:18, 2:18] = True  # 256: counted
    even = bench.wm_profile(np.full((8, 20, 20), 3.0), wm)
    assert even.size == 8 and bench.consistency(even) == (0.0, 0.0, 1.0)
    ramp = np.arange(1.0, 9.0)[:, None, None] * np.ones((8, 20, 20))  # bottom slices first
    jump, worst, drift = bench.consistency(bench.wm_profile(ramp, wm))
    assert jump == worst == 1 / 4.5 and drift == 1.5 / 7.5
