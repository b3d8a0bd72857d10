"""Losses on scores (B, C) with integer labels: value, gradient and correct count in one pass."""

from __future__ import annotations

import math

from ._jit import jit

SOFTMAX, MSE, HINGE = 0, 1, 2
LOSS_CODES = {"softmax": SOFTMAX, "mse": MSE, "hinge": HINGE}


@jit
def loss_forward_backward(code, scores, y, dscores):
    """Return (mean loss, number correct); write dL/dscores into dscores (B, C)."""
    B, C = scores.shape
    total = 0.0
    correct = 0
    for i in range(B):
        yi = y[i]
        best = 0
        for j in range(1, C):
            if scores[i, j] > scores[i, best]:
                best = j
        if best == yi:
            correct += 1
        if code == SOFTMAX:
            mx = scores[i, best]
            norm = 0.0
            for j in range(C):
                norm += math.exp(scores[i, j] - mx)
            total += math.log(norm) - (scores[i, yi] - mx)
            for j in range(C):
                p = math.exp(scores[i, j] - mx) / norm
                dscores[i, j] = (p - (1.0 if j == yi else 0.0)) / B
        elif code == MSE:
            for j in range(C):
                d = scores[i, j] - (1.0 if j == yi else 0.0)
                total += d * d / C
                dscores[i, j] = 2.0 * d / (B * C)
        else:  # multiclass hinge (CS231n SVM), margin 1
            sy = scores[i, yi]
            violations = 0
            for j in range(C):
                if j == yi:
                    continue
                margin = scores[i, j] - sy + 1.0
                if margin > 0:
                    total += margin
                    dscores[i, j] = 1.0 / B
                    violations += 1
                else:
                    dscores[i, j] = 0.0
            dscores[i, yi] = -violations / B
    return total / B, correct
