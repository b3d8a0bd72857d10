"""Lockstep: the variants of a scenario trained side by side by one worker thread, every
live variant the same number of steps per round, at the pace a person watches (lab.pace).

The contract is SimRunner's: the UI only queues commands (run/pause, one step, reset) or
writes the pace; the worker drains the queue between rounds, so a command reaches every
variant at the same step, and then publishes the Snapshots of all the variants together
(one dict, replaced at once: a frame never shows two steps side by side).  A variant that
diverges stops at that step and says so; the others go on.  At the scenario's length the
run pauses with a message: toggling goes on past the end, a reset replays every variant.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable

from lab import pace as paces
from lab.engine.trainer import Cancelled
from lab.scenario.schema import Scenario
from lab.sim import Simulation, Snapshot
from lab.tui.runner import CHUNK_SECONDS, IDLE_WAIT, MAX_BACKLOG_SECONDS, PUBLISH_SECONDS, PUBLISH_SHARE


class Lockstep:
    """Owns the variants' Simulations (built and stepped by the worker only), the pace and
    the run state.  The UI reads `snapshots`, `running`, `ended`, `pace` and the message."""

    def __init__(self, scenarios: dict[str, Scenario], *, pace: float | None = None, running: bool = True) -> None:
        if not scenarios:
            raise ValueError("Lockstep needs at least one scenario")
        self.scenarios = dict(scenarios)
        self.sims: dict[str, Simulation] = {}  # filled by the worker, all at once
        self.snapshots: dict[str, Snapshot] = {}  # the latest of every variant, taken together
        self.running = running
        self.pace = pace  # steps/s of every variant; None = as fast as the machine goes
        self.steps_per_s = 0.0  # measured while running (per variant: the lockstep's speed)
        self.ended = False  # paused because the scenario's steps are done
        self.total_steps = max(sc.train.steps for sc in scenarios.values())
        self.message = ""  # the latest notice, for the screen's message line...
        self.message_kind = "info"
        self.said = 0  # ...and how many there have been (the same text may come twice)
        self._stop_at: int | None = self.total_steps
        self._announced: set[str] = set()  # variants whose divergence was reported
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._submitted = 0  # written by the UI thread only...
        self._executed = 0  # ...and this by the worker only
        self._wake = threading.Event()
        self._rate = 1000.0  # estimated rounds' steps/s, sizes a round at pace max
        self._credit = 0.0  # steps due at the current pace, not yet run
        self._clock = time.perf_counter()
        self._publish_cost = 0.0
        self._unpublished = False
        self._last_publish = 0.0
        self._speed_clock, self._speed_steps = time.perf_counter(), 0

    # -- what the UI reads --------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return bool(self.snapshots)

    @property
    def pending(self) -> int:
        """Commands submitted and not yet executed (and published)."""
        return self._submitted - self._executed

    def live(self) -> list[Simulation]:
        return [sim for sim in self.sims.values() if not sim.diverged]

    @property
    def step(self) -> int:
        """The step every live variant is at (the furthest any got, when all diverged)."""
        live = self.live() or list(self.sims.values())
        return max((sim.step_count for sim in live), default=0)

    def state(self) -> str:
        if not self.ready:
            return "starting"
        if all(s.diverged for s in self.snapshots.values()):
            return "diverged"
        if self.running:
            return "running"
        return "done" if self.ended else "paused"

    # -- controls (UI thread): a queued command or a write of the pace ------------------------
    def toggle(self) -> None:
        self._submit(("toggle", None))

    def step_once(self, n: int = 1) -> None:
        """n steps of every live variant, then pause."""
        self._submit(("step", n))

    def reset(self) -> None:
        self._submit(("reset", None))

    def faster(self) -> None:
        self.pace = paces.faster(self.pace)
        self._wake.set()

    def slower(self) -> None:
        self.pace = paces.slower(self.pace)
        self._wake.set()

    def _submit(self, command: tuple) -> None:
        self._submitted += 1
        self._commands.put(command)
        self._wake.set()

    # -- the worker ---------------------------------------------------------------------------
    def loop(self, cancelled: Callable[[], bool]) -> None:
        try:  # asked between the kernel calls of a long step or evaluation, too
            self._loop(cancelled)
        except Cancelled:  # quitting: the runs are dropped half-way
            return

    def _loop(self, cancelled: Callable[[], bool]) -> None:
        sims = {}
        for name, scenario in self.scenarios.items():
            if cancelled():
                return
            sims[name] = Simulation(scenario, timeline_capacity=0, cancelled=cancelled)  # compare has no zoom
        self.sims = sims
        self.publish()
        while not cancelled():
            executed = self._drain()
            if executed:  # show what the commands did at once, running or paused
                self._check()
                self.publish()
                self._executed += executed
            if self.running and self.live():
                self._round()
            else:
                self._wait(IDLE_WAIT)
            self._check()
            self._maybe_publish()

    def _drain(self) -> int:
        ran = 0
        while True:
            try:
                kind, arg = self._commands.get_nowait()
            except queue.Empty:
                return ran
            ran += 1
            self._execute(kind, arg)

    def _execute(self, kind: str, arg: Any) -> None:
        live = self.live()
        if kind == "reset":
            replay = self.running or self.ended  # `r` at the end replays; a paused run stays paused
            for sim in self.sims.values():
                sim.reset()
            self._announced.clear()
            self._stop_at = self.total_steps
            self.ended = False
            self.running = replay
            self._restart_clocks()
        elif not live:
            self.running = False
            self._say("every variant has diverged: r replays them all", "error")
        elif kind == "step":
            self.running = False
            for sim in live:
                sim.step(arg)
            self._unpublished = True
        elif kind == "toggle":
            self.running = not self.running
            if self.running:
                if self._stop_at is not None and self.step >= self._stop_at:
                    self._stop_at = None  # asked to go on past the scenario's steps
                    self._say(f"going on past the scenario's {self.total_steps:,} steps (r replays)")
                self.ended = False
                self._restart_clocks()

    def _restart_clocks(self) -> None:
        self._credit, self._clock = 0.0, time.perf_counter()
        self._speed_clock, self._speed_steps = self._clock, 0

    def _round(self) -> None:
        """Run the steps the pace has made due (one round at most) on every live variant."""
        now = time.perf_counter()
        pace = self.pace
        # the engine's own estimate (a round steps every variant) follows a change of network at once
        engine = 1.0 / sum(1.0 / sim.trainer.steps_per_second() for sim in self.live())
        chunk = max(1, int(min(self._rate, engine) * CHUNK_SECONDS))
        if pace is None:
            due = chunk
        else:
            self._credit = min(self._credit + (now - self._clock) * pace, max(1.0, pace * MAX_BACKLOG_SECONDS))
            self._clock = now
            due = min(int(self._credit), chunk)
            if due < 1:
                self._wait((1.0 - self._credit) / pace)
                return
        if self._stop_at is not None:
            due = min(due, max(0, self._stop_at - self.step))
            if due == 0:
                return
        start = time.perf_counter()
        for sim in self.live():
            sim.step(due)  # a variant that diverges stops inside its step(): the others go on
        elapsed = time.perf_counter() - start
        if pace is not None:
            self._credit -= due
        if elapsed > 0:
            self._rate = 0.7 * self._rate + 0.3 * due / elapsed
        self._measure(due)
        self._unpublished = True

    def _measure(self, ran: int) -> None:
        now = time.perf_counter()
        self._speed_steps += ran
        span = now - self._speed_clock
        if span >= 0.5:
            rate = self._speed_steps / span
            self.steps_per_s = rate if not self.steps_per_s else 0.5 * self.steps_per_s + 0.5 * rate
            self._speed_clock, self._speed_steps = now, 0

    def _check(self) -> None:
        """Report a new divergence, pause when every variant diverged or the steps are done."""
        for name, sim in self.sims.items():
            if sim.diverged and name not in self._announced:
                self._announced.add(name)
                others = bool(self.live())
                self._say(f"{name} diverged at step {sim.diverged_at} (NaN/Inf): "
                          + ("it stops there, the others go on" if others else "every variant has, r replays"),
                          "error")
        if not self.running:
            return
        if not self.live():
            self.running = False
        elif self._stop_at is not None and self.step >= self._stop_at:
            self.running = False
            self.ended = True
            self._say(f"the scenario's {self._stop_at:,} steps are done: paused (space goes on, r replays)")

    def _say(self, message: str, kind: str = "info") -> None:
        self.message, self.message_kind = message, kind
        self.said += 1

    def _wait(self, seconds: float) -> None:
        if seconds > 0 and self._wake.wait(min(seconds, IDLE_WAIT)):
            self._wake.clear()

    def _maybe_publish(self) -> None:
        if not self._unpublished:
            return
        interval = max(PUBLISH_SECONDS, self._publish_cost / PUBLISH_SHARE) if self.running else 0.0
        if time.perf_counter() - self._last_publish >= interval:
            self.publish()

    def publish(self) -> None:
        """Snapshots of every variant, taken now, handed to the UI together."""
        start = time.perf_counter()
        self.snapshots = {name: sim.snapshot() for name, sim in self.sims.items()}
        self._unpublished = False
        self._last_publish = time.perf_counter()
        self._publish_cost = 0.7 * self._publish_cost + 0.3 * (self._last_publish - start)
