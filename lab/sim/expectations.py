"""Expectations: the lecture's claims, checked against recorded runs.

A scenario's variants each run once (the base run is variant "base") with checkpoints
at step 0, every `eval_every` steps, every step an expectation names, the end, and the
step a run diverged at.  Per-step scalars come from every step; per-layer metrics and
validation metrics from the checkpoints (the model is evaluated at each).  Ratios and
differences between variants are taken step by step, at the steps both runs recorded,
before `at`, `by`, `throughout` or `reduce` apply.

What a claim reads is kept whole, outside the Simulation's history (a ring of the last
50,000 steps): each per-step series a claim names, every step from the first (8 bytes a
step), and each claimed per-layer metric and the validation metrics at every checkpoint
(8 bytes a checkpoint), nothing else.  So `at = "initial"` and `steps_to` are exact on a
run of any length, and the memory the record takes is known before the run starts
(lab/scenario/budget.py counts it: 80 MB a series at the 10,000,000-step bound).
"""

from __future__ import annotations

import heapq
import math
import operator
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator

import numpy as np

from lab import vocabulary as V
from lab.metrics import (ENSEMBLE_SERIES_METRICS, EVAL_SERIES_METRICS, LAYER_METRICS, STEP_SERIES_METRICS, MetricRef,
                         parse_metric)
from lab.scenario.schema import Expectation, Scenario

from .run import Cancelled, run  # noqa: F401 - Cancelled: what check() raises
from .simulation import Simulation

OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


