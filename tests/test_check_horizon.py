"""`nnlab check` trains each variant only as far as its claims read: a scenario whose claims
are all about step 0 costs no training, however long its live run is."""

from __future__ import annotations

import pytest

from lab.scenario.schema import Expectation, Scenario
from lab.sim import expectations
from lab.sim.expectations import check, needed_until


def _ex(**kw) -> Expectation:
    return Expectation.model_validate({"metric": "loss", "op": "<", "value": 1.0, **kw})


# a per-step series' initial value is the first step's (its loss comes from the initial weights): one step
@pytest.mark.parametrize("kw,until", [({"at": "initial"}, 1), ({"at": 0}, 1), ({"at": 40}, 40), ({"at": 5000}, 1000),
                                      ({"metric": "val_loss", "at": "initial"}, 0),
                                      ({"metric": "act_std", "layer": 1, "at": 0}, 0),
                                      ({}, 1000), ({"at": "final"}, 1000), ({"by": 70}, 70),
                                      ({"reduce": "min", "by": 30}, 30), ({"reduce": "max"}, 1000),
                                      ({"throughout": True}, 1000), ({"metric": "steps_to(loss <= 0.5)"}, 1000),
                                      ({"metric": "steps_to(loss <= 0.5)", "by": 90}, 90)])
def test_the_last_step_a_claim_reads(kw, until):
    assert needed_until(_ex(**kw), 1000) == until


def test_claims_about_step_0_train_nothing(monkeypatch):
    sc = Scenario.model_validate({
        "data": {"n": 100}, "model": {"hidden": [8]}, "train": {"steps": 1_000_000},
        "variants": [{"name": "tanh", "set": {"activation": "tanh"}}],
        "expect": [{"metric": "act_std", "layer": 1, "at": "initial", "op": ">", "value": 0.0},
                   {"metric": "val_loss", "at": "initial", "ratio_over": "tanh", "op": ">", "value": 0.0}]})
    trained = []
    real_step = expectations.Simulation.step

    def counting(self, n=1):
        trained.append(n)
        return real_step(self, n)

    monkeypatch.setattr(expectations.Simulation, "step", counting)
    results = check(sc)
    assert all(r.passed for r in results)
    assert sum(trained) == 0


def test_a_claim_on_the_initial_loss_alone_trains_one_step():
    """It used to train nothing and compare NaN (the history was empty)."""
    sc = Scenario.model_validate({"data": {"n": 100}, "model": {"hidden": [8]}, "train": {"steps": 1_000_000},
                                  "expect": [{"metric": "loss", "at": "initial", "op": ">", "value": 0.5}]})
    result = check(sc)[0]
    assert result.passed and 0.5 < result.actual < 3.0, result
