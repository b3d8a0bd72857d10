"""One child process on a pseudo-terminal, driven from an asyncio loop.

The child gets the pty's slave as stdin, stdout and stderr and as its controlling
terminal, in a session (and process group) of its own, so it behaves as it would in a
terminal window: Textual reads the termios settings and gets SIGWINCH when `resize`
sets the window size (TIOCSWINSZ on the master; the kernel signals the terminal's
foreground process group).  Its output is read from the master with the loop's reader
and handed to `on_output`; input goes to the master without blocking the loop.

`terminate()` ends the whole process group the way a hung-up terminal would (SIGHUP),
then insists (SIGTERM, then SIGKILL after a grace period each), and reaps it, so nothing
outlives the session.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import signal
import struct
import termios
from typing import Callable

READ_CHUNK = 65536
MAX_PENDING_INPUT = 1 << 20  # bytes of input waiting for the child to read them; past it input is dropped
GRACE_SECONDS = 2.0  # between SIGHUP, SIGTERM and SIGKILL
DRAIN_SECONDS = 1.0  # after the child exits, how long its last output may take to arrive


def _set_winsize(fd: int, cols: int, rows: int, xpixels: int = 0, ypixels: int = 0) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, xpixels, ypixels))


def _take_controlling_terminal() -> None:  # pragma: no cover - runs in the child between fork and exec
    # subprocess has made the child a session leader (start_new_session) and put the slave
    # on fds 0-2: make it the session's controlling terminal (what login_tty does)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PtyProcess:
    """A running child on a pty.  Build it with `await PtyProcess.spawn(...)`."""

    def __init__(self, proc: asyncio.subprocess.Process, master: int,
                 on_output: Callable[[bytes], None]) -> None:
        self._proc = proc
        self._master = master
        self._on_output = on_output
        self._loop = asyncio.get_running_loop()
        self._reading = False
        self._paused = False
        self._output_done = asyncio.Event()
        self._pending = bytearray()
        self._writing = False
        self._closed = False
        self.dropped_input = 0
        self.ended_by_us = False  # terminate() was called: the child did not end on its own
        self._resume_reading()

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    @classmethod
    async def spawn(cls, argv: list[str], env: dict[str, str], *, cols: int, rows: int, xpixels: int = 0,
                    ypixels: int = 0, on_output: Callable[[bytes], None]) -> "PtyProcess":
        master, slave = os.openpty()
        try:
            _set_winsize(slave, cols, rows, xpixels, ypixels)
            os.set_blocking(master, False)
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True,
                start_new_session=True, preexec_fn=_take_controlling_terminal, cwd="/")
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)  # the child has its own copies: EIO on the master once it exits
        return cls(proc, master, on_output)

    # -- output ------------------------------------------------------------------------------

    def _resume_reading(self) -> None:
        if not self._reading and not self._closed and not self._output_done.is_set():
            self._loop.add_reader(self._master, self._read)
            self._reading = True

    def _stop_reading(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._master)
            self._reading = False

    def _read(self) -> None:
        try:
            data = os.read(self._master, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: every slave descriptor is closed (the child is gone)
            if exc.errno not in (errno.EIO, errno.EBADF):
                raise
            data = b""
        if not data:
            self._stop_reading()
            self._output_done.set()
            return
        self._on_output(data)

    def pause_reading(self) -> None:
        """Stop reading the child's output (the client is slow): the pty's buffer fills and the
        child's writes wait, instead of the server buffering without bound."""
        self._paused = True
        self._stop_reading()

    def resume_reading(self) -> None:
        self._paused = False
        self._resume_reading()

    # -- input -------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self._closed or not data:
            return
        if len(self._pending) + len(data) > MAX_PENDING_INPUT:
            self.dropped_input += len(data)
            return
        self._pending += data
        self._flush_input()

    def _flush_input(self) -> None:
        while self._pending and not self._closed:
            try:
                n = os.write(self._master, self._pending)
            except BlockingIOError:
                break
            except OSError:  # the child is gone
                self._pending.clear()
                break
            del self._pending[:n]
        if self._pending and not self._writing and not self._closed:
            self._loop.add_writer(self._master, self._flush_input)
            self._writing = True
        elif not self._pending and self._writing:
            self._loop.remove_writer(self._master)
            self._writing = False

    def resize(self, cols: int, rows: int, xpixels: int = 0, ypixels: int = 0) -> None:
        """The terminal's new size; the kernel sends SIGWINCH to the foreground process group."""
        if not self._closed:
            try:
                _set_winsize(self._master, cols, rows, xpixels, ypixels)
            except OSError:
                pass

    # -- ending ------------------------------------------------------------------------------

    async def wait(self) -> int:
        """The child's exit status (negative: the signal that killed it)."""
        return await self._proc.wait()

    async def drain(self, timeout: float = DRAIN_SECONDS) -> None:
        """Wait for the child's last output to be read (up to `timeout`: a grandchild that keeps
        the terminal open must not hold the session up)."""
        self._paused = False
        self._resume_reading()
        try:
            await asyncio.wait_for(self._output_done.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    def _signal_group(self, sig: int) -> bool:
        try:
            os.killpg(self._proc.pid, sig)  # the child leads its own session and process group
            return True
        except ProcessLookupError:
            return False
        except PermissionError:  # pragma: no cover - the pid was reused by another user's process group
            return False

    async def terminate(self, grace: float = GRACE_SECONDS) -> int:
        """End the child's process group: SIGHUP, SIGTERM, then SIGKILL, `grace` seconds apart,
        and reap the child.  Returns its exit status."""
        if self._proc.returncode is None:
            self.ended_by_us = True
            for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGKILL):
                if not self._signal_group(sig):
                    break
                if sig != signal.SIGKILL:
                    self._signal_group(signal.SIGCONT)  # a stopped process would not see the first two
                try:
                    await asyncio.wait_for(asyncio.shield(self._proc.wait()), grace)
                    break
                except asyncio.TimeoutError:
                    continue
            await self._proc.wait()
        # anything the child started in its group that outlived it (a group's id is not given to
        # a new process while the group has a member; with none left this finds no one: ESRCH)
        self._signal_group(signal.SIGKILL)
        return self._proc.returncode

    def close(self) -> None:
        """Release the master (the child, if still alive, gets a hang-up from the kernel)."""
        if self._closed:
            return
        self._stop_reading()
        if self._writing:
            self._loop.remove_writer(self._master)
            self._writing = False
        self._closed = True
        self._pending.clear()
        try:
            os.close(self._master)
        except OSError:
            pass
