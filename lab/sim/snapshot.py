"""The Snapshot: everything a view needs, immutable.  This is the contract between the
simulation and every view (TUI widgets, headless reports, expectations)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Event:
    """A change applied at `step` (before that step ran); `source` is "scenario" or "user"."""

    step: int
    changes: dict[str, Any]
    source: str = "user"


@dataclass(frozen=True)
class LayerStats:
    index: int  # 1 = first hidden layer ... L = output layer
    name: str  # e.g. "layer 2 (tanh)"
    kind: str  # activation name, "residual" (a block's sum) or "output"
    width: int
    n_params: int  # trainable parameters: W and b, and any maxout pieces, PReLU slopes, batchnorm scale/shift
    act_mean: float
    act_std: float
    grad_mean: float
    grad_std: float
    wgrad_std: float
    weight_std: float
    update_ratio: float
    dead_fraction: float
    off_fraction: float  # z <= 0 on every probe example, whatever the activation (leaky units too)
    saturated_fraction: float
    zero_fraction: float
    sign_agreement: float
    unit_similarity: float
    weight_zero_fraction: float  # |w| < 1e-3 among W's entries (over weight_std's sample on wide layers)
    negative_slope: float  # slope for z < 0, mean over units: PReLU's learned ones, leaky's alpha, relu's 0; else NaN
    act_hist: np.ndarray  # counts over act_edges (fixed per kind)
    act_edges: np.ndarray
    grad_hist: np.ndarray  # counts over grad_edges (symlog, shared by all layers)
    grad_edges: np.ndarray
    weight_hist: np.ndarray
    update_hist: np.ndarray  # of the last step's change of W
    value_edges: np.ndarray  # symlog edges of weight_hist and update_hist

    def metric(self, name: str) -> float:
        return float(getattr(self, name))


@dataclass(frozen=True, eq=False)
class Record:
    """Every layer's statistics at one recorded training step (the state the run went on
    from: after every change made at that step).  Immutable and shared: each Snapshot whose
    timeline holds it refers to this same object, and its histograms are read-only."""

    step: int
    layers: tuple[LayerStats, ...]

    def layer(self, index: int) -> LayerStats | None:
        """The statistics of layer `index` (1-based), or None if the network had fewer layers."""
        return self.layers[index - 1] if 1 <= index <= len(self.layers) else None


@dataclass(frozen=True, eq=False)
class Timeline:
    """The per-layer records of a run, oldest first: step 0, then one every `every` steps up
    to the latest record step (lab.sim.history.LayerTimeline keeps them, bounded)."""

    records: tuple[Record, ...] = ()
    every: int = 0  # steps between records now (0: the simulation does not record)
    capacity: int = 0  # records kept at most

    def __len__(self) -> int:
        return len(self.records)

    @property
    def steps(self) -> np.ndarray:
        return np.array([r.step for r in self.records], dtype=np.int64)

    def index_at(self, step: int) -> int | None:
        """Index of the latest record at or before `step` (None before the first)."""
        i = bisect.bisect_right(self.records, step, key=lambda r: r.step) - 1
        return i if i >= 0 else None

    def at(self, step: int) -> Record | None:
        """The latest record at or before `step`."""
        i = self.index_at(step)
        return None if i is None else self.records[i]

    def series(self, name: str, layer: int) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of a per-layer metric (1-based `layer`) over the recorded steps."""
        values = [r.layers[layer - 1].metric(name) if layer <= len(r.layers) else float("nan") for r in self.records]
        return self.steps, np.array(values, dtype=np.float64)


@dataclass(frozen=True)
class Snapshot:
    step: int  # steps done
    lr: float  # lr of the next step
    loss: float  # of the last step (nan before any)
    train_acc: float
    grad_norm: float
    val_loss: float  # latest evaluation
    val_acc: float
    diverged: bool
    diverged_at: int | None
    layers: tuple[LayerStats, ...]
    history: dict[str, np.ndarray]  # series of lab.sim.history (copies)
    events: tuple[Event, ...]
    scenario_name: str = ""
    settings: dict[str, Any] = field(default_factory=dict)  # current model/train settings
    timeline: Timeline = field(default_factory=Timeline)  # every layer at recorded steps, shared, not copied

    def layer_frames(self) -> list[tuple[int, tuple[LayerStats, ...]]]:
        """(step, every layer's statistics) over the run: the timeline's records, then this
        snapshot's own statistics if its step is later (the live state)."""
        frames = [(r.step, r.layers) for r in self.timeline.records]
        if self.layers and (not frames or self.step > frames[-1][0]):
            frames.append((self.step, self.layers))
        return frames

    def metric(self, name: str, layer: int | None = None) -> float:
        """A scalar metric, or a per-layer one when `layer` (1-based) is given."""
        if layer is None:
            if not hasattr(self, name):  # an optional eval series (mc_val_acc, ...): its latest value
                values = self.history.get(name)
                return float(values[-1]) if values is not None and values.size else float("nan")
            value = getattr(self, name)
            return float("nan") if value is None else float(value)
        return self.layers[layer - 1].metric(name)
