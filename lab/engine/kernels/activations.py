"""Activation functions, each a forward/backward pair over (B, n) arrays.

Codes are ints so the network driver can dispatch inside one compiled function.
The backward kernels take both z (input) and a (output): sigmoid and tanh are
cheapest from a, the rest from z.
"""

from __future__ import annotations

import math

import numpy as np
from numba import types
from numba.extending import overload

from ._jit import JIT_FLAGS, elementwise, jit

SIGMOID, TANH, RELU, LEAKY_RELU, PRELU, ELU, SELU, GELU, MAXOUT, IDENTITY = range(10)

ACTIVATION_CODES = {
    "sigmoid": SIGMOID,
    "tanh": TANH,
    "relu": RELU,
    "leaky_relu": LEAKY_RELU,
    "prelu": PRELU,
    "elu": ELU,
    "selu": SELU,
    "gelu": GELU,
    "maxout": MAXOUT,
    "identity": IDENTITY,
}

SELU_LAMBDA = 1.0507009873554805
SELU_ALPHA = 1.6732632423543772
_INV_SQRT2 = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327

# float32 tanh as a rational function (Eigen's generic_fast_tanh_float coefficients),
# evaluated in float64 and rounded once: at most 3 ulp from the correctly rounded tanh
# (tests/test_kernels.py measures it).  numba's math.tanh is a scalar libm call that no
# loop can vectorise; on a 7x4096 tanh network it was 5.3 of the 67 ms of a forward pass,
# against 0.06 ms for numpy's SIMD tanh.  float64 networks keep math.tanh: they are the
# ones checked against the numpy oracle to 1e-10.
_TANH_CLAMP = 9.0  # tanh(9) rounds to 1 - 6e-8 in float32; the function is flat beyond
_TANH_TINY = 0.0004  # below this tanh(x) == x in float32
_TANH_P = (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05, 5.12229709037114e-08,
           -8.60467152213735e-11, 2.00018790482477e-13, -2.76076847742355e-16)
_TANH_Q = (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04, 1.19825839466702e-06)


@elementwise
def tanh_rational(v):
    """The rational tanh in float64 (branch-free, so loops calling it vectorise; q >= 0.0049)."""
    x = min(max(v, -_TANH_CLAMP), _TANH_CLAMP)
    x2 = x * x
    p = _TANH_P[6]
    p = p * x2 + _TANH_P[5]
    p = p * x2 + _TANH_P[4]
    p = p * x2 + _TANH_P[3]
    p = p * x2 + _TANH_P[2]
    p = p * x2 + _TANH_P[1]
    p = p * x2 + _TANH_P[0]
    q = _TANH_Q[3]
    q = q * x2 + _TANH_Q[2]
    q = q * x2 + _TANH_Q[1]
    q = q * x2 + _TANH_Q[0]
    t = min(max(p * x / q, -1.0), 1.0)  # the rational overshoots 1 by an ulp near the clamp
    return x if abs(x) < _TANH_TINY else t


def tanh(v):
    """tanh for kernels: the vectorisable rational for float32, libm's for float64.

    (This Python body is what runs under NUMBA_DISABLE_JIT=1; compiled kernels get the
    overload below, chosen by the argument's type at compile time.)
    """
    if isinstance(v, np.float32):
        return np.float32(tanh_rational(float(v)))
    return math.tanh(v)


@overload(tanh, jit_options={k: v for k, v in JIT_FLAGS.items() if k != "cache"})  # the caller is cached
def _tanh_overload(v):
    if isinstance(v, types.Float) and v.bitwidth == 32:
        return lambda v: np.float32(tanh_rational(np.float64(v)))
    return lambda v: math.tanh(v)


@jit
def activation_forward(code, z, a, alpha, slope):
    """z (B, n) -> a (B, n). alpha: leaky/elu parameter; slope (n,): prelu's learned slopes."""
    B, n = z.shape
    if code == TANH:  # its own loop, free of the dispatch, so it vectorises
        for i in range(B):
            for j in range(n):
                a[i, j] = tanh(z[i, j])
        return
    for i in range(B):
        for j in range(n):
            v = z[i, j]
            if code == SIGMOID:
                # Two branches keep exp() from overflowing for large |v|.
                if v >= 0:
                    a[i, j] = 1.0 / (1.0 + math.exp(-v))
                else:
                    e = math.exp(v)
                    a[i, j] = e / (1.0 + e)
            elif code == RELU:
                a[i, j] = v if v > 0 else 0.0
            elif code == LEAKY_RELU:
                a[i, j] = v if v > 0 else alpha * v
            elif code == PRELU:
                a[i, j] = v if v > 0 else slope[j] * v
            elif code == ELU:
                a[i, j] = v if v > 0 else alpha * (math.exp(v) - 1.0)
            elif code == SELU:
                a[i, j] = SELU_LAMBDA * (v if v > 0 else SELU_ALPHA * (math.exp(v) - 1.0))
            elif code == GELU:
                a[i, j] = 0.5 * v * (1.0 + math.erf(v * _INV_SQRT2))
            else:
                a[i, j] = v


@jit
def activation_backward(code, dout, z, a, alpha, slope, dz, dslope):
    """dout (B, n) -> dz (B, n); for prelu also dslope (n,) (overwritten)."""
    B, n = z.shape
    if code == PRELU:
        for j in range(n):
            dslope[j] = 0.0
    for i in range(B):
        for j in range(n):
            v = z[i, j]
            g = dout[i, j]
            if code == SIGMOID:
                s = a[i, j]
                dz[i, j] = g * s * (1.0 - s)
            elif code == TANH:
                t = a[i, j]
                dz[i, j] = g * (1.0 - t * t)
            elif code == RELU:
                dz[i, j] = g if v > 0 else 0.0
            elif code == LEAKY_RELU:
                dz[i, j] = g if v > 0 else alpha * g
            elif code == PRELU:
                if v > 0:
                    dz[i, j] = g
                else:
                    dz[i, j] = slope[j] * g
                    dslope[j] += g * v
            elif code == ELU:
                dz[i, j] = g if v > 0 else g * alpha * math.exp(v)
            elif code == SELU:
                dz[i, j] = g * SELU_LAMBDA * (1.0 if v > 0 else SELU_ALPHA * math.exp(v))
            elif code == GELU:
                cdf = 0.5 * (1.0 + math.erf(v * _INV_SQRT2))
                pdf = _INV_SQRT_2PI * math.exp(-0.5 * v * v)
                dz[i, j] = g * (cdf + v * pdf)
            else:
                dz[i, j] = g


@jit
def maxout_forward(z, a, argmax):
    """z (B, n*k) -> a (B, n): unit j is the max of its k contiguous pieces z[:, j*k:(j+1)*k]."""
    B, n = a.shape
    k = z.shape[1] // n
    for i in range(B):
        for j in range(n):
            best = z[i, j * k]
            arg = 0
            for p in range(1, k):
                v = z[i, j * k + p]
                if v > best:
                    best = v
                    arg = p
            a[i, j] = best
            argmax[i, j] = arg


@jit
def maxout_backward(dout, argmax, dz):
    """dout (B, n) -> dz (B, n*k): the gradient goes to the winning piece only."""
    B, n = dout.shape
    k = dz.shape[1] // n
    for i in range(B):
        for c in range(n * k):
            dz[i, c] = 0.0
        for j in range(n):
            dz[i, j * k + argmax[i, j]] = dout[i, j]
