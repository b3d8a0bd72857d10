"""The search's scatter: the metric of every trial against one searched parameter (plotext).

A log-scale parameter is drawn on a log10 axis labelled in powers of ten; a choice by its
place in the list.  The x range is the parameter's whole range as given, with its outer
10% (the border) marked, so a best value on the border is seen where it lies.  Trials that
diverged (or failed) have no metric: they are drawn as red x on the worst edge of the plot,
at their parameter's value.  Redrawn at most every ThrottledPlot.REDRAW_SECONDS (plotext's build costs
~10 ms); ticks are explicit (plotext's own vary between processes).
"""

from __future__ import annotations

import math

import numpy as np
from lab.tui.widgets.throttled import ThrottledPlot

from lab.search.space import BORDER  # the outer 10% of a range
from lab.tui.search_feed import SearchView, compact
from lab.tui.widgets.curves import fitted_title



def _x(axis, value) -> float | None:
    """Where `value` goes on the plot's x axis (log10 for log axes, the index for choices)."""
    try:
        if axis.kind == "choice":
            return float(axis.choices.index(value))
        v = float(value)
        if axis.kind == "log":
            return math.log10(v) if v > 0 else None
        return v
    except (ValueError, TypeError):
        return None


def x_range(axis) -> tuple[float, float]:
    if axis.kind == "choice":
        return -0.5, len(axis.choices) - 0.5
    if axis.kind == "log":
        return math.log10(axis.low), math.log10(axis.high)
    return float(axis.low), float(axis.high)


def x_ticks(axis) -> tuple[list[float], list[str]]:
    lo, hi = x_range(axis)
    if axis.kind == "choice":
        return [float(i) for i in range(len(axis.choices))], [compact(c) for c in axis.choices]
    if axis.kind == "log":
        first, last = math.ceil(lo - 1e-9), math.floor(hi + 1e-9)
        step = max(1, math.ceil((last - first) / 5))
        ticks = [float(t) for t in range(first, last + 1, step)] or [lo, hi]
        return ticks, [f"1e{int(t)}" if t == int(t) else compact(10 ** t) for t in ticks]
    ticks = [float(t) for t in np.linspace(lo, hi, 4)]
    return ticks, [compact(int(round(t)) if axis.kind == "int" else t) for t in ticks]


class SearchScatter(ThrottledPlot):
    """Draws a SearchView: the metric against the parameter `param` (an index into view.axes)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.param = 0
        self.hint = ""  # e.g. "p: next parameter"

    def view_key(self) -> tuple:
        return (self.param,)

    def cycle(self) -> str:
        """The next parameter; its name."""
        view = self._pending
        n = len(view.axes) if view is not None else 0
        if n:
            self.param = (self.param + 1) % n
        self.flush(force=True)
        return view.axes[self.param].name if n else ""

    def _draw(self, view: SearchView) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        if not view.axes:
            plt.title("the scatter shows once the first trials are planned")
            self.refresh()
            return
        self.param %= len(view.axes)
        axis = view.axes[self.param]
        acc = view.metric.endswith("acc")
        best = view.best
        ok, rest, bad = [], [], []
        for t in view.ranked:
            x = _x(axis, t.params.get(axis.name))
            if x is None:
                continue
            if not t.ok:
                bad.append(x)
                continue
            ok.append((x, t.metric))
            if t is not best:
                rest.append((x, t.metric))
        ys = [y for _, y in ok]
        if acc:
            lo_y, hi_y = 0.0, 1.0
        elif ys:
            lo_y, hi_y = min(ys), max(ys)
            if hi_y == lo_y:
                lo_y, hi_y = lo_y - 0.5, hi_y + 0.5
        else:
            lo_y, hi_y = 0.0, 1.0
        worst = lo_y if view.maximize else hi_y
        x0, x1 = x_range(axis)
        if axis.kind != "choice":  # the border: the outer 10% of the range
            for edge in (x0 + BORDER * (x1 - x0), x1 - BORDER * (x1 - x0)):
                plt.vline(edge, color="gray")
        if rest:
            plt.scatter([x for x, _ in rest], [y for _, y in rest], marker="o", color="cyan")
        if bad:
            plt.scatter(bad, [worst] * len(bad), marker="x", color="red")
        bx = _x(axis, best.params.get(axis.name)) if best is not None else None
        if bx is not None:
            plt.scatter([bx], [best.metric], marker="@", color="green")
        plt.xlim(x0, x1)
        ticks, labels = x_ticks(axis)
        plt.xticks(ticks, labels)
        plt.ylim(lo_y, hi_y)
        yt = [float(v) for v in np.linspace(lo_y, hi_y, 3 if self.size.height < 10 else 5)]
        plt.yticks(yt, [f"{v:.2g}" if acc else f"{v:.3g}" for v in yt])
        scale = " (log)" if axis.kind == "log" else ""
        parts = [f"{view.metric} vs {axis.name}{scale}", "@ best" if best is not None else "",
                 "x diverged" if bad else "", "| border" if axis.kind != "choice" else "",
                 self.hint if len(view.axes) > 1 else ""]
        plt.title(fitted_title(parts, self.size.width))
        self.refresh()
