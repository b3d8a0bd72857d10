"""Fixed histogram bins, so frames and runs compare honestly.

Activations use linear bins over the range their function can reach (sigmoid [0, 1],
tanh [-1, 1], the rest [-5, 5]).  Gradients, weights and updates span many orders of
magnitude (vanishing gradients are the point), so they use symmetric-log bins: uniform
in sign(v)*log10(1 + |v|/1e-9), i.e. quarter-decade bins from 1e-9 to 1e2.  Values
beyond the range land in the outermost bins.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

SYMLOG_FLOOR = 1e-9


@dataclass(frozen=True)
class Bins:
    lo: float
    hi: float
    count: int
    symlog: bool = False

    def transform(self, v: np.ndarray) -> np.ndarray:
        if not self.symlog:
            return v
        return np.sign(v) * np.log10(1.0 + np.abs(v) / SYMLOG_FLOOR)

    def inverse(self, t: np.ndarray) -> np.ndarray:
        if not self.symlog:
            return t
        return np.sign(t) * (10.0 ** np.abs(t) - 1.0) * SYMLOG_FLOOR

    @property
    def _transformed_edges(self) -> np.ndarray:
        return np.linspace(self.lo, self.hi, self.count + 1)

    @property
    def edges(self) -> np.ndarray:
        """Bin edges in value space (count + 1)."""
        return self.inverse(np.linspace(self.lo, self.hi, self.count + 1))

    def histogram(self, values: np.ndarray) -> np.ndarray:
        """Counts per bin (int64); non-finite values are not counted."""
        v = np.asarray(values, dtype=np.float64).ravel()
        t = self.transform(v[np.isfinite(v)])
        # searchsorted against the exact edges (not floor of a quotient, which can round a
        # value sitting on an edge into the bin below); outliers clip into the end bins
        idx = np.searchsorted(self._transformed_edges, t, side="right") - 1
        np.clip(idx, 0, self.count - 1, out=idx)
        return np.bincount(idx, minlength=self.count)


ACT_BINS = {
    "sigmoid": Bins(0.0, 1.0, 40),
    "tanh": Bins(-1.0, 1.0, 40),
}
WIDE_ACT_BINS = Bins(-5.0, 5.0, 40)
SYMLOG_BINS = Bins(-11.0, 11.0, 88, symlog=True)


@lru_cache(maxsize=None)
def activation_bins(kind: str) -> Bins:
    return ACT_BINS.get(kind, WIDE_ACT_BINS)
