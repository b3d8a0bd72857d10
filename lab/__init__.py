"""nnlab: watch a neural network train, layer by layer, and change the cause while it runs.

    from lab import load_scenario, Simulation
    sim = Simulation(load_scenario("scenarios/init/xavier-vs-kaiming-relu.toml"))
    sim.step(100); snap = sim.snapshot()

The names below are imported on first use, so `import lab.scenario` (the browser, the
loader) does not pay for numba and the engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "load_scenario": "lab.scenario",
    "Scenario": "lab.scenario",
    "Simulation": "lab.sim",
    "Snapshot": "lab.sim",
    "ScenarioError": "lab.errors",
    "LabError": "lab.errors",
    "ExitCode": "lab.errors",
}
__all__ = list(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from lab.errors import ExitCode, LabError, ScenarioError
    from lab.scenario import Scenario, load_scenario
    from lab.sim import Simulation, Snapshot


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lab' has no attribute {name!r}")
