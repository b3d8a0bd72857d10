"""The kernel warm-up: one compilation (or cache load) of the kernels a run needs, shared.

On a first run numba compiles about fifty kernels (~10 s on two cores before a first step
can run); afterwards they load from the on-disk cache in under a second.  The browser starts
the warm-up at once, in a thread, so the kernels compile while the user reads.  Whoever needs
the kernels (a run screen, a headless run) waits for it (`wait`), then builds its Simulation:
there is never a second compilation racing the first.  A scenario the warm-up does not cover
(float64) compiles what it is missing after the warm-up is over.

Progress is counted, not guessed: numba broadcasts a "numba:compile" event around every
real compilation (never around a cache load; numba.core.event), and the warm-up counts
those of nnlab's own kernels.  The total is the count of the last fully cold warm-up up to
its first step, recorded with its timeline beside the compiled kernels (DEFAULT when nothing
was recorded); the time left follows that timeline at the pace measured so far.

Two cores, one compilation, none of it in the lab's own process.  numba compiles one
function at a time per process (a global lock), and a compilation in the app's process
would hold the GIL against its screen.  So on a cold cache two helper processes
(`python -m lab.engine.warmup --helper forward|backward`) compile into the same on-disk
cache.  The drivers call the passes, the passes the activations, and training the
augmentation through address tables (kernels/links.py), so these pieces compile
independently, each once, in either helper:
  forward:  the matrix product (stage P), the forward pass, the forward activations, the
            statistics, evaluation (after L) and the backward activations (stage A); then,
            after S, augmentation (stage F);
  backward: the shuffle (S), the optimizer and the losses (L), the backward pass (after P),
            the training driver and the gradient pass (stage B).
Each helper's stages reach the other through this process (the few kernels they share are
compiled before the other needs them).  Once A and B are done, everything a first step needs
loads here in well under a second, and waiters are let go (`wait`); augmentation, which only
some runs use, finishes compiling in the background (`wait_all`; a run that augments waits
for it).  Each half compiles its kernels with the argument types their callers pass
(`_compile_for`), so nothing compiles twice.  If a helper cannot start or dies, this process
compiles what is missing itself: slower, never wrong.
One compilation per machine: a cold warm-up holds a lock on the cache directory, and
another nnlab process (a second terminal, a classroom of them) waits for it, then loads.

No Textual here (and no numba at import: the browser imports this before its first frame).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

# A cold warm-up on a 2-core machine of the reference kind (`python -m lab.engine.warmup` with a
# fresh NUMBA_CACHE_DIR prints these for a checkout): how many nnlab kernels compile before a
# first step can run, the seconds that took and when each kernel was done.  Measured 2026-12-06:
# 8.8 s with the two helper processes (augmentation then compiles for ~2.4 s more, in the
# background; 8.8-10.2 s over the day on this host, whose speed varies by ~15%); before the
# passes were called through address tables (kernels/links.py) the whole warm-up took 15.4 s
# on the same host.  Used until this machine has recorded its own.
DEFAULT_TOTAL = 51
DEFAULT_SECONDS = 8.8
DEFAULT_TIMELINE = (0.83, 0.84, 0.98, 1.02, 1.27, 1.53, 1.67, 1.68, 2.00, 2.47, 2.54, 2.59, 2.62,
                    2.71, 2.84, 2.89, 3.19, 3.28, 3.44, 3.64, 3.72, 3.85, 3.85, 4.06, 4.17, 4.19,
                    4.27, 4.36, 4.51, 4.59, 4.70, 4.95, 5.03, 5.10, 5.22, 5.28, 5.39, 5.90, 6.01,
                    6.19, 6.39, 6.64, 6.84, 6.93, 7.02, 7.15, 7.41, 7.66, 7.95, 8.04, 8.27)

RECORD_NAME = "nnlab-warm-up.json"
KERNEL_PREFIX = "lab."  # compile events of dispatchers defined in these modules are counted


def covers(scenario) -> bool:
    """Whether the warm-up compiles what this scenario needs (float32: the default)."""
    variants = getattr(scenario, "variants", None) or []
    dtypes = {scenario.model.dtype} | {getattr(v.set, "dtype", None) for v in variants} - {None}
    return dtypes == {"float32"}


TINY_SCENARIO = {"data": {"n": 40}, "model": {"hidden": [4]}, "train": {"steps": 2}}
HELPER_TIMEOUT = 300.0  # seconds a stage of the helper may take before this process stops waiting for it
HELPER_EXIT_SECONDS = 5.0  # after the warm-up, before a helper that has not exited is killed


def compile_float32_kernels() -> None:
    """Build, step and observe a small float32 simulation: compiles (or loads) every kernel
    a float32 run calls.  Not the three that sample the statistics of layers wider than
    65,536 weights (one bundled scenario): adding a wide layer here compiles them too, but
    makes every first run ~1 s longer for it; that scenario compiles them itself.

    On a cold cache two helper processes compile the two halves in parallel (see the
    module's docstring); the result is the same kernels in the same cache."""
    with cache_lock():
        helpers = Helper.start_pair() if cache_is_cold() else None
        if helpers is not None:
            if _shared.warm_up is not None:
                _shared.warm_up.split = True  # a cold cache: this process loads what the helpers compiled
            forward, backward = helpers
            try:
                forward.wait_for("A")  # what a first step needs is in the cache (each helper's part)
                backward.wait_for("B")
                # everything a first step needs loads from the cache now (compiles here only what
                # a helper failed to); then the lab may start its run while augmentation compiles
                _load_tiny_run()
                _first_step_ready()
                forward.wait_for("F")
            finally:
                forward.close()
                backward.close()
        else:
            _load_tiny_run()


def _load_tiny_run() -> None:
    from lab.scenario.schema import Scenario
    from lab.sim import Simulation

    sim = Simulation(Scenario.model_validate(TINY_SCENARIO))
    sim.step(2)
    sim.snapshot()


def _first_step_ready() -> None:
    warm_up = _shared.warm_up
    if warm_up is not None:
        with warm_up._lock:
            warm_up._ready_at = (len(warm_up._times), time.perf_counter() - warm_up._t0)
        warm_up._ready.set()


# -- the two halves --------------------------------------------------------------------------
def _compile_for(kernel, *args) -> None:
    """Compile (or load) `kernel` for the types of `args`, without running it: the types
    must be exactly those its caller passes, or the caller compiles another specialization."""
    import numba

    kernel.compile(tuple(numba.typeof(a) for a in args))


def _tiny_parts():
    """A network and trainer like the tiny scenario's, built without running a kernel (the
    kernels' argument types depend on the dtypes and shapes' ranks, not on the data)."""
    import numpy as np

    from lab.engine.network import Network
    from lab.engine.trainer import Trainer
    from lab.scenario.schema import Scenario
    from lab.sim.simulation import architecture_of, optimizer_of

    sc = Scenario.model_validate(TINY_SCENARIO)
    X, y = np.zeros((sc.data.n, sc.data.dim)), np.zeros(sc.data.n, np.int64)
    net = Network(architecture_of(sc, sc.data.dim, sc.data.classes), np.float32, l1=0.0, l2=0.0)
    trainer = Trainer(net, X, y, sc.train.batch_size, optimizer_of(sc), np.random.default_rng(0))
    return net, trainer


def _compile_linked(net, trainer, row: int, augment=None) -> None:
    """A kernel the drivers or passes call through a workspace's address table
    (kernels/links.py), for exactly the argument types its table entry needs."""
    from .kernels import network as K

    ws = net.workspace(trainer.batch_size)
    K.LINKED_KERNELS[row].compile(K.linked_signatures(ws, net.weights, trainer.rng, augment)[row])


def _compile_dense(net, trainer) -> None:
    """dense_forward, as forward calls it: the matrix product under it is shared with the
    backward pass, so it comes first (stage P)."""
    from .kernels.dense import dense_forward

    ws = net.workspace(trainer.batch_size)
    w = net.param(net.layers[0].weight.name)  # the types forward passes: C-contiguous views
    _compile_for(dense_forward, ws.node(0), w, net.params[:w.shape[1]], ws.node(1))


def _compile_augment(net, trainer) -> None:
    """augment_batch, as train_steps calls it (only a run that augments links it)."""
    import numpy as np

    from .kernels import network as K

    augment = K.Augment(trainer.augment, trainer.image_shape, np.empty(trainer.X.shape[1], net.dtype))
    _compile_linked(net, trainer, K.L_AUGMENT, augment)


def _compile_losses(net, trainer) -> None:
    """What train_steps, evaluate and loss_and_grads link in (the shuffle first: augmentation
    calls it too, stage S; then the optimizer and the losses, stage L)."""
    from .kernels.losses import LOSS_CODES, loss_forward_backward, plain_loss
    from .kernels.optim import optimizer_update, penalty_and_sq_norm
    from .kernels.shuffle import shuffle

    ws = net.workspace(trainer.batch_size)
    w = net.weights
    _compile_for(shuffle, trainer.rng, trainer.perm)
    print("done S", flush=True)
    state, hyper = trainer.opt_state, trainer.optimizer.hyper()
    _compile_for(optimizer_update, trainer.optimizer.code, w.params, w.grads, w.reg, hyper, 1.0, 0.1,
                 state.t[0], state.m1, state.m2, trainer.last_update, True)
    _compile_for(penalty_and_sq_norm, w.params, w.grads, w.reg, 0.0, 0.0)
    last = len(net.plan.node_widths) - 1
    code = LOSS_CODES[net.arch.loss]
    _compile_for(loss_forward_backward, code, ws.node(last), ws.ybuf, ws.y2buf, ws.lambuf, ws.grad_node(last))
    _compile_for(plain_loss, code, ws.node(last), ws.ybuf, ws.grad_node(last))
    print("done L", flush=True)


def _compile_training_driver(net, trainer) -> None:
    """train_steps and loss_and_grads, for the arguments Trainer.run and Network.gradient_pass
    give them (compiled, not run: running would link the passes, perhaps still compiling)."""
    import numpy as np

    from .kernels import network as K
    from .kernels.losses import LOSS_CODES

    _compile_for(K.train_steps, *trainer.train_steps_args(np.zeros(1)))
    ws = net.workspace(trainer.batch_size, "eval")
    _compile_for(K.loss_and_grads, ws, net.weights, net._side_rng, trainer.y, LOSS_CODES[net.arch.loss],
                 net.l1, net.l2, False)


def _compile_evaluation(net, trainer) -> None:
    """evaluate, as Trainer.evaluate calls it."""
    from .kernels import network as K
    from .kernels.losses import LOSS_CODES

    ws = net.workspace(trainer.batch_size, "eval")
    _compile_for(K.evaluate, ws, net.weights, net._side_rng, trainer.X, trainer.y, LOSS_CODES[net.arch.loss], 0.0)


def _compile_statistics(net) -> None:
    """The per-layer statistics' kernels (histogram, unit sums), called as layer_stats calls
    them (they depend on no other kernel: whichever helper has time compiles them; the
    backward one does, after evaluation, while the other compiles the driver)."""
    from lab.sim.bins import SYMLOG_BINS, activation_bins
    from lab.sim.stats import WEIGHT_ZERO_THRESHOLD, ZERO_THRESHOLD, summarize, unit_metrics

    ws = net.workspace(1)
    layer = net.layers[0]
    summarize(ws.node(layer.out_node), activation_bins(layer.kind), layer.kind, ZERO_THRESHOLD)
    summarize(ws.grad_node(layer.out_node), SYMLOG_BINS)
    w, dw = net.param(layer.weight.name), net.grad(layer.weight.name)
    summarize(w.ravel(), SYMLOG_BINS, zero_threshold=WEIGHT_ZERO_THRESHOLD)
    unit_metrics(w, dw)


# -- the helper process ----------------------------------------------------------------------
def cache_is_cold() -> bool:
    """No training driver in the kernel cache yet: a first run (a helper is worth starting)."""
    from lab import _numba_cache

    root = _numba_cache.cache_dir()
    if root is None or root != _numba_cache.keyed_dir():  # a private or no cache: a helper could not share it
        return False
    return not any(root.rglob("network.train_steps-*.nbi"))


@contextlib.contextmanager
def cache_lock():
    """Hold the kernel cache's lock (blocking until another process's warm-up is over)."""
    from lab import _numba_cache

    root = _numba_cache.cache_dir()
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, each process compiles for itself
        fcntl = None
    if root is None or fcntl is None:
        yield
        return
    try:
        handle = open(root / "warm-up.lock", "a+b")
    except OSError:
        yield
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:
            pass  # a file system without locks: compile anyway
        yield  # closing the file releases the lock


class Helper:
    """The helper process, seen from the warm-up: stages it reports done ("B", "C"), lines
    it is told ("A"), and every kernel it compiles counted into the warm-up's progress."""

    def __init__(self, proc: subprocess.Popen, role: str = "") -> None:
        self.proc = proc
        self.role = role
        self._stages: set[str] = set()
        self._changed = threading.Condition()
        self._writing = threading.Lock()
        self.peer: Helper | None = None  # the other helper: told every stage this one reports
        self._reader = threading.Thread(target=self._read, name="nnlab-warm-up-helper", daemon=True)
        self._reader.start()

    @staticmethod
    def start(role: str) -> "Helper | None":
        try:
            proc = subprocess.Popen([sys.executable, "-m", "lab.engine.warmup", "--helper", role],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
        except OSError:
            return None
        return Helper(proc, role)

    @staticmethod
    def start_pair() -> "tuple[Helper, Helper] | None":
        """The forward and the backward helper, or None (and neither) if one cannot start."""
        forward = Helper.start("forward")
        backward = Helper.start("backward") if forward is not None else None
        if backward is None:
            if forward is not None:
                forward.close()
            return None
        forward.relay_to(backward)
        backward.relay_to(forward)
        return forward, backward

    def relay_to(self, peer: "Helper") -> None:
        """Tell `peer` every stage this helper reports, those already reported included."""
        with self._changed:
            self.peer = peer
            reported = sorted(self._stages - {"exit"})
        for stage in reported:
            peer.said(stage)

    def _read(self) -> None:
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").strip()
            if line.startswith("compiled "):
                if os.environ.get("NNLAB_WARM_UP_TRACE"):  # when each kernel was done, and by whom
                    warm_up = _shared.warm_up
                    at = time.perf_counter() - warm_up._t0 if warm_up is not None else float("nan")
                    print(f"{at:6.2f} {self.role} {line}", file=sys.stderr, flush=True)
                _count_elsewhere()
            elif line.startswith("done "):
                with self._changed:  # with relay_to: a stage reported before the pairing is relayed there
                    self._stages.add(line[5:])
                    self._changed.notify_all()
                    peer = self.peer
                if peer is not None:
                    peer.said(line[5:])
        with self._changed:  # the helper is gone: nothing more will come
            self._stages.add("exit")
            self._changed.notify_all()

    def said(self, line: str) -> None:
        with self._writing:  # the warm-up and the other helper's reader both tell this one
            try:
                self.proc.stdin.write(f"{line}\n".encode())
                self.proc.stdin.flush()
            except (OSError, ValueError):
                pass  # the helper is gone; wait_for returns at once

    def wait_for(self, stage: str) -> bool:
        """Until the helper has finished `stage` (True) or is gone or too slow (False)."""
        with self._changed:
            return self._changed.wait_for(lambda: stage in self._stages or "exit" in self._stages, HELPER_TIMEOUT) \
                and stage in self._stages

    def close(self) -> None:
        """Tell the helper the warm-up is over (waiting on stdin, it exits) and go on without
        waiting for it to exit: what it compiled is in the cache once it said so, and an
        interpreter with numba loaded takes ~0.5 s to shut down.  A thread reaps it, and
        kills it if it is still there after HELPER_EXIT_SECONDS (a stage that timed out)."""
        with self._writing:
            try:
                self.proc.stdin.close()
            except OSError:
                pass  # already gone: nothing left to tell it
        threading.Thread(target=self._reap, name="nnlab-warm-up-reaper", daemon=True).start()

    def _reap(self) -> None:
        try:
            self.proc.wait(timeout=HELPER_EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def helper_main(role: str) -> int:
    """A helper process: a line on stdout per kernel compiled and per stage done, a line on
    stdin per stage the other helper has done (relayed by the warm-up); the roles' stages
    are in the module's docstring."""
    from numba.core import event

    class Reporter(event.Listener):
        def on_start(self, ev) -> None:
            pass

        def on_end(self, ev) -> None:
            py_func = getattr((ev.data or {}).get("dispatcher"), "py_func", None)
            module = getattr(py_func, "__module__", "") or ""
            if module.startswith(KERNEL_PREFIX):
                print(f"compiled {kernel_name(ev)}", flush=True)

    from .kernels import network as K

    with event.install_listener("numba:compile", Reporter()):
        net, trainer = _tiny_parts()
        if role == "forward":
            _compile_dense(net, trainer)
            print("done P", flush=True)
            _compile_linked(net, trainer, K.L_FORWARD)
            _compile_linked(net, trainer, K.L_ACT_FORWARD)
            _compile_statistics(net)
            if not _told("L"):
                return 0  # the warm-up ended (or the other helper failed): nothing to build on
            _compile_evaluation(net, trainer)
            _compile_linked(net, trainer, K.L_ACT_BACKWARD)  # independent of the backward pass: balances the halves
            print("done A", flush=True)
            if not _told("S"):
                return 0
            _compile_augment(net, trainer)  # after the first step's kernels: see compile_float32_kernels
            print("done F", flush=True)
        else:
            _compile_losses(net, trainer)
            if not _told("P"):
                return 0
            _compile_linked(net, trainer, K.L_BACKWARD)
            _compile_training_driver(net, trainer)
            print("done B", flush=True)
    return 0


_heard: set[str] = set()


def _told(stage: str) -> bool:
    """Wait until the other helper has done `stage` (the warm-up relays every stage each helper
    reports to the other); False: the warm-up is over, or the other helper is gone."""
    while stage not in _heard:
        line = sys.stdin.readline()
        if not line:
            return False
        _heard.add(line.strip())
    return True


def _count_elsewhere() -> None:
    """A kernel compiled by the helper process: count it in the running warm-up's progress."""
    warm_up = getattr(_shared, "warm_up", None)
    if warm_up is not None:
        warm_up._compiled_at(time.perf_counter() - warm_up._t0)


class _Shared:
    warm_up = None


_shared = _Shared()


def kernel_name(ev) -> str:
    """'module.function(argument types)' of a numba:compile event, on one line (for traces)."""
    data = ev.data or {}
    py_func = getattr(data.get("dispatcher"), "py_func", None)
    args = " ".join(str(data.get("args", "")).split())
    return f"{getattr(py_func, '__module__', '?')}.{getattr(py_func, '__name__', '?')}{args}"


def default_record_path() -> Path:
    """Beside numba's cache: in nnlab's own cache root (shared by every kernel version, so a
    kernel edit still finds the last estimate), or in a cache directory the user chose."""
    from lab import _numba_cache

    cache = Path(_numba_cache.CACHE_DIR)
    if cache.parent == _numba_cache.user_cache_dir():
        return cache.parent / RECORD_NAME
    return cache / RECORD_NAME


@dataclass(frozen=True)
class Record:
    """A fully cold warm-up: kernels compiled, seconds, and when each kernel was done."""

    total: int
    seconds: float
    timeline: tuple[float, ...] = ()

    def expected_at(self, compiled: int) -> float:
        """Seconds into a cold warm-up at which `compiled` kernels were done last time."""
        if compiled <= 0:
            return 0.0
        if compiled >= self.total or not self.timeline:
            return self.seconds * min(1.0, compiled / max(self.total, 1))
        x = compiled * len(self.timeline) / self.total  # a timeline of another length: rescale
        i = int(x)
        lo = self.timeline[i - 1] if i >= 1 else 0.0
        hi = self.timeline[min(i, len(self.timeline) - 1)]
        return lo + (hi - lo) * (x - i)

    @staticmethod
    def load(path: Path | None) -> "Record":
        try:
            raw = json.loads(path.read_text(encoding="utf-8")) if path is not None else None
            rec = Record(int(raw["total"]), float(raw["seconds"]), tuple(float(t) for t in raw["timeline"]))
            if rec.total > 0 and rec.seconds > 0:
                return rec
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return Record(DEFAULT_TOTAL, DEFAULT_SECONDS, DEFAULT_TIMELINE)

    def save(self, path: Path) -> None:
        data = {"total": self.total, "seconds": round(self.seconds, 3),
                "timeline": [round(t, 3) for t in self.timeline]}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            pass  # an estimate is not worth failing for (read-only cache, full disk)


@dataclass(frozen=True)
class Progress:
    """Where the warm-up is.  state: idle (never started), loading (no compilation seen yet:
    a warm cache loads in well under a second), compiling, done."""

    state: str
    compiled: int = 0
    total: int = 0
    elapsed: float = 0.0
    remaining: float | None = None
    error: str | None = None

    @property
    def fraction(self) -> float:
        return min(1.0, self.compiled / self.total) if self.total else 0.0

    def text(self) -> str:
        """One line for a status bar: '' when there is nothing to wait for."""
        if self.state == "loading":
            return "loading compiled kernels…"
        if self.state != "compiling":
            return ""
        left = "" if self.remaining is None else f", {about(self.remaining)} left"
        return f"compiling kernels {self.compiled}/{self.total}{left} (first run only)"


def about(seconds: float) -> str:
    if seconds >= 90:
        return f"about {round(seconds / 60)} min"
    return f"about {max(1, round(seconds))} s"


def _cache_hits() -> int:
    """Kernels loaded from numba's disk cache so far in this process (nnlab's own)."""
    hits = 0
    for name, module in list(sys.modules.items()):
        if not name.startswith("lab.engine.kernels.") or module is None:
            continue
        for value in list(vars(module).values()):
            stats = getattr(value, "stats", None)
            py_func = getattr(value, "py_func", None)
            if stats is not None and getattr(py_func, "__module__", None) == name:
                hits += sum(getattr(stats, "cache_hits", {}).values())
    return hits


class WarmUp:
    """Runs `job` (compiling kernels) once, in a daemon thread, and counts what it compiles.

    start() any number of times, from any thread: the job runs once.  wait() blocks until it
    is over (at once if it never started).  progress() is cheap: poll it from a UI timer.
    """

    def __init__(self, job: Callable[[], None] = compile_float32_kernels, *,
                 record_path: Path | None | Callable[[], Path | None] = default_record_path) -> None:
        self.job = job
        self._record_path = record_path
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._ready = threading.Event()  # a first step can run: set before done on a cold cache
        self._ready_at: tuple[int, float] | None = None  # (kernels compiled, seconds) then
        self._thread: threading.Thread | None = None
        self._record: Record | None = None
        self._t0 = 0.0
        self._path: Path | None = None
        self._seen_compile = False  # a numba compilation (of any function) began: the cache is cold
        self._times: list[float] = []  # seconds since start at which each nnlab kernel was done
        self._last_event = 0.0
        self.seconds: float | None = None  # how long the job took, once done
        self.split = False  # the job shared a cold compilation with a helper process
        self.error: BaseException | None = None

    # -- control ----------------------------------------------------------------------------
    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def start(self) -> "WarmUp":
        with self._lock:
            if self._thread is None:
                path = self._record_path() if callable(self._record_path) else self._record_path
                self._path = path
                self._record = Record.load(path)
                self._t0 = time.perf_counter()
                self._thread = threading.Thread(target=self._run, name="nnlab-warm-up", daemon=True)
                self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a first step can run (True), or `timeout` seconds (False): the kernels
        every float32 run needs are loaded; on a cold cache, augmentation may still be
        compiling (`wait_all`).  A warm-up that never started is over.  Never call it from
        the job itself."""
        return self._wait(self._ready, timeout)

    def wait_all(self, timeout: float | None = None) -> bool:
        """Block until the warm-up is over (True), or `timeout` seconds (False)."""
        return self._wait(self._done, timeout)

    def _wait(self, event: threading.Event, timeout: float | None) -> bool:
        if self._thread is None:
            return True
        if self._thread is threading.current_thread():
            raise RuntimeError("the warm-up cannot wait for itself")
        return event.wait(timeout)

    # -- progress ---------------------------------------------------------------------------
    def progress(self) -> Progress:
        if self._thread is None:
            return Progress("idle")
        rec = self._record
        compiled = len(self._times)
        total = max(rec.total, compiled + (0 if self.done else 1))  # never "54/53"
        if self.done:
            err = None if self.error is None else f"{type(self.error).__name__}: {self.error}"
            return Progress("done", compiled, total, self.seconds or 0.0, 0.0, err)
        now = time.perf_counter() - self._t0
        if not self._seen_compile:
            return Progress("loading", 0, total, now)
        return Progress("compiling", compiled, total, now, self._remaining(rec, compiled, now))

    def _remaining(self, rec: Record, compiled: int, now: float) -> float:
        """Seconds left: the recorded duration at the pace measured so far (how much slower or
        faster than last time the kernels done so far took: the machine's load), trusted fully
        once a quarter of the recorded time is behind, blended with the record before that."""
        expected = rec.expected_at(compiled)
        pace = min(max(self._last_event / expected, 0.25), 4.0) if compiled and expected > 0 else 1.0
        trust = min(1.0, expected / (0.25 * rec.seconds))
        return max(1.0, rec.seconds * (trust * pace + 1.0 - trust) - now)

    # -- the thread -------------------------------------------------------------------------
    def _run(self) -> None:
        from numba.core import event

        warm_up = self

        class Watcher(event.Listener):
            def on_start(self, ev) -> None:
                warm_up._seen_compile = True

            def on_end(self, ev) -> None:
                warm_up._compiled((ev.data or {}).get("dispatcher"))

        hits_before = _cache_hits()
        _shared.warm_up = self
        try:
            with event.install_listener("numba:compile", Watcher()):
                self.job()
        except BaseException as exc:  # reported through progress(); the waiter compiles itself and sees it
            self.error = exc
        finally:
            _shared.warm_up = None
            self.seconds = time.perf_counter() - self._t0
            # cold: every kernel was compiled, here or by the helper (whose kernels load here)
            cold = self.error is None and self._times and (self.split or _cache_hits() == hits_before)
            if cold and self._path is not None:  # what a waiting user sees: up to the first step's kernels
                n, seconds = self._ready_at or (len(self._times), self.seconds)
                Record(n, seconds, tuple(self._times[:n])).save(self._path)
            self._ready.set()
            self._done.set()

    def _compiled(self, dispatcher) -> None:
        module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
        if module.startswith(KERNEL_PREFIX):
            self._compiled_at(time.perf_counter() - self._t0)

    def _compiled_at(self, seconds: float) -> None:
        """A kernel was done (here, or in the helper process: its reader thread calls this)."""
        self._seen_compile = True
        with self._lock:
            self._last_event = seconds
            self._times.append(seconds)


KERNELS = WarmUp()
"""The process's warm-up: the app starts it, run screens and headless runs wait for it."""


def main() -> int:
    """Time a cold warm-up of this checkout and print the DEFAULT_* figures it gives (run it
    with a fresh NUMBA_CACHE_DIR, or nothing compiles)."""
    w = WarmUp(record_path=None).start()
    w.wait_all()
    if w.error is not None:
        raise w.error
    n, seconds = w._ready_at or (len(w._times), w.seconds)  # what a user waits for: the first step's kernels
    print(f"DEFAULT_TOTAL = {n}\nDEFAULT_SECONDS = {seconds:.1f}\n"
          f"DEFAULT_TIMELINE = ({', '.join(f'{t:.2f}' for t in w._times[:n])})\n"
          f"# and {len(w._times) - n} kernel(s) compiled after, in {w.seconds:.1f} s in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(helper_main(sys.argv[2]) if sys.argv[1:2] == ["--helper"] else main())
