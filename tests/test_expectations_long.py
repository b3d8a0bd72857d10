"""Claims about runs longer than the history's ring (the last 50,000 steps): `nnlab check` keeps
what they read outside it, so the answers do not depend on the ring's size.

The ring is shrunk to 100 steps here (Simulation's history_capacity), so a 600-step run has lost
its first 500 steps from the history, as a 1,000,000-step run loses its first 950,000."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from lab.scenario.load import parse_scenario
from lab.sim import expectations
from lab.sim.expectations import check, trailing_mean
from lab.sim.simulation import Simulation

CLAIMS = [
    {"metric": "loss", "at": "initial", "op": ">", "value": 0.5},  # 0.056 instead of ~1.1, before
    {"metric": "steps_to(train_acc >= 0.6)", "op": "<", "value": 1000},  # 1e4 instead of 6, before
    {"metric": "loss", "by": 50, "op": "<", "value": 0.9},
    {"metric": "loss", "reduce": "max", "op": ">", "value": 0.0},
    {"metric": "loss", "smooth": 20, "at": 30, "op": ">", "value": 0.0},
    {"metric": "train_acc", "throughout": True, "op": ">=", "value": 0.0},
    {"metric": "val_acc", "at": "initial", "op": "<", "value": 0.9},
    {"metric": "val_loss", "reduce": "min", "op": "<", "value": 5.0},
    {"metric": "act_std", "layer": 1, "at": 20, "op": ">", "value": 0.0},
    {"metric": "loss", "ratio_over": "slow", "reduce": "mean", "op": "<", "value": 2.0},
    {"metric": "loss", "difference_over": "slow", "at": 7, "op": "<", "value": 1.0},
]


def _scenario():
    return parse_scenario({"data": {"n": 200}, "model": {"hidden": [16]},
                           "train": {"optimizer": "momentum", "batch_size": 32, "steps": 600, "eval_every": 5},
                           "variants": [{"name": "slow", "set": {"lr": 0.01}}], "expect": CLAIMS}, "long.toml")


def test_claims_past_the_ring_read_the_whole_run(monkeypatch):
    sc = _scenario()
    whole = [(r.actual, r.passed) for r in check(sc)]
    monkeypatch.setitem(Simulation.__init__.__kwdefaults__, "history_capacity", 100)
    sim = Simulation(sc)
    sim.run_to(600)
    assert sim.history.arrays()["step"][0] == 501  # the ring really lost the start
    windowed = [(r.actual, r.passed) for r in check(sc)]
    assert windowed == whole
    assert whole[0][0] > 0.5 and whole[1][0] < 600


def test_checkpoints_do_not_pile_up_python_objects():
    """A checkpoint at every step used to add a dict of every layer metric (3.3 MB/s on a long run);
    now each claim keeps 8 bytes a checkpoint, in arrays sized before the run."""
    def traced_peak(steps: int) -> int:
        sc = parse_scenario({"data": {"n": 100}, "model": {"hidden": [4]},
                             "train": {"steps": steps, "eval_every": 1},
                             "expect": [{"metric": "dead_fraction", "layer": 1, "throughout": True, "op": "<=",
                                         "value": 1.0}]}, "x.toml")
        Simulation(sc).snapshot()  # warm: kernels, scratch buffers
        tracemalloc.start()
        try:
            check(sc)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    short, long = traced_peak(200), traced_peak(1200)
    assert long - short < 1000 * 8 * 8 + 200_000, (short, long)  # ~8 arrays x 8 B per extra checkpoint, and slack


def test_a_long_wide_moving_average_is_linear_and_agrees_with_the_convolution():
    rng = np.random.default_rng(0)
    values = rng.standard_normal(20_000).cumsum()
    direct = trailing_mean(values, 2_000)  # 4e7 <= the convolution's limit
    big = np.concatenate([values, values])  # past it: the running sum
    running = trailing_mean(big, 2_000)[: values.size]
    np.testing.assert_allclose(running, direct, rtol=1e-9, atol=1e-9)
    assert trailing_mean(values, 1) is values


@pytest.mark.parametrize("op", ["<", "<=", ">", ">=", "==", "!="])
def test_compare_all_agrees_with_compare(op):
    values = np.array([0.0, 1.0, 2.0, np.nan, np.inf, -np.inf, 1.0 + 1e-12])
    assert expectations.compare_all(values, op, 1.0, 1e-9).tolist() == [
        expectations.compare(float(v), op, 1.0, 1e-9) for v in values]
