"""SVG snapshots of every screen of the lab at fixed steps (pytest-textual-snapshot).

Nothing trains while a picture is taken: the run screen gets a Simulation stepped
beforehand (autostart off, as lab/tui/shots.py does), so the pictures depend only on the
scenario and the step.  Update the baselines after a deliberate change of the UI with

    pytest tests/test_tui_snapshots.py --snapshot-update

and look at them (tests/__snapshots__/test_tui_snapshots/*.svg) before committing.
"""

from __future__ import annotations

import pytest

import lab.tui.screens.browser as browser_module
from lab.scenario.catalog import bundled
from lab.scenario.schema import Scenario
from lab.sim import Simulation
from lab.tui.app import make_app
from lab.tui.screens.compare import CompareScreen
from lab.tui.screens.run import RunScreen
from lab.tui.screens.zoom import ZoomScreen
from lab.tui.widgets.context import VIEWS

SPIRAL = {
    "scenario": {"name": "Spiral, 2-16-16-3 ReLU", "seed": 0,
                 "explain": "A small spiral. **Watch** the loss fall and the decision boundary curl.\n\n"
                            "Press `l` to raise the learning rate and see what breaks."},
    "data": {"kind": "spiral", "n": 200, "classes": 3},
    "model": {"hidden": [16, 16], "activation": "relu", "init": "kaiming"},
    "train": {"optimizer": "momentum", "lr": 0.1, "batch_size": 32, "steps": 100, "eval_every": 20},
}
STEPS = 60


def spiral(**extra) -> Scenario:
    return Scenario.model_validate({**SPIRAL, **extra})


async def _until(pilot, predicate, what: str, rounds: int = 1500) -> None:
    """Bounded poll between UI turns (a hang fails the test instead of blocking it)."""
    for _ in range(rounds):
        if predicate():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"timed out waiting for: {what}")


def run_app(sc: Scenario, steps: int = STEPS, *, view: str = "explain", then=None, sim: Simulation | None = None):
    """(app, run_before): a run screen around a simulation stepped `steps` times, showing `view`.

    The screen's worker only idles (autostart off), so the picture is the same on every run."""
    if sim is None:
        sim = Simulation(sc)
        sim.step(steps)
    app = make_app(warm_up=False)

    async def run_before(pilot) -> None:
        screen = RunScreen(sc, source="spiral.toml", autostart=False, simulation=sim)
        await app.push_screen(screen)
        await pilot.pause()
        for _ in range(VIEWS.index(view)):
            await pilot.press("v")
        await pilot.pause()
        screen.tick(force=True)  # draw at the laid-out size (plots and the boundary fit their panel)
        await pilot.pause()
        if then is not None:
            await then(pilot, screen)

    return app, run_before


def test_run_screen_80x24(snap_compare):
    app, run_before = run_app(spiral())
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_run_screen_120x40(snap_compare):
    app, run_before = run_app(spiral())
    assert snap_compare(app, terminal_size=(120, 40), run_before=run_before)


def _with_events() -> tuple[Scenario, Simulation]:
    """A session with two changes of yours (made before the screen exists: no toasts on the picture)."""
    sc = spiral(events=[{"at": 10, "set": {"lr": 0.05}}])
    sim = Simulation(sc)
    sim.step(25)
    sim.set(lr=0.3)
    sim.step(15)
    sim.set(activation="tanh")
    sim.step(20)
    return sc, sim


def test_run_screen_events_view(snap_compare):
    sc, sim = _with_events()
    app, run_before = run_app(sc, view="events", sim=sim)
    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)


def test_run_screen_boundary_view(snap_compare):
    app, run_before = run_app(spiral(), steps=100, view="boundary")
    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)


def test_run_screen_weights_histograms(snap_compare):
    async def weights(pilot, screen):
        await pilot.press("h")

    app, run_before = run_app(spiral(), then=weights)
    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)


def test_help(snap_compare):
    async def help_(pilot, screen):
        await pilot.press("question_mark")
        await pilot.pause()

    app, run_before = run_app(spiral(), then=help_)
    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)


def test_zoom(snap_compare):
    """Layer 2's gradients after the whole run (100 steps: 101 records, one every step), the step
    cursor on step 30 (home, then three pages of ten records)."""
    sc = spiral()
    sim = Simulation(sc)
    sim.step(100)

    async def zoom(pilot, screen):
        await pilot.press("z")
        await _until(pilot, lambda: isinstance(pilot.app.screen, ZoomScreen), "the zoom screen")
        await pilot.press("right_square_bracket", "t", "home", "pagedown", "pagedown", "pagedown")
        await pilot.pause()
        pilot.app.screen.draw()  # at the laid-out size (its own 0.3 s timer would draw the same)
        await pilot.pause()

    app, run_before = run_app(sc, sim=sim, then=zoom)
    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)


def test_compare(snap_compare):
    """Three variants at 100x30 after 60 steps in lockstep, paused (the screen's worker steps them on
    request and idles: the picture depends only on the scenario and the step).  The claim names
    dead_fraction, so `dead` is kept in the table, and the chart shows each variant's own marker."""
    sc = spiral(variants=[{"name": "tanh", "set": {"activation": "tanh"}}, {"name": "high-lr", "set": {"lr": 1.0}}],
                expect=[{"metric": "dead_fraction", "layer": 1, "op": "<", "value": 0.5}])
    app = make_app(warm_up=False)

    async def run_before(pilot) -> None:
        screen = CompareScreen.from_run(sc, Simulation(sc), running=False)
        await app.push_screen(screen)
        screen.lockstep.step_once(STEPS)
        await _until(pilot, lambda: screen.lockstep.ready and screen.lockstep.pending == 0, "60 steps of each")
        await pilot.pause()
        screen.tick(force=True)  # draw at the laid-out size
        await pilot.pause()

    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)


@pytest.fixture
def fixed_curriculum(tmp_path, monkeypatch):
    """The browser over a fixed, small curriculum, so that adding a bundled scenario does not change
    the picture (the real curriculum is listed by tests/test_tui.py)."""
    root = tmp_path / "curriculum"
    for rel in ("init/xavier-tanh.toml", "init/zero-init.toml", "learning-rate/too-high.toml"):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        name = path.stem.replace("-", " ")
        path.write_text(f'[scenario]\nname = "{name}"\ntopic = "{path.parent.name}"\n'
                        f'explain = """\nWhat **{name}** shows: a sentence or two.\n"""\n\n'
                        '[data]\nkind = "spiral"\nn = 200\n\n[model]\nhidden = [16, 16]\n\n'
                        '[train]\nsteps = 100\n', encoding="utf-8")
    monkeypatch.setattr(browser_module, "bundled", lambda: bundled(root))
    return root


def test_browser(snap_compare, fixed_curriculum):
    assert snap_compare(make_app(warm_up=False), terminal_size=(100, 30))


def test_too_small(snap_compare):
    assert snap_compare(make_app(warm_up=False), terminal_size=(70, 20))
