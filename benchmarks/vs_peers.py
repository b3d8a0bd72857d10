"""`nnlab bench --peers`: the lab's training step against PyTorch and JAX in the same run.

    python -m benchmarks.run --peers            # every training workload (a few minutes)
    python -m benchmarks.run --peers --quick    # smoke run: few steps, 2 repeats
    python -m benchmarks.run --peers --only mnist --repeats 9

Every side runs at the lab's thread count (lab.engine.threads.DETERMINISTIC_THREADS, one):
BLAS capped with threadpoolctl, torch.set_num_threads / set_num_interop_threads, XLA's
CPU flags set before jax is imported, and the whole process (every thread, so every side)
pinned to one CPU with os.sched_setaffinity where the OS allows.  Timing is run.py's:
one warm-up call per side (numba loads its kernels, XLA compiles the chunk), then
interleaved rounds, median seconds per step.  How each side is written: peers.py and
README.md ("Against PyTorch and JAX").  Training workloads only: deep-forward is an eval
forward plus the lab's own statistics, which have no peer counterpart.
"""

from __future__ import annotations

import gc
import os
import sys
from dataclasses import replace

import numpy as np

from benchmarks import peers as P
from benchmarks.run import _median, blas_description, code_version, time_sides
from benchmarks.workloads import EngineModel, NumpyMLP, Side, Workload, get_workloads, make_data

PEER_SPEEDUP_TARGET = 1.2  # the lab >= 1.2x the faster of PyTorch and JAX, every workload (issue 17)
SIDES = ("lab", "numpy", "torch", "jax")
LABELS = {"lab": "lab", "numpy": "numpy", **P.PEER_LABELS}


ROWS = 2048  # every side draws its minibatches from a set of this many rows (issue 17's setting)


def training_workloads(quick: bool, only: str | None) -> list[Workload]:
    """The training workloads, each on a 2048-row set (deep-train's own bench uses 512; quick
    mode keeps its small sets); ValueError for --only naming a forward-only one."""
    wls = get_workloads(quick, only)
    if only and wls[0].mode != "train":
        raise ValueError(f"{only} is not a training workload; --peers compares training steps "
                         f"(choose from {', '.join(w.name for w in get_workloads() if w.mode == 'train')})")
    return [wl if quick else replace(wl, n_train=ROWS) for wl in wls if wl.mode == "train"]


def build_sides(wl: Workload, modules: dict) -> dict[str, Side]:
    """The lab, the numpy reference and every installed peer on one workload: same data,
    same starting weights (copies of the engine's), same minibatch sequence."""
    X, y = make_data(wl)
    eng = EngineModel(wl, X, y)
    w0 = [(W.copy(), b.copy()) for W, b in eng.weights()]
    seed = wl.seed + 1  # the engine's training stream (EngineModel: rng = default_rng(seed + 1))
    ref = NumpyMLP(w0, wl.activation, X, y, wl.batch, wl.momentum, seed)
    sides = {"lab": Side(eng.train, wl.steps), "numpy": Side(lambda n: ref.train(n, wl.lr), wl.steps)}
    for name, module in modules.items():
        if module is None:
            continue
        peer = P.build_peer(name, module, w0, wl.activation, X, y, wl.batch, wl.momentum, seed)
        sides[name] = Side(lambda n, peer=peer, name=name: P.check_finite(name, peer.train(n, wl.lr)), wl.steps)
    return sides


def short_shape(wl: Workload) -> str:
    """2-100-100-3; repeated hidden widths folded: 1024-1024x5-1024."""
    h = wl.hidden
    mid = f"{h[0]}x{len(h)}" if len(h) > 2 and len(set(h)) == 1 else "-".join(map(str, h))
    return f"{wl.input_dim}-{mid}-{wl.classes}"


def measure(wl: Workload, sides: dict[str, Side], repeats: int) -> dict:
    s = time_sides(sides, repeats)
    med = {k: _median(v) for k, v in s.items()}
    row = dict(name=wl.name, shape=short_shape(wl), batch=wl.batch, repeats=repeats,
               spread=max((max(v) - min(v)) / _median(v) for v in s.values()))
    row.update({k: med.get(k) for k in SIDES})
    return row


def target(row: dict) -> str:
    peers = [row[k] for k in ("torch", "jax") if row.get(k) is not None]
    if not peers:
        return "n/a (no peer installed)"
    ratio = min(peers) / row["lab"]  # the faster peer has the shorter step
    ok = ratio >= PEER_SPEEDUP_TARGET
    return f"lab>={PEER_SPEEDUP_TARGET:g}x faster peer {'pass' if ok else 'FAIL'}"


