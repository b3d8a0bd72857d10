"""BLAS thread limits.

numba's np.dot calls SciPy's BLAS and numpy has its own; both start one thread per
core by default.  On a 2-core machine a training thread plus a UI thread plus BLAS
threads oversubscribe the cores and everything slows down, so the lab decides how many
BLAS threads run (threadpoolctl limits every BLAS library loaded in the process).
"""

from __future__ import annotations

import os

from threadpoolctl import threadpool_limits

_limiter = None


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def limit_blas_threads(threads: int | None = None) -> int:
    """Cap BLAS threads for the rest of the process (default: the usable cores); return the cap."""
    global _limiter
    n = max(1, threads if threads is not None else cpu_count())
    _limiter = threadpool_limits(limits=n, user_api="blas")
    return n
