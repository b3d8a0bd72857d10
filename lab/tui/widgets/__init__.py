"""Widgets of the lab's screens; each draws from a Snapshot and never changes the simulation."""
