"""The libm-free math of float32 kernels (lab/engine/kernels/vmath.py) against exact references.

Each function is evaluated by a compiled loop over a dense float32 grid covering its
whole range and rounded to float32, as the kernels do; the error is counted in units in
the last place (ulp) of the float32 result, against scipy/numpy in float64.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from scipy.special import erfc as scipy_erfc
from scipy.special import expit

from lab.engine.kernels import vmath

TINY32 = float(np.finfo(np.float32).tiny)  # smallest normal float32: below it ulps are absolute


def _rounded(fn):
    @numba.njit
    def apply(x, out):
        for i in range(x.size):
            out[i] = np.float32(fn(np.float64(x[i])))
    return apply


_CASES = {
    "exp_neg": (vmath.exp_neg, lambda x: np.exp(x), np.linspace(-104.0, 0.0, 400_001), 1.0),
    "erfc": (vmath.erfc, scipy_erfc, np.linspace(-10.0, 9.0, 400_001), 3.0),
    "tanh": (vmath.tanh, np.tanh, np.linspace(-12.0, 12.0, 400_001), 3.0),
    "sigmoid": (vmath.sigmoid, expit, np.linspace(-100.0, 100.0, 400_001), 2.0),
}


def _ulps(got32: np.ndarray, exact: np.ndarray) -> np.ndarray:
    exact32 = np.abs(exact).astype(np.float32)
    ulp = np.spacing(np.maximum(exact32, np.float32(TINY32))).astype(np.float64)
    return np.abs(got32.astype(np.float64) - exact) / ulp


@pytest.mark.parametrize("name", list(_CASES))
def test_float32_accuracy_over_the_range(name):
    fn, exact_fn, grid, max_ulp = _CASES[name]
    # the grid, plus magnitudes spread over every binade the function is defined on
    logs = 10.0 ** np.linspace(-38, np.log10(np.abs(grid).max()), 20_001)
    x = np.unique(np.concatenate([grid, logs, -logs]).astype(np.float32))
    x = x[(x >= grid.min()) & (x <= grid.max())]
    out = np.empty_like(x)
    _rounded(fn)(x, out)
    exact = exact_fn(x.astype(np.float64))
    ulps = _ulps(out, exact)
    worst = int(np.argmax(ulps))
    assert ulps[worst] <= max_ulp, f"{name}({x[worst]!r}) = {out[worst]!r}, exact {exact[worst]!r}"


def test_exp_neg_is_nearly_exact_in_float64():
    x = np.linspace(-120.0, 0.0, 100_001)
    got = np.array([vmath.exp_neg(v) for v in x[::97]])
    np.testing.assert_allclose(got, np.exp(x[::97]), rtol=1e-14, atol=0)  # 2^n scaling is exact


@pytest.mark.parametrize("name", list(_CASES))
def test_nan_propagates(name):
    fn = _CASES[name][0]
    assert np.isnan(fn(float("nan")))


def test_limits():
    assert vmath.exp_neg(0.0) == 1.0
    assert np.float32(vmath.exp_neg(-np.inf)) == 0.0
    f32 = np.float32
    assert f32(vmath.tanh(np.inf)) == 1.0 and f32(vmath.tanh(-np.inf)) == -1.0
    assert f32(vmath.sigmoid(np.inf)) == 1.0 and f32(vmath.sigmoid(-np.inf)) == 0.0
    assert vmath.erfc(0.0) == pytest.approx(1.0, rel=2e-7)
    assert f32(vmath.erfc(np.inf)) == 0.0 and f32(vmath.erfc(-np.inf)) == 2.0
    assert np.copysign(1.0, vmath.tanh(-0.0)) == -1.0  # tanh keeps the sign of zero


def test_is_single_is_a_compile_time_switch():
    @numba.njit
    def which(a):
        return 32 if vmath.is_single(a) else 64

    assert which(np.zeros(2, np.float32)) == 32
    assert which(np.zeros(2, np.float64)) == 64
    assert vmath.is_single(np.zeros(2, np.float32)) and not vmath.is_single(np.zeros(2))
