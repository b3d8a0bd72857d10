"""The memory estimate (lab/scenario/budget.py): it counts what the engine lays out, agrees with the
modules it mirrors, is checked by every way in (loader, Simulation, on-the-fly changes), and is
never below the memory a run really uses (peak RSS, measured in a subprocess)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lab.errors import ScenarioError
from lab.scenario import budget as B
from lab.scenario.load import load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = sorted((ROOT / "scenarios").glob("*/*.toml"))


# -- the layout is the engine's, without importing it in the loader --------------------------------------------

def _architectures(count: int):
    rng = random.Random(7)
    for _ in range(count):
        residual = rng.random() < 0.25
        width = rng.choice([1, 3, 16, 37])
        hidden = (width,) * rng.choice([3, 5]) if residual else tuple(rng.choice([1, 5, 16, 33])
                                                                     for _ in range(rng.randint(1, 4)))
        yield dict(input_dim=rng.choice([1, 2, 64, 300]), classes=rng.choice([2, 3, 10]), hidden=hidden,
                   activation=rng.choice(["relu", "maxout", "prelu", "tanh"]), maxout_k=rng.choice([2, 3, 8]),
                   batchnorm=rng.random() < 0.4, dropout=rng.choice([0.0, 0.3]), dropconnect=rng.choice([0.0, 0.5]),
                   residual=residual)


@pytest.mark.parametrize("kw", list(_architectures(60)))
def test_layout_matches_the_engines_plan_and_op_tables(kw):
    from lab.engine.architecture import Architecture, build_plan, op_tables

    plan = build_plan(Architecture(**kw))
    lay = B.layout(**kw)
    assert lay.n_params == plan.n_params and lay.n_state == plan.n_state
    assert lay.node_units == sum(plan.node_widths)
    assert lay.max_weight == max(p.size for p in plan.params if p.role == "W")
    for batch in (1, 7, 64):
        _, _, aux, iaux = op_tables(plan, batch)
        assert aux == lay.aux_fixed + lay.aux_per_row * batch
        assert iaux == lay.iaux_per_row * batch


def test_the_constants_are_the_modules():
    import inspect

    from lab.data.dataset import load_data
    from lab.engine.trainer import Trainer
    from lab.sim import history, simulation, stats
    from lab.sim.simulation import Simulation

    assert B.HISTORY_CAPACITY == inspect.signature(Simulation.__init__).parameters["history_capacity"].default
    assert B.VAL_CAPACITY == inspect.signature(history.History.__init__).parameters["val_capacity"].default
    assert B.HISTORY_STEP_SERIES == len(history.STEP_SERIES) + len(history.TRACE_SERIES)
    assert B.HISTORY_VAL_SERIES == len(history.VAL_SERIES)
    assert B.EVAL_CHUNK == inspect.signature(Trainer.evaluate).parameters["chunk"].default
    assert B.PROBE_MAX == stats.PROBE_MAX and B.STATS_SAMPLE == stats.MAX_HISTOGRAM_VALUES
    assert B.SIMILARITY_UNITS == stats.MAX_SIMILARITY_UNITS
    assert B.GRID_ROWS == simulation.GRID_CHUNK and B.MAX_CHUNK == simulation.MAX_CHUNK
    assert B.REBUILD_KEYS == simulation.ARCH_KEYS | {"preprocess"}
    assert B.TIMELINE_CAPACITY == history.TIMELINE_CAPACITY
    from lab.sim.bins import SYMLOG_BINS, WIDE_ACT_BINS

    assert B.TIMELINE_BINS == WIDE_ACT_BINS.count + 3 * SYMLOG_BINS.count
    for kind, features in B.REAL_FEATURES.items():
        d = load_data(kind, n=10_000, val_fraction=0.0)
        assert (d.X_train.shape[1], d.X_train.shape[0], d.n_classes) == (features, B.REAL_ROWS[kind],
                                                                          B.REAL_CLASSES[kind])
    for kind in B.TWO_CLASS_KINDS:
        assert load_data(kind, n=20, classes=5).n_classes == 2


# -- the budget -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, size", [("2G", 2 * 2**30), ("512M", 512 * 2**20), ("1.5GiB", int(1.5 * 2**30)),
                                        ("300k", 300 * 2**10), ("123456", 123456), ("2 gb", 2 * 2**30),
                                        ("50%", 500)])
def test_parse_size(text, size):
    assert B.parse_size(text, available=1000) == size


@pytest.mark.parametrize("text", ["lots", "-1G", "2X", "%", "10%GB"])
def test_a_malformed_budget_is_a_message_not_a_traceback(text, monkeypatch):
    monkeypatch.setenv("NNLAB_MEMORY_BUDGET", text)
    with pytest.raises(ScenarioError) as info:
        parse_scenario({"model": {"hidden": [4]}}, "x.toml")
    assert "NNLAB_MEMORY_BUDGET=" in str(info.value) and "2G, 512M or 75%" in str(info.value)


def test_the_default_budget_is_half_of_what_is_available(monkeypatch):
    monkeypatch.delenv("NNLAB_MEMORY_BUDGET", raising=False)
    available = B.available_memory()
    budget = B.memory_budget()
    if available is None or B._address_space_room() is not None:
        pytest.skip("no /proc/meminfo, or under a ulimit -v")
    assert abs(budget.nbytes - available // 2) <= 0.05 * available  # it moves while we read it
    assert "available now" in budget.source and "NNLAB_MEMORY_BUDGET" in budget.source


def test_every_bundled_scenario_fits_in_1_gib():
    """So the curriculum checks on a small CI machine (the estimate counts every run side by side)."""
    gib = B.Budget(2**30, "1 GiB")
    for path in BUNDLED:
        os.environ["NNLAB_MEMORY_BUDGET"] = "1T"  # load without the machine's budget, then hold to 1 GiB
        try:
            sc = load_scenario(path)
        finally:
            del os.environ["NNLAB_MEMORY_BUDGET"]
        assert B.memory_problems(sc, gib) == [], path


# -- every way in refuses the same way ------------------------------------------------------------------------

BIG = {"data": {"kind": "random-normal", "n": 20000, "dim": 2000}, "model": {"hidden": [16]}}


def test_the_api_refuses_before_allocating(monkeypatch):
    from lab import Scenario, Simulation

    monkeypatch.setenv("NNLAB_MEMORY_BUDGET", "1T")
    sc = Scenario.model_validate(BIG)  # the model itself checks the fields, not the machine
    monkeypatch.setenv("NNLAB_MEMORY_BUDGET", "64M")
    with pytest.raises(ScenarioError) as info:
        Simulation(sc)
    assert "memory: the run needs about" in str(info.value) and "shrink data.n or data.dim" in str(info.value)
    with pytest.raises(ScenarioError) as info:
        parse_scenario(BIG, "big.toml")
    assert "memory: the base run needs about" in str(info.value)


def test_an_on_the_fly_change_that_would_not_fit_is_refused(monkeypatch):
    from lab import Scenario, Simulation

    monkeypatch.setenv("NNLAB_MEMORY_BUDGET", "150M")
    sc = Scenario.model_validate({"data": {"kind": "random-normal", "n": 3000, "dim": 1500},
                                  "model": {"hidden": [16]}, "train": {"steps": 100}})
    sim = Simulation(sc)
    sim.step(3)
    with pytest.raises(ScenarioError) as info:
        sim.set(preprocess=["whiten"])  # an SVD of 2,400 x 1,500 beside the data held
    assert "preprocess" in str(info.value) and "this change" in str(info.value)
    assert sim.current.data.preprocess == [] and sim.step(2) == 2  # the run goes on as it was


# -- the estimate against the memory a run really uses ----------------------------------------------------------

MEASURE = r"""
import json, os, sys
from lab.scenario.load import parse_scenario
from lab.scenario.budget import estimate
from lab import Simulation
from lab.sim.expectations import check

