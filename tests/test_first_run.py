"""The first run: one kernel warm-up, shared, counted and shown.

The warm-up here is a fake job that "compiles" nnlab kernels one at a time when the test
says so, by broadcasting numba's own "numba:compile" events (numba.core.event): the counting,
the waiting and the screens are the real ones; only the compiler is not.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import types

import pytest
from numba.core import event

import lab.tui.screens.run as run_module
from lab.engine.warmup import DEFAULT_TOTAL, Progress, Record, WarmUp, covers
from lab.sim import Simulation
from lab.tui.app import make_app
from lab.tui.screens.browser import BrowserScreen
from lab.tui.screens.help import HelpScreen
from lab.tui.screens.run import RunScreen
from lab.tui.widgets.panels import StatusBar
from lab.tui.widgets.warmup import WarmUpLine
from tests.test_tui import SIZE, run, screen_text, tiny, until


def _kernel():
    pass


_kernel.__module__ = "lab.engine.kernels.fake"
KERNEL = types.SimpleNamespace(py_func=_kernel)  # what numba's event names as the dispatcher
OTHER = types.SimpleNamespace(py_func=types.SimpleNamespace(__module__="numba.np.arrayobj"))  # numba's own


class Compiler:
    """A warm-up job that compiles `n` nnlab kernels (and one of numba's own), each when let."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.calls = 0
        self._go = threading.Semaphore(0)

    def __call__(self) -> None:
        self.calls += 1
        for i in range(self.n):
            if not self._go.acquire(timeout=30):
                raise TimeoutError("the test never let the fake compiler go on")
            with event.trigger_event("numba:compile", data={"dispatcher": KERNEL}):
                if i == 0:
                    with event.trigger_event("numba:compile", data={"dispatcher": OTHER}):
                        pass

    def let(self, k: int = 1) -> None:
        for _ in range(k):
            self._go.release()

    def finish(self) -> None:
        self.let(self.n)


def warm_up(tmp_path, n: int = 3, seconds: float = 12.0) -> tuple[WarmUp, Compiler]:
    """A WarmUp over a fake compiler of n kernels, with a recorded cold run of n kernels."""
    record = tmp_path / "warm-up.json"
    Record(n, seconds, tuple(seconds * (i + 1) / n for i in range(n))).save(record)
    job = Compiler(n)
    return WarmUp(job, record_path=record), job


def wait_for(predicate, what: str, timeout: float = 10.0) -> None:
    """Poll a condition set by another thread (the deadline only catches hangs)."""
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        done.wait(0.01)
    raise AssertionError(f"timed out waiting for: {what}")


# -- the warm-up itself -------------------------------------------------------------------------------
def test_the_warm_up_runs_once_when_started_twice_and_from_two_threads(tmp_path):
    w, job = warm_up(tmp_path)
    starters = [threading.Thread(target=w.start) for _ in range(4)]
    for t in starters:
        t.start()
    w.start()
    for t in starters:
        t.join()
    assert w.started and not w.done
    job.finish()
    assert w.wait(30)
    w.start()  # once more, after it is over: nothing runs again
    assert w.wait(0)
    assert job.calls == 1


def test_a_warm_up_never_started_is_over_and_shows_nothing(tmp_path):
    w, job = warm_up(tmp_path)
    assert w.wait(0) is True
    assert w.progress() == Progress("idle")
    assert w.progress().text() == ""
    assert job.calls == 0


def test_progress_counts_nnlab_kernels_up_to_the_total_with_time_left(tmp_path):
    w, job = warm_up(tmp_path, n=3)
    w.start()
    p = w.progress()
    assert p.state == "loading" and p.text().startswith("loading")  # nothing compiled yet: maybe a warm cache
    seen = []
    for k in range(1, 3):  # the job is held before kernel k+1, so the progress read here is stable
        job.let()
        wait_for(lambda: w.progress().compiled == k, f"{k} kernels compiled")
        seen.append(w.progress())
    job.let()
    assert w.wait(30)
    assert [p.compiled for p in seen] == [1, 2]  # numba's own functions are not counted
    assert all(p.state == "compiling" and p.total == 3 for p in seen)
    assert seen[0].text().startswith("compiling kernels 1/3, about ")
    assert seen[0].text().endswith(" s left (first run only)")
    assert all(p.remaining is not None and p.remaining > 0 for p in seen)
    assert seen[0].fraction == pytest.approx(1 / 3)
    done = w.progress()
    assert done.state == "done" and done.compiled == 3 and done.text() == "" and done.error is None


def test_a_cold_warm_up_records_its_count_and_timeline_for_the_next_estimate(tmp_path):
    record = tmp_path / "warm-up.json"
    job = Compiler(4)
    w = WarmUp(job, record_path=record)
    w.start()
    assert w.progress().total == DEFAULT_TOTAL  # nothing recorded yet: the reference machine's figure
    job.finish()
    assert w.wait(30)
    saved = Record.load(record)
    assert saved.total == 4 and len(saved.timeline) == 4 and saved.seconds >= saved.timeline[-1]
    # the next warm-up counts against it
    w2 = WarmUp(Compiler(4), record_path=record)
    w2.start()
    assert w2.progress().total == 4
    w2.job.finish()
    assert w2.wait(30)


def test_a_first_step_may_run_before_the_warm_up_ends_and_the_record_counts_up_to_it(tmp_path):
    """On a cold cache augmentation compiles after the kernels of a first step: wait() returns
    then, wait_all() at the end, and the estimate shown to a waiting user stops there too."""
    import lab.engine.warmup as warmup

    record = tmp_path / "warm-up.json"
    job = Compiler(3)
    later = threading.Event()

    def two_then_ready_then_one():
        job.n = 2
        job()
        warmup._first_step_ready()
        later.wait(30)
        job.n = 1
        job()

    w = WarmUp(two_then_ready_then_one, record_path=record)
    w.start()
    assert not w.wait(0)
    job.let(2)
    assert w.wait(30) and not w.wait_all(0)
    later.set()
    job.let()
    assert w.wait_all(30) and w.progress().compiled == 3
    saved = Record.load(record)
    assert saved.total == 2 and len(saved.timeline) == 2 and saved.seconds >= saved.timeline[-1]


def test_a_partly_cached_warm_up_keeps_the_previous_record(tmp_path, monkeypatch):
    import lab.engine.warmup as warmup

    w, job = warm_up(tmp_path, n=3)
    hits = iter(range(100))
    monkeypatch.setattr(warmup, "_cache_hits", lambda: next(hits))  # kernels loaded from the cache meanwhile
    w.start()
    job.let(2)
    job.finish()
    assert w.wait(30)
    assert Record.load(tmp_path / "warm-up.json").seconds == 12.0  # not overwritten by a partial count


def test_the_estimate_follows_the_recorded_timeline_at_the_measured_pace():
    rec = Record(4, 10.0, (1.0, 2.0, 3.0, 10.0))
    assert rec.expected_at(0) == 0.0
    assert rec.expected_at(2) == 2.0
    assert rec.expected_at(4) == 10.0
    assert Record(8, 10.0, (1.0, 2.0, 3.0, 10.0)).expected_at(4) == 2.0  # another kernel count: rescaled
    assert 2.0 < Record(8, 10.0, (1.0, 2.0, 3.0, 10.0)).expected_at(5) < 3.0


def test_a_failing_warm_up_is_over_and_says_why(tmp_path):
    def broken():
        raise RuntimeError("no compiler")

    w = WarmUp(broken, record_path=tmp_path / "r.json")
    w.start()
    assert w.wait(30)
    assert w.progress().state == "done" and "no compiler" in w.progress().error
    assert not (tmp_path / "r.json").exists()


def test_covers_float32_scenarios_and_not_float64_ones():
    assert covers(tiny())
    assert not covers(tiny(model={"dtype": "float64"}))
    assert not covers(tiny(variants=[{"name": "f64", "set": {"dtype": "float64"}}]))


def test_importing_the_warm_up_loads_neither_numba_nor_textual():
    """The browser imports it before its first frame (first screen < 1 s)."""
    code = ("import sys, lab.engine.warmup; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'numba', 'textual', 'llvmlite'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- on screen ------------------------------------------------------------------------------------------
@pytest.fixture
def recorded_builds(monkeypatch):
    """Every Simulation a run screen builds, with whether the warm-up was over at that moment."""
    builds: list[bool] = []
    current: dict = {}

    class Recording(Simulation):
        def __init__(self, scenario, *args, **kwargs):
            builds.append(current["warm_up"].done)
            if current.get("float32"):  # what was asked is recorded; build what is compiled already
                current["dtype"] = scenario.model.dtype
                scenario = scenario.model_copy(update={"model": scenario.model.model_copy(update={"dtype": "float32"})})
            super().__init__(scenario, *args, **kwargs)

    monkeypatch.setattr(run_module, "Simulation", Recording)
    return builds, current


def test_the_browser_shows_the_kernels_compiling_then_nothing(tmp_path):
    w, job = warm_up(tmp_path, n=3)

    async def body():
        app = make_app(output_dir=tmp_path, warm_up=w)
        try:
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: isinstance(app.screen, BrowserScreen), "the browser")
                assert w.started  # the app starts it with the browser
                line = app.screen.query_one(WarmUpLine)
                assert not line.display  # loading: a warm cache takes well under a second, nothing shown
                job.let()
                await until(pilot, lambda: line.display and "1/3" in str(line.content), "the first kernel counted")
                await until(pilot, lambda: "compiling kernels" in screen_text(app)
                            and "1/3, about" in screen_text(app), "the line on screen")
                job.let()
                await until(pilot, lambda: "2/3" in str(line.content), "the second kernel counted")
                job.let()
                await until(pilot, lambda: w.done and not line.display, "the line gone once compiled")
                await until(pilot, lambda: "compiling kernels" not in screen_text(app), "the line off screen")
        finally:
            job.finish()

    run(body)


def test_enter_during_the_warm_up_shows_its_progress_then_trains_without_a_second_compilation(
        tmp_path, recorded_builds):
    builds, current = recorded_builds
    w, job = warm_up(tmp_path, n=3)
    current["warm_up"] = w

    async def body():
        app = make_app(output_dir=tmp_path, warm_up=w)
        try:
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: isinstance(app.screen, BrowserScreen), "the browser")
                job.let()
                await pilot.press("enter")
                await until(pilot, lambda: isinstance(app.screen, RunScreen), "the run screen")
                screen = app.screen
                status = screen.query_one(StatusBar)
                await until(pilot, lambda: "compiling kernels" in str(status.content)
                            and "1/3" in str(status.content), "the warm-up's progress on the run screen")
                job.let()
                await until(pilot, lambda: "2/3" in str(status.content), "the progress moving on")
                assert screen.runner is None and builds == []  # it waits: nothing built beside the warm-up
                # keys work while it waits
                await pilot.press("question_mark")
                await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help during the wait")
                await pilot.press("escape")
                await until(pilot, lambda: app.screen is screen, "back to the waiting run screen")
                job.let()
                await until(pilot, lambda: screen.runner is not None and screen.runner.sim.step_count >= 1,
                            "training once the kernels are ready")
                assert builds == [True]  # one simulation, built after the warm-up was over
                await until(pilot, lambda: "compiling" not in str(status.content), "the run's own status")
        finally:
            job.finish()

    run(body)


