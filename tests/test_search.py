"""nnlab search: the search space (sampling, seeds, narrowing, border), the engine (diverged
trials, resume, a worker that dies) and the command line (bad input, the lessons it prints)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import lab.cli
from lab.scenario import Scenario
from lab.search import space
from lab.search.engine import DIE_ONCE_ENV, plan_stage, run_search
from lab.search.results import JSON_NAME, read_results

ROOT = Path(__file__).resolve().parents[1]

BASE = {
    "scenario": {"name": "search test", "seed": 5},
    "data": {"kind": "digits", "n": 300, "val_fraction": 0.4, "preprocess": ["center", "normalize"]},
    "model": {"hidden": [16]},
    "train": {"optimizer": "sgd", "lr": 0.1, "batch_size": 32, "steps": 60, "eval_every": 30},
}


def scenario(search: dict | None = None, **changes) -> Scenario:
    raw = {k: dict(v) for k, v in BASE.items()}
    for section, values in changes.items():
        raw[section].update(values)
    if search is not None:
        raw["search"] = search
    return Scenario.model_validate(raw)


def same_trials(a, b) -> None:
    """Bit for bit: settings, seeds, status, metrics and every step's loss."""
    assert [t.index for t in a] == [t.index for t in b]
    for x, y in zip(a, b):
        assert (x.params, x.seed, x.steps, x.status, x.diverged_at) == (y.params, y.seed, y.steps, y.status,
                                                                         y.diverged_at)
        for name in ("metric", "val_acc", "val_loss"):
            u, v = getattr(x, name), getattr(y, name)
            assert (math.isnan(u) and math.isnan(v)) or u == v, (x.index, name, u, v)
        assert x.loss.tobytes() == y.loss.tobytes(), f"trial {x.index}: the loss curves differ"


def test_the_public_names_resolve():
    import lab.search

    for name in lab.search.__all__:
        assert getattr(lab.search, name) is not None, name
    assert lab.search.SearchSpec is Scenario.model_fields["search"].annotation.__args__[0]


# -- the space ----------------------------------------------------------------------------------------

def test_log_axis_samples_uniformly_in_log_space():
    axis = space.parse_axis("lr", "log:1e-4:1")
    rng = np.random.default_rng(0)
    values = np.array([axis.sample(rng) for _ in range(4000)])
    assert values.min() >= 1e-4 and values.max() <= 1.0
    per_decade = np.histogram(np.log10(values), bins=[-4, -3, -2, -1, 0])[0]
    # a uniform draw on the linear scale would put ~90% in the top decade
    assert np.all(np.abs(per_decade - 1000) < 120), per_decade
    linear = space.parse_axis("lr", "linear:1e-4:1")
    lin_values = np.array([linear.sample(rng) for _ in range(4000)])
    assert np.histogram(np.log10(lin_values), bins=[-4, -3, -2, -1, 0])[0][-1] > 3000


def test_int_and_choice_axes_stay_in_their_sets():
    rng = np.random.default_rng(1)
    batch = space.parse_axis("batch_size", "int:8:12")
    drawn = {batch.sample(rng) for _ in range(300)}
    assert drawn == {8, 9, 10, 11, 12}
    act = space.parse_axis("activation", "choice:relu,tanh")
    assert {act.sample(rng) for _ in range(100)} == {"relu", "tanh"}
    assert space.parse_axis("lr", "choice:0.1,1").choices == (0.1, 1.0)  # a float setting stays float


def test_grid_covers_every_combination_evenly_in_each_scale():
    lr = space.parse_axis("lr", "log:1e-3:1")
    act = space.parse_axis("activation", "choice:relu,tanh,sigmoid")
    rows = space.sample([lr, act], "grid", 12, np.random.default_rng(0))
    assert len(rows) == 12
    assert {(r["lr"], r["activation"]) for r in rows} == {(v, a) for v in lr.grid(4) for a in act.choices}
    assert np.allclose(np.log10(sorted({r["lr"] for r in rows})), [-3, -2, -1, 0])
    # the trial budget decides the points: 2 axes, 30 trials -> 5 x 5 = 25 (6 x 6 = 36 would not fit)
    l2 = space.parse_axis("l2", "linear:0:0.1")
    grid = space.sample([lr, l2], "grid", 30, np.random.default_rng(0))
    assert len(grid) == 25
    assert sorted({r["l2"] for r in grid}) == pytest.approx([0, 0.025, 0.05, 0.075, 0.1])


