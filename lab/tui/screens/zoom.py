"""Zoom on one layer: its full-axis histogram (plotext) and its histogram over the whole run.

Everything is drawn from Snapshots, got from the callable the screen is given (the run
screen passes its runner's latest).  The over-time view is fastai's "colorful dimension":
one column per step of the simulation's timeline (`Snapshot.layer_frames`: step 0 on the
left, a record every `every` steps, the live statistics last when they are newer), one row
per bin, colour = how many values fell in it.  Bins are fixed, so a drift is real.
`t` switches activations / gradients (or weights / updates), `h` between the two pairs.

A step cursor (TensorBoard's step slider) picks the step the big histogram shows: left /
right one record, shift+left / shift+right (or page up / down) ten, home step 0, end back
to live; or a click on a column of the heat map.  The cursor holds its step while the run goes on; if thinning drops that record,
it shows the latest one before it.
"""

from __future__ import annotations

import bisect
from typing import Callable

import numpy as np
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.widgets import Footer, Static
from textual_plotext import PlotextPlot

from lab import vocabulary as V
from lab.report.plots import _tick_labels
from lab.sim import LayerStats, Snapshot
from lab.tui.keys import PAGE, ZOOM_KEYS, bindings
from lab.tui.screens.base import LabScreen
from lab.tui.widgets.bars import regroup

# magma-like, dark = empty; every colour is exact in the xterm 256-colour cube, so a terminal
# over SSH shows the same steps (near-black magma hexes all collapsed into two palette entries)
HEAT = ("#000000", "#00005f", "#5f0087", "#87005f", "#af0000", "#d75f00", "#ff8700", "#ffaf00", "#ffd700",
        "#ffff5f", "#ffffd7")
CURSOR = "#00e5ff"  # the cursor's column line and marker: a colour the heat scale never uses
GUTTER = 7  # value labels left of the heat map
LABEL_EVERY = 4  # rows between value labels

# What the histograms count: t toggles within a pair, h between the pairs (as h does on the run screen)
QUANTITIES = {
    "act": ("activations", "act_hist", "act_edges", "green"),
    "grad": ("gradients dL/da (symlog bins)", "grad_hist", "grad_edges", "magenta"),
    "weight": ("weights W (symlog bins)", "weight_hist", "value_edges", "cyan"),
    "update": ("updates ΔW of the step (symlog bins)", "update_hist", "value_edges", "yellow"),
}
PAIR = {"act": "grad", "grad": "act", "weight": "update", "update": "weight"}
FAMILY = {"act": "weight", "grad": "update", "weight": "act", "update": "grad"}

Frame = tuple[int, tuple[LayerStats, ...]]

LEARNED_SLOPE = frozenset(a.name for a in V.ACTIVATIONS if a.learned_slope)


def column_frames(n_frames: int, width: int, keep: int | None = None) -> np.ndarray:
    """The frame shown in each of `width` columns: each frame over an equal share of the
    columns when they are fewer, otherwise evenly spaced frames, first and last included,
    and `keep` (the cursor's) swapped in for the nearest if it was not among them."""
    if n_frames == 0 or width <= 0:
        return np.zeros(0, np.int64)
    if n_frames <= width:
        return np.arange(width) * n_frames // width
    idx = np.round(np.linspace(0, n_frames - 1, width)).astype(np.int64)
    if keep is not None and keep not in idx:
        idx[int(np.argmin(np.abs(idx - keep)))] = keep
    return idx


def _edge_label(value: float, symlog: bool) -> str:
    if symlog:  # edges sit near powers of ten (10^k - 1 times the floor): name the power
        return "0" if abs(value) < 1e-9 else f"{np.sign(value) * 10.0 ** round(np.log10(abs(value))):.0e}"
    return f"{value:.2g}"


def heat_rows(bins: int, available: int) -> int:
    """Text rows for `bins` bins: all of them if they fit, else the most that divides them
    evenly (so every row spans the same value range and the labels are round)."""
    if available >= bins:
        return bins
    return max(d for d in range(1, max(1, available) + 1) if bins % d == 0)


