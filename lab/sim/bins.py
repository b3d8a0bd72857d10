"""Fixed histogram bins, so frames and runs compare honestly.

Activations use linear bins over the range their function can reach (sigmoid [0, 1],
tanh [-1, 1], the rest [-5, 5]).  Gradients, weights and updates span many orders of
magnitude (vanishing gradients are the point), so they use symmetric-log bins: uniform
in sign(v)*log10(1 + |v|/1e-9), i.e. quarter-decade bins from 1e-9 to 1e2.  Values
beyond the range land in the outermost bins.

`Bins.histogram` (numpy) defines the counts.  `Bins.lookup()` restates its rule in value
space for the one-pass kernel lab.engine.kernels.histogram.summarize, which lab.sim.stats
uses: the thresholds are found with this module's own transform and checked against it,
so the kernel's counts equal `histogram`'s exactly (tests/test_stats_sampling.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

SYMLOG_FLOOR = 1e-9


@dataclass(frozen=True, eq=False)
class BinLookup:
    """A Bins' rule in value space, for values of one dtype (float32 or float64): what
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

    def lookup(self, dtype=np.float64) -> BinLookup | None:
        """The value-space form of `histogram`'s rule for arrays of `dtype` (float32 or
        float64), or None if this platform's transform is not monotone next to a threshold
        (then only `histogram` is exact)."""
        return _lookup(self, np.dtype(dtype))


# -- the value-space form of a Bins' rule -------------------------------------------------------
_SIGN = np.uint64(1 << 63)
_INF_ORDER = 0x7FF0000000000000  # ordinal of +inf (and -1 - it: of -inf)
_CHECK_ULPS = 256  # around each threshold, this many neighbouring floats on each side are checked


def _to_ordinal(v: np.ndarray) -> np.ndarray:
    """float64 -> int64, strictly increasing (-0.0 -> -1, +0.0 -> 0), for bisection over floats."""
    bits = np.asarray(v, np.float64).view(np.int64)
    return np.where(bits >= 0, bits, -1 - (bits & np.int64(0x7FFFFFFFFFFFFFFF)))


def _from_ordinal(o: np.ndarray) -> np.ndarray:
    o = np.asarray(o, np.int64)
    bits = np.where(o >= 0, o, -1 - o).astype(np.uint64)
    bits[o < 0] |= _SIGN
    return bits.view(np.float64)


def _value_thresholds(b: Bins) -> np.ndarray:
    """T[k] = the smallest float64 v with transform(v) >= t_k (t = the transformed edges) for the
    interior edges; T[0] = -inf, T[count] = +inf.  `histogram` puts a finite v in bin
    #{k in 1..count-1: t_k <= transform(v)}, which is #{k: v >= T[k]} when the transform is
    non-decreasing, so T reproduces it without a logarithm per value."""
    t = b._transformed_edges[1:-1]
    lo = np.full(t.size, -1 - _INF_ORDER, np.int64)  # -inf: transform(-inf) < t
    hi = np.full(t.size, _INF_ORDER, np.int64)  # +inf: transform(+inf) >= t
    with np.errstate(all="ignore"):
        while np.any(hi > lo + 1):  # (hi - lo would overflow int64)
            mid = (lo >> 1) + (hi >> 1) + (lo & hi & 1)  # (lo + hi) // 2 without overflow
            above = b.transform(_from_ordinal(mid)) >= t
            hi = np.where(above, mid, hi)
            lo = np.where(above, lo, mid)
    return np.concatenate([[-np.inf], _from_ordinal(hi), [np.inf]])


def _thresholds_hold(b: Bins, thresholds: np.ndarray) -> bool:
    """Check, on the floats around every threshold, that v >= T[k] agrees with the rule
    transform(v) >= t_k (what a non-monotone log10 would break)."""
    t = b._transformed_edges[1:-1]
    steps = np.arange(-_CHECK_ULPS, _CHECK_ULPS + 1)
    v = _from_ordinal(_to_ordinal(thresholds[1:-1])[:, None] + steps[None, :])  # (count - 1, 2 * ULPS + 1)
    with np.errstate(all="ignore"):
        rule = b.transform(v.ravel()).reshape(v.shape) >= t[:, None]
    return bool(np.array_equal(rule, v >= thresholds[1:-1, None]))


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
def _value_rule(b: Bins) -> np.ndarray | None:
    thresholds = _value_thresholds(b)
    ok = np.all(np.diff(thresholds) > 0) and _thresholds_hold(b, thresholds)
    return thresholds if ok else None


@lru_cache(maxsize=None)
def _lookup(b: Bins, dtype: np.dtype) -> BinLookup | None:
    exact = _value_rule(b)
    if exact is None or dtype not in _FORMATS:
        return None
    thresholds = _in_format(exact, dtype)
    if thresholds is None:
        return None
    if dtype != np.float64:  # the dtype's two neighbours of every threshold obey the rule too
        t = b._transformed_edges[1:-1]
        above = thresholds[1:-1].astype(np.float64)
        below = np.nextafter(thresholds[1:-1], dtype.type(-np.inf)).astype(np.float64)
        with np.errstate(all="ignore"):
            if not (np.all(b.transform(above) >= t) and np.all(b.transform(below) < t)):
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


ACT_BINS = {
    "sigmoid": Bins(0.0, 1.0, 40),
    "tanh": Bins(-1.0, 1.0, 40),
}
WIDE_ACT_BINS = Bins(-5.0, 5.0, 40)
SYMLOG_BINS = Bins(-11.0, 11.0, 88, symlog=True)


@lru_cache(maxsize=None)
def activation_bins(kind: str) -> Bins:
    return ACT_BINS.get(kind, WIDE_ACT_BINS)
