"""The live lab as a teacher demos it: a pace a person can follow, a screen that always shows
the latest state (also after a change made while paused), settings always visible, every
key reachable from the palette and the help, deep networks shown whole (by pages), notices
in one message line, readable axes.

Waiting is a bounded poll on a condition (`until`); the deadline only catches hangs.  The
one timing assertion here is an upper bound on steps at a pace, which a slow or busy
machine can only make easier to meet.
"""

from __future__ import annotations

import math
import re
import time

import numpy as np
import pytest

from lab import Simulation, load_scenario
from lab.pace import MIN_PACE, PACES, WATCH_SECONDS, describe, faster, initial_pace, parse_pace, slower
from lab.report.table import LAYER_COLUMNS
from lab.scenario.catalog import resolve
from lab.sim.bins import ACT_BINS, SYMLOG_BINS, WIDE_ACT_BINS
from lab.tui.keys import BROWSER_KEYS, COMPARE_KEYS, HELP_KEYS, RUN_KEYS, ZOOM_KEYS, markdown_table, readme_block
from lab.tui.paced import MAX_BACKLOG_SECONDS
from lab.tui.screens.browser import BrowserScreen
from lab.tui.screens.help import HelpScreen
from lab.tui.screens.run import RunScreen
from lab.tui.widgets.bars import axis, tick_label
from lab.tui.widgets.curves import Curves
from lab.tui.widgets.histograms import HistogramGrid
from lab.tui.widgets.panels import MessageLine, SettingsBar, StatsPanel
from tests.test_tui import SIZE, cli_app, run, run_screen, screen_text, status_text, tiny, until

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def message(screen) -> str:
    return str(screen.query_one(MessageLine).content)


def table_text(screen) -> str:
    return str(screen.query_one(StatsPanel).content)


# -- pace -------------------------------------------------------------------------------------------------
def test_default_pace_makes_a_run_last_about_half_a_minute():
    assert initial_pace(None, 600) == pytest.approx(600 / WATCH_SECONDS)
    assert 20 <= 600 / initial_pace(None, 600) <= 40
    assert initial_pace(None, 3) == MIN_PACE  # never so slow that nothing seems to happen
    assert initial_pace(12, 600) == 12
    assert initial_pace("20s", 600) == pytest.approx(30)
    assert initial_pace("max", 600) is None


@pytest.mark.parametrize("bad", [0, -3, "fast", "0s", "s", True, float("inf")])
def test_a_bad_pace_is_refused_with_the_accepted_forms(bad):
    with pytest.raises(ValueError, match="pace"):
        parse_pace(bad)


def test_plus_and_minus_walk_the_scale_from_any_pace():
    assert faster(20) == 50 and slower(20) == 10
    assert faster(13.3) == 20 and slower(13.3) == 10  # an in-between default joins the scale
    assert slower(PACES[0]) == PACES[0] and faster(None) is None and slower(None) == PACES[-2]
    assert [describe(p) for p in (0.5, 20, 2000, None)] == ["0.5/s", "20/s", "2k/s", "max"]


def test_every_bundled_scenario_runs_20_to_40_seconds_at_its_default_pace():
    from lab.scenario.catalog import bundled

    for entry in bundled():
        sc = load_scenario(entry.path)
        pace = initial_pace(sc.scenario.pace, sc.train.steps)
        assert pace is not None and 20 <= sc.train.steps / pace <= 40 + 1e-9, entry.name


def test_the_run_starts_at_the_default_pace_and_never_runs_ahead_of_it(tmp_path):
    sc = tiny(steps=6000, scenario={"pace": None})  # default pace: 200 steps/s

    async def body():
        app = cli_app(sc, tmp_path, autostart=True)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            r = screen.runner
            assert r.pace == pytest.approx(200)
            start, t0 = r.sim.step_count, time.perf_counter()
            await until(pilot, lambda: r.sim.step_count >= start + 40, "steps at the pace")
            await until(pilot, lambda: "pace 200/s" in status_text(screen), "the pace in the status line")
            elapsed = time.perf_counter() - t0
            done = r.sim.step_count - start
            # an upper bound only: a busy machine makes fewer steps, never more
            assert done <= r.pace * (elapsed + MAX_BACKLOG_SECONDS) + 2
            assert r.running and "RUNNING" in status_text(screen)

    run(body)


