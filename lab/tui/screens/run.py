"""The run screen: one scenario training live, every layer on screen, every cause on a key."""

from __future__ import annotations

import time
from collections import deque
from datetime import datetime
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from lab.report.export import write_history_csv
from lab.scenario.dump import dump_scenario
from lab.scenario.schema import Scenario
from lab.sim import Simulation, Snapshot
from lab.tui.controls import change_for, describe_change
from lab.tui.runner import SimRunner
from lab.tui.widgets.context import ContextPanel
from lab.tui.widgets.curves import Curves
from lab.tui.widgets.histograms import HistogramGrid
from lab.tui.widgets.panels import StatsPanel, StatusBar, diagnosis

FRAME_SECONDS = 0.08  # 12.5 frames/s: the target is at least 10, with margin for a busy machine; a frame costs ~1 ms
HISTORY_COLUMNS = 240  # snapshots kept per layer for the histogram-over-time view

CHANGE_KEYS = [
    ("l", "change('lr_up')", "lr ×√10"), ("L", "change('lr_down')", "lr ÷√10"),
    ("i", "change('next_init')", "next init"), ("a", "change('next_activation')", "next activation"),
    ("d", "change('dropout_up')", "dropout +0.1"), ("D", "change('dropout_down')", "dropout −0.1"),
    ("m", "change('dropout_mode')", "dropout mode"), ("b", "change('batchnorm')", "batchnorm"),
    ("o", "change('optimizer')", "optimizer"), ("s", "change('schedule')", "schedule"),
    ("p", "change('preprocess')", "preprocessing"), ("w", "change('weight_decay')", "weight decay"),
]


