"""`nnlab serve web` (lab.serve.web): textual-serve on 127.0.0.1, one lab process per tab.

The server runs in a subprocess (`python -c ... serve_web(...)` on port 0: the kernel picks a
free port, the server prints its URL), as a teacher would run it.  The tests fetch the page
over HTTP, drive the page's websocket with aiohttp as the page's script does, stop the
server with SIGTERM / SIGINT / SIGKILL and check that no lab process outlives it, and, where
Chromium is installed, load the page headless and read the lab's text from the page's
xterm.js terminal through the Chrome DevTools Protocol.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("textual_serve")
import aiohttp  # noqa: E402  (textual-serve depends on it)

from lab.errors import LabError  # noqa: E402
from lab.serve.web import WebOptions, check_options, is_loopback, serve_web  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIRST_SCREEN = "pick a scenario"  # the browser screen's banner (lab/tui/screens/browser.py)
TIMEOUT = 60.0  # generous: a shared 2-core machine running `pytest -n 2`


def wait_for(condition, timeout: float = TIMEOUT, what: str = "condition", interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def children(pid: int) -> list[int]:
    """The live (not zombie) processes whose parent is `pid`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


class WebServer:
    """`serve_web(WebOptions(port=0, ...))` in a subprocess with its own TMPDIR (where the labs
    make their session folders) and its own session (so a failed test can still kill it all)."""

    def __init__(self, tmp: Path, **options) -> None:
        self.tmp = tmp
        self.labs_tmp = tmp / "labs-tmp"
        self.labs_tmp.mkdir(parents=True)
        self.out, self.err = tmp / "server.out", tmp / "server.err"
        fields = ", ".join(f"{k}={v!r}" for k, v in {"host": "127.0.0.1", "port": 0, **options}.items())
        code = f"from lab.serve.web import WebOptions, serve_web; serve_web(WebOptions({fields}))"
        env = dict(os.environ, TMPDIR=str(self.labs_tmp), PYTHONPATH=str(ROOT))
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-c", code], stdout=out, stderr=err, env=env,
                                         cwd=tmp, start_new_session=True)
        match = wait_for(lambda: self.proc.poll() is None and re.search(r"open (http://\S+/) in a browser",
                                                                         self.out.read_text())
                         or self._died(), what="the server's URL")
        self.url = match.group(1)
        self.port = int(self.url.rsplit(":", 1)[1].rstrip("/"))

    def _died(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"the server exited ({self.proc.returncode}): {self.err.read_text()[-2000:]}")
        return None

    def labs(self) -> list[int]:
        return [pid for pid in children(self.proc.pid) if b"lab.serve.child" in
                Path(f"/proc/{pid}/cmdline").read_bytes()]

    def session_folders(self) -> list[Path]:
        return sorted(self.labs_tmp.glob("nnlab-session-*"))

    def log(self) -> str:
        return self.err.read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = TIMEOUT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill_all(self) -> None:
        """Teardown: whatever a failed test left (the labs are in sessions of their own)."""
        for pid in self.labs():
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def start_server(tmp_path):
    servers = []

    def start(**options) -> WebServer:
        server = WebServer(tmp_path / f"server{len(servers)}", **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill_all()


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, dict]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, response.read().decode(errors="replace"), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace"), dict(error.headers)


# ---------------------------------------------------------------- a tab, as textual.js drives it


class Tab:
    """One browser tab's websocket: what textual.js does (GET /ws?width&height, then JSON
    messages; the lab's terminal bytes arrive as binary messages)."""

    def __init__(self, url: str, width: int = 100, height: int = 30, origin: str | None = None) -> None:
        self.url = url.replace("http://", "ws://") + f"ws?width={width}&height={height}"
        self.headers = {"Origin": origin} if origin else {}
        self.screen = b""

    async def __aenter__(self) -> "Tab":
        self.session = aiohttp.ClientSession()
        try:
            self.ws = await self.session.ws_connect(self.url, headers=self.headers)
        except BaseException:
            await self.session.close()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        await self.ws.close()
        await self.session.close()

    async def read_until(self, text: str, timeout: float = TIMEOUT) -> str:
        async def read() -> None:
            while text.encode() not in self.screen:
                message = await self.ws.receive()
                if message.type != aiohttp.WSMsgType.BINARY:
                    raise AssertionError(f"the websocket ended ({message.type.name}) before {text!r}; "
                                         f"it showed {self.screen[-400:]!r}")
                self.screen += message.data

        await asyncio.wait_for(read(), timeout)
        return self.screen.decode(errors="replace")

    async def closed(self, timeout: float = TIMEOUT) -> aiohttp.WSMsgType:
        async def until_closed():
            while True:
                message = await self.ws.receive()
                if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                    return message.type

        return await asyncio.wait_for(until_closed(), timeout)


