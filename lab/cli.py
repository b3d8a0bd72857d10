"""The `nnlab` command line.  Textual is imported only by the commands that open the UI."""

from __future__ import annotations

import json
import runpy
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from lab.errors import ExitCode, LabError, ScenarioError

app = typer.Typer(add_completion=False, no_args_is_help=False, rich_markup_mode="rich",
                  context_settings={"help_option_names": ["-h", "--help"]})
console = Console()
err_console = Console(stderr=True)

DEFAULT_SCENARIO = {
    "scenario": {"name": "Spiral, 2-100-100-3 ReLU, SGD + momentum", "seed": 0},
    "data": {"kind": "spiral", "n": 600, "classes": 3, "noise": 0.2},
    "model": {"hidden": [100, 100], "activation": "relu", "init": "kaiming"},
    "train": {"optimizer": "momentum", "lr": 0.1, "batch_size": 64, "steps": 2000, "eval_every": 100},
}


def _fail(exc: LabError) -> None:
    # the message quotes the user's own keys and values: never read it as markup
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    raise typer.Exit(ExitCode.USAGE)


def _load(name_or_path: Optional[str]):
    from lab.scenario import Scenario, load_scenario
    from lab.scenario.catalog import resolve

    if name_or_path is None:
        return Scenario.model_validate(DEFAULT_SCENARIO)
    return load_scenario(resolve(name_or_path))


