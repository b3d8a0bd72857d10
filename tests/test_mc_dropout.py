"""Dropout as an ensemble (lab/engine/mc_dropout.py, train.mc_samples): the Monte-Carlo average
over random dropout masks against a plain-numpy reference, the single network against the
engine's own test-time pass, determinism, and the scenario errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lab.engine.mc_dropout import mc_evaluate, mc_predict, single_predict
from lab.errors import ScenarioError
from lab.scenario.load import load_scenario
from lab.scenario.schema import Scenario
from lab.sim.simulation import Simulation
from tests.reference import ReferenceSpec, init_reference_params, reference_forward
from tests.test_engine_gradients import engine_for

N, D, C = 40, 5, 3


def _softmax(s):
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _case(hidden=(7, 6), mode="inverted", dropout=0.5, activation="relu", dtype=np.float64, seed=0, **kw):
    spec = ReferenceSpec(D, C, tuple(hidden), activation=activation, dropout=dropout, dropout_mode=mode, **kw)
    rng = np.random.default_rng(seed)
    params = init_reference_params(spec, rng)
    X = rng.normal(size=(N, D))
    return spec, params, engine_for(spec, params, dtype), X


def _reference_mc(spec, params, X, samples, seed):
    """The ensemble average the plain way: per sample, one keep mask per hidden layer in order."""
    rng = np.random.default_rng(seed)
    keep = 1.0 - spec.dropout
    probs, scores = np.zeros((X.shape[0], spec.classes)), np.zeros((X.shape[0], spec.classes))
    for _ in range(samples):
        masks = {f"dropout{l + 1}": rng.random((X.shape[0], h)) < keep for l, h in enumerate(spec.hidden)}
        s = reference_forward(spec, params, X, train=True, masks=masks)["scores"]
        scores += s
        probs += _softmax(s)
    return probs / samples, scores / samples


@pytest.mark.parametrize("mode", ["inverted", "vanilla", "vanilla-noscale"])
@pytest.mark.parametrize("hidden,activation", [((7,), "relu"), ((7, 6), "relu"), ((7, 6), "tanh")])
def test_mc_average_matches_the_numpy_reference(mode, hidden, activation):
    spec, params, net, X = _case(hidden, mode, activation=activation)
    probs, scores = mc_predict(net, X, 9, np.random.default_rng(11))
    ref_probs, ref_scores = _reference_mc(spec, params, X, 9, 11)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(probs, ref_probs, rtol=1e-10, atol=1e-12)
    # the single network is the reference's test-time pass (vanilla: x q, noscale: x)
    single_probs, single_scores = single_predict(net, X)
    np.testing.assert_allclose(single_scores, reference_forward(spec, params, X)["scores"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(single_probs.sum(axis=1), 1.0)


def test_the_comparison_would_see_a_wrong_mask_scaling():
    spec, params, net, X = _case((7,), "inverted")
    _, scores = mc_predict(net, X, 5, np.random.default_rng(3))
    wrong = ReferenceSpec(D, C, (7,), dropout=0.5, dropout_mode="vanilla")  # no 1/q at training
    _, ref_scores = _reference_mc(wrong, params, X, 5, 3)
    assert not np.allclose(scores, ref_scores)


def test_single_network_is_the_engines_test_time_pass_float32():
    spec, params, net, X = _case((8, 8), "vanilla", dtype=np.float32, batchnorm=True, seed=4)
    _, scores = single_predict(net, X)
    np.testing.assert_array_equal(scores, net.forward(X).astype(np.float64))


def test_without_dropout_the_ensemble_is_the_single_network():
    _, _, net, X = _case((8, 8), dropout=0.0, batchnorm=True, seed=2)
    y = np.arange(N) % C
    r = mc_evaluate(net, X, y, 4, np.random.default_rng(0))
    assert r.gap == 0.0 and r.score_gap == 0.0 and r.acc == r.single_acc


def test_linear_after_the_mask_the_gap_is_noise_that_shrinks_as_one_over_sqrt_t():
    """One hidden layer: the scores are linear in the mask, so their MC mean tends to the
    rescaled network's (exact in expectation); after a second ReLU layer it does not."""
    gaps = {}
    for hidden in ((30,), (30, 30)):
        _, _, net, X = _case(hidden, "inverted", seed=5)
        y = np.arange(N) % C
        gaps[hidden] = [mc_evaluate(net, X, y, t, np.random.default_rng(1)).score_gap for t in (16, 1024)]
    linear, deep = gaps[(30,)], gaps[(30, 30)]
    assert linear[1] / linear[0] < 0.25  # 1/sqrt(64) = 0.125 expected
    assert deep[1] > 2 * linear[1]  # a bias that more masks do not remove