def run(coroutine):
    return asyncio.run(coroutine)


# ---------------------------------------------------------------- options (no network)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.0.2.7", "2001:db8::1"])
def test_an_address_beyond_loopback_is_refused_without_the_flag(host):
    with pytest.raises(LabError) as error:
        check_options(WebOptions(host=host))
    message = str(error.value)
    assert "\n" not in message
    assert "no authentication" in message and "ssh -L 8000:localhost:8000" in message
    assert "--i-understand-no-auth" in message
    check_options(WebOptions(host=host, i_understand_no_auth=True))  # an explicit choice


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost", "LOCALHOST"])
def test_loopback_addresses_need_no_flag(host):
    assert is_loopback(host)
    check_options(WebOptions(host=host))


def test_serve_web_refuses_before_binding_anything():
    with pytest.raises(LabError, match="no authentication"):
        serve_web(WebOptions(host="0.0.0.0", port=1))  # port 1 would need root: never reached


@pytest.mark.parametrize("options, problem", [
    (dict(port=70000), "not a port"),
    (dict(max_sessions=0), "at least 1"),
    (dict(folders=[Path("/nonexistent/scenarios")]), "not a folder"),
])
def test_bad_options_are_one_line_errors(options, problem):
    with pytest.raises(LabError, match=problem) as error:
        check_options(WebOptions(**options))
    assert "\n" not in str(error.value)


def test_a_port_in_use_is_a_one_line_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(LabError, match="in use") as error:
            serve_web(WebOptions(port=port))
    assert "\n" not in str(error.value) and str(port) in str(error.value)


def test_options_default_to_loopback_and_no_writes():
    options = WebOptions()
    assert options.host == "127.0.0.1" and options.port == 8000
    assert options.writes is False and options.i_understand_no_auth is False


# ---------------------------------------------------------------- the page over HTTP


def test_the_page_is_textual_serves_titled_nnlab_with_its_websocket(start_server):
    server = start_server()
    status, page, headers = fetch(server.url)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "<title>nnlab</title>" in page
    assert 'class="textual-terminal"' in page  # textual-serve's page, which textual.js fills
    assert f'data-session-websocket-url="ws://127.0.0.1:{server.port}/ws"' in page
    assert f'src="http://127.0.0.1:{server.port}/static/js/textual.js"' in page
    assert "googleapis" not in page  # no request beyond this server: its bundled font instead
    status, script, _ = fetch(f"{server.url}static/js/textual.js")
    assert status == 200 and "sessionWebsocketUrl" in script
    status, font, _ = fetch(f"{server.url}static/fonts/RobotoMono-VariableFont_wght.ttf")
    assert status == 200

    # through `ssh -L 9000:localhost:PORT`, the browser asks for localhost:9000: the page's URLs follow
    status, page, _ = fetch(server.url, {"Host": "localhost:9000"})
    assert status == 200 and 'data-session-websocket-url="ws://localhost:9000/ws"' in page

    # a name that is not this machine (DNS rebinding) gets nothing
    status, body, _ = fetch(server.url, {"Host": f"attacker.example:{server.port}"})
    assert status == 403 and "nnlab" in body
    assert "refused" in server.log() and "attacker.example" in server.log()
    assert server.labs() == []  # a page costs no process: only a websocket starts a lab
    assert server.stop() == 0


# ---------------------------------------------------------------- sessions over the websocket


