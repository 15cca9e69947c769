"""Work on a stack of planes spread over a few CPU threads.

NumPy's element-wise passes and SciPy's filters release the GIL, so a volume cut into
runs of planes goes through them on several cores at once, without copies.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

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
