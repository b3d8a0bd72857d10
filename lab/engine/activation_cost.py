"""What each activation costs to compute, measured on this machine with the lab's own kernels.

The notes say of sigmoid and tanh that "exp() is a bit compute expensive" and of ReLU that it
is cheap.  Rather than assert it, the lab times its own forward and backward kernels (the ones
training calls, float32 by default) on the same (rows x width) block of pre-activations drawn
from N(0, 1), and reports nanoseconds per value and the ratio to ReLU.  Informational only:
it is shown (the run screen's `cost` view, `nnlab bench --activations`), never checked, since
timings on a shared machine are noisy.  Maxout is left out: it is a max over k pieces of a
k-times wider product, so its cost is the product's, not an elementwise function's.

Taken in a few tens of milliseconds: each kernel runs REPEATS times in ROUNDS rounds and the
fastest round counts (the least disturbed by other processes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from lab import vocabulary as V

ROWS, WIDTH = 128, 256  # a batch of 128 through a 256-unit layer: 32,768 values
REPEATS, ROUNDS = 8, 5
MEASURED = tuple(a.name for a in V.ACTIVATIONS if a.public and not a.pieces)
BASELINE = V.default(V.ACTIVATIONS)  # ReLU, the cheap one the others are compared with


@dataclass(frozen=True, eq=False)
class ActivationCosts:
    """Nanoseconds per value of each activation's forward and backward kernels."""

    names: tuple[str, ...]
    forward_ns: np.ndarray  # (len(names),)
    backward_ns: np.ndarray
    dtype: str
    values: int  # values per kernel call (rows x width)

    def ratio(self, name: str, to: str = BASELINE) -> float:
        """(forward + backward) of `name` over that of `to`."""
        i, j = self.names.index(name), self.names.index(to)
        return float((self.forward_ns[i] + self.backward_ns[i]) / (self.forward_ns[j] + self.backward_ns[j]))


def _fastest_round(call) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        for _ in range(REPEATS):
            call()
        best = min(best, (time.perf_counter() - t0) / REPEATS)
    return best


def measure(dtype: str = "float32", rows: int = ROWS, width: int = WIDTH, seed: int = 0) -> ActivationCosts:
    """Time every activation's forward and backward kernel on one (rows, width) block."""
    from lab.engine.kernels.activations import activation_backward, activation_forward

    rng = np.random.default_rng(seed)
    z = rng.standard_normal((rows, width)).astype(dtype)
    a, dz, dout = np.empty_like(z), np.empty_like(z), rng.standard_normal((rows, width)).astype(dtype)
    slope = np.full(width, 0.25, dtype=dtype)  # prelu's learned slopes (their usual initial value)
    dslope = np.zeros_like(slope)
    forward, backward = [], []
    for name in MEASURED:
        spec = V.activation(name)
        code, alpha = spec.code, float(spec.alpha or 0.0)
        activation_forward(code, z, a, alpha, slope)  # compile (or load) and warm the caches first
        forward.append(_fastest_round(lambda: activation_forward(code, z, a, alpha, slope)))
        activation_backward(code, dout, z, a, alpha, slope, dz, dslope)
        backward.append(_fastest_round(lambda: activation_backward(code, dout, z, a, alpha, slope, dz, dslope)))
    per_value = 1e9 / (rows * width)
    return ActivationCosts(MEASURED, np.array(forward) * per_value, np.array(backward) * per_value, dtype,
                           rows * width)


def table(costs: ActivationCosts) -> list[tuple[str, str, str, str]]:
    """Rows for a report: name, forward ns/value, backward ns/value, (forward+backward) / relu."""
    return [(name, f"{f:.2f}", f"{b:.2f}", f"{costs.ratio(name):.1f}x")
            for name, f, b in zip(costs.names, costs.forward_ns, costs.backward_ns)]
