"""How the fits' large arrays take their memory.

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
