"""The lab's TUI driven through Textual's Pilot: every key of the run screen really changes
the simulation, a saved session replays bit for bit, and the app survives divergence,
quitting mid-run, small terminals and a missing terminal.

Tests are plain sync functions that run an inner coroutine with asyncio.run (there is no
pytest-asyncio here).  Waiting is a bounded poll (`until`): the deadline is only a safety
net against hangs, never an assertion about speed.
"""

from __future__ import annotations

import re

import asyncio
import csv
import io
import time
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

import lab.cli
from lab import Simulation, load_scenario
from lab.errors import ExitCode
from lab.scenario.catalog import bundled, bundled_root
from lab.scenario.schema import Changes, Scenario, ScheduleSpec
from lab.sim.snapshot import Event
from lab.tui.app import make_app
from lab.tui.controls import TRANSFER_ACTIONS, change_for
from lab.pace import PACES, initial_pace
from lab.tui.screens.browser import BrowserScreen
from lab.tui.controls import describe_change
from lab.tui.screens.compare import CompareScreen
from lab.tui.screens.help import HelpScreen
from lab.report.table import LAYER_COLUMNS
from lab.tui.keys import RUN_KEYS
from lab.tui.screens.run import RunScreen
from lab.tui.screens.too_small import TooSmallScreen
from lab.tui.screens.zoom import GUTTER, ZoomScreen
from lab.tui.widgets.context import VIEWS, Boundary, ContextPanel
from lab.tui.widgets.histograms import HistogramGrid
from lab.tui.widgets.panels import MessageLine, StatusBar
from lab.tui.widgets.variants import ChartLegend, CompareChart, VariantTable, marker_of

SIZE = (100, 30)
TIMEOUT = 60.0  # per test: a safety net for a hang, far above what any test needs


def tiny(steps: int = 100, **overrides) -> Scenario:
    """Spiral, 200 points, 2-16-16-3: a step takes microseconds."""
    raw = {"scenario": {"name": "tiny spiral", "seed": 0, "pace": "max",
                        "explain": "A tiny spiral: **watch** the loss fall."},
           "data": {"kind": "spiral", "n": 200},
           "model": {"hidden": [16, 16]},
           "train": {"steps": steps, "eval_every": 20}}
    for section, values in overrides.items():
        if isinstance(values, dict):
            raw.setdefault(section, {}).update(values)
        else:  # variants, events, expect
            raw[section] = values
    return Scenario.model_validate(raw)


def run(coro_fn, timeout: float = TIMEOUT):
    """Run an async test body to completion (bounded: a hang fails instead of blocking)."""
    return asyncio.run(asyncio.wait_for(coro_fn(), timeout))


async def until(pilot, predicate, what: str, timeout: float = 30.0) -> None:
    """Poll `predicate` between UI turns until it holds (the deadline only catches hangs)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await pilot.pause(0.02)


async def run_screen(pilot) -> RunScreen:
    """The app's RunScreen, once its worker has built the simulation."""
    await until(pilot, lambda: isinstance(pilot.app.screen, RunScreen) and pilot.app.screen.runner is not None,
                "the run screen's simulation")
    return pilot.app.screen


async def change(pilot, runner, *keys: str) -> None:
    """Press change keys one by one, each applied before the next.

    SimRunner.apply runs Simulation.set at once when the simulation's lock is free, and queues it
    for the worker otherwise (e.g. while the worker publishes a snapshot): wait for the event."""
    for key in keys:
        before = len(runner.sim.events)
        await pilot.press(key)
        await until(pilot, lambda: len(runner.sim.events) == before + 1, f"the change of {key!r} to apply")
        await until(pilot, lambda: runner.latest.events == tuple(runner.sim.events), f"{key!r} on screen")