def run_headless(scenario, steps: Optional[int] = None, *, csv: Optional[Path] = None, plot: bool = False,
                 chunk: int = 100) -> None:
    """Train with a progress bar, then print the summary and the per-layer table."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from lab.engine.threads import limit_blas_threads
    from lab.report.table import layer_table, summary_table
    from lab.sim import Simulation

    limit_blas_threads()
    total = steps if steps is not None else scenario.train.steps
    with console.status("compiling kernels (first run only; cached afterwards)...") as status:
        from lab.engine.warmup import KERNELS, covers

        if covers(scenario):  # the same counted warm-up as the browser's, then the run's own kernels
            KERNELS.start()
            while not KERNELS.wait(0.25):
                status.update(KERNELS.progress().text() or "loading compiled kernels…")
        sim = Simulation(scenario)
        sim.step(1)
    start = time.perf_counter()
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), console=console, transient=True)
    with progress:
        task = progress.add_task(scenario.name, total=total, completed=1, loss="-")
        while sim.step_count < total and not sim.diverged:
            sim.step(min(chunk, total - sim.step_count))
            progress.update(task, completed=sim.step_count, loss=f"{sim.history.series['loss'].last():.4f}")
    elapsed = time.perf_counter() - start
    snap = sim.snapshot()
    if plot:
        from lab.report.plots import layer_charts, loss_chart, plain

        width = min(console.width, 100)
        for chart in [loss_chart(snap, width=width), *layer_charts(snap, width=width)]:
            print(chart if console.is_terminal else plain(chart))
    console.print(f"[bold]{escape(scenario.name)}[/]")
    console.print(summary_table(snap, (sim.step_count - 1) / elapsed if elapsed > 0 and sim.step_count > 1 else None))
    console.print(layer_table(snap))
    if snap.diverged:
        console.print(f"[bold red]The run diverged at step {snap.diverged_at}[/]: the loss or a weight became "
                      "NaN/Inf. Usually the learning rate is too high (or the initialisation too large).")
    if csv is not None:
        from lab.report.export import write_history_csv

        rows = write_history_csv(snap.history, csv)
        console.print(f"wrote {rows} rows of history to {csv}")


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
    if not _interactive():
        _no_terminal()
    if path is not None and not path.exists():
        _fail(ScenarioError(str(path), ["no such file or folder"]))
    from lab.tui.app import make_app

    make_app([path] if path is not None else []).run()


@app.command()
def run(
    scenario: Optional[str] = typer.Argument(None, help="Scenario file or bundled name (e.g. init/xavier-tanh)."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Steps to train headless (default: the scenario's)."),
    headless: bool = typer.Option(False, "--headless", help="Run without the UI: progress bar, then the tables. "
                                                            "Implied when there is no terminal."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Headless: write the per-step history to this CSV file."),
    plot: bool = typer.Option(False, "--plot", help="Headless: print plotext charts (loss, per-layer histograms)."),
) -> None:
    """Open a scenario in the lab, or train it headless and print the summary and per-layer table."""
    try:
        sc = _load(scenario)
    except LabError as exc:
        _fail(exc)
    if headless or steps is not None or csv is not None or plot or not _interactive():
        try:
            run_headless(sc, steps, csv=csv, plot=plot)
        except LabError as exc:
            _fail(exc)
        return
    from lab.tui.app import make_app

    make_app(scenario=sc, source=scenario or "").run()


@app.command()
def screenshot(
    scenario: str = typer.Argument(..., help="Scenario file or bundled name."),
    steps: int = typer.Option(200, "--steps", min=0, help="Train this many steps before the picture."),
    out: Path = typer.Option(Path("screenshot.svg"), "--out", help="SVG file to write."),
    size: str = typer.Option("100x30", "--size", help="Terminal size, COLSxROWS."),
    view: str = typer.Option("explain", "--view", help="Context panel: explain, events, boundary, path, lr."),
    screen: str = typer.Option("run", "--screen", help="run, zoom, help, browser or compare."),
) -> None:
    """Render the lab at a given step into an SVG (no terminal needed)."""
    from lab.tui.shots import take_screenshot

    try:
        cols, rows = (int(v) for v in size.lower().split("x"))
    except ValueError:
        _fail(LabError(f"--size must look like 100x30, not {size!r}"))
    try:
        sc = _load(scenario)
        path = take_screenshot(sc, steps=steps, out=out, size=(cols, rows), view=view, screen=screen,
                               source=scenario)
    except LabError as exc:
        _fail(exc)
    console.print(f"wrote {path}")


def _check_one(path: str, blas_threads: int | None):
    """Check one file (runs in a worker process with -j)."""
    from lab.engine.threads import limit_blas_threads
    from lab.report.check import ScenarioOutcome
    from lab.scenario import load_scenario
    from lab.sim.expectations import check

    if blas_threads:
        limit_blas_threads(blas_threads)
    start = time.perf_counter()
    try:
        sc = load_scenario(path)
    except ScenarioError as exc:
        return ScenarioOutcome(path, "", error=str(exc), seconds=time.perf_counter() - start), True
    try:
        results = check(sc)
    except Exception as exc:  # noqa: BLE001 - a crash is reported as a failed scenario, never a traceback
        message = f"crashed while running: {type(exc).__name__}: {exc}"
        return ScenarioOutcome(path, sc.name, error=message, seconds=time.perf_counter() - start), False
    return ScenarioOutcome(path, sc.name, results, seconds=time.perf_counter() - start), False


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@app.command()
def check(
    paths: Optional[list[str]] = typer.Argument(None, help="Scenario files, folders (recursed) or bundled names; "
                                                         "default: the bundled curriculum."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    junit: Optional[Path] = typer.Option(None, "--junit", help="Also write a JUnit XML report here."),
    jobs: int = typer.Option(1, "-j", "--jobs", min=1, help="Worker processes."),
) -> None:
    """Run scenarios headless and check their expectations.  Exit 0: all pass; 1: a check failed; 2: invalid input."""
    from lab.report.check import check_table, failure_lines, to_json, to_junit
    from lab.scenario.catalog import bundled_root, resolve, scenario_files

    try:
        targets = [resolve(p) for p in paths] if paths else [bundled_root()]
    except ScenarioError as exc:
        _fail(exc)
    files = [_display_path(f) for f in scenario_files(targets)]
    if not files:
        err_console.print("[bold red]error:[/] no scenario files found in " + escape(", ".join(map(str, targets))))
        raise typer.Exit(ExitCode.USAGE)
    status = err_console.status(f"checking {len(files)} scenario(s)...") if not as_json else None
    if status:
        status.start()
    try:
        if jobs > 1 and len(files) > 1:
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                done = list(pool.map(_check_one, files, [1] * len(files)))
        else:
            done = [_check_one(f, 1) for f in files]  # small scenarios: one BLAS thread is fastest
    finally:
        if status:
            status.stop()
    outcomes = [o for o, _ in done]
    invalid = any(bad for _, bad in done)
    if junit is not None:
        junit.write_text(to_junit(outcomes))
    if as_json:
        print(to_json(outcomes))
    else:
        console.print(check_table(outcomes))
        for line in failure_lines(outcomes):
            console.print(line, highlight=False, markup=False)
        for o in outcomes:
            if o.error:
                err_console.print(o.error, highlight=False, markup=False)
        n_exp = sum(len(o.results) for o in outcomes)
        n_fail = sum(not r.passed for o in outcomes for r in o.results)
        console.print(f"{len(outcomes)} scenario(s), {n_exp} expectation(s): {n_exp - n_fail} passed, {n_fail} failed"
                      + (f", {sum(bad for _, bad in done)} invalid" if invalid else "")
                      + (f", {sum(o.error is not None and not bad for o, bad in done)} crashed"
                         if any(o.error is not None and not bad for o, bad in done) else ""))
    if invalid:
        raise typer.Exit(ExitCode.USAGE)
    raise typer.Exit(ExitCode.OK if all(o.passed for o in outcomes) else ExitCode.CHECK_FAILED)


@app.command("list")
def list_scenarios() -> None:
    """The bundled curriculum, by topic."""
    from rich.table import Table

    from lab.scenario import load_scenario
    from lab.scenario.catalog import bundled

    table = Table(show_header=True, box=None, pad_edge=False)
    table.add_column("scenario", no_wrap=True)  # names are typed back into run/show/check: never cut
    table.add_column("title", overflow="fold")
    table.add_column("checks", justify="right")
    topic = None
    for entry in bundled():
        if entry.topic != topic:
            topic = entry.topic
            table.add_row(f"[bold]{topic}/[/]", "", "")
        try:
            sc = load_scenario(entry.path)
            table.add_row(f"  {entry.name}", sc.name, str(len(sc.expect)))
        except ScenarioError as exc:
            table.add_row(f"  {entry.name}", f"[red]invalid: {exc.problems[0]}[/]", "")
    console.print(table)


@app.command()
def show(scenario: str = typer.Argument(..., help="Scenario file or bundled name.")) -> None:
    """Print a scenario: its explanation, settings and expectations."""
    from rich.markdown import Markdown
    from rich.syntax import Syntax

    from lab.scenario import load_scenario
    from lab.scenario.catalog import resolve

    try:
        path = resolve(scenario)
        sc = load_scenario(path)
    except ScenarioError as exc:
        _fail(exc)
    console.print(f"[bold]{sc.name}[/]  [dim]({path}, topic {sc.scenario.topic}, seed {sc.seed})[/]")
    if sc.scenario.explain:
        console.print(Markdown(sc.scenario.explain))
    console.print(Syntax(Path(path).read_text(encoding="utf-8"), "toml", word_wrap=True))


@app.command()
def schema() -> None:
    """Print the JSON Schema of scenario files (for editors)."""
    from lab.scenario.schema import json_schema

    print(json.dumps(json_schema(), indent=2))


@app.command()
def bench(
    quick: bool = typer.Option(False, "--quick", help="Fewer steps and repeats: a smoke run."),
    only: Optional[str] = typer.Option(None, "--only", help="Run one workload."),
) -> None:
    """Measure training speed against a plain-numpy reference and the GEMM floor."""
    here = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"
    script = here if here.exists() else Path.cwd() / "benchmarks" / "run.py"
    if not script.exists():
        err_console.print("[bold red]error:[/] benchmarks/ is part of the source checkout; run from a clone "
                          "(pip install -e .)")
        raise typer.Exit(ExitCode.USAGE)
    sys.path.insert(0, str(script.parent.parent))
    argv = (["--quick"] if quick else []) + (["--only", only] if only else [])
    module = runpy.run_path(str(script), run_name="nnlab_bench")
    raise typer.Exit(module["main"](argv))


COMMANDS = {"browse", "run", "screenshot", "check", "list", "show", "schema", "bench"}


def main() -> None:
    # `nnlab PATH` browses PATH's scenarios (typer would read PATH as a command name)
    args = sys.argv[1:]
    if args and not args[0].startswith("-") and args[0] not in COMMANDS and Path(args[0]).exists():
        sys.argv[1:1] = ["browse"]
    app(prog_name="nnlab")


if __name__ == "__main__":
    main()
