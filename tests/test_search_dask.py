"""nnlab search on a dask.distributed cluster: a scheduler and two workers started here on
127.0.0.1 (as `dask scheduler` / `dask worker` would be on other machines) give the same
trials, bit for bit, as the local process pool; a worker that dies mid-trial has its trial
run elsewhere."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.search.engine import DIE_ONCE_ENV, run_search

from tests.test_search import ROOT, same_trials, scenario

pytest.importorskip("distributed")

pytestmark = pytest.mark.slow  # a cluster's start and stop: ~10 s; still part of the README's test command


def _wait_for(condition, timeout: float, what: str, procs=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"{what}: a cluster process exited with {p.returncode}: "
                                     f"{p.stderr.read() if p.stderr else ''}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def cluster(tmp_path):
    """A scheduler and two one-thread workers (each with a nanny, which restarts a worker that dies)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    env.pop(DIE_ONCE_ENV, None)
    file = tmp_path / "scheduler.json"
    procs = []
    address = None
    try:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
             "--no-dashboard", "--scheduler-file", str(file)],
            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _wait_for(lambda: file.exists() and file.stat().st_size > 0 and _address(file), 60, "the scheduler", procs)
        address = _address(file)
        for i in range(2):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1", "--nworkers", "1",
                 "--no-dashboard", "--name", f"w{i}", "--local-directory", str(tmp_path / f"w{i}")],
                env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        # workers first (SIGINT: a clean close in well under a second), then the scheduler
        for p in procs[1:] + procs[:1]:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def _address(file: Path) -> str | None:
    try:
        return json.loads(file.read_text()).get("address")
    except (OSError, ValueError):
        return None


SEARCH = {"trials": 6, "steps": 50, "params": {"lr": "log:1e-3:3", "l2": "log:1e-5:1e-1"},
          "stages": [{"trials": 3, "steps": 80, "top_k": 2}]}


def test_dask_cluster_gives_the_local_pools_results_bit_for_bit(cluster, tmp_path, monkeypatch):
    sc = scenario(SEARCH)
    local = run_search(sc, jobs=2)
    assert len(local.trials) == 9 and all(t.status in ("ok", "diverged") for t in local.trials)
    seen = []
    remote = run_search(sc, scheduler=cluster, on_trial=seen.append)
    assert len(seen) == 9
    same_trials(remote.trials, local.trials)
    assert [str(a) for a in remote.stage_axes[1]] == [str(a) for a in local.stage_axes[1]]

    # a worker that dies mid-trial: dask runs the trial again on a worker that lives
    hook = tmp_path / "die"
    hook.write_text("4")
    monkeypatch.setenv(DIE_ONCE_ENV, str(hook))
    again = run_search(sc, scheduler=cluster)
    assert not hook.exists(), "the worker running trial 4 did not die (the test hook never fired)"
    same_trials(again.trials, local.trials)


def test_scheduler_local_starts_a_local_cluster_with_the_same_results():
    sc = scenario({"trials": 4, "steps": 40, "params": {"lr": "log:1e-3:1"}})
    local = run_search(sc, jobs=2)
    on_cluster = run_search(sc, jobs=2, scheduler="local")
    same_trials(on_cluster.trials, local.trials)