def test_trial_seeds_and_plans_are_derived_deterministically_from_the_scenario_seed():
    sc = scenario({"trials": 8, "params": {"lr": "log:1e-3:1", "l2": "log:1e-5:1e-1"}})
    axes = [space.parse_axis(n, t) for n, t in sc.search.param_texts().items()]
    a = plan_stage(sc, sc.search, 0, axes, 0)
    b = plan_stage(sc, sc.search, 0, axes, 0)
    assert a == b
    assert len({t.seed for t in a}) == len(a), "every trial trains with its own seed"
    assert [t.seed for t in a] == [space.trial_seed(sc.seed, i) for i in range(8)]
    other = scenario({"trials": 8, "params": {"lr": "log:1e-3:1", "l2": "log:1e-5:1e-1"}},
                     scenario={"seed": 6})
    c = plan_stage(other, other.search, 0, axes, 0)
    assert [t.seed for t in c] != [t.seed for t in a]
    assert [t.params for t in c] != [t.params for t in a]


def test_epochs_become_steps_at_each_trials_batch_size():
    sc = scenario({"epochs": 2, "trials": 4, "params": {"batch_size": "choice:10,60"}})
    tasks = plan_stage(sc, sc.search, 0, [space.parse_axis("batch_size", "choice:10,60")], 0)
    rows = 300 - 120  # val_fraction 0.4
    for t in tasks:
        assert t.steps == math.ceil(2 * rows / t.params["batch_size"])


def test_a_further_stage_trains_twice_as_long_unless_told():
    sc = scenario({"trials": 2, "steps": 30, "params": {"lr": "log:1e-3:1"},
                   "stages": [{"trials": 2, "top_k": 1}, {"trials": 2, "top_k": 1, "steps": 45}, {"trials": 1}]})
    axes = [space.parse_axis("lr", "log:1e-3:1")]
    assert [plan_stage(sc, sc.search, n, axes, 0)[0].steps for n in range(4)] == [30, 60, 45, 90]


def test_narrowing_closes_in_on_the_top_trials_in_the_axis_scale():
    axis = space.parse_axis("lr", "log:1e-4:1")
    new = space.narrow(axis, [1e-3, 1e-1, 1e-2], margin=0.25)
    assert axis.low <= new.low < 1e-3 and 1e-1 < new.high <= axis.high
    # widened by a quarter of the span (two decades) on each side, in log space
    assert math.log10(new.low) == pytest.approx(-3.5) and math.log10(new.high) == pytest.approx(-0.5)
    # a tight cluster still gets 5% of the old width on each side
    tight = space.narrow(axis, [1e-2, 1e-2])
    assert math.log10(tight.low) == pytest.approx(-2.2) and math.log10(tight.high) == pytest.approx(-1.8)
    # at an edge: never beyond the old range
    edge = space.narrow(axis, [0.9, 1.0])
    assert edge.high == axis.high and edge.low > 0.1
    act = space.narrow(space.parse_axis("activation", "choice:relu,tanh,sigmoid"), ["tanh", "tanh"])
    assert act.choices == ("tanh",)


