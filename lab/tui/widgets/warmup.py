"""The kernel warm-up on screen: one line with a bar, the count of compiled kernels and the
time left, the same on the browser and on a run screen waiting for its kernels."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from lab.engine.warmup import Progress, WarmUp, covers

BAR_WIDTH = 16
POLL_SECONDS = 0.25


def progress_text(p: Progress, width: int = BAR_WIDTH) -> Text:
    """'compiling kernels ██████░░░░ 7/53, about 12 s left (first run only)'; empty when
    there is nothing to wait for."""
    line = p.text()
    if p.state != "compiling":
        return Text(line)
    done = round(p.fraction * width)
    head, tail = line.split(f" {p.compiled}/{p.total}", 1)
    return Text.assemble(head + " ", ("█" * done, "bold"), ("░" * (width - done), "dim"),
                         f" {p.compiled}/{p.total}{tail}")


class WarmUpLine(Static):
    """Shown while the kernels compile (not while a warm cache loads: that takes well under a
    second), hidden for good once they are ready."""

    DEFAULT_CSS = """
    WarmUpLine { height: 1; padding: 0 1; background: $boost; color: $text-warning; display: none; }
    """

    def __init__(self, kernels: WarmUp | None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.kernels = kernels

    def on_mount(self) -> None:
        self._timer = self.set_interval(POLL_SECONDS, self.poll) if self.kernels is not None else None
        self.poll()

    def poll(self) -> None:
        p = self.kernels.progress() if self.kernels is not None else Progress("idle")
        compiling = p.state == "compiling"
        if compiling:
            self.update(progress_text(p))
        if self.display != compiling:
            self.display = compiling
        if p.state == "done" and self._timer is not None:
            self._timer.stop()
            self._timer = None


def waiting_line(kernels: WarmUp | None, scenario, elapsed: float) -> Text:
    """The run screen's status while it has no simulation yet: the warm-up's progress while
    it lasts, then what is left to do (a float64 scenario compiles its own kernels)."""
    line = progress_text(kernels.progress()) if kernels is not None else Text()
    if not line:
        if kernels is not None and kernels.done and covers(scenario):
            line = Text(f"starting… {elapsed:.0f} s")
        else:
            line = Text(f"compiling kernels (first run only, cached afterwards)… {elapsed:.0f} s")
    return Text(" ").append_text(line)
