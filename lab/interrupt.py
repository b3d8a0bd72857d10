"""Ctrl-C in a headless command: exit status 130 and one line on stderr, never a traceback.

Python raises KeyboardInterrupt in the main thread only between bytecodes, so a compiled
kernel call runs to its end first: the engine keeps every call short (lab.engine.trainer.
CALL_SECONDS), and Ctrl-C lands within a fraction of a second.  The CLI's `main` turns the
interrupt into the exit status and the message (`report`); a command says what was under
way (`note`), e.g. "at step 1,200 of 5,000".  Worker processes (`check -j`) ignore SIGINT
and are stopped by the parent, so a pool of them prints nothing either.
"""

from __future__ import annotations

import signal
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterator

from lab.errors import ExitCode

INTERRUPTED = int(ExitCode.INTERRUPTED)

_note: Callable[[], str] | None = None


def note(describe: Callable[[], str] | None) -> None:
    """What the interrupted command was doing, asked when the interrupt comes ("at step 12 of 50")."""
    global _note
    _note = describe


def message() -> str:
    text = "interrupted"
    if _note is not None:
        try:
            text += f" {_note()}"
        except Exception:  # noqa: BLE001 - the message must never fail
            pass
    return text


def caused_by_interrupt(exc: BaseException | None) -> bool:
    """Whether exc is, or was raised while handling, a KeyboardInterrupt (typer and click turn
    Ctrl-C into their own exit exceptions)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def worker_pool(jobs: int) -> Iterator[ProcessPoolExecutor]:
    """A process pool whose workers leave Ctrl-C to this process, which stops them at once.

    The kernel cache is set up here first, so that forked workers share it (also a
    temporary one, which this process removes at exit)."""
    from lab._numba_cache import cache_dir

    cache_dir()
    pool = ProcessPoolExecutor(max_workers=jobs, initializer=_ignore_sigint)
    try:
        yield pool
    except BaseException:
        workers = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in workers:  # mid-scenario: they would finish it first
            process.terminate()
        for process in workers:
            process.join(timeout=5)
        raise
    pool.shutdown(wait=True)
