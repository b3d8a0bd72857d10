"""Ensembles (lab/ensemble/): the arithmetic against plain numpy, the members (their seeds, one
data split), determinism, parallel == sequential, the schema's errors, the metrics in claims,
the memory estimate, the headless report, and the live view (a Pilot test)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from typer.testing import CliRunner

from lab.cli import app as cli
from lab.ensemble import combine as C
from lab.ensemble.members import MemberSimulation, members_of, simulation, val_probs
from lab.ensemble.record import METRICS, run_ensemble
from lab.errors import ScenarioError
from lab.metrics import ENSEMBLE_SERIES_METRICS, parse_metric
from lab.scenario.load import parse_scenario
from lab.scenario.schema import Scenario
from lab.sim import Simulation
from lab.sim.expectations import check


def tiny(members=3, steps=60, **ensemble) -> Scenario:
    """Spiral, 150 points, 2-8-3: members that train in milliseconds and disagree."""
    raw = {"scenario": {"name": "tiny ensemble", "seed": 0, "pace": "max"},
           "data": {"kind": "spiral", "n": 150, "noise": 0.3},
           "model": {"hidden": [8]},
           "train": {"steps": steps, "eval_every": 20, "lr": 0.5},
           "ensemble": {"members": members, **ensemble} if "mode" not in ensemble else dict(ensemble)}
    return Scenario.model_validate(raw)


# -- the arithmetic against a plain reference ----------------------------------------------------------------
def reference_mean(probs):
    K, n, C_ = len(probs), len(probs[0]), len(probs[0][0])
    return [[sum(probs[k][i][c] for k in range(K)) / K for c in range(C_)] for i in range(n)]


def reference_vote(probs):
    """Most votes; a tie to the higher mean probability, then the lower class (plain loops)."""
    mean = reference_mean(probs)
    out = []
    for i in range(len(probs[0])):
        votes = {}
        for k in range(len(probs)):
            row = list(probs[k][i])
            votes[row.index(max(row))] = votes.get(row.index(max(row)), 0) + 1
        top = max(votes.values())
        tied = [c for c in range(len(mean[i])) if votes.get(c, 0) == top]
        out.append(sorted(tied, key=lambda c: (-mean[i][c], c))[0])
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mean_vote_and_metrics_match_a_plain_reference(seed):
    rng = np.random.default_rng(seed)
    K, n, classes = 4, 50, 3
    probs = C.softmax(rng.normal(size=(K * n, classes)) * 2).reshape(K, n, classes)
    y = rng.integers(0, classes, n)
    assert np.allclose(C.mean_probs(probs), reference_mean(probs.tolist()), rtol=0, atol=1e-15)
    assert C.vote(probs).tolist() == reference_vote(probs.tolist())
    got = C.ensemble_metrics(probs, y, "mean")
    mean = np.array(reference_mean(probs.tolist()))
    accs = [np.mean(np.argmax(probs[k], 1) == y) for k in range(K)]
    assert got["ensemble_val_acc"] == pytest.approx(np.mean(np.argmax(mean, 1) == y))
    assert got["ensemble_val_loss"] == pytest.approx(-np.mean([math.log(mean[i, y[i]]) for i in range(n)]))
    assert got["member_val_acc_mean"] == pytest.approx(np.mean(accs))
    assert got["member_val_acc_best"] == pytest.approx(max(accs))
    assert got["ensemble_gain_best"] == pytest.approx(got["ensemble_val_acc"] - max(accs))
    voted = C.ensemble_metrics(probs, y, "vote")
    assert voted["ensemble_val_acc"] == pytest.approx(np.mean(np.array(reference_vote(probs.tolist())) == y))
    assert set(got) == set(ENSEMBLE_SERIES_METRICS) == set(METRICS)


def test_a_tied_vote_goes_to_the_higher_mean_probability_then_the_lower_class():
    p = np.array([[[0.6, 0.4, 0.0]], [[0.1, 0.9, 0.0]]])  # one vote each: class 1 has the higher mean (0.65)
    assert C.vote(p).tolist() == [1]
    q = np.array([[[0.5, 0.5, 0.0]], [[0.5, 0.5, 0.0]]])  # equal votes, equal means: the lower class
    assert C.vote(q).tolist() == [0]
    assert C.predict(p, "mean").tolist() == [1]


def test_the_loss_of_a_probability_that_rounded_to_zero_is_large_not_infinite():
    p = np.array([[1.0, 0.0]])
    assert math.isfinite(C.cross_entropy(p, np.array([1]))) and C.cross_entropy(p, np.array([1])) > 700


# -- members --------------------------------------------------------------------------------------------------
def test_members_differ_by_seed_and_share_the_data_split():
    sc = tiny(members=3)
    members = members_of(sc)
    assert [m.seed for m in members] == [0, 1, 2] and [m.name for m in members] == ["m1", "m2", "m3"]
    sims = [simulation(m, timeline_capacity=0) for m in members]
    assert isinstance(sims[1], MemberSimulation) and not isinstance(sims[0], MemberSimulation)
    for sim in sims[1:]:
        assert np.array_equal(sim.data.X_val, sims[0].data.X_val) and np.array_equal(sim.data.y_val, sims[0].data.y_val)
        assert not np.array_equal(sim.network.params, sims[0].network.params)  # its own initialisation
    plain = Simulation(sc.model_copy(update={"scenario": sc.scenario.model_copy(update={"seed": 1})}),
                       timeline_capacity=0)
    assert not np.array_equal(plain.data.X_val, sims[1].data.X_val)  # seed 1 alone would split differently


def test_listed_members_take_their_settings_and_the_scenarios_seed():
    sc = tiny(members=[{"name": "narrow", "set": {"hidden": [4]}}, {"set": {"lr": 0.1}, "seed": 7}])
    narrow, second = members_of(sc)
    assert narrow.name == "narrow" and narrow.scenario.model.hidden == [4] and narrow.seed == 0
    assert second.name == "m2" and second.scenario.train.lr == 0.1 and second.seed == 7


def test_member_probabilities_agree_with_the_simulations_own_evaluation():
    sc = tiny()
    sim = Simulation(sc, timeline_capacity=0)
    sim.step(40)
    sim.evaluate_now()
    p = val_probs(sim)
    assert np.allclose(p.sum(axis=1), 1.0)
    acc, _ = C.member_metrics(p, sim.data.y_val)
    assert acc == pytest.approx(sim.history.series["val_acc"].last())


def test_member_0_is_the_scenarios_own_run_bit_for_bit():
    sc = tiny(steps=40)
    result = run_ensemble(sc)
    sim = Simulation(sc, timeline_capacity=0)
    sim.step(40)
    sim.evaluate_now()
    acc, loss = C.member_metrics(val_probs(sim), sim.data.y_val)
    assert result.member_acc[-1, 0] == acc and result.member_loss[-1, 0] == loss


# -- determinism, parallel ----------------------------------------------------------------------------------
def _same(a, b) -> bool:
    return (np.array_equal(a.steps, b.steps) and np.array_equal(a.member_acc, b.member_acc, equal_nan=True)
            and all(np.array_equal(a.metrics[k], b.metrics[k], equal_nan=True) for k in METRICS)
            and all(np.array_equal(x.probs, y.probs) for x, y in zip(a.runs, b.runs)))


def test_the_same_scenario_gives_the_same_bits_and_parallel_equals_sequential():
    sc = tiny(members=3)
    first, again = run_ensemble(sc), run_ensemble(sc)
    assert _same(first, again)
    parallel = run_ensemble(sc, jobs=2)
    assert parallel.jobs == 2 and _same(first, parallel)
    assert first.steps.tolist() == [0, 20, 40, 60]
    # the members really differ (else an ensemble teaches nothing)
    assert len({tuple(r.probs[-1].ravel()[:20]) for r in first.runs}) == 3


def test_the_ensemble_is_the_mean_of_the_members_probabilities_at_each_checkpoint():
    sc = tiny(members=3)
    result = run_ensemble(sc)
    y = result.runs[0].y_val
    for row in range(result.steps.size):
        probs = np.stack([r.probs[row] for r in result.runs])
        mean = np.array(reference_mean(probs.tolist()))
        assert result.metrics["ensemble_val_acc"][row] == pytest.approx(np.mean(mean.argmax(1) == y))


def test_a_snapshot_ensemble_takes_one_runs_weights_at_the_chosen_steps():
    sc = tiny(mode="snapshot", at=[20, 50, 60])
    result = run_ensemble(sc)
    assert result.names == ["@20", "@50", "@60"] and len(result.runs) == 1
    assert result.steps.tolist() == [0, 20, 40, 50, 60]
    assert np.isnan(result.metrics["ensemble_val_acc"][0])  # no snapshot yet at step 0
    sim = Simulation(sc, timeline_capacity=0)  # the reference: the plain run, stopped at each snapshot
    taken = []
    for step in (20, 50, 60):
        sim.step(step - sim.step_count)
        taken.append(val_probs(sim))
    y = sim.data.y_val
    expected = C.ensemble_metrics(np.stack(taken), y, "mean")
    for name in METRICS:
        assert result.metrics[name][-1] == expected[name]
    at_40 = C.ensemble_metrics(np.stack(taken[:1]), y, "mean")  # only the first snapshot so far
    assert result.metrics["ensemble_val_acc"][2] == at_40["ensemble_val_acc"]


# -- the schema -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ensemble, words", [
    ({"members": 0}, ["ensemble.members", ">= 1"]),
    ({"members": 33}, ["ensemble.members"]),
    ({"combine": "avg"}, ["ensemble.combine", "mean, vote"]),
    ({"mode": "snapshot"}, ["needs at"]),
    ({"mode": "snapshot", "at": [50, 20]}, ["ascending"]),
    ({"mode": "snapshot", "at": [20, 500]}, ["ensemble.at", "500", "last step 60"]),
    ({"mode": "snapshot", "at": [20, 40], "members": 3}, ["leave out members"]),
    ({"at": [20, 40]}, ["at is for mode"]),
    ({"members": [{"set": {"n": 50}}]}, ["cannot change n"]),
    ({"memebrs": 3}, ["memebrs"]),
])
def test_a_bad_ensemble_table_is_an_error_that_names_the_key(ensemble, words):
    raw = {"data": {"kind": "spiral", "n": 150}, "model": {"hidden": [8]}, "train": {"steps": 60},
           "ensemble": ensemble}
    with pytest.raises(ScenarioError) as info:
        parse_scenario(raw, "bad.toml")
    text = str(info.value)
    assert "bad.toml" in text
    for word in words:
        assert word in text, text


def test_an_ensemble_metric_without_an_ensemble_is_refused_and_the_cli_exits_2(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[[expect]]\nmetric = "ensemble_val_acc"\nop = ">"\nvalue = 0.5\n')
    result = CliRunner().invoke(cli, ["check", str(path)])
    assert result.exit_code == 2
    assert "needs an [ensemble] table" in result.output
    path.write_text('[ensemble]\nmembers = "five"\n')
    result = CliRunner().invoke(cli, ["run", str(path), "--headless"])
    assert result.exit_code == 2 and "ensemble.members" in result.output and "Traceback" not in result.output


def test_the_memory_estimate_counts_every_member(monkeypatch):
    from lab.scenario.budget import ensemble_bytes, estimate, together

    one = tiny(members=1)
    eight = tiny(members=8)
    nets_one = together(estimate(one))
    assert ensemble_bytes(eight)[0] >= 8 * nets_one
    monkeypatch.setenv("NNLAB_MEMORY_BUDGET", "200M")  # one run fits (~50 MB), 32 do not
    big = {"data": {"kind": "spiral", "n": 150}, "model": {"hidden": [300, 300]}, "train": {"steps": 60},
           "ensemble": {"members": 32}}
    with pytest.raises(ScenarioError, match=r"\[ensemble\] needs about"):
        parse_scenario(big, "big.toml")


# -- claims ------------------------------------------------------------------------------------------------
def test_ensemble_metrics_are_claims_and_the_gain_vanishes_with_one_member():
    for name in ENSEMBLE_SERIES_METRICS:
        assert parse_metric(name).name == name
    assert parse_metric("steps_to(ensemble_val_acc >= 0.5)").steps_to == (">=", 0.5)
    claims = [{"metric": "ensemble_val_acc", "op": ">", "value": 0.5},
              {"metric": "ensemble_gain_mean", "op": ">", "value": 0.0},
              {"metric": "ensemble_gain_mean", "op": "==", "value": 0.0, "at": 0},
              {"metric": "val_acc", "op": ">", "value": 0.0},
              {"metric": "steps_to(ensemble_val_acc >= 0.5)", "op": "<=", "value": 60}]
    sc = tiny(members=5, steps=60).model_copy(update={"expect": []})
    sc = Scenario.model_validate({**sc.model_dump(), "expect": claims})
    results = check(sc)
    expected = run_ensemble(sc)
    assert results[0].actual == expected.metrics["ensemble_val_acc"][-1]
    assert results[1].actual == expected.metrics["ensemble_gain_mean"][-1]
    assert results[3].actual == pytest.approx(expected.member_acc[-1, 0])  # val_acc: member 0's own run
    alone = Scenario.model_validate({**sc.model_dump(), "ensemble": {"members": 1}})
    gain = check(alone)[1]
    assert gain.actual == 0.0 and not gain.passed  # the cause removed: one member gains nothing


def test_check_with_jobs_gives_the_same_numbers():
    sc = Scenario.model_validate({**tiny(members=3).model_dump(),
                                  "expect": [{"metric": "ensemble_val_loss", "op": "<", "value": 5}]})
    assert check(sc)[0].actual == check(sc, jobs=2)[0].actual


# -- headless -------------------------------------------------------------------------------------------------
def test_run_headless_prints_members_and_the_ensemble_over_time(tmp_path):
    path = tmp_path / "e.toml"
    path.write_text('[scenario]\nname = "tiny"\n[data]\nkind = "spiral"\nn = 150\n[model]\nhidden = [8]\n'
                    '[train]\nsteps = 40\neval_every = 20\n[ensemble]\nmembers = 3\n')
    out = tmp_path / "e.csv"
    result = CliRunner().invoke(cli, ["run", str(path), "--headless", "-j", "1", "--csv", str(out)])
    assert result.exit_code == 0, result.output
    for word in ("m1", "m2", "m3", "ensemble", "average member", "best member"):
        assert word in result.output
    lines = out.read_text().splitlines()
    assert lines[0].startswith("step,m1_val_acc") and len(lines) == 1 + 3  # steps 0, 20, 40


def test_a_saved_ensemble_scenario_loads_back_the_same(tmp_path):
    from lab.scenario import load_scenario
    from lab.scenario.dump import dump_scenario

    for ensemble in ({"members": 4, "combine": "vote"}, {"mode": "snapshot", "at": [20, 40]},
                     {"members": [{"name": "a", "set": {"hidden": [4]}, "seed": 3}, {}]}, {}):
        sc = Scenario.model_validate({**tiny().model_dump(), "ensemble": ensemble})
        path = tmp_path / "saved.toml"
        path.write_text(dump_scenario(sc), encoding="utf-8")
        assert load_scenario(path) == sc, ensemble


# -- the lab ------------------------------------------------------------------------------------------------
def test_the_ensemble_screen_shows_members_and_the_ensemble_live_with_the_headless_numbers(tmp_path):
    from lab.tui.app import make_app
    from lab.tui.screens.browser import BrowserScreen
    from lab.tui.screens.ensemble import EnsembleScreen
    from lab.tui.screens.help import HelpScreen
    from lab.tui.widgets.ensemble import MemberTable
    from tests.test_tui import run, screen_text, until

    sc = tiny(members=3, steps=60)
    headless = run_ensemble(sc)

    async def body():
        app = make_app(scenario=sc, source="tiny.toml", output_dir=tmp_path, warm_up=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, EnsembleScreen), "the ensemble screen")
            screen = app.screen
            ls = screen.lockstep
            await until(pilot, lambda: ls.ready and ls.frame.steps.size == headless.steps.size and not ls.running,
                        "the members to reach the end")
            frame = ls.frame
            # the same numbers as `nnlab check` / `nnlab run --headless`, checkpoint by checkpoint
            assert np.array_equal(frame.steps, headless.steps)
            assert np.array_equal(frame.member_acc, headless.member_acc, equal_nan=True)
            for name in METRICS:
                assert np.array_equal(frame.metrics[name], headless.metrics[name], equal_nan=True), name
            await pilot.pause(0.4)
            text = screen_text(app)
            lines = text.splitlines()
            assert len(lines) <= 24 and all(len(line) <= 80 for line in lines)
            for word in ("m1", "m2", "m3", "average", "ensemble", "seed 2", "vs best member"):
                assert word in text, (word, text)
            best = headless.best_member(-1)
            assert f"{headless.names[best]} *" in str(screen.query_one(MemberTable).render())
            await pilot.press("g")
            await pilot.pause(0.4)
            assert "val loss" in screen_text(app)
            await pilot.press("r")  # replay: back to step 0, then the same numbers again
            await until(pilot, lambda: ls.pending == 0 and ls.frame.steps.size == headless.steps.size
                        and not ls.running, "the replay")
            assert np.array_equal(ls.frame.metrics["ensemble_val_acc"], headless.metrics["ensemble_val_acc"],
                                  equal_nan=True)
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
            assert "ensemble screen" in screen_text(app)
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, EnsembleScreen), "back from the help")
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, BrowserScreen), "back in the browser")

    run(body)


def test_the_ensemble_modules_never_import_the_ui():
    import subprocess
    import sys

    code = ("import sys, lab.ensemble.record, lab.ensemble.report, lab.ensemble.members, lab.parallel; "
            "bad = [m for m in sys.modules if m == 'textual' or m.startswith('textual.') or m.startswith('lab.tui')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_member_table_keeps_the_best_member_in_view_when_members_do_not_fit():
    from lab.tui.ensemble_lockstep import EnsembleFrame
    from lab.tui.widgets.ensemble import MemberTable

    K = 32
    acc = np.linspace(0.5, 0.6, K)
    acc[20] = 0.9
    frame = EnsembleFrame(tuple(f"m{k + 1}" for k in range(K)), tuple(f"seed {k}" for k in range(K)),
                          np.array([0, 10]), np.vstack([acc, acc]), np.ones((2, K)),
                          {name: np.array([0.5, 0.95]) for name in METRICS})
    table = MemberTable()
    table.budget = 12
    table.frame = frame
    text = str(table.render())
    lines = text.splitlines()
    assert len(lines) <= 12, text
    assert "m21 *" in text and "more member(s)" in text and "ensemble" in text


def test_listed_members_of_different_shapes_and_a_vote_combine():
    sc = tiny(members=[{"set": {"hidden": [4]}}, {"set": {"hidden": [16], "activation": "tanh"}}, {"seed": 5}],
              combine="vote")
    result = run_ensemble(sc)
    assert result.names == ["m1", "m2", "m3"] and [r.seed for r in result.runs] == [0, 0, 5]
    y = result.runs[0].y_val
    probs = np.stack([r.probs[-1] for r in result.runs])
    assert result.metrics["ensemble_val_acc"][-1] == pytest.approx(np.mean(np.array(reference_vote(probs.tolist())) == y))


@pytest.mark.slow
def test_members_on_a_dask_cluster_give_the_same_bits():
    pytest.importorskip("distributed")
    sc = tiny(members=3)
    assert _same(run_ensemble(sc), run_ensemble(sc, jobs=2, scheduler="local"))


@pytest.mark.parametrize("size, beside", [((160, 50), True), ((100, 30), False)])
def test_a_wide_terminal_shows_the_explanation_beside_the_members(tmp_path, size, beside):
    from lab.tui.app import make_app
    from lab.tui.screens.ensemble import EnsembleScreen
    from tests.test_tui import run, screen_text, until

    sc = Scenario.model_validate({**tiny(members=2, steps=20).model_dump(),
                                  "scenario": {"name": "wide", "pace": "max", "explain": "Averaging **helps** here."}})

    async def body():
        app = make_app(scenario=sc, source="tiny.toml", output_dir=tmp_path, warm_up=False)
        async with app.run_test(size=size) as pilot:
            await until(pilot, lambda: isinstance(app.screen, EnsembleScreen) and app.screen.lockstep.ready
                        and not app.screen.lockstep.running, "the members at the end")
            await pilot.pause(0.3)
            text = screen_text(app)
            assert ("Averaging helps here." in text) == beside
            assert all(len(line) <= size[0] for line in text.splitlines())

    run(body)


def test_a_variant_changes_the_ensemble_and_serves_as_a_claims_control():
    raw = {**tiny(members=4).model_dump(),
           "variants": [{"name": "one", "set": {"ensemble": {"members": 1}}}],
           "expect": [{"metric": "ensemble_gain_mean", "op": ">", "value": 0.0, "control": "one"}]}
    sc = Scenario.model_validate(raw)
    assert sc.with_changes(sc.variants[0].set).ensemble.size == 1 and sc.ensemble.size == 4
    (result,) = check(sc)
    assert result.control_actual == 0.0 and not result.vacuous
    bad = {**raw, "variants": [{"name": "x", "set": {"ensemble": {"at": [20, 40]}}}], "expect": []}
    with pytest.raises(ScenarioError, match=r"variants\[0\].set.ensemble: at is for mode"):
        parse_scenario(bad, "bad.toml")


def test_reading_the_members_probabilities_never_changes_their_training():
    """With dropout (random masks) too: the ensemble's extra forward passes draw nothing."""
    sc = Scenario.model_validate({**tiny(members=2, steps=60).model_dump(),
                                  "model": {"hidden": [8], "dropout": 0.3}})
    result = run_ensemble(sc)
    sim = Simulation(sc, timeline_capacity=0)
    sim.step(60)
    sim.evaluate_now()
    acc, loss = C.member_metrics(val_probs(sim), sim.data.y_val)
    assert result.member_acc[-1, 0] == acc and result.member_loss[-1, 0] == loss
