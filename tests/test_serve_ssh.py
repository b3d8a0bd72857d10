"""`nnlab serve ssh` (lab.serve.ssh): one lab per connection, on a pty, and nothing else.

Every server here listens on 127.0.0.1, port 0, with a temporary host key and a temporary
authorized_keys (never the user's).  Clients are asyncssh's, with a terminal emulator
(pyte) reading the lab's output the way a person's terminal would; one test drives the
real OpenSSH client inside tmux.  Every wait is on a condition with a generous timeout
(a first lab may wait for numba compiling; two pytest workers share two cores).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import asyncssh
import pyte
import pytest

from lab.errors import LabError
from lab.serve.ssh import SSHOptions, start_server

FIRST_SCREEN = "pick a scenario"  # the browser's banner (lab/tui/screens/browser.py)
RUN_SCREEN = "lr 3"  # the settings line of the browser's first scenario (activations/dead-relu-high-lr, lr = 3)
LR_DOWN = "lr 0.949"  # after L: lr ÷ √10
TIMEOUT = 120.0  # a condition that should hold in a second or two; minutes only when kernels compile cold
ENTER, LR_DOWN_KEY = b"\r", b"L"


@pytest.fixture(autouse=True)
def _private_dirs(tmp_path, monkeypatch):
    # the default host key goes to $XDG_DATA_HOME/nnlab: never the user's
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


@pytest.fixture
def student(tmp_path):
    """A student's key pair and an authorized_keys file listing it."""
    key = asyncssh.generate_private_key("ssh-ed25519", comment="student")
    authorized = tmp_path / "authorized_keys"
    authorized.write_bytes(b"# the class\n" + key.export_public_key("openssh"))
    return key, authorized


def run(coro, timeout: float = 300):
    """Run a test's coroutine (every test has its own loop: no plugin needed)."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, **options):
    options.setdefault("host", "127.0.0.1")
    options.setdefault("port", 0)
    options.setdefault("host_key", tmp_path / "host_key")
    server = await start_server(SSHOptions(**options))
    try:
        yield server
    finally:
        server.close()
        await server.wait_closed()


async def connect(server, key=None, **kwargs):
    kwargs.setdefault("username", "student")
    return await asyncssh.connect("127.0.0.1", server.port, known_hosts=None, config=[], agent_path=None,
                                  client_keys=[key] if key is not None else None, **kwargs)


async def until(condition, what: str, timeout: float = TIMEOUT, detail=lambda: ""):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}\n{detail()}")
        await asyncio.sleep(0.05)


class Terminal:
    """A client's terminal: an SSH session with a pty, its output drawn on a pyte screen."""

    def __init__(self, process, cols: int, rows: int) -> None:
        self.process = process
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = bytearray()
        self.reader = asyncio.get_running_loop().create_task(self._pump())

    @classmethod
    async def open(cls, conn, cols: int = 100, rows: int = 30, term: str = "xterm-256color") -> "Terminal":
        process = await conn.create_process(term_type=term, term_size=(cols, rows), request_pty="force",
                                            encoding=None)
        return cls(process, cols, rows)

    async def _pump(self) -> None:
        while True:
            data = await self.process.stdout.read(65536)
            if not data:
                return
            self.raw += data
            self.stream.feed(data)

    def text(self) -> str:
        return "\n".join(self.screen.display)

    def output(self) -> str:
        return self.raw.decode("utf-8", "replace")

    async def wait_for(self, text: str, timeout: float = TIMEOUT) -> None:
        await until(lambda: text in self.text(), repr(text), timeout, self.text)

    def press(self, keys: bytes) -> None:
        self.process.stdin.write(keys)

    def resize(self, cols: int, rows: int) -> None:
        self.screen.resize(rows, cols)
        self.process.change_terminal_size(cols, rows)

    async def ended(self, timeout: float = TIMEOUT) -> int | None:
        """The session's exit status once the server closed it."""
        await asyncio.wait_for(asyncio.shield(self.reader), timeout)
        await asyncio.wait_for(self.process.wait_closed(), timeout)
        return self.process.exit_status


