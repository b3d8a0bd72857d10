"""BLAS thread limits.

The kernels call numpy's BLAS (lab/_blas.py), or numba's np.dot, which calls SciPy's:
both start one thread per core by default.  On a 2-core machine a training thread plus
a UI thread plus BLAS threads oversubscribe the cores and everything slows down, so the lab decides how many
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


DETERMINISTIC_THREADS = 1  # one BLAS thread everywhere: GEMM's summation order depends on the
# thread count, so 1 thread headless and 2 in the TUI would give different bits for the same run


def limit_blas_threads(threads: int | None = None) -> int:
    """Cap BLAS threads for the rest of the process (default: DETERMINISTIC_THREADS); return the cap.

    numba's np.dot (the kernels' fallback when numpy's CBLAS is not found) calls SciPy's
    OpenBLAS, a second copy beside numpy's, which is only loaded on first use: load it
    now, or the cap would miss it and its idle threads would spin against the training thread (measured: a 16x512 @ 512x512 product went from
    0.06 ms to 8-35 ms).
    """
    global _limiter
    import scipy.linalg.cython_blas  # noqa: F401  (loads the library numba's np.dot uses)

    n = max(1, threads if threads is not None else DETERMINISTIC_THREADS)
    _limiter = threadpool_limits(limits=n, user_api="blas")
    return n