def test_escape_and_q_during_the_wait_leave_without_building_anything(tmp_path, recorded_builds):
    builds, current = recorded_builds
    w, job = warm_up(tmp_path, n=3)
    current["warm_up"] = w

    async def body():
        app = make_app(output_dir=tmp_path, warm_up=w)
        try:
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: isinstance(app.screen, BrowserScreen), "the browser")
                browser = app.screen
                await pilot.press("enter")
                await until(pilot, lambda: isinstance(app.screen, RunScreen), "the run screen")
                await pilot.press("escape")
                await until(pilot, lambda: app.screen is browser, "back to the browser during the wait")
                await pilot.press("enter")
                await until(pilot, lambda: isinstance(app.screen, RunScreen), "the run screen again")
                await pilot.press("q")
                await until(pilot, lambda: not app.is_running, "quit during the wait")
        finally:
            job.finish()
        assert w.wait(30)

    run(body)
    assert builds == []  # the waiting workers were cancelled: nothing compiled beside the warm-up


def test_nnlab_run_starts_the_warm_up_and_its_run_screen_waits_for_it(tmp_path, recorded_builds):
    builds, current = recorded_builds
    w, job = warm_up(tmp_path, n=2)
    current["warm_up"] = w

    async def body():
        app = make_app(scenario=tiny(), output_dir=tmp_path, warm_up=w)
        try:
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: isinstance(app.screen, RunScreen), "the run screen")
                assert w.started
                job.let()
                await until(pilot, lambda: "1/2" in str(app.screen.query_one(StatusBar).content), "progress")
                assert builds == []
                job.let()
                await until(pilot, lambda: app.screen.runner is not None, "the simulation")
                assert builds == [True]
        finally:
            job.finish()

    run(body)


def test_a_float64_run_compiles_its_own_kernels_after_the_warm_up(tmp_path, recorded_builds):
    builds, current = recorded_builds
    w, job = warm_up(tmp_path, n=2)
    current["warm_up"] = w
    current["float32"] = True  # (a float64 compile takes ~20 s: the test builds float32 instead)

    async def body():
        # straight to a float64 run: the float32 warm-up would be wasted work, it is not started
        app = make_app(scenario=tiny(model={"dtype": "float64"}), output_dir=tmp_path, warm_up=w)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.runner is not None,
                        "the float64 simulation")
        assert not w.started

    run(body)
    assert builds == [False] and current["dtype"] == "float64"  # built at once: no warm-up to wait for