def _group_members(pgid: int) -> list[int]:
    """Live processes whose process group is `pgid` (a lab leads its own group)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def _session_and_tty(pid: int) -> tuple[int, int, int]:
    """(process group, session, controlling tty number) of `pid`."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[2]), int(fields[3]), int(fields[4])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def gone(pid: int, timeout: float = 30) -> None:
    """The lab `pid` and everything in its process group have ended (and been reaped)."""
    await until(lambda: not _alive(pid) and not _group_members(pid), f"lab {pid} and its group to end", timeout,
                lambda: f"alive: {_alive(pid)}, group: {_group_members(pid)}")


# -- the lab, over SSH ------------------------------------------------------------------------

@pytest.mark.slow
def test_authorized_client_gets_a_lab_changes_it_and_resizes(tmp_path, student, caplog, monkeypatch):
    key, authorized = student
    caplog.set_level(logging.INFO, logger="lab.serve.ssh")
    monkeypatch.setenv("SECRET_TOKEN", "the server's own")  # nothing of the server's environment leaks

    async def scenario():
        async with serving(tmp_path, authorized_keys=authorized) as server:
            async with await connect(server, key) as conn:
                term = await Terminal.open(conn, 100, 30)
                await term.wait_for(FIRST_SCREEN)
                [pid] = server.child_pids()
                # its own session and process group, the pty as its controlling terminal, a small environment
                pgrp, sid, tty = _session_and_tty(pid)
                assert pgrp == sid == pid and tty != 0
                env = _environ(pid)
                assert env["TERM"] == "xterm-256color" and env["LC_ALL"] == "C.UTF-8"
                assert env["OPENBLAS_NUM_THREADS"] == env["NUMBA_NUM_THREADS"] == "1"
                assert "SECRET_TOKEN" not in env and "SSH_AUTH_SOCK" not in env
                term.press(ENTER)  # run the first scenario
                await term.wait_for(RUN_SCREEN)
                term.press(LR_DOWN_KEY)  # a key that changes the simulation: lr ÷ √10
                await term.wait_for(LR_DOWN)
                # window-change: the lab redraws for the new size (its footer on the new last row)
                term.resize(90, 26)
                await until(lambda: "q quit" in term.screen.display[25], "the footer on row 26", detail=term.text)
                await term.wait_for(LR_DOWN)
                # below 80x24 the lab covers itself with a notice
                term.resize(70, 20)
                await term.wait_for("terminal too small: 70x20")
                # and grown back, the run screen is whole again, footer on the last row
                term.resize(90, 26)
                await until(lambda: "q quit" in term.screen.display[25] and "too small" not in term.text(),
                            "the run screen back at 90x26", detail=term.text)
                term.resize(70, 20)
                await term.wait_for("terminal too small: 70x20")
                term.press(b"q")  # the notice's q quits the lab: the session ends with it
                assert await term.ended() == 0
                assert "nnlab: session ended" in term.output()  # the lab's farewell, after its own screen
            await gone(pid)

    run(scenario())
    fingerprint = asyncssh.import_public_key(authorized.read_bytes().split(b"\n", 1)[1]).get_fingerprint()
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("login 127.0.0.1:") and fingerprint in line for line in lines), lines
    assert any(line.startswith("session start") and "100x30 xterm-256color" in line for line in lines), lines
    assert any(line.startswith("session end") and fingerprint in line and "exit status 0" in line for line in lines)


