"""Executors shared by hyperparameter search (lab/search) and ensembles (lab/ensemble): a local
process pool or a dask.distributed cluster, behind one small interface.

    backend = make_backend(jobs=2, scheduler=None, preload=("lab.ensemble.train",))
    future = backend.run(fn, *args, key="nnlab-member-3")   # fn and args must pickle
    done = backend.wait([future], timeout=0.2)               # the futures that finished
    backend.close(cancel=False)

Every worker uses one BLAS thread (GEMM's summation order depends on the thread count: the
same task gives the same bits in any worker, and as in a sequential run under one thread).
The local pool starts its workers with forkserver (or spawn), never fork: the TUI calls this
from a thread; so a script that uses it needs the `if __name__ == "__main__":` guard.  Its
workers ignore Ctrl-C (the parent stops them).  A worker that dies breaks the local pool:
`worker_died(exc)` says so, and `restart()` replaces the pool (the caller resubmits); dask
reschedules a dead worker's tasks itself (`retries`).
"""

from __future__ import annotations

import uuid
from typing import Callable, Iterable

from lab.errors import LabError

__all__ = ["DaskBackend", "LocalBackend", "make_backend", "prepare_worker"]

_worker_ready = False


def prepare_worker() -> None:
    """Once per worker process: one BLAS thread (the same bits everywhere)."""
    global _worker_ready
    if not _worker_ready:
        from lab.engine.threads import limit_blas_threads

        limit_blas_threads(1)
        _worker_ready = True


def _pool_initializer() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    prepare_worker()
    _first_run_warm_up()


def _first_run_warm_up() -> None:
    """On a cold kernel cache, the workers would all compile the same kernels at once: the
    first one compiles them (with its warm-up helper, on two cores), the others wait for its
    lock and load them (lab/engine/warmup.py).  On a warm cache: nothing."""
    import numba

    from lab.engine.warmup import cache_is_cold, compile_float32_kernels

    if numba.config.DISABLE_JIT or not cache_is_cold():
        return
    try:
        compile_float32_kernels()
    except Exception:  # noqa: BLE001 - only a head start: the task compiles what it needs itself
        pass


class LocalBackend:
    """A process pool (forkserver or spawn) whose workers use one BLAS thread and ignore Ctrl-C.

    preload: modules the fork server imports once (numpy, numba and the engine), not every
    worker (nor every fresh pool after a worker died)."""

    def __init__(self, jobs: int, preload: Iterable[str] = ("lab.sim.run",)) -> None:
        self.jobs = jobs
        self.capacity = 2 * jobs  # tasks in flight: a break re-runs at most these
        self.in_flight: list = []
        self.pool = None
        self.restarts = 0
        self.preload = list(preload)
        self._start()

    def _start(self) -> None:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        context = mp.get_context(method)
        if method == "forkserver":  # set before the server first starts
            context.set_forkserver_preload(self.preload)
        self.pool = ProcessPoolExecutor(max_workers=self.jobs, mp_context=context, initializer=_pool_initializer)

    def run(self, fn: Callable, *args, key: str | None = None, retries: int = 0):
        """Submit fn(*args) to a worker; a Future.  (`key` and `retries` are dask's; ignored here.)"""
        return self.pool.submit(fn, *args)

    def wait(self, futures, timeout):
        from concurrent.futures import FIRST_COMPLETED, wait

        return wait(futures, timeout=timeout, return_when=FIRST_COMPLETED).done

    @staticmethod
    def worker_died(exc: BaseException) -> bool:
        from concurrent.futures.process import BrokenProcessPool

        return isinstance(exc, BrokenProcessPool)

    def restart(self) -> None:
        self.close(cancel=True)
        self.restarts += 1
        self._start()

    def close(self, cancel: bool = False) -> None:
        pool, self.pool = self.pool, None
        if pool is None:
            return
        if not cancel:
            pool.shutdown(wait=True)
            return
        workers = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in workers:
            try:
                process.terminate()
            except Exception:  # noqa: BLE001 - already gone
                pass
        for process in workers:
            process.join(timeout=5)


class DaskBackend:
    """The same tasks on a dask.distributed cluster: "local" (a LocalCluster started here) or an
    address such as tcp://127.0.0.1:8786.  Dask re-runs the task of a worker that died."""

    def __init__(self, scheduler: str, jobs: int) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:  # pragma: no cover - a dependency
            raise LabError(f"--scheduler needs dask.distributed: pip install 'dask[distributed]' ({exc})") from None
        self.cluster = None
        self.capacity = 1 << 30  # the scheduler queues them
        self.in_flight: list = []  # cancelled on close(cancel=True)
        self.token = uuid.uuid4().hex[:8]
        try:
            if scheduler == "local":
                self.cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                            dashboard_address=":0")  # a free port: never "8787 in use"
                self.client = Client(self.cluster)
            else:
                self.client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            if self.cluster is not None:
                self.cluster.close()
            raise LabError(f"--scheduler {scheduler}: cannot reach the dask scheduler ({exc})") from None

    def run(self, fn: Callable, *args, key: str | None = None, retries: int = 0):
        return self.client.submit(fn, *args, pure=False, retries=retries,
                                  **({"key": key} if key is not None else {}))

    def wait(self, futures, timeout):
        from distributed import wait

        try:
            return wait(futures, timeout=timeout, return_when="FIRST_COMPLETED").done
        except TimeoutError:
            return set()

    @staticmethod
    def worker_died(exc: BaseException) -> bool:
        return False  # dask reschedules; KilledWorker (it died too often) is a failed task

    def restart(self) -> None:  # pragma: no cover - worker_died is never true here
        """Nothing to replace: the dask scheduler moves a dead worker's tasks to the others."""

    def close(self, cancel: bool = False) -> None:
        try:
            if cancel and self.in_flight:
                self.client.cancel(self.in_flight)
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


def make_backend(jobs: int, scheduler: str | None = None, preload: Iterable[str] = ("lab.sim.run",)):
    """A dask backend when `scheduler` is given ("local" or an address), else a local pool of `jobs`."""
    return DaskBackend(scheduler, jobs) if scheduler else LocalBackend(jobs, preload)
