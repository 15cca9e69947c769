"""The results tables of benchmarks/make_results.py: the per-target-TE table's layout, a
table printed unless --write asks, rows of models not measured kept, and reports never
written over unasked (bench_contrast.py's --json likewise)."""

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import _common  # noqa: E402
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


HEADER = "| split | model | task | PSNR |\n|---|---|---|---|"
OLD = "\n".join([HEADER, "| paper | identity | d2p | 15.12 |", "| paper | `d2p` | d2p | 31.47 |",
                 "| paper | `p2p` | p2p | 26.78 |"])


def test_a_merged_table_replaces_the_rows_measured_keeps_the_others_and_adds_the_new():
    rows = ["| paper | identity | d2p | 15.50 |", "| slices | identity | d2p | 14.00 |"]
    assert _common.merged_table(OLD, HEADER, rows).splitlines() == [
        *HEADER.splitlines(), "| paper | identity | d2p | 15.50 |", "| paper | `d2p` | d2p | 31.47 |",
        "| paper | `p2p` | p2p | 26.78 |", "| slices | identity | d2p | 14.00 |"]


REPORT = {"psnr_mean": 15.5, "psnr_std": 1.0, "mae_mean": 40.0, "mae_std": 2.0, "ssim_mean": 0.6,
          "psnr_brain_mean": 12.0, "count": 3}


@pytest.fixture
def measured(monkeypatch):
    """make_results measuring one identity row at no cost."""
    from napari_mr_reparam.training import evaluate

    monkeypatch.setattr(make_results, "jobs", lambda *a, **k: [("paper", "identity (default input)", None, "d2p",
                                                                 None)])
    monkeypatch.setattr(evaluate, "evaluate", lambda *a, **k: dict(REPORT))


def _results(tmp_path) -> Path:
    old = "\n".join([make_results.HEADER, "| paper | identity (default input) | d2p | 1 | 1 | 1 | 1 | 1 | 1 | 1 |",
                     "| paper | `d2p` (paper) | d2p | 31.47 | 1 | 1 | 1 | 1 | 1 | 3300 |"])
    path = tmp_path / "R.md"
    path.write_text(f"# results\n\n<!-- quality-table:begin -->\n{old}\n<!-- quality-table:end -->\n\nafter\n")
    return path


def test_the_table_is_printed_unless_write_is_given_and_then_keeps_the_rows_not_measured(tmp_path, measured,
                                                                                          capsys):
    results = _results(tmp_path)
    before = results.read_text()
    assert make_results.main(["--models", "identity", "--results", str(results)]) == 0
    assert results.read_text() == before
    assert "| paper | identity (default input) | d2p | 15.50 |" in capsys.readouterr().out
    assert make_results.main(["--models", "identity", "--results", str(results), "--write"]) == 0
    table = _common.read_table(results, "quality-table").splitlines()
    assert table[2].startswith("| paper | identity (default input) | d2p | 15.50 |")
    assert table[3] == "| paper | `d2p` (paper) | d2p | 31.47 | 1 | 1 | 1 | 1 | 1 | 3300 |"  # not measured: kept
    assert len(table) == 4 and results.read_text().startswith("# results") and results.read_text().endswith("after\n")


def test_writing_over_a_table_of_other_columns_is_refused_before_measuring(tmp_path, monkeypatch, capsys):
    results = _results(tmp_path)
    monkeypatch.setattr(make_results, "jobs", lambda *a, **k: pytest.fail("measured"))
    for options in (["--by-te"], ["--marker", ""]):
        with pytest.raises(SystemExit):
            make_results.main(["--models", "identity", "--results", str(results), "--write", *options])
    err = capsys.readouterr().err
    assert "the quality-table table in" in err and "has other columns" in err and "--write needs a --marker" in err


def test_json_reports_are_never_written_over_unless_asked(tmp_path, measured, capsys):
    (tmp_path / "js").mkdir()
    kept = tmp_path / "js" / "identity_d2p_paper.json"
    kept.write_text("{}")
    with pytest.raises(SystemExit):
        make_results.main(["--models", "identity", "--json-dir", str(tmp_path / "js")])
    assert f"{kept} exists; not overwriting it (--overwrite replaces it)" in capsys.readouterr().err
    assert kept.read_text() == "{}"
    assert make_results.main(["--models", "identity", "--json-dir", str(tmp_path / "js"), "--overwrite"]) == 0
    assert json.loads(kept.read_text())["psnr_mean"] == 15.5


def test_bench_contrast_never_writes_over_its_json(tmp_path, monkeypatch, capsys):
    import bench_contrast

    from napari_mr_reparam import contrast

    monkeypatch.setattr(contrast, "load_classifier", lambda *a: pytest.fail("measured"))
    (tmp_path / "out.json").write_text("{}")
    with pytest.raises(SystemExit):
        bench_contrast.main(["--json", str(tmp_path / "out.json")])
    assert "out.json exists; not overwriting it" in capsys.readouterr().err
    assert (tmp_path / "out.json").read_text() == "{}"
