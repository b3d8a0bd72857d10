"""The `nnlab` command line.  Textual is imported only by the commands that open the UI."""

from __future__ import annotations

import json
import os
import runpy
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from lab import interrupt
from lab import vocabulary as V
from lab.errors import ExitCode, LabError, ScenarioError, clip

app = typer.Typer(add_completion=False, no_args_is_help=False, rich_markup_mode="rich",
                  context_settings={"help_option_names": ["-h", "--help"]})
console = Console()
err_console = Console(stderr=True)

DEFAULT_SCENARIO = {
    "scenario": {"name": "Spiral, 2-100-100-3 ReLU, SGD + momentum", "seed": 0},
    "data": {"kind": V.default(V.DATA_KINDS), "n": 600, "classes": 3, "noise": 0.2},
    "model": {"hidden": [100, 100], "activation": V.default(V.ACTIVATIONS), "init": V.default(V.INITS)},
    "train": {"optimizer": "momentum", "lr": 0.1, "batch_size": 64, "steps": 2000, "eval_every": 100},
}


def _fail(exc: LabError) -> None:
    # the message quotes the user's own keys and values: never read it as markup
    text = str(exc)
    if isinstance(exc, ScenarioError) and len(exc.problems) == 1:
        text = f"{exc.path}: {exc.problems[0]}"  # one problem, one line
    err_console.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)
    raise typer.Exit(ExitCode.USAGE)


def _os_error(exc: OSError, path: Optional[Path] = None, doing: str = "") -> LabError:
    """An OSError as one line that names the file: `out.csv: cannot write: Is a directory`."""
    name = path if path is not None else (exc.filename or "")
    return LabError(f"{name}: " + (f"{doing}: " if doing else "") + f"{exc.strerror or exc}")


def _check_writable(path: Path, option: str) -> None:
    """Fail before the work, not after it, when an output file cannot be written."""
    folder = path.parent
    if path.is_dir():
        _fail(LabError(f"{option} {path}: a folder; give a file name"))
    if not folder.is_dir():
        _fail(LabError(f"{option} {path}: no such folder {folder}"))
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        _fail(LabError(f"{option} {path}: permission denied"))


def _load(name_or_path: Optional[str]):
    from lab.scenario import Scenario, load_scenario

    if name_or_path is None:
        return Scenario.model_validate(DEFAULT_SCENARIO)
    return load_scenario(_scenario_file(name_or_path))


def _resolve(name_or_path: str) -> Path:
    from lab.scenario.catalog import resolve

    try:
        path = resolve(name_or_path)
    except ScenarioError as exc:
        _fail(exc)
    if path.is_dir() and not os.access(path, os.R_OK | os.X_OK):
        _fail(LabError(f"{path}: cannot open the folder: permission denied"))
    return path


def _scenario_file(name_or_path: str) -> Path:
    """The file a name or path stands for; a folder is answered with the scenarios in it (exit 2)."""
    path = _resolve(name_or_path)
    if path.is_dir():
        _folder_error(path)
    return path


def _print_scenarios(con: Console, entries, bare: bool = False) -> None:
    """Scenarios by topic: the name to type back (never cut), the title, the number of checks.
    Side by side when the titles have room beside the names, else each title under its name.
    `bare`: no topic heading when there is only one topic (the folder just named)."""
    from lab.report.lines import hang, whole
    from lab.scenario import load_scenario

    rows = []  # (topic, name, title, checks)
    for entry in entries:
        try:
            sc = load_scenario(entry.path)
            rows.append((entry.topic, entry.name, Text(sc.name), str(len(sc.expect))))
        except ScenarioError as exc:
            rows.append((entry.topic, entry.name, Text(f"invalid: {exc.problems[0]}", style="red"), ""))
    name_width = max([len("scenario"), *(2 + len(name) for _, name, _, _ in rows)]) + 2
    side_by_side = con.width - name_width - 2 - len("checks") >= 30
    title_width = max([len("title"), *(title.cell_len for _, _, title, _ in rows)])  # counts stay near titles
    if side_by_side:
        hang(con, Text("scenario".ljust(name_width)), "title", "checks", body_width=title_width)
    topic = None
    headings = len({t for t, _, _, _ in rows}) > 1 or not bare
    for t, name, title, checks in rows:
        if t != topic and headings:
            topic = t
            whole(con, Text(f"{t}/", style="bold"))
        if side_by_side:
            hang(con, Text(f"  {name}".ljust(name_width)), title, checks, len("checks"), body_width=title_width)
        else:
            count = Text(f"  ({checks} check{'s' if checks != '1' else ''})" if checks else "", style="dim")
            if 2 + len(name) + count.cell_len <= con.width:
                whole(con, Text(f"  {name}") + count)
                hang(con, "    ", title)
            else:  # the count goes after the title rather than past the edge
                whole(con, Text(f"  {name}"))
                hang(con, "    ", title + count)


