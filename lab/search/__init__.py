"""Hyperparameter search: the lecture notes' procedure (coarse to fine, random over grid,
log-spaced, a best value on the border warned about) run as trials in worker processes
or on a dask.distributed cluster.  See lab/search/trial.py for what a trial is.

The names below are imported when first used (PEP 562): the scenario schema imports
lab.search.space while it is itself being defined, and must not pull in the engine."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_WHERE = {
    "Status": "trial", "Trial": "trial", "Value": "trial",
    "Axis": "space", "parse_axis": "space", "border_warnings": "space", "narrow": "space", "sample": "space",
    "trial_seed": "space",
    "SearchSpec": "engine", "SearchResult": "engine", "SearchError": "engine", "run_search": "engine",
    "load_search": "results",
}

__all__ = sorted(_WHERE)

if TYPE_CHECKING:  # pragma: no cover
    from .engine import SearchError, SearchResult, SearchSpec, run_search  # noqa: F401
    from .results import load_search  # noqa: F401
    from .space import Axis, border_warnings, narrow, parse_axis, sample, trial_seed  # noqa: F401
    from .trial import Status, Trial, Value  # noqa: F401


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
