"""The run screen: one scenario training live at a pace a person can follow, every layer
on screen (a page at a time for deep networks), every cause on a key.

Everything drawn comes from the latest Snapshot the worker published; a key press only
queues a command for the worker, which applies it between chunks and publishes a fresh
Snapshot at once, so a change made while paused shows without stepping.
"""

from __future__ import annotations

import math
import re
import time
from datetime import datetime
from functools import partial
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer
from textual.worker import get_current_worker

from lab import vocabulary as V
from lab.engine.trainer import Cancelled
from lab.metrics import parse_metric
from lab.pace import initial_pace
from lab.report.export import write_run_csv
from lab.scenario.schema import Scenario
from lab.sim import Simulation, Snapshot
from lab.tui.controls import change_for, describe_change
from lab.tui.keys import RUN_KEYS, bindings
from lab.tui.runner import SimRunner
from lab.tui.screens.base import LabScreen
from lab.tui.widgets.context import ContextPanel
from lab.tui.widgets.curves import Curves
from lab.tui.widgets.histograms import HistogramGrid
from lab.tui.widgets.panels import MessageLine, SettingsBar, StatsPanel, StatusBar, diagnosis

FRAME_SECONDS = 0.08  # 12.5 frames/s: the target is at least 10, with margin for a busy machine
BOTH_CURVES_ROWS = 36  # in a shorter terminal the curves panel shows loss or accuracy (`g` switches)
CONTEXT_MIN_ROWS = 5  # the context panel's border, title and three lines of text