def screen_text(app) -> str:
    """What the terminal shows now, as plain text (App.export_screenshot renders the same, as SVG)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, color_system="truecolor",
                      record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


def screen_text_of(container) -> list[str]:
    """The plain text of every Static (and Markdown) inside a container, drawn or scrolled away."""
    console = Console(width=200, file=io.StringIO(), record=True)
    out = []
    for widget in container.query("Static, Markdown"):
        content = getattr(widget, "content", None) if widget.__class__.__name__ != "Markdown" else widget.source
        console.print(content)
    out.append(console.export_text())
    return out


def status_text(screen) -> str:
    return str(screen.query_one(StatusBar).content)


def cli_app(sc: Scenario, tmp_path: Path, autostart: bool = False):
    """The app exactly as `nnlab run SCENARIO` builds it, writing into tmp_path."""
    return make_app(scenario=sc, source="tiny.toml", output_dir=tmp_path, autostart=autostart, warm_up=False)


def normalised(key: str, value):
    """A change value as it reads back from Snapshot.settings."""
    if key == "schedule":
        return ScheduleSpec(**value).model_dump()
    if key == "preprocess":
        return list(value)
    return value


# -- every change key ---------------------------------------------------------------------------------
CHANGE_KEYS = [(k.keys, k.action.split("'")[1]) for k in RUN_KEYS if k.action.startswith("change(")
               and k.action.split("'")[1] not in TRANSFER_ACTIONS]  # those: tests/test_transfer_tui.py
DERIVED = {"init_std", "inputs_positive"}  # settings that follow from others


@pytest.mark.parametrize("key,action", CHANGE_KEYS,
                         ids=[k if k.islower() else f"shift-{k.lower()}" for k, _ in CHANGE_KEYS])
def test_change_key_sets_the_simulation_and_records_a_user_event(tmp_path, key, action):
    async def body():
        app = cli_app(tiny(), tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            r = screen.runner
            for _ in range(3):  # so the event lands at a step other than 0
                await pilot.press("n")
            await until(pilot, lambda: r.sim.step_count == 3 and r.pending == 0, "three single steps")
            if key == "D":  # dropout down needs a dropout to lower
                await change(pilot, r, "d")
            before = dict(r.latest.settings)
            expected = change_for(action, before, 3)
            n_events = len(r.sim.events)

            await change(pilot, r, key)

            after = r.latest.settings
            for name, value in expected.items():
                assert after[name] == normalised(name, value), (key, name)
                assert after[name] != before[name], f"{key} did not change {name}"
            unchanged = {k for k in before if k not in expected and k not in DERIVED}
            if key == "i":  # a new scheme brings its own scale
                unchanged.discard("init_scale")
            assert {k: after[k] for k in unchanged} == {k: before[k] for k in unchanged}
            assert len(r.sim.events) == n_events + 1
            assert r.sim.events[-1] == Event(3, Changes(**expected).given(), "user")
            assert r.sim.step_count == 3 and not r.running
            assert r.latest.events[-1] == r.sim.events[-1]  # published: the screen shows it at once

    run(body)


def test_change_keys_in_a_row_cycle_through_their_options(tmp_path):
    """Each key cycles: pressing `o` six times walks every optimizer and comes back."""
    async def body():
        app = cli_app(tiny(), tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            sim = screen.runner.sim
            seen = []
            for _ in range(6):
                await change(pilot, screen.runner, "o")
                seen.append(sim.current.train.optimizer)
            assert seen == ["momentum", "nesterov", "rmsprop", "adam", "adamw", "sgd"]
            await change(pilot, screen.runner, "l", "l", "l")
            assert sim.current.train.lr == pytest.approx(0.1 * 10 ** 1.5)
            assert [e.source for e in sim.events] == ["user"] * 9 and all(e.step == 0 for e in sim.events)

    run(body)


# -- running, stepping, speed ---------------------------------------------------------------------------
def test_space_toggles_running_and_plus_minus_move_through_the_pace_scale(tmp_path):
    async def body():
        app = cli_app(tiny(steps=1_000_000, scenario={"pace": 20}), tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            r = screen.runner
            assert not r.running and r.sim.step_count == 0
            assert r.pace == 20
            await until(pilot, lambda: "pace 20/s" in status_text(screen), "the pace in the status line")

            i = PACES.index(20)
            await pilot.press("minus")
            assert r.pace == PACES[i - 1]
            await pilot.press("minus", "minus")
            assert r.pace == PACES[i - 3]
            await until(pilot, lambda: f"pace {PACES[i - 3]:g}/s" in status_text(screen), "the slower pace shown")
            await pilot.press("plus")
            assert r.pace == PACES[i - 2]
            await pilot.press("equals_sign")  # the unshifted key of +
            assert r.pace == PACES[i - 1]
            for _ in range(len(PACES) + 2):
                await pilot.press("minus")
            assert r.pace == PACES[0]  # clamped at the slowest
            for _ in range(len(PACES) + 2):
                await pilot.press("plus")
            assert r.pace is None  # as fast as the machine goes
            await until(pilot, lambda: "pace max" in status_text(screen), "pace max in the status line")

            await pilot.press("space")
            await until(pilot, lambda: r.running, "running")
            await until(pilot, lambda: r.sim.step_count > 0, "steps while running")
            await until(pilot, lambda: "RUNNING" in status_text(screen), "the status bar to say RUNNING")
            await pilot.press("space")
            await until(pilot, lambda: not r.running and r.pending == 0, "paused")
            await until(pilot, lambda: "PAUSED" in status_text(screen), "the status bar to say PAUSED")
            # paused means paused: the worker has finished its chunk, and the count stays put
            # through a full turn of its loop (a command queued and executed)
            settled = r.sim.step_count
            r.pause()
            await until(pilot, lambda: r.pending == 0, "the worker to go round its loop")
            assert r.sim.step_count == settled

    run(body)


def test_n_steps_exactly_one_step(tmp_path):
    async def body():
        app = cli_app(tiny(), tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            sim = screen.runner.sim
            for expected in (1, 2, 3):
                await pilot.press("n")
                await until(pilot, lambda: sim.step_count >= expected, f"step {expected}")
                await until(pilot, lambda: screen.runner.pending == 0, "the single step to be consumed")
                assert sim.step_count == expected
            assert not screen.runner.running
            await until(pilot, lambda: screen._shown is not None and screen._shown.step == 3, "step 3 on screen")
            assert "step 3/100 " in status_text(screen)
            assert len(sim.history.series["loss"]) == 3

    run(body)


def test_run_stops_at_the_end_of_the_scenario_and_says_done(tmp_path):
    async def body():
        app = cli_app(tiny(steps=60), tmp_path, autostart=True)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            r = screen.runner
            await until(pilot, lambda: not r.running and r.sim.step_count == 60, "the end of the scenario")
            await until(pilot, lambda: "DONE" in status_text(screen), "DONE in the status bar")
            await pilot.press("space")  # space continues past the scenario's steps
            await until(pilot, lambda: r.sim.step_count > 60, "steps past the end")
            await pilot.press("space")

    run(body)


# -- reset ------------------------------------------------------------------------------------------------
def test_r_resets_to_step_0_with_the_same_weights_and_R_with_new_ones(tmp_path):
    async def body():
        app = cli_app(tiny(), tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            r = screen.runner
            initial = r.sim.network.params.copy()
            seed = r.sim.seed
            await change(pilot, r, "l")  # a change that does not touch the weights: kept across reset
            r.sim.step(30)  # the worker is idle (autostart off): train from here
            r.publish()
            assert not np.array_equal(r.sim.network.params, initial)

            await pilot.press("r")
            await until(pilot, lambda: r.sim.step_count == 0 and r.latest.step == 0, "the reset")
            await pilot.pause()
            assert np.array_equal(r.sim.network.params, initial)
            assert r.sim.seed == seed
            assert r.sim.current.train.lr == pytest.approx(0.1 * 10 ** 0.5)  # the change survives the reset
            assert len(r.sim.history.series["loss"]) == 0
            # the timeline starts over with the run: one record, of step 0
            await until(pilot, lambda: [rec.step for rec in r.latest.timeline.records] == [0], "a new timeline")

            await pilot.press("R")
            await until(pilot, lambda: r.sim.seed == seed + 1, "the reset with a new seed")
            assert r.sim.step_count == 0
            assert r.sim.network.params.shape == initial.shape
            assert not np.array_equal(r.sim.network.params, initial)

    run(body)


# -- views -------------------------------------------------------------------------------------------------
def test_h_toggles_the_histogram_grid(tmp_path):
    async def body():
        app = cli_app(tiny(), tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            grid = screen.query_one(HistogramGrid)
            assert grid.mode == "activity"
            await pilot.press("h")
            await pilot.pause()
            assert grid.mode == "weights"
            assert "weights W" in screen_text(app)
            await pilot.press("h")
            await pilot.pause()
            assert grid.mode == "activity"
            assert "activations" in str(grid.render())

    run(body)


def test_v_cycles_every_context_view_and_each_renders(tmp_path):
    async def body():
        app = cli_app(tiny(), tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            screen.runner.sim.step(40)  # the worker is idle (paused): a history to draw
            screen.runner.publish()
            await change(pilot, screen.runner, "l")  # an event for the event log
            panel = screen.query_one(ContextPanel)
            seen = [panel.view]
            shown = {panel.view: screen_text(app)}
            for _ in VIEWS:
                await pilot.press("v")
                await pilot.pause()
                if panel.view == "boundary":  # taken by the worker once the view asks for it
                    await until(pilot, lambda: "●" in str(panel.query_one(Boundary).content), "the boundary")
                if panel.view == "lr":
                    await until(pilot, lambda: "lr now" in screen_text(app), "the lr curve")
                if panel.view == "cost":  # timed by the worker, once
                    await until(pilot, lambda: "x relu" in str(panel.query_one("#cost").content), "the costs")
                seen.append(panel.view)
                assert panel.query_one("ContentSwitcher").current in (panel.view, f"{panel.view}-scroll")
                shown[panel.view] = screen_text(app)  # renders every visible widget
            assert seen == [*VIEWS, VIEWS[0]]
            assert "what to watch" in shown["explain"]
            assert "event log" in shown["events"]
            assert "step" in str(panel.query_one("#events").content) and "(you)" in str(
                panel.query_one("#events").content)
            assert "decision boundary" in shown["boundary"]
            assert "●" in str(panel.query_one(Boundary).content)  # the training points on the regions
            assert "weight path" in shown["path"]
            assert "learning-rate schedule" in shown["lr"] and "lr now" in shown["lr"]
            costs = str(panel.query_one("#cost").content)
            assert "activation cost" in shown["cost"]
            mine = screen.runner.latest.settings["activation"]
            assert f"▶ {mine} " in costs  # the run's own activation is marked
            assert all(f"  {name} " in costs for name in ("sigmoid", "tanh", "gelu") if name != mine)

    run(body)


def test_the_decision_boundary_is_taken_by_the_worker_only_while_shown(tmp_path, monkeypatch):
    """The grid's forward pass runs on the worker thread, never the UI's, and only while the
    boundary view asks for it; the widget draws what was published beside the Snapshot."""
    import threading

    from lab.sim import Simulation

    threads = []
    original = Simulation.decision_grid

    def recording(self, nx, ny):
        threads.append(threading.current_thread())
        return original(self, nx, ny)

    monkeypatch.setattr(Simulation, "decision_grid", recording)

    async def body():
        app = cli_app(tiny(steps=10_000_000), tmp_path, autostart=True)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            r = screen.runner
            await until(pilot, lambda: r.sim.step_count > 0, "training")
            panel = screen.query_one(ContextPanel)
            assert not threads and r.boundary is None  # not shown: never taken
            while panel.view != "boundary":
                await pilot.press("v")
            await until(pilot, lambda: "●" in str(panel.query_one(Boundary).content), "the boundary drawn")
            start = r.boundary.step
            await until(pilot, lambda: r.boundary.step > start, "the boundary retaken while training")
            await pilot.press("v")  # away from it: no longer taken
            await until(pilot, lambda: r.pending == 0 and r.boundary is None, "the boundary dropped")
            taken = len(threads)
            published = r.latest
            await until(pilot, lambda: r.latest is not published, "a new snapshot")
            assert len(threads) == taken
        assert threads and threading.main_thread() not in threads

    run(body)


def test_z_opens_zoom_whose_keys_work_and_escape_returns(tmp_path):
    async def body():
        app = cli_app(tiny(), tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            screen.runner.sim.step(20)
            screen.runner.publish()
            await until(pilot, lambda: screen._shown is not None and screen._shown.step == 20, "step 20 shown")
            await pilot.press("z")
            await until(pilot, lambda: isinstance(app.screen, ZoomScreen), "the zoom screen")
            n_layers = len(screen._shown.layers)  # 2 hidden + output
            assert n_layers == 3
            title = lambda: screen_text(app).splitlines()[0]  # noqa: E731
            assert "layer 1 (relu, 16 units) activations at step 20" in title()
            await pilot.press("right_square_bracket")
            assert "layer 2 (relu, 16 units)" in title()
            await pilot.press("left_square_bracket", "left_square_bracket")
            assert f"layer {n_layers} (output, 3 units)" in title()  # wraps around
            await pilot.press("t")
            assert "gradients" in title() and "activations" not in title()
            await pilot.press("g")
            assert "log(1+count)" in screen_text(app)  # the y axis of the histogram
            await pilot.press("t", "g")
            assert "activations" in title()
            text = screen_text(app)
            # the timeline's records: step 0 to now, one every step (tiny() trains 100 steps: cadence 1)
            assert "over time: steps 0..20 (21 records, every step)" in text and "log(1+count)" not in text
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is screen, "back to the run screen")

    run(body)


def test_zoom_over_time_spans_the_whole_run_and_its_cursor_shows_recorded_steps(tmp_path):
    """After a whole run at full speed, the over-time view holds every record of the run, step 0
    to the end (not one column per screen frame), and the step cursor brings back the histogram
    recorded at an earlier step (its title says which), in both quantities, until `end`."""
    async def body():
        app = cli_app(tiny(steps=300), tmp_path, autostart=True)  # a record every 2 steps: 151
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            r = screen.runner
            await until(pilot, lambda: not r.running and r.latest.step == 300, "the whole run")
            await pilot.press("z")
            await until(pilot, lambda: isinstance(app.screen, ZoomScreen), "the zoom screen")
            zoom = app.screen
            tl = r.latest.timeline
            assert list(tl.steps) == list(range(0, 301, 2))
            await until(pilot, lambda: zoom.shown is not None and zoom.shown[0] == 300, "the live step")
            lines = screen_text(app).splitlines()
            assert "activations at step 300 (live)" in lines[0]
            assert any("over time: steps 0..300 (151 records, every 2 steps)" in line for line in lines)
            marker = next(i for i, line in enumerate(lines) if "▲" in line)
            axis = lines[marker - 1].split()
            assert axis[0] == "0" and axis[-1] == "300" and "step 300 (live)" in lines[marker]

            async def cursor(*keys: str) -> tuple[int, object, bool]:
                await pilot.press(*keys)
                await pilot.pause()
                return zoom.shown

            step, stats, live = await cursor("left")
            assert (step, live) == (298, False) and stats is tl.at(298).layers[0]
            assert "activations at step 298 (recorded)" in screen_text(app).splitlines()[0]
            assert (await cursor("shift+left"))[0] == 278
            assert (await cursor("pageup"))[0] == 258
            step, stats, _ = await cursor("home")
            assert step == 0 and stats is tl.records[0].layers[0]
            lines = screen_text(app).splitlines()
            assert "activations at step 0 (recorded)" in lines[0]
            assert "▲ step 0" in next(line for line in lines if "▲" in line)
            step, stats, _ = await cursor("right", "pagedown", "right_square_bracket", "t")
            assert step == 22 and stats is tl.at(22).layers[1]  # layer 2's gradients, as recorded at step 22
            assert "layer 2 (relu, 16 units) gradients dL/da (symlog bins) at step 22 (recorded)" in \
                screen_text(app).splitlines()[0]
            step, stats, live = await cursor("end")
            assert (step, live) == (300, True) and stats is r.latest.layers[1]
            await cursor("h")  # the other pair, as on the run screen: weights and updates
            assert "layer 2 (relu, 16 units) updates ΔW of the step (symlog bins) at step 300 (live)" in \
                screen_text(app).splitlines()[0]
            await cursor("t", "home")
            assert "weights W (symlog bins) at step 0 (recorded)" in screen_text(app).splitlines()[0]
            heat = zoom.query_one("#heat")
            middle = (heat.size.width - GUTTER - 1) // 2  # a click on the heat map's middle column: step 150
            await pilot.click("#heat", offset=(1 + GUTTER + middle, 1))  # 1: the widget's left padding
            await pilot.pause()
            assert zoom.cursor == zoom.shown[0] and abs(zoom.shown[0] - 150) <= 2 and not zoom.shown[2]

    run(body)


def test_zoom_title_says_when_counts_are_logarithmic(tmp_path):
    sc = tiny()
    sim = Simulation(sc)
    sim.step(20)

    async def body():
        app = make_app(output_dir=tmp_path, warm_up=False)
        async with app.run_test(size=(200, 30)) as pilot:  # wide: the whole title fits
            screen = RunScreen(sc, autostart=False, simulation=sim)
            await app.push_screen(screen)
            await pilot.pause()
            screen.tick(force=True)
            await pilot.press("z")
            await until(pilot, lambda: isinstance(app.screen, ZoomScreen), "the zoom screen")
            await pilot.press("g")
            await pilot.pause()
            assert "sat 0%" in screen_text(app).splitlines()[0]
            assert "log counts" in screen_text(app).splitlines()[0]

    run(body)


def test_question_mark_opens_help(tmp_path):
    async def body():
        app = cli_app(tiny(), tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help screen")
            text = screen_text(app)
            assert "keys" in text and "run or pause" in text  # the top of the help is on screen
            help_text = "\n".join(screen_text_of(app.screen.query_one("VerticalScroll")))
            flowing = " ".join(help_text.split())  # a long meaning wraps inside its table cell
            for key in RUN_KEYS:  # every key of the run screen, with what it does
                assert key.description in help_text, key
            for column in LAYER_COLUMNS:  # and what every column of the table means
                assert " ".join(column.meaning.split()) in flowing, column.header
            assert "tiny spiral" in help_text  # the scenario's concept, further down
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is screen, "back to the run screen")

    run(body)


# -- compare ------------------------------------------------------------------------------------------------
async def compare_screen(pilot) -> CompareScreen:
    """Press c on the run screen; the compare screen once its variants are built and on screen."""
    await pilot.press("c")
    await until(pilot, lambda: isinstance(pilot.app.screen, CompareScreen) and pilot.app.screen.lockstep.ready,
                "the compare screen's variants")
    return pilot.app.screen


def live_steps(ls) -> set[int]:
    """The steps of the variants that have not diverged: one value when they are in lockstep."""
    return {snap.step for snap in ls.snapshots.values() if not snap.diverged}


def compare_status(screen) -> str:
    return str(screen.query_one("#compare-status").content)


def message(screen) -> str:
    return str(screen.query_one(MessageLine).content)


def test_c_opens_compare_with_the_variants_in_lockstep(tmp_path):
    sc = tiny(variants=[{"name": "tanh", "set": {"activation": "tanh"}}])

    async def body():
        app = cli_app(sc, tmp_path, autostart=True)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await run_screen(pilot)
            await until(pilot, lambda: screen.runner.sim.step_count > 0, "the run to start")
            compare = await compare_screen(pilot)
            assert not screen.runner.running  # comparing pauses the run behind it
            ls = compare.lockstep
            assert list(ls.sims) == ["base", "tanh"]
            assert ls.sims["tanh"].current.model.activation == "tanh"
            assert ls.sims["base"].current.model.activation == "relu"
            await until(pilot, lambda: min(s.step for s in ls.snapshots.values()) >= 40, "lockstep steps")
            await until(pilot, lambda: "tanh  activation=tanh" in screen_text(app)
                        and "training loss" in screen_text(app), "the charts drawn")
            text = screen_text(app)
            assert "base" in text and "tanh  activation=tanh" in text and "training loss" in text
            workers = [w for w in app.workers if w.group == "compare"]
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is screen, "back to the run screen")
            # the compare worker stops with its screen: it does not train on in the background
            await until(pilot, lambda: all(w.is_finished for w in workers), "the compare worker to stop")
            steps = [s.step_count for s in ls.sims.values()]
            await pilot.pause()  # a UI turn: nothing is left to step them (the worker's loop has returned)
            assert [s.step_count for s in ls.sims.values()] == steps

    run(body)


def test_compare_without_variants_shows_the_original_against_your_changes(tmp_path):
    async def body():  # (at a pace: at "max" a busy machine could reach the end and replace the hint)
        app = cli_app(tiny(steps=100_000, scenario={"pace": 20}), tmp_path)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await run_screen(pilot)
            compare = await compare_screen(pilot)  # nothing changed yet: the scenario alone, and a hint
            assert list(compare.lockstep.sims) == ["base"]
            assert "no variants" in message(compare)
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is screen, "back to the run screen")

            await change(pilot, screen.runner, "a", "l")
            compare = await compare_screen(pilot)
            sims = compare.lockstep.sims
            assert list(sims) == ["original", "yours"]
            assert sims["yours"].current.model.activation == "leaky_relu"
            assert sims["yours"].current.train.lr == pytest.approx(screen.runner.sim.current.train.lr)
            assert sims["original"].current.model.activation == "relu"
            await until(pilot, lambda: "yours     activation=leaky_relu lr=0.316" in screen_text(app),
                        "your changes named on the compare screen")
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is screen, "back to the run screen")

    run(body)


def test_compare_shows_dead_and_sign_for_every_variant_at_100x30(tmp_path):
    """The bundled dead-ReLU scenario: every variant (six, with the controls), each with a complete
    row per layer."""
    sc = load_scenario(bundled_root() / "activations/dead-relu-high-lr.toml")
    names = ["base", *(v.name for v in sc.variants)]
    assert len(names) >= 4

    async def body():
        app = cli_app(sc, tmp_path)
        async with app.run_test(size=(100, 30)) as pilot:
            await run_screen(pilot)
            compare = await compare_screen(pilot)
            await until(pilot, lambda: live_steps(compare.lockstep) and min(live_steps(compare.lockstep)) >= 5,
                        "a few steps of every variant")
            await until(pilot, lambda: all(any(line.startswith(f" {marker_of(i)} {name} ")
                                               for line in screen_text(app).splitlines())
                                           for i, name in enumerate(names))
                        and any(" dead " in line and " sign " in line for line in screen_text(app).splitlines()),
                        "every variant's table drawn")
            lines = screen_text(app).splitlines()
        header = next(line for line in lines if " dead " in line and " sign " in line)
        columns = header.split()
        for i, name in enumerate(names):
            status = next(k for k, line in enumerate(lines) if line.startswith(f" {marker_of(i)} {name} "))
            row = lines[status + 1].split()  # layer 1, under the variant's name: every column
            assert row[0] == "1" and len(row) == len(columns), (name, header, lines[status + 1])
            dead, sign = row[columns.index("dead")], row[columns.index("sign")]
            assert dead.endswith("%") and re.fullmatch(r"-?\d\.\d\d|-", sign), (dead, sign)
        # the chart's legend: the title, then each variant with its own marker, wrapped onto a
        # second line when the title is long ("..., peaks above 4.2 cut")
        top = next(k for k, line in enumerate(lines) if "training loss" in line)
        legend = " ".join(lines[top:top + 2])
        for i, name in enumerate(names):
            assert f"{marker_of(i)} {name}" in legend
        assert len({marker_of(i) for i in range(len(names))}) == len(names)

    run(body)


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
@pytest.mark.parametrize("path", ["activations/dead-relu-high-lr.toml", "learning-rate/decay-schedules.toml",
                                  "activations/sigmoid-vanishing-gradients.toml",
                                  "preprocessing/whitening-correlated-features.toml"])
def test_compare_fits_its_terminal_nothing_wraps_or_is_cut(tmp_path, path, size):
    """Every line of every compare panel fits its width, and what a variant changes is shown
    whole: several variants, a 9-layer network, and variants with long changes of which
    one diverges, at 80x24 and 100x30."""
    sc = load_scenario(bundled_root() / path)
    changes = {v.name: [describe_change({k: val}) for k, val in v.set.given().items()] for v in sc.variants}

    async def body():
        app = make_app(warm_up=False)
        async with app.run_test(size=size) as pilot:
            compare = CompareScreen.from_run(sc, Simulation(sc), running=False)
            await app.push_screen(compare)
            compare.lockstep.step_once(30)
            await until(pilot, lambda: compare.lockstep.ready and compare.lockstep.pending == 0, "30 steps")
            await pilot.pause()
            compare.tick(force=True)
            await pilot.pause()
            text = screen_text(app)
            table = compare.query_one(VariantTable)
            legend = compare.query_one(ChartLegend)
            for widget in (table, legend):
                width = widget.size.width  # inside the padding
                assert widget.size.height == len(widget.lines(width))  # laid out at its full height
                assert all(line.cell_len <= width for line in widget.lines(width)), widget
            table_text = "\n".join(line.plain for line in table.lines(table.size.width))
            assert "…" not in table_text
            for name, items in changes.items():
                assert re.search(rf"^ . {re.escape(name)} ", text, re.M), name
                for item in items:  # whole, on the table's lines (between the name and the numbers, or below)
                    assert re.search(rf"(^| ){re.escape(item)}( |$)", table_text, re.M), (name, item)
            assert compare.query_one(CompareChart).size.height >= 6  # a chart, not a sliver
            for line in (compare_status(compare), message(compare)):
                assert not line.endswith("…"), line

    run(body)


def test_compare_variants_stay_in_lockstep_through_pauses_steps_and_resets(tmp_path):
    sc = tiny(steps=1_000_000, scenario={"pace": "max"},
              variants=[{"name": "tanh", "set": {"activation": "tanh"}}, {"name": "slow", "set": {"lr": 0.01}}])

    async def body():
        app = cli_app(sc, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await run_screen(pilot)
            compare = await compare_screen(pilot)
            ls = compare.lockstep
            seen, paused = [], []
            for keys in (["space"], ["r"], ["space", "r"], ["n", "n"], ["space"], ["r", "space"], ["r", "r"],
                         ["space", "n"], ["r"]):
                for key in keys:
                    await pilot.press(key)
                    seen.append(live_steps(ls))  # every published frame has one step for all
                await pilot.pause()
                seen.append(live_steps(ls))
                await until(pilot, lambda: ls.pending == 0, "the commands to be applied")
                assert len(live_steps(ls)) == 1, keys
                if not ls.running:  # paused: the worker is between rounds, the variants are where they show
                    steps = {sim.step_count for sim in ls.sims.values()}
                    assert live_steps(ls) == steps, (keys, {n: s.step_count for n, s in ls.sims.items()})
                    paused.append(keys)
            assert all(len(s) == 1 for s in seen), seen
            assert len(paused) >= 4, paused
            await pilot.press("space")
            await until(pilot, lambda: ls.running and ls.step > 100, "running on")
            for _ in range(20):  # while running too: every published frame shows the variants at one step
                published = ls.snapshots
                await until(pilot, lambda: ls.snapshots is not published, "a new frame")
                assert len(live_steps(ls)) == 1

    run(body)


def test_compare_runs_at_the_scenarios_pace_and_plus_minus_change_it(tmp_path):
    sc = tiny(steps=3000, scenario={"pace": None}, variants=[{"name": "tanh", "set": {"activation": "tanh"}}])

    async def body():
        app = cli_app(sc, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await run_screen(pilot)
            compare = await compare_screen(pilot)
            ls = compare.lockstep
            assert ls.pace == initial_pace(None, 3000) == 100  # as the run screen: the run lasts 30 s
            await until(pilot, lambda: "pace 100/s" in compare_status(compare), "the pace in the status line")
            await pilot.press("plus")
            assert ls.pace == PACES[PACES.index(100) + 1]
            await pilot.press("minus", "minus")
            assert ls.pace == PACES[PACES.index(100) - 1]
            await until(pilot, lambda: f"pace {ls.pace:g}/s" in compare_status(compare), "the new pace shown")

    run(body)


def test_compare_stops_at_the_scenarios_length_space_goes_on_r_replays(tmp_path):
    sc = tiny(steps=40, variants=[{"name": "tanh", "set": {"activation": "tanh"}}])

    async def body():
        app = cli_app(sc, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await run_screen(pilot)
            compare = await compare_screen(pilot)
            ls = compare.lockstep
            await until(pilot, lambda: ls.ended and live_steps(ls) == {40}, "the end of the scenario")
            assert not ls.running and {s.step_count for s in ls.sims.values()} == {40}
            await until(pilot, lambda: "DONE" in compare_status(compare) and "40/40" in compare_status(compare),
                        "DONE in the status line")
            assert "steps are done" in message(compare)
            ls.pause()  # a full turn of the worker's loop...
            await until(pilot, lambda: ls.pending == 0, "the worker to go round its loop")
            assert live_steps(ls) == {40} and {s.step_count for s in ls.sims.values()} == {40}  # ...it stays there
            await pilot.press("space")  # goes on past the end
            await until(pilot, lambda: min(live_steps(ls)) > 40, "steps past the end")
            assert "going on past" in message(compare)
            await pilot.press("r")  # replays every variant from step 0, and stops at the end again
            await until(pilot, lambda: ls.pending == 0, "the reset")
            await until(pilot, lambda: ls.ended and live_steps(ls) == {40}, "the end of the replay")
            assert len(ls.sims["base"].history.series["loss"]) == 40

    run(body)


def test_compare_a_diverging_variant_stops_and_the_others_go_on(tmp_path):
    sc = tiny(steps=1_000_000, variants=[{"name": "huge", "set": {"lr": 1e6, "optimizer": "sgd"}},
                                         {"name": "tanh", "set": {"activation": "tanh"}}])

    async def body():
        app = cli_app(sc, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await run_screen(pilot)
            compare = await compare_screen(pilot)
            ls = compare.lockstep
            await until(pilot, lambda: ls.sims["huge"].diverged, "the divergence")
            at = ls.sims["huge"].diverged_at
            await until(pilot, lambda: min(live_steps(ls)) > at + 50, "the others going on")
            assert ls.running
            assert ls.sims["huge"].step_count == at  # it stopped there
            snaps = ls.snapshots
            assert snaps["base"].step == snaps["tanh"].step > snaps["huge"].step == at
            await until(pilot, lambda: "huge diverged at step" in message(compare), "the message")
            await until(pilot, lambda: "1 diverged" in compare_status(compare), "the count in the status line")
            await until(pilot, lambda: "✗ diverged at step" in screen_text(app), "the diverged mark on screen")
            await pilot.press("space", "r")  # paused, a reset brings the diverged one back too
            await until(pilot, lambda: ls.pending == 0, "the reset")
            assert not ls.running and not ls.sims["huge"].diverged
            assert {snap.step for snap in ls.snapshots.values()} == {0}
            await pilot.press("n")  # and steps it with the others again
            await until(pilot, lambda: ls.pending == 0, "one step")
            assert {snap.step for snap in ls.snapshots.values()} == {1}

    run(body)


def test_compare_g_switches_the_chart_to_validation_accuracy(tmp_path):
    sc = tiny(variants=[{"name": "tanh", "set": {"activation": "tanh"}}])

    async def body():
        app = cli_app(sc, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await run_screen(pilot)
            compare = await compare_screen(pilot)
            legend = compare.query_one(ChartLegend)
            assert compare.query_one(CompareChart).metric == "loss"
            await pilot.press("g")
            assert compare.query_one(CompareChart).metric == "val_acc"
            await until(pilot, lambda: legend.title == "validation accuracy", "the legend's title")
            await pilot.press("g")
            await until(pilot, lambda: legend.title.startswith("training loss"), "back to the loss")

    run(body)


def test_compare_pages_the_layers_of_a_deep_network_starting_with_the_claims(tmp_path):
    sc = tiny(model={"hidden": [16] * 12}, variants=[{"name": "tanh", "set": {"activation": "tanh"}}],
              expect=[{"metric": "grad_std", "layer": 1, "op": ">", "value": 0},
                      {"metric": "grad_std", "layer": 10, "op": ">", "value": 0}])

    async def body():
        app = cli_app(sc, tmp_path)
        async with app.run_test(size=(100, 30)) as pilot:
            await run_screen(pilot)
            compare = await compare_screen(pilot)
            table = compare.query_one(VariantTable)
            await until(pilot, lambda: table.marker, "the layer pager")
            assert "(the claims')" in table.marker and "of 13" in table.marker
            first = [line.plain.split()[0] for line in table.lines(table.size.width)[2:]]
            assert "1" in first and "10" in first
            await pilot.press("pagedown")
            await until(pilot, lambda: "layers 1-" in table.marker, "the first page in order")
            await pilot.press("pageup")
            await until(pilot, lambda: "(the claims')" in table.marker, "back to the claims' layers")

    run(body)


def test_q_quits_from_compare_while_the_variants_train(tmp_path):
    sc = tiny(steps=10_000_000, scenario={"pace": "max"}, variants=[{"name": "tanh", "set": {"activation": "tanh"}}])
    seen = {}

    async def body():
        app = cli_app(sc, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await run_screen(pilot)
            compare = await compare_screen(pilot)
            await until(pilot, lambda: compare.lockstep.running and compare.lockstep.step > 0, "training")
            seen["workers"] = [w for w in app.workers if w.group == "compare"]
            await pilot.press("q")
        return app

    app = run(body, timeout=20)  # the context completes: the app exited with the lockstep running
    assert app.return_code == 0
    assert seen["workers"] and all(w.is_finished for w in seen["workers"])


def test_from_run_reads_your_changes_through_the_public_api(tmp_path):
    sc = tiny()
    sim = Simulation(sc)
    sim.set(activation="tanh")
    sim.set(lr=0.5)
    assert sim.user_changes() == {"activation": "tanh", "lr": 0.5}
    sim.user_changes()["lr"] = 9.0  # a copy: the simulation's own record is untouched
    screen = CompareScreen.from_run(sc, sim)
    assert list(screen.scenarios) == ["original", "yours"]
    assert screen.scenarios["yours"].train.lr == 0.5 and screen.scenarios["yours"].model.activation == "tanh"
    assert screen.changes == {"yours": {"activation": "tanh", "lr": 0.5}}


# -- files ---------------------------------------------------------------------------------------------------
def test_e_exports_the_history_as_csv_in_the_output_dir(tmp_path):
    async def body():
        app = cli_app(tiny(), tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            screen.runner.sim.step(45)
            screen.runner.publish()
            await pilot.press("e")
            await pilot.pause()
            text = screen.query_one(MessageLine).message
            assert screen.last_exported.name in text and screen.last_exported_layers.name in text
            return screen.last_exported, screen.runner.latest

    path, snap = run(body)
    history = snap.history
    assert path.parent == tmp_path and path.name.endswith("-history.csv")
    layers = path.with_name(path.name.replace("-history.csv", "-layers.csv"))
    with layers.open(newline="") as fh:
        layer_rows = list(csv.DictReader(fh))
    # every layer at every recorded step (0..45, every step), from the same snapshot
    assert [(int(r["step"]), int(r["layer"])) for r in layer_rows] == [(s, i) for s in range(46) for i in (1, 2, 3)]
    for row in layer_rows:
        stats = snap.timeline.at(int(row["step"])).layers[int(row["layer"]) - 1]
        assert float(row["act_std"]) == stats.act_std and float(row["dead_fraction"]) == stats.dead_fraction
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == list(range(0, 46))
    steps = rows[1:]  # row 0 carries the initial evaluation only
    for name in ("lr", "loss", "train_acc", "grad_norm"):
        assert np.array_equal(np.array([float(r[name]) for r in steps]), history[name]), name
    val = {int(r["step"]): float(r["val_loss"]) for r in rows if r["val_loss"]}
    assert sorted(val) == [0, 20, 40] == history["val_step"].astype(int).tolist()
    assert np.array_equal(np.array(list(val.values())), history["val_loss"])


def test_ctrl_s_writes_a_toml_in_the_output_dir(tmp_path):
    async def body():
        app = cli_app(tiny(), tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            await pilot.press("ctrl+s")
            await pilot.pause()
            return screen.last_saved

    path = run(body)
    assert path.parent == tmp_path and path.suffix == ".toml"
    assert path.name.startswith("tiny-spiral-")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Saved from the nnlab run of 'tiny.toml' at step 0.")
    assert load_scenario(path) == tiny()  # nothing changed: the same scenario back


async def _session(tmp_path: Path, sc: Scenario, sim: Simulation, script) -> Path:
    """A run screen around a pre-stepped simulation (no live stepping): play `script`, then ctrl+s."""
    app = make_app(output_dir=tmp_path, warm_up=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = RunScreen(sc, source="tiny.toml", autostart=False, simulation=sim)
        await app.push_screen(screen)
        await pilot.pause()
        await script(pilot, screen)
        await pilot.press("ctrl+s")
        await pilot.pause()
        return screen.last_saved


async def _press_n(pilot, screen, times: int) -> None:
    target = screen.runner.sim.step_count + times
    for _ in range(times):
        await pilot.press("n")
    await until(pilot, lambda: screen.runner.sim.step_count == target and screen.runner.pending == 0,
                f"{times} single steps")


def _assert_replays(path: Path, sim: Simulation) -> Simulation:
    replay = Simulation(load_scenario(path))
    replay.run_to(sim.step_count)
    assert replay.step_count == sim.step_count
    for name in ("step", "lr", "loss", "train_acc", "grad_norm", "val_step", "val_loss", "val_acc", "w_a", "w_b"):
        assert np.array_equal(replay.history.series[name].values(), sim.history.series[name].values(),
                              equal_nan=True), name
    assert np.array_equal(replay.network.params, sim.network.params)
    def full(events):
        out = []
        for e in events:
            change = Changes(**e.changes).model_dump(exclude_none=True)
            if "schedule" in change:  # a save past the end pins the span the session's schedule had
                change["schedule"].pop("total", None)
            out.append((e.step, change))
        return out

    assert full(replay.events) == full(sim.events)  # the user's changes come back as the scenario's events
    assert {e.source for e in replay.events} == {"scenario"}
    return replay


def test_a_saved_session_replays_bit_for_bit(tmp_path):
    """Step, change l, a, d (and b, s), step on, save: the file replays the session exactly,
    in-process and through `nnlab run FILE --steps N --headless --csv` (the header's advice)."""
    sc = tiny(steps=200)
    sim = Simulation(sc)
    sim.step(7)

    async def script(pilot, screen):
        await change(pilot, screen.runner, "l")
        await _press_n(pilot, screen, 5)
        await change(pilot, screen.runner, "a", "d")
        sim.step(25)  # the worker is idle: stepping here is the same as pressing n 25 times
        await change(pilot, screen.runner, "b", "s")
        sim.step(90)  # across the step schedule's first milestone (0.5 * 200)
        await change(pilot, screen.runner, "L")
        sim.step(3)

    path = run(lambda: _session(tmp_path, sc, sim, script))
    assert sim.step_count == 130
    assert [(e.step, sorted(e.changes)) for e in sim.events] == [
        (7, ["lr"]), (12, ["activation"]), (12, ["dropout"]), (37, ["batchnorm"]), (37, ["schedule"]),
        (127, ["lr"])]
    assert "nnlab run " + path.name + " --steps 130" in path.read_text(encoding="utf-8")
    _assert_replays(path, sim)

    csv_path = tmp_path / "replay.csv"
    result = CliRunner().invoke(lab.cli.app, ["run", str(path), "--steps", "130", "--headless", "--csv",
                                              str(csv_path)])
    assert result.exit_code == 0, result.output
    with csv_path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))[1:]
    assert [int(r["step"]) for r in rows] == list(range(1, 131))
    assert np.array_equal(np.array([float(r["loss"]) for r in rows]), sim.history.series["loss"].values())
    assert np.array_equal(np.array([float(r["grad_norm"]) for r in rows]), sim.history.series["grad_norm"].values())

    # and it is a valid curriculum file: `nnlab check FILE` runs it (no expectations: nothing can fail)
    result = CliRunner().invoke(lab.cli.app, ["check", str(path)])
    assert result.exit_code == ExitCode.OK, result.output


