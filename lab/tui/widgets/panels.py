"""The run screen's text panels: the status line, the settings line, the message line and
the per-layer table.  Each renders what it is handed (a Snapshot and a little run state)."""

from __future__ import annotations

import math
import time

from rich.text import Text
from textual.widget import Widget
from textual.widgets import Static

from lab import pace as paces
from lab import vocabulary as V
from lab.report.table import fitting_columns, layer_rows
from lab.sim.snapshot import Snapshot
from lab.tui.controls import schedule_name

STATE_STYLES = {"running": "bold black on green", "paused": "bold black on yellow", "diverged": "bold white on red",
                "done": "bold black on cyan", "compiling": "bold black on magenta", "starting": "bold"}


def _fmt(x: float, spec: str) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def _pct(x: float) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x * 100:.0f}%"


def _g(x: float) -> str:
    """A setting's number, short: 0.1, 3e-04, 0."""
    return f"{x:.2g}" if x else "0"


def update_changed(widget: Static, content) -> None:
    """`widget.update(content)` unless it already shows exactly that.  Static.update repaints
    every time: the screens' frame timers (12.5/s) would otherwise resend an unchanged status
    line to the terminal over and over, kilobytes a second per student over SSH while paused."""
    if content != getattr(widget, "_nnlab_content", None):
        widget._nnlab_content = content
        widget.update(content)


class StatusBar(Static):
    """State, step of total, pace, loss and accuracy on one line."""

    DEFAULT_CSS = """
    StatusBar { height: 1; background: $boost; padding: 0 1 0 0; }
    """

    def show(self, snap: Snapshot, state: str, pace: float | None = None, steps_per_s: float = 0.0,
             total: int | None = None) -> None:
        total = snap.settings.get("steps", 0) if total is None else total
        step = f"step {snap.step:,}" + (f"/{total:,}" if total and snap.step <= total else
                                        f" (past {total:,})" if total else "")
        behind = state == "running" and pace is not None and 0 < steps_per_s < 0.8 * pace
        pace_text = f"pace {paces.describe(pace)}" + (f" (runs {steps_per_s:,.0f}/s)" if behind else "")
        if state == "running" and pace is None and steps_per_s:
            pace_text += f" {steps_per_s:,.0f}/s"
        text = Text.assemble(
            (f" {state.upper()} ", STATE_STYLES.get(state, "bold")), " ",
            (step, "bold"), "  ", (pace_text, "cyan"), "  ",
            f"loss {_fmt(snap.loss, '.4g')}  acc {_pct(snap.train_acc)}  val {_pct(snap.val_acc)}",
            no_wrap=True, overflow="ellipsis")
        update_changed(self, text)


def settings_segments(s: dict) -> list[tuple[str, str]]:
    """(key, setting) pairs of the settings line: every cause a key changes, with its key."""
    drop = f"dropout {_g(s['dropout'])}" + (f" {s['dropout_mode']}" if s["dropout"] else "")
    scheme = V.init(s["init"])
    init = s["init"] + (f" σ={s['init_std']:.2g}" if s.get("init_std") is not None and scheme.random else "") + (
        f" ({s['init_scale']:g})" if s.get("init_scale") is not None and scheme.absolute and not scheme.random else "")
    optimizer = s["optimizer"] + (f" {s['momentum']:g}" if V.optimizer(s["optimizer"]).momentum else "")
    segments = [("l/L", f"lr {s['lr']:.3g}"), ("s", schedule_name(s["schedule"])), ("a", s["activation"]),
                ("i", init), ("d/D m", drop), ("b", "batchnorm" if s["batchnorm"] else "no batchnorm"),
                ("o", optimizer), ("p", "pre " + ("+".join(s["preprocess"]) or "none")),
                ("w", f"wd {_g(s['weight_decay'])}")]
    extra = [f"l2 {_g(s['l2'])}" if s.get("l2") else "", f"l1 {_g(s['l1'])}" if s.get("l1") else "",
             f"clip {_g(s['clip_norm'])}" if s.get("clip_norm") else "",
             f"dropconnect {_g(s['dropconnect'])}" if s.get("dropconnect") else "",
             f"MC {s['mc_samples']} masks" if s.get("mc_samples") else ""]
    segments.append(("x/X", f"batch {s['batch_size']}"))
    segments += [("", e) for e in extra if e]
    if s.get("transfer"):  # transfer learning: the phase first, where it is seen (lab/transfer)
        t = s["transfer"]
        acc = t.get("source_val_acc")
        kept = f", source acc {acc * 100:.0f}%" if acc is not None and acc == acc else ""
        segments.insert(0, ("t f/F u", t["label"] + kept))
    return segments