@dataclass
class Recording:
    """What one variant's run left behind, enough to evaluate any expectation."""

    name: str
    history: dict[str, np.ndarray]
    checkpoints: list[int] | np.ndarray  # the steps it was checkpointed at, in order
    layer_values: dict[int, dict[tuple[str, int], float]] = field(default_factory=dict)
    diverged: bool = False
    diverged_at: int | None = None
    final_step: int = 0
    examples: np.ndarray | None = None  # training examples seen at each checkpoint (align = "epoch")

    def series(self, ref: MetricRef, layer: int | None, smooth: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of a metric over the run.  `layer_values` maps (metric, layer) to its
        values at the checkpoints, in order."""
        if ref.name in STEP_SERIES_METRICS:
            steps, values = self.history["step"], self.history[ref.name]
            return steps, trailing_mean(values, smooth)
        if ref.name in EVAL_SERIES_METRICS:
            return self.history[V.VAL_STEP], self.history[ref.name]
        if ref.name in ENSEMBLE_SERIES_METRICS:  # an [ensemble]'s (lab/ensemble/record.py fills them)
            return self.history.get("ensemble_step", np.zeros(0)), self.history.get(ref.name, np.zeros(0))
        checkpoints = np.asarray(self.checkpoints, dtype=float)
        if ref.name == "diverged":
            hit = self.diverged and self.diverged_at is not None
            return checkpoints, (hit & (checkpoints >= (self.diverged_at or 0))).astype(float)
        values = self.layer_values.get((ref.name, layer))
        if values is None:
            return np.zeros(0), np.zeros(0)
        return checkpoints[:values.size], values


def trailing_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last `window` values at each step (of the values so far, before `window`).

    A direct convolution (as it always was) when that is cheap; on long series with wide
    windows a running sum, O(n) instead of O(n * window), exact to rounding."""
    if window <= 1 or values.size == 0:
        return values
    # until the window fills, the mean of the values so far: padding with the first value let
    # one lucky first batch count `window` times (a claim "reached at step 1")
    first = min(window - 1, values.size)
    head = np.cumsum(values[:first]) / np.arange(1, first + 1)
    if values.size < window:
        return head
    if values.size * window <= 50_000_000:
        return np.concatenate([head, np.convolve(values, np.ones(window) / window, mode="valid")])
    sums = np.cumsum(values)
    sums[window:] = sums[window:] - sums[:-window]
    return np.concatenate([head, sums[window - 1:] / window])


@dataclass(frozen=True)
class CheckResult:
    index: int  # position in the scenario's [[expect]] list
    description: str  # the expectation in words
    passed: bool
    actual: float
    expected: str
    why: str = ""
    error: str | None = None
    control: str | None = None  # the variant with the cause removed, if the claim names one...
    control_actual: float = math.nan  # ...what the claim measured there...
    vacuous: bool = False  # ...and whether it held there too (the check does not discriminate)
    robust: bool = True  # must hold at every seed and width tried (else only at the scenario's own)
    tried: tuple[str, ...] = ()  # with --seeds/--widths: the configurations run ("seed 1", "seed 1, widths x2")
    failed_at: tuple[str, ...] = ()  # ...those where it did not hold...
    vacuous_at: tuple[str, ...] = ()  # ...and those where its control held too
    missed_at: tuple[str, ...] = ()  # every configuration where it did not hold (robust or not: a report)

    @property
    def ok(self) -> bool:
        """Holds, and fails on its control: what `nnlab check` counts as a pass."""
        return self.passed and not self.vacuous


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
    if getattr(ex, "align", "step") == "epoch":
        when += " (runs paired at equal epochs)"
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


def compare_all(values: np.ndarray, op: str, value: float, tolerance: float = 0.0) -> np.ndarray:
    """compare() on every value at once (NaN never holds)."""
    values = np.asarray(values, dtype=float)
    with np.errstate(invalid="ignore"):
        if op == "==":
            ok = np.abs(values - value) <= tolerance
        elif op == "!=":
            ok = np.abs(values - value) > tolerance
        else:
            ok = OPS[op](values, value)
    return np.asarray(ok, dtype=bool) & ~np.isnan(values)


def _steps_to(steps: np.ndarray, values: np.ndarray, op: str, threshold: float) -> float:
    ok = compare_all(values, op, threshold)
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


def _aligned(ex: Expectation, ref: MetricRef, rec: Recording) -> tuple[np.ndarray, np.ndarray]:
    """(x, values): x the steps, or with align = "epoch" the training examples seen at each
    checkpoint (integers: runs of different batch sizes meet exactly at equal epochs)."""
    steps, values = rec.series(ref, ex.layer, ex.smooth)
    if getattr(ex, "align", "step") != "epoch" or rec.examples is None:
        return steps, values
    return rec.examples[:values.size].astype(float), values


def _series(ex: Expectation, ref: MetricRef, runs: dict[str, Recording]) -> tuple[np.ndarray, np.ndarray]:
    """The metric over the run, or its ratio/difference to another variant at common steps
    (at common epochs with align = "epoch")."""
    steps, values = _aligned(ex, ref, runs[ex.variant])
    other = ex.ratio_over or ex.difference_over
    if other is None:
        return steps, values
    steps_b, values_b = _aligned(ex, ref, runs[other])
    common, ia, ib = np.intersect1d(steps, steps_b, return_indices=True)
    return common, _combine(ex, values[ia], values_b[ib])


def _run_scalar(ex: Expectation, ref: MetricRef, rec: Recording) -> float:
    """A per-run number that is not a series value: steps_to, or diverged at a step."""
    if ref.steps_to is not None:
        steps, values = rec.series(ref, ex.layer, ex.smooth)
        if ex.smooth and ex.smooth > 1:  # a 20-step average is reached once 20 steps are averaged: before,
            steps, values = steps[ex.smooth - 1:], values[ex.smooth - 1:]  # one lucky batch would count
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
    """The claim on its runs, and, if it names a control, the same claim with the control in
    place of `variant`: holding there too makes it vacuous."""
    result = _evaluate(ex, index, runs)
    if ex.control is None:
        return result
    on_control = _evaluate(ex.model_copy(update={"variant": ex.control, "control": None}), index, runs)
    return replace(result, control=ex.control, control_actual=on_control.actual, vacuous=on_control.passed)


def _evaluate(ex: Expectation, index: int, runs: dict[str, Recording]) -> CheckResult:
    expected = f"{ex.op} {ex.value:g}"
    ref = parse_metric(ex.metric)
    other = ex.ratio_over or ex.difference_over

    def result(passed: bool, actual: float) -> CheckResult:
        return CheckResult(index, describe(ex), passed, actual, expected, ex.why, robust=ex.robust)

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
        ok = compare_all(values, ex.op, ex.value, ex.tolerance)
        if ex.throughout:
            passed = bool(ok.size) and bool(ok.all())
            bad = np.nonzero(~ok)[0]
            actual = float(values[bad[0]]) if bad.size else (float(values[-1]) if values.size else float("nan"))
        else:
            passed = bool(ok.any())
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
    """The last step an expectation reads: a run need not train past it.  A per-step series'
    initial value is the first step's (its loss is computed from the initial weights)."""
    if ex.at in (0, "initial") and not ex.throughout and ex.reduce is None:
        ref = parse_metric(ex.metric)
        return min(1, total) if ref.name in STEP_SERIES_METRICS and ref.steps_to is None else 0
    if isinstance(ex.at, int):
        return min(ex.at, total)
    if ex.by is not None:  # (the schema allows by only without at and throughout)
        return min(ex.by, total)
    return total


@dataclass
class Needs:
    """What the claims about one run read."""

    series: set[str] = field(default_factory=set)  # per-step series, kept whole
    layers: set[tuple[str, int]] = field(default_factory=set)  # (metric, layer) at every checkpoint
    steps: set[int] = field(default_factory=set)  # steps named by `at`/`by`: extra checkpoints
    until: int = 0


def checkpoint_steps(total: int, every: int, extra: set[int]) -> Iterator[int]:
    """0, every `every` steps, the extra steps and `total`, in order, once each (lazily: a
    10,000,000-step run with eval_every = 1 never holds them all)."""
    last = -1
    for step in heapq.merge(range(0, total + 1, every), sorted(s for s in extra | {total} if s <= total)):
        if step != last:
            yield step
            last = step


def record(name: str, scenario: Scenario, needs: Needs, until: int | None = None,
           cancelled: Callable[[], bool] | None = None, *, build: Callable[[Scenario], Simulation] | None = None,
           also: Callable[[Simulation], None] | None = None) -> Recording:
    """Run a variant to `until` (default: its train.steps) on the headless runner, checkpointing
    as the module says and keeping what `needs` names.  When cancelled() turns true, Cancelled
    is raised.  build(scenario): the Simulation to run (default: a fresh one, no timeline);
    also(sim): called at every checkpoint too (an ensemble member's probabilities)."""
    total = scenario.train.steps if until is None else min(until, scenario.train.steps)
    every = scenario.train.eval_every
    extra = {s for s in needs.steps if s <= total}
    room = total // every + len(extra) + 3  # checkpoints, and the state a run diverged in
    reached = np.empty(room, dtype=np.int64)
    examples = np.empty(room, dtype=np.int64)
    val = {k: np.empty(room) for k in EVAL_SERIES_METRICS}
    layer_values = {pair: np.empty(room) for pair in sorted(needs.layers)}
    count = 0
    index: dict[int, int] = {}

    def checkpoint(sim: Simulation) -> None:
        nonlocal count
        reached[count] = sim.step_count
        examples[count] = sim.examples_seen
        for key in val:
            val[key][count] = sim.history.series[key].last()
        if layer_values:
            if not index:
                index.update({layer.index: i for i, layer in enumerate(sim.network.layers)})
            layers = sim.snapshot().layers
            for (metric, number), out in layer_values.items():
                out[count] = layers[index[number]].metric(metric) if number in index else float("nan")
        count += 1
        if also is not None:
            also(sim)

    # no per-layer timeline: the checks read their own checkpoints, and recording ~200 steps of
    # every layer would cost several times the training of a small scenario
    done = run(scenario if build is None else build(scenario), total,
               checkpoints=checkpoint_steps(total, every, extra), on_checkpoint=checkpoint,
               cancelled=cancelled, keep=needs.series, timeline=False)
    history = {"step": done.steps(), **done.series,
               V.VAL_STEP: reached[:count].astype(float), **{k: v[:count] for k, v in val.items()}}
    return Recording(name, history, reached[:count], {pair: v[:count] for pair, v in layer_values.items()},
                     done.diverged, done.diverged_at, done.step, examples[:count])


def needs_of(scenario: Scenario) -> dict[str, Needs]:
    """What the scenario's claims read, run by run (in the order the claims name the runs)."""
    wanted: dict[str, Needs] = {}
    scenarios = variant_scenarios(scenario)
    for ex in scenario.expect:
        ref = parse_metric(ex.metric)
        for name in filter(None, (ex.variant, ex.ratio_over, ex.difference_over, ex.control)):
            need = wanted.setdefault(name, Needs())
            if isinstance(ex.at, int):
                need.steps.add(ex.at)
            if ex.by is not None:
                need.steps.add(ex.by)
            if ref.name in STEP_SERIES_METRICS:
                need.series.add(ref.name)
            elif ref.name in LAYER_METRICS:
                need.layers.add((ref.name, ex.layer))
            need.until = max(need.until, needed_until(ex, scenarios[name].train.steps))
    return wanted


def check(scenario: Scenario, *, progress: Callable[[int, int, str], None] | None = None,
          cancelled: Callable[[], bool] | None = None, jobs: int = 1) -> list[CheckResult]:
    """Run every variant an expectation needs (only as far as its claims read), then evaluate
    every expectation.

    progress(i, n, name) is called before the i-th of n runs; when cancelled() turns true
    the current run stops within a kernel call (a fraction of a second) and Cancelled is raised.
    jobs: an [ensemble]'s members train in this many worker processes (lab/parallel.py)."""
    scenarios = variant_scenarios(scenario)
    wanted = needs_of(scenario)
    runs = {}
    for i, (name, needs) in enumerate(wanted.items()):
        if progress is not None:
            progress(i, len(wanted), name)
        if scenarios[name].ensemble is not None:  # every member trained (jobs at once), combined at each checkpoint
            from lab.ensemble.record import record_ensemble

            runs[name] = record_ensemble(name, scenarios[name], needs, until=needs.until, cancelled=cancelled,
                                         jobs=jobs)
            continue
        runs[name] = record(name, scenarios[name], needs, until=needs.until, cancelled=cancelled)
    return [evaluate(ex, i, runs) for i, ex in enumerate(scenario.expect)]