def test_a_saved_session_replays_bit_for_bit_past_the_end_of_the_scenario(tmp_path):
    """Space continues past train.steps; the saved file must still replay, with a constant lr."""
    sc = tiny(steps=40)
    sim = Simulation(sc)
    sim.step(30)

    async def script(pilot, screen):
        await change(pilot, screen.runner, "l", "a")
        sim.step(30)  # to step 60, past the scenario's 40
        await change(pilot, screen.runner, "L")
        await _press_n(pilot, screen, 2)

    path = run(lambda: _session(tmp_path, sc, sim, script))
    assert load_scenario(path).train.steps == 62
    _assert_replays(path, sim)


def test_a_saved_session_with_a_relative_schedule_replays_past_the_end(tmp_path):
    sc = tiny(steps=100)
    sim = Simulation(sc)
    sim.step(10)

    async def script(pilot, screen):
        # a step schedule chosen at step 10 spans the rest of the run (90 steps): milestones at
        # 0.5 and 0.75 of that, steps 55 and 77.5
        await change(pilot, screen.runner, "s")
        sim.step(110)  # space continues past the end: to step 120

    path = run(lambda: _session(tmp_path, sc, sim, script))
    lrs = sim.history.series["lr"].values()  # lrs[k]: the lr of (0-based) step k
    assert lrs[54] == pytest.approx(0.1) and lrs[55] == pytest.approx(0.01) and lrs[78] == pytest.approx(0.001)
    _assert_replays(path, sim)


