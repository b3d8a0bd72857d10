"""The cold warm-up on two cores: two helper processes compile the two halves of the kernels
into the shared cache (none in the lab's own process), nothing compiles twice, and a second
nnlab process waits for the first's compilation instead of racing it (lab/engine/warmup.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from lab.engine.warmup import WarmUp, Helper, _shared

# One warm-up in a child process: every kernel compiled in it printed as "main <kernel(types)>";
# the helpers', as "<seconds> forward|backward compiled <kernel(types)>" (NNLAB_WARM_UP_TRACE),
# both on stderr.
TRACED = r"""
import sys
from numba.core import event
from lab.engine.warmup import KERNEL_PREFIX, compile_float32_kernels, kernel_name

class Trace(event.Listener):
    def on_start(self, ev):
        pass

    def on_end(self, ev):
        name = kernel_name(ev)
        if name.startswith(KERNEL_PREFIX):
            print("main", name, file=sys.stderr, flush=True)

with event.install_listener("numba:compile", Trace()):
    compile_float32_kernels()
"""


def fresh_cache_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), NNLAB_WARM_UP_TRACE="1", NUMBA_DISABLE_JIT="0")
    return env


HELPER_LINE = re.compile(r"^\s*\S+ (forward|backward) compiled (.*)$")


def compiled(stderr: str) -> tuple[list[str], list[str]]:
    """(kernels compiled in the process, kernels its helper compiled)."""
    main = [line[5:] for line in stderr.splitlines() if line.startswith("main ")]
    helper = [m[2] for m in (HELPER_LINE.match(line) for line in stderr.splitlines()) if m]
    return main, helper


def warm_up_in_child(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", TRACED], env=env, stderr=subprocess.PIPE, text=True)


@pytest.mark.cold
def test_a_cold_warm_up_splits_the_kernels_with_a_helper_and_compiles_none_twice(tmp_path):
    env = fresh_cache_env(tmp_path)
    child = warm_up_in_child(env)
    _, err = child.communicate(timeout=600)
    assert child.returncode == 0, err
    main, helpers = compiled(err)
    assert not main, main  # the lab's own process only loads what the helpers compiled
    # both halves were compiled, each once
    for kernel in (".network.forward(", ".network.backward(", ".optim.optimizer_update(", ".network.evaluate(",
                   ".network.loss_and_grads(", ".network.train_steps(", ".augment.augment_batch(",
                   ".histogram.summarize("):
        assert sum(kernel in k for k in helpers) == 1, kernel
    # nothing compiled twice, in either helper, for the same argument types; but the small
    # leaves both halves call (the matrix product, a vector-math helper: ~0.1 s each) may be
    # compiled by both at the very start, when neither has cached them yet
    twice = [k for k, n in Counter(helpers).items() if n > 1]
    assert all(k.startswith(("lab.engine.kernels.blas.", "lab.engine.kernels.vmath.",
                             "lab.engine.kernels.network.node_view")) for k in twice), twice

    again = warm_up_in_child(env)  # warm: every kernel loads; no helper is started
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    assert compiled(err) == ([], [])


@pytest.mark.cold
def test_two_processes_warming_up_at_once_compile_once(tmp_path):
    env = fresh_cache_env(tmp_path)
    first, second = warm_up_in_child(env), warm_up_in_child(env)
    results = [p.communicate(timeout=600) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, results
    counts = sorted(len(main) + len(helper) for main, helper in (compiled(err) for _, err in results))
    assert counts[0] == 0 and counts[1] > 0, counts  # one compiled everything, the other waited and loaded


# -- the helper's protocol, with a stand-in process (no compilation) ------------------------------------
@pytest.fixture(autouse=True)
def _stand_ins_answer_within_a_minute(request, monkeypatch):
    """A stand-in answers at once: a lost stage fails in a minute, not in the five a compiling
    helper is given (the cold tests keep those)."""
    if request.node.get_closest_marker("cold") is None:
        monkeypatch.setattr("lab.engine.warmup.HELPER_TIMEOUT", 60.0)


def stand_in(script: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)


def test_the_helper_counts_its_kernels_in_the_warm_ups_progress_and_reports_its_stages(tmp_path):
    script = ("import sys\nprint('compiled a.b()', flush=True)\nprint('compiled a.c()', flush=True)\n"
              "print('done B', flush=True)\nassert sys.stdin.readline().strip() == 'A'\n"
              "print('compiled a.d()', flush=True)\nprint('done C', flush=True)\n")
    warm_up = WarmUp(lambda: None, record_path=None)
    warm_up._t0 = time.perf_counter()
    _shared.warm_up = warm_up
    try:
        helper = Helper(stand_in(script))
        assert helper.wait_for("B")
        assert len(warm_up._times) == 2
        helper.said("A")
        assert helper.wait_for("C")
        helper.close()  # does not wait for the exit: the helper's reaper does
        assert helper.proc.wait(timeout=60) == 0 and len(warm_up._times) == 3
    finally:
        _shared.warm_up = None


def test_a_helper_that_dies_is_not_waited_for():
    helper = Helper(stand_in("import sys\nprint('compiled a.b()', flush=True)\nsys.exit(3)\n"))
    assert helper.wait_for("B") is False  # at once: its stdout closed, no stage will come
    helper.said("A")  # writing to a dead helper is harmless
    helper.close()
    assert helper.proc.wait(timeout=60) == 3


def test_a_stage_reported_after_the_pairing_is_relayed_too():
    second = Helper(stand_in("import sys\nfor line in sys.stdin:\n    if line.strip() == 'P':\n"
                             "        print('done Q', flush=True)\n        break\n"), "backward")
    first = Helper(stand_in("import sys\nsys.stdin.readline()\nprint('done P', flush=True)\nsys.stdin.read()\n"),
                   "forward")
    first.relay_to(second)
    second.relay_to(first)
    try:
        first.said("go")  # only now does the first one report P
        assert second.wait_for("Q")
    finally:
        first.close()
        second.close()
    assert second.proc.wait(timeout=60) == 0


def test_each_helper_hears_the_stages_the_other_reports():
    """The helpers build on each other's stages (the shared matrix product, the shuffle, the
    losses): the warm-up relays every stage one reports to the other as it comes."""
    first = Helper(stand_in("print('done P', flush=True)\nimport sys\nsys.stdin.read()\n"), "forward")
    assert first.wait_for("P")  # reported before the pairing: relayed when it is made
    second = Helper(stand_in("import sys\nfor line in sys.stdin:\n    if line.strip() == 'P':\n"
                             "        print('done Q', flush=True)\n        break\n"), "backward")
    first.relay_to(second)
    second.relay_to(first)
    try:
        assert second.wait_for("Q")  # it heard P from the first one
    finally:
        first.close()
        second.close()
    assert second.proc.wait(timeout=60) == 0
