"""`nnlab serve web`: the lab in a browser, one lab process per tab, with textual-serve.

textual-serve (https://github.com/Textualize/textual-serve) serves a page that draws a
terminal with xterm.js and, for each websocket the page opens, starts one process of a
command under Textual's web driver (selected through environment variables), relaying
the terminal's bytes both ways.  It has no authentication of its own, so this server binds
to the loopback address unless told otherwise in so many words (`--i-understand-no-auth`);
a remote viewer uses `ssh -L 8000:localhost:8000 teacher-host` instead.

What this module adds to textual-serve's `Server`, and why:

- The lab runs as `python -m lab.serve.child` (lab.serve.child.command), started without a
  shell in its own session (process group) and asked to end with SIGTERM should this
  server die without cleaning up (PR_SET_PDEATHSIG; Textual's web driver does not end the
  app when its stdin closes).  A session ends when its tab closes (textual-serve sends
  the app "quit"); one that does not exit within QUIT_GRACE seconds gets SIGTERM, then
  SIGKILL, and its temporary folder is removed for it.  When the lab process ends on its
  own (q, a crash, the CPU-time limit) the tab's websocket is closed, so the page says
  "Session ended" instead of showing a terminal that no longer answers.
- Server shutdown (Ctrl-C, SIGTERM) ends every session before it returns: no lab process
  outlives the server.  textual-serve's own `serve()` leaves the websockets open and
  aiohttp then waits up to a minute for them.
- A cap on concurrent sessions (`max_sessions`): the tab past it sees "the lab is full" in
  its terminal and starts no process.
- The page's URLs (its script and its websocket) follow the address the browser used, so
  the page works through `ssh -L 9000:localhost:8000` (any local port) and on a server
  bound to 0.0.0.0; textual-serve builds them from its bind address, which breaks both.
- Requests must name a loopback host when the server is bound to loopback (a web page the
  teacher visits cannot reach the lab by DNS rebinding; `--i-understand-no-auth` lifts this,
  for a reverse proxy in front), and the websocket refuses cross-site origins (another
  site's page cannot open a lab in the teacher's browser).
- The page is titled "nnlab", and uses the Roboto Mono font textual-serve bundles instead
  of fetching it from Google: the page makes no request beyond this server.
- Each session's start and end, and each refusal, is logged (one line, client address).
"""

from __future__ import annotations

import asyncio
import ctypes
import ipaddress
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lab.errors import LabError, clip

log = logging.getLogger("nnlab.serve.web")

TITLE = "nnlab"
QUIT_GRACE = 5.0  # seconds a lab has to exit after "quit" (its tab closed) before SIGTERM
TERM_GRACE = 3.0  # seconds after SIGTERM before SIGKILL
SHUTDOWN_TIMEOUT = 5.0  # seconds aiohttp waits for request handlers once the sessions are ended
BUSY_HOLD = 60.0  # seconds the "lab is full" message stays before the page offers to retry
SSH_HINT = "ssh -L 8000:localhost:8000 teacher-host"
_WILDCARDS = {"", "0.0.0.0", "::"}
_HOST_HEADER = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$")


