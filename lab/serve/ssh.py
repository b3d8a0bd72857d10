"""`nnlab serve ssh`: the lab for a room, over SSH.  Each connection gets its own lab process
(lab.serve.child) on a pseudo-terminal of the client's size, and nothing else.

- Who gets in: public keys listed in an authorized_keys file (re-read when it changes, so
  a key added during the class works at once), or anyone with `--allow-anonymous`.
  Passwords and keyboard-interactive are never offered.
- What runs: the lab, in a terminal.  Commands (`ssh host ls`), subsystems (sftp, scp),
  shells without a terminal and every kind of forwarding (ports, agent, X11) are refused,
  with one line saying so where the client has a channel to show it.
- How much: at most `max_sessions` labs at once and `max_per_ip` from one address (past
  either, the client is told the lab is busy and disconnected); a login timeout, an idle
  timeout (no key for that long ends the session); the child sets its own memory and
  CPU-time limits and its own temporary folder (lab.serve.child).
- Nothing outlives its client: when the client leaves or the connection drops, the lab's
  process group gets SIGHUP, SIGTERM, then SIGKILL, and is reaped (lab.serve.pty_session);
  stopping the server does the same for every session.
- One log line (the `logging` module, stderr) per connection, login, refusal with its
  reason, session start and session end (address, key fingerprint or "anonymous",
  duration, the lab's exit status).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from lab.errors import LabError, clip

log = logging.getLogger(__name__)


def _default_max_sessions() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class SSHOptions:
    host: str = "127.0.0.1"
    port: int = 2222
    authorized_keys: Path | None = None  # None: ~/.ssh/authorized_keys (unless allow_anonymous)
    allow_anonymous: bool = False
    max_sessions: int = field(default_factory=_default_max_sessions)
    max_per_ip: int = 2
    login_timeout: float = 30.0
    idle_timeout: float = 30 * 60.0
    memory_mb: int | None = 2048
    cpu_seconds: int | None = None
    host_key: Path | None = None  # None: lab.serve.hostkey.default_path()
    folders: list[Path] = field(default_factory=list)


# Connections still logging in: OpenSSH's MaxStartups idea (handshakes cost CPU and
# memory before anyone is known).  A logged-in connection without a session is closed
# after login_timeout.
MAX_STARTUPS = 100
MAX_STARTUPS_PER_IP = 10
MAX_CHANNELS = 8  # session channels open at once on one connection (each lab is capped separately)
CLOSE_GRACE_SECONDS = 2.0  # at shutdown, how long clients get to close their connections themselves
KEEPALIVE_SECONDS = 15  # a client that vanished (no FIN) is noticed after 4 unanswered keepalives
KEEPALIVE_COUNT = 4
MAX_COLS, MAX_ROWS = 1000, 500  # a client cannot make the lab draw a 65535x65535 screen
DEFAULT_TERM = "xterm-256color"
_TERM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")

# What Textual turns on (lab.serve.child's app), turned off again when the lab did not
# close itself (ended by a signal, by its CPU limit or by the server): otherwise the
# client's terminal stays on the alternate screen, reporting mouse moves, cursor hidden.
TERMINAL_RESET = (b"\x1b[<u"  # kitty keyboard protocol off (before leaving the alternate screen)
                  b"\x1b[?1000l\x1b[?1003l\x1b[?1015l\x1b[?1006l\x1b[?1016l"  # mouse reports off
                  b"\x1b[?2004l\x1b[?2048l\x1b[?1004l"  # bracketed paste, in-band resize, focus events off
                  b"\x1b[?7h\x1b[0m\x1b[?1049l\x1b[?25h")  # wrap on, plain text, main screen, cursor shown

ONLY_THE_LAB = "nnlab: only the lab runs here ({what} refused); connect with plain `{command}` from a terminal"
NEEDS_TERMINAL = ("nnlab: the lab needs a terminal and this session has none; connect with plain `{command}` "
                  "from a terminal window (not piped; `ssh -t` forces one)")
BUSY = "nnlab: the lab is busy ({running} of {limit} sessions running); try again in a minute"
BUSY_IP = ("nnlab: {running} labs are already running from your address (at most {limit} per address); "
           "close one, or try again in a minute")


def ssh_command(host: str, port: int) -> str:
    return f"ssh -p {port} {host}" if port != 22 else f"ssh {host}"


def _addr(peer) -> str:
    if not peer:
        return "?"
    host, port = peer[0], peer[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes >= 60:
        return f"{minutes // 60} h {minutes % 60:02d} min" if minutes % 60 else f"{minutes // 60} h"
    return f"{minutes} min {secs:02d} s" if secs else f"{minutes} min"


def _status(code: int | None) -> str:
    if code is None:
        return "not started"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _all_interfaces(host: str) -> bool:
    return host in ("", "0.0.0.0", "::", "[::]", "*")


# -- authorized keys --------------------------------------------------------------------------

class AuthorizedKeys:
    """The keys allowed in, from an authorized_keys file, re-read when the file changes.

    A line asyncssh cannot read is skipped with a warning (as OpenSSH does) rather than
    locking everybody out; `from="..."` restrictions are honoured."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple | None = None
        self._keys = None
        self.count = 0
        self._load(first=True)

    def _load(self, first: bool = False) -> None:
        import asyncssh

        try:
            st = self.path.stat()
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            if first:
                raise LabError(f"no authorized_keys file at {self.path}: put the public keys allowed in (one per "
                               "line, as in ~/.ssh/authorized_keys) in a file and pass --authorized-keys FILE, or "
                               "pass --allow-anonymous to let anyone in (a demo room)") from None
            raise
        except OSError as exc:
            if first:
                raise LabError(f"cannot read the authorized_keys file {self.path}: {exc.strerror or exc}") from None
            raise
        good, bad = [], []
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                asyncssh.import_authorized_keys(line)
            except (ValueError, asyncssh.KeyImportError) as exc:
                bad.append(f"line {number}: {clip(str(exc), 60)}")
                continue
            good.append(line)
        for problem in bad:
            log.warning("authorized_keys %s: skipped %s", self.path, problem)
        if not good:
            message = (f"no usable public key in {self.path}: add the students' keys (one per line, e.g. "
                       "ssh-ed25519 AAAA... name), or pass --allow-anonymous to let anyone in (a demo room)")
            if first:
                raise LabError(message)
            log.warning("%s; the keys read before are still in use", message)
            return
        self._keys = asyncssh.import_authorized_keys("\n".join(good) + "\n")
        self.count = len(good)
        self._stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if not first:
            log.info("authorized_keys %s re-read: %d key(s)", self.path, self.count)

    def validate(self, key, client_addr: str) -> bool:
        try:
            st = self.path.stat()
            if (st.st_mtime_ns, st.st_size, st.st_ino) != self._stamp:
                self._load()
        except OSError as exc:
            log.warning("authorized_keys %s unreadable (%s); the keys read before are still in use", self.path,
                        exc.strerror or exc)
        return self._keys is not None and self._keys.validate(key, client_addr, client_addr) is not None


