"""One member trained on the headless runner (lab/sim/run.py), in a worker process or here.

At every checkpoint the member is evaluated (val_loss, val_acc in its history) and its softmax
probabilities on the validation rows are kept (at the `keep` steps only, when given: a
snapshot ensemble keeps its snapshots).  Member 0, whose run the scenario's other claims read
(loss, val_acc, per-layer metrics), is recorded through lab.sim.expectations.record with the
claims' needs; the others through run() alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from lab.sim.expectations import Needs, Recording, checkpoint_steps, record
from lab.sim.run import run

from .members import Member, simulation, val_probs


@dataclass
class MemberRun:
    """What training one member left: its probabilities at the steps it kept them."""

    index: int
    name: str
    seed: int
    steps: np.ndarray  # (T,) int64: the steps of `probs`
    probs: np.ndarray  # (T, n_val, C) float64
    y_val: np.ndarray  # (n_val,) the validation labels (the same for every member)
    final_step: int
    diverged_at: int | None = None
    recording: Recording | None = None  # member 0 with the claims' needs
    seconds: float = 0.0


def train_member(member: Member, until: int, extra: frozenset[int] = frozenset(),
                 keep: frozenset[int] | None = None, needs: Needs | None = None) -> MemberRun:
    """Train `member` to step `until`, checkpointed at 0, every eval_every steps, `extra` and the
    end; its probabilities kept at every checkpoint (or at the `keep` steps)."""
    from lab.parallel import prepare_worker

    prepare_worker()  # one BLAS thread, here as in a worker: parallel and sequential give the same bits
    started = time.perf_counter()
    steps: list[int] = []
    probs: list[np.ndarray] = []
    labels: list[np.ndarray] = []

    def take(sim) -> None:
        if not labels:
            labels.append(np.asarray(sim.data.y_val, dtype=np.int64))
        if keep is None or sim.step_count in keep:
            steps.append(sim.step_count)
            probs.append(val_probs(sim))

    sc = member.scenario
    total = min(until, sc.train.steps)
    build = lambda _sc: simulation(member, timeline_capacity=0)  # noqa: E731
    if needs is not None:
        rec = record(member.name, sc, replace(needs, steps=set(needs.steps) | set(extra)), total, build=build,
                     also=take)
        final, diverged_at = rec.final_step, rec.diverged_at
    else:
        rec = None
        done = run(build(sc), total, checkpoints=checkpoint_steps(total, sc.train.eval_every, set(extra)),
                   on_checkpoint=take)
        final, diverged_at = done.step, done.diverged_at
    n_classes = probs[0].shape[1] if probs else 0
    n_val = labels[0].size if labels else 0
    stacked = np.stack(probs) if probs else np.zeros((0, n_val, n_classes))
    return MemberRun(member.index, member.name, member.seed, np.asarray(steps, dtype=np.int64), stacked,
                     labels[0] if labels else np.zeros(0, np.int64), final, diverged_at, rec,
                     time.perf_counter() - started)
