"""Direct tests of the kernels in lab/engine/kernels, against numpy formulas and finite differences.

Cheap enough to run with NUMBA_DISABLE_JIT=1 too (CI does, so coverage sees the kernel
bodies): every array is tiny except the 20000-draw mask statistics.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
from scipy.special import erf, erfc

from lab import vocabulary as V
from lab.engine.architecture import Architecture
from lab.engine.kernels import activations as A
from lab.engine.kernels import dense as DN
from lab.engine.kernels import losses as LS
from lab.engine.kernels import optim as OP
from lab.engine.kernels import regularizers as RG
from lab.engine.kernels.shuffle import shuffle
from lab.engine.network import Network
from lab.engine.optim import OptimizerConfig
from lab.engine.trainer import Trainer
from tests.reference import reference_optimizer_step

SELU_L, SELU_A = 1.0507009873554805, 1.6732632423543772
H = 1e-6  # centred-difference step for the elementwise checks (functions of O(1) values)


def _z(shape=(4, 6), seed=0, margin=0.05):
    """Values away from 0 (the kinks of relu & co.)."""
    z = np.random.default_rng(seed).normal(0.0, 1.5, size=shape)
    return np.where(np.abs(z) < margin, z + np.sign(z + 1e-12) * 2 * margin, z)


def _mask_sigma(q, n):
    return math.sqrt(q * (1 - q) / n)


# ----------------------------------------------------------------------------------------
# activations
# ----------------------------------------------------------------------------------------


def _numpy_activation(name, z, alpha, slope):
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, alpha * z)
    if name == "prelu":
        return np.where(z > 0, z, slope * z)
    if name == "elu":
        return np.where(z > 0, z, alpha * np.expm1(np.minimum(z, 0.0)))
    if name == "selu":
        return SELU_L * np.where(z > 0, z, SELU_A * np.expm1(np.minimum(z, 0.0)))
    if name == "gelu":
        return 0.5 * z * (1.0 + erf(z / np.sqrt(2.0)))
    if name == "identity":
        return z.copy()
    raise ValueError(name)


def _numpy_activation_grad(name, z, alpha, slope):
    if name == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-z))
        return s * (1 - s)
    if name == "tanh":
        return 1 - np.tanh(z) ** 2
    if name == "relu":
        return (z > 0).astype(float)
    if name == "leaky_relu":
        return np.where(z > 0, 1.0, alpha)
    if name == "prelu":
        return np.where(z > 0, 1.0, slope * np.ones_like(z))
    if name == "elu":
        return np.where(z > 0, 1.0, alpha * np.exp(np.minimum(z, 0.0)))
    if name == "selu":
        return SELU_L * np.where(z > 0, 1.0, SELU_A * np.exp(np.minimum(z, 0.0)))
    if name == "gelu":
        return 0.5 * (1 + erf(z / np.sqrt(2))) + z * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)
    if name == "identity":
        return np.ones_like(z)
    raise ValueError(name)


ELEMENTWISE = [a.name for a in V.ACTIVATIONS if not a.pieces]  # maxout has its own kernels


def _act_forward(name, z, alpha, slope):
    a = np.full_like(z, np.nan)
    A.activation_forward(A.ACTIVATION_CODES[name], z, a, alpha, slope)
    return a


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_activation_forward_backward(name):
    z = _z()
    alpha = {"leaky_relu": 0.07, "elu": 0.6}.get(name, 0.0)
    slope = np.linspace(0.1, 0.4, z.shape[1]) if name == "prelu" else np.zeros(0)
    a = _act_forward(name, z, alpha, slope)
    np.testing.assert_allclose(a, _numpy_activation(name, z, alpha, slope), rtol=1e-13, atol=1e-15)

    dout = np.random.default_rng(1).normal(size=z.shape)
    dz = np.full_like(z, np.nan)
    dslope = np.full(slope.shape, 123.0)  # must be overwritten, not accumulated into
    A.activation_backward(A.ACTIVATION_CODES[name], dout, z, a, alpha, slope, dz, dslope)
    np.testing.assert_allclose(dz, dout * _numpy_activation_grad(name, z, alpha, slope), rtol=1e-12, atol=1e-15)
    # and against centred differences of the forward kernel itself
    numeric = (_act_forward(name, z + H, alpha, slope) - _act_forward(name, z - H, alpha, slope)) / (2 * H)
    np.testing.assert_allclose(dz, dout * numeric, rtol=1e-6, atol=1e-9)
    if name == "prelu":
        np.testing.assert_allclose(dslope, np.where(z <= 0, dout * z, 0.0).sum(axis=0), rtol=1e-12)
        num_slope = np.array([
            np.sum(dout * (_act_forward(name, z, 0.0, slope + H * e) - _act_forward(name, z, 0.0, slope - H * e)))
            / (2 * H) for e in np.eye(slope.size)])
        np.testing.assert_allclose(dslope, num_slope, rtol=1e-6, atol=1e-9)


def test_activation_kinks_and_extremes():
    z = np.array([[0.0, -0.0, 800.0, -800.0]])
    slope = np.full(4, 0.3)
    for name in ["relu", "leaky_relu", "prelu", "elu", "selu"]:
        a = _act_forward(name, z[:, :2], 0.2, slope[:2])
        np.testing.assert_array_equal(a, 0.0)
        dz = np.empty((1, 2))
        A.activation_backward(A.ACTIVATION_CODES[name], np.ones((1, 2)), z[:, :2], a, 0.2, slope[:2], dz,
                              np.zeros(2 if name == "prelu" else 0))
        expected = {"relu": 0.0, "leaky_relu": 0.2, "prelu": 0.3, "elu": 0.2, "selu": SELU_L * SELU_A}[name]
        np.testing.assert_allclose(dz, expected, rtol=1e-15)  # z = 0 takes the z <= 0 branch (relu: f'(0) = 0)
    a = _act_forward("sigmoid", z, 0.0, np.zeros(0))  # no overflow either way
    np.testing.assert_array_equal(a, [[0.5, 0.5, 1.0, 0.0]])
    assert np.all(np.isfinite(_act_forward("tanh", z, 0.0, np.zeros(0))))


def _ulps_from_exact_tanh(x32: np.ndarray, got: np.ndarray) -> np.ndarray:
    exact = np.tanh(x32.astype(np.float64))
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    return np.abs(got.astype(np.float64) - exact) / ulp


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_float32_kernels_agree_with_float64(name):
    # float32 takes vmath's libm-free functions, float64 libm's: same inputs, same answers
    # to float32 precision, from deep in the negative tail (gelu, sigmoid: tiny values) to large
    z32 = np.concatenate([np.linspace(-30, 30, 241), -(10.0 ** np.linspace(-8, 1.4, 40))]).astype(np.float32)
    z32 = z32.reshape(1, -1)
    z64 = z32.astype(np.float64)
    alpha = {"leaky_relu": 0.07, "elu": 0.6}.get(name, 0.0)
    slope = np.linspace(0.1, 0.4, z32.shape[1]) if name == "prelu" else np.zeros(0)
    a64 = _act_forward(name, z64, alpha, slope)
    if name == "gelu":  # float64's 1 + erf(v) cancels to 0 below v = -8; float32's erfc does not
        a64 = 0.5 * z64 * erfc(-z64 / math.sqrt(2))
    a32 = _act_forward(name, z32, alpha, slope.astype(np.float32))
    assert a32.dtype == np.float32
    np.testing.assert_allclose(a32, a64, rtol=4e-7, atol=1e-37)
    dout = np.random.default_rng(3).normal(size=z32.shape)
    d64 = np.empty_like(z64)
    d32 = np.empty_like(z32)
    # sigmoid and tanh take their slope from the stored output (s(1 - s), 1 - t^2), which
    # float32 rounds near saturation: compare them from that same stored output
    a_ref = a32.astype(np.float64) if name in ("sigmoid", "tanh") else a64
    A.activation_backward(A.ACTIVATION_CODES[name], dout, z64, a_ref, alpha, slope, d64, np.zeros_like(slope))
    if name == "gelu":
        d64 = dout * (0.5 * erfc(-z64 / math.sqrt(2)) + z64 * np.exp(-0.5 * z64**2) / math.sqrt(2 * math.pi))
    A.activation_backward(A.ACTIVATION_CODES[name], dout.astype(np.float32), z32, a32, alpha,
                          slope.astype(np.float32), d32, np.zeros_like(slope, np.float32))
    # gelu's slope Phi(v) + v phi(v) crosses 0 near v = -0.75, where its two O(0.3) terms
    # cancel: there only an absolute bound on that scale is meaningful
    np.testing.assert_allclose(d32, d64, rtol=2e-6, atol=1e-7 if name == "gelu" else 1e-30)


def test_float32_tanh_is_within_3_ulp_of_exact():
    # dense over the curved part, logarithmic over tiny and huge magnitudes, both signs
    grid = np.linspace(-12.0, 12.0, 40001)
    logs = 10.0 ** np.linspace(-40, 38, 2001)
    x = np.concatenate([grid, logs, -logs]).astype(np.float32)
    a = _act_forward("tanh", x.reshape(1, -1), 0.0, np.zeros(0, np.float32))
    assert a.dtype == np.float32
    assert _ulps_from_exact_tanh(x, a[0]).max() <= 3.0
    assert np.abs(a).max() <= 1.0  # never overshoots: 1 - a^2 (tanh's slope) stays >= 0
    np.testing.assert_array_equal(a[0], -_act_forward("tanh", -x.reshape(1, -1), 0.0, np.zeros(0, np.float32))[0])


def test_float32_tanh_special_values():
    x = np.array([[0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45]], np.float32)
    a = _act_forward("tanh", x, 0.0, np.zeros(0, np.float32))
    np.testing.assert_array_equal(a[0, :4], [0.0, -0.0, 1.0, -1.0])
    assert np.signbit(a[0, 1]) and not np.signbit(a[0, 0])
    assert np.isnan(a[0, 4])  # NaN propagates, so a diverging network is still caught
    assert a[0, 5] == x[0, 5]


def test_float64_tanh_is_libm_tanh():
    x = np.linspace(-20, 20, 4001).reshape(1, -1)
    np.testing.assert_array_equal(_act_forward("tanh", x, 0.0, np.zeros(0))[0], [math.tanh(v) for v in x[0]])


@pytest.mark.parametrize("k", [2, 3])
def test_maxout_forward_backward(k):
    B, n = 3, 4
    z = _z((B, n * k), seed=k)
    a = np.full((B, n), np.nan)
    arg = np.full((B, n), -1, dtype=np.int64)
    A.maxout_forward(z, a, arg)
    pieces = z.reshape(B, n, k)  # unit j owns columns j*k .. j*k+k-1
    np.testing.assert_array_equal(a, pieces.max(axis=2))
    np.testing.assert_array_equal(arg, pieces.argmax(axis=2))
    dout = np.random.default_rng(2).normal(size=(B, n))
    dz = np.full_like(z, np.nan)
    A.maxout_backward(dout, arg, dz)
    expected = np.zeros((B, n, k))
    np.put_along_axis(expected, arg[..., None], dout[..., None], axis=2)
    np.testing.assert_array_equal(dz, expected.reshape(B, n * k))


def test_maxout_ties_go_to_the_first_piece():
    z = np.array([[0.5, 0.5, 0.2, -1.0, -1.0, -1.0]])  # two units of 3 pieces
    a = np.empty((1, 2))
    arg = np.empty((1, 2), dtype=np.int64)
    A.maxout_forward(z, a, arg)
    np.testing.assert_array_equal(a, [[0.5, -1.0]])
    np.testing.assert_array_equal(arg, [[0, 0]])
    dz = np.full((1, 6), 9.0)
    A.maxout_backward(np.array([[2.0, 3.0]]), arg, dz)
    np.testing.assert_array_equal(dz, [[2.0, 0.0, 0.0, 3.0, 0.0, 0.0]])


# ----------------------------------------------------------------------------------------
# dropout
# ----------------------------------------------------------------------------------------


MODES = list(RG.DROPOUT_MODES)


@pytest.mark.parametrize("keep", [0.5, 0.8, 0.2])
def test_dropout_mask_statistics(keep):
    """Keep fraction within 4 sigma of keep over 20000 draws; masks are 0/1 and fresh per call."""
    shape = (100, 200)
    x = np.ones(shape)
    out = np.empty(shape)
    mask = np.empty(shape)
    rng = np.random.default_rng(7)
    RG.dropout_forward(x, out, mask, keep, RG.INVERTED, True, rng)
    assert set(np.unique(mask)) == {0.0, 1.0}
    assert abs(mask.mean() - keep) < 4 * _mask_sigma(keep, mask.size)
    # the rows and the columns are not degenerate (one draw per element, not per row / column)
    assert 0 < mask.sum(axis=1).min() and mask.sum(axis=1).max() < shape[1]
    first = mask.copy()
    RG.dropout_forward(x, out, mask, keep, RG.INVERTED, True, rng)
    assert abs(mask.mean() - keep) < 4 * _mask_sigma(keep, mask.size)
    agree = np.mean(first == mask)  # independent draws agree with probability keep^2 + (1-keep)^2
    assert abs(agree - (keep**2 + (1 - keep) ** 2)) < 4 * 0.5 / math.sqrt(mask.size)
    RG.dropout_forward(x, out, mask, keep, RG.INVERTED, True, np.random.default_rng(7))
    np.testing.assert_array_equal(mask, first)  # same seed, same mask


@pytest.mark.parametrize("mode", MODES)
def test_dropout_modes_forward_backward(mode):
    code = RG.DROPOUT_MODES[mode]
    keep = 0.6
    x = _z((5, 4), seed=3)
    out = np.full_like(x, np.nan)
    mask = np.full_like(x, np.nan)
    RG.dropout_forward(x, out, mask, keep, code, True, np.random.default_rng(4))
    assert set(np.unique(mask)) <= {0.0, 1.0} and 0 < mask.sum() < mask.size
    train_scale = 1 / keep if mode == "inverted" else 1.0
    np.testing.assert_allclose(out, x * mask * train_scale, rtol=1e-15)
    dout = np.random.default_rng(5).normal(size=x.shape)
    dx = np.full_like(x, np.nan)
    RG.dropout_backward(dout, mask, keep, code, True, dx)
    np.testing.assert_allclose(dx, dout * mask * train_scale, rtol=1e-15)  # the train-mode gradient

    train_mask = mask.copy()
    RG.dropout_forward(x, out, mask, keep, code, False, np.random.default_rng(4))
    np.testing.assert_array_equal(mask, train_mask)  # eval leaves the last training mask alone
    eval_scale = keep if mode == "vanilla" else 1.0
    np.testing.assert_allclose(out, x * eval_scale, rtol=1e-15)
    RG.dropout_backward(dout, mask, keep, code, False, dx)
    np.testing.assert_allclose(dx, dout * eval_scale, rtol=1e-15)  # the eval-mode gradient


# ----------------------------------------------------------------------------------------
# batchnorm
# ----------------------------------------------------------------------------------------


def _bn_inputs(seed=8, B=5, n=3):
    rng = np.random.default_rng(seed)
    z = rng.normal(1.0, 2.0, size=(B, n))
    gamma = 1.0 + rng.normal(0.0, 0.2, n)
    beta = rng.normal(0.0, 0.2, n)
    rm = rng.normal(0.0, 0.3, n)
    rv = rng.uniform(0.5, 2.0, n)
    return z, gamma, beta, rm, rv


def _bn_forward(z, gamma, beta, rm, rv, train, update, eps=1e-5, momentum=0.9):
    out = np.full_like(z, np.nan)
    xhat = np.full_like(z, np.nan)
    inv_std = np.full(z.shape[1], np.nan)
    RG.batchnorm_forward(z, gamma, beta, out, xhat, inv_std, rm, rv, eps, momentum, train, update)
    return out, xhat, inv_std


@pytest.mark.parametrize("update", [True, False])
def test_batchnorm_train_forward(update):
    z, gamma, beta, rm, rv = _bn_inputs()
    rm0, rv0 = rm.copy(), rv.copy()
    out, xhat, inv_std = _bn_forward(z, gamma, beta, rm, rv, True, update, momentum=0.8)
    mu, var = z.mean(axis=0), z.var(axis=0)  # biased variance
    np.testing.assert_allclose(inv_std, 1 / np.sqrt(var + 1e-5), rtol=1e-13)
    np.testing.assert_allclose(xhat, (z - mu) / np.sqrt(var + 1e-5), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(out, gamma * xhat + beta, rtol=1e-13, atol=1e-14)
    if update:
        np.testing.assert_allclose(rm, 0.8 * rm0 + 0.2 * mu, rtol=1e-13)
        np.testing.assert_allclose(rv, 0.8 * rv0 + 0.2 * var, rtol=1e-13)
    else:
        np.testing.assert_array_equal(rm, rm0)
        np.testing.assert_array_equal(rv, rv0)


def test_batchnorm_eval_forward_uses_running_stats():
    z, gamma, beta, rm, rv = _bn_inputs()
    rm0, rv0 = rm.copy(), rv.copy()
    out, xhat, inv_std = _bn_forward(z, gamma, beta, rm, rv, False, True)
    np.testing.assert_allclose(out, gamma * (z - rm0) / np.sqrt(rv0 + 1e-5) + beta, rtol=1e-13)
    np.testing.assert_array_equal(rm, rm0)  # eval never updates, even if asked to
    np.testing.assert_array_equal(rv, rv0)


@pytest.mark.parametrize("train", [True, False])
def test_batchnorm_backward(train):
    z, gamma, beta, rm, rv = _bn_inputs(seed=9)
    out, xhat, inv_std = _bn_forward(z, gamma, beta, rm.copy(), rv.copy(), train, False)
    G = np.random.default_rng(10).normal(size=z.shape)  # loss = sum(out * G)
    dz = np.full_like(z, np.nan)
    dgamma = np.full(z.shape[1], np.nan)
    dbeta = np.full(z.shape[1], np.nan)
    RG.batchnorm_backward(G, xhat, inv_std, gamma, dz, dgamma, dbeta, train)
    np.testing.assert_allclose(dbeta, G.sum(axis=0), rtol=1e-13)
    np.testing.assert_allclose(dgamma, (G * xhat).sum(axis=0), rtol=1e-12)
    dxhat = G * gamma
    if train:
        expected = (dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).mean(axis=0)) * inv_std
    else:
        expected = dxhat * inv_std
    np.testing.assert_allclose(dz, expected, rtol=1e-10, atol=1e-13)

    def loss(zz, gg=gamma, bb=beta):
        return float(np.sum(_bn_forward(zz, gg, bb, rm.copy(), rv.copy(), train, False)[0] * G))

    for arr, grad in ((z, dz), (gamma, dgamma), (beta, dbeta)):
        numeric = np.zeros_like(arr)
        for ix in np.ndindex(arr.shape):
            old = arr[ix]
            arr[ix] = old + H
            fp = loss(z)
            arr[ix] = old - H
            fm = loss(z)
            arr[ix] = old
            numeric[ix] = (fp - fm) / (2 * H)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


# ----------------------------------------------------------------------------------------
# losses
# ----------------------------------------------------------------------------------------


def _scores(seed=11, B=4, C=3):
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 1.5, size=(B, C)), rng.integers(0, C, size=B)


def _numpy_loss(name, s, y):
    B, C = s.shape
    t = np.eye(C)[y]
    if name == "softmax":
        m = s.max(axis=1, keepdims=True)
        lse = np.log(np.exp(s - m).sum(axis=1)) + m[:, 0]
        return float(np.mean(lse - s[np.arange(B), y]))
    if name == "mse":
        return float(np.mean((s - t) ** 2))
    margins = np.maximum(0.0, s - s[np.arange(B), y][:, None] + 1.0)
    margins[np.arange(B), y] = 0.0
    return float(margins.sum(axis=1).mean())


_PLAIN_LOSS = LS.plain_loss  # the single-label loss (loss_forward_backward also takes mixup's y2, lam)


def _kernel_loss(name, s, y):
    d = np.full_like(s, np.nan)
    loss, correct = _PLAIN_LOSS(LS.LOSS_CODES[name], s, y, d)
    return loss, correct, d


@pytest.mark.parametrize("name", V.names(V.LOSSES))
def test_loss_values_and_gradients(name):
    s, y = _scores()
    if name == "hinge":  # keep margins away from the kink at 0
        assert np.min(np.abs(s - s[np.arange(4), y][:, None] + 1.0)) > 1e-3
    loss, correct, d = _kernel_loss(name, s, y)
    assert loss == pytest.approx(_numpy_loss(name, s, y), rel=1e-13)
    assert correct == int(np.sum(s.argmax(axis=1) == y))
    numeric = np.zeros_like(s)
    for ix in np.ndindex(s.shape):
        sp, sm = s.copy(), s.copy()
        sp[ix] += H
        sm[ix] -= H
        numeric[ix] = (_kernel_loss(name, sp, y)[0] - _kernel_loss(name, sm, y)[0]) / (2 * H)
    np.testing.assert_allclose(d, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", V.names(V.LOSSES))
def test_loss_with_mixup_weights_is_the_blend(name):
    """loss_forward_backward(code, s, y, y2, lam, d): row i counts lam[i] for y[i], 1 - lam[i] for y2[i]."""
    s, y = _scores(seed=20)
    y2 = (y + 1) % s.shape[1]
    lam = np.array([1.0, 0.3, 0.75, 0.5])
    d = np.full_like(s, np.nan)
    loss, correct = LS.loss_forward_backward(LS.LOSS_CODES[name], s, y, y2, lam, d)
    _, c1, d1 = _kernel_loss(name, s, y)
    rows = []
    for i in range(4):  # per-row single-label losses, from the plain kernel on one row
        a = _kernel_loss(name, s[i:i + 1], y[i:i + 1])
        b = _kernel_loss(name, s[i:i + 1], y2[i:i + 1])
        rows.append((a, b))
    expected = sum(lam[i] * a[0] + (1 - lam[i]) * b[0] for i, (a, b) in enumerate(rows)) / 4
    assert loss == pytest.approx(expected, rel=1e-13)
    assert correct == c1  # accuracy is w.r.t. y
    for i, (a, b) in enumerate(rows):
        np.testing.assert_allclose(d[i], (lam[i] * a[2][0] + (1 - lam[i]) * b[2][0]) / 4, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(d[0], d1[0], rtol=1e-13)  # lam = 1: the plain loss's row


def test_loss_details():
    # first max wins for accuracy
    s = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0]])
    assert _kernel_loss("mse", s, np.array([0, 1]))[1] == 2
    assert _kernel_loss("mse", s, np.array([1, 2]))[1] == 0
    # softmax: max-shifted, finite for huge scores, log C at equal scores
    s, y = _scores()
    base = _kernel_loss("softmax", s, y)
    big = _kernel_loss("softmax", s + 1000.0, y)
    assert big[0] == pytest.approx(base[0], rel=1e-9)
    np.testing.assert_allclose(big[2], base[2], rtol=1e-9, atol=1e-12)
    assert _kernel_loss("softmax", np.zeros((2, 5)), np.array([1, 3]))[0] == pytest.approx(math.log(5), rel=1e-14)
    # hinge: a margin of exactly 0 is not a violation; every dscores row sums to 0
    s = np.array([[2.0, 1.0, 1.5]])
    loss, _, d = _kernel_loss("hinge", s, np.array([0]))  # margins 0 (exactly) and 0.5
    assert loss == 0.5 and list(d[0]) == [-1.0, 0.0, 1.0]
    loss, _, d = _kernel_loss("hinge", s, np.array([2]))  # margins 1.5 and 0.5
    assert loss == 2.0 and list(d[0]) == [1.0, 1.0, -2.0]


# ----------------------------------------------------------------------------------------
# dense and dropconnect
# ----------------------------------------------------------------------------------------


def _dense_inputs(seed=12, B=4, n_in=3, n_out=5):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, n_in)), rng.normal(size=(n_in, n_out)), rng.normal(size=n_out)


def test_dense_forward_backward():
    x, w, b = _dense_inputs()
    out = np.full((4, 5), np.nan)
    DN.dense_forward(x, w, b, out)
    np.testing.assert_allclose(out, x @ w + b, rtol=1e-13)
    dout = np.random.default_rng(13).normal(size=(4, 5))
    dx, dw, db = np.full_like(x, np.nan), np.full_like(w, np.nan), np.full_like(b, np.nan)
    DN.dense_backward(dout, x, w, dx, dw, db, True, False, np.empty(dx.size, dx.dtype))
    np.testing.assert_allclose(dx, dout @ w.T, rtol=1e-13)
    np.testing.assert_allclose(dw, x.T @ dout, rtol=1e-13)
    np.testing.assert_allclose(db, dout.sum(axis=0), rtol=1e-13)
    # accumulate: dx += dout @ w.T (a node read by two ops)
    prior = np.random.default_rng(14).normal(size=x.shape)
    dx = prior.copy()
    DN.dense_backward(dout, x, w, dx, dw, db, True, True, np.empty(dx.size, dx.dtype))
    np.testing.assert_allclose(dx, prior + dout @ w.T, rtol=1e-13)
    # need_dx False: dx left alone, dw / db still written
    dx = np.full_like(x, 7.0)
    dw[:] = np.nan
    DN.dense_backward(dout, x, w, dx, dw, db, False, False, np.empty(dx.size, dx.dtype))
    np.testing.assert_array_equal(dx, 7.0)
    np.testing.assert_allclose(dw, x.T @ dout, rtol=1e-13)


@pytest.mark.parametrize("keep", [0.7, 0.3])
def test_dropconnect_weights_statistics_and_scaling(keep):
    rng = np.random.default_rng(15)
    w = rng.normal(size=(100, 200))
    mask = np.full_like(w, np.nan)
    w_eff = np.full_like(w, np.nan)
    DN.dropconnect_weights(w, mask, w_eff, keep, rng, True)
    assert set(np.unique(mask)) == {0.0, 1.0}
    assert abs(mask.mean() - keep) < 4 * _mask_sigma(keep, mask.size)
    np.testing.assert_allclose(w_eff, w * mask / keep, rtol=1e-15)
    first = mask.copy()
    DN.dropconnect_weights(w, mask, w_eff, keep, rng, True)
    assert not np.array_equal(first, mask)  # one fresh mask per call
    DN.dropconnect_weights(w, mask, w_eff, keep, rng, False)  # eval: W itself
    np.testing.assert_array_equal(mask, 1.0)
    np.testing.assert_array_equal(w_eff, w)


def test_dense_with_dropconnect_matches_masked_weights():
    """The driver's train path: dense on W*M/q, then dW through the mask."""
    x, w, b = _dense_inputs(seed=16)
    keep = 0.6
    mask = np.empty_like(w)
    w_eff = np.empty_like(w)
    DN.dropconnect_weights(w, mask, w_eff, keep, np.random.default_rng(17), True)
    assert 0 < mask.sum() < mask.size
    out = np.empty((4, 5))
    DN.dense_forward(x, w_eff, b, out)
    np.testing.assert_allclose(out, x @ (w * mask / keep) + b, rtol=1e-13)
    dout = np.random.default_rng(18).normal(size=(4, 5))
    dx, dw, db = np.empty_like(x), np.empty_like(w), np.empty_like(b)
    DN.dense_backward(dout, x, w_eff, dx, dw, db, True, False, np.empty(dx.size, dx.dtype))
    DN.dropconnect_grad(dw, mask, keep)
    np.testing.assert_allclose(dw, (x.T @ dout) * mask / keep, rtol=1e-13)
    np.testing.assert_allclose(dx, dout @ (w * mask / keep).T, rtol=1e-13)
    # finite differences of sum(out * dout) w.r.t. the raw w, through the same mask
    numeric = np.zeros_like(w)
    for ix in np.ndindex(w.shape):
        for sign in (1, -1):
            wp = w.copy()
            wp[ix] += sign * H
            o = np.empty((4, 5))
            DN.dense_forward(x, wp * mask / keep, b, o)
            numeric[ix] += sign * float(np.sum(o * dout)) / (2 * H)
    np.testing.assert_allclose(dw, numeric, rtol=1e-6, atol=1e-9)


