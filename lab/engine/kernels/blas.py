"""Matrix products for the dense kernels: numpy's CBLAS when found, numba's np.dot otherwise.

Three shapes, the three a dense layer needs (all arrays 2-D, out preallocated):
    matmul(a, b, out)            out = a @ b          forward
    matmul_tn(a, b, out)         out = a.T @ b        dW = x.T @ dout
    matmul_nt(a, b, out, acc)    out (+)= a @ b.T     dx = dout @ W.T (added to out when acc)

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

from ._jit import jit
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


# Each product is one function with no array-passing calls inside: every array crossing
# a call boundary costs an atomic reference-count increment and decrement (one more
# helper layer here made a 50 us training step of the small network 3 us slower).
# Empty inner dimensions are handled first (BLAS rejects a leading dimension of 0);
# views that are not C-contiguous take plain loops (np.dot when CBLAS was not found).
@jit
def matmul(a, b, out):
    m, k = a.shape
    n = out.shape[1]
    size = a.itemsize
    if out.size == 0:
        return
    if k == 0:
        out[:, :] = 0.0
    elif (a.strides[1] == size and a.strides[0] == k * size and b.strides[1] == size
          and b.strides[0] == n * size and out.strides[1] == size and out.strides[0] == n * size):
        if not USING_CBLAS:
            np.dot(a, b, out)
        elif is_single(out):
            _sgemm(_ROW_MAJOR, _NO_TRANS, _NO_TRANS, m, n, k, np.float32(1.0), a.ctypes.data, k,
                   b.ctypes.data, n, np.float32(0.0), out.ctypes.data, n)
        else:
            _dgemm(_ROW_MAJOR, _NO_TRANS, _NO_TRANS, m, n, k, 1.0, a.ctypes.data, k,
                   b.ctypes.data, n, 0.0, out.ctypes.data, n)
    elif USING_CBLAS:
        _plain_product(a, b, out, False, False, False)
    else:
        out[:, :] = np.dot(a, b)


@jit
def matmul_tn(a, b, out):
    k, m = a.shape
    n = out.shape[1]
    size = a.itemsize
    if out.size == 0:
        return
    if k == 0:
        out[:, :] = 0.0
    elif (a.strides[1] == size and a.strides[0] == m * size and b.strides[1] == size
          and b.strides[0] == n * size and out.strides[1] == size and out.strides[0] == n * size):
        if not USING_CBLAS:
            np.dot(a.T, b, out)
        elif is_single(out):
            _sgemm(_ROW_MAJOR, _TRANS, _NO_TRANS, m, n, k, np.float32(1.0), a.ctypes.data, m,
                   b.ctypes.data, n, np.float32(0.0), out.ctypes.data, n)
        else:
            _dgemm(_ROW_MAJOR, _TRANS, _NO_TRANS, m, n, k, 1.0, a.ctypes.data, m,
                   b.ctypes.data, n, 0.0, out.ctypes.data, n)
    elif USING_CBLAS:
        _plain_product(a, b, out, True, False, False)
    else:
        out[:, :] = np.dot(a.T, b)


@jit
def matmul_nt(a, b, out, acc):
    m, k = a.shape
    n = out.shape[1]
    size = a.itemsize
    if out.size == 0:
        return
    if k == 0:
        if not acc:
            out[:, :] = 0.0
    elif (a.strides[1] == size and a.strides[0] == k * size and b.strides[1] == size
          and b.strides[0] == k * size and out.strides[1] == size and out.strides[0] == n * size):
        if not USING_CBLAS:
            if acc:
                out += np.dot(a, b.T)
            else:
                np.dot(a, b.T, out)
        elif is_single(out):
            _sgemm(_ROW_MAJOR, _NO_TRANS, _TRANS, m, n, k, np.float32(1.0), a.ctypes.data, k,
                   b.ctypes.data, k, np.float32(1.0 if acc else 0.0), out.ctypes.data, n)
        else:
            _dgemm(_ROW_MAJOR, _NO_TRANS, _TRANS, m, n, k, 1.0, a.ctypes.data, k,
                   b.ctypes.data, k, 1.0 if acc else 0.0, out.ctypes.data, n)
    elif USING_CBLAS:
        _plain_product(a, b, out, False, True, acc)
    elif acc:
        out += np.dot(a, b.T)
    else:
        out[:, :] = np.dot(a, b.T)
