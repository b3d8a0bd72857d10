"""Centred finite differences of the ENGINE's `Network.loss_and_grads`, in float64.

Every test builds an engine network matching a `ReferenceSpec` (tests/reference), copies
random oracle parameters into the engine's parameter views, and nudges those views one
element at a time (tests/gradcheck.py).  Test points are re-drawn until no kink (relu-like
z = 0, maxout ties, hinge margins, l1 at W = 0) is within KINK_MARGIN, as in
tests/test_reference.py.

Train mode draws dropout / dropconnect masks inside the engine from `net._side_rng`; to
finite-difference a train-mode pass the tests re-seed that generator before every call,
so each call draws the same masks (asserted), and also hand `net.last_masks()` to the
oracle.  Batchnorm in train mode has no randomness.

These tests also run with NUMBA_DISABLE_JIT=1 (coverage of the kernel bodies): keep the
networks tiny.
"""

from __future__ import annotations

import numpy as np
import pytest

from lab import vocabulary as V
from lab.engine.architecture import Architecture
from lab.engine.network import Network
from tests.gradcheck import ATOL, assert_grads_match, away_from_kinks, draw_running, eval_numerical_gradient
from tests.reference import ReferenceSpec, init_reference_params, reference_loss_and_grads

B, D, C = 5, 3, 3
ACTIVATIONS = list(V.names(V.public_activations()))
MASK_SEED = 1234



# ----------------------------------------------------------------------------------------
# helpers shared with tests/test_engine_vs_reference.py
# ----------------------------------------------------------------------------------------


def architecture_for(spec: ReferenceSpec, **extra) -> Architecture:
    """The engine Architecture of a ReferenceSpec (penalties go to the Network)."""
    return Architecture(spec.input_dim, spec.classes, tuple(spec.hidden), spec.activation, spec.alpha,
                        spec.maxout_k, spec.batchnorm, spec.bn_eps, spec.bn_momentum, spec.dropout,
                        spec.dropout_mode, spec.dropconnect, spec.residual, loss=spec.loss, **extra)


def set_running(net: Network, running: dict[str, np.ndarray]) -> None:
    """Write batchnorm running statistics {"mean{l}", "var{l}"} into the engine's state."""
    layers = [s.layer for s in net.plan.params if s.role == "gamma"]
    for l, (mean, var) in zip(layers, net._running_views()):
        mean[:] = running[f"mean{l}"]
        var[:] = running[f"var{l}"]
    got = net.running_stats()
    assert sorted(got) == sorted(running)
    for k in running:
        np.testing.assert_array_equal(got[k], np.asarray(running[k], dtype=net.dtype))


def engine_for(spec: ReferenceSpec, params: dict[str, np.ndarray], dtype=np.float64, running=None,
               **extra) -> Network:
    """An engine Network with the oracle's parameters (and running stats) copied in."""
    net = Network(architecture_for(spec, **extra), dtype, l1=spec.l1, l2=spec.l2)
    views = dict(net.parameters())
    assert list(views) == list(params), "engine and oracle parameter names/order differ"
    for name, value in params.items():
        assert views[name].shape == value.shape, name
        views[name][...] = value
    if running is not None:
        set_running(net, running)
    return net


def engine_params(net: Network) -> dict[str, np.ndarray]:
    """The engine's current parameters as float64 copies (what the oracle should see)."""
    return {name: np.array(v, dtype=np.float64) for name, v in net.parameters()}


class EngineCase:
    """An engine network at a kink-free test point, with a loss function of its parameters.

    In train mode `net._side_rng` is re-seeded before every pass, so every pass draws the
    same dropout / dropconnect masks (those of `self.masks`).
    """

    def __init__(self, spec: ReferenceSpec, *, train=False, eval_running=False, seed=0, batch=B,
                 params=None, **extra):
        rng = np.random.default_rng(seed)
        for _ in range(200):
            p = params if params is not None else init_reference_params(spec, rng)
            x = rng.normal(size=(batch, spec.input_dim))
            y = rng.integers(0, spec.classes, size=batch)
            running = draw_running(spec, p, rng) if (spec.batchnorm and eval_running) else None
            self.spec, self.x, self.y, self.train = spec, x, y, train
            self.net = engine_for(spec, p, np.float64, running, **extra)
            self.params, self.running = engine_params(self.net), running
            self.loss, self.grads = self.loss_and_grads()
            self.masks = self.net.last_masks() if train else None
            if away_from_kinks(spec, self.params, x, y, train=train, masks=self.masks, running=running):
                return
        raise AssertionError("could not draw a test point away from the kinks")

    def loss_and_grads(self):
        if self.train:
            self.net._side_rng = np.random.default_rng(MASK_SEED)
        return self.net.loss_and_grads(self.x, self.y, train=self.train)

    def f(self, _=None) -> float:
        return self.loss_and_grads()[0]

    def reference(self):
        return reference_loss_and_grads(self.spec, engine_params(self.net), self.x, self.y, train=self.train,
                                        masks=self.masks, running=self.running)