# -- divergence and quitting -------------------------------------------------------------------------------
def test_divergence_shows_in_the_status_bar_and_L_then_r_recovers(tmp_path):
    sc = tiny(steps=100_000, train={"lr": 1e6, "optimizer": "sgd"})

    async def body():
        app = cli_app(sc, tmp_path, autostart=True)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            r = screen.runner
            await until(pilot, lambda: r.sim.diverged, "divergence")
            await until(pilot, lambda: screen.state() == "diverged" and "DIVERGED" in status_text(screen),
                        "DIVERGED in the status bar")
            assert not r.running
            assert "diverged at step" in r.message
            await until(pilot, lambda: "Diverged at step" in str(screen.query_one(MessageLine).content),
                        "the diagnosis in the message line")
            assert not app._notifications  # one message line, no toasts over the data
            screen_text(app)  # every panel draws a run full of NaN/Inf
            for view in VIEWS[1:]:
                await pilot.press("v")
                await pilot.pause()
                screen_text(app)
            await pilot.press("space")  # refused while diverged, with a hint
            assert not r.running
            stuck = r.sim.step_count

            await change(pilot, r, *["L"] * 14)  # 1e6 / sqrt(10)^14 = 0.1
            await pilot.press("r")
            await until(pilot, lambda: r.sim.step_count == 0 and not r.sim.diverged, "the reset")
            await pilot.pause()
            assert r.sim.current.train.lr == pytest.approx(0.1)
            assert screen.state() == "paused"
            await pilot.press("space")
            await until(pilot, lambda: r.sim.step_count > max(stuck, 200), "steps after the recovery")
            assert not r.sim.diverged
            screen.tick(force=True)
            assert "DIVERGED" not in status_text(screen)

    run(body)


