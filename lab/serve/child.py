"""One served lab: the process `nnlab serve ssh` starts in each connection's pseudo-terminal,
and `nnlab serve web` under textual-serve for each browser tab.

    python -m lab.serve.child [--no-writes] [--memory-mb N] [--cpu-seconds N] [FOLDER ...]

It is the lab's browser (the curriculum plus FOLDERs), confined the way a shared machine
needs it: its own temporary folder (the only place ctrl+s and CSV export write; listed when
the session ends, then removed), resource limits on itself (address space and CPU time, so
one session cannot exhaust the machine) and one BLAS thread (the sessions share the cores).
`--no-writes` (anonymous rooms, browsers) turns saving and exporting off with a message.

The limits are set here, in the child, rather than by the server: the same code then
confines a session whichever server started it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Before numpy or numba are imported: one BLAS/OpenMP thread per session (the serving
# machine's cores are shared by every session; the lab's own limit would come too late
# for OpenBLAS's thread pool, which is sized when the library loads).
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")

DEFAULT_MEMORY_MB = 2048  # address space: a lab uses ~830 MB of it (numba, LLVM, numpy, Textual)
GRACE_CPU_SECONDS = 5  # between the soft CPU limit (a message, a clean exit) and the hard one (SIGKILL)
SESSION_PREFIX = "nnlab-session-"
CPU_LIMIT_EXIT = 3  # the exit status of a session closed by its CPU-time limit


def command(folders: list[Path] | tuple[Path, ...] = (), *, writes: bool = True, memory_mb: int | None = None,
            cpu_seconds: int | None = None, folder: Path | None = None) -> list[str]:
    """The argv that starts one served lab (for the ssh server and textual-serve alike).
    `folder`: the session's working folder, made (and removed after the lab ends) by the
    server, so that a lab killed outright (SIGKILL, the hard CPU limit) leaves nothing."""
    argv = [sys.executable, "-m", "lab.serve.child"]
    if folder is not None:
        argv += ["--folder", str(folder)]
    if not writes:
        argv.append("--no-writes")
    if memory_mb is not None:
        argv += ["--memory-mb", str(memory_mb)]
    if cpu_seconds is not None:
        argv += ["--cpu-seconds", str(cpu_seconds)]
    return argv + ["--", *(str(Path(f).resolve()) for f in folders)]


def thread_environment() -> dict[str, str]:
    return {name: "1" for name in THREAD_VARIABLES}


def _limit_resources(memory_mb: int | None, cpu_seconds: int | None) -> None:
    import resource

    if memory_mb:
        limit = memory_mb * 2**20
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    if cpu_seconds:
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        soft = cpu_seconds if hard == resource.RLIM_INFINITY else min(cpu_seconds, hard)
        new_hard = soft + GRACE_CPU_SECONDS if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_CPU, (soft, new_hard))


def new_session_folder() -> Path:
    """A private temporary folder for one session (mode 0700)."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix=SESSION_PREFIX))


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lab.serve.child", description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-writes", action="store_true", help="saving and exporting are off")
    parser.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY_MB, help="address-space limit (0: none)")
    parser.add_argument("--cpu-seconds", type=int, default=None, help="CPU-time limit of the session")
    parser.add_argument("--folder", type=Path, default=None, help="the session's folder, made by the server "
                                                                   "(default: a new temporary folder)")
    parser.add_argument("folders", nargs="*", type=Path, help="more scenario folders for the browser")
    return parser.parse_args(argv)


def written_files(folder: Path) -> list[Path]:
    """What the session wrote (not the atomic writes' temporary files)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


SHOWN_SESSION_BYTES = 16_384  # a saved session this small is printed at the end, to copy


def farewell(folder: Path, writes: bool) -> str:
    """What the person sees when their lab closes: the files it wrote, which go with the
    session, and the text of each saved session small enough to copy from the terminal
    (over SSH that is how a student takes a session home)."""
    files = written_files(folder) if writes else []
    if not files:
        return "nnlab: session ended.\r\n"
    lines = [f"nnlab: session ended; this session wrote {len(files)} file(s), removed with it:"]
    lines += [f"  {p.name} ({p.stat().st_size:,} bytes)" for p in files]
    for p in files:
        if p.suffix == ".toml" and p.stat().st_size <= SHOWN_SESSION_BYTES:
            text = p.read_text(encoding="utf-8", errors="replace").rstrip("\n")
            lines += ["", f"# ---- {p.name} (copy it from here to replay it: nnlab run FILE) ----", *text.split("\n"),
                      f"# ---- end of {p.name} ----"]
    return "\r\n".join(lines) + "\r\n"


def main(argv: list[str] | None = None) -> int:
    import shutil
    import signal

    args = _parse(sys.argv[1:] if argv is None else argv)
    for name, value in thread_environment().items():
        os.environ[name] = value
    _limit_resources(args.memory_mb or None, args.cpu_seconds)
    folder = args.folder if args.folder is not None else new_session_folder()
    os.chdir(folder)  # anything that writes relative to the working folder lands here too

    def end_now(message: str, code: int):
        def handler(signum, frame) -> None:
            # the client is gone or the server is stopping: nobody is left to see the lab
            # close, so remove the folder and go at once (a clean Textual exit would wait
            # for the training thread's chunk)
            shutil.rmtree(folder, ignore_errors=True)
            if message:
                try:
                    os.write(2, message.encode())
                except OSError:
                    pass
            os._exit(code)
        return handler

    # the soft CPU limit (the hard one, GRACE_CPU_SECONDS later, is SIGKILL)
    signal.signal(signal.SIGXCPU, end_now("\r\nnnlab: this session used its CPU-time limit and was closed.\r\n",
                                          CPU_LIMIT_EXIT))
    signal.signal(signal.SIGHUP, end_now("", 128 + signal.SIGHUP))
    signal.signal(signal.SIGTERM, end_now("", 128 + signal.SIGTERM))
    code = 1
    try:
        from lab.tui.app import make_app

        app = make_app(args.folders, output_dir=folder, allow_writes=not args.no_writes)
        app.run()
        code = app.return_code or 0
    finally:
        try:  # under textual-serve stdout is the data channel to the server: no farewell there
            if "TEXTUAL_DRIVER" not in os.environ:
                sys.stdout.write(farewell(folder, not args.no_writes))
            sys.stdout.flush()
        except OSError:  # the terminal is gone (the client dropped)
            pass
        shutil.rmtree(folder, ignore_errors=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
