"""Screenshots without a terminal: the lab rendered to SVG at a chosen step."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lab.scenario.schema import Scenario
from lab.sim import Simulation
from lab.sim.run import run

VIEWS = {"explain": 0, "events": 1, "boundary": 2, "path": 3, "lr": 4}


async def _shoot(sc: Scenario, steps: int, out: Path, size: tuple[int, int], view: str, screen: str,
                 source: str) -> Path:
    from lab.tui.app import make_app
    from lab.tui.screens.run import RunScreen

    if screen == "search":
        return await _shoot_search(sc, out, size, source)
    if screen != "browser":
        sim = run(sc, steps).sim
    app = make_app(warm_up=False)
    async with app.run_test(size=size) as pilot:
        if screen != "browser":
            run_screen = RunScreen(sc, source=source, autostart=False, simulation=sim)
            await app.push_screen(run_screen)
            await pilot.pause()
            for _ in range(VIEWS.get(view, 0)):
                run_screen.action_cycle_view()
            run_screen.tick(force=True)
            await pilot.pause()
            if screen == "zoom":
                run_screen.action_zoom()
            elif screen == "help":
                app.action_show_help()
            elif screen == "compare":  # the variants stepped to the same step, paused: a repeatable picture
                from lab.tui.screens.compare import CompareScreen

                compare = CompareScreen.from_run(sc, Simulation(sc), running=False)
                await app.push_screen(compare)
                compare.lockstep.step_once(steps)
                while not (compare.lockstep.ready and compare.lockstep.pending == 0):
                    await pilot.pause(0.05)
                await pilot.pause()
                compare.tick(force=True)
            await pilot.pause(0.5)
        else:
            await pilot.pause(0.3)
        out.parent.mkdir(parents=True, exist_ok=True)
        app.save_screenshot(filename=out.name, path=str(out.parent))
    return out


async def _shoot_search(sc: Scenario, out: Path, size: tuple[int, int], source: str) -> Path:
    """The search screen over the scenario's whole [search], run first (outside the app; the
    trials are seeded, so the picture repeats) and replayed into the screen at once."""
    from lab.search.engine import run_search
    from lab.tui.app import make_app
    from lab.tui.screens.search import SearchScreen

    result = run_search(sc)

    def replay(scenario, spec=None, *, on_plan=None, **_):
        if on_plan is not None:
            on_plan(result)
        return result

    app = make_app(warm_up=False)
    async with app.run_test(size=size) as pilot:
        screen = SearchScreen(sc, source=source, search=replay)
        await app.push_screen(screen)
        while screen.view.state != "done":
            await pilot.pause(0.05)
        await pilot.pause()
        screen.tick(force=True)
        await pilot.pause(0.5)
        out.parent.mkdir(parents=True, exist_ok=True)
        app.save_screenshot(filename=out.name, path=str(out.parent))
    return out


def take_screenshot(sc: Scenario, *, steps: int, out: Path, size: tuple[int, int] = (100, 30),
                    view: str = "explain", screen: str = "run", source: str = "") -> Path:
    return asyncio.run(_shoot(sc, steps, Path(out), size, view, screen, source))


# The README's pictures, declared once: `python -m lab.tui.shots` regenerates them all.
README_SHOTS = (
    # file, scenario, steps, size, view, screen
    ("run-dead-relu.svg", "activations/dead-relu-high-lr", 300, (100, 30), "explain", "run"),
    ("browser.svg", "activations/dead-relu-high-lr", 0, (100, 30), "explain", "browser"),
    ("zigzag-path-80x24.svg", "activations/sigmoid-zigzag", 60, (80, 24), "path", "run"),
    ("decision-boundary.svg", "learning-rate/cosine-warmup", 1500, (100, 30), "boundary", "run"),
    ("lr-schedule.svg", "learning-rate/cosine-warmup", 1500, (100, 30), "lr", "run"),
    ("zoom.svg", "activations/tanh-saturation", 300, (100, 30), "explain", "zoom"),
    ("help.svg", "activations/dead-relu-high-lr", 300, (100, 30), "explain", "help"),
    ("deep-relu-kaiming.svg", "init/xavier-vs-kaiming-relu", 0, (100, 30), "explain", "run"),
    ("compare.svg", "activations/dead-relu-high-lr", 300, (100, 30), "explain", "compare"),
    ("search.svg", "procedure/search-lr-l2", 0, (100, 30), "explain", "search"),
)


def main() -> None:
    from lab.scenario import load_scenario
    from lab.scenario.catalog import resolve

    folder = Path(__file__).resolve().parents[2] / "screenshots"
    for name, scenario, steps, size, view, screen in README_SHOTS:
        sc = load_scenario(resolve(scenario))
        take_screenshot(sc, steps=steps, out=folder / name, size=size, view=view, screen=screen, source=scenario)
        print(f"wrote screenshots/{name}")


if __name__ == "__main__":
    main()
