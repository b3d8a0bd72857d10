"""The engine, simulation, scenario and data layers never import the UI (DESIGN.md: data flows one way)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HEADLESS = ["lab", "lab.engine.network", "lab.engine.trainer", "lab.sim", "lab.scenario", "lab.data",
            "lab.report.table", "lab.sim.session", "lab.files", "lab.search.engine", "lab.search.report"]


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


# -- the kernel cache is set up when a kernel first runs, never at import ---------------------------

def _clean_env(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(XDG_CACHE_HOME=str(tmp_path / "xdg"), HOME=str(tmp_path / "home"),
               PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    return env


@pytest.mark.parametrize("statement", [
    "import lab",
    "import lab.scenario, lab.scenario.catalog; lab.scenario.catalog.bundled()",
    # the kernel modules themselves: decorated, not yet compiled or loaded
    "import lab.sim, lab.engine.trainer, lab.sim.stats; lab.Simulation",
])
def test_importing_lab_touches_no_cache_and_sets_no_numba_variable(tmp_path, statement):
    code = ("import os, sys\nbefore = dict(os.environ)\n" + statement + "\n"
            "print(sorted(k for k in set(os.environ) | set(before) if os.environ.get(k) != before.get(k)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_clean_env(tmp_path),
                         cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"{statement} changed the environment: {out.stdout}"
    assert out.stderr == ""
    assert not (tmp_path / "xdg").exists() and not (tmp_path / "home").exists(), f"{statement} made a cache folder"


ENTRY_MODULES = {  # module: what it must not load (it has no kernel to run at import)
    "lab.cli": ("numba", "lab._blas", "lab._numba_cache", "scipy", "textual", "lab.engine.network"),
    "lab.report": ("numba", "lab._blas", "lab._numba_cache", "scipy", "textual", "lab.engine.network"),
    "lab.sim.expectations": ("textual",),  # it runs scenarios: the engine is its business
}


@pytest.mark.parametrize("module", sorted(ENTRY_MODULES))
def test_entry_modules_import_without_side_effects(tmp_path, module):
    """Importing the CLI, the report writers or the checker writes no file, sets no variable,
    caps no BLAS threads and loads no more than it needs."""
    code = ("import os, sys\nbefore = dict(os.environ)\n"
            f"import {module}\n"
            "changed = sorted(k for k in set(os.environ) | set(before) if os.environ.get(k) != before.get(k))\n"
            f"loaded = sorted(m for m in {ENTRY_MODULES[module]!r} if m in sys.modules)\n"
            "capped = 'lab.engine.threads' in sys.modules and sys.modules['lab.engine.threads']._limiter is not None\n"
            "print(changed, loaded, capped)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_clean_env(tmp_path),
                         cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[] [] False", f"import {module}: changed variables, loaded modules, capped BLAS"
    assert out.stderr == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == [], f"import {module} created files"


def test_a_simulation_leaves_the_blas_thread_count_to_the_entry_points(tmp_path):
    """Simulation.__init__ caps no BLAS threads for the whole process: the CLI, the app and the
    check workers do (lab.engine.threads.limit_blas_threads)."""
    code = ("from threadpoolctl import threadpool_info\n"
            "from lab import Simulation, Scenario\n"
            "sc = Scenario.model_validate({'data': {'n': 40}, 'model': {'hidden': [4]}, 'train': {'steps': 2}})\n"
            "before = [i['num_threads'] for i in threadpool_info() if i.get('user_api') == 'blas']\n"
            "Simulation(sc).step(2)\n"
            "after = [i['num_threads'] for i in threadpool_info() if i.get('user_api') == 'blas']\n"
            "import sys; print(before == after[:len(before)], 'lab.engine.threads' in sys.modules)")
    env = {k: v for k, v in _clean_env(tmp_path).items() if not k.endswith("_NUM_THREADS")}
    env.pop("XDG_CACHE_HOME")  # the kernels load from the usual cache
    env.pop("HOME")
    env["HOME"] = str(Path.home())
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True False"


def test_lab_import_loads_no_blas_and_no_numba():
    code = "import sys, lab; print(sorted(m for m in ('numba', 'lab._blas', 'lab._numba_cache') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("command", [["schema"], ["list"]])
@pytest.mark.parametrize("home", ["fresh", "unwritable"])
def test_commands_without_kernels_never_touch_the_cache(tmp_path, command, home):
    env = _clean_env(tmp_path)
    if home == "unwritable":  # a file where the folder would go: even root cannot create it
        (tmp_path / "blocker").write_text("")
        env["XDG_CACHE_HOME"] = str(tmp_path / "blocker" / "xdg")
    out = subprocess.run([sys.executable, "-m", "lab", *command], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # no notice about a cache it has no use for
    assert not (tmp_path / "xdg").exists()


# -- views read only what the worker publishes (DESIGN.md: Views read Snapshots) --------------------

WIDGETS = sorted((Path(__file__).resolve().parents[1] / "lab" / "tui" / "widgets").glob("*.py"))
FORBIDDEN_MODULES = ("lab.sim.simulation", "lab.tui.runner", "lab.tui.lockstep", "lab.engine.network",
                     "lab.engine.trainer", "lab.engine.kernels")


@pytest.mark.parametrize("path", WIDGETS, ids=lambda p: p.name)
def test_widgets_never_import_or_touch_the_simulation(path):
    """A widget draws a Snapshot (or what was published beside it, lab.sim.context): it
    imports no Simulation, runner or engine, and reaches for no `.sim` or `.network`."""
    import ast

    tree = ast.parse(path.read_text(), str(path))
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module.startswith(FORBIDDEN_MODULES):
                problems.append(f"line {node.lineno}: from {module} import ...")
            if any(alias.name == "Simulation" for alias in node.names):
                problems.append(f"line {node.lineno}: imports Simulation")
        elif isinstance(node, ast.Import):
            problems += [f"line {node.lineno}: import {a.name}" for a in node.names
                         if a.name.startswith(FORBIDDEN_MODULES)]
        elif isinstance(node, ast.Attribute) and node.attr in ("sim", "sims", "network", "decision_grid", "lr_at",
                                                               "user_changes", "_overrides"):
            problems.append(f"line {node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Name) and node.id == "Simulation":
            problems.append(f"line {node.lineno}: Simulation")
    assert not problems, f"{path.name} reaches past the Snapshot: {problems}"


def test_the_widget_check_would_catch_a_simulation_read(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from lab.sim import Simulation\n\ndef draw(screen):\n    return screen.runner.sim.decision_grid(4, 4)\n")
    with pytest.raises(AssertionError, match="reaches past"):
        test_widgets_never_import_or_touch_the_simulation(bad)
