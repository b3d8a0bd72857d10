"""Kernels of the per-layer Snapshot statistics (lab.sim.stats): fixed-bin histograms and
float64 moments in one call per array, and the gathers behind the deterministic samples of
wide layers.  Arrays in, arrays out: what to sample and which bins to use is decided in
lab.sim (stats.py, bins.py).

Histograms.  `Bins.histogram` (lab/sim/bins.py, plain numpy) is the reference and
`summarize` reproduces it exactly.  The reference bins t = transform(v) with
searchsorted(transformed edges, t, side="right") - 1, clipped to the end bins, and drops
non-finite values.  lab.sim.bins turns that rule into value-space thresholds T, found
with the reference's own transform and rounded up to the array's dtype (T[0] = -inf,
T[count] = +inf): a finite v is in bin k iff T[k] <= v < T[k+1], so no logarithm is taken
here.  A small table indexed by v's sign, exponent and top mantissa bits ("key", read from
v's bits in its own width: no float64 round trip for float32 arrays) gives the lowest bin
any value with that key can be in; bins.py builds it so that no key's range of values
straddles more than one threshold, and one comparison finishes:
k = key_bin[key] + (v >= key_threshold[key]), key_threshold[key] = T[key_bin[key] + 1].

Moments are float64 sums with four interleaved accumulators, in a fixed order: the same
input gives bit-identical results.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit

@jit
def summarize(x, bits, key_bin, key_threshold, key_params, zero_below, sat_low, sat_high, hist, out):
    """Moments, threshold counts and (optionally) the histogram of a 1-D array, in float64.

    x           (n,) float32 or float64, contiguous; bits: the same memory as uint32 / uint64
    key_bin, key_threshold, key_params   a lab.sim.bins.BinLookup for x's dtype (its
                key_params: key base, key shift, sign bit, magnitude mask, bits of +inf);
                an empty key_bin: no histogram
    zero_below, sat_low, sat_high   thresholds, already rounded to x's dtype (so the
                comparisons are numpy's on x's dtype)
    hist        (count,) int64: the counts of the finite values are ADDED
    out         (5,) float64 receives: sum, sum of squared deviations from the mean,
                sum of squares, #(|v| < zero_below), #(v < sat_low or v > sat_high).
    Non-finite values take part in the moments (as in numpy: the result is inf or nan),
    never in the histogram.
    """
    n = x.size
    n4 = n - n % 4
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    for i in range(0, n4, 4):
        s0 += np.float64(x[i])
        s1 += np.float64(x[i + 1])
        s2 += np.float64(x[i + 2])
        s3 += np.float64(x[i + 3])
    for i in range(n4, n):
        s0 += np.float64(x[i])
    total = (s0 + s1) + (s2 + s3)
    mean = total / n if n > 0 else 0.0
    d0 = 0.0
    d1 = 0.0
    d2 = 0.0
    d3 = 0.0
    q0 = 0.0
    q1 = 0.0
    q2 = 0.0
    q3 = 0.0
    zeros = 0
    saturated = 0
    for i in range(0, n4, 4):
        v0 = np.float64(x[i])
        v1 = np.float64(x[i + 1])
        v2 = np.float64(x[i + 2])
        v3 = np.float64(x[i + 3])
        e0 = v0 - mean
        e1 = v1 - mean
        e2 = v2 - mean
        e3 = v3 - mean
        d0 += e0 * e0
        d1 += e1 * e1
        d2 += e2 * e2
        d3 += e3 * e3
        q0 += v0 * v0
        q1 += v1 * v1
        q2 += v2 * v2
        q3 += v3 * v3
        zeros += (np.int64(abs(v0) < zero_below) + np.int64(abs(v1) < zero_below)
                  + np.int64(abs(v2) < zero_below) + np.int64(abs(v3) < zero_below))
        saturated += (np.int64((v0 < sat_low) | (v0 > sat_high)) + np.int64((v1 < sat_low) | (v1 > sat_high))
                      + np.int64((v2 < sat_low) | (v2 > sat_high)) + np.int64((v3 < sat_low) | (v3 > sat_high)))
    for i in range(n4, n):
        v0 = np.float64(x[i])
        e0 = v0 - mean
        d0 += e0 * e0
        q0 += v0 * v0
        zeros += np.int64(abs(v0) < zero_below)
        saturated += np.int64((v0 < sat_low) | (v0 > sat_high))
    out[0] = total
    out[1] = (d0 + d1) + (d2 + d3)
    out[2] = (q0 + q1) + (q2 + q3)
    out[3] = zeros
    out[4] = saturated
    if key_bin.size == 0:
        return
    count = hist.size
    counts = np.zeros((4, count + 1), np.int64)  # 4 interleaved copies: no store-to-load stall;
    nkeys = np.uint64(key_bin.size // 2)  # column `count` takes the non-finite values
    top = nkeys - np.uint64(1)
    base = key_params[0]
    shift = key_params[1]
    sign = key_params[2]
    magnitude = key_params[3]
    inf_bits = key_params[4]
    dropped = np.uint64(count)
    for i in range(n):
        u = np.uint64(bits[i])
        mag = u & magnitude
        key = mag >> shift
        key = key - base if key > base else np.uint64(0)
        key = key if key < top else top
        key += nkeys * (u >> sign)
        k = np.uint64(key_bin[key]) + np.uint64(x[i] >= key_threshold[key])
        counts[i & 3, k if mag < inf_bits else dropped] += 1
    for k in range(count):
        hist[k] += (counts[0, k] + counts[1, k]) + (counts[2, k] + counts[3, k])


@jit
def gather_runs(x, step, runs, run, out):
    """out[i * run + j] = x[i * step + j] for i < runs, j < run (x 1-D, out float64).

    A strided sample taken in runs of consecutive entries: a run of 16 float32 is one
    cache line, so a 65,536-value sample of a 64 MB matrix reads 4096 lines, not 65,536.
    """
    st = np.uint64(step)
    ln = np.uint64(run)
    for i in range(runs):
        src = np.uint64(i) * st
        dst = np.uint64(i) * ln
        for j in range(ln):
            out[dst + j] = x[src + j]


@jit
def gather_columns(x, starts, width, out):
    """out[r, g * width + j] = x[r, starts[g] + j]: `width` contiguous columns from every
    start, all rows.  x (R, n) and out (R, len(starts) * width), both C-contiguous."""
    R, n = x.shape
    xf = x.ravel()
    of = out.ravel()
    nn = np.uint64(n)
    wd = np.uint64(width)
    k = np.uint64(0)
    for r in range(R):
        row = np.uint64(r) * nn
        for g in range(starts.size):
            c = row + np.uint64(starts[g])
            for j in range(wd):
                of[k + j] = xf[c + j]
            k += wd


@jit
def column_sums(w, dw, sq, pos, neg):
    """Per column k of w and dw (R, m): sq[k] = sum of w[:, k]**2 in float64,
    pos[k] = #(dw[:, k] > 0), neg[k] = #(dw[:, k] < 0) (nan counts as neither).
    sq, pos and neg are ADDED to."""
    R, m = w.shape
    for r in range(R):
        for k in range(m):
            a = np.float64(w[r, k])
            sq[k] += a * a
            d = dw[r, k]
            pos[k] += np.int64(d > 0)
            neg[k] += np.int64(d < 0)


LANES = 8


@jit
def normalized_row_sums_sq(w, scale):
    """sum over rows r of (sum_k w[r, k] * scale[k])**2, in float64 (w (R, m), scale (m,)).

    With scale = 1 / ||column||, that is ||sum of the unit-normalized columns||**2.  Each
    row's inner sum runs in LANES interleaved partial sums (k mod LANES), added pairwise.
    """
    R, m = w.shape
    lanes = np.zeros(LANES)
    mb = m - m % LANES
    total = 0.0
    for r in range(R):
        lanes[:] = 0.0
        for k0 in range(0, mb, LANES):
            for j in range(LANES):
                lanes[j] += np.float64(w[r, k0 + j]) * scale[k0 + j]
        for k in range(mb, m):
            lanes[k - mb] += np.float64(w[r, k]) * scale[k]
        h = LANES // 2
        while h > 0:
            for j in range(h):
                lanes[j] += lanes[j + h]
            h //= 2
        total += lanes[0] * lanes[0]
    return total
