"""The results tables of benchmarks/make_results.py: the per-target-TE table's layout."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import make_results  # noqa: E402


def test_the_te_table_has_a_column_per_band_and_dashes_for_empty_bands():
    from napari_mr_reparam.training.evaluate import TARGET_TE_BANDS_MS as edges

    header = make_results.te_header().splitlines()
    n_bands = len(edges) - 1
    assert header[0].count("| TE ") == n_bands and header[0].endswith("| all |")
    assert header[1].count("---") == 3 + n_bands + 1
    report = {"psnr_mean": 30.0,
              "psnr_by_target_te": [{"range": [edges[0], edges[1]], "count": 3, "mean": 33.333},
                                    {"range": [edges[-2], edges[-1]], "count": 1, "mean": 20.0}]}
    row = make_results._te_row("paper", "m", "d2p", report)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells == ["paper", "m", "d2p", "33.33", *["-"] * (n_bands - 2), "20.00", "30.00"]
