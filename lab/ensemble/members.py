"""A scenario's members and their Simulations.

seeds mode, `members = N`: member k (0-based) is the scenario with seed scenario.seed + k, so
it draws its own initialisation, batch order and dropout masks; member 0 is the scenario's
own run, bit for bit.  Listed members (`[[ensemble.members]]`): the scenario with each one's
`set` applied, with its `seed` or the scenario's.  snapshot mode: one member, the run itself;
its snapshots at `ensemble.at` are the ensemble's members.

Every member loads the data with the scenario's seed (MemberSimulation): the same split, the
same validation rows, whatever the member's own seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab.scenario.schema import Scenario
from lab.sim.simulation import Simulation

from .combine import softmax

PROBS_CHUNK = 512  # validation rows per forward pass at most: the evaluation's chunk, in its workspace


@dataclass(frozen=True)
class Member:
    index: int
    name: str
    scenario: Scenario  # its settings and its seed
    data_seed: int  # the scenario's: every member's data split

    @property
    def seed(self) -> int:
        return self.scenario.seed


def _seeded(sc: Scenario, seed: int) -> Scenario:
    return sc.model_copy(update={"scenario": sc.scenario.model_copy(update={"seed": seed})})


def members_of(sc: Scenario) -> list[Member]:
    """The trained members of an ensemble scenario (snapshot mode: the one run)."""
    ens = sc.ensemble
    if ens is None:
        raise ValueError("the scenario has no [ensemble] table")
    if ens.mode == "snapshot":
        return [Member(0, "run", sc, sc.seed)]
    if isinstance(ens.members, list):
        return [Member(k, m.name or f"m{k + 1}", _seeded(sc.with_changes(m.set), sc.seed if m.seed is None else m.seed),
                       sc.seed) for k, m in enumerate(ens.members)]
    return [Member(k, f"m{k + 1}", _seeded(sc, sc.seed + k), sc.seed) for k in range(ens.size)]


def member_names(sc: Scenario) -> list[str]:
    """The ensemble's members as tables name them (snapshot mode: one per step of `at`)."""
    ens = sc.ensemble
    if ens is not None and ens.mode == "snapshot":
        return [f"@{step}" for step in ens.at or ()]
    return [m.name for m in members_of(sc)]


class MemberSimulation(Simulation):
    """A Simulation whose data come from `data_seed` (the ensemble's), whatever its own seed."""

    def __init__(self, scenario: Scenario, *, data_seed: int, **kwargs) -> None:
        self.data_seed = data_seed
        super().__init__(scenario, **kwargs)

    def _load_data(self, sc: Scenario):
        own, self.seed = self.seed, self.data_seed
        try:
            return super()._load_data(sc)
        finally:
            self.seed = own


def simulation(member: Member, **kwargs) -> Simulation:
    """The member's Simulation (a plain one when its seed is the data's)."""
    if member.seed == member.data_seed:
        return Simulation(member.scenario, **kwargs)
    return MemberSimulation(member.scenario, data_seed=member.data_seed, **kwargs)


def val_probs(sim: Simulation) -> np.ndarray:
    """(n_val, C) float64: the network's softmax probabilities on the validation rows, in eval mode.

    Forward passes in the evaluation's own workspace (Trainer.evaluate's rows: PROBS_CHUNK, fewer
    for a huge network; the last pass padded to the same size), so no memory is added; the
    network's last workspace is left as it was (the layer statistics read it)."""
    from lab.engine.trainer import EVAL_BATCH_MACS

    net = sim.network
    X = sim.data.X_val
    n = X.shape[0]
    C = sim.data.n_classes
    out = np.empty((n, C), dtype=np.float64)
    if n == 0:
        return out
    chunk = PROBS_CHUNK
    fits = int(EVAL_BATCH_MACS // sim.trainer.example_macs())
    if fits < chunk:
        chunk = 1 << max(0, fits.bit_length() - 1)  # as Trainer.evaluate
    rows = min(chunk, n)
    keep = net._last_ws
    try:
        for start in range(0, n, rows):
            part = X[start:start + rows]
            if part.shape[0] < rows:
                part = np.concatenate([part, np.zeros((rows - part.shape[0], X.shape[1]), dtype=X.dtype)])
            scores = net.forward(part, train=False, purpose="eval")
            out[start:start + rows] = softmax(scores)[:min(rows, n - start)]
    finally:
        net._last_ws = keep
    return out
