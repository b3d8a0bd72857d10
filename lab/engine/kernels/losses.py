"""Losses on scores (B, C) with integer labels: value, gradient and correct count in one pass.

Mixup trains on blended targets: example i counts lam[i] for label y[i] and 1 - lam[i]
for label y2[i].  Every loss here is linear in its target, so the loss and its gradient
are the same blend of the two single-label ones.
"""

from __future__ import annotations

import math

import numpy as np

from lab import vocabulary

from ._jit import jit

SOFTMAX, MSE, HINGE = 0, 1, 2
LOSS_CODES = vocabulary.codes(vocabulary.LOSSES)  # name -> code; tests check they agree


# Each loss loops over the rows itself: a helper called once per row with the arrays as
# arguments cost four atomic reference-count operations a row (half of all such
# operations in a training step of the small network).


@jit
def _argmax_correct(scores, y):
    B, C = scores.shape
    correct = 0
    for i in range(B):
        best = 0
        for j in range(1, C):
            if scores[i, j] > scores[i, best]:
                best = j
        if best == y[i]:
            correct += 1
    return correct


@jit
def _softmax(scores, y, y2, lam, dscores):
    """Cross-entropy against the blend w*onehot(y) + (1-w)*onehot(y2) (w = lam[i]).

    The probabilities are the same for both labels, so each exp is taken once (kept in
    dscores until normalised): dL/ds = (p - w*onehot(y) - (1-w)*onehot(y2)) / B.
    """
    B, C = scores.shape
    total = 0.0
    for i in range(B):
        w = lam[i]
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
        total += w * (lse - (scores[i, y[i]] - mx))
        if w < 1.0:
            total += (1.0 - w) * (lse - (scores[i, y2[i]] - mx))
        for j in range(C):
            dscores[i, j] = dscores[i, j] / norm / B
        dscores[i, y[i]] -= w / B
        if w < 1.0:
            dscores[i, y2[i]] -= (1.0 - w) / B
    return total


@jit
def _linear_in_target(code, scores, y, y2, lam, dscores):
    """MSE (mean over classes of (s - onehot)^2) and multiclass hinge (CS231n SVM, margin 1).

    Both are linear in the target, so mixup adds the two labels' terms, weighted.
    """
    B, C = scores.shape
    total = 0.0
    for i in range(B):
        for j in range(C):
            dscores[i, j] = 0.0
        for part in range(2):
            label = y[i] if part == 0 else y2[i]
            weight = lam[i] if part == 0 else 1.0 - lam[i]
            if weight == 0.0:
                continue
            row = 0.0
            if code == MSE:
                for j in range(C):
                    d = scores[i, j] - (1.0 if j == label else 0.0)
                    row += d * d / C
                    dscores[i, j] += weight * 2.0 * d / (B * C)
            else:
                sy = scores[i, label]
                violations = 0
                for j in range(C):
                    if j == label:
                        continue
                    margin = scores[i, j] - sy + 1.0
                    if margin > 0:
                        row += margin
                        dscores[i, j] += weight / B
                        violations += 1
                dscores[i, label] -= weight * violations / B
            total += weight * row
    return total


@jit
def loss_forward_backward(code, scores, y, y2, lam, dscores):
    """Return (mean loss, number correct w.r.t. y); write dL/dscores into dscores (B, C)."""
    B = scores.shape[0]
    if code == SOFTMAX:
        total = _softmax(scores, y, y2, lam, dscores)
    else:
        total = _linear_in_target(code, scores, y, y2, lam, dscores)
    return total / B, _argmax_correct(scores, y)


@jit
def plain_loss(code, scores, y, dscores):
    """The loss without mixup (every example weight 1 on its own label).

    The weights are float64, as training's mixup weights are: one compilation of the loss
    serves both (float32 weights were a second one, ~1.3 s of every first run).  A weight
    of exactly 1 gives the same bits in either type."""
    return loss_forward_backward(code, scores, y, y, np.ones(scores.shape[0]), dscores)
