"""Fixed histogram bins, so frames and runs compare honestly.

Activations use linear bins over the range their function can reach (sigmoid [0, 1],
tanh [-1, 1], the rest [-5, 5]).  Gradients, weights and updates span many orders of
magnitude (vanishing gradients are the point), so they use symmetric-log bins: uniform
in sign(v)*log10(1 + |v|/1e-9), i.e. quarter-decade bins from 1e-9 to 1e2.  Values
beyond the range land in the outermost bins.

The bins are defined by their edges in value space (`Bins.edges`, computed once): v is
in bin k iff edges[k] <= v < edges[k + 1], exactly as `np.histogram(v, bins=edges)`
counts.  The log transform only places the edges; it is never applied to a value.  (Binning
transform(v) against the transformed edges put a value lying exactly on an edge one bin
low whenever log10(10**t) rounded below t, which depends on the CPU's SIMD log and pow.)

`Bins.histogram` (numpy) defines the counts.  `Bins.lookup()` gives the same rule in the
form of the one-pass kernel lab.engine.kernels.histogram.summarize, which lab.sim.stats
uses; its counts equal `histogram`'s exactly (tests/test_stats_sampling.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from lab import vocabulary as V

SYMLOG_FLOOR = 1e-9


@dataclass(frozen=True, eq=False)
class BinLookup:
    """A Bins' rule for values of one dtype (float32 or float64): what
    lab.engine.kernels.histogram.summarize needs to reproduce `Bins.histogram` exactly.

    A finite v is in bin k iff thresholds[k] <= v < thresholds[k + 1] (thresholds[0] = -inf,
    thresholds[count] = +inf).  v's key, from its bit pattern u (uint32 or uint64):
    min(max((|u| >> key_shift) - key_base, 0), nkeys - 1) + nkeys * sign bit; key_bin[key] is
    the lowest bin a value with that key can be in, no key's values straddle more than one
    threshold, and v's bin is key_bin[key] + (v >= key_threshold[key]).
    """

    dtype: np.dtype
    thresholds: np.ndarray  # (count + 1,) of dtype
    key_bin: np.ndarray  # (2 * nkeys,) uint32
    key_threshold: np.ndarray  # (2 * nkeys,) of dtype: thresholds[key_bin + 1]
    key_params: np.ndarray  # uint64: key_base, key_shift, sign bit position, magnitude mask, bits of +inf


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

    @cached_property
    def edges(self) -> np.ndarray:
        """Bin edges in value space (count + 1), strictly increasing; they define the bins."""
        edges = self.inverse(np.linspace(self.lo, self.hi, self.count + 1))
        edges.setflags(write=False)
        return edges

    def histogram(self, values: np.ndarray) -> np.ndarray:
        """Counts per bin (int64); non-finite values are not counted, outliers clip into the end bins."""
        v = np.asarray(values, dtype=np.float64).ravel()
        idx = np.searchsorted(self.edges, v[np.isfinite(v)], side="right") - 1
        np.clip(idx, 0, self.count - 1, out=idx)
        return np.bincount(idx, minlength=self.count)

    def lookup(self, dtype=np.float64) -> BinLookup | None:
        """`histogram`'s rule in the kernel's form for arrays of `dtype` (float32 or float64),
        or None if the edges do not stay distinct in that dtype (then only `histogram` is exact)."""
        return _lookup(self, np.dtype(dtype))


# -- the kernel's form of a Bins' rule -----------------------------------------------------------
def _bin_of(thresholds: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.clip(np.searchsorted(thresholds, v, side="right") - 1, 0, thresholds.size - 2)


_FORMATS = {np.dtype(np.float32): (np.uint32, 23, 31), np.dtype(np.float64): (np.uint64, 52, 63)}


def _in_format(thresholds: np.ndarray, dtype: np.dtype) -> np.ndarray | None:
    """Each threshold rounded up to dtype: for v of dtype, v >= up(T) iff float64(v) >= T."""
    t = thresholds.astype(dtype)
    with np.errstate(over="ignore"):
        low = t.astype(np.float64) < thresholds
    t[low] = np.nextafter(t[low], dtype.type(np.inf))
    return t if np.all(np.diff(t[1:-1]) > 0) else None


def _guess_table(thresholds: np.ndarray, mantissa_bits: int) -> tuple[np.ndarray, int, int] | None:
    """Lowest bin per (sign, exponent, top `mantissa_bits` mantissa bits) key of values of
    thresholds' dtype, or None when some key's values straddle two thresholds (then more
    mantissa bits are needed)."""
    dtype = thresholds.dtype
    uint, mantissa, _ = _FORMATS[dtype]
    shift = mantissa - mantissa_bits
    interior = np.abs(thresholds[1:-1])
    nonzero = interior[interior > 0]
    key = lambda m: int(np.asarray(m, dtype).view(uint)) >> shift  # noqa: E731
    base = max(key(nonzero.min()) - 1, 0) if nonzero.size else 0
    top = key(nonzero.max()) + 1 if nonzero.size else 1
    keys = np.arange(base, top + 1, dtype=uint)
    first = (keys << uint(shift)).view(dtype).copy()  # smallest magnitude of each key
    first[0] = 0.0  # key 0 takes every smaller magnitude too
    last = (((keys + uint(1)) << uint(shift)) - uint(1)).view(dtype).copy()
    last[-1] = np.finfo(dtype).max  # the top key takes every larger one
    pos_lo, pos_hi = _bin_of(thresholds, first), _bin_of(thresholds, last)
    neg_lo, neg_hi = _bin_of(thresholds, -last), _bin_of(thresholds, -first)
    if np.any(pos_hi - pos_lo > 1) or np.any(neg_hi - neg_lo > 1):
        return None
    return np.concatenate([pos_lo, neg_lo]).astype(np.uint32), base, shift


@lru_cache(maxsize=None)
def _lookup(b: Bins, dtype: np.dtype) -> BinLookup | None:
    if dtype not in _FORMATS:
        return None
    exact = np.concatenate([[-np.inf], b.edges[1:-1], [np.inf]])  # outliers clip into the end bins
    thresholds = _in_format(exact, dtype)
    if thresholds is None:
        return None
    uint, _, sign = _FORMATS[dtype]
    for mantissa_bits in range(2, 16):
        made = _guess_table(thresholds, mantissa_bits)
        if made is not None:
            key_bin, base, shift = made
            magnitude = (1 << sign) - 1
            inf_bits = int(np.asarray(np.inf, dtype).view(uint))
            params = np.array([base, shift, sign, magnitude, inf_bits], np.uint64)
            return BinLookup(dtype, thresholds, key_bin, thresholds[key_bin.astype(np.int64) + 1], params)
    return None


ACT_BINS = {a.name: Bins(*a.act_range, 40) for a in V.ACTIVATIONS if a.act_range}  # bounded activations
WIDE_ACT_BINS = Bins(-5.0, 5.0, 40)
SYMLOG_BINS = Bins(-11.0, 11.0, 88, symlog=True)


@lru_cache(maxsize=None)
def activation_bins(kind: str) -> Bins:
    return ACT_BINS.get(kind, WIDE_ACT_BINS)
