"""The network driver: a whole forward/backward pass, and a chunk of training steps, in one call.

Small networks are dominated by Python-to-numba dispatch (microseconds a call), so the
loop over layers and the loop over the n steps of `Simulation.step(n)` both live here.
The network is described by an *op table* (ints) and a float table, built in Python by
`lab.engine.network`; every array the ops read or write is a slice of a few flat
buffers, addressed by offsets in the table, and taken as a borrowed view (views.py: no
reference counting; such a view never leaves the compiled call):

    acts / dacts   node values and their gradients; node i is (B, width_i) at node_off[i]
    params / grads every parameter, one contiguous buffer (the optimizer's single pass)
    state          batchnorm running statistics (not trained by gradient)
    aux / iaux     per-op caches: dropout masks, dropconnect masks and weights,
                   batchnorm xhat and 1/std, maxout argmax

The drivers (train_steps, evaluate, loss_and_grads) call the passes, and the passes the
activations, through the workspace's address table (links.py: each compiles once, on its
own; `link` fills the table before a call from Python).

The arrays travel in a few NamedTuples (numba passes them as plain structs, so a call reads
as its named parts at no cost): a `Workspace` (one batch size's op table and buffers), the
network's `Weights`, and for training the `Data`, its `Augment`ation, the `Optimizer` and
the `Outputs` a call writes.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ._jit import flag, jit
from .activations import MAXOUT, activation_backward, activation_forward, maxout_backward, maxout_forward
from .dense import dense_backward, dense_forward, dropconnect_grad, dropconnect_weights
from .augment import augment_batch  # called through links (link())
from .links import address_of, call_linked
from .losses import loss_forward_backward, plain_loss
from .optim import H_CLIP, H_L1, H_L2, optimizer_update, penalty_and_sq_norm
from .regularizers import batchnorm_backward, batchnorm_forward, dropout_backward, dropout_forward
from .shuffle import shuffle
from .views import borrowed_1d, borrowed_2d

# Op kinds.
DENSE, BATCHNORM, ACTIVATION, DROPOUT, RESIDUAL_ADD = range(5)

# Int columns of the op table.
(O_KIND, O_IN, O_OUT, O_SKIP, O_P0, O_P1, O_AUX, O_IAUX, O_CODE, O_MODE, O_STATE,
 O_NEED_DX, O_ACC_IN, O_ACC_SKIP) = range(14)
N_INT_COLS = 14
# Float columns.
F_KEEP, F_ALPHA, F_EPS, F_MOMENTUM = range(4)
N_FLOAT_COLS = 4
# Rows of a workspace's address table (links.py): the kernels called through it, by the
# drivers (the passes, augmentation) and by the passes (the activations, nine kernels each way).
L_FORWARD, L_BACKWARD, L_AUGMENT, L_ACT_FORWARD, L_ACT_BACKWARD = range(5)
N_LINKS = 5
FORWARD_LINKS = (L_FORWARD, L_ACT_FORWARD)  # what a forward pass needs
TRAINING_LINKS = FORWARD_LINKS + (L_BACKWARD, L_ACT_BACKWARD)  # a training step (augment_batch only when augmenting)


class Workspace(NamedTuple):
    """The buffers one batch size runs in (Network.workspace builds them, once per size)."""

    batch: int
    ops: np.ndarray  # (n_ops, N_INT_COLS) int64: the op table
    fops: np.ndarray  # (n_ops, N_FLOAT_COLS) float64
    node_off: np.ndarray  # node i starts at node_off[i] in acts / dacts
    node_w: np.ndarray  # and is (batch, node_w[i])
    acts: np.ndarray  # node values
    dacts: np.ndarray  # their gradients
    aux: np.ndarray  # per-op float caches (masks, xhat, 1/std)
    iaux: np.ndarray  # per-op int caches (maxout argmax)
    ybuf: np.ndarray  # the batch's labels
    y2buf: np.ndarray  # mixup partners' labels
    lambuf: np.ndarray  # mixup weights (1 = no mixing)
    scratch: np.ndarray  # small batches: a node's worth of room for transposed products (blas.product_nt)
    links: np.ndarray  # (N_LINKS, 2) int64: address and type tag of each kernel called through it (L_*)

    def __reduce__(self):
        """Pickled or deep-copied without its address table: addresses mean nothing in another
        process, and an empty table is refilled (`link`) before the next call."""
        return Workspace, (*self[:-1], np.zeros_like(self.links))

    def node(self, i: int, rows: int | None = None) -> np.ndarray:
        """Node i as a (rows, width) view (rows defaults to the batch size); Python only."""
        b = self.batch if rows is None else rows
        start = int(self.node_off[i])
        return self.acts[start:start + b * int(self.node_w[i])].reshape(b, int(self.node_w[i]))

    def grad_node(self, i: int, rows: int | None = None) -> np.ndarray:
        b = self.batch if rows is None else rows
        start = int(self.node_off[i])
        return self.dacts[start:start + b * int(self.node_w[i])].reshape(b, int(self.node_w[i]))


class Weights(NamedTuple):
    """The network's own buffers."""

    params: np.ndarray  # every parameter, flat
    grads: np.ndarray  # their gradients, aligned
    state: np.ndarray  # batchnorm running statistics
    reg: np.ndarray  # uint8: 1 where a weight decays / is penalised (the W matrices)