def _axis(steps: list[int], width: int) -> str:
    """A row of step labels under the columns: the first, the last (right-aligned) and
    evenly spaced ones between that do not collide."""
    row = [" "] * width
    if not steps:
        return ""
    taken = [False] * width

    def place(col: int, label: str, right: bool = False) -> None:
        start = col - len(label) + 1 if right else col
        start = max(0, min(start, width - len(label)))
        span = range(max(0, start - 1), min(width, start + len(label) + 1))
        if any(taken[i] for i in span):
            return
        for i, ch in enumerate(label):
            row[start + i] = ch
        for i in range(start, start + len(label)):
            taken[i] = True

    place(0, str(steps[0]))
    place(width - 1, str(steps[-1]), right=True)
    ticks = max(1, width // 14)
    for k in range(1, ticks):
        col = k * (width - 1) // ticks
        place(col, str(steps[col]))
    return "".join(row)


def heatmap(columns: list[np.ndarray], edges: np.ndarray, symlog: bool, steps: list[int], height: int,
            log: bool, cursor: set[int], marker: str) -> Text:
    """The over-time view: `columns` (bin counts, one per screen column, oldest first) as
    colour over `height` text rows, the bin values on the left, the steps below, and the
    columns in `cursor` marked (with `marker` written beside the arrow)."""
    text = Text(no_wrap=True, overflow="crop")
    width = len(columns)
    bins = edges.size - 1
    rows = heat_rows(bins, height - 2)  # two rows for the step axis and the cursor marker
    if width == 0:
        return text
    grid = np.array([regroup(c, rows) for c in columns]).T[::-1]  # rows: top = highest bin
    per_row = bins // rows
    if log:
        grid = np.log1p(grid)
    peak = grid.max() if grid.size and grid.max() > 0 else 1.0
    levels = np.ceil(grid / peak * (len(HEAT) - 1)).astype(int)
    n_rows = grid.shape[0]
    mid = sorted(cursor)[len(cursor) // 2] if cursor else None
    for r in range(n_rows):
        if r == 0:
            label = _edge_label(edges[-1], symlog)
        elif r == n_rows - 1:
            label = _edge_label(edges[0], symlog)
        elif r % LABEL_EVERY == 0 and n_rows - 1 - r >= 2:
            label = _edge_label(edges[bins - (r + 1) * per_row], symlog)  # the row's lower edge
        else:
            label = ""
        text.append(f"{label:>{GUTTER - 1}} ", style="dim")
        c = 0
        while c < width:
            level = levels[r, c]
            if c == mid:
                text.append("│", style=f"bold {CURSOR} on {HEAT[level]}")
                c += 1
                continue
            end = c + 1
            while end < width and levels[r, end] == level and end != mid:
                end += 1
            text.append(" " * (end - c), style=f"on {HEAT[level]}")
            c = end
        text.append("\n")
    text.append(" " * GUTTER + _axis(steps, width) + "\n", style="dim")
    if mid is not None:
        text.append(" " * GUTTER)
        if mid + 2 + len(marker) <= width:  # "▲ marker" from the cursor's column on
            text.append(" " * mid)
            text.append("▲ ", style=f"bold {CURSOR}")
            text.append(marker)
        else:  # "marker ▲" ending at it
            left = (marker + " ")[-mid:] if mid else ""
            text.append(" " * (mid - len(left)) + left)
            text.append("▲", style=f"bold {CURSOR}")
    return text


class ZoomScreen(LabScreen):
    KEYS = ZOOM_KEYS
    BINDINGS = bindings(ZOOM_KEYS)
    DEFAULT_CSS = """
    ZoomScreen #zoom-title { height: auto; max-height: 3; background: $boost; padding: 0 1; }
    ZoomScreen PlotextPlot { height: 1fr; }
    ZoomScreen #heat-title { height: 1; padding: 0 1; color: $text-muted; }
    ZoomScreen #heat { height: 1fr; padding: 0 1; }
    """

    def __init__(self, latest: Callable[[], Snapshot], layer: int = 1) -> None:
        super().__init__()
        self.latest = latest
        self.layer_index = layer
        self.quantity = "act"
        self.log_counts = False
        self.cursor: int | None = None  # the step looked at; None = follow the live statistics
        self.shown: tuple[int, LayerStats, bool] | None = None  # (step, statistics, live) in the big histogram
        self._drawn: tuple | None = None
        self._columns: list[tuple[int, bool]] = []  # per heat-map column: (its frame's step, whether it is the last)

    def compose(self) -> ComposeResult:
        yield Static(id="zoom-title")
        yield PlotextPlot(id="zoom-plot")
        yield Static(id="heat-title")
        yield Static(id="heat")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.draw()
        self.set_interval(0.3, self.draw)

    def on_resize(self) -> None:
        self.call_after_refresh(self.draw)

    # -- the cursor ---------------------------------------------------------------------------
    def _selected(self, frames: list[Frame]) -> int:
        """Index of the frame the cursor shows: the latest at or before its step (the last if live)."""
        if self.cursor is None:
            return len(frames) - 1
        return max(0, bisect.bisect_right([step for step, _ in frames], self.cursor) - 1)

    def action_cursor(self, delta: int) -> None:
        frames = self.latest().layer_frames()
        if not frames:
            return
        j = max(0, min(len(frames) - 1, self._selected(frames) + delta))
        self.cursor = None if j == len(frames) - 1 and delta > 0 else frames[j][0]
        self.draw()

    def action_cursor_start(self) -> None:
        frames = self.latest().layer_frames()
        if frames:
            self.cursor = frames[0][0]
            self.draw()

    def action_cursor_live(self) -> None:
        self.cursor = None
        self.draw()

    def on_click(self, event: events.Click) -> None:
        """A click on the heat map puts the cursor on that column's step (the last column: live)."""
        heat = self.query_one("#heat", Static)
        x, y = event.screen_x - heat.content_region.x - GUTTER, event.screen_y
        if heat.content_region.y <= y < heat.content_region.bottom and 0 <= x < len(self._columns):
            step, last = self._columns[x]
            self.cursor = None if last else step
            self.draw()

    # -- other keys ----------------------------------------------------------------------------
    def action_layer(self, delta: int) -> None:
        n = max(1, len(self.latest().layers))
        self.layer_index = (self.layer_index - 1 + delta) % n + 1
        self.draw()

    def action_toggle_quantity(self) -> None:
        self.quantity = PAIR[self.quantity]
        self.draw()

    def action_toggle_family(self) -> None:
        self.quantity = FAMILY[self.quantity]
        self.draw()

    def action_toggle_log(self) -> None:
        self.log_counts = not self.log_counts
        self.draw()

    # -- drawing --------------------------------------------------------------------------------
    def _of(self, layers: tuple[LayerStats, ...]) -> LayerStats:
        return layers[min(self.layer_index, len(layers)) - 1]

    def _counts(self, s: LayerStats) -> tuple[np.ndarray, np.ndarray]:
        _, counts, edges, _ = QUANTITIES[self.quantity]
        return getattr(s, counts), getattr(s, edges)

    def draw(self) -> None:
        snap = self.latest()
        frames = snap.layer_frames()
        if not frames:
            return
        if self.cursor is not None and self.cursor > frames[-1][0]:
            self.cursor = None  # the run went back (a reset): follow it
        heat = self.query_one("#heat", Static)
        key = (self.layer_index, self.quantity, self.log_counts, self.cursor, heat.size)
        if self._drawn is not None and self._drawn[0] is snap and self._drawn[1] == key:
            return  # nothing new since the last frame
        self._drawn = (snap, key)
        sel = self._selected(frames)
        step, layers = frames[sel]
        s = self._of(layers)
        live = self.cursor is None
        self.shown = (step, s, live)
        q = self.quantity
        counts, edges = self._counts(s)
        what, _, _, colour = QUANTITIES[q]
        when = "live" if live else "recorded"
        if q in ("act", "grad"):
            numbers = (f"mean {s.act_mean if q == 'act' else s.grad_mean:.3g}  "
                       f"std {s.act_std if q == 'act' else s.grad_std:.3g}  "
                       f"dead {s.dead_fraction:.0%}  sat {s.saturated_fraction:.0%}")
        else:
            numbers = (f"W std {s.weight_std:.3g}  dW std {s.wgrad_std:.3g}  update/weight {s.update_ratio:.2g}"
                       f"  |W|<1e-3 {s.weight_zero_fraction:.0%}")
            if s.kind in LEARNED_SLOPE:  # the slope PReLU learns (leaky's is fixed: nothing to watch)
                numbers += f"  slope {s.negative_slope:.3g}"
        self.query_one("#zoom-title", Static).update(
            f"[b]layer {s.index}[/b] ({s.kind}, {s.width} units) {what} at step {step} ({when})   {numbers}"
            + ("   (log counts)" if self.log_counts else ""))
        plot = self.query_one("#zoom-plot", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        values = np.log1p(counts) if self.log_counts else counts
        plt.bar([i + 0.5 for i in range(counts.size)], values.tolist(), width=1.0, color=colour)
        pos, labels = _tick_labels(edges, q != "act", n=7)
        plt.xticks(pos, labels)
        plt.ylabel("log(1+count)" if self.log_counts else "count")
        plot.refresh()
        self._draw_heat(snap, frames, sel, edges)

    def _draw_heat(self, snap: Snapshot, frames: list[Frame], sel: int, edges: np.ndarray) -> None:
        heat = self.query_one("#heat", Static)
        width = max(10, heat.size.width - GUTTER)
        idx = column_frames(len(frames), width, sel)
        counts = {}
        other_bins = []
        for i in np.unique(idx):
            c, e = self._counts(self._of(frames[i][1]))
            if e is not edges and not np.array_equal(e, edges):
                other_bins.append(frames[i][0])
                c = np.zeros(edges.size - 1)  # other bins (the activation changed): not comparable, left dark
            counts[i] = c
        cols = [counts[i] for i in idx]
        steps = [frames[i][0] for i in idx]
        self._columns = [(frames[i][0], i == len(frames) - 1) for i in idx]
        marked = {j for j, i in enumerate(idx) if i == sel}
        step = frames[sel][0]
        marker = f"step {step}" + (" (live)" if self.cursor is None else "")
        tl = snap.timeline
        every = ("" if not tl.every else ", every step" if tl.every == 1 else f", every {tl.every} steps")
        live = " + live" if len(frames) > len(tl) else ""
        title = (f"over time: steps {frames[0][0]}..{frames[-1][0]} ({len(tl)} records{every}{live}); "
                 "brighter = more values (log scale)")
        if other_bins:
            title += f"; steps {min(other_bins)}..{max(other_bins)} had other bins (left dark)"
        hint = f"   ←/→ step, shift ±{PAGE}, home, end = live"
        if len(title) + len(hint) <= heat.size.width:
            title += hint
        self.query_one("#heat-title", Static).update(title)
        # always a log colour scale: one crowded bin (a dead ReLU's zeros) would leave the rest black
        heat.update(heatmap(cols, edges, self.quantity != "act", steps, max(3, heat.size.height), True,
                            marked, marker))
