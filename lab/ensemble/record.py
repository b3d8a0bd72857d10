"""An ensemble trained and combined: every member (in `jobs` worker processes when there are
cores to spare, lab/parallel.py, else one after the other here), then, at each checkpoint,
the ensemble's prediction on the validation set.

    result = run_ensemble(scenario, jobs=2)
    result.steps, result.metrics["ensemble_val_acc"], result.member_acc[:, k]

seeds mode: at each checkpoint the ensemble is every member at that step.  snapshot mode: the
members are the run's weights at the steps of `ensemble.at`; at a checkpoint the ensemble is
the snapshots taken so far (before the first, the metrics are NaN).  A member that diverged
has no probabilities after that: from there the ensemble's metrics are NaN (the claims fail,
and the report says which member diverged).

Members are combined in member order, whichever worker finished first, and every worker (and
this process, for the sequential path) uses one BLAS thread: parallel and sequential runs
give the same bits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from lab.errors import LabError
from lab.scenario.schema import Scenario
from lab.sim.expectations import Needs, Recording, checkpoint_steps
from lab.sim.run import Cancelled

from .combine import ensemble_metrics, member_metrics
from .members import member_names, members_of
from .train import MemberRun, train_member

METRICS = ("ensemble_val_acc", "ensemble_val_loss", "member_val_acc_mean", "member_val_acc_best",
           "member_val_loss_mean", "ensemble_gain_mean", "ensemble_gain_best", "ensemble_loss_drop")  # the vocabulary's "ensemble" series
MAX_ATTEMPTS = 3  # a member whose worker dies this many times fails the run


@dataclass
class EnsembleResult:
    scenario: Scenario
    names: list[str]  # the members (snapshot mode: one per step of `at`)
    steps: np.ndarray  # (T,) the checkpoints, int64
    member_acc: np.ndarray  # (T, K): NaN where a member has no value (not taken yet, diverged)
    member_loss: np.ndarray  # (T, K)
    metrics: dict[str, np.ndarray] = field(default_factory=dict)  # METRICS, each (T,)
    runs: list[MemberRun] = field(default_factory=list)  # in member order
    seconds: float = 0.0  # wall time of the training
    jobs: int = 1  # worker processes used (1: here, one after the other)

    @property
    def recording(self) -> Recording | None:
        return self.runs[0].recording if self.runs else None

    def diverged(self) -> list[tuple[str, int]]:
        return [(r.name, r.diverged_at) for r in self.runs if r.diverged_at is not None]

    def best_member(self, row: int = -1) -> int | None:
        """The index of the member with the best val accuracy at checkpoint `row` (the first on a tie)."""
        accs = self.member_acc[row] if self.member_acc.size else np.zeros(0)
        return int(np.nanargmax(accs)) if accs.size and np.isfinite(accs).any() else None


def plan(sc: Scenario, until: int | None = None, extra: set[int] = frozenset()) -> tuple[int, list[int]]:
    """(the last step, the checkpoints) of an ensemble run: 0, every eval_every, extra, `at`, the end."""
    total = sc.train.steps if until is None else min(until, sc.train.steps)
    at = set(sc.ensemble.at or ()) if sc.ensemble.mode == "snapshot" else set()
    return total, list(checkpoint_steps(total, sc.train.eval_every, {s for s in set(extra) | at if s <= total}))


def run_ensemble(sc: Scenario, *, until: int | None = None, needs: Needs | None = None, jobs: int = 1,
                 scheduler: str | None = None, cancelled: Callable[[], bool] | None = None,
                 on_member: Callable[[MemberRun], object] | None = None) -> EnsembleResult:
    """Train every member of `sc`'s [ensemble] to `until` and combine them at each checkpoint.

    needs: what claims read of member 0's run (its Recording comes back in result.recording).
    jobs: worker processes (more than the members is no use); scheduler: a dask scheduler
    (lab/parallel.py).  on_member(run): as each member finishes, in the calling thread.
    cancelled(): looked at several times a second; True raises Cancelled."""
    if sc.ensemble is None:
        raise LabError(f"{sc.name}: no [ensemble] table")
    members = members_of(sc)
    extra = set(needs.steps) if needs is not None else set()
    total, checkpoints = plan(sc, until, extra)
    keep = frozenset(sc.ensemble.at or ()) if sc.ensemble.mode == "snapshot" else None
    tasks = [(m, total, frozenset(extra | set(sc.ensemble.at or ())), keep, needs if m.index == 0 else None)
             for m in members]
    jobs = max(1, min(jobs, len(members)))
    started = time.perf_counter()
    if jobs == 1 and scheduler is None:
        runs = []
        for task in tasks:
            if cancelled is not None and cancelled():
                raise Cancelled
            runs.append(train_member(*task))
            if on_member is not None:
                on_member(runs[-1])
    else:
        runs = _in_parallel(tasks, jobs, scheduler, cancelled, on_member)
    result = combine_runs(sc, runs, checkpoints)
    result.seconds, result.jobs = time.perf_counter() - started, jobs
    return result


def _in_parallel(tasks: list[tuple], jobs: int, scheduler: str | None, cancelled, on_member) -> list[MemberRun]:
    """Each task on the shared executor; a local worker that died has its member run again."""
    from lab.parallel import make_backend

    backend = make_backend(jobs, scheduler, preload=("lab.ensemble.train", "lab.sim.run"))
    done: dict[int, MemberRun] = {}
    attempts = {t[0].index: 0 for t in tasks}
    queue = list(reversed(tasks))
    running: dict = {}
    ok = False
    try:
        while queue or running:
            if cancelled is not None and cancelled():
                raise Cancelled
            while queue and len(running) < backend.capacity:
                task = queue.pop()
                running[backend.run(train_member, *task, key=f"nnlab-member-{id(tasks)}-{task[0].index}",
                                    retries=MAX_ATTEMPTS - 1)] = task
            backend.in_flight = list(running)
            lost = []
            for future in backend.wait(list(running), 0.2):
                task = running.pop(future)
                try:
                    member_run = future.result()
                except Exception as exc:  # noqa: BLE001
                    if not backend.worker_died(exc):
                        raise
                    lost.append(task)
                    continue
                done[member_run.index] = member_run
                if on_member is not None:
                    on_member(member_run)
            if lost:  # the local pool is gone: every member in flight goes again, on a fresh pool
                lost += list(running.values())
                running.clear()
                for task in lost:
                    attempts[task[0].index] += 1
                    if attempts[task[0].index] >= MAX_ATTEMPTS:
                        raise LabError(f"member {task[0].name}: its worker process died {MAX_ATTEMPTS} times")
                queue = sorted(queue + lost, key=lambda t: -t[0].index)
                backend.restart()
        ok = True
    finally:
        backend.close(cancel=not ok)
    return [done[k] for k in sorted(done)]


def combine_runs(sc: Scenario, runs: list[MemberRun], checkpoints: list[int]) -> EnsembleResult:
    """The members' probabilities combined at each checkpoint (as the module says)."""
    ens = sc.ensemble
    names = member_names(sc)
    y = runs[0].y_val
    steps = np.asarray(checkpoints, dtype=np.int64)
    K = len(names)
    member_acc = np.full((steps.size, K), np.nan)
    member_loss = np.full((steps.size, K), np.nan)
    metrics = {name: np.full(steps.size, np.nan) for name in METRICS}
    if ens.mode == "snapshot":
        (only,) = runs
        taken = {int(s): p for s, p in zip(only.steps, only.probs)}
        for row, step in enumerate(steps):
            chosen = [k for k, at in enumerate(ens.at) if at <= step and at in taken]
            for k in chosen:
                member_acc[row, k], member_loss[row, k] = member_metrics(taken[ens.at[k]], y)
            if chosen:
                _fill(metrics, row, np.stack([taken[ens.at[k]] for k in chosen]), y, ens.combine)
    else:
        by_step = [{int(s): p for s, p in zip(r.steps, r.probs)} for r in runs]
        for row, step in enumerate(steps):
            have = [k for k in range(K) if int(step) in by_step[k]]
            for k in have:
                member_acc[row, k], member_loss[row, k] = member_metrics(by_step[k][int(step)], y)
            if len(have) == K:
                _fill(metrics, row, np.stack([by_step[k][int(step)] for k in range(K)]), y, ens.combine)
    return EnsembleResult(sc, names, steps, member_acc, member_loss, metrics, runs)


def _fill(metrics: dict[str, np.ndarray], row: int, probs: np.ndarray, y: np.ndarray, combine: str) -> None:
    if not np.isfinite(probs).all():  # a member's weights went NaN at this very step
        return
    for name, value in ensemble_metrics(probs, y, combine).items():
        metrics[name][row] = value


def record_ensemble(name: str, sc: Scenario, needs: Needs, until: int | None = None,
                    cancelled: Callable[[], bool] | None = None, jobs: int = 1) -> Recording:
    """For `nnlab check`: member 0's Recording (the scenario's own run, what its other claims
    read) with the ensemble's metrics beside it (history["ensemble_step"] and METRICS)."""
    result = run_ensemble(sc, until=until, needs=needs, jobs=jobs, cancelled=cancelled)
    rec = result.recording
    rec.history = {**rec.history, "ensemble_step": result.steps.astype(float), **result.metrics}
    return rec
