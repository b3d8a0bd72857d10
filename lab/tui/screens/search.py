"""The search screen: a scenario's hyperparameter search ([search]) running live.

The search runs in a thread worker (lab.tui.search_feed: run_search in worker processes,
`cancelled` = the worker's is_cancelled); after every trial it publishes a SearchView,
which this screen polls a few times a second.  Shown: a progress line, the border warning
in place as soon as the best trial so far lies on the border of a range, the trials ranked
by the metric (a DataTable: Enter opens one in the run screen, with its settings and seed),
and a scatter of the metric against each parameter (`p` cycles them).  Leaving the screen
(escape, q) cancels the search: the engine stops its worker processes.

Layout by terminal size: side by side from WIDE columns; otherwise the scatter goes under
the table when there are CHART_ROWS rows, and in a shorter terminal `g` shows it in the
table's place.
"""

from __future__ import annotations

import math
import time

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Container
from textual.widgets import DataTable, Footer, Static
from textual.worker import Worker, get_current_worker

from lab import vocabulary as V
from lab.scenario.schema import Scenario
from lab.search.trial import Trial
from lab.tui.keys import SEARCH_KEYS, bindings
from lab.tui.screens.base import LabScreen
from lab.tui.search_feed import (SearchFeed, SearchFunction, SearchView, compact, outcome, start_process_helpers,
                                  trial_label)
from lab.tui.widgets.panels import STATE_STYLES, MessageLine, update_changed
from lab.tui.widgets.scatter import SearchScatter

POLL_SECONDS = 0.1
WIDE = 140  # columns from which the scatter sits beside the table
CHART_ROWS = 30  # rows from which the scatter fits under the table
MAX_ROWS = 300  # the best this many are in the table (the status line says so); the scatter has every trial
QUICK_ROWS = 50  # a table this short is rebuilt at once when a trial comes
REFILL_SECONDS = 0.5
STATES = {"starting": "starting", "searching": "running", "done": "done", "stopped": "paused", "failed": "diverged"}


def _metric(x: float) -> str:
    """A metric or loss in a column of its own width: 0.9700, 1.2e+05 (a loss that blew up), -."""
    if not math.isfinite(x):
        return "-"
    return f"{x:.4f}" if x == 0 or 1e-3 <= abs(x) < 1e4 else f"{x:.2g}"


