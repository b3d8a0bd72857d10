"""Checks of the plain-numpy oracle itself (tests/reference), in float64, at tiny sizes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lab import vocabulary as V
from tests.gradcheck import (assert_grads_match, away_from_kinks, draw_running, eval_numerical_gradient,
                             has_activation)
from tests.reference import (
    ReferenceSpec,
    init_reference_params,
    reference_forward,
    reference_loss_and_grads,
    reference_optimizer_step,
)

B, D, C = 5, 3, 3
ACTIVATIONS = list(V.names(V.public_activations()))


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------


def _hidden_layers(spec: ReferenceSpec) -> list[int]:
    return list(range(1, len(spec.hidden) + 1))


def _draw_masks(spec, params, rng):
    masks = {}
    for l in _hidden_layers(spec):
        W = params[f"W{l}"]
        if spec.dropconnect > 0:
            masks[f"dropconnect{l}"] = (rng.random(W.shape) >= spec.dropconnect).astype(np.float64)
        if spec.dropout > 0 and has_activation(spec, l):
            width = W.shape[1] // (spec.maxout_k if spec.activation == "maxout" else 1)
            masks[f"dropout{l}"] = (rng.random((B, width)) >= spec.dropout).astype(np.float64)
    return masks


def _draw_case(spec, train=False, eval_running=False, seed=0):
    """Random params / data / masks / running stats, re-drawn until away from every kink."""
    rng = np.random.default_rng(seed)
    for _ in range(200):
        params = init_reference_params(spec, rng)
        x = rng.normal(size=(B, spec.input_dim))
        y = rng.integers(0, spec.classes, size=B)
        masks = _draw_masks(spec, params, rng) if train else None
        running = draw_running(spec, params, rng) if (spec.batchnorm and eval_running) else None
        if away_from_kinks(spec, params, x, y, train=train, masks=masks, running=running):
            return params, x, y, masks, running
    raise AssertionError("could not draw a test point away from the kinks")


def _gradcheck(spec, train=False, eval_running=False, seed=0):
    params, x, y, masks, running = _draw_case(spec, train, eval_running, seed)
    _, grads, _ = reference_loss_and_grads(spec, params, x, y, train=train, masks=masks, running=running)
    assert list(grads) == list(params)

    def f(_):
        return reference_loss_and_grads(spec, params, x, y, train=train, masks=masks, running=running)[0]

    for name, value in params.items():
        numeric = eval_numerical_gradient(f, value)
        assert_grads_match(numeric, grads[name], name)
    return params, grads


# ----------------------------------------------------------------------------------------
# gradient checks
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradcheck_activations(activation):
    _gradcheck(ReferenceSpec(D, C, (4, 5), activation=activation))


@pytest.mark.parametrize("activation", ["leaky_relu", "elu"])
def test_gradcheck_custom_alpha(activation):
    _gradcheck(ReferenceSpec(D, C, (4, 5), activation=activation, alpha=0.3), seed=1)


@pytest.mark.parametrize("loss,activation", [("softmax", "tanh"), ("mse", "elu"), ("hinge", "relu")])
def test_gradcheck_losses(loss, activation):
    _gradcheck(ReferenceSpec(D, C, (4, 5), activation=activation, loss=loss))


@pytest.mark.parametrize("activation", ["tanh", "prelu", "maxout"])
def test_gradcheck_batchnorm_train(activation):
    spec = ReferenceSpec(D, C, (4, 5), activation=activation, batchnorm=True)
    _, grads = _gradcheck(spec, train=True)
    # a bias followed by batch-statistics batchnorm has no effect on the loss
    for l in _hidden_layers(spec):
        assert np.max(np.abs(grads[f"b{l}"])) < 1e-12


@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_gradcheck_batchnorm_eval(activation):
    spec = ReferenceSpec(D, C, (4, 5), activation=activation, batchnorm=True)
    _, grads = _gradcheck(spec, train=False, eval_running=True)
    assert np.max(np.abs(grads["b1"])) > 1e-6  # running stats are constants: b matters


@pytest.mark.parametrize("mode", V.names(V.DROPOUT_MODES))
@pytest.mark.parametrize("train", [True, False])
def test_gradcheck_dropout(mode, train):
    _gradcheck(ReferenceSpec(D, C, (4, 5), activation="sigmoid", dropout=0.4, dropout_mode=mode), train=train)


def test_gradcheck_dropconnect():
    _gradcheck(ReferenceSpec(D, C, (4, 5), activation="tanh", dropconnect=0.3), train=True)


@pytest.mark.parametrize("activation", ["relu", "tanh", "maxout", "prelu"])
def test_gradcheck_residual(activation):
    _gradcheck(ReferenceSpec(D, C, (4, 4, 4), activation=activation, residual=True))


def test_gradcheck_residual_everything_train():
    spec = ReferenceSpec(D, C, (4, 4, 4, 4, 4), activation="prelu", residual=True, batchnorm=True,
                         dropout=0.2, dropconnect=0.2, loss="hinge", l1=0.01, l2=0.02)
    _gradcheck(spec, train=True)


def test_gradcheck_residual_batchnorm_eval():
    spec = ReferenceSpec(D, C, (4, 4, 4), activation="selu", residual=True, batchnorm=True,
                         dropout=0.3, dropout_mode="vanilla")
    _gradcheck(spec, train=False, eval_running=True)


@pytest.mark.parametrize("l1,l2", [(0.05, 0.0), (0.0, 0.1), (0.03, 0.07)])
def test_gradcheck_penalties(l1, l2):
    _gradcheck(ReferenceSpec(D, C, (4, 5), activation="relu", l1=l1, l2=l2))


def test_gradcheck_everything_plain_train():
    spec = ReferenceSpec(D, C, (4, 5), activation="maxout", maxout_k=3, batchnorm=True, dropout=0.3,
                         dropout_mode="vanilla", dropconnect=0.2, loss="mse", l1=0.02, l2=0.05)
    _gradcheck(spec, train=True)


# ----------------------------------------------------------------------------------------
# parameter layout
# ----------------------------------------------------------------------------------------


def test_parameter_names_shapes_order():
    rng = np.random.default_rng(0)
    spec = ReferenceSpec(3, 2, (4, 4, 4), activation="prelu", batchnorm=True, residual=True)
    shapes = {k: v.shape for k, v in init_reference_params(spec, rng).items()}
    assert list(shapes.items()) == [
        ("W1", (3, 4)), ("b1", (4,)), ("gamma1", (4,)), ("beta1", (4,)), ("slope1", (4,)),
        ("W2", (4, 4)), ("b2", (4,)), ("gamma2", (4,)), ("beta2", (4,)), ("slope2", (4,)),
        ("W3", (4, 4)), ("b3", (4,)), ("gamma3", (4,)), ("beta3", (4,)),
        ("W4", (4, 2)), ("b4", (2,)),
    ]
    spec = ReferenceSpec(3, 2, (5, 6), activation="maxout", maxout_k=3, batchnorm=True)
    shapes = {k: v.shape for k, v in init_reference_params(spec, rng).items()}
    assert list(shapes.items()) == [
        ("W1", (3, 15)), ("b1", (15,)), ("gamma1", (15,)), ("beta1", (15,)),
        ("W2", (5, 18)), ("b2", (18,)), ("gamma2", (18,)), ("beta2", (18,)),
        ("W3", (6, 2)), ("b3", (2,)),
    ]
    spec = ReferenceSpec(3, 2, (5,))
    assert [k for k in init_reference_params(spec, rng)] == ["W1", "b1", "W2", "b2"]


def test_residual_spec_validation():
    with pytest.raises(ValueError):
        ReferenceSpec(3, 2, (4, 4), residual=True)
    with pytest.raises(ValueError):
        ReferenceSpec(3, 2, (4, 5, 5), residual=True)


# ----------------------------------------------------------------------------------------
# forward semantics
# ----------------------------------------------------------------------------------------


def _scalar_activation(name, z, alpha, slope):
    if name == "sigmoid":
        return 1.0 / (1.0 + math.exp(-z))
    if name == "tanh":
        return math.tanh(z)
    if name == "relu":
        return z if z > 0 else 0.0
    if name == "leaky_relu":
        return z if z > 0 else alpha * z
    if name == "prelu":
        return z if z > 0 else slope * z
    if name == "elu":
        return z if z > 0 else alpha * (math.exp(z) - 1.0)
    if name == "selu":
        return 1.0507009873554805 * (z if z > 0 else 1.6732632423543772 * (math.exp(z) - 1.0))
    if name == "gelu":
        return 0.5 * z * (1.0 + math.erf(z / math.sqrt(2.0)))
    raise ValueError(name)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation_forward_matches_table(activation):
    spec = ReferenceSpec(D, C, (4,), activation=activation)
    rng = np.random.default_rng(3)
    params = init_reference_params(spec, rng)
    x = rng.normal(size=(B, D))
    out = reference_forward(spec, params, x)
    # z is x @ W1 + b1, computed element by element
    W, b = params["W1"], params["b1"]
    z = np.array([[sum(x[i, d] * W[d, j] for d in range(D)) + b[j] for j in range(W.shape[1])] for i in range(B)])
    np.testing.assert_allclose(out["z"][1], z, rtol=1e-12, atol=1e-12)
    a = out["a"][1]
    assert a.shape == (B, 4)
    default_alpha = {"leaky_relu": 0.01, "elu": 1.0}.get(activation, 0.0)
    for i in range(B):
        for j in range(4):
            if activation == "maxout":
                expected = max(z[i, 2 * j], z[i, 2 * j + 1])
            else:
                slope = params["slope1"][j] if activation == "prelu" else None
                expected = _scalar_activation(activation, z[i, j], default_alpha, slope)
            assert a[i, j] == pytest.approx(expected, rel=1e-12, abs=1e-12)
    # output layer: scores = a @ W2 + b2, and a[L] is the scores
    np.testing.assert_allclose(out["scores"], a @ params["W2"] + params["b2"], rtol=1e-12, atol=1e-12)
    assert out["a"][2] is out["scores"] or np.array_equal(out["a"][2], out["scores"])


def test_maxout_gradient_goes_to_first_argmax():
    spec = ReferenceSpec(2, 2, (1,), activation="maxout", maxout_k=3)
    params = {"W1": np.zeros((2, 3)), "b1": np.array([0.5, 0.5, 0.2]), "W2": np.array([[1.0, -1.0]]),
              "b2": np.zeros(2)}
    x = np.ones((1, 2))
    _, grads, _ = reference_loss_and_grads(spec, params, x, np.array([0]))
    assert grads["b1"][0] != 0.0 and grads["b1"][1] == 0.0 and grads["b1"][2] == 0.0


def _one_hidden_dropout(mode, seed=5):
    spec = ReferenceSpec(D, C, (6,), activation="tanh", dropout=0.3, dropout_mode=mode)
    rng = np.random.default_rng(seed)
    return spec, init_reference_params(spec, rng), rng.normal(size=(B, D))


@pytest.mark.parametrize("mode", V.names(V.DROPOUT_MODES))
def test_dropout_train_uses_the_mask(mode):
    spec, params, x = _one_hidden_dropout(mode)
    rng = np.random.default_rng(9)
    m = (rng.random((B, 6)) >= 0.3).astype(np.float64)
    out = reference_forward(spec, params, x, train=True, masks={"dropout1": m})
    a = np.tanh(x @ params["W1"] + params["b1"])
    np.testing.assert_allclose(out["a"][1], a, rtol=1e-12)  # "a" is before dropout
    scale = 1.0 / 0.7 if mode == "inverted" else 1.0
    np.testing.assert_allclose(out["scores"], (a * m * scale) @ params["W2"] + params["b2"], rtol=1e-12)
    with pytest.raises(ValueError):
        reference_forward(spec, params, x, train=True)  # masks are required


@pytest.mark.parametrize("mode", V.names(V.DROPOUT_MODES))
def test_dropout_eval_scaling(mode):
    """Eval output vs the exact train expectation over masks.

    scores are affine in the mask, so E[scores] = S(0) + q*(S(1) - S(0)), exactly.
    inverted and vanilla: eval == expectation; vanilla-noscale: eval's hidden part is 1/q too big.
    """
    spec, params, x = _one_hidden_dropout(mode)
    q = 0.7
    ones = reference_forward(spec, params, x, train=True, masks={"dropout1": np.ones((B, 6))})["scores"]
    zeros = reference_forward(spec, params, x, train=True, masks={"dropout1": np.zeros((B, 6))})["scores"]
    expectation = zeros + q * (ones - zeros)
    evaluated = reference_forward(spec, params, x, train=False)["scores"]
    b2 = params["b2"]
    if mode == "vanilla-noscale":
        np.testing.assert_allclose(evaluated - b2, (expectation - b2) / q, rtol=1e-10)
        assert not np.allclose(evaluated, expectation)
    else:
        np.testing.assert_allclose(evaluated, expectation, rtol=1e-10)
    if mode == "vanilla":
        a = np.tanh(x @ params["W1"] + params["b1"])
        np.testing.assert_allclose(evaluated, (q * a) @ params["W2"] + b2, rtol=1e-12)


def test_dropconnect_train_and_eval():
    spec = ReferenceSpec(D, C, (4,), activation="tanh", dropconnect=0.25)
    rng = np.random.default_rng(2)
    params = init_reference_params(spec, rng)
    x = rng.normal(size=(B, D))
    M = (rng.random((D, 4)) >= 0.25).astype(np.float64)
    train = reference_forward(spec, params, x, train=True, masks={"dropconnect1": M})
    np.testing.assert_allclose(train["z"][1], x @ (params["W1"] * M / 0.75) + params["b1"], rtol=1e-12)
    evaluated = reference_forward(spec, params, x, train=False)
    np.testing.assert_allclose(evaluated["z"][1], x @ params["W1"] + params["b1"], rtol=1e-12)
    # the output layer never gets dropconnect
    np.testing.assert_allclose(train["scores"], np.tanh(train["z"][1]) @ params["W2"] + params["b2"], rtol=1e-12)


def test_batchnorm_train_normalises():
    spec = ReferenceSpec(D, C, (4, 5), activation="relu", batchnorm=True)
    rng = np.random.default_rng(4)
    params = init_reference_params(spec, rng)
    for l in (1, 2):
        params[f"gamma{l}"] = np.ones_like(params[f"gamma{l}"])
        params[f"beta{l}"] = np.zeros_like(params[f"beta{l}"])
    x = rng.normal(size=(8, D)) * 3.0 + 2.0
    out = reference_forward(spec, params, x, train=True)
    for l in (1, 2):
        z = out["z"][l]
        np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-12)
        np.testing.assert_allclose(z.std(axis=0), 1.0, atol=1e-3)
    pre = x @ params["W1"] + params["b1"]
    var = pre.var(axis=0)
    np.testing.assert_allclose(out["z"][1].std(axis=0), np.sqrt(var / (var + 1e-5)), rtol=1e-10)


def test_batchnorm_running_stats_update_and_eval():
    spec = ReferenceSpec(D, C, (4, 5), activation="tanh", batchnorm=True)
    rng = np.random.default_rng(6)
    params = init_reference_params(spec, rng)
    x = rng.normal(size=(B, D))
    running = draw_running(spec, params, rng)
    before = {k: v.copy() for k, v in running.items()}
    out = reference_forward(spec, params, x, train=True, running=running)
    loss_run = reference_loss_and_grads(spec, params, x, np.zeros(B, dtype=int), train=True, running=running)[2]
    for k in running:
        np.testing.assert_array_equal(running[k], before[k])  # input not mutated
    pre = {1: x @ params["W1"] + params["b1"], 2: out["a"][1] @ params["W2"] + params["b2"]}
    for l in (1, 2):
        n = pre[l].shape[1]
        mu = [sum(pre[l][i, j] for i in range(B)) / B for j in range(n)]
        var = [sum((pre[l][i, j] - mu[j]) ** 2 for i in range(B)) / B for j in range(n)]  # biased
        for j in range(n):
            assert out["running"][f"mean{l}"][j] == pytest.approx(0.9 * before[f"mean{l}"][j] + 0.1 * mu[j], rel=1e-12)
            assert out["running"][f"var{l}"][j] == pytest.approx(0.9 * before[f"var{l}"][j] + 0.1 * var[j], rel=1e-12)
        np.testing.assert_allclose(loss_run[f"mean{l}"], out["running"][f"mean{l}"], rtol=1e-14)
        np.testing.assert_allclose(loss_run[f"var{l}"], out["running"][f"var{l}"], rtol=1e-14)
    # eval: running statistics are used and left unchanged
    ev = reference_forward(spec, params, x, train=False, running=running)
    for k in running:
        np.testing.assert_array_equal(ev["running"][k], before[k])
    expected = params["gamma1"] * (pre[1] - running["mean1"]) / np.sqrt(running["var1"] + 1e-5) + params["beta1"]
    np.testing.assert_allclose(ev["z"][1], expected, rtol=1e-12)
    # eval with no running stats given: zeros / ones
    ev0 = reference_forward(spec, params, x, train=False)
    np.testing.assert_allclose(ev0["z"][1], params["gamma1"] * pre[1] / np.sqrt(1 + 1e-5) + params["beta1"], rtol=1e-12)


@pytest.mark.parametrize("batchnorm", [False, True])
def test_residual_zero_second_layer_is_identity(batchnorm):
    spec = ReferenceSpec(D, C, (4, 4, 4, 4, 4), activation="relu", residual=True, batchnorm=batchnorm)
    rng = np.random.default_rng(7)
    params = init_reference_params(spec, rng)
    x = rng.normal(size=(B, D))
    out = reference_forward(spec, params, x, train=True)
    np.testing.assert_allclose(out["a"][3], out["a"][1] + out["z"][3], rtol=1e-12)  # generic block
    np.testing.assert_allclose(out["a"][5], out["a"][3] + out["z"][5], rtol=1e-12)
    for l in (3, 5):
        params[f"W{l}"] = np.zeros_like(params[f"W{l}"])
        params[f"b{l}"] = np.zeros_like(params[f"b{l}"])
        if batchnorm:
            params[f"beta{l}"] = np.zeros_like(params[f"beta{l}"])
    out = reference_forward(spec, params, x, train=True)
    np.testing.assert_array_equal(out["a"][3], out["a"][1])
    np.testing.assert_array_equal(out["a"][5], out["a"][1])
    assert np.abs(out["a"][1]).max() > 0


# ----------------------------------------------------------------------------------------
# losses
# ----------------------------------------------------------------------------------------


def _case_scores(loss, seed=8, l1=0.0, l2=0.0):
    spec = ReferenceSpec(D, 4, (5,), activation="tanh", loss=loss, l1=l1, l2=l2)
    rng = np.random.default_rng(seed)
    params = init_reference_params(spec, rng, std=1.0)
    x = rng.normal(size=(B, D))
    y = rng.integers(0, 4, size=B)
    return spec, params, x, y, reference_forward(spec, params, x)["scores"]


def test_softmax_loss_at_zero_scores_is_log_c():
    spec, params, x, y, _ = _case_scores("softmax")
    params["W2"] = np.zeros_like(params["W2"])
    params["b2"] = np.zeros_like(params["b2"])
    loss, grads, _ = reference_loss_and_grads(spec, params, x, y)
    assert loss == pytest.approx(math.log(4), rel=1e-12)


def test_softmax_loss_loop():
    spec, params, x, y, s = _case_scores("softmax")
    expected = 0.0
    for i in range(B):
        logsum = math.log(sum(math.exp(s[i, j]) for j in range(4)))
        expected += (logsum - s[i, y[i]]) / B
    assert reference_loss_and_grads(spec, params, x, y)[0] == pytest.approx(expected, rel=1e-12)
    # max-shift keeps huge scores finite
    params["b2"] = params["b2"] + 1000.0
    assert reference_loss_and_grads(spec, params, x, y)[0] == pytest.approx(expected, rel=1e-9)


def test_mse_loss_loop():
    spec, params, x, y, s = _case_scores("mse")
    expected = 0.0
    for i in range(B):
        for j in range(4):
            t = 1.0 if j == y[i] else 0.0
            expected += (s[i, j] - t) ** 2
    expected /= B * 4
    assert reference_loss_and_grads(spec, params, x, y)[0] == pytest.approx(expected, rel=1e-12)


def test_hinge_loss_loop():
    spec, params, x, y, s = _case_scores("hinge")
    expected = 0.0
    for i in range(B):
        for j in range(4):
            if j != y[i]:
                expected += max(0.0, s[i, j] - s[i, y[i]] + 1.0)
    expected /= B
    assert expected > 0
    assert reference_loss_and_grads(spec, params, x, y)[0] == pytest.approx(expected, rel=1e-12)


def test_penalties_added_over_w_only():
    spec, params, x, y, _ = _case_scores("softmax", l1=0.03, l2=0.2)
    base_spec = ReferenceSpec(D, 4, (5,), activation="tanh")
    base = reference_loss_and_grads(base_spec, params, x, y)[0]
    pen = 0.0
    for name, v in params.items():
        if name.startswith("W"):
            for w in v.ravel():
                pen += 0.5 * 0.2 * w * w + 0.03 * abs(w)
    total, grads, _ = reference_loss_and_grads(spec, params, x, y)
    assert total == pytest.approx(base + pen, rel=1e-12)
    base_grads = reference_loss_and_grads(base_spec, params, x, y)[1]
    np.testing.assert_allclose(grads["b1"], base_grads["b1"], rtol=1e-14)
    np.testing.assert_allclose(grads["W1"] - base_grads["W1"], 0.2 * params["W1"] + 0.03 * np.sign(params["W1"]),
                               rtol=1e-10, atol=1e-14)


# ----------------------------------------------------------------------------------------
# optimizers
# ----------------------------------------------------------------------------------------


def _scalar_optimizer(name, params, grads_seq, lr, mu, beta1, beta2, eps, wd, clip):
    """The table of docs/network.md, written element by element on python floats."""
    p = {k: [float(v) for v in a.ravel()] for k, a in params.items()}
    v = {k: [0.0] * len(p[k]) for k in p}
    m = {k: [0.0] * len(p[k]) for k in p}
    for t, grads in enumerate(grads_seq, start=1):
        g = {k: [float(e) for e in a.ravel()] for k, a in grads.items()}
        if clip > 0:
            norm = math.sqrt(sum(e * e for k in g for e in g[k]))
            if norm > clip:
                g = {k: [e * clip / norm for e in g[k]] for k in g}
        for k in p:
            for i in range(len(p[k])):
                if k.startswith("W"):
                    p[k][i] -= lr * wd * p[k][i]
                gi = g[k][i]
                if name == "sgd":
                    p[k][i] -= lr * gi
                elif name == "momentum":
                    v[k][i] = mu * v[k][i] - lr * gi
                    p[k][i] += v[k][i]
                elif name == "nesterov":
                    v_prev = v[k][i]
                    v[k][i] = mu * v[k][i] - lr * gi
                    p[k][i] += -mu * v_prev + (1 + mu) * v[k][i]
                elif name == "rmsprop":
                    v[k][i] = beta2 * v[k][i] + (1 - beta2) * gi * gi
                    p[k][i] -= lr * gi / (math.sqrt(v[k][i]) + eps)
                else:
                    m[k][i] = beta1 * m[k][i] + (1 - beta1) * gi
                    v[k][i] = beta2 * v[k][i] + (1 - beta2) * gi * gi
                    mhat = m[k][i] / (1 - beta1**t)
                    vhat = v[k][i] / (1 - beta2**t)
                    p[k][i] -= lr * mhat / (math.sqrt(vhat) + eps)
    return {k: np.array(p[k]).reshape(params[k].shape) for k in p}


@pytest.mark.parametrize("name", V.names(V.OPTIMIZERS))
@pytest.mark.parametrize("wd,clip", [(0.0, 0.0), (0.1, 1.0), (0.0, 100.0)])
def test_optimizer_three_steps(name, wd, clip):
    rng = np.random.default_rng(11)
    params = {"W1": rng.normal(size=(2, 3)), "b1": rng.normal(size=(3,)), "W2": rng.normal(size=(3, 1)),
              "b2": rng.normal(size=(1,))}
    grads_seq = [{k: rng.normal(size=v.shape) for k, v in params.items()} for _ in range(3)]
    if clip == 1.0:  # make sure clipping really happens
        assert all(math.sqrt(sum(float(np.sum(g * g)) for g in gs.values())) > 1.0 for gs in grads_seq)
    hyper = dict(momentum=0.8, beta1=0.85, beta2=0.99, eps=1e-7)
    expected = _scalar_optimizer(name, params, grads_seq, 0.05, hyper["momentum"], hyper["beta1"],
                                 hyper["beta2"], hyper["eps"], wd, clip)

    originals = {k: v.copy() for k, v in params.items()}
    state: dict = {}
    current = params
    for grads in grads_seq:
        g_copy = {k: v.copy() for k, v in grads.items()}
        current, state = reference_optimizer_step(name, current, grads, state, 0.05, weight_decay=wd,
                                                  clip_norm=clip, **hyper)
        for k in grads:
            np.testing.assert_array_equal(grads[k], g_copy[k])  # grads not mutated
    for k in params:
        np.testing.assert_array_equal(params[k], originals[k])  # params not mutated
        np.testing.assert_allclose(current[k], expected[k], rtol=1e-12, atol=1e-14)
    assert state["t"] == 3


def test_weight_decay_only_on_w_and_clip_changes_result():
    params = {"W1": np.ones((2, 2)), "b1": np.ones(2)}
    zero = {k: np.zeros_like(v) for k, v in params.items()}
    new, _ = reference_optimizer_step("sgd", params, zero, {}, 0.1, weight_decay=0.5)
    np.testing.assert_allclose(new["W1"], 0.95)
    np.testing.assert_array_equal(new["b1"], 1.0)
    big = {k: np.full_like(v, 10.0) for k, v in params.items()}
    clipped, _ = reference_optimizer_step("sgd", params, big, {}, 0.1, clip_norm=1.0)
    # ||g|| = sqrt(6)*10 -> each component becomes 1/sqrt(6)
    np.testing.assert_allclose(clipped["b1"], 1.0 - 0.1 / math.sqrt(6), rtol=1e-12)
