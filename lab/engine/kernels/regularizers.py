"""Dropout (three modes) and batchnorm, forward/backward pairs."""

from __future__ import annotations

import math

import numpy as np

from lab import vocabulary

from ._jit import jit

INVERTED, VANILLA, VANILLA_NOSCALE = 0, 1, 2
DROPOUT_MODES = vocabulary.codes(vocabulary.DROPOUT_MODES)  # name -> code; tests check they agree


@jit
def dropout_forward(x, out, mask, keep, mode, train, rng):
    """x (B, n) -> out (B, n). mask (B, n) receives the 0/1 keep mask drawn this step.

    inverted: train x*m/keep, eval x.   vanilla: train x*m, eval x*keep.
    vanilla-noscale: train x*m, eval x  (the bug of forgetting test-time scaling).
    """
    B, n = x.shape
    if train:
        scale = 1.0 / keep if mode == INVERTED else 1.0
        for i in range(B):
            for j in range(n):
                m = 1.0 if rng.random() < keep else 0.0
                mask[i, j] = m
                out[i, j] = x[i, j] * m * scale
    else:  # the mask buffer keeps the last training mask (Network.last_masks reads it)
        scale = keep if mode == VANILLA else 1.0
        for i in range(B):
            for j in range(n):
                out[i, j] = x[i, j] * scale


@jit
def dropout_backward(dout, mask, keep, mode, train, dx):
    """Gradient of the forward in the same mode (train: through the mask; eval: the scaling)."""
    B, n = dout.shape
    if train:
        scale = 1.0 / keep if mode == INVERTED else 1.0
        for i in range(B):
            for j in range(n):
                dx[i, j] = dout[i, j] * mask[i, j] * scale
    else:
        scale = keep if mode == VANILLA else 1.0
        for i in range(B):
            for j in range(n):
                dx[i, j] = dout[i, j] * scale


# Batchnorm reduces over the batch (rows) for every unit (column).  The loops run over rows
# outermost with the units innermost, so every inner loop is elementwise over contiguous
# memory and vectorises; each column's sum still adds its rows in order 0..B-1, the order
# of the textbook column loop, so the results are the same bits (and 1.8x faster than the
# column-major loops on a 64x100 batch).


@jit
def batchnorm_forward(z, gamma, beta, out, xhat, inv_std, running_mean, running_var,
                      eps, momentum, train, update_running):
    """z (B, n) -> out (B, n). Train: batch statistics (biased variance); eval: running ones.

    xhat (B, n) and inv_std (n,) are kept for the backward pass.
    """
    B, n = z.shape
    mu = np.zeros(n)  # float64 whatever the network's precision, as the statistics always were
    s = np.empty(n)
    if train:
        var = np.zeros(n)
        for i in range(B):
            for j in range(n):
                mu[j] += z[i, j]
        for j in range(n):
            mu[j] /= B
        for i in range(B):
            for j in range(n):
                d = z[i, j] - mu[j]
                var[j] += d * d
        for j in range(n):
            var[j] /= B
            if update_running:
                running_mean[j] = momentum * running_mean[j] + (1.0 - momentum) * mu[j]
                running_var[j] = momentum * running_var[j] + (1.0 - momentum) * var[j]
            s[j] = 1.0 / math.sqrt(var[j] + eps)
    else:
        for j in range(n):
            mu[j] = running_mean[j]
            s[j] = 1.0 / math.sqrt(running_var[j] + eps)
    for j in range(n):
        inv_std[j] = s[j]
    for i in range(B):
        for j in range(n):
            h = (z[i, j] - mu[j]) * s[j]
            xhat[i, j] = h
            out[i, j] = gamma[j] * h + beta[j]


@jit
def batchnorm_backward(dout, xhat, inv_std, gamma, dz, dgamma, dbeta, train):
    """dout (B, n) -> dz, dgamma, dbeta. In train mode the batch statistics depend on z too."""
    B, n = dout.shape
    sg = np.zeros(n)  # float64 sums, then rounded once into dbeta/dgamma
    sgx = np.zeros(n)
    for i in range(B):
        for j in range(n):
            sg[j] += dout[i, j]
            sgx[j] += dout[i, j] * xhat[i, j]
    for j in range(n):
        dbeta[j] = sg[j]
        dgamma[j] = sgx[j]
    if train:
        for j in range(n):
            sg[j] /= B  # now the means
            sgx[j] /= B
        for i in range(B):
            for j in range(n):
                dz[i, j] = gamma[j] * inv_std[j] * (dout[i, j] - sg[j] - xhat[i, j] * sgx[j])
    else:
        for i in range(B):
            for j in range(n):
                dz[i, j] = gamma[j] * inv_std[j] * dout[i, j]
