"""A search's results on disk: results.json (every trial, with its loss curve: enough to
resume) and results.csv (one row a trial, for a spreadsheet), both written atomically
(lab/files.py), so a search stopped at any moment leaves the trials that finished."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lab import vocabulary as V
from lab.errors import LabError
from lab.files import write_text_atomic
from lab.scenario.schema import Scenario, SearchSpec

from .trial import Trial

if TYPE_CHECKING:  # pragma: no cover
    from .engine import SearchResult

FORMAT = "nnlab-search-1"
JSON_NAME, CSV_NAME = "results.json", "results.csv"
CSV_FIXED = ("index", "stage", "status", "metric", V.VAL_ACC, V.VAL_LOSS)
CSV_TAIL = ("seed", "steps", "diverged_at", "seconds", "reason")


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def scenario_digest(sc: Scenario) -> str:
    """What the trials depend on besides the search itself: the scenario less its [search]."""
    text = sc.model_copy(update={"search": None}).model_dump_json()
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def trial_to_dict(t: Trial) -> dict[str, Any]:
    return {"index": t.index, "stage": t.stage, "params": t.params, "seed": t.seed, "steps": t.steps,
            "status": t.status, "metric": _num(t.metric), V.VAL_ACC: _num(t.val_acc), V.VAL_LOSS: _num(t.val_loss),
            "diverged_at": t.diverged_at, "reason": t.reason, "seconds": t.seconds,
            V.LOSS: [x if math.isfinite(x) else (None if math.isnan(x) else ("inf" if x > 0 else "-inf"))
                     for x in t.loss.tolist()]}


def _back(x) -> float:
    if x is None:
        return math.nan
    if isinstance(x, str):
        return math.inf if x == "inf" else -math.inf
    return float(x)


def trial_from_dict(d: dict[str, Any]) -> Trial:
    return Trial(index=int(d["index"]), stage=int(d["stage"]), params=dict(d["params"]), seed=int(d["seed"]),
                 steps=int(d["steps"]), status=d["status"], metric=_back(d["metric"]), val_acc=_back(d[V.VAL_ACC]),
                 val_loss=_back(d[V.VAL_LOSS]), diverged_at=d.get("diverged_at"), reason=d.get("reason", ""),
                 seconds=float(d.get("seconds", 0.0)),
                 loss=np.array([_back(x) for x in d.get(V.LOSS, [])], dtype=np.float64))


def to_json(result: "SearchResult") -> str:
    doc = {"format": FORMAT, "scenario": result.scenario.name, "seed": result.scenario.seed,
           "scenario_digest": scenario_digest(result.scenario),
           "search": result.spec.model_dump(mode="json", exclude_none=True),
           "metric": result.metric, "direction": "max" if result.maximize else "min",
           "axes": [str(a) for a in result.params], "complete": result.complete,
           "trials": [trial_to_dict(t) for t in sorted(result.trials, key=lambda t: t.index)]}
    return json.dumps(doc, allow_nan=False) + "\n"


def to_csv(result: "SearchResult") -> str:
    names = [a.name for a in result.params]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*CSV_FIXED, *names, *CSV_TAIL])
    for t in sorted(result.trials, key=lambda t: t.index):
        w.writerow([t.index, t.stage, t.status, *(repr(x) if math.isfinite(x) else "" for x in
                                                  (t.metric, t.val_acc, t.val_loss)),
                    *(t.params.get(n, "") for n in names), t.seed, t.steps,
                    "" if t.diverged_at is None else t.diverged_at, f"{t.seconds:.3f}", t.reason])
    return buf.getvalue()


def write_results(result: "SearchResult", folder: Path | str) -> tuple[Path, Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return (write_text_atomic(folder / JSON_NAME, to_json(result)),
            write_text_atomic(folder / CSV_NAME, to_csv(result)))


def read_results(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / JSON_NAME
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LabError(f"{path}: cannot read the results: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise LabError(f"{path}: not a search results file ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise LabError(f"{path}: not a search results file (no \"format\": \"{FORMAT}\")")
    return doc


def load_results(path: Path | str, scenario: Scenario, spec: SearchSpec) -> list[Trial]:
    """The finished trials of an earlier run of the same search (scenario and [search] alike)."""
    doc = read_results(path)
    if doc.get("scenario_digest") != scenario_digest(scenario):
        raise LabError(f"{path}: written for a different scenario (or the scenario changed since): "
                       "resume with the same scenario file")
    if doc.get("search") != spec.model_dump(mode="json", exclude_none=True):
        raise LabError(f"{path}: written by a different search (its [search] settings or flags differ): "
                       "resume with the same settings")
    try:
        return [trial_from_dict(d) for d in doc.get("trials", [])]
    except (KeyError, TypeError, ValueError) as exc:
        raise LabError(f"{path}: a trial in the file is damaged ({exc})") from None


def load_search(path: Path | str, scenario: Scenario) -> "SearchResult":
    """A SearchResult from a results.json (to show a finished or interrupted search again): its
    trials, the [search] it ran, each stage's axes as the search narrowed them."""
    from .engine import SearchResult, axes_of, narrowed, stages_of

    doc = read_results(path)
    spec = SearchSpec.model_validate(doc.get("search", {}))
    trials = load_results(path, scenario, spec)
    result = SearchResult(scenario, spec, axes_of(spec), sorted(trials, key=lambda t: t.index))
    axes = result.params
    for number, stage in enumerate(stages_of(spec)):
        if number > 0:
            if not result.stage_trials(number):
                break
            axes = narrowed(axes, result.stage_trials(number - 1), stage, spec.maximize)
        result.stage_axes.append(axes)
    result.planned = len(trials)
    result.complete = bool(doc.get("complete"))
    result.cancelled = not result.complete
    return result
