"""Saving a session (lab/sim/session.py): the file's base run is the session and replays it
bit for bit; the scenario's claims that still hold are kept, the others are commented out
with what was measured; `nnlab check FILE` passes on what was saved; the user's events
belong to the base run only, so the variants keep the scenario's own runs; a reset keeps
the user's changes in the event log; every write is atomic.

Key presses are played as the TUI plays them: Simulation.set(**change_for(action, settings)).
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import lab.cli
import lab.sim.session as session
from lab import Simulation, load_scenario
from lab.errors import ExitCode, ScenarioError
from lab.files import unused_path, write_text_atomic
from lab.scenario.catalog import resolve
from lab.scenario.schema import Changes, Scenario
from lab.sim.expectations import variant_scenarios
from lab.sim.session import begin_save, finish_save, measured, save_session
from lab.tui.controls import change_for

BUNDLED = "activations/dead-relu-high-lr"  # three variants, five claims, 600 steps of 2-64-64-3
SERIES = ("step", "lr", "loss", "train_acc", "grad_norm", "val_step", "val_loss", "val_acc", "trace_step", "w_a",
          "w_b")


def small(**overrides) -> Scenario:
    """Spiral 2-16-16-3, 100 steps, two variants and claims that a change to the base run can break."""
    raw = {
        "scenario": {"name": "small spiral with claims", "seed": 0},
        "data": {"kind": "spiral", "n": 200},
        "model": {"hidden": [16, 16]},
        "train": {"steps": 100, "eval_every": 20},
        "variants": [{"name": "slow", "set": {"lr": 0.01}}, {"name": "tanh", "set": {"activation": "tanh"}}],
        "expect": [
            {"metric": "val_loss", "op": "<", "value": 0.9, "why": "lr 0.1 learns the spiral's start"},
            {"metric": "val_loss", "variant": "slow", "op": ">", "value": 0.95, "why": "lr 0.01 barely moves"},
            {"metric": "val_loss", "variant": "slow", "ratio_over": "base", "op": ">", "value": 1.1,
             "why": "ten times the lr, a lower loss"},
            {"metric": "dead_fraction", "layer": 1, "variant": "tanh", "op": "==", "value": 0.0},
            {"metric": "diverged", "op": "==", "value": 0.0},
        ],
    }
    raw.update(overrides)
    return Scenario.model_validate(raw)


def play(sim: Simulation, ops) -> Simulation:
    """ints: train that many steps; 'reset' / 'reset_new_seed': r / R; other strings: a change key's action."""
    for op in ops:
        if isinstance(op, int):
            sim.step(op)
        elif op == "reset":
            sim.reset()
        elif op == "reset_new_seed":
            sim.reset(new_seed=True)
        else:
            sim.set(**change_for(op, sim.snapshot().settings, sim.step_count))
    return sim


def changes(events) -> list:
    """(step, changes) of the events, schedules without `total` (a save past the end pins the span)."""
    out = []
    for e in events:
        c = Changes(**e.changes).model_dump(exclude_none=True)
        if "schedule" in c:
            c["schedule"].pop("total", None)
        out.append((e.step, c))
    return out


def assert_replays(path: Path, sim: Simulation) -> Simulation:
    """The saved file, run to the session's step, gives the session's every number and weight."""
    replay = Simulation(load_scenario(path))
    replay.run_to(sim.step_count)
    assert replay.step_count == sim.step_count
    for name in SERIES:
        assert np.array_equal(replay.history.series[name].values(), sim.history.series[name].values(),
                              equal_nan=True), name
    assert np.array_equal(replay.network.params, sim.network.params)
    assert changes(replay.events) == changes(sim.events)
    return replay


def cli_check(*paths: Path) -> dict:
    result = CliRunner().invoke(lab.cli.app, ["check", "--json", *map(str, paths)])
    assert result.exit_code == ExitCode.OK, result.output
    return json.loads(result.output)


def uncommented(text: str) -> str:
    """The file with its commented-out [[expect]] entries put back, as a user would."""
    out, inside = [], False
    for line in text.splitlines():
        inside = inside or line == "# [[expect]]"
        inside = inside and line != ""
        out.append(re.sub(r"^# ?", "", line) if inside else line)
    return "\n".join(out) + "\n"