@pytest.mark.slow
def test_each_tab_gets_a_lab_that_ends_with_the_tab_and_the_cap_says_busy(start_server):
    server = start_server(max_sessions=1)

    async def scenario():
        async with Tab(server.url) as tab:
            screen = await tab.read_until(FIRST_SCREEN)
            assert "nnlab" in screen
            labs = server.labs()
            assert len(labs) == 1
            lab = labs[0]
            folder = wait_for(server.session_folders, what="the lab's session folder")
            assert len(folder) == 1

            # past the cap: a message in the terminal, and no process
            async with Tab(server.url) as second:
                busy = await second.read_until("try again")
                assert "full (1 of 1" in busy
                assert server.labs() == [lab]

            # a page of another site cannot open a lab in the teacher's browser
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                async with Tab(server.url, origin="http://attacker.example"):
                    pass
            assert refused.value.status == 403
            # the same site's page can (as textual.js does); here past the cap, so "busy"
            async with Tab(server.url, origin=f"http://127.0.0.1:{server.port}") as same:
                await same.read_until("try again")
        return lab, folder[0]

    lab, folder = run(scenario())
    # the tab closed: its lab quits, its folder goes, and a new tab has its slot
    wait_for(lambda: not alive(lab), what="the lab to end with its tab")
    wait_for(lambda: not folder.exists(), what="the session folder to be removed")
    wait_for(lambda: "session ended" in server.log(), what="the session's end in the log (its slot is free)")

    async def again():
        async with Tab(server.url) as tab:
            await tab.read_until(FIRST_SCREEN)
            assert len(server.labs()) == 1
            await tab.ws.send_str(json.dumps(["stdin", "q"]))  # the lab's own quit key
            assert await tab.closed() is not None  # the lab ended: the page is told so

    run(again())
    wait_for(lambda: server.labs() == [], what="the lab to end after q")
    wait_for(lambda: server.log().count("session ended") == 2, what="the second session's end in the log")
    log = server.log()
    assert log.count("session started") == 2
    assert "refused 127.0.0.1: the server is full" in log and "cross-site Origin" in log
    assert server.stop() == 0


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stopping_the_server_ends_every_lab(start_server, sig):
    server = start_server(max_sessions=2)

    async def two_tabs_then_stop():
        async with Tab(server.url) as one, Tab(server.url) as two:
            await one.read_until(FIRST_SCREEN)
            await two.read_until(FIRST_SCREEN)
            labs = server.labs()
            assert len(labs) == 2
            wait_for(lambda: len(server.session_folders()) == 2, what="two session folders")
            started = time.monotonic()
            server.proc.send_signal(sig)
            await one.closed()  # the tabs are told, not left hanging
            await two.closed()
            code = await asyncio.to_thread(server.proc.wait, TIMEOUT)
            return labs, code, time.monotonic() - started

    labs, code, took = run(two_tabs_then_stop())
    assert code == 0
    assert not any(alive(pid) for pid in labs), "a lab outlived the server"
    assert not any(group_alive(pid) for pid in labs)
    assert server.session_folders() == []
    assert took < 30, f"stopping took {took:.1f} s"
    assert "stopping: ending 2 session(s)" in server.log()


@pytest.mark.slow
def test_a_server_killed_outright_takes_its_labs_with_it(start_server):
    # SIGKILL leaves no time to clean up: the lab is told by the kernel (PR_SET_PDEATHSIG)
    server = start_server()

    async def one_tab():
        async with Tab(server.url) as tab:
            await tab.read_until(FIRST_SCREEN)
            labs = server.labs()
            server.proc.kill()
            server.proc.wait(TIMEOUT)
            return labs

    labs = run(one_tab())
    assert len(labs) == 1
    wait_for(lambda: not alive(labs[0]), what="the lab to end with its killed server")
    wait_for(lambda: server.session_folders() == [], what="the session folder to be removed")


def test_a_lab_that_ignores_quit_and_sigterm_is_killed_and_its_folder_removed(monkeypatch, tmp_path):
    from textual_serve.download_manager import DownloadManager

    from lab.serve import web

    monkeypatch.setattr(web, "QUIT_GRACE", 0.5)
    monkeypatch.setattr(web, "TERM_GRACE", 0.5)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    folder = tmp_path / "nnlab-session-stuck"
    stuck = ("import os, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
             f"os.mkdir({str(folder)!r}); os.chdir({str(folder)!r}); "
             "sys.stdout.write('__GANGLION__\\n'); sys.stdout.flush(); time.sleep(600)")
    service_class = web._make_classes().AppService

    async def start_and_stop():
        closed = asyncio.Event()

        async def ignore(data) -> None:
            pass

        async def close() -> None:
            closed.set()

        service = service_class([sys.executable, "-c", stuck], write_bytes=ignore, write_str=ignore, close=close,
                                download_manager=DownloadManager())
        await service.start(80, 24)
        await asyncio.to_thread(wait_for, folder.exists, what="the stuck lab to start")
        started = time.monotonic()
        await asyncio.gather(service.stop(), service.stop())  # a second caller waits for the same end
        return service.pid, time.monotonic() - started, closed.is_set()

    pid, took, closed = run(start_and_stop())
    assert not alive(pid) and not group_alive(pid)
    assert not folder.exists(), "the folder of a killed lab is removed for it"
    assert closed, "the tab is told its lab ended"
    assert took < 10


