"""The search screen driven through Textual's Pilot: trials appear ranked as they finish, the
border warning shows in place (and only when the best is on a border), Enter opens a trial
in the run screen with its settings and says which trial it is, escape comes back with the
rows intact, leaving cancels the search, and diverged trials never break it.

Most tests inject a fake search function (same signature as lab.search.engine.run_search,
building a real SearchResult, no processes); one runs the real engine end to end.  Waiting
is a bounded poll (`until`), never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import io
import math
import multiprocessing
import threading
import time

import pytest
from rich.console import Console

from lab.scenario.schema import Scenario
from lab.search.engine import SearchResult, axes_of
from lab.search.trial import Trial
from lab.tui.app import make_app
from lab.tui.screens.browser import BrowserScreen
from lab.tui.screens.run import RunScreen
from lab.tui.screens.search import SearchScreen
from lab.tui.search_feed import compact, outcome, trial_label
from lab.tui.widgets.panels import MessageLine, SettingsBar
from lab.tui.widgets.scatter import SearchScatter, x_ticks

TIMEOUT = 90.0


def tiny_search(trials: int = 6, steps: int = 20, stages: list | None = None) -> Scenario:
    raw = {"scenario": {"name": "tiny spiral search", "seed": 0, "pace": "max"},
           "data": {"kind": "spiral", "n": 200},
           "model": {"hidden": [16]},
           "train": {"steps": 40, "eval_every": 10},
           "search": {"trials": trials, "steps": steps, "metric": "val_acc",
                      "params": {"lr": "log:1e-3:1", "l2": "log:1e-5:1e-1"},
                      "stages": stages or []}}
    return Scenario.model_validate(raw)


def trial(index: int, lr: float, l2: float, metric: float | None, *, stage: int = 0, diverged_at: int | None = None,
          steps: int = 20) -> Trial:
    if metric is None:
        status = "diverged" if diverged_at is not None else "failed"
        return Trial(index, stage, {"lr": lr, "l2": l2}, 1000 + index, steps, status, math.nan, math.nan, math.nan,
                     diverged_at=diverged_at, reason="diverged" if diverged_at else "boom")
    return Trial(index, stage, {"lr": lr, "l2": l2}, 1000 + index, steps, "ok", metric, metric, 1.0 - metric)


# the best (0.91) in the middle of both log ranges: no border warning
INSIDE = [trial(0, 0.5, 1e-4, 0.70), trial(1, 0.03, 1e-3, 0.91), trial(2, 0.9, 1e-2, None, diverged_at=37),
          trial(3, 0.002, 1e-5 * 1.2, 0.40), trial(4, 0.01, 3e-3, 0.85), trial(5, 0.1, 0.05, 0.60)]
# the best (0.95) at lr 0.9: in the top 10% of log:1e-3:1
ON_BORDER = [trial(0, 0.03, 1e-3, 0.80), trial(1, 0.9, 1e-3, 0.95), trial(2, 0.002, 1e-4, 0.30)]


class FakeSearch:
    """run_search's signature and callbacks, over given trials; `gate` (if set) releases one trial
    per `release()`; `forever` waits for cancelled() after the trials."""

    def __init__(self, trials: list[Trial], *, gated: bool = False, forever: bool = False) -> None:
        self.trials = trials
        self.gate = threading.Semaphore(0) if gated else None
        self.forever = forever
        self.calls: list[dict] = []
        self.returned = threading.Event()
        self.saw_cancel = False

    def release(self, n: int = 1) -> None:
        for _ in range(n):
            self.gate.release()

    def __call__(self, scenario, spec=None, *, jobs=None, scheduler=None, on_trial=None, cancelled=None, resume=None,
                 out=None, on_plan=None):
        spec = spec if spec is not None else scenario.search
        self.calls.append({"jobs": jobs})
        result = SearchResult(scenario, spec, axes_of(spec))
        result.stage_axes.append(result.params)
        result.planned = len(self.trials)
        try:
            if on_plan:
                on_plan(result)
            for t in self.trials:
                while self.gate is not None and not self.gate.acquire(timeout=0.02):
                    if cancelled and cancelled():
                        self.saw_cancel = result.cancelled = True
                        return result
                result.trials.append(t)
                if on_trial:
                    on_trial(t)
            while self.forever:
                if cancelled and cancelled():
                    self.saw_cancel = result.cancelled = True
                    break
                time.sleep(0.01)
            result.trials.sort(key=lambda t: t.index)
            return result
        finally:
            self.returned.set()


def run(coro_fn, timeout: float = TIMEOUT):
    return asyncio.run(asyncio.wait_for(coro_fn(), timeout))


async def until(pilot, predicate, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await pilot.pause(0.02)


def screen_text(app) -> str:
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, color_system="truecolor",
                      record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


async def open_search(pilot, sc: Scenario, fake) -> SearchScreen:
    screen = SearchScreen(sc, source="tiny.toml", search=fake)
    await pilot.app.push_screen(screen)
    await until(pilot, lambda: pilot.app.screen is screen, "the search screen")
    return screen


def rows(screen: SearchScreen) -> list[list[str]]:
    table = screen.query_one("#trials")
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def warning_text(screen: SearchScreen) -> str:
    widget = screen.query_one("#border-warning")
    return str(widget.content) if widget.has_class("-shown") else ""


# -- pure helpers ---------------------------------------------------------------------------------------

def test_compact_values_and_the_trial_label():
    assert [compact(v) for v in (3.2e-3, 1e-4, 0.07, 0.5, 12.0, 128, "relu", True, 0.0)] == \
        ["3.2e-3", "1e-4", "0.07", "0.5", "12", "128", "relu", "true", "0"]
    t = trial(7, 3.2e-3, 1e-4, 0.9, stage=1)
    assert trial_label(t, 20) == "trial 7 of 20 (stage 1) lr=3.2e-3 l2=1e-4"
    assert outcome(trial(2, 1.0, 1e-3, None, diverged_at=37)) == "diverged at 37"


def test_log_axis_ticks_are_decades():
    axis = axes_of(tiny_search().search)[0]
    ticks, labels = x_ticks(axis)
    assert labels == ["1e-3", "1e-2", "1e-1", "1e0"] and ticks == [-3.0, -2.0, -1.0, 0.0]


# -- the screen -----------------------------------------------------------------------------------------

def test_trials_appear_as_they_finish_ranked_by_the_metric_without_a_border_warning():
    fake = FakeSearch(INSIDE, gated=True)

    async def body():
        app = make_app(warm_up=False, autostart=False)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_search(pilot, tiny_search(), fake)
            fake.release(2)
            await until(pilot, lambda: len(rows(screen)) == 2, "two trials")
            assert [r[1] for r in rows(screen)] == ["1", "0"]  # 0.91 before 0.70
            assert "2 of 6 trials" in screen_text(app)
            fake.release(4)
            await until(pilot, lambda: len(rows(screen)) == 6, "six trials")
            got = rows(screen)
            assert [r[1] for r in got] == ["1", "4", "0", "5", "3", "2"]  # by val_acc, the diverged last
            assert [r[0] for r in got] == ["1", "2", "3", "4", "5", ""]
            assert got[-1][-1] == "diverged at 37"
            await until(pilot, lambda: screen.view.state == "done", "the search's end")
            assert warning_text(screen) == ""
            assert "DONE" in screen_text(app) and "6 of 6 trials" in screen_text(app)

    run(body)


def test_the_border_warning_shows_in_place_when_the_best_so_far_is_on_a_border():
    fake = FakeSearch(ON_BORDER, gated=True)

    async def body():
        app = make_app(warm_up=False, autostart=False)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_search(pilot, tiny_search(3), fake)
            fake.release(1)  # best so far: lr 0.03, inside
            await until(pilot, lambda: len(rows(screen)) == 1, "the first trial")
            assert warning_text(screen) == ""
            fake.release(1)  # best so far: lr 0.9, in the top 10% of log:1e-3:1
            await until(pilot, lambda: warning_text(screen) != "", "the border warning")
            text = warning_text(screen)
            assert "lr" in text and "top edge" in text and "trial 1" in text
            assert "l2" not in text.split("trial 1")[1].split(":")[0]
            await until(pilot, lambda: "top edge" in screen_text(app), "the warning on screen")  # at 80x24
            assert screen.query_one("#border-warning").region.bottom <= screen.query_one("#trials").region.y

    run(body)


def test_enter_opens_the_trial_in_the_run_screen_and_escape_comes_back_with_the_rows():
    fake = FakeSearch(INSIDE)

    async def body():
        app = make_app(warm_up=False, autostart=False)
        async with app.run_test(size=(100, 30)) as pilot:
            base = tiny_search()
            screen = await open_search(pilot, base, fake)
            await until(pilot, lambda: len(rows(screen)) == 6 and screen.view.state == "done", "the trials")
            before = rows(screen)
            await pilot.press("down")  # the second best: trial 4 (lr 0.01, l2 3e-3)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, RunScreen), "the run screen")
            run_screen = app.screen
            t = INSIDE[4]
            assert run_screen.scenario.train.lr == t.params["lr"]
            assert run_screen.scenario.train.l2 == t.params["l2"]
            assert run_screen.scenario.seed == t.seed and run_screen.scenario.train.steps == t.steps
            assert run_screen.origin == "trial 4 of 6 (stage 0) lr=0.01 l2=3e-3"
            assert run_screen.query_one(SettingsBar).origin == "trial 4 of 6 (stage 0)"
            await until(pilot, lambda: run_screen.runner is not None, "the run's simulation")
            assert "trial 4 of 6" in screen_text(app)
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is screen, "back on the search screen")
            assert rows(screen) == before
            assert screen.cursor_trial().index == 4
            await pilot.press("enter")  # S on a trial's run goes back to its search too (not a new search)
            await until(pilot, lambda: isinstance(app.screen, RunScreen), "the run screen again")
            await pilot.press("S")
            await until(pilot, lambda: app.screen is screen, "back on the same search")
            assert len(fake.calls) == 1 and rows(screen) == before

    run(body)


def test_escape_cancels_the_search_and_its_worker_stops():
    fake = FakeSearch(INSIDE[:2], forever=True)

    async def body():
        app = make_app(warm_up=False, autostart=False)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_search(pilot, tiny_search(), fake)
            await until(pilot, lambda: len(rows(screen)) == 2, "two trials")
            worker = screen.worker
            assert worker.is_running
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, BrowserScreen), "back on the browser")
            await until(pilot, lambda: fake.returned.is_set(), "the search to return")
            assert fake.saw_cancel and worker.is_cancelled

    run(body)


def test_x_stops_the_search_and_keeps_the_trials():
    fake = FakeSearch(INSIDE[:3], forever=True)

    async def body():
        app = make_app(warm_up=False, autostart=False)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_search(pilot, tiny_search(), fake)
            await until(pilot, lambda: len(rows(screen)) == 3, "three trials")
            await pilot.press("x")
            await until(pilot, lambda: screen.view.state == "stopped", "the search stopped")
            assert fake.saw_cancel and len(rows(screen)) == 3 and "STOPPED" in screen_text(app)

    run(body)


def test_q_quits_while_the_search_runs():
    fake = FakeSearch(INSIDE[:1], forever=True)

    async def body():
        app = make_app(warm_up=False, autostart=False)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_search(pilot, tiny_search(), fake)
            await until(pilot, lambda: len(rows(screen)) == 1, "a trial")
            await pilot.press("q")
        assert fake.returned.wait(10) and fake.saw_cancel

    run(body)


def test_only_diverged_and_failed_trials_never_break_the_screen():
    bad = [trial(0, 0.9, 1e-3, None, diverged_at=3), trial(1, 0.5, 1e-2, None, diverged_at=12),
           trial(2, 0.2, 1e-4, None)]
    fake = FakeSearch(bad)

    async def body():
        app = make_app(warm_up=False, autostart=False)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await open_search(pilot, tiny_search(3), fake)
            await until(pilot, lambda: screen.view.state == "done" and len(rows(screen)) == 3, "the trials")
            got = rows(screen)
            assert [r[-1] for r in got][:2] == ["diverged at 3", "diverged at 12"]
            assert got[2][-1].startswith("failed")
            assert warning_text(screen) == ""
            await pilot.press("p")
            await pilot.pause()
            text = screen_text(app)
            assert "2 diverged" in text and "1 failed" in text
            await pilot.press("enter")  # a diverged trial opens too: it diverges on screen
            await until(pilot, lambda: isinstance(app.screen, RunScreen), "the run screen")

    run(body)


def test_p_cycles_the_scatter_through_the_parameters():
    fake = FakeSearch(INSIDE)

    async def body():
        app = make_app(warm_up=False, autostart=False)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await open_search(pilot, tiny_search(), fake)
            await until(pilot, lambda: screen.view.state == "done", "the trials")
            scatter = screen.query_one(SearchScatter)
            assert scatter.display and scatter.param == 0
            await pilot.press("p")
            assert scatter.param == 1
            assert "l2" in str(screen.query_one(MessageLine).content)
            await pilot.press("p")
            assert scatter.param == 0

    run(body)


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (160, 50)])
def test_the_screen_fits_its_terminal(size):
    fake = FakeSearch(ON_BORDER)

    async def body():
        app = make_app(warm_up=False, autostart=False)
        async with app.run_test(size=size) as pilot:
            screen = await open_search(pilot, tiny_search(3), fake)
            await until(pilot, lambda: screen.view.state == "done" and warning_text(screen), "the trials")
            await pilot.pause()
            text = screen_text(app)
            lines = text.splitlines()
            assert len(lines) <= size[1]
            flat = " ".join(" ".join(text.split("\n")).split())
            assert "top edge of log:1e-3:1 — extend the range upward (the best may lie outside it)" in flat  # whole
            header = next(line for line in lines if "val_acc" in line and "status" in line)
            assert "lr" in header and "l2" in header
            table = screen.query_one("#trials")
            assert table.display and table.size.height >= 4
            scatter = screen.query_one(SearchScatter)
            assert scatter.display == (size != (80, 24))
            if size == (160, 50):
                assert scatter.region.x > table.region.x  # side by side
            assert "open" in lines[-1] and "escape back" in lines[-1]

    run(body)


def test_g_shows_the_scatter_in_place_of_the_table_at_80x24():
    fake = FakeSearch(INSIDE)

    async def body():
        app = make_app(warm_up=False, autostart=False)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_search(pilot, tiny_search(), fake)
            await until(pilot, lambda: screen.view.state == "done", "the trials")
            table, scatter = screen.query_one("#trials"), screen.query_one(SearchScatter)
            assert table.display and not scatter.display
            await pilot.press("g")
            assert scatter.display and not table.display
            await pilot.press("g")
            assert table.display and not scatter.display

    run(body)


# -- how the screen is reached --------------------------------------------------------------------------

TINY_TOML = """
[scenario]
name = "tiny spiral search"
[data]
kind = "spiral"
n = 200
[model]
hidden = [16]
[train]
steps = 40
[search]
trials = 6
steps = 20
[search.params]
lr = "log:1e-3:1"
l2 = "log:1e-5:1e-1"
"""


def test_S_in_the_browser_searches_a_scenario_with_a_search_table(monkeypatch, tmp_path):
    import lab.search.engine

    fake = FakeSearch(INSIDE[:2])
    monkeypatch.setattr(lab.search.engine, "run_search", fake)
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "a-no-search.toml").write_text(TINY_TOML.split("[search]")[0], encoding="utf-8")
    (folder / "b-search.toml").write_text(TINY_TOML, encoding="utf-8")

    async def body():
        app = make_app([folder], warm_up=False, autostart=False)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, BrowserScreen), "the browser")
            tree = app.screen.query_one("Tree")
            assert "S search" in screen_text(app).splitlines()[-1]  # in the footer

            def leaf(name):
                return next(n for topic in tree.root.children for n in topic.children if n.data.name == name)

            tree.move_cursor(leaf("a-no-search"))
            await pilot.pause()
            await pilot.press("S")
            await pilot.pause()
            assert isinstance(app.screen, BrowserScreen)
            tree.move_cursor(leaf("b-search"))
            await pilot.pause()
            await pilot.press("S")
            await until(pilot, lambda: isinstance(app.screen, SearchScreen), "the search screen")
            await until(pilot, lambda: len(rows(app.screen)) == 2, "the trials")
            assert app.screen.scenario.search.params.lr == "log:1e-3:1" and app.screen.source == "b-search"

    run(body)


def test_S_on_the_run_screen_searches_the_current_scenario(monkeypatch):
    import lab.search.engine

    fake = FakeSearch(INSIDE)
    monkeypatch.setattr(lab.search.engine, "run_search", fake)

    async def body():
        sc = tiny_search()
        app = make_app(scenario=sc, source="tiny.toml", warm_up=False, autostart=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.runner is not None, "the run")
            await pilot.press("S")
            await until(pilot, lambda: isinstance(app.screen, SearchScreen), "the search screen")
            assert app.screen.scenario is sc
            await until(pilot, lambda: len(rows(app.screen)) == 6, "the trials")
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, RunScreen), "back on the run")
            assert "back from the search" in str(app.screen.query_one(MessageLine).content)

    run(body)


def test_S_on_a_run_without_a_search_table_says_so():
    async def body():
        sc = tiny_search().model_copy(update={"search": None})
        app = make_app(scenario=sc, source="tiny.toml", warm_up=False, autostart=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.runner is not None, "the run")
            await pilot.press("S")
            await pilot.pause()
            assert isinstance(app.screen, RunScreen)
            assert "no [search] table" in str(app.screen.query_one(MessageLine).content)

    run(body)


# -- the real engine ------------------------------------------------------------------------------------

def test_a_real_search_end_to_end_then_a_trial_in_the_run_screen():
    """run_search itself, in worker processes: 4 short trials, every one reported, ranked by
    the engine; the best opens with its own lr."""
    sc = tiny_search(trials=4, steps=15)

    async def body():
        app = make_app(warm_up=False, autostart=False)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = SearchScreen(sc, source="tiny.toml", jobs=1)
            await app.push_screen(screen)
            await until(pilot, lambda: screen.view.state in ("done", "failed"), "the search", timeout=240)
            assert screen.view.state == "done", screen.view.error
            assert len(rows(screen)) == 4
            ranked = screen.view.ranked
            ok = [t.metric for t in ranked if t.ok]
            assert ok == sorted(ok, reverse=True)
            assert [r[1] for r in rows(screen)] == [str(t.index) for t in ranked]
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, RunScreen), "the run screen")
            assert app.screen.scenario.train.lr == ranked[0].params["lr"]
            assert app.screen.origin.startswith(f"trial {ranked[0].index} of 4 (stage 0) lr=")
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is screen, "back on the search")
            assert len(rows(screen)) == 4
        assert not multiprocessing.active_children() or all(
            p.name.startswith(("ForkServer", "SyncManager")) for p in multiprocessing.active_children())

    run(body, timeout=300)


def trial_workers() -> list:
    """The processes the forkserver forked for trials (its children), still alive."""
    psutil = pytest.importorskip("psutil")
    out = []
    for child in psutil.Process().children():
        try:
            if "forkserver" in " ".join(child.cmdline()):
                out += [p for p in child.children() if p.status() != psutil.STATUS_ZOMBIE]
        except psutil.NoSuchProcess:
            continue
    return out


def test_leaving_a_real_search_stops_its_worker_processes():
    sc = tiny_search(trials=40, steps=3000)

    async def body():
        app = make_app(warm_up=False, autostart=False)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = SearchScreen(sc, source="tiny.toml", jobs=1)
            await app.push_screen(screen)
            await until(pilot, lambda: screen.feed.result is not None, "the search's plan", timeout=120)
            await until(pilot, lambda: trial_workers(), "a trial worker process", timeout=60)
            await pilot.press("escape")
            # (a thread worker counts as finished once cancelled: the search itself says when it returned)
            await until(pilot, lambda: screen.feed.view.state == "stopped", "the search to return", timeout=30)
            assert screen.feed.view.done < 40
            await until(pilot, lambda: not trial_workers(), "no trial worker process left", timeout=30)

    run(body, timeout=200)


# -- keys and pictures ----------------------------------------------------------------------------------

def test_the_search_keys_are_its_bindings_and_each_has_an_action():
    from lab.tui.keys import BROWSER_KEYS, RUN_KEYS, SEARCH_KEYS

    assert [(b.key, b.action) for b in SearchScreen.BINDINGS] == [(k.keys, k.action) for k in SEARCH_KEYS]
    assert any(k.shown == "?" and k.footer for k in SEARCH_KEYS) and any(k.shown == "q" and k.footer for k in SEARCH_KEYS)
    for k in SEARCH_KEYS:
        if not k.action.startswith("app."):
            assert hasattr(SearchScreen, f"action_{k.action.split('(')[0]}"), k.keys
    assert any(k.keys == "S" and k.action == "search" for k in RUN_KEYS)
    assert any(k.keys == "S" and k.action == "search" and k.footer for k in BROWSER_KEYS)
    assert hasattr(RunScreen, "action_search") and hasattr(BrowserScreen, "action_search")


def test_the_palette_and_the_help_know_the_search_keys():
    from textual.command import CommandList

    from lab.tui.screens.help import HelpScreen

    fake = FakeSearch(INSIDE)

    async def body():
        app = make_app(warm_up=False, autostart=False)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await open_search(pilot, tiny_search(), fake)
            await until(pilot, lambda: screen.view.state == "done", "the trials")
            await pilot.press("ctrl+p")
            await until(pilot, lambda: app.screen.__class__.__name__ == "CommandPalette", "the palette")
            await pilot.press(*"next searched")

            def options() -> list[str]:
                listing = app.screen.query_one(CommandList)
                return [str(listing.get_option_at_index(i).prompt) for i in range(listing.option_count)]

            await until(pilot, lambda: any("next searched parameter" in o for o in options()), "the p command")
            await pilot.press("enter")
            await until(pilot, lambda: app.screen is screen and screen.query_one(SearchScatter).param == 1,
                        "the scatter on the next parameter")
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
            assert "open the highlighted trial" in screen_text(app)
            assert "the border warning" in app.screen.query_one("Markdown").source

    run(body)


def test_search_screen_snapshot(snap_compare):
    """The search screen at 100x30 after a finished (fake) search with the best on a border."""
    fake = FakeSearch(INSIDE + [trial(6, 0.95, 1e-3, 0.97)])
    app = make_app(warm_up=False, autostart=False)

    async def run_before(pilot) -> None:
        screen = await open_search(pilot, tiny_search(7), fake)
        await until(pilot, lambda: screen.view.state == "done" and warning_text(screen), "the trials")
        await pilot.pause()
        screen.tick(force=True)
        await pilot.pause()

    assert snap_compare(app, run_before=run_before, terminal_size=(100, 30))


def test_a_trial_that_searched_the_width_opens_with_that_width_in_every_hidden_layer():

    base = tiny_search().model_copy(update={"model": tiny_search().model.model_copy(update={"hidden": [16, 16]})})
    t = Trial(3, 0, {"hidden": 32, "lr": 0.05}, 77, 20, "ok", 0.8, 0.8, 0.3)
    sc = t.scenario(base)  # a searched hidden is one width for every layer, as the engine trains it
    assert sc.model.hidden == [32, 32] and sc.train.lr == 0.05 and sc.seed == 77 and sc.train.steps == 20


def test_a_search_that_cannot_run_says_why_and_the_screen_stays():
    from lab.search.engine import SearchError

    def impossible(scenario, spec=None, **kwargs):
        raise SearchError("search.trials", "the grid would be 1,000,000 trials")

    async def body():
        app = make_app(warm_up=False, autostart=False)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_search(pilot, tiny_search(), impossible)
            await until(pilot, lambda: screen.view.state == "failed", "the failure")
            await until(pilot, lambda: "FAILED" in screen_text(app), "the failure on screen")
            assert "search.trials: the grid would be" in screen_text(app)
            await pilot.press("enter")  # nothing to open: said, no crash
            assert "no trial has finished yet" in str(screen.query_one(MessageLine).content)
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, BrowserScreen), "back on the browser")

    run(body)


def test_a_long_search_keeps_the_best_in_the_table_and_says_so(monkeypatch):
    import lab.tui.screens.search as search_module

    monkeypatch.setattr(search_module, "MAX_ROWS", 4)
    fake = FakeSearch(INSIDE)

    async def body():
        app = make_app(warm_up=False, autostart=False)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await open_search(pilot, tiny_search(), fake)
            await until(pilot, lambda: screen.view.state == "done" and screen.view.done == 6, "the trials")
            await until(pilot, lambda: "best 4" in screen_text(app), "the table's limit in the status line")
            assert [r[1] for r in rows(screen)] == ["1", "4", "0", "5"]

    run(body)


def test_q_during_a_real_search_leaves_no_trial_process():
    sc = tiny_search(trials=40, steps=3000)
    seen = {}

    async def body():
        app = make_app(warm_up=False, autostart=False)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = SearchScreen(sc, source="tiny.toml", jobs=1)
            await app.push_screen(screen)
            await until(pilot, lambda: trial_workers(), "a trial worker process", timeout=120)
            seen["feed"] = screen.feed
            await pilot.press("q")
        return app

    app = run(body, timeout=200)
    assert app.return_code == 0
    deadline = time.monotonic() + 30  # a bounded poll: the search thread stops its pool after the app
    while (seen["feed"].view.state != "stopped" or trial_workers()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen["feed"].view.state == "stopped" and not trial_workers()


def test_in_a_shared_room_a_search_runs_one_worker_process():
    fake = FakeSearch(INSIDE[:1])

    async def body():
        app = make_app(warm_up=False, autostart=False, allow_writes=False)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_search(pilot, tiny_search(), fake)
            await until(pilot, lambda: screen.view.state == "done", "the search")
        mine = make_app(warm_up=False, autostart=False)
        async with mine.run_test(size=(80, 24)) as pilot:
            screen = await open_search(pilot, tiny_search(), fake)
            await until(pilot, lambda: screen.view.state == "done", "the search")

    run(body)
    assert [c["jobs"] for c in fake.calls] == [1, None]  # None: the engine's default, every core


def test_choice_and_integer_parameters_draw_and_open():
    raw = tiny_search().model_dump(exclude_none=True)
    raw["search"]["params"] = {"activation": "choice:relu,tanh", "batch_size": "int:16:128"}
    sc = Scenario.model_validate(raw)

    def t(i, act, batch, metric):
        return Trial(i, 0, {"activation": act, "batch_size": batch}, 10 + i, 20, "ok", metric, metric, 1 - metric)

    fake = FakeSearch([t(0, "relu", 16, 0.6), t(1, "tanh", 64, 0.8), t(2, "relu", 128, 0.7),
                       Trial(3, 0, {"activation": "tanh", "batch_size": 20}, 13, 20, "diverged", math.nan, math.nan,
                             math.nan, diverged_at=5)])

    async def body():
        app = make_app(warm_up=False, autostart=False)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await open_search(pilot, sc, fake)
            await until(pilot, lambda: screen.view.state == "done" and len(rows(screen)) == 4, "the trials")
            best = dict(zip(screen.columns(screen.view), rows(screen)[0]))
            assert best["activation"] == "tanh" and best["batch_size"] == "64"
            scatter = screen.query_one(SearchScatter)
            for _ in range(2):
                await pilot.press("p")
                await pilot.pause()
                assert scatter.param in (0, 1)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, RunScreen), "the run screen")
            assert app.screen.scenario.model.activation == "tanh" and app.screen.scenario.train.batch_size == 64

    run(body)
