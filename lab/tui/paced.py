"""PacedWorker: training stepped by one background thread at a pace a person can watch.

The contract every live view relies on (the run screen's SimRunner, the compare screen's
Lockstep):

- the UI thread only writes the pace or queues a command (run/pause, one step, a reset,
  a change); the worker drains the queue between compiled chunks, so a command applies at
  an exact step, and publishes a fresh snapshot right after it, running or paused;
- steps are run as the pace makes them due (a credit of steps that grows with time, capped
  so a slow engine never catches up in a burst), one chunk of about CHUNK_SECONDS at most;
- at the scenario's length the run pauses and says so; toggling goes on past the end, a
  reset at the end replays (a run the user paused stays paused at step 0);
- messages for the screen's message line are counted (`said`), so the same text said twice
  is shown twice;
- every wait is sliced so a cancelled worker leaves within WAIT_SLICE, whatever the pace.

Subclasses say what a step, a reset, a snapshot and "cannot run" mean for them.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable

from lab import pace as paces
from lab.engine.trainer import Cancelled

CHUNK_SECONDS = 0.03  # one compiled call at most: long enough to amortise dispatch, short for key latency
PUBLISH_SECONDS = 0.06  # faster than the frame timer, so every frame has a new snapshot...
PUBLISH_SHARE = 0.25  # ...but statistics take at most a quarter of the worker's time (deep nets)
MAX_BACKLOG_SECONDS = 0.25  # a slow engine never "catches up" on missed steps in a burst
IDLE_WAIT = 0.05
WAIT_SLICE = 0.1  # the longest the worker sleeps without looking at cancellation


class PacedWorker:
    def __init__(self, *, running: bool, pace: float | None, total_steps: int) -> None:
        self.running = running
        self.pace = pace  # steps/s, None = as fast as the machine goes
        self.steps_per_s = 0.0  # measured while running
        self.ended = False  # paused because the scenario's steps are done
        self.total_steps = total_steps
        self.message = ""  # the latest notice for the screen's message line...
        self.message_kind = "info"
        self.said = 0  # ...and how many there have been
        self._stop_at: int | None = total_steps
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._submitted = 0  # written by the UI thread only...
        self._executed = 0  # ...and this by the worker only: their difference is what is pending
        self._wake = threading.Event()
        self._rate = 1000.0  # measured steps/s of the engine (with the estimate, sizes the chunks)
        self._credit = 0.0  # steps due at the current pace, not yet run
        self._clock = time.perf_counter()
        self._publish_cost = 0.0
        self._unpublished = False
        self._last_publish = 0.0
        self._speed_clock, self._speed_steps = time.perf_counter(), 0
        self._cancelled: Callable[[], bool] = lambda: False

    # -- what a subclass defines ---------------------------------------------------------------
    @property
    def step(self) -> int:
        """The step the run is at."""
        raise NotImplementedError

    def _advance(self, n: int) -> int:
        """Train n steps; return how many ran."""
        raise NotImplementedError

    def _engine_rate(self) -> float:
        """The engine's own estimate of steps/s (follows a change of network at once)."""
        raise NotImplementedError

    def _blocked(self) -> str:
        """Why the run cannot go on ("" if it can): a divergence."""
        raise NotImplementedError

    def _reset(self, arg: Any) -> None:
        raise NotImplementedError

    def _take(self) -> None:
        """Take the snapshot(s) the UI reads, and hand them over by reference."""
        raise NotImplementedError

    def _start(self, cancelled: Callable[[], bool]) -> bool:
        """Prepare in the worker thread before the loop; False to stop at once."""
        return True

    def _execute_other(self, kind: str, arg: Any) -> None:
        raise ValueError(f"unknown command {kind!r}")

    def _check_divergence(self) -> None:
        """Say a new divergence and stop running if nothing can go on."""

    # -- controls (UI thread) -------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Commands submitted and not yet executed (and published)."""
        return self._submitted - self._executed

    def toggle(self) -> None:
        self._submit(("toggle", None))

    def pause(self) -> None:
        self._submit(("pause", None))

    def step_once(self, n: int = 1) -> None:
        """n steps, then pause."""
        self._submit(("step", n))

    def reset(self, arg: Any = False) -> None:
        self._submit(("reset", arg))

    def faster(self) -> None:
        self.pace = paces.faster(self.pace)
        self._wake.set()

    def slower(self) -> None:
        self.pace = paces.slower(self.pace)
        self._wake.set()

    def wake(self) -> None:
        """Cut any wait short."""
        self._wake.set()

    def _submit(self, command: tuple) -> None:
        self._submitted += 1
        self._commands.put(command)
        self._wake.set()

    # -- the worker (background thread) -----------------------------------------------------------
    def loop(self, cancelled: Callable[[], bool]) -> None:
        self._cancelled = cancelled
        try:  # Cancelled comes from between the kernel calls of a long step or evaluation too
            if self._start(cancelled):
                self._loop(cancelled)
        except Cancelled:  # quitting: the run is dropped half-way
            return

    def _loop(self, cancelled: Callable[[], bool]) -> None:
        self.publish()
        while not cancelled():
            executed = self._drain()
            if executed:  # show what the commands did at once, running or paused
                self._check()
                self.publish()
                self._executed += executed
            if self.running and not self._blocked():
                self._run_due_steps()
            else:
                self._wait(IDLE_WAIT)
            self._check()
            self._maybe_publish()

    def _drain(self) -> int:
        """Execute every queued command; returns how many ran."""
        ran = 0
        while True:
            try:
                kind, arg = self._commands.get_nowait()
            except queue.Empty:
                return ran
            ran += 1
            self._execute(kind, arg)

    def _execute(self, kind: str, arg: Any) -> None:
        if kind == "reset":
            replay = self.running or self.ended  # `r` at the end replays; a paused run stays paused
            self._reset(arg)
            self._stop_at = self.total_steps
            self.ended = False
            self.running = replay
            self._restart_clocks()
        elif kind == "pause":
            self.running = False
        elif kind in ("step", "toggle") and (why := self._blocked()):
            self.running = False
            self.say(why, "error")
        elif kind == "step":
            self.running = False
            self._advance(arg)
            self._unpublished = True
        elif kind == "toggle":
            self.running = not self.running
            if self.running:
                if self._stop_at is not None and self.step >= self._stop_at:
                    self._stop_at = None  # asked to go on past the scenario's steps
                    self.say(f"going on past the scenario's {self.total_steps:,} steps (r replays it)")
                self.ended = False
                self._restart_clocks()
        else:
            self._execute_other(kind, arg)

    def _restart_clocks(self) -> None:
        self._credit, self._clock = 0.0, time.perf_counter()
        self._speed_clock, self._speed_steps = self._clock, 0

    def _run_due_steps(self) -> int:
        """Run the steps the pace has made due (one chunk at most); wait if none is due."""
        now = time.perf_counter()
        pace = self.pace
        chunk = max(1, int(min(self._rate, self._engine_rate()) * CHUNK_SECONDS))
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
            due = min(due, max(0, self._stop_at - self.step))
            if due == 0:
                return 0
        start = time.perf_counter()
        ran = self._advance(due)
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

    def _check(self) -> None:
        """A divergence, or the end of the scenario's steps: pause, and say so."""
        self._check_divergence()
        if self.running and self._stop_at is not None and self.step >= self._stop_at:
            self.running = False
            self.ended = True
            self.say(f"the scenario's {self._stop_at:,} steps are done: paused. space goes on past the end, "
                     "r replays")

    def say(self, message: str, kind: str = "info") -> None:
        self.message, self.message_kind = message, kind
        self.said += 1

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
        """Take the snapshot(s) now and hand them to the UI (by reference)."""
        start = time.perf_counter()
        self._take()
        self._unpublished = False
        self._last_publish = time.perf_counter()
        self._publish_cost = 0.7 * self._publish_cost + 0.3 * (self._last_publish - start)
