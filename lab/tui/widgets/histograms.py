"""The overview grid: the activation and gradient histograms of the layers on the current
page, side by side, with value axes.

Toggle (`h`) to weights and last updates.  Bin edges are fixed per layer kind (see
lab.sim.bins), so the frames of a run, and two runs, compare honestly.  A layer whose
activation bins differ from the axis drawn (the output's scores next to tanh layers)
says its range in its label.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from lab.sim.snapshot import LayerStats, Snapshot

from .bars import axis, block_rows, tick_label


def _range(edges: np.ndarray) -> str:
    lo, hi = float(edges[0]), float(edges[-1])
    return f"±{tick_label(hi, False)}" if lo == -hi else f"{tick_label(lo, False)}..{tick_label(hi, False)}"


class HistogramGrid(Widget):
    """Rows of layers; columns: activations | gradients (or weights | updates)."""

    DEFAULT_CSS = """
    HistogramGrid { height: 1fr; min-height: 4; padding: 0 1; }
    """
    mode: reactive[str] = reactive("activity")  # "activity" (act | grad) or "weights" (W | dW)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.snapshot: Snapshot | None = None
        self.numbers: list[int] = []
        self.marker = ""

    def show(self, snap: Snapshot, layers: list[int] | None = None, marker: str = "") -> None:
        self.snapshot = snap
        self.numbers = list(layers) if layers is not None else [s.index for s in snap.layers]
        self.marker = marker
        self.refresh()

    def toggle(self) -> None:
        self.mode = "weights" if self.mode == "activity" else "activity"

    def rows_per_layer(self, height: int | None = None) -> int:
        height = self.size.height if height is None else height
        return max(1, min(4, (height - 2) // max(1, len(self.numbers))))

    def _columns(self, s: LayerStats) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(left counts, left edges, right counts, right edges) of a layer in the current mode."""
        if self.mode == "activity":
            return s.act_hist, s.act_edges, s.grad_hist, s.grad_edges
        return s.weight_hist, s.value_edges, s.update_hist, s.value_edges

    def render(self) -> Text:
        snap = self.snapshot
        text = Text(no_wrap=True, overflow="crop")
        if snap is None or not snap.layers or not self.numbers:
            return text
        shown = [snap.layers[i - 1] for i in self.numbers]
        width = self.size.width  # (inside the padding)
        # the axis is drawn for the most common activation range; other ranges go in the labels
        common = Counter(tuple(self._columns(s)[1][[0, -1]]) for s in shown).most_common(1)[0][0]
        labels = []
        for s in shown:
            label = f"{s.index} {s.kind}"
            left_edges = self._columns(s)[1]
            if tuple(left_edges[[0, -1]]) != common:
                label += f" {_range(left_edges)}"
            labels.append(label)
        label_w = min(16, max(8, max(len(lab) for lab in labels) + 1))
        col = max(8, (width - label_w - 3) // 2)
        rows = self.rows_per_layer()
        symlog_left = self.mode != "activity"
        wide = col >= 26
        left, right = (("activations", "gradients dL/da (symlog)" if wide else "gradients dL/da")
                       if self.mode == "activity" else
                       ("weights W (symlog)" if wide else "weights W", "last update dW (symlog)" if wide else "updates dW"))
        head = " " * label_w + left.ljust(col)[:col] + " │ " + right[:col]
        if self.marker:
            room = width - len(head) - 2
            head = head.ljust(width - len(self.marker)) + self.marker if room >= len(self.marker) else head
        text.append(head + "\n", style="bold")
        flagged = {"red": lambda s: s.dead_fraction >= 0.5, "yellow": lambda s: s.saturated_fraction >= 0.5}
        for s, label in zip(shown, labels):
            lc, _, rc, _ = self._columns(s)
            a_rows, b_rows = block_rows(lc, col, rows), block_rows(rc, col, rows)
            flag = next((colour for colour, test in flagged.items() if test(s)), "")
            for r in range(rows):
                name = label[:label_w - 1].ljust(label_w) if r == rows - 1 else " " * label_w
                text.append(name, style=f"bold {flag}".strip())
                text.append(a_rows[r], style="green" if self.mode == "activity" else "cyan")
                text.append(" │ ")
                text.append(b_rows[r] + "\n", style="magenta" if self.mode == "activity" else "blue")
        first = shown[0]
        _, left_edges, _, right_edges = self._columns(first)
        left_edges = next(e for s in shown if tuple((e := self._columns(s)[1])[[0, -1]]) == common)
        text.append(" " * label_w + axis(left_edges, col, symlog_left) + "   " + axis(right_edges, col, True),
                    style="dim")
        return text