class Data(NamedTuple):
    """The training set and where the epoch is."""

    X: np.ndarray  # (N, D)
    Y: np.ndarray  # (N,) int64
    perm: np.ndarray  # this epoch's order
    cursor: np.ndarray  # (1,): the next row of perm (N: shuffle first)


class Augment(NamedTuple):
    """Batch augmentation (kernels/augment.py; all-zero params = off)."""

    params: np.ndarray
    image_shape: np.ndarray  # (C, H, W) of a row
    tmp: np.ndarray  # one row's scratch


class Optimizer(NamedTuple):
    """The update rule, its hyperparameters and state (kernels/optim.py)."""

    code: int
    hyper: np.ndarray
    m1: np.ndarray
    m2: np.ndarray
    t: np.ndarray  # (1,): updates so far
    first: int  # the first trained parameter: those before it (the lower layers') are frozen


class Outputs(NamedTuple):
    """What a training call writes: per-step scalars, the last update, the traced parameters."""

    loss: np.ndarray
    acc: np.ndarray
    gnorm: np.ndarray
    last_update: np.ndarray  # the last step's parameter change
    trace_idx: np.ndarray  # flat parameter indices recorded after every step
    trace: np.ndarray  # (steps, trace_idx.size)


@jit
def node_view(buf, node_off, node_w, i, B):
    """Node i of a node buffer as a (B, width) C-contiguous borrowed view (kernels only)."""
    return borrowed_2d(buf, node_off[i], B, node_w[i])


