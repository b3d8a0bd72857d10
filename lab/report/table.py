"""The per-layer table and the run summary, from a Snapshot.

`LAYER_COLUMNS` declares each column once: its header, the LayerStats metric it shows,
its format, what it means (the help screen and the report caption use these words) and
when it is flagged.  The TUI's table, the headless report and the compare screen all
render from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from rich import box
from rich.table import Table

from lab import vocabulary as V
from lab.sim.snapshot import LayerStats, Snapshot

DEAD_ALERT = V.DEAD_ALERT
SATURATED_ALERT = V.SATURATED_ALERT


def _num(x: float, fmt: str = "{:.3g}") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def _pct(x: float) -> str:
    return "-" if x is None or math.isnan(x) else f"{x * 100:.0f}%"


@dataclass(frozen=True)
class Column:
    header: str
    metric: str  # the LayerStats field shown ("" for #, kind)
    cell: Callable[[LayerStats], str]
    meaning: str  # one line for the help screen and the report's caption
    alert: Callable[[LayerStats], str] = lambda s: ""  # a style when the value is a warning sign
    brief: str = ""  # a few words for the headless report's caption
    # the widest cell a usual value makes ("-1.2e-05"): the columns that fit are chosen by it,
    # not by the current values, so a column does not come and go between frames
    width: int = 0


def _metric_column(m: V.Metric) -> Column:
    """A per-layer metric's column, as its vocabulary entry describes it."""
    name = m.name
    if m.fmt == "%":
        cell = lambda s: _pct(getattr(s, name))  # noqa: E731
    else:
        cell = lambda s: _num(getattr(s, name), m.fmt)  # noqa: E731
    alert = lambda s: ""  # noqa: E731
    if m.alert is not None:
        threshold, style = m.alert
        alert = lambda s: style if getattr(s, name) >= threshold else ""  # noqa: E731
    return Column(m.header, name, cell, m.doc, alert, m.brief, m.width)


LAYER_COLUMNS: tuple[Column, ...] = (
    Column("#", "", lambda s: str(s.index), "layer number: 1 = first hidden layer, the last is the output",
           width=2),
    Column("kind", "", lambda s: s.kind, "activation of the layer (output: the scores)"),
    Column("units", "", lambda s: str(s.width), "units in the layer", width=5),
    *(_metric_column(m) for m in V.table_metrics()),
)
COLUMNS = tuple(c.header for c in LAYER_COLUMNS)
# the order columns are dropped in when the table does not fit, least telling first
# (a metric whose drop priority is negative goes before the units column)
DROP_ORDER = tuple(h for _, h in sorted([(-0.5, "units"), *((m.drop, m.header) for m in V.table_metrics())],
                                        key=lambda pair: pair[0]))
CAPTION = "   ".join(f"{c.header}: {c.brief}" for c in LAYER_COLUMNS if c.brief)


def layer_rows(snap: Snapshot, layers: list[int] | None = None,
               columns: tuple[Column, ...] = LAYER_COLUMNS) -> list[tuple[list[str], dict[int, str]]]:
    """Per layer (all, or the given 1-based numbers): the cells of `columns`, and {column: style}
    for the flagged ones."""
    chosen = snap.layers if layers is None else [snap.layers[i - 1] for i in layers]
    frozen = ((snap.settings or {}).get("transfer") or {}).get("frozen", 0)  # transfer: lower layers frozen
    kind = next((i for i, c in enumerate(columns) if c.header == "kind"), None)
    rows = []
    for s in chosen:
        cells = [c.cell(s) for c in columns]
        styles = {i: style for i, c in enumerate(columns) if (style := c.alert(s))}
        if s.index <= frozen and kind is not None:
            cells[kind] += FROZEN_MARK
            styles[kind] = "bold blue"
        rows.append((cells, styles))
    return rows


FROZEN_MARK = " frozen"  # after the kind of a layer transfer learning keeps fixed


