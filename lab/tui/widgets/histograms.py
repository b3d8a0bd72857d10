"""The overview grid: every layer's activation and gradient histograms, side by side.

Toggle (`h`) to weights and last updates.  Bin edges are fixed per layer kind (see
lab.sim.bins), so the frames of a run, and two runs, compare honestly.
"""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from lab.sim.snapshot import Snapshot

from .bars import block_rows

LABEL = 12


def _range_label(edges, symlog: bool) -> str:
    if symlog:
        return f"{edges[0]:.0e} … 0 … {edges[-1]:.0e}"
    return f"{edges[0]:.3g} … {edges[-1]:.3g}"


class HistogramGrid(Widget):
    """Rows of layers; columns: activations | gradients (or weights | updates)."""

    DEFAULT_CSS = """
    HistogramGrid { height: 1fr; min-height: 4; padding: 0 1; }
    """
    mode: reactive[str] = reactive("activity")  # "activity" (act | grad) or "weights" (W | dW)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.snapshot: Snapshot | None = None

    def show(self, snap: Snapshot) -> None:
        self.snapshot = snap
        self.refresh()

    def toggle(self) -> None:
        self.mode = "weights" if self.mode == "activity" else "activity"

    def render(self) -> Text:
        snap = self.snapshot
        text = Text(no_wrap=True, overflow="crop")
        if snap is None or not snap.layers:
            return text
        width, height = self.size.width - 2, self.size.height
        col = max(8, (width - LABEL - 3) // 2)
        rows = max(1, min(4, (height - 2) // len(snap.layers)))
        left, right = ("activations", "gradients dL/da (symlog)") if self.mode == "activity" else (
            "weights W (symlog)", "last update dW (symlog)")
        text.append(" " * LABEL + left.ljust(col)[:col] + " │ " + right[:col] + "\n", style="bold")
        for s in snap.layers:
            if self.mode == "activity":
                a_rows = block_rows(s.act_hist, col, rows)
                b_rows = block_rows(s.grad_hist, col, rows)
            else:
                a_rows = block_rows(s.weight_hist, col, rows)
                b_rows = block_rows(s.update_hist, col, rows)
            flag = "red" if s.dead_fraction >= 0.5 else "yellow" if s.saturated_fraction >= 0.5 else ""
            for r in range(rows):
                label = f"{s.index} {s.kind}"[:LABEL - 1].ljust(LABEL) if r == rows - 1 else " " * LABEL
                text.append(label, style=f"bold {flag}".strip())
                text.append(a_rows[r], style="green" if self.mode == "activity" else "cyan")
                text.append(" │ ")
                text.append(b_rows[r] + "\n", style="magenta" if self.mode == "activity" else "blue")
        first = snap.layers[0]
        a_edges, b_edges = (first.act_edges, first.grad_edges) if self.mode == "activity" else (
            first.value_edges, first.value_edges)
        a_label = "per-kind fixed range" if self.mode == "activity" and len(
            {s.kind for s in snap.layers}) > 1 else _range_label(a_edges, self.mode != "activity")
        text.append(" " * LABEL + a_label.ljust(col)[:col] + "   " + _range_label(b_edges, True)[:col], style="dim")
        return text