def same_run(a: Scenario, b: Scenario) -> bool:
    """Two scenarios train the same run (what Simulation reads: seed, data, model, train, events;
    a schedule's total of None means train.steps)."""
    def train(sc):
        t = sc.train
        return t.model_copy(update={"schedule": t.schedule.model_copy(update={"total": t.schedule.total or t.steps})})

    return (a.seed, a.data, a.model, train(a), changes_of(a)) == (b.seed, b.data, b.model, train(b), changes_of(b))


def changes_of(sc: Scenario) -> list:
    return [(e.at, e.set, e.only) for e in sc.events]


def assert_saved_honestly(path: Path, saved, original: Scenario, sim: Simulation) -> str:
    """Everything a saved session promises."""
    text = path.read_text(encoding="utf-8")
    loaded = load_scenario(path)
    # 1. the base run is the session, the variants are the scenario's own runs
    assert_replays(path, sim)
    original_runs, saved_runs = variant_scenarios(original), variant_scenarios(loaded)
    assert list(saved_runs) == list(original_runs)
    for name in list(original_runs)[1:]:
        want = original_runs[name].model_copy(update={"scenario": original_runs[name].scenario.model_copy(
            update={"seed": sim.seed})})  # a reset with a new seed (R) re-seeds the whole file
        assert same_run(saved_runs[name], want), name
    marked = [e.only for e in loaded.events if e.only is not None]
    user = [e for e in sim.events if e.source == "user"]
    assert marked == ([["base"]] * len(user) if original.variants else [])
    # 2. the claims: the ones that hold are kept, the others are comments quoting what was measured
    assert saved.checked and len(saved.results) == len(original.expect)
    assert list(loaded.expect) == saved.kept
    assert len(saved.kept) + len(saved.dropped) == len(original.expect)
    for ex, r in saved.dropped:
        assert not r.ok
        assert f"# dropped: {r.description}" in text
        if r.passed:  # holds, but on its control too
            assert (f"# measured {measured(r)} in this run, and {r.control_actual:.6g} on its control "
                    f"{r.control!r}: after this session's changes it holds there too.") in text
        else:
            assert f"# measured {measured(r)} in this run: it no longer holds after this session's changes." in text
    # 3. `nnlab check FILE` passes on what was saved...
    report = cli_check(path)
    assert [e["description"] for e in report["scenarios"][0]["expectations"]] == [
        r.description for r in saved.results if r.ok]
    # ...and the dropped claims, put back, fail with exactly the values the comments quote
    if saved.dropped:
        back = path.with_name("uncommented.toml")
        back.write_text(uncommented(text), encoding="utf-8")
        assert load_scenario(back).expect == original.expect
        result = CliRunner().invoke(lab.cli.app, ["check", "--json", str(back)])
        assert result.exit_code == ExitCode.CHECK_FAILED, result.output
        failed = [(e["description"], e["actual"]) for e in json.loads(result.output)["scenarios"][0]["expectations"]
                  if not e["passed"]]
        assert failed == [(r.description, r.actual if np.isfinite(r.actual) else str(r.actual))  # as --json writes it
                          for _, r in saved.dropped]
    return text


# -- several key sequences, on the bundled scenario and on a small one ------------------------------------
BUNDLED_SEQUENCES = {
    "lr-down": [20, "lr_down", 30],
    "activation": [15, "next_activation", 20],
    "schedule": [10, "schedule", 30],
    "change-then-reset": [30, "lr_down", 10, "reset", 20],
    "past-the-end": [600, "lr_down", 25],
}


@pytest.mark.parametrize("ops", BUNDLED_SEQUENCES.values(), ids=BUNDLED_SEQUENCES.keys())
def test_a_saved_session_of_a_bundled_scenario_checks_and_replays(tmp_path, ops):
    original = load_scenario(resolve(BUNDLED))
    sim = play(Simulation(original), ops)
    path = tmp_path / "saved.toml"
    saved = save_session(sim, path, source=BUNDLED)
    text = assert_saved_honestly(path, saved, original, sim)
    assert text.startswith(f"# Saved from the nnlab run of {BUNDLED!r} at step {sim.step_count}.")
    if ops == BUNDLED_SEQUENCES["activation"]:
        # leaky_relu cannot die: the base run's "most ReLUs die" no longer holds, the variants' claims do
        # and "low-lr keeps its units" no longer tells the cause apart: the base keeps them too
        assert [r.description for _, r in saved.dropped] == ["dead_fraction[layer 1] > 0.5 at final step",
                                                             "dead_fraction[layer 1](low-lr) < 0.1 at final step"]
        assert "# measured 0 in this run" in text
        assert "on its control 'base': after this session's changes it holds there too." in text
    if ops == BUNDLED_SEQUENCES["past-the-end"]:
        loaded = load_scenario(path)
        assert loaded.train.steps == 625
        assert all(v.set.steps == 600 for v in loaded.variants)  # the variants run as long as they did