def engine_gradcheck(spec: ReferenceSpec, *, train=False, eval_running=False, seed=0, check_oracle=True,
                     h=1e-5, **extra) -> EngineCase:
    """Finite differences of the engine's total loss w.r.t. every parameter view."""
    case = EngineCase(spec, train=train, eval_running=eval_running, seed=seed, **extra)
    net = case.net
    names = [name for name, _ in net.parameters()]
    assert len(case.grads) == len(names)
    before_state = net.state.copy()
    for (name, view), analytic in zip(net.parameters(), case.grads):
        numeric = eval_numerical_gradient(case.f, view, h=h)  # view: perturbs the engine's flat buffer
        assert_grads_match(numeric, analytic, name, atol=ATOL * 1e-5 / h)  # round-off grows as 1/h
    np.testing.assert_array_equal(net.state, before_state)  # loss_and_grads never updates running stats
    if train and case.masks:
        # the re-seeded generator really did give every pass the same masks
        case.loss_and_grads()
        for k, m in net.last_masks().items():
            np.testing.assert_array_equal(m, case.masks[k])
    if check_oracle:
        ref_loss, ref_grads, _ = case.reference()
        assert case.loss == pytest.approx(ref_loss, rel=1e-10, abs=1e-12)
        for name, g in zip(names, case.grads):
            np.testing.assert_allclose(g, ref_grads[name], rtol=1e-9, atol=1e-12, err_msg=name)
    return case


def grads_by_name(case: EngineCase) -> dict[str, np.ndarray]:
    return {name: g for (name, _), g in zip(case.net.parameters(), case.grads)}


# ----------------------------------------------------------------------------------------
# activations, losses, penalties
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradcheck_activations(activation):
    engine_gradcheck(ReferenceSpec(D, C, (4, 5), activation=activation))


def test_gradcheck_maxout_three_pieces():
    engine_gradcheck(ReferenceSpec(D, C, (3, 2), activation="maxout", maxout_k=3), seed=2)


@pytest.mark.parametrize("activation", ["leaky_relu", "elu"])
def test_gradcheck_custom_alpha(activation):
    engine_gradcheck(ReferenceSpec(D, C, (4, 5), activation=activation, alpha=0.3), seed=1)


@pytest.mark.parametrize("loss,activation", [("softmax", "tanh"), ("mse", "elu"), ("hinge", "relu"),
                                             ("hinge", "maxout"), ("mse", "prelu")])
def test_gradcheck_losses(loss, activation):
    engine_gradcheck(ReferenceSpec(D, C, (4, 5), activation=activation, loss=loss))


@pytest.mark.parametrize("l1,l2", [(0.05, 0.0), (0.0, 0.1), (0.03, 0.07)])
def test_gradcheck_penalties(l1, l2):
    case = engine_gradcheck(ReferenceSpec(D, C, (4, 5), activation="relu", l1=l1, l2=l2))
    # the penalty is really part of the engine's loss and W gradients, and only of W's
    plain_loss, plain_grads = engine_for(ReferenceSpec(D, C, (4, 5), activation="relu"),
                                         case.params).loss_and_grads(case.x, case.y)
    pen = sum(0.5 * l2 * np.sum(v * v) + l1 * np.sum(np.abs(v)) for k, v in case.params.items() if k[0] == "W")
    assert case.loss - plain_loss == pytest.approx(pen, rel=1e-10)
    for (name, value), g, g0 in zip(case.net.parameters(), case.grads, plain_grads):
        extra = l2 * value + l1 * np.sign(value) if name.startswith("W") else 0.0
        np.testing.assert_allclose(g - g0, extra, rtol=1e-9, atol=1e-14, err_msg=name)


