"""Large-batch training: the batch size as an on-the-fly control (keys x / X, Simulation.set,
an event a saved session replays, the memory estimate), and expectations that pair runs of
different batch sizes at equal epochs (align = "epoch")."""

from __future__ import annotations

import numpy as np
import pytest

from lab.errors import ScenarioError
from lab.scenario.load import load_scenario
from lab.scenario.schema import Expectation, Scenario
from lab.sim.expectations import Recording, evaluate
from lab.sim.run import run as run_headless
from lab.sim.simulation import Simulation
from lab.tui.controls import change_for
from tests.test_tui import SIZE, cli_app, run, run_screen, tiny, until


def test_batch_keys_double_and_halve_within_the_training_rows():
    s = {"batch_size": 64, "train_rows": 160}
    assert change_for("batch_up", s) == {"batch_size": 128}
    assert change_for("batch_up", {**s, "batch_size": 128}) == {"batch_size": 160}  # at most the rows
    assert change_for("batch_up", {**s, "batch_size": 160}) == {}  # nothing left to change
    assert change_for("batch_down", s) == {"batch_size": 32}
    assert change_for("batch_down", {**s, "batch_size": 1}) == {}
    assert change_for("batch_down", {**s, "batch_size": 5000}) == {"batch_size": 80}  # from the rows it uses


def _sc(**train):
    return Scenario.model_validate({"data": {"kind": "spiral", "n": 300}, "model": {"hidden": [16]},
                                    "train": {"steps": 80, "eval_every": 20, "batch_size": 16, **train}})


def test_a_batch_change_is_an_event_that_a_saved_session_replays_bit_for_bit():
    sim = Simulation(_sc())
    sim.step(30)
    sim.set(batch_size=64)
    assert sim.trainer.batch_size == 64 and sim.snapshot().settings["batch_size"] == 64
    assert sim.events[-1].changes == {"batch_size": 64} and sim.events[-1].step == 30
    sim.step(50)
    assert sim.examples_seen == 30 * 16 + 50 * 64
    replay = run_headless(sim.scenario_with_events(), keep=("loss",))
    live = sim.snapshot().history
    np.testing.assert_array_equal(replay.series["loss"], live["loss"])
    np.testing.assert_array_equal(replay.sim.snapshot().history["val_loss"], live["val_loss"])


def test_a_batch_the_memory_budget_cannot_hold_is_refused(monkeypatch):
    sim = Simulation(Scenario.model_validate({"data": {"kind": "random-normal", "n": 60000, "dim": 4},
                                              "model": {"hidden": [4096]}, "train": {"batch_size": 8}}))
    monkeypatch.setenv("NNLAB_MEMORY_BUDGET", "200M")
    with pytest.raises(ScenarioError) as info:
        sim.set(batch_size=65536)
    assert "batch_size" in str(info.value)
    assert sim.trainer.batch_size == 8 and not [e for e in sim.events if e.source == "user"]


def test_the_x_key_doubles_the_batch_in_the_lab(tmp_path):
    async def body():
        app = cli_app(tiny(train={"batch_size": 16}), tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            runner = screen.runner
            await pilot.press("x")
            await until(pilot, lambda: runner.latest.settings["batch_size"] == 32, "batch 32")
            await pilot.press("X")
            await pilot.press("X")
            await until(pilot, lambda: runner.latest.settings["batch_size"] == 8, "batch 8")
            assert [e.changes for e in runner.sim.events if e.source == "user"] == [
                {"batch_size": 32}, {"batch_size": 16}, {"batch_size": 8}]
            assert "batch_size=8" in str(screen.query_one("MessageLine").content)

    run(body)


def _recording(name, steps, examples, acc):
    steps = np.asarray(steps, float)
    return Recording(name, {"val_step": steps, "val_acc": np.asarray(acc, float), "val_loss": np.zeros(len(acc))},
                     steps, examples=np.asarray(examples, np.int64), final_step=int(steps[-1]))


def test_align_epoch_pairs_runs_at_equal_examples_not_equal_steps():
    """A small batch (8 a step) and a big one (64 a step) over the same 4 epochs of 64 rows:
    at equal steps only step 0 is common; at equal epochs every checkpoint is."""
    small = _recording("base", [0, 8, 16, 24, 32], [0, 64, 128, 192, 256], [0.1, 0.5, 0.7, 0.8, 0.9])
    big = _recording("big", [0, 1, 2, 3, 4], [0, 64, 128, 192, 256], [0.1, 0.4, 0.6, 0.7, 0.85])
    runs = {"base": small, "big": big}
    by_epoch = Expectation(metric="val_acc", variant="big", difference_over="base", align="epoch", op=">",
                           value=-0.1)
    r = evaluate(by_epoch, 0, runs)
    assert r.passed and r.actual == pytest.approx(-0.05) and "equal epochs" in r.description
    by_step = Expectation(metric="val_acc", variant="big", difference_over="base", op=">", value=-0.1)
    assert evaluate(by_step, 0, runs).actual == 0.0  # only step 0 is common: not what the claim means
    worst = Expectation(metric="val_acc", variant="big", difference_over="base", align="epoch", reduce="min",
                        op=">", value=-0.1)
    assert evaluate(worst, 0, runs).actual == pytest.approx(-0.1)


@pytest.mark.parametrize("extra,words", [
    ("metric = \"loss\"", ["align", "per-step series"]),
    ("metric = \"val_acc\"\nat = 100", ["align", "no step number"]),
    ("metric = \"val_acc\"\nby = 100", ["align", "no step number"]),
    ("metric = \"val_acc\"\nalign = \"epochs\"", ["expect[0].align", "expected one of step, epoch"]),
])
def test_bad_align_is_explained(tmp_path, extra, words):
    align = "" if "align" in extra else "align = \"epoch\"\n"
    path = tmp_path / "s.toml"
    path.write_text(f"[[expect]]\n{align}{extra}\nop = \">\"\nvalue = 0.5\n", encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    for word in words:
        assert word in str(info.value), (word, str(info.value))
