"""A window dragged across 80x24, in a real terminal: the lab must keep drawing.

Pilot's resize_terminal goes through the app one size at a time; a person dragging a window
(or an SSH client resizing) sends SIGWINCH faster than the app can push and pop the
too-small notice.  That once left Textual's Footer in a recompose that never finished: the
app held its batch lock and drew nothing more, for good.  These tests run `python -m lab` in
a pseudo-terminal read by pyte (a terminal emulator in Python), resize it as fast as a drag
does, and check the picture the person sees afterwards.
"""

from __future__ import annotations

import fcntl
import os
import pty
import random
import select
import signal
import struct
import sys
import termios
import time

import pyte
import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs a Linux pty")

SIZES = [(70, 20), (80, 24), (79, 24), (100, 30), (80, 23), (120, 40)]
SETTLED = (100, 30)


class Terminal:
    """`python -m lab` in a pty, its output fed to a pyte screen of the same size."""

    def __init__(self, cols: int, rows: int) -> None:
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the lab, as a person starts it, in a terminal of this size
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            # a fresh environment: COLUMNS and LINES (set at C level under pytest) would
            # override the pty's size
            env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
            os.execve(sys.executable, [sys.executable, "-m", "lab"], {**env, "TERM": "xterm-256color"})

    def resize(self, cols: int, rows: int) -> None:
        self.screen.resize(rows, cols)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        os.kill(self.pid, signal.SIGWINCH)

    def read_for(self, seconds: float) -> None:
        """Take in what the app writes for this long (the app blocks if nobody reads)."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            ready, _, _ = select.select([self.fd], [], [], max(0.0, left))
            if ready:
                try:
                    self.stream.feed(os.read(self.fd, 1 << 16))
                except OSError:
                    return
            if left <= 0:
                return

    def lines(self) -> list[str]:
        return list(self.screen.display)

    def wait_until(self, ok, seconds: float) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.read_for(0.05)
            if ok(self.lines()):
                return True
        return False

    def close(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)


def browser_drawn(lines: list[str]) -> bool:
    """The whole browser is on screen: title on the first row, keys on the last, no notice."""
    text = "\n".join(lines)
    return "pick a scenario" in lines[0] and "quit" in lines[-1] and "too small" not in text


@pytest.fixture
def terminal():
    term = Terminal(*SETTLED)
    yield term
    term.close()


@pytest.mark.parametrize("seed", [3, 10])
def test_the_lab_draws_whole_after_a_window_is_dragged_across_80x24(terminal, seed):
    assert terminal.wait_until(browser_drawn, 120), "the browser never came up:\n" + "\n".join(terminal.lines())
    rng = random.Random(seed)
    for storm in range(3):
        for _ in range(60):
            terminal.resize(*rng.choice(SIZES))
            terminal.read_for(rng.choice([0.0, 0.01, 0.03, 0.1]))  # as fast as a drag, then slower
        terminal.resize(*SETTLED)
        assert terminal.wait_until(browser_drawn, 20), \
            f"after resize storm {storm + 1}, the picture at 100x30 is:\n" + "\n".join(terminal.lines())
    # and it still answers keys: the help opens
    os.write(terminal.fd, b"?")
    assert terminal.wait_until(lambda lines: any("Keys" in line or "keys" in line for line in lines[:6]), 20), \
        "\n".join(terminal.lines())


def test_the_notice_comes_and_goes_with_the_size(terminal):
    assert terminal.wait_until(browser_drawn, 120)
    terminal.resize(70, 20)
    assert terminal.wait_until(lambda lines: "too small: 70x20" in "\n".join(lines), 20), "\n".join(terminal.lines())
    terminal.resize(*SETTLED)
    assert terminal.wait_until(browser_drawn, 20), "\n".join(terminal.lines())
