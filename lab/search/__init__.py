"""Hyperparameter search: the lecture notes' procedure (coarse to fine, random over grid,
log-spaced, a best value on the border warned about) run as trials in worker processes
or on a dask.distributed cluster.  See lab/search/trial.py for what a trial is."""

from .trial import Status, Trial, Value

__all__ = ["Status", "Trial", "Value"]
