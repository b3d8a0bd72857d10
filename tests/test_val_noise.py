"""data.val_noise: gaussian noise added once to the validation inputs (a robustness test),
from its own seeded stream: training is untouched and every run of a seed sees the same noise."""

from __future__ import annotations

import numpy as np

from lab.scenario.schema import Scenario
from lab.sim import Simulation


def sim(val_noise: float, activation: str = "relu", seed: int = 0) -> Simulation:
    return Simulation(Scenario.model_validate({
        "scenario": {"seed": seed}, "data": {"n": 200, "val_noise": val_noise},
        "model": {"hidden": [8], "activation": activation}, "train": {"steps": 20}}))


def test_the_validation_inputs_get_the_requested_noise_and_nothing_else_changes():
    clean, noisy = sim(0.0), sim(0.5)
    np.testing.assert_array_equal(noisy.data.X_train, clean.data.X_train)
    np.testing.assert_array_equal(noisy.data.y_val, clean.data.y_val)
    added = noisy.data.X_val - clean.data.X_val
    assert added.dtype == clean.data.X_val.dtype
    assert abs(added.std() / 0.5 - 1) < 0.15 and abs(added.mean()) < 0.1  # 80 rows x 2 features of N(0, 0.25)


def test_training_is_bit_identical_and_only_validation_changes():
    clean, noisy = sim(0.0), sim(0.5)
    clean.step(20)
    noisy.step(20)
    np.testing.assert_array_equal(noisy.network.params, clean.network.params)
    assert noisy.snapshot().val_loss != clean.snapshot().val_loss


def test_every_run_of_a_seed_sees_the_same_noise_and_another_seed_other_noise():
    a, b = sim(0.3, "relu"), sim(0.3, "elu")
    np.testing.assert_array_equal(a.data.X_val, b.data.X_val)
    c, c_clean = sim(0.3, seed=1), sim(0.0, seed=1)
    assert not np.allclose(c.data.X_val - c_clean.data.X_val, a.data.X_val - sim(0.0).data.X_val)
