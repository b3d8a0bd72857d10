"""The compare screen's panels: a table with one block per variant and one chart of them all.

A variant's block is its name and what it changes from the base (`leaky  activation=
leaky_relu`), its loss and accuracies (and the scalars the scenario's claims name, such
as lr), then one row per layer of the columns of lab.report.table.LAYER_COLUMNS that fit,
the ones the claims name kept longest.  When the variants' layers do not all fit, the
table shows a page of layers per variant (first the layers the claims name), and with
many variants on a short terminal one line per variant.  Every line is built to fit
its width: nothing wraps, nothing is cut mid-word.

The chart draws every variant on one shared scale, each with its own marker character as
well as its own colour (readable without colour, and where the lines overlap); the legend
above it uses the same marker and colour as the table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from rich.text import Text
from textual.widget import Widget
from lab.tui.widgets.throttled import ThrottledPlot

from lab import vocabulary as V
from lab.report.table import LAYER_COLUMNS, Column, fitting_columns, layer_rows
from lab.sim.snapshot import Snapshot

from .bars import block_rows
from .curves import LOG_SPAN, log_ticks, step_ticks

MARKERS = ("•", "x", "+", "o", "*", "#", "=", "%")
COLORS = (45, 208, 40, 170, 33, 220, 250, 139)  # 256-colour codes: plotext and rich draw the same colour
POINTS = 40  # a loss curve is drawn through at most this many means of consecutive steps (noise averaged)
GAP = 2


def marker_of(i: int) -> str:
    return MARKERS[i % len(MARKERS)]


def color_of(i: int) -> int:
    return COLORS[i % len(COLORS)]


def _fmt(x: float, spec: str) -> str:
    return "-" if x is None or not math.isfinite(x) else format(x, spec)


def _pct(x: float) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x * 100:.0f}%"


@dataclass(frozen=True)
class Scalar:
    label: str
    metric: str  # the Snapshot field (and the metric name the claims use)
    cell: Callable[[Snapshot], str]
    always: bool = False  # shown whatever the claims are about
    width: int = 4  # at least, so the layout does not shift as the numbers change


SCALARS: tuple[Scalar, ...] = (
    Scalar("loss", V.LOSS, lambda s: _fmt(s.loss, ".4f"), always=True, width=6),
    Scalar("acc", V.TRAIN_ACC, lambda s: _pct(s.train_acc), always=True),
    Scalar("val", V.VAL_ACC, lambda s: _pct(s.val_acc), always=True),
    Scalar("val loss", V.VAL_LOSS, lambda s: _fmt(s.val_loss, ".4f"), width=6),
    Scalar("lr", "lr", lambda s: _fmt(s.lr, ".3g"), width=5),
    Scalar("‖g‖", V.GRAD_NORM, lambda s: _fmt(s.grad_norm, ".3g"), width=5),
)


@dataclass(frozen=True)
class Variant:
    name: str
    change: tuple[str, ...] = ()  # what it changes from the base, one "key=value" per item


def pack(items: tuple[str, ...], width: int) -> list[str]:
    """Items joined by spaces into lines of at most `width` (an item never split; one
    longer than the width alone on its line, ellipsised)."""
    lines: list[str] = []
    for item in items:
        if len(item) > width:
            item = item[:max(1, width - 1)] + "…"
        if lines and len(lines[-1]) + 1 + len(item) <= width:
            lines[-1] += " " + item
        else:
            lines.append(item)
    return lines or [""]


def layer_pages(n: int, per_page: int, claimed: tuple[int, ...]) -> list[list[int]]:
    """Pages of layer numbers (1..n), `per_page` each.  With claims naming layers, the first
    page is those layers (and their neighbours, if room), then the layers in order."""
    if n <= per_page:
        return [list(range(1, n + 1))]
    pages = [list(range(first, min(first + per_page, n + 1))) for first in range(1, n + 1, per_page)]
    named = sorted({c for c in claimed if 1 <= c <= n})
    if named:
        near = sorted(range(1, n + 1), key=lambda layer: (min(abs(layer - c) for c in named), layer))
        focus = sorted(near[:per_page])
        if focus not in pages:
            pages.insert(0, focus)
        else:
            pages.remove(focus)
            pages.insert(0, focus)
    return pages


def bucket_means(x: np.ndarray, y: np.ndarray, n: int) -> tuple[list[float], list[float]]:
    """At most n points: the finite values in n runs of consecutive steps, each the mean of
    its run at the run's last step (noise averaged, not skipped; the last point is the latest)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size <= n:
        return x.tolist(), y.tolist()
    bounds = np.linspace(0, x.size, n + 1).astype(np.int64)
    means = np.add.reduceat(y, bounds[:-1]) / np.diff(bounds)
    return x[bounds[1:] - 1].tolist(), means.tolist()