# ----------------------------------------------------------------------------------------
# batchnorm
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["tanh", "prelu", "maxout"])
def test_gradcheck_batchnorm_train(activation):
    spec = ReferenceSpec(D, C, (4, 5), activation=activation, batchnorm=True)
    case = engine_gradcheck(spec, train=True)
    grads = grads_by_name(case)
    for l in (1, 2):  # a bias followed by batch-statistics batchnorm has no effect on the loss
        assert np.max(np.abs(grads[f"b{l}"])) < 1e-12
        assert np.max(np.abs(grads[f"gamma{l}"])) > 1e-6


@pytest.mark.parametrize("activation", ["gelu", "relu", "sigmoid"])
def test_gradcheck_batchnorm_eval(activation):
    spec = ReferenceSpec(D, C, (4, 5), activation=activation, batchnorm=True)
    case = engine_gradcheck(spec, train=False, eval_running=True)
    assert np.max(np.abs(grads_by_name(case)["b1"])) > 1e-6  # running stats are constants: b matters


def test_batchnorm_train_and_eval_gradients_differ():
    """Guards against an engine that ignores `train` in batchnorm's backward pass."""
    spec = ReferenceSpec(D, C, (4, 5), activation="tanh", batchnorm=True)
    case = EngineCase(spec, train=True, eval_running=True, seed=3)
    _, eval_grads = case.net.loss_and_grads(case.x, case.y, train=False)
    assert np.max(np.abs(eval_grads[1])) > 1e-6  # b1 in eval
    assert np.max(np.abs(case.grads[1])) < 1e-12  # b1 in train


# ----------------------------------------------------------------------------------------
# dropout and dropconnect
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [
    "inverted", "vanilla", "vanilla-noscale",
])
def test_gradcheck_dropout_eval(mode):
    engine_gradcheck(ReferenceSpec(D, C, (4, 5), activation="sigmoid", dropout=0.4, dropout_mode=mode),
                     train=False, check_oracle=False)


@pytest.mark.parametrize("mode", V.names(V.DROPOUT_MODES))
def test_gradcheck_dropout_train_fixed_masks(mode):
    spec = ReferenceSpec(D, C, (4, 5), activation="sigmoid", dropout=0.4, dropout_mode=mode)
    case = engine_gradcheck(spec, train=True)
    assert set(case.masks) == {"dropout1", "dropout2"}
    for m in case.masks.values():
        assert set(np.unique(m)) <= {0.0, 1.0}
        assert 0 < m.sum() < m.size  # some kept, some dropped: the masks matter


def test_train_masks_are_fresh_each_pass():
    spec = ReferenceSpec(D, C, (4, 5), activation="tanh", dropout=0.5, dropconnect=0.5)
    case = EngineCase(spec, train=True)
    net = case.net
    net.loss_and_grads(case.x, case.y, train=True)  # not re-seeded: new masks
    first = net.last_masks()
    net.loss_and_grads(case.x, case.y, train=True)
    second = net.last_masks()
    assert set(first) == {"dropout1", "dropout2", "dropconnect1", "dropconnect2"}
    assert all(not np.array_equal(first[k], second[k]) for k in first)


def test_gradcheck_dropconnect_eval():
    spec = ReferenceSpec(D, C, (4, 5), activation="tanh", dropconnect=0.3)
    case = engine_gradcheck(spec, train=False)
    plain_loss, plain_grads = engine_for(ReferenceSpec(D, C, (4, 5), activation="tanh"),
                                         case.params).loss_and_grads(case.x, case.y)
    assert case.loss == plain_loss  # eval uses W itself
    for g, g0 in zip(case.grads, plain_grads):
        np.testing.assert_array_equal(g, g0)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_gradcheck_dropconnect_train_fixed_masks(activation):
    spec = ReferenceSpec(D, C, (4, 5), activation=activation, dropconnect=0.3)
    case = engine_gradcheck(spec, train=True)
    assert set(case.masks) == {"dropconnect1", "dropconnect2"}
    grads = grads_by_name(case)
    dropped = case.masks["dropconnect1"] == 0
    assert dropped.any()
    np.testing.assert_array_equal(grads["W1"][dropped], 0.0)  # a dropped weight gets no gradient


