"""Transfer learning in the lab (Textual Pilot): the phase on the settings line, frozen layers
marked in the per-layer table with an update ratio of 0, the t/f/F/u keys recorded as events,
at 80x24 and 100x30."""

from __future__ import annotations

import pytest

from lab.scenario.schema import Scenario
from lab.tui.keys import RUN_KEYS
from lab.tui.widgets.panels import StatsPanel
from tests.test_tui import change, cli_app, run, run_screen, screen_text, until
from tests.test_transfer import tiny


def transfer_scenario(tmp_path) -> Scenario:
    raw = tiny(tmp_path, phase="feature-extraction")
    raw["scenario"]["pace"] = "max"
    raw["events"] = [{"at": 40, "set": {"phase": "fine-tune"}}]
    return Scenario.model_validate(raw)


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
def test_phases_frozen_layers_and_transfer_keys_in_the_run_screen(tmp_path, size):
    async def body():
        app = cli_app(transfer_scenario(tmp_path), tmp_path)
        async with app.run_test(size=size) as pilot:
            screen = await run_screen(pilot)
            assert "source pretrained (200 steps), saved to src-0.npz" == screen.pretraining
            r = screen.runner
            await pilot.press("n")
            await until(pilot, lambda: r.sim.step_count == 1 and r.pending == 0, "one step")
            await until(pilot, lambda: r.latest.step == 1, "step 1 on screen")
            await pilot.pause(0.2)
            text = screen_text(app)
            assert "feature extraction, layers 1-2 frozen" in text
            assert "source acc" in text
            table = str(screen.query_one(StatsPanel).content)
            rows = [line for line in table.splitlines()[1:]]
            assert "frozen" in rows[0] and "frozen" in rows[1] and "frozen" not in rows[2]
            assert [layer.update_ratio for layer in r.latest.layers][:2] == [0.0, 0.0]
            for line in text.splitlines():
                assert len(line.rstrip()) <= size[0]

            await change(pilot, r, "t")  # fine-tune: nothing frozen, lr x0.1
            t = r.latest.settings["transfer"]
            assert (t["phase"], t["frozen"], t["lr_factor"]) == ("fine-tune", 0, 0.1)
            await change(pilot, r, "f")  # freeze layer 1
            assert r.latest.settings["transfer"]["frozen"] == 1
            await change(pilot, r, "u")  # the next lr factor after 0.1
            assert r.latest.settings["transfer"]["lr_factor"] == 0.01
            await change(pilot, r, "F")
            assert r.latest.settings["transfer"]["frozen"] == 0
            user = [e.changes for e in r.sim.events if e.source == "user"]
            assert user == [{"phase": "fine-tune"}, {"freeze": 1}, {"lr_factor": 0.01}, {"freeze": 0}]
            await pilot.pause(0.2)
            assert "fine-tune, lr x0.01" in screen_text(app)

    run(body)


def test_transfer_keys_say_so_in_a_scenario_without_transfer(tmp_path):
    from tests.test_tui import tiny as tiny_spiral

    async def body():
        app = cli_app(tiny_spiral(), tmp_path)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await run_screen(pilot)
            n = len(screen.runner.sim.events)
            await pilot.press("f")
            await until(pilot, lambda: "only a transfer scenario" in screen_text(app), "the notice")
            assert len(screen.runner.sim.events) == n

    run(body)


def test_the_transfer_keys_are_declared_once_and_free():
    keys = [k.keys for k in RUN_KEYS]
    assert len(keys) == len(set(keys))
    assert {"t", "f", "F", "u"} <= set(keys)
