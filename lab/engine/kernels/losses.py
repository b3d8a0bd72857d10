"""Losses on scores (B, C) with integer labels: value, gradient and correct count in one pass.

Mixup trains on blended targets: example i counts lam[i] for label y[i] and 1 - lam[i]
for label y2[i].  Every loss here is linear in its target, so the loss and its gradient
are the same blend of the two single-label ones.
"""

from __future__ import annotations

import math

from ._jit import jit

SOFTMAX, MSE, HINGE = 0, 1, 2
LOSS_CODES = {"softmax": SOFTMAX, "mse": MSE, "hinge": HINGE}


@jit
def _softmax_row(scores, dscores, i, y1, y2, w, B):
    """Softmax cross-entropy of row i against the blend w*onehot(y1) + (1-w)*onehot(y2).

    The probabilities are the same for both labels, so each exp is taken once (kept in
    dscores until normalised): dL/ds = (p - w*onehot(y1) - (1-w)*onehot(y2)) / B.
    """
    C = scores.shape[1]
    mx = scores[i, 0]
    for j in range(1, C):
        if scores[i, j] > mx:
            mx = scores[i, j]
    norm = 0.0
    for j in range(C):
        e = math.exp(scores[i, j] - mx)
        dscores[i, j] = e
        norm += e
    lse = math.log(norm)
    total = w * (lse - (scores[i, y1] - mx))
    if w < 1.0:
        total += (1.0 - w) * (lse - (scores[i, y2] - mx))
    for j in range(C):
        dscores[i, j] = dscores[i, j] / norm / B
    dscores[i, y1] -= w / B
    if w < 1.0:
        dscores[i, y2] -= (1.0 - w) / B
    return total


@jit
def _example(code, scores, dscores, i, yi, weight, B):
    """Add weight * (loss of row i for label yi) / B's gradient to dscores[i]; return the loss."""
    C = scores.shape[1]
    total = 0.0
    if code == MSE:
        for j in range(C):
            d = scores[i, j] - (1.0 if j == yi else 0.0)
            total += d * d / C
            dscores[i, j] += weight * 2.0 * d / (B * C)
    else:  # multiclass hinge (CS231n SVM), margin 1
        sy = scores[i, yi]
        violations = 0
        for j in range(C):
            if j == yi:
                continue
            margin = scores[i, j] - sy + 1.0
            if margin > 0:
                total += margin
                dscores[i, j] += weight / B
                violations += 1
        dscores[i, yi] -= weight * violations / B
    return total


@jit
def loss_forward_backward(code, scores, y, y2, lam, dscores):
    """Return (mean loss, number correct w.r.t. y); write dL/dscores into dscores (B, C)."""
    B, C = scores.shape
    total = 0.0
    correct = 0
    for i in range(B):
        best = 0
        for j in range(1, C):
            if scores[i, j] > scores[i, best]:
                best = j
        if best == y[i]:
            correct += 1
        w = lam[i]
        if code == SOFTMAX:
            total += _softmax_row(scores, dscores, i, y[i], y2[i], w, B)
            continue
        for j in range(C):
            dscores[i, j] = 0.0
        total += w * _example(code, scores, dscores, i, y[i], w, B)
        if w < 1.0:
            total += (1.0 - w) * _example(code, scores, dscores, i, y2[i], 1.0 - w, B)
    return total / B, correct


@jit
def plain_loss(code, scores, y, dscores):
    """The loss without mixup (every example weight 1 on its own label)."""
    B = scores.shape[0]
    lam = scores[:, 0].copy()
    for i in range(B):
        lam[i] = 1.0
    return loss_forward_backward(code, scores, y, y, lam, dscores)
