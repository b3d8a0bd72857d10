"""The activation-cost view's numbers: timed with the kernels training calls, never checked
against a clock (timings live in benchmarks/): only their shape and what they are made of."""

import math

import numpy as np
import pytest

from lab import vocabulary as V
from lab.engine import activation_cost
from lab.tui.widgets.context import cost_chart


@pytest.fixture(scope="module")
def costs():
    return activation_cost.measure("float32", rows=16, width=32)


def test_every_elementwise_activation_is_timed_forward_and_backward(costs):
    expected = [a.name for a in V.ACTIVATIONS if a.public and not a.pieces]
    assert list(costs.names) == expected and "maxout" not in costs.names
    assert costs.forward_ns.shape == costs.backward_ns.shape == (len(expected),)
    assert np.all(np.isfinite(costs.forward_ns)) and np.all(costs.forward_ns > 0)
    assert np.all(np.isfinite(costs.backward_ns)) and np.all(costs.backward_ns > 0)
    assert costs.values == 16 * 32 and costs.dtype == "float32"


def test_ratios_are_to_relu(costs):
    assert costs.ratio("relu") == 1.0
    i, j = costs.names.index("gelu"), costs.names.index("relu")
    want = (costs.forward_ns[i] + costs.backward_ns[i]) / (costs.forward_ns[j] + costs.backward_ns[j])
    assert math.isclose(costs.ratio("gelu"), want)


def test_the_chart_marks_the_activations_in_use_and_fits(costs):
    text = cost_chart(costs, {"tanh"}, 76)
    lines = text.plain.splitlines()
    assert [line for line in lines if line.startswith("▶")] == [next(line for line in lines if "tanh" in line)]
    assert all(len(line) <= 76 for line in lines[:len(costs.names)])
    assert "timing" in cost_chart(None, set(), 76).plain


def test_the_kernels_timed_compute_what_training_computes():
    """measure() calls the training kernels with the activation's own alpha: its forward of a
    known block equals the numpy formula (so the view times the real thing)."""
    from lab.engine.kernels.activations import activation_forward

    z = np.linspace(-3, 3, 64, dtype=np.float64).reshape(4, 16)
    a = np.empty_like(z)
    spec = V.activation("elu")
    activation_forward(spec.code, z, a, float(spec.alpha), np.zeros(16))
    np.testing.assert_allclose(a, np.where(z > 0, z, spec.alpha * np.expm1(z)), rtol=1e-12, atol=1e-15)
