"""SSH serving benchmarks: time from `ssh` connect to the lab's first screen, and the UI frame
rate (and key-press latency) of 1, 2 and 4 labs training at once from one server.

    python -m benchmarks.serve [--sessions 1,2,4] [--seconds 8] [--repeats 3]

The server (lab.serve.ssh, anonymous, 127.0.0.1, a random port, a throw-away host key) and
the clients (asyncssh, each with a pyte screen standing in for a person's terminal) run in
this process; each lab is its own process, as in a classroom.

What is counted:

- **first screen**: from the call to `asyncssh.connect` (TCP, key exchange, login, pty and
  shell requests, the lab's process starting, Python and Textual importing) to the client's
  screen showing the browser's banner ("pick a scenario"); and the SSH part of it, from the
  same start to the shell request granted (the lab's process is spawned then).  The kernels load from the
  numba cache (run the lab once before, or the first repeat includes compiling them).
- **frames/s**: each client answers the lab's query for synchronized output (DECRQM 2026,
  as kitty, WezTerm, iTerm2, foot and tmux do), so Textual wraps every screen update it
  writes in `ESC[?2026h ... ESC[?2026l`: one frame is one `ESC[?2026l` received by the
  client, i.e. one complete update of the screen as the person sees it.  Counted over
  `--seconds` while every lab trains the browser's first scenario (Enter), 100x30 each,
  after a 1 s settling period.  The run screen draws at most 10 frames/s
  (lab.tui.screens.run.FRAME_SECONDS), which is the target.
- **KB/s**: bytes the client received per second over the same window.
- **key -> screen**: after the count, in each lab at once, `L` (lr ÷ √10) is sent and the
  time until the client's screen shows the new lr is measured.

This machine's cores are shared by every lab, the server and the clients: with more labs
than cores, each lab's training slows (by design: separate processes, one BLAS thread each)
and the table shows what that does to each person's screen.  Nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

FIRST_SCREEN = "pick a scenario"
RUN_SCREEN = "lr 3"  # the browser's first scenario (activations/dead-relu-high-lr) trains at lr = 3
LR_DOWN = "lr 0.949"
SYNC_QUERY, SYNC_REPLY, SYNC_END = b"\x1b[?2026$p", b"\x1b[?2026;2$y", b"\x1b[?2026l"
COLS, ROWS = 100, 30
TIMEOUT = 180.0


class Client:
    """One person: an SSH session with a pty, a pyte screen, and counters."""

    def __init__(self, conn, process) -> None:
        import pyte

        self.conn, self.process = conn, process
        self.screen = pyte.Screen(COLS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.frames = 0
        self.bytes = 0
        self._tail = b""
        self.reader = asyncio.get_running_loop().create_task(self._pump())

    @classmethod
    async def connect(cls, port: int) -> "Client":
        import asyncssh

        conn = await asyncssh.connect("127.0.0.1", port, username="bench", known_hosts=None, config=[],
                                      agent_path=None, client_keys=None)
        process = await conn.create_process(term_type="xterm-256color", term_size=(COLS, ROWS),
                                            request_pty="force", encoding=None)
        return cls(conn, process)

    async def _pump(self) -> None:
        while True:
            data = await self.process.stdout.read(65536)
            if not data:
                return
            seen = self._tail + data  # a sequence may be split across reads
            if SYNC_QUERY in seen and SYNC_QUERY not in self._tail:
                self.process.stdin.write(SYNC_REPLY)
            self.frames += seen.count(SYNC_END) - self._tail.count(SYNC_END)
            self._tail = seen[-16:]
            self.bytes += len(data)
            self.stream.feed(data)

    def text(self) -> str:
        return "\n".join(self.screen.display)

    async def wait_for(self, text: str, timeout: float = TIMEOUT) -> float:
        start = time.perf_counter()
        while text not in self.text():
            if self.reader.done() or time.perf_counter() - start > timeout:
                raise RuntimeError(f"no {text!r} on the client's screen:\n{self.text()}")
            await asyncio.sleep(0.002)
        return time.perf_counter()

    async def close(self) -> None:
        self.conn.close()
        await self.conn.wait_closed()


async def first_screen(port: int, repeats: int) -> tuple[list[float], list[float]]:
    """(connect -> session open, connect -> first screen) for `repeats` connections in turn."""
    opened, shown = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        client = await Client.connect(port)  # returns once the shell request is accepted: the lab is starting
        opened.append(time.perf_counter() - start)
        shown.append(await client.wait_for(FIRST_SCREEN) - start)
        await client.close()
        await asyncio.sleep(0.5)  # the lab ends before the next one starts
    return opened, shown


async def frame_rates(port: int, sessions: int, seconds: float) -> dict[str, list[float]]:
    clients = await asyncio.gather(*(Client.connect(port) for _ in range(sessions)))
    try:
        await asyncio.gather(*(c.wait_for(FIRST_SCREEN) for c in clients))
        for c in clients:
            c.process.stdin.write(b"\r")  # run the first scenario
        await asyncio.gather(*(c.wait_for(RUN_SCREEN) for c in clients))
        await asyncio.sleep(1.0)
        frames0 = [c.frames for c in clients]
        bytes0 = [c.bytes for c in clients]
        start = time.perf_counter()
        await asyncio.sleep(seconds)
        elapsed = time.perf_counter() - start
        out = {"fps": [(c.frames - f) / elapsed for c, f in zip(clients, frames0)],
               "kbps": [(c.bytes - b) / elapsed / 1024 for c, b in zip(clients, bytes0)]}
        pressed = time.perf_counter()
        for c in clients:
            c.process.stdin.write(b"L")
        shown = await asyncio.gather(*(c.wait_for(LR_DOWN, 30) for c in clients))
        out["key_ms"] = [1000 * (t - pressed) for t in shown]
        if not any(c.frames for c in clients):
            raise RuntimeError("no synchronized-output frame seen: did the lab get the DECRQM reply?")
        return out
    finally:
        await asyncio.gather(*(c.close() for c in clients))
        await asyncio.sleep(0.5)


async def measure(sessions: list[int], seconds: float, repeats: int) -> None:
    from lab.serve.ssh import SSHOptions, start_server

    with tempfile.TemporaryDirectory() as tmp:
        options = SSHOptions(host="127.0.0.1", port=0, allow_anonymous=True, max_sessions=max(sessions),
                             max_per_ip=max(sessions), host_key=Path(tmp) / "host_key")
        import logging

        logging.getLogger("lab.serve.ssh").setLevel(logging.ERROR)  # no warning about anonymous access here
        server = await start_server(options)
        try:
            print(f"SSH serving benchmark: {os.cpu_count()} cores, {COLS}x{ROWS} terminals, asyncssh clients, "
                  f"{seconds:g} s per frame count")
            opened, times = await first_screen(server.port, repeats)
            print(f"  ssh connect -> first screen: median {statistics.median(times):.2f} s "
                  f"(min {min(times):.2f}, max {max(times):.2f}, {repeats} connections one after another); "
                  f"of which connect -> logged in, pty and shell granted: median {statistics.median(opened):.3f} s")
            print(f"  {'labs training':>13}  {'frames/s per lab (min / median)':>32}  {'KB/s per lab':>12}  "
                  f"{'key -> screen ms (max)':>22}")
            for n in sessions:
                r = await frame_rates(server.port, n, seconds)
                print(f"  {n:>13}  {min(r['fps']):>15.1f} / {statistics.median(r['fps']):<14.1f}  "
                      f"{statistics.median(r['kbps']):>12.0f}  {max(r['key_ms']):>22.0f}")
        finally:
            server.close()
            await server.wait_closed()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default="1,2,4", help="numbers of simultaneous labs, comma-separated")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each frame count")
    parser.add_argument("--repeats", type=int, default=3, help="connections timed to the first screen")
    args = parser.parse_args(argv)
    sessions = [int(s) for s in args.sessions.split(",") if s.strip()]
    asyncio.run(measure(sessions, args.seconds, args.repeats))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