# -- one connection ---------------------------------------------------------------------------

class _Connection(asyncssh.SSHServer):
    """One client connection: authentication and its refusals.  Sessions are _LabSession."""

    def __init__(self, server: "LabServer") -> None:
        self.server = server
        self.conn = None
        self.peer = "?"
        self.ip = "?"
        self.local = ("127.0.0.1", 0)
        self.who = "?"  # the key's fingerprint or "anonymous", once logged in
        self.username = ""
        self.logged_in = False
        self.tried: list[str] = []
        self.sessions: set[_LabSession] = set()
        self.refused = False
        self.started = time.monotonic()
        self._unused_timer: asyncio.TimerHandle | None = None

    # the connection

    def connection_made(self, conn) -> None:
        self.conn = conn
        peer = conn.get_extra_info("peername")
        self.peer, self.ip = _addr(peer), (peer[0] if peer else "?")
        sock = conn.get_extra_info("sockname")
        if sock:
            self.local = (sock[0], sock[1])
        refusal = self.server._admit(self)
        if refusal:
            self.refused = True
            log.info("refused %s: %s", self.peer, refusal)
            conn.close()
            return
        log.info("connection from %s", self.peer)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_unused_timer()
        if not self.logged_in and not self.refused:
            if self.tried:
                reason = f"no authorized key (tried {', '.join(self.tried)})"
            elif exc is not None:
                reason = clip(str(exc) or type(exc).__name__, 120)
            else:
                reason = "left before logging in (no public key offered)"
            user = f"; user {clip(repr(self.username), 40)}" if self.username else ""
            log.info("refused %s: %s%s", self.peer, reason, user)
        self.server._forget(self)
        for session in list(self.sessions):
            session.client_gone("connection lost" if exc else "client left")

    # authentication: keys only, or nobody at all with --allow-anonymous

    def begin_auth(self, username: str) -> bool:
        self.username = username
        if self.server.options.allow_anonymous:
            self.who = "anonymous"
            return False
        return True

    def auth_completed(self) -> None:
        self.logged_in = True
        log.info("login %s %s (user %s)", self.peer, self.who if self.who != "?" else "anonymous",
                 clip(repr(self.username), 40))
        self._arm_unused_timer()

    def public_key_auth_supported(self) -> bool:
        return not self.server.options.allow_anonymous

    def validate_public_key(self, username: str, key) -> bool:
        from lab.serve.hostkey import fingerprint

        fp = fingerprint(key)
        if self.server.authorized is not None and self.server.authorized.validate(key, self.ip):
            self.who = fp  # asyncssh checks the signature next; auth_completed says it passed
            return True
        if fp not in self.tried and len(self.tried) < 8:
            self.tried.append(fp)
        return False

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def host_based_auth_supported(self) -> bool:
        return False

    # what may be opened: sessions only; every kind of forwarding is refused

    def session_requested(self):
        if self.server.closing or len(self.sessions) >= MAX_CHANNELS:
            return False
        session = _LabSession(self)
        self.sessions.add(session)
        self._cancel_unused_timer()
        return session

    def _refuse_forwarding(self, what: str) -> bool:
        log.info("refused %s %s: %s", self.peer, self.who, what)
        return False

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int):
        return self._refuse_forwarding(f"port forwarding to {clip(str(dest_host), 60)}:{dest_port}")

    def server_requested(self, listen_host: str, listen_port: int):
        return self._refuse_forwarding(f"remote port forwarding from {clip(str(listen_host), 60)}:{listen_port}")

    def unix_connection_requested(self, dest_path: str):
        return self._refuse_forwarding("unix socket forwarding")

    def unix_server_requested(self, listen_path: str):
        return self._refuse_forwarding("remote unix socket forwarding")

    def tun_requested(self, unit):
        return self._refuse_forwarding("tunnel forwarding")

    def tap_requested(self, unit):
        return self._refuse_forwarding("tunnel forwarding")

    # a logged-in connection with nothing open is closed after login_timeout

    def session_closed(self, session: "_LabSession") -> None:
        self.sessions.discard(session)
        if not self.sessions:
            self._arm_unused_timer()

    def _arm_unused_timer(self) -> None:
        self._cancel_unused_timer()
        if self.sessions or self.conn is None:
            return
        loop = asyncio.get_running_loop()
        self._unused_timer = loop.call_later(self.server.options.login_timeout, self._close_unused)

    def _cancel_unused_timer(self) -> None:
        if self._unused_timer is not None:
            self._unused_timer.cancel()
            self._unused_timer = None

    def _close_unused(self) -> None:
        self._unused_timer = None
        if not self.sessions and self.conn is not None:
            log.info("closing %s %s: no session open for %s", self.peer, self.who,
                     _duration(self.server.options.login_timeout))
            self.conn.close()