def test_q_quits_cleanly_while_the_worker_is_training(tmp_path):
    sc = tiny(steps=10_000_000)
    seen = {}

    async def body():
        app = cli_app(sc, tmp_path, autostart=True)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            await until(pilot, lambda: screen.runner.sim.step_count > 0, "training")
            assert screen.runner.running
            seen["workers"] = list(app.workers)
            await pilot.press("q")
        return app

    app = run(body, timeout=20)  # the context completes: the app exited with its worker running
    assert app.return_code == 0
    assert seen["workers"] and all(w.is_finished for w in seen["workers"])
    # is_finished: the worker's loop returned, so nothing trains on after exit (a view asked for
    # by a frame drawn during teardown may still be queued, unread: `pending` proves nothing here)


# -- the browser --------------------------------------------------------------------------------------------
def _tree_entries(screen: BrowserScreen) -> list[tuple[str, str]]:
    tree = screen.query_one("Tree")
    return [(str(topic.label), leaf.data.name) for topic in tree.root.children for leaf in topic.children]


def test_browser_lists_every_bundled_scenario_under_its_topic_and_enter_runs_one(tmp_path):
    entries = bundled()
    assert entries

    async def body():
        app = make_app(output_dir=tmp_path, warm_up=False)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: isinstance(app.screen, BrowserScreen), "the browser")
            browser = app.screen
            listed = _tree_entries(browser)
            assert sorted(listed) == sorted((e.topic, e.name) for e in entries)
            tree = browser.query_one("Tree")
            for topic in tree.root.children:  # leaves are shown by their file stem, under the topic
                assert all(leaf.data.topic == str(topic.label) for leaf in topic.children)
                assert [str(leaf.label) for leaf in topic.children] == [leaf.data.path.stem for leaf in topic.children]
            # Enter on the (cheapest) scenario with the fewest steps
            leaf = min((leaf for t in tree.root.children for leaf in t.children),
                       key=lambda n: load_scenario(n.data.path).train.steps)
            tree.move_cursor(leaf)
            await pilot.pause()
            assert load_scenario(leaf.data.path).name in str(browser.query_one("#detail-title").content)
            await pilot.press("enter")
            screen = await run_screen(pilot)
            assert screen.scenario == load_scenario(leaf.data.path)
            assert screen.source == leaf.data.name
            await pilot.press("escape")  # back to the browser
            await until(pilot, lambda: app.screen is browser, "back to the browser")

    run(body)