# ----------------------------------------------------------------------------------------
# penalties and optimizer update
# ----------------------------------------------------------------------------------------


def _flat_problem(seed=19):
    """6 penalised entries (a 2x3 "W1") then 4 free ones (a "b1")."""
    rng = np.random.default_rng(seed)
    params = rng.normal(size=10)
    params[2] = 0.0  # sign(0) = 0: no l1 push
    grads = [rng.normal(size=10) for _ in range(3)]
    reg = np.array([1] * 6 + [0] * 4, dtype=np.uint8)
    return params, grads, reg


def _split(flat):
    return {"W1": flat[:6].reshape(2, 3), "b1": flat[6:]}


def test_penalty_and_sq_norm():
    params, grads, reg = _flat_problem()
    l1, l2 = 0.03, 0.2
    pen, sq = OP.penalty_and_sq_norm(params, grads[0], reg, l1, l2)
    w = params[:6]
    assert pen == pytest.approx(0.5 * l2 * np.sum(w * w) + l1 * np.sum(np.abs(w)), rel=1e-13)
    total = grads[0] + reg * (l2 * params + l1 * np.sign(params))
    assert sq == pytest.approx(float(np.sum(total**2)), rel=1e-13)
    for i in range(10):
        assert OP.penalised_grad(grads[0][i], params[i], reg[i], l1, l2) == pytest.approx(total[i], rel=1e-14)


