"""Per-layer statistics of a Snapshot (see DESIGN.md "Metrics").

Everything is read from buffers the last training step left behind (activations and
gradients of the current batch, the last update), plus one eval-mode pass over a fixed
probe set for dead units.  Nothing here touches the training random stream, so taking
snapshots can never change a run.  Same inputs, bit-identical statistics: the samples
below are fixed positions, never random, and every sum runs in a fixed order (float64).

Exact and estimated.  The node statistics (act_*, grad_*, zero/saturated fractions, the
activation and gradient histograms) always use every value of the batch.  The
weight-sized arrays (W, dW and the last update) are summarized exactly when they have at
most MAX_HISTOGRAM_VALUES (65,536) entries, every 256x256 layer included.  Above that,
weight_std, weight_zero_fraction, wgrad_std, update_ratio and the weight and update
histograms are computed on a deterministic sample of about 65,536 entries
(`weight_sample`): runs of up to
SAMPLE_RUN (16) consecutive entries whose starts advance by a step coprime with the
number of columns, so the runs start in every column in turn and cover the rows evenly;
on a 4096x4096 matrix that is every row once and every column 15 or 16 times.  (A plain
step of size/65536 = 256 would put every sampled entry in the same 16 columns: a dead
unit's zero gradient column would be always or never in the sample.)  The update ratio
of a sampled layer is ||update|| / ||W|| over the same positions: the scale factors of
the two norms cancel.  Measured on 4096x4096 matrices, sampled stds are within 0.5% of
the exact ones for weights of one distribution and within 1 to 2% when a few rows or
columns carry most of the weight (log-normal row scales, rank-1 gradients).  Runs rather
than single entries because a run of 16 float32 is one cache line: the sample of a 64 MB
matrix reads 4096 lines instead of 65,536.

sign_agreement and unit_similarity use every unit of layers with at most
MAX_SIMILARITY_UNITS (128) units or at most MAX_HISTOGRAM_VALUES weights (then they cost
nothing); wider layers use a fixed sample of 128 units: UNIT_GROUPS (2) groups of 64
contiguous columns, centred in the two halves of the layer, each unit with all of its
incoming weights (sampling rows would bias the majority-sign share upwards).  Both
metrics read the same gathered columns.  Why 2 groups of 64: a group is read row by row
with the matrix's row stride, and runs of 4 cache lines per row let the hardware
prefetcher keep up; 8 groups of 16 columns read the same number of lines 2.5 times
slower (measured).  unit_similarity is (||sum of the normalized columns||^2 - their
squared norms) / (m (m - 1)), O(rows * m) instead of a Gram matrix.

The histograms come from one kernel call per array (lab.engine.kernels.histogram), whose
counts equal `Bins.histogram`'s exactly (same edges; a value on an edge goes to the bin
above; values beyond the range clip into the end bins; non-finite values are dropped).
"""

from __future__ import annotations

from collections import Counter

import math
import threading
from dataclasses import dataclass

import numpy as np

from lab import vocabulary as V
from lab.engine.kernels import histogram as HK
from lab.engine.kernels.activations import ACTIVATION_CODES, activation_backward
from lab.engine.network import Network

from .bins import SYMLOG_BINS, Bins, activation_bins
from .snapshot import LayerStats

DEAD_SLOPE = 1e-3  # a unit is dead when f'(z) < this for every probe example: it cannot learn
ZERO_THRESHOLD = 1e-3
WEIGHT_ZERO_THRESHOLD = 1e-3  # weight_zero_fraction: |w| below this (see weight_zero_fraction)
MAX_SIMILARITY_UNITS = 128  # sign_agreement/unit_similarity of wider layers: a sample of this many units
UNIT_GROUPS = 2  # ... in this many evenly spaced groups of contiguous columns
MAX_HISTOGRAM_VALUES = 1 << 16  # larger W/dW/update arrays: statistics of a sample of about this many entries
SAMPLE_RUN = 16  # consecutive entries per run of that sample (a cache line of float32)
PROBE_MAX = 512
PROBE_MACS_BUDGET = 2e8  # cap the probe's cost for very wide networks