def test_mc_evaluation_is_deterministic_and_keyed_by_the_step():
    """The masks of the evaluation at a step come from [seed, MC_STREAM, step]: the same
    values whether or not the run was evaluated in between (as `nnlab check` does)."""
    def sc(every):
        return Scenario.model_validate({"data": {"kind": "spiral", "n": 200}, "model": {"hidden": [16, 16],
                                        "dropout": 0.3}, "train": {"steps": 60, "eval_every": every,
                                                                   "mc_samples": 8}})
    a, b, c = Simulation(sc(20)), Simulation(sc(20)), Simulation(sc(60))
    for sim in (a, b, c):
        sim.step(60)
    ha, hb, hc = (s.snapshot().history for s in (a, b, c))
    for name in ("mc_val_loss", "mc_val_acc", "mc_gap", "mc_score_gap"):
        np.testing.assert_array_equal(ha[name], hb[name])
        assert ha[name][-1] == hc[name][-1] and math.isfinite(ha[name][-1])
    assert a.snapshot().metric("mc_val_acc") == ha["mc_val_acc"][-1]


def test_without_mc_samples_the_series_are_nan_and_cost_nothing():
    sim = Simulation(Scenario.model_validate({"data": {"kind": "spiral", "n": 200}, "model": {"hidden": [8],
                                              "dropout": 0.5}, "train": {"steps": 20, "eval_every": 10}}))
    sim.step(20)
    h = sim.snapshot().history
    assert h["mc_val_acc"].size == h["val_acc"].size and np.isnan(h["mc_val_acc"]).all()


def _load(tmp_path, text):
    path = tmp_path / "s.toml"
    path.write_text(text, encoding="utf-8")
    return load_scenario(path)


@pytest.mark.parametrize("text,words", [
    ("[train]\nmc_samples = 1001\n", ["train.mc_samples", "1000"]),
    ("[train]\nmc_samples = -1\n", ["train.mc_samples"]),
    ("[model]\nloss = \"mse\"\ndropout = 0.5\n[train]\nmc_samples = 10\n", ["train.mc_samples", "softmax", "mse"]),
    ("[model]\ndropout = 0.5\n[[expect]]\nmetric = \"mc_val_acc\"\nop = \">\"\nvalue = 0.5\n",
     ["expect[0].metric", "mc_samples is 0"]),
    ("[model]\ndropout = 0.5\n[train]\nmc_samples = 8\n[[variants]]\nname = \"off\"\nset = { mc_samples = 0 }\n"
     "[[expect]]\nmetric = \"mc_gap\"\nvariant = \"off\"\nop = \">\"\nvalue = 0.5\n", ["'off'", "mc_samples is 0"]),
])
def test_bad_mc_settings_name_the_key(tmp_path, text, words):
    with pytest.raises(ScenarioError) as info:
        _load(tmp_path, text)
    message = str(info.value)
    for word in words:
        assert word in message, (word, message)


def test_the_mc_evaluation_is_in_the_memory_estimate():
    from lab.scenario.budget import estimate

    def total(samples):
        sc = Scenario.model_validate({"data": {"kind": "digits", "n": 1797}, "model": {"hidden": [512],
                                      "dropout": 0.5}, "train": {"mc_samples": samples}})
        (training,) = [p for p in estimate(sc)[0].phases if p.name == "training"]
        return training.total, [t.what for t in training.terms]

    (with_mc, terms), (without, _) = total(100), total(0)
    assert with_mc > without and any("Monte-Carlo" in t for t in terms)
