"""Learning-rate schedules (lab.engine.schedules) against the formulas of the module
docstring, written out again here, independently, in scalar Python."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lab.engine.schedules import SCHEDULE_KINDS, Schedule, learning_rates

LR = 0.3
TOTAL = 1000


def expected_lr(kind: str, lr: float, total: int, t: int, *, warmup: int = 0, milestones=(), factor: float = 0.1,
                min_lr: float = 0.0, timescale: int | None = None) -> float:
    """The docstring's definition, one step at a time (t = 0-based step about to be taken)."""
    if warmup > 0 and t < warmup:
        return lr * (t + 1) / warmup
    if kind == "constant":
        return lr
    if kind == "step":
        passed = 0
        for m in milestones:
            at = m * total if m < 1 else m  # fractions of total, or steps
            if at <= t:
                passed += 1
        return lr * factor**passed
    if kind in ("cosine", "linear"):
        p = (t - warmup) / (total - warmup)
        p = min(1.0, max(0.0, p))  # past total: stays at min_lr
        if kind == "cosine":
            return min_lr + (lr - min_lr) * (1 + math.cos(math.pi * p)) / 2
        return lr + (min_lr - lr) * p
    if kind == "inverse_sqrt":
        tau = timescale if timescale else (warmup if warmup > 0 else 1)
        return lr * math.sqrt(tau / max(t, tau))
    raise AssertionError(kind)


STEPS = np.array([0, 1, 2, 9, 10, 11, 99, 100, 101, 250, 499, 500, 501, 799, 800, 801, 899, 900, 901, 998, 999,
                  1000, 1001, 1500, 5000])

CASES = [
    ("constant", {}),
    ("step", {"milestones": (100, 500), "factor": 0.5}),
    ("step", {"milestones": (0.8, 0.9), "factor": 0.316}),
    ("step", {"milestones": (250, 0.9), "factor": 0.1}),  # mixed steps and fractions
    ("cosine", {}),
    ("cosine", {"min_lr": 0.01}),
    ("linear", {}),
    ("linear", {"min_lr": 0.05}),
    ("inverse_sqrt", {}),
    ("inverse_sqrt", {"timescale": 50}),
]


def test_every_kind_is_covered():
    assert {kind for kind, _ in CASES} == set(SCHEDULE_KINDS)


@pytest.mark.parametrize("warmup", [0, 10, 100])
@pytest.mark.parametrize("kind,kw", CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CASES)])
def test_schedule_matches_formula(kind, kw, warmup):
    sched = Schedule(kind=kind, warmup=warmup, **kw)
    got = learning_rates(sched, LR, TOTAL, STEPS)
    assert got.dtype == np.float64
    assert got.shape == STEPS.shape
    want = [expected_lr(kind, LR, TOTAL, int(t), warmup=warmup, **kw) for t in STEPS]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


@pytest.mark.parametrize("kind,kw", CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CASES)])
def test_warmup_is_linear_ramp_to_peak(kind, kw):
    w = 40
    got = learning_rates(Schedule(kind=kind, warmup=w, **kw), LR, TOTAL, np.arange(w))
    np.testing.assert_allclose(got, LR * np.arange(1, w + 1) / w, rtol=1e-12)
    assert got[-1] == pytest.approx(LR)  # the last warmup step reaches the peak
    assert np.all(np.diff(got) > 0)


def test_milestones_as_fractions_equal_milestones_as_steps():
    steps = np.arange(0, 1200)
    by_fraction = learning_rates(Schedule("step", milestones=(0.8, 0.9), factor=0.316), LR, TOTAL, steps)
    by_step = learning_rates(Schedule("step", milestones=(800, 900), factor=0.316), LR, TOTAL, steps)
    np.testing.assert_array_equal(by_fraction, by_step)
    # each milestone multiplies by the factor exactly at its step, not before
    assert by_step[799] == LR and by_step[800] == pytest.approx(LR * 0.316)
    assert by_step[899] == pytest.approx(LR * 0.316) and by_step[900] == pytest.approx(LR * 0.316**2)


def test_fractional_milestone_with_non_integer_step():
    # 0.8 * 999 = 799.2: the decay applies from the first step t >= 799.2, i.e. t = 800
    got = learning_rates(Schedule("step", milestones=(0.8,), factor=0.5), 1.0, 999, np.array([799, 800]))
    assert got[0] == 1.0 and got[1] == 0.5


