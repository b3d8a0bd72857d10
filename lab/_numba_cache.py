"""Make numba's on-disk cache work for read-only installs.

numba stores compiled kernels in ``__pycache__`` beside the source.  When the package
lives somewhere the user cannot write (a system or a read-only site-packages), numba
would recompile every run, so we point ``NUMBA_CACHE_DIR`` at a per-user cache
directory instead.  This must happen before the first ``@njit(cache=True)`` decorator
runs, which is why every kernel module imports this module first.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def user_cache_dir() -> Path:
    """Where compiled kernels go when the package directory is read-only."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nnlab" / "numba"


def _package_is_writable() -> bool:
    probe = _PACKAGE_DIR / "engine" / "kernels" / "__pycache__"
    target = probe if probe.exists() else probe.parent
    return os.access(target, os.W_OK)


def configure() -> str | None:
    """Set the cache directory if needed; return the directory chosen (None = beside source)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return os.environ["NUMBA_CACHE_DIR"]
    if _package_is_writable():
        return None
    path = user_cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    os.environ["NUMBA_CACHE_DIR"] = str(path)
    if "numba" in sys.modules:  # numba already read its config: tell it too
        import numba

        numba.config.CACHE_DIR = str(path)
    return str(path)


CACHE_DIR = configure()
