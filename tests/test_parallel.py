import threading

import numpy as np

from napari_mr_reparam import parallel


def test_over_planes_covers_every_plane_once_in_order_on_several_threads(monkeypatch):
    monkeypatch.setattr(parallel, "workers", lambda: 2)
    together = threading.Barrier(2, timeout=10)  # broken unless two runs go at once

    def work(rows):
        together.wait()
        return list(range(100)[rows])

    runs = parallel.over_planes(work, 100)
    assert [k for run in runs for k in run] == list(range(100))
    assert len(runs) == 4  # two runs per thread


def test_over_planes_makes_one_call_for_a_few_planes(monkeypatch):
    monkeypatch.setattr(parallel, "workers", lambda: 4)
    assert parallel.over_planes(lambda rows: (rows.start, rows.stop), 15) == [(0, 15)]
    assert parallel.over_planes(lambda rows: (rows.start, rows.stop), 0) == [(0, 0)]


def test_writes_from_threads_fill_a_volume_as_one_pass_would(monkeypatch):
    monkeypatch.setattr(parallel, "workers", lambda: 3)
    x = np.random.default_rng(0).random((50, 8, 8))
    out = np.empty_like(x)

    def part(rows):
        out[rows] = np.exp(-x[rows])
    parallel.over_planes(part, len(x))
    np.testing.assert_array_equal(out, np.exp(-x))
