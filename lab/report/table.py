"""Rich tables of a Snapshot: the run summary and the per-layer statistics."""

from __future__ import annotations

import math

from rich import box
from rich.table import Table

from lab.sim.snapshot import Snapshot

DEAD_ALERT = 0.5
SATURATED_ALERT = 0.5


def _num(x: float, fmt: str = "{:.3g}") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def _pct(x: float) -> str:
    return _num(x * 100, "{:.0f}%") if not math.isnan(x) else "-"


def summary_table(snap: Snapshot, steps_per_s: float | None = None) -> Table:
    t = Table(show_header=False, box=None, pad_edge=False)
    state = f"[bold red]diverged at step {snap.diverged_at}[/]" if snap.diverged else "ok"
    rows = [("step", str(snap.step)), ("loss", _num(snap.loss, "{:.4f}")), ("train acc", _pct(snap.train_acc)),
            ("val loss", _num(snap.val_loss, "{:.4f}")), ("val acc", _pct(snap.val_acc)), ("lr", _num(snap.lr)),
            ("grad norm", _num(snap.grad_norm)), ("state", state)]
    if steps_per_s is not None:
        rows.append(("steps/s", f"{steps_per_s:,.0f}"))
    for k, v in rows:
        t.add_row(f"[dim]{k}[/]", v)
    return t


CAPTION = ("dead: f'(z)<1e-3 on every probe example   sat: |tanh|>.99 / sigmoid<.01|>.99   "
           "~0: |a|<1e-3   upd/w: ||dW||/||W|| (aim ~1e-3)   sign: grad sign agreement   sim: unit similarity")


COLUMNS = ("#", "kind", "units", "mean", "std", "grad", "dead", "sat", "~0", "upd/w", "sign", "sim")


def layer_rows(snap: Snapshot) -> list[tuple[list[str], dict[int, str]]]:
    """Per layer: the cells of COLUMNS, and {column: style} for the flagged ones (dead, saturated)."""
    rows = []
    for s in snap.layers:
        cells = [str(s.index), s.kind, str(s.width), _num(s.act_mean, "{:.2g}"), _num(s.act_std, "{:.2g}"),
                 _num(s.grad_std, "{:.1e}"), _pct(s.dead_fraction), _pct(s.saturated_fraction),
                 _pct(s.zero_fraction), _num(s.update_ratio, "{:.1e}"), _num(s.sign_agreement, "{:.2f}"),
                 _num(s.unit_similarity, "{:.2f}")]
        styles = {}
        if s.dead_fraction >= DEAD_ALERT:
            styles[6] = "bold red"
        if s.saturated_fraction >= SATURATED_ALERT:
            styles[7] = "bold yellow"
        rows.append((cells, styles))
    return rows


def layer_table(snap: Snapshot, caption: bool = True) -> Table:
    """One row per layer; dead and saturated layers are highlighted."""
    t = Table(title="per layer: activations, gradients, flags" if caption else None, title_justify="left",
              pad_edge=False, box=box.SIMPLE_HEAD, padding=(0, 0, 0, 1), show_edge=False,
              caption=CAPTION if caption else None, caption_justify="left")
    for col in COLUMNS:
        t.add_column(col, justify="left" if col in ("#", "kind") else "right", no_wrap=True, min_width=len(col))
    for cells, styles in layer_rows(snap):
        t.add_row(*[f"[{styles[i]}]{c}[/]" if i in styles else c for i, c in enumerate(cells)])
    return t