def status(key):
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key + ":"))

raw = json.loads(sys.argv[1])
warm = Simulation(parse_scenario({"data": {"kind": raw["data"]["kind"], "n": 60}, "model": {"hidden": [4]},
                                  "train": {"steps": 2, "batch_size": 8}}))
warm.step(2); warm.snapshot(); del warm
base = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) starts again from here
sc = parse_scenario(raw)
check(sc)
print(json.dumps({"used": status("VmHWM") - base, "estimate": max(r.peak for r in estimate(sc))}))
"""

CASES = {  # each needs 100-400 MB: big enough to measure, small enough for CI
    "data and whiten": {"data": {"kind": "random-normal", "n": 4000, "dim": 1500, "preprocess": ["whiten"]},
                        "model": {"hidden": [32]}, "train": {"steps": 20}},
    "wide network, adam": {"data": {"kind": "spiral"}, "model": {"hidden": [3000, 3000]},
                           "train": {"optimizer": "adam", "steps": 5, "batch_size": 256}},
}


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc")
@pytest.mark.parametrize("name", sorted(CASES))
def test_the_estimate_is_never_below_the_peak_rss_and_not_far_above(name):
    raw = {**CASES[name], "expect": [{"metric": "loss", "op": ">", "value": 0.0},
                                     {"metric": "act_std", "layer": 1, "op": ">", "value": 0.0}]}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NNLAB_MEMORY_BUDGET": "4G"}
    out = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(raw)], capture_output=True, text=True,
                         timeout=300, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["used"] > 80 * 2**20, r  # the case measures something
    assert r["used"] <= r["estimate"] <= 2 * r["used"], {k: f"{v / 2**20:.0f} MiB" for k, v in r.items()}


# -- what `nnlab check` keeps is what the estimate counts --------------------------------------------------------

def test_the_record_of_a_claim_is_counted():
    from lab.sim.expectations import check, needs_of, record, variant_scenarios

    sc = parse_scenario({"model": {"hidden": [8]}, "train": {"steps": 300, "eval_every": 1},
                         "expect": [{"metric": "loss", "by": 300, "op": "<", "value": 9.0},
                                    {"metric": "dead_fraction", "layer": 1, "throughout": True, "op": "<=",
                                     "value": 1.0}]}, "x.toml")
    needs = needs_of(sc)["base"]
    rec = record("base", variant_scenarios(sc)["base"], needs, until=needs.until)
    kept = sum(v.nbytes for v in rec.history.values()) + sum(v.nbytes for v in rec.layer_values.values()) \
        + np.asarray(rec.checkpoints).nbytes
    assert kept <= B.expectation_bytes(sc, "base") <= 2 * kept + 1000
    assert all(r.passed for r in check(sc))
