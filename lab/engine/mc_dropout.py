"""Dropout as an ensemble: the Monte-Carlo average over random dropout masks at test time.

"Dropout is training a large ensemble of models that share parameters.  Each binary mask
is one model" (the notes).  The ensemble's prediction is the average over masks,
y = E_z[f(x, z)]; the notes call that integral hard and replace it by one network whose
dropped activations are rescaled (vanilla: x q at test time; inverted: x / q at train
time), so that "output at test time = expected output at training time".  That is exact
when only linear layers follow the mask (the notes' single neuron, w1 x + w2 y), and an
approximation once a nonlinearity comes after it.  Here the integral is estimated the
plain way: T forward passes, each with fresh masks drawn as in training, their softmax
probabilities averaged.

    probs_mc, scores_mc = mc_predict(net, X, T, rng)     # (N, C) float64 each
    probs, scores = single_predict(net, X)                # the usual test-time network
    r = mc_evaluate(net, X, y, T, rng)                    # loss, acc, gap, score_gap

The forward pass is the engine's own (lab/engine/kernels/network.forward) op by op, in
eval mode (batchnorm's running statistics, dropconnect's full weights) except at the
dropout ops, which draw a keep mask (numpy, from `rng`: the same draws on every machine)
and scale as in training: inverted x m / q, vanilla and vanilla-noscale x m.  Masks are
drawn chunk by chunk (MC_CHUNK rows), sample by sample, op by op; the rows of a chunk up to
the first dropout op are computed once.  A loop over ops and samples, never over examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .kernels import network as K
from .kernels.activations import MAXOUT, activation_forward, maxout_forward
from .kernels.dense import dense_forward
from .kernels.regularizers import INVERTED, batchnorm_forward, dropout_forward
from .network import Network

MC_CHUNK = 256  # rows a forward pass takes at a time (lab/scenario/budget.py counts its nodes)
_EVAL_RNG = np.random.default_rng(0)  # dropout_forward's rng argument; eval mode never draws


@dataclass(frozen=True)
class MCResult:
    """The Monte-Carlo average against the single rescaled network, on one labelled set."""

    loss: float  # -mean log p_mc[y] (data part)
    acc: float  # accuracy of argmax p_mc
    gap: float  # mean over examples of 0.5 * sum_c |p_mc - p_single| (total variation, 0 .. 1)
    score_gap: float  # mean |s_mc - s_single| / mean |s_single|
    single_acc: float  # accuracy of the single network (the same as the engine's val_acc)


def _forward(net: Network, nodes: list, rng: np.random.Generator | None, start: int = 0,
             stop: int | None = None) -> np.ndarray:
    """Run ops [start, stop) of the network on the rows in nodes[0], filling `nodes` (the node
    values, None where not computed yet; ops before `start` already ran); return the last
    node filled.  Dropout ops draw keep masks from `rng` (None: the test-time network)."""
    plan, dtype = net.plan, net.dtype
    B = nodes[0].shape[0]
    params, state = net.params, net.state
    out = nodes[0]
    for op in plan.ops[start:stop]:
        x_in = nodes[op.inp]
        n_in, n_out = plan.node_widths[op.inp], plan.node_widths[op.out]
        out = np.empty((B, n_out), dtype)
        if op.kind == K.DENSE:  # dropconnect (if any) in its eval form: the full weights
            w = params[op.p0:op.p0 + n_in * n_out].reshape(n_in, n_out)
            dense_forward(x_in, w, params[op.p1:op.p1 + n_out], out)
        elif op.kind == K.BATCHNORM:
            s0 = op.state
            batchnorm_forward(x_in, params[op.p0:op.p0 + n_out], params[op.p1:op.p1 + n_out], out,
                              np.empty((B, n_out), dtype), np.empty(n_out, dtype), state[s0:s0 + n_out],
                              state[s0 + n_out:s0 + 2 * n_out], plan.arch.bn_eps, plan.arch.bn_momentum, False, False)
        elif op.kind == K.ACTIVATION:
            if op.code == MAXOUT:
                maxout_forward(x_in, out, np.empty((B, n_out), np.int64))
            else:
                slope = params[op.p0:op.p0 + n_out] if op.p0 >= 0 else params[:0]
                activation_forward(op.code, x_in, out, op.alpha, slope)
        elif op.kind == K.DROPOUT:
            if rng is None:  # the single network: the mode's test-time scaling (the engine's kernel)
                dropout_forward(x_in, out, np.empty((B, n_out), dtype), op.keep, op.mode, False, _EVAL_RNG)
            else:  # one ensemble member: a fresh keep mask, scaled as in training
                keep = rng.random((B, n_out)) < op.keep
                scale = 1.0 / op.keep if op.mode == INVERTED else 1.0
                np.multiply(x_in, keep * scale, out=out, casting="same_kind")
        else:  # RESIDUAL_ADD
            np.add(x_in, nodes[op.skip], out=out)
        nodes[op.out] = out
    return out


def _rows(net: Network, x: np.ndarray) -> list:
    nodes = [None] * len(net.plan.node_widths)
    nodes[0] = np.ascontiguousarray(x, dtype=net.dtype)
    return nodes


def _first_random_op(net: Network) -> int:
    return next((k for k, op in enumerate(net.plan.ops) if op.kind == K.DROPOUT), len(net.plan.ops))


def _softmax(scores: np.ndarray) -> np.ndarray:
    s = scores.astype(np.float64)
    s -= s.max(axis=1, keepdims=True)
    np.exp(s, out=s)
    s /= s.sum(axis=1, keepdims=True)
    return s


def single_predict(net: Network, X: np.ndarray, chunk: int = MC_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """(softmax probabilities, scores) of the test-time network over X, float64 (N, C) each."""
    scores = np.empty((X.shape[0], net.arch.classes))
    for lo in range(0, X.shape[0], chunk):
        scores[lo:lo + chunk] = _forward(net, _rows(net, X[lo:lo + chunk]), None)
    return _softmax(scores), scores


def mc_predict(net: Network, X: np.ndarray, samples: int, rng: np.random.Generator, chunk: int = MC_CHUNK,
               cancelled: Callable[[], bool] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(mean softmax probabilities, mean scores) over `samples` random dropout masks, float64
    (N, C) each.  Deterministic given rng's state.  cancelled() is asked before every sample
    (true raises lab.engine.trainer.Cancelled)."""
    from .trainer import Cancelled

    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    C = net.arch.classes
    probs = np.zeros((X.shape[0], C))
    scores = np.zeros((X.shape[0], C))
    first = _first_random_op(net)
    for lo in range(0, X.shape[0], chunk):
        fixed = _rows(net, X[lo:lo + chunk])  # the nodes before the first mask: the same for every sample
        last = _forward(net, fixed, None, 0, first)
        for _ in range(samples):
            if cancelled is not None and cancelled():
                raise Cancelled
            s = _forward(net, list(fixed), rng, first) if first < len(net.plan.ops) else last
            scores[lo:lo + chunk] += s
            probs[lo:lo + chunk] += _softmax(s)
    return probs / samples, scores / samples


def mc_evaluate(net: Network, X: np.ndarray, y: np.ndarray, samples: int, rng: np.random.Generator,
                cancelled: Callable[[], bool] | None = None) -> MCResult:
    """The Monte-Carlo average over `samples` masks against the single network on (X, y)."""
    if X.shape[0] == 0:
        nan = float("nan")
        return MCResult(nan, nan, nan, nan, nan)
    with np.errstate(all="ignore"):  # a diverged network gives NaN metrics, quietly
        p_mc, s_mc = mc_predict(net, X, samples, rng, cancelled=cancelled)
        p_one, s_one = single_predict(net, X)
        rows = np.arange(X.shape[0])
        loss = float(-np.mean(np.log(np.maximum(p_mc[rows, y], np.finfo(np.float64).tiny))))
        acc = float(np.mean(np.argmax(p_mc, axis=1) == y))
        gap = float(np.mean(0.5 * np.abs(p_mc - p_one).sum(axis=1)))
        size = float(np.mean(np.abs(s_one)))
        score_gap = float(np.mean(np.abs(s_mc - s_one)) / size) if size > 0 else float("nan")
        single_acc = float(np.mean(np.argmax(s_one, axis=1) == y))
    return MCResult(loss, acc, gap, score_gap, single_acc)
