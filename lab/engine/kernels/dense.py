"""Dense (affine) layer: out = x @ w + b, and dropconnect's masked weights.

Kernels follow CS231n's layers.py shape but write into preallocated outputs, so a
training step allocates nothing.
"""

from __future__ import annotations

from ._jit import flag, jit
from .blas import product, product_nt


@jit
def dense_forward(x, w, b, out):
    """x (B, n_in), w (n_in, n_out), b (n_out,) -> out (B, n_out)."""
    product(x, w, out, flag(False), flag(False), flag(False))
    B, n = out.shape
    for i in range(B):
        for j in range(n):
            out[i, j] += b[j]


@jit
def dense_backward(dout, x, w, dx, dw, db, need_dx, accumulate_dx, scratch):
    """dout (B, n_out) -> dx (B, n_in) (if need_dx; added to when accumulate_dx), dw, db.

    dx is skipped for the first layer: nobody needs the gradient of the data.  scratch
    (1-D, at least B * n_in long, or empty) lets dx take the faster transposed product at
    small batches (blas.product_nt).
    """
    product(x, dout, dw, flag(True), flag(False), flag(False))
    B, n = dout.shape
    for j in range(n):
        db[j] = 0.0
    for i in range(B):
        for j in range(n):
            db[j] += dout[i, j]
    if need_dx:
        product_nt(dout, w, dx, accumulate_dx, scratch)


@jit
def dropconnect_weights(w, mask, w_eff, keep, rng, train):
    """Draw one keep mask over w (shared by the batch) and write w_eff = w*mask/keep.

    At eval time w_eff = w (the inverted scaling makes the expectations agree).
    """
    flat_w = w.ravel()
    flat_m = mask.ravel()
    flat_e = w_eff.ravel()
    if train:
        inv = 1.0 / keep
        for i in range(flat_w.size):
            m = 1.0 if rng.random() < keep else 0.0
            flat_m[i] = m
            flat_e[i] = flat_w[i] * m * inv
    else:
        for i in range(flat_w.size):
            flat_m[i] = 1.0
            flat_e[i] = flat_w[i]


@jit
def dropconnect_grad(dw, mask, keep):
    """Chain rule through w_eff = w*mask/keep: dL/dw = dL/dw_eff * mask/keep."""
    flat_d = dw.ravel()
    flat_m = mask.ravel()
    inv = 1.0 / keep
    for i in range(flat_d.size):
        flat_d[i] = flat_d[i] * flat_m[i] * inv
