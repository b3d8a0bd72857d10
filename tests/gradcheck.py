"""CS231n-style numerical gradient helpers."""

from __future__ import annotations

import numpy as np


def eval_numerical_gradient(f, x, h=1e-5):
    """Centred-difference gradient of the scalar function f() with respect to the array x.

    x is perturbed in place, element by element, and restored afterwards; f takes the
    array as its single argument: df/dx[i] ~ (f(x + h e_i) - f(x - h e_i)) / 2h.
    """
    grad = np.zeros_like(x, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        ix = it.multi_index
        old = x[ix]
        x[ix] = old + h
        fxph = float(f(x))
        x[ix] = old - h
        fxmh = float(f(x))
        x[ix] = old
        grad[ix] = (fxph - fxmh) / (2 * h)
        it.iternext()
    return grad


def rel_error(a, b):
    """max(|a - b| / max(1e-8, |a| + |b|))."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))
