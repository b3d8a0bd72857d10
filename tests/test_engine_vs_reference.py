"""The numba engine against the plain-numpy oracle (tests/reference), configuration by configuration.

Loss, every gradient, eval scores, batchnorm running statistics after training steps, and
parameters after 1 and 3 optimizer steps.  float64 must agree to 1e-10; float32 to 1e-4
relative to the gradient's scale (per parameter, floored at 1% of the largest gradient so
that exactly-zero gradients, like a bias before train-mode batchnorm, are compared with the
float32 rounding they really carry).  The oracle always sees the engine's own (possibly
float32-rounded) parameters and inputs, in float64.

Train-mode passes draw their dropout / dropconnect masks inside the engine; the oracle gets
them from `net.last_masks()`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lab import vocabulary as V
from lab.engine.optim import OptimizerConfig
from lab.engine.trainer import Trainer
from tests.reference import (
    ReferenceSpec,
    init_reference_params,
    reference_forward,
    reference_loss_and_grads,
    reference_optimizer_step,
)
from tests.gradcheck import away_from_kinks, draw_running
from tests.test_engine_gradients import engine_for, engine_params

B, D, C = 8, 4, 3
ACTIVATIONS = list(V.names(V.public_activations()))
STRUCTURES = {
    "plain": {},
    "batchnorm": dict(batchnorm=True),
    "dropout-inverted": dict(dropout=0.3, dropout_mode="inverted"),
    "dropout-vanilla": dict(dropout=0.3, dropout_mode="vanilla"),
    "dropout-noscale": dict(dropout=0.3, dropout_mode="vanilla-noscale"),
    "dropconnect": dict(dropconnect=0.3),
    "residual": dict(residual=True),
    "residual-everything": dict(residual=True, batchnorm=True, dropout=0.25, dropconnect=0.2),
}
DTYPES = [np.float64, np.float32]
KINK_MARGIN = 1e-5  # float32 z and oracle z differ by ~1e-7: stay clear of relu/hinge/maxout switches


def make_spec(activation="tanh", structure="plain", **kw) -> ReferenceSpec:
    opts = dict(STRUCTURES[structure])
    hidden = (5, 5, 5) if opts.get("residual") else (6, 5)
    opts.update(kw)
    return ReferenceSpec(D, C, hidden, activation=activation, **opts)


def dtype_id(dtype) -> str:
    return np.dtype(dtype).name


class Pair:
    """Engine network and oracle at one kink-free point; `masks` are the engine's (train)."""

    def __init__(self, spec, dtype, *, train, eval_running=False, seed=0, batch=B):
        rng = np.random.default_rng(seed)
        for _ in range(100):
            params = init_reference_params(spec, rng)
            x = rng.normal(size=(batch, spec.input_dim))
            y = rng.integers(0, spec.classes, size=batch)
            running = draw_running(spec, params, rng) if (spec.batchnorm and eval_running) else None
            net = engine_for(spec, params, dtype, running)
            loss, grads = net.loss_and_grads(x, y, train=train)
            masks = net.last_masks() if train else None
            self.spec, self.net, self.train, self.y, self.running, self.masks = spec, net, train, y, running, masks
            self.x = x  # the engine casts it to its dtype: so does the oracle below
            self.x64 = np.asarray(x, dtype=net.dtype).astype(np.float64)
            self.params = engine_params(net)
            self.loss, self.grads = loss, dict(zip([n for n, _ in net.parameters()], grads))
            if away_from_kinks(spec, self.params, self.x64, y, train=train, masks=masks, running=running,
                               margin=KINK_MARGIN):
                return
        raise AssertionError("no kink-free point")

    def reference(self):
        return reference_loss_and_grads(self.spec, self.params, self.x64, self.y, train=self.train,
                                        masks=self.masks, running=self.running)