@pytest.mark.slow
def test_two_labs_side_by_side_the_caps_and_the_shutdown(tmp_path, student, caplog):
    """max_sessions 2, max_per_ip 1: a second lab from one address is refused, a lab from
    another address runs independently of the first, a third is refused as busy; stopping
    the server ends both labs (127.0.0.2 and .3 are the same loopback, other addresses)."""
    key, authorized = student
    caplog.set_level(logging.INFO, logger="lab.serve.ssh")

    async def scenario():
        server = await start_server(SSHOptions(host="127.0.0.1", port=0, authorized_keys=authorized,
                                               host_key=tmp_path / "host_key", max_sessions=2, max_per_ip=1))
        try:
            a_conn = await connect(server, key)
            a = await Terminal.open(a_conn)
            await a.wait_for(FIRST_SCREEN)
            # the same address again: refused, with the reason on its screen
            async with await connect(server, key) as conn:
                again = await Terminal.open(conn)
                assert await again.ended() == 1
                assert "already running from your address" in again.text()
            # another address: its own lab
            b_conn = await connect(server, key, local_addr=("127.0.0.2", 0))
            b = await Terminal.open(b_conn, term="xterm;rm -rf ~")  # a TERM no terminfo has: the default instead
            await b.wait_for(FIRST_SCREEN)
            pids = server.child_pids()
            assert len(set(pids)) == 2
            assert sorted(_environ(pid)["TERM"] for pid in pids) == ["xterm-256color"] * 2
            # a third: busy
            async with await connect(server, key, local_addr=("127.0.0.3", 0)) as conn:
                busy = await Terminal.open(conn)
                assert await busy.ended() == 1
                assert "the lab is busy (2 of 2 sessions running); try again in a minute" in busy.text()
            # independent: a change in one lab is not in the other
            a.press(ENTER)
            await a.wait_for(RUN_SCREEN)
            a.press(LR_DOWN_KEY)
            await a.wait_for(LR_DOWN)
            assert FIRST_SCREEN in b.text()
            b.press(ENTER)
            await b.wait_for(RUN_SCREEN)
            assert LR_DOWN not in b.text()
            # the teacher stops the server: both labs end, both students are told
            server.close()
            await server.wait_closed()
            for pid in pids:
                assert not _alive(pid) and not _group_members(pid)
            for term in (a, b):
                status = await term.ended()
                assert status not in (None, 0)
                assert "the server was stopped" in term.output()
                assert "\x1b[?1049l" in term.output()  # the terminal is given back: main screen
            a_conn.close()
            b_conn.close()
        finally:
            server.close()
            await server.wait_closed()

    run(scenario())
    lines = [r.getMessage() for r in caplog.records]
    assert any("refused 127.0.0.1:" in line and "sessions already running from 127.0.0.1" in line for line in lines)
    assert any("refused 127.0.0.3:" in line and "busy (2 of 2 sessions running)" in line for line in lines)
    assert sum(line.startswith("session end") and "server stopped" in line for line in lines) == 2


@pytest.mark.slow
def test_a_client_that_drops_mid_run_leaves_no_process(tmp_path, student, caplog):
    key, authorized = student
    caplog.set_level(logging.INFO, logger="lab.serve.ssh")

    async def scenario():
        async with serving(tmp_path, authorized_keys=authorized) as server:
            conn = await connect(server, key)
            term = await Terminal.open(conn)
            await term.wait_for(FIRST_SCREEN)
            term.press(ENTER)
            await term.wait_for(RUN_SCREEN)  # training
            [pid] = server.child_pids()
            conn.abort()  # the connection drops: no goodbye, no channel close
            await gone(pid)
            await until(lambda: not server.sessions, "the session to be released")

    run(scenario())
    assert any(r.getMessage().startswith("session end") and "connection lost" in r.getMessage()
               for r in caplog.records)


@pytest.mark.slow
def test_a_lab_killed_outright_leaves_no_session_folder(tmp_path, student):
    """SIGKILL (the OOM killer, the hard CPU limit) gives the lab no chance to clean up: the
    server made its folder and removes it."""
    key, authorized = student

    async def scenario():
        async with serving(tmp_path, authorized_keys=authorized) as server:
            conn = await connect(server, key)
            term = await Terminal.open(conn)
            await term.wait_for(FIRST_SCREEN)
            [pid] = server.child_pids()
            folder = Path(os.readlink(f"/proc/{pid}/cwd"))
            assert folder.name.startswith("nnlab-session-") and folder.is_dir()
            (folder / "work.toml").write_text("kept until the session ends\n")
            os.kill(pid, signal.SIGKILL)
            await gone(pid)
            await until(lambda: not server.sessions, "the session to be released")
            assert not folder.exists()
            conn.abort()

    run(scenario())


@pytest.mark.slow
def test_idle_session_is_told_and_closed(tmp_path):
    async def scenario():
        async with serving(tmp_path, allow_anonymous=True, idle_timeout=3) as server:
            async with await connect(server) as conn:
                term = await Terminal.open(conn)
                await term.wait_for(FIRST_SCREEN)
                [pid] = server.child_pids()
                assert await term.ended() not in (None, 0)
                assert "no key pressed for 3.0 s; the session was closed" in term.text()
            await gone(pid)

    run(scenario())