FOLDER_GIVEN = "{where} is a folder, not a scenario file; its {n} scenario(s):"


def _folder_error(folder: Path, headline: str = FOLDER_GIVEN) -> None:
    """Exit 2 after `headline`, listing the folder's scenarios by the names to type back."""
    from lab.scenario.catalog import entries_in, short_name

    where = short_name(folder)
    entries = entries_in(folder)
    if not entries:
        _fail(LabError(f"{where}: a folder with no scenario files (*.toml) in it"))
    text = headline.format(where=where, n=len(entries))
    err_console.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)
    _print_scenarios(err_console, entries, bare=True)
    err_console.print(f"Run one headless:  nnlab run {escape(entries[0].name)} --headless\n"
                      f"Or, in a terminal, open the folder in the lab's browser:  nnlab run {escape(where)}",
                      highlight=False, soft_wrap=True)
    raise typer.Exit(ExitCode.USAGE)


def _browse(paths: list[Path]) -> None:
    from lab.tui.app import make_app

    app_ = make_app(paths)
    app_.run()
    if app_.return_code:
        raise typer.Exit(app_.return_code)


def run_headless(scenario, steps: Optional[int] = None, *, csv: Optional[Path] = None, plot: bool = False) -> None:
    """Train with a progress bar, then print the summary and the per-layer table."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from lab.engine.threads import limit_blas_threads
    from lab.report.table import layer_table, summary_table
    from lab.sim import Simulation
    from lab.sim.run import run

    limit_blas_threads()
    total = steps if steps is not None else scenario.train.steps
    unwritten = f"; {csv} not written" if csv is not None else ""
    interrupt.note(lambda: f"while compiling the kernels or building the run{unwritten}")
    with console.status("compiling kernels (first run only; cached afterwards)...") as status:
        from lab.engine.warmup import KERNELS, covers

        if covers(scenario):  # the same counted warm-up as the browser's, then the run's own kernels
            KERNELS.start()
            while not KERNELS.wait(0.25):
                status.update(KERNELS.progress().text() or "loading compiled kernels…")
        # the per-layer timeline costs up to half a headless run's time: record it only for --csv
        sim = Simulation(scenario) if csv is not None else Simulation(scenario, timeline_capacity=0)
        run(sim, 1)  # compiles what the warm-up did not
    interrupt.note(lambda: f"at step {sim.step_count:,} of {total:,}{unwritten}")
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), console=console, transient=True)
    with progress:
        task = progress.add_task(escape(clip(scenario.name, 60)), total=total, completed=1, loss="-")
        elapsed = run(sim, total, on_progress=lambda sim: progress.update(
            task, completed=sim.step_count, loss=f"{sim.history.series[V.LOSS].last():.4f}")).seconds
    snap = sim.snapshot()
    if plot:
        from lab.report.plots import layer_charts, loss_chart, plain

        width = min(console.width, 100)
        for chart in [loss_chart(snap, width=width), *layer_charts(snap, width=width)]:
            print(chart if console.is_terminal else plain(chart))
    console.print(f"[bold]{escape(scenario.name)}[/]", highlight=False)  # highlighting is quadratic in length
    console.print(summary_table(snap, (sim.step_count - 1) / elapsed if elapsed > 0 and sim.step_count > 1 else None))
    console.print(layer_table(snap, width=console.width))
    if snap.diverged:
        console.print(f"[bold red]The run diverged at step {snap.diverged_at}[/]: the loss or a weight became "
                      "NaN/Inf. Usually the learning rate is too high (or the initialisation too large).")
    if csv is not None:
        from lab.report.export import write_run_csv

        (_, rows), (layers_csv, layer_rows) = write_run_csv(snap, csv)
        steps = snap.history["step"]
        if steps.size and steps[0] > 1:  # the history is a ring: the first steps are gone
            console.print(f"wrote {rows} rows of history to {csv}: a window, steps {int(steps[0]):,} to "
                          f"{int(steps[-1]):,} of {sim.step_count:,} (the history keeps the last {steps.size:,} "
                          "steps; steps before the window are not in the file)", highlight=False)
        else:
            console.print(f"wrote {rows} rows of history to {csv}", highlight=False)
        console.print(f"wrote {layer_rows} rows of per-layer statistics to {layers_csv}", highlight=False)


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def _no_terminal() -> None:
    err_console.print("nnlab's lab is a terminal UI, and this is not a terminal (piped or CI).\n"
                      "Run a scenario without the UI instead:  nnlab run SCENARIO --headless\n"
                      "(or check the curriculum: nnlab check; list it: nnlab list)", highlight=False, soft_wrap=True)
    raise typer.Exit(ExitCode.USAGE)


@app.callback(invoke_without_command=True)
def main_callback(ctx: typer.Context) -> None:
    """nnlab: watch a neural network train, layer by layer.  With no command, opens the scenario browser."""
    if ctx.invoked_subcommand is None:
        browse(None)


@app.command()
def browse(path: Optional[Path] = typer.Argument(None, help="Also list the scenarios in this folder.")) -> None:
    """Open the browser: the curriculum by topic (and PATH's scenarios); Enter runs one."""
    if path is not None and not path.exists():
        _fail(ScenarioError(str(path), ["no such file or folder"]))
    if not _interactive():
        if path is not None and path.is_dir():
            _folder_error(path, "the lab is a terminal UI, and this is not a terminal (piped or CI). "
                                "The {n} scenario(s) in {where}:")
        _no_terminal()
    _browse([path] if path is not None else [])


@app.command()
def run(
    scenario: Optional[str] = typer.Argument(None, help="Scenario file or bundled name (e.g. "
                                                        "init/xavier-tanh-healthy). A folder or topic (e.g. activations) "
                                                        "opens the browser on it; headless, lists its scenarios."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Steps to train headless (default: the scenario's)."),
    headless: bool = typer.Option(False, "--headless", help="Run without the UI: progress bar, then the tables. "
                                                            "Implied when there is no terminal."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Headless: write the per-step history to this CSV file "
                                                           "and each layer's statistics over time to FILE-layers.csv."),
    plot: bool = typer.Option(False, "--plot", help="Headless: print plotext charts (loss, per-layer histograms)."),
    jobs: int = typer.Option(1, "-j", "--jobs", min=1, help="Headless [ensemble]: members trained in this many "
                                                            "worker processes (the same bits as one)."),
) -> None:
    """Open a scenario in the lab, or train it headless and print the summary and per-layer table."""
    headless = headless or steps is not None or csv is not None or plot or not _interactive()
    folder = _resolve(scenario) if scenario is not None else None
    if folder is not None and folder.is_dir():  # as `nnlab FOLDER` does
        if headless:
            _folder_error(folder)
        _browse([folder])
        return
    try:
        sc = _load(scenario)
    except LabError as exc:
        _fail(exc)
    if csv is not None:
        _check_writable(csv, "--csv")
    if headless:
        try:
            if sc.ensemble is not None:  # the members and the ensemble over time (lab/ensemble/report.py)
                from lab.ensemble.report import run_headless as run_ensemble_headless

                run_ensemble_headless(console, sc, steps, jobs=jobs, csv=csv, plot=plot)
            else:
                run_headless(sc, steps, csv=csv, plot=plot)
        except LabError as exc:
            _fail(exc)
        except MemoryError:
            _fail(LabError(f"{scenario or 'the default scenario'}: ran out of memory while running: shrink the data "
                           "or the model (or lower NNLAB_MEMORY_BUDGET so that such files are refused before they "
                           "start)"))
        except OSError as exc:  # the CSV file, say, could not be written after all
            if exc.filename is None:
                raise
            _fail(_os_error(exc, doing="cannot write"))
        return
    from lab.tui.app import make_app

    app_ = make_app(scenario=sc, source=scenario or "")
    app_.run()
    if app_.return_code:  # an unexpected error (the session was saved first): never exit 0
        raise typer.Exit(app_.return_code)


@app.command()
def screenshot(
    scenario: str = typer.Argument(..., help="Scenario file or bundled name."),
    steps: int = typer.Option(200, "--steps", min=0, help="Train this many steps before the picture."),
    out: Path = typer.Option(Path("screenshot.svg"), "--out", help="SVG file to write."),
    size: str = typer.Option("100x30", "--size", help="Terminal size, COLSxROWS."),
    view: str = typer.Option("explain", "--view", help="Context panel: explain, events, boundary, path, lr."),
    screen: str = typer.Option("run", "--screen", help="run, zoom, help, browser, compare or search (the scenario's [search], run first)."),
) -> None:
    """Render the lab at a given step into an SVG (no terminal needed)."""
    from lab.engine.threads import limit_blas_threads
    from lab.tui.shots import take_screenshot

    limit_blas_threads()  # the same bits as a headless run and the TUI

    try:
        cols, rows = (int(v) for v in size.lower().split("x"))
    except ValueError:
        _fail(LabError(f"--size must look like 100x30, not {size!r}"))
    try:
        sc = _load(scenario)
        _check_writable(out, "--out")
        path = take_screenshot(sc, steps=steps, out=out, size=(cols, rows), view=view, screen=screen,
                               source=scenario)
    except LabError as exc:
        _fail(exc)
    except OSError as exc:
        _fail(_os_error(exc, out, "cannot write"))
    console.print(f"wrote {path}")


def _check_one(path: str, display: str, blas_threads: int | None, seed_offset: int = 0, width: float = 1.0,
               jobs: int = 1):
    """Check one file in one configuration (runs in a worker process with -j); `display` is how
    the report names it; jobs: an [ensemble]'s members trained at once.  Returns (outcome,
    invalid input?)."""
    from lab.engine.threads import limit_blas_threads
    from lab.report.check import ScenarioOutcome
    from lab.scenario import load_scenario
    from lab.sim.expectations import check
    from lab.sim.robustness import Config, scenario_at

    if blas_threads:
        limit_blas_threads(blas_threads)
    start = time.perf_counter()
    try:
        sc = scenario_at(load_scenario(path), Config(seed_offset, width), display)
    except ScenarioError as exc:
        named = ScenarioError(display, exc.problems)
        return ScenarioOutcome(display, "", error=str(named), seconds=time.perf_counter() - start,
                               problems=list(exc.problems)), True
    try:
        results = check(sc, jobs=jobs)  # jobs: an [ensemble]'s members at once
    except LabError as exc:  # the input's fault, found only when running (e.g. data that do not vary)
        problem = str(exc.problems[0] if isinstance(exc, ScenarioError) and exc.problems else exc)
        named = ScenarioError(display, [problem])
        return ScenarioOutcome(display, sc.name, error=str(named), seconds=time.perf_counter() - start,
                               problems=[problem]), True
    except MemoryError:
        from lab.scenario.budget import estimate, memory_budget, size

        problem = (f"memory: ran out of memory while running (estimated {size(max(r.peak for r in estimate(sc)))}, "
                   f"budget {size(memory_budget().nbytes)}): shrink the data or the model")
        return ScenarioOutcome(display, sc.name, error=str(ScenarioError(display, [problem])),
                               seconds=time.perf_counter() - start, problems=[problem]), True
    except Exception as exc:  # noqa: BLE001 - a crash is reported as a failed scenario, never a traceback
        message = f"crashed while running: {type(exc).__name__}: {clip(str(exc), 500)}"
        return ScenarioOutcome(display, sc.name, error=message, seconds=time.perf_counter() - start), False
    return ScenarioOutcome(display, sc.name, results, seconds=time.perf_counter() - start,
                           configuration=Config(seed_offset, width).label(sc.seed - seed_offset)), False


@app.command()
def check(
    paths: Optional[list[str]] = typer.Argument(None, help="Scenario files, folders (recursed), bundled names or "
                                                         "topics; default: the bundled curriculum."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    junit: Optional[Path] = typer.Option(None, "--junit", help="Also write a JUnit XML report here."),
    jobs: int = typer.Option(1, "-j", "--jobs", min=1, help="Worker processes."),
    seeds: int = typer.Option(1, "--seeds", min=1, max=100, help="Check every claim at N seeds: the scenario's "
                                                               "own, then the next N-1."),
    widths: Optional[str] = typer.Option(None, "--widths", help="Also check with every hidden width scaled by "
                                                                "these factors, e.g. 0.5,2."),
) -> None:
    """Run scenarios headless and check their expectations.  Exit 0: all pass; 1: a check failed (or held on
    its control too: vacuous); 2: invalid input."""
    from lab.report.check import print_report, to_json, to_junit
    from lab.scenario.catalog import bundled_root, scenario_files, short_name
    from lab.sim.robustness import configs, parse_widths

    try:
        factors = parse_widths(widths) if widths is not None else ()
    except ValueError as exc:
        _fail(LabError(str(exc)))
    tried = configs(seeds, factors)

    targets = [_resolve(p) for p in paths] if paths else [bundled_root()]
    try:
        found = scenario_files(targets)
    except OSError as exc:  # a folder that cannot be listed
        _fail(_os_error(exc, doing="cannot list"))
    if not found:
        _fail(LabError("no scenario files (*.toml) in " + ", ".join(map(short_name, targets))))
    if junit is not None:
        _check_writable(junit, "--junit")
    files = [str(f) for f in found]
    names = [short_name(f) for f in found]
    tasks = [(f, n, c) for f, n in zip(files, names) for c in tried]
    each = f" in {len(tried)} configurations each" if len(tried) > 1 else ""
    status = err_console.status(f"checking {len(files)} scenario(s){each}...") if not as_json else None
    if status:
        status.start()
    try:
        interrupt.note(lambda: f"while checking {len(files)} scenario(s): no report")
        columns = ([f for f, _, _ in tasks], [n for _, n, _ in tasks], [1] * len(tasks),
                   [c.seed_offset for _, _, c in tasks], [c.width for _, _, c in tasks])
        if jobs > 1 and len(tasks) > 1:
            with interrupt.worker_pool(jobs) as pool:
                done = list(pool.map(_check_one, *columns))
        else:  # small scenarios: one BLAS thread is fastest; an [ensemble]'s members use the -j workers
            done = [_check_one(*task, jobs=jobs) for task in zip(*columns)]
    finally:
        if status:
            status.stop()
    outcomes = [_merged(done[i:i + len(tried)], tried) for i in range(0, len(done), len(tried))]
    invalid = any(bad for _, bad in done)
    unwritten = None
    if junit is not None:
        try:
            junit.write_text(to_junit(outcomes), encoding="utf-8")
        except OSError as exc:
            unwritten = _os_error(exc, junit, "cannot write")
    if as_json:
        print(to_json(outcomes))
    else:
        print_report(console, outcomes)
    if unwritten is not None:
        _fail(unwritten)
    if invalid:
        raise typer.Exit(ExitCode.USAGE)
    raise typer.Exit(ExitCode.OK if all(o.passed for o in outcomes) else ExitCode.CHECK_FAILED)


def _merged(done: list, tried: list):
    """One file's outcome from its outcomes in every configuration tried (the first problem, if any)."""
    from dataclasses import replace

    from lab.sim.robustness import tally

    outcomes = [o for o, _ in done]
    if len(outcomes) == 1 or any(o.error is not None for o in outcomes):
        return next((o for o in outcomes if o.error is not None), outcomes[0])
    results = tally([(c, o.configuration, o.results) for c, o in zip(tried, outcomes)])
    return replace(outcomes[0], results=results, seconds=sum(o.seconds for o in outcomes))


def _search_spec(sc, path: Optional[Path], source: str, overrides: dict, params: list[str]):
    """The scenario's [search] with the command line's flags over it (flags win), validated as the
    file's [search] is: a problem names the file (and that a flag gave the value) and the key."""
    from pydantic import ValidationError

    from lab.scenario.load import describe
    from lab.scenario.schema import SearchSpec

    raw = sc.search.model_dump(exclude_none=True) if sc.search is not None else {}
    raw.setdefault("params", {})
    raw["params"] = {k: v for k, v in raw["params"].items() if v is not None}
    for given in params:
        name, eq, axis = given.partition("=")
        if not eq or not name.strip():
            _fail(LabError(f"--param {given!r}: expected NAME=AXIS, e.g. --param lr=log:1e-4:1"))
        raw["params"][name.strip()] = axis.strip()
    raw.update({k: v for k, v in overrides.items() if v is not None})
    if overrides.get("steps") is not None:
        raw.pop("epochs", None)
    if overrides.get("epochs") is not None:
        raw.pop("steps", None)
    try:
        return SearchSpec.model_validate(raw)
    except ValidationError as exc:
        flags = " (with the command line's flags)" if params or any(v is not None for v in overrides.values()) else ""
        problems = [describe({**e, "loc": ("search", *e["loc"])}) for e in exc.errors()]
        _fail(ScenarioError(f"{source}{flags}", problems))


@app.command()
def search(
    scenario: str = typer.Argument(..., help="Scenario file or bundled name (e.g. procedure/search-lr-l2); its "
                                             "[search] table, if any, is the starting point."),
    param: Optional[list[str]] = typer.Option(None, "--param", "-p", help="A searched setting, NAME=AXIS: "
                                              "lr=log:1e-4:1, l2=linear:0:0.1, batch_size=int:16:256, "
                                              "activation=choice:relu,tanh (repeat; replaces that one key of "
                                              "[search.params])."),
    sampling: Optional[str] = typer.Option(None, "--sampling", help="random or grid."),
    trials: Optional[int] = typer.Option(None, "--trials", help="Trials of the first stage (grid: the most)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Training steps of each first-stage trial."),
    epochs: Optional[float] = typer.Option(None, "--epochs", help="Or: passes over the training set per trial."),
    metric: Optional[str] = typer.Option(None, "--metric", help="val_acc (default), val_loss, train_acc or loss."),
    direction: Optional[str] = typer.Option(None, "--direction", help="max or min (default: max for accuracies)."),
    single: bool = typer.Option(False, "--single-stage", help="Run the first stage only (ignore [[search.stages]])."),
    jobs: Optional[int] = typer.Option(None, "-j", "--jobs", min=1, help="Worker processes (default: the cores); "
                                       "with --scheduler local, the LocalCluster's workers."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Run the trials on dask.distributed: "
                                            "tcp://HOST:PORT (a running scheduler) or local (a LocalCluster)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for results.json and results.csv, rewritten "
                                       "after every trial (default: nnlab-search/NAME-TIME, or the --resume "
                                       "file's folder)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue from a results.json (or its folder): "
                                          "its trials are kept, the rest run."),
    plot: bool = typer.Option(True, "--plot/--no-plot", help="Print the scatter and loss-curve charts."),
) -> None:
    """Search hyperparameters: stages of trials (coarse to fine) in worker processes or on dask."""
    from datetime import datetime

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from lab.search.engine import SearchError, run_search, search_problems
    from lab.search.report import lessons, loss_chart, results_table, scatter_charts, stage_lines
    from lab.search.results import CSV_NAME, JSON_NAME

    path = _scenario_file(scenario)
    source = str(path)
    try:
        sc = _load(scenario)
    except LabError as exc:
        _fail(exc)
    spec = _search_spec(sc, path, source, {"sampling": sampling, "trials": trials, "steps": steps, "epochs": epochs,
                                           "metric": metric, "direction": direction}, param or [])
    if single:
        spec = spec.model_copy(update={"stages": []})
    n_jobs = jobs or None
    if scheduler is not None and scheduler != "local" and not scheduler.startswith(("tcp://", "tls://", "inproc://")):
        _fail(LabError(f"--scheduler {scheduler!r}: expected tcp://HOST:PORT or local"))
    from lab.engine.threads import cpu_count

    problems = search_problems(sc, spec, (n_jobs or cpu_count()) if scheduler is None else 1)
    if problems:
        _fail(ScenarioError(source, [str(p) for p in problems]))
    if resume is not None:
        resume = resume / JSON_NAME if resume.is_dir() else resume
        if not resume.is_file():
            _fail(LabError(f"--resume {resume}: no such results file"))
    if out is None:
        out = resume.parent if resume is not None else Path("nnlab-search") / (
            f"{path.stem}-{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    if out.exists() and not out.is_dir():
        _fail(LabError(f"--out {out}: not a folder"))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _fail(_os_error(exc, out, "cannot create the folder"))
    results = out / JSON_NAME
    state = {"done": 0, "planned": 0, "best": "-"}
    interrupt.note(lambda: f"after {state['done']} trial(s): they are kept in {results}; continue with "
                           f"nnlab search {scenario} --resume {results} (and the same flags)")
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("best {task.fields[best]}"), TimeElapsedColumn(), console=console,
                        transient=True)
    where = f"on dask ({scheduler})" if scheduler else f"in {n_jobs or cpu_count()} worker process(es)"
    console.print(f"[bold]{escape(sc.name)}[/]: searching {', '.join(spec.param_texts())} by {spec.metric} "
                  f"{where}; results in {escape(str(out))}/", highlight=False)
    with progress:
        task = progress.add_task("trials", total=None, best="-")

        def planned(result) -> None:
            state["planned"] = result.planned
            progress.update(task, total=result.planned, completed=len(result.trials))

        def finished(trial) -> None:
            state["done"] += 1
            if trial.ok and (state["best"] == "-" or (trial.metric > float(state["best"])) == spec.maximize
                             and trial.metric != float(state["best"])):
                state["best"] = f"{trial.metric:.4f}"
            progress.update(task, advance=1, best=state["best"])

        try:
            result = run_search(sc, spec, jobs=n_jobs, scheduler=scheduler, on_trial=finished, resume=resume,
                                out=out, on_plan=planned)
        except SearchError as exc:
            _fail(ScenarioError(source, [str(exc)]))
        except LabError as exc:
            _fail(exc)
    if result.resumed:
        console.print(f"{result.resumed} trial(s) taken from {escape(str(resume))}", highlight=False)
    if plot and result.trials:
        width = min(console.width, 100)
        from lab.report.plots import plain

        for chart in [*scatter_charts(result, width=width), loss_chart(result, width=width)]:
            print(chart if console.is_terminal else plain(chart))
    console.print(results_table(result))
    for line in stage_lines(result):
        console.print(escape(line), highlight=False)
    for line in lessons(result):
        console.print(f"[red]{escape(line)}[/]", highlight=False)
    best = result.best
    if best is not None:
        console.print(f"[bold]best[/]: trial {best.index}, {spec.metric} {best.metric:.4f}, "
                      + ", ".join(f"{k} = {v!r}" for k, v in best.params.items()), highlight=False)
    else:
        console.print("[bold red]no trial finished with a metric[/]: see the notes above", highlight=False)
    for line in result.warnings():
        console.print(f"[bold yellow]warning:[/] {escape(line)}", highlight=False)
    console.print(f"wrote {escape(str(out / JSON_NAME))} and {escape(str(out / CSV_NAME))}", highlight=False)


@app.command("list")
def list_scenarios() -> None:
    """The bundled curriculum, by topic."""
    from lab.scenario.catalog import bundled

    _print_scenarios(console, bundled())


@app.command()
def show(scenario: str = typer.Argument(..., help="Scenario file or bundled name; a folder lists its scenarios.")
         ) -> None:
    """Print a scenario: its explanation, settings and expectations."""
    from rich.markdown import Markdown
    from rich.syntax import Syntax

    from lab.scenario import load_scenario
    from lab.scenario.catalog import entries_in, short_name

    path = _resolve(scenario)
    if path.is_dir():
        entries = entries_in(path)
        if not entries:
            _fail(LabError(f"{short_name(path)}: a folder with no scenario files (*.toml) in it"))
        console.print(f"[bold]{escape(short_name(path))}[/]: a folder of {len(entries)} scenario(s)", highlight=False)
        _print_scenarios(console, entries, bare=True)
        return
    from lab.scenario.load import read_scenario_text

    try:
        sc = load_scenario(path)
        text = read_scenario_text(path)
    except ScenarioError as exc:
        _fail(exc)
    console.print(f"[bold]{escape(sc.name)}[/]  [dim]({escape(short_name(path))}, topic {escape(sc.scenario.topic)}, "
                  f"seed {sc.seed})[/]", highlight=False)
    if sc.scenario.explain:
        console.print(Markdown(sc.scenario.explain))
    console.print(Syntax(text, "toml", word_wrap=True))


@app.command()
def schema() -> None:
    """Print the JSON Schema of scenario files (for editors)."""
    from lab.scenario.schema import json_schema

    print(json.dumps(json_schema(), indent=2))


@app.command()
def bench(
    quick: bool = typer.Option(False, "--quick", help="Fewer steps and repeats: a smoke run."),
    only: Optional[str] = typer.Option(None, "--only", help="Run one workload."),
    peers: bool = typer.Option(False, "--peers", help="Training steps against PyTorch and JAX, one core "
                               "(pip install -e '.\\[peers]')."),
    activations: bool = typer.Option(False, "--activations", help="What each activation's forward and backward "
                                     "kernels cost per value, and the ratio to ReLU (informational)."),
) -> None:
    """Measure training speed against a plain-numpy reference and the GEMM floor (--peers: PyTorch, JAX)."""
    if activations:
        _activation_costs()
        return
    here = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"
    script = here if here.exists() else Path.cwd() / "benchmarks" / "run.py"
    if not script.exists():
        err_console.print("[bold red]error:[/] benchmarks/ is part of the source checkout; run from a clone "
                          "(pip install -e .)")
        raise typer.Exit(ExitCode.USAGE)
    sys.path.insert(0, str(script.parent.parent))
    argv = (["--quick"] if quick else []) + (["--only", only] if only else []) + (["--peers"] if peers else [])
    module = runpy.run_path(str(script), run_name="nnlab_bench")
    raise typer.Exit(module["main"](argv))


def _activation_costs() -> None:
    from rich.table import Table

    from lab.engine.activation_cost import measure, table
    from lab.engine.threads import limit_blas_threads

    limit_blas_threads(1)
    for dtype in ("float32", "float64"):
        costs = measure(dtype)
        out = Table(title=f"{dtype}: nanoseconds per value, {costs.values:,} values a call",
                    title_justify="left", box=None)
        for column in ("activation", "forward ns/value", "backward ns/value", "(fwd+bwd) / relu"):
            out.add_column(column, justify="left" if column == "activation" else "right")
        for row in table(costs):
            out.add_row(*row)
        console.print(out)
        console.print()


serve_app = typer.Typer(help="Demo to a room: one lab per person, over SSH or in a browser.", no_args_is_help=True)
app.add_typer(serve_app, name="serve")

FOLDERS_HELP = "More scenario folders for every session's browser (the curriculum is always there)."


def _check_folders(folders: list[Path]) -> None:
    for folder in folders:
        if not folder.is_dir():
            _fail(LabError(f"{folder}: not a folder of scenarios"))


@serve_app.command("ssh")
def serve_ssh(
    folders: list[Path] = typer.Argument(None, help=FOLDERS_HELP, show_default=False),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(2222, "--port", min=0, max=65535, help="Port to listen on."),
    authorized_keys: Optional[Path] = typer.Option(None, "--authorized-keys", help="Public keys allowed in "
                                                   "(default ~/.ssh/authorized_keys)."),
    allow_anonymous: bool = typer.Option(False, "--allow-anonymous", help="Let anyone in without a key (a demo "
                                         "room); saving and exporting are then off."),
    max_sessions: Optional[int] = typer.Option(None, "--max-sessions", min=1, help="Labs running at once "
                                               "(default: the number of cores)."),
    max_per_ip: int = typer.Option(2, "--max-per-ip", min=1, help="Labs at once from one address."),
    login_timeout: float = typer.Option(30, "--login-timeout", min=1, help="Seconds to log in."),
    idle_timeout: float = typer.Option(1800, "--idle-timeout", min=10, help="Seconds without a key press before "
                                       "a session is closed."),
    memory_mb: int = typer.Option(2048, "--memory-mb", min=1024, help="Address-space limit of each lab, MB."),
    cpu_seconds: Optional[int] = typer.Option(None, "--cpu-seconds", min=10, help="CPU-time limit of each lab."),
    host_key: Optional[Path] = typer.Option(None, "--host-key", help="Server key file (default: generated once "
                                            "in the user's data folder)."),
) -> None:
    """Serve the lab over SSH: each `ssh -p PORT HOST` gets its own lab in its own process."""
    from lab.serve.ssh import SSHOptions, serve_ssh as serve

    folders = folders or []
    _check_folders(folders)
    options = dict(host=host, port=port, authorized_keys=authorized_keys, allow_anonymous=allow_anonymous,
                   max_per_ip=max_per_ip, login_timeout=login_timeout, idle_timeout=idle_timeout,
                   memory_mb=memory_mb, cpu_seconds=cpu_seconds, host_key=host_key, folders=folders)
    if max_sessions is not None:
        options["max_sessions"] = max_sessions
    try:
        serve(SSHOptions(**options))
    except LabError as exc:
        _fail(exc)


@serve_app.command("web")
def serve_web(
    folders: list[Path] = typer.Argument(None, help=FOLDERS_HELP, show_default=False),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port to listen on."),
    i_understand_no_auth: bool = typer.Option(False, "--i-understand-no-auth", help="Allow an address other than "
                                              "this machine's: textual-serve has no authentication, anyone who "
                                              "reaches the port gets a lab (prefer ssh -L)."),
    max_sessions: Optional[int] = typer.Option(None, "--max-sessions", min=1, help="Labs running at once "
                                               "(default: the number of cores)."),
    memory_mb: int = typer.Option(2048, "--memory-mb", min=1024, help="Address-space limit of each lab, MB."),
    cpu_seconds: Optional[int] = typer.Option(None, "--cpu-seconds", min=10, help="CPU-time limit of each lab."),
) -> None:
    """Serve the lab to browsers on this machine (textual-serve): each tab gets its own lab."""
    from lab.serve.web import WebOptions, serve_web as serve

    folders = folders or []
    _check_folders(folders)
    try:
        serve(WebOptions(host=host, port=port, i_understand_no_auth=i_understand_no_auth, memory_mb=memory_mb,
                         cpu_seconds=cpu_seconds, folders=folders, max_sessions=max_sessions))
    except LabError as exc:
        _fail(exc)


COMMANDS = {"browse", "run", "screenshot", "check", "search", "list", "show", "schema", "bench", "serve"}


class ReaderGone:
    """sys.stdout (or stderr) that survives its reader going away (`nnlab list | head -1`).

    On the first BrokenPipeError the stream is pointed at /dev/null, as Python's note on
    SIGPIPE advises (https://docs.python.org/3/library/signal.html#note-on-sigpipe), so the
    command finishes its work quietly and exits with its own status: `check` with the
    checks' (0, 1 or 2), never 1 because `head` stopped reading.  Without this, rich and
    click turn the error into exit status 1, the code for "a check failed".
    """

    def __init__(self, stream) -> None:
        self._stream = stream

    def _to_devnull(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        finally:
            os.close(devnull)

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._to_devnull()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._to_devnull()
            self._stream.flush()  # what was still buffered goes to /dev/null now

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def main() -> None:
    # `nnlab PATH` browses PATH's scenarios (typer would read PATH as a command name)
    args = sys.argv[1:]
    if args and not args[0].startswith("-") and args[0] not in COMMANDS and Path(args[0]).exists():
        sys.argv[1:1] = ["browse"]
    if sys.stdout is not None and sys.stderr is not None:
        sys.stdout, sys.stderr = ReaderGone(sys.stdout), ReaderGone(sys.stderr)
    try:
        app(prog_name="nnlab")
    except (SystemExit, KeyboardInterrupt) as exc:
        if not interrupt.caused_by_interrupt(exc):
            raise
        # Ctrl-C: one line and 130, whatever typer/click made of it (and however deep it landed)
        err_console.print(f"[bold]{escape(interrupt.message())}[/]", highlight=False, soft_wrap=True)
        raise SystemExit(ExitCode.INTERRUPTED) from None
    finally:
        if sys.stdout is not None:
            sys.stdout.flush()


if __name__ == "__main__":
    main()
