"""The `nnlab` command line.  Textual is imported only by the commands that open the UI."""

from __future__ import annotations

import runpy
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from lab.errors import ExitCode, LabError

app = typer.Typer(add_completion=False, no_args_is_help=False, help=__doc__,
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
    err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
    raise typer.Exit(ExitCode.USAGE)


def _load(path: Optional[Path]):
    from lab.scenario import Scenario, load_scenario

    if path is None:
        return Scenario.model_validate(DEFAULT_SCENARIO)
    return load_scenario(path)


def run_headless(scenario, steps: Optional[int] = None, chunk: int = 100) -> None:
    """Train with a progress bar, then print the summary and the per-layer table."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from lab.engine.threads import limit_blas_threads
    from lab.report.table import layer_table, summary_table
    from lab.sim import Simulation

    limit_blas_threads()
    total = steps if steps is not None else scenario.train.steps
    with console.status("compiling kernels (first run only; cached afterwards)..."):
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
    console.print(summary_table(snap, (sim.step_count - 1) / elapsed if elapsed > 0 else None))
    console.print(layer_table(snap))


@app.callback(invoke_without_command=True)
def main_callback(ctx: typer.Context) -> None:
    """nnlab: watch a neural network train, layer by layer.  With no command, runs the default scenario."""
    if ctx.invoked_subcommand is None:
        try:
            run_headless(_load(None))
        except LabError as exc:
            _fail(exc)


@app.command()
def run(
    scenario: Optional[Path] = typer.Argument(None, help="Scenario TOML file (default: the built-in spiral run)."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Steps to train (default: the scenario's)."),
    headless: bool = typer.Option(True, "--headless/--tui", help="Run without the UI (the UI is not built yet)."),
) -> None:
    """Train a scenario and print the per-layer table."""
    try:
        run_headless(_load(scenario), steps)
    except LabError as exc:
        _fail(exc)


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


def main() -> None:
    app(prog_name="nnlab")


if __name__ == "__main__":
    main()