@pytest.mark.slow
def test_a_lab_killed_by_its_cpu_limit_ends_with_a_message_and_the_server_goes_on(tmp_path):
    async def scenario():
        async with serving(tmp_path, allow_anonymous=True, cpu_seconds=1) as server:
            for _ in range(2):  # the server lives on: the next client gets a lab (which meets the limit too)
                async with await connect(server) as conn:
                    term = await Terminal.open(conn)
                    # training spends the second of CPU time (if starting the lab has not already)
                    await until(lambda: FIRST_SCREEN in term.text() or term.reader.done(), "the lab or its end")
                    if not term.reader.done():
                        term.press(ENTER)
                    assert await term.ended() not in (None, 0)
                    assert "this session used its CPU-time limit (each session may use" in term.text()
            assert not server.child_pids()

    run(scenario())


# -- refusals ---------------------------------------------------------------------------------

def test_unknown_key_and_passwords_are_refused(tmp_path, student, caplog):
    key, authorized = student
    stranger = asyncssh.generate_private_key("ssh-ed25519")
    caplog.set_level(logging.INFO, logger="lab.serve.ssh")

    async def scenario():
        async with serving(tmp_path, authorized_keys=authorized) as server:
            with pytest.raises(asyncssh.PermissionDenied):
                await connect(server, stranger)
            with pytest.raises(asyncssh.PermissionDenied):  # password (and keyboard-interactive) not offered
                await connect(server, None, password="hunter2")
            with pytest.raises(asyncssh.PermissionDenied):
                await connect(server, None, password="hunter2", kbdint_auth=True, password_auth=False)
            assert not server.child_pids()

    run(scenario())
    lines = [r.getMessage() for r in caplog.records]
    assert any("refused" in line and "no authorized key" in line and stranger.get_fingerprint() in line
               for line in lines), lines


def test_only_the_lab_runs(tmp_path, student, caplog):
    """exec (with or without a pty), subsystems (sftp), a shell without a pty, local and
    remote port forwarding: each refused, with one line saying why where there is a channel."""
    key, authorized = student
    caplog.set_level(logging.INFO, logger="lab.serve.ssh")

    async def scenario():
        async with serving(tmp_path, authorized_keys=authorized) as server:
            async with await connect(server, key) as conn:
                result = await conn.run("ls /", encoding="utf-8")
                assert result.exit_status == 1 and not result.stdout
                assert "only the lab runs here (commands refused)" in result.stderr
                assert f"ssh -p {server.port} 127.0.0.1" in result.stderr
                result = await conn.run("cat /etc/passwd", request_pty="force", term_type="xterm", encoding="utf-8")
                assert result.exit_status == 1 and "root:" not in result.stdout
                result = await conn.run(encoding="utf-8")  # a shell, no pty (ssh host < script)
                assert result.exit_status == 1 and "needs a terminal" in result.stderr
                with pytest.raises((asyncssh.Error, OSError)):
                    async with conn.start_sftp_client() as sftp:
                        await sftp.listdir(".")
                with pytest.raises(asyncssh.ChannelOpenError):  # ssh -L
                    await conn.open_connection("127.0.0.1", server.port)
                with pytest.raises(asyncssh.ChannelListenError):  # ssh -R
                    await conn.forward_remote_port("127.0.0.1", 0, "127.0.0.1", 9)
                assert not server.child_pids()

    run(scenario())
    lines = [r.getMessage() for r in caplog.records]
    for reason in ("exec request 'ls /'", "subsystem request 'sftp'", "shell without a terminal",
                   "port forwarding to 127.0.0.1", "remote port forwarding"):
        assert any(line.startswith("refused") and reason in line for line in lines), (reason, lines)
    assert not any(line.startswith("session start") for line in lines)


def test_silent_connections_are_closed_and_capped(tmp_path, student, monkeypatch, caplog):
    """A connection that never logs in is closed at the login timeout; past the cap of
    connections logging in from one address, a new one is closed at once."""
    key, authorized = student
    monkeypatch.setattr("lab.serve.ssh.MAX_STARTUPS_PER_IP", 2)
    caplog.set_level(logging.INFO, logger="lab.serve.ssh")

    async def scenario():
        async with serving(tmp_path, authorized_keys=authorized, login_timeout=3) as server:
            silent = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
            for reader, _ in silent:
                assert (await asyncio.wait_for(reader.readline(), 30)).startswith(b"SSH-2.0-nnlab")
            start = time.monotonic()
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            await asyncio.wait_for(reader.read(), 30)  # refused: closed at once (EOF)
            assert time.monotonic() - start < 2.5
            writer.close()
            for reader, writer in silent:
                await asyncio.wait_for(reader.read(), 30)  # EOF at the login timeout
                writer.close()
            assert time.monotonic() - start < 20

    run(scenario())
    lines = [r.getMessage() for r in caplog.records]
    assert any("connections from this address are logging in (at most 2)" in line for line in lines), lines
    assert sum(line.startswith("refused") and "Login timeout expired" in line for line in lines) == 2, lines


