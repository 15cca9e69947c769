"""Choosing the torch device (``auto`` means CUDA, then Apple MPS, then CPU), and the
CPU allocator setting the command-line tools use (:func:`keep_freed_memory`)."""

from __future__ import annotations

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def choose_device(name: str = "auto"):
    """Return a ``torch.device`` for ``name``; a device that is absent raises ``ValueError``."""
    import torch

    name = (name or "auto").lower()
    if name not in DEVICE_CHOICES and not name.startswith("cuda:"):
        raise ValueError(f"unknown device {name!r}; choose from {', '.join(DEVICE_CHOICES)}")
    cuda, mps = torch.cuda.is_available(), _mps_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name.startswith("cuda") and not cuda:
        raise ValueError("CUDA was asked for but no CUDA GPU is available; choose device cpu or auto")
    if name == "mps" and not mps:
        raise ValueError("Apple MPS was asked for but is not available; choose device cpu or auto")
    return torch.device(name)


def describe_device(device) -> str:
    """A short human-readable name: ``CPU (2 threads)`` or ``CUDA: NVIDIA H100``."""
    import torch

    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "Apple MPS"
    return f"CPU ({torch.get_num_threads()} threads)"


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


#: glibc ``mallopt`` parameters and the values :func:`keep_freed_memory` sets.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit
_TRIM_THRESHOLD_BYTES = 1024 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Ask glibc's allocator to keep freed memory for reuse instead of returning it.

    The training data are simulated on the fly: every step allocates and frees arrays of a
    few megabytes, which glibc by default maps and unmaps each time, so the kernel zeroes
    fresh pages again and again (on a 2-core CPU about a quarter of a training step went
    to page faults). Keeping them cuts that. Returns False where the C library is not
    glibc (macOS, Windows, musl), which is left as it is.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)
                and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_BYTES))
