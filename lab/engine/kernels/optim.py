"""Penalties, global-norm clipping and the optimizer update, fused over one flat buffer.

All parameters live in one contiguous array, so an update is a single pass, whatever
the network's shape.  `reg` marks the entries that are penalised and decayed (W only).
"""

from __future__ import annotations

import math

import numpy as np

from lab import vocabulary

from ._jit import elementwise, inline, jit, reduction

SGD, MOMENTUM, NESTEROV, RMSPROP, ADAM, ADAMW = range(6)
OPTIMIZER_CODES = vocabulary.codes(vocabulary.OPTIMIZERS)  # name -> code; tests check they agree

# Layout of the `hyper` array passed to the kernels.
H_MOMENTUM, H_BETA1, H_BETA2, H_EPS, H_WEIGHT_DECAY, H_L1, H_L2, H_CLIP = range(8)
N_HYPER = 8


@jit
def penalised_grad(g, w, is_reg, l1, l2):
    """Gradient of data loss + 0.5*l2*w^2 + l1*|w| for one entry.

    sign(w) is computed without a branch: weights have random signs, and a mispredicted
    branch per entry made this loop 4.5x slower on a 6.3M-parameter network.
    """
    if is_reg:  # predictable: W blocks and bias blocks alternate rarely
        g += l2 * w + l1 * ((w > 0) * 1.0 - (w < 0) * 1.0)
    return g


@inline
def decayed(w, decay, is_reg):
    """w after decoupled weight decay (AdamW; decay = lr * weight_decay), for W entries only.

    A select, not w - decay*w*is_reg: converting the bool mask to a float factor per entry
    cost 0.6 ms of a 2.4 ms momentum pass over 6.3M parameters, weight decay or not.
    The results are the same bits (multiplying by 1.0 is exact).
    """
    return w - decay * w if is_reg else w


@reduction
def sum_of_squares(x):
    """sum(x**2), accumulated in float64.

    Compiled with reassociation allowed (see `reduction` in _jit.py): LLVM then keeps
    vector-width partial sums, 0.45 ms over 6.3M float32 values against 3.3 ms for the
    one serial chain (1.5 ms with eight hand-interleaved chains, still scalar code).
    """
    s = 0.0
    for i in range(x.size):
        a = np.float64(x[i])
        s += a * a
    return s


@reduction
def penalty_and_sq_norm(params, grads, reg, l1, l2):
    """Return (penalty added to the loss, squared norm of the total gradient).

    Two sums over the flat buffer, vectorised like sum_of_squares (`reduction`).
    """
    pen = 0.0
    sq = 0.0
    if l1 == 0.0 and l2 == 0.0:  # the common case: no penalty, the gradient is the data gradient
        return pen, sum_of_squares(grads)
    for i in range(params.size):
        w = params[i]
        if reg[i]:
            pen += 0.5 * l2 * w * w + l1 * abs(w)
        g = penalised_grad(grads[i], w, reg[i], l1, l2)
        sq += g * g
    return pen, sq


@elementwise
def optimizer_update(code, params, grads, reg, hyper, scale, lr, t, m1, m2, last_update, record):
    """Apply one update in place; t is the 1-based step count (Adam's bias correction).

    scale is the clipping factor (1.0 when not clipping).  When `record`, the change of
    every parameter is written to last_update (the Snapshot's update/weight ratio).
    Returns False if any parameter became non-finite.

    Neither `record` nor whether W entries need their own treatment is tested inside the
    update loops.  Left as branches there, LLVM
    if-converted them: every entry computed the penalised gradient and issued a masked
    store to last_update, and the momentum pass over 6.3M parameters took 3.2 ms instead
    of 2.4 ms (52 ms when last_update's pages had never been written: a masked store to an
    untouched page faults even with its mask off).  So `_apply_rule` is inlined twice, with
    `by_role` (do W entries get a penalty or decay?) a constant, and the change is
    recorded by a copy before and a difference after: two more passes, but only on the
    step whose change is recorded (the last of a chunk), and the same float32 difference
    as computing it in the loop.
    """
    if record:
        # Loops rather than last_update[:] = params: an array-to-array slice assignment
        # brings in numba's shape-mismatch error formatting, 1-2 s of every first compile.
        for i in range(params.size):
            last_update[i] = params[i]
    # W entries differ from the rest only under a penalty or weight decay; without
    # either, the loops need not read `reg` at all (6.3M reads of it cost 0.12 ms).
    if hyper[H_L1] != 0.0 or hyper[H_L2] != 0.0 or lr * hyper[H_WEIGHT_DECAY] != 0.0:
        ok = _apply_rule(code, params, grads, reg, hyper, scale, lr, t, m1, m2, True)
    else:
        ok = _apply_rule(code, params, grads, reg, hyper, scale, lr, t, m1, m2, False)
    if record:
        for i in range(params.size):
            last_update[i] = params[i] - last_update[i]
    return ok


