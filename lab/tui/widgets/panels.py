"""Small text panels of the run screen: the status bar and the per-layer table."""

from __future__ import annotations

import math

from rich.markup import escape
from rich.text import Text
from textual.widgets import Static

from lab.report.table import COLUMNS, layer_rows
from lab.sim.snapshot import Snapshot
from lab.tui.controls import schedule_name


def _fmt(x: float, spec: str) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def _pct(x: float) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x * 100:.0f}%"


class StatusBar(Static):
    """Scenario, step, speed, loss, lr and the run state, on one line."""

    DEFAULT_CSS = """
    StatusBar { height: 1; background: $boost; padding: 0 1; }
    """

    def show(self, snap: Snapshot, state: str, steps_per_s: float, speed_limit: int | None) -> None:
        s = snap.settings
        style = {"running": "bold green", "paused": "bold yellow", "diverged": "bold white on red",
                 "done": "bold cyan"}.get(state, "bold")
        speed = f"{steps_per_s:,.0f}/s" if state == "running" else "-"
        cap = "" if speed_limit is None else f"≤{speed_limit}/s"
        text = Text.assemble(
            (f" {state.upper()} ", style), " ",
            (f"step {snap.step:,}", "bold"), f" {speed}{cap}  ",
            f"loss {_fmt(snap.loss, '.4f')}  acc {_pct(snap.train_acc)}  val {_pct(snap.val_acc)}  ",
            (f"lr {snap.lr:.2g}", "bold"),
            f"  {s['activation']} {s['init']} {s['optimizer']} {schedule_name(s['schedule'])}"
            + (f" drop {s['dropout']:.1f} {s['dropout_mode']}" if s["dropout"] else "")
            + (" bn" if s["batchnorm"] else "") + (f" wd {s['weight_decay']:g}" if s["weight_decay"] else "")
            + (f" pre {'+'.join(s['preprocess'])}" if s["preprocess"] else ""),
            no_wrap=True, overflow="ellipsis")
        self.update(text)


class StatsPanel(Static):
    """The per-layer statistics, with dead and saturated layers highlighted.

    Built as plain aligned text, not a rich Table: a Table measures every cell twice per
    frame (for the layout's height and for the render), which cost more than all the
    histograms together.
    """

    DEFAULT_CSS = """
    StatsPanel { height: auto; max-height: 45%; padding: 0 1; text-wrap: nowrap; text-overflow: clip; }
    """
    COMPACT = (0, 1, 4, 5, 6, 7, 9)  # #, kind, std, grad, dead, sat, upd/w: for narrow columns

    def __init__(self, *args, compact: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.compact = compact

    def show(self, snap: Snapshot) -> None:
        keep = self.COMPACT if self.compact else range(len(COLUMNS))
        header = [COLUMNS[i] for i in keep]
        rows = [([cells[i] for i in keep], {j: styles[i] for j, i in enumerate(keep) if i in styles})
                for cells, styles in layer_rows(snap)]
        widths = [max(len(header[i]), *(len(cells[i]) for cells, _ in rows)) for i in range(len(header))]

        def line(cells: list[str], styles: dict[int, str], text: Text, bold: bool = False) -> None:
            for i, cell in enumerate(cells):
                padded = cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i])
                text.append(("  " if i else "") + padded, style="bold" if bold else styles.get(i, ""))
            text.append("\n")

        text = Text(no_wrap=True, overflow="crop")
        line(header, {}, text, bold=True)
        for cells, styles in rows:
            line(cells, styles, text)
        text.rstrip()
        self.update(text)


def diagnosis(snap: Snapshot) -> str:
    """The lecture's reading of a diverged run (markup)."""
    big_init = snap.settings["init"] in ("normal", "uniform", "constant") and (snap.settings["init_scale"] or 0) > 0.5
    cause = ("the initialisation is too large" if big_init else "the learning rate is too high")
    return (f"[b]Diverged at step {snap.diverged_at}[/b]: the loss or a weight became NaN/Inf. Most likely "
            f"{escape(cause)} (lr {snap.lr:.2g}). Lower the learning rate with [b]L[/b] and reset with [b]r[/b]; "
            "every change stays in the event log.")