# -- one session: a lab on a pty, or a refusal ------------------------------------------------

class _LabSession(asyncssh.SSHServerSession):
    def __init__(self, connection: _Connection) -> None:
        self.connection = connection
        self.server = connection.server
        self.chan = None
        self.kind = ""  # shell, exec, subsystem
        self.detail = ""
        self.term: str | None = None
        self.size = (80, 24, 0, 0)
        self.child = None
        self.task: asyncio.Task | None = None
        self.started = 0.0
        self.end_reason = ""  # set when the server ends the lab (client left, idle, server stopped)
        self._channel_open = True
        self._pending_input = bytearray()
        self._last_input = time.monotonic()
        self._idle_timer: asyncio.TimerHandle | None = None
        self._stopper: asyncio.Task | None = None
        self._paused = False

    # requests

    def connection_made(self, chan) -> None:
        self.chan = chan

    def pty_requested(self, term_type: str, term_size, term_modes) -> bool:
        self.term = term_type if _TERM_NAME.fullmatch(term_type or "") else DEFAULT_TERM
        self.size = self._clamp(*term_size)
        return True

    def shell_requested(self) -> bool:
        self.kind = "shell"
        return True

    def exec_requested(self, command: str) -> bool:
        self.kind, self.detail = "exec", command
        return True  # accepted only to say why nothing runs, then closed with status 1

    def subsystem_requested(self, subsystem: str) -> bool:
        self.kind, self.detail = "subsystem", subsystem
        return True

    def session_started(self) -> None:
        conn = self.connection
        command = ssh_command(conn.local[0], conn.local[1])
        if self.kind == "exec":
            self._refuse(ONLY_THE_LAB.format(what="commands", command=command),
                         f"exec request {clip(repr(self.detail), 60)}")
        elif self.kind == "subsystem":
            self._refuse(ONLY_THE_LAB.format(what=f"the {clip(self.detail, 20)} subsystem", command=command),
                         f"subsystem request {clip(repr(self.detail), 40)}")
        elif self.term is None:
            self._refuse(NEEDS_TERMINAL.format(command=command), "shell without a terminal")
        else:
            refusal = self.server._reserve(self)
            if refusal:
                self._refuse(*refusal)
            else:
                self.task = asyncio.get_running_loop().create_task(self._run())

    def _clamp(self, cols: int, rows: int, xpix: int = 0, ypix: int = 0) -> tuple[int, int, int, int]:
        cols = min(max(cols or 80, 1), MAX_COLS)
        rows = min(max(rows or 24, 1), MAX_ROWS)
        return cols, rows, min(max(xpix, 0), 65535), min(max(ypix, 0), 65535)

    def _line(self, text: str) -> bytes:
        # a terminal in raw mode needs the carriage return
        return (text + "\r\n").encode()

    def _send(self, data: bytes) -> None:
        if not self._channel_open or self.chan is None:
            return
        try:
            if self.term is not None:
                self.chan.write(data)  # a terminal: one stream, in order with the lab's output
            else:
                self.chan.write_stderr(data)
        except (OSError, asyncssh.Error):
            self._channel_open = False

    def _exit(self, status: int) -> None:
        if self._channel_open and self.chan is not None:
            try:
                self.chan.exit(status)
            except (OSError, asyncssh.Error):
                pass
        self._channel_open = False

    def _refuse(self, message: str, reason: str) -> None:
        log.info("refused %s %s: %s", self.connection.peer, self.connection.who, reason)
        self._send(self._line(message))
        self._exit(1)
        self.connection.session_closed(self)

    # the running lab

    async def _run(self) -> None:
        from lab.serve.child import command, new_session_folder
        from lab.serve.pty_session import PtyProcess

        opts = self.server.options
        conn = self.connection
        self.started = time.monotonic()
        status: int | None = None
        folder: Path | None = None
        try:
            cols, rows, xpix, ypix = self.size
            try:
                folder = new_session_folder()  # ours: removed below however the lab ends (even SIGKILLed)
                argv = command(opts.folders, writes=not opts.allow_anonymous, memory_mb=opts.memory_mb,
                               cpu_seconds=opts.cpu_seconds, folder=folder)
                self.child = await PtyProcess.spawn(argv, self.server.child_env(self.term, self._colorterm()),
                                                    cols=cols, rows=rows, xpixels=xpix, ypixels=ypix,
                                                    on_output=self._output)
            except OSError as exc:
                log.error("session %s %s: cannot start the lab: %s", conn.peer, conn.who, exc)
                self._send(self._line(f"nnlab: the lab could not be started ({exc.strerror or exc}); "
                                      "tell the teacher"))
                self._exit(1)
                return
            log.info("session start %s %s: lab pid %d, %dx%d %s", conn.peer, conn.who, self.child.pid, cols, rows,
                     self.term)
            if self._paused:
                self.child.pause_reading()
            if self.size != (cols, rows, xpix, ypix):  # resized while the lab was starting
                self.child.resize(*self.size)
            if self._pending_input:
                self.child.write(bytes(self._pending_input))
                self._pending_input.clear()
            if self.end_reason:  # the client left while the lab was starting
                self._stop(self.end_reason)
            else:
                self._arm_idle_timer()
            status = await self.child.wait()
            if self._stopper is not None:
                await self._stopper  # the rest of the group is gone too
            else:
                await self.child.terminate()  # the child ended itself: nothing of its group stays
            await self.child.drain()
            self._finish(status)
        finally:
            if self._idle_timer is not None:
                self._idle_timer.cancel()
            if self.child is not None:
                if self.child.returncode is None:  # cancelled: never leave it running
                    await asyncio.shield(self.child.terminate())
                    status = self.child.returncode
                self.child.close()
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            self.server._release(self)
            self.connection.session_closed(self)
            if self.child is not None:
                log.info("session end %s %s after %s: %s; lab %s", conn.peer, conn.who,
                         _duration(time.monotonic() - self.started), self.end_reason or "lab closed",
                         _status(status))

    def _colorterm(self) -> str | None:
        try:
            value = self.chan.get_environment().get("COLORTERM") if self.chan is not None else None
        except Exception:  # noqa: BLE001 - undecodable environment: ignore it
            return None
        return value if value in ("truecolor", "24bit") else None

    def _finish(self, status: int) -> None:
        """What the client sees after the lab: nothing more when it closed itself, else the
        terminal reset and one line saying why."""
        from lab.serve.child import CPU_LIMIT_EXIT

        opts = self.server.options
        limits = f"{opts.memory_mb:,} MB of memory" if opts.memory_mb else ""
        if opts.cpu_seconds:
            limits += (" and " if limits else "") + f"{opts.cpu_seconds:,} s of CPU time"
        limits = f" (each session may use {limits})" if limits else ""
        reset = self.child.ended_by_us or status < 0 or status == CPU_LIMIT_EXIT
        message = None
        if self.end_reason == "idle":
            message = f"nnlab: no key pressed for {_duration(opts.idle_timeout)}; the session was closed."
        elif self.end_reason == "server stopped":
            message = "nnlab: the server was stopped; the session was closed."
        elif self.end_reason:
            message = None  # the client is gone
        elif status == CPU_LIMIT_EXIT or status == -signal.SIGXCPU:
            message = f"nnlab: this session used its CPU-time limit{limits} and was closed."
        elif status < 0:
            message = f"nnlab: the lab was stopped ({_status(status)}){limits}."
        elif status != 0:
            message = f"nnlab: the lab ended with an error ({_status(status)}){limits}."
        if reset:
            self._send(TERMINAL_RESET)
        if message:
            self._send(self._line("\r\n" + message if not reset else message))
        self._exit(status if status >= 0 else 128 - status)

    def _output(self, data: bytes) -> None:
        self._send(data)

    def _stop(self, reason: str) -> None:
        """End the lab (it is running): the client left, it was idle, or the server is stopping."""
        if not self.end_reason:
            self.end_reason = reason
        if self.child is not None and self._stopper is None:
            self._stopper = asyncio.get_running_loop().create_task(self.child.terminate())

    def stop(self, reason: str) -> None:
        """From the server: end this session (a no-op once the lab has ended)."""
        if self.task is not None and not self.task.done():
            self._stop(reason)

    def client_gone(self, reason: str) -> None:
        self._channel_open = False
        if self.task is not None and not self.task.done():
            self._stop(reason)

    # the client's side of the channel

    def data_received(self, data: bytes, datatype) -> None:
        if datatype is not None:
            return
        self._last_input = time.monotonic()
        if self.child is not None:
            self.child.write(data)
        elif len(self._pending_input) < 65536:
            self._pending_input += data

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        self.size = self._clamp(width, height, pixwidth, pixheight)
        if self.child is not None:
            self.child.resize(*self.size)

    def eof_received(self) -> bool:
        # the client's input ended (`ssh -tt host < /dev/null`): nobody can use the lab now
        if self.task is not None and not self.task.done():
            self._stop("client closed its input")
        return True

    def break_received(self, msec: int) -> bool:
        return False

    def signal_received(self, signal_name: str) -> None:
        pass  # the lab is ended by the server, not by its client's signals

    def pause_writing(self) -> None:
        self._paused = True
        if self.child is not None:
            self.child.pause_reading()

    def resume_writing(self) -> None:
        self._paused = False
        if self.child is not None:
            self.child.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.client_gone("connection lost" if exc else "client left")
        if self.task is None:
            self.connection.session_closed(self)

    # idle timeout

    def _arm_idle_timer(self, delay: float | None = None) -> None:
        timeout = self.server.options.idle_timeout
        if timeout and timeout > 0:
            loop = asyncio.get_running_loop()
            self._idle_timer = loop.call_later(timeout if delay is None else delay, self._check_idle)

    def _check_idle(self) -> None:
        idle = time.monotonic() - self._last_input
        timeout = self.server.options.idle_timeout
        if idle >= timeout:
            log.info("idle %s %s: no input for %s", self.connection.peer, self.connection.who, _duration(idle))
            self._stop("idle")
        else:
            self._arm_idle_timer(timeout - idle)


