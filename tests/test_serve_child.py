"""The process each served session runs (lab/serve/child.py): its command line, its confinement
(a private folder, resource limits, one BLAS thread), writes turned off for anonymous rooms,
and what it tells the person when it ends."""

from __future__ import annotations

import os
import subprocess
import sys

from lab.serve import child
from lab.tui.widgets.panels import MessageLine
from tests.test_tui import SIZE, _press_n, run, run_screen, tiny, until
from lab.tui.app import make_app


def test_the_command_runs_this_python_on_absolute_folders(tmp_path):
    argv = child.command([tmp_path / "mine"], writes=False, memory_mb=1500, cpu_seconds=600)
    assert argv[:3] == [sys.executable, "-m", "lab.serve.child"]
    assert "--no-writes" in argv and argv[argv.index("--memory-mb") + 1] == "1500"
    assert argv[argv.index("--cpu-seconds") + 1] == "600"
    assert argv[-1] == str((tmp_path / "mine").resolve()) and argv[-2] == "--"
    assert "--no-writes" not in child.command(writes=True)


def test_the_limits_and_threads_are_set_in_the_child_itself():
    code = ("import resource, os, sys; from lab.serve import child; "
            "child._limit_resources(1500, 60); "
            "print(resource.getrlimit(resource.RLIMIT_AS)[0] // 2**20, *resource.getrlimit(resource.RLIMIT_CPU))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["1500", "60", str(60 + child.GRACE_CPU_SECONDS)]
    assert set(child.thread_environment().values()) == {"1"}


def test_the_farewell_lists_what_was_written_and_prints_small_sessions(tmp_path):
    (tmp_path / "run-1.toml").write_text('[scenario]\nname = "mine"\n')
    (tmp_path / "run-1-history.csv").write_text("step,loss\n1,2\n")
    (tmp_path / ".run-2.toml.x.tmp").write_text("half written")
    text = child.farewell(tmp_path, writes=True)
    assert "wrote 2 file(s)" in text and "run-1-history.csv" in text and ".tmp" not in text
    assert 'name = "mine"' in text  # the session itself, to copy from the terminal
    assert child.farewell(tmp_path, writes=False) == "nnlab: session ended.\r\n"


def test_saving_and_exporting_are_refused_with_a_message_when_writes_are_off(tmp_path):
    async def body():
        app = make_app(scenario=tiny(), source="tiny.toml", output_dir=tmp_path, autostart=False, warm_up=False,
                       allow_writes=False)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            await _press_n(pilot, screen, 2)
            for key, what in (("ctrl+s", "saving"), ("e", "exporting")):
                await pilot.press(key)
                await until(pilot, lambda: f"{what} is off" in str(screen.query_one(MessageLine).render()),
                            f"the message that {what} is off")
            titles = [c.title.lower() for c in app.get_system_commands(screen)]
            assert not any("screenshot" in t for t in titles) and any("dropout" in t for t in titles)
        assert list(tmp_path.iterdir()) == []

    run(body)


def test_a_session_removes_its_folder_when_its_client_hangs_up(tmp_path):
    """SIGHUP (the ssh client left) ends the lab at once and takes its folder with it."""
    import pty
    import signal
    import time

    env = {**os.environ, "TMPDIR": str(tmp_path), "TERM": "xterm-256color"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: the lab on the pty
        os.execvpe(sys.executable, child.command(), env)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(child.SESSION_PREFIX + "*")):
            assert time.monotonic() < deadline, "the session folder never appeared"
            time.sleep(0.05)
        os.kill(pid, signal.SIGHUP)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 128 + signal.SIGHUP
        assert not list(tmp_path.glob(child.SESSION_PREFIX + "*"))
    finally:
        os.close(fd)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
