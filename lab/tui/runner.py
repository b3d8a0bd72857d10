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

import time
from typing import Any, Callable

from pydantic import ValidationError

from lab.engine.activation_cost import ActivationCosts, measure
from lab.errors import LabError
from lab.scenario.load import problems_of
from lab.scenario.schema import Changes
from lab.sim import Simulation, Snapshot
from lab.sim.context import BOUNDARY_SECONDS, DecisionGrid, LrCurve, Wanted, decision_grid, lr_curve
from lab.tui.paced import PacedWorker


class SimRunner(PacedWorker):
    """One Simulation, touched only by the worker (and by the UI only through `sim.lock`,
    e.g. to save).  The UI reads `latest`, the context views published beside it
    (`boundary`, `lr_curve`, `costs`: taken only while `want` asks for them), the run state, the
    pace and the message."""

    def __init__(self, sim: Simulation, *, running: bool = False, pace: float | None = None) -> None:
        super().__init__(running=running, pace=pace, total_steps=sim.current.train.steps)
        self.sim = sim
        self.latest: Snapshot = sim.snapshot()
        self.original = sim.original  # immutable
        self.changes: dict[str, Any] = sim.user_changes()  # the user's changes so far, a copy taken by the worker
        self.boundary: DecisionGrid | None = None
        self.lr_curve: LrCurve | None = None
        self.costs: ActivationCosts | None = None  # timed once, by the worker, when first shown
        self._wanted = Wanted()  # written by the worker only, from "want" commands
        self._boundary_at = 0.0
        self._rate = sim.trainer.steps_per_second()

    # -- controls (UI thread) ------------------------------------------------------------------
    def apply(self, **changes: Any) -> str:
        """Queue Simulation.set(**changes); returns "" or the reason it was refused."""
        try:
            Changes(**changes)
        except ValidationError as exc:
            return "; ".join(problems_of(exc))
        self._submit(("set", changes))
        return ""

    def want(self, wanted: Wanted) -> None:
        """The context view shown now and its size: the worker takes what it draws."""
        self._submit(("want", wanted))

    def reset(self, new_seed: bool = False) -> None:
        """Back to step 0, the same initialisation (a new seed with new_seed=True)."""
        super().reset(new_seed)

    # -- what the paced worker asks -------------------------------------------------------------
    @property
    def step(self) -> int:
        return self.sim.step_count

    def _start(self, cancelled: Callable[[], bool]) -> bool:
        self.sim.cancelled = cancelled  # also between the kernel calls of a long step or evaluation
        return True

    def _advance(self, n: int) -> int:
        return self.sim.step(n)

    def _engine_rate(self) -> float:
        return self.sim.trainer.steps_per_second()

    def _blocked(self) -> str:
        sim = self.sim
        return f"the run diverged at step {sim.diverged_at}: lower the lr (L) and reset (r)" if sim.diverged else ""

    def _reset(self, new_seed: Any) -> None:
        self.sim.reset(new_seed=bool(new_seed))
        self.total_steps = self.sim.current.train.steps

    def _execute_other(self, kind: str, arg: Any) -> None:
        if kind == "want":
            self._wanted = arg
            if arg.view != "boundary":
                self.boundary = None  # not kept up to date while hidden
            return
        if kind != "set":
            return super()._execute_other(kind, arg)
        try:
            self.sim.set(**arg)
        except LabError as exc:
            self.say(str(exc), "error")

    def _check_divergence(self) -> None:
        if self.sim.diverged and self.running:
            self.running = False
            self.say(f"diverged at step {self.sim.diverged_at}: the loss or a weight became NaN/Inf", "error")

    def _take(self) -> None:
        snap = self.sim.snapshot()
        wanted = self._wanted
        if wanted.view == "boundary":
            now = time.perf_counter()
            old = self.boundary
            # paused, every publication follows a command (a change, a step): take it; while
            # training, at a bounded cadence
            if (not self.running or old is None or (old.width, old.height) != (wanted.width, wanted.height)
                    or (old.step != snap.step and now - self._boundary_at >= BOUNDARY_SECONDS)):
                self.boundary = decision_grid(self.sim, wanted.width, wanted.height)
                self._boundary_at = now
        elif wanted.view == "lr":
            self.lr_curve = lr_curve(snap)
        elif wanted.view == "cost" and self.costs is None:
            self.costs = measure(self.sim.current.model.dtype)  # ~0.1 s of kernel calls, once per run screen
        self.changes = self.sim.user_changes()
        self.latest = snap
