"""The fused optimizer kernel (lab.engine.kernels.optim) against the textbook updates of
docs/network.md, written out here in numpy; then the same through Trainer.run."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lab import vocabulary as V
from lab.engine.architecture import Architecture
from lab.engine.kernels import optim as K
from lab.engine.network import Network
from lab.engine.optim import OPTIMIZERS, OptimizerConfig
from lab.engine.trainer import Trainer
from tests.reference import reference_optimizer_step

OPTS = list(V.names(V.OPTIMIZERS))

P0 = np.array([0.5, -1.2, 0.0, 2.0, -0.3, 0.8, 0.0, -2.5])
REG = np.array([1, 1, 1, 1, 0, 0, 1, 0], dtype=np.uint8)  # W entries (1) and biases etc. (0)
GRADS = [  # data-loss gradients for 3 steps
    np.array([0.1, -0.2, 0.3, 0.05, -0.4, 0.25, 0.0, 1.0]),
    np.array([-0.3, 0.1, 0.2, -0.15, 0.35, -0.05, 0.1, -0.5]),
    np.array([0.2, 0.2, -0.1, 0.4, 0.0, 0.1, -0.2, 0.3]),
]
LRS = [0.1, 0.05, 0.2]


def test_optimizer_list():
    assert set(OPTIMIZERS) == set(OPTS)


# --------------------------------------------------------------------------- textbook


def textbook(name, p0, grads, lrs, reg, *, mu=0.9, b1=0.9, b2=None, eps=1e-8, wd=0.0, l1=0.0, l2=0.0,
             scales=None):
    """Run the docs/network.md updates (the oracle's, tests/reference/optim.py) on the flat vector, its
    W entries where `reg`; returns the parameter vector after each step and each change."""
    if b2 is None:
        b2 = 0.99 if name == "rmsprop" else 0.999
    p = p0.astype(np.float64).copy()
    r = reg.astype(bool)
    state: dict = {}
    out, changes = [], []
    for t, (g_data, lr) in enumerate(zip(grads, lrs), start=1):
        g = g_data.copy()
        g[r] += l2 * p[r] + l1 * np.sign(p[r])  # gradient of the total loss (penalties on W only)
        if scales is not None:
            g *= scales[t - 1]
        old = p.copy()
        new, state = reference_optimizer_step(name, {"W": p[r], "b": p[~r]}, {"W": g[r], "b": g[~r]}, state, lr,
                                              momentum=mu, beta1=b1, beta2=b2, eps=eps, weight_decay=wd)
        p[r], p[~r] = new["W"], new["b"]
        out.append(p.copy())
        changes.append(p - old)
    return out, changes


def kernel_run(name, p0, grads, lrs, reg, *, scales=None, record=True, **cfg):
    conf = OptimizerConfig(name, **cfg)
    params = p0.astype(np.float64).copy()
    m1 = np.zeros_like(params)
    m2 = np.zeros_like(params)
    last = np.full_like(params, -999.0)
    out, lasts, oks = [], [], []
    for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
        scale = 1.0 if scales is None else scales[t - 1]
        ok = K.optimizer_update(conf.code, params, g.astype(np.float64), reg, conf.hyper(), scale, lr, t, m1, m2,
                                last, record)
        out.append(params.copy())
        lasts.append(last.copy())
        oks.append(ok)
    return out, lasts, oks


def _cfg_to_textbook(cfg):
    return {"mu": cfg.get("momentum", 0.9), "b1": cfg.get("beta1", 0.9), "b2": cfg.get("beta2"),
            "eps": cfg.get("eps", 1e-8), "wd": cfg.get("weight_decay", 0.0), "l1": cfg.get("l1", 0.0),
            "l2": cfg.get("l2", 0.0)}


CONFIGS = [
    {},
    {"momentum": 0.5, "beta1": 0.8, "beta2": 0.9, "eps": 1e-3},
    {"weight_decay": 0.3},
    {"l2": 0.2},
    {"l1": 0.05},
    {"l1": 0.05, "l2": 0.1, "weight_decay": 0.1},
]


# --------------------------------------------------------------------------- kernel


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
@pytest.mark.parametrize("name", OPTS)
def test_kernel_matches_textbook_three_steps(name, cfg):
    got, lasts, oks = kernel_run(name, P0, GRADS, LRS, REG, **cfg)
    want, changes = textbook(name, P0, GRADS, LRS, REG, **_cfg_to_textbook(cfg))
    assert oks == [True, True, True]
    for step, (g, w, last, ch) in enumerate(zip(got, want, lasts, changes), start=1):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-15, err_msg=f"{name} step {step}")
        np.testing.assert_allclose(last, ch, rtol=1e-12, atol=1e-15, err_msg=f"last_update step {step}")


@pytest.mark.parametrize("name", OPTS)
def test_weight_decay_only_where_reg(name):
    """With zero gradients, sgd with weight decay shrinks exactly the reg entries."""
    zero = [np.zeros_like(P0)] * 3
    got, _, _ = kernel_run(name, P0, zero, LRS, REG, weight_decay=0.5)
    free = REG == 0
    np.testing.assert_array_equal(got[-1][free], P0[free])  # non-W entries untouched
    shrink = np.prod([1 - lr * 0.5 for lr in LRS])
    # g = 0 and zero state: only the decay moves p (momentum: v = 0; rmsprop/adam: a zero step)
    np.testing.assert_allclose(got[-1][~free], P0[~free] * shrink, rtol=1e-12)


def test_adam_and_adamw_differ_only_by_weight_decay():
    a, _, _ = kernel_run("adam", P0, GRADS, LRS, REG, weight_decay=0.1)
    aw, _, _ = kernel_run("adamw", P0, GRADS, LRS, REG, weight_decay=0.1)
    np.testing.assert_array_equal(a[-1], aw[-1])  # "weight_decay applies with any optimizer"
    plain, _, _ = kernel_run("adam", P0, GRADS, LRS, REG)
    assert not np.allclose(plain[-1][REG == 1], a[-1][REG == 1])
    np.testing.assert_array_equal(plain[-1][REG == 0], a[-1][REG == 0])


@pytest.mark.parametrize("name", OPTS)
def test_clipping_scale_multiplies_total_gradient(name):
    scales = [0.5, 1.0, 0.25]
    got, _, _ = kernel_run(name, P0, GRADS, LRS, REG, scales=scales, l2=0.1, l1=0.02)
    want, _ = textbook(name, P0, GRADS, LRS, REG, l2=0.1, l1=0.02, scales=scales)
    np.testing.assert_allclose(got[-1], want[-1], rtol=1e-12, atol=1e-15)


def test_sgd_scale_exactly_halves_the_step():
    g = [GRADS[0]]
    full, _, _ = kernel_run("sgd", P0, g, [0.1], REG)
    half, _, _ = kernel_run("sgd", P0, g, [0.1], REG, scales=[0.5])
    np.testing.assert_allclose(half[0] - P0, 0.5 * (full[0] - P0), rtol=1e-12, atol=1e-16)


def test_last_update_untouched_when_not_recording():
    _, lasts, _ = kernel_run("momentum", P0, GRADS, LRS, REG, record=False)
    for last in lasts:
        np.testing.assert_array_equal(last, np.full_like(P0, -999.0))


@pytest.mark.parametrize("name", OPTS)
def test_returns_false_when_a_parameter_becomes_non_finite(name):
    conf = OptimizerConfig(name)
    params = P0.copy()
    m1, m2, last = np.zeros_like(params), np.zeros_like(params), np.zeros_like(params)
    g = GRADS[0].copy()
    g[1] = np.nan
    ok = K.optimizer_update(conf.code, params, g, REG, conf.hyper(), 1.0, 0.1, 1, m1, m2, last, True)
    assert ok is False or ok == False  # noqa: E712  (numba returns a Python bool)
    assert not np.isfinite(params[1])
    assert np.all(np.isfinite(np.delete(params, 1)))
    # overflow (finite gradient, huge lr) is reported too
    params = P0.copy()
    m1[:], m2[:] = 0, 0
    ok = K.optimizer_update(K.SGD, params, np.full_like(P0, 1e10), REG, conf.hyper(), 1.0, 1e300, 1, m1, m2,
                            last, False)
    assert not ok and not np.all(np.isfinite(params))


@pytest.mark.parametrize("name", OPTS)
def test_float32_overflow_of_a_finite_update_is_reported(name):
    # the update is computed in float64 and finite there; only rounding to float32 overflows
    conf = OptimizerConfig(name)
    params = np.full(9, 3e38, np.float32)
    params[4] = 1.0
    g = np.full(9, -1.0, np.float32)
    z = np.zeros(9, np.float32)
    reg = np.zeros(9, np.uint8)
    ok = K.optimizer_update(conf.code, params, g, reg, conf.hyper(), 1.0, 1e38, 1, z.copy(), z.copy(), z.copy(),
                            False)
    assert not ok
    assert np.isinf(params[0])


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 17, 1000, 100_003])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sum_of_squares_matches_numpy(n, dtype):
    x = np.random.default_rng(n).standard_normal(n).astype(dtype) * 3
    got = K.sum_of_squares(x)
    want = math.fsum(float(v) ** 2 for v in x.astype(np.float64))
    assert got == pytest.approx(want, rel=1e-12, abs=0.0)
    x[n // 2:n // 2 + 1] = np.inf
    assert n == 0 or math.isinf(K.sum_of_squares(x))


def test_returns_true_when_finite():
    conf = OptimizerConfig("adam")
    params = P0.copy()
    z = np.zeros_like(params)
    assert K.optimizer_update(conf.code, params, GRADS[0], REG, conf.hyper(), 1.0, 0.1, 1, z.copy(), z.copy(),
                              z.copy(), False)


@pytest.mark.parametrize("l1,l2", [(0.0, 0.0), (0.3, 0.0), (0.0, 0.7), (0.3, 0.7)])
def test_penalty_and_sq_norm(l1, l2):
    pen, sq = K.penalty_and_sq_norm(P0, GRADS[0], REG, l1, l2)
    r = REG.astype(bool)
    want_pen = 0.5 * l2 * np.sum(P0[r] ** 2) + l1 * np.sum(np.abs(P0[r]))
    g = GRADS[0].copy()
    g[r] += l2 * P0[r] + l1 * np.sign(P0[r])  # sign(0) = 0: no subgradient at 0
    assert pen == pytest.approx(want_pen, rel=1e-14, abs=1e-300)
    assert sq == pytest.approx(float(g @ g), rel=1e-14)


def test_hyper_layout_and_beta2_defaults():
    h = OptimizerConfig("adam", momentum=0.7, beta1=0.8, eps=1e-6, weight_decay=0.01, l1=0.2, l2=0.3,
                        clip_norm=5.0).hyper()
    assert h[K.H_MOMENTUM] == 0.7 and h[K.H_BETA1] == 0.8 and h[K.H_BETA2] == 0.999 and h[K.H_EPS] == 1e-6
    assert h[K.H_WEIGHT_DECAY] == 0.01 and h[K.H_L1] == 0.2 and h[K.H_L2] == 0.3 and h[K.H_CLIP] == 5.0
    assert OptimizerConfig("rmsprop").beta2_value == 0.99
    assert OptimizerConfig("rmsprop", beta2=0.5).beta2_value == 0.5
    with pytest.raises(ValueError):
        OptimizerConfig("lbfgs")


# --------------------------------------------------------------------------- through Trainer.run

N, D, C = 24, 3, 3


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D))
    y = rng.integers(0, C, N)
    return X, y


def _trainer(opt: OptimizerConfig, batch=N, hidden=(6, 5), activation="tanh", seed=0):
    arch = Architecture(input_dim=D, classes=C, hidden=hidden, activation=activation)
    net = Network(arch, np.float64, l1=opt.l1, l2=opt.l2)
    net.initialize("xavier", np.random.default_rng(seed), bias=0.05)
    X, y = _problem(seed)
    return Trainer(net, X, y, batch, opt, np.random.default_rng(seed + 100)), X, y


@pytest.mark.parametrize("name", OPTS)
def test_trainer_lr_zero_leaves_parameters(name):
    tr, _, _ = _trainer(OptimizerConfig(name, weight_decay=0.1, l2=0.01), batch=8)
    before = tr.network.params.copy()
    rec = tr.run(np.zeros(5))
    assert len(rec.loss) == 5 and not rec.diverged
    np.testing.assert_array_equal(tr.network.params, before)
    assert np.all(np.isfinite(rec.loss)) and np.all(rec.grad_norm > 0)


@pytest.mark.parametrize("cfg", [{}, {"l2": 0.05}, {"l1": 0.01, "l2": 0.02}],
                         ids=["plain", "l2", "l1+l2"])
def test_trainer_one_sgd_step_is_params_minus_lr_grad(cfg):
    opt = OptimizerConfig("sgd", **cfg)
    tr, X, y = _trainer(opt)
    net = tr.network
    before = net.params.copy()
    loss, grads = net.loss_and_grads(X, y)  # full batch; a mean loss is permutation invariant
    g = np.concatenate([gi.ravel() for gi in grads])
    lr = 0.3
    rec = tr.run(np.array([lr]))
    np.testing.assert_allclose(net.params, before - lr * g, rtol=1e-10, atol=1e-13)
    assert rec.loss[0] == pytest.approx(loss, rel=1e-12)
    assert rec.grad_norm[0] == pytest.approx(np.linalg.norm(g), rel=1e-12)
    np.testing.assert_allclose(tr.last_update, -lr * g, rtol=1e-10, atol=1e-13)  # last step is recorded


def test_trainer_clipping_rescales_to_clip_norm():
    tr, X, y = _trainer(OptimizerConfig("sgd"))
    _, grads = tr.network.loss_and_grads(X, y)
    g = np.concatenate([gi.ravel() for gi in grads])
    norm = float(np.linalg.norm(g))
    clip = norm / 4
    tr, X, y = _trainer(OptimizerConfig("sgd", clip_norm=clip))
    before = tr.network.params.copy()
    rec = tr.run(np.array([0.5]))
    assert rec.grad_norm[0] == pytest.approx(norm, rel=1e-12)  # the recorded norm is before clipping
    step = before - tr.network.params
    np.testing.assert_allclose(step, 0.5 * g * (clip / norm), rtol=1e-10, atol=1e-13)
    assert np.linalg.norm(step) == pytest.approx(0.5 * clip, rel=1e-10)
    # a clip above the norm changes nothing
    tr2, _, _ = _trainer(OptimizerConfig("sgd", clip_norm=norm * 2))
    tr2.run(np.array([0.5]))
    np.testing.assert_allclose(tr2.network.params, before - 0.5 * g, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("name", OPTS)
def test_trainer_full_batch_matches_textbook_for_three_steps(name):
    """Three full-batch steps: gradients from loss_and_grads at each point, textbook update."""
    opt = OptimizerConfig(name, weight_decay=0.05, l2=0.01)
    tr, X, y = _trainer(opt)
    ref, _, _ = _trainer(opt)  # an identical network to drive with the textbook update
    reg = ref.network.reg
    lrs = [0.1, 0.05, 0.2]
    p = ref.network.params.copy()
    b2 = opt.beta2_value
    v = np.zeros_like(p)
    c = np.zeros_like(p)
    for t, lr in enumerate(lrs, start=1):
        ref.network.params[:] = p
        _, grads = ref.network.loss_and_grads(X, y)
        g = np.concatenate([gi.ravel() for gi in grads])  # total-loss gradient (l2 term included)
        p, v, c = _textbook_stateful(name, p, g, lr, t, v, c, reg, 0.05, opt.momentum, opt.beta1, b2, opt.eps)
    tr.run(np.array(lrs))
    np.testing.assert_allclose(tr.network.params, p, rtol=1e-9, atol=1e-12)


def _textbook_stateful(name, p, g, lr, t, v, c, reg, wd, mu, b1, b2, eps):
    p = p.copy()
    r = reg.astype(bool)
    p[r] -= lr * wd * p[r]
    if name == "sgd":
        p -= lr * g
    elif name == "momentum":
        v = mu * v - lr * g
        p += v
    elif name == "nesterov":
        v_prev = v
        v = mu * v - lr * g
        p += -mu * v_prev + (1 + mu) * v
    elif name == "rmsprop":
        c = b2 * c + (1 - b2) * g * g
        p -= lr * g / (np.sqrt(c) + eps)
    else:
        v = b1 * v + (1 - b1) * g
        c = b2 * c + (1 - b2) * g * g
        p -= lr * (v / (1 - b1**t)) / (np.sqrt(c / (1 - b2**t)) + eps)
    return p, v, c


def test_trainer_reports_divergence_and_stops():
    """A non-finite parameter stops the chunk right after the update that made it."""
    tr, _, _ = _trainer(OptimizerConfig("sgd", weight_decay=2.0), batch=8)
    rec = tr.run(np.array([0.1, 1e308, 0.1, 0.1]))  # lr*weight_decay overflows on step 2
    assert rec.diverged
    assert len(rec.loss) == 2  # the diverging step is counted, nothing after it ran
    assert not np.all(np.isfinite(tr.network.params))


def _inf_loss_trainer():
    """A float64 mse network whose output weights are so large that the loss overflows."""
    arch = Architecture(input_dim=D, classes=C, hidden=(6,), activation="tanh", loss="mse")
    net = Network(arch, np.float64)
    net.initialize("xavier", np.random.default_rng(0))
    net.param("W2")[...] = 1e200
    X, y = _problem(0)
    return Trainer(net, X, y, 8, OptimizerConfig("sgd"), np.random.default_rng(1))


def test_trainer_non_finite_loss_mid_chunk_is_divergence():
    tr = _inf_loss_trainer()
    before = tr.network.params.copy()
    rec = tr.run(np.full(3, 0.1))
    assert len(rec.loss) == 1 and not np.isfinite(rec.loss[0])
    assert rec.diverged
    np.testing.assert_array_equal(tr.network.params, before)  # stopped before the update


def test_trainer_non_finite_loss_on_last_step_of_chunk_is_divergence():
    tr = _inf_loss_trainer()
    rec = tr.run(np.full(1, 0.1))
    assert len(rec.loss) == 1 and not np.isfinite(rec.loss[0])
    assert rec.diverged