@pytest.mark.parametrize("name", list(OP.OPTIMIZER_CODES))
@pytest.mark.parametrize("wd,clip,l1,l2", [(0.0, 0.0, 0.0, 0.0), (0.1, 1.0, 0.02, 0.05)])
def test_optimizer_update_vs_reference(name, wd, clip, l1, l2):
    params, grads_seq, reg = _flat_problem()
    hyper_cfg = OptimizerConfig(name, momentum=0.8, beta1=0.85, beta2=0.99, eps=1e-7, weight_decay=wd,
                                l1=l1, l2=l2, clip_norm=clip)
    hyper = hyper_cfg.hyper()
    p = params.copy()
    m1, m2, last = np.zeros(10), np.zeros(10), np.full(10, np.nan)
    ref_p, ref_state = _split(params.copy()), {}
    for t, (g, lr) in enumerate(zip(grads_seq, [0.1, 0.05, 0.2]), start=1):
        total = g + reg * (l2 * p + l1 * np.sign(p))
        norm = float(np.sqrt(np.sum(total**2)))
        scale = clip / norm if clip > 0 and norm > clip else 1.0
        if clip:
            assert scale < 1.0
        before = p.copy()
        assert OP.optimizer_update(hyper_cfg.code, p, g, reg, hyper, scale, lr, t, m1, m2, last, True)
        np.testing.assert_allclose(last, p - before, rtol=1e-12, atol=1e-16)  # recorded update
        ref_p, ref_state = reference_optimizer_step(name, ref_p, _split(total), ref_state, lr, momentum=0.8,
                                                    beta1=0.85, beta2=0.99, eps=1e-7, weight_decay=wd,
                                                    clip_norm=clip)
        np.testing.assert_allclose(p[:6], ref_p["W1"].ravel(), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(p[6:], ref_p["b1"], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", list(OP.OPTIMIZER_CODES))
@pytest.mark.parametrize("penalised", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_recording_the_update_does_not_change_it(name, penalised, dtype):
    """record=True gives the same parameters and state, bit for bit, and records exactly their change."""
    rng = np.random.default_rng(7)
    n = 1000  # long enough for the vectorised loop body and its remainder
    params = rng.normal(size=n).astype(dtype)
    reg = rng.random(n) < 0.8
    cfg = OptimizerConfig(name, weight_decay=0.01, l1=0.01 if penalised else 0.0, l2=0.02 if penalised else 0.0)
    runs = {}
    for record in (False, True):
        p, m1, m2 = params.copy(), np.zeros(n, dtype), np.zeros(n, dtype)
        last = np.full(n, np.nan, dtype)
        for t in range(1, 4):
            g = np.random.default_rng(t).normal(size=n).astype(dtype)
            before = p.copy()
            assert OP.optimizer_update(cfg.code, p, g, reg, cfg.hyper(), 0.5, 0.1, t, m1, m2, last, record)
        runs[record] = (p, m1, m2)
        if record:
            np.testing.assert_array_equal(last, p - before)
        else:
            assert np.isnan(last).all()
    for a, b in zip(runs[False], runs[True]):
        np.testing.assert_array_equal(a, b)


def test_optimizer_update_reports_non_finite():
    params, grads, reg = _flat_problem()
    hyper = OptimizerConfig("sgd").hyper()
    last = np.zeros(10)
    assert not OP.optimizer_update(OP.SGD, params, grads[0], reg, hyper, 1.0, np.inf, 1, np.zeros(10), np.zeros(10),
                                   last, False)
    np.testing.assert_array_equal(last, 0.0)  # record=False leaves last_update alone


def test_flag_passes_constants_through_as_plain_bools():
    from lab.engine.kernels._jit import flag, jit

    @jit
    def both():
        return flag(True), flag(False), flag(3 > 2)

    assert both() == (True, False, True)
    if not numba.config.DISABLE_JIT:  # one compiled version for a constant and a variable
        from numba import types

        @jit
        def callee(x):
            return not x

        @jit
        def caller(x):
            return callee(flag(True)), callee(flag(False)), callee(x)

        assert caller(True) == (False, True, False)
        assert [sig[0] for sig in callee.signatures] == [types.boolean]


@pytest.mark.parametrize("n", [0, 1, 2, 3, 64, 2048, 70_001])
def test_shuffle_is_numpys_shuffle(n):
    """Same permutation as numpy's Generator.shuffle from the same state, and the same state after."""
    ours, theirs = np.random.default_rng([n, 5]), np.random.default_rng([n, 5])
    a, b = np.arange(n), np.arange(n)
    for _ in range(3):  # consecutive epochs
        shuffle(ours, a)
        theirs.shuffle(b)
        np.testing.assert_array_equal(a, b)
    assert ours.bit_generator.state == theirs.bit_generator.state


# ----------------------------------------------------------------------------------------
# the driver's training loop and evaluation (train_steps, evaluate)
# ----------------------------------------------------------------------------------------


def _tiny_trainer(seed, batch=4, dropout=0.3):
    arch = Architecture(3, 3, (4,), "tanh", batchnorm=True, dropout=dropout)
    net = Network(arch, np.float64, l2=0.01)
    net.initialize("xavier", np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    X = rng.normal(size=(10, 3))
    y = rng.integers(0, 3, size=10)
    config = OptimizerConfig("momentum", l2=0.01, clip_norm=5.0)
    return Trainer(net, X, y, batch, config, np.random.default_rng(seed + 2))


def test_train_steps_chunking_does_not_change_the_result():
    """Batches, masks and optimizer state carry over between calls (10 rows, batch 4: epochs wrap)."""
    lrs = np.array([0.1, 0.2, 0.05, 0.1, 0.3, 0.1, 0.2])
    one = _tiny_trainer(0)
    rec = one.run(lrs)
    two = _tiny_trainer(0)
    recs = [two.run(lrs[:2]), two.run(lrs[2:3]), two.run(lrs[3:])]
    np.testing.assert_array_equal(np.concatenate([r.loss for r in recs]), rec.loss)
    np.testing.assert_array_equal(np.concatenate([r.grad_norm for r in recs]), rec.grad_norm)
    np.testing.assert_array_equal(two.network.params, one.network.params)
    np.testing.assert_array_equal(two.network.state, one.network.state)
    assert len(rec.loss) == 7 and not rec.diverged and np.all(np.isfinite(rec.loss))
    assert np.all((rec.train_acc >= 0) & (rec.train_acc <= 1))
    assert not np.array_equal(one.network.params, _tiny_trainer(0).network.params)  # it did train


def test_train_steps_stop_when_diverging():
    trainer = _tiny_trainer(1)
    rec = trainer.run(np.array([0.1, np.inf, 0.1, 0.1]))
    assert rec.diverged and len(rec.loss) == 2  # the diverging step is counted, then it stops


def test_evaluate_in_chunks():
    trainer = _tiny_trainer(2, dropout=0.0)
    trainer.run(np.array([0.1, 0.1]))
    net = trainer.network
    loss, acc = trainer.evaluate(trainer.X, trainer.y, chunk=4)  # chunks 4, 4, 2
    scores = net.forward(trainer.X)
    m = scores.max(axis=1, keepdims=True)
    ce = np.log(np.exp(scores - m).sum(axis=1)) + m[:, 0] - scores[np.arange(10), trainer.y]
    w = np.concatenate([v.ravel() for k, v in net.parameters() if k.startswith("W")])
    assert loss == pytest.approx(ce.mean() + 0.5 * 0.01 * np.sum(w * w), rel=1e-12)
    assert acc == pytest.approx(np.mean(scores.argmax(axis=1) == trainer.y))
    assert all(math.isnan(v) for v in trainer.evaluate(trainer.X[:0], trainer.y[:0]))  # empty set


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,n,k", [(1, 256, 7), (8, 300, 40), (16, 1024, 64), (32, 256, 100),  # transposed
                                   (33, 300, 40), (8, 255, 40), (64, 100, 100)])  # direct
def test_the_input_gradient_product_matches_numpy_either_way_it_is_computed(dtype, m, n, k):
    """dx = dout @ W.T: at batches of 32 rows or fewer and 256 columns or more it is computed
    as (W @ dout.T).T in the workspace's scratch (blas.product_nt), otherwise directly."""
    from lab.engine.kernels.blas import product_nt

    rng = np.random.default_rng(m * 1000 + n + k)
    dout = rng.normal(size=(m, k)).astype(dtype)
    w = rng.normal(size=(n, k)).astype(dtype)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    expected = dout.astype(np.float64) @ w.astype(np.float64).T
    for scratch in (np.full(m * n, np.nan, dtype), np.empty(0, dtype)):  # no room: the direct product
        out = np.full((m, n), np.nan, dtype)
        product_nt(dout, w, out, False, scratch)
        np.testing.assert_allclose(out, expected, **tol)
        prior = rng.normal(size=(m, n)).astype(dtype)
        out = prior.copy()
        product_nt(dout, w, out, True, scratch)
        np.testing.assert_allclose(out, prior + expected, **tol)
