"""Every bundled scenario loads, and its expectations (the lecture's claims) hold."""

from __future__ import annotations

import pytest

from lab.scenario import load_scenario
from lab.scenario.catalog import bundled
from lab.sim.expectations import check

ENTRIES = bundled()


def test_the_curriculum_is_not_empty():
    assert len(ENTRIES) >= 5
    assert {"activations", "init", "regularization", "learning-rate"} <= {e.topic for e in ENTRIES}


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_bundled_scenario_claims_hold(entry):
    sc = load_scenario(entry.path)
    assert sc.scenario.topic == entry.topic, "a scenario's topic is the folder it lives in"
    assert sc.scenario.explain.strip(), "every scenario explains what to watch"
    assert sc.expect, "every bundled scenario checks its claim"
    failures = [f"{r.description}: expected {r.expected}, got {r.actual}" for r in check(sc) if not r.passed]
    assert not failures, "\n".join(failures)