def assert_close(actual, expected, dtype, name="", scale=None):
    """float64: 1e-10 elementwise (relative, or absolute near 0); float32: 1e-4 of the scale."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, name
    if np.dtype(dtype) == np.float64:
        np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-13, err_msg=name)
    else:
        s = max(float(np.max(np.abs(expected), initial=0.0)), scale or 0.0, 1e-30)
        err = float(np.max(np.abs(actual - expected), initial=0.0))
        assert err <= 1e-4 * s, f"{name}: max abs error {err:.3g} > 1e-4 * scale {s:.3g}"


def assert_loss_close(actual, expected, dtype):
    rel = 1e-10 if np.dtype(dtype) == np.float64 else 1e-5
    assert actual == pytest.approx(expected, rel=rel, abs=rel * 1e-2)


def assert_grads_close(engine: dict, reference: dict, dtype):
    assert list(engine) == list(reference)
    floor = 1e-2 * max(float(np.max(np.abs(g))) for g in reference.values())
    for name in reference:
        assert_close(engine[name], reference[name], dtype, name, scale=floor)


# ----------------------------------------------------------------------------------------
# loss and gradients, train and eval, over a grid of configurations
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("structure", list(STRUCTURES))
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_train_pass_matches_reference(activation, structure, dtype):
    pair = Pair(make_spec(activation, structure), dtype, train=True)
    spec = pair.spec
    expected_masks = set()
    for l in range(1, len(spec.hidden) + 1):
        if spec.dropout > 0 and not (spec.residual and l >= 3 and l % 2 == 1):
            expected_masks.add(f"dropout{l}")
        if spec.dropconnect > 0:
            expected_masks.add(f"dropconnect{l}")
    assert set(pair.masks) == expected_masks
    ref_loss, ref_grads, _ = pair.reference()
    assert_loss_close(pair.loss, ref_loss, dtype)
    assert_grads_close(pair.grads, ref_grads, dtype)
    before = pair.net.running_stats()
    pair.net.loss_and_grads(pair.x, pair.y, train=True)
    for k, v in pair.net.running_stats().items():  # loss_and_grads never updates running stats
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("structure", list(STRUCTURES))
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_eval_pass_matches_reference(activation, structure, dtype):
    pair = Pair(make_spec(activation, structure), dtype, train=False, eval_running=True)
    ref_loss, ref_grads, _ = pair.reference()
    scores = pair.net.forward(pair.x)
    assert scores.dtype == np.dtype(dtype)
    ref_scores = reference_forward(pair.spec, pair.params, pair.x64, running=pair.running)["scores"]
    assert_close(scores, ref_scores, dtype, "scores")
    assert_loss_close(pair.loss, ref_loss, dtype)
    assert_grads_close(pair.grads, ref_grads, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("mode", [
    "inverted", "vanilla", "vanilla-noscale",
])
def test_eval_dropout_gradients_vs_reference(mode, dtype):
    pair = Pair(make_spec("tanh", "plain", dropout=0.3, dropout_mode=mode), dtype, train=False)
    assert_grads_close(pair.grads, pair.reference()[1], dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("loss", V.names(V.LOSSES))
@pytest.mark.parametrize("l1,l2", [(0.0, 0.0), (0.03, 0.0), (0.0, 0.07), (0.02, 0.05)])
def test_losses_and_penalties_match_reference(loss, l1, l2, dtype):
    activation = {"softmax": "elu", "mse": "gelu", "hinge": "leaky_relu"}[loss]
    for structure, train in [("plain", False), ("residual-everything", True)]:
        pair = Pair(make_spec(activation, structure, loss=loss, l1=l1, l2=l2), dtype, train=train, seed=3)
        assert pair.net.l1 == l1 and pair.net.l2 == l2
        ref_loss, ref_grads, _ = pair.reference()
        assert_loss_close(pair.loss, ref_loss, dtype)
        assert_grads_close(pair.grads, ref_grads, dtype)


def test_maxout_three_pieces_and_custom_alpha():
    for spec in (ReferenceSpec(D, C, (3, 4), activation="maxout", maxout_k=3, batchnorm=True, dropout=0.2),
                 ReferenceSpec(D, C, (3, 4), activation="leaky_relu", alpha=0.2, dropconnect=0.1),
                 ReferenceSpec(D, C, (3, 4), activation="elu", alpha=0.4, loss="hinge")):
        for train in (True, False):
            pair = Pair(spec, np.float64, train=train, eval_running=True, seed=5)
            ref_loss, ref_grads, _ = pair.reference()
            assert_loss_close(pair.loss, ref_loss, np.float64)
            if train or not spec.dropout:
                assert_grads_close(pair.grads, ref_grads, np.float64)


def test_comparison_detects_a_wrong_engine(monkeypatch):
    """The comparison can fail: a network whose leaky_relu slope is off (alpha 0.011 instead of
    the oracle's 0.01) and a corrupted float32 gradient are both caught."""
    spec = make_spec("leaky_relu", "plain")
    pair = Pair(spec, np.float64, train=False)
    wrong = engine_for(ReferenceSpec(D, C, spec.hidden, activation="leaky_relu", alpha=0.011), pair.params)
    loss, grads = wrong.loss_and_grads(pair.x, pair.y)
    ref_loss, ref_grads, _ = pair.reference()
    with pytest.raises(AssertionError):
        assert_grads_close(dict(zip(ref_grads, grads)), ref_grads, np.float64)
    pair32 = Pair(spec, np.float32, train=False)
    ref_grads32 = pair32.reference()[1]
    assert_grads_close(pair32.grads, ref_grads32, np.float32)
    bad = dict(pair32.grads)
    bad["W1"] = bad["W1"] * (1 + 1e-3)
    with pytest.raises(AssertionError):
        assert_grads_close(bad, ref_grads32, np.float32)


# ----------------------------------------------------------------------------------------
# Trainer: full-batch steps (batch_size = N, so every step is the whole set, permuted)
# ----------------------------------------------------------------------------------------


N = 12
HYPER = dict(momentum=0.8, beta1=0.85, beta2=0.99, eps=1e-7)


def _data(spec, seed, n=N):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, spec.input_dim))
    y = rng.integers(0, spec.classes, size=n)
    return X, y


