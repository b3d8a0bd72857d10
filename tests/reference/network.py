"""Plain-numpy oracle of the network specified in docs/network.md.

Written for clarity, not speed, in the style of CS231n's ``layers.py``: every layer is a
``x_forward(...) -> out, cache`` / ``x_backward(dout, cache) -> dx, (dparams...)`` pair.
Everything is computed in float64.  Shapes: B = batch, D = input width, C = classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import erf

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "prelu", "elu", "selu", "gelu", "maxout")
DROPOUT_MODES = ("inverted", "vanilla", "vanilla-noscale")
LOSSES = ("softmax", "mse", "hinge")
DEFAULT_ALPHA = {"leaky_relu": 0.01, "elu": 1.0}
SELU_LAMBDA = 1.0507009873554805
SELU_ALPHA = 1.6732632423543772


@dataclass(frozen=True)
class ReferenceSpec:
    input_dim: int
    classes: int
    hidden: tuple[int, ...]
    activation: str = "relu"
    alpha: float | None = None  # leaky_relu default 0.01, elu default 1.0
    maxout_k: int = 2
    batchnorm: bool = False
    bn_eps: float = 1e-5
    bn_momentum: float = 0.9
    dropout: float = 0.0
    dropout_mode: str = "inverted"
    dropconnect: float = 0.0
    residual: bool = False
    loss: str = "softmax"  # softmax | mse | hinge
    l1: float = 0.0
    l2: float = 0.0

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}")
        if self.dropout_mode not in DROPOUT_MODES:
            raise ValueError(f"unknown dropout_mode {self.dropout_mode!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}")
        if self.residual:
            h = tuple(self.hidden)
            if len(h) < 3 or len(h) % 2 == 0 or any(w != h[0] for w in h):
                raise ValueError("residual needs hidden = (h, h, h, ...) with an odd count >= 3")

    @property
    def alpha_value(self) -> float:
        return self.alpha if self.alpha is not None else DEFAULT_ALPHA.get(self.activation, 0.0)


# ----------------------------------------------------------------------------------------
# Layer plan: which dense layers exist and what follows each of them
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layer:
    index: int  # 1-based layer number
    kind: str  # "plain" | "block1" | "block2" | "output"
    n_in: int
    n_out: int  # columns of W (k*h for maxout layers)
    width: int  # width of the layer's output (h, or C for the output layer)

    @property
    def has_activation(self) -> bool:
        return self.kind in ("plain", "block1")

    @property
    def hidden(self) -> bool:
        return self.kind != "output"


def _plan(spec: ReferenceSpec) -> list[_Layer]:
    k = spec.maxout_k if spec.activation == "maxout" else 1
    layers: list[_Layer] = []
    n_in = spec.input_dim
    hidden = list(spec.hidden)
    if spec.residual:
        h = hidden[0]
        layers.append(_Layer(1, "plain", n_in, k * h, h))
        for _ in range((len(hidden) - 1) // 2):
            i = len(layers) + 1
            layers.append(_Layer(i, "block1", h, k * h, h))
            layers.append(_Layer(i + 1, "block2", h, h, h))
        n_in = h
    else:
        for i, h in enumerate(hidden, start=1):
            layers.append(_Layer(i, "plain", n_in, k * h, h))
            n_in = h
    layers.append(_Layer(len(layers) + 1, "output", n_in, spec.classes, spec.classes))
    return layers


# ----------------------------------------------------------------------------------------
# Parameters
# ----------------------------------------------------------------------------------------


def init_reference_params(spec: ReferenceSpec, rng: np.random.Generator, std: float = 0.5) -> dict[str, np.ndarray]:
    """Random non-trivial parameters; names, shapes and order as in docs/network.md.

    W, b ~ N(0, std); gamma ~ 1 + N(0, 0.1); beta ~ N(0, 0.1); slope ~ 0.25 + U(-0.1, 0.1).
    """
    params: dict[str, np.ndarray] = {}
    for layer in _plan(spec):
        l = layer.index
        params[f"W{l}"] = rng.normal(0.0, std, size=(layer.n_in, layer.n_out))
        params[f"b{l}"] = rng.normal(0.0, std, size=(layer.n_out,))
        if layer.hidden and spec.batchnorm:
            params[f"gamma{l}"] = 1.0 + rng.normal(0.0, 0.1, size=(layer.n_out,))
            params[f"beta{l}"] = rng.normal(0.0, 0.1, size=(layer.n_out,))
        if layer.has_activation and spec.activation == "prelu":
            params[f"slope{l}"] = 0.25 + rng.uniform(-0.1, 0.1, size=(layer.width,))
    return params


# ----------------------------------------------------------------------------------------
# Affine (+ dropconnect)
# ----------------------------------------------------------------------------------------


def affine_forward(x, W, b):
    """x: (B, n_in), W: (n_in, n_out), b: (n_out,) -> out (B, n_out) = x @ W + b."""
    out = x @ W + b
    return out, (x, W)


def affine_backward(dout, cache):
    """dout: (B, n_out) -> dx (B, n_in), dW (n_in, n_out), db (n_out,)."""
    x, W = cache
    return dout @ W.T, x.T @ dout, dout.sum(axis=0)


def dropconnect_forward(W, M, q):
    """W, M: (n_in, n_out); M is a 0/1 keep mask, q the keep probability -> W * M / q."""
    return W * M / q, (M, q)


def dropconnect_backward(dW_eff, cache):
    """dW_eff: (n_in, n_out) gradient w.r.t. the masked weights -> dW (n_in, n_out)."""
    M, q = cache
    return dW_eff * M / q


# ----------------------------------------------------------------------------------------
# Batchnorm
# ----------------------------------------------------------------------------------------


def batchnorm_forward(z, gamma, beta, train, run_mean, run_var, eps, momentum):
    """z: (B, n), gamma/beta/run_mean/run_var: (n,).

    Returns out (B, n), cache, new_run_mean (n,), new_run_var (n,).
    Train: batch statistics (biased var); running r = m*r + (1-m)*batch.
    Eval: running statistics, running stats unchanged.
    """
    if train:
        mu = z.mean(axis=0)
        var = ((z - mu) ** 2).mean(axis=0)
        new_mean = momentum * run_mean + (1.0 - momentum) * mu
        new_var = momentum * run_var + (1.0 - momentum) * var
    else:
        mu, var = run_mean, run_var
        new_mean, new_var = run_mean.copy(), run_var.copy()
    std = np.sqrt(var + eps)
    xhat = (z - mu) / std
    out = gamma * xhat + beta
    return out, (xhat, gamma, std, train), new_mean, new_var


def batchnorm_backward(dout, cache):
    """dout: (B, n) -> dz (B, n), dgamma (n,), dbeta (n,)."""
    xhat, gamma, std, train = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dxhat = dout * gamma
    if train:
        # batch statistics depend on z: dz = (dxhat - mean(dxhat) - xhat*mean(dxhat*xhat)) / std
        dz = (dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).mean(axis=0)) / std
    else:
        dz = dxhat / std
    return dz, dgamma, dbeta


# ----------------------------------------------------------------------------------------
# Activations
# ----------------------------------------------------------------------------------------


def activation_forward(z, name, alpha=0.0, slope=None, k=2):
    """z: (B, n) -> a: (B, n), or (B, n // k) for maxout. slope: (n,) for prelu."""
    if name == "sigmoid":
        a = 1.0 / (1.0 + np.exp(-z))
    elif name == "tanh":
        a = np.tanh(z)
    elif name == "relu":
        a = np.where(z > 0, z, 0.0)
    elif name == "leaky_relu":
        a = np.where(z > 0, z, alpha * z)
    elif name == "prelu":
        a = np.where(z > 0, z, slope * z)
    elif name == "elu":
        a = np.where(z > 0, z, alpha * (np.exp(np.minimum(z, 0.0)) - 1.0))
    elif name == "selu":
        a = SELU_LAMBDA * np.where(z > 0, z, SELU_ALPHA * (np.exp(np.minimum(z, 0.0)) - 1.0))
    elif name == "gelu":
        a = 0.5 * z * (1.0 + erf(z / math.sqrt(2.0)))
    elif name == "maxout":
        B, n = z.shape
        pieces = z.reshape(B, n // k, k)  # unit j owns columns j*k .. j*k+k-1
        idx = pieces.argmax(axis=2)  # first argmax
        a = np.take_along_axis(pieces, idx[..., None], axis=2)[..., 0]
        return a, (z, name, alpha, slope, k, idx)
    else:
        raise ValueError(name)
    return a, (z, name, alpha, slope, k, None)


def activation_backward(da, cache):
    """da: like a -> dz (like z), dslope ((n,) for prelu, else None)."""
    z, name, alpha, slope, k, idx = cache
    dslope = None
    if name == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-z))
        dz = da * s * (1.0 - s)
    elif name == "tanh":
        dz = da * (1.0 - np.tanh(z) ** 2)
    elif name == "relu":
        dz = da * (z > 0)
    elif name == "leaky_relu":
        dz = da * np.where(z > 0, 1.0, alpha)
    elif name == "prelu":
        dz = da * np.where(z > 0, 1.0, slope)
        dslope = np.where(z <= 0, da * z, 0.0).sum(axis=0)
    elif name == "elu":
        dz = da * np.where(z > 0, 1.0, alpha * np.exp(np.minimum(z, 0.0)))
    elif name == "selu":
        dz = da * SELU_LAMBDA * np.where(z > 0, 1.0, SELU_ALPHA * np.exp(np.minimum(z, 0.0)))
    elif name == "gelu":
        cdf = 0.5 * (1.0 + erf(z / math.sqrt(2.0)))
        pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
        dz = da * (cdf + z * pdf)
    elif name == "maxout":
        B, n = z.shape
        dpieces = np.zeros((B, n // k, k))
        np.put_along_axis(dpieces, idx[..., None], da[..., None], axis=2)
        dz = dpieces.reshape(B, n)
    else:
        raise ValueError(name)
    return dz, dslope


# ----------------------------------------------------------------------------------------
# Dropout
# ----------------------------------------------------------------------------------------


def dropout_forward(a, mask, p, mode, train):
    """a: (B, h); mask: (B, h) 0/1 keep mask (train only); p = drop probability.

    inverted: train a*m/q, eval a;  vanilla: train a*m, eval a*q;  vanilla-noscale: train a*m, eval a.
    """
    q = 1.0 - p
    if train:
        scale = mask / q if mode == "inverted" else mask.astype(np.float64)
    else:
        scale = q if mode == "vanilla" else 1.0
    return a * scale, scale


def dropout_backward(dout, cache):
    """dout: (B, h) -> da (B, h)."""
    return dout * cache


# ----------------------------------------------------------------------------------------
# Losses and penalties
# ----------------------------------------------------------------------------------------


def softmax_loss(scores, y):
    """scores: (B, C), y: (B,) -> mean cross-entropy, dscores (B, C)."""
    B = scores.shape[0]
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[np.arange(B), y].mean()
    dscores = np.exp(log_probs)
    dscores[np.arange(B), y] -= 1.0
    return float(loss), dscores / B


def mse_loss(scores, y):
    """Mean over all B*C elements of (scores - onehot(y))**2."""
    B, C = scores.shape
    t = np.zeros_like(scores)
    t[np.arange(B), y] = 1.0
    diff = scores - t
    return float((diff**2).mean()), 2.0 * diff / (B * C)


def hinge_loss(scores, y):
    """Mean over the batch of sum_{j != y} max(0, s_j - s_y + 1)."""
    B = scores.shape[0]
    correct = scores[np.arange(B), y][:, None]
    margins = scores - correct + 1.0
    margins[np.arange(B), y] = 0.0
    loss = np.maximum(0.0, margins).sum(axis=1).mean()
    active = (margins > 0).astype(np.float64)
    dscores = active.copy()
    dscores[np.arange(B), y] = -active.sum(axis=1)
    return float(loss), dscores / B


LOSS_FUNCTIONS = {"softmax": softmax_loss, "mse": mse_loss, "hinge": hinge_loss}


def penalty(W, l1, l2):
    """0.5*l2*sum(W**2) + l1*sum(|W|) and its gradient l2*W + l1*sign(W)."""
    value = 0.5 * l2 * float(np.sum(W * W)) + l1 * float(np.sum(np.abs(W)))
    return value, l2 * W + l1 * np.sign(W)


# ----------------------------------------------------------------------------------------
# The network
# ----------------------------------------------------------------------------------------


def _default_running(spec: ReferenceSpec, running) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    if not spec.batchnorm:
        return out
    running = running or {}
    for layer in _plan(spec):
        if layer.hidden:
            l = layer.index
            out[f"mean{l}"] = np.array(running.get(f"mean{l}", np.zeros(layer.n_out)), dtype=np.float64)
            out[f"var{l}"] = np.array(running.get(f"var{l}", np.ones(layer.n_out)), dtype=np.float64)
    return out


def _mask(masks, key):
    if masks is None or key not in masks:
        raise ValueError(f"training with a positive rate needs masks[{key!r}]")
    return np.asarray(masks[key], dtype=np.float64)


def _forward(spec, params, x, train, masks, running):
    """Full forward pass; returns scores, z, a, new running stats and per-layer caches."""
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    h = np.asarray(x, dtype=np.float64)
    run = _default_running(spec, running)
    new_run = dict(run)
    zs, acts, caches = {}, {}, {}
    block_input = None  # input of the current residual block
    k = spec.maxout_k
    for layer in _plan(spec):
        l = layer.index
        c: dict = {}
        W = p[f"W{l}"]
        if train and layer.hidden and spec.dropconnect > 0:
            W, c["dropconnect"] = dropconnect_forward(W, _mask(masks, f"dropconnect{l}"), 1.0 - spec.dropconnect)
        if layer.kind == "block1":
            block_input = h
        z, c["affine"] = affine_forward(h, W, p[f"b{l}"])
        if layer.kind == "output":
            zs[l] = acts[l] = z
            caches[l] = c
            h = z
            break
        if spec.batchnorm:
            z, c["bn"], new_run[f"mean{l}"], new_run[f"var{l}"] = batchnorm_forward(
                z, p[f"gamma{l}"], p[f"beta{l}"], train, run[f"mean{l}"], run[f"var{l}"],
                spec.bn_eps, spec.bn_momentum,
            )
        zs[l] = z
        if layer.kind == "block2":
            h = block_input + z  # identity skip, no activation after the add
            acts[l] = h
        else:
            a, c["act"] = activation_forward(z, spec.activation, spec.alpha_value, p.get(f"slope{l}"), k)
            acts[l] = a
            if spec.dropout > 0:
                m = _mask(masks, f"dropout{l}") if train else None
                a, c["dropout"] = dropout_forward(a, m, spec.dropout, spec.dropout_mode, train)
            h = a
        caches[l] = c
    return h, zs, acts, new_run, caches


def reference_forward(spec, params, x, train=False, masks=None, running=None) -> dict:
    """Forward pass.

    Returns {"scores": (B, C), "z": {l: pre-activation after batchnorm (B, n_out)},
    "a": {l: activation output before dropout / block output / scores for L},
    "running": batchnorm running stats (updated in train mode)}.
    """
    scores, zs, acts, new_run, _ = _forward(spec, params, x, train, masks, running)
    return {"scores": scores, "z": zs, "a": acts, "running": new_run}


def reference_loss_and_grads(spec, params, x, y, train=False, masks=None, running=None):
    """Total loss (data loss + penalties), gradients of it (same keys/shapes as params), new running stats."""
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    y = np.asarray(y, dtype=np.int64)
    scores, _, _, new_run, caches = _forward(spec, p, x, train, masks, running)
    loss, dh = LOSS_FUNCTIONS[spec.loss](scores, y)

    grads: dict[str, np.ndarray] = {}
    dskip = None  # gradient reaching a residual block's input through the identity skip
    for layer in reversed(_plan(spec)):
        l = layer.index
        c = caches[l]
        if layer.kind == "block2":
            dskip = dh  # out = block_input + z2
            dz = dh
        elif layer.kind == "output":
            dz = dh
        else:
            if "dropout" in c:
                dh = dropout_backward(dh, c["dropout"])
            dz, dslope = activation_backward(dh, c["act"])
            if dslope is not None:
                grads[f"slope{l}"] = dslope
        if "bn" in c:
            dz, grads[f"gamma{l}"], grads[f"beta{l}"] = batchnorm_backward(dz, c["bn"])
        dh, dW, grads[f"b{l}"] = affine_backward(dz, c["affine"])
        if "dropconnect" in c:
            dW = dropconnect_backward(dW, c["dropconnect"])
        grads[f"W{l}"] = dW
        if layer.kind == "block1":
            dh = dh + dskip
            dskip = None

    for name, W in p.items():
        if name.startswith("W"):
            value, dW = penalty(W, spec.l1, spec.l2)
            loss += value
            grads[name] = grads[name] + dW

    grads = {name: grads[name] for name in p}  # same order as params
    return float(loss), grads, new_run
