"""Keep freed CPU memory for reuse instead of returning it to the OS after every tensor.

glibc serves allocations above 32 MiB with fresh `mmap` pages and unmaps them on free, so every
large activation of a training step (the MoSE head's are 128 MiB at batch 4) is page-faulted
in again: on a 2-core machine that costs more than the arithmetic. Disabling mmap for malloc
and raising the trim threshold makes freed blocks reusable (`python -m benchmarks.bench_train
--no-malloc-reuse` measures the difference; docs/performance.md).
The price is that the process keeps its peak heap until it exits.
"""

import ctypes
import ctypes.util
import logging
import sys

logger = logging.getLogger("mose")

M_TRIM_THRESHOLD = -1  # mallopt parameter numbers from glibc's malloc.h
M_MMAP_MAX = -4
_applied = False


def reuse_freed_memory() -> bool:
    """Configure glibc malloc to keep freed blocks (Linux/glibc only; a no-op elsewhere).

    Returns:
        True if the setting is active.
    """
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): leave the allocator alone
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    _applied = mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1
    if _applied:
        logger.debug("glibc malloc: mmap disabled, trim threshold raised (freed memory reused)")
    return _applied
