"""Ensemble: the members of a scenario's [ensemble] training side by side, and their average.

One worker (lab/tui/ensemble_lockstep.py: the compare screen's Lockstep with the members as its runs)
steps every member the same number of steps per round at a pace a person can follow, and at
each checkpoint combines their validation predictions as `nnlab check` does.  The screen shows
a table of the members (the best marked, the average member and the ensemble under them) and
one chart of every member's validation accuracy (or loss) with the ensemble's over it.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.screen import Screen
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Footer, Markdown, Static
from textual.worker import get_current_worker

from lab import pace as paces
from lab.tui.ensemble_lockstep import EnsembleLockstep
from lab.pace import initial_pace
from lab.scenario.schema import Scenario
from lab.tui.keys import ENSEMBLE_KEYS, bindings
from lab.tui.widgets.ensemble import EnsembleChart, MemberTable
from lab.tui.widgets.panels import STATE_STYLES, MessageLine, update_changed

FRAME_SECONDS = 0.08  # as the run and compare screens
CHART_MIN_ROWS = 6
FIXED_ROWS = 4  # status line, chart legend, message line, footer
EXPLAIN_MIN_WIDTH = 120  # the scenario's explanation beside the table from this width on


class EnsembleScreen(Screen):
    HELP_TEXT = """**The ensemble screen.** The table lists every member: its seed (or the step its snapshot
was taken at), its validation accuracy and loss at the last checkpoint; the best member is in
green with a star. Under them: the *average* member, and the *ensemble*, whose prediction is the
mean of the members' softmax probabilities (or their majority vote), and by how many points it
leads the average and the best member. The chart draws every member's validation accuracy
(dots, one colour each) and the ensemble's (the solid orange line); `g` switches to the loss.
The numbers are those of `nnlab check` and `nnlab run --headless`, checkpoint for checkpoint."""
    KEYS = ENSEMBLE_KEYS
    BINDINGS = bindings(ENSEMBLE_KEYS)
    DEFAULT_CSS = """
    EnsembleScreen #ensemble-status { height: 1; background: $boost; }
    EnsembleScreen #ensemble-legend { height: 1; padding: 0 1; }
    EnsembleScreen #top { height: auto; }
    EnsembleScreen MemberTable { padding: 0 1; width: auto; }
    EnsembleScreen #explain { width: 1fr; display: none; padding: 0 1; border-left: solid $primary; }
    EnsembleScreen #explain Markdown { margin: 0; }
    EnsembleScreen EnsembleChart { height: 1fr; min-height: 4; }
    """

    def __init__(self, scenario: Scenario, *, source: str = "", running: bool = True) -> None:
        super().__init__()
        self.scenario = scenario
        self.source = source
        self.lockstep = EnsembleLockstep(scenario, pace=initial_pace(scenario.scenario.pace, scenario.train.steps),
                                         running=running)
        self._drawn = None
        self._said = 0
        self._started = time.perf_counter()

    def compose(self) -> ComposeResult:
        yield Static(" starting…", id="ensemble-status")
        with Horizontal(id="top"):
            yield MemberTable(id="members")
            with VerticalScroll(id="explain"):  # beside the table when the terminal is wide
                yield Markdown(self.scenario.scenario.explain or "_No explanation._")
        yield Static("", id="ensemble-legend")
        yield EnsembleChart(id="chart")
        yield MessageLine(id="message")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.title = f"ensemble: {self.scenario.name}"
        self._arrange()
        self.start_worker()
        self.set_interval(FRAME_SECONDS, self.tick)
        ens = self.scenario.ensemble
        if ens.mode == "snapshot":
            self.say(f"one run; its weights at steps {', '.join(f'{s:,}' for s in ens.at)} are the members. "
                     "? explains")
        else:
            self.say(f"{ens.size} members trained side by side, combined by "
                     f"{'averaging their probabilities' if ens.combine == 'mean' else 'majority vote'}. "
                     "? explains")

    def on_resize(self) -> None:
        self.call_after_refresh(self._after_resize)

    def _after_resize(self) -> None:
        self._arrange()
        self.tick(force=True)

    def _arrange(self) -> None:
        """The table takes what it needs, while the chart keeps at least a third of the screen."""
        height = self.size.height or 24
        chart = max(CHART_MIN_ROWS, height // 3)
        table = self.query_one(MemberTable)
        table.budget = max(5, height - FIXED_ROWS - chart)
        if table.frame is not None:
            table.show(table.frame)
        explain = self.query_one("#explain")
        explain.display = (self.size.width or 80) >= EXPLAIN_MIN_WIDTH
        self._size_explain()

    def _size_explain(self) -> None:
        """As tall as the table, or up to half the screen on a tall one (the chart keeps the rest)."""
        table = self.query_one(MemberTable)
        rows = table.styles.height.value if table.styles.height is not None else len(self.lockstep.names) + 4
        half = (self.size.height or 24) // 2 - FIXED_ROWS
        self.query_one("#explain").styles.height = int(max(rows, min(table.budget, half)))

    @work(thread=True, exclusive=True, group="ensemble", name="ensemble")
    def start_worker(self) -> None:
        """Build the members' simulations and step them together until the screen goes."""
        worker = get_current_worker()
        self.lockstep.loop(lambda: worker.is_cancelled)

    # -- drawing ------------------------------------------------------------------------------
    def tick(self, force: bool = False) -> None:
        ls = self.lockstep
        self._show_status()
        if ls.said != self._said:
            self._said = ls.said
            self.say(ls.message, ls.message_kind)
        frame = ls.frame
        chart = self.query_one(EnsembleChart)
        if ls.ready and (frame is not self._drawn or force):
            self._drawn = frame
            table = self.query_one(MemberTable)
            table.show(frame)
            self._size_explain()
            chart.show(frame, force)
        chart.flush()
        update_changed(self.query_one("#ensemble-legend", Static), chart.title())

    def _show_status(self) -> None:
        ls = self.lockstep
        state = ls.state()
        status = self.query_one("#ensemble-status", Static)
        if state == "starting":
            elapsed = time.perf_counter() - self._started
            status.update(Text(f" STARTING  building {len(ls.members)} member(s)… {elapsed:.0f} s", no_wrap=True,
                               overflow="ellipsis"))
            return
        step = ls.frame.steps[-1] if ls.frame.steps.size else 0
        snaps = ls.snapshots
        if snaps:
            step = max(s.step for s in snaps.values())
        total = ls.total_steps
        where = f"step {step:,}/{total:,}" if step <= total else f"step {step:,} (past {total:,})"
        pace = f"pace {paces.describe(ls.pace)}"
        line = Text.assemble((f" {state.upper()} ", STATE_STYLES.get(state, "bold")), " ", (where, "bold"), "  ",
                             (pace, "cyan"), no_wrap=True, overflow="ellipsis")
        ens = self.scenario.ensemble
        what = (f"{ens.size} snapshots of one run" if ens.mode == "snapshot"
                else f"{ens.size} member{'s' if ens.size != 1 else ''}")
        width = status.size.width or 80
        for text, style in ((what, ""), (self.scenario.name, "dim")):
            if line.cell_len + 2 + len(text) <= width:
                line.append("  ")
                line.append(text, style)
        update_changed(status, line)

    def say(self, message: str, kind: str = "info") -> None:
        self.query_one(MessageLine).say(message, kind)

    def _watch_for_effect(self) -> None:
        for delay in (0.01, 0.02, 0.04, 0.06):
            self.set_timer(delay, self.tick)

    # -- actions ------------------------------------------------------------------------------
    def action_toggle(self) -> None:
        self.lockstep.toggle()
        self._watch_for_effect()

    def action_step_once(self) -> None:
        self.lockstep.step_once()
        self._watch_for_effect()

    def action_faster(self) -> None:
        self.lockstep.faster()
        self.tick()

    def action_slower(self) -> None:
        self.lockstep.slower()
        self.tick()

    def action_reset(self) -> None:
        self.lockstep.reset()
        self.say("every member back to step 0, replayed together", "change")
        self._watch_for_effect()

    def action_toggle_chart(self) -> None:
        chart = self.query_one(EnsembleChart)
        chart.metric = "loss" if chart.metric == "acc" else "acc"
        self.tick(force=True)
