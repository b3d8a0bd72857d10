"""The ensemble's arithmetic, in float64 numpy (tests/test_ensemble.py holds it to a plain reference).

probs: (K, n, C), member k's softmax probabilities for the n validation rows, in member order.
`mean`: the class of the highest averaged probability (argmax's first on a tie);
`vote`: each member's predicted class is a vote; the class with most votes wins, a tie going
to the tied class with the higher averaged probability, then to the lower class number.
The ensemble's loss is always the cross-entropy of the averaged probabilities.
"""

from __future__ import annotations

import numpy as np

TINY = np.finfo(np.float64).tiny  # -log of a probability that rounded to 0 is large, not inf


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, with the max-shift."""
    z = np.asarray(scores, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def mean_probs(probs: np.ndarray) -> np.ndarray:
    """(n, C): the members' probabilities averaged, summed in member order."""
    probs = np.asarray(probs, dtype=np.float64)
    total = probs[0].copy()
    for k in range(1, probs.shape[0]):
        total += probs[k]
    return total / probs.shape[0]


def vote(probs: np.ndarray) -> np.ndarray:
    """(n,): the majority class of the members' predictions (ties as the module says)."""
    probs = np.asarray(probs, dtype=np.float64)
    K, n, C = probs.shape
    picks = probs.argmax(axis=2)  # (K, n)
    counts = np.zeros((n, C), dtype=np.int64)
    rows = np.arange(n)
    for k in range(K):
        counts[rows, picks[k]] += 1
    tied = counts == counts.max(axis=1, keepdims=True)
    return np.where(tied, mean_probs(probs), -np.inf).argmax(axis=1)


def predict(probs: np.ndarray, combine: str = "mean") -> np.ndarray:
    if combine == "vote":
        return vote(probs)
    if combine == "mean":
        return mean_probs(probs).argmax(axis=1)
    raise ValueError(f"combine must be mean or vote, not {combine!r}")


def cross_entropy(p: np.ndarray, y: np.ndarray) -> float:
    """Mean of -log p[i, y_i] (a probability that rounded to 0 counts as the smallest float)."""
    if y.size == 0:
        return float("nan")
    picked = p[np.arange(y.size), y]
    return float(-np.mean(np.log(np.maximum(picked, TINY))))


def accuracy(labels: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(labels == y)) if y.size else float("nan")


def member_metrics(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """One member's (val_acc, val_loss) from its probabilities."""
    return accuracy(p.argmax(axis=1), y), cross_entropy(p, y)


def ensemble_metrics(probs: np.ndarray, y: np.ndarray, combine: str = "mean") -> dict[str, float]:
    """The vocabulary's ensemble metrics (lab/vocabulary.py, series "ensemble") for K members."""
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    members = [member_metrics(probs[k], y) for k in range(probs.shape[0])]
    accs = np.array([a for a, _ in members])
    losses = np.array([loss for _, loss in members])
    acc = accuracy(predict(probs, combine), y)
    loss = cross_entropy(mean_probs(probs), y)
    return {"ensemble_val_acc": acc,
            "ensemble_val_loss": loss,
            "member_val_acc_mean": float(np.mean(accs)),
            "member_val_acc_best": float(np.max(accs)),
            "member_val_loss_mean": float(np.mean(losses)),
            "ensemble_gain_mean": acc - float(np.mean(accs)),
            "ensemble_gain_best": acc - float(np.max(accs)),
            "ensemble_loss_drop": float(np.mean(losses)) - loss}
