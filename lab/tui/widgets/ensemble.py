"""The ensemble view's panels: a table of the members (the best marked) with the average member
and the ensemble under them, and one chart of every member and the ensemble over time.
Both render what they are handed: an EnsembleFrame (lab/tui/ensemble_lockstep.py)."""

from __future__ import annotations

import math

import numpy as np
from rich.text import Text
from textual.widget import Widget
from lab.tui.widgets.throttled import ThrottledPlot

from lab.tui.ensemble_lockstep import EnsembleFrame

from .curves import step_ticks
from .variants import color_of

ENSEMBLE_COLOR = 208  # orange: the ensemble's line and row
ENSEMBLE_MARKER = "█"
MEMBER_MARKER = "·"
RUN_MARKER = "-"  # snapshot mode: the run itself
RUN_COLOR = 244
BAR = 12  # cells of the accuracy bar on a wide terminal


def _pct(x: float) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{100 * x:.1f}%"


def _loss(x: float) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.3f}"


def nice_ticks(lo: float, hi: float, most: int = 5) -> list[float]:
    """Ticks at round multiples (1, 2, 2.5 or 5 times a power of ten) between lo and hi, at most `most`."""
    span = hi - lo
    if span <= 0:
        return [lo]
    power = 10 ** math.floor(math.log10(span / most))
    for factor in (1, 2, 2.5, 5, 10):
        step = factor * power
        if span / step <= most - 1:
            break
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


