"""What a search teaches, for the terminal: the ranked table, the lessons (border warnings,
diverged trials), the metric against each parameter, and every trial's loss curve.

Pure functions of a SearchResult (the CLI prints them; the TUI may reuse the text ones).
"""

from __future__ import annotations

import math

import numpy as np

from lab import vocabulary as V

from .engine import SearchResult
from .trial import Trial


def fmt_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def fmt_metric(x: float) -> str:
    return f"{x:.4f}" if math.isfinite(x) else "-"


def results_table(result: SearchResult, limit: int | None = 20):
    """A rich Table of the trials, best first (ok trials, then diverged, then failed)."""
    from rich.table import Table

    ranked = result.ranked()
    shown = ranked if limit is None else ranked[:limit]
    arrow = "↑" if result.maximize else "↓"
    table = Table(title=f"{len(result.trials)} trial(s), by {result.metric} {arrow}", title_justify="left")
    table.add_column("rank", justify="right")
    table.add_column("trial", justify="right")
    table.add_column("stage", justify="right")
    table.add_column(result.metric, justify="right", style="bold")
    for name in (V.VAL_ACC, V.VAL_LOSS):
        if name != result.metric:
            table.add_column(name, justify="right")
    for axis in result.params:
        table.add_column(axis.name, justify="right", no_wrap=True)
    table.add_column("steps", justify="right")
    notes = any(t.reason for t in shown)
    if notes:
        table.add_column("note")
    for rank, t in enumerate(shown, 1):
        cells = [str(rank) if t.ok else "", str(t.index), str(t.stage), fmt_metric(t.metric)]
        cells += [fmt_metric(getattr(t, n)) for n in (V.VAL_ACC, V.VAL_LOSS) if n != result.metric]
        cells += [fmt_value(t.params.get(a.name, "")) for a in result.params]
        cells += [f"{t.steps:,}", *([t.reason] if notes else [])]
        style = None if t.ok else ("red" if t.status == "diverged" else "yellow")
        table.add_row(*cells, style=style)
    if limit is not None and len(ranked) > limit:
        table.caption = f"... and {len(ranked) - limit} more (all of them are in the CSV)"
    return table


def lessons(result: SearchResult) -> list[str]:
    """Lines the user should read: diverged and failed trials, the border warnings, the ranges of
    each stage."""
    out = []
    for t in result.trials:
        if t.status == "diverged":
            out.append(f"trial {t.index} ({_settings(t)}) {t.reason}")
        elif t.status == "failed":
            out.append(f"trial {t.index} ({_settings(t)}) failed: {t.reason}")
    return out


def _settings(t: Trial) -> str:
    return ", ".join(f"{k}={fmt_value(v)}" for k, v in t.params.items())


def stage_lines(result: SearchResult) -> list[str]:
    lines = []
    for number, axes in enumerate(result.stage_axes):
        trials = result.stage_trials(number)
        steps = sorted({t.steps for t in trials})
        length = f"{steps[0]:,}" if len(steps) == 1 else (f"{steps[0]:,}-{steps[-1]:,}" if steps else "?")
        lines.append(f"stage {number}: {len(trials)} trial(s) of {length} steps over "
                     + ", ".join(f"{a.name} {a}" for a in axes))
    return lines


def _decade_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    step = max(1, (b - a) // 6)
    ticks = [10.0 ** e for e in range(a, b + 1, step)]
    return ticks, [f"1e{int(round(math.log10(t)))}" for t in ticks]


def scatter_charts(result: SearchResult, width: int = 80, height: int = 15) -> list[str]:
    """The metric against each parameter, one chart each (log x for log axes); diverged and failed
    trials are left out (they have no metric)."""
    import plotext as plt

    charts = []
    ok = [t for t in result.trials if t.ok]
    if not ok:
        return charts
    for axis in result.params:
        plt.clear_figure()
        plt.plotsize(width, height)
        plt.theme("clear")
        ys = [t.metric for t in ok]
        if axis.kind == "choice":
            xs = [axis.choices.index(t.params[axis.name]) if t.params[axis.name] in axis.choices else 0 for t in ok]
            plt.xticks(list(range(len(axis.choices))), [fmt_value(c) for c in axis.choices])
        else:
            xs = [float(t.params[axis.name]) for t in ok]
            if axis.kind == "log":
                plt.xscale("log")
                plt.xticks(*_decade_ticks(axis.low, axis.high))
            else:
                ticks = np.linspace(axis.low, axis.high, 5).tolist()
                plt.xticks(ticks, [fmt_value(x) for x in ticks])
        for stage in sorted({t.stage for t in ok}):
            pts = [(x, y) for x, y, t in zip(xs, ys, ok) if t.stage == stage]
            plt.scatter([p[0] for p in pts], [p[1] for p in pts], marker="dot" if stage == 0 else "x",
                        label=f"stage {stage}")
        best = result.best
        if best is not None and axis.name in best.params:
            bx = (axis.choices.index(best.params[axis.name]) if axis.kind == "choice"
                  else float(best.params[axis.name]))
            plt.scatter([bx], [best.metric], marker="@", label="best")
        plt.title(f"{result.metric} vs {axis.name} ({axis})")
        plt.xlabel(axis.name + (" (log)" if axis.kind == "log" else ""))
        charts.append(plt.build())
    return charts


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over `window` steps (shorter at the start)."""
    if window <= 1 or values.size == 0:
        return values
    sums = np.cumsum(np.insert(values, 0, 0.0))
    out = np.empty(values.size)
    idx = np.arange(1, values.size + 1)
    lo = np.maximum(0, idx - window)
    out[:] = (sums[idx] - sums[lo]) / (idx - lo)
    return out


def loss_chart(result: SearchResult, width: int = 80, height: int = 18, points: int = 200) -> str:
    """Every trial's training loss on one plot (log y), as a moving average over 5% of its steps;
    the best trial labelled.  Diverged curves stop where they diverged."""
    import plotext as plt

    plt.clear_figure()
    plt.plotsize(width, height)
    plt.theme("clear")
    plt.yscale("log")
    best = result.best
    drawn = 0
    finite_all = [t.loss[np.isfinite(t.loss) & (t.loss > 0)] for t in result.trials]
    cap = None
    if any(v.size for v in finite_all):
        firsts = [v[0] for v in finite_all if v.size]
        cap = 10 * float(np.median(firsts))  # a curve that explodes is cut at 10x the typical start
    for t in sorted(result.trials, key=lambda t: (t is best, t.index)):
        loss = t.loss
        n = int(np.argmax(~np.isfinite(loss))) if (~np.isfinite(loss)).any() else loss.size
        if n < 2:
            continue
        smooth = moving_average(loss[:n], max(1, n // 20))
        steps = np.arange(1, n + 1)
        pick = np.unique(np.linspace(0, n - 1, min(points, n)).round().astype(int))
        ys = np.clip(smooth[pick], 1e-6, cap if cap is not None else np.inf)
        label = f"best (trial {t.index})" if t is best else None
        plt.plot(steps[pick].tolist(), ys.tolist(), marker="braille", label=label,
                 color="red" if t is best else None)
        drawn += 1
    longest = max((t.loss.size for t in result.trials), default=1)
    ticks = sorted({int(round(x)) for x in np.linspace(1, max(longest, 2), 5)})
    plt.xticks(ticks, [f"{x:,}" for x in ticks])
    plt.title(f"training loss of {drawn} trial(s) (moving average)")
    plt.xlabel("step")
    return plt.build()
