"""Metric names shared by the Snapshot, the scenario schema and the checker.

Expectations may name a scalar metric, a per-layer metric (with `layer`), or a derived
one: `steps_to(METRIC OP VALUE)`, the first step at which the per-step series satisfies
the condition (e.g. `steps_to(train_acc >= 0.9)`); the shorthand `steps_to_METRIC(V)`
means `>=` for accuracies and `<=` for everything else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lab import vocabulary as V
from lab.errors import clip, finite_number

# from the vocabulary's metrics (lab/vocabulary.py)
SCALAR_METRICS = V.scalar_metrics()
STEP_SERIES_METRICS = V.series_metrics("step")  # recorded every step
EVAL_SERIES_METRICS = V.series_metrics("eval")  # recorded at every evaluation
ENSEMBLE_SERIES_METRICS = V.series_metrics("ensemble")  # an [ensemble]'s, at every checkpoint (lab/ensemble/)
LAYER_METRICS = V.layer_metrics()
OPS = ("<=", ">=", "==", "!=", "<", ">")

_STEPS_TO = re.compile(r"^steps_to\(\s*([a-z_]+)\s*(<=|>=|==|!=|<|>)\s*([-+0-9.eE]+)\s*\)$")
_STEPS_TO_SHORT = re.compile(r"^steps_to_([a-z_]+)\(\s*([-+0-9.eE]+)\s*\)$")


@dataclass(frozen=True)
class MetricRef:
    name: str  # the underlying metric
    per_layer: bool
    steps_to: tuple[str, float] | None = None  # (op, threshold) for derived steps_to metrics


def parse_metric(text: str) -> MetricRef:
    """Parse a metric name; raise ValueError saying what is allowed."""
    text = text.strip()
    if text in SCALAR_METRICS:
        return MetricRef(text, False)
    if text in LAYER_METRICS:
        return MetricRef(text, True)
    m = _STEPS_TO.match(text)
    if m:
        name, op, value = m.group(1), m.group(2), m.group(3)
    else:
        m = _STEPS_TO_SHORT.match(text)
        if not m:
            import difflib

            options = [*SCALAR_METRICS, *LAYER_METRICS]
            close = difflib.get_close_matches(text, options, n=1, cutoff=0.6) if len(text) <= 100 else []
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown metric {clip(repr(text))}{hint} (scalar: {', '.join(SCALAR_METRICS)}; per layer: "
                             f"{', '.join(LAYER_METRICS)}; derived: steps_to(train_acc >= 0.9))")
        name, value = m.group(1), m.group(2)
        op = ">=" if name.endswith("acc") else "<="
    if name not in STEP_SERIES_METRICS and name not in EVAL_SERIES_METRICS and name not in ENSEMBLE_SERIES_METRICS:
        raise ValueError(f"steps_to needs a recorded series: one of {', '.join(STEP_SERIES_METRICS)}, "
                         f"{', '.join(EVAL_SERIES_METRICS)} (found {clip(repr(name))})")
    return MetricRef(name, False, (op, finite_number(value, "steps_to threshold")))