def format_table(rows: list[dict]) -> str:
    def rate(sec):
        return "-" if sec is None else f"{1.0 / sec:,.0f}" if sec < 0.01 else f"{1.0 / sec:,.1f}"

    def ratio(row, k):
        return "-" if row.get(k) is None else f"{row[k] / row['lab']:.2f}x"

    head = ("workload", "lab steps/s", "numpy steps/s", "torch steps/s", "jax steps/s",
            "lab/numpy", "lab/torch", "lab/jax", "spread", "target")
    body = [(f"{r['name']} {r['shape']} b{r['batch']}", rate(r["lab"]), rate(r["numpy"]), rate(r["torch"]),
             rate(r["jax"]), ratio(r, "numpy"), ratio(r, "torch"), ratio(r, "jax"), f"{100 * r['spread']:.0f}%",
             target(r)) for r in rows]
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    left = {0, len(head) - 1}

    def fmt(row):
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    return "\n".join([fmt(head), "  ".join("-" * w for w in widths), *map(fmt, body)])


def missing_message(modules: dict) -> str | None:
    missing = [LABELS[k].split()[0] for k, m in modules.items() if m is None]
    if not missing:
        return None
    if len(missing) == len(modules):
        return (f"PyTorch and JAX are not installed: `{P.INSTALL_HINT}` (from the repository root) installs "
                "both (CPU builds; for torch without CUDA: pip install torch --index-url "
                "https://download.pytorch.org/whl/cpu). Timing the lab (and the numpy reference) alone.")
    return f"{missing[0]} is not installed (`{P.INSTALL_HINT}` installs it); comparing with the other peer only."


def main(args) -> int:
    """Run the comparison for parsed run.py arguments (args.peers set)."""
    from threadpoolctl import threadpool_limits

    from benchmarks.run import _load_engine_blas
    from lab.engine.threads import DETERMINISTIC_THREADS

    threads = DETERMINISTIC_THREADS
    try:
        workloads = training_workloads(args.quick, args.only)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    P.limit_threads(threads)
    cpu, unpin = P.pin_to_one_core()  # before the peers start their thread pools
    try:
        _load_engine_blas()
        modules, notes = P.load_peers(threads)
        with threadpool_limits(limits=threads, user_api="blas"):
            return _run(args, workloads, modules, notes, threads, cpu)
    finally:
        unpin()


def _run(args, workloads, modules, notes, threads, cpu) -> int:
    versions = [f"numpy {np.__version__}", f"numba {__import__('numba').__version__}"]
    if modules["torch"] is not None:
        versions.append(f"torch {modules['torch'].__version__}")
    if modules["jax"] is not None:
        versions.append(f"jax {modules['jax'].__version__}")
    mode = "quick" if args.quick else "full"
    print(f"nnlab bench --peers ({mode}): float32 training steps, {', '.join(versions)}")
    print(f"code: {code_version()}; BLAS: {blas_description()}")
    pin = f"pinned to CPU {cpu} (os.sched_setaffinity, every thread)" if cpu is not None else \
        "not pinned (no sched_setaffinity here: JAX may use more than one thread)"
    print(f"{threads} thread per side (the lab's count): BLAS via threadpoolctl, torch.set_num_threads, "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; {pin}")
    message = missing_message(modules)
    if message:
        print(message)
    rows = []
    for wl in workloads:
        print(f"  building {wl.name} ({wl.shape}, batch {wl.batch}) ...", file=sys.stderr, flush=True)
        sides = build_sides(wl, modules)
        print(f"  timing {wl.name}: {', '.join(sides)} ...", file=sys.stderr, flush=True)
        rows.append(measure(wl, sides, args.repeats or wl.repeats))
        del sides
        gc.collect()
    print(f"median of {'/'.join(sorted({str(r['repeats']) for r in rows}))} interleaved rounds after a warm-up "
          "call per side; steps/s = 1 / median seconds per step")
    print(format_table(rows))
    print("lab/X: X's step time / the lab's (>1: the lab is faster). "
          "spread: (max - min) / median of the rounds, worst side; large = the machine was busy.")
    print("Every side: the same 2048-row float32 set, the same minibatch rows, softmax cross-entropy, "
          "the global gradient norm, momentum SGD (benchmarks/README.md says how each is written).")
    for line in notes:
        print("note: " + line)
    failed = [r["name"] for r in rows if "FAIL" in target(r)]
    if failed:
        print(f"FAIL: {', '.join(failed)} missed the target (lab >= {PEER_SPEEDUP_TARGET:g}x the faster peer)")
    return 1 if failed else 0
