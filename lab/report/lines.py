"""Terminal lines with a hanging indent, for reports read at any width (60, 80, 120 columns).

rich's tables shrink every column when the terminal is narrow, so a path or a scenario
name in a cell gets cut mid-word.  Here the left part of a line (a mark, a label, a name)
is never wrapped, the text after it wraps at words under itself, and an optional right
part (a measured value, a count) is right-aligned on the first line.  No line ends in
padding, so the output is clean in files and CI logs as well.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

MIN_BODY = 20  # below this the body wraps past the right edge rather than one word a line


def hang(console: Console, left: Text | str, body: Text | str, right: Text | str = "", right_width: int = 0,
         body_width: int | None = None) -> None:
    """Print `left`, then `body` wrapped at words under itself (in at most `body_width` cells),
    with `right` right-aligned (in `right_width` cells) on the first line."""
    left = Text(left) if isinstance(left, str) else left
    body = Text(body) if isinstance(body, str) else body
    right = Text(right) if isinstance(right, str) else right
    right_width = max(right_width, right.cell_len)
    indent = left.cell_len
    gap = 2 if right_width else 0
    width = max(MIN_BODY, console.width - indent - gap - right_width)
    if body_width is not None:
        width = min(width, max(body_width, 1))
    lines = [line for line in body.wrap(console, width, overflow="fold")] or [Text("")]
    for i, line in enumerate(lines):
        line.rstrip()
        out = (left if i == 0 else Text(" " * indent)) + line
        if i == 0 and right_width:
            out += Text(" " * (width - line.cell_len + gap + right_width - right.cell_len)) + right
        out.rstrip()
        console.print(out, soft_wrap=True, highlight=False)


def whole(console: Console, text: Text | str) -> None:
    """A line that holds a path or a name: never wrapped or cut here (a line wider than the
    terminal is left to the terminal's own soft wrap, so copying it gives the whole path)."""
    console.print(Text(text) if isinstance(text, str) else text, soft_wrap=True, highlight=False)


def fits(console: Console, *parts: str) -> bool:
    return sum(cell_len(p) for p in parts) <= console.width
