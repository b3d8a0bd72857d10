"""The benchmark harness runs end to end (quick mode) and its numpy reference is the engine's step.

No timing assertions: wall-clock numbers depend on the machine and its load.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from benchmarks import run
from benchmarks.workloads import WORKLOADS, EngineModel, GemmFloor, NumpyMLP, Workload, make_data


def test_quick_run_prints_every_workload_and_ratios(capsys):
    assert run.main(["--quick"]) == 0
    out = capsys.readouterr().out
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
    assert re.search(r"^small\s.*speed-up>=2x (pass|FAIL)", out, re.M)
    assert "BLAS threads" in out


def test_only_runs_one_workload(capsys):
    assert run.main(["--quick", "--only", "small", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^small\s", out, re.M)
    assert not re.search(r"^digits\s", out, re.M)


def test_fresh_cache_is_refused_once_the_kernels_are_loaded(capsys):
    import lab.engine.kernels.network  # noqa: F401  (the other tests have loaded them too)

    assert run.main(["--quick", "--only", "small", "--repeats", "1", "--fresh-cache"]) == 0
    assert "--fresh-cache ignored" in capsys.readouterr().out


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
