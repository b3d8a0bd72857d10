"""Expectations: the lecture's claims, checked against recorded runs.

A scenario's variants each run once (the base run is variant "base") with checkpoints
at step 0, every `eval_every` steps, every step an expectation names, the end, and the
step a run diverged at.  Per-step scalars come from the history (every step);
per-layer metrics and validation metrics from the checkpoints (the model is evaluated
at each).  Ratios and differences between variants are taken step by step, at the
steps both runs recorded, before `at`, `by`, `throughout` or `reduce` apply.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from lab.metrics import LAYER_METRICS, STEP_SERIES_METRICS, MetricRef, parse_metric
from lab.scenario.schema import Expectation, Scenario

from .simulation import Simulation

OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


@dataclass
class Recording:
    """What one variant's run left behind, enough to evaluate any expectation."""

    name: str
    history: dict[str, np.ndarray]
    checkpoints: list[int]
    layer_values: dict[int, dict[tuple[str, int], float]] = field(default_factory=dict)
    diverged: bool = False
    diverged_at: int | None = None
    final_step: int = 0

    def series(self, ref: MetricRef, layer: int | None, smooth: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of a metric over the run."""
        if ref.name in STEP_SERIES_METRICS:
            steps, values = self.history["step"], self.history[ref.name]
            if smooth > 1 and values.size:
                kernel = np.ones(smooth) / smooth
                padded = np.concatenate([np.full(smooth - 1, values[0]), values])
                values = np.convolve(padded, kernel, mode="valid")
            return steps, values
        if ref.name in ("val_loss", "val_acc"):
            return self.history["val_step"], self.history[ref.name]
        if ref.name == "diverged":
            steps = np.array(self.checkpoints, dtype=float)
            return steps, np.array([float(self.diverged and self.diverged_at is not None and s >= self.diverged_at)
                                    for s in self.checkpoints])
        steps = [s for s in self.checkpoints if s in self.layer_values]
        return np.array(steps, dtype=float), np.array([self.layer_values[s][(ref.name, layer)] for s in steps])


@dataclass(frozen=True)
class CheckResult:
    index: int  # position in the scenario's [[expect]] list
    description: str  # the expectation in words
    passed: bool
    actual: float
    expected: str
    why: str = ""
    error: str | None = None


def compare(actual: float, op: str, value: float, tolerance: float = 0.0) -> bool:
    if math.isnan(actual):
        return False
    if op == "==":
        return abs(actual - value) <= tolerance
    if op == "!=":
        return abs(actual - value) > tolerance
    return OPS[op](actual, value)


def describe(ex: Expectation) -> str:
    what = ex.metric + (f"[layer {ex.layer}]" if ex.layer is not None else "")
    if ex.ratio_over:
        what = f"{what}({ex.variant}) / {what}({ex.ratio_over})"
    elif ex.difference_over:
        what = f"{what}({ex.variant}) - {what}({ex.difference_over})"
    elif ex.variant != "base":
        what = f"{what}({ex.variant})"
    if ex.throughout:
        when = "throughout"
    elif ex.reduce:
        when = f"{ex.reduce} over the run" + (f" up to step {ex.by}" if ex.by is not None else "")
    elif ex.by is not None:
        when = f"by step {ex.by}"
    else:
        when = f"at step {ex.at}" if isinstance(ex.at, int) else f"at {ex.at or 'final'} step"
    return f"{what} {ex.op} {ex.value:g} {when}"


def _value_at(steps: np.ndarray, values: np.ndarray, at: int | str | None) -> float:
    if values.size == 0:
        return float("nan")
    if at == "initial" or at == 0:
        return float(values[0])
    if at is None or at == "final":
        return float(values[-1])
    hit = np.nonzero(steps == at)[0]
    return float(values[hit[0]]) if hit.size else float("nan")  # never reached (the run diverged)


def _steps_to(steps: np.ndarray, values: np.ndarray, op: str, threshold: float) -> float:
    ok = np.array([compare(float(v), op, threshold) for v in values], dtype=bool)
    hit = np.nonzero(ok)[0]
    return float(steps[hit[0]]) if hit.size else float("inf")


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b, with x/0 = +-inf by the sign of x (and 0/0 = nan)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        safe = np.where(b != 0, b, 1.0)
        by_zero = np.where(a > 0, np.inf, np.where(a < 0, -np.inf, np.nan))
        return np.where(b != 0, a / safe, by_zero)


def _combine(ex: Expectation, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _ratio(a, b) if ex.ratio_over else a - b


def _series(ex: Expectation, ref: MetricRef, runs: dict[str, Recording]) -> tuple[np.ndarray, np.ndarray]:
    """The metric over the run, or its ratio/difference to another variant at common steps."""
    steps, values = runs[ex.variant].series(ref, ex.layer, ex.smooth)
    other = ex.ratio_over or ex.difference_over
    if other is None:
        return steps, values
    steps_b, values_b = runs[other].series(ref, ex.layer, ex.smooth)
    common, ia, ib = np.intersect1d(steps, steps_b, return_indices=True)
    return common, _combine(ex, values[ia], values_b[ib])


def _run_scalar(ex: Expectation, ref: MetricRef, rec: Recording) -> float:
    """A per-run number that is not a series value: steps_to, or diverged at a step."""
    if ref.steps_to is not None:
        steps, values = rec.series(ref, ex.layer, ex.smooth)
        if ex.by is not None:
            keep = steps <= ex.by
            steps, values = steps[keep], values[keep]
        return _steps_to(steps, values, *ref.steps_to)
    # diverged: known at any step, reached or not
    if isinstance(ex.at, int) and ex.at > 0:
        return float(rec.diverged_at is not None and rec.diverged_at <= ex.at)
    if ex.at in (0, "initial"):
        return 0.0
    return float(rec.diverged)


def evaluate(ex: Expectation, index: int, runs: dict[str, Recording]) -> CheckResult:
    expected = f"{ex.op} {ex.value:g}"
    ref = parse_metric(ex.metric)
    other = ex.ratio_over or ex.difference_over

    def result(passed: bool, actual: float) -> CheckResult:
        return CheckResult(index, describe(ex), passed, actual, expected, ex.why)

    diverged_scalar = ref.name == "diverged" and not ex.throughout and ex.by is None and ex.reduce is None
    if ref.steps_to is not None or diverged_scalar:
        actual = _run_scalar(ex, ref, runs[ex.variant])
        if other is not None:
            actual = float(_combine(ex, np.array([actual]), np.array([_run_scalar(ex, ref, runs[other])]))[0])
        return result(compare(actual, ex.op, ex.value, ex.tolerance), actual)
    steps, values = _series(ex, ref, runs)
    if ex.by is not None:
        keep = steps <= ex.by
        steps, values = steps[keep], values[keep]
    if ex.reduce is not None:
        finite = values[np.isfinite(values)]
        reducer = {"min": np.min, "max": np.max, "mean": np.mean}[ex.reduce]
        actual = float(reducer(finite)) if finite.size else float("nan")
        return result(compare(actual, ex.op, ex.value, ex.tolerance), actual)
    if ex.throughout or ex.by is not None:
        ok = [compare(float(v), ex.op, ex.value, ex.tolerance) for v in values]
        if ex.throughout:
            passed = bool(ok) and all(ok)
            bad = [float(v) for v, good in zip(values, ok) if not good]
            actual = bad[0] if bad else (float(values[-1]) if values.size else float("nan"))
        else:
            passed = any(ok)
            if passed:
                actual = float(values[int(np.argmax(ok))])
            elif values.size:
                actual = float(np.nanmin(values) if ex.op in ("<", "<=") else np.nanmax(values))
            else:
                actual = float("nan")
        return result(passed, actual)
    actual = _value_at(steps, values, ex.at)
    return result(compare(actual, ex.op, ex.value, ex.tolerance), actual)


def variant_scenarios(scenario: Scenario) -> dict[str, Scenario]:
    """The base run and every [[variants]] entry, as full scenarios, each with the events
    that belong to it (an event with `only` belongs to the runs it names, e.g. a saved
    session's changes to "base"), so Simulation(run) plays exactly that run."""

    def own(name: str, sc: Scenario) -> Scenario:
        if all(e.only is None for e in scenario.events):
            return sc
        events = [e.model_copy(update={"only": None}) for e in scenario.events if e.applies_to(name)]
        return sc.model_copy(update={"events": events})

    runs = {"base": own("base", scenario)}
    for variant in scenario.variants:
        runs[variant.name] = own(variant.name, scenario.with_changes(variant.set))
    return runs


def needed_until(ex: Expectation, total: int) -> int:
    """The last step an expectation reads: a run need not train past it."""
    if ex.at in (0, "initial") and not ex.throughout and ex.reduce is None:
        # per-step series start with the first step's values (its loss is taken before its update)
        return min(1, total) if parse_metric(ex.metric).name in STEP_SERIES_METRICS else 0
    if isinstance(ex.at, int):
        return min(ex.at, total)
    if ex.by is not None:  # (the schema allows by only without at and throughout)
        return min(ex.by, total)
    return total


class Cancelled(Exception):
    """check() was asked to stop (the lab is closing)."""


CANCEL_CHUNK = 25  # steps between looks at `cancelled` (stepping in chunks gives the same bits)


def record(name: str, scenario: Scenario, needs_layers: bool, extra_steps: set[int], until: int | None = None,
           cancelled: Callable[[], bool] | None = None) -> Recording:
    """Run a variant to `until` (default: its train.steps), checkpointing as the module says."""
    # no per-layer timeline: the checks read their own checkpoints, and recording ~200 steps of
    # every layer would cost several times the training of a small scenario
    sim = Simulation(scenario, timeline_capacity=0)
    total = scenario.train.steps if until is None else min(until, scenario.train.steps)
    every = scenario.train.eval_every
    checkpoints = sorted({0, total, *range(every, total + 1, every), *(s for s in extra_steps if s <= total)})
    reached = []
    layer_values = {}

    def checkpoint() -> None:
        reached.append(sim.step_count)
        sim.evaluate_now()  # validation metrics at every checkpoint, not only every eval_every
        if needs_layers:
            layer_values[sim.step_count] = {(m, s.index): s.metric(m) for s in sim.snapshot().layers
                                            for m in LAYER_METRICS}

    for cp in checkpoints:
        if cancelled is None:
            sim.run_to(cp)
        else:
            while sim.step_count < cp and not sim.diverged:
                if cancelled():
                    raise Cancelled(name)
                sim.step(min(CANCEL_CHUNK, cp - sim.step_count))
        if sim.step_count < cp:
            break
        checkpoint()
    if sim.diverged and sim.step_count not in reached:
        checkpoint()  # the state it diverged in
    return Recording(name, sim.history.arrays(), reached, layer_values, sim.diverged, sim.diverged_at, sim.step_count)


def check(scenario: Scenario, *, progress: Callable[[int, int, str], None] | None = None,
          cancelled: Callable[[], bool] | None = None) -> list[CheckResult]:
    """Run every variant an expectation needs (only as far as its claims read), then evaluate
    every expectation.

    progress(i, n, name) is called before the i-th of n runs; when cancelled() turns true
    the current run stops within a few steps and Cancelled is raised."""
    wanted: dict[str, tuple[bool, set[int], int]] = {}
    scenarios = variant_scenarios(scenario)
    for ex in scenario.expect:
        ref = parse_metric(ex.metric)
        for name in filter(None, (ex.variant, ex.ratio_over, ex.difference_over)):
            layers, steps, until = wanted.get(name, (False, set(), 0))
            if isinstance(ex.at, int):
                steps = steps | {ex.at}
            if ex.by is not None:
                steps = steps | {ex.by}
            until = max(until, needed_until(ex, scenarios[name].train.steps))
            wanted[name] = (layers or ref.per_layer, steps, until)
    runs = {}
    for i, (name, (layers, steps, until)) in enumerate(wanted.items()):
        if progress is not None:
            progress(i, len(wanted), name)
        runs[name] = record(name, scenarios[name], layers, steps, until, cancelled)
    return [evaluate(ex, i, runs) for i, ex in enumerate(scenario.expect)]