def test_deepseek_recipe_warmup_then_multistep_by_fraction():
    """DeepSeek LLM: 2000 warmup steps, then x0.316 at 80% and again at 90% of training."""
    total, peak, w = 100_000, 4.2e-4, 2000
    sched = Schedule("step", warmup=w, milestones=(0.8, 0.9), factor=0.316)
    t = np.array([0, 1, 999, 1999, 2000, 2001, 50_000, 79_999, 80_000, 85_000, 89_999, 90_000, 99_999, 100_000,
                  120_000])
    got = learning_rates(sched, peak, total, t)
    want = [expected_lr("step", peak, total, int(s), warmup=w, milestones=(0.8, 0.9), factor=0.316) for s in t]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert got[0] == pytest.approx(peak / w)
    assert got[3] == pytest.approx(peak)  # end of warmup = peak
    assert got[4] == pytest.approx(peak) and got[7] == pytest.approx(peak)
    assert got[8] == pytest.approx(peak * 0.316) and got[10] == pytest.approx(peak * 0.316)
    assert got[11] == pytest.approx(peak * 0.316**2)  # ~ peak / 10 for the last 10%
    assert got[-1] == pytest.approx(peak * 0.316**2)


@pytest.mark.parametrize("warmup", [0, 100])
def test_cosine_landmarks(warmup):
    mn = 0.02
    s = Schedule("cosine", warmup=warmup, min_lr=mn)
    mid = warmup + (TOTAL - warmup) // 2  # (TOTAL - warmup) is even for these warmups
    got = learning_rates(s, LR, TOTAL, np.array([warmup, mid, TOTAL]))
    assert got[0] == pytest.approx(LR)  # decay starts at the peak right after warmup
    assert got[1] == pytest.approx((LR + mn) / 2)
    assert got[2] == pytest.approx(mn)
    after = learning_rates(s, LR, TOTAL, np.arange(warmup, TOTAL + 1))
    assert np.all(np.diff(after) <= 0)


@pytest.mark.parametrize("kind,kw", [("cosine", {"min_lr": 0.01}), ("linear", {"min_lr": 0.01}),
                                     ("cosine", {}), ("linear", {})])
@pytest.mark.parametrize("warmup", [0, 100])
def test_beyond_total_cosine_and_linear_stay_at_min_lr(kind, kw, warmup):
    mn = kw.get("min_lr", 0.0)
    got = learning_rates(Schedule(kind, warmup=warmup, **kw), LR, TOTAL, np.array([TOTAL, TOTAL + 1, 3 * TOTAL]))
    np.testing.assert_allclose(got, mn, atol=1e-15)


def test_beyond_total_other_kinds():
    far = np.array([TOTAL, 2 * TOTAL, 10 * TOTAL])
    np.testing.assert_array_equal(learning_rates(Schedule("constant"), LR, TOTAL, far), LR)
    stepped = learning_rates(Schedule("step", milestones=(0.5, 0.75), factor=0.1), LR, TOTAL, far)
    np.testing.assert_allclose(stepped, LR * 0.01, rtol=1e-12)  # every milestone has passed
    inv = learning_rates(Schedule("inverse_sqrt", timescale=100), LR, TOTAL, far)
    np.testing.assert_allclose(inv, [LR * math.sqrt(100 / s) for s in far], rtol=1e-12)  # keeps decaying


def test_inverse_sqrt_timescale_defaults_to_warmup_then_one():
    t = np.array([0, 1, 4, 16, 64, 400])
    with_warmup = learning_rates(Schedule("inverse_sqrt", warmup=16), 1.0, TOTAL, t)
    np.testing.assert_allclose(with_warmup, [1 / 16, 2 / 16, 5 / 16, 1.0, 0.5, 0.2], rtol=1e-12)
    no_warmup = learning_rates(Schedule("inverse_sqrt"), 1.0, TOTAL, t)
    np.testing.assert_allclose(no_warmup, [1.0, 1.0, 0.5, 0.25, 0.125, 0.05], rtol=1e-12)


def test_unknown_kind_raises():
    with pytest.raises(ValueError):
        learning_rates(Schedule("exponential"), LR, TOTAL, np.arange(3))
