"""UI benchmarks: frame cost and rate with 12 histograms on screen while training, key-press
to effect latency, training speed with the UI open against headless, and the first run
(empty numba cache): the browser on screen, and the first training step through the browser
and Enter against a direct `nnlab run`.

    python -m benchmarks.ui [--seconds 5] [--first-run N] [--first-run-only]

Run in the same process and the same minute for both sides of every ratio; nothing here
is a test (wall-clock numbers belong in benchmarks, never in tests).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import numpy as np

from lab.engine.threads import DETERMINISTIC_THREADS, limit_blas_threads
from lab.scenario.schema import Scenario
from lab.sim.run import run

# Eleven hidden layers + the output: 12 layers, 24 histograms in the grid (activations and gradients).
TWELVE = {"scenario": {"name": "12-layer tanh"}, "data": {"kind": "spiral", "n": 600},
          "model": {"hidden": [64] * 11, "activation": "tanh", "init": "xavier"},
          "train": {"optimizer": "momentum", "lr": 0.02, "steps": 10_000_000, "eval_every": 500}}
FRAME_TARGET = 10.0
from lab.tui.screens.run import FRAME_SECONDS as FRAME  # noqa: E402  (the run screen's own frame timer)
LATENCY_TARGET_MS = 100.0
SPEED_RATIO_TARGET = 0.7
FIRST_RUN_RATIO_TARGET = 1.1  # browser + Enter against a direct run: the same one compilation (10% for noise)
FIRST_STEP_TARGET = 15.0  # seconds from `nnlab` + Enter to the first training step, empty cache, 2 cores


FIRST_SCREEN = r"""
import asyncio, time, sys
t0 = time.perf_counter()
from lab.tui.app import make_app
from lab.tui.screens.browser import BrowserScreen

async def main():
    app = make_app()  # warms the kernels up in the background, as `nnlab` does
    async with app.run_test(size=(100, 30)) as pilot:
        while not isinstance(app.screen, BrowserScreen):
            await pilot.pause(0.01)
        print("browser", time.perf_counter() - t0)
        await pilot.press("q")

asyncio.run(main())
"""


FIRST_STEP = r"""
import asyncio, sys, time
t0 = time.perf_counter()
from lab.tui.app import make_app
from lab.tui.screens.browser import BrowserScreen
from lab.tui.screens.run import RunScreen

async def main(path):
    if path:  # `nnlab run PATH`
        from lab.scenario import load_scenario
        app = make_app(scenario=load_scenario(path))
    else:     # `nnlab`, then Enter on the first scenario as soon as the browser is up
        app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        while not isinstance(app.screen, (BrowserScreen, RunScreen)):
            await pilot.pause(0.01)
        if isinstance(app.screen, BrowserScreen):
            print("browser", time.perf_counter() - t0)
            await pilot.press("enter")
        screen = app.screen
        seen = set()
        while screen.runner is None or screen.runner.sim.step_count < 1:
            if screen.runner is None:  # what the status line said while waiting
                seen.add(str(screen.query_one("#status").render()).split(",")[0].split("…")[0].strip()[:24])
            await pilot.pause(0.02)
        print("first_step", time.perf_counter() - t0)
        print("cpu", time.process_time())  # every thread's CPU seconds: the work done, less load-dependent
        print("scenario", screen.scenario.name)
        print("status", sorted(seen))
        await pilot.press("q")

asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))
"""


def _cold(script: str, *args: str) -> dict[str, str]:
    """Run `script` in a fresh interpreter with an empty numba cache; its "key value" lines."""
    import os
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        out = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True,
                             timeout=600)
    return dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)


def first_screen_seconds() -> float:
    """Process start to the browser on screen, with an empty numba cache (kernels compiling)."""
    try:
        return float(_cold(FIRST_SCREEN)["browser"])
    except (ValueError, KeyError):
        return float("nan")


def first_step_seconds(path: str | None = None) -> float:
    """With an empty numba cache: process start to the first training step, through the
    browser and Enter (path None: the browser's first scenario) or `nnlab run PATH`."""
    try:
        return float(_cold(FIRST_STEP, *([path] if path else []))["first_step"])
    except (ValueError, KeyError):
        return float("nan")


def first_run(repeats: int) -> dict[str, list[float]]:
    """Cold first-step times, browser + Enter and direct, alternated (the machine's load
    drifts): both compile the same kernels once, so they should take the same time."""
    from lab.scenario.catalog import bundled

    path = str(bundled()[0].path)  # what Enter opens on the browser's first line
    out: dict[str, list[float]] = {"browser+enter": [], "direct": []}
    for _ in range(repeats):
        out["browser+enter"].append(first_step_seconds())
        out["direct"].append(first_step_seconds(path))
    return out


def headless_rate(sc: Scenario, seconds: float) -> float:
    """Steps per second of the headless runner over about `seconds` (after 50 steps of warm-up)."""
    sim = run(sc, 50).sim
    start = time.perf_counter()
    done = run(sim, sc.train.steps, on_progress=lambda sim: time.perf_counter() - start >= seconds)
    return (done.step - done.start) / done.seconds


async def ui_measurements(sc: Scenario, seconds: float) -> dict[str, float]:
    from lab.tui.app import make_app
    from lab.tui.screens.run import RunScreen

    app = make_app(scenario=sc, warm_up=False)
    out: dict[str, float] = {}
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, RunScreen)
        while screen.runner is None:  # compiling / building
            await pilot.pause(0.05)
        while screen.runner.sim.step_count < 50:
            await pilot.pause(0.05)
        # 1) training speed and frame rate with the UI live
        frames = 0
        original_tick = screen.tick
        frame_costs: list[float] = []

        def counting_tick(force: bool = False) -> None:
            nonlocal frames
            t0 = time.perf_counter()
            shown = screen._shown
            original_tick(force)
            if screen._shown is not shown:
                frames += 1
                frame_costs.append(time.perf_counter() - t0)

        screen.tick = counting_tick
        for timer in list(screen._timers):
            timer.stop()
        screen.set_interval(FRAME, counting_tick)
        s0, t0 = screen.runner.sim.step_count, time.perf_counter()
        await pilot.pause(seconds)
        elapsed = time.perf_counter() - t0
        out["ui_steps_per_s"] = (screen.runner.sim.step_count - s0) / elapsed
        out["frames_per_s"] = frames / elapsed
        out["frame_ms_median"] = 1000 * statistics.median(frame_costs) if frame_costs else float("nan")
        out["frame_ms_p95"] = 1000 * float(np.percentile(frame_costs, 95)) if frame_costs else float("nan")
        # 2) key press -> the change on screen.  Timed inside the app, from the key's action
        #    to the frame that shows the new lr (Pilot.press itself waits for the app to be
        #    idle, which says nothing about what a person sees).
        latencies = []
        pending: dict[str, float] = {}
        original_action = screen.action_change

        def timed_action(action: str) -> None:
            pending["t"] = time.perf_counter()
            pending["lr"] = screen.runner.latest.settings["lr"]
            original_action(action)

        def watching_tick(force: bool = False) -> None:
            counting_tick(force)
            if "t" in pending and screen._shown is not None and screen._shown.settings["lr"] != pending["lr"]:
                latencies.append(1000 * (time.perf_counter() - pending.pop("t")))

        screen.action_change = timed_action
        screen.tick = watching_tick
        for key in ["l", "L"] * 5:
            await pilot.press(key)
            while "t" in pending:
                await pilot.pause(0.005)
            await pilot.pause(0.05)
        out["latency_ms_median"] = statistics.median(latencies)
        out["latency_ms_max"] = max(latencies)
        await pilot.press("q")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--first-run", type=int, default=1, metavar="N",
                        help="cold first-step runs per side (each compiles every kernel, 20-40 s; 0 skips)")
    parser.add_argument("--first-run-only", action="store_true",
                        help="only the cold first run (browser on screen, first step): no frame or key timings")
    args = parser.parse_args(argv)
    limit_blas_threads()
    sc = Scenario.model_validate(TWELVE)
    first = first_screen_seconds()
    cold = first_run(max(1, args.first_run)) if args.first_run > 0 or args.first_run_only else None
    rows = [("first screen, kernels compiling (s)", f"{first:.2f}", "<= 1", first <= 1.0)]
    if cold is not None:
        via, direct = statistics.median(cold["browser+enter"]), statistics.median(cold["direct"])
        rows += [
            ("first step cold, nnlab + Enter (s)", f"{via:.1f}", f"<= {FIRST_STEP_TARGET:g}", via <= FIRST_STEP_TARGET),
            ("first step cold, browser+Enter / nnlab run (s)", f"{via:.1f} / {direct:.1f} = "
             f"{via / direct:.2f}", f"<= {FIRST_RUN_RATIO_TARGET}", via / direct <= FIRST_RUN_RATIO_TARGET),
        ]
    if args.first_run_only:
        print(f"UI benchmark: the first run, empty kernel cache, {args.first_run or 1} run(s) per side")
        for name, value, target, ok in rows:
            print(f"  {name:<52} {value:>26}   target {target:<7} {'ok' if ok else 'MISSED'}")
        return 0
    ui = asyncio.run(ui_measurements(sc, args.seconds))
    headless = headless_rate(sc, args.seconds)
    ratio = ui["ui_steps_per_s"] / headless
    rows += [
        ("frames/s, 24 histograms + curves + table, training", f"{ui['frames_per_s']:.1f}", f">= {FRAME_TARGET:g}",
         ui["frames_per_s"] >= FRAME_TARGET),
        ("frame cost (median / p95 ms)", f"{ui['frame_ms_median']:.1f} / {ui['frame_ms_p95']:.1f}",
         f"<= {1000 / FRAME_TARGET:.0f}", ui["frame_ms_p95"] <= 1000 / FRAME_TARGET),
        ("key press -> effect on screen (median / max ms)", f"{ui['latency_ms_median']:.0f} / {ui['latency_ms_max']:.0f}",
         f"<= {LATENCY_TARGET_MS:.0f}", ui["latency_ms_max"] <= LATENCY_TARGET_MS),
        ("training steps/s, UI open / headless", f"{ui['ui_steps_per_s']:,.0f} / {headless:,.0f} = {ratio:.2f}",
         f">= {SPEED_RATIO_TARGET}", ratio >= SPEED_RATIO_TARGET),
    ]
    print(f"UI benchmark: {sc.name}, 120x40, {args.seconds:g} s each side, BLAS threads {DETERMINISTIC_THREADS}")
    for name, value, target, ok in rows:
        print(f"  {name:<52} {value:>26}   target {target:<7} {'ok' if ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
