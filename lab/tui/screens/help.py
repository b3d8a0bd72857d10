"""Help: every binding, and the concept behind the current scenario."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown, Static

from lab.scenario.schema import Scenario

KEYS = [
    ("space", "run / pause"), ("n", "one step"), ("+ / -", "faster / slower (steps/s cap)"),
    ("l / L", "learning rate ×√10 / ÷√10"), ("i", "next initialisation (re-initialises the weights)"),
    ("a", "next activation (keeps the weights)"), ("d / D", "dropout +0.1 / −0.1"),
    ("m", "dropout mode: inverted, vanilla, vanilla-noscale (the bug)"), ("b", "batchnorm on/off"),
    ("o", "next optimizer"), ("s", "next lr schedule"), ("p", "next preprocessing"), ("w", "next weight decay"),
    ("r / R", "reset: same initialisation / new seed (your changes are kept)"),
    ("h", "histograms: activations|gradients or weights|updates"), ("v", "context view: explain, events, "
                                                                   "decision boundary, weight path, lr"),
    ("z", "zoom on a layer: its histogram over the whole run, a step cursor (←/→, shift ±10, home, end = live), "
          "log counts"), ("c", "compare the variants side by side"),
    ("ctrl+s", "save as a scenario (replays headless, bit for bit)"),
    ("e", "export CSV: the history and every layer's statistics over time"),
    ("ctrl+p", "command palette (every action)"), ("?", "this help"), ("escape", "back"), ("q", "quit"),
]


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,question_mark,q", "app.pop_screen", "close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90%; height: 90%; border: round $primary; background: $surface;
                                  padding: 0 1; }
    """

    def __init__(self, scenario: Scenario | None = None) -> None:
        super().__init__()
        self.scenario = scenario

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for key, what in KEYS:
            table.add_row(key, what)
        with VerticalScroll():
            yield Static("[b]nnlab keys[/b]  (escape closes)")
            yield Static(table)
            if self.scenario is not None:
                yield Static(f"\n[b]{self.scenario.name}[/b]")
                yield Markdown(self.scenario.scenario.explain or "_No explanation._")