def test_the_end_pauses_and_says_so_space_goes_on_and_r_replays(tmp_path):
    async def body():
        app = cli_app(tiny(steps=50, scenario={"pace": 50}), tmp_path, autostart=True)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            r = screen.runner
            await until(pilot, lambda: r.ended and r.sim.step_count == 50, "the end of the scenario")
            await until(pilot, lambda: "DONE" in status_text(screen) and "steps are done" in message(screen),
                        "DONE and the message")
            first = r.latest.timeline.records[0]  # the run's record of step 0
            await pilot.press("r")  # at the end, r replays from step 0 (running)
            # pilot.press returns once the whole process idles, which a 1-s replay that records every
            # step may not do before its end: look for the new run's step-0 record, not for a mid-run moment
            await until(pilot, lambda: r.pending == 0 and r.latest.timeline.records[0] is not first, "the replay")
            await until(pilot, lambda: r.ended and r.sim.step_count == 50, "the replay reaching the end again")
            await pilot.press("space")  # space goes on past the end
            await until(pilot, lambda: r.sim.step_count > 50, "steps past the end")
            await until(pilot, lambda: "past 50" in status_text(screen), "the status saying so")
            await pilot.press("space")
            await until(pilot, lambda: not r.running and r.pending == 0, "paused")
            await pilot.press("r")  # a run the user paused resets and stays paused at step 0
            await until(pilot, lambda: r.pending == 0 and r.sim.step_count == 0, "the reset")
            assert not r.running and "PAUSED" in status_text(screen)

    run(body)


# -- the screen is always the latest truth ----------------------------------------------------------------
def test_the_last_snapshot_of_a_run_is_drawn_in_the_curves(tmp_path):
    async def body():
        app = cli_app(tiny(steps=400), tmp_path, autostart=True)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await run_screen(pilot)
            r = screen.runner
            await until(pilot, lambda: r.ended, "the end of the run")
            for curve in screen.query(Curves):
                await until(pilot, lambda c=curve: c._drawn is not None and c._drawn.step == 400,
                            f"the {curve.metric} curve at the final step")
            assert screen._shown.step == 400

    run(body)