# -- the server -------------------------------------------------------------------------------

class LabServer:
    """The listening server and its sessions.  `await start_server(options)` makes one."""

    def __init__(self, options: SSHOptions, host_key, authorized: AuthorizedKeys | None) -> None:
        self.options = options
        self.host_key = host_key
        self.authorized = authorized
        self.closing = False
        self.acceptor = None
        self.port = 0
        self.connections: set[_Connection] = set()
        self.sessions: set[_LabSession] = set()  # labs running (or starting)
        self._base_env = _base_environment()

    @property
    def fingerprint(self) -> str:
        from lab.serve.hostkey import fingerprint

        return fingerprint(self.host_key)

    def child_pids(self) -> list[int]:
        """The pids of the labs running now."""
        return [s.child.pid for s in self.sessions if s.child is not None and s.child.returncode is None]

    def child_env(self, term: str, colorterm: str | None) -> dict[str, str]:
        env = dict(self._base_env, TERM=term)
        if colorterm:
            env["COLORTERM"] = colorterm
        return env

    # admission

    def _admit(self, connection: _Connection) -> str | None:
        if self.closing:
            return "the server is stopping"
        waiting = [c for c in self.connections if not c.logged_in]
        if len(waiting) >= MAX_STARTUPS:
            return f"{len(waiting)} connections are logging in (at most {MAX_STARTUPS})"
        from_ip = sum(1 for c in waiting if c.ip == connection.ip)
        if from_ip >= MAX_STARTUPS_PER_IP:
            return f"{from_ip} connections from this address are logging in (at most {MAX_STARTUPS_PER_IP})"
        self.connections.add(connection)
        return None

    def _forget(self, connection: _Connection) -> None:
        self.connections.discard(connection)

    def _reserve(self, session: _LabSession) -> tuple[str, str] | None:
        """A place for a lab, or (message, reason) refusing it."""
        opts = self.options
        if self.closing:
            return "nnlab: the server is stopping.", "the server is stopping"
        running = len(self.sessions)
        if running >= opts.max_sessions:
            return (BUSY.format(running=running, limit=opts.max_sessions),
                    f"busy ({running} of {opts.max_sessions} sessions running)")
        ip = session.connection.ip
        from_ip = sum(1 for s in self.sessions if s.connection.ip == ip)
        if from_ip >= opts.max_per_ip:
            return (BUSY_IP.format(running=from_ip, limit=opts.max_per_ip),
                    f"{from_ip} sessions already running from {ip} (at most {opts.max_per_ip})")
        self.sessions.add(session)
        return None

    def _release(self, session: _LabSession) -> None:
        self.sessions.discard(session)

    # starting and stopping

    async def start(self) -> None:
        opts = self.options
        try:
            self.acceptor = await asyncssh.create_server(
                lambda: _Connection(self), opts.host, opts.port,
                server_host_keys=[self.host_key], server_version="nnlab",
                encoding=None, line_editor=False,  # raw bytes both ways: every key reaches the lab
                password_auth=False, kbdint_auth=False, host_based_auth=False, gss_host=None,
                agent_forwarding=False, x11_forwarding=False, allow_scp=False, sftp_factory=None,
                login_timeout=opts.login_timeout, keepalive_interval=KEEPALIVE_SECONDS,
                keepalive_count_max=KEEPALIVE_COUNT)
        except socket.gaierror as exc:
            raise LabError(f"cannot listen on {opts.host!r}: not an address or host name this machine knows "
                           f"({exc.strerror or exc})") from None
        except OSError as exc:
            where = f"{opts.host or '*'}:{opts.port}"
            if exc.errno == 98 or "in use" in str(exc):  # EADDRINUSE
                raise LabError(f"port {opts.port} is in use on {opts.host or 'every interface'} (another server?); "
                               "pick another with --port") from None
            if exc.errno == 99:  # EADDRNOTAVAIL
                raise LabError(f"cannot listen on {where}: {opts.host} is not an address of this machine") from None
            if exc.errno == 13:  # EACCES
                raise LabError(f"cannot listen on {where}: permission denied (ports below 1024 need root); "
                               "pick another with --port") from None
            raise LabError(f"cannot listen on {where}: {exc.strerror or exc}") from None
        self.port = self.acceptor.get_port()

    def close(self) -> None:
        """Stop listening and end every session (their labs get SIGHUP, SIGTERM, SIGKILL)."""
        if self.closing:
            return
        self.closing = True
        if self.acceptor is not None:
            self.acceptor.close()
        for session in list(self.sessions):
            session.stop("server stopped")
        for connection in list(self.connections):
            if not connection.sessions and connection.conn is not None:
                connection.conn.close()

    async def wait_closed(self) -> None:
        """Until every lab is reaped and every connection closed."""
        tasks = [s.task for s in list(self.sessions) if s.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        # each client was sent its last words and exit status: let it leave on its own (OpenSSH
        # drops what it has not yet written to the terminal when the server disconnects first)
        waits = [asyncio.ensure_future(c.conn.wait_closed()) for c in list(self.connections) if c.conn is not None]
        if waits:
            await asyncio.wait(waits, timeout=CLOSE_GRACE_SECONDS)
        for connection in list(self.connections):
            if connection.conn is not None:
                connection.conn.close()
        if waits:
            await asyncio.wait(waits, timeout=5)
            for wait in waits:
                wait.cancel()
        if self.acceptor is not None:
            await self.acceptor.wait_closed()

    async def __aenter__(self) -> "LabServer":
        return self

    async def __aexit__(self, *exc) -> None:
        self.close()
        await self.wait_closed()


def _base_environment() -> dict[str, str]:
    """What a lab's process gets from the server's environment: little (no secrets, no
    SSH_AUTH_SOCK), enough to find Python and the compiled kernels' cache."""
    from lab.serve.child import thread_environment

    home = os.environ.get("HOME") or os.path.expanduser("~")
    env = {"PATH": os.environ.get("PATH") or os.defpath, "HOME": home, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    for name in ("XDG_CACHE_HOME", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV", "USER", "LOGNAME"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    for name, value in os.environ.items():
        if name.startswith(("NNLAB_", "NUMBA_")):
            env[name] = value
    env.update(thread_environment())  # one BLAS/OpenMP/numba thread per session
    return env


async def start_server(options: SSHOptions) -> LabServer:
    """Check the options, load (or make) the host key, and listen.  Raises LabError for what
    the user can fix.  The server's `port` is the one bound (useful with port 0)."""
    from lab.serve import hostkey

    if options.max_sessions < 1 or options.max_per_ip < 1:
        raise LabError("--max-sessions and --max-per-ip must be at least 1")
    if options.login_timeout <= 0:
        raise LabError("--login-timeout must be more than 0 seconds")
    if not 0 <= options.port <= 65535:
        raise LabError(f"--port {options.port}: a port is 0 to 65535")
    authorized = None
    if options.allow_anonymous:
        if options.authorized_keys is not None:
            raise LabError("--authorized-keys and --allow-anonymous contradict each other: anonymous access lets "
                           "everyone in without a key; pass one of them")
    else:
        path = options.authorized_keys or Path.home() / ".ssh" / "authorized_keys"
        authorized = AuthorizedKeys(Path(path).expanduser())
    key = hostkey.load_or_create(options.host_key)
    server = LabServer(options, key, authorized)
    await server.start()
    if options.allow_anonymous:
        log.warning("anonymous access: anyone who reaches %s gets a lab, with no key (saving and exporting "
                    "are off)", _addr((options.host or "*", server.port)))
        if _all_interfaces(options.host):
            log.warning("listening on every interface with anonymous access: anyone on this machine's networks "
                        "can use it; prefer --host with the classroom network's address, or authorized keys")
    return server


def banner(server: LabServer) -> str:
    from lab.serve.hostkey import default_path

    opts = server.options
    host = opts.host
    if _all_interfaces(host):
        host = socket.gethostname()
    who = ("anyone (anonymous, no key)" if opts.allow_anonymous
           else f"{server.authorized.count} key(s) in {server.authorized.path}")
    limits = f"{opts.memory_mb:,} MB memory" if opts.memory_mb else "no memory limit"
    limits += f", {opts.cpu_seconds:,} s CPU" if opts.cpu_seconds else ""
    lines = [
        f"nnlab serve ssh: listening on {_addr((opts.host or '*', server.port))}",
        f"  who may log in: {who}",
        f"  up to {opts.max_sessions} lab(s) at once, {opts.max_per_ip} per address; each: {limits}; "
        f"closed after {_duration(opts.idle_timeout)} without a key",
        f"  host key: {server.fingerprint} ({opts.host_key or default_path()})",
        "",
        f"Students connect with:   {ssh_command(host, server.port)}",
        f"and check that ssh shows this key fingerprint: {server.fingerprint}",
        "",
        "Ctrl-C stops the server and ends every session.",
    ]
    return "\n".join(lines)


def _setup_logging() -> None:
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(logging.INFO)
    logging.getLogger("asyncssh").setLevel(logging.WARNING)  # it logs every packet exchange at INFO


def serve_ssh(options: SSHOptions) -> None:
    """Serve until Ctrl-C or SIGTERM, then end every session and return."""
    _setup_logging()

    async def main() -> None:
        server = await start_server(options)
        print(banner(server), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            running = len(server.sessions)
            log.info("stopping: ending %d session(s)", running)
            server.close()
            await server.wait_closed()
            log.info("stopped")

    asyncio.run(main())
