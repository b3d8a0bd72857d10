"""Loss and accuracy curves (plotext), with a marker at every change.

plotext's build() costs ~10 ms whatever the size, so a curve redraws at most every
ThrottledPlot.REDRAW_SECONDS (widgets/throttled.py); but the latest snapshot is always drawn in the end: `show` keeps it,
and `flush` (called every frame) draws it once the throttle allows.  x ticks are given
explicitly (plotext's own float ticks vary between processes, which would make snapshot
tests flaky).  A loss that explodes (a diverging run) is drawn on a log10 axis with
labels like 1e+12, instead of 20-digit numbers.
"""

from __future__ import annotations

import math

import numpy as np
from lab.tui.widgets.throttled import ThrottledPlot

from lab import vocabulary as V
from lab.sim.snapshot import Snapshot

MAX_POINTS = 300
LOG_SPAN = 1e3  # a loss whose max/min exceeds this is drawn on a log axis


def thin(x: np.ndarray, y: np.ndarray, n: int = MAX_POINTS) -> tuple[list[float], list[float]]:
    """At most n points, evenly spaced in index, keeping the last; non-finite values dropped."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size > n:
        idx = np.unique(np.linspace(0, x.size - 1, n).astype(np.int64))
        x, y = x[idx], y[idx]
    return x.tolist(), y.tolist()


def step_ticks(last: float, n: int = 5) -> list[int]:
    last = max(1, int(last))
    return sorted({int(round(v)) for v in np.linspace(0, last, n)})


def fitted_title(parts: list[str], width: int) -> str:
    """As many of the title's parts as fit a plot `width` cells wide, most important first
    (a part that does not fit is skipped, a shorter later one may still fit)."""
    title, room = "", max(10, width - 4)
    for part in filter(None, parts):
        candidate = f"{title}   {part}" if title else part
        if len(candidate) <= room:
            title = candidate
    return title


def log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Ticks for a log10 axis between lo and hi (log10 values): whole decades, at most 5."""
    first, last = math.floor(lo), math.ceil(hi)
    step = max(1, math.ceil((last - first) / 4))
    ticks = list(range(first, last + 1, step))
    return [float(t) for t in ticks], [f"1e{t:+03d}" for t in ticks]


class Curves(ThrottledPlot):
    """`metric` is V.LOSS or "acc": train (per step) and validation (per evaluation)."""

    def __init__(self, metric: str = V.LOSS, **kwargs) -> None:
        super().__init__(**kwargs)
        self.metric = metric
        self.log_axis = False
        self.hint = ""  # e.g. "g: accuracy" when only one curve fits

    def view_key(self) -> tuple:
        return (self.metric,)

    def _draw(self, snap: Snapshot) -> None:
        h = snap.history
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        train_key, val_key = (V.LOSS, V.VAL_LOSS) if self.metric == V.LOSS else (V.TRAIN_ACC, V.VAL_ACC)
        x, y = thin(h["step"], h[train_key])
        vx, vy = thin(h[V.VAL_STEP], h[val_key])
        mc_key = V.MC_VAL_LOSS if self.metric == V.LOSS else V.MC_VAL_ACC  # dropout as an ensemble
        mx, my = thin(h[V.VAL_STEP], h[mc_key]) if mc_key in h else ([], [])
        values = [v for v in y + vy + my if v > 0]
        self.log_axis = self.metric == V.LOSS and bool(values) and max(values) / min(values) > LOG_SPAN
        if self.log_axis:  # a diverging loss: log10 values, labelled as powers of ten
            y, vy = [math.log10(v) if v > 0 else math.nan for v in y], [math.log10(v) if v > 0 else math.nan for v in vy]
            my = [math.log10(v) if v > 0 else math.nan for v in my]
        legend = self.size.height >= 10  # a legend would cover a small plot: the title says it then
        if x:
            plt.plot(x, y, label="train" if legend else None, marker="braille", color="cyan")
        if vx:
            plt.plot(vx, vy, label="val" if legend else None, marker="braille", color="orange")
        if mx:
            plt.plot(mx, my, label="val MC" if legend else None, marker="braille", color="magenta")
        for e in snap.events:
            if e.step > 0:
                plt.vline(e.step, color="red" if e.source == "user" else "gray")
        last = max([snap.step, *(x[-1:] or [1])])
        plt.xticks(step_ticks(last))
        plt.xlim(0, max(1, last))
        if self.metric == "acc":
            plt.ylim(0, 1)
            plt.yticks([0, 0.25, 0.5, 0.75, 1.0], ["0", ".25", ".5", ".75", "1"])
        elif self.log_axis:
            finite = [v for v in y + vy + my if math.isfinite(v)]
            ticks, labels = log_ticks(min(finite), max(finite))
            plt.yticks(ticks, labels)
        else:
            finite = [v for v in y + vy + my if math.isfinite(v)]
            if finite:
                lo, hi = min(finite), max(finite)
                ticks = list(np.linspace(lo, hi, 4)) if hi > lo else [lo]
                plt.yticks(ticks, [f"{t:.3g}" for t in ticks])
        name = "loss" + (" (log axis: it exploded)" if self.log_axis else "") if self.metric == V.LOSS else "accuracy"
        mc = ""  # dropout as an ensemble: the latest Monte-Carlo numbers (the magenta curve is their history)
        if mx and V.MC_GAP in h and h[V.MC_GAP].size and math.isfinite(h[V.MC_GAP][-1]):
            mc = f"MC {h[V.MC_VAL_ACC][-1] * 100:.0f}% gap {h[V.MC_GAP][-1]:.3f}"
        parts = [name, mc, self.hint, "" if legend or not x else "cyan train, orange val" + (", magenta MC" if mx else ""),
                 "" if x else "no steps yet (space runs, n steps)", "| = change" if snap.events else ""]
        plt.title(fitted_title(parts, self.size.width))
        self.refresh()