class SettingsBar(Widget):
    """Every setting a key changes, with its key, on one line or two: never cut, at 80 columns too."""

    DEFAULT_CSS = """
    SettingsBar { height: auto; max-height: 3; padding: 0 1; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.settings: dict | None = None
        self.origin = ""  # where the run came from (a search's trial), shown first

    def show(self, settings: dict) -> None:
        if settings != self.settings:
            self.settings = settings
            self.refresh(layout=True)

    def lines(self, width: int) -> list[Text]:
        if not self.settings:
            return [Text("")]
        lines: list[Text] = [Text(no_wrap=True, overflow="crop")]
        used = 0
        if self.origin:
            origin = self.origin if len(self.origin) <= width else self.origin[:width - 1] + "…"
            lines[-1].append(origin, "bold magenta")
            used = len(origin)
        for key, value in settings_segments(self.settings):
            size = (len(key) + 1 if key else 0) + len(value)
            if used and used + 2 + size > width:
                lines.append(Text(no_wrap=True, overflow="crop"))
                used = 0
            line = lines[-1]
            if used:
                line.append("  ")
                used += 2
            if key:
                line.append(key, "bold cyan")
                line.append(" ")
            line.append(value, "bold" if key else "dim")
            used += size
        return lines

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(self.lines(width))

    def render(self) -> Text:
        return Text("\n").join(self.lines(max(20, self.size.width)))


class MessageLine(Static):
    """The one place notices go: the latest replaces the one before, never covering the data."""

    DEFAULT_CSS = """
    MessageLine { height: 1; padding: 0 1; color: $text-muted; }
    MessageLine.-error { color: $error; text-style: bold; }
    MessageLine.-change { color: $warning; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.message = ""
        self.at = 0.0

    def say(self, message: str, kind: str = "info") -> None:
        self.message = message
        self.at = time.monotonic()
        for k in ("error", "change"):
            self.set_class(kind == k, f"-{k}")
        self.update(Text(message, no_wrap=True, overflow="ellipsis"))


class StatsPanel(Static):
    """The per-layer table for the layers on the current page.

    Built as plain aligned text, not a rich Table: a Table measures every cell twice per
    frame (for the layout's height and for the render), which cost more than all the
    histograms together.  Columns that do not fit are dropped, least telling first, but
    the ones the scenario's claims are about stay.
    """

    DEFAULT_CSS = """
    StatsPanel { height: auto; padding: 0 1; text-wrap: nowrap; text-overflow: clip;
                 border-title-align: right; border-subtitle-align: left; }
    """

    def __init__(self, *args, wanted: tuple[str, ...] = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.wanted = wanted  # metrics the scenario's expectations name

    def show(self, snap: Snapshot, layers: list[int], marker: str = "") -> None:
        width = max(20, self.size.width) if self.size.width else 78  # size is inside the padding
        columns = fitting_columns(width, snap, layers, self.wanted)
        header = [c.header for c in columns]
        rows = layer_rows(snap, layers, columns)
        widths = [max(len(c.header), c.width, *(len(cells[i]) for cells, _ in rows)) for i, c in enumerate(columns)]

        def line(cells: list[str], styles: dict[int, str], text: Text, bold: bool = False) -> None:
            for i, cell in enumerate(cells):
                padded = cell.ljust(widths[i]) if columns[i].header in ("#", "kind") else cell.rjust(widths[i])
                text.append(("  " if i else "") + padded, style="bold" if bold else styles.get(i, ""))

        text = Text(no_wrap=True, overflow="crop")
        line(header, {}, text, bold=True)
        # the page marker sits on the panel's top border: always in sight, never cut by the table
        self.border_title = marker or None
        for cells, styles in rows:
            text.append("\n")
            line(cells, styles, text)
        self.update(text)


def diagnosis(snap: Snapshot) -> str:
    """The lecture's reading of a diverged run, in one short line (the event log has it too)."""
    s = snap.settings
    big_init = V.init(s["init"]).absolute and (s["init_scale"] or 0) > 0.5
    if big_init:
        return f"Diverged at step {snap.diverged_at} (NaN/Inf): init too large? i re-initialises, r replays."
    return f"Diverged at step {snap.diverged_at} (NaN/Inf): lr {snap.lr:.2g} too high? L lowers it, r replays."
