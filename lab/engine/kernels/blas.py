"""Matrix products for the dense kernels: numpy's CBLAS when found, numba's np.dot otherwise.

Three shapes, the three a dense layer needs (all arrays 2-D, out preallocated):
    matmul(a, b, out)            out = a @ b          forward
    matmul_tn(a, b, out)         out = a.T @ b        dW = x.T @ dout
    matmul_nt(a, b, out, acc)    out (+)= a @ b.T     dx = dout @ W.T (added to out when acc)

lab/_blas.py explains why numpy's BLAS (it is faster here, with identical results) and
how it is found.  The CBLAS entry points are registered with LLVM under fixed names, so
compiled kernels call them by name and still load from numba's cache; which BLAS was
found is part of the cache key.  Arrays that are not C-contiguous (only ever passed by
callers outside the engine) take np.dot.
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
    def _c_contiguous(x):
        return x.strides[1] == x.itemsize and x.strides[0] == x.shape[1] * x.itemsize

    @jit
    def _gemm(trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, out):
        """out = op(a) @ op(b) + beta*out, row-major; m, n, k > 0."""
        if is_single(out):
            _sgemm(_ROW_MAJOR, trans_a, trans_b, m, n, k, np.float32(1.0), a.ctypes.data, lda,
                   b.ctypes.data, ldb, np.float32(beta), out.ctypes.data, n)
        else:
            _dgemm(_ROW_MAJOR, trans_a, trans_b, m, n, k, 1.0, a.ctypes.data, lda,
                   b.ctypes.data, ldb, beta, out.ctypes.data, n)

    @jit
    def matmul(a, b, out):
        m, k = a.shape
        if out.size == 0:
            return
        if k == 0:
            out[:, :] = 0.0
        elif _c_contiguous(a) and _c_contiguous(b) and _c_contiguous(out):
            _gemm(_NO_TRANS, _NO_TRANS, m, out.shape[1], k, a, k, b, b.shape[1], 0.0, out)
        else:
            out[:, :] = np.dot(a, b)

    @jit
    def matmul_tn(a, b, out):
        k, m = a.shape
        if out.size == 0:
            return
        if k == 0:
            out[:, :] = 0.0
        elif _c_contiguous(a) and _c_contiguous(b) and _c_contiguous(out):
            _gemm(_TRANS, _NO_TRANS, m, out.shape[1], k, a, m, b, b.shape[1], 0.0, out)
        else:
            out[:, :] = np.dot(a.T, b)

    @jit
    def matmul_nt(a, b, out, acc):
        m, k = a.shape
        if out.size == 0:
            return
        if k == 0:
            if not acc:
                out[:, :] = 0.0
        elif _c_contiguous(a) and _c_contiguous(b) and _c_contiguous(out):
            _gemm(_NO_TRANS, _TRANS, m, out.shape[1], k, a, k, b, k, 1.0 if acc else 0.0, out)
        elif acc:
            out += np.dot(a, b.T)
        else:
            out[:, :] = np.dot(a, b.T)

else:

    @jit
    def matmul(a, b, out):
        if a.shape[1] > 0:
            np.dot(a, b, out)
        else:
            out[:, :] = 0.0

    @jit
    def matmul_tn(a, b, out):
        if a.shape[0] > 0:
            np.dot(a.T, b, out)
        else:
            out[:, :] = 0.0

    @jit
    def matmul_nt(a, b, out, acc):
        if a.shape[1] == 0:
            if not acc:
                out[:, :] = 0.0
        elif acc:
            out += np.dot(a, b.T)
        else:
            np.dot(a, b.T, out)
