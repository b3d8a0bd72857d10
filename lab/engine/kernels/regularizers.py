"""Dropout (three modes) and batchnorm, forward/backward pairs."""

from __future__ import annotations

import math

from ._jit import jit

INVERTED, VANILLA, VANILLA_NOSCALE = 0, 1, 2
DROPOUT_MODES = {"inverted": INVERTED, "vanilla": VANILLA, "vanilla-noscale": VANILLA_NOSCALE}


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


@jit
def batchnorm_forward(z, gamma, beta, out, xhat, inv_std, running_mean, running_var,
                      eps, momentum, train, update_running):
    """z (B, n) -> out (B, n). Train: batch statistics (biased variance); eval: running ones.

    xhat (B, n) and inv_std (n,) are kept for the backward pass.
    """
    B, n = z.shape
    for j in range(n):
        if train:
            mu = 0.0
            for i in range(B):
                mu += z[i, j]
            mu /= B
            var = 0.0
            for i in range(B):
                d = z[i, j] - mu
                var += d * d
            var /= B
            if update_running:
                running_mean[j] = momentum * running_mean[j] + (1.0 - momentum) * mu
                running_var[j] = momentum * running_var[j] + (1.0 - momentum) * var
        else:
            mu = running_mean[j]
            var = running_var[j]
        s = 1.0 / math.sqrt(var + eps)
        inv_std[j] = s
        g = gamma[j]
        b = beta[j]
        for i in range(B):
            h = (z[i, j] - mu) * s
            xhat[i, j] = h
            out[i, j] = g * h + b


@jit
def batchnorm_backward(dout, xhat, inv_std, gamma, dz, dgamma, dbeta, train):
    """dout (B, n) -> dz, dgamma, dbeta. In train mode the batch statistics depend on z too."""
    B, n = dout.shape
    for j in range(n):
        sg = 0.0
        sgx = 0.0
        for i in range(B):
            sg += dout[i, j]
            sgx += dout[i, j] * xhat[i, j]
        dbeta[j] = sg
        dgamma[j] = sgx
        k = gamma[j] * inv_std[j]
        if train:
            mean_g = sg / B
            mean_gx = sgx / B
            for i in range(B):
                dz[i, j] = k * (dout[i, j] - mean_g - xhat[i, j] * mean_gx)
        else:
            for i in range(B):
                dz[i, j] = k * dout[i, j]
