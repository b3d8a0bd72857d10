"""The memory estimate (lab/scenario/budget.py) against the peak resident memory of real runs.

    python -m benchmarks.memory_estimate            # every case (a minute or two, up to ~1.5 GB)
    python -m benchmarks.memory_estimate tiny pca   # some of them

Each case runs in its own process: a tiny warm-up run (kernels loaded, the data kind's loader
imported), then /proc/self/clear_refs resets the peak, then the scenario is built, snapshotted,
trained and snapshotted again; the peak above the warmed-up process (VmHWM - VmRSS) is what the
run used.  Linux only.  docs/scenarios.md ("Memory") quotes the table this prints.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CASES = {
    "tiny": {"model": {"hidden": [100, 100]}, "train": {"steps": 50}},
    "random-normal 20000 x 2048": {"data": {"kind": "random-normal", "n": 20000, "dim": 2048},
                                   "model": {"hidden": [512]}, "train": {"steps": 20, "batch_size": 256}},
    "random-normal 100000 x 512, normalize": {"data": {"kind": "random-normal", "n": 100000, "dim": 512,
                                                       "preprocess": ["center", "normalize"]},
                                              "model": {"hidden": [128]}, "train": {"steps": 5}},
    "pca of 5000 x 1024": {"data": {"kind": "random-normal", "n": 5000, "dim": 1024, "preprocess": ["pca"],
                                    "pca_components": 100}, "model": {"hidden": [64]}, "train": {"steps": 5}},
    "whiten 1000 x 3000": {"data": {"kind": "random-normal", "n": 1000, "dim": 3000,
                                    "preprocess": ["center", "whiten"]},
                           "model": {"hidden": [64]}, "train": {"steps": 5}},
    "event switching to whiten": {"data": {"kind": "random-normal", "n": 4000, "dim": 1500},
                                  "model": {"hidden": [256]}, "train": {"steps": 10},
                                  "events": [{"at": 5, "set": {"preprocess": ["whiten"]}}]},
    "2 x 4096, adam, batch 1024": {"model": {"hidden": [4096, 4096]},
                                   "train": {"optimizer": "adam", "steps": 5, "batch_size": 1024}},
    "2 x 4096, sgd, batch 1024": {"model": {"hidden": [4096, 4096]}, "train": {"steps": 5, "batch_size": 1024}},
    "2 x 4096, orthogonal init": {"model": {"hidden": [4096, 4096], "init": "orthogonal"}, "train": {"steps": 2}},
    "16384 -> 4096 (67 M weights)": {"data": {"kind": "random-normal", "dim": 16384, "n": 200},
                                     "model": {"hidden": [4096]}, "train": {"steps": 2}},
    "8192 -> 4096 float64, adam": {"data": {"kind": "random-normal", "dim": 8192, "n": 200},
                                   "model": {"hidden": [4096], "init": "xavier", "dtype": "float64"},
                                   "train": {"steps": 2, "optimizer": "adam"}},
    "2 x 3000 float64, adam": {"model": {"hidden": [3000, 3000], "dtype": "float64"},
                               "train": {"optimizer": "adam", "steps": 3, "batch_size": 128}},
    "2 x 2048, dropconnect": {"model": {"hidden": [2048, 2048], "dropconnect": 0.5},
                              "train": {"steps": 5, "batch_size": 256}},
    "2 x 1024 maxout k=4": {"model": {"hidden": [1024, 1024], "activation": "maxout", "maxout_k": 4},
                            "train": {"steps": 5, "batch_size": 512}},
    "2048 batchnorm, batch 8192": {"data": {"kind": "random-normal", "n": 20000, "dim": 64},
                                   "model": {"hidden": [2048], "batchnorm": True},
                                   "train": {"steps": 5, "batch_size": 8192}},
}

ONE = r"""
import json, sys
from lab import Simulation
from lab.scenario.budget import estimate
from lab.scenario.load import parse_scenario
from lab.sim.run import run

def status(key):
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key + ":"))

raw = json.loads(sys.argv[1])
kind = raw.get("data", {}).get("kind", "spiral")
warm = Simulation(parse_scenario({"data": {"kind": kind, "n": 60}, "model": {"hidden": [4]},
                                  "train": {"steps": 2, "batch_size": 8}}))
run(warm, 2); warm.snapshot(); del warm
base = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")
sc = parse_scenario(raw)
sim = Simulation(sc); sim.snapshot(); run(sim, sc.train.steps); sim.snapshot()
run = estimate(sc)[0]
print(json.dumps({"used": status("VmHWM") - base, "base": base, "estimate": run.peak, "phase": run.peak_phase.name}))
"""


def main(argv: list[str]) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NNLAB_MEMORY_BUDGET": "1T"}
    print("| run (peak above the warmed-up process) | measured | estimate | ratio |\n|---|---|---|---|")
    for name, raw in CASES.items():
        if argv and not any(a in name for a in argv):
            continue
        out = subprocess.run([sys.executable, "-c", ONE, json.dumps(raw)], capture_output=True, text=True, env=env)
        if out.returncode:
            print(f"| {name} | failed: {out.stderr.strip().splitlines()[-1]} | | |")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        mib = 2**20
        print(f"| {name} | {r['used'] / mib:,.0f} MiB | {r['estimate'] / mib:,.0f} MiB ({r['phase']}) | "
              f"{r['estimate'] / max(r['used'], 1):.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
