"""CS231n-style numerical gradient helpers, and the test points they are taken at (shared by
tests/test_reference.py, tests/test_engine_gradients.py and tests/test_engine_vs_reference.py)."""

from __future__ import annotations

import numpy as np

from tests.reference import ReferenceSpec, reference_forward

KINK_MARGIN = 1e-3
RTOL = 1e-6
# Centred differences of a loss of order 1 carry ~1e-11 of round-off (eps*|f|/h): an element
# whose true gradient is ~0 (a bias before train-mode batchnorm, ...) must agree to ATOL.
ATOL = 1e-10


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


def assert_grads_match(numeric, analytic, name, rtol=RTOL, atol=ATOL):
    num = np.asarray(numeric, dtype=np.float64)
    ana = np.asarray(analytic, dtype=np.float64)
    assert num.shape == ana.shape, name
    abs_err = np.abs(num - ana)
    rel = abs_err / np.maximum(1e-8, np.abs(num) + np.abs(ana))
    bad = (rel >= rtol) & (abs_err >= atol)
    assert not bad.any(), (
        f"{name}: rel_error {rel_error(num, ana):.3g}, max abs error {abs_err.max():.3g}\n"
        f"numeric={num}\nanalytic={ana}"
    )


def has_activation(spec: ReferenceSpec, l: int) -> bool:
    # residual: layer 1 projects, blocks are (2, 3), (4, 5), ...; odd l >= 3 has no activation
    return not (spec.residual and l >= 3 and l % 2 == 1)


def draw_running(spec: ReferenceSpec, params, rng) -> dict[str, np.ndarray]:
    running = {}
    for l in range(1, len(spec.hidden) + 1):
        n = params[f"W{l}"].shape[1]
        running[f"mean{l}"] = rng.normal(0.0, 0.3, n)
        running[f"var{l}"] = rng.uniform(0.5, 2.0, n)
    return running


def away_from_kinks(spec, params, x, y, *, train=False, masks=None, running=None, margin=KINK_MARGIN) -> bool:
    """True if no non-differentiable point is within `margin` of the test point (any batch size)."""
    out = reference_forward(spec, params, x, train=train, masks=masks, running=running)
    n = x.shape[0]
    for l in range(1, len(spec.hidden) + 1):
        if not has_activation(spec, l):
            continue
        z = out["z"][l]
        if spec.activation == "maxout":
            pieces = np.sort(z.reshape(n, -1, spec.maxout_k), axis=2)
            if np.min(pieces[..., -1] - pieces[..., -2]) < margin:
                return False
        elif np.min(np.abs(z)) < margin:  # relu-like kinks, elu/selu curvature jumps
            return False
    if spec.loss == "hinge":
        s = out["scores"]
        margins = s - s[np.arange(n), y][:, None] + 1.0
        margins[np.arange(n), y] = 1.0  # not a term of the loss
        if np.min(np.abs(margins)) < margin:
            return False
    if spec.l1 > 0:
        if any(np.min(np.abs(v)) < margin for k, v in params.items() if k.startswith("W")):
            return False
    return True
