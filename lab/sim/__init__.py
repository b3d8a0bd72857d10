"""The simulation layer: a scenario trained step by step, observed through Snapshots."""

from .simulation import Simulation
from .snapshot import Event, LayerStats, Record, Snapshot, Timeline

__all__ = ["Simulation", "Snapshot", "LayerStats", "Event", "Record", "Timeline"]
