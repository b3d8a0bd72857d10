"""Weight initialisation (lab.engine.init) and Network.initialize."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lab.engine.architecture import Architecture
from lab.engine.init import INIT_SCHEMES, init_std, init_weight
from lab.engine.network import Network

REL = 0.02  # sample std of ~1e6 draws is within ~0.1% of the true one; 2% is a generous bound


def draw(scheme, shape, scale=None, seed=0):
    return init_weight(scheme, shape, np.random.default_rng(seed), scale)


# --------------------------------------------------------------------------- statistics


@pytest.mark.parametrize("gain", [None, 1.0, 0.5])
@pytest.mark.parametrize("scheme,shape,formula", [
    ("kaiming", (1024, 1024), lambda fi, fo: math.sqrt(2.0 / fi)),
    ("kaiming", (1024, 512), lambda fi, fo: math.sqrt(2.0 / fi)),
    ("xavier", (1024, 1024), lambda fi, fo: 1.0 / math.sqrt(fi)),
    ("xavier", (256, 2048), lambda fi, fo: 1.0 / math.sqrt(fi)),
    ("lecun", (1024, 1024), lambda fi, fo: 1.0 / math.sqrt(fi)),
    ("lecun", (2048, 256), lambda fi, fo: 1.0 / math.sqrt(fi)),
    ("glorot", (1024, 512), lambda fi, fo: math.sqrt(2.0 / (fi + fo))),
    ("glorot", (256, 2048), lambda fi, fo: math.sqrt(2.0 / (fi + fo))),
])
def test_gaussian_scheme_std(scheme, shape, formula, gain):
    w = draw(scheme, shape, gain)
    g = 1.0 if gain is None else gain
    want = g * formula(*shape)
    assert w.shape == shape and w.dtype == np.float64
    assert abs(w.std() / want - 1) < REL
    assert abs(w.mean()) < 5 * want / math.sqrt(w.size)  # centred
    assert init_std(scheme, *shape, gain) == pytest.approx(want, rel=1e-12)


def test_glorot_differs_from_xavier_when_fans_differ():
    fi, fo = 1024, 512
    assert abs(draw("glorot", (fi, fo)).std() - math.sqrt(2 / (fi + fo))) < REL * math.sqrt(2 / (fi + fo))
    assert abs(draw("xavier", (fi, fo)).std() - 1 / math.sqrt(fi)) < REL / math.sqrt(fi)
    assert math.sqrt(2 / (fi + fo)) / (1 / math.sqrt(fi)) > 1.1  # the two are distinguishable here


@pytest.mark.parametrize("scale", [None, 0.01, 0.5, 3.0])
def test_normal_std_is_scale(scale):
    w = draw("normal", (1024, 1024), scale)
    s = 0.01 if scale is None else scale  # documented default
    assert abs(w.std() / s - 1) < REL
    assert abs(w.mean()) < 5 * s / 1024
    assert init_std("normal", 1024, 1024, scale) == s


@pytest.mark.parametrize("scale", [None, 0.05, 1.0])
def test_uniform_bounds_and_std(scale):
    w = draw("uniform", (1024, 1024), scale)
    a = 0.05 if scale is None else scale
    assert w.min() >= -a and w.max() <= a
    assert w.min() < -a * 0.999 and w.max() > a * 0.999  # the whole interval is used
    assert abs(w.std() / (a / math.sqrt(3)) - 1) < REL
    assert init_std("uniform", 1024, 1024, scale) == pytest.approx(a / math.sqrt(3))


def test_zeros_and_constant():
    assert np.array_equal(draw("zeros", (30, 20)), np.zeros((30, 20)))
    assert np.array_equal(draw("zeros", (30, 20), 5.0), np.zeros((30, 20)))  # scale ignored
    assert np.array_equal(draw("constant", (30, 20)), np.full((30, 20), 0.1))  # documented default
    assert np.array_equal(draw("constant", (30, 20), 0.7), np.full((30, 20), 0.7))
    assert init_std("zeros", 30, 20) == 0.0 and init_std("constant", 30, 20) == 0.0


@pytest.mark.parametrize("gain", [None, 1.0, 2.0])
@pytest.mark.parametrize("shape", [(512, 128), (128, 512), (256, 256)])
def test_orthogonal(shape, gain):
    w = draw("orthogonal", shape, gain)
    g = 1.0 if gain is None else gain
    fi, fo = shape
    assert w.shape == shape
    gram = w.T @ w if fi >= fo else w @ w.T  # tall: orthonormal columns; wide: orthonormal rows
    np.testing.assert_allclose(gram, g * g * np.eye(min(shape)), atol=1e-10)
    assert abs(w.std() / (g / math.sqrt(max(shape))) - 1) < 0.05
    assert init_std("orthogonal", fi, fo, gain) == pytest.approx(g / math.sqrt(max(shape)))


def test_orthogonal_is_not_a_fixed_matrix():
    a, b = draw("orthogonal", (64, 64), seed=1), draw("orthogonal", (64, 64), seed=2)
    assert not np.allclose(a, b)


@pytest.mark.parametrize("scheme", INIT_SCHEMES)
def test_same_seed_same_weights(scheme):
    a = draw(scheme, (40, 30), seed=7)
    b = draw(scheme, (40, 30), seed=7)
    np.testing.assert_array_equal(a, b)
    if scheme not in ("zeros", "constant"):
        assert not np.array_equal(a, draw(scheme, (40, 30), seed=8))


def test_unknown_scheme_raises():
    with pytest.raises(ValueError):
        init_weight("he", (4, 4), np.random.default_rng(0))


# --------------------------------------------------------------------------- Network.initialize


def _net(**kw) -> Network:
    arch = Architecture(input_dim=kw.pop("input_dim", 5), classes=kw.pop("classes", 3), **kw)
    return Network(arch, np.float64)


@pytest.mark.parametrize("bias", [0.0, 0.01, -0.3])
def test_initialize_biases_gamma_beta_slope(bias):
    net = _net(hidden=(8, 6), activation="prelu", batchnorm=True)
    net.params[:] = np.nan  # whatever was there must be overwritten
    net.initialize("kaiming", np.random.default_rng(0), bias=bias)
    names = [n for n, _ in net.parameters()]
    assert names == ["W1", "b1", "gamma1", "beta1", "slope1", "W2", "b2", "gamma2", "beta2", "slope2", "W3", "b3"]
    for name, value in net.parameters():
        if name.startswith("b") and not name.startswith("beta"):
            np.testing.assert_array_equal(value, np.full(value.shape, bias))
        elif name.startswith("gamma"):
            np.testing.assert_array_equal(value, np.ones(value.shape))
        elif name.startswith("beta"):
            np.testing.assert_array_equal(value, np.zeros(value.shape))
        elif name.startswith("slope"):
            np.testing.assert_array_equal(value, np.full(value.shape, 0.25))
        else:
            assert name.startswith("W") and np.all(np.isfinite(value)) and value.std() > 0
    assert np.all(np.isfinite(net.params))


def test_initialize_draws_each_W_with_its_scheme_and_fans():
    net = _net(input_dim=300, hidden=(400, 200), classes=50)
    net.initialize("kaiming", np.random.default_rng(3), scale=1.5)
    for name, (fi, fo) in {"W1": (300, 400), "W2": (400, 200), "W3": (200, 50)}.items():
        w = net.param(name)
        assert w.shape == (fi, fo)
        assert abs(w.std() / (1.5 * math.sqrt(2 / fi)) - 1) < 0.05


def test_initialize_resets_running_stats():
    net = _net(hidden=(4,), batchnorm=True)
    net.state[:] = 7.0
    net.initialize("xavier", np.random.default_rng(0))
    rs = net.running_stats()
    np.testing.assert_array_equal(rs["mean1"], np.zeros(4))
    np.testing.assert_array_equal(rs["var1"], np.ones(4))


@pytest.mark.parametrize("batchnorm", [False, True])
@pytest.mark.parametrize("zero_init", [False, True])
def test_residual_zero_init_zeroes_exactly_second_layer_of_blocks(zero_init, batchnorm):
    # hidden[0] projects; blocks are layers (2, 3) and (4, 5); 6 is the output
    net = _net(hidden=(8, 8, 8, 8, 8), residual=True, residual_zero_init=zero_init, batchnorm=batchnorm)
    net.initialize("kaiming", np.random.default_rng(0), bias=0.1)
    for l in range(1, 7):
        w = net.param(f"W{l}")
        if zero_init and l in (3, 5):
            np.testing.assert_array_equal(w, np.zeros_like(w))
        else:
            assert np.count_nonzero(w) == w.size, f"W{l}"
        np.testing.assert_array_equal(net.param(f"b{l}"), 0.1)  # biases are not affected


def test_network_same_seed_same_weights():
    a, b, c = _net(hidden=(7, 5)), _net(hidden=(7, 5)), _net(hidden=(7, 5))
    a.initialize("glorot", np.random.default_rng(11))
    b.initialize("glorot", np.random.default_rng(11))
    c.initialize("glorot", np.random.default_rng(12))
    np.testing.assert_array_equal(a.params, b.params)
    assert not np.array_equal(a.params, c.params)


def test_parameters_are_views_into_flat_buffer():
    net = _net(hidden=(4,))
    net.initialize("kaiming", np.random.default_rng(0))
    net.param("W1")[0, 0] = 123.0
    assert 123.0 in net.params
    assert dict(net.parameters())["W1"][0, 0] == 123.0
