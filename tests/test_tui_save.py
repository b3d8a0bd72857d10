"""ctrl+s in the lab: the file is on disk at once, the claims are checked in a thread worker
without blocking the UI and the file is rewritten with the verdicts; quitting mid-check
loses nothing; after L then r the event log still holds the change, and a save replays it.

The check is held at a gate (a threading.Event) so the test sees each stage for certain;
every wait is a bounded poll on a condition, never a fixed sleep.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from typer.testing import CliRunner

import lab.cli
import lab.sim.session as session
from lab import Simulation, load_scenario
from lab.errors import ExitCode
from lab.sim.expectations import Cancelled
from lab.tui.widgets.context import ContextPanel
from lab.tui.widgets.panels import MessageLine
from tests.test_tui import SIZE, _assert_replays, _press_n, change, cli_app, run, run_screen, tiny, until

CLAIMS = {
    "variants": [{"name": "slow", "set": {"lr": 0.01}}],
    "expect": [
        {"metric": "val_loss", "op": "<", "value": 0.9, "why": "lr 0.1 learns the spiral's start"},
        {"metric": "val_loss", "variant": "slow", "op": ">", "value": 0.95},
        {"metric": "diverged", "op": "==", "value": 0.0},
    ],
}


@pytest.fixture
def gate(monkeypatch):
    """Hold the save's check until gate.set(); a cancelled worker is let go, as the real check lets it."""
    gate = threading.Event()
    real = session.check

    def held(scenario, *, progress=None, cancelled=None):
        while not gate.wait(0.01):
            if cancelled is not None and cancelled():
                raise Cancelled("held")
        return real(scenario, progress=progress, cancelled=cancelled)

    monkeypatch.setattr(session, "check", held)
    return gate


def test_ctrl_s_writes_the_session_at_once_then_rewrites_it_with_the_verdicts(tmp_path, gate):
    async def body():
        app = cli_app(tiny(**CLAIMS), tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            r = screen.runner
            await _press_n(pilot, screen, 5)
            await change(pilot, r, "L", "L")  # a base run too slow for its own claim
            r.sim.step(95)  # the worker is idle (autostart off): to the scenario's end
            r.publish()
            await pilot.press("ctrl+s")
            await until(pilot, lambda: getattr(screen, "last_saved", None) is not None, "the file")
            path = screen.last_saved
            pending = path.read_text(encoding="utf-8")  # on disk while the check is held
            await pilot.press("n")  # and the UI is not blocked by it
            await until(pilot, lambda: r.sim.step_count == 101, "a step during the check")
            assert getattr(screen, "last_checked", None) is None
            gate.set()
            await until(pilot, lambda: getattr(screen, "last_checked", None) is not None, "the verdicts")
            await until(pilot, lambda: "claim" in str(screen.query_one(MessageLine).content), "the verdict message")
            assert not app._notifications  # in the message line, not a toast over the data
            return path, pending, r.sim, screen.last_checked

    path, pending, sim, done = run(body)
    assert pending.count("# being checked: ") == 3 and "\n[[expect]]" not in pending
    assert [ex.why for ex, _ in done.dropped] == ["lr 0.1 learns the spiral's start"]
    text = path.read_text(encoding="utf-8")
    assert "# dropped: val_loss < 0.9 at final step" in text and "being checked" not in text
    assert len(load_scenario(path).expect) == 2
    result = CliRunner().invoke(lab.cli.app, ["check", str(path)])
    assert result.exit_code == ExitCode.OK, result.output
    # the session went on one step after the save: the file replays the 100 steps it was saved at
    replay = Simulation(load_scenario(path))
    replay.run_to(100)
    for name in ("lr", "loss", "train_acc", "grad_norm"):
        assert np.array_equal(replay.history.series[name].values(), sim.history.series[name].values()[:100]), name
    val = sim.history.series["val_loss"].values()[sim.history.series["val_step"].values() <= 100]
    assert np.array_equal(replay.history.series["val_loss"].values(), val)


def test_quitting_mid_check_keeps_the_saved_session(tmp_path, gate):
    async def body():
        app = cli_app(tiny(**CLAIMS), tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            r = screen.runner
            await _press_n(pilot, screen, 4)
            await change(pilot, r, "a")
            await _press_n(pilot, screen, 6)
            await pilot.press("ctrl+s")
            await until(pilot, lambda: getattr(screen, "last_saved", None) is not None, "the file")
            await pilot.press("q")  # the check is still held
        return screen.last_saved, r.sim

    path, sim = run(body)
    deadline = time.monotonic() + 30  # the worker writes its last word as it stops (a safety net, not a timing)
    while "# not checked: " not in path.read_text(encoding="utf-8"):
        assert time.monotonic() < deadline, "the cancelled check never rewrote the file"
        time.sleep(0.02)
    text = path.read_text(encoding="utf-8")
    assert "the lab closed before the check finished" in text and text.count("# not checked: ") == 3
    assert load_scenario(path).expect == []
    _assert_replays(path, sim)


def test_L_then_r_keeps_the_change_in_the_event_log_and_a_save_replays_it(tmp_path):
    async def body():
        app = cli_app(tiny(), tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            r = screen.runner
            initial = r.sim.network.params.copy()
            await _press_n(pilot, screen, 10)
            await change(pilot, r, "L")
            await _press_n(pilot, screen, 5)
            await pilot.press("r")
            await until(pilot, lambda: r.sim.step_count == 0 and r.latest.step == 0, "the reset")
            assert [(e.step, e.changes, e.source) for e in r.latest.events] == [(0, {"lr": 0.1 / 10 ** 0.5}, "user")]
            assert (r.sim.network.params == initial).all()  # an lr change keeps the initial weights
            await pilot.press("v")  # the context panel's event log
            await until(pilot, lambda: screen.query_one(ContextPanel).view == "events", "the event log")
            screen.tick(force=True)
            shown = str(screen.query_one(ContextPanel).query_one("#events").content)
            assert "step      0" in shown and "lr=0.0316" in shown and "(you)" in shown
            await _press_n(pilot, screen, 12)
            await pilot.press("ctrl+s")
            await until(pilot, lambda: getattr(screen, "last_saved", None) is not None, "the file")
            return screen.last_saved, r.sim

    path, sim = run(body)
    event = load_scenario(path).events[0]
    assert (event.at, event.set.given()) == (0, {"lr": 0.1 / 10 ** 0.5})
    _assert_replays(path, sim)
