"""Matrix products for the dense kernels: numpy's CBLAS when found, numba's np.dot otherwise.

product(a, b, out, trans_a, trans_b, acc): out (+)= op(a) @ op(b), op transposing when
flagged; a dense layer needs three of them (all arrays 2-D, out preallocated):
    forward   out = x @ W          product(x, W, out, False, False, False)
    dW        dW = x.T @ dout      product(x, dout, dW, True, False, False)
    dx        dx (+)= dout @ W.T   product(dout, W, dx, False, True, acc)

lab/_blas.py explains why numpy's BLAS (it is faster here, with identical results) and
how it is found.  The CBLAS entry points are registered with LLVM under fixed names, so
compiled kernels call them by name and still load from numba's cache; which BLAS was
found is part of the cache key.  Arrays that are not C-contiguous (only ever passed by
callers outside the engine) take a plain loop.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

from lab._blas import find_cblas

from ._jit import flag, jit
from .vmath import is_single

_CBLAS = None if numba.config.DISABLE_JIT else find_cblas()
USING_CBLAS = _CBLAS is not None

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112

if USING_CBLAS:
    import llvmlite.binding as llvm

    llvm.add_symbol("nnlab_cblas_sgemm", _CBLAS.sgemm)
    llvm.add_symbol("nnlab_cblas_dgemm", _CBLAS.dgemm)

    def _signature(real):  # ILP64 cblas_?gemm; pointers passed as 64-bit integers (same ABI)
        i32, i64 = types.int32, types.int64
        return types.void(i32, i32, i32, i64, i64, i64, real, i64, i64, i64, i64, real, i64, i64)

    _sgemm = types.ExternalFunction("nnlab_cblas_sgemm", _signature(types.float32))
    _dgemm = types.ExternalFunction("nnlab_cblas_dgemm", _signature(types.float64))


@jit
def _plain_product(a, b, out, trans_a, trans_b, acc):
    """out (+)= op(a) @ op(b) by plain loops, for views BLAS cannot take (never in training).

    With CBLAS found, this stands in for np.dot there: compiling numba's np.dot costs
    seconds on the first run, for a path the engine never takes.
    """
    m, n = out.shape
    k = a.shape[0] if trans_a else a.shape[1]
    for i in range(m):
        for j in range(n):
            s = 0.0
            for p in range(k):
                s += (a[p, i] if trans_a else a[i, p]) * (b[j, p] if trans_b else b[p, j])
            out[i, j] = out[i, j] + s if acc else s


@jit
def _dot_product(a, b, out, trans_a, trans_b, acc):
    """The same with numba's np.dot (SciPy's BLAS), when numpy's CBLAS was not found."""
    if trans_a:
        r = np.dot(a.T, b)
    elif trans_b:
        r = np.dot(a, b.T)
    else:
        r = np.dot(a, b)
    if acc:
        out += r
    else:
        out[:, :] = r


@jit
def _c_contiguous(x):
    return x.strides[1] == x.itemsize and x.strides[0] == x.shape[1] * x.itemsize


@jit
def product(a, b, out, trans_a, trans_b, acc):
    """out = op(a) @ op(b), or out += it when acc; op(x) = x.T when its flag is set.

    Empty inner dimensions are handled here (BLAS rejects a leading dimension of 0).
    """
    m, n = out.shape
    k = a.shape[0] if trans_a else a.shape[1]
    if out.size == 0:
        return
    if k == 0:
        if not acc:
            out[:, :] = 0.0
        return
    if USING_CBLAS:
        if _c_contiguous(a) and _c_contiguous(b) and _c_contiguous(out):
            ta = _TRANS if trans_a else _NO_TRANS
            tb = _TRANS if trans_b else _NO_TRANS
            # row-major: the leading dimension of a stored matrix is its number of columns
            if is_single(out):
                _sgemm(_ROW_MAJOR, ta, tb, m, n, k, np.float32(1.0), a.ctypes.data, a.shape[1],
                       b.ctypes.data, b.shape[1], np.float32(1.0 if acc else 0.0), out.ctypes.data, n)
            else:
                _dgemm(_ROW_MAJOR, ta, tb, m, n, k, 1.0, a.ctypes.data, a.shape[1],
                       b.ctypes.data, b.shape[1], 1.0 if acc else 0.0, out.ctypes.data, n)
        else:
            _plain_product(a, b, out, trans_a, trans_b, acc)
    else:
        _dot_product(a, b, out, trans_a, trans_b, acc)


# A product out = a @ b.T with few rows in `a` (a dense layer's dx = dout @ W.T at batch <= 32)
# runs 1.4-1.9x faster in OpenBLAS written the other way round, out.T = b @ a.T, into a scratch
# buffer transposed back (measured on one thread: batch 16 at 1024 units, 783 -> 459 us; batch
# 8 at 256, 36 -> 21 us); at 64 rows or more, or under 256 columns, it is level or slower.
# Which way a product is computed depends on its shape alone: the same bits every run.
NT_TRANSPOSED_MAX_ROWS = 32
NT_TRANSPOSED_MIN_COLS = 256


@jit
def product_nt(a, b, out, acc, scratch):
    """out (+)= a @ b.T, through out.T = b @ a.T in `scratch` (at least out.size long) when
    `a` has few rows (see above)."""
    m, n = out.shape
    k = a.shape[1]
    if not (USING_CBLAS and 0 < m <= NT_TRANSPOSED_MAX_ROWS and n >= NT_TRANSPOSED_MIN_COLS and k > 0
            and scratch.size >= m * n and _c_contiguous(a) and _c_contiguous(b) and _c_contiguous(out)):
        product(a, b, out, flag(False), flag(True), acc)
        return
    if is_single(out):
        _sgemm(_ROW_MAJOR, _NO_TRANS, _TRANS, n, m, k, np.float32(1.0), b.ctypes.data, k,
               a.ctypes.data, k, np.float32(0.0), scratch.ctypes.data, m)
    else:
        _dgemm(_ROW_MAJOR, _NO_TRANS, _TRANS, n, m, k, 1.0, b.ctypes.data, k, a.ctypes.data, k, 0.0,
               scratch.ctypes.data, m)
    for i in range(m):
        for j in range(n):
            v = scratch[j * m + i]
            out[i, j] = out[i, j] + v if acc else v