SMALL_SEQUENCES = {
    "lr-down": [10, "lr_down", 40],
    "init": [10, "next_init", 30],
    "dropout": [5, "dropout_up", 20, "dropout_up", 10],
    "optimizer-batchnorm": [5, "optimizer", 10, "batchnorm", 20],
    "preprocessing": [3, "preprocess", 30],
    "changes-at-step-0": ["next_init", "next_activation", "dropout_up", 30],
    "init-then-reset": [10, "next_init", 10, "reset", 15],
    "changes-then-reset-twice": [5, "next_activation", 5, "lr_up", 5, "reset", 5, "dropout_up", 5, "reset", 12],
    "data-optimizer-init-then-reset": [5, "preprocess", "optimizer", "next_init", 5, "reset", 10],
    "new-seed": ["lr_down", 10, "reset_new_seed", 10],
    "past-the-end": [90, "schedule", 40, "lr_up", 5],
    "nothing": [25],
}


@pytest.mark.parametrize("ops", SMALL_SEQUENCES.values(), ids=SMALL_SEQUENCES.keys())
def test_a_saved_session_of_a_small_scenario_checks_and_replays(tmp_path, ops):
    original = small()
    sim = play(Simulation(original), ops)
    path = tmp_path / "saved.toml"
    saved = save_session(sim, path)
    assert_saved_honestly(path, saved, original, sim)
    if ops == SMALL_SEQUENCES["nothing"]:
        assert not saved.dropped and load_scenario(path).expect == original.expect
    if ops == SMALL_SEQUENCES["lr-down"]:  # a slower base run: its own claim and the ratio go, the variant's stay
        assert [ex.why for ex, _ in saved.dropped] == ["lr 0.1 learns the spiral's start",
                                                       "ten times the lr, a lower loss"]


def test_a_session_without_variants_saves_plain_events(tmp_path):
    """No variants: nothing to keep apart, so the file has no `only` (it reads like a hand-written one)."""
    original = small(variants=[], expect=[{"metric": "diverged", "op": "==", "value": 0.0}])
    sim = play(Simulation(original), [10, "lr_down", 10])
    path = tmp_path / "saved.toml"
    saved = save_session(sim, path)
    text = assert_saved_honestly(path, saved, original, sim)
    assert "only" not in text and load_scenario(path).events[0].only is None


# -- the format: `only` -------------------------------------------------------------------------------------
def test_events_without_only_belong_to_every_run_as_before():
    sc = small(events=[{"at": 10, "set": {"lr": 0.05}}])
    runs = variant_scenarios(sc)
    assert all(r.events == sc.events for r in runs.values())
    assert runs["base"] is sc  # old files: exactly the scenario, as before


def test_only_gives_an_event_to_the_runs_it_names():
    sc = small(events=[{"at": 10, "set": {"lr": 0.05}, "only": ["base"]},
                       {"at": 20, "set": {"dropout": 0.2}, "only": ["slow", "tanh"]},
                       {"at": 30, "set": {"lr": 0.02}}])
    runs = variant_scenarios(sc)
    assert [e.at for e in runs["base"].events] == [10, 30]
    assert [e.at for e in runs["slow"].events] == [20, 30] == [e.at for e in runs["tanh"].events]
    assert all(e.only is None for r in runs.values() for e in r.events)  # each run is self-contained
    sim = Simulation(sc)  # a Simulation is the base run
    sim.run_to(40)
    assert [(e.step, e.changes) for e in sim.events] == [(10, {"lr": 0.05}), (30, {"lr": 0.02})]
    alone = Simulation(runs["base"])
    alone.run_to(40)
    assert np.array_equal(alone.history.series["loss"].values(), sim.history.series["loss"].values())


