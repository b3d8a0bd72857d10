"""The terminal UI (Textual).  Reads Snapshots; changes the simulation only through Simulation.set."""
