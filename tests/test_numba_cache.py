"""Kernels compile once and load from numba's on-disk cache afterwards, also from a
read-only install; the cache is keyed on the kernels' source, so an edit starts afresh."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

PROBE = r"""
import json, numpy as np
import lab, lab._numba_cache as cache
from lab.engine.architecture import Architecture
from lab.engine.network import Network
from lab.engine.trainer import Trainer
from lab.engine.optim import OptimizerConfig
from lab.engine.kernels import network as K
net = Network(Architecture(2, 3, (8,)), np.float32)
net.initialize("kaiming", np.random.default_rng(0))
X = np.random.default_rng(1).standard_normal((32, 2)); y = np.arange(32) % 3
Trainer(net, X, y, 8, OptimizerConfig("sgd"), np.random.default_rng(2)).run(np.full(3, 0.1))
print(json.dumps({"cache_dir": cache.CACHE_DIR, "lab": lab.__file__,
                  "hits": sum(K.train_steps.stats.cache_hits.values()),
                  "misses": sum(K.train_steps.stats.cache_misses.values())}))
"""


def _readonly_runner(root: Path) -> list[str] | None:
    """A command prefix that runs a shell with `root` mounted read-only, if this machine allows it."""
    if shutil.which("unshare") and hasattr(os, "geteuid") and os.geteuid() == 0:
        probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind -o ro {root} {root}"],
                               capture_output=True)
        if probe.returncode == 0:
            return ["unshare", "-m", "sh", "-c", f'mount --bind -o ro {root} {root} && exec "$@"', "sh"]
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        for path in [root, *root.rglob("*")]:  # a non-root user cannot write where w bits are off
            path.chmod(path.stat().st_mode & ~0o222)
        return []
    return None


@pytest.mark.slow
@pytest.mark.cold
def test_readonly_install_compiles_once_into_the_user_cache(tmp_path):
    pkg_root = tmp_path / "site"
    shutil.copytree(REPO / "lab", pkg_root / "lab", ignore=shutil.ignore_patterns("__pycache__"))
    user_cache = tmp_path / "cache"
    runner = _readonly_runner(pkg_root)
    if runner is None:
        pytest.skip("cannot make a read-only directory here (root without mount namespaces)")
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "NUMBA_DISABLE_JIT")}
    env.update(PYTHONPATH=str(pkg_root), XDG_CACHE_HOME=str(user_cache), PYTHONDONTWRITEBYTECODE="1")

    def run() -> dict:
        out = subprocess.run([*runner, sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                             cwd=tmp_path, timeout=600)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.strip().splitlines()[-1])

    first = run()
    assert first["lab"].startswith(str(pkg_root)), "the probe must import the read-only copy"
    assert Path(first["cache_dir"]).parent == user_cache / "nnlab" / "numba"  # .../<hash of the kernels>
    assert first["misses"] > 0 and first["hits"] == 0  # compiled: nothing was cached yet
    assert list(user_cache.rglob("*.nbi")), "compiled kernels must be stored in the user cache"
    assert not list(pkg_root.rglob("*.nbi")), "nothing may be written into the read-only package"
    second = run()
    assert second["hits"] > 0 and second["misses"] == 0  # loaded, not recompiled


def test_the_cache_directory_changes_when_a_kernel_changes(tmp_path):
    """A driver's cached machine code contains the kernels it calls from other files, so any
    kernel edit must start a fresh cache (numba alone only checks each function's own file)."""
    pkg = tmp_path / "site"
    shutil.copytree(REPO / "lab", pkg / "lab", ignore=shutil.ignore_patterns("__pycache__"))
    code = "import lab._numba_cache as c; print(c.kernels_fingerprint())"
    env = {**os.environ, "PYTHONPATH": str(pkg)}
    env.pop("NUMBA_CACHE_DIR", None)

    def fingerprint() -> str:
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                              check=True, cwd=tmp_path).stdout.strip()

    before = fingerprint()
    optim = pkg / "lab" / "engine" / "kernels" / "optim.py"
    optim.write_text(optim.read_text() + "\n# an edit\n")
    assert fingerprint() != before