def test_a_second_stage_searches_around_the_best_of_the_first():
    spec = {"trials": 6, "steps": 40, "params": {"lr": "log:1e-4:3"},
            "stages": [{"trials": 3, "steps": 80, "top_k": 2}]}
    sc = scenario(spec)
    result = run_search(sc, jobs=1)
    first, second = result.stage_trials(0), result.stage_trials(1)
    assert len(first) == 6 and len(second) == 3
    assert all(t.steps == 80 for t in second)
    top = [t for t in result.ranked() if t.stage == 0 and t.ok][:2]
    lo, hi = min(t.params["lr"] for t in top), max(t.params["lr"] for t in top)
    fine = result.stage_axes[1][0]
    assert fine.low <= lo and hi <= fine.high
    assert math.log10(fine.high / fine.low) < math.log10(3 / 1e-4)
    assert all(fine.low <= t.params["lr"] <= fine.high for t in second)


def test_border_warning_names_the_parameter_and_the_side_to_extend():
    lr = space.parse_axis("lr", "log:1e-4:1e-1")
    l2 = space.parse_axis("l2", "linear:0:1")
    top = space.border_warnings([lr, l2], {"lr": 0.095, "l2": 0.5})
    assert len(top) == 1 and top[0].startswith("lr: best 0.095") and "top edge" in top[0] and "upward" in top[0]
    bottom = space.border_warnings([lr, l2], {"lr": 0.003, "l2": 0.04})
    assert len(bottom) == 1 and bottom[0].startswith("l2:") and "downward" in bottom[0]


def test_no_border_warning_inside_the_range_measured_in_log_space():
    lr = space.parse_axis("lr", "log:1e-4:1")
    # 0.05 is in the bottom 10% of the range on a linear scale, but at 0.67 of it in log space
    assert space.border_warnings([lr], {"lr": 0.05}) == []
    assert space.border_warnings([lr], {"lr": 1e-2}) == []
    assert space.border_warnings([space.parse_axis("activation", "choice:relu,tanh")], {"activation": "relu"}) == []


# -- the engine ----------------------------------------------------------------------------------------

def test_a_diverged_trial_is_reported_and_the_search_goes_on():
    # with l2 = 0.5, lr = 500 makes each decay step multiply the weights by 1 - 250: they explode
    sc = scenario({"sampling": "grid", "trials": 3, "steps": 60, "params": {"lr": "choice:0.05,0.2,500"}},
                  train={"l2": 0.5})
    seen = []
    result = run_search(sc, jobs=1, on_trial=seen.append)
    assert sorted(t.index for t in seen) == [0, 1, 2]
    by_lr = {t.params["lr"]: t for t in result.trials}
    bad = by_lr[500.0]
    assert bad.status == "diverged" and bad.diverged_at is not None and 1 <= bad.diverged_at <= 60
    assert bad.reason == f"diverged at step {bad.diverged_at}: lr too high or init too large"
    assert math.isnan(bad.metric)
    assert by_lr[0.05].ok and by_lr[0.2].ok
    assert result.ranked()[-1] is bad and result.best is not bad
    assert bad.loss.size == bad.diverged_at


def test_resume_gives_the_same_results_as_an_uninterrupted_search(tmp_path):
    spec = {"trials": 6, "steps": 40, "params": {"lr": "log:1e-3:1", "l2": "log:1e-5:1e-1"},
            "stages": [{"trials": 3, "steps": 60, "top_k": 2}]}
    sc = scenario(spec)
    whole = run_search(sc, jobs=2)
    assert not whole.cancelled and len(whole.trials) == 9

    out = tmp_path / "run"
    finished = []
    part = run_search(sc, jobs=2, out=out, on_trial=finished.append, cancelled=lambda: len(finished) >= 4)
    assert part.cancelled
    saved = read_results(out / JSON_NAME)
    assert 4 <= len(saved["trials"]) < 9, "the finished trials are kept on disk"
    assert saved["complete"] is False

    again = []
    resumed = run_search(sc, jobs=2, out=out, resume=out / JSON_NAME, on_trial=again.append)
    assert resumed.resumed == len(saved["trials"])
    assert len(again) == 9 - resumed.resumed, "finished trials are not run again"
    same_trials(resumed.trials, whole.trials)
    assert read_results(out / JSON_NAME)["complete"] is True


