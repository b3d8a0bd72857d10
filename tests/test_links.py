"""Kernels called through a workspace's address table (lab/engine/kernels/links.py): a
driver never calls an entry that is empty or was compiled for other types (it raises, it
does not jump), entries are filled only for what a run needs, and the results are those
of the linked kernels."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from numba import types

from lab.engine.kernels import network as K
from lab.engine.kernels.links import type_tag
from lab.engine.kernels.losses import LOSS_CODES
from lab.engine.network import Network
from lab.scenario.load import parse_scenario
from lab.sim import Simulation
from lab.sim.simulation import architecture_of


def tiny_network(dtype=np.float32) -> Network:
    sc = parse_scenario({"data": {"n": 40}, "model": {"hidden": [8, 8], "activation": "tanh"}})
    net = Network(architecture_of(sc, sc.data.dim, sc.data.classes), dtype)
    net.initialize("xavier", np.random.default_rng(0))
    return net


def rows(n: int, d: int = 2, seed: int = 1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(np.float32), rng.integers(0, 2, n).astype(np.int64)


def test_a_driver_called_with_an_empty_table_raises_instead_of_jumping():
    net = tiny_network()
    X, y = rows(16)
    ws = net.workspace(16, "eval")
    ws.links[:] = 0
    with pytest.raises(RuntimeError, match="address table entry was not filled|before its address table"):
        K.evaluate(ws, net.weights, np.random.default_rng(0), X, y, LOSS_CODES[net.arch.loss], 0.0)
    net.evaluate_rows(ws, X, y, 0.0)  # the Network fills what evaluation needs first
    assert ws.links[K.L_FORWARD, 1] != 0 and ws.links[K.L_BACKWARD, 1] == 0  # and nothing else


def test_an_entry_compiled_for_other_types_is_refused():
    net32, net64 = tiny_network(np.float32), tiny_network(np.float64)
    X, y = rows(16)
    ws32, ws64 = net32.workspace(16, "eval"), net64.workspace(16, "eval")
    net64.evaluate_rows(ws64, X.astype(np.float64), y, 0.0)
    ws32.links[:] = ws64.links  # float64 kernels in a float32 workspace's table
    with pytest.raises(RuntimeError, match="address table"):
        K.evaluate(ws32, net32.weights, np.random.default_rng(0), X, y, LOSS_CODES[net32.arch.loss], 0.0)


def test_a_pickled_or_copied_workspace_carries_no_addresses_and_is_relinked():
    import copy
    import pickle

    net = tiny_network()
    X, y = rows(16)
    ws = net.workspace(16, "eval")
    net.evaluate_rows(ws, X, y, 0.0)
    assert ws.links.any()
    for clone in (pickle.loads(pickle.dumps(ws)), copy.deepcopy(ws)):
        assert not clone.links.any() and np.array_equal(clone.acts, ws.acts)
        assert net.evaluate_rows(clone, X, y, 0.0) == net.evaluate_rows(ws, X, y, 0.0)


def test_type_tags_are_nonzero_and_tell_types_apart():
    a = (types.Array(types.float32, 2, "C"), types.int64)
    b = (types.Array(types.float64, 2, "C"), types.int64)
    assert type_tag(a) == type_tag(a) and type_tag(a) != type_tag(b)
    assert type_tag(a) != 0 and type_tag(()) != 0
    assert type_tag((types.IntegerLiteral(3),)) == type_tag((types.int64,))  # a constant argument is its type


def test_linked_passes_give_the_bits_of_a_forward_call():
    net = tiny_network()
    X, y = rows(32)
    net.gradient_pass(X, y)  # the driver: forward and backward through the table
    through_driver = net.last_workspace.node(len(net.plan.node_widths) - 1).copy()
    np.testing.assert_array_equal(net.forward(X), through_driver)  # forward called from Python


def digits(augment: dict | None = None):
    return parse_scenario({"data": {"kind": "digits", "n": 300, "augment": augment or {}},
                           "model": {"hidden": [16]}, "train": {"steps": 20, "eval_every": 10}})


def test_augmentation_is_linked_only_for_a_run_that_augments():
    plain = Simulation(digits())
    plain.step(5)
    ws = plain.trainer.network.batch_ws
    assert ws.links[K.L_AUGMENT, 1] == 0 and all(ws.links[row, 1] != 0 for row in K.TRAINING_LINKS)
    flipped = Simulation(digits({"flip": True}))
    flipped.step(5)
    assert flipped.trainer.network.batch_ws.links[K.L_AUGMENT, 1] != 0


def test_a_run_that_starts_augmenting_waits_for_the_warm_ups_background_compilation(monkeypatch):
    """augment_batch is compiled by the warm-up after the first step's kernels: a run that
    needs it meanwhile waits for that compilation instead of starting a second one."""
    import lab.engine.warmup as warmup

    release, reached = threading.Event(), threading.Event()

    def job():
        warmup._first_step_ready()  # a first step may run ...
        reached.set()
        release.wait(30)  # ... while "augmentation compiles"

    w = warmup.WarmUp(job, record_path=None)
    monkeypatch.setattr(warmup, "KERNELS", w)
    waiting = threading.Event()
    wait_all = w.wait_all
    monkeypatch.setattr(w, "wait_all", lambda timeout=None: (waiting.set(), wait_all(timeout))[1])
    sim = Simulation(digits({"flip": True}))
    w.start()
    assert w.wait(30) and reached.is_set() and not w.wait_all(0)
    waiting.clear()
    stepped = threading.Event()
    worker = threading.Thread(target=lambda: (sim.step(3), stepped.set()), daemon=True)
    worker.start()
    assert waiting.wait(30)  # the step waits for the warm-up to be over ...
    assert sim.step_count == 0 and not stepped.is_set()
    release.set()  # ... and trains once it is
    assert stepped.wait(60) and sim.step_count == 3
    worker.join(10)
