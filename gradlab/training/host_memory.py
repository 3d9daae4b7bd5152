"""Keep freed host memory in the process instead of handing it back to the kernel (glibc only).

By default glibc maps every large allocation fresh (above a threshold that starts at 128 KiB) and returns
freed memory at the heap's top once more than twice that is free. A CPU training loop frees and allocates
the same activation maps every step, so each one page-faults its memory back in, zero-filled by the kernel:
system time (``benchmarks/system_time.py`` measures it; numbers in benchmarks/README.md). Raising the mmap
threshold to its maximum (32 MiB) and the trim threshold to 1 GiB keeps that memory for reuse. The price: a
process holds up to 1 GiB of freed memory for later use instead of returning it.
"""
from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3      # mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 << 20                        # glibc's largest allowed value on 64-bit
TRIM_THRESHOLD = 1 << 30

_done: bool | None = None


def keep_freed_memory() -> bool:
    """Set the two thresholds once per process; True when glibc took them (False elsewhere: no change)."""
    global _done
    if _done is None:
        _done = False
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):     # not glibc (macOS, musl without mallopt): leave malloc alone
            return False
        mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done
