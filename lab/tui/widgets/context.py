"""The context panel: the scenario's explanation, the event log, and four views that
explain a run: the decision boundary (2-D data), the path of two weights (the zigzag),
the learning-rate schedule, and what each activation costs to compute (measured here).
`v` cycles through them; ↑/↓ scroll the text views."""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Container, VerticalScroll
from textual.widgets import ContentSwitcher, Markdown, Static
from textual_plotext import PlotextPlot

from lab.engine.activation_cost import ActivationCosts
from lab.sim.context import DecisionGrid, LrCurve, Wanted
from lab.sim.snapshot import Snapshot
from lab.tui.controls import describe_change

from .curves import step_ticks, thin

VIEWS = ("explain", "events", "boundary", "path", "lr", "cost")
VIEW_TITLES = {"explain": "what to watch", "events": "event log, newest first", "boundary": "decision boundary",
               "path": "weight path W1[0,0] vs W1[1,0]", "lr": "learning-rate schedule",
               "cost": "activation cost"}
SCROLLING = {"explain": "explain-scroll", "events": "events-scroll", "cost": "cost-scroll"}
REGION = ("#5f0000", "#005f00", "#00005f", "#5f5f00", "#5f005f", "#005f5f", "#3a3a3a", "#875f00", "#005f87",
          "#5f0087")
POINT = ("bright_red", "bright_green", "bright_blue", "bright_yellow", "bright_magenta", "bright_cyan", "white",
         "orange1", "deep_sky_blue1", "medium_purple1")


class Boundary(Static):
    """Background colour = predicted class; dots = training examples in their class colour."""

    def draw(self, grid: DecisionGrid | None) -> None:
        """Draw the grid the worker took (lab.sim.context) at the size it was taken."""
        if grid is None:
            self.update(Text("taking the decision boundary...", style="dim"))
            return
        if grid.classes is None:
            self.update(Text(f"The decision boundary needs 2-D inputs; this data set has "
                             f"{grid.features} features.", style="dim"))
            return
        nx, ny = grid.width, grid.height
        xs, ys, classes = grid.xs, grid.ys, grid.classes
        X, y = grid.X, grid.y
        cx = np.clip(np.round((X[:, 0] - xs[0]) / (xs[-1] - xs[0]) * (nx - 1)).astype(int), 0, nx - 1)
        cy = np.clip(np.round((ys[0] - X[:, 1]) / (ys[0] - ys[-1]) * (ny - 1)).astype(int), 0, ny - 1)
        dots = {(r, c): int(label) for r, c, label in zip(cy, cx, y)}
        text = Text(no_wrap=True, overflow="crop")
        for r in range(ny):
            for c in range(nx):
                bg = REGION[classes[r, c] % len(REGION)]
                if (r, c) in dots:
                    text.append("●", style=f"{POINT[dots[(r, c)] % len(POINT)]} on {bg}")
                else:
                    text.append(" ", style=f"on {bg}")
            if r < ny - 1:
                text.append("\n")
        self.update(text)


def event_log(snap: Snapshot) -> Text:
    """Every change of the run, newest first, so the latest is always in sight."""
    text = Text(no_wrap=False)
    if snap.diverged:
        text.append(f"step {snap.diverged_at:>6}  DIVERGED (loss or a weight became NaN/Inf)\n", style="bold red")
    if not snap.events:
        text.append("No changes yet. Keys: l/L lr, i init, a activation, d/D dropout, m mode, b batchnorm, "
                    "o optimizer, s schedule, p preprocessing, w weight decay, r replay.", style="dim")
    for e in reversed(snap.events):
        who = {"user": "you", "kept": "yours, kept through a reset"}.get(e.source, "scenario")
        text.append(f"step {e.step:>6}  ", style="bold")
        text.append(describe_change(e.changes), style="red" if e.source != "scenario" else "")
        text.append(f"  ({who})\n", style="dim")
    return text


def cost_chart(costs: ActivationCosts | None, in_use: set[str], width: int) -> Text:
    """One bar per activation: forward + backward nanoseconds per value, the run's own in bold."""
    if costs is None:
        return Text("timing the activation kernels…", style="dim")
    total = costs.forward_ns + costs.backward_ns
    label_w, tail_w = max(len(n) for n in costs.names) + 3, len(" 12.6 ns  32.3x relu")
    bar_w = max(4, min(60, width - label_w - tail_w - 2))
    out = Text()
    for name, ns in zip(costs.names, total):
        mine = name in in_use
        cells = max(1, round(bar_w * ns / total.max()))
        out.append(("▶ " if mine else "  ") + name.ljust(label_w - 2), "bold" if mine else "")  # a space after
        out.append("█" * cells, "bold orange1" if mine else "orange3")
        out.append(" " * (bar_w - cells) + f" {ns:4.1f} ns  {costs.ratio(name):4.1f}x relu\n",
                   "bold" if mine else "dim")
    out.append(f"forward + backward per value, {costs.dtype}, {costs.values:,} values a call (fastest of "
               "several rounds). Sigmoid, tanh, ELU, SELU and GELU evaluate exp/erf; ReLU is a compare.",
               style="dim")
    return out