@jit
def forward(ws, B, net, rng, train, update_running):
    """Run every op of Workspace `ws` in order on its first B rows; the last node holds the
    scores (B, C)."""
    ops, fops, node_off, node_w, acts, aux, iaux = ws.ops, ws.fops, ws.node_off, ws.node_w, ws.acts, ws.aux, ws.iaux
    params, state = net.params, net.state
    for k in range(ops.shape[0]):
        kind = ops[k, O_KIND]
        x = node_view(acts, node_off, node_w, ops[k, O_IN], B)
        out = node_view(acts, node_off, node_w, ops[k, O_OUT], B)
        n_in = x.shape[1]
        n_out = out.shape[1]
        if kind == DENSE:
            size = n_in * n_out
            w = borrowed_2d(params, ops[k, O_P0], n_in, n_out)
            b = borrowed_1d(params, ops[k, O_P1], n_out)
            if ops[k, O_MODE] == 1 and train:
                a0 = ops[k, O_AUX]
                mask = borrowed_2d(aux, a0, n_in, n_out)
                w_eff = borrowed_2d(aux, a0 + size, n_in, n_out)
                dropconnect_weights(w, mask, w_eff, fops[k, F_KEEP], rng, flag(True))
                dense_forward(x, w_eff, b, out)
            else:
                dense_forward(x, w, b, out)
        elif kind == BATCHNORM:
            gamma = borrowed_1d(params, ops[k, O_P0], n_out)
            beta = borrowed_1d(params, ops[k, O_P1], n_out)
            s0 = ops[k, O_STATE]
            a0 = ops[k, O_AUX]
            xhat = borrowed_2d(aux, a0, B, n_out)
            inv_std = borrowed_1d(aux, a0 + B * n_out, n_out)
            batchnorm_forward(x, gamma, beta, out, xhat, inv_std, borrowed_1d(state, s0, n_out),
                              borrowed_1d(state, s0 + n_out, n_out), fops[k, F_EPS], fops[k, F_MOMENTUM],
                              train, update_running)
        elif kind == ACTIVATION:
            code = ops[k, O_CODE]
            if code == MAXOUT:
                i0 = ops[k, O_IAUX]
                maxout_forward(x, out, borrowed_2d(iaux, i0, B, n_out))
            else:
                p0 = ops[k, O_P0]
                slope = borrowed_1d(params, max(p0, 0), n_out if p0 >= 0 else 0)
                call_linked(ws.links[L_ACT_FORWARD, 0], ws.links[L_ACT_FORWARD, 1],
                            (code, x, out, fops[k, F_ALPHA], slope))
        elif kind == DROPOUT:
            a0 = ops[k, O_AUX]
            mask = borrowed_2d(aux, a0, B, n_out)
            dropout_forward(x, out, mask, fops[k, F_KEEP], ops[k, O_MODE], train, rng)
        else:  # RESIDUAL_ADD
            skip = node_view(acts, node_off, node_w, ops[k, O_SKIP], B)
            for i in range(B):
                for j in range(n_out):
                    out[i, j] = x[i, j] + skip[i, j]


