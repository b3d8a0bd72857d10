"""Vectorisable math for float32 kernels: tanh, exp and erfc without libm calls.

numba turns math.tanh / math.exp / math.erf into scalar libm calls, and a loop with a
call in it does not vectorise: a 12-layer, 64-unit network trained 4x slower with tanh
or gelu than with relu, all of it in those calls.  The functions here are branch-free
float64 arithmetic (selects, no calls), inlined into the caller, so LLVM vectorises the
loops around them.  Kernels use them for float32 networks only, evaluating in float64
and rounding once, which keeps every result within 3 ulp of the correctly rounded
float32 value (tests/test_vmath.py measures each function over its whole range);
float64 networks keep libm, bit for bit, because they are the ones checked against the
numpy oracle to 1e-10.

`is_single(a)` is the switch: a compile-time constant inside kernels, so the branch not
taken for an array type costs nothing.
"""

from __future__ import annotations

import numpy as np
from numba import types
from numba.extending import overload

from ._jit import inline

# -- exp(x) for x <= 0 ----------------------------------------------------------------------
# x = n*ln2 + r with |r| <= ln2/2 (Cody-Waite: ln2 in two parts, so n*ln2 is exact), exp(r)
# by its Taylor series to r^11 (error < 1e-14), and 2^n built from the bits of -n by
# selects: no bit casts, no libm.  Clamped to [-120, 0.34]: below -104 float32 is 0 anyway.
_LN2_HI = 0.693147180369123816490
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700
_EXP_MIN = -120.0
_EXP_MAX = 0.34  # just under ln2/2, so n = 0 and no positive power of two is ever needed


@inline
def exp_neg(x):
    """exp(x) for x <= 0 (float64; accurate to ~1e-15 relative; NaN propagates)."""
    y = min(max(x, _EXP_MIN), _EXP_MAX)
    n = np.floor(y * _INV_LN2 + 0.5)  # a float: NaN stays NaN (math.floor raises in Python)
    r = (y - n * _LN2_HI) - n * _LN2_LO
    p = 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    m = int(-n) if y == y else 0  # NaN: any m, p is NaN already
    s = 1.0
    s *= 0.5 if m & 1 else 1.0
    s *= 0.25 if m & 2 else 1.0
    s *= 0.0625 if m & 4 else 1.0
    s *= 0.00390625 if m & 8 else 1.0
    s *= 1.52587890625e-05 if m & 16 else 1.0
    s *= 2.3283064365386963e-10 if m & 32 else 1.0
    s *= 5.421010862427522e-20 if m & 64 else 1.0
    s *= 2.938735877055719e-39 if m & 128 else 1.0
    return p * s


# -- erfc -------------------------------------------------------------------------------------
# Numerical Recipes' erfcc: a Chebyshev fit with relative error below 1.2e-7 everywhere, so
# erfc(x) stays accurate where it is tiny (gelu of a very negative input is v * erfc(..)/2).
@inline
def erfc(x):
    """erfc(x) (float64 arithmetic, relative error < 1.2e-7: for float32 results)."""
    z = abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = 0.17087277
    poly = poly * t - 0.82215223
    poly = poly * t + 1.48851587
    poly = poly * t - 1.13520398
    poly = poly * t + 0.27886807
    poly = poly * t - 0.18628806
    poly = poly * t + 0.09678418
    poly = poly * t + 0.37409196
    poly = poly * t + 1.00002368
    ans = t * exp_neg(-z * z - 1.26551223 + t * poly)
    return ans if x >= 0.0 else 2.0 - ans


# -- tanh ---------------------------------------------------------------------------------------
# A rational function with Eigen's generic_fast_tanh_float coefficients, in float64.
_TANH_CLAMP = 9.0  # tanh(9) rounds to 1 - 6e-8 in float32; the function is flat beyond
_TANH_TINY = 0.0004  # below this tanh(x) == x in float32


@inline
def tanh(v):
    """tanh(v) (float64 arithmetic, within 3 ulp in float32; never beyond +-1)."""
    x = min(max(v, -_TANH_CLAMP), _TANH_CLAMP)
    x2 = x * x
    p = -2.76076847742355e-16
    p = p * x2 + 2.00018790482477e-13
    p = p * x2 - 8.60467152213735e-11
    p = p * x2 + 5.12229709037114e-08
    p = p * x2 + 1.48572235717979e-05
    p = p * x2 + 6.37261928875436e-04
    p = p * x2 + 4.89352455891786e-03
    q = 1.19825839466702e-06
    q = q * x2 + 1.18534705686654e-04
    q = q * x2 + 2.26843463243900e-03
    q = q * x2 + 4.89352518554385e-03  # q >= 0.0049: the division is safe
    t = min(max(p * x / q, -1.0), 1.0)  # the rational overshoots 1 by an ulp near the clamp
    return x if abs(x) < _TANH_TINY else t


@inline
def sigmoid(v):
    """1 / (1 + exp(-v)) from exp of -|v| only (never overflows)."""
    e = exp_neg(-abs(v))
    return (1.0 if v >= 0.0 else e) / (1.0 + e)


# -- the float32 switch ---------------------------------------------------------------------------
def is_single(a) -> bool:
    """True for a float32 array (inside kernels: a compile-time constant)."""
    return a.dtype == np.float32


@overload(is_single, inline="always")
def _is_single(a):
    single = isinstance(a, types.Array) and a.dtype == types.float32
    return lambda a: single