class RunScreen(Screen):
    BINDINGS = [
        Binding("space", "toggle", "run/pause"),
        Binding("n", "step_once", "step"),
        Binding("plus,equals_sign", "faster", "faster", key_display="+"),
        Binding("minus", "slower", "slower", key_display="-"),
        *[Binding(key, action, label, show=key in ("l", "L", "i", "a")) for key, action, label in CHANGE_KEYS],
        Binding("r", "reset", "reset"),
        Binding("R", "reset_new_seed", "reset, new seed", show=False),
        Binding("h", "toggle_histograms", "weights/updates", show=False),
        Binding("v", "cycle_view", "view"),
        Binding("z", "zoom", "zoom"),
        Binding("c", "compare", "compare", show=False),
        Binding("ctrl+s", "save", "save"),
        Binding("e", "export", "export CSV", show=False),
        Binding("question_mark", "help", "help", key_display="?"),
        Binding("escape", "back", "browser", show=False),
        Binding("q", "app.quit", "quit"),
    ]

    def __init__(self, scenario: Scenario, *, source: str = "", autostart: bool = True,
                 simulation: Simulation | None = None) -> None:
        super().__init__()
        self.scenario = scenario
        self.source = source
        self.autostart = autostart
        self.runner: SimRunner | None = SimRunner(simulation) if simulation is not None else None
        self._shown: Snapshot | None = None
        self._warned_divergence = False
        self.layer_history: dict[int, deque] = {}
        self._started = time.perf_counter()

    # -- layout ---------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield StatusBar("starting…", id="status")
        with Horizontal(id="top"):
            yield HistogramGrid(id="grid")
            with Vertical(id="curves"):
                yield Curves("loss", id="loss-curve")
                yield Curves("acc", id="acc-curve")
        yield StatsPanel(id="stats")
        yield ContextPanel(self.scenario.scenario.explain, id="context")
        yield Footer()

    def on_mount(self) -> None:
        self.title = self.scenario.name
        self.query_one(StatusBar).update(" compiling kernels (first run only, cached afterwards)…")
        self.start_worker()
        self.set_interval(FRAME_SECONDS, self.tick)

    @work(thread=True, exclusive=True, group="train", name="train")
    def start_worker(self) -> None:
        """Build the simulation (compiling kernels on the very first run) and train."""
        worker = get_current_worker()
        if self.runner is None:
            # one compilation: wait for the app's kernel warm-up, never compile beside it
            # (what it did not cover, float64, compiles here afterwards)
            kernels = getattr(self.app, "kernels", None)
            while kernels is not None and not kernels.wait(0.1):
                if worker.is_cancelled:
                    return
            if worker.is_cancelled:  # left (escape, q) while waiting
                return
            self.runner = SimRunner(Simulation(self.scenario), running=self.autostart)
        self.runner.loop(lambda: worker.is_cancelled)

    # -- drawing ----------------------------------------------------------------------------
    def state(self) -> str:
        r = self.runner
        if r is None:
            return "compiling"
        if r.sim.diverged:
            return "diverged"
        if r.running:
            return "running"
        return "done" if r.message.startswith("paused at step") else "paused"

    def tick(self, force: bool = False) -> None:
        r = self.runner
        if r is None:  # waiting for the kernels: the warm-up's progress (as on the browser), then building
            from lab.tui.widgets.warmup import waiting_line

            elapsed = time.perf_counter() - self._started
            self.query_one(StatusBar).update(waiting_line(getattr(self.app, "kernels", None), self.scenario, elapsed))
            return
        snap = r.latest
        if snap is self._shown and not force and self.state() != "running":
            return
        self.query_one(StatusBar).show(snap, self.state(), r.steps_per_s, r.speed_limit)
        if snap is self._shown and not force:
            return
        self._shown = snap
        self._remember(snap)
        self.query_one(HistogramGrid).show(snap)
        self.query_one("#loss-curve", Curves).show(snap, force)
        acc = self.query_one("#acc-curve", Curves)
        if acc.display:
            acc.show(snap, force)
        self.query_one(StatsPanel).show(snap)
        self.query_one(ContextPanel).show(snap, r.sim)
        if snap.diverged and not self._warned_divergence:
            self._warned_divergence = True
            self.notify(diagnosis(snap), title="diverged", severity="error", timeout=10, markup=True)
        if not snap.diverged:
            self._warned_divergence = False

    def _remember(self, snap: Snapshot) -> None:
        for s in snap.layers:
            hist = self.layer_history.setdefault(s.index, deque(maxlen=HISTORY_COLUMNS))
            if not hist or hist[-1][0] != snap.step:
                hist.append((snap.step, s.act_hist, s.grad_hist))

    def on_resize(self) -> None:
        self.query_one("#acc-curve").display = self.size.height >= 36
        if self.runner is not None:
            self.tick(force=True)

    # -- actions ----------------------------------------------------------------------------
    def _ready(self) -> SimRunner | None:
        if self.runner is None:
            self.notify("still compiling the kernels: one moment", severity="warning")
        return self.runner

    def action_toggle(self) -> None:
        if r := self._ready():
            if r.sim.diverged:
                self.notify("The run diverged: lower the lr (L) and reset (r), or re-initialise (i).",
                            severity="warning")
            r.toggle()
            self.tick(force=True)

    def action_step_once(self) -> None:
        if r := self._ready():
            r.step_once()

    def action_faster(self) -> None:
        if r := self._ready():
            r.faster()
            self.tick(force=True)

    def action_slower(self) -> None:
        if r := self._ready():
            r.slower()
            self.tick(force=True)

    def action_change(self, action: str) -> None:
        r = self._ready()
        if r is None:
            return
        changes = change_for(action, r.latest.settings)
        problem = r.apply(**changes)
        if problem:
            self.notify(problem, severity="error")
        else:
            self.notify(describe_change(changes), timeout=2)
        self.tick(force=True)
        self._watch_for_effect()

    def _watch_for_effect(self) -> None:
        """Poll fast for a few frames after a key press, so its effect shows within ~20 ms of the
        worker applying it instead of at the next 100 ms frame."""
        for delay in (0.02, 0.04, 0.06, 0.08):
            self.set_timer(delay, self.tick)

    def action_reset(self, new_seed: bool = False) -> None:
        if r := self._ready():
            r.reset(new_seed=new_seed)
            self.layer_history.clear()
            self.notify("reset: a new initialisation" if new_seed else "reset: the same initialisation", timeout=2)
            self.tick(force=True)
            self._watch_for_effect()

    def action_reset_new_seed(self) -> None:
        self.action_reset(new_seed=True)

    def action_toggle_histograms(self) -> None:
        self.query_one(HistogramGrid).toggle()

    def action_cycle_view(self) -> None:
        self.query_one(ContextPanel).cycle()
        self.tick(force=True)

    def action_zoom(self) -> None:
        if self._ready() and self._shown is not None:
            from lab.tui.screens.zoom import ZoomScreen

            self.app.push_screen(ZoomScreen(self, layer=1))

    def action_compare(self) -> None:
        from lab.tui.screens.compare import CompareScreen

        if r := self._ready():
            r.running = False
            self.app.push_screen(CompareScreen.from_run(self.scenario, r.sim))

    def action_help(self) -> None:
        from lab.tui.screens.help import HelpScreen

        self.app.push_screen(HelpScreen(self.scenario))

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()

    def _out_path(self, suffix: str) -> Path:
        stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in self.scenario.name.lower())[:40].strip("-")
        return Path(getattr(self.app, "output_dir", Path.cwd())) / f"{stem or 'session'}-{datetime.now():%Y%m%d-%H%M%S}{suffix}"

    def action_save(self) -> None:
        """Write the scenario plus every change made here: it replays headless, bit for bit."""
        r = self._ready()
        if r is None:
            return
        with r.sim.lock:
            sc = r.sim.scenario_with_events()
            step = r.sim.step_count
        path = self._out_path(".toml")
        header = (f"Saved from the nnlab run of {self.source or sc.name!r} at step {step}.\n"
                  f"Replay it headless: nnlab run {path.name} --steps {step}")
        try:
            path.write_text(dump_scenario(sc, header), encoding="utf-8")
        except OSError as exc:
            self.notify(f"could not save: {exc}", severity="error")
            return
        self.last_saved = path
        self.notify(f"saved {path}", title="scenario saved", timeout=6)

    def action_export(self) -> None:
        r = self._ready()
        if r is None:
            return
        path = self._out_path("-history.csv")
        try:
            rows = write_history_csv(r.latest.history, path)
        except OSError as exc:
            self.notify(f"could not export: {exc}", severity="error")
            return
        self.last_exported = path
        self.notify(f"{rows} rows to {path}", title="history exported", timeout=6)
