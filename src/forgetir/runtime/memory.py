"""Keep freed memory for reuse instead of handing it back to the kernel (glibc malloc).

A forward+backward step of a Restormer-family model allocates and frees hundreds of
activation tensors of several MB each. With glibc's default thresholds many of those go to
``mmap`` and back on every step, so the kernel zero-fills ~1 GB of fresh pages per step of
AdaIR at 128x128 (about 300,000 minor page faults; 10-17% of the step's CPU time, measured by
``benchmarks/bench_models.py``). Raising malloc's mmap and trim thresholds keeps that memory in
the process's heap, where the next step reuses it: the same peak memory, no page faults.

The setting is process-wide, so only the command line applies it (model commands, through
:func:`retain_freed_memory`); library users may call it themselves. On other C libraries or
operating systems it does nothing and says so.

Example:
    >>> retain_freed_memory() in (True, False)
    True
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Allocations up to this size come from the heap. Older glibc rejects values above 32 MB, so
# that is the fallback (measured here, glibc 2.36: with 32 MB some 16 MB tensors still faulted
# on every step, with 1 GB none did).
_MMAP_THRESHOLDS = (1 << 30, 32 << 20)
# Free memory at the top of the heap is returned to the kernel only beyond this.
_TRIM_THRESHOLD = 1 << 30
# glibc's documented defaults, restored by retain_freed_memory(False).
_DEFAULTS = (128 << 10, 128 << 10)


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") else None


def retain_freed_memory(enabled: bool = True) -> bool:
    """Make glibc malloc keep freed memory for reuse (``enabled``) or restore its defaults.

    Returns True when the setting took effect (Linux with glibc), False otherwise. Restoring
    sets glibc's documented static defaults (128 KiB); its dynamic threshold adjustment, which
    any explicit setting turns off, does not come back.

    Example:
        >>> retain_freed_memory(True) in (True, False)
        True
    """
    libc = _libc()
    if libc is None:
        return False
    if not enabled:
        mmap_ok = libc.mallopt(_M_MMAP_THRESHOLD, _DEFAULTS[0])
        return bool(mmap_ok) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULTS[1]))
    # mallopt returns 1 on success, 0 when it rejects a value.
    mmap_ok = any(libc.mallopt(_M_MMAP_THRESHOLD, v) for v in _MMAP_THRESHOLDS)
    return mmap_ok and bool(libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