def test_only_must_name_runs_of_the_scenario(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text('[train]\nsteps = 50\n\n[[events]]\nat = 5\nset = { lr = 0.05 }\nonly = ["slwo"]\n\n'
                    '[[variants]]\nname = "slow"\nset = { lr = 0.01 }\n', encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert "events[0].only: unknown run 'slwo'; did you mean 'slow'?" in str(info.value)
    path.write_text('[[events]]\nat = 5\nset = { lr = 0.05 }\nonly = []\n', encoding="utf-8")
    with pytest.raises(ScenarioError):
        load_scenario(path)


def test_user_events_never_reach_the_variants(tmp_path):
    """The bug this fixes: a saved session's changes used to run in every variant too."""
    original = small()
    sim = play(Simulation(original), [10, "next_activation", "lr_up", 20])
    save_session(sim, tmp_path / "saved.toml")
    loaded = load_scenario(tmp_path / "saved.toml")
    for name in ("slow", "tanh"):
        a, b = Simulation(variant_scenarios(loaded)[name]), Simulation(variant_scenarios(original)[name])
        a.run_to(100)
        b.run_to(100)
        assert a.events == [] and np.array_equal(a.history.series["loss"].values(), b.history.series["loss"].values())


# -- reset keeps the change visible --------------------------------------------------------------------------
def test_L_then_r_keeps_the_change_in_the_event_log_and_the_save_replays(tmp_path):
    original = load_scenario(resolve(BUNDLED))
    sim = play(Simulation(original), [40, "lr_down", 15, "reset"])
    lr = original.train.lr / 10 ** 0.5
    assert [(e.step, e.changes, e.source) for e in sim.snapshot().events] == [(0, {"lr": lr}, "user")]
    play(sim, [30])
    assert sim.snapshot().events[0].changes == {"lr": lr}
    path = tmp_path / "saved.toml"
    save_session(sim, path)
    event = load_scenario(path).events[0]
    assert (event.at, event.set.given(), event.only) == (0, {"lr": lr}, ["base"])
    assert_replays(path, sim)
    sim.reset()  # and again: the same single event, not one per reset
    assert [(e.step, e.changes, e.source) for e in sim.events] == [(0, {"lr": lr}, "user")]


def test_an_init_change_kept_through_reset_gives_the_same_weights_every_time(tmp_path):
    sim = play(Simulation(small()), ["next_init"])  # at step 0: the weights the run starts from
    start = sim.network.params.copy()
    play(sim, [30, "reset"])
    assert np.array_equal(sim.network.params, start)  # the same weights as before the reset
    play(sim, [20, "lr_down", 5, "reset"])
    assert sim.current.model.init == "xavier"
    play(sim, [10])
    save_session(sim, tmp_path / "saved.toml")
    replay = assert_replays(tmp_path / "saved.toml", sim)
    again = Simulation(load_scenario(tmp_path / "saved.toml"))  # the replay starts from them too
    assert np.array_equal(again.network.params, start) and replay.step_count == 10


def test_a_reset_drops_changes_that_undo_themselves():
    sim = play(Simulation(small()), [5, "batchnorm", 5, "batchnorm", 5, "reset"])
    assert sim.events == [] and sim.current == sim.original


def test_a_change_at_step_0_is_evaluated_as_a_replay_evaluates_it():
    sim = play(Simulation(small()), ["next_init"])
    replay = Simulation(sim.scenario_with_events())
    assert np.array_equal(sim.history.series["val_loss"].values(), replay.history.series["val_loss"].values())
    assert len(sim.history.series["val_step"]) == 1


# -- two writes: at once, then with the verdicts -------------------------------------------------------------
def test_the_file_is_on_disk_before_the_check_and_replays_whatever_becomes_of_it(tmp_path):
    original = small()
    sim = play(Simulation(original), [10, "lr_down", 10])
    path = tmp_path / "saved.toml"
    pending = begin_save(sim, path, source="small.toml")
    text = path.read_text(encoding="utf-8")
    assert not pending.checked and "[[expect]]\n" not in text.replace("# [[expect]]", "")
    assert text.count("# being checked: ") == len(original.expect)
    assert load_scenario(path).expect == []
    (tmp_path / "back.toml").write_text(uncommented(text), encoding="utf-8")
    assert load_scenario(tmp_path / "back.toml").expect == original.expect  # nothing lost, only commented out
    cli_check(path)
    assert_replays(path, sim)
    sim.step(50)  # the session goes on; the file holds what was saved

    stopped = finish_save(pending, cancelled=lambda: True)  # e.g. the lab quits mid-check
    text = path.read_text(encoding="utf-8")
    assert stopped.problem == "the lab closed before the check finished"
    assert text.count("# not checked: ") == len(original.expect) and "being checked" not in text
    assert load_scenario(path).expect == []
    cli_check(path)

    done = finish_save(pending)
    assert done.checked and load_scenario(path).expect == done.kept
    cli_check(path)


def test_a_crashing_check_keeps_the_session_and_says_why(tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(session, "check", crash)
    sim = play(Simulation(small()), [10])
    saved = save_session(sim, tmp_path / "saved.toml")
    text = (tmp_path / "saved.toml").read_text(encoding="utf-8")
    assert saved.problem == "the check crashed: RuntimeError: boom"
    assert "# Claims: not checked (the check crashed: RuntimeError: boom)" in text
    assert_replays(tmp_path / "saved.toml", sim)


def test_progress_names_each_run(tmp_path):
    seen = []
    sim = play(Simulation(small()), [10])
    save_session(sim, tmp_path / "saved.toml", progress=lambda i, n, name: seen.append((i, n, name)))
    assert seen == [(0, 3, "base"), (1, 3, "slow"), (2, 3, "tanh")]


# -- atomic writes ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("failing", ["write", "fsync", "replace"])
def test_a_failed_write_leaves_the_old_file_intact(tmp_path, monkeypatch, failing):
    path = tmp_path / "saved.toml"
    path.write_text("old contents\n", encoding="utf-8")

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    if failing == "write":
        monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: _FailingFile(fd))
    else:
        monkeypatch.setattr(os, failing, fail)
    with pytest.raises(OSError):
        write_text_atomic(path, "new contents\n" * 1000)
    monkeypatch.undo()
    assert path.read_text(encoding="utf-8") == "old contents\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved.toml"]  # no temporary file left behind


class _FailingFile:
    """A file whose write fails halfway (a full disk)."""

    def __init__(self, fd: int):
        self.fd = fd

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.close(self.fd)
        return False

    def write(self, text):
        raise OSError(28, "No space left on device")


def test_a_failed_save_leaves_the_previous_save_intact(tmp_path, monkeypatch):
    sim = play(Simulation(small()), [10])
    path = tmp_path / "saved.toml"
    save_session(sim, path)
    before = path.read_text(encoding="utf-8")
    play(sim, ["lr_down", 10])
    monkeypatch.setattr(os, "replace", lambda *a, **k: (_ for _ in ()).throw(OSError(5, "I/O error")))
    with pytest.raises(OSError):
        begin_save(sim, path)
    assert path.read_text(encoding="utf-8") == before


def test_an_atomic_write_gives_an_ordinary_file(tmp_path):
    path = write_text_atomic(tmp_path / "a.toml", "x = 1\n")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    path.chmod(0o640)
    write_text_atomic(path, "x = 2\n")  # rewriting keeps the file's mode
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and path.read_text() == "x = 2\n"


def test_unused_path_never_overwrites(tmp_path):
    first = tmp_path / "s.toml"
    assert unused_path(first) == first
    first.write_text("")
    assert unused_path(first) == tmp_path / "s-2.toml"
    (tmp_path / "s-2.toml").write_text("")
    assert unused_path(first) == tmp_path / "s-3.toml"


# -- the writer ------------------------------------------------------------------------------------------------
def test_every_bundled_scenario_dumps_and_loads_back_unchanged(tmp_path):
    """dump_scenario (what a save writes) round-trips every scenario of the curriculum."""
    from lab.scenario.catalog import bundled
    from lab.scenario.dump import dump_scenario

    for entry in bundled():
        sc = load_scenario(entry.path)
        path = tmp_path / f"{entry.topic}-{Path(entry.path).stem}.toml"
        path.write_text(dump_scenario(sc), encoding="utf-8")
        assert load_scenario(path) == sc, entry.name
        if sc.expect:
            # every claim says its comparison, even the default "<"
            assert path.read_text(encoding="utf-8").count("\nop = ") == len(sc.expect)


def test_a_cancellable_check_measures_the_same_values():
    """check(cancelled=...) steps in short chunks so it can stop; the numbers are the same bits."""
    from lab.sim.expectations import check

    sc = small()
    assert check(sc, cancelled=lambda: False) == check(sc)
