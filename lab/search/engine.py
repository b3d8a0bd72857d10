"""Running a hyperparameter search: stages of trials in worker processes or on dask.

    result = run_search(scenario, jobs=2, on_trial=print)        # the scenario's [search]
    result.ranked()[0].params, result.warnings()

Stage 0 samples the axes of `[search.params]`; each further stage narrows every axis
around the `top_k` best trials of the stage before (lab/search/space.py) and trains
longer.  Trials are numbered in the order they are sampled, stage after stage; trial i
trains with a seed derived from the scenario's seed and i, so the same search gives the
same trials, bit for bit, however many workers run it and wherever they run (every
worker uses one BLAS thread).

Executors: a local process pool (`jobs` workers, forkserver/spawn, never fork: the TUI
calls this from a thread; so, as with any multiprocessing code, a script that calls
run_search needs the `if __name__ == "__main__":` guard); `scheduler="local"` starts a dask LocalCluster in-process,
`scheduler="tcp://HOST:PORT"` uses a running dask.distributed scheduler.  A worker that
dies mid-trial has its trial run again: dask reschedules it; the local pool is replaced
by a fresh one and the unfinished trials resubmitted (a trial whose workers die
MAX_ATTEMPTS times is reported failed).  No signal handling here: the CLI turns Ctrl-C
into a KeyboardInterrupt, which shuts the workers down on its way out; `cancelled()`
stops the search and returns what finished.  With `out`, the results (JSON and CSV) are
rewritten atomically after every trial, and `resume` continues from such a file.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from lab import parallel as _parallel
from lab import vocabulary as V
from lab.errors import LabError
from lab.scenario.schema import MAX_STEPS, SearchSpec, StageSpec
from lab.scenario.schema import Scenario

from . import space
from .space import Axis, Value, border_warnings  # noqa: F401 - border_warnings: part of this module's API
from .trial import Trial, trained_as

__all__ = ["MAX_ATTEMPTS", "SearchError", "SearchResult", "SearchSpec", "TrialTask", "border_warnings", "plan_stage",
           "run_search", "run_trial", "search_problems", "stages_of"]

MAX_ATTEMPTS = 3  # a trial whose worker dies this many times is reported failed
MAX_TOTAL_TRIALS = 100_000  # over all stages
DIE_ONCE_ENV = "NNLAB_SEARCH_DIE_ONCE"  # test hook: a file holding a trial index; that trial's worker dies once
DIVERGED = "diverged at step {}: lr too high or init too large"


class SearchError(LabError):
    """A search that cannot run as specified: `key` names the [search] key (or the flag)."""

    def __init__(self, key: str, problem: str):
        self.key, self.problem = key, problem
        super().__init__(f"{key}: {problem}")


# -- trials ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrialTask:
    """What a worker needs to run one trial (the base scenario travels beside it)."""

    index: int
    stage: int
    params: dict[str, Value]
    seed: int
    steps: int


def trial_scenario(base: Scenario, task: TrialTask) -> Scenario:
    return trained_as(base, task.params, task.steps, task.seed)


def _prepare_worker() -> None:
    """Once per worker process: one BLAS thread (the same bits everywhere); see lab/parallel.py."""
    from lab.parallel import prepare_worker

    prepare_worker()


def _die_if_asked(index: int, hook: str | None) -> None:
    if not hook:
        return
    try:
        if int(Path(hook).read_text().strip()) != index:
            return
        os.unlink(hook)  # only the one process whose unlink succeeds dies
    except (OSError, ValueError):
        return
    os._exit(70)


def _final(values: np.ndarray) -> float:
    """A per-step series' end: the mean of its last 10% of steps (one batch is noisy)."""
    if values.size == 0:
        return math.nan
    tail = values[-max(1, values.size // 10):]
    return float(np.mean(tail))


def run_trial(base: Scenario, task: TrialTask, metric: str = V.VAL_ACC, die_hook: str | None = None) -> Trial:
    """Train one trial (in a worker process) and say how it went; never raises for a bad trial."""
    _prepare_worker()
    _die_if_asked(task.index, die_hook)
    from lab.sim.run import run

    started = time.perf_counter()
    common = dict(index=task.index, stage=task.stage, params=dict(task.params), seed=task.seed, steps=task.steps)
    try:
        sc = trial_scenario(base, task)
        keep = (V.LOSS, V.TRAIN_ACC) if metric == V.TRAIN_ACC else (V.LOSS,)
        result = run(sc, task.steps, checkpoints=[task.steps], keep=keep, timeline=False)
    except MemoryError:
        return Trial(**common, status="failed", metric=math.nan, val_acc=math.nan, val_loss=math.nan,
                     reason="ran out of memory", seconds=time.perf_counter() - started)
    except Exception as exc:  # noqa: BLE001 - one bad trial must never end the search
        text = " ".join(str(exc).split())
        return Trial(**common, status="failed", metric=math.nan, val_acc=math.nan, val_loss=math.nan,
                     reason=f"{type(exc).__name__}: {text[:200]}", seconds=time.perf_counter() - started)
    series = result.sim.history.series
    val_acc = series[V.VAL_ACC].last()
    val_loss = series[V.VAL_LOSS].last()
    loss = np.asarray(result.series[V.LOSS], dtype=np.float64)
    if result.diverged:
        at = result.diverged_at
        return Trial(**common, status="diverged", metric=math.nan, val_acc=math.nan, val_loss=math.nan,
                     diverged_at=at, reason=DIVERGED.format(at), seconds=result.seconds, loss=loss)
    value = {V.VAL_ACC: val_acc, V.VAL_LOSS: val_loss, V.LOSS: _final(loss),
             V.TRAIN_ACC: _final(result.series.get(V.TRAIN_ACC, np.empty(0)))}[metric]
    status = "ok" if math.isfinite(value) else "failed"
    return Trial(**common, status=status, metric=float(value), val_acc=float(val_acc), val_loss=float(val_loss),
                 reason="" if status == "ok" else f"{metric} was not measured (is val_fraction 0?)",
                 seconds=result.seconds, loss=loss)


# -- stages ---------------------------------------------------------------------------------------------

def stages_of(spec: SearchSpec) -> list[StageSpec]:
    """Every stage, the first (coarse) one made from the top-level keys."""
    first = StageSpec(sampling=spec.sampling, trials=spec.trials, points=spec.points, steps=spec.steps,
                      epochs=spec.epochs)
    return [first, *spec.stages]


def train_rows(sc: Scenario) -> int:
    from lab.scenario.consistency import split_rows

    kind = V.data_kind(sc.data.kind)
    rows = min(sc.data.n, kind.rows) if kind.source == "real" and kind.rows else sc.data.n
    return split_rows(rows, sc.data.val_fraction)[0]


def stage_steps(base: Scenario, spec: SearchSpec, number: int, params: dict[str, Value]) -> int:
    """Steps a trial of stage `number` trains: its steps, or its epochs over the training set at
    the trial's batch size; by default the scenario's train.steps for the first stage and twice
    the stage before's for a further one (finer stages train longer)."""
    stage = stages_of(spec)[number]
    if stage.steps is not None:
        return stage.steps
    if stage.epochs is not None:
        batch = int(params.get("batch_size", base.train.batch_size))
        rows = train_rows(base)
        return max(1, math.ceil(stage.epochs * rows / max(1, min(batch, rows))))
    if number == 0:
        return base.train.steps
    return min(MAX_STEPS, 2 * stage_steps(base, spec, number - 1, params))


def axes_of(spec: SearchSpec) -> list[Axis]:
    return [space.parse_axis(name, text) for name, text in spec.param_texts().items()]


def stage_size(axes: list[Axis], stage: StageSpec) -> int:
    if stage.sampling == "grid":
        k = stage.points if stage.points is not None else space.grid_points(axes, stage.trials)
        return space.grid_size(axes, k)
    return stage.trials


def plan_stage(base: Scenario, spec: SearchSpec, number: int, axes: list[Axis], first_index: int) -> list[TrialTask]:
    """The trials of stage `number` over `axes`, numbered from `first_index`."""
    stage = stages_of(spec)[number]
    rows = space.sample(axes, stage.sampling, stage.trials, space.stage_rng(base.seed, number), stage.points)
    return [TrialTask(first_index + i, number, row, space.trial_seed(base.seed, first_index + i),
                      stage_steps(base, spec, number, row)) for i, row in enumerate(rows)]


def narrowed(axes: list[Axis], previous: list[Trial], stage: StageSpec, maximize: bool) -> list[Axis]:
    """The axes of a further stage: each narrowed around the top_k ok trials of `previous`."""
    top = [t for t in rank(previous, maximize) if t.ok][:stage.top_k]
    if not top:
        return list(axes)  # nothing trained: search the same ranges again, longer
    return [space.narrow(a, [t.params[a.name] for t in top if a.name in t.params], stage.margin) for a in axes]


def rank(trials: Iterable[Trial], maximize: bool) -> list[Trial]:
    """Best first: ok trials by the metric (ties: lower val_loss, then the earlier trial), then the
    diverged, then the failed, each in trial order."""
    def key(t: Trial):
        if not t.ok:
            return (1 if t.status == "diverged" else 2, 0.0, 0.0, t.index)
        vl = t.val_loss if math.isfinite(t.val_loss) else math.inf
        return (0, -t.metric if maximize else t.metric, vl, t.index)

    return sorted(trials, key=key)


# -- checks before anything runs ------------------------------------------------------------------------

def search_problems(base: Scenario, spec: SearchSpec, jobs: int = 1) -> list[SearchError]:
    """What makes this search impossible or unwise, found before any trial runs: no parameters, a
    grid too large, more memory than the budget (workers at once, plus every trial's loss curve)."""
    from lab.scenario.budget import estimate, memory_budget, size

    texts = spec.param_texts()
    if not texts:
        return [SearchError("search.params", "no parameters to search: give at least one, e.g. "
                                             "lr = \"log:1e-4:1\" (or --param lr=log:1e-4:1)")]
    axes = axes_of(spec)
    problems: list[SearchError] = []
    total, steps_total = 0, 0
    for number, stage in enumerate(stages_of(spec)):
        key = "search" if number == 0 else f"search.stages[{number - 1}]"
        n = stage_size(axes, stage)
        if n > MAX_TOTAL_TRIALS:
            points = stage.points if stage.points is not None else space.grid_points(axes, stage.trials)
            problems.append(SearchError(f"{key}.points" if stage.points is not None else f"{key}.trials",
                                        f"the grid would be {n:,} trials ({points} points on each of "
                                        f"{len(axes)} axes): at most {MAX_TOTAL_TRIALS:,}; use fewer points or "
                                        "sampling = \"random\""))
            continue
        if stage.sampling == "grid" and stage.points is None and n > stage.trials:
            problems.append(SearchError(f"{key}.trials", f"the smallest grid, 2 values on each of {len(axes)} axes "
                                                         f"(and every choice), is {n:,} trials, more than trials = "
                                                         f"{stage.trials:,}: raise trials, set points, or use "
                                                         "sampling = \"random\""))
            continue
        total += n
        steps = stage_steps(base, spec, number, {"batch_size": min(_lows(axes, "batch_size"),
                                                                  default=base.train.batch_size)})
        steps_total += n * steps
    if problems:
        return problems
    if total > MAX_TOTAL_TRIALS:
        return [SearchError("search.trials", f"{total:,} trials over all stages: at most {MAX_TOTAL_TRIALS:,}")]
    # memory: the largest trial, once per worker, and every trial's per-step loss (8 bytes a step)
    worst = _largest(base, axes)
    try:
        peak = max(r.peak for r in estimate(worst))
    except Exception:  # noqa: BLE001 - an impossible corner is reported by its trial instead
        peak = 0
    kept = steps_total * 8 + total * 2048
    need = jobs * peak + kept
    budget = memory_budget()
    if need > budget.nbytes:
        problems.append(SearchError("search", f"needs about {size(need)} ({jobs} worker(s) x {size(peak)} for the "
                                              f"largest trial, {size(kept)} for {total:,} trials' results): more than "
                                              f"the budget of {size(budget.nbytes)} ({budget.source}); use fewer "
                                              "trials, steps or workers"))
    return problems


def _lows(axes: list[Axis], name: str) -> list[int]:
    return [int(a.low) if a.kind != "choice" else int(min(a.choices)) for a in axes if a.name == name]


def _largest(base: Scenario, axes: list[Axis]) -> Scenario:
    """`base` with every axis at the end that takes the most memory (the highest number)."""
    params: dict[str, Value] = {}
    for a in axes:
        if a.kind == "choice":
            numbers = [c for c in a.choices if isinstance(c, (int, float)) and not isinstance(c, bool)]
            params[a.name] = max(numbers) if numbers else a.choices[0]
        else:
            params[a.name] = int(a.high) if a.integer or a.kind == "int" else a.high
    try:
        return trained_as(base, params, base.train.steps, base.seed)
    except Exception:  # noqa: BLE001
        return base


# -- results --------------------------------------------------------------------------------------------

@dataclass
class SearchResult:
    """Every trial of a search, and what they teach."""

    scenario: Scenario
    spec: SearchSpec
    params: list[Axis]  # the searched axes as given (stage 0)
    trials: list[Trial] = field(default_factory=list)  # in trial order
    stage_axes: list[list[Axis]] = field(default_factory=list)  # the axes each stage sampled
    planned: int = 0  # trials planned so far (stages not reached are not counted)
    cancelled: bool = False  # stopped before the end (cancelled() or Ctrl-C)
    complete: bool = False  # every stage ran to its end
    resumed: int = 0  # trials taken from the resume file

    @property
    def maximize(self) -> bool:
        return self.spec.maximize

    @property
    def metric(self) -> str:
        return self.spec.metric

    def ranked(self) -> list[Trial]:
        return rank(self.trials, self.maximize)

    @property
    def best(self) -> Trial | None:
        first = self.ranked()[:1]
        return first[0] if first and first[0].ok else None

    def warnings(self) -> list[str]:
        """Border warnings for the best trial, against the ranges as given."""
        best = self.best
        return space.border_warnings(self.params, best.params) if best is not None else []

    def stage_trials(self, stage: int) -> list[Trial]:
        return [t for t in self.trials if t.stage == stage]


# -- executors ------------------------------------------------------------------------------------------

# (the process pool and the dask client live in lab/parallel.py, shared with ensembles; these
# give them a trial's signature)

class _LocalBackend(_parallel.LocalBackend):
    """A process pool (forkserver or spawn) whose workers use one BLAS thread and ignore Ctrl-C."""

    def __init__(self, jobs: int) -> None:
        super().__init__(jobs, preload=("lab.search.engine", "lab.sim.run"))

    def submit(self, base, task, metric, hook):
        return self.run(run_trial, base, task, metric, hook)


class _DaskBackend(_parallel.DaskBackend):
    """The same trials on a dask.distributed cluster: "local" (a LocalCluster started here) or an
    address such as tcp://127.0.0.1:8786.  Dask re-runs the trial of a worker that died."""

    def submit(self, base, task, metric, hook):
        return self.run(run_trial, base, task, metric, hook, retries=MAX_ATTEMPTS - 1,
                        key=f"nnlab-trial-{self.token}-{task.index}")


def _backend(jobs: int, scheduler: str | None):
    return _DaskBackend(scheduler, jobs) if scheduler else _LocalBackend(jobs)


# -- the search -----------------------------------------------------------------------------------------

def run_search(scenario: Scenario, spec: SearchSpec | None = None, *, jobs: int | None = None,
               scheduler: str | None = None, on_trial: Callable[[Trial], object] | None = None,
               cancelled: Callable[[], bool] | None = None, resume: str | Path | None = None,
               out: str | Path | None = None, on_plan: Callable[[SearchResult], object] | None = None) -> SearchResult:
    """Run every stage of the search (`spec`, default the scenario's [search]) and return the trials.

    on_trial(trial): in the calling thread, as each trial finishes (any order; not for trials
    taken from `resume`).  cancelled(): checked several times a second; True stops the search
    (running trials abandoned, workers shut down) and returns what finished, `cancelled` set.
    resume: a results.json written by an earlier run of the same search: its trials are kept
    and not run again.  out: a folder where results.json and results.csv are rewritten after
    every trial.  on_plan(result): when a stage is planned (result.planned grows).
    Raises SearchError (the search cannot run as given) or LabError."""
    from lab.engine.threads import cpu_count

    from .results import load_results, write_results

    spec = spec if spec is not None else scenario.search
    if spec is None:
        raise SearchError("search", "the scenario has no [search] table and no search was given (e.g. --param "
                                    "lr=log:1e-4:1)")
    jobs = max(1, jobs if jobs is not None else cpu_count())
    problems = search_problems(scenario, spec, jobs if not scheduler else 1)
    if problems:
        raise problems[0]
    axes = axes_of(spec)
    result = SearchResult(scenario, spec, axes)
    done: dict[int, Trial] = {}
    if resume is not None:
        done = {t.index: t for t in load_results(resume, scenario, spec)}
    out_dir = Path(out) if out is not None else None
    die_hook = os.environ.get(DIE_ONCE_ENV) or None
    stages = stages_of(spec)
    backend = None
    stage_axes = axes
    first_index = 0
    try:
        for number, stage in enumerate(stages):
            if number > 0:
                stage_axes = narrowed(stage_axes, result.stage_trials(number - 1), stage, spec.maximize)
            result.stage_axes.append(stage_axes)
            tasks = plan_stage(scenario, spec, number, stage_axes, first_index)
            first_index += len(tasks)
            result.planned = first_index
            if on_plan is not None:
                on_plan(result)
            todo = []
            for task in tasks:
                old = done.get(task.index)
                if old is None:
                    todo.append(task)
                    continue
                if old.params != task.params or old.seed != task.seed or old.steps != task.steps:
                    raise LabError(f"{resume}: trial {task.index} does not match this search (its settings "
                                   f"differ): the file was written by a different search; start afresh")
                result.trials.append(old)
                result.resumed += 1
            if todo and backend is None:
                backend = _backend(jobs, scheduler)
            if todo:
                finished = _run_tasks(backend, scenario, todo, spec.metric, die_hook, cancelled,
                                      lambda t: _record(result, t, on_trial, out_dir))
                if not finished:
                    result.cancelled = True
                    break
            result.trials.sort(key=lambda t: t.index)
        else:
            result.complete = True
    except BaseException:
        result.cancelled = True
        if backend is not None:
            backend.close(cancel=True)
            backend = None
        if out_dir is not None and result.trials:
            write_results(result, out_dir)  # says "complete": false
        raise
    finally:
        if backend is not None:
            backend.close(cancel=result.cancelled)
    result.trials.sort(key=lambda t: t.index)
    if out_dir is not None:
        write_results(result, out_dir)
    return result


def _record(result: SearchResult, trial: Trial, on_trial, out_dir: Path | None) -> None:
    from .results import write_results

    result.trials.append(trial)
    if out_dir is not None:
        write_results(result, out_dir)
    if on_trial is not None:
        on_trial(trial)


def _run_tasks(backend, base: Scenario, tasks: list[TrialTask], metric: str, hook: str | None,
               cancelled: Callable[[], bool] | None, record: Callable[[Trial], None]) -> bool:
    """Run `tasks` on `backend`, calling record(trial) as each finishes; False if cancelled."""
    queue = sorted(tasks, key=lambda t: t.index, reverse=True)  # pop() takes them in order
    attempts: dict[int, int] = {}
    running: dict[object, TrialTask] = {}
    while queue or running:
        if cancelled is not None and cancelled():
            return False
        broke = False
        while queue and len(running) < backend.capacity:
            task = queue.pop()
            try:
                future = backend.submit(base, task, metric, hook)
            except Exception as exc:  # noqa: BLE001
                if not backend.worker_died(exc):
                    raise
                queue.append(task)  # the pool broke before it took this one: not an attempt
                broke = True
                break
            running[future] = task
        if broke:
            _requeue(backend, [], running, queue, attempts, record)
            continue
        backend.in_flight = list(running)
        broken: list[TrialTask] = []
        for future in backend.wait(list(running), 0.2):
            task = running.pop(future)
            try:
                trial = future.result()
            except Exception as exc:  # noqa: BLE001
                if backend.worker_died(exc):
                    broken.append(task)
                    continue
                trial = _failed(task, f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
            record(trial)
        if broken:
            _requeue(backend, broken, running, queue, attempts, record)
    return True


def _requeue(backend, broken, running, queue, attempts, record) -> None:
    """The local pool broke (a worker died): the trials that finished are kept, every other goes
    back in the queue, on a fresh pool; one in flight MAX_ATTEMPTS times is reported failed."""
    unfinished = list(broken)
    for future, task in list(running.items()):
        if future.done() and future.exception() is None:
            record(future.result())
        else:
            unfinished.append(task)
    running.clear()
    for t in unfinished:
        attempts[t.index] = attempts.get(t.index, 0) + 1
        if attempts[t.index] >= MAX_ATTEMPTS:
            record(_failed(t, f"its worker process died {MAX_ATTEMPTS} times while running it"))
        else:
            queue.append(t)
    queue.sort(key=lambda t: t.index, reverse=True)
    backend.restart()


def _failed(task: TrialTask, reason: str) -> Trial:
    return Trial(index=task.index, stage=task.stage, params=dict(task.params), seed=task.seed, steps=task.steps,
                 status="failed", metric=math.nan, val_acc=math.nan, val_loss=math.nan, reason=reason)