class RunScreen(LabScreen):
    KEYS = RUN_KEYS
    BINDINGS = bindings(RUN_KEYS)

    def __init__(self, scenario: Scenario, *, source: str = "", autostart: bool = True,
                 simulation: Simulation | None = None, origin: str = "") -> None:
        super().__init__()
        self.scenario = scenario
        self.source = source
        self.origin = origin  # where this run came from, e.g. "trial 7 of 36 (stage 1) lr=3.2e-3 l2=1e-4"
        self.autostart = autostart
        self.pace = initial_pace(scenario.scenario.pace, scenario.train.steps)
        self.runner: SimRunner | None = None
        if simulation is not None:
            self.runner = SimRunner(simulation, running=autostart, pace=self.pace)
        self.wanted = tuple(dict.fromkeys(parse_metric(e.metric).name for e in scenario.expect))
        self._shown: Snapshot | None = None
        self._wanted = None  # what the context view last asked the runner to take...
        self._context_shown = (None, None, None)  # ...and what it drew of it
        self._said = 0
        self._warned_divergence = False
        self.page = 0
        self.curve = V.LOSS  # the curve shown when there is room for one only
        self._started = time.perf_counter()

    # -- layout ---------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield StatusBar(" starting…", id="status")
        yield SettingsBar(id="settings")
        with Horizontal(id="top"):
            yield HistogramGrid(id="grid")
            with Vertical(id="curves"):
                yield Curves(V.LOSS, id="loss-curve")
                yield Curves("acc", id="acc-curve")
        yield StatsPanel(id="stats", wanted=self.wanted)
        yield ContextPanel(self.scenario.scenario.explain, id="context")
        yield MessageLine(id="message")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.title = self.scenario.name
        if self.origin:  # shown first on the settings line, and said once
            self.sub_title = self.origin
            # on the settings line, short: "trial 27 of 36 (stage 1)" (the settings it tried are beside it)
            self.query_one(SettingsBar).origin = self.origin.partition(")")[0] + ")" if ")" in self.origin else self.origin
            self.say(f"{self.origin}: escape goes back to the search", "change")
        self._arrange_curves()
        self.start_worker()
        self.set_interval(FRAME_SECONDS, self.tick)

    def on_unmount(self) -> None:
        if self.runner is not None:
            self.runner.wake()  # the cancelled worker leaves its wait at once

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
            try:  # building evaluates the first network: quitting need not wait for all of it
                self._pretrain(lambda: worker.is_cancelled)
                sim = Simulation(self.scenario, cancelled=lambda: worker.is_cancelled)
            except Cancelled:
                return
            self.runner = SimRunner(sim, running=self.autostart, pace=self.pace)
        self.runner.loop(lambda: worker.is_cancelled)

    def _pretrain(self, cancelled) -> None:
        """A transfer scenario's source task, pretrained (or its .npz loaded) before the run is
        built, with its progress on the status line (lab/transfer/pretrain.py)."""
        t = self.scenario.transfer
        if t is None or t.start != "pretrained":
            return
        from lab.transfer.pretrain import ensure_pretrained

        def progress(step: int, steps: int) -> None:
            self.pretraining = f"pretraining the source task: step {step:,} of {steps:,}"

        self.pretraining = "source task: loading or pretraining its weights"
        _, origin = ensure_pretrained(self.scenario, self.scenario.seed, on_progress=progress, cancelled=cancelled)
        self.pretraining = origin

    # -- state ------------------------------------------------------------------------------
    def state(self) -> str:
        r = self.runner
        if r is None:
            return "compiling"
        if r.latest.diverged:
            return "diverged"
        if r.running:
            return "running"
        return "done" if r.ended else "paused"

    def page_capacity(self) -> int:
        """Layers per page: the grid (one row each, plus its header and axis) and the table
        (one row each, plus its header) both fit above a readable context panel."""
        fixed = 3 + self.query_one(SettingsBar).outer_size.height  # status, message, footer, settings
        return max(2, (self.size.height - fixed - CONTEXT_MIN_ROWS - 3) // 2)

    def layer_page(self, snap: Snapshot) -> tuple[list[int], str]:
        """The layers on the current page and the marker that says so.  The output layer is on
        every page; the hidden layers are paged with pgup/pgdn."""
        n = len(snap.layers)
        capacity = self.page_capacity()
        if n <= capacity:
            self.page = 0
            return list(range(1, n + 1)), ""
        per_page = capacity - 1
        pages = math.ceil((n - 1) / per_page)
        self.page = min(max(self.page, 0), pages - 1)
        first = self.page * per_page + 1
        last = min(first + per_page - 1, n - 1)
        return [*range(first, last + 1), n], f" layers {first}-{last} and {n} (output) of {n}: pgup/pgdn "

    # -- drawing ----------------------------------------------------------------------------
    def tick(self, force: bool = False) -> None:
        r = self.runner
        status = self.query_one(StatusBar)
        if r is None:  # waiting for the kernels: the warm-up's progress (as on the browser), then building
            from lab.tui.widgets.warmup import waiting_line

            elapsed = time.perf_counter() - self._started
            pretraining = getattr(self, "pretraining", "")
            status.update(f" {pretraining}" if pretraining else
                          waiting_line(getattr(self.app, "kernels", None), self.scenario, elapsed))
            return
        wanted = self.query_one(ContextPanel).wanted()
        if wanted != self._wanted:  # the worker takes what the context view draws, at its size
            self._wanted = wanted
            r.want(wanted)
        snap = r.latest
        status.show(snap, self.state(), r.pace, r.steps_per_s, r.total_steps)
        self._show_message(r)
        if snap is not self._shown or force:
            self._draw(snap, force)
        elif (r.boundary, r.lr_curve, r.costs) != self._context_shown:  # taken for a view just asked for
            self._context_shown = (r.boundary, r.lr_curve, r.costs)
            self.query_one(ContextPanel).show(snap, *self._context_shown)
        for curve in self.query(Curves):
            curve.flush()  # the latest snapshot is always drawn once the redraw throttle allows

    def _draw(self, snap: Snapshot, force: bool = False) -> None:
        self._shown = snap
        self.query_one(SettingsBar).show(snap.settings)
        layers, marker = self.layer_page(snap)
        self.query_one(HistogramGrid).show(snap, layers)
        self.query_one(StatsPanel).show(snap, layers, marker)
        idle = not self.runner.running  # paused or done: a change shows in the curves at once too
        for curve in self.query(Curves):
            curve.show(snap, force or idle)
        self._context_shown = (self.runner.boundary, self.runner.lr_curve, self.runner.costs)
        self.query_one(ContextPanel).show(snap, *self._context_shown)
        if snap.diverged and not self._warned_divergence:
            self._warned_divergence = True
            self.say(diagnosis(snap), "error")
        if not snap.diverged:
            self._warned_divergence = False

    def _show_message(self, r: SimRunner) -> None:
        if r.said != self._said:  # a count, not the text: the same message said twice shows twice
            self._said = r.said
            self.say(r.message, r.message_kind)

    def say(self, message: str, kind: str = "info") -> None:
        self.query_one(MessageLine).say(message, kind)

    def _arrange_curves(self) -> None:
        # decided by the terminal's height, known before layout (the panel's own height is 0 until
        # the first layout, and deciding from it made the picture depend on timing)
        both = self.app.size.height >= BOTH_CURVES_ROWS
        loss, acc = self.query_one("#loss-curve", Curves), self.query_one("#acc-curve", Curves)
        loss.display = both or self.curve == V.LOSS
        acc.display = both or self.curve == "acc"
        loss.hint, acc.hint = ("", "") if both else ("g: accuracy", "g: loss")

    def on_resize(self) -> None:
        self._arrange_curves()
        self.call_after_refresh(self._after_resize)

    def _after_resize(self) -> None:
        self._arrange_curves()
        if self.runner is not None:
            self.tick(force=True)

    # -- actions ----------------------------------------------------------------------------
    def _ready(self) -> SimRunner | None:
        if self.runner is None:
            self.say("still compiling the kernels: one moment", "error")
        return self.runner

    def action_toggle(self) -> None:
        if r := self._ready():
            r.toggle()
            self._watch_for_effect()

    def action_step_once(self) -> None:
        if r := self._ready():
            r.step_once()
            self._watch_for_effect()

    def action_faster(self) -> None:
        if r := self._ready():
            r.faster()
            self.tick()

    def action_slower(self) -> None:
        if r := self._ready():
            r.slower()
            self.tick()

    def action_change(self, action: str) -> None:
        r = self._ready()
        if r is None:
            return
        snap = r.latest
        changes = change_for(action, snap.settings, snap.step)
        if not changes:  # the batch size at its bound, a transfer key without [transfer], nothing left to freeze
            if action.startswith("batch"):
                self.say(f"nothing to change: batch size {snap.settings['batch_size']:,} is already at its bound "
                         f"(1 .. {snap.settings.get('train_rows', 0):,} training rows)")
            else:
                self.say("nothing to change: " + ("at the end of the range" if snap.settings.get("transfer") else
                                                  "only a transfer scenario ([transfer]) has phases"), "error")
            return
        problem = r.apply(**changes)
        if problem:
            self.say(f"not applied: {problem}", "error")
        else:
            self.say(f"step {snap.step:,}: {describe_change(changes)}", "change")
        self._watch_for_effect()

    def _watch_for_effect(self) -> None:
        """Poll fast for a few frames after a key press, so its effect shows as soon as the
        worker has applied it instead of at the next frame."""
        for delay in (0.01, 0.02, 0.04, 0.06):
            self.set_timer(delay, self.tick)

    def action_reset(self, new_seed: bool = False) -> None:
        if r := self._ready():
            r.reset(new_seed=new_seed)
            self.say("replay from step 0 with a new seed" if new_seed else
                     "replay from step 0, same initialisation (your changes are kept)", "change")
            self._watch_for_effect()

    def action_reset_new_seed(self) -> None:
        self.action_reset(new_seed=True)

    def action_toggle_histograms(self) -> None:
        self.query_one(HistogramGrid).toggle()

    def action_toggle_curve(self) -> None:
        self.curve = "acc" if self.curve == V.LOSS else V.LOSS
        self._arrange_curves()
        for curve in self.query(Curves):
            curve.flush(force=True)
        if self.app.size.height >= BOTH_CURVES_ROWS:
            self.say("both curves are on screen (the terminal is tall enough)")

    def action_cycle_view(self) -> None:
        self.query_one(ContextPanel).cycle()
        if self._shown is not None:
            self._draw(self._shown)

    def action_scroll_context(self, lines: int) -> None:
        self.query_one(ContextPanel).scroll(lines)

    def action_page_layers(self, delta: int) -> None:
        self.page += delta
        if self._shown is not None:
            self._draw(self._shown)

    def action_zoom(self) -> None:
        if (r := self._ready()) and self._shown is not None:
            from lab.tui.screens.zoom import ZoomScreen

            self.app.push_screen(ZoomScreen(lambda: r.latest, layer=1))

    def action_compare(self) -> None:
        from lab.tui.screens.compare import CompareScreen

        if r := self._ready():
            r.pause()  # the run waits behind the comparison
            self.app.push_screen(CompareScreen.from_changes(self.scenario, r.original, r.changes))

    def action_search(self) -> None:
        """The search of this scenario's [search] table, on its own screen (the run waits behind it)."""
        from lab.tui.screens.search import SearchScreen

        stack = self.app.screen_stack
        if self.origin and len(stack) > 1 and isinstance(stack[-2], SearchScreen):
            self.app.pop_screen()  # a trial of a search: back to that search, not a new one
            return
        if getattr(self.scenario, "search", None) is None:
            self.say("this scenario has no [search] table: add one (see procedure/search-lr-l2), or use "
                     "nnlab search SCENARIO --param lr=log:1e-4:1", "error")
            return
        if self.runner is not None:
            self.runner.pause()
        self.app.push_screen(SearchScreen(self.scenario, source=self.source))

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()

    def _out_path(self, suffix: str) -> Path:
        stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in self.scenario.name.lower())
        stem = re.sub("-{2,}", "-", stem)[:40].strip("-")  # "maxout, prelu" -> maxout-prelu
        return Path(getattr(self.app, "output_dir", Path.cwd())) / f"{stem or 'session'}-{datetime.now():%Y%m%d-%H%M%S}{suffix}"

    def action_save(self) -> None:
        """Write the scenario plus every change made here: it replays headless, bit for bit.

        The file is on disk at once (claims commented out while they are checked); a thread
        worker then checks the claims on it, as `nnlab check` would, and rewrites it with
        the ones that hold (lab/sim/session.py)."""
        from lab.files import unused_path
        from lab.sim.session import begin_save

        r = self._ready()
        if r is None or self.app.refuse_writes("saving", self.say):
            return
        path = unused_path(self._out_path(".toml"))
        try:
            saved = begin_save(r.sim, path, source=self.source)
        except OSError as exc:
            self.say(f"could not save: {exc}", "error")
            return
        self.last_saved = path
        if saved.checked:  # no claims to check: this is the final file
            self.say(f"saved {path}")
            return
        self.say(f"saved {path}; checking its {len(saved.claims)} claim(s) on this run…")
        # the app's worker, not the screen's: leaving this screen must not cancel the check (quitting does)
        self.app.run_worker(partial(self._check_saved, saved, self.app), thread=True, group="save-check",
                            name=f"check {path.name}", exit_on_error=False)

    def _tell(self, app, message: str, kind: str = "info") -> None:
        """From a thread: the message line if this screen is still up, else a notice."""
        def show() -> None:
            if self.is_attached and app.screen is self:
                self.say(message, kind)
            else:
                app.notify(message, severity="error" if kind == "error" else "information", timeout=6, markup=False)

        app.call_from_thread(show)

    def _check_saved(self, saved, app) -> None:
        """Thread worker: check a saved session's claims and rewrite its file with the verdicts."""
        from lab.sim.session import finish_save

        worker = get_current_worker()

        def progress(i: int, n: int, name: str) -> None:
            if i:  # the first run is announced by the save message
                self._tell(app, f"checking {saved.path.name}: run {i + 1} of {n} ({name})")

        try:
            done = finish_save(saved, progress=progress, cancelled=lambda: worker.is_cancelled)
        except OSError as exc:
            self._tell(app, f"could not rewrite {saved.path}: {exc} (the session is saved; its claims are commented "
                            "out)", "error")
            return
        self.last_checked = done
        if not worker.is_cancelled:
            self._tell(app, f"{saved.path.name}: {done.summary()}", "error" if done.problem else "info")

    def action_export(self) -> None:
        r = self._ready()
        if r is None or self.app.refuse_writes("exporting", self.say):
            return
        try:
            (path, rows), (layers, layer_rows) = write_run_csv(r.latest, self._out_path("-history.csv"))
        except OSError as exc:
            self.say(f"could not export: {exc}", "error")
            return
        self.last_exported = path
        self.last_exported_layers = layers
        self.say(f"exported {path.name} ({rows} rows) and {layers.name} ({layer_rows} rows, per layer) "
                 f"to {path.parent}")
