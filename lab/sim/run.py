"""The one headless runner: a scenario (or a Simulation) trained to a step.

`nnlab run --headless`, `nnlab check` (and so a saved session's claims), screenshots and
the benchmarks all train through `run`; sweeps, ensembles and transfer learning will too.

    result = run(scenario, 1000, checkpoints=range(0, 1001, 100), on_checkpoint=look,
                 on_progress=bar, cancelled=worker.is_cancelled, keep=("loss",))
    result.sim.snapshot(); result.series["loss"]  # every step's loss, 1..1000

How it steps:

* in pieces of at most `trainer.steps_per_call()` steps (about trainer.CALL_SECONDS), fewer
  to land on the next checkpoint, so Ctrl-C (lab/interrupt.py), `cancelled` and progress
  are looked at several times a second; the bits do not depend on the pieces
  (Simulation.step's promise);
* until `until`, or until the run diverges (a scenario event at that very step may
  re-initialise it, and then it goes on, as Simulation.step does), or until a callback
  returns True, the bool itself (a sweep's early stop, a time budget; any other value,
  e.g. the Snapshot a lambda took, is ignored);
* at each checkpoint (steps in ascending order, read lazily: a generator may name ten
  million of them) the model is evaluated on the validation set, unless that step already
  was, and `on_checkpoint(sim)` is called; a run that diverges is also checkpointed in
  the state it diverged in.  The callback reads `sim.history` (cheap) or `sim.snapshot()`
  (every layer's statistics: a pass over the probe set) and must not step or change it;
* `keep` names per-step series (lr, loss, train_acc, grad_norm) to keep whole, copied out
  of the history's ring (the last 50,000 steps) before it turns over: 8 bytes a step.

`cancelled()` true raises lab.engine.trainer.Cancelled; the run, abandoned half-way, is not
to be used further.  No Textual here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from lab.engine.trainer import Cancelled
from lab.scenario.schema import Scenario

from .simulation import Simulation

__all__ = ["Cancelled", "RunResult", "run"]

Callback = Callable[[Simulation], object]  # returns True (the bool): end the run here


@dataclass
class RunResult:
    """What `run` leaves behind: the Simulation, where it started, and the series it kept."""

    sim: Simulation
    start: int  # the step it started from (0 for a scenario)
    series: dict[str, np.ndarray] = field(default_factory=dict)  # kept series, steps start+1 .. step
    seconds: float = 0.0  # spent stepping (not building the Simulation)
    stopped: bool = False  # a callback ended the run before `until`

    @property
    def step(self) -> int:
        return self.sim.step_count

    @property
    def diverged(self) -> bool:
        return self.sim.diverged

    @property
    def diverged_at(self) -> int | None:
        return self.sim.diverged_at

    def steps(self) -> np.ndarray:
        """The steps of the kept series (float, as the history's)."""
        return np.arange(self.start + 1, self.start + 1 + self._kept(), dtype=float)

    def _kept(self) -> int:
        return next(iter(self.series.values())).size if self.series else 0


class _Keeper:
    """Per-step series copied out of the history's ring before it overwrites them."""

    def __init__(self, sim: Simulation, keys: Iterable[str], until: int) -> None:
        self.sim = sim
        self.start = self.done = sim.step_count
        self.out = {k: np.empty(max(0, until - self.start)) for k in sorted(set(keys))}
        self.capacity = min((sim.history.series[k].capacity for k in self.out), default=0)  # of the ring

    def headroom(self) -> int:
        """Steps the sim may run before the ring would overwrite values not copied yet."""
        if not self.out:
            return 1 << 62
        if self.sim.step_count - self.done >= self.capacity // 2:
            self.sync()
        return self.capacity - (self.sim.step_count - self.done)

    def sync(self) -> None:
        fresh = self.sim.step_count - self.done
        if fresh > 0:
            for key, out in self.out.items():
                out[self.done - self.start:self.sim.step_count - self.start] = \
                    self.sim.history.series[key].values()[-fresh:]
            self.done = self.sim.step_count

    def series(self) -> dict[str, np.ndarray]:
        self.sync()
        return {k: v[:self.done - self.start] for k, v in self.out.items()}


def run(target: Scenario | Simulation, until: int | None = None, *, checkpoints: Iterable[int] = (),
        on_checkpoint: Callback | None = None, on_progress: Callback | None = None,
        cancelled: Callable[[], bool] | None = None, keep: Iterable[str] = (), chunk: int | None = None,
        timeline: bool = True) -> RunResult:
    """Train `target` until step `until` (default: the scenario's train.steps), as the module says.

    target: a Scenario (a fresh Simulation is built: with the per-layer timeline unless
    timeline=False, and asking `cancelled` between kernel calls too) or a Simulation to go on
    with (`until` is a step number, not a count: one at step 200 run until 300 trains 100).
    on_progress(sim): after every piece.  chunk: at most this many steps a piece (default: a
    kernel call's worth)."""
    if isinstance(target, Simulation):
        sim = target
    else:
        sim = Simulation(target, cancelled=cancelled, **({} if timeline else {"timeline_capacity": 0}))
    if until is None:
        until = sim.original.train.steps
    keeper = _Keeper(sim, keep, until)
    result = RunResult(sim, sim.step_count)
    checked = -1  # the last step checkpointed

    def checkpoint() -> bool:
        nonlocal checked
        checked = sim.step_count
        sim.evaluate_now()
        return on_checkpoint is not None and on_checkpoint(sim) is True

    started = time.perf_counter()
    for cp in _ascending(checkpoints, sim.step_count, until):
        if _step_to(sim, cp, keeper, on_progress, cancelled, chunk):
            result.stopped = True
            break
        if sim.step_count < cp:  # diverged first
            break
        if checkpoint():
            result.stopped = True
            break
    else:
        result.stopped = _step_to(sim, until, keeper, on_progress, cancelled, chunk)
    if sim.diverged and checked != sim.step_count and on_checkpoint is not None:
        checkpoint()  # the state it diverged in
    result.seconds = time.perf_counter() - started
    result.series = keeper.series()
    return result


def _ascending(steps: Iterable[int], first: int, last: int) -> Iterable[int]:
    """The checkpoint steps from `first` to `last`, each once, in order."""
    previous = first - 1
    for step in steps:
        if step > last:
            break
        if step > previous:
            yield step
            previous = step


def _step_to(sim: Simulation, step: int, keeper: _Keeper, on_progress: Callback | None,
             cancelled: Callable[[], bool] | None, chunk: int | None) -> bool:
    """Step `sim` to `step` (or its divergence) in pieces; True if on_progress asked to stop."""
    while sim.step_count < step and not sim.diverged:
        if cancelled is not None and cancelled():
            raise Cancelled
        piece = min(step - sim.step_count, sim.trainer.steps_per_call(), keeper.headroom())
        sim.step(piece if chunk is None else min(piece, chunk))
        if on_progress is not None and on_progress(sim) is True:
            return True
    return False
