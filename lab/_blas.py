"""Find numpy's own CBLAS, so compiled kernels can call the BLAS numpy uses.

numba's np.dot calls SciPy's copy of OpenBLAS (through scipy.linalg.cython_blas).  numpy
wheels bundle a second, ILP64 build, and on this lab's machines it is the faster one:
measured single-threaded, float32, same results bit for bit,

    16x1024 @ 1024x1024   350 us (numpy's)  vs  567 us (numba's np.dot)
    16x4096 @ 4096x4096   7.5 ms            vs  9.7 ms
    64x100  @ 100x100     11.8 us           vs  13.7 us

So the dense kernels call numpy's `cblas_sgemm` / `cblas_dgemm` when they can find them
(kernels/blas.py), and numba's np.dot otherwise.  This module only looks (ctypes, no
numba), because the choice is part of the kernel cache key (lab/_numba_cache.py): code
compiled against one BLAS must never be loaded against another.

NNLAB_BLAS=numba forces numba's np.dot (for comparisons, or a BLAS that misbehaves).
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

# numpy >= 2 wheels: scipy-openblas, ILP64, symbols prefixed "scipy_" and suffixed "64_"
_SYMBOLS = (("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_"),)
_PATTERNS = ("*openblas64*.so*", "*openblas64*.dylib", "*openblas64*.dll")


@dataclass(frozen=True)
class Cblas:
    path: str
    sgemm: int  # function addresses
    dgemm: int

    @property
    def tag(self) -> str:
        return f"cblas-ilp64:{Path(self.path).name}"


def _candidates() -> list[Path]:
    import numpy

    root = Path(numpy.__file__).resolve().parent
    dirs = [root.parent / "numpy.libs", root / ".dylibs"]  # Linux and Windows wheels; macOS wheels
    out: list[Path] = []
    for d in dirs:
        if d.is_dir():
            for pattern in _PATTERNS:
                out.extend(sorted(d.glob(pattern)))
    return out


@lru_cache(maxsize=1)
def find_cblas() -> Cblas | None:
    """numpy's bundled ILP64 CBLAS gemm entry points, or None (then kernels use np.dot)."""
    if os.environ.get("NNLAB_BLAS", "").lower() == "numba":
        return None
    for path in _candidates():
        try:
            lib = ctypes.CDLL(str(path))
        except OSError:
            continue
        for s_name, d_name in _SYMBOLS:
            try:
                s_fn, d_fn = getattr(lib, s_name), getattr(lib, d_name)
            except AttributeError:
                continue
            return Cblas(str(path), ctypes.cast(s_fn, ctypes.c_void_p).value,
                         ctypes.cast(d_fn, ctypes.c_void_p).value)
    return None


def blas_tag() -> str:
    """Which GEMM the kernels call: part of the numba cache key."""
    found = find_cblas()
    return found.tag if found is not None else "numba-np.dot"
