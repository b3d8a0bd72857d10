"""SimRunner: a Simulation stepped by a background thread, observed by the UI.

The worker trains in compiled chunks (numba releases the GIL) and publishes the latest
Snapshot by reference; the UI reads `latest` on its own timer and never waits on the
engine.  Changes from key presses go through Simulation.set under the simulation's
lock, between chunks, so they are recorded as events at an exact step.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable

from pydantic import ValidationError

from lab.errors import LabError
from lab.scenario.schema import Changes
from lab.sim import Simulation, Snapshot

SPEEDS = (1, 3, 10, 30, 100, 300, 1000, 3000, 10000, None)  # steps/s limits; None = as fast as possible
CHUNK_SECONDS = 0.03  # one compiled call: long enough to amortise dispatch, short for key latency
PUBLISH_SECONDS = 0.06  # faster than the frame timer (chunks end every ~0.03 s), so every frame has a new one...
PUBLISH_SHARE = 0.25  # ...but never more than a quarter of the worker's time (deep nets, busy machines)


class SimRunner:
    def __init__(self, sim: Simulation, *, running: bool = False) -> None:
        self.sim = sim
        self.running = running
        self.speed_index = len(SPEEDS) - 1
        self.steps_per_s = 0.0
        self.latest: Snapshot = sim.snapshot()
        self.message = ""  # last notice for the status bar (e.g. "paused at the end of the scenario")
        self._single_steps = 0
        self._commands: queue.SimpleQueue = queue.SimpleQueue()  # changes waiting for the current chunk
        self._dirty = False
        self._wake = threading.Event()
        self._rate = 1000.0  # estimated steps/s, sizes the chunks
        self._publish_cost = 0.0  # seconds a full snapshot takes (probe pass, histograms)
        self._stop_at = sim.current.train.steps

    # -- controls (UI thread) ---------------------------------------------------------------
    @property
    def speed_limit(self) -> int | None:
        return SPEEDS[self.speed_index]

    def toggle(self) -> None:
        if self.sim.diverged:
            self.running = False
            return
        self.running = not self.running
        if self.running and self.sim.step_count >= self._stop_at:
            self._stop_at = None  # continue past the scenario's steps once asked to
        self._wake.set()

    def step_once(self) -> None:
        self.running = False
        self._single_steps += 1
        self._wake.set()

    def faster(self) -> None:
        self.speed_index = min(len(SPEEDS) - 1, self.speed_index + 1)

    def slower(self) -> None:
        self.speed_index = max(0, self.speed_index - 1)

    def apply(self, **changes: Any) -> str:
        """Simulation.set(...) as soon as possible; returns "" or the reason it was refused.

        If the simulation is idle the change applies now; if the worker is inside a chunk
        it is queued and applied right after it (waiting for the lock instead would starve:
        the worker re-takes it at once).  Either way the screen gets a quick snapshot
        (per-layer statistics of the last full one) and the full one follows.
        """
        try:
            Changes(**changes)
        except ValidationError as exc:
            return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        self._submit(("set", changes))
        return ""

    def reset(self, new_seed: bool = False) -> None:
        self._submit(("reset", new_seed))

    def _submit(self, command: tuple) -> None:
        if self.sim.lock.acquire(blocking=False):
            try:
                self._execute(command)
            finally:
                self.sim.lock.release()
        else:
            self._commands.put(command)
            self._wake.set()

    def _execute(self, command: tuple) -> None:
        kind, arg = command
        if kind == "set":
            try:
                self.sim.set(**arg)
            except LabError as exc:
                self.message = str(exc)
        else:
            self.sim.reset(new_seed=arg)
            self._stop_at = self.sim.current.train.steps
        self.latest = self.sim.snapshot(layers=False)
        self._dirty = True

    def _drain(self) -> None:
        while not self._commands.empty():
            with self.sim.lock:
                self._execute(self._commands.get())

    def publish(self) -> None:
        """Take a full snapshot now and hand it to the UI (by reference)."""
        start = time.perf_counter()
        self.latest = self.sim.snapshot()
        self._dirty = False
        self._publish_cost = 0.7 * self._publish_cost + 0.3 * (time.perf_counter() - start)

    # -- the worker (background thread) -------------------------------------------------------
    def loop(self, cancelled: Callable[[], bool]) -> None:
        last_publish = 0.0
        while not cancelled():
            self._drain()
            ran = 0
            if self._single_steps:
                self._single_steps -= 1
                ran = self.sim.step(1)
                self._dirty = True
            elif self.running and not self.sim.diverged:
                ran = self._run_chunk()
            else:
                self._wake.wait(0.05)
                self._wake.clear()
            if self.sim.diverged and self.running:
                self.running = False
                self.message = f"diverged at step {self.sim.diverged_at}"
            if self._stop_at is not None and self.running and self.sim.step_count >= self._stop_at:
                self.running = False
                self.message = f"paused at step {self.sim.step_count}, the end of the scenario (space continues)"
            now = time.perf_counter()
            interval = max(PUBLISH_SECONDS, self._publish_cost / PUBLISH_SHARE) if self.running else 0.0
            if (ran or self._dirty) and now - last_publish >= interval:
                self.publish()
                last_publish = now

    def _run_chunk(self) -> int:
        limit = self.speed_limit
        rate = self._rate if limit is None else min(self._rate, limit)
        chunk = max(1, int(rate * CHUNK_SECONDS))
        if self._stop_at is not None:
            chunk = min(chunk, max(1, self._stop_at - self.sim.step_count))
        start = time.perf_counter()
        ran = self.sim.step(chunk)
        elapsed = time.perf_counter() - start
        if ran and elapsed > 0:
            measured = ran / elapsed
            self._rate = 0.7 * self._rate + 0.3 * measured
        if limit is not None:  # hold the requested pace
            pause = ran / limit - elapsed
            if pause > 0:
                self._wake.wait(pause)
                self._wake.clear()
        total = time.perf_counter() - start
        if ran and total > 0:
            self.steps_per_s = 0.8 * self.steps_per_s + 0.2 * (ran / total) if self.steps_per_s else ran / total
        return ran
