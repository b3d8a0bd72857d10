"""What the run screen's context panel draws beyond the Snapshot, taken by the thread that
steps the Simulation and published beside the Snapshot (the views never read the Simulation).

The decision boundary costs a forward pass over a grid, so it is taken only while a view
asks for it (`Wanted`), at the size it will be drawn, at most every BOUNDARY_SECONDS while
the run trains; the learning-rate curve is the schedule in force, from the Snapshot's settings;
the activation costs (lab.engine.activation_cost) are timed once, the first time asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .snapshot import Snapshot

if TYPE_CHECKING:  # pragma: no cover
    from .simulation import Simulation

BOUNDARY_SECONDS = 0.25  # the grid is retaken at most this often while training
BOUNDARY_POINTS = 400  # training examples drawn on the regions
LR_POINTS = 200


@dataclass(frozen=True)
class Wanted:
    """What a view asks the worker to take: the name of the view shown and its size in cells."""
    view: str = ""
    width: int = 0
    height: int = 0


@dataclass(frozen=True, eq=False)
class DecisionGrid:
    """The predicted class over a width x height grid spanning the training inputs (2-D
    inputs only; `classes` is None otherwise), and training points in the same space."""
    step: int
    width: int
    height: int
    features: int
    xs: np.ndarray | None = None  # (width,)
    ys: np.ndarray | None = None  # (height,) top row first
    classes: np.ndarray | None = None  # (height, width) int
    X: np.ndarray | None = None  # (<= BOUNDARY_POINTS, 2)
    y: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class LrCurve:
    """The lr from step 0 to the run's horizon under the schedule in force at `step`."""
    step: int
    horizon: int
    steps: np.ndarray
    lrs: np.ndarray


def decision_grid(sim: Simulation, width: int, height: int) -> DecisionGrid:
    """Taken by the thread that steps `sim` (it runs the network forward)."""
    X = sim.data.X_train
    grid = sim.decision_grid(width, height)
    if grid is None:
        return DecisionGrid(sim.step_count, width, height, features=X.shape[1])
    xs, ys, classes = grid
    return DecisionGrid(sim.step_count, width, height, X.shape[1], xs, ys, classes,
                        X[:BOUNDARY_POINTS].copy(), sim.data.y_train[:BOUNDARY_POINTS].copy())


def lr_curve(snap: Snapshot) -> LrCurve:
    from .simulation import scheduled_lrs

    s = snap.settings
    schedule = s["schedule"]
    horizon = max(s["steps"], snap.step, schedule["start"] + (schedule["total"] or 0), 1)
    steps = np.unique(np.linspace(0, horizon, LR_POINTS).astype(np.int64))
    return LrCurve(snap.step, horizon, steps, scheduled_lrs(schedule, s["lr"], s["steps"], steps))