@jit
def backward(ws, B, net, train):
    """Reverse pass: ws.dacts[last node] must hold dL/dscores; fills net.grads (data loss only)."""
    ops, fops, node_off, node_w, acts, dacts, aux, iaux = (ws.ops, ws.fops, ws.node_off, ws.node_w, ws.acts,
                                                          ws.dacts, ws.aux, ws.iaux)
    params, grads = net.params, net.grads
    for k in range(ops.shape[0] - 1, -1, -1):
        kind = ops[k, O_KIND]
        x = node_view(acts, node_off, node_w, ops[k, O_IN], B)
        out = node_view(acts, node_off, node_w, ops[k, O_OUT], B)
        dx = node_view(dacts, node_off, node_w, ops[k, O_IN], B)
        dout = node_view(dacts, node_off, node_w, ops[k, O_OUT], B)
        n_in = x.shape[1]
        n_out = out.shape[1]
        if kind == DENSE:
            size = n_in * n_out
            p0 = ops[k, O_P0]
            w = borrowed_2d(params, p0, n_in, n_out)
            dw = borrowed_2d(grads, p0, n_in, n_out)
            db = borrowed_1d(grads, ops[k, O_P1], n_out)
            dropconnect = ops[k, O_MODE] == 1 and train
            if dropconnect:
                a0 = ops[k, O_AUX]
                w = borrowed_2d(aux, a0 + size, n_in, n_out)
            dense_backward(dout, x, w, dx, dw, db, ops[k, O_NEED_DX] == 1, ops[k, O_ACC_IN] == 1, ws.scratch)
            if dropconnect:
                a0 = ops[k, O_AUX]
                dropconnect_grad(dw, borrowed_2d(aux, a0, n_in, n_out), fops[k, F_KEEP])
        elif kind == BATCHNORM:
            p0 = ops[k, O_P0]
            a0 = ops[k, O_AUX]
            xhat = borrowed_2d(aux, a0, B, n_out)
            inv_std = borrowed_1d(aux, a0 + B * n_out, n_out)
            batchnorm_backward(dout, xhat, inv_std, borrowed_1d(params, p0, n_out), dx,
                               borrowed_1d(grads, p0, n_out), borrowed_1d(grads, ops[k, O_P1], n_out), train)
        elif kind == ACTIVATION:
            code = ops[k, O_CODE]
            if code == MAXOUT:
                i0 = ops[k, O_IAUX]
                maxout_backward(dout, borrowed_2d(iaux, i0, B, n_out), dx)
            else:
                p0 = ops[k, O_P0]
                n_slope = n_out if p0 >= 0 else 0
                slope = borrowed_1d(params, max(p0, 0), n_slope)
                dslope = borrowed_1d(grads, max(p0, 0), n_slope)
                call_linked(ws.links[L_ACT_BACKWARD, 0], ws.links[L_ACT_BACKWARD, 1],
                            (code, dout, x, out, fops[k, F_ALPHA], slope, dx, dslope))
        elif kind == DROPOUT:
            a0 = ops[k, O_AUX]
            dropout_backward(dout, borrowed_2d(aux, a0, B, n_out), fops[k, F_KEEP],
                             ops[k, O_MODE], train, dx)
        else:  # RESIDUAL_ADD: the gradient flows unchanged into both branches
            dskip = node_view(dacts, node_off, node_w, ops[k, O_SKIP], B)
            acc_in = ops[k, O_ACC_IN] == 1
            acc_skip = ops[k, O_ACC_SKIP] == 1
            for i in range(B):
                for j in range(n_out):
                    g = dout[i, j]
                    dx[i, j] = dx[i, j] + g if acc_in else g
                    dskip[i, j] = dskip[i, j] + g if acc_skip else g


@jit
def loss_and_grads(ws, net, rng, y, loss_code, l1, l2, train):
    """One forward and backward pass over ws.batch rows (already in node 0) with no update
    (running statistics untouched).

    Returns (total loss, correct count); net.grads holds the data-loss gradient (the
    penalty's gradient is added by the caller, which owns the parameter names).
    """
    B = ws.batch
    call_linked(ws.links[L_FORWARD, 0], ws.links[L_FORWARD, 1], (ws, B, net, rng, train, flag(False)))
    last = ws.node_off.size - 1
    scores = node_view(ws.acts, ws.node_off, ws.node_w, last, B)
    dscores = node_view(ws.dacts, ws.node_off, ws.node_w, last, B)
    loss, correct = plain_loss(loss_code, scores, y, dscores)
    call_linked(ws.links[L_BACKWARD, 0], ws.links[L_BACKWARD, 1], (ws, B, net, train))
    pen, _ = penalty_and_sq_norm(net.params, net.grads, net.reg, l1, l2)
    return loss + pen, correct


@jit
def evaluate(ws, net, rng, X, Y, loss_code, total):
    """Eval-mode loss (data part, summed, added to `total`) and correct count over X, in
    chunks of ws.batch rows.  A set evaluated in slices of a multiple of ws.batch rows, each
    call given the last one's total, sums in the same order as one call: the same bits."""
    N, D = X.shape
    B = ws.batch
    last = ws.node_off.size - 1
    correct = 0
    start = 0
    while start < N:
        b = min(B, N - start)
        # node 0 as a plain int64: a literal 0 is typed Literal[int](0) and compiles node_view again
        x0 = node_view(ws.acts, ws.node_off, ws.node_w, np.int64(0), b)
        for i in range(b):  # a loop, not x0[:, :] = X[...]: see optim.optimizer_update
            for d in range(D):
                x0[i, d] = X[start + i, d]
        call_linked(ws.links[L_FORWARD, 0], ws.links[L_FORWARD, 1], (ws, b, net, rng, flag(False), flag(False)))
        scores = node_view(ws.acts, ws.node_off, ws.node_w, last, b)
        dscores = node_view(ws.dacts, ws.node_off, ws.node_w, last, b)
        loss, c = plain_loss(loss_code, scores, Y[start:start + b], dscores)
        total += loss * b
        correct += c
        start += b
    return total, correct


