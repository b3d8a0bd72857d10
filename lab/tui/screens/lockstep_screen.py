"""What the compare and ensemble screens share: several runs stepped together by one worker.

Both screens own a Lockstep (lab/tui/lockstep.py, or its ensemble subclass) that a background
thread drives; the screen only reads what the worker published (its frame, snapshots, state and
messages).  This base class holds the worker, the pause/step/pace/reset keys, the "poll fast
for a few frames after a key" rule, and the status line's common start.  The subclasses draw
their own tables and charts.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual.worker import get_current_worker

from lab import pace as paces
from lab.tui.screens.base import LabScreen
from lab.tui.widgets.panels import STATE_STYLES, MessageLine

FRAME_SECONDS = 0.08  # as the run screen: about 12 frames a second


class LockstepScreen(LabScreen):
    WORKER_GROUP = "lockstep"  # the worker's group and name (tests find the worker by it)
    RESET_MESSAGE = "every run back to step 0, replayed together"
    lockstep: object  # set by the subclass's __init__, before mount

    def __init__(self) -> None:
        super().__init__()
        self._said = 0
        self._started = time.perf_counter()

    # -- worker -------------------------------------------------------------------------------
    def start_worker(self) -> None:
        """Build the runs' simulations and step them together until the screen goes."""
        self.run_worker(self._loop, thread=True, exclusive=True, group=self.WORKER_GROUP, name=self.WORKER_GROUP)

    def _loop(self) -> None:
        worker = get_current_worker()
        self.lockstep.loop(lambda: worker.is_cancelled)

    # -- layout -------------------------------------------------------------------------------
    def on_resize(self) -> None:
        self.call_after_refresh(self._after_resize)

    def _after_resize(self) -> None:
        self._arrange()
        self.tick(force=True)

    def _arrange(self) -> None:  # the subclass shares the height between its table and chart
        raise NotImplementedError

    def tick(self, force: bool = False) -> None:  # the subclass draws a frame
        raise NotImplementedError

    # -- messages and the status line ---------------------------------------------------------
    def say(self, message: str, kind: str = "info") -> None:
        self.query_one(MessageLine).say(message, kind)

    def relay_messages(self) -> None:
        """Show what the worker said since the last frame."""
        ls = self.lockstep
        if ls.said != self._said:
            self._said = ls.said
            self.say(ls.message, ls.message_kind)

    def starting_line(self, what: str) -> Text:
        elapsed = time.perf_counter() - self._started
        return Text(f" STARTING  building {what}… {elapsed:.0f} s", no_wrap=True, overflow="ellipsis")

    def status_line(self, state: str, step: int, pace: str, extras: list[tuple[str, str]], width: int) -> Text:
        """`RUNNING  step 120/300  pace 20/s` and then each extra, most telling first, while it fits."""
        total = self.lockstep.total_steps
        where = f"step {step:,}/{total:,}" if step <= total else f"step {step:,} (past {total:,})"
        line = Text.assemble((f" {state.upper()} ", STATE_STYLES.get(state, "bold")), " ", (where, "bold"), "  ",
                             (pace, "cyan"), no_wrap=True, overflow="ellipsis")
        for text, style in extras:
            if text and line.cell_len + 2 + len(text) <= width:
                line.append("  ")
                line.append(text, style)
        return line

    def pace_text(self, state: str) -> str:
        ls = self.lockstep
        text = f"pace {paces.describe(ls.pace)}"
        if state == "running" and ls.pace is not None and 0 < ls.steps_per_s < 0.8 * ls.pace:
            text += f" (runs {ls.steps_per_s:,.0f}/s)"
        elif state == "running" and ls.pace is None and ls.steps_per_s:
            text += f" {ls.steps_per_s:,.0f}/s"
        return text

    def _watch_for_effect(self) -> None:
        """Poll fast for a few frames after a key press, so its effect shows at once."""
        for delay in (0.01, 0.02, 0.04, 0.06):
            self.set_timer(delay, self.tick)

    # -- actions ------------------------------------------------------------------------------
    def action_toggle(self) -> None:
        self.lockstep.toggle()
        self._watch_for_effect()

    def action_step_once(self) -> None:
        self.lockstep.step_once()
        self._watch_for_effect()

    def action_faster(self) -> None:
        self.lockstep.faster()
        self.tick()

    def action_slower(self) -> None:
        self.lockstep.slower()
        self.tick()

    def action_reset(self) -> None:
        self.lockstep.reset()
        self.say(self.RESET_MESSAGE, "change")
        self._watch_for_effect()
