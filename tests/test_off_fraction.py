"""off_fraction: units whose pre-activation z <= 0 on every probe example, whatever the
activation, checked against a plain-numpy forward pass on the same probe rows (as
tests/test_simulation.py checks dead_fraction)."""

from __future__ import annotations

import numpy as np
import pytest

from lab import vocabulary as V
from lab.sim.stats import probe_size
from tests.test_simulation import make, numpy_pass, params_of

ACTS = {
    "relu": lambda z: np.maximum(z, 0.0),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "tanh": np.tanh,
}


def numpy_off_fraction(sim, act) -> list[float]:
    X, y = sim.data.X_train, sim.data.y_train
    n_probe = probe_size(sim.network, X.shape[0], sim.trainer.batch_size)
    _, zs, _, _, _ = numpy_pass(params_of(sim), X[:n_probe], y[:n_probe], (16, 16), act=act)
    return [float(np.mean(np.all(z <= 0, axis=0))) for z in zs]


@pytest.mark.parametrize("activation", list(ACTS))
@pytest.mark.parametrize("lr", [0.1, 5.0])
def test_off_fraction_matches_numpy(activation, lr):
    sim = make(model={"activation": activation}, train={"lr": lr})
    sim.step(10)
    snap = sim.snapshot()
    want = numpy_off_fraction(sim, ACTS[activation])
    for l in (1, 2):
        assert snap.layers[l - 1].off_fraction == pytest.approx(want[l - 1])
    assert snap.layers[2].off_fraction == 0.0  # the output layer's scores are never "off"


def test_leaky_units_are_off_but_not_dead_and_relu_off_equals_dead():
    """The case the metric exists for: at an absurd learning rate most leaky units are negative on
    every example, which dead_fraction (slope < 1e-3) cannot show; for relu the two agree."""
    leaky = make(model={"activation": "leaky_relu"}, train={"lr": 5.0})
    leaky.step(10)
    st = leaky.snapshot().layers[0]
    assert st.dead_fraction == 0.0 and st.off_fraction > 0.5
    relu = make(train={"lr": 5.0})
    relu.step(10)
    for st in relu.snapshot().layers[:2]:
        assert st.off_fraction == st.dead_fraction


def test_off_fraction_is_in_the_catalog_table_and_csv():
    from lab.metrics import parse_metric
    from lab.report import export, table

    assert "off_fraction" in V.layer_metrics()
    assert "off" in table.COLUMNS and "off_fraction" in export.LAYER_COLUMNS
    assert parse_metric("off_fraction").per_layer
    # dropped early on a narrow screen: after params and units, before every other metric
    assert table.DROP_ORDER[:3] == ("params", "units", "off")