class SearchScreen(LabScreen):
    KEYS = SEARCH_KEYS
    BINDINGS = bindings(SEARCH_KEYS)
    HELP_TEXT = """\
**the search screen**

- **the table**, best first: `#` the rank (trials with a metric), `trial` its number (as in
  `nnlab search` and its results files), `stage` 0 coarse, 1 and on finer, then the metric
  and the validation loss at the trial's end, the settings it tried, and how it ended
  (*diverged at 37*: its loss became NaN or Inf at step 37; lr too high or init too large).
- **the border warning** (highlighted, above the table): the best trial so far has a
  value in the outer 10% of its range; the best may lie outside it, so extend the range
  that way and search again (the notes: "careful with best values on border").
- **the scatter**: the metric of every trial against one setting (`p` for the next), on a
  log axis for a log range; `@` the best trial, `x` trials that diverged (drawn at the
  worst edge), `|` the borders, at 10% and 90% of the range.
- **Enter** trains the highlighted trial on the run screen, from its own seed: watch why it
  won, or why it diverged.
"""
    DEFAULT_CSS = """
    SearchScreen #search-status { height: 1; background: $boost; }
    SearchScreen #border-warning { height: auto; padding: 0 1; background: $warning 25%; color: $text;
                                   text-style: bold; display: none; }
    SearchScreen #border-warning.-shown { display: block; }
    SearchScreen #search-body { height: 1fr; layout: vertical; }
    SearchScreen #search-body.-wide { layout: horizontal; }
    SearchScreen #trials { height: 1fr; width: 1fr; }
    SearchScreen SearchScatter { height: 1fr; width: 1fr; min-height: 6; }
    """

    def __init__(self, scenario: Scenario, spec=None, *, source: str = "", search: SearchFunction | None = None,
                 jobs: int | None = None) -> None:
        super().__init__()
        self.scenario = scenario
        self.source = source
        self.feed = SearchFeed(scenario, spec, search=search, jobs=jobs)
        self.worker: Worker | None = None
        self.view: SearchView = self.feed.view
        self._failure_said = False
        self._version = -1
        self._columns: tuple = ()
        self._follow_best = True  # the cursor stays on the best trial until the user moves it
        self.chart_instead = False  # short terminals: the scatter in the table's place (g)
        self._warned: tuple[str, ...] = ()
        self._table_of: SearchView | None = None  # the view the table shows
        self._filled_at = 0.0

    # -- layout -------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(" starting…", id="search-status")
        yield Static(id="border-warning")
        with Container(id="search-body"):
            table: DataTable = DataTable(id="trials", cursor_type="row", zebra_stripes=False)
            yield table
            yield SearchScatter(id="scatter")
        yield MessageLine(id="message")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.title = f"search: {self.scenario.name}"
        self.query_one(SearchScatter).hint = "p: next parameter"
        self._arrange()
        self.query_one(DataTable).focus()
        if self.feed.jobs is None and not getattr(self.app, "allow_writes", True):
            self.feed.jobs = 1  # a shared room (nnlab serve): one worker process each, the cores are everyone's
        if self.feed.search is None:  # the real engine: its worker processes start from here
            try:
                start_process_helpers()
            except OSError as exc:  # the search says what it can when it starts them itself
                self.say(f"could not prepare the worker processes: {exc}", "error")
        self.worker = self.start_search()
        self.set_interval(POLL_SECONDS, self.tick)
        self.say("trials appear as they finish, best first; Enter opens one; escape stops the search")

    def on_unmount(self) -> None:
        self.cancel()

    @work(thread=True, exclusive=True, group="search", name="search")
    def start_search(self) -> None:
        worker = get_current_worker()
        self.feed.run(lambda: worker.is_cancelled)

    def cancel(self) -> None:
        if self.worker is not None and self.worker.is_running:
            self.worker.cancel()

    def on_resize(self) -> None:
        self._arrange()
        self.call_after_refresh(lambda: self.tick(force=True))

    def _arrange(self) -> None:
        width, height = self.app.size
        wide = width >= WIDE
        body = self.query_one("#search-body")
        body.set_class(wide, "-wide")
        table, chart = self.query_one(DataTable), self.query_one(SearchScatter)
        room = wide or height >= CHART_ROWS
        if room:
            self.chart_instead = False
        table.display = room or not self.chart_instead
        chart.display = room or self.chart_instead
        if room and not wide:  # under the table: about 40% of the body
            chart.styles.height = max(8, (height - 4) * 2 // 5)
        else:
            chart.styles.height = "1fr"

    # -- drawing ------------------------------------------------------------------------------
    def tick(self, force: bool = False) -> None:
        feed = self.feed
        if feed.version != self._version or force:
            self._version = feed.version
            self.view = view = feed.view
            self._show_status(view)
            self._show_warning(view)
            self.query_one(SearchScatter).show(view, force)
            if view.state == "failed" and not self._failure_said:  # once: a later version must not hide a newer message
                self._failure_said = True
                self.say(f"the search could not run: {view.error}", "error")
        else:
            self._show_status(self.view)  # the elapsed time
        # the table is rebuilt (~0.1 ms a row) when trials came, at most every REFILL_SECONDS once it is long
        view = self.view
        if self._table_of is not view and (force or len(view.ranked) <= QUICK_ROWS or view.state != "searching"
                                           or time.monotonic() - self._filled_at >= REFILL_SECONDS):
            self._fill_table(view)
        self.query_one(SearchScatter).flush()

    def _show_status(self, view: SearchView) -> None:
        state = view.state
        style = STATE_STYLES.get(STATES.get(state, ""), "bold")
        label = {"searching": "SEARCHING", "stopped": "STOPPED"}.get(state, state.upper())
        line = Text.assemble((f" {label} ", style), " ", no_wrap=True, overflow="ellipsis")
        if state == "failed":
            line.append(view.error or "the search could not run", "red")
            update_changed(self.query_one("#search-status", Static), line)
            return
        total = f" of {view.total}" if view.total else ""
        line.append(f"{view.done}{total} trials", "bold")
        if view.stages > 1:  # numbered from 0, as in the table, the CLI and the results files
            line.append(f"  stage {view.stage} ({'coarse' if view.stage == 0 else 'fine'}) of {view.stages}", "cyan")
        best = view.best
        arrow = "↑" if view.maximize else "↓"
        # what else the line says, while it fits, most telling first; each in a long and a short form
        extras = [
            (("starting the worker processes…", "starting…") if state in ("starting", "searching") and not view.done
             else ("", ""), "dim"),
            ((f"best {view.metric} {_metric(best.metric)} (trial {best.index})", f"best {_metric(best.metric)}")
             if best else (f"by {view.metric} {arrow}", ""), "green" if best else ""),
            ((f"{view.diverged} diverged", f"{view.diverged} div") if view.diverged else ("", ""), "red"),
            ((f"{view.failed} failed", "") if view.failed else ("", ""), "yellow"),
            ((f"the table: the best {MAX_ROWS}", f"best {MAX_ROWS} shown") if view.done > MAX_ROWS else ("", ""),
             "dim"),
            ((f"{time.monotonic() - view.started:.0f} s", "") if state in ("starting", "searching") else ("", ""),
             "dim"),
        ]
        width = self.query_one("#search-status").size.width or 80
        for forms, style in extras:
            for text in forms:
                if text and line.cell_len + 2 + len(text) <= width:
                    line.append("  ")
                    line.append(text, style)
                    break
        update_changed(self.query_one("#search-status", Static), line)

    def _show_warning(self, view: SearchView) -> None:
        warning = self.query_one("#border-warning", Static)
        shown = bool(view.warnings)
        warning.set_class(shown, "-shown")
        if shown:
            best = view.best
            head = f"⚠ best so far (trial {best.index}) on the border: " if best is not None else "⚠ "
            warning.update(Text(head + "; ".join(view.warnings)))
        if view.warnings != self._warned:
            if shown:
                self.say("the best value lies on the border of its range: the best may lie outside it", "change")
            elif self._warned and view.best is not None:
                self.say(f"no border warning now: the best so far (trial {view.best.index}) is inside every range")
            self._warned = view.warnings

    def columns(self, view: SearchView) -> tuple[str, ...]:
        second = V.VAL_LOSS if view.metric != V.VAL_LOSS else V.VAL_ACC
        names = ["#", "trial"] + (["stage"] if view.stages > 1 else []) + [view.metric, second]
        return tuple(names + [axis.name for axis in view.axes] + ["status"])

    def _fill_table(self, view: SearchView) -> None:
        self._table_of, self._filled_at = view, time.monotonic()
        table = self.query_one(DataTable)
        columns = self.columns(view)
        keep = self.cursor_trial() if not self._follow_best else None
        table.clear(columns=True)  # columns too: their widths follow what is in them now
        for name in columns:
            table.add_column(name, key=name)
        self._columns = columns
        second = columns[4 if view.stages > 1 else 3]
        rows, styles, rank = [], [], 0
        for t in view.ranked[:MAX_ROWS]:
            rank += t.ok
            style = "" if t.ok else ("red" if t.status == "diverged" else "yellow")
            styles.append("bold green" if t.ok and rank == 1 else style)
            cells = [str(rank) if t.ok else "", str(t.index)] + ([str(t.stage)] if view.stages > 1 else [])
            cells += [_metric(t.metric), _metric(getattr(t, second))]
            cells += [compact(t.params.get(axis.name, "")) for axis in view.axes]
            rows.append((t, cells, outcome(t)))
        # the status column gets what the others leave of the table's width (a failure's reason is cut
        # there, never the numbers): each column is as wide as its widest cell, plus 2 of padding
        widths = [max([len(name), *(len(cells[i]) for _, cells, _ in rows)]) + 2 for i, name in enumerate(columns[:-1])]
        width = table.size.width or (self.app.size.width // (2 if self.app.size.width >= WIDE else 1))
        room = max(14, width - sum(widths) - 4)  # the status column's padding and the scrollbar
        for (t, cells, status), style in zip(rows, styles):
            cells.append(status if len(status) <= room else status[:room - 1] + "…")
            table.add_row(*(Text(c, style=style, justify="left" if i == len(cells) - 1 else "right")
                            for i, c in enumerate(cells)), key=str(t.index))
        if keep is not None and str(keep.index) in table.rows:
            table.move_cursor(row=table.get_row_index(str(keep.index)), animate=False)
        elif table.row_count:
            table.move_cursor(row=0, animate=False)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # moved by the user (keys), not by a refill: stop following the best trial
        if event.cursor_row != 0:
            self._follow_best = False
        elif self.view.ranked and event.row_key is not None and event.row_key.value == str(self.view.ranked[0].index):
            self._follow_best = True

    def cursor_trial(self) -> Trial | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except Exception:  # noqa: BLE001 - the cursor off the table (emptied)
            return None
        return self.view.trial(int(key.value)) if key is not None and str(key.value).isdigit() else None

    def say(self, message: str, kind: str = "info") -> None:
        self.query_one(MessageLine).say(message, kind)

    # -- actions ------------------------------------------------------------------------------
    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_trial()

    def action_open_trial(self) -> None:
        from lab.tui.screens.run import RunScreen

        trial = self.cursor_trial()
        if trial is None:
            self.say("no trial has finished yet", "error")
            return
        try:
            scenario = trial.scenario(self.scenario)
        except Exception as exc:  # noqa: BLE001 - a trial whose settings the scenario refuses: say why
            self.say(f"cannot open trial {trial.index}: {' '.join(str(exc).split())}", "error")
            return
        label = trial_label(trial, self.view.total)
        self.app.push_screen(RunScreen(scenario, source=self.source, autostart=getattr(self.app, "autostart", True),
                                       origin=label))

    def action_next_param(self) -> None:
        if not self.view.axes:
            self.say("no parameters yet: the search is starting")
            return
        name = self.query_one(SearchScatter).cycle()
        self.say(f"scatter: {self.view.metric} against {name}")

    def action_toggle_chart(self) -> None:
        width, height = self.app.size
        if width >= WIDE or height >= CHART_ROWS:
            self.say("the scatter and the table are both on screen (the terminal is large enough)")
            return
        self.chart_instead = not self.chart_instead
        self.query_one(SearchScatter).hint = "p: next parameter   g: table" if self.chart_instead else "p: next parameter"
        self._arrange()
        self.call_after_refresh(lambda: self.query_one(SearchScatter).flush(force=True))
        if not self.chart_instead:
            self.query_one(DataTable).focus()

    def action_stop(self) -> None:
        if self.worker is not None and self.worker.is_running:
            self.cancel()
            self.say("stopping the search: the trials that finished stay", "change")
        else:
            self.say("the search is not running")

    def action_back(self) -> None:
        from lab.tui.screens.run import RunScreen

        self.cancel()
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()
            below = self.app.screen
            if isinstance(below, RunScreen) and below.runner is not None and not below.runner.running:
                below.say("back from the search: the run waits, paused (space runs it)")