def fitting_columns(width: int, snap: Snapshot, layers: list[int], wanted: tuple[str, ...] = (),
                    gap: int = 2) -> tuple[Column, ...]:
    """The columns that fit in `width` characters, dropping the least telling first but
    keeping the metrics in `wanted` (the ones the scenario's claims are about) as long as possible."""
    keep = list(LAYER_COLUMNS)
    order = [h for h in DROP_ORDER if not any(c.header == h and c.metric in wanted for c in LAYER_COLUMNS)]
    order += [h for h in DROP_ORDER if h not in order]

    def needed(cols) -> int:
        rows = layer_rows(snap, layers, tuple(cols))
        widths = [max(len(c.header), c.width, *(len(r[0][i]) for r in rows)) for i, c in enumerate(cols)]
        return sum(widths) + gap * (len(cols) - 1)

    for header in order:
        if needed(keep) <= width:
            break
        keep = [c for c in keep if c.header != header]
    return tuple(keep)


def summary_table(snap: Snapshot, steps_per_s: float | None = None) -> Table:
    t = Table(show_header=False, box=None, pad_edge=False)
    state = f"[bold red]diverged at step {snap.diverged_at}[/]" if snap.diverged else "ok"
    rows = [("step", str(snap.step)), ("loss", _num(snap.loss, "{:.4f}")), ("train acc", _pct(snap.train_acc)),
            ("val loss", _num(snap.val_loss, "{:.4f}")), ("val acc", _pct(snap.val_acc)), ("lr", _num(snap.lr)),
            ("grad norm", _num(snap.grad_norm)), ("state", state)]
    if steps_per_s is not None:
        rows.append(("steps/s", f"{steps_per_s:,.0f}"))
    if math.isfinite(snap.metric(V.MC_VAL_ACC)):  # dropout as an ensemble (train.mc_samples > 0)
        masks = snap.settings.get("mc_samples", 0)
        rows[5:5] = [(f"MC val loss ({masks} masks)", _num(snap.metric(V.MC_VAL_LOSS), "{:.4f}")),
                     ("MC val acc", _pct(snap.metric(V.MC_VAL_ACC))),
                     ("MC gap |p_mc-p|", _num(snap.metric(V.MC_GAP), "{:.4f}")),
                     ("MC score gap", _num(snap.metric(V.MC_SCORE_GAP), "{:.4f}"))]
    transfer = (snap.settings or {}).get("transfer")
    if transfer:  # transfer learning: the phase and how much of the source task is kept
        rows += [("phase", transfer["label"]), ("source val acc", _pct(transfer["source_val_acc"])),
                 ("weights", transfer["origin"])]
    for k, v in rows:
        t.add_row(f"[dim]{k}[/]", v)
    return t


def layer_table(snap: Snapshot, caption: bool = True, width: int | None = None) -> Table:
    """One row per layer; dead and saturated layers are highlighted.  With `width`, only the
    columns that fit in it (the least telling dropped first, as on the run screen)."""
    columns = LAYER_COLUMNS if width is None else fitting_columns(width, snap, list(range(1, len(snap.layers) + 1)),
                                                                  gap=1)
    text = "   ".join(f"{c.header}: {c.brief}" for c in columns if c.brief)
    t = Table(title="per layer: activations, gradients, flags" if caption else None, title_justify="left",
              pad_edge=False, box=box.SIMPLE_HEAD, padding=(0, 0, 0, 1), show_edge=False,
              caption=text if caption else None, caption_justify="left")
    for col in columns:
        t.add_column(col.header, justify="left" if col.header in ("#", "kind") else "right", no_wrap=True,
                     min_width=len(col.header))
    for cells, styles in layer_rows(snap, columns=columns):
        t.add_row(*[f"[{styles[i]}]{c}[/]" if i in styles else c for i, c in enumerate(cells)])
    return t
