"""Stopping a run: Ctrl-C headless (exit 130, one line), `q` in the lab (the worker returns).

A compiled call cannot be interrupted, so the engine keeps every call short: Simulation.step
splits n steps into calls of Trainer.steps_per_call() steps, evaluation splits the set, and
both ask `cancelled()` between calls.  None of this may change a single bit of the run.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import lab.engine.trainer as trainer_mod
from lab.engine.kernels import network as K
from lab.engine.trainer import Cancelled
from lab.scenario.load import parse_scenario
from lab.sim import Simulation
from lab.tui.runner import SimRunner

ROOT = Path(__file__).resolve().parents[1]


def small(**train):
    return parse_scenario({"data": {"kind": "spiral", "n": 300}, "model": {"hidden": [16, 16]},
                           "train": {"steps": 100, "eval_every": 25, "batch_size": 16, **train}})


def counting(monkeypatch, name):
    """Count the calls of kernel K.<name> (and the steps or rows each one was given)."""
    calls: list[int] = []
    kernel = getattr(K, name)

    def spy(*args):
        calls.append(args[0] if name == "train_steps" else args[3].shape[0])  # n_steps, or X's rows
        return kernel(*args)

    monkeypatch.setattr(K, name, spy)
    return calls


def test_long_steps_run_as_several_short_calls_with_the_same_result(monkeypatch):
    whole, split = Simulation(small()), Simulation(small())
    whole.trainer.macs_per_second = 1e15  # as if the machine were very fast: one call per chunk
    whole.step(60)
    calls = counting(monkeypatch, "train_steps")
    # as slow as 7 steps per CALL_SECONDS, and kept so (the timing of each call is ignored here)
    monkeypatch.setattr(split.trainer, "_timed", lambda macs, start: None)
    split.trainer.macs_per_second = 7 * split.trainer.step_macs() / trainer_mod.CALL_SECONDS
    assert split.trainer.steps_per_call() == 7
    split.step(60)
    assert calls and max(calls) <= 7 and sum(calls) == 60
    for name in ("loss", "grad_norm", "val_loss", "val_acc"):
        np.testing.assert_array_equal(split.history.series[name].values(), whole.history.series[name].values())
    np.testing.assert_array_equal(split.network.params, whole.network.params)


def test_the_first_call_is_timed_and_sizes_the_next():
    sim = Simulation(small())
    assert sim.trainer.macs_per_second == trainer_mod.ASSUMED_MACS_PER_SECOND  # nothing trained yet
    sim.step(5)
    assert sim.trainer.macs_per_second != trainer_mod.ASSUMED_MACS_PER_SECOND
    assert sim.trainer.steps_per_call() >= 1


def test_evaluation_in_several_calls_gives_the_same_bits(monkeypatch):
    sim = Simulation(small())
    sim.step(10)
    X, y = sim.data.X_train, sim.data.y_train
    sim.trainer.macs_per_second = 1e15
    at_once = sim.trainer.evaluate(X, y, chunk=16)
    calls = counting(monkeypatch, "evaluate")
    sim.trainer.macs_per_second = 1.0  # one batch of 16 rows per call
    assert sim.trainer.evaluate(X, y, chunk=16) == at_once
    assert len(calls) == -(-X.shape[0] // 16) and max(calls) == 16


def test_huge_networks_evaluate_in_small_batches(monkeypatch):
    sim = Simulation(small())
    monkeypatch.setattr(trainer_mod, "EVAL_BATCH_MACS", 20 * sim.trainer.example_macs())  # 20 rows "fit"
    calls = counting(monkeypatch, "evaluate")
    sim.trainer.macs_per_second = 1.0
    loss, acc = sim.trainer.evaluate(sim.data.X_val, sim.data.y_val)
    assert set(calls) <= {16, sim.data.X_val.shape[0] % 16}  # the largest power of two that fits
    ref_loss, ref_acc = Simulation(small()).trainer.evaluate(sim.data.X_val, sim.data.y_val)
    assert acc == ref_acc and loss == pytest.approx(ref_loss, rel=1e-6)


def test_a_cancelled_evaluation_stops_between_calls(monkeypatch):
    sim = Simulation(small())
    calls = counting(monkeypatch, "evaluate")
    sim.trainer.macs_per_second = 1.0  # one batch per call
    asked = []
    with pytest.raises(Cancelled):
        sim.trainer.evaluate(sim.data.X_train, sim.data.y_train, chunk=8,
                             cancelled=lambda: asked.append(1) or len(asked) >= 3)
    assert len(calls) == 3  # three batches, then the answer True stopped it


def test_the_lab_worker_returns_when_cancelled_mid_evaluation(monkeypatch):
    """`q` on a slow run: the worker stops between the kernel calls of an evaluation
    instead of finishing it (Textual waits for the worker before the lab exits)."""
    sim = Simulation(small(eval_every=3))
    monkeypatch.setattr(trainer_mod, "EVAL_BATCH_MACS", 1.0)  # batches of one row,
    monkeypatch.setattr(sim.trainer, "_timed", lambda macs, start: None)
    sim.trainer.macs_per_second = 1.0  # and as slow as can be: a call per row, a step per call
    runner = SimRunner(sim, running=True, pace=None)
    quit_now = threading.Event()
    evaluations = counting(monkeypatch, "evaluate")

    def cancelled() -> bool:
        if len(evaluations) >= 5:  # the lab quits in the middle of the step-3 evaluation
            quit_now.set()
        return quit_now.is_set()

    worker = threading.Thread(target=runner.loop, args=(cancelled,), daemon=True)
    worker.start()
    worker.join(timeout=120)  # a safety net only: the loop returns as soon as it is asked
    assert not worker.is_alive()
    assert len(evaluations) == 5  # not the whole validation set
    assert sim.step_count == 3 and sim.history.series["val_step"].last() == 0


# -- Ctrl-C in a real process ---------------------------------------------------------------------

SLOW = """
[scenario]
name = "slow on purpose"
[data]
kind = "random-normal"
dim = 256
n = 2000
classes = 10
[model]
hidden = [1024, 1024, 1024, 1024]
[train]
batch_size = 512
steps = 100000
eval_every = 100000
"""


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _plain(out: str) -> list[str]:
    """The lines a person would read: no colour codes, carriage returns as new lines."""
    out = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out).replace("\r", "\n")
    return [line.strip() for line in out.splitlines() if line.strip()]


def _interrupt_when(args: list[str], ready: str, cwd: Path, workers: int = 0) -> tuple[int, str, list[int]]:
    """Run `nnlab ARGS` in a terminal (a pty: as a person would), wait until its output
    matches the regular expression `ready` (and it has `workers` child processes), press
    Ctrl-C (SIGINT to the process), and return (exit status, all output, its children)."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_DISABLE_JIT"}
    env.update(COLUMNS="100", LINES="30", TERM="xterm", PYTHONPATH=str(ROOT))
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "lab", *args], stdin=slave, stdout=slave, stderr=slave,
                            cwd=cwd, env=env, start_new_session=True)
    os.close(slave)
    seen = b""

    def read_for(seconds: float, until=None) -> None:
        nonlocal seen
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (until and until(seen)):
            if select.select([master], [], [], 0.1)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the process closed the terminal
                    return
                if not chunk:
                    return
                seen += chunk
            elif proc.poll() is not None:
                return

    try:
        shown = re.compile(ready.encode())
        read_for(600, until=lambda out: shown.search(out) is not None)  # the first run may compile (~20 s)
        assert shown.search(seen), f"never showed {ready!r}:\n{seen.decode(errors='replace')}"
        read_for(120, until=lambda out: len(_children(proc.pid)) >= workers)
        children = _children(proc.pid)
        assert len(children) >= workers, "the worker processes never started"
        proc.send_signal(signal.SIGINT)
        try:
            status = proc.wait(timeout=60)  # a safety net for hangs: a fraction of a second on an idle machine
        except subprocess.TimeoutExpired:
            pytest.fail("still running 60 s after Ctrl-C")
        read_for(5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return status, seen.decode(errors="replace"), children


@pytest.mark.slow
def test_ctrl_c_stops_a_headless_run_mid_way_with_130_and_one_line(tmp_path):
    (tmp_path / "slow.toml").write_text(SLOW)
    # the progress bar past step 1: training is under way (a step takes ~0.15 s here; the
    # headless loop asks for 100 at a time, which were one 15 s call before calls were bounded)
    status, out, _ = _interrupt_when(["run", "slow.toml", "--headless", "--csv", "h.csv"],
                                     r"slow on purpose.*\b([2-9]|\d\d+)/100000", tmp_path)
    assert status == 130, out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out
    last = _plain(out)[-1]
    assert re.fullmatch(r"interrupted at step [\d,]+ of 100,000; h\.csv not written", last), out
    assert not (tmp_path / "h.csv").exists()


@pytest.mark.slow
def test_ctrl_c_stops_a_parallel_check_and_its_workers(tmp_path):
    for i in range(3):
        (tmp_path / f"slow{i}.toml").write_text(SLOW + '\n[[expect]]\nmetric = "loss"\nat = 100000\nop = "<"\n'
                                                "value = 10\n")
    status, out, workers = _interrupt_when(["check", "-j", "2", "."], r"checking 3 scenario\(s\)", tmp_path,
                                           workers=2)
    assert status == 130, out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out
    assert _plain(out)[-1] == "interrupted while checking 3 scenario(s): no report", out
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()], "a worker outlived the check"
