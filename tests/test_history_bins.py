"""Bounded history (lab.sim.history) and fixed histogram bins (lab.sim.bins)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.sim.bins import ACT_BINS, SYMLOG_BINS, SYMLOG_FLOOR, WIDE_ACT_BINS, Bins, activation_bins
from lab.sim.history import STEP_SERIES, TRACE_SERIES, VAL_SERIES, History, Ring

# --------------------------------------------------------------------------- Ring


def _check_ring(ring: Ring, reference: list[float], capacity: int) -> None:
    kept = reference[-capacity:] if reference else []
    np.testing.assert_array_equal(ring.values(), np.array(kept, dtype=np.float64))
    assert len(ring) == len(kept)
    assert ring.capacity == capacity
    if reference:
        assert ring.last() == reference[-1]
    else:
        assert np.isnan(ring.last())


@settings(max_examples=300, deadline=None)
@given(capacity=st.integers(1, 17), sizes=st.lists(st.integers(0, 45), max_size=12))
def test_ring_keeps_last_capacity_values_in_order(capacity, sizes):
    ring = Ring(capacity)
    reference: list[float] = []
    counter = 0
    _check_ring(ring, reference, capacity)
    for size in sizes:
        chunk = list(range(counter, counter + size))  # distinct values reveal any reordering
        counter += size
        ring.extend(np.array(chunk, dtype=np.float64))
        reference.extend(chunk)
        _check_ring(ring, reference, capacity)


@pytest.mark.parametrize("capacity", [1, 2, 5, 8])
def test_ring_exhaustive_small_patterns(capacity):
    # every sequence of three extends with sizes 0..2*capacity+1
    for a in range(2 * capacity + 2):
        for b in range(2 * capacity + 2):
            for c in range(2 * capacity + 2):
                ring, ref, k = Ring(capacity), [], 0
                for size in (a, b, c):
                    chunk = list(range(k, k + size))
                    k += size
                    ring.extend(chunk)
                    ref.extend(chunk)
                _check_ring(ring, ref, capacity)


def test_ring_values_is_a_copy_and_accepts_scalars_lists():
    ring = Ring(4)
    ring.extend([1.0, 2.0])
    v = ring.values()
    v[0] = 99.0
    assert ring.values()[0] == 1.0
    ring.extend(np.array([[3.0], [4.0]]))  # raveled
    ring.extend([5])
    np.testing.assert_array_equal(ring.values(), [2.0, 3.0, 4.0, 5.0])
    assert ring.values().dtype == np.float64


def test_ring_keeps_nan_and_inf():
    ring = Ring(3)
    ring.extend([1.0, np.inf, np.nan, -np.inf])
    out = ring.values()
    assert out[0] == np.inf and np.isnan(out[1]) and out[2] == -np.inf
    assert ring.last() == -np.inf


# --------------------------------------------------------------------------- History


def test_history_series_lengths():
    h = History(capacity=10, val_capacity=3)
    assert set(h.series) == set(STEP_SERIES) | set(VAL_SERIES) | set(TRACE_SERIES)
    assert all(len(v) == 0 for v in h.arrays().values())
    h.record_steps(1, np.full(4, 0.1), np.arange(4.0), np.zeros(4), np.ones(4))
    h.record_steps(5, np.full(3, 0.2), np.arange(4.0, 7.0), np.zeros(3), np.ones(3))
    arr = h.arrays()
    for name in STEP_SERIES:
        assert len(arr[name]) == 7, name
    np.testing.assert_array_equal(arr["step"], np.arange(1, 8))
    np.testing.assert_array_equal(arr["lr"], [0.1] * 4 + [0.2] * 3)
    np.testing.assert_array_equal(arr["loss"], np.arange(7.0))
    for name in VAL_SERIES:
        assert len(arr[name]) == 0
    for s in (0, 5, 10, 15):
        h.record_val(s, 1.0 / (s + 1), s / 100)
    arr = h.arrays()
    for name in VAL_SERIES:
        assert len(arr[name]) == 3  # val_capacity
    np.testing.assert_array_equal(arr["val_step"], [5, 10, 15])
    np.testing.assert_array_equal(arr["val_acc"], [0.05, 0.1, 0.15])
    # past the step capacity, every step series keeps the same (last) 10 steps
    h.record_steps(8, np.full(6, 0.3), np.arange(7.0, 13.0), np.zeros(6), np.ones(6))
    arr = h.arrays()
    for name in STEP_SERIES:
        assert len(arr[name]) == 10
    np.testing.assert_array_equal(arr["step"], np.arange(4, 14))
    np.testing.assert_array_equal(arr["loss"], np.arange(3.0, 13.0))


def test_history_arrays_are_copies():
    h = History(capacity=5)
    h.record_steps(1, [0.1], [1.0], [0.5], [2.0])
    h.arrays()["loss"][0] = 42.0
    assert h.arrays()["loss"][0] == 1.0


# --------------------------------------------------------------------------- Bins

ALL_BINS = [ACT_BINS["sigmoid"], ACT_BINS["tanh"], WIDE_ACT_BINS, SYMLOG_BINS, Bins(-2.0, 3.0, 7)]
IDS = ["sigmoid", "tanh", "wide", "symlog", "odd"]


def _t_edges(b: Bins) -> np.ndarray:
    return np.linspace(b.lo, b.hi, b.count + 1)


def _inside_values(b: Bins, rng, n=5000) -> np.ndarray:
    t = rng.uniform(b.lo, b.hi, n)
    return b.inverse(t)


@pytest.mark.parametrize("b", ALL_BINS, ids=IDS)
def test_histogram_equals_numpy_inside_the_range(b):
    rng = np.random.default_rng(0)
    v = _inside_values(b, rng)
    got = b.histogram(v)
    want, _ = np.histogram(b.transform(v), bins=_t_edges(b))
    assert got.dtype == np.int64 and got.shape == (b.count,)
    np.testing.assert_array_equal(got, want)
    # the same counts in value space, against the published edges
    want_v, _ = np.histogram(v, bins=b.edges)
    np.testing.assert_array_equal(got, want_v)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=50))
def test_symlog_histogram_equals_numpy_with_clipping(values):
    b = SYMLOG_BINS
    v = np.array(values)
    clipped = np.clip(v, b.edges[0], b.edges[-1])  # outliers land in the end bins
    want, _ = np.histogram(clipped, bins=b.edges)  # the bins are their value-space edges
    np.testing.assert_array_equal(b.histogram(v), want)


@pytest.mark.parametrize("b", ALL_BINS, ids=IDS)
def test_outliers_go_to_the_end_bins_and_non_finite_are_dropped(b):
    lo_v, hi_v = float(b.inverse(np.array(b.lo))), float(b.inverse(np.array(b.hi)))
    span = hi_v - lo_v
    below = np.array([lo_v - 1e-6 * span, lo_v - span, lo_v - 1e6 * span])
    above = np.array([hi_v + 1e-6 * span, hi_v + span, hi_v + 1e6 * span, hi_v])  # hi itself: last bin
    h = b.histogram(np.concatenate([below, above, [np.nan, np.inf, -np.inf]]))
    assert h[0] == 3 and h[-1] == 4 and h.sum() == 7


def test_symlog_edges_monotonic_symmetric_quarter_decades():
    e = SYMLOG_BINS.edges
    assert len(e) == SYMLOG_BINS.count + 1
    assert np.all(np.diff(e) > 0)
    np.testing.assert_array_equal(e, -e[::-1])  # exactly symmetric about 0
    assert e[SYMLOG_BINS.count // 2] == 0.0
    assert e[-1] == pytest.approx(100.0, rel=1e-9)  # 1e-9 * (10**11 - 1)
    pos = e[SYMLOG_BINS.count // 2 + 1:]
    # sign(v)*log10(1 + |v|/floor) steps by 0.25: quarter decades
    np.testing.assert_allclose(np.diff(np.log10(1 + pos / SYMLOG_FLOOR)), 0.25, rtol=1e-9)
    np.testing.assert_allclose(SYMLOG_BINS.transform(e), _t_edges(SYMLOG_BINS), atol=1e-12)


def test_activation_bins_by_kind():
    assert activation_bins("sigmoid") == Bins(0.0, 1.0, 40)
    assert activation_bins("tanh") == Bins(-1.0, 1.0, 40)
    for kind in ("relu", "leaky_relu", "elu", "gelu", "output", "residual"):
        assert activation_bins(kind) == WIDE_ACT_BINS == Bins(-5.0, 5.0, 40)
    np.testing.assert_allclose(ACT_BINS["tanh"].edges, np.linspace(-1, 1, 41))


def test_histogram_empty_and_all_non_finite():
    for b in ALL_BINS:
        np.testing.assert_array_equal(b.histogram(np.array([])), np.zeros(b.count, np.int64))
        np.testing.assert_array_equal(b.histogram(np.array([np.nan, np.inf])), np.zeros(b.count, np.int64))


@pytest.mark.parametrize("b", ALL_BINS, ids=IDS)
def test_values_on_interior_edges_count_like_numpy(b):
    t = _t_edges(b)[1:-1]  # every interior edge, once: one value per bin from the second on
    want, _ = np.histogram(t, bins=_t_edges(b))
    np.testing.assert_array_equal(want[1:], 1)
    np.testing.assert_array_equal(b.histogram(b.inverse(t)), want)


def test_trace_series_follow_the_steps():
    h = History(capacity=5)
    h.record_trace(0, np.array([[1.0, 2.0]]))
    h.record_trace(1, np.array([[3.0, 4.0], [5.0, 6.0]]))
    h.record_trace(3, np.zeros((0, 1)))  # a network with one input has no pair to trace
    arr = h.arrays()
    np.testing.assert_array_equal(arr["trace_step"], [0, 1, 2])
    np.testing.assert_array_equal(arr["w_a"], [1.0, 3.0, 5.0])
    np.testing.assert_array_equal(arr["w_b"], [2.0, 4.0, 6.0])
