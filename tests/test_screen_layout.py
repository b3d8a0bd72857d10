"""Stale resizes must not ping-pong a screen's layout (lab/tui/screens/base.py says why).

A dragged window once left two resizes of different sizes in the queue of the screen under the
browser, a compositor-refresh callback between them; each laid the screen out at its own size
and posted it the other, its message pump never yielded, and the app never drew again."""

from __future__ import annotations

import asyncio
import importlib
import pkgutil

from textual import events
from textual.geometry import Size
from textual.screen import Screen

import lab.tui.screens
from lab.tui.app import make_app
from lab.tui.screens.base import LabScreen, LaysOutAtAppSize

ENOUGH = 50  # a settling layout takes a handful of passes; the ping-pong takes them forever


def test_two_stale_resizes_queued_apart_settle_at_the_terminal_size():
    asyncio.run(_two_stale_resizes())


async def _two_stale_resizes() -> None:
    app = make_app(warm_up=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        below = app.screen_stack[0]  # the screen under the browser gets every resize too
        passes = []
        lay_out = below._screen_resized

        def counted(size: Size) -> None:
            passes.append(size)
            if len(passes) <= ENOUGH:  # past this it is the ping-pong: stop it so the test can fail
                lay_out(size)

        below._screen_resized = counted
        app._begin_batch()  # mid-update, as during a storm: each layout queues a compositor refresh
        try:
            for width in (79, 80):
                below.post_message(events.Resize(Size(width, 24), Size(width, 24)))
                below.call_later(lambda: None)  # something else queued between the two
            for _ in range(200):
                await pilot.pause()
                if below._message_queue.empty():
                    break
        finally:
            app._end_batch()
        assert len(passes) <= ENOUGH, f"the layout ping-ponged: {passes[:6]} ..."
        assert below.size == Size(100, 30)
        assert app.screen.size == Size(100, 30)


def test_every_screen_of_the_lab_lays_out_at_the_app_size():
    for module in pkgutil.iter_modules(lab.tui.screens.__path__):
        importlib.import_module(f"lab.tui.screens.{module.name}")
    seen, todo = [], [Screen]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith("lab."):
                seen.append(sub)
    assert len(seen) >= 8
    assert [s.__name__ for s in seen if not issubclass(s, LaysOutAtAppSize)] == []
    assert isinstance(make_app(warm_up=False).get_default_screen(), LabScreen)


def test_once_resizes_settle_the_app_takes_the_size_its_terminal_reports():
    """A resize the app never received (the terminal says 90x28, the app still 100x30) is
    handed to it within a second, and the screen is laid out at it."""
    async def body() -> None:
        app = make_app(warm_up=False)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            assert app.terminal_size() is None  # headless: the app's own size is the truth
            app.terminal_size = lambda: Size(90, 28)  # a real terminal, resized without an event
            for _ in range(300):  # nothing is called: the app's once-a-second look finds it
                await pilot.pause(0.01)
                if app.screen.size == Size(90, 28):
                    break
            assert app.size == Size(90, 28) and app.screen.size == Size(90, 28)

    asyncio.run(body())
