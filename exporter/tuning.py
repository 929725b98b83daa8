"""Process-wide tuning applied once at start-up."""

from __future__ import annotations

import ctypes
import gc
import os

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune_malloc(mmap_threshold: int = 16 << 20, trim_threshold: int = 64 << 20) -> bool:
    """Keep multi-MB buffers (inflated trail files, OTLP requests, gRPC's copies of them) on the heap.

    glibc serves allocations above its mmap threshold with fresh mmap()s, and gives freed heap tops back
    to the kernel: every such buffer then costs a page fault per 4 KiB on first touch, a large share of the
    kernel time with OTel logs on (docs/performance.md). Heap memory is reused instead; RSS stays at
    its peak rather than shrinking between bursts (it is bounded by the same queues). A no-op off glibc."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return False
    except (ValueError, OSError, AttributeError):  # not glibc, or no confstr at all
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))


def tune_gc() -> None:
    """Once start-up is done: what it built (modules, config, caches' first entries) lives as long as the
    process, so it moves to the permanent generation and full collections stop walking it; and young
    collections run less often (per file, thousands of short-lived row tuples come and go at once)."""
    gc.freeze()
    _, g1, g2 = gc.get_threshold()
    gc.set_threshold(10_000, g1, g2)
