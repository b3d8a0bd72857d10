"""Activation functions, each a forward/backward pair over (B, n) arrays.

Codes are ints so the network driver can dispatch inside one compiled function.
The backward kernels take both z (input) and a (output): sigmoid and tanh are
cheapest from a, the rest from z.

Every activation has its own inner loop, with the dispatch outside it, so each loop
vectorises.  float32 arrays take the libm-free functions of vmath.py (tanh, exp, erfc);
float64 arrays keep libm's, bit for bit (the numpy oracle checks them to 1e-10).
"""

from __future__ import annotations

import math

import numpy as np

from . import vmath
from ._jit import elementwise, jit

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


@elementwise
def activation_forward(code, z, a, alpha, slope):
    """z (B, n) -> a (B, n). alpha: leaky/elu parameter; slope (n,): prelu's learned slopes."""
    B, n = z.shape
    single = vmath.is_single(z)
    for i in range(B):
        zi = z[i]
        ai = a[i]
        if code == SIGMOID:
            if single:
                for j in range(n):
                    ai[j] = vmath.sigmoid(np.float64(zi[j]))
            else:
                for j in range(n):
                    v = zi[j]
                    # Two branches keep exp() from overflowing for large |v|.
                    if v >= 0:
                        ai[j] = 1.0 / (1.0 + math.exp(-v))
                    else:
                        e = math.exp(v)
                        ai[j] = e / (1.0 + e)
        elif code == TANH:
            if single:
                for j in range(n):
                    ai[j] = vmath.tanh(np.float64(zi[j]))
            else:
                for j in range(n):
                    ai[j] = math.tanh(zi[j])
        elif code == RELU:
            for j in range(n):
                v = zi[j]
                ai[j] = v if v > 0 else 0.0
        elif code == LEAKY_RELU:
            for j in range(n):
                v = zi[j]
                ai[j] = v if v > 0 else alpha * v
        elif code == PRELU:
            for j in range(n):
                v = zi[j]
                ai[j] = v if v > 0 else slope[j] * v
        elif code == ELU:
            if single:
                for j in range(n):
                    v = np.float64(zi[j])
                    ai[j] = v if v > 0 else alpha * (vmath.exp_neg(min(v, 0.0)) - 1.0)
            else:
                for j in range(n):
                    v = zi[j]
                    ai[j] = v if v > 0 else alpha * (math.exp(v) - 1.0)
        elif code == SELU:
            if single:
                for j in range(n):
                    v = np.float64(zi[j])
                    ai[j] = SELU_LAMBDA * (v if v > 0 else SELU_ALPHA * (vmath.exp_neg(min(v, 0.0)) - 1.0))
            else:
                for j in range(n):
                    v = zi[j]
                    ai[j] = SELU_LAMBDA * (v if v > 0 else SELU_ALPHA * (math.exp(v) - 1.0))
        elif code == GELU:
            if single:  # Phi(v) = erfc(-v / sqrt 2) / 2: accurate where Phi is tiny
                for j in range(n):
                    v = np.float64(zi[j])
                    ai[j] = 0.5 * v * vmath.erfc(-v * _INV_SQRT2)
            else:
                for j in range(n):
                    v = zi[j]
                    ai[j] = 0.5 * v * (1.0 + math.erf(v * _INV_SQRT2))
        else:
            for j in range(n):
                ai[j] = zi[j]


@elementwise
def activation_backward(code, dout, z, a, alpha, slope, dz, dslope):
    """dout (B, n) -> dz (B, n); for prelu also dslope (n,) (overwritten)."""
    B, n = z.shape
    single = vmath.is_single(z)
    if code == PRELU:
        for j in range(n):
            dslope[j] = 0.0
    for i in range(B):
        zi = z[i]
        ai = a[i]
        gi = dout[i]
        di = dz[i]
        if code == SIGMOID:
            for j in range(n):
                s = np.float64(ai[j])
                di[j] = gi[j] * s * (1.0 - s)
        elif code == TANH:
            for j in range(n):
                t = np.float64(ai[j])  # t * t in float32 would lose 1 - t^2 near saturation
                di[j] = gi[j] * (1.0 - t * t)
        elif code == RELU:
            for j in range(n):
                di[j] = gi[j] if zi[j] > 0 else 0.0
        elif code == LEAKY_RELU:
            for j in range(n):
                g = gi[j]
                di[j] = g if zi[j] > 0 else alpha * g
        elif code == PRELU:
            for j in range(n):
                v = zi[j]
                g = gi[j]
                if v > 0:
                    di[j] = g
                else:
                    di[j] = slope[j] * g
                    dslope[j] += g * v
        elif code == ELU:
            if single:
                for j in range(n):
                    v = np.float64(zi[j])
                    g = gi[j]
                    di[j] = g if v > 0 else g * alpha * vmath.exp_neg(min(v, 0.0))
            else:
                for j in range(n):
                    v = zi[j]
                    g = gi[j]
                    di[j] = g if v > 0 else g * alpha * math.exp(v)
        elif code == SELU:
            if single:
                for j in range(n):
                    v = np.float64(zi[j])
                    di[j] = gi[j] * SELU_LAMBDA * (1.0 if v > 0 else SELU_ALPHA * vmath.exp_neg(min(v, 0.0)))
            else:
                for j in range(n):
                    v = zi[j]
                    di[j] = gi[j] * SELU_LAMBDA * (1.0 if v > 0 else SELU_ALPHA * math.exp(v))
        elif code == GELU:
            if single:
                for j in range(n):
                    v = np.float64(zi[j])
                    cdf = 0.5 * vmath.erfc(-v * _INV_SQRT2)
                    pdf = _INV_SQRT_2PI * vmath.exp_neg(-0.5 * v * v)
                    di[j] = gi[j] * (cdf + v * pdf)
            else:
                for j in range(n):
                    v = zi[j]
                    cdf = 0.5 * (1.0 + math.erf(v * _INV_SQRT2))
                    pdf = _INV_SQRT_2PI * math.exp(-0.5 * v * v)
                    di[j] = gi[j] * (cdf + v * pdf)
        else:
            for j in range(n):
                di[j] = gi[j]


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
