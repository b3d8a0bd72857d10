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

from lab import vocabulary

from . import vmath
from ._jit import elementwise, jit

SIGMOID, TANH, RELU, LEAKY_RELU, PRELU, ELU, SELU, GELU, MAXOUT, IDENTITY = range(10)

ACTIVATION_CODES = vocabulary.codes(vocabulary.ACTIVATIONS)  # name -> code; tests check they agree

SELU_LAMBDA = 1.0507009873554805
SELU_ALPHA = 1.6732632423543772
_INV_SQRT2 = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327


# One small kernel per activation and direction.  Each is compiled and vectorised on its
# own: written as branches of one function with the activation code known only at run
# time, relu's backward loop stayed scalar (2.7 us instead of 0.4 us on 64x100).
# Arrays are (B, n); float32 arrays take vmath's functions, float64 ones libm's.


@elementwise
def _sigmoid_forward(z, a):
    B, n = z.shape
    for i in range(B):
        for j in range(n):
            if vmath.is_single(z):
                a[i, j] = vmath.sigmoid(np.float64(z[i, j]))
            else:
                v = z[i, j]
                # Two branches keep exp() from overflowing for large |v|.
                if v >= 0:
                    a[i, j] = 1.0 / (1.0 + math.exp(-v))
                else:
                    e = math.exp(v)
                    a[i, j] = e / (1.0 + e)


@elementwise
def _sigmoid_backward(dout, a, dz):
    B, n = a.shape
    for i in range(B):
        for j in range(n):
            s = np.float64(a[i, j])  # float64: 1 - s must not round in float32
            dz[i, j] = dout[i, j] * s * (1.0 - s)


@elementwise
def _tanh_forward(z, a):
    B, n = z.shape
    for i in range(B):
        for j in range(n):
            if vmath.is_single(z):
                a[i, j] = vmath.tanh(np.float64(z[i, j]))
            else:
                a[i, j] = math.tanh(z[i, j])


@elementwise
def _tanh_backward(dout, a, dz):
    B, n = a.shape
    for i in range(B):
        for j in range(n):
            t = np.float64(a[i, j])  # t * t in float32 would lose 1 - t^2 near saturation
            dz[i, j] = dout[i, j] * (1.0 - t * t)


@elementwise
def _leaky_forward(z, a, alpha):
    """relu (alpha = 0) and leaky relu."""
    B, n = z.shape
    for i in range(B):
        for j in range(n):
            v = z[i, j]
            a[i, j] = v if v > 0 else alpha * v


@elementwise
def _leaky_backward(dout, z, dz, alpha):
    B, n = z.shape
    for i in range(B):
        for j in range(n):
            g = dout[i, j]
            dz[i, j] = g if z[i, j] > 0 else alpha * g


@elementwise
def _prelu_forward(z, a, slope):
    B, n = z.shape
    for i in range(B):
        for j in range(n):
            v = z[i, j]
            a[i, j] = v if v > 0 else slope[j] * v


@elementwise
def _prelu_backward(dout, z, slope, dz, dslope):
    B, n = z.shape
    for j in range(n):
        dslope[j] = 0.0
    for i in range(B):
        for j in range(n):
            v = z[i, j]
            g = dout[i, j]
            neg = v <= 0
            dz[i, j] = slope[j] * g if neg else g
            dslope[j] += g * v if neg else 0.0


@elementwise
def _elu_forward(z, a, alpha, scale):
    """scale * (z if z > 0 else alpha*(exp(z) - 1)): elu (scale 1) and selu."""
    B, n = z.shape
    for i in range(B):
        for j in range(n):
            if vmath.is_single(z):
                v = np.float64(z[i, j])
                a[i, j] = scale * (v if v > 0 else alpha * (vmath.exp_neg(min(v, 0.0)) - 1.0))
            else:
                v = z[i, j]
                a[i, j] = scale * (v if v > 0 else alpha * (math.exp(v) - 1.0))


@elementwise
def _elu_backward(dout, z, dz, alpha, scale):
    B, n = z.shape
    for i in range(B):
        for j in range(n):
            if vmath.is_single(z):
                v = np.float64(z[i, j])
                dz[i, j] = dout[i, j] * scale * (1.0 if v > 0 else alpha * vmath.exp_neg(min(v, 0.0)))
            else:
                v = z[i, j]
                dz[i, j] = dout[i, j] * scale * (1.0 if v > 0 else alpha * math.exp(v))


@elementwise
def _gelu_forward(z, a):
    B, n = z.shape
    for i in range(B):
        for j in range(n):
            if vmath.is_single(z):  # Phi(v) = erfc(-v / sqrt 2) / 2: accurate where Phi is tiny
                v = np.float64(z[i, j])
                a[i, j] = 0.5 * v * vmath.erfc(-v * _INV_SQRT2)
            else:
                v = z[i, j]
                a[i, j] = 0.5 * v * (1.0 + math.erf(v * _INV_SQRT2))


@elementwise
def _gelu_backward(dout, z, dz):
    B, n = z.shape
    for i in range(B):
        for j in range(n):
            if vmath.is_single(z):
                v = np.float64(z[i, j])
                cdf = 0.5 * vmath.erfc(-v * _INV_SQRT2)
                pdf = _INV_SQRT_2PI * vmath.exp_neg(-0.5 * v * v)
            else:
                v = z[i, j]
                cdf = 0.5 * (1.0 + math.erf(v * _INV_SQRT2))
                pdf = _INV_SQRT_2PI * math.exp(-0.5 * v * v)
            dz[i, j] = dout[i, j] * (cdf + v * pdf)


@elementwise
def _copy(src, dst):
    B, n = src.shape
    for i in range(B):
        for j in range(n):
            dst[i, j] = src[i, j]


@jit
def activation_forward(code, z, a, alpha, slope):
    """z (B, n) -> a (B, n). alpha: leaky/elu parameter; slope (n,): prelu's learned slopes."""
    if code == SIGMOID:
        _sigmoid_forward(z, a)
    elif code == TANH:
        _tanh_forward(z, a)
    elif code == RELU:
        _leaky_forward(z, a, 0.0)
    elif code == LEAKY_RELU:
        _leaky_forward(z, a, alpha)
    elif code == PRELU:
        _prelu_forward(z, a, slope)
    elif code == ELU:
        _elu_forward(z, a, alpha, 1.0)
    elif code == SELU:
        _elu_forward(z, a, SELU_ALPHA, SELU_LAMBDA)
    elif code == GELU:
        _gelu_forward(z, a)
    else:
        _copy(z, a)


@jit
def activation_backward(code, dout, z, a, alpha, slope, dz, dslope):
    """dout (B, n) -> dz (B, n); for prelu also dslope (n,) (overwritten)."""
    if code == SIGMOID:
        _sigmoid_backward(dout, a, dz)
    elif code == TANH:
        _tanh_backward(dout, a, dz)
    elif code == RELU:
        _leaky_backward(dout, z, dz, 0.0)
    elif code == LEAKY_RELU:
        _leaky_backward(dout, z, dz, alpha)
    elif code == PRELU:
        _prelu_backward(dout, z, slope, dz, dslope)
    elif code == ELU:
        _elu_backward(dout, z, dz, alpha, 1.0)
    elif code == SELU:
        _elu_backward(dout, z, dz, SELU_ALPHA, SELU_LAMBDA)
    elif code == GELU:
        _gelu_backward(dout, z, dz)
    else:
        _copy(dout, dz)


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
