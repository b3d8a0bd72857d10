"""The simulation layer: a scenario trained step by step, observed through Snapshots."""

from .simulation import Simulation
from .snapshot import LayerStats, Snapshot

__all__ = ["Simulation", "Snapshot", "LayerStats"]