def test_a_search_runs_in_a_thread_and_stops_promptly_when_cancelled(tmp_path):
    """As the TUI runs it: in a worker thread, on_trial called in that thread, cancelled() stops it."""
    import threading

    sc = scenario({"trials": 200, "steps": 2000, "params": {"lr": "log:1e-3:1"}})
    seen, threads, box = [], set(), {}

    def on_trial(trial):
        seen.append(trial)
        threads.add(threading.get_ident())

    def work():
        box["result"] = run_search(sc, jobs=2, on_trial=on_trial, cancelled=lambda: len(seen) >= 3,
                                   out=tmp_path)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive(), "the search did not stop"
    result = box["result"]
    assert result.cancelled and 3 <= len(result.trials) < 200
    assert threads == {worker.ident}
    assert len(read_results(tmp_path)["trials"]) == len(result.trials)


def test_a_results_file_reads_back_as_the_search_that_wrote_it(tmp_path):
    from lab.search.results import load_search

    sc = scenario({"trials": 4, "steps": 30, "params": {"lr": "log:1e-3:1"},
                   "stages": [{"trials": 2, "steps": 40, "top_k": 2}]})
    ran = run_search(sc, jobs=1, out=tmp_path)
    back = load_search(tmp_path / JSON_NAME, sc)
    same_trials(back.trials, ran.trials)
    assert [[str(a) for a in s] for s in back.stage_axes] == [[str(a) for a in s] for s in ran.stage_axes]
    assert back.complete and back.best.index == ran.best.index and back.warnings() == ran.warnings()


def test_resume_refuses_a_file_from_another_search(tmp_path):
    from lab.errors import LabError

    sc = scenario({"trials": 2, "steps": 20, "params": {"lr": "log:1e-3:1"}})
    run_search(sc, jobs=1, out=tmp_path)
    other = scenario({"trials": 2, "steps": 20, "params": {"lr": "log:1e-2:1"}})
    with pytest.raises(LabError, match="different search"):
        run_search(other, jobs=1, resume=tmp_path / JSON_NAME)


def test_a_worker_that_dies_mid_trial_has_its_trial_run_again(tmp_path, monkeypatch):
    sc = scenario({"trials": 6, "steps": 40, "params": {"lr": "log:1e-3:1"}})
    reference = run_search(sc, jobs=2)
    hook = tmp_path / "die"
    hook.write_text("3")
    monkeypatch.setenv(DIE_ONCE_ENV, str(hook))
    result = run_search(sc, jobs=2)
    assert not hook.exists(), "the worker running trial 3 did not die (the test hook never fired)"
    assert [t.status for t in result.trials] == [t.status for t in reference.trials]
    same_trials(result.trials, reference.trials)


def test_a_broken_pool_requeues_unfinished_trials_and_gives_up_after_max_attempts():
    """_run_tasks against a fake pool: a break seen by a running trial's future, and one seen by
    submit itself; every trial is recorded once, a trial that breaks the pool every time fails."""
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    from lab.search import engine

    class FakePool:
        capacity = 2

        def __init__(self):
            self.restarts, self.submits, self.in_flight = 0, [], []

        def submit(self, base, task, metric, hook):
            self.submits.append(task.index)
            if self.submits.count(2) == 1 and task.index == 2:
                raise BrokenProcessPool("broke before taking it")
            f = Future()
            if task.index == 1 and self.submits.count(1) == 1 or task.index == 4:
                f.set_exception(BrokenProcessPool("a worker died"))
            else:
                f.set_result(engine._failed(task, "fake"))  # any Trial will do
            return f

        def wait(self, futures, timeout):
            return {f for f in futures if f.done()}

        worker_died = staticmethod(engine._LocalBackend.worker_died)

        def restart(self):
            self.restarts += 1

    tasks = [engine.TrialTask(i, 0, {"lr": 0.1}, i, 10) for i in range(6)]
    pool, recorded = FakePool(), []
    assert engine._run_tasks(pool, None, tasks, "val_acc", None, None, recorded.append)
    assert sorted(t.index for t in recorded) == list(range(6)), "each trial recorded exactly once"
    by_index = {t.index: t for t in recorded}
    assert by_index[4].reason == f"its worker process died {engine.MAX_ATTEMPTS} times while running it"
    assert by_index[1].reason == "fake" and by_index[2].reason == "fake"
    assert pool.submits.count(4) == engine.MAX_ATTEMPTS and pool.restarts >= engine.MAX_ATTEMPTS


