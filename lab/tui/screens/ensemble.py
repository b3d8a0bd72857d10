"""Ensemble: the members of a scenario's [ensemble] training side by side, and their average.

One worker (lab/tui/ensemble_lockstep.py: the compare screen's Lockstep with the members as its runs)
steps every member the same number of steps per round at a pace a person can follow, and at
each checkpoint combines their validation predictions as `nnlab check` does.  The screen shows
a table of the members (the best marked, the average member and the ensemble under them) and
one chart of every member's validation accuracy (or loss) with the ensemble's over it.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Footer, Markdown, Static

from lab.pace import initial_pace
from lab.scenario.schema import Scenario
from lab.tui.ensemble_lockstep import EnsembleLockstep
from lab.tui.keys import ENSEMBLE_KEYS, bindings
from lab.tui.screens.lockstep_screen import FRAME_SECONDS, LockstepScreen
from lab.tui.widgets.ensemble import EnsembleChart, MemberTable
from lab.tui.widgets.panels import MessageLine, update_changed

CHART_MIN_ROWS = 6
FIXED_ROWS = 4  # status line, chart legend, message line, footer
EXPLAIN_MIN_WIDTH = 120  # the scenario's explanation beside the table from this width on


class EnsembleScreen(LockstepScreen):
    WORKER_GROUP = "ensemble"
    RESET_MESSAGE = "every member back to step 0, replayed together"
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

    # -- drawing ------------------------------------------------------------------------------
    def tick(self, force: bool = False) -> None:
        ls = self.lockstep
        self._show_status()
        self.relay_messages()
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
            status.update(self.starting_line(f"{len(ls.members)} member(s)"))
            return
        step = ls.frame.steps[-1] if ls.frame.steps.size else 0
        snaps = ls.snapshots
        if snaps:
            step = max(s.step for s in snaps.values())
        ens = self.scenario.ensemble
        what = (f"{ens.size} snapshots of one run" if ens.mode == "snapshot"
                else f"{ens.size} member{'s' if ens.size != 1 else ''}")
        extras = [(what, ""), (self.scenario.name, "dim")]
        update_changed(status, self.status_line(state, step, self.pace_text(state), extras, status.size.width or 80))

    # -- actions (pause, step, pace and reset are LockstepScreen's) ------------------------------
    def action_toggle_chart(self) -> None:
        chart = self.query_one(EnsembleChart)
        chart.metric = "loss" if chart.metric == "acc" else "acc"
        self.tick(force=True)
