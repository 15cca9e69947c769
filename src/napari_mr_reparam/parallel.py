"""Work on a stack of planes spread over a few CPU threads.

NumPy's element-wise passes and SciPy's filters release the GIL, so a volume cut into
runs of planes goes through them on several cores at once, without copies.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

#: The most threads a stack is spread over.
MAX_WORKERS = 4


def workers() -> int:
    """How many threads :func:`over_planes` uses on this machine (1 to :data:`MAX_WORKERS`)."""
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


def over_planes(work, count: int, fewest: int = 8) -> list:
    """``work(rows)`` for contiguous runs ``rows`` (slices) covering ``range(count)``, in
    order, spread over :func:`workers` threads; one call with every row for fewer than
    ``fewest`` planes per thread."""
    n = min(workers(), count // max(fewest, 1))
    if n < 2:
        return [work(slice(0, count))]
    edges = [count * k // (2 * n) for k in range(2 * n + 1)]  # two runs per thread: even loads
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda k: work(slice(edges[k], edges[k + 1])), range(2 * n)))


def in_order(work, items, threads: int):
    """``work(item)`` for each of ``items`` on ``threads`` threads, the results yielded in
    the items' order, at most ``threads + 1`` of them held at once. Threads that share no
    barrier per operation: a core taken by other work delays one item, not every step of
    all (as a library's own threads, waiting for each other at each operation, are).
    One thread: in the caller's, one by one."""
    if threads < 2:
        yield from map(work, items)
        return
    from collections import deque

    with ThreadPoolExecutor(threads) as pool:
        running = deque()
        for item in items:
            running.append(pool.submit(work, item))
            if len(running) > threads:
                yield running.popleft().result()
        while running:
            yield running.popleft().result()


@contextmanager
def torch_threads(count: int | None):
    """Torch's CPU threads set to ``count`` (when given) for the block, then restored."""
    import torch

    old = torch.get_num_threads()
    if count:
        torch.set_num_threads(int(count))
    try:
        yield
    finally:
        torch.set_num_threads(old)


#: Torch's thread count as it was before the first :func:`chunk_threads` block still open
#: (blocks on several threads, or one inside another, share it), and how many are open.
_SHARED = {"threads": None, "open": 0}
_SHARED_LOCK = threading.Lock()


@contextmanager
def chunk_threads(count: int | None = None):
    """The number of threads :func:`in_order` spreads chunks over (``count``, default
    torch's count of threads as it was before any such block opened, at most
    :data:`MAX_WORKERS`: each holds a chunk's memory), with torch's threads shared among
    them for the block (one each on a machine of up to :data:`MAX_WORKERS` cores). Blocks
    open at once (on several threads, or nested) share one count, and the last to close
    puts torch's back as it was."""
    import torch

    with _SHARED_LOCK:
        if _SHARED["open"] == 0:
            _SHARED["threads"] = torch.get_num_threads()
        _SHARED["open"] += 1
        total = max(1, int(count or _SHARED["threads"]))
        workers = min(total, MAX_WORKERS)
        if workers > 1:
            torch.set_num_threads(max(1, total // workers))
    try:
        yield workers
    finally:
        with _SHARED_LOCK:
            _SHARED["open"] -= 1
            if _SHARED["open"] == 0:
                torch.set_num_threads(_SHARED["threads"])
