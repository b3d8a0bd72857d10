"""Resident memory over a long headless run: it must stay flat.

    python -m benchmarks.long_run                       # 1,000,000 steps of the small network
    python -m benchmarks.long_run --steps 200000 --scenario init/xavier-tanh-healthy

The run goes through the lab's one headless runner with the per-layer timeline on (as the
TUI records it), a checkpoint (a full Snapshot: every layer's statistics) every 1% of the
steps; the resident set size (/proc/self/statm, Linux) is read at each checkpoint.  Every
store that grows with a run is bounded: the per-step series are rings of the last 50,000
steps, validation series rings of 5,000, the per-layer timeline a fixed number of records
(its cadence doubles when full).  The table shows the RSS along the run and its growth over
the second half (the rings fill during the first 50,000 steps), and the timeline's size.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

if __package__ in (None, ""):  # `python benchmarks/long_run.py`: make the repo root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FLAT_TARGET_MB = 2.0  # growth over the second half of the run, at most (the bounded stores are full by then)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--scenario", default="activations/relu-converges-faster")
    args = parser.parse_args(argv)

    from lab.engine.threads import limit_blas_threads
    from lab.scenario.catalog import resolve
    from lab.scenario.load import load_scenario
    from lab.sim import Simulation
    from lab.sim.run import run

    limit_blas_threads()
    sc = load_scenario(resolve(args.scenario))
    sc = sc.model_copy(update={"train": sc.train.model_copy(update={"steps": args.steps})})
    sim = Simulation(sc)
    every = max(1, args.steps // 100)
    samples: list[tuple[int, float]] = []

    def look(s: Simulation) -> None:
        s.snapshot()
        samples.append((s.step_count, rss_mb()))

    start = time.perf_counter()
    run(sim, args.steps, checkpoints=range(every, args.steps + 1, every), on_checkpoint=look)
    seconds = time.perf_counter() - start
    first, middle, last = samples[0][1], samples[len(samples) // 2 - 1][1], samples[-1][1]
    peak = max(mb for _, mb in samples)
    timeline = sim.layer_timeline.freeze()
    print(f"{args.scenario}: {args.steps:,} steps in {seconds:.1f} s ({args.steps / seconds:,.0f} steps/s)")
    print(f"  RSS after {samples[0][0]:,} steps  {first:8.1f} MB")
    for step, mb in samples[len(samples) // 4::len(samples) // 4]:
        print(f"  RSS after {step:,} steps  {mb:8.1f} MB")
    print(f"  peak                     {peak:8.1f} MB")
    growth = last - middle
    print(f"  per-layer timeline: {len(timeline)} records (capacity {timeline.capacity}, every {timeline.every} "
          "steps now)")
    ok = growth <= FLAT_TARGET_MB
    print(f"  growth over the second half {growth:+.1f} MB (the first half: {middle - first:+.1f} MB, rings filling): "
          f"flat (<= {FLAT_TARGET_MB:g} MB) {'pass' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
