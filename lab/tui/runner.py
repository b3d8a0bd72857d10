"""SimRunner: a Simulation stepped by a background thread at a pace a person can watch.

The worker trains in compiled chunks (numba releases the GIL) and publishes the latest
Snapshot by reference; the UI reads `latest` on its own timer and never waits on the
engine.  Every command from the UI (a change, a reset, a single step) goes through one
queue that only the worker drains, between chunks: changes are recorded as events at an
exact step, the UI thread never computes statistics, and after each command the worker
publishes a full Snapshot of the new state at once (paused or not), so the screen never
shows numbers from two different states side by side.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable

from pydantic import ValidationError

from lab import pace as paces
from lab.engine.trainer import Cancelled
from lab.errors import LabError
from lab.scenario.schema import Changes
from lab.sim import Simulation, Snapshot

CHUNK_SECONDS = 0.03  # one compiled call at most: long enough to amortise dispatch, short for key latency
PUBLISH_SECONDS = 0.06  # faster than the frame timer, so every frame has a new snapshot...
PUBLISH_SHARE = 0.25  # ...but statistics take at most a quarter of the worker's time (deep nets)
MAX_BACKLOG_SECONDS = 0.25  # a slow engine never "catches up" on missed steps in a burst
IDLE_WAIT = 0.05
WAIT_SLICE = 0.1  # the longest the worker sleeps without looking at cancellation


class SimRunner:
    """Owns the pace and the run state; the Simulation itself is touched only by the worker
    (and by the UI only through `sim.lock`, e.g. to save)."""

    def __init__(self, sim: Simulation, *, running: bool = False, pace: float | None = None) -> None:
        self.sim = sim
        self.running = running
        self.pace = pace  # steps/s, None = as fast as the machine goes
        self.steps_per_s = 0.0  # measured while running
        self.message = ""  # the latest notice for the screen's message line
        self.latest: Snapshot = sim.snapshot()
        self.ended = False  # paused because the scenario's steps are done
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._submitted = 0  # written by the UI thread only...
        self._executed = 0  # ...and this by the worker only: their difference is what is pending
        self._wake = threading.Event()
        self._stop_at: int | None = sim.current.train.steps
        self._rate = sim.trainer.steps_per_second()  # estimated steps/s of the engine, sizes the chunks
        self._credit = 0.0  # steps due at the current pace, not yet run
        self._clock = time.perf_counter()
        self._publish_cost = 0.0
        self._unpublished = False
        self._last_publish = 0.0
        self._speed_clock, self._speed_steps = time.perf_counter(), 0
        self._cancelled: Callable[[], bool] = lambda: False

    # -- controls (UI thread): each is an attribute write or a queued command ------------------
    @property
    def total_steps(self) -> int:
        return self.sim.current.train.steps

    def toggle(self) -> None:
        self._submit(("toggle", None))

    def pause(self) -> None:
        self._submit(("pause", None))

    def wake(self) -> None:
        """Cut any wait short (e.g. so a cancelled worker notices at once, even at 0.5 steps/s)."""
        self._wake.set()

    def step_once(self) -> None:
        self._submit(("step", 1))

    def faster(self) -> None:
        self.pace = paces.faster(self.pace)
        self._wake.set()

    def slower(self) -> None:
        self.pace = paces.slower(self.pace)
        self._wake.set()

    def apply(self, **changes: Any) -> str:
        """Queue Simulation.set(**changes); returns "" or the reason it was refused."""
        try:
            Changes(**changes)
        except ValidationError as exc:
            return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        self._submit(("set", changes))
        return ""

    def reset(self, new_seed: bool = False) -> None:
        self._submit(("reset", new_seed))

    def _submit(self, command: tuple) -> None:
        self._submitted += 1
        self._commands.put(command)
        self._wake.set()

    @property
    def pending(self) -> int:
        """Commands submitted and not yet executed (and published)."""
        return self._submitted - self._executed

    # -- the worker (background thread) -------------------------------------------------------
    def loop(self, cancelled: Callable[[], bool]) -> None:
        self._cancelled = cancelled
        self.sim.cancelled = cancelled  # also between the kernel calls of a long step or evaluation
        try:
            self._loop(cancelled)
        except Cancelled:  # quitting: the run is dropped half-way
            return

    def _loop(self, cancelled: Callable[[], bool]) -> None:
        self.publish()
        while not cancelled():
            executed = self._drain()
            if executed:  # show what the commands did at once, running or paused
                self._check_end()
                self.publish()
                self._executed += executed
            if self.running and not self.sim.diverged:
                self._run_due_steps()
            else:
                self._wait(IDLE_WAIT)
            self._check_end()
            self._maybe_publish()

    def _drain(self) -> int:
        """Execute every queued command; returns how many ran."""
        ran_any = 0
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return ran_any
            ran_any += 1
            self._execute(*command)

    def _execute(self, kind: str, arg: Any) -> None:
        sim = self.sim
        if kind == "set":
            try:
                sim.set(**arg)
            except LabError as exc:
                self.message = str(exc)
        elif kind == "reset":
            replay = self.running or self.ended  # `r` at the end replays; a paused run stays paused
            sim.reset(new_seed=arg)
            self._stop_at = self.total_steps
            self.ended = False
            self.running = replay
            self._credit, self._clock = 0.0, time.perf_counter()
        elif kind == "step":
            self.running = False
            if sim.diverged:
                self.message = f"the run diverged at step {sim.diverged_at}: lower the lr (L) and reset (r)"
            else:
                sim.step(arg)
                self._unpublished = True
        elif kind == "pause":
            self.running = False
        elif kind == "toggle":
            if sim.diverged:
                self.running = False
                self.message = f"the run diverged at step {sim.diverged_at}: lower the lr (L) and reset (r)"
                return
            self.running = not self.running
            if self.running:
                if sim.step_count >= (self._stop_at or 0) and self._stop_at is not None:
                    self._stop_at = None  # asked to go on past the scenario's steps
                    self.message = f"going on past the scenario's {self.total_steps:,} steps (r replays it)"
                self.ended = False
                self._credit, self._clock = 0.0, time.perf_counter()
                self._speed_clock, self._speed_steps = self._clock, 0

    def _run_due_steps(self) -> int:
        """Run the steps the pace has made due (at most one chunk); wait if none is due."""
        now = time.perf_counter()
        pace = self.pace
        # the engine's own estimate follows a change of network at once (quitting waits for this chunk)
        chunk = max(1, int(min(self._rate, self.sim.trainer.steps_per_second()) * CHUNK_SECONDS))
        if pace is None:
            due = chunk
        else:
            self._credit = min(self._credit + (now - self._clock) * pace, max(1.0, pace * MAX_BACKLOG_SECONDS))
            self._clock = now
            due = min(int(self._credit), chunk)
            if due < 1:
                self._wait((1.0 - self._credit) / pace)
                return 0
        if self._stop_at is not None:
            due = min(due, max(0, self._stop_at - self.sim.step_count))
            if due == 0:
                return 0
        start = time.perf_counter()
        ran = self.sim.step(due)
        elapsed = time.perf_counter() - start
        if pace is not None:
            self._credit -= ran
        if ran and elapsed > 0:
            self._rate = 0.7 * self._rate + 0.3 * ran / elapsed
        self._measure(ran)
        self._unpublished = self._unpublished or ran > 0
        return ran

    def _measure(self, ran: int) -> None:
        now = time.perf_counter()
        self._speed_steps += ran
        span = now - self._speed_clock
        if span >= 0.5:
            rate = self._speed_steps / span
            self.steps_per_s = rate if not self.steps_per_s else 0.5 * self.steps_per_s + 0.5 * rate
            self._speed_clock, self._speed_steps = now, 0

    def _check_end(self) -> None:
        sim = self.sim
        if sim.diverged and self.running:
            self.running = False
            self.message = f"diverged at step {sim.diverged_at}: the loss or a weight became NaN/Inf"
        if self._stop_at is not None and self.running and sim.step_count >= self._stop_at:
            self.running = False
            self.ended = True
            self.message = (f"the scenario's {self._stop_at:,} steps are done: paused. "
                            "space goes on past the end, r replays")

    def _wait(self, seconds: float) -> None:
        """Sleep up to `seconds`, woken by any command, and looking at cancellation every
        WAIT_SLICE: at 0.5 steps/s a step is 2 s away, but quitting must not wait for it."""
        deadline = time.perf_counter() + seconds
        while not self._cancelled():
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            if self._wake.wait(min(WAIT_SLICE, remaining)):
                self._wake.clear()
                return

    def _maybe_publish(self) -> None:
        """While running, publish at most every PUBLISH_SECONDS (less often if statistics are
        expensive); once a run stops, always its last state."""
        if not self._unpublished:
            return
        interval = max(PUBLISH_SECONDS, self._publish_cost / PUBLISH_SHARE) if self.running else 0.0
        if time.perf_counter() - self._last_publish >= interval:
            self.publish()

    def publish(self) -> None:
        """Take a full snapshot now and hand it to the UI (by reference)."""
        start = time.perf_counter()
        self.latest = self.sim.snapshot()
        self._unpublished = False
        self._last_publish = time.perf_counter()
        self._publish_cost = 0.7 * self._publish_cost + 0.3 * (self._last_publish - start)
