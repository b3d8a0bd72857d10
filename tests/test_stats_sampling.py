"""lab.sim.stats on wide layers: the one-pass histogram kernel against `Bins.histogram`, the
moments against numpy, the fixed weight and unit samples (coverage, accuracy, no column
bias), and layer_stats: exact on small layers, close on sampled ones, deterministic.

The kernel tests use small arrays, so they also run with NUMBA_DISABLE_JIT=1.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.engine.architecture import Architecture
from lab.engine.network import Network
from lab.engine.optim import OptimizerConfig
from lab.engine.trainer import Trainer
from lab.sim import stats as S
from lab.sim.bins import ACT_BINS, SYMLOG_BINS, WIDE_ACT_BINS, Bins

ALL_BINS = [ACT_BINS["sigmoid"], ACT_BINS["tanh"], WIDE_ACT_BINS, SYMLOG_BINS, Bins(-2.0, 3.0, 7),
            Bins(-3.0, 2.0, 13, symlog=True)]
BIN_IDS = ["sigmoid", "tanh", "wide", "symlog", "odd", "odd-symlog"]
DTYPES = [np.float32, np.float64]


def kernel_hist(b: Bins, values, dtype) -> np.ndarray:
    return S.summarize(np.asarray(values, dtype), b).hist


def awkward_values(b: Bins, dtype) -> np.ndarray:
    """Every kind of value the rule can get wrong, in dtype: each threshold and its
    neighbours, the published edges and their neighbours, zeros, extremes, non-finite,
    and values spread over the whole range and far beyond."""
    rng = np.random.default_rng(7)
    info = np.finfo(dtype)
    t = b.lookup(dtype).thresholds[1:-1]
    edges = b.edges.astype(dtype)
    near = lambda x: [x, np.nextafter(x, dtype(np.inf)), np.nextafter(x, dtype(-np.inf))]  # noqa: E731
    spread = b.inverse(rng.uniform(b.lo - 1, b.hi + 1, 3000))
    scales = np.concatenate([rng.standard_normal(300) * 10.0 ** k for k in range(-40, 40, 4)])
    special = [0.0, -0.0, np.nan, -np.nan, np.inf, -np.inf, info.max, -info.max, info.tiny, -info.tiny,
               info.smallest_subnormal, -info.smallest_subnormal, 1e-30, -1e-30, 1.0, -1.0]
    with np.errstate(over="ignore"):
        return np.concatenate([*near(t), *near(edges), spread.astype(dtype), scales.astype(dtype),
                               np.array(special, dtype)])


# --------------------------------------------------------------------------- histogram kernel
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("b", ALL_BINS, ids=BIN_IDS)
def test_kernel_histogram_equals_bins_histogram_exactly(b, dtype):
    v = awkward_values(b, dtype)
    with np.errstate(all="ignore"):
        want = b.histogram(v)
    got = kernel_hist(b, v, dtype)
    assert got.dtype == np.int64 and got.shape == (b.count,)
    np.testing.assert_array_equal(got, want)
    assert got.sum() == np.isfinite(v).sum()  # non-finite values are not counted, the rest clip in


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("b", ALL_BINS, ids=BIN_IDS)
def test_lookup_thresholds_are_where_the_rule_changes_bin(b, dtype):
    """T[k] is the first value of dtype at or above edge k (in float64); the one below is not."""
    look = b.lookup(dtype)
    assert look is not None and look.thresholds.dtype == dtype
    edges = b.edges[1:-1]
    at = look.thresholds[1:-1]
    below = np.nextafter(at, dtype(-np.inf))
    assert np.all(at.astype(np.float64) >= edges)
    assert np.all(below.astype(np.float64) < edges)
    # a value exactly on a threshold goes to the bin above (searchsorted side="right")
    np.testing.assert_array_equal(kernel_hist(b, at, dtype), np.bincount(np.arange(1, b.count), minlength=b.count))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=60),
       st.sampled_from(range(len(ALL_BINS))))
def test_kernel_histogram_equals_bins_histogram_on_any_floats(values, which):
    b = ALL_BINS[which]
    v = np.array(values, np.float64)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(kernel_hist(b, v, np.float64), b.histogram(v))
        v32 = v.astype(np.float32)
        np.testing.assert_array_equal(kernel_hist(b, v32, np.float32), b.histogram(v32))


def test_histogram_falls_back_to_the_reference_without_a_lookup(monkeypatch):
    v = awkward_values(SYMLOG_BINS, np.float64)
    monkeypatch.setattr(Bins, "lookup", lambda self, dtype=np.float64: None)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(S.summarize(v, SYMLOG_BINS).hist, SYMLOG_BINS.histogram(v))


# --------------------------------------------------------------------------- moments
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("kind", ["tanh", "sigmoid", "relu"])
def test_summary_moments_and_fractions_match_numpy(kind, dtype):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((37, 53)) * 0.7 + 0.2
    if kind != "relu":
        a = np.tanh(a) if kind == "tanh" else 1 / (1 + np.exp(-4 * a))
    a = a.astype(dtype)
    # values exactly on the thresholds, as numpy compares them in a's dtype
    a.flat[:6] = np.array([0.99, -0.99, 0.01, 1e-3, -1e-3, 0.0], dtype)
    s = S.summarize(a, ACT_BINS.get(kind, WIDE_ACT_BINS), kind, S.ZERO_THRESHOLD)
    assert s.size == a.size
    assert s.mean == pytest.approx(np.mean(a, dtype=np.float64), rel=1e-12, abs=1e-15)
    assert s.std == pytest.approx(np.std(a, dtype=np.float64), rel=1e-12)
    assert s.sum_sq == pytest.approx(float(np.sum(a.astype(np.float64) ** 2)), rel=1e-12)
    assert s.norm == pytest.approx(float(np.linalg.norm(a.astype(np.float64))), rel=1e-12)
    assert s.zero_fraction == float(np.mean(np.abs(a) < S.ZERO_THRESHOLD))
    assert s.saturated_fraction == S.saturated_fraction(kind, a)


def test_summary_of_non_finite_values_is_nan_like_numpy():
    a = np.array([1.0, np.inf, 2.0, 3.0, -1.0])
    s = S.summarize(a, SYMLOG_BINS)
    with np.errstate(invalid="ignore"):
        assert math.isnan(s.std) and math.isnan(np.std(a))
    assert s.mean == np.mean(a) == np.inf
    assert s.hist.sum() == 4
    assert math.isnan(S.summarize(np.array([1.0, np.nan])).mean)
    empty = S.summarize(np.zeros(0), SYMLOG_BINS)
    assert empty.size == 0 and math.isnan(empty.mean) and math.isnan(empty.std) and empty.hist.sum() == 0


def test_summary_is_bit_identical_for_the_same_input():
    x = np.random.default_rng(0).standard_normal(10_001).astype(np.float32)
    a, b = S.summarize(x, SYMLOG_BINS, "tanh", 1e-3), S.summarize(x.copy(), SYMLOG_BINS, "tanh", 1e-3)
    assert (a.mean, a.std, a.sum_sq, a.zero_fraction) == (b.mean, b.std, b.sum_sq, b.zero_fraction)
    np.testing.assert_array_equal(a.hist, b.hist)


# --------------------------------------------------------------------------- the weight sample
def test_arrays_up_to_the_limit_are_not_sampled():
    assert S.weight_sample((256, 256)) is None
    assert S.weight_sample((16, 4096)) is None
    assert S.weight_sample((257, 256)) is not None


@pytest.mark.parametrize("shape", [(4096, 4096), (1024, 1024), (512, 512), (16384, 64), (64, 100_000),
                                   (3000, 997), (300_000,)])
def test_weight_sample_is_in_bounds_disjoint_and_near_the_limit(shape):
    sm = S.weight_sample(shape)
    size = int(np.prod(shape))
    pos = sm.positions()
    assert pos.size == sm.size and S.MAX_HISTOGRAM_VALUES * 0.95 <= sm.size <= S.MAX_HISTOGRAM_VALUES
    assert pos.min() >= 0 and pos.max() < size
    assert np.all(np.diff(pos) > 0)  # increasing: no entry twice
    assert sm.run <= S.SAMPLE_RUN and sm.step >= sm.run
    if len(shape) == 2:
        assert math.gcd(sm.step, shape[1]) == 1
    assert S.weight_sample(shape) == sm  # deterministic


@pytest.mark.parametrize("shape", [(4096, 4096), (1024, 1024), (512, 512), (16384, 64), (3000, 997)])
def test_weight_sample_covers_every_row_and_spreads_evenly_over_columns(shape):
    rows, cols = shape
    pos = S.weight_sample(shape).positions()
    r, c = np.divmod(pos, cols)
    if rows <= S.MAX_HISTOGRAM_VALUES // S.SAMPLE_RUN or rows * S.weight_sample(shape).run <= pos.size:
        assert np.unique(r).size == rows
    per_col = np.bincount(c, minlength=cols)
    assert per_col.min() >= 1  # every column (unit) is in the sample
    assert per_col.max() - per_col.min() <= max(2, 0.2 * per_col.mean())


def test_the_4096_square_sample_has_every_row_and_every_column_15_or_16_times():
    pos = S.weight_sample((4096, 4096)).positions()
    r, c = np.divmod(pos, 4096)
    assert np.unique(r).size == 4096
    per_col = np.bincount(c, minlength=4096)
    assert per_col.min() >= 15 and per_col.max() <= 16


def _big(seed=1, shape=(4096, 4096)):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def _sampled_std(x):
    return S.summarize(S.take_sample(x, S.weight_sample(x.shape))).std


def test_take_sample_reads_the_sample_positions():
    x = np.arange(600 * 700, dtype=np.float64).reshape(600, 700)
    sm = S.weight_sample(x.shape)
    np.testing.assert_array_equal(S.take_sample(x, sm), x.ravel()[sm.positions()])
    np.testing.assert_array_equal(S.take_sample(x, None), x.ravel())


def test_sampled_std_and_norm_ratio_are_close_to_the_exact_ones():
    w = _big(1)
    exact = float(np.std(w, dtype=np.float64))
    assert _sampled_std(w) == pytest.approx(exact, rel=0.02)
    u = (w * 1e-3 + _big(2) * 1e-4).astype(np.float32)
    sm = S.weight_sample(w.shape)
    ratio = S.summarize(S.take_sample(u, sm)).norm / S.summarize(S.take_sample(w, sm)).norm
    exact_ratio = np.linalg.norm(u.astype(np.float64)) / np.linalg.norm(w.astype(np.float64))
    assert ratio == pytest.approx(exact_ratio, rel=0.02)


@pytest.mark.parametrize("period", [256, 16, 4097])
def test_dead_columns_do_not_bias_the_sample(period):
    """Gradient columns of dead units are zero.  The old sample (every 256th entry) saw the
    same 16 columns of every row: its std was either 0 or far too large."""
    dw = _big(3)
    dead = np.arange(4096) % period < max(1, period // 16)  # a sixteenth of the units, periodically
    dw[:, dead] = 0.0
    exact = float(np.std(dw, dtype=np.float64))
    assert _sampled_std(dw) == pytest.approx(exact, rel=0.03)
    alive = dw.copy()
    alive[:, ~dead] = 0.0
    alive[:, dead] = _big(4)[:, dead]
    assert _sampled_std(alive) == pytest.approx(float(np.std(alive, dtype=np.float64)), rel=0.05)


def test_sampled_histogram_has_the_shape_of_the_full_one():
    w = (_big(5) * 0.05).astype(np.float32)
    full = SYMLOG_BINS.histogram(w) / w.size
    sampled = S.summarize(S.take_sample(w, S.weight_sample(w.shape)), SYMLOG_BINS).hist
    assert sampled.sum() == S.weight_sample(w.shape).size
    assert np.abs(sampled / sampled.sum() - full).max() < 0.01


# --------------------------------------------------------------------------- unit sample
def ref_sign_agreement(dw):
    shares = []
    for j in range(dw.shape[1]):
        pos, neg = int((dw[:, j] > 0).sum()), int((dw[:, j] < 0).sum())
        if pos + neg:
            shares.append(max(pos, neg) / (pos + neg))
    return float(np.mean(shares)) if shares else float("nan")


def ref_unit_similarity(w):
    v = w.astype(np.float64)
    n = np.linalg.norm(v, axis=0)
    u = v / np.where(n == 0, 1.0, n)
    sim = u.T @ u
    zero = n == 0
    sim = np.where(zero[:, None] & zero[None, :], 1.0, sim)
    m = w.shape[1]
    return float((sim.sum() - np.trace(sim)) / (m * (m - 1)))


@pytest.mark.parametrize("shape", [(30, 20), (256, 256), (100, 128), (2, 1000)])
def test_small_layers_use_every_unit(shape):
    rng = np.random.default_rng(0)
    w, dw = rng.standard_normal(shape), rng.standard_normal(shape)
    dw[:, 3] = 0.0  # a dead unit: no majority sign, left out
    assert S.unit_sample(shape[1], w.size) is None
    agreement, similarity = S.unit_metrics(w, dw)
    assert agreement == ref_sign_agreement(dw)
    assert similarity == pytest.approx(ref_unit_similarity(w), rel=1e-9, abs=1e-13)
    assert S.sign_agreement(dw) == agreement and S.unit_similarity(w) == similarity


def test_zero_and_identical_units_are_fully_similar():
    assert S.unit_similarity(np.zeros((50, 40))) == 1.0
    same = np.repeat(np.random.default_rng(0).standard_normal((50, 1)), 40, axis=1)
    assert S.unit_similarity(same) == pytest.approx(1.0, abs=1e-12)
    half = np.hstack([np.zeros((50, 20)), np.eye(50)[:, :20]])  # 20 zero units, 20 orthogonal ones
    assert S.unit_similarity(half) == pytest.approx(ref_unit_similarity(half), abs=1e-15)
    assert math.isnan(S.sign_agreement(np.zeros((5, 4))))
    assert math.isnan(S.unit_similarity(np.ones((5, 1))))


def test_wide_layers_use_128_units_in_groups_with_all_their_rows():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((1000, 600), dtype=np.float32)
    dw = rng.standard_normal((1000, 600), dtype=np.float32) + 0.05
    starts = S.unit_sample(600, w.size)
    width = S.MAX_SIMILARITY_UNITS // S.UNIT_GROUPS
    cols = np.concatenate([np.arange(s, s + width) for s in starts])
    assert cols.size == S.MAX_SIMILARITY_UNITS == np.unique(cols).size
    assert cols.min() >= 0 and cols.max() < 600
    assert np.all(np.diff(starts) > width)  # separate groups, spread over the layer
    assert starts[0] < 600 / S.UNIT_GROUPS <= starts[-1]
    agreement, similarity = S.unit_metrics(w, dw)
    assert agreement == ref_sign_agreement(dw[:, cols])  # every row of every sampled unit
    assert similarity == pytest.approx(ref_unit_similarity(w[:, cols]), rel=1e-9, abs=1e-12)
    assert agreement == pytest.approx(ref_sign_agreement(dw), rel=0.02)


def test_unit_sample_of_the_4096_layer():
    starts = S.unit_sample(4096, 4096 * 4096)
    width = S.MAX_SIMILARITY_UNITS // S.UNIT_GROUPS
    assert starts.size * width == 128
    centres = starts + width // 2
    np.testing.assert_array_equal(centres, (2 * np.arange(S.UNIT_GROUPS) + 1) * 4096 // (2 * S.UNIT_GROUPS))


# --------------------------------------------------------------------------- layer_stats
def _trained(hidden, input_dim, classes, dtype, steps=3, activation="tanh", seed=0):
    arch = Architecture(input_dim=input_dim, classes=classes, hidden=hidden, activation=activation)
    net = Network(arch, dtype)
    net.initialize("xavier", np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    X = rng.standard_normal((256, input_dim)).astype(dtype)
    y = rng.integers(0, classes, 256)
    tr = Trainer(net, X, y, batch_size=32, optimizer=OptimizerConfig("momentum", momentum=0.9), rng=rng)
    w_before = {l.weight.name: net.param(l.weight.name).copy() for l in net.layers}
    tr.run(np.full(steps, 0.05))
    return net, tr, X, y, w_before


def test_layer_stats_of_a_sampled_network_are_close_to_the_exact_values():
    net, tr, X, y, _ = _trained((512, 512), 400, 10, np.float32)
    stats = S.layer_stats(net, tr.last_update, X[:64], y[:64], 32)
    ws = net.batch_ws
    for layer, s in zip(net.layers, stats):
        spec = layer.weight
        w, dw = net.param(spec.name), net.grad(spec.name)
        u = tr.last_update[spec.offset:spec.offset + spec.size]
        sampled = S.weight_sample(spec.shape)
        assert (sampled is None) == (w.size <= S.MAX_HISTOGRAM_VALUES)
        tol = 0.03 if sampled is not None else 1e-9
        assert s.weight_std == pytest.approx(np.std(w, dtype=np.float64), rel=tol)
        assert s.wgrad_std == pytest.approx(np.std(dw, dtype=np.float64), rel=tol)
        exact_ratio = np.linalg.norm(u.astype(np.float64)) / np.linalg.norm(w.astype(np.float64))
        assert s.update_ratio == pytest.approx(exact_ratio, rel=tol)
        assert s.weight_hist.sum() == s.update_hist.sum() == (sampled.size if sampled else w.size)
        # node statistics: always every value of the batch, histograms exactly the reference's
        a = ws.node(layer.out_node)
        assert s.act_std == pytest.approx(np.std(a, dtype=np.float64), rel=1e-9)
        np.testing.assert_array_equal(s.act_hist, ACT_BINS.get(layer.kind, WIDE_ACT_BINS).histogram(a))
        np.testing.assert_array_equal(s.grad_hist, SYMLOG_BINS.histogram(ws.grad_node(layer.out_node)))
        assert s.saturated_fraction == S.saturated_fraction(layer.kind, a)
        assert s.sign_agreement == pytest.approx(ref_sign_agreement(dw), abs=0.03)


def test_layer_stats_of_small_layers_are_the_full_array_values():
    net, tr, X, y, _ = _trained((64, 48), 20, 5, np.float64)
    stats = S.layer_stats(net, tr.last_update, X[:64], y[:64], 32)
    for layer, s in zip(net.layers, stats):
        spec = layer.weight
        w, dw = net.param(spec.name), net.grad(spec.name)
        u = tr.last_update[spec.offset:spec.offset + spec.size]
        assert s.weight_std == pytest.approx(np.std(w), rel=1e-12)
        assert s.wgrad_std == pytest.approx(np.std(dw), rel=1e-12)
        assert s.update_ratio == pytest.approx(np.linalg.norm(u) / np.linalg.norm(w), rel=1e-12)
        np.testing.assert_array_equal(s.weight_hist, SYMLOG_BINS.histogram(w))
        np.testing.assert_array_equal(s.update_hist, SYMLOG_BINS.histogram(u))
        assert s.sign_agreement == ref_sign_agreement(dw)
        assert s.unit_similarity == pytest.approx(ref_unit_similarity(w), rel=1e-9, abs=1e-13)


def test_layer_stats_are_bit_identical_for_the_same_state():
    net, tr, X, y, _ = _trained((512, 300), 400, 10, np.float32)
    a = S.layer_stats(net, tr.last_update, X[:64], y[:64], 32)
    b = S.layer_stats(net, tr.last_update, X[:64], y[:64], 32)
    for sa, sb in zip(a, b):
        for name in ("act_mean", "act_std", "grad_std", "wgrad_std", "weight_std", "update_ratio",
                     "dead_fraction", "saturated_fraction", "zero_fraction", "sign_agreement", "unit_similarity"):
            assert sa.metric(name) == sb.metric(name) or (math.isnan(sa.metric(name)) and math.isnan(sb.metric(name)))
        for h in ("act_hist", "grad_hist", "weight_hist", "update_hist"):
            np.testing.assert_array_equal(getattr(sa, h), getattr(sb, h))
