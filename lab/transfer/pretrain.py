"""The source task: pretrained headless through lab/sim/run.py (the one runner), saved as an .npz.

`ensure_pretrained(scenario, seed)` gives the source weights a transfer run starts from:

1. the file named by transfer.pretrained ({seed} replaced), relative to the scenario's folder,
   when it exists: loaded and checked (lab/transfer/weights.py; a bad file is an error, exit 2).
   A file this lab wrote records the settings it was trained under (its fingerprint); if they
   are not this run's (another seed, source, network), the file is left as it is and the
   source is pretrained afresh, so a run's numbers never depend on which file lay there;
2. otherwise the source task is trained (a Simulation of the source scenario: [data] with the
   source classes, the same [model], train.steps = transfer.source_steps, lr = source_lr) and
   the weights are written beside the scenario (atomically), when the folder is writable.

Loading the file or pretraining gives the same bits (float arrays are stored exactly), so a
target run is bit-identical either way.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from lab.sim.run import run
from lab.sim.simulation import Simulation

from .data import n_source_classes, tasks
from .weights import load_weights, read_fingerprint, save_weights

if TYPE_CHECKING:
    from lab.scenario.schema import Scenario

FORMAT = 1  # bump when what a fingerprint covers changes
_UNSAVED: "OrderedDict[str, dict[str, np.ndarray]]" = OrderedDict()  # weights no file could keep, by fingerprint
UNSAVED_KEPT = 4


def source_scenario(sc: "Scenario", seed: int) -> "Scenario":
    """The source task as a plain scenario: same data settings, model and optimizer; the source's
    steps and lr; no events, variants, claims or [transfer] (its data come from SourceSimulation)."""
    from .spec import source_settings

    t = sc.transfer
    train = sc.train.model_copy(update={"steps": max(1, t.source_steps), "lr": t.source_lr or sc.train.lr})
    meta = sc.scenario.model_copy(update={"seed": seed, "name": f"{sc.name} (source task)"})
    data = sc.data.model_copy(update=source_settings(sc))
    return sc.model_copy(update={"scenario": meta, "train": train, "data": data, "events": [], "variants": [],
                                 "expect": [], "search": None, "transfer": None})


def fingerprint(sc: "Scenario", seed: int) -> str:
    """What the source weights depend on, hashed: the source scenario's data, model, training and
    seed, and the transfer keys that shape the source task."""
    src = source_scenario(sc, seed)
    t = sc.transfer
    what = {"format": FORMAT, "seed": seed, "data": src.data.model_dump(), "model": src.model.model_dump(),
            "train": src.train.model_dump(), "steps": t.source_steps,
            "source": t.source.model_dump(), "source_classes": list(t.source_classes),
            "source_permute": t.source_permute}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:32]


def weights_path(sc: "Scenario", seed: int) -> Path:
    """The .npz of the source weights: transfer.pretrained with {seed} filled in (the loader made
    a relative name relative to the scenario's folder)."""
    return Path(sc.transfer.pretrained.format(seed=seed))


class SourceSimulation(Simulation):
    """A Simulation of the source task (its data: lab/transfer/data.py's source dataset)."""

    def __init__(self, scenario: "Scenario", seed: int, **kwargs) -> None:
        self._transfer_scenario = scenario
        super().__init__(source_scenario(scenario, seed), **kwargs)

    def _load_data(self, sc: "Scenario"):
        return tasks(self._transfer_scenario, self.seed)[0]


def parameter_shapes(sim: Simulation) -> dict[str, tuple[int, ...]]:
    return {name: value.shape for name, value in sim.network.parameters()}


def network_arrays(sim: Simulation) -> dict[str, np.ndarray]:
    """Every parameter (W1, b1, ...) and batchnorm running statistic (mean{l}, var{l}), copied."""
    return {**{name: value.copy() for name, value in sim.network.parameters()}, **sim.network.running_stats()}


def source_shapes(sc: "Scenario", seed: int) -> dict[str, tuple[int, ...]]:
    """The shapes the source network's arrays have (from its plan: nothing allocated)."""
    from lab.engine.architecture import build_plan
    from lab.sim.simulation import architecture_of

    source, _ = tasks(sc, seed)
    plan = build_plan(architecture_of(sc, source.X_train.shape[1], n_source_classes(sc)))
    shapes = {spec.name: spec.shape for spec in plan.params}
    for spec in plan.params:
        if spec.role == "gamma":
            shapes[f"mean{spec.layer}"] = shapes[f"var{spec.layer}"] = spec.shape
    return shapes


def ensure_pretrained(sc: "Scenario", seed: int, *, on_progress: Callable[[int, int], object] | None = None,
                      cancelled: Callable[[], bool] | None = None) -> tuple[dict[str, np.ndarray], str]:
    """The source weights (name -> array) and where they came from, in words (see the module).
    on_progress(step, steps) while pretraining; cancelled() true raises Cancelled."""
    path = weights_path(sc, seed)
    fp = fingerprint(sc, seed)
    if path.exists():
        made_for = read_fingerprint(path)  # first: a file made for another network has other shapes
        if made_for in ("", fp):
            weights, _ = load_weights(path, source_shapes(sc, seed))
            return weights, f"source weights loaded from {path.name}"
        origin = f"{path.name} was made for other settings (kept as it is): source pretrained afresh"
    else:
        origin = ""
    if fp in _UNSAVED:
        return _UNSAVED[fp], "source weights pretrained earlier in this session (not saved)"
    steps = sc.transfer.source_steps
    sim = SourceSimulation(sc, seed, timeline_capacity=0, cancelled=cancelled)
    progress = None if on_progress is None else (lambda s: on_progress(s.step_count, steps))
    if steps:
        run(sim, steps, on_progress=progress, cancelled=cancelled)
    if sim.diverged:
        from lab.errors import LabError

        raise LabError(f"{sc.name}: the source task diverged at step {sim.diverged_at} of pretraining "
                       "(lower transfer.source_lr)")
    weights = network_arrays(sim)
    if origin:
        _keep_unsaved(fp, weights)
        return weights, origin
    try:
        save_weights(path, weights, fingerprint=fp, source_classes=sc.transfer.source_classes)
    except OSError as exc:
        _keep_unsaved(fp, weights)
        return weights, f"source pretrained ({steps} steps); not saved to {path}: {exc.strerror or exc}"
    return weights, f"source pretrained ({steps} steps), saved to {path.name}"


def _keep_unsaved(fp: str, weights: dict[str, np.ndarray]) -> None:
    _UNSAVED[fp] = weights
    while len(_UNSAVED) > UNSAVED_KEPT:
        _UNSAVED.popitem(last=False)
