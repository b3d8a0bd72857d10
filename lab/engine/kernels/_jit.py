"""The numba flags every kernel shares, declared once.

cache=True   compiled machine code is stored on disk and loaded on the next run (~0.4 s
             instead of ~15 s); `lab._numba_cache` points it at a user cache when the
             package directory is read-only.
nogil=True   kernels release the GIL so the TUI stays responsive while a worker trains.
fastmath is left off on purpose: reassociation would make runs depend on vector width,
and the lab promises bit-identical metrics for the same seed.
error_model stays numba's default ("python"): with error_model="numpy" the fused
optimizer loop over 6.3M float32 parameters took 480 ms instead of 29 ms (measured
2026-11-23).  No kernel divides by a value that can be exactly zero (every epsilon,
keep probability and batch size is validated positive), so the Python model's
ZeroDivisionError never fires; NaN and Inf still propagate, and divergence is caught.

numba keys its on-disk cache on each kernel file's contents, not on these flags: after
changing them, delete the cached *.nbi/*.nbc files (lab/engine/kernels/__pycache__, or
~/.cache/nnlab/numba) or the old machine code keeps being loaded.
"""

from __future__ import annotations

from lab import _numba_cache  # noqa: F401  (must run before numba compiles anything)

import numba

JIT_FLAGS = dict(cache=True, nogil=True, fastmath=False)

jit = numba.njit(**JIT_FLAGS)
