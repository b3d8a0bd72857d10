"""The one headless runner (lab/sim/run.py): the same bits as stepping by hand, however it is
chunked; checkpoints at their steps and at a divergence; series kept whole past the history's
ring; progress, stopping early and cancellation."""

from __future__ import annotations

import numpy as np
import pytest

from lab.engine.trainer import Cancelled
from lab.scenario.schema import Scenario
from lab.sim import Simulation
from lab.sim.run import run


def scenario(train=None, model=None) -> Scenario:
    return Scenario.model_validate({"scenario": {"name": "run"}, "data": {"n": 200},
                                    "model": {"hidden": [16], "dropout": 0.2, **(model or {})},
                                    "train": {"steps": 120, "eval_every": 25, **(train or {})}})


DIVERGING = {"model": {"loss": "mse", "activation": "tanh"}, "train": {"lr": 100.0, "eval_every": 1000}}


def by_hand(sc: Scenario, steps: int) -> Simulation:
    sim = Simulation(sc)
    sim.step(steps)
    return sim


def assert_same(a: Simulation, b: Simulation) -> None:
    ha, hb = a.history.arrays(), b.history.arrays()
    for name in ("step", "loss", "train_acc", "grad_norm", "lr"):
        np.testing.assert_array_equal(ha[name], hb[name], err_msg=name)
    np.testing.assert_array_equal(a.network.params, b.network.params)
    assert a.step_count == b.step_count


@pytest.mark.parametrize("chunk", [None, 1, 7])
def test_a_run_is_the_run_stepped_by_hand(chunk):
    sc = scenario()
    assert_same(run(sc, 90, chunk=chunk).sim, by_hand(sc, 90))


def test_the_default_end_is_the_scenarios_and_a_simulation_goes_on_from_its_step():
    sc = scenario()
    done = run(sc)
    assert done.step == 120 and done.start == 0 and not done.stopped
    sim = by_hand(sc, 40)
    later = run(sim, 100)  # a step number: 60 more
    assert later.sim is sim and later.start == 40 and sim.step_count == 100
    assert_same(sim, by_hand(sc, 100))
    assert run(sim, 50).step == 100  # already past it: nothing runs


def test_checkpoints_come_at_their_steps_evaluated_and_in_order():
    seen = []

    def look(sim):
        h = sim.history.series
        seen.append((sim.step_count, h["val_step"].last()))

    run(scenario(), 100, checkpoints=[0, 10, 10, 5, 30, 100, 200], on_checkpoint=look)
    # repeated and out-of-order steps once each; past the end none
    assert seen == [(0, 0.0), (10, 10.0), (30, 30.0), (100, 100.0)]


def test_checkpoints_do_not_change_the_run():
    sc = scenario()
    assert_same(run(sc, 90, checkpoints=range(0, 91, 3), on_checkpoint=lambda sim: sim.snapshot()).sim,
                by_hand(sc, 90))


def test_a_diverging_run_stops_and_is_checkpointed_where_it_diverged():
    seen = []
    done = run(scenario(**DIVERGING), 200, checkpoints=[0, 150], on_checkpoint=lambda sim: seen.append(sim.step_count))
    assert done.diverged and done.step == done.diverged_at < 150
    assert seen == [0, done.diverged_at]


def test_series_are_kept_whole_past_the_ring(monkeypatch):
    sc = scenario(train={"steps": 700})
    whole = run(sc, 700, keep=("loss", "grad_norm"))
    monkeypatch.setitem(Simulation.__init__.__kwdefaults__, "history_capacity", 100)
    windowed = run(sc, 700, keep=("loss", "grad_norm"))
    assert windowed.sim.history.arrays()["step"][0] == 601  # the ring lost the start
    np.testing.assert_array_equal(windowed.steps(), np.arange(1, 701))
    for key in ("loss", "grad_norm"):
        assert windowed.series[key].size == 700
        np.testing.assert_array_equal(windowed.series[key], whole.series[key])
    np.testing.assert_array_equal(whole.series["loss"][-100:], windowed.sim.history.arrays()["loss"])


def test_a_callback_may_end_the_run():
    calls = []

    def progress(sim):
        calls.append(sim.step_count)
        return sim.step_count >= 30

    done = run(scenario(), 120, chunk=10, on_progress=progress)
    assert done.stopped and done.step == 30 and calls == [10, 20, 30]
    early = run(scenario(), 120, checkpoints=[0, 50, 100], on_checkpoint=lambda sim: sim.step_count == 50)
    assert early.stopped and early.step == 50


@pytest.mark.parametrize("target", ["scenario", "simulation"])
def test_cancelled_raises_between_pieces(target):
    sc = scenario(train={"steps": 10_000})
    asked = []

    def cancelled():
        asked.append(1)
        return len(asked) > 3

    with pytest.raises(Cancelled):
        run(sc if target == "scenario" else Simulation(sc), chunk=5, cancelled=cancelled)