# -- the host key and the user's mistakes -----------------------------------------------------

def test_host_key_is_private_kept_and_reused(tmp_path, student):
    key, authorized = student
    path = tmp_path / "data" / "nnlab" / "ssh_host_ed25519_key"

    async def fingerprint_seen_by_a_client() -> tuple[str, str]:
        async with serving(tmp_path, authorized_keys=authorized, host_key=None) as server:
            async with await connect(server, key) as conn:
                return server.fingerprint, conn.get_server_host_key().get_fingerprint()

    first, seen = run(fingerprint_seen_by_a_client())
    assert first == seen and first.startswith("SHA256:")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert run(fingerprint_seen_by_a_client()) == (first, first)  # the same key after a restart
    path.chmod(0o644)
    with pytest.raises(LabError, match="can be read by others.*chmod 600"):
        run(fingerprint_seen_by_a_client())


def test_user_errors_are_one_line_lab_errors(tmp_path, student):
    key, authorized = student

    def start(**options):
        async def scenario():
            async with serving(tmp_path, **options):
                pass
        try:
            run(scenario())
        except LabError as exc:
            assert "\n" not in str(exc)  # the CLI prints it as one line
            raise

    with pytest.raises(LabError, match="no authorized_keys file at .*--allow-anonymous"):
        start(authorized_keys=tmp_path / "missing")
    empty = tmp_path / "empty_keys"
    empty.write_text("# nobody yet\n")
    with pytest.raises(LabError, match="no usable public key"):
        start(authorized_keys=empty)
    with pytest.raises(LabError, match="contradict"):
        start(authorized_keys=authorized, allow_anonymous=True)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(LabError, match="in use"):
            start(authorized_keys=authorized, port=taken.getsockname()[1])
    with pytest.raises(LabError, match="cannot listen"):
        start(authorized_keys=authorized, host="no-such-host.invalid")


# -- a real ssh client in a real terminal (tmux) ----------------------------------------------

@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("ssh") and shutil.which("tmux")),
                    reason="needs OpenSSH's client and tmux (CI installs them: apt-get install openssh-client tmux)")
def test_real_ssh_client_in_tmux(tmp_path, student):
    key, authorized = student
    identity = tmp_path / "id_ed25519"
    identity.write_bytes(key.export_private_key("openssh"))
    identity.chmod(0o600)
    # a tmux server of our own, on a socket of our own (never the user's tmux), removed at the end
    sockets = Path(tempfile.mkdtemp(prefix="nnlab-tmux-"))
    socket_path, session = sockets / f"{uuid.uuid4().hex[:12]}.sock", "lab"

    def tmux(*args: str) -> str:
        return subprocess.run(["tmux", "-S", str(socket_path), "-f", "/dev/null", *args], capture_output=True,
                              text=True, timeout=30).stdout

    def screen() -> str:
        return tmux("capture-pane", "-p", "-t", session)

    async def scenario():
        async with serving(tmp_path, authorized_keys=authorized) as server:
            ssh = (f"ssh -p {server.port} -i {identity} -F /dev/null -o IdentitiesOnly=yes -o IdentityAgent=none "
                   f"-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR 127.0.0.1")
            try:
                tmux("new-session", "-d", "-s", session, "-x", "100", "-y", "30", ssh)
                await until(lambda: FIRST_SCREEN in screen(), "the lab in tmux", TIMEOUT, screen)
                [pid] = server.child_pids()
                tmux("send-keys", "-t", session, "Enter")
                await until(lambda: RUN_SCREEN in screen(), "the run screen in tmux", TIMEOUT, screen)
                tmux("send-keys", "-t", session, "L")
                await until(lambda: LR_DOWN in screen(), "lr lowered in tmux", TIMEOUT, screen)
            finally:
                tmux("kill-server")  # the terminal window closes: ssh dies, the connection drops
                shutil.rmtree(sockets, ignore_errors=True)
            await gone(pid)

    run(scenario())