def _reference_steps(spec, params, X, y, name, lrs, *, running=None, weight_decay=0.0, clip_norm=0.0):
    """The oracle's full-batch training: per step (loss, grad norm, params, running) after it."""
    state: dict = {}
    out = []
    for lr in lrs:
        loss, grads, running = reference_loss_and_grads(spec, params, X, y, train=True, running=running)
        norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))
        params, state = reference_optimizer_step(name, params, grads, state, lr, weight_decay=weight_decay,
                                                 clip_norm=clip_norm, **HYPER)
        out.append((loss, norm, params, running))
    return out


@pytest.mark.parametrize("structure", ["batchnorm", "residual-bn"])
def test_batchnorm_running_stats_after_training_steps(structure):
    if structure == "batchnorm":
        spec = ReferenceSpec(D, C, (6, 5), activation="tanh", batchnorm=True, bn_momentum=0.8)
    else:
        spec = ReferenceSpec(D, C, (5, 5, 5), activation="relu", batchnorm=True, residual=True)
    rng = np.random.default_rng(21)
    params = init_reference_params(spec, rng)
    running0 = draw_running(spec, params, rng)
    X, y = _data(spec, 22)
    net = engine_for(spec, params, np.float64, running0)
    trainer = Trainer(net, X, y, batch_size=N, optimizer=OptimizerConfig("sgd"), rng=np.random.default_rng(23))
    lrs = [0.1, 0.05, 0.2]
    expected = _reference_steps(spec, params, X, y, "sgd", lrs, running=running0)

    record = trainer.run(np.array(lrs[:1]))
    assert sorted(trainer.perm) == list(range(N)) and list(trainer.perm) != list(range(N))  # whole set, permuted
    got = net.running_stats()
    assert sorted(got) == sorted(running0)
    for k in running0:  # one step moved every running statistic, by the oracle's update
        assert np.all(got[k] != running0[k])
        assert_close(got[k], expected[0][3][k], np.float64, k)
    assert_close(record.loss, [expected[0][0]], np.float64, "loss")
    assert_close(record.grad_norm, [expected[0][1]], np.float64, "grad norm")
    for name, value in engine_params(net).items():
        assert_close(value, expected[0][2][name], np.float64, name)

    trainer.run(np.array(lrs[1:]))
    for k, v in net.running_stats().items():
        assert_close(v, expected[2][3][k], np.float64, k)
    for name, value in engine_params(net).items():
        assert_close(value, expected[2][2][name], np.float64, name)
    # evaluation uses (and keeps) the running statistics
    before = net.running_stats()
    ev_loss, ev_acc = trainer.evaluate(X, y, chunk=5)
    ref_scores = reference_forward(spec, expected[2][2], X, running=expected[2][3])["scores"]
    ref_loss = reference_loss_and_grads(spec, expected[2][2], X, y, running=expected[2][3])[0]
    assert ev_loss == pytest.approx(ref_loss, rel=1e-10)
    assert ev_acc == pytest.approx(np.mean(ref_scores.argmax(axis=1) == y))
    for k, v in net.running_stats().items():
        np.testing.assert_array_equal(v, before[k])