@inline
def _grad(i, grads, params, reg, l1, l2, by_role):
    return penalised_grad(grads[i], params[i], reg[i], l1, l2) if by_role else grads[i]


@inline
def _decayed(i, params, reg, decay, by_role):
    return decayed(params[i], decay, reg[i]) if by_role else params[i]


@inline
def _apply_rule(code, params, grads, reg, hyper, scale, lr, t, m1, m2, by_role):
    """The update loops of optimizer_update; with by_role, W entries (reg) get the penalty's
    gradient and the decoupled weight decay (either may be zero), without it neither.

    One loop per rule, with the rule chosen outside it: a branch on `code` inside the loop
    kept LLVM from vectorising (momentum over 6.3M parameters: 21 ms, numpy's three
    vectorised passes: ~6 ms).
    """
    mu = hyper[H_MOMENTUM]
    b1 = hyper[H_BETA1]
    b2 = hyper[H_BETA2]
    eps = hyper[H_EPS]
    wd = hyper[H_WEIGHT_DECAY]
    l1 = hyper[H_L1]
    l2 = hyper[H_L2]
    c1 = 1.0 - b1**t
    c2 = 1.0 - b2**t
    decay = lr * wd
    n = params.size
    # Each loop flags non-finite results: (q - q) is NaN exactly when q is +-inf or NaN,
    # and an OR over flags vectorises; a separate early-exit scan cost 1.5 ms of a 17 ms step
    # on 6.3M parameters.  q is re-read after the store because rounding to float32 can
    # overflow a finite float64 value.
    bad = False
    if code == SGD:
        for i in range(n):
            g = _grad(i, grads, params, reg, l1, l2, by_role)
            p = _decayed(i, params, reg, decay, by_role)
            params[i] = p - lr * (g * scale)
            q = params[i]
            bad |= (q - q) != 0.0
    elif code == MOMENTUM:
        for i in range(n):
            g = _grad(i, grads, params, reg, l1, l2, by_role)
            v = mu * m1[i] - lr * (g * scale)
            m1[i] = v
            params[i] = _decayed(i, params, reg, decay, by_role) + v
            q = params[i]
            bad |= (q - q) != 0.0
    elif code == NESTEROV:
        for i in range(n):
            g = _grad(i, grads, params, reg, l1, l2, by_role)
            v_prev = m1[i]
            v = mu * v_prev - lr * (g * scale)
            m1[i] = v
            params[i] = _decayed(i, params, reg, decay, by_role) + (-mu * v_prev + (1.0 + mu) * v)
            q = params[i]
            bad |= (q - q) != 0.0
    elif code == RMSPROP:
        for i in range(n):
            g = _grad(i, grads, params, reg, l1, l2, by_role) * scale
            c = b2 * m2[i] + (1.0 - b2) * g * g
            m2[i] = c
            params[i] = _decayed(i, params, reg, decay, by_role) - lr * g / (math.sqrt(c) + eps)
            q = params[i]
            bad |= (q - q) != 0.0
    else:  # ADAM, ADAMW (the decoupled decay is what makes AdamW)
        for i in range(n):
            g = _grad(i, grads, params, reg, l1, l2, by_role) * scale
            m = b1 * m1[i] + (1.0 - b1) * g
            v = b2 * m2[i] + (1.0 - b2) * g * g
            m1[i] = m
            m2[i] = v
            params[i] = _decayed(i, params, reg, decay, by_role) - lr * (m / c1) / (math.sqrt(v / c2) + eps)
            q = params[i]
            bad |= (q - q) != 0.0
    return not bad
