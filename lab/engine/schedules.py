"""Learning-rate schedules (lecture: "Learning rate decay"), vectorised over steps.

`t` is the 0-based index of the step about to be taken, counted from the schedule's
`start` (0 unless the schedule was chosen mid-run: then it starts where it was chosen);
`total` the steps it spans from there (default: the rest of the scenario's steps).
1) optional linear warmup: lr * (t + 1) / warmup for t < warmup;
2) then the base schedule, at the absolute step t:
   constant      lr
   step          lr * factor ** (number of milestones <= t); milestones are steps, or
                 fractions of `total` (0.8 -> step 0.8*total): "multistep by fraction"
   cosine        min_lr + (lr - min_lr) * (1 + cos(pi * p)) / 2,  p = (t - warmup)/(total - warmup)
   linear        lr + (min_lr - lr) * p
   inverse_sqrt  lr * sqrt(timescale / max(t, timescale)), timescale defaults to warmup (or 1)
Past `total`, cosine and linear stay at min_lr.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab import vocabulary as V

SCHEDULE_KINDS = V.names(V.SCHEDULES)


@dataclass(frozen=True)
class Schedule:
    kind: str = V.default(V.SCHEDULES)
    warmup: int = 0
    milestones: tuple[float, ...] = ()  # steps (>= 1) or fractions of total (< 1)
    factor: float = 0.1
    min_lr: float = 0.0
    timescale: int | None = None
    start: int = 0  # the absolute step the schedule's t = 0 is at

    def milestone_steps(self, total: int) -> np.ndarray:
        return np.array([m * total if m < 1 else m for m in self.milestones], dtype=np.float64)


# Each schedule kind of the vocabulary (lab/vocabulary.py) has `_decay_<kind>`: the lr at
# the steps t counted from the schedule's start (w: its warmup steps, before the warmup ramp).
def _decay_constant(schedule: Schedule, lr: float, total: int, t: np.ndarray, w: float) -> np.ndarray:
    return np.full_like(t, lr)


def _decay_step(schedule: Schedule, lr: float, total: int, t: np.ndarray, w: float) -> np.ndarray:
    passed = (t[:, None] >= schedule.milestone_steps(total)[None, :]).sum(axis=1)
    return lr * schedule.factor ** passed


def _progress(total: int, t: np.ndarray, w: float) -> np.ndarray:
    return np.clip((t - w) / max(total - w, 1.0), 0.0, 1.0)


def _decay_cosine(schedule: Schedule, lr: float, total: int, t: np.ndarray, w: float) -> np.ndarray:
    p = _progress(total, t, w)
    return schedule.min_lr + (lr - schedule.min_lr) * 0.5 * (1.0 + np.cos(np.pi * p))


def _decay_linear(schedule: Schedule, lr: float, total: int, t: np.ndarray, w: float) -> np.ndarray:
    return lr + (schedule.min_lr - lr) * _progress(total, t, w)


def _decay_inverse_sqrt(schedule: Schedule, lr: float, total: int, t: np.ndarray, w: float) -> np.ndarray:
    tau = float(schedule.timescale or max(schedule.warmup, 1))
    return lr * np.sqrt(tau / np.maximum(t, tau))


DECAY = {kind: globals()[f"_decay_{kind}"] for kind in SCHEDULE_KINDS}


def learning_rates(schedule: Schedule, lr: float, total: int, steps: np.ndarray) -> np.ndarray:
    """The lr used at each (0-based) step in `steps`, as float64."""
    t = np.maximum(np.asarray(steps, dtype=np.float64) - schedule.start, 0.0)
    w = float(schedule.warmup)
    if schedule.kind not in DECAY:
        raise ValueError(f"unknown schedule {schedule.kind!r}; expected one of {', '.join(SCHEDULE_KINDS)}")
    out = DECAY[schedule.kind](schedule, lr, total, t, w)
    if schedule.warmup > 0:
        out = np.where(t < w, lr * (t + 1.0) / w, out)
    return out
