"""Property: any session (a random sequence of steps, key changes, resets) of a scenario whose
texts are any printable unicode saves to a file that loads and replays it bit for bit."""

from __future__ import annotations

import unicodedata

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab import load_scenario
from lab.scenario.schema import Scenario
from lab.sim import Simulation
from lab.sim.session import begin_save
from tests.test_session import assert_replays, play

ACTIONS = ["lr_up", "lr_down", "next_init", "next_activation", "dropout_up", "dropout_down", "dropout_mode",
           "batchnorm", "optimizer", "schedule", "preprocess", "weight_decay", "reset", "reset_new_seed"]


def _printable(ch: str) -> bool:
    return unicodedata.category(ch) not in ("Cc", "Cf", "Cs")


line = st.text(st.characters(blacklist_categories=("Cc", "Cf", "Cs")), max_size=40)
prose = st.text(st.characters(blacklist_categories=("Cf", "Cs"), blacklist_characters="\r\x0b\x0c\x1c\x1d\x1e"
                              "\x1f\x85\x7f") .filter(lambda c: c in "\n\t" or _printable(c)), max_size=80)
ops = st.lists(st.one_of(st.integers(1, 12), st.sampled_from(ACTIONS)), min_size=1, max_size=8)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(name=line, explain=prose, why=prose, variant=line.filter(lambda v: v.strip() and v != "base"), ops=ops)
def test_any_session_saves_loads_and_replays_bit_for_bit(tmp_path, name, explain, why, variant, ops):
    sc = Scenario.model_validate({
        "scenario": {"name": name, "explain": explain, "seed": 3},
        "data": {"kind": "spiral", "n": 120}, "model": {"hidden": [8]},
        "train": {"steps": 30, "eval_every": 10},
        "variants": [{"name": variant[:64], "set": {"lr": 0.05}}],
        "expect": [{"metric": "val_loss", "op": "<", "value": 100.0, "why": why}]})
    sim = play(Simulation(sc), ops)
    path = tmp_path / f"s{abs(hash((name, tuple(map(str, ops))))) % 10**9}.toml"
    begin_save(sim, path, source="prop")
    loaded = load_scenario(path)
    assert (loaded.name, loaded.scenario.explain) == (sc.name, sc.scenario.explain)
    assert [v.name for v in loaded.variants] == [v.name for v in sc.variants]
    assert_replays(path, sim)