def test_browser_lists_the_scenarios_of_a_given_folder(tmp_path):
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    (folder / "alpha.toml").write_text('[scenario]\nname = "my alpha"\n[data]\nn = 100\n[model]\nhidden = [4]\n')
    (folder / "sub" / "beta.toml").write_text('[scenario]\nname = "my beta"\n[model]\nhidden = [4]\n')

    async def body():
        app = make_app(paths=[folder], output_dir=tmp_path, warm_up=False)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: isinstance(app.screen, BrowserScreen), "the browser")
            listed = _tree_entries(app.screen)
            assert ("mine", "alpha") in listed and ("mine/sub", "sub/beta") in listed
            assert len(listed) == len(bundled()) + 2
            tree = app.screen.query_one("Tree")
            leaf = next(n for t in tree.root.children for n in t.children if n.data.name == "alpha")
            tree.move_cursor(leaf)
            await pilot.pause()
            assert "my alpha" in str(app.screen.query_one("#detail-title").content)

    run(body)


# -- terminal size and no terminal ----------------------------------------------------------------------------
def _too_small_screens(app) -> int:
    return sum(isinstance(s, TooSmallScreen) for s in app.screen_stack)




def test_a_small_terminal_shows_the_too_small_message(tmp_path):
    async def body():
        app = make_app(output_dir=tmp_path, warm_up=False)
        async with app.run_test(size=(70, 20)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, TooSmallScreen), "the too-small screen")
            text = screen_text(app)
            assert "terminal too small: 70x20" in text and "at least 80x24" in text and "press q to quit" in text
            assert "pick a scenario" not in text  # nothing squashed behind it

    run(body)