def test_the_cache_directory_depends_on_the_blas_the_kernels_call():
    # kernels compiled against numpy's CBLAS must never load where np.dot is used instead
    from lab._blas import find_cblas

    if find_cblas() is None:
        pytest.skip("numpy without its bundled CBLAS: the kernels use np.dot either way")
    code = "from lab._numba_cache import kernels_fingerprint; print(kernels_fingerprint())"

    def fingerprint(**env):
        full = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "NNLAB_BLAS")}
        done = subprocess.run([sys.executable, "-c", code], env={**full, **env}, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert fingerprint(NNLAB_BLAS="numba") != fingerprint(NNLAB_BLAS="")
    assert fingerprint(NNLAB_BLAS="numba") == fingerprint(NNLAB_BLAS="numba")


# -- robustness, on a tiny stand-in kernel module (compiles in a fraction of a second) ----------------

STAND_IN = '''
import numba
from lab._numba_cache import cached

jit = cached(numba.njit(nogil=True))


@jit
def axpy(a, x, y):
    return a * x + y
'''

STAND_IN_PROBE = r"""
import json, sys
import stand_in
import lab._numba_cache as cache
assert stand_in.axpy(2.0, 3.0, 1.0) == 7.0
stats = stand_in.axpy.stats
print(json.dumps({"cache_dir": cache.CACHE_DIR, "cache_path": stats.cache_path,
                  "hits": sum(stats.cache_hits.values()), "misses": sum(stats.cache_misses.values())}))
"""


def _stand_in(tmp_path: Path, **env_changes) -> tuple[dict, list[str]]:
    """Run the stand-in kernel in a fresh process; return (its report, its stderr lines)."""
    (tmp_path / "stand_in.py").write_text(STAND_IN)
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "NUMBA_DISABLE_JIT", "XDG_CACHE_HOME")}
    env.update(PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]), HOME=str(tmp_path / "home"),
               PYTHONDONTWRITEBYTECODE="1")
    env.update({k: str(v) for k, v in env_changes.items()})
    out = subprocess.run([sys.executable, "-c", STAND_IN_PROBE], env=env, capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1]), [line for line in out.stderr.splitlines() if line]


def _nowhere_else(tmp_path: Path) -> None:
    """numba's own fallbacks, neither keyed on the kernels: __pycache__ beside the source and
    the user-wide ~/.cache/numba (HOME is tmp_path/home in these runs)."""
    stray = [p for p in [*tmp_path.glob("__pycache__/*.nb*"), *(tmp_path / "home").rglob("*.nb*")]]
    assert not stray, f"compiled code outside the keyed cache: {stray}"


def test_the_stand_in_compiles_once_into_the_keyed_directory(tmp_path):
    home = tmp_path / "xdg"
    first, notes = _stand_in(tmp_path, XDG_CACHE_HOME=home)
    assert first["misses"] == 1 and first["hits"] == 0 and notes == []
    keyed = Path(first["cache_dir"])
    assert keyed.parent == home / "nnlab" / "numba" and Path(first["cache_path"]).parent == keyed
    second, notes = _stand_in(tmp_path, XDG_CACHE_HOME=home)
    assert second["hits"] == 1 and second["misses"] == 0 and notes == []
    _nowhere_else(tmp_path)


def test_numba_cache_dir_is_keyed_too(tmp_path):
    report, notes = _stand_in(tmp_path, NUMBA_CACHE_DIR=tmp_path / "numba-cache")
    assert Path(report["cache_dir"]).parent == tmp_path / "numba-cache"
    assert Path(report["cache_dir"]).name.startswith("nnlab-") and notes == []
    assert list((tmp_path / "numba-cache").rglob("*.nbi"))


@pytest.mark.parametrize("variable", ["XDG_CACHE_HOME", "NUMBA_CACHE_DIR"])
def test_an_unwritable_cache_falls_back_to_a_private_temporary_one(tmp_path, variable):
    """A cache folder that cannot be made (here: its parent is a file, which stops root too)
    gives a temporary cache for the run, one line saying so, and no unkeyed fallback."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    report, notes = _stand_in(tmp_path, **{variable: blocker / "cache"})
    assert report["misses"] == 1
    assert len(notes) == 1 and notes[0].startswith("nnlab: cannot write the kernel cache ")
    assert "temporary cache" in notes[0]
    temporary = Path(report["cache_dir"])
    assert temporary.name.startswith("nnlab-numba-") and blocker not in temporary.parents
    assert not temporary.exists(), "the temporary cache must be removed at exit"
    _nowhere_else(tmp_path)


def test_a_corrupt_cache_entry_is_discarded_and_recompiled(tmp_path):
    home = tmp_path / "xdg"
    first, _ = _stand_in(tmp_path, XDG_CACHE_HOME=home)
    folder = Path(first["cache_path"])
    (index,) = folder.glob("stand_in.axpy-*.nbi")
    (data,) = folder.glob("stand_in.axpy-*.nbc")

    def flip_a_byte(path: Path) -> None:  # in the middle: the machine code, which pickle does not check
        blob = bytearray(path.read_bytes())
        blob[len(blob) // 2] ^= 0x55
        path.write_bytes(bytes(blob))

    damages = {"index overwritten": lambda: index.write_bytes(b"not a pickle at all"),
               "data truncated": lambda: data.write_bytes(data.read_bytes()[: data.stat().st_size // 3]),
               "a bit flipped in the data": lambda: flip_a_byte(data)}
    for damage, do in damages.items():
        do()
        report, notes = _stand_in(tmp_path, XDG_CACHE_HOME=home)
        assert report["misses"] == 1 and report["hits"] == 0, damage  # recompiled, not loaded
        assert len(notes) == 1 and notes[0].startswith("nnlab: discarded a corrupt kernel cache entry (stand_in.axpy"), \
            (damage, notes)
        again, notes = _stand_in(tmp_path, XDG_CACHE_HOME=home)
        assert again["hits"] == 1 and again["misses"] == 0 and notes == [], damage  # repaired for good
