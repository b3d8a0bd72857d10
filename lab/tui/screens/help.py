"""Help: the keys of the screen it was opened from (from that screen's KEYS, the same
declaration as its bindings and palette commands), what the per-layer table's columns
mean, and the concept behind the current scenario."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Markdown, Static

from lab.report.table import LAYER_COLUMNS
from lab.tui.keys import HELP_KEYS, Key, bindings
from lab.tui.screens.base import LabModalScreen


def keys_table(keys: tuple[Key, ...]) -> Table:
    table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 0, 0))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    group = None
    for key in keys:
        if key.group != group:
            group = key.group
            table.add_row(Text(group, style="bold underline"), "")
        table.add_row(key.shown, key.description)
    table.add_row("ctrl+p", "command palette: every key above as a command, found by name")
    return table


def columns_table() -> Table:
    table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 0, 0))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for column in LAYER_COLUMNS:
        table.add_row(column.header, column.meaning)
    return table


class HelpScreen(LabModalScreen):
    KEYS = HELP_KEYS
    BINDINGS = bindings(HELP_KEYS)
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 94%; height: 1fr; border: round $primary; background: $surface;
                                  padding: 0 1; }
    """

    def __init__(self, screen: Screen | None = None) -> None:
        super().__init__()
        self.keys: tuple[Key, ...] = getattr(screen, "KEYS", ())
        self.scenario = getattr(screen, "scenario", None)
        self.has_table = hasattr(screen, "wanted")  # the run screen shows the per-layer table
        self.about = getattr(screen, "HELP_TEXT", "")  # what a screen's own panels mean (Markdown)

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static("[b]keys[/b]  (↑↓ scroll, escape closes)")
            yield Static(keys_table(self.keys))
            if self.about:
                yield Markdown(self.about)
            if self.has_table:
                yield Static("\n[b]the per-layer table[/b]")
                yield Static(columns_table())
            if self.scenario is not None:
                yield Static(Text("\n" + self.scenario.name, style="bold"))  # user text: never markup
                yield Markdown(self.scenario.scenario.explain or "_No explanation._")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()
