"""Give freed picture memory back to the system at once (glibc), so decodes in several threads
do not each keep their own high-water mark.

glibc raises its mmap threshold each time a large block is freed (up to 32 MB), after which
big buffers come from per-thread arenas that are rarely trimmed: a 150 MB picture decoded in
one thread and another in the next would both stay resident. A fixed threshold keeps every
buffer of 1 MiB or more in its own mapping, unmapped when freed. Elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
LARGE = 1 << 20  # bytes from which a buffer gets its own mapping

_done = False
_lock = threading.Lock()


def return_large_buffers() -> bool:
    """Sets the fixed thresholds once per process; True when glibc took them."""
    global _done
    with _lock:
        if _done:
            return True
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
            return False
        mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        _done = bool(mallopt(M_MMAP_THRESHOLD, LARGE)) and bool(mallopt(M_TRIM_THRESHOLD, 4 * LARGE))
        return _done
