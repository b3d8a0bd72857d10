"""`nnlab check --seeds N --widths ...` and claims with controls: a claim must hold across seeds
and sizes, and must fail when its cause is removed (else it is reported vacuous)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from lab.cli import app
from lab.errors import ExitCode, ScenarioError
from lab.scenario import load_scenario
from lab.scenario.schema import Scenario
from lab.sim.expectations import CheckResult, check, trailing_mean
from lab.sim.robustness import Config, configs, parse_widths, scenario_at, tally

runner = CliRunner()

# gaussians are learned in a few dozen steps at lr 0.5, and not at all at lr 1e-7
BASE = """
[scenario]
name = "controls"
seed = 4
[data]
kind = "gaussians"
n = 240
classes = 3
noise = 0.3
[model]
hidden = [12, 6]
[train]
optimizer = "sgd"
lr = 0.5
batch_size = 32
steps = 60
eval_every = 20

[[variants]]
name = "frozen"
set = { lr = 1e-7 }

[[variants]]
name = "twin"
set = { lr = 0.5 }

[[variants]]
name = "wide"
set = { hidden = [20] }
"""


def write(tmp_path, expect: str, name: str = "s.toml"):
    path = tmp_path / name
    path.write_text(BASE + expect, encoding="utf-8")
    return path


LEARNS = '\n[[expect]]\nmetric = "val_acc"\nat = "final"\nop = ">"\nvalue = 0.8\n'


# -- configurations ------------------------------------------------------------------------------
def test_configs_put_the_scenario_as_written_first_and_try_every_seed_at_every_width():
    tried = configs(3, (0.5, 2.0, 1.0, 2.0))
    assert tried[0].own and sum(c.own for c in tried) == 1
    assert len(tried) == 3 * 3  # widths x1 (always), x0.5, x2; duplicates and x1 once
    assert {(c.seed_offset, c.width) for c in tried} == {(k, w) for k in range(3) for w in (1.0, 0.5, 2.0)}
    assert Config(2, 2.0).label(5) == "seed 7, widths x2" and Config(0, 1.0).label(5) == "seed 5"


@pytest.mark.parametrize("text, problem", [("a", "not a number"), ("0", "outside"), ("-1", "outside"),
                                           ("9", "outside"), (",", "expected factors")])
def test_bad_widths_say_what_is_expected(text, problem):
    with pytest.raises(ValueError, match=problem):
        parse_widths(text)


def test_a_configuration_changes_the_seed_and_scales_every_hidden_width(tmp_path):
    sc = load_scenario(write(tmp_path, LEARNS))
    assert scenario_at(sc, Config()) is sc
    other = scenario_at(sc, Config(2, 1.0))
    assert other.seed == 6 and other.model.hidden == [12, 6]
    wide = scenario_at(sc, Config(1, 0.5))
    assert wide.seed == 5 and wide.model.hidden == [6, 3]
    assert next(v for v in wide.variants if v.name == "wide").set.hidden == [10]
    assert next(v for v in wide.variants if v.name == "frozen").set.lr == 1e-7  # the rest as written
    assert wide.expect == sc.expect and wide.train == sc.train


def test_a_configuration_too_big_for_the_limits_is_an_error_naming_it(tmp_path):
    sc = load_scenario(write(tmp_path, LEARNS)).model_copy(deep=True)
    big = sc.model_copy(update={"model": sc.model.model_copy(update={"hidden": [3000, 3000]})})
    with pytest.raises(ScenarioError) as err:
        scenario_at(big, Config(0, 8.0), "big.toml")
    assert "big.toml (seed 4, widths x8)" in str(err.value) and "model.hidden" in str(err.value)


# -- tallies ----------------------------------------------------------------------------------------
def _result(passed: bool, robust: bool = True, vacuous: bool = False) -> CheckResult:
    return CheckResult(0, "claim", passed, 1.0, "> 0", robust=robust, vacuous=vacuous)


@pytest.mark.parametrize("robust, own, other, held", [
    (True, True, True, True), (True, True, False, False), (True, False, True, False),
    (False, True, False, True),  # not robust: only the scenario's own seed counts
    (False, False, True, False),
])
def test_a_robust_claim_must_hold_everywhere_and_a_fragile_one_at_its_own_seed(robust, own, other, held):
    merged, = tally([(Config(), "seed 0", [_result(own, robust)]), (Config(1), "seed 1", [_result(other, robust)])])
    assert merged.passed is held and merged.ok is held
    assert merged.tried == ("seed 0", "seed 1")
    assert merged.failed_at == tuple(label for label, ok in (("seed 0", own), ("seed 1", other))
                                     if not ok and (robust or label == "seed 0"))


def test_a_control_that_holds_anywhere_required_makes_the_claim_vacuous():
    merged, = tally([(Config(), "seed 0", [_result(True)]), (Config(1), "seed 1", [_result(True, vacuous=True)])])
    assert merged.passed and merged.vacuous and not merged.ok and merged.vacuous_at == ("seed 1",)


# -- controls in a real check -------------------------------------------------------------------------
def test_a_claim_that_fails_on_its_control_passes_and_one_that_holds_there_is_vacuous(tmp_path):
    sc = load_scenario(write(tmp_path, LEARNS.replace('value = 0.8\n', 'value = 0.8\ncontrol = "frozen"\n')
                             + LEARNS.replace('value = 0.8\n', 'value = 0.8\ncontrol = "twin"\n')))
    discriminating, vacuous = check(sc)
    assert discriminating.passed and not discriminating.vacuous and discriminating.ok
    assert discriminating.control == "frozen" and discriminating.control_actual < 0.8
    assert vacuous.passed and vacuous.vacuous and not vacuous.ok
    assert vacuous.control_actual == vacuous.actual  # the twin trains bit for bit as the base


def test_check_exits_1_and_reports_a_vacuous_claim_with_its_control(tmp_path):
    path = write(tmp_path, LEARNS.replace('value = 0.8\n', 'value = 0.8\ncontrol = "twin"\n'))
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == ExitCode.CHECK_FAILED, result.output
    assert "VACUOUS" in result.output and "holds on 'twin' too" in result.output
    assert "1 vacuous" in result.output


@pytest.mark.parametrize("extra, key, problem", [
    ('control = "nope"\n', "expect[0].control", "unknown variant 'nope'"),
    ('control = "base"\n', "expect[0]", "a run the claim already reads"),
    ('robust = false\n', "expect[0]", "robust = false needs robust_reason"),
])
def test_bad_controls_and_robustness_are_input_errors(tmp_path, extra, key, problem):
    path = write(tmp_path, LEARNS.replace('value = 0.8\n', 'value = 0.8\n' + extra))
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert key in result.output and problem in result.output and "Traceback" not in result.output


def test_the_schema_refuses_a_fragile_claim_without_its_reason():
    with pytest.raises(ValidationError, match="robust_reason"):
        Scenario.model_validate({"expect": [{"metric": "loss", "value": 1.0, "robust": False}]})


# -- --seeds and --widths ------------------------------------------------------------------------------
def test_seeds_and_widths_check_every_configuration_and_say_where_a_claim_failed(tmp_path):
    # holds at seed 4 (as written) only if the threshold sits between the seeds' values: find it
    path = write(tmp_path, '\n[[expect]]\nmetric = "loss"\nat = 1\nop = ">"\nvalue = 0.0\n')
    result = runner.invoke(app, ["check", str(path), "--seeds", "3", "--widths", "2", "--json"])
    assert result.exit_code == 0, result.output
    claim = json.loads(result.output)["scenarios"][0]["expectations"][0]
    assert claim["tried"] == ["seed 4", "seed 5", "seed 6", "seed 4, widths x2", "seed 5, widths x2",
                              "seed 6, widths x2"]
    assert claim["passed"] and claim["failed_at"] == []

    losses = [load_and_first_loss(path, Config(k, w)) for k, w in ((0, 1.0), (1, 1.0), (2, 1.0))]
    assert len(set(losses)) == 3  # the seeds really differ
    between = sorted(losses)[1]  # the claim "loss at step 1 > between" holds at one seed only
    path = write(tmp_path, f'\n[[expect]]\nmetric = "loss"\nat = 1\nop = ">"\nvalue = {between!r}\n', "t.toml")
    result = runner.invoke(app, ["check", str(path), "--seeds", "3", "--json"])
    claim = json.loads(result.output)["scenarios"][0]["expectations"][0]
    held = [f"seed {4 + k}" for k, loss in enumerate(losses) if loss > between]
    assert set(claim["failed_at"]) == {f"seed {4 + k}" for k in range(3)} - set(held)
    assert claim["passed"] is False and result.exit_code == ExitCode.CHECK_FAILED


def load_and_first_loss(path, config: Config) -> float:
    from lab.sim import Simulation

    sim = Simulation(scenario_at(load_scenario(path), config))
    sim.step(1)
    return float(sim.history.series["loss"].last())


def test_bad_widths_on_the_command_line_exit_2(tmp_path):
    result = runner.invoke(app, ["check", str(write(tmp_path, LEARNS)), "--widths", "0.5,x"])
    assert result.exit_code == ExitCode.USAGE and "--widths: 'x' is not a number" in result.output


# -- the moving average's warm-up ----------------------------------------------------------------------
@pytest.mark.parametrize("n, window", [(1, 5), (4, 5), (5, 5), (50, 7), (3, 1)])
def test_the_moving_average_averages_the_values_so_far_until_its_window_fills(n, window):
    values = np.random.default_rng(n).normal(size=n)
    expected = np.array([values[max(0, i - window + 1):i + 1].mean() for i in range(n)])
    np.testing.assert_allclose(trailing_mean(values, window), expected, rtol=1e-12)


def test_one_lucky_first_value_no_longer_counts_a_whole_window():
    values = np.array([0.0] + [1.0] * 9)  # a lucky first batch, then the truth
    assert trailing_mean(values, 20)[1] == pytest.approx(0.5)  # padded, it was 19/20 zeros: 0.05
