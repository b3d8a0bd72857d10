"""`nnlab bench --peers`: the PyTorch and JAX sides do the engine's step, and the command's
arguments, messages and exit status.  No timing assertions.

The peer tests are skipped when torch / jax are not installed (they are an optional extra,
`pip install -e '.[peers]'`, not part of `[test]`).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from typer.testing import CliRunner

from benchmarks import peers as P
from benchmarks import run, vs_peers
from benchmarks.workloads import EngineModel, Workload, make_data


def _engine_and_start(activation: str):
    """A tiny problem whose 48 rows take 3 batches of 16: 5 steps cross an epoch boundary (a reshuffle)."""
    wl = Workload("t", "", 5, (7, 6), 4, 16, activation=activation, n_train=48, lr=0.05)
    X, y = make_data(wl)
    eng = EngineModel(wl, X, y)
    return wl, X, y, eng, [(W.copy(), b.copy()) for W, b in eng.weights()]


def test_index_stream_is_the_engines_minibatch_sequence():
    wl, X, y, eng, _ = _engine_and_start("relu")
    stream = P.IndexStream(wl.n_train, wl.batch, wl.seed + 1)
    rows = stream.take(7)  # 7 steps: two reshuffles after the first
    tr = eng.trainer
    for s in range(7):
        tr.run(np.full(1, wl.lr))
        c = int(tr.cursor[0])
        np.testing.assert_array_equal(rows[s], tr.perm[c - wl.batch:c])
    assert len({tuple(sorted(r)) for r in rows[:3]}) == 3  # an epoch visits different rows each step


def _load(name: str):
    P.limit_threads(1)  # before jax is first imported
    return pytest.importorskip(name, exc_type=ImportError)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("name", ["torch", "jax"])
def test_peer_does_the_engines_step(name, activation):
    """Same loss, accuracy and gradient norm every step, and the same weights after the
    first update and after five: a peer skipping the norm, the momentum or the gathering
    of the engine's rows would fail."""
    module = _load(name)
    wl, X, y, eng, w0 = _engine_and_start(activation)
    peer = P.build_peer(name, module, w0, activation, X, y, wl.batch, wl.momentum, wl.seed + 1)

    def same_weights():
        for (W, b), (Wp, bp) in zip(eng.weights(), peer.weights()):
            np.testing.assert_allclose(Wp, W, rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(bp, b, rtol=1e-4, atol=1e-6)

    loss, acc, gnorm = peer.train(1, wl.lr)  # the first update
    rec = eng.trainer.run(np.full(1, wl.lr))
    moved = max(float(np.abs(W - W0).max()) for (W, _), (W0, _) in zip(eng.weights(), w0))
    assert moved > 1e-3  # the comparison below can tell an update from none
    same_weights()
    loss4, acc4, gnorm4 = peer.train(4, wl.lr)  # momentum at work, and a reshuffle at step 4
    rec4 = eng.trainer.run(np.full(4, wl.lr))
    same_weights()
    np.testing.assert_allclose(np.r_[loss, loss4], np.r_[rec.loss, rec4.loss], rtol=1e-5)
    np.testing.assert_allclose(np.r_[gnorm, gnorm4], np.r_[rec.grad_norm, rec4.grad_norm], rtol=1e-5)
    np.testing.assert_allclose(np.r_[acc, acc4], np.r_[rec.train_acc, rec4.train_acc])


@pytest.mark.parametrize("name", ["torch", "jax"])
def test_a_peer_that_skipped_the_momentum_would_be_caught(name):
    """The check above has teeth: the same peer with momentum 0 drifts off the engine's weights."""
    module = _load(name)
    wl, X, y, eng, w0 = _engine_and_start("relu")
    peer = P.build_peer(name, module, w0, "relu", X, y, wl.batch, 0.0, wl.seed + 1)
    peer.train(3, wl.lr)
    eng.trainer.run(np.full(3, wl.lr))
    gap = max(float(np.abs(Wp - W).max()) for (W, _), (Wp, _) in zip(eng.weights(), peer.weights()))
    assert gap > 1e-4


def _no_peers(monkeypatch):
    monkeypatch.setattr(P, "load_peers", lambda threads: ({"torch": None, "jax": None}, []))


def test_without_the_peers_it_says_how_to_get_them_and_times_the_lab(monkeypatch, capsys):
    _no_peers(monkeypatch)
    code = run.main(["--peers", "--quick", "--only", "small", "--repeats", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "pip install -e '.[peers]'" in out
    row = next(line for line in out.splitlines() if line.startswith("small "))
    assert re.search(r"small 2-100-100-3 b64\s+[\d,]+\s+[\d,]+\s+-\s+-", row), row  # lab and numpy timed, peers not
    assert "n/a (no peer installed)" in row


def test_with_one_peer_missing_it_names_that_one():
    message = vs_peers.missing_message({"torch": object(), "jax": None})
    assert message.startswith("JAX is not installed") and "pip install -e '.[peers]'" in message
    assert vs_peers.missing_message({"torch": object(), "jax": object()}) is None


@pytest.mark.parametrize("torch_s, jax_s, code", [(1.3e-3, 2e-3, 0), (1.1e-3, 2e-3, 1), (2e-3, 1.19e-3, 1),
                                                  (None, 1.25e-3, 0)])
def test_exit_status_follows_the_target_against_the_faster_peer(monkeypatch, capsys, torch_s, jax_s, code):
    """Fixed step times instead of measured ones (lab 1 ms): FAIL, and exit 1, exactly when the
    faster peer is less than 1.2x slower than the lab."""
    _no_peers(monkeypatch)

    def fake(wl, sides, repeats):
        return dict(name=wl.name, shape=vs_peers.short_shape(wl), batch=wl.batch, repeats=repeats, spread=0.0,
                    lab=1e-3, numpy=2e-3, torch=torch_s, jax=jax_s)

    monkeypatch.setattr(vs_peers, "measure", fake)
    assert run.main(["--peers", "--quick", "--only", "small", "--repeats", "1"]) == code
    out = capsys.readouterr().out
    assert ("FAIL" in out) == bool(code), out
    assert re.search(r"lab>=1\.2x faster peer (pass|FAIL)", out)


@pytest.mark.parametrize("argv", [["--peers", "--threads", "2"], ["--peers", "--diagnose"]])
def test_peers_refuses_options_it_cannot_honour(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        run.parse_args(argv)
    assert exc.value.code == 2
    assert "--peers" in capsys.readouterr().err


def test_peers_refuses_a_forward_only_workload(capsys):
    assert run.main(["--peers", "--only", "deep-forward"]) == 2
    err = capsys.readouterr().err
    assert "not a training workload" in err and "mnist" in err


def test_peers_compares_every_training_workload_with_mnist_added():
    names = [wl.name for wl in vs_peers.training_workloads(False, None)]
    assert names == ["small", "digits", "mnist", "deep-train"]
    mnist = next(wl for wl in vs_peers.training_workloads(False, "mnist"))
    assert (mnist.widths, mnist.batch) == ([784, 512, 512, 10], 128)
    assert {wl.n_train for wl in vs_peers.training_workloads(False, None)} == {2048}


def test_nnlab_bench_passes_peers_through(monkeypatch):
    import lab.cli as cli

    seen = []
    monkeypatch.setattr(cli.runpy, "run_path", lambda path, run_name: {"main": lambda argv: seen.append(argv) or 0})
    result = CliRunner().invoke(cli.app, ["bench", "--peers", "--quick"])
    assert result.exit_code == 0, result.output
    assert seen == [["--quick", "--peers"]]


def test_pinning_is_undone():
    if not hasattr(__import__("os"), "sched_setaffinity"):
        pytest.skip("no sched_setaffinity on this OS")
    import os

    before = os.sched_getaffinity(0)
    cpu, undo = P.pin_to_one_core()
    try:
        assert os.sched_getaffinity(0) == {cpu}
    finally:
        undo()
    assert os.sched_getaffinity(0) == before


def test_peers_run_end_to_end(capsys):
    """With both peers installed: a one-round smoke run prints their columns and a verdict."""
    _load("torch")
    _load("jax")
    code = run.main(["--peers", "--quick", "--only", "small", "--repeats", "1"])
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("small "))
    assert len(re.findall(r"\d+\.\d\dx", row)) == 3, row  # lab/numpy, lab/torch, lab/jax
    assert code == (1 if "FAIL" in row else 0)
    assert "pip install" not in out
