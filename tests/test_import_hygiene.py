"""The engine, simulation, scenario and data layers never import the UI (DESIGN.md: data flows one way)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEADLESS = ["lab", "lab.engine.network", "lab.engine.trainer", "lab.sim", "lab.scenario", "lab.data",
            "lab.report.table", "lab.sim.session", "lab.files"]


@pytest.mark.parametrize("module", HEADLESS)
def test_headless_module_does_not_import_textual(module):
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'plotext')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"{module} pulled in {out.stdout.strip()}"


def test_scenario_loading_does_not_import_the_engine():
    """The browser lists and describes scenarios before numba has loaded (first screen < 1 s)."""
    code = ("import sys, lab, lab.scenario, lab.scenario.catalog; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'numba' or m.startswith('lab.engine')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
