"""The wheel ships every lab subpackage and the bundled curriculum."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "lab").rglob("__init__.py")}
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert "lab.scenarios" in listed


@pytest.mark.slow
@pytest.mark.cold
def test_wheel_contains_the_scenarios(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w",
                          str(tmp_path), str(REPO)], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {out.stderr[-300:]}")
    wheel = next(tmp_path.glob("nnlab-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    bundled = {f"lab/scenarios/{p.relative_to(REPO / 'scenarios').as_posix()}" for p in (REPO / "scenarios").rglob("*.toml")}
    assert bundled and bundled <= names
    assert "lab/engine/kernels/network.py" in names
