"""Process settings for headless training: reuse freed memory, and keep torch out of the GC.

Both are decisions about a whole process, so only a process that trains headless makes
them: ``python -m app.cli`` for ``run``, ``compare``, ``reproduce`` and ``sweep`` (once its
arguments are checked), and every sweep task (``app/runner/jobs.py``, in whatever worker
or Ray process runs it). The web and terminal apps, and code that imports ``app.cli.main``
(the tests), keep Python's and glibc's defaults.

**Freed memory.** A measurement allocates and frees the same tensors of a few MiB dozens
of times (the sweep's propagated Jacobians, the float64 copies the correlations reduce).
glibc's malloc hands blocks above its mmap threshold back to the system when they are
freed, and trims the heap's free top above its trim threshold, so the next measurement
faults the same pages in again and the kernel zero-fills each one. On the measurement-heavy
digits run (``benchmarks/bench_core.py``'s end-to-end run) that was about 100,000 minor
page faults beyond ``import torch``'s, and system time 0.40 s; with the thresholds below,
26,000 faults and 0.22 s. Blocks of 32 MiB and more
(the sweep of a huge layer) still go straight to the system, so a run's peak is what it
allocates, and the heap gives memory back once 128 MiB of its top is free.

**The GC.** ``import torch`` leaves about 167,000 objects that the cyclic garbage collector
walks at every full collection (80 ms each here, three in that run) and once more while
the interpreter exits (0.35-0.45 s of the run's last half second). ``gc.freeze()`` after
the imports moves them to the permanent generation: they live as long as the process
anyway. Exit then takes 0.11-0.15 s.
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
"""mallopt's parameter numbers (malloc.h)."""
MMAP_THRESHOLD = 32 << 20
"""Blocks this size and above come from (and go back to) the system directly."""
TRIM_THRESHOLD = 128 << 20
"""The heap returns its free top to the system once it exceeds this."""
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
"""glibc's environment settings: a user who gave one keeps glibc's behaviour as set."""


def settle_for_training() -> None:
    """Both settings; call once the training command's modules (and torch) are imported."""
    keep_freed_memory()
    gc.freeze()


def keep_freed_memory() -> bool:
    """Raises glibc's mmap and trim thresholds for this process; True when both took effect.

    A no-op (False) off Linux, without a ``mallopt`` (a C library other than glibc), or when
    the environment already sets a threshold. The mmap threshold is set first and the trim
    threshold only if that worked: a fixed trim threshold alone also pins the mmap threshold
    at its 128 KiB default (glibc stops adjusting it), which made the digits run 1.6x
    slower, measured.
    """
    if not sys.platform.startswith("linux") or any(name in os.environ for name in USER_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
