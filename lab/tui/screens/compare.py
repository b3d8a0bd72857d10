"""Compare: two or more variants training in lockstep, the same panels side by side."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import get_current_worker
from textual_plotext import PlotextPlot

from lab.scenario.schema import Scenario
from lab.sim import Simulation
from lab.tui.keys import COMPARE_KEYS, bindings
from lab.tui.runner import SimRunner
from lab.tui.widgets.curves import step_ticks, thin
from lab.tui.widgets.histograms import HistogramGrid
from lab.tui.widgets.panels import StatsPanel, StatusBar

COLORS = ("cyan", "orange", "green", "magenta", "red", "blue")


class Lockstep:
    """Several runners advanced by the same number of steps per round."""

    def __init__(self, runners: dict[str, SimRunner]) -> None:
        self.runners = runners
        self.running = True

    def loop(self, cancelled) -> None:
        import time

        while not cancelled():
            if not self.running:
                time.sleep(0.05)
                continue
            live = [r for r in self.runners.values() if not r.sim.diverged]
            if not live:
                self.running = False
                continue
            start = time.perf_counter()
            for r in live:
                r.sim.step(20)
            for r in self.runners.values():
                r.publish()
            elapsed = time.perf_counter() - start
            for r in live:
                r.steps_per_s = 20 / elapsed if elapsed > 0 else 0.0


class CompareScreen(Screen):
    KEYS = COMPARE_KEYS
    BINDINGS = bindings(COMPARE_KEYS)
    DEFAULT_CSS = """
    CompareScreen #columns { height: 1fr; }
    CompareScreen .variant { width: 1fr; border-right: solid $primary; }
    CompareScreen .variant HistogramGrid { height: 1fr; }
    CompareScreen #compare-loss { height: 12; }
    """

    def __init__(self, scenarios: dict[str, Scenario], note: str = "") -> None:
        super().__init__()
        self.scenarios = scenarios
        self.note = note
        self.lockstep: Lockstep | None = None

    @classmethod
    def from_run(cls, scenario: Scenario, sim: Simulation) -> "CompareScreen":
        """The scenario's [[variants]]; without any, the original against your changes so far."""
        from lab.sim.expectations import variant_scenarios

        if scenario.variants:
            return cls(variant_scenarios(scenario), "the scenario's variants, from step 0, in lockstep")
        mine = sim.original.with_changes(sim._overrides) if sim._overrides else None
        if mine is None:
            return cls({"base": scenario}, "no variants: change something on the run screen (e.g. a), then compare")
        return cls({"original": sim.original, "yours": mine}, "the original against your settings, from step 0")

    def compose(self) -> ComposeResult:
        yield Static(f" [b]compare[/b]  {self.note}", id="compare-title")
        with Horizontal(id="columns"):
            for name in self.scenarios:
                with Vertical(classes="variant"):
                    yield Static(f"[b]{name}[/b]", classes="variant-name")
                    yield StatusBar(id=f"status-{name}")
                    yield HistogramGrid(id=f"grid-{name}")
                    yield StatsPanel(id=f"stats-{name}")
        yield PlotextPlot(id="compare-loss")
        yield Footer()

    def on_mount(self) -> None:
        self.start()
        self.set_interval(0.15, self.tick)

    @work(thread=True, exclusive=True, group="compare")
    def start(self) -> None:
        worker = get_current_worker()
        runners = {name: SimRunner(Simulation(sc)) for name, sc in self.scenarios.items()}
        self.lockstep = Lockstep(runners)
        self.lockstep.loop(lambda: worker.is_cancelled)

    def tick(self) -> None:
        ls = self.lockstep
        if ls is None:
            return
        plt = self.query_one("#compare-loss", PlotextPlot).plt
        plt.clear_data()
        plt.clear_figure()
        last = 1
        for i, (name, r) in enumerate(ls.runners.items()):
            snap = r.latest
            state = "diverged" if snap.diverged else "running" if ls.running else "paused"
            self.query_one(f"#status-{name}", StatusBar).show(snap, state, None, r.steps_per_s)
            self.query_one(f"#grid-{name}", HistogramGrid).show(snap)
            self.query_one(f"#stats-{name}", StatsPanel).show(snap, [s.index for s in snap.layers])
            x, y = thin(snap.history["step"], snap.history["loss"])
            if x:
                plt.plot(x, y, label=name, marker="braille", color=COLORS[i % len(COLORS)])
                last = max(last, int(x[-1]))
        plt.xticks(step_ticks(last))
        plt.title("training loss")
        self.query_one("#compare-loss", PlotextPlot).refresh()

    def action_toggle(self) -> None:
        if self.lockstep:
            self.lockstep.running = not self.lockstep.running

    def action_toggle_histograms(self) -> None:
        for grid in self.query(HistogramGrid):
            grid.toggle()

    def action_reset(self) -> None:
        if self.lockstep:
            for r in self.lockstep.runners.values():
                r.reset()
