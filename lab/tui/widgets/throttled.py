"""A plotext chart that redraws at most every REDRAW_SECONDS, but always shows the latest data.

plotext's build() costs about 10 ms, so a chart fed twelve frames a second would spend a core
on it.  `show` keeps the newest data; `flush` (called by the show and by every frame) draws it
when the throttle allows, or at once with `force` (a key press, a resize): the last data is
always drawn in the end.
"""

from __future__ import annotations

import time
from typing import Any

from textual_plotext import PlotextPlot

REDRAW_SECONDS = 0.3


class ThrottledPlot(PlotextPlot):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._pending: Any = None
        self._drawn: Any = None  # the data last drawn (held, so its id cannot be reused)...
        self._drawn_key: tuple | None = None  # ...and the view settings it was drawn with
        self._last = 0.0

    def view_key(self) -> tuple:
        """Besides the data and the size, what changes the picture (the metric shown, ...)."""
        return ()

    def show(self, data: Any, force: bool = False) -> None:
        """Draw `data` now if the throttle allows (or `force`), else as soon as it does."""
        self._pending = data
        self.flush(force)

    def flush(self, force: bool = False) -> None:
        data = self._pending
        if data is None or not self.display or not self.size.width:
            return
        key = (*self.view_key(), self.size)
        if data is self._drawn and key == self._drawn_key and not force:
            return
        now = time.perf_counter()
        if not force and now - self._last < REDRAW_SECONDS:
            return
        self._drawn, self._drawn_key, self._last = data, key, now
        self._draw(data)
        self.refresh()

    def _draw(self, data: Any) -> None:  # the subclass plots `data` on self.plt
        raise NotImplementedError