class MemberTable(Widget):
    """One line per member (name, seed or step taken, val acc, val loss, a bar on wide terminals), the
    best in bold green with a star; then the average member and the ensemble.  Many members on a
    short terminal: the best and the first ones, and a line saying how many are left out."""

    DEFAULT_CSS = """
    MemberTable { height: auto; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.frame: EnsembleFrame | None = None
        self.budget = 12  # rows it may take

    def show(self, frame: EnsembleFrame) -> None:
        self.frame = frame
        self.styles.height = min(self.budget, len(frame.names) + 4)
        self.refresh()

    def render(self) -> Text:
        frame = self.frame
        if frame is None:
            return Text("building the members…", style="dim")
        width = self.size.width or 80
        K = len(frame.names)
        room = max(1, min(self.budget, K + 4) - 4)  # member lines that fit (header, average, ensemble, gain)
        best = frame.best()
        shown = list(range(K))
        if room < K:  # the first members, one line for the rest, and the best always among them
            shown = list(range(max(1, room - 1)))
            if best is not None and best not in shown:
                shown[-1] = best
        name_w = max(8, max(len(n) for n in frame.names) + 2)
        label_w = max(len(lbl) for lbl in frame.labels)
        bar = BAR if width >= name_w + label_w + 2 + 7 + 7 + BAR + 8 else 0
        acc = frame.member_acc[-1] if frame.steps.size else np.full(K, np.nan)
        loss = frame.member_loss[-1] if frame.steps.size else np.full(K, np.nan)
        out = Text(no_wrap=True, overflow="ellipsis")
        head = f"{'member':<{name_w}}{'':<{label_w}}  {'val acc':>7} {'loss':>7}"
        out.append(head + "\n", style="bold")

        def line(name: str, label: str, a: float, lo: float, style: str, mark: str = "") -> None:
            cells = f"{(name + mark):<{name_w}}{label:<{label_w}}  {_pct(a):>7} {_loss(lo):>7}"
            out.append(cells, style=style)
            if bar and math.isfinite(a):
                filled = int(round(a * bar))
                out.append(" " + "█" * filled + "░" * (bar - filled), style=style or "dim")
            out.append("\n")

        for k in shown:
            is_best = k == best
            color = f"color({color_of(k)})"
            line(frame.names[k], frame.labels[k], acc[k], loss[k], "bold green" if is_best else color,
                 " *" if is_best else "")
        if len(shown) < K:
            out.append(f"… {K - len(shown)} more member(s) (a taller terminal shows them)\n", style="dim")
        line("average", "", frame.last("member_val_acc_mean"), frame.last("member_val_loss_mean"), "")
        how = "mean" if frame.combine == "mean" else "vote"
        line("ensemble", f"({how})"[:label_w] if label_w >= 6 else "", frame.last("ensemble_val_acc"),
             frame.last("ensemble_val_loss"), f"bold color({ENSEMBLE_COLOR})")
        gain_mean, gain_best = frame.last("ensemble_gain_mean"), frame.last("ensemble_gain_best")
        if math.isfinite(gain_mean):
            out.append(f"ensemble vs average {100 * gain_mean:+.1f} pts, vs best member {100 * gain_best:+.1f} pts",
                       style="bold" if gain_best > 0 else "")
        else:
            out.append("the ensemble shows from the first snapshot" if frame.mode == "snapshot"
                       else "the ensemble shows at the first checkpoint", style="dim")
        return out


class EnsembleChart(ThrottledPlot):
    """Validation accuracy (or loss) of every member (thin dots, each its colour) and of the
    ensemble (a solid orange line) at every checkpoint, on one scale."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.metric = "acc"  # or "loss"
        self.zoomed = False  # the y axis does not start at 0 (accuracy) or cuts early losses (loss)

    def view_key(self) -> tuple:
        return (self.metric,)

    def title(self) -> Text:
        what = ("val accuracy" if self.metric == "acc" else "val loss") + (", zoomed" if self.zoomed else "")
        run = (f"   {RUN_MARKER} the run", f"color({RUN_COLOR})") if self._pending is not None and \
            self._pending.run else ("", "")
        return Text.assemble((f"{ENSEMBLE_MARKER} ensemble", f"bold color({ENSEMBLE_COLOR})"),
                             (f"   {MEMBER_MARKER} members", "dim"), run, f"   {what} (g: "
                             f"{'loss' if self.metric == 'acc' else 'accuracy'})")

    def _draw(self, frame: EnsembleFrame) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        x = frame.steps.astype(float)
        members = frame.member_acc if self.metric == "acc" else frame.member_loss
        ensemble = frame.metrics["ensemble_val_acc" if self.metric == "acc" else "ensemble_val_loss"]
        # the scale follows the later half of the run (where members and ensemble part ways); the
        # first checkpoints, far below, leave through the bottom
        recent = slice(x.size // 2, None) if x.size >= 6 else slice(None)
        values = np.concatenate([members[recent][np.isfinite(members[recent])],
                                 ensemble[recent][np.isfinite(ensemble[recent])]])
        self.zoomed = False
        if self.metric == "acc":
            lo = float(np.floor(20 * values.min()) / 20) - 0.05 if values.size else 0.0
            lo = max(0.0, min(lo, 0.9))
            hi = 1.0
        else:
            lo, hi = (0.0, float(values.max()) * 1.15) if values.size else (0.0, 1.0)
            hi = hi if hi > lo else lo + 1
        self.zoomed = bool(values.size) and (lo > 0.0 if self.metric == "acc" else hi < np.nanmax(
            np.concatenate([members[np.isfinite(members)], ensemble[np.isfinite(ensemble)]]), initial=0.0))
        members = np.clip(members, lo - 0.02 * (hi - lo), hi + 0.02 * (hi - lo))
        ensemble = np.clip(ensemble, lo - 0.02 * (hi - lo), hi + 0.02 * (hi - lo))
        for k in range(members.shape[1] if members.ndim == 2 else 0):
            ok = np.isfinite(members[:, k])
            if ok.any():
                plt.plot(x[ok].tolist(), members[ok, k].tolist(), marker=MEMBER_MARKER, color=color_of(k))
        if frame.run:  # snapshot mode: the run the snapshots come from, as it goes
            rx, ry = frame.run["step"], np.asarray(frame.run[self.metric], dtype=float)
            ok = np.isfinite(ry)
            if ok.any():
                ry = np.clip(ry, lo - 0.02 * (hi - lo), hi + 0.02 * (hi - lo))
                plt.plot(rx[ok].tolist(), ry[ok].tolist(), marker=RUN_MARKER, color=RUN_COLOR)
        ok = np.isfinite(ensemble)
        if ok.any():
            plt.plot(x[ok].tolist(), ensemble[ok].tolist(), marker=ENSEMBLE_MARKER, color=ENSEMBLE_COLOR)
        last = max(1.0, float(frame.total), float(frame.step), float(x[-1]) if x.size else 1.0)
        plt.xticks(step_ticks(last))
        plt.xlim(0, last)
        plt.ylim(lo, hi)
        ticks = nice_ticks(lo, hi)
        plt.yticks(ticks, [f"{t:.2f}" if self.metric == "acc" else f"{t:.3g}" for t in ticks])
