"""Zoom on one layer: full-axis histograms (plotext) and the histogram over time.

The over-time view is fastai's "colorful dimension": one column per snapshot, one row
per bin, colour = how many values fell in it.  Bins are fixed, so a drift is real.
"""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual_plotext import PlotextPlot

from lab.report.plots import _tick_labels
from lab.tui.keys import ZOOM_KEYS, bindings
from lab.tui.widgets.bars import regroup

HEAT = ("#000000", "#1c0c3c", "#3b0f70", "#641a80", "#8c2981", "#b73779", "#de4968", "#f7705c", "#fe9f6d",
        "#fecf92", "#fcfdbf")  # magma-like, dark = empty


def heatmap(columns: list[np.ndarray], width: int, height: int, log: bool) -> Text:
    """Columns (oldest first) of bin counts -> a Text of `height` rows, newest on the right."""
    cols = columns[-width:]
    text = Text(no_wrap=True, overflow="crop")
    if not cols:
        return text
    grid = np.array([regroup(c, height) for c in cols]).T[::-1]  # rows: top = highest bin
    if log:
        grid = np.log1p(grid)
    peak = grid.max() or 1.0
    levels = np.ceil(grid / peak * (len(HEAT) - 1)).astype(int)
    for r in range(grid.shape[0]):
        for c in range(grid.shape[1]):
            text.append(" ", style=f"on {HEAT[levels[r, c]]}")
        if r < grid.shape[0] - 1:
            text.append("\n")
    return text


class ZoomScreen(Screen):
    KEYS = ZOOM_KEYS
    BINDINGS = bindings(ZOOM_KEYS)
    DEFAULT_CSS = """
    ZoomScreen #zoom-title { height: 1; background: $boost; padding: 0 1; }
    ZoomScreen PlotextPlot { height: 1fr; }
    ZoomScreen #heat-title { height: 1; padding: 0 1; color: $text-muted; }
    ZoomScreen #heat { height: 1fr; padding: 0 1; }
    """

    def __init__(self, run_screen, layer: int = 1) -> None:
        super().__init__()
        self.run_screen = run_screen
        self.layer_index = layer
        self.quantity = "act"
        self.log_counts = False

    def compose(self) -> ComposeResult:
        yield Static(id="zoom-title")
        yield PlotextPlot(id="zoom-plot")
        yield Static(id="heat-title")
        yield Static(id="heat")
        yield Footer()

    def on_mount(self) -> None:
        self.draw()
        self.set_interval(0.3, self.draw)

    def action_layer(self, delta: int) -> None:
        n = len(self.run_screen._shown.layers) if self.run_screen._shown else 1
        self.layer_index = (self.layer_index - 1 + delta) % n + 1
        self.draw()

    def action_toggle_quantity(self) -> None:
        self.quantity = "grad" if self.quantity == "act" else "act"
        self.draw()

    def action_toggle_log(self) -> None:
        self.log_counts = not self.log_counts
        self.draw()

    def draw(self) -> None:
        snap = self.run_screen._shown
        if snap is None:
            return
        s = snap.layers[self.layer_index - 1]
        act = self.quantity == "act"
        counts, edges = (s.act_hist, s.act_edges) if act else (s.grad_hist, s.grad_edges)
        what = "activations" if act else "gradients dL/da (symlog bins)"
        self.query_one("#zoom-title", Static).update(
            f"[b]layer {s.index}[/b] ({s.kind}, {s.width} units) {what} at step {snap.step}   "
            f"mean {s.act_mean if act else s.grad_mean:.3g}  std {s.act_std if act else s.grad_std:.3g}  "
            f"dead {s.dead_fraction:.0%}  sat {s.saturated_fraction:.0%}" + ("   (log counts)" if self.log_counts else ""))
        plot = self.query_one("#zoom-plot", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        values = np.log1p(counts) if self.log_counts else counts
        plt.bar([i + 0.5 for i in range(counts.size)], values.tolist(), width=1.0, color="green" if act else "magenta")
        pos, labels = _tick_labels(edges, not act, n=7)
        plt.xticks(pos, labels)
        plt.ylabel("log(1+count)" if self.log_counts else "count")
        plot.refresh()
        history = self.run_screen.layer_history.get(self.layer_index, [])
        cols = [h[1] if act else h[2] for h in history]
        first, last = (history[0][0], history[-1][0]) if history else (0, 0)
        heat = self.query_one("#heat", Static)
        width = max(10, heat.size.width - 2)
        shown = list(history)[-width:]
        start = shown[0][0] if shown else first
        self.query_one("#heat-title", Static).update(
            f"over time: steps {start}..{last}, one column per snapshot, bottom row = lowest bin "
            f"({edges[0]:.2g}), top = highest ({edges[-1]:.2g}); brighter = more values")
        heat.update(heatmap(cols, width, max(3, heat.size.height), self.log_counts))
