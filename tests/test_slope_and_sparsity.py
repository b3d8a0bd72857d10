"""negative_slope (PReLU's learned slopes, leaky_relu's alpha, relu's 0, NaN elsewhere) and
weight_zero_fraction (|w| < 1e-3 among W's entries), each checked against a plain-numpy
recomputation from the network's parameters, as tests/test_off_fraction.py checks off_fraction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lab import vocabulary as V
from lab.engine.architecture import PRELU_INITIAL_SLOPE
from lab.sim import stats as S
from tests.test_simulation import make, params_of

LINE_BELOW_ZERO = [a.name for a in V.public_activations() if a.linear_negative or a.learned_slope]
NO_LINE = [a.name for a in V.public_activations() if not (a.linear_negative or a.learned_slope)]


def numpy_negative_slope(sim, layer) -> float:
    """The slope for z < 0 the kernels use, from the parameters and the settings."""
    params = params_of(sim)
    if f"slope{layer.index}" in params:
        return float(np.mean(params[f"slope{layer.index}"]))
    alpha = sim.network.arch.alpha_value
    z = np.array([-2.0, -1.0, -0.5])
    f = {"relu": lambda v: np.maximum(v, 0.0), "leaky_relu": lambda v: np.where(v > 0, v, alpha * v)}[layer.kind]
    slopes = f(z) / z  # the negative side is the line s*z
    assert np.ptp(slopes) == 0
    return float(slopes[0])


def numpy_weight_zero_fraction(w: np.ndarray) -> float:
    return float(np.mean(np.abs(w) < np.asarray(S.WEIGHT_ZERO_THRESHOLD, dtype=w.dtype)))


# --------------------------------------------------------------------------- negative_slope


@pytest.mark.parametrize("lr", [0.1, 1.0])
def test_prelu_slope_is_the_mean_of_the_learned_slopes_and_moves(lr):
    sim = make(model={"activation": "prelu"}, train={"lr": lr})
    start = sim.snapshot().layers
    sim.step(60)
    snap = sim.snapshot()
    params = params_of(sim)
    for s0, s in zip(start[:2], snap.layers[:2]):
        assert s0.negative_slope == pytest.approx(PRELU_INITIAL_SLOPE)  # every slope starts there
        slopes = params[f"slope{s.index}"]
        assert s.negative_slope == pytest.approx(float(np.mean(slopes)), rel=1e-12, abs=1e-15)
        assert np.ptp(slopes) > 0 and s.negative_slope != s0.negative_slope  # learned: they moved, unevenly
    assert math.isnan(snap.layers[2].negative_slope)  # the output layer: no activation


@pytest.mark.parametrize("activation", LINE_BELOW_ZERO)
@pytest.mark.parametrize("alpha", [None, 0.25])
def test_negative_slope_of_the_linear_activations_matches_numpy(activation, alpha):
    sim = make(model={"activation": activation, "alpha": alpha})
    sim.step(20)
    snap = sim.snapshot()
    for layer, s in zip(sim.network.layers[:2], snap.layers[:2]):
        assert s.negative_slope == pytest.approx(numpy_negative_slope(sim, layer))
    assert math.isnan(snap.layers[2].negative_slope)


def test_fixed_slopes_do_not_move():
    """The control of the PReLU claim: leaky_relu at PReLU's starting slope keeps it."""
    sim = make(model={"activation": "leaky_relu", "alpha": PRELU_INITIAL_SLOPE}, train={"lr": 1.0})
    sim.step(60)
    assert [s.negative_slope for s in sim.snapshot().layers[:2]] == [PRELU_INITIAL_SLOPE] * 2


@pytest.mark.parametrize("activation", NO_LINE)
def test_negative_slope_is_nan_where_the_negative_side_is_not_a_line(activation):
    sim = make(model={"activation": activation})
    sim.step(5)
    assert all(math.isnan(s.negative_slope) for s in sim.snapshot().layers)