def probe_size(network: Network, n_train: int, batch: int) -> int:
    macs = sum(layer.n_in * layer.fan_out for layer in network.layers)
    return int(min(PROBE_MAX, n_train, max(batch, PROBE_MACS_BUDGET // max(macs, 1))))


SATURATED = {a.name: a.saturated for a in V.ACTIVATIONS if a.saturated}  # (low, high): outside is flat
CAN_DIE = frozenset(a.name for a in V.ACTIVATIONS if a.can_die)
SLOPED = frozenset(a.name for a in V.ACTIVATIONS if a.learned_slope)
LINEAR_NEGATIVE = {a.name: a.alpha is not None for a in V.ACTIVATIONS if a.linear_negative}  # kind -> takes alpha


def saturated_fraction(kind: str, a: np.ndarray) -> float:
    """The numpy definition (layer_stats counts the same inside `summarize`)."""
    if kind in SATURATED:
        low, high = SATURATED[kind]
        return float(np.mean((a < low) | (a > high)))
    return 0.0


def dead_fraction(network: Network, layer, z: np.ndarray, a: np.ndarray) -> float:
    """Fraction of units whose local slope f'(z) is below DEAD_SLOPE on every probe example."""
    if layer.kind not in CAN_DIE or z.shape[0] == 0:  # also the output layer and a residual block's sum
        return 0.0
    slope = network.param(f"slope{layer.index}") if layer.kind in SLOPED else np.zeros(0, network.dtype)
    dz = np.empty_like(z)
    activation_backward(ACTIVATION_CODES[layer.kind], np.ones_like(z), z, a, network.arch.alpha_value,
                        np.ascontiguousarray(slope), dz, np.zeros_like(slope))
    return float(np.mean(np.all(np.abs(dz) < DEAD_SLOPE, axis=0)))


def off_fraction(layer, z: np.ndarray) -> float:
    """Fraction of units whose pre-activation z is <= 0 on every probe example, whatever the
    activation: a leaky unit that is off everywhere still gets alpha times the gradient (it
    is not dead and can recover) but it passes on only alpha*z.  0 for layers that cannot
    die (maxout, the output layer, a residual block's sum), as dead_fraction."""
    if layer.kind not in CAN_DIE or z.shape[0] == 0:
        return 0.0
    return float(np.mean(np.all(z <= 0, axis=0)))


def negative_slope(network: Network, layer) -> float:
    """The activation's slope for z < 0, mean over the layer's units: a PReLU layer's learned
    slopes (the parameter slope{l}, averaged in float64), leaky_relu's fixed alpha, relu's 0;
    NaN where the negative side is not a line (and for the output layer and a residual sum).
    The fixed slopes make a leaky_relu run the control of a claim that PReLU's slope moves."""
    if layer.kind in SLOPED:
        return float(np.mean(network.param(f"slope{layer.index}"), dtype=np.float64))
    if layer.kind in LINEAR_NEGATIVE:
        return float(network.arch.alpha_value) if LINEAR_NEGATIVE[layer.kind] else 0.0
    return float("nan")


# weight_zero_fraction is the share of W's entries with |w| < WEIGHT_ZERO_THRESHOLD, counted in the
# same pass (and over the same sample of a wide layer) as weight_std.  An absolute threshold, as
# zero_fraction's for activations: a layer drawn at random with std s has about 0.8e-3/s of its
# weights below it (0.6% for Kaiming at fan_in 100, 3.6% at fan_in 4096), whereas plain SGD on
# an L1 penalty leaves a "removed" weight jittering around 0 by lr * l1 per step (5e-4 at lr 0.05,
# l1 0.01), inside it.  A threshold relative to the layer's own std would cut through that jitter
# (measured on the l1-sparse-weights scenario: 99% of L1's layer-1 weights are below 1e-3, but
# only 40-44% are below 1% of the layer's rms), and would not see L2 shrink every weight.


class _Scratch(threading.local):
    """Buffers layer_stats reuses from call to call (one set per thread).  A fresh 2 MB
    array costs ~500 page faults each time (the allocator hands freed memory back to the
    system), more than the gather that fills it."""

    MAX_BYTES = 1 << 24  # larger arrays are allocated afresh each time (not kept)

    def __init__(self) -> None:
        self.flat: dict[tuple[str, np.dtype], np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        n = int(np.prod(shape))
        if n * dtype.itemsize > self.MAX_BYTES:
            return np.empty(shape, dtype)
        buf = self.flat.get((name, dtype))
        if buf is None or buf.size < n:
            buf = self.flat[(name, dtype)] = np.empty(n, dtype)
        return buf[:n].reshape(shape)


_scratch = _Scratch()


# -- one-pass summaries ------------------------------------------------------------------------
@dataclass(frozen=True)
class Summary:
    """Moments, threshold fractions and histogram of an array (or of a sample of it)."""

    size: int
    mean: float
    std: float
    sum_sq: float  # sum of squares: the norm is its square root
    zero_fraction: float  # |v| < zero_threshold (node summaries, and weight_zero_fraction)
    saturated_fraction: float  # in the flat region of the layer's activation (node summaries only)
    hist: np.ndarray | None

    @property
    def norm(self) -> float:
        return math.sqrt(self.sum_sq)


_NO_KEYS = np.zeros(0, np.uint32)
_NO_PARAMS = np.zeros(5, np.uint64)
_BITS = {np.dtype(np.float32): np.uint32, np.dtype(np.float64): np.uint64}


def _in_dtype(value: float, dtype) -> float:
    """`value` rounded to dtype, so a float64 comparison in the kernel is numpy's comparison
    on an array of that dtype (`a32 > 0.99` compares with float32(0.99))."""
    return float(np.asarray(value, dtype=dtype))


def _saturation_bounds(kind: str | None, dtype) -> tuple[float, float]:
    """(low, high): v is saturated when v < low or v > high (see saturated_fraction)."""
    if kind in SATURATED:
        low, high = SATURATED[kind]
        return _in_dtype(low, dtype), _in_dtype(high, dtype)
    return -math.inf, math.inf


def summarize(x: np.ndarray, bins: Bins | None = None, kind: str | None = None,
              zero_threshold: float | None = None) -> Summary:
    """Summary of every value of x, in one kernel call: float64 mean, std (ddof 0, as np.std),
    sum of squares, the fractions |v| < zero_threshold and saturated for `kind`, and the
    histogram over `bins` (exactly `bins.histogram(x)`; None without bins)."""
    flat = np.ascontiguousarray(x).reshape(-1)
    if flat.dtype not in (np.float32, np.float64):
        flat = flat.astype(np.float64)
    n = flat.size
    lookup = bins.lookup(flat.dtype) if bins is not None else None
    hist = np.zeros(bins.count if bins is not None else 0, np.int64)
    low, high = _saturation_bounds(kind, flat.dtype)
    zero = _in_dtype(zero_threshold, flat.dtype) if zero_threshold is not None else 0.0
    out = np.zeros(5)
    bits = flat.view(_BITS[flat.dtype])
    if lookup is not None:
        HK.summarize(flat, bits, lookup.key_bin, lookup.key_threshold, lookup.key_params,
                     zero, low, high, hist, out)
    else:
        HK.summarize(flat, bits, _NO_KEYS, flat[:0], _NO_PARAMS, zero, low, high, hist, out)
        if bins is not None:  # this platform's transform failed the monotonicity check
            hist = bins.histogram(flat)
    if n == 0:
        return Summary(0, math.nan, math.nan, 0.0, math.nan, math.nan, hist if bins is not None else None)
    return Summary(n, out[0] / n, math.sqrt(out[1] / n), out[2], out[3] / n, out[4] / n,
                   hist if bins is not None else None)


# -- the sample of a weight-sized array --------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    """Entries offset + i * step + j (i < runs, j < run) of the flattened array."""

    offset: int
    step: int
    runs: int
    run: int

    @property
    def size(self) -> int:
        return self.runs * self.run

    def positions(self) -> np.ndarray:
        return (self.offset + self.step * np.arange(self.runs)[:, None] + np.arange(self.run)[None, :]).ravel()


def weight_sample(shape: tuple[int, ...], limit: int = MAX_HISTOGRAM_VALUES) -> Sample | None:
    """The fixed sample of an array of `shape` (rows, columns): None when it has at most
    `limit` entries (use them all).  Otherwise runs of `run` consecutive entries, run <=
    SAMPLE_RUN and, when possible, small enough that there are as many runs as rows, their
    starts `step` apart with gcd(step, columns) == 1: consecutive runs start in different
    columns and every column gets its turn.  The runs are centred in the array."""
    size = int(np.prod(shape))
    if size <= limit:
        return None
    rows = int(shape[0]) if len(shape) > 1 else 1
    cols = int(shape[-1]) if len(shape) > 1 else size
    run = max(1, min(SAMPLE_RUN, limit // max(rows, 1)))
    step = -(-size // (limit // run))
    while math.gcd(step, cols) != 1:
        step += 1
    runs = min(limit // run, (size - run) // step + 1)
    offset = (size - ((runs - 1) * step + run)) // 2
    return Sample(offset, step, runs, run)


def take_sample(x: np.ndarray, sample: Sample | None, out: np.ndarray | None = None) -> np.ndarray:
    """The sampled entries of x (float64, in position order; into `out` if given), or x
    itself (flat) without a sample."""
    flat = x.reshape(-1)
    if sample is None:
        return flat
    out = np.empty(sample.size) if out is None else out
    HK.gather_runs(flat[sample.offset:], sample.step, sample.runs, sample.run, out)
    return out


# -- sign agreement and unit similarity ---------------------------------------------------------
def unit_sample(n_units: int, n_weights: int) -> np.ndarray | None:
    """Start columns of the UNIT_GROUPS groups of sampled units (each MAX_SIMILARITY_UNITS //
    UNIT_GROUPS wide, centred in equal slices of the layer), or None: use every unit."""
    if n_units <= MAX_SIMILARITY_UNITS or n_weights <= MAX_HISTOGRAM_VALUES:
        return None
    width = MAX_SIMILARITY_UNITS // UNIT_GROUPS
    centres = (2 * np.arange(UNIT_GROUPS) + 1) * n_units // (2 * UNIT_GROUPS)
    return np.clip(centres - width // 2, 0, n_units - width).astype(np.int64)


def unit_columns(x: np.ndarray, scratch: str | None = None) -> np.ndarray:
    """The columns of the unit sample of x (n_in, n_units), as a C-contiguous (n_in, m) array
    (x itself when every unit is used; a reused buffer if `scratch` names one)."""
    x = np.ascontiguousarray(x)
    starts = unit_sample(x.shape[1], x.size)
    if starts is None:
        return x
    width = MAX_SIMILARITY_UNITS // UNIT_GROUPS
    shape = (x.shape[0], starts.size * width)
    cols = _scratch.get(scratch, shape, x.dtype) if scratch else np.empty(shape, x.dtype)
    HK.gather_columns(x, starts, width, cols)
    return cols


def unit_metrics(w: np.ndarray, dw: np.ndarray) -> tuple[float, float]:
    """(sign_agreement of dw, unit_similarity of w) over the unit sample of this layer: the
    sampled columns of w and dw are read once, for both metrics."""
    cols_w, cols_dw = unit_columns(w, "cols_w"), unit_columns(dw, "cols_dw")
    m = cols_w.shape[1]
    sq = np.zeros(m)
    pos = np.zeros(m, np.int64)
    neg = np.zeros(m, np.int64)
    HK.column_sums(cols_w, cols_dw, sq, pos, neg)
    return _sign_agreement(pos, neg), _unit_similarity(cols_w, sq)


def _sign_agreement(pos: np.ndarray, neg: np.ndarray) -> float:
    nonzero = pos + neg
    live = nonzero > 0
    if not np.any(live):
        return float("nan")
    return float(np.mean(np.maximum(pos, neg)[live] / nonzero[live]))


def _unit_similarity(cols: np.ndarray, sq: np.ndarray) -> float:
    """Mean over ordered pairs i != j of cos(column i, column j), two all-zero columns
    counting as identical (1): (||sum of unit columns||^2 - sum of their squared norms
    + z (z - 1)) / (m (m - 1)), z = number of zero columns.  O(rows * m), no Gram matrix."""
    m = cols.shape[1]
    if m < 2:
        return float("nan")
    live = sq > 0
    scale = np.zeros(m)
    scale[live] = 1.0 / np.sqrt(sq[live])
    total = HK.normalized_row_sums_sq(cols, scale)
    diagonal = float(np.sum(sq * scale * scale))
    z = float(m - np.count_nonzero(live))
    return (total - diagonal + z * (z - 1.0)) / (m * (m - 1.0))


def sign_agreement(dw: np.ndarray) -> float:
    """Mean over units (columns) of the share of incoming weight gradients with the majority
    sign (over the unit sample of wide layers)."""
    cols = unit_columns(dw)
    m = cols.shape[1]
    pos, neg = np.zeros(m, np.int64), np.zeros(m, np.int64)
    HK.column_sums(cols, cols, np.zeros(m), pos, neg)
    return _sign_agreement(pos, neg)


def unit_similarity(w: np.ndarray) -> float:
    """Mean pairwise cosine similarity of units' incoming weight vectors (columns of W), over
    the unit sample of wide layers.

    Two all-zero units count as identical (similarity 1): zero init never breaks symmetry.
    """
    cols = unit_columns(w)
    m = cols.shape[1]
    sq = np.zeros(m)
    HK.column_sums(cols, cols, sq, np.zeros(m, np.int64), np.zeros(m, np.int64))
    return _unit_similarity(cols, sq)


# -- the statistics of every layer ------------------------------------------------------------
def layer_stats(network: Network, last_update: np.ndarray, probe_x: np.ndarray,
                probe_y: np.ndarray, batch_size: int) -> tuple[LayerStats, ...]:
    """Statistics of every layer from the last training step, and dead units on the probe set."""
    batch_ws = network.batch_ws
    if batch_ws is None:  # no step yet: a gradient pass (no update) on a training-sized batch
        n = min(batch_size, probe_x.shape[0])
        network.gradient_pass(probe_x[:n], probe_y[:n], train=False)  # no copies of the gradients
        batch_ws = network.last_workspace
    network.forward(probe_x, train=False, purpose="probe")
    probe_ws = network.last_workspace
    edges_sym = SYMLOG_BINS.edges
    params = Counter()
    for p in network.plan.params:
        params[p.layer] += p.size
    out = []
    for layer in network.layers:
        bins = activation_bins(layer.kind)
        act = summarize(batch_ws.node(layer.out_node), bins, layer.kind, ZERO_THRESHOLD)
        grad = summarize(batch_ws.grad_node(layer.out_node), SYMLOG_BINS)
        spec = layer.weight
        w = network.param(spec.name)
        dw = network.grad(spec.name)
        update = last_update[spec.offset:spec.offset + spec.size].reshape(spec.shape)
        sample = weight_sample(spec.shape)
        buf = _scratch.get("sample", (sample.size,), np.float64) if sample is not None else None
        weights = summarize(take_sample(w, sample, buf), SYMLOG_BINS, zero_threshold=WEIGHT_ZERO_THRESHOLD)
        wgrads = summarize(take_sample(dw, sample, buf))
        updates = summarize(take_sample(update, sample, buf), SYMLOG_BINS)
        agreement, similarity = unit_metrics(w, dw)
        out.append(LayerStats(
            index=layer.index,
            name=f"layer {layer.index} ({layer.kind})",
            kind=layer.kind,
            width=layer.n_out,
            n_params=params[layer.index],
            act_mean=act.mean, act_std=act.std,
            grad_mean=grad.mean, grad_std=grad.std,
            wgrad_std=wgrads.std, weight_std=weights.std,
            update_ratio=updates.norm / weights.norm if weights.norm > 0 else float("nan"),
            dead_fraction=dead_fraction(network, layer, probe_ws.node(layer.pre_node), probe_ws.node(layer.out_node)),
            off_fraction=off_fraction(layer, probe_ws.node(layer.pre_node)),
            saturated_fraction=act.saturated_fraction,
            zero_fraction=act.zero_fraction,
            sign_agreement=agreement,
            unit_similarity=similarity,
            weight_zero_fraction=float(weights.zero_fraction),
            negative_slope=negative_slope(network, layer),
            act_hist=act.hist, act_edges=bins.edges,
            grad_hist=grad.hist, grad_edges=edges_sym,
            weight_hist=weights.hist,
            update_hist=updates.hist,
            value_edges=edges_sym,
        ))
    return tuple(out)
