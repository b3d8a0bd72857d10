"""What one trial of a hyperparameter search is, as every part of the lab sees it.

The search engine (lab/search/engine.py) produces Trials; the CLI's table and plots, the
CSV/JSON files and the TUI's search screen read them.  Plain data, picklable (trials come
back from worker processes and dask workers), no numba and no Textual.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from lab.scenario.schema import Scenario

Value = float | int | str
Status = Literal["ok", "diverged", "failed"]


@dataclass(frozen=True)
class Trial:
    """One finished trial: the settings it tried and how it went."""

    index: int  # 0-based, in the order trials were sampled (stage by stage)
    stage: int  # 0-based stage (coarse = 0, fine = 1, ...)
    params: dict[str, Value]  # searched setting -> value (keys as in a variant's `set`)
    seed: int  # the scenario seed this trial trained with (derived from the scenario's)
    steps: int  # steps it was asked to train
    status: Status  # ok; diverged (lr too high or init too large); failed (the error in `reason`)
    metric: float  # the search metric at its end (nan unless status == "ok")
    val_acc: float  # final validation accuracy (nan if never evaluated)
    val_loss: float  # final validation loss (nan if never evaluated)
    diverged_at: int | None = None  # the step it diverged at
    reason: str = ""  # one line for the table: why it diverged or failed
    seconds: float = 0.0  # wall-clock spent training
    loss: np.ndarray = field(default_factory=lambda: np.empty(0))  # training loss per step, 1..steps_run

    @property
    def ok(self) -> bool:
        return self.status == "ok" and math.isfinite(self.metric)

    def scenario(self, base: Scenario) -> Scenario:
        """`base` as this trial trained it: its params applied, its seed and steps."""
        return trained_as(base, self.params, self.steps, self.seed)


def trained_as(base: Scenario, params: dict[str, Value], steps: int, seed: int) -> Scenario:
    """`base` with a trial's params applied (a searched `hidden` is one width for every hidden
    layer), trained for `steps` from `seed`."""
    changes: dict[str, object] = {"steps": steps}
    for name, value in params.items():
        changes[name] = [int(value)] * len(base.model.hidden) if name == "hidden" else value
    changed = base.with_changes(changes)
    return changed.model_copy(update={"scenario": changed.scenario.model_copy(update={"seed": seed})})
