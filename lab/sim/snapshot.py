"""The Snapshot: everything a view needs, immutable.  This is the contract between the
simulation and every view (TUI widgets, headless reports, expectations)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Per-layer scalar metrics, by name (expectations and reports refer to them).
LAYER_METRICS = ("act_mean", "act_std", "grad_mean", "grad_std", "wgrad_std", "weight_std", "update_ratio",
                 "dead_fraction", "saturated_fraction", "zero_fraction", "sign_agreement", "unit_similarity")
SCALAR_METRICS = ("step", "lr", "loss", "train_acc", "grad_norm", "val_loss", "val_acc")


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
    act_mean: float
    act_std: float
    grad_mean: float
    grad_std: float
    wgrad_std: float
    weight_std: float
    update_ratio: float
    dead_fraction: float
    saturated_fraction: float
    zero_fraction: float
    sign_agreement: float
    unit_similarity: float
    act_hist: np.ndarray  # counts over act_edges (fixed per kind)
    act_edges: np.ndarray
    grad_hist: np.ndarray  # counts over grad_edges (symlog, shared by all layers)
    grad_edges: np.ndarray
    weight_hist: np.ndarray
    update_hist: np.ndarray  # of the last step's change of W
    value_edges: np.ndarray  # symlog edges of weight_hist and update_hist

    def metric(self, name: str) -> float:
        return float(getattr(self, name))


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

    def metric(self, name: str, layer: int | None = None) -> float:
        """A scalar metric, or a per-layer one when `layer` (1-based) is given."""
        if layer is None:
            value = getattr(self, name)
            return float("nan") if value is None else float(value)
        return self.layers[layer - 1].metric(name)
