"""glibc malloc tuning that Python gRPC needs for MiB-sized messages (see docs/performance.md)."""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def tune_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds so 1-4 MiB buffers are reused, not page-faulted.

    Returns False where the C library has no mallopt (not glibc).
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    mmap_ok: bool = mallopt(M_MMAP_THRESHOLD, 64 << 20) == 1
    trim_ok: bool = mallopt(M_TRIM_THRESHOLD, 256 << 20) == 1
    return mmap_ok and trim_ok
