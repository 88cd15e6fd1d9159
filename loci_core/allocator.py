"""Keep memory freed by PyTorch operators in the process, instead of handing it back to the OS after each one.

An eager Loci step allocates and frees tensors of 0.1-2 MB by the dozen. With glibc's default settings much of
that memory goes back to the kernel when freed (the top of a heap is trimmed, larger blocks are unmapped), so the
next step touches fresh pages, hundreds of page faults per step (bench/README.md has the measurement). Keeping
it costs no more memory than the peak the process reached
anyway; it is only not returned. Compiled steps (`Loci.compile_inference`) reuse their buffers and do not fault.

The entry points that run the model (`loci`, the ROS node, the bag and demo commands, the benchmarks) call
`keep_freed_memory`; a program that imports loci_core can call it too.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

# Free memory at the top of a heap is kept up to this size (glibc's default: 128 KiB, raised as it goes).
TRIM_THRESHOLD = 1 << 30
# Blocks up to this size come from the heaps, so their memory is reused (glibc's limit for this setting: 32 MiB
# on 64-bit systems); larger ones are mapped and unmapped one by one.
MMAP_THRESHOLD = 32 << 20


def keep_freed_memory() -> bool:
    """Set glibc's malloc to keep freed memory for reuse (process-wide, for allocations from now on). Returns
    whether it applied: False where the C library is not glibc (macOS, musl), which then keeps its own policy."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # no mallopt: not glibc
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
