"""The real-scanner benchmark (benchmarks/bench_real_scanners.py): what it reads per sphere."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_real_scanners as bench  # noqa: E402


def test_a_sphere_s_share_is_the_part_of_its_disc_a_mask_holds_and_its_value_the_disc_s_median():
    mask = np.zeros((40, 40), bool)
    mask[:, :20] = True  # the left half
    centres = [(10, 5), (10, 34), (30, 20)]  # inside, outside, on the edge
    shares = bench.sphere_shares(mask, centres, factor=2.0)
    assert shares[0] == 1.0 and shares[1] == 0.0 and 0.4 < shares[2] < 0.6
    values = np.where(mask, 3.0, 7.0)
    assert bench.sphere_values(values, centres[:2], factor=2.0).tolist() == [3.0, 7.0]
