"""Screenshots without a terminal: the lab rendered to SVG at a chosen step."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lab.scenario.schema import Scenario
from lab.sim import Simulation

VIEWS = {"explain": 0, "events": 1, "boundary": 2, "path": 3, "lr": 4}


async def _shoot(sc: Scenario, steps: int, out: Path, size: tuple[int, int], view: str, screen: str,
                 source: str) -> Path:
    from lab.tui.app import make_app
    from lab.tui.screens.run import RunScreen

    if screen == "browser":
        app = make_app(warm_up=False)
    else:
        sim = Simulation(sc)
        sim.step(steps)
        app = make_app(warm_up=False)
    async with app.run_test(size=size) as pilot:
        if screen != "browser":
            run = RunScreen(sc, source=source, autostart=False, simulation=sim)
            await app.push_screen(run)
            await pilot.pause()
            for _ in range(VIEWS.get(view, 0)):
                run.action_cycle_view()
            run.tick(force=True)
            await pilot.pause()
            if screen == "zoom":
                run.action_zoom()
            elif screen == "help":
                run.action_help()
            elif screen == "compare":
                run.action_compare()
                await pilot.pause(3.0)
            await pilot.pause(0.5)
        else:
            await pilot.pause(0.3)
        out.parent.mkdir(parents=True, exist_ok=True)
        app.save_screenshot(filename=out.name, path=str(out.parent))
    return out


def take_screenshot(sc: Scenario, *, steps: int, out: Path, size: tuple[int, int] = (100, 30),
                    view: str = "explain", screen: str = "run", source: str = "") -> Path:
    return asyncio.run(_shoot(sc, steps, Path(out), size, view, screen, source))
