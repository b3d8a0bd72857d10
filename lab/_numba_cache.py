"""Where numba keeps compiled kernels, keyed on the kernels' source.

numba re-validates a cached function only against its own source file, but a compiled
driver (network.train_steps) contains the kernels it calls from other files: after an
edit to optim.py, or an upgrade of nnlab, the cached driver would go on running the old
optimizer.  So the cache lives in a directory named after a hash of every kernel file
(and numba's version): any change starts a fresh cache.  The directory is per user
(``$XDG_CACHE_HOME/nnlab/numba/<hash>``), which also makes read-only installs work.
``NUMBA_CACHE_DIR`` set by the user wins.  This must run before the first
``@njit(cache=True)`` decorator, which is why every kernel module imports it first.
"""

from __future__ import annotations

import hashlib
import os
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

_KERNELS = Path(__file__).resolve().parent / "engine" / "kernels"


def user_cache_dir() -> Path:
    """The base directory of compiled kernels."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nnlab" / "numba"


def kernels_fingerprint() -> str:
    """A hash of every kernel source file, the BLAS the kernels call, and the numba version."""
    digest = hashlib.sha256()
    for path in sorted(_KERNELS.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    from lab._blas import blas_tag  # compiled kernels call the BLAS found here by name

    digest.update(blas_tag().encode())
    try:
        digest.update(version("numba").encode())
    except PackageNotFoundError:  # numba importable without metadata (a source tree): key on that
        digest.update(b"numba-version-unknown")
    return digest.hexdigest()[:16]


def configure() -> str:
    """Set numba's cache directory (unless the user did); return it."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return os.environ["NUMBA_CACHE_DIR"]
    path = user_cache_dir() / kernels_fingerprint()
    path.mkdir(parents=True, exist_ok=True)
    os.environ["NUMBA_CACHE_DIR"] = str(path)
    if "numba" in sys.modules:  # numba already read its config: tell it too
        import numba

        numba.config.CACHE_DIR = str(path)
    return str(path)


CACHE_DIR = configure()
