"""Compare: the scenario's variants training in lockstep, one block each and one shared chart.

Each variant gets a compact block (its name, what it changes, loss and accuracies, a row
per layer of the columns the scenario's claims are about, see widgets/variants.py) and
every variant is drawn on one loss chart, on one scale, each with its own marker.  One
worker (lab.tui.lockstep) steps them all the same number of steps per round, at the pace
the run screen would use, and stops at the scenario's length.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.widgets import Footer, Static

from lab import vocabulary as V
from lab.metrics import LAYER_METRICS, parse_metric
from lab.pace import initial_pace
from lab.scenario.schema import Scenario
from lab.sim import Simulation
from lab.tui.controls import describe_change
from lab.tui.keys import COMPARE_KEYS, bindings
from lab.tui.lockstep import Lockstep
from lab.tui.screens.lockstep_screen import FRAME_SECONDS, LockstepScreen
from lab.tui.widgets.panels import MessageLine, update_changed
from lab.tui.widgets.variants import ChartLegend, CompareChart, Variant, VariantTable

CHART_MIN_ROWS = 9  # the chart's legend, six rows of plot and the x axis (two)
FIXED_ROWS = 3  # status line, message line, footer


def change_items(changes: dict) -> tuple[str, ...]:
    """`{"lr": 0.1, "activation": "leaky_relu"}` -> ("lr=0.1", "activation=leaky_relu")."""
    return tuple(describe_change({key: value}) for key, value in changes.items())


class CompareScreen(LockstepScreen):
    WORKER_GROUP = "compare"
    RESET_MESSAGE = "every variant back to step 0, replayed in lockstep"
    KEYS = COMPARE_KEYS
    BINDINGS = bindings(COMPARE_KEYS)
    DEFAULT_CSS = """
    CompareScreen #compare-status { height: 1; background: $boost; }
    CompareScreen CompareChart { height: 1fr; min-height: 5; }
    """

    def __init__(self, scenarios: dict[str, Scenario], note: str = "", *, changes: dict[str, dict] | None = None,
                 running: bool = True) -> None:
        super().__init__()
        self.scenarios = scenarios
        self.scenario = next(iter(scenarios.values()))  # the base: its pace, length, claims and concept
        self.note = note
        self.changes = changes or {}
        claims = [(parse_metric(e.metric).name, e.layer) for e in self.scenario.expect]
        self.wanted = tuple(dict.fromkeys(name for name, _ in claims))
        self.claimed_layers = tuple(sorted({layer for name, layer in claims if name in LAYER_METRICS and layer}))
        self.lockstep = Lockstep(scenarios, pace=initial_pace(self.scenario.scenario.pace, self.scenario.train.steps),
                                 running=running)
        self._drawn: dict | None = None

    @classmethod
    def from_run(cls, scenario: Scenario, sim: Simulation, *, running: bool = True) -> "CompareScreen":
        """The scenario's [[variants]]; without any, the original against your changes so far."""
        return cls.from_changes(scenario, sim.original, sim.user_changes(), running=running)

    @classmethod
    def from_changes(cls, scenario: Scenario, original: Scenario, yours: dict[str, Any], *,
                     running: bool = True) -> "CompareScreen":
        """As from_run, from what the run screen's worker published (SimRunner.original and
        .changes): the UI thread does not read the Simulation."""
        from lab.sim.expectations import variant_scenarios

        if scenario.variants:
            changes = {v.name: v.set.given() for v in scenario.variants}
            return cls(variant_scenarios(scenario),
                       "the scenario's variants, from step 0, in lockstep; escape goes back",
                       changes=changes, running=running)
        if not yours:
            return cls({"base": scenario}, "no variants: change something on the run screen (e.g. a), then compare",
                       running=running)
        return cls({"original": original, "yours": original.with_changes(yours)},
                   "the original against your settings, from step 0, in lockstep; escape goes back",
                   changes={"yours": yours},
                   running=running)

    # -- layout -------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        names = list(self.scenarios)
        yield Static(" starting…", id="compare-status")
        yield VariantTable([Variant(n, change_items(self.changes.get(n, {}))) for n in names], self.wanted,
                           self.claimed_layers, id="variants")
        yield ChartLegend(names, id="legend")
        yield CompareChart(names, id="chart")
        yield MessageLine(id="message")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.title = f"compare: {self.scenario.name}"
        self._arrange()
        self.start_worker()
        self.set_interval(FRAME_SECONDS, self.tick)
        if self.note:
            self.say(self.note)

    def _arrange(self) -> None:
        """The table gets what the chart leaves it: the chart keeps a third of the screen."""
        height = self.size.height or 30
        chart = max(CHART_MIN_ROWS, height // 3)
        self.query_one(VariantTable).set_budget(max(2, height - FIXED_ROWS - chart))

    # -- drawing ------------------------------------------------------------------------------
    def tick(self, force: bool = False) -> None:
        self._show_status()
        self.relay_messages()
        snaps = self.lockstep.snapshots
        table, chart = self.query_one(VariantTable), self.query_one(CompareChart)
        if snaps and (snaps is not self._drawn or force):
            self._drawn = snaps
            table.show(snaps)
            chart.show(snaps, force)
        chart.flush()
        self.query_one(ChartLegend).show(chart.title())

    def _show_status(self) -> None:
        ls = self.lockstep
        state = ls.state()
        status = self.query_one("#compare-status", Static)
        if state == "starting":
            status.update(self.starting_line(f"{len(self.scenarios)} variants"))
            return
        snaps = ls.snapshots  # the step of what is drawn (the worker may be mid-round)
        step = max(snap.step for snap in snaps.values() if not snap.diverged or state == "diverged")
        diverged = [name for name, snap in snaps.items() if snap.diverged]
        extras = [  # what else the line says, while it fits, most telling first
            (f"{len(diverged)} diverged", "bold red") if diverged and state != "diverged" else ("", ""),
            (self.query_one(VariantTable).marker, "dim"),
            (f"{len(self.scenarios)} variant{'s' if len(self.scenarios) != 1 else ''}", ""),
        ]
        update_changed(status, self.status_line(state, step, self.pace_text(state), extras, status.size.width or 80))

    # -- actions (pause, step, pace and reset are LockstepScreen's) ------------------------------
    def action_toggle_chart(self) -> None:
        chart = self.query_one(CompareChart)
        chart.metric = V.VAL_ACC if chart.metric == V.LOSS else V.LOSS
        self.tick(force=True)

    def action_page_layers(self, delta: int) -> None:
        table = self.query_one(VariantTable)
        if not table.marker:
            self.say("every layer is on screen already")
            return
        table.turn_page(delta)
        self.tick(force=True)

    def action_toggle_histograms(self) -> None:
        table = self.query_one(VariantTable)
        table.toggle_mode()
        shown = "activations | gradients" if table.mode == "activity" else "weights | updates"
        self.say(f"histograms: {shown}" + ("" if table.histograms_shown else
                                           " (they show when the terminal is wide enough for every column)"))