# ---------------------------------------------------------------- a real browser


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Set before the page's scripts run: textual.js keeps its xterm.js Terminal in `this.terminal`
# of an object of its own; an accessor on Object.prototype catches that assignment, so the
# test can read the terminal's buffer (the page draws it on a canvas, not in the DOM).
CATCH_TERMINAL = r"""
(() => {
  window.__nnlabTerminals = [];
  Object.defineProperty(Object.prototype, "terminal", {
    configurable: true,
    get() { return undefined; },
    set(value) {
      Object.defineProperty(this, "terminal", {value, writable: true, configurable: true, enumerable: true});
      if (value && value.buffer && value.buffer.active) window.__nnlabTerminals.push(value);
    },
  });
})();
"""
READ_TERMINAL = r"""
(() => {
  const terminal = (window.__nnlabTerminals || [])[0];
  if (!terminal) return null;
  const buffer = terminal.buffer.active, rows = [];
  for (let y = 0; y < terminal.rows; y++) {
    const line = buffer.getLine(buffer.viewportY + y);
    rows.push(line ? line.translateToString(true) : "");
  }
  return rows.join("\n");
})()
"""
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-extensions", "--disable-dev-shm-usage", "--mute-audio", "--window-size=1280,720",
                  "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1"]


class DevTools:
    """The smallest Chrome DevTools Protocol client: call(method, **params) -> result."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws, self.last = ws, 0

    async def call(self, method: str, **params):
        self.last += 1
        number = self.last
        await self.ws.send_json({"id": number, "method": method, "params": params})
        while True:
            message = await asyncio.wait_for(self.ws.receive_json(), TIMEOUT)
            if message.get("id") == number:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message["result"]

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def poll(self, expression: str, accept, what: str, timeout: float = TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            value = await self.evaluate(expression)
            if accept(value):
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the page shows:\n{value}")
            await asyncio.sleep(0.1)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (CI: apt-get install -y chromium)")
def test_chromium_shows_the_lab_and_its_keys_reach_it(start_server, tmp_path):
    server = start_server()
    profile = Path(tempfile.mkdtemp(prefix="chromium-", dir=tmp_path))
    started = time.monotonic()
    browser = subprocess.Popen([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=open(tmp_path / "chromium.err", "wb"), start_new_session=True)
    try:
        active = profile / "DevToolsActivePort"  # Chromium writes the port it picked here

        def devtools_port() -> str | None:
            if browser.poll() is not None:
                pytest.fail(f"chromium exited ({browser.returncode}): "
                            f"{(tmp_path / 'chromium.err').read_text()[-2000:]}")
            return active.exists() and active.read_text().split("\n")[0].strip() or None

        port = wait_for(devtools_port, what="Chromium's DevTools port")

        async def look() -> str:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
                    targets = await response.json()
                page = next(t for t in targets if t["type"] == "page")
                async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                    tools = DevTools(ws)
                    await tools.call("Page.enable")
                    await tools.call("Page.addScriptToEvaluateOnNewDocument", source=CATCH_TERMINAL)
                    await tools.call("Page.navigate", url=server.url)
                    screen = await tools.poll(READ_TERMINAL, lambda text: text and FIRST_SCREEN in text,
                                              "the lab's first screen in the page's terminal")
                    assert await tools.evaluate("document.title") == "nnlab"
                    assert await tools.evaluate("document.body.classList.contains('-first-byte')")
                    # a key typed in the page reaches the lab: ? opens its help
                    await tools.evaluate("document.querySelector('.xterm-helper-textarea').focus()")
                    await tools.call("Input.dispatchKeyEvent", type="keyDown", key="?", text="?")
                    await tools.call("Input.dispatchKeyEvent", type="keyUp", key="?")
                    help_screen = await tools.poll(READ_TERMINAL, lambda text: text and "command palette" in text,
                                                   "the lab's help after ? was typed in the page")
                    shot = await tools.call("Page.captureScreenshot", format="png")
                    (tmp_path / "lab.png").write_bytes(base64.b64decode(shot["data"]))
                    return screen + help_screen

        text = run(look())
        assert "nnlab" in text
        assert len(server.labs()) == 1
    finally:
        os.killpg(browser.pid, signal.SIGKILL)
        browser.wait(TIMEOUT)
        wait_for(lambda: not group_alive(browser.pid), what="Chromium's processes to end")
    # the tab is gone: its lab goes too, then the server stops clean
    wait_for(lambda: server.labs() == [], what="the lab to end when the browser went away")
    assert server.stop() == 0
    print(f"chromium test: {time.monotonic() - started:.1f} s")