def describe_page(layers: list[int], n: int) -> str:
    if layers == list(range(layers[0], layers[-1] + 1)):
        span = f"{layers[0]}" if len(layers) == 1 else f"{layers[0]}-{layers[-1]}"
        return f"layer{'s' if len(layers) > 1 else ''} {span} of {n}"
    return f"layers {','.join(map(str, layers))} of {n}"


class VariantTable(Widget):
    """One block per variant: a status line, then a row per layer on the current page."""

    DEFAULT_CSS = """
    VariantTable { height: auto; padding: 0 1; }
    """

    def __init__(self, variants: list[Variant], wanted: tuple[str, ...] = (), claimed: tuple[int, ...] = (),
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.variants = variants
        self.wanted = wanted  # metric names the scenario's claims are about
        self.claimed = claimed  # layer numbers they name
        self.scalars = tuple(s for s in SCALARS if s.always or s.metric in wanted)
        self.snapshots: dict[str, Snapshot] = {}
        self.budget = 0  # rows the screen can give the table (0: not laid out yet)
        self.page = 0
        self.mode = "activity"  # the histogram cells (wide terminals): act | grad, or W | dW
        self.marker = ""  # which layers are shown, for the status line
        self._cache: tuple | None = None

    # -- what the screen calls ------------------------------------------------------------------
    def show(self, snapshots: dict[str, Snapshot]) -> None:
        before = self._row_count()
        self.snapshots = snapshots
        self.refresh(layout=self._row_count() != before)

    def set_budget(self, rows: int) -> None:
        if rows != self.budget:
            self.budget = rows
            self.refresh(layout=True)

    def turn_page(self, delta: int) -> None:
        self.page += delta
        self.refresh(layout=True)

    def toggle_mode(self) -> None:
        self.mode = "weights" if self.mode == "activity" else "activity"
        self.refresh()

    @property
    def histograms_shown(self) -> bool:
        return self._cache is not None and self._cache[1][1]

    # -- layout ---------------------------------------------------------------------------------
    def _row_count(self) -> int:
        return len(self.lines(self._width()))

    def _width(self) -> int:
        return max(20, self.size.width or 98)  # the content width (inside the padding)

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(self.lines(max(20, width)))

    def render(self) -> Text:
        return Text("\n").join(self.lines(self._width()))

    def lines(self, width: int) -> list[Text]:
        key = (width, self.budget, self.page, self.mode)
        if self._cache is not None and self._cache[0] == key and self._cache[2] is self.snapshots:
            return self._cache[1][0]
        lines, hist = self._build(width)
        self._cache = (key, (lines, hist), self.snapshots)
        return lines

    def _layer_counts(self) -> dict[str, int]:
        return {v.name: len(self.snapshots[v.name].layers) for v in self.variants if v.name in self.snapshots}

    def _build(self, width: int) -> tuple[list[Text], bool]:
        if not self.snapshots:
            return [Text(" starting the variants…", style="dim")], False
        status = self._status_lines(width)
        n = max(self._layer_counts().values())
        head = sum(len(lines) for lines in status.values())
        budget = self.budget or 10_000
        per_page = 0
        for k in range(n, 0, -1):
            if 1 + head + k * len(self.variants) <= budget:
                per_page = k
                break
        if per_page == 0:
            self.marker = "per-layer rows: a taller terminal"
            return [line for v in self.variants for line in status[v.name]], False
        pages = layer_pages(n, per_page, self.claimed)
        self.page %= len(pages)
        layers = pages[self.page]
        self.marker = "" if len(pages) == 1 else (
            describe_page(layers, n) + (" (the claims')" if self.page == 0 and self.claimed and layers != list(
                range(1, per_page + 1)) else "") + "  pgup/pgdn")
        header, rows, hist = self._layer_lines(width - 2, layers)
        out = [Text("  ") + header]
        for v in self.variants:
            out += status[v.name]
            out += [Text("  ") + row for row in rows[v.name]]
        return out, hist

    def _status_lines(self, width: int) -> dict[str, list[Text]]:
        """Per variant: `● name  change  loss …  acc …  val …`, the change packed over more
        lines when it does not fit beside the numbers."""
        snaps = {v.name: self.snapshots[v.name] for v in self.variants if v.name in self.snapshots}
        name_w = max(len(v.name) for v in self.variants)
        cells = {name: [self._scalar_cell(sc, snap) for sc in self.scalars] for name, snap in snaps.items()}
        value_w = [max([sc.width] + [len(cells[name][i][0]) for name in cells]) for i, sc in enumerate(self.scalars)]
        numbers_w = sum(len(sc.label) + 1 + w for sc, w in zip(self.scalars, value_w)) + GAP * (len(self.scalars) - 1)
        lead = 2 + name_w + GAP  # "● " + name + gap
        longest = max((len(" ".join(v.change)) for v in self.variants), default=0)
        widest_item = max((len(item) for v in self.variants for item in v.change), default=0)
        room = width - lead - GAP - numbers_w
        beside = room >= widest_item  # the change fits between the name and the numbers (packed if need be)
        change_w = min(longest, room) if beside else 0
        out: dict[str, list[Text]] = {}
        for i, v in enumerate(self.variants):
            style = f"bold color({color_of(i)})"
            changes = pack(v.change, change_w if beside else width - lead) if v.change else []
            first = Text(no_wrap=True, overflow="crop")
            first.append(f"{marker_of(i)} ", style)
            first.append(v.name.ljust(name_w), style)
            first.append(" " * GAP)
            if change_w:
                first.append((changes[0] if changes else "").ljust(change_w), "italic")
                first.append(" " * GAP)
                changes = changes[1:]
            for j, (sc, w) in enumerate(zip(self.scalars, value_w)):
                value, value_style = cells[v.name][j] if v.name in cells else ("-", "")
                if j:
                    first.append(" " * GAP)
                first.append(sc.label + " ", "dim")
                first.append(value.rjust(w), value_style or "bold")
            snap = snaps.get(v.name)
            if snap is not None and snap.diverged:
                for note in (f"✗ diverged at step {snap.diverged_at}", "✗ diverged", "✗"):
                    if first.cell_len + GAP + len(note) <= width:
                        first.append(" " * GAP + note, "bold red")
                        break
            out[v.name] = [first] + [Text(" " * lead + line, style="italic", no_wrap=True, overflow="crop")
                                     for line in changes]
        return out

    @staticmethod
    def _scalar_cell(sc: Scalar, snap: Snapshot) -> tuple[str, str]:
        if sc.metric == V.LOSS and snap.diverged:
            return "NaN", "bold red"
        return sc.cell(snap), ""

    def _layer_lines(self, width: int, layers: list[int]) -> tuple[Text, dict[str, list[Text]], bool]:
        """The header and each variant's rows for `layers`, in the columns that fit all variants."""
        snaps = {v.name: self.snapshots[v.name] for v in self.variants if v.name in self.snapshots}
        shown = {name: [layer for layer in layers if layer <= len(snap.layers)] for name, snap in snaps.items()}
        # the columns that fit every variant's rows; a column is as wide as its widest cell in any
        # variant, so what fits each alone may not fit all: ask again for less until it does
        room = width
        while True:
            columns: tuple[Column, ...] = LAYER_COLUMNS
            for name, snap in snaps.items():
                fit = fitting_columns(room, snap, shown[name], self.wanted)
                if len(fit) < len(columns):
                    columns = fit
            headers = [c.header for c in columns]
            rows = {name: layer_rows(snap, shown[name], columns) for name, snap in snaps.items()}
            widths = [max([len(headers[i])] + [len(cells[i]) for rs in rows.values() for cells, _ in rs])
                      for i in range(len(columns))]
            used = sum(widths) + GAP * (len(columns) - 1)
            if used <= width or room <= 0:
                break
            room -= used - width
        spare = width - used - 2 * (GAP + 1)
        hist_w = min(24, spare // 2) if len(columns) == len(LAYER_COLUMNS) else 0
        hist = hist_w >= 8

        def line(cells: list[str], styles: dict[int, str], bold: bool = False) -> Text:
            text = Text(no_wrap=True, overflow="crop")
            for i, cell in enumerate(cells):
                padded = cell.ljust(widths[i]) if headers[i] in ("#", "kind") else cell.rjust(widths[i])
                text.append((" " * GAP if i else "") + padded, "bold" if bold else styles.get(i, ""))
            return text

        header = line(headers, {}, bold=True)
        if hist:
            left, right = ("activations", "gradients") if self.mode == "activity" else ("weights W", "updates dW")
            header.append(" " * (GAP + 1) + left[:hist_w].ljust(hist_w) + " " * (GAP + 1) + right[:hist_w], "bold")
        out: dict[str, list[Text]] = {}
        for name, snap in snaps.items():
            out[name] = []
            for layer, (cells, styles) in zip(shown[name], rows[name]):
                text = line(cells, styles)
                if hist:
                    s = snap.layers[layer - 1]
                    a, b = (s.act_hist, s.grad_hist) if self.mode == "activity" else (s.weight_hist, s.update_hist)
                    text.append(" " * GAP + "▕")
                    text.append(block_rows(a, hist_w)[0], "green" if self.mode == "activity" else "cyan")
                    text.append(" " * GAP + "▕")
                    text.append(block_rows(b, hist_w)[0], "magenta" if self.mode == "activity" else "blue")
                out[name].append(text)
        return header, out, hist


class ChartLegend(Widget):
    """What the chart shows and which marker is which variant, on as many lines as it needs."""

    DEFAULT_CSS = """
    ChartLegend { height: auto; padding: 0 1; }
    """

    def __init__(self, names: list[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.names = names
        self.title = ""

    def show(self, title: str) -> None:
        if title != self.title:
            self.title = title
            self.refresh(layout=True)

    def lines(self, width: int) -> list[Text]:
        segments = [Text(self.title, style="bold")]
        for i, name in enumerate(self.names):
            segments.append(Text(f"{marker_of(i)} {name}", style=f"bold color({color_of(i)})"))
        lines = [Text(no_wrap=True, overflow="crop")]
        for seg in segments:
            if lines[-1].cell_len and lines[-1].cell_len + 3 + seg.cell_len > width:
                lines.append(Text(no_wrap=True, overflow="crop"))
            if lines[-1].cell_len:
                lines[-1].append("   ")
            lines[-1].append_text(seg)
        return lines

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(self.lines(max(20, width)))

    def render(self) -> Text:
        return Text("\n").join(self.lines(max(20, self.size.width)))


class CompareChart(ThrottledPlot):
    """Training loss (or validation accuracy) of every variant on one scale."""

    def __init__(self, names: list[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.names = names
        self.metric = V.LOSS  # or V.VAL_ACC
        self.log_axis = False
        self.cut: float | None = None  # the top of the y axis when a spike is cut off
        self.off_top: list[str] = []  # diverged variants, left out of the scale

    def view_key(self) -> tuple:
        return (self.metric,)

    def _draw(self, snaps: dict[str, Snapshot]) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        x_key, y_key = (V.STEP, V.LOSS) if self.metric == V.LOSS else (V.VAL_STEP, V.VAL_ACC)
        points = max(10, min(POINTS, (self.size.width - 8) // 2))
        series = {name: bucket_means(snaps[name].history[x_key], snaps[name].history[y_key], points)
                  for name in self.names if name in snaps}
        # the scale is set by the variants that have not diverged (a diverged one leaves through the top)
        scaled = [name for name in series if not snaps[name].diverged] or list(series)
        self.off_top = [name for name in series if name not in scaled and series[name][0]]
        positive = [v for name in scaled for v in series[name][1] if v > 0]
        self.log_axis = self.metric == V.LOSS and bool(positive) and max(positive) / min(positive) > LOG_SPAN
        if self.log_axis:  # an exploding loss: log10 values, labelled as powers of ten
            series = {name: ([a for a, b in zip(x, y) if b > 0], [math.log10(b) for b in y if b > 0])
                      for name, (x, y) in series.items()}
        values = [v for name in scaled for v in series[name][1]]
        self.cut = None
        if self.metric == V.VAL_ACC:
            lo, hi = 0.0, 1.0
            ticks, labels = [0, 0.25, 0.5, 0.75, 1.0], ["0", ".25", ".5", ".75", "1"]
        elif values and self.log_axis:
            ticks, labels = log_ticks(min(values), max(values))
            lo, hi = ticks[0], ticks[-1]
        elif values:
            lo, hi = min(values), max(values)
            typical = max(float(np.percentile(series[name][1], 90)) for name in scaled if series[name][1])
            if hi > lo + 2 * (typical - lo) and typical > lo:  # one variant's spike must not flatten the rest
                hi = self.cut = typical + 0.25 * (typical - lo)
            ticks = [lo + (hi - lo) * t / 3 for t in range(4)] if hi > lo else [lo]
            labels = [f"{t:.3g}" for t in ticks]
        else:
            lo, hi, ticks, labels = 0.0, 1.0, [], []
        # plotext draws a line through every row between two points, off the axes too: a loss
        # of 1e19 would cost gigabytes. Clip to just beyond the axes (the line still leaves them).
        margin = max(hi - lo, 1e-9)
        last = max([1, *(snap.step for snap in snaps.values())])
        for i, name in reversed(list(enumerate(self.names))):  # the base drawn last: on top where they meet
            x, y = series.get(name, ([], []))
            if x:
                plt.plot(x, np.clip(y, lo - margin, hi + margin).tolist(), marker=marker_of(i), color=color_of(i))
        first = next(iter(snaps.values()))
        for e in first.events:
            if 0 < e.step <= last and e.source == "scenario":
                plt.vline(e.step, color="gray")
        plt.xticks(step_ticks(last))
        plt.xlim(0, last)
        plt.ylim(lo, hi if hi > lo else lo + 1)
        if ticks:
            plt.yticks(ticks, labels)
        self.refresh()

    def title(self) -> str:
        if self.metric == V.VAL_ACC:
            return "validation accuracy"
        return ("training loss" + (", log scale" if self.log_axis else "")
                + (f", peaks above {self.cut:.3g} cut" if self.cut is not None else "")
                + (f", {' and '.join(self.off_top)} diverged (off the top)" if self.off_top else ""))