def default_max_sessions() -> int:
    """One lab per core: a training lab keeps one core busy."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class WebOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    i_understand_no_auth: bool = False
    memory_mb: int | None = None
    cpu_seconds: int | None = None
    folders: list[Path] = field(default_factory=list)
    writes: bool = False  # browser sessions are anonymous: saving and exporting are off
    max_sessions: int | None = None  # None: default_max_sessions()


# ---------------------------------------------------------------- addresses


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """Whether every address `host` names is this machine's loopback ("" and 0.0.0.0 are not:
    they are every interface).  A name is resolved (no network for "localhost" or an IP)."""
    if host in _WILDCARDS:
        return False
    if host.lower() == "localhost":
        return True
    ip = _ip(host)
    if ip is not None:
        return ip.is_loopback
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise LabError(f"--host {clip(host)}: cannot resolve it ({exc})") from None
    return bool(infos) and all(_ip(info[4][0]) is not None and _ip(info[4][0]).is_loopback for info in infos)


def check_options(options: WebOptions) -> None:
    """Raise LabError (one line) for options the server must refuse, before binding anything."""
    if not 0 <= options.port <= 65535:
        raise LabError(f"--port {options.port}: not a port (0 to 65535)")
    if options.max_sessions is not None and options.max_sessions < 1:
        raise LabError(f"--max-sessions {options.max_sessions}: at least 1")
    if not is_loopback(options.host) and not options.i_understand_no_auth:
        where = f"{options.host!r} (every interface)" if options.host in _WILDCARDS else clip(options.host)
        raise LabError(f"--host {where}: textual-serve has no authentication, so anyone who "
                       f"reaches the port would get a lab; serve on 127.0.0.1 and let viewers use "
                       f"`{SSH_HINT}`, or add --i-understand-no-auth")
    for folder in options.folders:
        if not Path(folder).is_dir():
            raise LabError(f"{clip(str(folder))}: not a folder of scenarios")


def _url_host(host: str) -> str:
    if host in _WILDCARDS:
        return socket.gethostname()
    ip = _ip(host)
    return f"[{ip}]" if ip is not None and ip.version == 6 else host


def page_url(host: str, port: int) -> str:
    """The address to open in a browser for a server bound to host:port."""
    return f"http://{_url_host(host)}:{port}/"


# ---------------------------------------------------------------- textual-serve


def _page_template() -> str:
    """textual-serve's page, with a <title> and its bundled font instead of Google's."""
    import textual_serve

    text = (Path(textual_serve.__file__).parent / "templates" / "app_index.html").read_text(encoding="utf-8")
    text = re.sub(r'\s*<link\s+rel="stylesheet"\s+href="https://fonts\.googleapis\.com/[^>]*>', "", text)
    head = ('<head>\n    <meta charset="utf-8" />\n    <title>{{ application.name }}</title>\n'
            '    <link rel="preload" href="{{ config.static.url }}fonts/RobotoMono-VariableFont_wght.ttf" '
            'as="font" type="font/ttf" crossorigin />\n'
            "    <style>@font-face { font-family: 'Roboto Mono'; "
            "src: url('{{ config.static.url }}fonts/RobotoMono-VariableFont_wght.ttf') format('truetype'); "
            "font-weight: 100 700; }</style>")
    return text.replace("<head>", head, 1)


def _prctl_pdeathsig():
    """A preexec_fn that has the child sent SIGTERM when this server dies (Linux), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def preexec() -> None:  # runs in the forked child: no allocation-heavy Python here
        prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() != parent:  # the server died between fork and prctl
            os._exit(1)

    return preexec


def _session_folder(pid: int) -> Path | None:
    """The lab's temporary folder (lab.serve.child works in it), read before a SIGKILL."""
    from lab.serve.child import SESSION_PREFIX

    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None
    if cwd.name.startswith(SESSION_PREFIX) and cwd.parent == Path(tempfile.gettempdir()).resolve():
        return cwd
    return None


