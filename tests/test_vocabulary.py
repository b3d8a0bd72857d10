"""The vocabulary (lab/vocabulary.py) is declared once: every name is a string literal there
and nowhere else under lab/, the kernels' code tables agree with it, the docs list it, and a
new entry reaches the schema, the key cycles, the tables and the docs by itself."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lab import vocabulary as V

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / "lab"

KINDS = {"activation": V.ACTIVATIONS, "init": V.INITS, "optimizer": V.OPTIMIZERS, "schedule": V.SCHEDULES,
         "dropout mode": V.DROPOUT_MODES, "loss": V.LOSSES, "preprocessing step": V.PREPROCESSING,
         "data kind": V.DATA_KINDS, "per-layer metric": [m for m in V.METRICS if m.per_layer]}

# Names that are also ordinary words of the lab, where the literal means that other thing.
HOMONYMS = {
    "step": "the step counter: a history series, a CSV column, a worker command, a key's label",
    "momentum": "the train.momentum hyperparameter (a settings key); also the optimizer of the CLI's default "
                "scenario (lab/cli.py DEFAULT_SCENARIO), which is data",
}
# (name, file): a literal that means something else there
ALLOWED = {
    ("digits", "lab/scenario/load.py"): "a word of int()'s error message ('Exceeds the limit (4300 digits)')",
}


def _literals(path: Path) -> list[tuple[str, int]]:
    """Every string constant of a module except docstrings, with its line."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [(node.value, node.lineno) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_each_name_is_a_literal_only_in_the_vocabulary():
    names = {e.name: kind for kind, entries in KINDS.items() for e in entries}
    found = []
    for path in sorted(LAB.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel == "lab/vocabulary.py":
            continue
        for value, line in _literals(path):
            if value in names and value not in HOMONYMS and (value, rel) not in ALLOWED:
                found.append(f"{rel}:{line}: {names[value]} {value!r}")
    assert not found, "vocabulary names written outside lab/vocabulary.py:\n" + "\n".join(found)


def test_names_are_unique_within_a_kind_and_codes_distinct():
    for kind, entries in KINDS.items():
        names = V.names(entries)
        assert len(set(names)) == len(names), kind
        codes = [e.code for e in entries if hasattr(e, "code")]
        assert len(set(codes)) == len(codes), kind
    assert all(sum(getattr(e, "default", False) for e in entries) == 1
               for entries in (V.ACTIVATIONS, V.INITS, V.OPTIMIZERS, V.SCHEDULES, V.DROPOUT_MODES, V.LOSSES,
                               V.DATA_KINDS))


def _constant(name: str) -> str:
    return name.upper().replace("-", "_")


@pytest.mark.parametrize("module,entries,table", [
    ("activations", V.ACTIVATIONS, "ACTIVATION_CODES"),
    ("optim", V.OPTIMIZERS, "OPTIMIZER_CODES"),
    ("losses", V.LOSSES, "LOSS_CODES"),
    ("regularizers", V.DROPOUT_MODES, "DROPOUT_MODES"),
])
def test_kernel_code_tables_agree(module, entries, table):
    """The kernels' int constants (what the njit code compares against) are the vocabulary's codes."""
    import importlib

    mod = importlib.import_module(f"lab.engine.kernels.{module}")
    assert getattr(mod, table) == {e.name: e.code for e in entries}
    for e in entries:
        assert getattr(mod, _constant(e.name)) == e.code, e.name


def test_activation_dispatch_covers_the_vocabulary():
    """activation_forward/backward branch on every elementwise activation's constant (identity is
    their `else`, maxout has its own pair): adding an activation adds exactly one branch to each."""
    from lab.engine.kernels import activations as A

    for fn in (A.activation_forward, A.activation_backward):
        source = inspect.getsource(fn.py_func)
        branched = set(re.findall(r"code == ([A-Z_]+)", source))
        assert branched == {_constant(a.name) for a in V.ACTIVATIONS if not a.pieces and a.name != "identity"}


def test_engine_implements_every_init_and_schedule():
    from lab.engine import init, schedules

    assert set(init.STD) == set(V.names(V.INITS))
    assert set(schedules.DECAY) == set(V.names(V.SCHEDULES))


def test_docs_tables_are_the_vocabularys():
    text = (ROOT / "docs" / "network.md").read_text()
    for heading, table in V.docs_tables().items():
        assert table in text, f"docs/network.md's {heading} table differs from lab/vocabulary.py: expected\n{table}"


def _comment_block(text: str, key: str) -> str:
    """The comments after `key = ...` in docs/scenarios.md's annotated example, continuation lines included."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{key} ="))
    block = [lines[start].split("#", 1)[1] if "#" in lines[start] else ""]
    for line in lines[start + 1:]:
        if not line.lstrip().startswith("#"):
            break
        block.append(line.split("#", 1)[1])
    return " ".join(block)


@pytest.mark.parametrize("key,entries", [
    ("kind", V.DATA_KINDS), ("preprocess", V.PREPROCESSING), ("activation", V.public_activations()),
    ("init", V.INITS), ("dropout_mode", V.DROPOUT_MODES), ("loss", V.LOSSES), ("optimizer", V.OPTIMIZERS),
    ("schedule", V.SCHEDULES),
])
def test_scenario_docs_list_every_name(key, entries):
    block = _comment_block((ROOT / "docs" / "scenarios.md").read_text(), key)
    words = re.findall(r"[a-z_-]+", block)
    listed = [w for w in words if w in V.names(entries)]
    assert list(dict.fromkeys(listed)) == list(V.names(entries)), block


def test_derived_tables():
    from lab import metrics
    from lab.engine.kernels import activations as A
    from lab.report import export, table
    from lab.scenario.schema import json_schema
    from lab.sim.snapshot import LayerStats
    from lab.tui import controls

    assert metrics.LAYER_METRICS == V.layer_metrics()
    assert set(V.layer_metrics()) <= {f.name for f in dataclasses.fields(LayerStats)}  # each one is computed
    assert export.LAYER_COLUMNS[4:] == V.layer_metrics()
    assert export.COLUMNS[1:] == tuple(m.name for m in V.METRICS if m.csv and not m.per_layer)
    assert [c.metric for c in table.LAYER_COLUMNS if c.metric] == [m.name for m in V.table_metrics()]
    assert set(controls.ACTIVATIONS) == {a.name for a in V.ACTIVATIONS if a.key is not None}
    assert "identity" in A.ACTIVATION_CODES and "identity" not in controls.ACTIVATIONS
    enum = json_schema()["$defs"]["ModelSpec"]["properties"]["activation"]["enum"]
    assert enum == list(V.names(V.public_activations()))


NEW_ACTIVATION = textwrap.dedent("""
    import json, sys
    from lab import vocabulary as V

    # the one entry a new activation needs (and its kernel pair: see below)
    V.register(V.Activation("swish", 10, "z*sigmoid(z)", "smooth, non-monotonic", key=9))
    V.register(V.Metric("act_max", True, "largest activation", header="max", column=9, fmt="{:.2g}", width=6, drop=0))

    from lab.engine.kernels import activations as A
    from lab.metrics import parse_metric
    from lab.report import export, table
    from lab.scenario.schema import Scenario, json_schema
    from lab.sim.bins import activation_bins
    from lab.tui import controls, keys

    schema = json_schema()
    sc = Scenario.model_validate({"model": {"activation": "swish"}})
    out = {
        "schema": schema["$defs"]["ModelSpec"]["properties"]["activation"]["enum"],
        "validated": sc.model.activation,
        "cycle": controls.change_for("next_activation", {"activation": "sigmoid"}),
        "code": A.ACTIVATION_CODES["swish"],
        "bins": [activation_bins("swish").lo, activation_bins("swish").hi],
        "docs": V.docs_tables()["activations"],
        "table": list(table.COLUMNS),
        "csv": list(export.LAYER_COLUMNS),
        "metric": parse_metric("act_max").per_layer,
        "drop": list(table.DROP_ORDER),
    }
    json.dump(out, sys.stdout)
""")


def _swish_forward(z):
    s = 1.0 / (1.0 + np.exp(-z))
    return z * s, s


def _swish_backward(dout, z, s):
    return dout * (s + z * s * (1.0 - s))


def test_a_new_activation_and_metric_need_one_entry_each():
    """Registering one entry makes an activation (and a per-layer metric) appear in the schema, the
    `a` key's cycle, the kernel code table, the histogram bins, the docs' table, the per-layer table and
    the CSV.  The njit dispatch (activation_forward/backward) is compiled from module constants, so the
    one thing left is its kernel pair: one `elif code == SWISH` branch in each, here a numpy pair whose
    gradient is checked the way every kernel's is."""
    done = subprocess.run([sys.executable, "-c", NEW_ACTIVATION], capture_output=True, text=True, cwd=ROOT,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["schema"][-1] == "swish" and out["validated"] == "swish"
    assert out["cycle"] == {"activation": "swish"}  # after sigmoid, the last of the cycle before it
    assert out["code"] == 10
    assert out["bins"] == [-5.0, 5.0]
    assert "| swish | z*sigmoid(z) | smooth, non-monotonic |" in out["docs"]
    assert out["table"][-1] == "max" and out["csv"][-1] == "act_max" and out["metric"] is True
    assert out["drop"][:3] == ["params", "units", "max"]  # drop 0: right after the columns dropped first
    # the kernel pair, checked against centred differences
    from tests.gradcheck import eval_numerical_gradient, rel_error

    rng = np.random.default_rng(0)
    z = rng.standard_normal((4, 5))
    dout = rng.standard_normal((4, 5))
    _, s = _swish_forward(z)
    num = eval_numerical_gradient(lambda x: float(np.sum(_swish_forward(x)[0] * dout)), z.copy())
    assert rel_error(_swish_backward(dout, z, s), num) < 1e-7