@jit
def train_steps(n_steps, lrs, data, augment, ws, net, opt, rng, loss_code, out):
    """Train n_steps minibatch steps of ws.batch rows, step s at learning rate lrs[s]; return
    how many ran (fewer only if the run diverged).

    Batches walk a shuffled permutation of the training set (reshuffled each epoch);
    `data.cursor` (1,) and `opt.t` (1,) carry state between calls, so chunking never
    changes the result.  A non-finite loss or gradient stops before the update; a
    non-finite parameter stops after it.  Either way the diverging step is counted and
    its metrics recorded in `out`, and the caller marks the run diverged.
    With any `augment.params` entry non-zero, each batch is augmented (rows are (C, H, W)
    images of `augment.image_shape`); mixup fills ws.y2buf/lambuf for the loss.  After
    every update the parameters at `out.trace_idx` are written to out.trace[s] (the
    weight-trajectory view: sampling them from the UI would miss the zigzag between frames).
    """
    X, Y, perm, cursor = data.X, data.Y, data.perm, data.cursor
    B, node_off, node_w, acts, dacts = ws.batch, ws.node_off, ws.node_w, ws.acts, ws.dacts
    ybuf, y2buf, lambuf = ws.ybuf, ws.y2buf, ws.lambuf
    params, grads, reg = net.params, net.grads, net.reg
    hyper, m1, m2, t_count = opt.hyper, opt.m1, opt.m2, opt.t
    aug, image_shape, img_tmp = augment.params, augment.image_shape, augment.tmp
    out_loss, out_acc, out_gnorm, last_update, trace_idx, trace_out = out
    # Frozen layers (transfer learning) are a prefix of the flat buffer (parameters are laid
    # out in forward order), so the trained ones are one contiguous tail: the update and the
    # gradient norm run over it alone, and the prefix is never written (bit-identical).
    f0 = opt.first
    nt = params.size - f0
    t_params, t_grads, t_reg = borrowed_1d(params, f0, nt), borrowed_1d(grads, f0, nt), borrowed_1d(reg, f0, nt)
    t_m1, t_m2, t_last = borrowed_1d(m1, f0, nt), borrowed_1d(m2, f0, nt), borrowed_1d(last_update, f0, nt)
    N, D = X.shape
    last = node_off.size - 1
    x0 = node_view(acts, node_off, node_w, np.int64(0), B)  # np.int64: see evaluate
    scores = node_view(acts, node_off, node_w, last, B)
    dscores = node_view(dacts, node_off, node_w, last, B)
    l1 = hyper[H_L1]
    l2 = hyper[H_L2]
    clip = hyper[H_CLIP]
    augmenting = False
    for k in range(aug.size):
        if aug[k] != 0.0:
            augmenting = True
    for i in range(B):
        lambuf[i] = 1.0
    for s in range(n_steps):
        # 1) next minibatch
        if cursor[0] + B > N:
            shuffle(rng, perm)
            cursor[0] = 0
        c0 = cursor[0]
        for i in range(B):
            r = perm[c0 + i]
            for d in range(D):
                x0[i, d] = X[r, d]
            ybuf[i] = Y[r]
        cursor[0] = c0 + B
        if augmenting:
            call_linked(ws.links[L_AUGMENT, 0], ws.links[L_AUGMENT, 1],
                        (x0, ybuf, y2buf, lambuf, aug, image_shape[0], image_shape[1], image_shape[2], rng, img_tmp))
        else:
            for i in range(B):
                y2buf[i] = ybuf[i]
        # 2) forward, loss, backward
        call_linked(ws.links[L_FORWARD, 0], ws.links[L_FORWARD, 1], (ws, B, net, rng, flag(True), flag(True)))
        loss, correct = loss_forward_backward(loss_code, scores, ybuf, y2buf, lambuf, dscores)
        call_linked(ws.links[L_BACKWARD, 0], ws.links[L_BACKWARD, 1], (ws, B, net, flag(True)))
        # 3) penalties and the global gradient norm
        if f0 == 0:
            pen, sq = penalty_and_sq_norm(params, grads, reg, l1, l2)
        else:  # the frozen weights' penalty is still part of the loss; their gradient is not applied
            pen, _ = penalty_and_sq_norm(borrowed_1d(params, 0, f0), borrowed_1d(grads, 0, f0),
                                         borrowed_1d(reg, 0, f0), l1, l2)
            pen_t, sq = penalty_and_sq_norm(t_params, t_grads, t_reg, l1, l2)
            pen += pen_t
        loss += pen
        gnorm = math.sqrt(sq)
        out_loss[s] = loss
        out_acc[s] = correct / B
        out_gnorm[s] = gnorm
        if not (math.isfinite(loss) and math.isfinite(gnorm)):
            return s + 1
        # 4) clip and update
        scale = clip / gnorm if clip > 0.0 and gnorm > clip else 1.0
        t_count[0] += 1
        ok = optimizer_update(opt.code, t_params, t_grads, t_reg, hyper, scale, lrs[s], t_count[0],
                              t_m1, t_m2, t_last, s == n_steps - 1)
        for k in range(trace_idx.size):
            trace_out[s, k] = params[trace_idx[k]]
        if not ok:
            return s + 1
    return n_steps