def test_negative_slope_follows_a_change_of_activation_and_skips_the_residual_sum():
    sim = make(model={"activation": "relu", "hidden": [16, 16, 16], "residual": True})
    sim.step(5)
    assert [s.kind for s in sim.snapshot().layers] == ["relu", "relu", "residual", "output"]
    assert [s.negative_slope for s in sim.snapshot().layers[:2]] == [0.0, 0.0]
    sim.set(activation="prelu")
    sim.step(5)
    snap = sim.snapshot()
    params = params_of(sim)
    assert [s.kind for s in snap.layers] == ["prelu", "prelu", "residual", "output"]
    for s in snap.layers[:2]:
        assert s.negative_slope == pytest.approx(float(np.mean(params[f"slope{s.index}"])))
    assert math.isnan(snap.layers[2].negative_slope) and math.isnan(snap.layers[3].negative_slope)


# --------------------------------------------------------------------------- weight_zero_fraction


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("train", [{}, {"l1": 0.02, "lr": 0.2}], ids=["plain", "l1"])
def test_weight_zero_fraction_matches_numpy(dtype, train):
    sim = make(model={"dtype": dtype}, train=train)
    sim.step(150)
    snap = sim.snapshot()
    params = params_of(sim)
    for s in snap.layers:
        assert s.weight_zero_fraction == numpy_weight_zero_fraction(params[f"W{s.index}"])


@pytest.mark.parametrize("seed", [0, 1])
def test_l1_makes_weights_sparse_and_l2_does_not(seed):
    """Not a number to match: the property the metric exists for, on the same data with each
    penalty (the pair of the l1-sparse-weights scenario: L2 shrinks the weights even more)."""
    runs = {}
    for name, train in {"l1": {"l1": 0.01}, "l2": {"l2": 0.05}}.items():
        sim = make(data={"kind": "gaussians", "dim": 40, "classes": 3}, model={"hidden": [32]},
                   train={"lr": 0.05, "steps": 600, **train}, seed=seed)
        sim.step(600)
        runs[name] = sim.snapshot().layers[0]
    assert runs["l2"].weight_std <= runs["l1"].weight_std
    assert runs["l1"].weight_zero_fraction > 10 * runs["l2"].weight_zero_fraction


def test_weight_zero_fraction_of_a_wide_layer_uses_weight_std_s_sample():
    sim = make(data={"kind": "gaussians", "dim": 300, "classes": 3}, model={"hidden": [256]},
               train={"l1": 0.01, "lr": 0.2})
    sim.step(30)
    w = params_of(sim)["W1"]
    sample = S.weight_sample(w.shape)
    assert sample is not None  # 76,800 weights: above the exact limit
    got = sim.snapshot().layers[0].weight_zero_fraction
    assert got == numpy_weight_zero_fraction(w.reshape(-1)[sample.positions()])
    assert got == pytest.approx(numpy_weight_zero_fraction(w), abs=0.01)


# --------------------------------------------------------------------------- the catalog


def test_both_metrics_are_in_the_catalog_and_csv_but_not_the_table():
    from lab.metrics import parse_metric
    from lab.report import export, table

    for name in ("negative_slope", "weight_zero_fraction"):
        assert name in V.layer_metrics() and name in export.LAYER_COLUMNS
        assert parse_metric(name).per_layer
        assert all(c.metric != name for c in table.LAYER_COLUMNS)  # claims, CSV and check only
    assert table.DROP_ORDER[:3] == ("params", "units", "off")


def test_a_claim_on_the_slope_holds_for_prelu_and_fails_on_its_fixed_control():
    from lab.scenario.schema import Scenario
    from lab.sim.expectations import check

    sc = Scenario.model_validate({
        "scenario": {"name": "t", "seed": 0},
        "data": {"kind": "spiral", "n": 200},
        "model": {"hidden": [16, 16], "activation": "prelu", "dtype": "float64"},
        "train": {"steps": 60, "lr": 1.0, "eval_every": 20},
        "variants": [{"name": "fixed", "set": {"activation": "leaky_relu", "alpha": PRELU_INITIAL_SLOPE}}],
        "expect": [{"metric": "negative_slope", "layer": 2, "op": "!=", "value": PRELU_INITIAL_SLOPE,
                    "tolerance": 1e-3, "control": "fixed"},
                   {"metric": "negative_slope", "layer": 3, "op": "<", "value": 1.0}],
    })
    slope, output = check(sc)
    assert slope.ok and math.isfinite(slope.control_actual)
    assert not output.passed  # NaN (the output layer has no slope): a claim on it never holds