def test_trainer_step_with_dropout_and_dropconnect_masks():
    """A train step's masks are drawn from the trainer's rng; the oracle replays them on X[perm]."""
    spec = ReferenceSpec(D, C, (5, 5, 5), activation="selu", residual=True, batchnorm=True, dropout=0.3,
                         dropout_mode="vanilla", dropconnect=0.2)
    rng = np.random.default_rng(31)
    params = init_reference_params(spec, rng)
    X, y = _data(spec, 32)
    net = engine_for(spec, params, np.float64)
    trainer = Trainer(net, X, y, batch_size=N, optimizer=OptimizerConfig("sgd"), rng=np.random.default_rng(33))
    record = trainer.run(np.array([0.1]))
    masks = net.last_masks()
    assert set(masks) == {"dropout1", "dropout2", "dropconnect1", "dropconnect2", "dropconnect3"}
    perm = trainer.perm.copy()
    loss, grads, running = reference_loss_and_grads(spec, params, X[perm], y[perm], train=True, masks=masks)
    assert record.loss[0] == pytest.approx(loss, rel=1e-10)
    for k, v in net.running_stats().items():
        assert_close(v, running[k], np.float64, k)
    new, _ = reference_optimizer_step("sgd", params, grads, {}, 0.1)
    for name, value in engine_params(net).items():
        assert_close(value, new[name], np.float64, name)


def test_last_masks_survive_an_eval_pass():
    spec = make_spec("tanh", "plain", dropout=0.5, dropconnect=0.5)
    pair = Pair(spec, np.float64, train=True)
    assert 0 < pair.masks["dropout1"].sum() < pair.masks["dropout1"].size
    pair.net.forward(pair.x)  # eval
    after = pair.net.last_masks()
    for k, m in pair.masks.items():
        np.testing.assert_array_equal(after[k], m, err_msg=k)


OPTIMIZERS = list(V.names(V.OPTIMIZERS))


@pytest.mark.parametrize("case", ["plain", "clip-wd-l2"])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_steps_match_reference(name, case):
    extra = dict(l2=0.05, l1=0.01) if case == "clip-wd-l2" else {}
    weight_decay = {"plain": 0.1 if name == "adamw" else 0.0, "clip-wd-l2": 0.1}[case]
    clip = 0.3 if case == "clip-wd-l2" else 0.0
    spec = ReferenceSpec(D, C, (5,), activation="tanh", **extra)
    rng = np.random.default_rng(41)
    params = init_reference_params(spec, rng)
    X, y = _data(spec, 42)
    net = engine_for(spec, params, np.float64)
    config = OptimizerConfig(name, weight_decay=weight_decay, clip_norm=clip, l1=spec.l1, l2=spec.l2, **HYPER)
    trainer = Trainer(net, X, y, batch_size=N, optimizer=config, rng=np.random.default_rng(43))
    lrs = [0.1, 0.05, 0.2]
    expected = _reference_steps(spec, params, X, y, name, lrs, weight_decay=weight_decay, clip_norm=clip)
    if clip:
        assert all(norm > clip for _, norm, _, _ in expected)  # clipping really happens
    first = trainer.run(np.array(lrs[:1]))
    rest = trainer.run(np.array(lrs[1:]))
    assert not first.diverged and not rest.diverged
    np.testing.assert_allclose(np.concatenate([first.loss, rest.loss]), [e[0] for e in expected], rtol=1e-10)
    np.testing.assert_allclose(np.concatenate([first.grad_norm, rest.grad_norm]), [e[1] for e in expected],
                               rtol=1e-10)
    for name_, value in engine_params(net).items():
        assert_close(value, expected[2][2][name_], np.float64, name_)
    assert trainer.opt_state.t[0] == 3
    # and after one step, on a fresh trainer
    net1 = engine_for(spec, params, np.float64)
    Trainer(net1, X, y, batch_size=N, optimizer=config, rng=np.random.default_rng(44)).run(np.array(lrs[:1]))
    after_first = engine_params(net1)
    for name_, value in after_first.items():
        assert_close(value, expected[0][2][name_], np.float64, name_)
        assert not np.array_equal(value, params[name_])


@pytest.mark.parametrize("name", ["sgd", "adam", "nesterov"])
def test_optimizer_steps_float32(name):
    spec = ReferenceSpec(D, C, (5,), activation="gelu", l2=0.05)
    rng = np.random.default_rng(51)
    net = engine_for(spec, init_reference_params(spec, rng), np.float32)
    params = engine_params(net)
    X, y = _data(spec, 52)
    X = X.astype(np.float32).astype(np.float64)
    config = OptimizerConfig(name, weight_decay=0.1, clip_norm=0.5, l2=spec.l2, **HYPER)
    trainer = Trainer(net, X, y, batch_size=N, optimizer=config, rng=np.random.default_rng(53))
    lrs = [0.1, 0.05, 0.2]
    expected = _reference_steps(spec, params, X, y, name, lrs, weight_decay=0.1, clip_norm=0.5)
    trainer.run(np.array(lrs))
    for name_, value in engine_params(net).items():
        ref = expected[2][2][name_]
        # float32 parameters: compare to 1e-4 of the parameter scale
        assert_close(value, ref, np.float32, name_, scale=float(np.max(np.abs(ref))))