# -- the command line ----------------------------------------------------------------------------------

def write(tmp_path: Path, search: str, name: str = "s.toml") -> Path:
    base = (
        '[scenario]\nname = "cli search"\nseed = 1\n'
        '[data]\nkind = "digits"\nn = 300\nval_fraction = 0.4\npreprocess = ["center", "normalize"]\n'
        '[model]\nhidden = [16]\n'
        '[train]\noptimizer = "sgd"\nbatch_size = 32\nsteps = 40\neval_every = 20\n')
    path = tmp_path / name
    path.write_text(base + search, encoding="utf-8")
    return path


BAD = [
    ('[search]\n[search.params]\nlr = "log:0:1"\n', "search.params.lr", "0 < low < high"),
    ('[search]\n[search.params]\nlrr = "log:1e-3:1"\n', "search.params.lrr", "did you mean 'lr'"),
    ('[search]\n[search.params]\nl2 = "linear:0.5:0.1"\n', "search.params.l2", "low must be below high"),
    ('[search]\n[search.params]\nlr = "cubic:1:2"\n', "search.params.lr", "KIND:LOW:HIGH"),
    ('[search]\nsampling = "grid"\npoints = 1000\n[search.params]\nlr = "log:1e-4:1"\nl2 = "log:1e-5:1"\n'
     'momentum = "linear:0:0.99"\n', "search.points", "1,000,000,000 trials"),
    ('[search]\nsampling = "grid"\ntrials = 4\n[search.params]\nlr = "log:1e-4:1"\nl2 = "log:1e-5:1"\n'
     'momentum = "linear:0:0.99"\n', "search.trials", "is 8 trials, more than trials = 4"),
    ('[search]\ntrials = 0\n[search.params]\nlr = "log:1e-4:1"\n', "search.trials", ">= 1"),
    ('[search]\nsteps = 10\nepochs = 1\n[search.params]\nlr = "log:1e-4:1"\n', "search", "steps or epochs"),
    ('[search]\ntrials = 3\n', "search.params", "no parameters"),
]


