"""The headless report of an ensemble (`nnlab run --headless` on a scenario with [ensemble]):
each member's validation accuracy over time beside the ensemble's, then a table of the
members at the end (the best marked) and the ensemble against its average and best member."""

from __future__ import annotations

import math

from rich import box
from rich.table import Table

from .record import EnsembleResult

MAX_ROWS = 12  # checkpoints shown in the over-time table (evenly spaced, the last always)
MAX_MEMBER_COLUMNS = 8  # more members: the over-time table shows their mean and best only


def _pct(x: float) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{100 * x:.1f}%"


def _num(x: float) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.4f}"


def shown_rows(count: int, most: int = MAX_ROWS) -> list[int]:
    """Up to `most` row indices from 0 .. count-1, evenly spaced, the first and last included."""
    if count <= most:
        return list(range(count))
    return sorted({round(i * (count - 1) / (most - 1)) for i in range(most)})


def over_time_table(result: EnsembleResult) -> Table:
    ens = result.scenario.ensemble
    wide = len(result.names) <= MAX_MEMBER_COLUMNS
    how = "mean of probabilities" if ens.combine == "mean" else "majority vote"
    table = Table(title=f"validation accuracy over time: {len(result.names)} members, {how}", box=box.SIMPLE_HEAD,
                  title_justify="left", pad_edge=False)
    table.add_column("step", justify="right")
    if wide:
        for name in result.names:
            table.add_column(name, justify="right")
    for header in ("mean", "best", "ensemble", "ens loss"):
        table.add_column(header, justify="right", style="bold" if header == "ensemble" else "")
    m = result.metrics
    for row in shown_rows(result.steps.size):
        cells = [f"{int(result.steps[row]):,}"]
        if wide:
            best = result.best_member(row)
            cells += [("[bold green]" + _pct(a) + "[/]") if k == best else _pct(a)
                      for k, a in enumerate(result.member_acc[row])]
        cells += [_pct(m["member_val_acc_mean"][row]), _pct(m["member_val_acc_best"][row]),
                  _pct(m["ensemble_val_acc"][row]), _num(m["ensemble_val_loss"][row])]
        table.add_row(*cells)
    return table


def members_table(result: EnsembleResult) -> Table:
    ens = result.scenario.ensemble
    table = Table(title="members at the end (* = best)", box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    for header in ("member", "seed" if ens.mode == "seeds" else "taken at", "val acc", "val loss"):
        table.add_column(header, justify="left" if header == "member" else "right")
    best = result.best_member(-1)
    last = -1
    for k, name in enumerate(result.names):
        if ens.mode == "snapshot":
            where = f"step {ens.at[k]:,}"
        else:
            where = str(result.runs[k].seed)
        mark = " *" if k == best else ""
        table.add_row(name + mark, where, _pct(result.member_acc[last, k]), _num(result.member_loss[last, k]),
                      style="bold green" if k == best else "")
    m = {k: v[-1] if v.size else float("nan") for k, v in result.metrics.items()}
    table.add_row("average member", "", _pct(m["member_val_acc_mean"]), _num(m["member_val_loss_mean"]),
                  end_section=False)
    table.add_row("[bold]ensemble[/]", "", f"[bold]{_pct(m['ensemble_val_acc'])}[/]",
                  f"[bold]{_num(m['ensemble_val_loss'])}[/]")
    return table


def verdict(result: EnsembleResult) -> str:
    """One sentence: the ensemble against its average and its best member, at the end."""
    m = {k: v[-1] if v.size else float("nan") for k, v in result.metrics.items()}
    acc, mean, best = m["ensemble_val_acc"], m["member_val_acc_mean"], m["member_val_acc_best"]
    if not all(map(math.isfinite, (acc, mean, best))):
        return "The ensemble has no value at the end (a member diverged)."
    def vs(a: float, b: float) -> str:
        d = 100 * (a - b)
        return f"{abs(d):.1f} points {'above' if d > 0 else 'below'}" if abs(d) >= 0.05 else "level with"
    return (f"The ensemble reaches {_pct(acc)}: {vs(acc, mean)} its average member ({_pct(mean)}) and "
            f"{vs(acc, best)} its best member ({_pct(best)}).")


def print_ensemble_report(console, result: EnsembleResult) -> None:
    console.print(over_time_table(result))
    console.print(members_table(result))
    console.print(verdict(result), highlight=False)
    for name, at in result.diverged():
        console.print(f"[bold red]member {name} diverged at step {at}[/]: the ensemble has no value from there.")
    per = "in parallel" if result.jobs > 1 else "one after the other"
    console.print(f"[dim]{len(result.runs)} run(s) trained {per} ({result.jobs} process(es)) in "
                  f"{result.seconds:.1f} s[/]", highlight=False)


def csv_text(result: EnsembleResult) -> str:
    """Every checkpoint: step, each member's val acc and loss, the ensemble's metrics."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    names = result.names
    writer.writerow(["step", *(f"{n}_val_acc" for n in names), *(f"{n}_val_loss" for n in names),
                     *result.metrics])
    cell = lambda x: "" if not math.isfinite(x) else repr(float(x))  # noqa: E731
    for row, step in enumerate(result.steps):
        writer.writerow([int(step), *map(cell, result.member_acc[row]), *map(cell, result.member_loss[row]),
                         *(cell(v[row]) for v in result.metrics.values())])
    return out.getvalue()


def run_headless(console, scenario, steps: int | None = None, *, jobs: int = 1, csv=None, plot: bool = False) -> None:
    """`nnlab run --headless` for an [ensemble]: train the members (jobs at once), print the tables."""
    from lab.errors import LabError
    from lab.files import write_text_atomic
    from lab.engine.threads import limit_blas_threads

    from .record import run_ensemble

    if plot:
        raise LabError("--plot draws one run's charts; an [ensemble] prints its members' and the ensemble's "
                       "accuracy over time instead (leave out --plot; --csv writes them)")
    limit_blas_threads(1)  # as every worker: the same bits with -j 1 and -j N
    count = scenario.ensemble.size if scenario.ensemble.mode == "seeds" else 1
    finished = []
    what = f"{count} member(s)" if scenario.ensemble.mode == "seeds" else \
        f"one run, {scenario.ensemble.size} snapshots"
    with console.status(f"training {what} of {scenario.name!r} in {min(jobs, count)} process(es)...") as status:
        def done(run) -> None:
            finished.append(run)
            status.update(f"trained {len(finished)} of {count} ({run.name}: {run.seconds:.1f} s)...")

        result = run_ensemble(scenario, until=steps, jobs=jobs, on_member=done)
    console.print(f"[bold]{scenario.name}[/]", highlight=False)
    print_ensemble_report(console, result)
    if csv is not None:
        write_text_atomic(csv, csv_text(result))
        console.print(f"wrote {result.steps.size} rows (one a checkpoint) to {csv}", highlight=False)
