"""Scenario files: the schema (declared once) and the loader."""

from .load import ScenarioError, load_scenario
from .schema import Scenario

__all__ = ["Scenario", "ScenarioError", "load_scenario"]
