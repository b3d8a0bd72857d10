"""The members of an ensemble stepped together for the lab's ensemble screen (lab/tui/screens/ensemble.py).

EnsembleLockstep is the compare screen's Lockstep (lab/tui/lockstep.py, itself a PacedWorker)
with the ensemble's members as its runs: one worker thread steps every member the same number
of steps per round, at the pace a person watches.  Rounds end at the ensemble's checkpoints
(every eval_every steps, and the snapshot steps of `ensemble.at`), where the members'
validation probabilities are combined exactly as the headless run combines them
(lab/ensemble/record.py): the same numbers, step for step.  The UI reads `frame`, an
immutable EnsembleFrame published with the members' Snapshots.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from lab.scenario.schema import Scenario
from lab.tui.lockstep import Lockstep

from lab.ensemble.combine import ensemble_metrics, member_metrics
from lab.ensemble.members import member_names, members_of, simulation, val_probs
from lab.ensemble.record import METRICS

MAX_ROWS = 5000  # checkpoints kept for the curves (a run going on past its end stays bounded)


@dataclass(frozen=True)
class EnsembleFrame:
    """What the ensemble view draws: every checkpoint so far, and the members' latest values."""

    names: tuple[str, ...]
    labels: tuple[str, ...]  # seed or step taken, per member
    steps: np.ndarray  # (T,)
    member_acc: np.ndarray  # (T, K), NaN: no value (not taken yet, diverged)
    member_loss: np.ndarray  # (T, K)
    metrics: dict[str, np.ndarray] = field(default_factory=dict)  # METRICS, each (T,)
    combine: str = "mean"
    mode: str = "seeds"
    step: int = 0  # the step the members are at (past the last checkpoint while they train)
    total: int = 0  # the scenario's steps
    run: dict[str, np.ndarray] = field(default_factory=dict)  # snapshot mode: the run's own val_step/acc/loss

    def last(self, name: str) -> float:
        values = self.metrics.get(name)
        return float(values[-1]) if values is not None and values.size else float("nan")

    def best(self) -> int | None:
        """The member with the best val accuracy at the last checkpoint (the first on a tie)."""
        if not self.steps.size or not np.isfinite(self.member_acc[-1]).any():
            return None
        return int(np.nanargmax(self.member_acc[-1]))


class EnsembleLockstep(Lockstep):
    def __init__(self, scenario: Scenario, *, pace: float | None = None, running: bool = True) -> None:
        self.scenario = scenario
        self.ens = scenario.ensemble
        self.members = members_of(scenario)
        super().__init__({m.name: m.scenario for m in self.members}, pace=pace, running=running)
        self.total_steps = scenario.train.steps
        self._stop_at = self.total_steps
        self.names = tuple(member_names(scenario))
        if self.ens.mode == "snapshot":
            self.labels = tuple(f"step {s:,}" for s in self.ens.at)
        else:
            self.labels = tuple(f"seed {m.seed}" for m in self.members)
        self._rows: deque = deque(maxlen=MAX_ROWS)  # (step, accs, losses, metrics)
        self._snapshots: dict[int, np.ndarray] = {}  # snapshot mode: member k's probabilities
        self.frame = self._frame()

    # -- the worker -------------------------------------------------------------------------------
    def _start(self, cancelled: Callable[[], bool]) -> bool:
        sims = {}
        for member in self.members:
            if cancelled():
                return False
            sims[member.name] = simulation(member, timeline_capacity=0, cancelled=cancelled)
        self.sims = sims
        self._combine()
        return True

    def _next_checkpoint(self, step: int) -> int:
        every = self.scenario.train.eval_every
        nxt = (step // every + 1) * every
        later = [s for s in (self.ens.at or ()) if s > step]
        return min([nxt, *later])

    def _advance(self, n: int) -> int:
        """n steps of every live member, in rounds that end at the checkpoints."""
        done = 0
        while done < n and self.live():
            piece = min(n - done, self._next_checkpoint(self.step) - self.step)
            for sim in self.live():
                sim.step(piece)
            done += piece
            if self.step == self._next_checkpoint(self.step - 1) or any(s.diverged for s in self.sims.values()):
                self._combine()
        return n

    def _reset(self, arg: Any) -> None:
        super()._reset(arg)
        self._rows.clear()
        self._snapshots.clear()
        self._combine()

    def _combine(self) -> None:
        """The ensemble at the current step (as lab/ensemble/record.py combines it)."""
        step = self.step
        if self._rows and self._rows[-1][0] == step:
            return
        sims = [self.sims[m.name] for m in self.members]
        y = sims[0].data.y_val.astype(np.int64)
        K = len(self.names)
        accs, losses = np.full(K, np.nan), np.full(K, np.nan)
        values = {name: float("nan") for name in METRICS}
        if self.ens.mode == "snapshot":
            sim = sims[0]
            if not sim.diverged and step in (self.ens.at or ()):
                self._snapshots[self.ens.at.index(step)] = val_probs(sim)
            chosen = sorted(self._snapshots)
            for k in chosen:
                accs[k], losses[k] = member_metrics(self._snapshots[k], y)
            if chosen:
                values = ensemble_metrics(np.stack([self._snapshots[k] for k in chosen]), y, self.ens.combine)
        else:
            probs = [val_probs(sim) if not sim.diverged and sim.step_count == step else None for sim in sims]
            for k, p in enumerate(probs):
                if p is not None:
                    accs[k], losses[k] = member_metrics(p, y)
            if all(p is not None and np.isfinite(p).all() for p in probs):
                values = ensemble_metrics(np.stack(probs), y, self.ens.combine)
        self._rows.append((step, accs, losses, values))

    def _take(self) -> None:
        super()._take()
        self.frame = self._frame()

    def _frame(self) -> EnsembleFrame:
        rows = list(self._rows)
        K = len(self.names)
        return EnsembleFrame(
            self.names, self.labels, np.array([r[0] for r in rows], dtype=np.int64),
            np.array([r[1] for r in rows]).reshape(len(rows), K), np.array([r[2] for r in rows]).reshape(len(rows), K),
            {name: np.array([r[3][name] for r in rows]) for name in METRICS}, self.ens.combine, self.ens.mode,
            self.step if self.sims else 0, self.total_steps, self._run_curve())

    def _run_curve(self) -> dict[str, np.ndarray]:
        """Snapshot mode: the one run's validation metrics at its evaluations (from its Snapshot)."""
        snap = self.snapshots.get(self.members[0].name) if self.ens.mode == "snapshot" else None
        if snap is None:
            return {}
        h = snap.history
        return {"step": h["val_step"], "acc": h["val_acc"], "loss": h["val_loss"]}
