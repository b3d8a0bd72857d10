"""Activation functions, each a forward/backward pair over (B, n) arrays.

Codes are ints so the network driver can dispatch inside one compiled function.
The backward kernels take both z (input) and a (output): sigmoid and tanh are
cheapest from a, the rest from z.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import jit

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


@jit
def activation_forward(code, z, a, alpha, slope):
    """z (B, n) -> a (B, n). alpha: leaky/elu parameter; slope (n,): prelu's learned slopes."""
    B, n = z.shape
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
            elif code == TANH:
                a[i, j] = math.tanh(v)
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
