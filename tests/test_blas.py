"""The dense kernels' matrix products (lab/engine/kernels/blas.py) against numpy's @.

Every shape a dense layer uses, both precisions, views that are not C-contiguous (they
take plain loops), empty dimensions, and accumulation into the output.  A
subprocess checks the fallback that numba's np.dot provides when numpy's CBLAS is not
found (NNLAB_BLAS=numba).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from lab._blas import blas_tag, find_cblas
from lab.engine.kernels import blas

SHAPES = [(1, 1, 1), (64, 2, 100), (16, 100, 3), (7, 33, 65), (5, 0, 4), (0, 3, 4)]


def _arrays(m, k, n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)


def _tol(dtype):
    return dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_products_match_numpy(m, k, n, dtype):
    a, b = _arrays(m, k, n, dtype)
    out = np.full((m, n), np.nan, dtype)
    blas.product(a, b, out, False, False, False)
    np.testing.assert_allclose(out, a.astype(np.float64) @ b, **_tol(dtype))

    c = np.random.default_rng(1).standard_normal((m, n)).astype(dtype)
    dw = np.full((k, n), np.nan, dtype)
    blas.product(a, c, dw, True, False, False)
    np.testing.assert_allclose(dw, a.T.astype(np.float64) @ c, **_tol(dtype))

    dx = np.full((m, k), np.nan, dtype)
    blas.product(c, b, dx, False, True, False)
    np.testing.assert_allclose(dx, c.astype(np.float64) @ b.T, **_tol(dtype))
    before = dx.copy()
    blas.product(c, b, dx, False, True, True)  # accumulate
    np.testing.assert_allclose(dx, before + c.astype(np.float64) @ b.T, **_tol(dtype))


@pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaPerformanceWarning")  # that is the point
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_strided_views_take_the_general_path(dtype):
    a, b = _arrays(12, 10, 8, dtype, seed=3)
    a_view, b_view = a[::2], b[:, ::2]  # not C-contiguous
    out = np.empty((6, 4), dtype)
    blas.product(a_view, b_view, out, False, False, False)
    np.testing.assert_allclose(out, a_view.astype(np.float64) @ b_view, **_tol(dtype))
    big = np.zeros((6, 8), dtype)
    blas.product(a_view, b_view, big[:, ::2], False, False, False)  # a strided output too
    np.testing.assert_allclose(big[:, ::2], out, **_tol(dtype))
    assert not big[:, 1::2].any()
    c_view = np.random.default_rng(4).standard_normal((12, 6)).astype(dtype)[::2]  # (6, 6), strided
    dw = np.empty((10, 6), dtype)
    blas.product(a_view, c_view, dw, True, False, False)
    np.testing.assert_allclose(dw, a_view.T.astype(np.float64) @ c_view, **_tol(dtype))
    dx = np.ones((6, 8), dtype)
    blas.product(c_view, np.ascontiguousarray(b.T)[::1, :6][:, ::-1], dx[:, :8], False, True, True)
    np.testing.assert_allclose(dx, 1 + c_view.astype(np.float64) @ np.ascontiguousarray(b.T)[:, :6][:, ::-1].T,
                               **_tol(dtype))


def test_numpy_cblas_is_found_in_a_numpy_wheel():
    import numpy

    libs = os.path.join(os.path.dirname(os.path.dirname(numpy.__file__)), "numpy.libs")
    if not (os.path.isdir(libs) and any("openblas64" in f for f in os.listdir(libs))):
        pytest.skip("numpy without its bundled OpenBLAS (not a PyPI wheel)")
    found = find_cblas()
    assert found is not None and found.sgemm and found.dgemm
    assert blas_tag().startswith("cblas-ilp64:")


@pytest.mark.slow
@pytest.mark.cold
def test_fallback_to_numba_np_dot(tmp_path):
    code = textwrap.dedent("""
        import numpy as np
        from lab._blas import blas_tag
        from lab.engine.kernels import blas
        assert not blas.USING_CBLAS and blas_tag() == "numba-np.dot", blas_tag()
        rng = np.random.default_rng(0)
        for dtype in (np.float32, np.float64):
            a, b = rng.standard_normal((9, 5)).astype(dtype), rng.standard_normal((5, 7)).astype(dtype)
            c = rng.standard_normal((9, 7)).astype(dtype)
            out = np.empty((9, 7), dtype); blas.product(a, b, out, False, False, False)
            dw = np.empty((5, 7), dtype); blas.product(a, c, dw, True, False, False)
            dx = np.ones((9, 5), dtype); blas.product(c, b, dx, False, True, True)
            tol = 1e-5 if dtype == np.float32 else 1e-12
            assert np.allclose(out, a @ b, rtol=tol, atol=tol)
            assert np.allclose(dw, a.T @ c, rtol=tol, atol=tol)
            assert np.allclose(dx, 1 + c @ b.T, rtol=tol, atol=tol)
        print("ok")
    """)
    env = {**os.environ, "NNLAB_BLAS": "numba", "XDG_CACHE_HOME": str(tmp_path)}
    env.pop("NUMBA_CACHE_DIR", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
