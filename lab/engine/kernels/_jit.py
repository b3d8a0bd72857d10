"""The numba flags every kernel shares, declared once.

cached       compiled machine code is stored on disk and loaded on the next run (~0.4 s
             instead of ~15 s), in the keyed directory `lab._numba_cache` chooses on first
             use (numba's own cache=True would pick an unkeyed fallback directory by itself).
nogil=True   kernels release the GIL so the TUI stays responsive while a worker trains.
fastmath is left off on purpose: contraction and the other fast-math flags would change
results with every inlining decision; the lab promises bit-identical metrics for the same
seed.  (One exception below, `reduction`, with its argument.)
error_model is numba's default ("python") except in the elementwise kernels below: the
Python model checks every float division for zero, and that branch keeps LLVM from
vectorising a loop (Adam's update over 10.7k parameters: 49 us checked, 6 us not).
No kernel divides by a value that can be exactly zero (every epsilon, keep probability
and batch size is validated positive); NaN and Inf still propagate, and divergence is
caught.

The cache directory is keyed on a hash of every kernel file, this one included
(lab/_numba_cache.py), so changing these flags starts a fresh cache.
"""

from __future__ import annotations

import numba

from lab._numba_cache import cached

JIT_FLAGS = dict(nogil=True, fastmath=False)  # + the keyed on-disk cache, by `cached`

jit = cached(numba.njit(**JIT_FLAGS))

# For elementwise loop kernels (activations, the optimizer update) and the scalar math they inline
# (kernels/vmath.py): the Python error model puts a ZeroDivisionError check on every
# float division, and that branch keeps LLVM from vectorising the loop.  No divisor in
# them can be zero.  `inline` helpers are inlined into the caller's numba IR: left to
# LLVM, the larger ones (erfc) stayed calls, and a call in a loop stops vectorisation.
elementwise = cached(numba.njit(**JIT_FLAGS, error_model="numpy"))
inline = cached(numba.njit(**JIT_FLAGS, error_model="numpy", inline="always"))

# For plain sums over one buffer (gradient norm, penalty): reassociation lets LLVM vectorise
# the reduction (7x faster).  The summation order then depends on the vector width LLVM
# picks for this CPU, but that is fixed for a compiled kernel, and numba's cache is keyed
# on the CPU model and features, so results stay bit-identical run to run on a machine,
# as BLAS's are (its kernels are chosen per CPU too).  Nowhere else.
reduction = cached(numba.njit(**{**JIT_FLAGS, "fastmath": {"reassoc"}}))


# numba compiles a callee once per distinct argument *type*, and a constant True or False
# passed from compiled code has its own type (Literal[bool]).  So forward(..., True, True)
# in the training loop, forward(..., False, False) in evaluation and forward(train, ...)
# from Python were three compilations of the whole forward pass and everything it calls.
# `flag(True)` passes the same value as a plain bool: one compilation serves every caller.
if numba.config.DISABLE_JIT:

    def flag(value):
        """value, typed as a plain bool (see above)."""
        return value

else:
    from numba import types
    from numba.extending import intrinsic

    @intrinsic
    def flag(typingctx, value):
        """value, typed as a plain bool (see above)."""
        if isinstance(value, types.Boolean):
            return types.boolean(value), lambda context, builder, sig, args: context.cast(
                builder, args[0], sig.args[0], types.boolean)
