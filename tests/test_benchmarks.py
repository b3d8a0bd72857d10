"""The benchmark harness runs end to end (quick mode) and its numpy reference is the engine's step.

No timing assertions: wall-clock numbers depend on the machine and its load.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from benchmarks import run
from benchmarks.workloads import WORKLOADS, EngineModel, GemmFloor, NumpyMLP, Workload, make_data


def _exit_code_matches_the_targets(code: int, out: str) -> None:
    """Whatever the machine's speed: 1 exactly when a row prints FAIL (the timings are not judged here)."""
    rows_fail = any(re.search(r"(pass|FAIL)", line) and "FAIL" in line for line in out.splitlines()
                    if not line.startswith("FAIL:"))
    assert code == (1 if rows_fail else 0), out


def test_quick_run_prints_every_workload_and_ratios(capsys):
    code = run.main(["--quick"])
    out = capsys.readouterr().out
    _exit_code_matches_the_targets(code, out)
    for name in WORKLOADS:
        assert re.search(rf"^{re.escape(name)}\s", out, re.M), f"{name} missing from:\n{out}"
    assert re.search(r"^deep-forward\+stats\s", out, re.M)
    rows = [line for line in out.splitlines() if line.split()[:1] and line.split()[0] in
            (*WORKLOADS, "deep-forward+stats")]
    assert len(rows) == len(WORKLOADS) + 1
    for line in rows:
        ratios = re.findall(r"\d+\.\d+x", line)
        assert len(ratios) >= 2, line  # speed-up vs numpy and engine/GEMM
        assert re.search(r"GEMM (pass|FAIL)", line), line
    assert re.search(r"^small\s.*speed-up>=2x (pass|FAIL).*roofline (pass|FAIL)", out, re.M)
    assert re.search(r"engine/roofline: .* [0-9.]+ GF/s with 1 thread", out)
    assert "BLAS threads" in out


def test_only_runs_one_workload(capsys):
    code = run.main(["--quick", "--only", "small", "--repeats", "1"])
    out = capsys.readouterr().out
    _exit_code_matches_the_targets(code, out)
    assert re.search(r"^small\s", out, re.M)
    assert not re.search(r"^digits\s", out, re.M)


@pytest.mark.parametrize("speedup, gemm_ratio, roof_ratio, code",
                         [(10.0, 1.2, 1.2, 0), (1.0, 1.5, 1.2, 1), (10.0, 50.0, 1.2, 1), (10.0, 1.2, 2.0, 1)])
def test_a_missed_target_makes_the_exit_code_non_zero(monkeypatch, capsys, speedup, gemm_ratio, roof_ratio, code):
    """The measured numbers are replaced by fixed ones: the exit code follows the printed verdicts."""
    def fake(case, repeats, threads, explicit=False):
        return dict(name=case.name, what=case.what, threads=threads, engine=1e-3, numpy=speedup * 1e-3,
                    gemm=1e-3 / gemm_ratio, speedup=speedup, gemm_ratio=gemm_ratio, gflops=1.0, spread=0.0,
                    repeats=repeats)

    flops = WORKLOADS["small"].gemm_flops()
    monkeypatch.setattr(run, "measure_case", fake)
    # the peak at which small's 1 ms step is roof_ratio times its roofline
    monkeypatch.setattr(run, "peak_gflops", lambda *a, **k: flops * roof_ratio / 1e-3 / 1e9)
    assert run.main(["--quick", "--only", "small", "--repeats", "1"]) == code
    out = capsys.readouterr().out
    assert ("FAIL" in out) == bool(code)


def test_unknown_workload_is_rejected():
    with pytest.raises(SystemExit):
        run.main(["--only", "nope"])


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_numpy_reference_does_the_engines_step(activation):
    """With the whole data set as one batch the two see the same rows each step, so a few
    momentum steps from the same weights must agree to float32 rounding."""
    wl = Workload("t", "", 5, (7, 6), 4, 16, activation=activation, n_train=16, lr=0.05)
    X, y = make_data(wl)
    eng = EngineModel(wl, X, y)
    ref = NumpyMLP(eng.weights(), activation, X, y, wl.batch, wl.momentum, seed=1)
    for _ in range(3):
        loss, acc, gnorm = ref.train_step(wl.lr)
        rec = eng.trainer.run(np.full(1, wl.lr))
        assert loss == pytest.approx(rec.loss[0], rel=1e-5)
        assert gnorm == pytest.approx(rec.grad_norm[0], rel=1e-5)
        assert acc == pytest.approx(rec.train_acc[0])
    for (W, b), Wr, br in zip(eng.weights(), ref.W, ref.b):
        np.testing.assert_allclose(Wr, W, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(br, b, rtol=1e-5, atol=1e-6)


def test_gemm_floor_multiplies_what_the_step_multiplies():
    floor = GemmFloor([5, 7, 3], batch=4)
    floor.train(1)
    a0, W0 = floor.a[0], floor.W[0]
    np.testing.assert_allclose(floor.a[1], a0 @ W0, rtol=1e-5)
    np.testing.assert_allclose(floor.dW[0], a0.T @ floor.d[1], rtol=1e-5)
    np.testing.assert_allclose(floor.d[1], floor.d[2] @ floor.W[1].T, rtol=1e-5)
