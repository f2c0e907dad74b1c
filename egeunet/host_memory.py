"""Keep freed host memory in the process during CPU training (glibc ``malloc`` settings).

A CPU training step allocates and frees the same activation and gradient buffers every step
(the largest, 8x8x256x256 float32, are 16.8 MB at batch 8). glibc serves blocks above its
mmap threshold (128 KiB at start, raised adaptively) with fresh ``mmap`` pages and hands
freed memory at the top of its heap back to the kernel once it exceeds the trim threshold,
so each step faults the same pages in again. Measured on the 2-core machine of BENCHMARKS.md
(batch 8, ``egeunet.train.training_step``): 2,500-30,000 minor page faults per step (it varies
with the heap's state), up to ~27 ms of kernel time per ~130 ms step; with the settings below,
~0 faults after the first steps and the step 2-13 % faster (BENCHMARKS.md: ``python -m
egeunet.benchmarks.train_throughput --levers``, lever "+ freed memory kept"; tests/test_host_memory.py).

This is what PyTorch's own CPU launcher gets by preloading jemalloc or tcmalloc; here it needs
no extra library: ``mallopt`` fixes the mmap threshold at glibc's maximum (32 MiB, so blocks
up to that size come from the reusable heap) and sets a 2 GiB trim threshold. Nothing is
computed differently. The cost is that the process keeps its peak working set instead of
returning it between steps. On other C libraries (macOS, musl) this does nothing.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import platform
import sys

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1  # <malloc.h>
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 2**31 - 1  # an int: 2 GiB of free heap top before memory goes back to the kernel


def is_glibc() -> bool:
    """True on Linux with glibc, the only C library whose ``mallopt`` this module sets."""
    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@functools.cache  # process-wide: once is enough, and a failure would fail again
def keep_freed_memory() -> bool:
    """Configure glibc's allocator to reuse freed blocks instead of returning them; process-wide
    and idempotent. True where applied (Linux with glibc), False elsewhere."""
    if not is_glibc():
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    except (OSError, AttributeError) as e:  # no such library or symbol: leave the allocator alone
        log.debug("mallopt unavailable: %s", e)
        return False
