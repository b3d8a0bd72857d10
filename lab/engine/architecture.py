"""From a model description to the engine's op table and parameter layout.

This is the only place that knows how layers are arranged (see docs/network.md); the
kernels just follow the table.  Everything here is plain Python, run once per network
(and once per batch size for the workspace), never per step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lab import vocabulary as V

from .kernels import network as K
from .kernels.activations import ACTIVATION_CODES
from .kernels.regularizers import DROPOUT_MODES

DEFAULT_ALPHA = {a.name: a.alpha for a in V.ACTIVATIONS if a.alpha is not None}
PRELU_INITIAL_SLOPE = 0.25


@dataclass(frozen=True)
class Architecture:
    """Everything that decides the shape of the network and its forward pass."""

    input_dim: int
    classes: int
    hidden: tuple[int, ...] = (100,)
    activation: str = V.default(V.ACTIVATIONS)
    alpha: float | None = None  # leaky_relu slope / elu alpha; None = the usual default
    maxout_k: int = 2
    batchnorm: bool = False
    bn_eps: float = 1e-5
    bn_momentum: float = 0.9
    dropout: float = 0.0
    dropout_mode: str = V.default(V.DROPOUT_MODES)
    dropconnect: float = 0.0
    residual: bool = False
    residual_zero_init: bool = False
    loss: str = V.default(V.LOSSES)

    def __post_init__(self) -> None:
        if self.activation not in V.names(V.public_activations()):
            raise ValueError(f"unknown activation {self.activation!r}")
        if self.dropout_mode not in DROPOUT_MODES:
            raise ValueError(f"unknown dropout_mode {self.dropout_mode!r}")
        if not 0.0 <= self.dropout < 1.0 or not 0.0 <= self.dropconnect < 1.0:
            raise ValueError("dropout and dropconnect rates must be in [0, 1)")
        if V.activation(self.activation).pieces and self.maxout_k < 2:
            raise ValueError("maxout needs maxout_k >= 2")
        if self.residual:
            h = self.hidden
            if len(h) < 3 or len(h) % 2 == 0 or any(w != h[0] for w in h):
                raise ValueError(
                    "residual networks need an odd number (>= 3) of equal hidden sizes: "
                    "the first layer projects the input, then pairs of layers form blocks"
                )

    @property
    def alpha_value(self) -> float:
        return self.alpha if self.alpha is not None else DEFAULT_ALPHA.get(self.activation, 0.0)

    @property
    def n_layers(self) -> int:
        return len(self.hidden) + 1


@dataclass(frozen=True)
class ParamSpec:
    name: str
    shape: tuple[int, ...]
    offset: int
    role: str  # "W", "b", "gamma", "beta", "slope"
    layer: int  # 1-based layer number

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass(frozen=True)
class LayerInfo:
    """What the statistics need to know about layer `index` (1 = first hidden, L = output)."""

    index: int
    kind: str  # the activation name, or "output"
    n_in: int
    n_out: int  # units (after maxout), i.e. width of the layer's output
    fan_out: int  # columns of W (k*n_out for maxout)
    weight: ParamSpec
    out_node: int  # node of the layer's output (post-activation / block sum / scores)
    pre_node: int  # node of its pre-activation z (after batchnorm); == out_node for output
    in_node: int  # node feeding W
    dense_op: int  # index of its dense op (dropconnect mask lives in that op's aux)
    dropout_op: int = -1  # index of its dropout op, -1 if none
    block_second: bool = False  # second dense layer of a residual block


@dataclass
class _Op:
    kind: int
    inp: int
    out: int
    skip: int = -1
    p0: int = -1
    p1: int = -1
    code: int = 0
    mode: int = 0
    state: int = -1
    keep: float = 1.0
    alpha: float = 0.0
    aux_kind: str = ""  # what per-op cache this op needs (sized per batch in Workspace)
    need_dx: int = 1
    acc_in: int = 0
    acc_skip: int = 0


@dataclass
class Plan:
    """The op list, node widths, parameter layout and layer map of one architecture."""

    arch: Architecture
    ops: list[_Op] = field(default_factory=list)
    node_widths: list[int] = field(default_factory=list)
    params: list[ParamSpec] = field(default_factory=list)
    layers: list[LayerInfo] = field(default_factory=list)
    n_params: int = 0
    n_state: int = 0

    def add_node(self, width: int) -> int:
        self.node_widths.append(width)
        return len(self.node_widths) - 1

    def add_param(self, name: str, shape: tuple[int, ...], role: str, layer: int) -> ParamSpec:
        spec = ParamSpec(name, shape, self.n_params, role, layer)
        self.params.append(spec)
        self.n_params += spec.size
        return spec

    def add_op(self, op: _Op) -> int:
        self.ops.append(op)
        return len(self.ops) - 1


def build_plan(arch: Architecture) -> Plan:
    plan = Plan(arch)
    x = plan.add_node(arch.input_dim)
    layer = 0
    hidden = list(arch.hidden)

    def hidden_layer(inp: int, n_in: int, h: int, *, with_activation: bool, block_second: bool) -> tuple[int, int]:
        """Dense (+bn) (+activation +dropout) from node inp; returns (output node, layer number)."""
        nonlocal layer
        layer += 1
        maxout = with_activation and V.activation(arch.activation).pieces
        fan_out = h * arch.maxout_k if maxout else h
        w = plan.add_param(f"W{layer}", (n_in, fan_out), "W", layer)
        b = plan.add_param(f"b{layer}", (fan_out,), "b", layer)
        z = plan.add_node(fan_out)
        dropconnect = arch.dropconnect > 0
        dense_op = plan.add_op(_Op(K.DENSE, inp, z, p0=w.offset, p1=b.offset, mode=int(dropconnect),
                                   keep=1.0 - arch.dropconnect, aux_kind="dropconnect" if dropconnect else "",
                                   need_dx=int(inp != 0)))
        if arch.batchnorm:
            g = plan.add_param(f"gamma{layer}", (fan_out,), "gamma", layer)
            be = plan.add_param(f"beta{layer}", (fan_out,), "beta", layer)
            zn = plan.add_node(fan_out)
            plan.add_op(_Op(K.BATCHNORM, z, zn, p0=g.offset, p1=be.offset, state=plan.n_state,
                            alpha=0.0, aux_kind="batchnorm"))
            plan.n_state += 2 * fan_out
            z = zn
        if not with_activation:
            return z, dense_op
        slope_off = -1
        if V.activation(arch.activation).learned_slope:
            slope_off = plan.add_param(f"slope{layer}", (h,), "slope", layer).offset
        a = plan.add_node(h)
        plan.add_op(_Op(K.ACTIVATION, z, a, p0=slope_off, code=ACTIVATION_CODES[arch.activation],
                        alpha=arch.alpha_value, aux_kind="argmax" if maxout else ""))
        dropout_op = -1
        out = a
        if arch.dropout > 0:
            out = plan.add_node(h)
            dropout_op = plan.add_op(_Op(K.DROPOUT, a, out, mode=DROPOUT_MODES[arch.dropout_mode],
                                         keep=1.0 - arch.dropout, aux_kind="dropout"))
        plan.layers.append(LayerInfo(layer, arch.activation, n_in, h, fan_out, w, a, z, inp, dense_op,
                                     dropout_op, block_second))
        return out, dense_op

    n_in = arch.input_dim
    if arch.residual:
        h0 = hidden[0]
        x, _ = hidden_layer(x, n_in, h0, with_activation=True, block_second=False)
        for _ in range(len(hidden[1:]) // 2):
            a1, _ = hidden_layer(x, h0, h0, with_activation=True, block_second=False)
            z2, dense2 = hidden_layer(a1, h0, h0, with_activation=False, block_second=True)
            s = plan.add_node(h0)
            plan.add_op(_Op(K.RESIDUAL_ADD, z2, s, skip=x))
            w2 = plan.params[-4 if arch.batchnorm else -2]
            plan.layers.append(LayerInfo(layer, "residual", h0, h0, h0, w2, s, z2, a1, dense2, -1, True))
            x = s
        n_in = h0
    else:
        for h in hidden:
            x, _ = hidden_layer(x, n_in, h, with_activation=True, block_second=False)
            n_in = h
    layer += 1
    w = plan.add_param(f"W{layer}", (n_in, arch.classes), "W", layer)
    b = plan.add_param(f"b{layer}", (arch.classes,), "b", layer)
    scores = plan.add_node(arch.classes)
    op = plan.add_op(_Op(K.DENSE, x, scores, p0=w.offset, p1=b.offset, need_dx=int(x != 0)))
    plan.layers.append(LayerInfo(layer, "output", n_in, arch.classes, arch.classes, w, scores, scores, x, op))
    _mark_accumulation(plan)
    return plan


def _mark_accumulation(plan: Plan) -> None:
    """A node read by two ops (a residual block's input) receives two gradients.

    The backward pass runs ops in reverse; the first to reach a node writes its
    gradient, later ones add to it.
    """
    written: set[int] = set()
    for op in reversed(plan.ops):
        op.acc_in = int(op.inp in written)
        written.add(op.inp)
        if op.kind == K.RESIDUAL_ADD:
            op.acc_skip = int(op.skip in written)
            written.add(op.skip)
    for op in plan.ops:
        if op.acc_in and op.kind not in (K.DENSE, K.RESIDUAL_ADD):
            raise AssertionError("only dense and residual-add ops may share an input node")


def op_tables(plan: Plan, batch: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """The int and float op tables for a batch size, with the aux buffer sizes they need."""
    ops = np.full((len(plan.ops), K.N_INT_COLS), -1, dtype=np.int64)
    fops = np.zeros((len(plan.ops), K.N_FLOAT_COLS), dtype=np.float64)
    aux_size = 0
    iaux_size = 0
    widths = plan.node_widths
    for k, op in enumerate(plan.ops):
        row = ops[k]
        row[K.O_KIND], row[K.O_IN], row[K.O_OUT], row[K.O_SKIP] = op.kind, op.inp, op.out, op.skip
        row[K.O_P0], row[K.O_P1], row[K.O_CODE], row[K.O_MODE] = op.p0, op.p1, op.code, op.mode
        row[K.O_STATE], row[K.O_NEED_DX], row[K.O_ACC_IN], row[K.O_ACC_SKIP] = op.state, op.need_dx, op.acc_in, op.acc_skip
        fops[k, K.F_KEEP], fops[k, K.F_ALPHA] = op.keep, op.alpha
        fops[k, K.F_EPS], fops[k, K.F_MOMENTUM] = plan.arch.bn_eps, plan.arch.bn_momentum
        n_in, n_out = widths[op.inp], widths[op.out]
        if op.aux_kind == "dropconnect":
            row[K.O_AUX] = aux_size
            aux_size += 2 * n_in * n_out  # mask, then the masked weights
        elif op.aux_kind == "batchnorm":
            row[K.O_AUX] = aux_size
            aux_size += batch * n_out + n_out  # xhat, then 1/std
        elif op.aux_kind == "dropout":
            row[K.O_AUX] = aux_size
            aux_size += batch * n_out
        elif op.aux_kind == "argmax":  # maxout's winning pieces
            row[K.O_IAUX] = iaux_size
            iaux_size += batch * n_out
    return ops, fops, aux_size, iaux_size
