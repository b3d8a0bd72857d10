"""The Network: parameters in one flat buffer, plus the workspaces the kernels run in.

`parameters()` returns *views* into the flat buffer, so whoever changes an entry (a
gradient check nudging a weight, say) changes what the kernels see.
"""

from __future__ import annotations

import numpy as np

from .architecture import PRELU_INITIAL_SLOPE, Architecture, Plan, build_plan, op_tables
from .init import init_weight
from .kernels import network as K
from .kernels.blas import NT_TRANSPOSED_MAX_ROWS
from .kernels.losses import LOSS_CODES


Workspace = K.Workspace  # the buffers one batch size runs in (a NamedTuple the kernels take)


class Network:
    """A dense network as described by an Architecture, in float32 or float64."""

    def __init__(self, arch: Architecture, dtype=np.float32, *, l1: float = 0.0, l2: float = 0.0):
        self.arch = arch
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, not {self.dtype}")
        self.plan: Plan = build_plan(arch)
        self.l1 = l1
        self.l2 = l2
        self.params = np.zeros(self.plan.n_params, self.dtype)
        self.grads = np.zeros(self.plan.n_params, self.dtype)
        self.state = np.zeros(self.plan.n_state, self.dtype)
        self.reg = np.zeros(self.plan.n_params, np.uint8)
        for spec in self.plan.params:
            if spec.role == "W":
                self.reg[spec.offset:spec.offset + spec.size] = 1
        self._by_name = {spec.name: spec for spec in self.plan.params}
        self._workspaces: dict[tuple[int, str], Workspace] = {}
        self._last_ws: Workspace | None = None
        self.batch_ws: Workspace | None = None  # what the last *training* step left behind
        self.last_train_mode_ws: Workspace | None = None  # whose masks last_masks() reports
        self._side_rng = np.random.default_rng(0x5EED)  # masks for loss_and_grads(train=True)
        self.reset_running_stats()

    # -- parameters -------------------------------------------------------------------
    @property
    def layers(self):
        return self.plan.layers

    def parameters(self) -> list[tuple[str, np.ndarray]]:
        """(name, view) pairs in forward order; views share memory with the flat buffer."""
        return [(spec.name, self.param(spec.name)) for spec in self.plan.params]

    def param(self, name: str) -> np.ndarray:
        spec = self._by_name[name]
        return self.params[spec.offset:spec.offset + spec.size].reshape(spec.shape)

    def grad(self, name: str) -> np.ndarray:
        spec = self._by_name[name]
        return self.grads[spec.offset:spec.offset + spec.size].reshape(spec.shape)

    def reset_running_stats(self) -> None:
        for layer_state in self._running_views():
            layer_state[0][:] = 0.0
            layer_state[1][:] = 1.0

    def _running_views(self):
        for op in self.plan.ops:
            if op.kind == K.BATCHNORM:
                n = self.plan.node_widths[op.out]
                yield self.state[op.state:op.state + n], self.state[op.state + n:op.state + 2 * n]

    def running_stats(self) -> dict[str, np.ndarray]:
        """Batchnorm running statistics by layer: {"mean{l}": ..., "var{l}": ...} (copies)."""
        out = {}
        bn_specs = [s for s in self.plan.params if s.role == "gamma"]
        for spec, (mean, var) in zip(bn_specs, self._running_views()):
            out[f"mean{spec.layer}"] = mean.copy()
            out[f"var{spec.layer}"] = var.copy()
        return out

    def initialize(self, scheme: str, rng: np.random.Generator, *, scale: float | None = None,
                   bias: float = 0.0) -> None:
        """Draw every parameter afresh (W by `scheme`, b = bias) and reset running stats."""
        for spec in self.plan.params:
            self.param(spec.name)[...] = self._initial_value(spec, scheme, rng, scale, bias)
        self.reset_running_stats()

    def _initial_value(self, spec, scheme, rng, scale, bias):
        if spec.role == "W":
            zero_second = self.arch.residual_zero_init and any(
                layer.block_second and layer.weight.name == spec.name for layer in self.plan.layers)
            return 0.0 if zero_second else init_weight(scheme, spec.shape, rng, scale)
        return {"b": bias, "gamma": 1.0, "beta": 0.0, "slope": PRELU_INITIAL_SLOPE}[spec.role]

    def copy_matching_from(self, other: "Network") -> list[str]:
        """Copy every parameter whose name and shape match `other`; return the names copied.

        Used when an on-the-fly change rebuilds the network (batchnorm on, prelu, ...):
        what can be kept is kept, so the run continues instead of starting over.
        """
        copied = []
        for name, value in other.parameters():
            spec = self._by_name.get(name)
            if spec is not None and spec.shape == value.shape:
                self.param(name)[...] = value
                copied.append(name)
        ours = [s for s in self.plan.params if s.role == "gamma"]
        theirs = {s.layer: v for s, v in zip([s for s in other.plan.params if s.role == "gamma"],
                                             other._running_views())}
        for spec, (mean, var) in zip(ours, self._running_views()):
            if spec.layer in theirs and theirs[spec.layer][0].shape == mean.shape:
                mean[:] = theirs[spec.layer][0]
                var[:] = theirs[spec.layer][1]
        return copied

    # -- workspaces -------------------------------------------------------------------
    def workspace(self, batch: int, purpose: str = "train") -> Workspace:
        """Buffers for `batch` rows.  Each purpose (train, eval, probe, call) has its own, so
        evaluating or probing never overwrites what the last training step left behind."""
        key = (batch, purpose)
        ws = self._workspaces.get(key)
        if ws is None:
            ops, fops, aux_size, iaux_size = op_tables(self.plan, batch)
            widths = np.array(self.plan.node_widths, dtype=np.int64)
            node_off = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.int64) * batch
            total = int(widths.sum()) * batch
            ws = Workspace(batch, ops, fops, node_off, widths,
                           np.zeros(total, self.dtype), np.zeros(total, self.dtype),
                           np.zeros(aux_size, self.dtype), np.zeros(iaux_size, np.int64),
                           np.zeros(batch, np.int64), np.zeros(batch, np.int64), np.ones(batch, np.float64),
                           np.zeros(batch * int(widths.max()) if batch <= NT_TRANSPOSED_MAX_ROWS else 0, self.dtype),
                           np.zeros((K.N_LINKS, 2), np.int64))
            if len(self._workspaces) > 8:  # a long session of varied probe sizes stays bounded
                self._workspaces.pop(next(iter(self._workspaces)))
            self._workspaces[key] = ws
        return ws

    @property
    def weights(self) -> K.Weights:
        """The buffers the kernels read and write: parameters, gradients, running statistics, penalty mask."""
        return K.Weights(self.params, self.grads, self.state, self.reg)

    # -- passes -----------------------------------------------------------------------
    def _load_batch(self, x: np.ndarray, purpose: str = "call") -> Workspace:
        x = np.ascontiguousarray(x, dtype=self.dtype)
        if x.ndim != 2 or x.shape[1] != self.arch.input_dim:
            raise ValueError(f"x must have shape (B, {self.arch.input_dim}), got {x.shape}")
        ws = self.workspace(x.shape[0], purpose)
        ws.node(0)[...] = x
        return ws

    def forward(self, x: np.ndarray, *, train: bool = False, purpose: str = "call") -> np.ndarray:
        """Scores for x (a copy); train=True uses batch statistics and draws dropout masks.

        Nothing is updated (running statistics included); intermediate nodes stay in
        the workspace, which `last_workspace` returns.
        """
        ws = self._load_batch(x, purpose)
        K.link(ws, self.weights, self._side_rng, K.FORWARD_LINKS)
        K.forward(ws, ws.batch, self.weights, self._side_rng, train, False)
        self._last_ws = ws
        if train:
            self.last_train_mode_ws = ws
        return ws.node(len(self.plan.node_widths) - 1).copy()

    def gradient_pass(self, x: np.ndarray, y: np.ndarray, train: bool = False) -> float:
        """One forward and backward pass: node values and gradients in the workspace, dL/dparams
        of the data loss in `grads`; returns the total loss.  No update, and no copies (loss_and_grads
        adds those, with the penalties' gradients)."""
        ws = self._load_batch(x)
        y = np.ascontiguousarray(y, dtype=np.int64)
        K.link(ws, self.weights, self._side_rng)
        loss, _ = K.loss_and_grads(ws, self.weights, self._side_rng, y, LOSS_CODES[self.arch.loss], self.l1, self.l2,
                                   train)
        self._last_ws = ws
        if train:
            self.last_train_mode_ws = ws
        return float(loss)

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray, train: bool = False) -> tuple[float, list[np.ndarray]]:
        """Total loss (data + penalties) and its gradients, aligned with parameters(); no update."""
        loss = self.gradient_pass(x, y, train)
        grads = []
        for name, value in self.parameters():
            g = self.grad(name).copy()
            if self._by_name[name].role == "W":
                g += self.l2 * value + self.l1 * np.sign(value)
            grads.append(g)
        return float(loss), grads

    def evaluate_rows(self, ws: Workspace, X: np.ndarray, y: np.ndarray, total: float) -> tuple[float, int]:
        """Eval-mode data loss over X in chunks of ws.batch rows, added to `total`, and the
        correct count (kernels/network.evaluate: slices of a multiple of ws.batch rows, each
        given the last one's total, sum to the same bits as one call)."""
        K.link(ws, self.weights, self._side_rng, K.FORWARD_LINKS)
        return K.evaluate(ws, self.weights, self._side_rng, X, y, LOSS_CODES[self.arch.loss], total)

    def trained_in(self, ws: Workspace) -> None:
        """A training step ran in `ws`: its nodes, gradients and masks are the batch's (layer
        statistics and last_masks() read them)."""
        self.batch_ws = ws
        self.last_train_mode_ws = ws

    @property
    def last_workspace(self) -> Workspace | None:
        return self._last_ws

    def last_masks(self) -> dict[str, np.ndarray]:
        """The 0/1 keep masks of the last train-mode pass (a training step, or forward /
        loss_and_grads with train=True): dropout{l} (B, h), dropconnect{l} (n_in, n_out)."""
        ws = self.last_train_mode_ws
        if ws is None:
            return {}
        masks = {}
        for layer in self.plan.layers:
            if layer.dropout_op >= 0:
                a0 = int(ws.ops[layer.dropout_op, K.O_AUX])
                masks[f"dropout{layer.index}"] = ws.aux[a0:a0 + ws.batch * layer.n_out].reshape(ws.batch, layer.n_out).copy()
            if ws.ops[layer.dense_op, K.O_MODE] == 1:
                a0 = int(ws.ops[layer.dense_op, K.O_AUX])
                size = layer.n_in * layer.fan_out
                masks[f"dropconnect{layer.index}"] = ws.aux[a0:a0 + size].reshape(layer.n_in, layer.fan_out).copy()
        return masks
