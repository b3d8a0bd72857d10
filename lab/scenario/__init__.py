"""Scenario files: the schema (declared once) and the loader."""

from .load import ScenarioError, load_scenario
from .schema import Changes, Scenario

__all__ = ["Scenario", "Changes", "ScenarioError", "load_scenario"]