# ----------------------------------------------------------------------------------------
# residual blocks
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["relu", "tanh", "maxout", "prelu"])
def test_gradcheck_residual(activation):
    engine_gradcheck(ReferenceSpec(D, C, (4, 4, 4), activation=activation, residual=True))


@pytest.mark.parametrize("batchnorm", [False, True])
def test_gradcheck_residual_zero_init(batchnorm):
    """`residual_zero_init`: initialize() zeroes every block's second W; the block is the identity."""
    spec = ReferenceSpec(D, C, (4, 4, 4, 4, 4), activation="relu", residual=True, batchnorm=batchnorm)
    net = Network(architecture_for(spec, residual_zero_init=True), np.float64)
    net.initialize("kaiming", np.random.default_rng(5))
    params = engine_params(net)
    for l in (3, 5):
        np.testing.assert_array_equal(params[f"W{l}"], 0.0)
    for l in (1, 2, 4, 6):
        assert np.all(params[f"W{l}"] != 0.0)
    # b = 0 (and beta = 0): every block adds exactly 0 to its input, in the engine's own nodes
    x = np.random.default_rng(6).normal(size=(B, D))
    net.forward(x, train=True)
    ws = net.last_workspace
    first, block1, block2 = (ws.node(layer.out_node) for layer in net.layers[0:5:2])
    assert [layer.index for layer in net.layers[0:5:2]] == [1, 3, 5]
    assert np.abs(first).max() > 0
    np.testing.assert_array_equal(block1, first)
    np.testing.assert_array_equal(block2, first)
    # With batchnorm, W = 0 makes the block's z2 constant over the batch: its batch variance is 0
    # and batchnorm works at the sqrt(eps) scale, where the loss has a large third derivative;
    # a smaller step keeps the centred difference's truncation error (~h**2) below RTOL.
    case = engine_gradcheck(spec, train=batchnorm, params=params, residual_zero_init=True,
                            h=1e-6 if batchnorm else 1e-5)
    grads = grads_by_name(case)
    # W3 = W5 = 0: nothing flows back into the blocks' first layers...
    for l in (2, 4):
        np.testing.assert_array_equal(grads[f"W{l}"], 0.0)
    # ...but the zeroed layers themselves do learn, and the skip carries the gradient to W1
    for l in (3, 5, 1):
        assert np.max(np.abs(grads[f"W{l}"])) > 1e-4


def test_gradcheck_residual_everything_train():
    spec = ReferenceSpec(D, C, (4, 4, 4, 4, 4), activation="prelu", residual=True, batchnorm=True,
                         dropout=0.2, dropconnect=0.2, loss="hinge", l1=0.01, l2=0.02)
    engine_gradcheck(spec, train=True)


def test_gradcheck_residual_batchnorm_eval():
    spec = ReferenceSpec(D, C, (4, 4, 4), activation="selu", residual=True, batchnorm=True,
                         dropout=0.3, dropout_mode="vanilla-noscale")
    engine_gradcheck(spec, train=False, eval_running=True)


def test_gradcheck_everything_plain_train():
    spec = ReferenceSpec(D, C, (4, 5), activation="maxout", maxout_k=3, batchnorm=True, dropout=0.3,
                         dropout_mode="vanilla", dropconnect=0.2, loss="mse", l1=0.02, l2=0.05)
    engine_gradcheck(spec, train=True)


# ----------------------------------------------------------------------------------------
# the checks can fail
# ----------------------------------------------------------------------------------------


def test_gradcheck_detects_a_wrong_gradient():
    """A deliberately corrupted analytic gradient (one element off by 1e-5) is caught."""
    case = EngineCase(ReferenceSpec(D, C, (4, 5), activation="tanh"))
    name, view = case.net.parameters()[0]
    numeric = eval_numerical_gradient(case.f, view)
    assert_grads_match(numeric, case.grads[0], name)
    wrong = case.grads[0].copy()
    wrong[1, 2] += 1e-5
    with pytest.raises(AssertionError):
        assert_grads_match(numeric, wrong, name)