def path_caption(snap: Snapshot) -> str:
    if snap.settings.get("inputs_positive"):
        return "o start  x now: the inputs are all positive, so both weights always move the same way"
    return "o start  x now: two weights into one unit (a zigzag needs all-positive inputs)"


class ContextPanel(Container):
    DEFAULT_CSS = """
    ContextPanel { height: 1fr; min-height: 4; border-top: solid $primary; }
    ContextPanel #ctx-title { height: 1; color: $text-muted; padding: 0 1; }
    ContextPanel ContentSwitcher { height: 1fr; }
    ContextPanel VerticalScroll { scrollbar-size-vertical: 1; }
    ContextPanel Markdown { margin: 0; padding: 0 1; }
    ContextPanel #events, ContextPanel #cost { padding: 0 1; }
    """

    def __init__(self, explain: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.explain = explain or "_This scenario has no explanation._"
        self.view = "explain"

    def compose(self) -> ComposeResult:
        yield Static(id="ctx-title")
        with ContentSwitcher(initial="explain-scroll"):
            with VerticalScroll(id="explain-scroll", can_focus=False):
                yield Markdown(self.explain, id="explain")
            with VerticalScroll(id="events-scroll", can_focus=False):
                yield Static(id="events")
            yield Boundary(id="boundary")
            yield PlotextPlot(id="path")
            yield PlotextPlot(id="lr")
            with VerticalScroll(id="cost-scroll", can_focus=False):
                yield Static(id="cost")

    def on_mount(self) -> None:
        self._title()

    def _title(self) -> None:
        names = "  ".join(f"[b]{v}[/b]" if v == self.view else v for v in VIEWS)
        scroll = "  ↑↓ scroll" if self.view in SCROLLING else ""
        self.query_one("#ctx-title", Static).update(f"{VIEW_TITLES[self.view]}   [dim]v: {names}{scroll}[/dim]")

    def cycle(self) -> str:
        self.view = VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]
        self.query_one(ContentSwitcher).current = SCROLLING.get(self.view, self.view)
        self._title()
        return self.view

    def scroll(self, lines: int) -> None:
        if self.view in SCROLLING:
            self.query_one(f"#{SCROLLING[self.view]}", VerticalScroll).scroll_relative(y=lines * 3, animate=False)

    def wanted(self) -> Wanted:
        """What the worker is to take for the view shown (and the size it is drawn at)."""
        if self.view != "boundary":
            return Wanted(self.view)
        area = self.query_one(ContentSwitcher).size  # the boundary's own size is 0 until first shown
        return Wanted(self.view, max(8, max(20, area.width)), max(4, area.height))

    def show(self, snap: Snapshot, boundary: DecisionGrid | None = None, lr: LrCurve | None = None,
             costs: ActivationCosts | None = None) -> None:
        """Draw the view shown from what the worker published: the Snapshot, and the
        decision grid, the lr curve or the activation costs taken beside it (lab.sim.context)."""
        if self.view == "events":
            self.query_one("#events", Static).update(event_log(snap))
        elif self.view == "boundary":
            self.query_one(Boundary).draw(boundary)
        elif self.view == "path":
            self._path(snap)
        elif self.view == "lr" and lr is not None:
            self._lr(snap, lr)
        elif self.view == "cost":
            activation = snap.settings.get("activation")
            in_use = set(activation) if isinstance(activation, (list, tuple)) else {activation}
            width = self.query_one(ContentSwitcher).size.width or 80
            self.query_one("#cost", Static).update(cost_chart(costs, in_use, width - 2))

    def _path(self, snap: Snapshot) -> None:
        plot = self.query_one("#path", PlotextPlot)
        h = snap.history
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        a, b = h["w_a"][-400:], h["w_b"][-400:]
        if a.size:
            plt.plot(a.tolist(), b.tolist(), marker="braille", color="cyan")
            plt.scatter([float(a[0])], [float(b[0])], marker="o", color="white")
            plt.scatter([float(a[-1])], [float(b[-1])], marker="x", color="red")
            plt.xlabel("W1[0,0]")
            plt.ylabel("W1[1,0]")
        plt.title(path_caption(snap))
        plot.refresh()

    def _lr(self, snap: Snapshot, lr: LrCurve) -> None:
        """The lr from step 0 to the run's horizon under the schedule in force now: what will happen."""
        plot = self.query_one("#lr", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        schedule = snap.settings["schedule"]
        horizon = lr.horizon
        x, y = thin(lr.steps.astype(float), lr.lrs)
        plt.plot(x, y, marker="braille", color="orange")
        plt.vline(snap.step, color="red")
        plt.xticks(step_ticks(horizon))
        start = f", from step {schedule['start']}" if schedule["start"] else ""
        plt.title(f"lr now {snap.lr:.3g}, red line = this step ({schedule['kind']}{start})")
        plot.refresh()
