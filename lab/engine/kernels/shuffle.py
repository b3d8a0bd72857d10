"""Fisher-Yates shuffle for the epoch permutation: numpy's stream, without numba's overhead.

numba's `Generator.shuffle` translates numpy's algorithm (for i from n-1 down, swap with
`random_interval(i)`, masked rejection on 32-bit draws), so a shuffle in a kernel gives
the same permutation as numpy's for the same generator state.  It moves each element
through a 0-d array view, though: 72 us for 2,048 indices, 2.2 us of every training
step of a 64-example batch.  Swapping the two integers directly is the same algorithm,
draw for draw, at 12 us (tests/test_kernels.py compares both with numpy's).

`random_interval` is numba's own translation of numpy's; should a numba release move it,
the engine falls back to `Generator.shuffle` (same results, slower).
"""

from __future__ import annotations

import numpy as np

from ._jit import jit

try:
    from numba.np.random.random_methods import random_interval
except ImportError:  # pragma: no cover - depends on numba's internal layout
    random_interval = None

if random_interval is not None:

    @jit
    def shuffle(rng, perm):
        """Shuffle the 1-D array perm in place, exactly as rng.shuffle(perm) would."""
        bitgen = rng.bit_generator
        for i in range(perm.size - 1, 0, -1):
            j = np.intp(random_interval(bitgen, i))
            t = perm[i]
            perm[i] = perm[j]
            perm[j] = t

else:  # pragma: no cover

    @jit
    def shuffle(rng, perm):
        """Shuffle the 1-D array perm in place (numba's own Generator.shuffle)."""
        rng.shuffle(perm)