def _make_classes():
    """The textual-serve subclasses (textual-serve is imported only when serving)."""
    import aiohttp_jinja2
    import jinja2
    from aiohttp import web
    from textual_serve.app_service import AppService
    from textual_serve.server import Server, to_int

    class LabAppService(AppService):
        """One browser tab's lab: started without a shell, in its own session, and always ended."""

        def __init__(self, argv: list[str], **kwargs: Any) -> None:
            super().__init__(shlex.join(argv), **kwargs)
            self.argv = argv
            self._stopping: asyncio.Future | None = None

        async def _open_app_process(self, width: int = 80, height: int = 24):
            self._process = process = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=self._build_environment(width=width, height=height),
                start_new_session=True, preexec_fn=_prctl_pdeathsig())
            self._stdin = process.stdin
            return process

        @property
        def pid(self) -> int | None:
            return None if self._process is None else self._process.pid

        async def run(self) -> None:
            try:
                await super().run()
            finally:
                # the lab's output ended: it quit or died; the page should say so
                try:
                    await self.remote_close()
                except Exception:  # the websocket is already gone
                    pass

        async def stop(self) -> None:
            """Ask the lab to quit; SIGTERM, then SIGKILL, if it does not.  Every caller waits for the end."""
            if self._task is None:
                return
            if self._stopping is None:
                self._stopping = asyncio.ensure_future(self._stop())
            await asyncio.shield(self._stopping)

        async def _stop(self) -> None:
            task, process = self._task, self._process
            try:
                await self._download_manager.cancel_app_downloads(app_service_id=self.app_service_id)
                if process is not None and process.returncode is None:
                    await self.send_meta({"type": "quit"})
                    await asyncio.wait_for(process.wait(), QUIT_GRACE)
            except Exception:  # no answer in time, or stdin already closed
                pass
            await self.kill()
            if task is not None:
                try:  # the output ends with the process: let the reader see its end
                    await asyncio.wait_for(task, TERM_GRACE)
                except BaseException:
                    pass
            self._task = None

        async def kill(self) -> None:
            """End the lab's process group now (SIGTERM, then SIGKILL), and wait for it."""
            process = self._process
            if process is None:
                return
            if process.returncode is not None:  # reaped: its pid may be another lab's by now
                return
            folder = _session_folder(process.pid)
            for sig, grace in ((signal.SIGTERM, TERM_GRACE), (signal.SIGKILL, None)):
                if process.returncode is not None:
                    break
                try:  # the lab is not reaped yet, so its pid (and group id) is still its own
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    await asyncio.wait_for(process.wait(), grace)
                    break
                except asyncio.TimeoutError:
                    continue
            if folder is not None:  # SIGKILL leaves the lab no time to remove it
                shutil.rmtree(folder, ignore_errors=True)

        def kill_now(self) -> None:
            """SIGKILL the lab's process group (last resort, no waiting)."""
            if self._process is not None and self._process.returncode is None:
                try:
                    os.killpg(self._process.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

    class LabServer(Server):
        def __init__(self, options: WebOptions) -> None:
            from lab.serve.child import command

            self.options = options
            self.argv = command(options.folders, writes=options.writes, memory_mb=options.memory_mb,
                                cpu_seconds=options.cpu_seconds)
            super().__init__(shlex.join(self.argv), host=options.host, port=options.port, title=TITLE,
                             public_url=page_url(options.host, options.port))
            self.max_sessions = options.max_sessions or default_max_sessions()
            self.loopback = is_loopback(options.host)
            self.sessions: set[LabAppService] = set()
            self.busy: set[web.WebSocketResponse] = set()
            self.closing = False

        def initialize_logging(self) -> None:  # serve_web sets up logging
            pass

        async def on_startup(self, app: web.Application) -> None:  # serve_web prints the address
            pass

        async def _make_app(self) -> web.Application:
            app = await super()._make_app()
            aiohttp_jinja2.setup(app, loader=jinja2.DictLoader({"app_index.html": _page_template()}))
            app.middlewares.append(self.host_middleware)
            return app

        def _host_problem(self, request: web.Request) -> str | None:
            host = request.headers.get("Host", "")
            if not _HOST_HEADER.match(host):
                return f"bad Host header {clip(host, 40)!r}"
            if self.loopback and not self.options.i_understand_no_auth:
                name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
                if name.lower() != "localhost" and not ((ip := _ip(name)) is not None and ip.is_loopback):
                    return f"Host {clip(host, 40)!r} is not this machine (DNS rebinding?)"
            return None

        @web.middleware
        async def host_middleware(self, request: web.Request, handler):
            problem = self._host_problem(request)
            if problem is not None:
                log.warning("refused %s: %s", request.remote, problem)
                raise web.HTTPForbidden(text="nnlab: this server answers only to its own address\n")
            return await handler(request)

        def _base_url(self, request: web.Request) -> str:
            return f"{request.scheme}://{request.headers['Host']}"

        @aiohttp_jinja2.template("app_index.html")
        async def handle_index(self, request: web.Request) -> dict[str, Any]:
            base = self._base_url(request)
            websocket = str(request.app.router["websocket"].url_for())
            static = str(request.app.router["static"].url_for(filename="/")).rstrip("/") + "/"
            scheme = "wss" if request.scheme == "https" else "ws"
            return {
                "font_size": to_int(request.query.get("fontsize", "16"), 16),
                "app_websocket_url": f"{scheme}://{request.headers['Host']}{websocket}",
                "config": {"static": {"url": base + static}},
                "application": {"name": self.title},
            }

        def _origin_problem(self, request: web.Request) -> str | None:
            origin = request.headers.get("Origin")
            if origin is None:  # not a browser page (a script or a test client)
                return None
            parts = urlsplit(origin)
            default = {"http": 80, "https": 443}.get(parts.scheme)
            try:
                netloc = parts.hostname, parts.port or default
                host = urlsplit(f"//{request.headers['Host']}")
                mine = host.hostname, host.port or {"http": 80, "https": 443}.get(request.scheme)
            except ValueError:
                return f"bad Origin {clip(origin, 60)!r}"
            if netloc != mine:
                return f"cross-site Origin {clip(origin, 60)!r}"
            return None

        async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
            """textual-serve's handler, with the session cap, the origin check and the lab's AppService."""
            problem = self._origin_problem(request)
            if problem is not None:
                log.warning("refused %s: %s", request.remote, problem)
                raise web.HTTPForbidden(text="nnlab: cross-site websocket refused\n")
            websocket = web.WebSocketResponse(heartbeat=15)
            width = min(max(to_int(request.query.get("width", "80"), 80), 20), 1000)
            height = min(max(to_int(request.query.get("height", "24"), 24), 5), 500)
            if self.closing or len(self.sessions) >= self.max_sessions:
                return await self._busy(request, websocket)
            app_service = LabAppService(self.argv, write_bytes=websocket.send_bytes, write_str=websocket.send_str,
                                        close=websocket.close, download_manager=self.download_manager,
                                        debug=self.debug)
            self.sessions.add(app_service)  # no await since the check: the cap holds
            started = time.monotonic()
            try:
                await websocket.prepare(request)
                await app_service.start(width, height)
                log.info("session started: %s, lab pid %s (%d of %d)", request.remote, app_service.pid,
                         len(self.sessions), self.max_sessions)
                await self._process_messages(websocket, app_service)
            except asyncio.CancelledError:
                pass
            except Exception as error:  # a client's bad message must not take the server down
                log.warning("session %s: %s", request.remote, clip(repr(error), 200))
            finally:
                try:
                    await app_service.stop()  # shielded: a cancelled handler still ends its lab
                except asyncio.CancelledError:
                    pass
                stopping = app_service._stopping
                if stopping is not None and not stopping.done():  # cancelled: counted until it has ended
                    stopping.add_done_callback(lambda _: self.sessions.discard(app_service))
                else:
                    self.sessions.discard(app_service)
                log.info("session ended: %s, lab pid %s, after %.0f s", request.remote, app_service.pid,
                         time.monotonic() - started)
                if not websocket.closed:
                    try:
                        await websocket.close()
                    except Exception:
                        pass
            return websocket

        async def _busy(self, request: web.Request, websocket: web.WebSocketResponse) -> web.WebSocketResponse:
            why = "stopping" if self.closing else f"full ({self.max_sessions} of {self.max_sessions} labs in use)"
            log.warning("refused %s: the server is %s", request.remote, why)
            await websocket.prepare(request)
            await websocket.send_bytes(f"\x1b[2J\x1b[H\x1b[1mnnlab\x1b[0m: the server is {why}.\r\n\r\n"
                                       f"Busy, try again in a minute: reload this page.\r\n".encode())
            # closing at once would cover the message with the page's "Session ended" dialog

            async def drain() -> None:
                async for _ in websocket:  # resize and ping messages, until the tab closes
                    pass

            self.busy.add(websocket)
            try:
                await asyncio.wait_for(drain(), BUSY_HOLD)
            except (asyncio.TimeoutError, Exception):
                pass
            finally:
                self.busy.discard(websocket)
                await websocket.close()
            return websocket

        async def end_sessions(self) -> None:
            self.closing = True
            await asyncio.gather(*(s.stop() for s in list(self.sessions)),
                                 *(ws.close() for ws in list(self.busy)), return_exceptions=True)

        def kill_sessions_now(self) -> None:
            for session in list(self.sessions):
                session.kill_now()

    LabServer.AppService = LabAppService
    return LabServer


# ---------------------------------------------------------------- serving


def _setup_logging() -> None:
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s nnlab serve web: %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


async def _serve(server, options: WebOptions) -> None:
    from aiohttp import web

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        stop.set()
        if signals > 1:  # a second Ctrl-C: no more waiting for labs to quit
            server.kill_sessions_now()

    app = await server._make_app()
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        site = web.TCPSite(runner, options.host or None, options.port)
        try:
            await site.start()
        except OSError as exc:
            where = f"{options.host}:{options.port}"
            if exc.errno == 98 or "in use" in str(exc):
                raise LabError(f"{where}: the port is in use (another server? pick one with --port)") from None
            raise LabError(f"cannot listen on {where}: {exc.strerror or exc}") from None
        sockets = site._server.sockets if site._server is not None else ()
        port = sockets[0].getsockname()[1] if sockets else options.port  # port 0: the one the kernel chose
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        print(f"nnlab serve web: open {page_url(options.host, port)} in a browser; each tab gets its own lab "
              f"(at most {server.max_sessions} at once). Ctrl-C stops the server and every lab.", flush=True)
        if not server.loopback:
            print(f"warning: listening on {options.host or 'every interface'} without authentication: anyone who "
                  f"reaches port {port} gets a lab (safer: serve on 127.0.0.1, viewers use `{SSH_HINT}`)",
                  file=sys.stderr, flush=True)
        await stop.wait()
        log.info("stopping: ending %d session(s)", len(server.sessions))
        await server.end_sessions()
    finally:
        try:
            await runner.cleanup()
        finally:
            server.kill_sessions_now()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


def serve_web(options: WebOptions) -> None:
    """Serve the lab to browsers until Ctrl-C or SIGTERM; every lab has ended when this returns."""
    check_options(options)
    server = _make_classes()(options)
    _setup_logging()
    try:
        asyncio.run(_serve(server, options))
    finally:
        server.kill_sessions_now()  # never reached with a lab alive, unless something above failed
