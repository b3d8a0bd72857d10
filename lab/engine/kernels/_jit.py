"""The numba flags every kernel shares, declared once.

cache=True   compiled machine code is stored on disk and loaded on the next run (~0.4 s
             instead of ~15 s); `lab._numba_cache` points it at a user cache when the
             package directory is read-only.
nogil=True   kernels release the GIL so the TUI stays responsive while a worker trains.
fastmath is left off on purpose: reassociation would make runs depend on vector width,
and the lab promises bit-identical metrics for the same seed.
"""

from __future__ import annotations

from lab import _numba_cache  # noqa: F401  (must run before numba compiles anything)

import numba

JIT_FLAGS = dict(cache=True, nogil=True, fastmath=False, error_model="numpy")

jit = numba.njit(**JIT_FLAGS)