def test_a_too_small_run_screen_keeps_training_and_q_quits(tmp_path):
    async def body():
        app = cli_app(tiny(steps=1_000_000), tmp_path, autostart=True)
        async with app.run_test(size=(60, 15)) as pilot:
            await until(pilot, lambda: any(isinstance(s, RunScreen) and s.runner is not None
                                           for s in app.screen_stack), "the run screen's simulation")
            run_screen_ = next(s for s in app.screen_stack if isinstance(s, RunScreen))
            await until(pilot, lambda: run_screen_.runner.sim.step_count > 0, "training behind the message")
            assert isinstance(app.screen, TooSmallScreen)
            await pilot.press("q")
        return app

    assert run(body, timeout=30).return_code == 0


def test_enlarging_a_small_terminal_removes_the_message(tmp_path):
    async def body():
        app = make_app(output_dir=tmp_path, warm_up=False)
        async with app.run_test(size=(70, 20)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, TooSmallScreen), "the too-small screen")
            await pilot.resize_terminal(100, 30)
            await until(pilot, lambda: isinstance(app.screen, BrowserScreen), "the browser back")
            assert _too_small_screens(app) == 0
            assert "terminal too small" not in screen_text(app)

    run(body)


def test_starting_small_pushes_one_too_small_screen_over_the_browser(tmp_path):
    async def body():
        app = make_app(output_dir=tmp_path, warm_up=False)
        async with app.run_test(size=(70, 20)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, TooSmallScreen), "the too-small screen")
            await pilot.pause()  # a UI turn: a second too-small screen would be pushed by now
            assert [type(s) for s in app.screen_stack[1:]] == [BrowserScreen, TooSmallScreen]

    run(body)


def test_shrinking_the_terminal_shows_the_message_at_once(tmp_path):
    async def body():
        app = make_app(output_dir=tmp_path, warm_up=False)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, BrowserScreen), "the browser")
            await pilot.resize_terminal(70, 20)
            await until(pilot, lambda: isinstance(app.screen, TooSmallScreen), "the too-small screen")
            await until(pilot, lambda: "terminal too small: 70x20" in screen_text(app), "the message")

    run(body)


def test_the_message_follows_the_size_while_still_too_small(tmp_path):
    async def body():
        app = make_app(output_dir=tmp_path, warm_up=False)
        async with app.run_test(size=(70, 20)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, TooSmallScreen), "the too-small screen")
            await pilot.resize_terminal(90, 20)  # wide enough, still too low
            await until(pilot, lambda: "terminal too small: 90x20" in screen_text(app), "the new size")

    run(body)


def test_cli_without_a_terminal_exits_2_and_points_to_headless():
    result = CliRunner().invoke(lab.cli.app, [])
    assert result.exit_code == ExitCode.USAGE == 2
    assert "not a terminal" in result.output
    assert "nnlab run SCENARIO --headless" in result.output
    assert "Traceback" not in result.output