@pytest.mark.parametrize("key", ["i", "a", "b", "d", "p"])
def test_a_change_while_paused_refreshes_every_statistic_at_once(tmp_path, key):
    """The table after the key equals the statistics of a fresh Simulation brought to the same
    state: every number describes the network as it is now (no stale activations)."""
    sc = tiny()

    async def body():
        app = cli_app(sc, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            r = screen.runner
            for _ in range(5):
                await pilot.press("n")
            await until(pilot, lambda: r.sim.step_count == 5 and r.pending == 0, "five steps")
            before = r.latest
            await pilot.press(key)
            await until(pilot, lambda: r.pending == 0 and r.latest is not before, "the change published")
            assert r.sim.step_count == 5  # nothing stepped
            shown = r.latest
            await until(pilot, lambda: screen._shown is shown, "the new snapshot on screen")
            change = r.sim.events[-1].changes
            return shown, change

    shown, change = run(body)
    replay = Simulation(sc)
    replay.step(5)
    replay.set(**change)
    want = replay.snapshot()
    for got_layer, want_layer in zip(shown.layers, want.layers):
        for name in ("act_std", "act_mean", "grad_std", "dead_fraction", "saturated_fraction", "weight_std"):
            a, b = getattr(got_layer, name), getattr(want_layer, name)
            assert a == b or (math.isnan(a) and math.isnan(b)), (key, name)
        np.testing.assert_array_equal(got_layer.act_hist, want_layer.act_hist)


def test_pressing_i_while_paused_changes_the_table_at_once(tmp_path):
    sc = load_scenario(resolve("init/small-random-tanh-collapse"))

    async def body():
        app = cli_app(sc.model_copy(update={"scenario": sc.scenario.model_copy(update={"pace": "max"})}), tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            r = screen.runner
            await until(pilot, lambda: screen._shown is not None, "the first frame")
            std_before = [s.act_std for s in r.latest.layers]
            table_before = table_text(screen)
            await pilot.press("i")  # normal(0.01) -> orthogonal... whichever comes next: its own scale
            await until(pilot, lambda: r.pending == 0 and table_text(screen) != table_before, "the table to change")
            std_after = [s.act_std for s in r.latest.layers]
            assert std_after[5] > 10 * std_before[5]  # the collapse is gone with a scheme's own scale
            assert r.sim.step_count == 0

    run(body)


def test_a_named_init_uses_its_own_scale_not_the_scenarios():
    sc = load_scenario(resolve("init/small-random-tanh-collapse"))  # normal, init_scale 0.01
    sim = Simulation(sc)
    sim.set(init="xavier")
    assert sim.current.model.init_scale is None
    assert sim.snapshot().settings["init_std"] == pytest.approx(1 / math.sqrt(1024))
    deep = sim.snapshot().layers[5].act_std
    assert deep > 0.2  # Xavier keeps the signal alive through six tanh layers


# -- schedules chosen mid-run -------------------------------------------------------------------------------
def test_a_schedule_chosen_after_the_end_starts_there_and_spans_another_run(tmp_path):
    sc = tiny(steps=100)

    async def body():
        app = cli_app(sc, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            r = screen.runner
            r.sim.step(130)  # past the end (the worker is idle)
            r.publish()
            lr = r.sim.current.train.lr
            await pilot.press("s")  # constant -> step (milestones at 0.5, 0.75 of the span)
            await until(pilot, lambda: r.pending == 0 and r.sim.events, "the schedule change")
            schedule = r.sim.current.train.schedule
            assert schedule.kind == "step" and schedule.start == 130 and schedule.total == 100
            lrs = r.sim.lr_at(np.arange(130, 240))
            assert lrs[0] == pytest.approx(lr)  # no cut at the moment it is chosen
            assert lrs[49] == pytest.approx(lr) and lrs[50] == pytest.approx(0.1 * lr)
            assert "from 130" in " ".join(f"{k} {v}" for k, v in
                                          [("s", screen.query_one(SettingsBar).lines(200)[0].plain)])

    run(body)


# -- settings, messages ------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
def test_every_setting_is_on_screen_at_80_columns_too(tmp_path, size):
    sc = tiny(model={"dropout": 0.2}, train={"weight_decay": 1e-3, "optimizer": "adam"},
              data={"preprocess": ["center"]})

    async def body():
        app = cli_app(sc, tmp_path)
        async with app.run_test(size=size) as pilot:
            screen = await run_screen(pilot)
            await until(pilot, lambda: screen._shown is not None, "the first frame")
            await pilot.pause()
            return screen_text(app)

    text = run(body)
    for piece in ("lr 0.1", "constant", "relu", "kaiming", "dropout 0.2 inverted", "no batchnorm", "adam",
                  "pre center", "wd 0.001", "? help", "q quit"):
        assert piece in text, (size, piece)
    assert all(len(line.rstrip()) <= size[0] for line in text.splitlines())


def test_key_presses_go_to_one_message_line_never_toasts(tmp_path):
    async def body():
        app = cli_app(tiny(), tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            for key in ("l", "a", "d", "o", "r"):
                await pilot.press(key)
                await until(pilot, lambda: screen.runner.pending == 0, f"{key} applied")
            assert not app._notifications
            assert "replay from step 0" in message(screen)
            await pilot.press("l")
            await until(pilot, lambda: "lr=" in message(screen), "the lr change in the message line")

    run(body)


# -- keys: declared once, reachable everywhere ----------------------------------------------------------
def test_bindings_are_the_key_declarations():
    for keys, screen in ((RUN_KEYS, RunScreen), (BROWSER_KEYS, BrowserScreen), (HELP_KEYS, HelpScreen)):
        assert [(b.key, b.action) for b in screen.BINDINGS] == [(k.keys, k.action) for k in keys]
    for keys in (RUN_KEYS, ZOOM_KEYS, COMPARE_KEYS, BROWSER_KEYS):
        assert any(k.shown == "?" and k.footer for k in keys) and any(k.shown == "q" and k.footer for k in keys)
        for k in keys:
            if k.action.startswith("app."):
                continue
            screen = {id(RUN_KEYS): RunScreen, id(BROWSER_KEYS): BrowserScreen}.get(id(keys))
            if screen is not None:
                name = k.action.split("(")[0]
                assert hasattr(screen, f"action_{name}"), f"{screen.__name__} has no action for {k.keys}"


def test_the_readme_key_table_is_the_declaration():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme_block() in readme, "README's key table is stale: run `python -m lab.tui.keys`"
    assert markdown_table(RUN_KEYS).count("\n") == len(RUN_KEYS) + 1


@pytest.mark.parametrize("query,expect", [("dropout", ["dropout +0.1", "dropout −0.1", "dropout mode"]),
                                          ("zoom", ["zoom on a layer"]), ("learning rate", ["learning rate ×√10"]),
                                          ("help", ["help: every key"])])
def test_the_command_palette_finds_the_labs_actions(tmp_path, query, expect):
    async def body():
        app = cli_app(tiny(), tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await run_screen(pilot)
            await pilot.press("ctrl+p")
            await until(pilot, lambda: app.screen.__class__.__name__ == "CommandPalette", "the palette")
            await pilot.press(*query)
            from textual.command import CommandList

            def options() -> list[str]:
                listing = app.screen.query_one(CommandList)
                return [str(listing.get_option_at_index(i).prompt) for i in range(listing.option_count)]

            await until(pilot, lambda: all(any(e in o for o in options()) for e in expect),
                        f"{expect} among the commands")

    run(body)


def test_a_palette_command_does_what_its_key_does(tmp_path):
    async def body():
        app = cli_app(tiny(), tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            r = screen.runner
            await pilot.press("ctrl+p")
            await until(pilot, lambda: app.screen.__class__.__name__ == "CommandPalette", "the palette")
            await pilot.press(*"dropout +0.1")
            from textual.command import CommandList

            await until(pilot, lambda: app.screen.query_one(CommandList).option_count > 0, "a match")
            await pilot.press("enter")
            await until(pilot, lambda: r.pending == 0 and r.sim.current.model.dropout == pytest.approx(0.1),
                        "dropout raised through the palette")

    run(body)


def test_escape_goes_back_from_every_screen(tmp_path):
    async def body():
        app = cli_app(tiny(), tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            await until(pilot, lambda: screen._shown is not None, "the first frame")
            for key, name in (("question_mark", "HelpScreen"), ("z", "ZoomScreen")):
                await pilot.press(key)
                await until(pilot, lambda: app.screen.__class__.__name__ == name, name)
                await pilot.press("escape")
                await until(pilot, lambda: app.screen is screen, f"back from {name}")
            await pilot.press("escape")  # a scenario opened directly goes back to the curriculum
            await until(pilot, lambda: isinstance(app.screen, BrowserScreen), "the browser")

    run(body)


# -- deep networks -------------------------------------------------------------------------------------------
def test_a_25_layer_network_is_shown_whole_page_by_page(tmp_path):
    sc = tiny(model={"hidden": [8] * 24})

    async def body():
        app = cli_app(sc, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            await until(pilot, lambda: screen._shown is not None, "the first frame")
            seen: set[int] = set()
            for _ in range(10):
                grid = screen.query_one(HistogramGrid)
                layers = list(grid.numbers)
                assert layers[-1] == 25  # the output layer is on every page
                marker = screen.query_one(StatsPanel).border_title
                assert re.search(r"layers \d+-\d+ and 25 \(output\) of 25", str(marker))
                text = screen_text(app)
                for n in layers:  # every layer of the page has its histogram row and its table row
                    assert re.search(rf"^ ?{n} +relu|^ ?{n} +output", text, re.M), n
                seen.update(layers)
                await pilot.press("pagedown")
                await pilot.pause()
            assert seen == set(range(1, 26))
            return text

    text = run(body)
    assert all(len(line.rstrip()) <= SIZE[0] for line in text.splitlines())


# -- axes -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bins,symlog", [(ACT_BINS["tanh"], False), (ACT_BINS["sigmoid"], False),
                                         (WIDE_ACT_BINS, False), (SYMLOG_BINS, True)])
@pytest.mark.parametrize("width", [8, 11, 17, 31, 45, 80])
def test_axis_labels_are_whole_numbers_in_order_and_fit(bins, symlog, width):
    line = axis(bins.edges, width, symlog)
    assert len(line) == width
    tokens = line.split()
    values = [float(t) for t in tokens]  # every label parses: nothing is cut mid-number
    assert values == sorted(values)
    ends = [tick_label(float(bins.edges[0]), symlog), tick_label(float(bins.edges[-1]), symlog)]
    if width >= len(ends[0]) + len(ends[1]) + 1:
        assert tokens[0] == ends[0] and tokens[-1] == ends[1]


def test_a_diverged_loss_is_drawn_on_a_log_axis_with_short_labels(tmp_path):
    sc = tiny(steps=100_000, train={"lr": 1e6})

    async def body():
        app = cli_app(sc, tmp_path, autostart=True)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await run_screen(pilot)
            await until(pilot, lambda: screen.runner.sim.diverged, "divergence")
            loss = screen.query_one("#loss-curve", Curves)
            await until(pilot, lambda: loss._drawn is not None and loss._drawn.diverged, "the diverged run drawn")
            return loss.log_axis, screen_text(app)

    log_axis, text = run(body)
    assert log_axis
    assert not re.search(r"\d{10,}", text)  # no 20-digit tick labels


@pytest.mark.parametrize("width", [60, 78, 98])
def test_the_table_keeps_its_columns_and_their_places_while_the_values_change(width):
    """A column that fits only while the values are short would come and go between frames:
    the columns and their widths are chosen by the widest usual cell, not by this frame's."""
    from lab.report.table import fitting_columns

    from dataclasses import replace

    sim = Simulation(tiny())
    sim.step(5)
    snap = sim.snapshot()
    layers = list(range(1, len(snap.layers) + 1))
    short = replace(snap, layers=[replace(s, act_mean=0.5, act_std=0.5, grad_std=0.5, update_ratio=0.5)
                                  for s in snap.layers])
    long = replace(snap, layers=[replace(s, act_mean=-1.2e-05, act_std=1.2e-05, grad_std=1.2e-05,
                                         update_ratio=1.2e-05) for s in snap.layers])
    assert fitting_columns(width, short, layers) == fitting_columns(width, long, layers)
    for c in LAYER_COLUMNS:
        assert c.width >= len(c.header) or c.header in ("kind",), c.header