@pytest.mark.parametrize("text,key,words", BAD, ids=[b[1] + ":" + b[2][:12] for b in BAD])
def test_bad_search_input_exits_2_naming_the_file_and_the_key(tmp_path, text, key, words):
    path = write(tmp_path, text)
    result = CliRunner().invoke(lab.cli.app, ["search", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert str(path) in message and f"{key}:" in message and words in message, message
    assert not (tmp_path / "o" / JSON_NAME).exists(), "nothing ran"


def test_a_search_that_would_not_fit_in_memory_is_refused_before_it_runs(tmp_path, monkeypatch):
    # every trial keeps its loss curve (8 bytes a step): 100,000 trials of 10,000 steps is 8 GB
    path = write(tmp_path, '[search]\ntrials = 100000\nsteps = 10000\n[search.params]\nlr = "log:1e-4:1"\n')
    monkeypatch.setenv("NNLAB_MEMORY_BUDGET", "2G")
    result = CliRunner().invoke(lab.cli.app, ["search", str(path), "-j", "2", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert str(path) in message and "search: needs about" in message and "budget of 2 GiB" in message, message
    assert not (tmp_path / "o" / JSON_NAME).exists()


def test_bad_param_flag_exits_2(tmp_path):
    path = write(tmp_path, "")
    for flag, words in (("lr", "NAME=AXIS"), ("lr=log:1:0.5", "search.params.lr"), ("dropout=linear:0:2", "dropout")):
        result = CliRunner().invoke(lab.cli.app, ["search", str(path), "--param", flag])
        assert result.exit_code == 2, result.output
        assert words in " ".join(result.output.split())


def test_search_section_does_not_change_run_or_check(tmp_path):
    from lab.sim.expectations import check
    from lab.sim.run import run

    plain = scenario()
    searched = scenario({"params": {"lr": "log:1e-3:1"}})
    a, b = run(plain, 30, keep=("loss",)), run(searched, 30, keep=("loss",))
    assert a.series["loss"].tobytes() == b.series["loss"].tobytes()
    bundled = ROOT / "scenarios" / "procedure" / "search-lr-l2.toml"
    from lab.scenario import load_scenario

    sc = load_scenario(bundled)
    assert sc.search is not None and sc.search.stages
    assert all(r.passed for r in check(sc))


def test_the_bundled_search_reproduces_the_notes_coarse_to_fine_lesson():
    """procedure/search-lr-l2 says what its search finds: some coarse trials diverge, the fine
    stage zooms in, the best lies well inside both ranges (no border warning)."""
    from lab.scenario import load_scenario

    sc = load_scenario(ROOT / "scenarios" / "procedure" / "search-lr-l2.toml")
    result = run_search(sc, jobs=2)
    assert len(result.stage_trials(0)) == 24 and len(result.stage_trials(1)) == 12
    assert any(t.status == "diverged" and t.params["lr"] > 1 for t in result.stage_trials(0))
    coarse, fine = result.stage_axes
    decades = [(math.log10(a.high / a.low), math.log10(b.high / b.low)) for a, b in zip(coarse, fine)]
    assert all(f < c for c, f in decades), decades  # every range narrows
    assert decades[0][1] < decades[0][0] / 3, decades  # lr, the parameter that matters, by far the most
    best = result.best
    assert best.metric > 0.95 and 0.01 < best.params["lr"] < 0.5 and best.params["l2"] < 0.05
    assert result.warnings() == []


def test_cli_search_prints_the_lessons_and_writes_the_files(tmp_path):
    # the range stops far below the good learning rates: the best is at its top edge
    path = write(tmp_path, '[search]\nsampling = "grid"\ntrials = 4\nsteps = 100\n[search.params]\n'
                           'lr = "log:1e-5:1e-2"\n')
    out = tmp_path / "out"
    result = CliRunner().invoke(lab.cli.app, ["search", str(path), "-j", "2", "--out", str(out)],
                                env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    text = result.output
    assert "4 trial(s), by val_acc" in text
    assert "warning: lr: best 0.01 is at the top edge of log:1e-5:1e-2 — extend the range upward" in \
        " ".join(text.split()), text
    assert "val_acc vs lr" in text and "training loss of 4 trial(s)" in text
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 5 and rows[0].startswith("index,stage,status,metric,val_acc,val_loss,lr,seed,")
    assert len(read_results(out)["trials"]) == 4


def test_ctrl_c_keeps_the_finished_trials_and_resume_finishes_the_search(tmp_path):
    # trials of about a second each, so a Ctrl-C after the second lands mid-search even on a busy machine
    path = write(tmp_path, '[search]\ntrials = 12\nsteps = 20000\n[search.params]\nlr = "log:1e-3:1"\n')
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100"}
    cmd = [sys.executable, "-m", "lab.cli", "search", str(path), "-j", "2", "--out", str(out), "--no-plot"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:  # wait until some trials are on disk
            if (out / JSON_NAME).exists() and len(read_results(out)["trials"]) >= 2:
                break
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    assert read_results(out)["complete"] is False
    kept = read_results(out)["trials"]
    assert 2 <= len(kept) < 12
    done = subprocess.run([*cmd, "--resume", str(out / JSON_NAME)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    final = read_results(out)
    assert len(final["trials"]) == 12 and final["complete"]
    by_index = {t["index"]: t for t in final["trials"]}
    for t in kept:
        assert by_index[t["index"]] == t, "a kept trial was run again or changed"
