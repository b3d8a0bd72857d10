"""Loss and accuracy curves (plotext), with a marker at every change.

plotext's build() costs ~10 ms whatever the size, so these redraw at a few Hz, not at
the frame rate; x ticks are given explicitly (plotext's own float ticks vary between
processes, which would make snapshot tests flaky).
"""

from __future__ import annotations

import time

import numpy as np
from textual_plotext import PlotextPlot

from lab.sim.snapshot import Snapshot

MAX_POINTS = 300
REDRAW_SECONDS = 0.3


def thin(x: np.ndarray, y: np.ndarray, n: int = MAX_POINTS) -> tuple[list[float], list[float]]:
    """At most n points, evenly spaced in index, keeping the last; non-finite values dropped."""
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size > n:
        idx = np.unique(np.linspace(0, x.size - 1, n).astype(np.int64))
        x, y = x[idx], y[idx]
    return x.tolist(), y.tolist()


def step_ticks(last: float, n: int = 5) -> list[int]:
    last = max(1, int(last))
    return sorted({int(round(v)) for v in np.linspace(0, last, n)})


class Curves(PlotextPlot):
    """`metric` is "loss" or "acc": train (per step) and validation (per evaluation)."""

    def __init__(self, metric: str = "loss", **kwargs) -> None:
        super().__init__(**kwargs)
        self.metric = metric
        self._drawn_step = -1
        self._last = 0.0

    def show(self, snap: Snapshot, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and (snap.step == self._drawn_step or now - self._last < REDRAW_SECONDS):
            return
        self._drawn_step, self._last = snap.step, now
        h = snap.history
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        train_key, val_key = ("loss", "val_loss") if self.metric == "loss" else ("train_acc", "val_acc")
        x, y = thin(h["step"], h[train_key])
        if x:
            plt.plot(x, y, label="train", marker="braille", color="cyan")
        vx, vy = thin(h["val_step"], h[val_key])
        if vx:
            plt.plot(vx, vy, label="val", marker="braille", color="orange")
        for e in snap.events:
            if e.step > 0:
                plt.vline(e.step, color="red" if e.source == "user" else "gray")
        last = max([snap.step, *(x[-1:] or [1])])
        plt.xticks(step_ticks(last))
        if self.metric == "acc":
            plt.ylim(0, 1)
        plt.title(("loss" if self.metric == "loss" else "accuracy") + ("   | = change" if snap.events else ""))
        self.refresh()
