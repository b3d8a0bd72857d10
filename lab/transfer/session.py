"""What a Simulation of a transfer scenario adds: the target task's data, the source weights
it starts from, the frozen lower layers, the lr factor and the source task kept in view.

The Simulation calls in at four places (lab/sim/simulation.py): loading the data
(`target_data`), building the run (`TransferSession`), each change (`changed`), each
evaluation (`source_val_acc`); `lr_factor` multiplies its learning rates.

Phases (transfer.phase, or an event `set = { phase = "fine-tune" }`):

- feature-extraction: every hidden layer frozen, the new output layer trained, lr factor 1;
- fine-tune: nothing frozen (or the lowest `freeze` layers), lr x 0.1 (`lr_factor`).

Frozen layers are never written (the kernel updates only the trained tail of the flat
parameter buffer), so they stay bit-identical and their update ratio reads exactly 0.
Batchnorm running statistics of frozen layers still follow the target's batches (they are
statistics, not parameters); scenarios that freeze avoid batchnorm.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from lab import vocabulary as V

from .data import n_source_classes, tasks

if TYPE_CHECKING:
    from lab.scenario.schema import Scenario
    from lab.sim.simulation import Simulation

PHASE_WORDS = {"feature-extraction": "feature extraction", "fine-tune": "fine-tune"}


def target_data(sim: "Simulation", sc: "Scenario"):
    """The target task's dataset (and the source's, kept on the Simulation for source_val_acc)."""
    source, target = tasks(sc, sim.seed)
    sim.transfer_source_data = source
    return target


def phase_label(sc: "Scenario", layers: int) -> str:
    """The phase in words, e.g. "fine-tune, layer 1 frozen, lr x0.1"; "from scratch" for the control."""
    t = sc.transfer
    frozen = t.frozen_layers(layers - 1)
    word = "from scratch" if t.start == "scratch" else PHASE_WORDS[t.phase]
    parts = [word]
    if frozen:
        parts.append(f"layers 1-{frozen} frozen" if frozen > 1 else "layer 1 frozen")
    factor = t.factor()
    if factor != 1.0:
        parts.append(f"lr x{factor:g}")
    return ", ".join(parts)


class TransferSession:
    """The transfer state of one Simulation (built with it, at step 0)."""

    def __init__(self, sim: "Simulation", sc: "Scenario") -> None:
        from lab.engine.network import Network
        from lab.sim.simulation import architecture_of

        self.layers = len(sim.network.layers)  # L: the output layer is the new head
        self.origin = "from scratch: no source weights (the control)"
        self.source_net = None
        self.source = sim.transfer_source_data
        if sc.transfer.start == "pretrained":
            from .pretrain import ensure_pretrained

            weights, self.origin = ensure_pretrained(sc, sim.seed, cancelled=sim.cancelled)
            self._load_body(sim.network, weights)
            self.source_net = Network(architecture_of(sc, self.source.X_train.shape[1], n_source_classes(sc)),
                                      sim.network.dtype)
            self._load_body(self.source_net, weights, head=True)
        self.frozen = -1
        self.apply(sim, sc)

    def _head_params(self, net) -> list[tuple[str, np.ndarray]]:
        return [(spec.name, net.param(spec.name)) for spec in net.plan.params if spec.layer == self.layers]

    def _load_body(self, net, weights: dict[str, np.ndarray], head: bool = False) -> None:
        """Copy the hidden layers' parameters (and the head's, with head=True) and running statistics."""
        for spec in net.plan.params:
            if spec.layer < self.layers or head:
                net.param(spec.name)[...] = weights[spec.name]
        gammas = [s for s in net.plan.params if s.role == "gamma"]
        for spec, (mean, var) in zip(gammas, net._running_views()):
            if f"mean{spec.layer}" in weights:
                mean[:] = weights[f"mean{spec.layer}"]
                var[:] = weights[f"var{spec.layer}"]

    # -- changes ----------------------------------------------------------------------------
    def apply(self, sim: "Simulation", sc: "Scenario", rebuilt: bool = False) -> None:
        """Freeze what the settings now say (after any change: a rebuilt network has new offsets,
        and the source network then takes the new architecture too, with the source's head)."""
        if rebuilt and self.source_net is not None:
            from lab.engine.network import Network
            from lab.sim.simulation import architecture_of

            head = dict(self._head_params(self.source_net))
            net = Network(architecture_of(sc, self.source.X_train.shape[1], n_source_classes(sc)),
                          sim.network.dtype)
            for name, value in head.items():
                if name in net._by_name and net.param(name).shape == value.shape:
                    net.param(name)[...] = value
            self.source_net = net
        self.frozen = sc.transfer.frozen_layers(self.layers - 1)
        sim.trainer.freeze(self.frozen)

    # -- the source task ----------------------------------------------------------------------------
    def source_val_acc(self, sim: "Simulation") -> float:
        """Accuracy on the source task's validation set of the current hidden layers under the
        source's own output layer (how much of the source task is kept); NaN from scratch."""
        if self.source_net is None or self.source.X_val.shape[0] == 0:
            return float("nan")
        net = self.source_net
        if net.dtype != sim.network.dtype:
            return float("nan")
        for spec in net.plan.params:
            if spec.layer < self.layers:
                mine = sim.network._by_name.get(spec.name)
                if mine is None or mine.shape != spec.shape:  # the network was rebuilt otherwise
                    return float("nan")
                net.param(spec.name)[...] = sim.network.param(spec.name)
        for (mean, var), (m2, v2) in zip(net._running_views(), sim.network._running_views()):
            mean[:], var[:] = m2, v2
        X = np.ascontiguousarray(self.source.X_val, dtype=net.dtype)
        y = np.ascontiguousarray(self.source.y_val, dtype=np.int64)
        ws = net.workspace(min(512, X.shape[0]), "eval")
        with np.errstate(all="ignore"):
            _, correct = net.evaluate_rows(ws, X, y, 0.0)
        return correct / X.shape[0]

    def settings(self, sim: "Simulation") -> dict[str, Any]:
        """What the views show (Snapshot.settings["transfer"])."""
        sc = sim.current
        t = sc.transfer
        return {"phase": t.phase, "start": t.start, "frozen": self.frozen, "lr_factor": t.factor(),
                "label": phase_label(sc, self.layers), "origin": self.origin,
                "source_val_acc": sim.history.series[V.SOURCE_VAL_ACC].last(),
                "labels_per_class": t.labels_per_class, "train_rows": int(sim.data.X_train.shape[0])}
