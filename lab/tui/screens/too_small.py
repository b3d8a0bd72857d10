"""Shown instead of a squashed layout when the terminal is below 80x24."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from lab.tui.screens.base import LabModalScreen

MIN_WIDTH, MIN_HEIGHT = 80, 24


class TooSmallScreen(LabModalScreen):
    DEFAULT_CSS = """
    TooSmallScreen { align: center middle; background: $background; }
    TooSmallScreen Static { width: auto; height: auto; }
    """
    BINDINGS = [("q", "app.quit", "quit")]

    def compose(self) -> ComposeResult:
        yield Static(id="too-small-text")

    def on_mount(self) -> None:
        self.show_size()

    def show_size(self, width: int | None = None, height: int | None = None) -> None:
        w = self.app.size.width if width is None else width
        h = self.app.size.height if height is None else height
        for text in self.query("#too-small-text").results(Static):  # none until composed: on_mount shows it
            text.update(
                f"terminal too small: {w}x{h}\nnnlab needs at least {MIN_WIDTH}x{MIN_HEIGHT}.\n"
                "Enlarge the window (training goes on), or press q to quit.")