# -- the address tables (Python) -------------------------------------------------------------
def linked_signatures(ws: Workspace, net: Weights, rng, augment: Augment | None = None) -> dict:
    """The argument types the drivers call each linked kernel with, by table row (augment_batch
    only given the batch's Augment): the types its table entry must be compiled for."""
    import numba
    from numba import types

    ws_t, net_t, rng_t = numba.typeof(ws), numba.typeof(net), numba.typeof(rng)
    rows = types.Array(numba.from_dtype(ws.acts.dtype), 2, "C")  # a node, as borrowed_2d types it
    vec = types.Array(numba.from_dtype(ws.acts.dtype), 1, "C")  # a parameter slice, as borrowed_1d types it
    f8, i8 = types.float64, types.int64
    sigs = {L_FORWARD: (ws_t, i8, net_t, rng_t, types.boolean, types.boolean),
            L_BACKWARD: (ws_t, i8, net_t, types.boolean),
            L_ACT_FORWARD: (i8, rows, rows, f8, vec),
            L_ACT_BACKWARD: (i8, rows, rows, rows, f8, vec, rows, vec)}
    if augment is not None:
        sigs[L_AUGMENT] = (rows, numba.typeof(ws.ybuf), numba.typeof(ws.y2buf), numba.typeof(ws.lambuf),
                           numba.typeof(augment.params), types.int64, types.int64, types.int64, rng_t,
                           numba.typeof(augment.tmp))
    return sigs


LINKED_KERNELS = {L_FORWARD: forward, L_BACKWARD: backward, L_AUGMENT: augment_batch,
                  L_ACT_FORWARD: activation_forward, L_ACT_BACKWARD: activation_backward}


def link(ws: Workspace, net: Weights, rng, rows=TRAINING_LINKS, augment: Augment | None = None) -> None:
    """Fill the rows of ws.links the next driver call needs (compiling or loading those kernels
    the first time); rows already filled are left alone."""
    missing = [row for row in rows if ws.links[row, 1] == 0]
    if not missing:
        return
    sigs = linked_signatures(ws, net, rng, augment)
    for row in missing:
        ws.links[row] = address_of(LINKED_KERNELS[row], sigs[row])
