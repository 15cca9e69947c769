"""Memory: how much a job will need, against what the system has, and how the fits' large
arrays take it.

:func:`shortage` says, before a job starts, where its measured need (:func:`need_bytes`,
per voxel: ``benchmarks/bench_memory.py``) is more than the system has available; the
command line prints it as a warning and the widget in its status line (a process that
runs out is stopped by the system without a word). :func:`size_text` words a size.

numpy asks Linux to back arrays of 4 MB and more with huge pages (``madvise``). Where the
kernel serves such a request slowly (a virtual machine whose host backs it with small
pages, or memory to compact first), the joint fit's fresh arrays each pay for it: its
volumes of tens of MB are allocated, filled and freed many times over. The fits run with
that request off and put numpy's setting back afterwards (``NUMPY_MADVISE_HUGEPAGE``, the
same switch, turns it off for a whole process).
"""

from __future__ import annotations

import functools
from contextlib import contextmanager

import numpy as np


def _switch():
    """numpy's setter of the huge-page request (returns the setting before), or None."""
    core = getattr(np, "_core", None) or getattr(np, "core", None)
    return getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)


@contextmanager
def ordinary_pages():
    """numpy's large arrays allocated without the huge-page request inside the block."""
    switch = _switch()
    if switch is None:
        yield
        return
    before = switch(False)
    try:
        yield
    finally:
        switch(before)


def on_ordinary_pages(func):
    """``func`` run inside :func:`ordinary_pages`."""
    @functools.wraps(func)
    def run(*args, **kwargs):
        with ordinary_pages():
            return func(*args, **kwargs)
    return run


#: Peak memory of a job per voxel of the grid it works on (bytes), beyond what the program
#: takes before it reads an image (:data:`BASE_BYTES`). Measured as peak resident memory of
#: the command line's jobs (``python benchmarks/bench_memory.py``, 256x256x180 inputs): one
#: input's maps and renders (physics) 54 B a voxel for one target, 79 B for three presets;
#: the maps of two inputs 111 B, of three 71 B (QA runs at 512x512x176: 43 B and 71 B). The
#: largest of each, rounded up.
PER_VOXEL_BYTES = {"one": 85, "joint": 120}
#: What the program holds before it reads an image (torch and the package imported): 0.23 GB measured.
BASE_BYTES = 0.3e9


def need_bytes(voxels: int, joint: bool) -> float:
    """About how much memory a job on ``voxels`` voxels takes at its peak: one input's
    prediction or maps, or (``joint``) the fit of several inputs on one grid."""
    return BASE_BYTES + PER_VOXEL_BYTES["joint" if joint else "one"] * float(voxels)


def available_bytes() -> float | None:
    """The memory the system can give without swapping (psutil's ``available``), or None
    where it cannot say."""
    try:
        import psutil

        return float(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - no figure to compare with: no warning
        return None


def size_text(nbytes: float) -> str:
    """A memory size as a person reads it: ``4.2 GB``; ``350 MB``, ``17 KB`` below those."""
    if nbytes >= 1e9:
        return f"{nbytes / 1e9:.1f} GB"
    return f"{nbytes / 1e6:.0f} MB" if nbytes >= 1e6 else f"{nbytes / 1e3:.0f} KB"


def shortage(voxels: int, joint: bool, name: str | None = None) -> str | None:
    """One line where a job on ``voxels`` voxels (:func:`need_bytes`) needs more memory than
    the system has available, saying what to do before it runs out; None where it fits."""
    need, have = need_bytes(voxels, joint), available_bytes()
    if have is None or need <= have:
        return None
    what = f"{name}: " if name else ""
    return (f"{what}this needs about {size_text(need)} of memory and {size_text(have)} is available: "
            "the system may stop it; close other programs, or give a crop or fewer slices")
