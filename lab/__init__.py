"""nnlab: watch a neural network train, layer by layer, and change the cause while it runs.

    from lab import load_scenario, Simulation
    sim = Simulation(load_scenario("scenarios/init/xavier-tanh.toml"))
    sim.step(100); snap = sim.snapshot()
"""

from lab import _numba_cache  # noqa: F401  (before anything imports numba)
from lab.errors import ExitCode, LabError, ScenarioError
from lab.scenario import Scenario, load_scenario
from lab.sim import Simulation, Snapshot

__version__ = "0.1.0"
__all__ = ["load_scenario", "Scenario", "Simulation", "Snapshot", "ScenarioError", "LabError", "ExitCode"]
