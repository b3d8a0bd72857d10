"""A hyperparameter search as the TUI sees it: the search runs in a thread (the search
screen's worker), and after every trial publishes an immutable SearchView by reference;
the screen polls the latest one (as the run screen polls Snapshots), so the search thread
never waits on the UI.

No Textual here.  The search function is given (the real one is
lab.search.engine.run_search, imported when first needed); it must accept on_trial,
on_plan and cancelled as the real one does, and call them in the calling thread.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from lab import vocabulary as V
from lab.scenario.schema import Scenario
from lab.search.trial import Trial

SearchFunction = Callable[..., Any]


@dataclass(frozen=True)
class SearchView:
    """Everything the search screen draws, as of one moment of the search."""

    state: str = "starting"  # starting | searching | done | stopped | failed
    ranked: tuple[Trial, ...] = ()  # best first (ok by the metric, then diverged, then failed)
    axes: tuple = ()  # the searched axes as given (name, kind, low, high, choices, position())
    warnings: tuple[str, ...] = ()  # border warnings for the best trial so far
    done: int = 0  # trials finished
    total: int = 0  # trials planned, with the stages not reached yet counted as specified
    stage: int = 0  # the stage now running (0-based)
    stages: int = 1
    metric: str = V.VAL_ACC
    maximize: bool = True
    error: str = ""  # why the search could not run (state "failed")
    started: float = field(default_factory=time.monotonic)

    @property
    def best(self) -> Trial | None:
        first = self.ranked[:1]
        return first[0] if first and first[0].ok else None

    @property
    def diverged(self) -> int:
        return sum(t.status == "diverged" for t in self.ranked)

    @property
    def failed(self) -> int:
        return sum(t.status == "failed" for t in self.ranked)

    def trial(self, index: int) -> Trial | None:
        return next((t for t in self.ranked if t.index == index), None)


def _total(result) -> int:
    """Trials planned so far plus those of the stages not reached yet (as many as specified;
    a later grid stage may come out smaller once narrowed)."""
    planned = int(getattr(result, "planned", 0))
    try:
        from lab.search.engine import stage_size, stages_of

        later = stages_of(result.spec)[len(result.stage_axes):]
        return planned + sum(stage_size(list(result.params), stage) for stage in later)
    except Exception:  # noqa: BLE001 - an estimate only: what was planned is still true
        return planned


class SearchFeed:
    """Runs one search (in the caller's thread, see `run`) and publishes its progress in `view`."""

    def __init__(self, scenario: Scenario, spec=None, *, search: SearchFunction | None = None,
                 jobs: int | None = None) -> None:
        self.scenario = scenario
        self.spec = spec if spec is not None else getattr(scenario, "search", None)
        self.search = search
        self.jobs = jobs
        metric = getattr(self.spec, "metric", V.VAL_ACC)
        self.view = SearchView(metric=metric, maximize=bool(getattr(self.spec, "maximize", True)),
                               stages=1 + len(getattr(self.spec, "stages", ()) or ()))
        self.result = None  # the engine's live SearchResult (from on_plan), read only in the search thread
        self.version = 0  # grows with every published view
        self._lock = threading.Lock()

    def _publish(self, **changes) -> None:
        with self._lock:
            changes.setdefault("state", "searching" if self.view.state == "starting" else self.view.state)
            self.view = _replace(self.view, **changes)
            self.version += 1

    def _from_result(self, result, **changes) -> None:
        """A view of the engine's result: ranked and warned about by the engine itself."""
        ranked = tuple(result.ranked())
        self._publish(ranked=ranked, axes=tuple(result.params), warnings=tuple(result.warnings()),
                      done=len(ranked), total=max(_total(result), len(ranked)),
                      stage=max(0, len(getattr(result, "stage_axes", ())) - 1), **changes)

    # -- the search thread ----------------------------------------------------------------------
    def on_plan(self, result) -> None:
        self.result = result
        self._from_result(result)

    def on_trial(self, trial: Trial) -> None:
        if self.result is not None:
            self._from_result(self.result)
        else:  # a search that does not say its plan: rank what came, best by the metric
            trials = [*self.view.ranked, trial]
            sign = -1 if self.view.maximize else 1
            ranked = sorted(trials, key=lambda t: (0, sign * t.metric, t.index) if t.ok else
                            (1 if t.status == "diverged" else 2, 0.0, t.index))
            self._publish(ranked=tuple(ranked), done=len(ranked), total=max(self.view.total, len(ranked)))

    def run(self, cancelled: Callable[[], bool]) -> None:
        """Run the search to its end (or until `cancelled()`); never raises."""
        search = self.search
        try:
            if search is None:
                from lab.search.engine import run_search as search
            if self.spec is None:
                raise ValueError("this scenario has no [search] table")
            result = search(self.scenario, self.spec, jobs=self.jobs, on_trial=self.on_trial,
                            on_plan=self.on_plan, cancelled=cancelled)
        except Exception as exc:  # noqa: BLE001 - shown on the screen: a search that cannot run must not end the lab
            text = " ".join(str(exc).split())
            self._publish(state="failed", error=text or type(exc).__name__)
            return
        stopped = bool(getattr(result, "cancelled", False)) or cancelled()
        self._from_result(result, state="stopped" if stopped else "done")


def _replace(view: SearchView, **changes) -> SearchView:
    from dataclasses import replace

    return replace(view, **changes)


def start_process_helpers() -> None:
    """Start multiprocessing's resource tracker now, from the UI thread, with a real stderr.

    Inside a Textual app sys.stderr is Textual's capture, whose fileno() is -1, and
    multiprocessing passes sys.stderr.fileno() to the resource tracker it starts with the
    first worker pool: that fails ("bad value(s) in fds_to_keep").  So it is started here
    with a real file as sys.stderr, and with fd 2 pointed at /dev/null while it starts (it
    inherits fd 2: nothing it prints can write over the screen).  Once running it serves
    every later search; the engine starts its fork server itself (which needs no stderr)."""
    from multiprocessing import resource_tracker

    saved, saved_fd = sys.stderr, os.dup(2)
    with open(os.devnull, "w") as devnull:
        try:
            os.dup2(devnull.fileno(), 2)
            sys.stderr = devnull
            resource_tracker.ensure_running()
        finally:
            sys.stderr = saved
            os.dup2(saved_fd, 2)
            os.close(saved_fd)


# -- text -------------------------------------------------------------------------------------------

def compact(value) -> str:
    """A parameter's value, short: 3.2e-3, 0.07, 128, relu, true."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value == 0 or not math.isfinite(value):
            return f"{value:g}"
        if 1e-2 <= abs(value) < 1e4:
            return f"{value:.2g}" if abs(value) < 1 else f"{value:.3g}"
        mantissa, exponent = f"{value:.1e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exponent)}"
    return str(value)


def params_text(trial: Trial) -> str:
    return " ".join(f"{name}={compact(value)}" for name, value in trial.params.items())


def outcome(trial: Trial) -> str:
    """The status column: ok, diverged at 37, failed: why."""
    if trial.status == "diverged":
        return f"diverged at {trial.diverged_at}" if trial.diverged_at is not None else "diverged"
    if trial.status == "failed":
        return f"failed: {trial.reason}" if trial.reason else "failed"
    return "ok" if trial.ok else (trial.reason or "no metric")


def trial_label(trial: Trial, total: int) -> str:
    """Where a run opened from the search came from: trial 7 of 36 (stage 1) lr=3.2e-3 l2=1e-4."""
    of = f" of {total}" if total else ""
    return f"trial {trial.index}{of} (stage {trial.stage}) {params_text(trial)}".rstrip()
