"""Where numba keeps compiled kernels: a directory keyed on the kernels' source, set up on
first use, repaired when an entry is corrupt, never silently swapped for another.

Keyed.  numba re-validates a cached function only against its own source file, but a
compiled driver (network.train_steps) contains the kernels it calls from other files:
after an edit to optim.py, or an upgrade of nnlab, the cached driver would go on running
the old optimizer.  So every kernel is cached in a directory named after a hash of every
kernel file, the BLAS they call, numba's version and this module's file format
(`kernels_fingerprint()`): ``$XDG_CACHE_HOME/nnlab/numba/<hash>`` (``~/.cache/...``), or
``$NUMBA_CACHE_DIR/nnlab-<hash>`` when the user set NUMBA_CACHE_DIR.  The kernels get this
directory from their own cache locator (`cached`), not from numba's global CACHE_DIR, so
numba's fallbacks (``__pycache__`` beside the source, ``~/.cache/numba``: neither keyed)
are never used.

Lazy.  Nothing happens at import: not at ``import lab``, not when the kernel modules are
imported.  The first kernel that compiles or loads sets the cache up (`cache_dir()`), so
``nnlab schema``, ``nnlab list`` and the scenario browser never touch it, and no
environment variable is set.

Robust.  A directory that cannot be created or written (a read-only home, a full disk, a
read-only NUMBA_CACHE_DIR) gives way to a private temporary cache, removed at exit, with a
one-line notice on stderr.  Every file this module writes carries a SHA-256 of its content:
an entry that does not verify or does not load (truncated, overwritten, a flipped bit in
the machine code) is discarded with a one-line notice and the kernel recompiles; it never
crashes the run or loads damaged code.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import pickle
import shutil
import sys
import tempfile
import threading
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

_KERNELS = Path(__file__).resolve().parent / "engine" / "kernels"
FORMAT = b"nnlab-numba-cache-2"  # the checksummed file layout below; part of the key
_DIGEST = hashlib.sha256().digest_size


def user_cache_dir() -> Path:
    """The per-user base directory of compiled kernels (the keyed directories live in it)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nnlab" / "numba"


def kernels_fingerprint() -> str:
    """A hash of every kernel source file, the BLAS the kernels call, numba's version and the
    cache's file format."""
    digest = hashlib.sha256(FORMAT)
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


def keyed_dir(fingerprint: str | None = None) -> Path:
    """The directory the kernels of this source tree belong in (not created here)."""
    fingerprint = fingerprint or kernels_fingerprint()
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"]) / f"nnlab-{fingerprint}"
    return user_cache_dir() / fingerprint


_said: set[str] = set()


def notice(message: str, once: str | None = None) -> None:
    """One line on stderr (never raises: stderr may be closed); with `once`, only the first
    notice of that kind in this process."""
    if once is not None:
        if once in _said:
            return
        _said.add(once)
    try:
        print(f"nnlab: {message}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


_lock = threading.RLock()
_root: Path | None = None
_ready = False


def _writable(path: Path) -> None:
    """Create path and prove a file can be written in it; raise OSError otherwise."""
    path.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=path):
        pass


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def cache_dir() -> Path | None:
    """The directory compiled kernels are stored in, set up on the first call.

    The keyed directory if it can be written; else a private temporary one (removed at
    exit, a notice on stderr); None (no caching, a notice) if not even that can be made.
    """
    global _root, _ready
    with _lock:
        if not _ready:
            _root = _choose()
            _ready = True
        return _root


def _choose() -> Path | None:
    wanted = keyed_dir()
    try:
        _writable(wanted)
        return wanted
    except OSError as exc:
        problem = f"cannot write the kernel cache {wanted} ({_reason(exc)})"
    try:
        tmp = Path(tempfile.mkdtemp(prefix="nnlab-numba-"))
    except OSError as exc:
        notice(f"{problem}, nor a temporary one ({_reason(exc)}): kernels compile on every run")
        return None
    atexit.register(shutil.rmtree, tmp, True)
    notice(f"{problem}: using a temporary cache for this run; kernels compile again next time "
           "(set XDG_CACHE_HOME or NUMBA_CACHE_DIR to a writable folder)")
    return tmp


def __getattr__(name: str):
    if name == "CACHE_DIR":  # the old module constant, now computed on first use
        root = cache_dir()
        return None if root is None else str(root)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- numba's cache, pointed at the keyed directory and checksummed ---------------------------------
# Built on numba.core.caching (FunctionCache, IndexDataCacheFile): numba's own cache with
# a different locator and file layout.  The classes are made on first use, so importing
# this module does not import numba.

_classes = None


