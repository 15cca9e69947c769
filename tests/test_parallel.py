import threading

import numpy as np
import pytest

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


def test_in_order_yields_each_result_in_order_with_few_held_at_once():
    together = threading.Barrier(2, timeout=10)  # broken unless two items run at once
    lock, running, most = threading.Lock(), [0], [0]

    def work(k):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        if k < 2:
            together.wait()
        with lock:
            running[0] -= 1
        return k * k

    assert list(parallel.in_order(work, range(20), 2)) == [k * k for k in range(20)]
    assert most[0] == 2
    assert list(parallel.in_order(lambda k: threading.get_ident(), range(3), 1)) == [threading.get_ident()] * 3


def test_an_items_error_reaches_the_caller():
    def work(k):
        if k == 3:
            raise ValueError("item 3")
        return k

    with pytest.raises(ValueError, match="item 3"):
        list(parallel.in_order(work, range(10), 2))


def test_chunk_threads_share_torchs_threads_and_put_them_back():
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with parallel.chunk_threads() as workers:
            assert (workers, torch.get_num_threads()) == (2, 1)
        assert torch.get_num_threads() == 2
        with parallel.chunk_threads(8) as workers:
            assert (workers, torch.get_num_threads()) == (parallel.MAX_WORKERS, 8 // parallel.MAX_WORKERS)
        with parallel.chunk_threads(1) as workers:
            assert (workers, torch.get_num_threads()) == (1, 2)
        assert torch.get_num_threads() == 2
        with parallel.chunk_threads() as outer:  # one inside another (or on another thread) shares the count
            with parallel.chunk_threads() as inner:
                assert outer == inner == 2 and torch.get_num_threads() == 1
            assert torch.get_num_threads() == 1  # the outer block still runs
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
