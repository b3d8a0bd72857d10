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

from typing import Any, Callable

from lab.scenario.schema import Scenario
from lab.sim import Simulation, Snapshot
from lab.tui.paced import PacedWorker


class Lockstep(PacedWorker):
    """Owns the variants' Simulations (built and stepped by the worker only), the pace and
    the run state.  The UI reads `snapshots`, `running`, `ended`, `pace` and the message."""

    def __init__(self, scenarios: dict[str, Scenario], *, pace: float | None = None, running: bool = True) -> None:
        if not scenarios:
            raise ValueError("Lockstep needs at least one scenario")
        super().__init__(running=running, pace=pace, total_steps=max(sc.train.steps for sc in scenarios.values()))
        self.scenarios = dict(scenarios)
        self.sims: dict[str, Simulation] = {}  # filled by the worker, all at once
        self.snapshots: dict[str, Snapshot] = {}  # the latest of every variant, taken together
        self._announced: set[str] = set()  # variants whose divergence was reported

    # -- what the UI reads --------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return bool(self.snapshots)

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

    # -- what the paced worker asks -------------------------------------------------------------
    def _start(self, cancelled: Callable[[], bool]) -> bool:
        sims = {}
        for name, scenario in self.scenarios.items():
            if cancelled():
                return False
            sims[name] = Simulation(scenario, timeline_capacity=0, cancelled=cancelled)  # compare has no zoom
        self.sims = sims
        return True

    def _advance(self, n: int) -> int:
        for sim in self.live():
            sim.step(n)  # a variant that diverges stops inside its step(): the others go on
        return n

    def _engine_rate(self) -> float:
        # a round steps every live variant: their times add up
        return 1.0 / sum(1.0 / sim.trainer.steps_per_second() for sim in self.live()) if self.live() else 1.0

    def _blocked(self) -> str:
        return "" if self.live() else "every variant has diverged: r replays them all"

    def _reset(self, arg: Any) -> None:
        for sim in self.sims.values():
            sim.reset()
        self._announced.clear()

    def _check_divergence(self) -> None:
        for name, sim in self.sims.items():
            if sim.diverged and name not in self._announced:
                self._announced.add(name)
                others = bool(self.live())
                self.say(f"{name} diverged at step {sim.diverged_at} (NaN/Inf): "
                         + ("it stops there, the others go on" if others else "every variant has, r replays"),
                         "error")
        if self.running and not self.live():
            self.running = False

    def _take(self) -> None:
        """Snapshots of every variant, taken now, handed to the UI together."""
        self.snapshots = {name: sim.snapshot() for name, sim in self.sims.items()}
