"""Time the engine against a plain-numpy reference and the GEMM floor; print a table.

    python -m benchmarks.run                 # full run, BLAS capped at 1 then 2 threads
    python -m benchmarks.run --quick         # smoke run: few steps, 2 repeats, deep nets at width 512
    python -m benchmarks.run --only small --threads 1
    python -m benchmarks.run --diagnose      # also break the engine's step down (see README.md)
    python -m benchmarks.run --peers         # the lab against PyTorch and JAX (benchmarks/vs_peers.py)

Every measurement is: one warm-up call per side, then `repeats` rounds in which the three
sides (engine, numpy, GEMM floor) run one after another (interleaved, so a burst of load
from other processes hits all three alike); the median time per step is reported.
BLAS threads are capped with threadpoolctl for all three sides at once (numpy's OpenBLAS
and the one numba's np.dot calls, scipy's); the cap is printed with the results.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time

if __package__ in (None, ""):  # `python benchmarks/run.py`: make the repo root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

from benchmarks.workloads import WORKLOADS, Case, Side, build_cases, get_workloads
from lab.engine.threads import DETERMINISTIC_THREADS

SMALL_SPEEDUP_TARGET = 2.0  # small: engine at least 2x the numpy reference
GEMM_RATIO_TARGET = 1.5  # every workload: step time at most 1.5x its GEMM floor
ROOFLINE_RATIO_TARGET = 1.5  # small: step time at most 1.5x its compute roofline (issue 17)
PEAK_N = 2048  # the square product that measures the machine's float32 matrix-multiply peak


# -- timing ------------------------------------------------------------------------------------
def time_sides(sides: dict[str, Side], repeats: int, settle: float = 0.0) -> dict[str, list[float]]:
    """Seconds per step of each side: warm-up once, then `repeats` interleaved rounds.

    `settle` seconds of sleep before each timed call let the other BLAS library's idle
    worker threads stop spinning (numpy and numba use two OpenBLAS copies, each with its
    own pool); it matters only with more than one BLAS thread.
    """
    for side in sides.values():
        side.fn(side.steps)
    samples: dict[str, list[float]] = {k: [] for k in sides}
    for _ in range(repeats):
        for key, side in sides.items():
            if settle:
                time.sleep(settle)
            t0 = time.perf_counter()
            side.fn(side.steps)
            samples[key].append((time.perf_counter() - t0) / side.steps)
    return samples


def _median(xs: list[float]) -> float:
    return statistics.median(xs)


SETTLE_SECONDS = 0.3  # between timed calls when BLAS runs more than one thread


def measure_case(case: Case, repeats: int, threads: int, explicit: bool = False) -> dict:
    """Median seconds per step of the three sides and the ratios.  A case's own repeat cap
    (slow rows) applies unless the repeat count was given explicitly."""
    if case.repeats and not explicit:
        repeats = min(repeats, case.repeats)
    s = time_sides({"engine": case.engine, "numpy": case.numpy, "gemm": case.gemm}, repeats,
                   SETTLE_SECONDS if threads > 1 else 0.0)
    eng, ref, gemm = _median(s["engine"]), _median(s["numpy"]), _median(s["gemm"])
    return dict(name=case.name, what=case.what, threads=threads, engine=eng, numpy=ref, gemm=gemm,
                speedup=ref / eng, gemm_ratio=eng / gemm, gflops=case.flops / gemm / 1e9,
                spread=max((max(v) - min(v)) / _median(v) for v in s.values()), repeats=repeats)


def peak_gflops(n: int = PEAK_N, repeats: int = 5) -> float:
    """This machine's float32 matrix-multiply rate at the current BLAS thread cap: an n x n x n
    product into a preallocated buffer (large enough that call overhead and cache misses are
    noise), the best of `repeats`.  The same BLAS the engine calls (numpy's, lab/_blas.py)."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    out = np.empty((n, n), np.float32)
    np.dot(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.dot(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


def with_roofline(row: dict, flops: float, peak: float) -> dict:
    """The row with its compute roofline: the step's matrix-multiply FLOPs at the peak rate
    (no implementation with this BLAS does the same products faster), and engine / roofline."""
    roof = flops / (peak * 1e9)
    return {**row, "roof": roof, "roof_ratio": row["engine"] / roof, "peak": peak}


def targets(row: dict) -> str:
    out = []
    if row["name"] == "small":
        ok = row["speedup"] >= SMALL_SPEEDUP_TARGET
        out.append(f"speed-up>={SMALL_SPEEDUP_TARGET:g}x {'pass' if ok else 'FAIL'}")
        if "roof_ratio" in row:
            ok = row["roof_ratio"] <= ROOFLINE_RATIO_TARGET
            out.append(f"<={ROOFLINE_RATIO_TARGET:g}x roofline {'pass' if ok else 'FAIL'}")
    ok = row["gemm_ratio"] <= GEMM_RATIO_TARGET
    out.append(f"<={GEMM_RATIO_TARGET:g}x GEMM {'pass' if ok else 'FAIL'}")
    return "; ".join(out)


# -- output --------------------------------------------------------------------------------
def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.4f}" if ms < 1 else f"{ms:.3f}" if ms < 100 else f"{ms:.1f}"


def format_table(rows: list[dict]) -> str:
    head = ("workload", "thr", "engine steps/s", "engine ms", "numpy ms", "GEMM ms", "GEMM GF/s",
            "speed-up vs numpy", "engine/GEMM", "engine/roofline", "spread", "targets")
    body = []
    for r in rows:
        roof = f"{r['roof_ratio']:.2f}x" if "roof_ratio" in r else "-"
        body.append((r["name"], str(r["threads"]), f"{1.0 / r['engine']:.1f}", _ms(r["engine"]), _ms(r["numpy"]),
                     _ms(r["gemm"]), f"{r['gflops']:.1f}", f"{r['speedup']:.2f}x",
                     f"{r['gemm_ratio']:.2f}x", roof, f"{100 * r['spread']:.0f}%", targets(r)))
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    left = {0, len(head) - 1}

    def fmt(row):
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    lines = [fmt(head), "  ".join("-" * w for w in widths)]
    last_thr = None
    for r, row in zip(rows, body):
        if last_thr is not None and r["threads"] != last_thr:
            lines.append("")
        last_thr = r["threads"]
        lines.append(fmt(row))
    return "\n".join(lines)


def blas_description() -> str:
    from threadpoolctl import threadpool_info

    libs = [f"{os.path.basename(i['filepath'])} {i.get('internal_api', '')} {i.get('version', '')}".strip()
            for i in threadpool_info() if i.get("user_api") == "blas"]
    return "; ".join(libs) or "none found"


def code_version() -> str:
    """The commit measured (and whether lab/ has uncommitted changes), if this is a git checkout."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "lab"], cwd=root, capture_output=True,
                               text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head + (" + uncommitted changes in lab/" if dirty else "")) if head else "unknown"


def _blas_threads_now() -> list[int]:
    from threadpoolctl import threadpool_info

    return [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]


def _load_engine_blas() -> None:
    """Load the BLAS numba's np.dot calls (scipy's) and the compiled kernels, so that
    threadpoolctl sees and caps every BLAS the three sides use."""
    import scipy.linalg.cython_blas  # noqa: F401
    import lab.engine.kernels.network  # noqa: F401


# -- diagnosis: where the engine's step time goes ------------------------------------------------
def _best(fn, repeats: int = 5) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return _median(ts)


def diagnose_forward(case: Case, repeats: int) -> list[str]:
    """The engine's dense and activation kernels against numpy on the workload's layers."""
    from lab.engine.kernels.activations import ACTIVATION_CODES, activation_backward, activation_forward
    from lab.engine.kernels.dense import dense_backward, dense_forward

    eng = case.engine_model
    wl = eng.wl
    rng = np.random.default_rng(0)
    layers = [(W, b, rng.standard_normal((wl.batch, W.shape[0]), dtype=np.float32),
               np.empty((wl.batch, W.shape[1]), np.float32)) for W, b in eng.weights()]
    code = ACTIVATION_CODES[wl.activation]
    empty = np.zeros(0, np.float32)

    def k_dense():
        for W, b, x, out in layers:
            dense_forward(x, W, b, out)

    def np_dense():
        for W, b, x, out in layers:
            np.matmul(x, W, out=out)
            out += b

    def k_dense_back():
        for W, b, x, out in layers[1:]:
            dense_backward(out, x, W, x, dW, b.copy(), True, False, np.empty(x.size, x.dtype))

    def np_dense_back():
        for W, b, x, out in layers[1:]:
            np.matmul(x.T, out, out=dW)
            out.sum(axis=0)
            np.matmul(out, W.T, out=x)

    zs = [out for *_, out in layers[:-1]]
    acts = [np.empty_like(z) for z in zs]
    np_act = {"tanh": np.tanh, "relu": lambda z, out: np.maximum(z, 0, out=out)}[wl.activation]

    def k_act():
        for z, a in zip(zs, acts):
            activation_forward(code, z, a, 0.0, empty)

    def k_act_back():
        for z, a in zip(zs, acts):
            activation_backward(code, a, z, a, 0.0, empty, a, empty)

    def np_acts():
        for z, a in zip(zs, acts):
            np_act(z, out=a)

    def np_act_back():
        for z, a in zip(zs, acts):
            a *= 1.0 - a * a if wl.activation == "tanh" else z > 0

    dW = np.empty_like(layers[1][0]) if len(layers) > 1 else None
    ms = lambda s: f"{s * 1e3:.3f} ms"  # noqa: E731
    n_act = sum(z.size for z in zs)
    def line(label, k, n):
        return f"  {label:<34} engine {ms(_best(k, repeats)):>11}   numpy {ms(_best(n, repeats)):>11}"

    lines = [f"{case.name}: engine kernels vs numpy, summed over the layers of one step:",
             line("dense_forward (np.dot + bias)", k_dense, np_dense)]
    if dW is not None and all(W.shape == dW.shape for W, *_ in layers[1:]):
        lines.append(line("dense_backward (dW, db, dx)", k_dense_back, np_dense_back))
    lines.append(line(f"{wl.activation} forward ({n_act:,} values)", k_act, np_acts))
    lines.append(line(f"{wl.activation} backward", k_act_back, np_act_back))
    return lines


def diagnose_train(case: Case, repeats: int, row: dict) -> list[str]:
    """Time the per-step passes over the whole flat parameter buffer in isolation."""
    from lab.engine.kernels.optim import MOMENTUM, optimizer_update, penalty_and_sq_norm

    eng = case.engine_model
    net, tr = eng.network, eng.trainer
    n = net.params.size
    p = net.params.copy()
    m1 = tr.opt_state.m1.copy()
    hyper = tr.optimizer.hyper()
    m2_faulted = np.empty_like(tr.opt_state.m2)
    m2_faulted.fill(0.0)
    lu = tr.last_update  # written by the last step of every chunk: its pages are resident

    def upd(m2):
        return lambda: optimizer_update(MOMENTUM, p, net.grads, net.reg, hyper, 1.0, 0.0, 1, m1, m2, lu, False)

    t_pen = _best(lambda: penalty_and_sq_norm(net.params, net.grads, net.reg, 0.0, 0.0), repeats)
    t_np_sq = _best(lambda: float(np.dot(net.grads, net.grads)), repeats)
    t_upd = _best(upd(tr.opt_state.m2), repeats)
    t_upd_f = _best(upd(m2_faulted), repeats)
    v = m1.copy()

    def np_momentum():
        v.__imul__(0.9)
        v.__isub__(1e-3 * net.grads)
        p.__iadd__(v)

    t_np_upd = _best(np_momentum, repeats)

    # In situ: whole training chunks with the trainer's own m2, then with m2 swapped for a
    # pre-faulted buffer (momentum never reads or writes m2, so the results are identical).
    orig = tr.opt_state.m2
    steps = case.engine.steps

    def chunk(m2):
        tr.opt_state.m2 = m2
        t0 = time.perf_counter()
        eng.train(steps)
        return (time.perf_counter() - t0) / steps

    try:
        chunk(orig), chunk(m2_faulted)
        pairs = [(chunk(orig), chunk(m2_faulted)) for _ in range(max(3, repeats // 2))]
    finally:
        tr.opt_state.m2 = orig
    t_step_asis = _median([a for a, _ in pairs])
    t_step_faulted = _median([b for _, b in pairs])
    ms = lambda s: f"{s * 1e3:.3f} ms"  # noqa: E731
    return [
        f"{case.name}: {n:,} parameters; passes over the flat buffer, per step:",
        f"  penalty_and_sq_norm      {ms(t_pen)}   (numpy np.dot(g, g): {ms(t_np_sq)})",
        f"  optimizer_update         {ms(t_upd)}   with the trainer's own, never-written m2 buffer",
        f"  optimizer_update         {ms(t_upd_f)}   same call, m2 pages pre-faulted (written once)",
        f"  numpy momentum update    {ms(t_np_upd)}",
        f"  rest of the engine step  {ms(max(0.0, row['engine'] - t_pen - t_upd))}   "
        f"(engine step {ms(row['engine'])} minus the two passes; GEMM floor {ms(row['gemm'])})",
        f"  engine step in situ      {ms(t_step_asis)} as built, {ms(t_step_faulted)} with m2 pre-faulted "
        "(alternating chunks)",
    ]


def diagnose_stats(case: Case, repeats: int) -> list[str]:
    """Split layer_stats into its parts (each summed over layers), in the order it runs them.

    Each part is timed alone and repeatedly, so its data are warmer in cache than inside
    layer_stats, where the probe forward has just streamed every weight matrix through the
    cache: the last line is the difference (cache misses, Python, building LayerStats).
    """
    from lab.sim import stats as S
    from lab.sim.bins import SYMLOG_BINS, activation_bins

    eng = case.engine_model
    net = eng.network
    ws = net.batch_ws
    lu = eng.trainer.last_update
    layers = net.layers
    probe_ws = []

    def probe():
        net.forward(eng.x_eval, train=False, purpose="probe")
        probe_ws[:] = [net.last_workspace]

    probe()
    arrays = [(net.param(l.weight.name), net.grad(l.weight.name),
               lu[l.weight.offset:l.weight.offset + l.weight.size].reshape(l.weight.shape)) for l in layers]
    samples = [S.weight_sample(l.weight.shape) for l in layers]
    taken = [[S.take_sample(x, sm) for x in xs] for xs, sm in zip(arrays, samples)]
    buf = np.empty(max((sm.size for sm in samples if sm is not None), default=0))  # reused, as layer_stats does
    parts = {
        "probe forward (= eval forward)": probe,
        "act + grad node summaries": lambda: [
            (S.summarize(ws.node(l.out_node), activation_bins(l.kind), l.kind, S.ZERO_THRESHOLD),
             S.summarize(ws.grad_node(l.out_node), SYMLOG_BINS)) for l in layers],
        "W/dW/update samples (gather)": lambda: [[S.take_sample(x, sm, buf[:sm.size] if sm else None) for x in xs]
                                                 for xs, sm in zip(arrays, samples)],
        "W/dW/update summaries + hists": lambda: [
            (S.summarize(w, SYMLOG_BINS), S.summarize(d), S.summarize(u, SYMLOG_BINS)) for w, d, u in taken],
        "sign agreement + similarity": lambda: [S.unit_metrics(w, d) for w, d, _ in arrays],
        "dead_fraction": lambda: [S.dead_fraction(net, l, probe_ws[0].node(l.pre_node), probe_ws[0].node(l.out_node))
                                  for l in layers],
    }
    reps = max(3, repeats)
    total = _best(eng.layer_stats, reps)
    sampled = sum(sm is not None for sm in samples)
    n_units = sum(S.unit_sample(l.fan_out, l.weight.size) is not None for l in layers)
    lines = [f"{case.name}: layer_stats {total * 1e3:.1f} ms per call, of which (summed over {len(layers)} layers; "
             f"{sampled} sampled weight arrays, {n_units} unit-sampled layers):"]
    timed = 0.0
    for label, fn in parts.items():
        t = _best(fn, reps)
        timed += t
        lines.append(f"  {label:<32} {t * 1e3:9.2f} ms")
    lines.append(f"  {'rest (cold caches, Python)':<32} {(total - timed) * 1e3:9.2f} ms")
    return lines


# -- main ------------------------------------------------------------------------------------
def parse_args(argv):
    ap = argparse.ArgumentParser(prog="benchmarks.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fast smoke run: few steps, 2 repeats, deep nets at width 512")
    ap.add_argument("--only", metavar="NAME", choices=list(WORKLOADS), help=f"one workload: {', '.join(WORKLOADS)}")
    ap.add_argument("--threads", default=None,
                    help="comma-separated BLAS thread caps to run under (default: 1,2; quick: 1)")
    ap.add_argument("--repeats", type=int, default=None, help="timed rounds per measurement (median reported)")
    ap.add_argument("--diagnose", action="store_true", help="also time the engine's per-step passes separately")
    ap.add_argument("--peers", action="store_true",
                    help="training steps against PyTorch and JAX (pip install -e '.[peers]'), one thread, one core")
    args = ap.parse_args(argv)
    if args.peers and (args.threads or args.diagnose):
        ap.error("--peers runs every side at the lab's thread count on one core: drop "
                 + ("--threads" if args.threads else "--diagnose"))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.peers:
        from benchmarks import vs_peers

        return vs_peers.main(args)
    from threadpoolctl import threadpool_limits

    threads = [int(t) for t in (args.threads or ("1" if args.quick else "1,2")).split(",")]
    _load_engine_blas()
    from lab._numba_cache import cache_dir

    cache_note = f"numba cache: {cache_dir() or 'none (compiling every run)'}"
    workloads = get_workloads(args.quick, args.only)
    mode = "quick" if args.quick else "full"
    print(f"nnlab benchmarks ({mode}): float32, {os.cpu_count()} CPUs, numpy {np.__version__}, "
          f"numba {__import__('numba').__version__}")
    print(f"code: {code_version()}; BLAS: {blas_description()}")
    print(cache_note)
    print("engine = lab.engine (numba); numpy = plain-numpy reference; GEMM = the same matmuls alone (out=)")
    rows: list[dict] = []
    notes: list[str] = []
    peaks: dict[int, float] = {}
    for t in threads:  # the roofline's rate, measured in this run at each thread cap
        with threadpool_limits(limits=t, user_api="blas"):
            print(f"  measuring the float32 matrix-multiply peak with {t} BLAS thread(s) ...", file=sys.stderr,
                  flush=True)
            peaks[t] = peak_gflops(1024 if args.quick else PEAK_N, 2 if args.quick else 5)
    for wl in workloads:
        print(f"  building {wl.name} ({wl.shape}, batch {wl.batch}) ...", file=sys.stderr, flush=True)
        cases = build_cases(wl)
        for t in threads:
            with threadpool_limits(limits=t, user_api="blas"):
                actual = _blas_threads_now()
                if any(n != t for n in actual):
                    notes.append(f"warning: asked for {t} BLAS threads, libraries report {actual}")
                for case in cases:
                    reps = args.repeats or wl.repeats
                    print(f"  timing {case.name} with {t} BLAS thread(s) ...",
                          file=sys.stderr, flush=True)
                    rows.append(with_roofline(measure_case(case, reps, t, explicit=args.repeats is not None),
                                              case.flops, peaks[t]))
                    if args.diagnose:
                        if case.what == "training step":
                            notes.extend([f"[{t} thr] " + s for s in diagnose_train(case, reps, rows[-1])])
                            notes.extend([f"[{t} thr] " + s for s in diagnose_forward(case, reps)])
                        elif case.what == "eval forward":
                            notes.extend([f"[{t} thr] " + s for s in diagnose_forward(case, reps)])
                        elif case.name.endswith("+stats"):
                            notes.extend([f"[{t} thr] " + s for s in diagnose_stats(case, reps)])
        del cases
        gc.collect()
    rows.sort(key=lambda r: r["threads"])  # stable: workload order kept within a thread count
    print(f"BLAS threads capped per row (thr column, threadpoolctl); median of "
          f"{'/'.join(sorted({str(r['repeats']) for r in rows}))} interleaved repeats after a warm-up"
          + (f" ({SETTLE_SECONDS:g} s settle before each timed call when thr > 1)" if max(threads) > 1 else ""))
    print(format_table(rows))
    print("speed-up vs numpy: numpy reference time / engine time (>1: the engine is faster).")
    print("engine/GEMM: engine step time / time of the same matrix multiplies alone (1.0 = nothing but GEMM).")
    print("engine/roofline: engine step time / the step's matrix-multiply FLOPs at this machine's float32 peak, "
          f"measured in this run as one {1024 if args.quick else PEAK_N}^3 product with the same BLAS: "
          + ", ".join(f"{peaks[t]:.1f} GF/s with {t} thread{'s' if t > 1 else ''}" for t in threads) + ".")
    print("spread: (max - min) / median of the repeats, worst of the three sides; large = the machine was busy.")
    if max(threads) > DETERMINISTIC_THREADS:
        print(f"The lab trains with {DETERMINISTIC_THREADS} BLAS thread (lab.engine.threads: the same bits headless and in "
              "the TUI, and a core left for the UI); rows with more show how a step scales. Only the products "
              "use the extra threads: the engine's own passes (update, norm, activations) stay on one.")
    for row in rows:
        if row["name"].endswith("+stats"):
            print(f"{row['name']}: engine = one lab.sim.stats.layer_stats call whose probe set is the eval batch "
                  "(its probe forward is the eval forward, not run twice), with every weight/gradient/update "
                  "statistic; numpy = forward + per-node mean/std/histogram only; GEMM = forward matmuls.")
            break
    for line in notes:
        print(line)
    failed = [row["name"] for row in rows if "FAIL" in targets(row)]
    if failed:
        print(f"FAIL: {', '.join(dict.fromkeys(failed))} missed a target")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
