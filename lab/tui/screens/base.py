"""The base of every screen in the lab: Textual's Screen, laid out at the app's current size.

Why: Textual lays a screen out at the size a Resize event carries and, from inside that
layout, posts the screen a Resize for its own new region.  A dragged window queues several
resizes; when two of different sizes sit in a screen's queue with a callback between them
(the compositor refresh a layout queues while the app is mid-update), each lays the screen out
at its own stale size and posts the screen the other one, forever.  That queue never empties,
so the screen's message pump never yields to the event loop and the whole app stops drawing
(seen in CI: the screen under the browser alternating 80x24 and 79x24 about 5,000 times a
second; tests/test_tui_resize.py and tests/test_screen_layout.py).  The app's size is always
the latest one it has seen, so a stale event lays the screen out at that size, changes
nothing, and posts nothing.
"""

from __future__ import annotations

from textual.geometry import Size
from textual.screen import ModalScreen, Screen


class LaysOutAtAppSize:
    """The rule, for both kinds of screen.  A mixin that is not a DOM node: Textual follows
    only the first DOM-node base for a class's default CSS, so a modal screen must keep
    ModalScreen there (its translucent background)."""

    def _screen_resized(self, size: Size) -> None:
        super()._screen_resized(self.app.size)


class LabScreen(LaysOutAtAppSize, Screen):
    """A full screen: the browser, a run, a comparison, a search, a zoom."""


class LabModalScreen(LaysOutAtAppSize, ModalScreen):
    """A screen over another one: the help, the too-small notice."""