def _cache_classes():
    global _classes
    if _classes is not None:
        return _classes
    from numba.core import caching, config, serialize

    class KeyedLocator(caching._SourceFileBackedLocatorMixin, caching._CacheLocator):
        """Every kernel's entries in cache_dir() (per source folder, as numba lays them out)."""

        def __init__(self, py_func, py_file):
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            self._cache_path = os.path.join(cache_dir(), self.get_suitable_cache_subpath(py_file))

        def get_cache_path(self):
            return self._cache_path

        @classmethod
        def from_function(cls, py_func, py_file):
            if cache_dir() is None:
                return None
            return super().from_function(py_func, py_file)

    class CheckedFile(caching.IndexDataCacheFile):
        """numba's index + data files, each with the SHA-256 of its content in front."""

        def _dump(self, obj):
            data = serialize.dumps(obj)
            return hashlib.sha256(data).digest() + data

        @staticmethod
        def _verified(blob: bytes, path: str) -> bytes:
            digest, data = blob[:_DIGEST], blob[_DIGEST:]
            if len(blob) < _DIGEST or hashlib.sha256(data).digest() != digest:
                raise CorruptEntry(f"{os.path.basename(path)}: checksum mismatch")
            return data

        @staticmethod
        def _unpickled(blob: bytes, path: str):
            try:
                return pickle.loads(blob)
            except Exception as exc:  # noqa: BLE001 - a verified file that does not load is corrupt too
                raise CorruptEntry(f"{os.path.basename(path)}: {type(exc).__name__}") from exc

        def _load_index(self):
            try:
                with open(self._index_path, "rb") as f:
                    try:
                        version_ = pickle.load(f)  # numba's version, in front of the checksummed part
                    except Exception as exc:  # noqa: BLE001
                        raise CorruptEntry(f"{self._index_name}: {type(exc).__name__}") from exc
                    blob = f.read()
            except FileNotFoundError:
                return {}
            if version_ != self._version:
                return {}  # another numba's entry: overwritten when this one saves
            stamp, overloads = self._unpickled(self._verified(blob, self._index_path), self._index_path)
            if stamp != self._source_stamp:
                return {}  # the function's file changed: its stale entries are overwritten
            return overloads

        def _load_data(self, name):
            path = self._data_path(name)
            with open(path, "rb") as f:
                blob = f.read()
            return self._unpickled(self._verified(blob, path), path)

        def discard(self) -> None:
            """Remove the function's index and every data file of it."""
            base = self._index_name[:-len(".nbi")]
            folder = Path(self._cache_path)
            for path in [folder / self._index_name, *folder.glob(f"{base}.*.nbc")]:
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass

    class KeyedImpl(caching.CompileResultCacheImpl):
        _locator_classes = [KeyedLocator]

        def __init__(self, py_func):
            # NUMBA_CACHE_LOCATOR_CLASSES would replace the list: the lab's kernels ignore it
            saved = getattr(config, "CACHE_LOCATOR_CLASSES", None)
            config.CACHE_LOCATOR_CLASSES = None
            try:
                super().__init__(py_func)
            finally:
                config.CACHE_LOCATOR_CLASSES = saved

    class KeyedCache(caching.FunctionCache):
        _impl_class = KeyedImpl

        def __init__(self, py_func):
            super().__init__(py_func)
            self._cache_file = CheckedFile(self._cache_path, self._impl.filename_base,
                                           self._impl.locator.get_source_stamp())

        def load_overload(self, sig, target_context):
            try:
                return super().load_overload(sig, target_context)
            except Exception as exc:  # noqa: BLE001 - whatever a bad entry raises, recompile
                self._cache_file.discard()
                what = str(exc) if isinstance(exc, CorruptEntry) else f"{type(exc).__name__}: {exc}"
                notice(f"discarded a corrupt kernel cache entry ({self._impl.filename_base.split('-')[0]}: "
                       f"{what}); recompiling it")
                return None

        def save_overload(self, sig, data):
            try:
                super().save_overload(sig, data)
            except Exception as exc:  # noqa: BLE001 - the kernel works; it is only not cached
                why = _reason(exc) if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
                notice(f"cannot save compiled kernels in {self._cache_path} ({why}): they compile again "
                       "next run", once="save")

    class LazyCache(caching._Cache):
        """Stands in for numba's cache until the kernel is first compiled or loaded, so that
        decorating (importing the kernel modules) creates no directory."""

        def __init__(self, py_func):
            self._py_func = py_func
            self._real = None
            self._enabled = True

        def _cache(self):
            if self._real is None:
                try:
                    self._real = KeyedCache(self._py_func) if cache_dir() is not None else caching.NullCache()
                except RuntimeError:  # no locator: the folder could not be made since cache_dir() could
                    notice(f"cannot use the kernel cache {cache_dir()}: kernels compile on every run", once="use")
                    self._real = caching.NullCache()
                if not self._enabled:
                    self._real.disable()
            return self._real

        @property
        def cache_path(self):
            return self._cache().cache_path

        def load_overload(self, sig, target_context):
            return self._cache().load_overload(sig, target_context)

        def save_overload(self, sig, data):
            self._cache().save_overload(sig, data)

        def enable(self):
            self._enabled = True
            if self._real is not None:
                self._real.enable()

        def disable(self):
            self._enabled = False
            if self._real is not None:
                self._real.disable()

        def flush(self):
            self._cache().flush()

    _classes = {"LazyCache": LazyCache, "KeyedCache": KeyedCache}
    return _classes


class CorruptEntry(Exception):
    """A cache file whose checksum does not match its content."""


def cached(decorator):
    """Wrap a numba decorator made *without* cache=True so that its kernels are cached in
    the keyed directory: `jit = cached(numba.njit(nogil=True))`."""

    def decorate(fn):
        dispatcher = decorator(fn)
        if hasattr(dispatcher, "_cache") and hasattr(dispatcher, "py_func"):  # not under NUMBA_DISABLE_JIT
            dispatcher._cache = _cache_classes()["LazyCache"](dispatcher.py_func)
        return dispatcher

    return decorate
