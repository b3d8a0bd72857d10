"""The headless CLI: `check` (table, failure lines, --json, --junit, -j), bundled names,
`run --csv/--plot`, `list`, `show`, `schema`, and a diverging run.

In-process through typer's CliRunner (with a wide rich console, so table cells do not wrap)
and, where the process boundary matters, as real `python -m lab` subprocesses.  The scenario
files are tiny ones in tests/data/check_scenarios/:

    passing/    two files whose expectations all pass
    failing/    one file: expect[0] passes, expect[1] (val_acc > 0.99) fails
    invalid/    one file with a misspelt key and an unknown metric
    diverging/  lr = 1e6: the run blows up within a few steps
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

import lab.cli as cli
from lab import Simulation, load_scenario
from lab.errors import ExitCode
from lab.scenario.catalog import bundled
from lab.sim.expectations import check as check_scenario

DATA = Path(__file__).resolve().parent / "data" / "check_scenarios"
ROOT = Path(__file__).resolve().parents[1]
PASSING = sorted((DATA / "passing").glob("*.toml"))
FAILING = DATA / "failing" / "too-optimistic.toml"
INVALID = DATA / "invalid" / "typo.toml"
DIVERGING = DATA / "diverging" / "relu-lr-huge.toml"

runner = CliRunner()


@pytest.fixture
def wide(monkeypatch):
    """A wide rich console (no wrapped cells) writing to whatever sys.stdout CliRunner installs."""
    monkeypatch.setattr(cli, "console", Console(width=400, color_system=None, force_terminal=False))
    monkeypatch.setattr(cli, "err_console", Console(width=400, stderr=True, color_system=None, force_terminal=False))


@pytest.fixture
def in_data(monkeypatch, wide):
    """Run from tests/data/check_scenarios, so check reports paths like passing/step-schedule.toml."""
    monkeypatch.chdir(DATA)


def invoke(*args: str):
    return runner.invoke(cli.app, list(args))


def subprocess_env(columns: int = 400) -> dict[str, str]:
    env = dict(os.environ, COLUMNS=str(columns), PYTHONPATH=str(ROOT))
    env.pop("FORCE_COLOR", None)
    return env


def run_lab(*args: str, cwd: Path, columns: int = 400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=cwd, env=subprocess_env(columns),
                          capture_output=True, text=True, timeout=600)


def fmt(x: float) -> str:
    """How the check report prints an actual value."""
    return str(x) if math.isnan(x) or math.isinf(x) else f"{x:.4g}"


def row(output: str, *cells: str, adjacent: bool = True) -> bool:
    """Some line of the output holds these cells, in this order (next to each other if adjacent)."""
    pattern = (r"\s+" if adjacent else r"\s(?:.*\s)?").join(re.escape(c) for c in cells)
    return any(re.search(pattern, line) for line in output.splitlines())


def squash(text: str) -> str:
    return " ".join(text.split())


SUMMARY = re.compile(r"\d+ scenario\(s\), \d+ expectation\(s\): ")


def report(output: str) -> tuple[dict[str, tuple[str, list[tuple[str, str, str]]]], list[str], str]:
    """A check report read back (at a width where nothing wraps): {path: (title, [(mark, claim,
    measured), ...])} in order, the detail paragraphs (one string each), and the summary line."""
    lines = output.splitlines()
    assert "expectation" in lines[0] and lines[0].rstrip().endswith("measured"), lines[0]
    listing, details, summary = {}, [], ""
    current = None
    i = 1
    while i < len(lines) and lines[i] and not SUMMARY.match(lines[i]):
        m = re.fullmatch(r"  (pass|FAIL|ERROR) +(.*?)(?: {2,}(\S+))?", lines[i])
        if m:
            mark, claim, measured = m.groups()
            listing[current][1].append((mark, claim, measured or ""))
        else:
            current, _, title = lines[i].partition("  ")
            listing[current] = (title, [])
        i += 1
    for block in "\n".join(lines[i:]).strip().split("\n\n"):
        if SUMMARY.match(block):
            summary = block
        elif block:
            details.append(block)
    return listing, details, summary


@pytest.fixture(scope="module")
def truth():
    """check() of every data file, computed in this process: what the CLI must report."""
    return {p.relative_to(DATA).as_posix(): (load_scenario(p), check_scenario(load_scenario(p)))
            for p in [*PASSING, FAILING, DIVERGING]}


# -- the data files pass or fail for the right reason -------------------------------------------------

def test_data_files_hold_for_the_right_reason():
    learn = load_scenario(DATA / "passing" / "learns-spiral.toml")
    sim = Simulation(learn)
    sim.run_to(learn.train.steps)
    h = sim.history.arrays()
    results = check_scenario(learn)
    assert [r.actual for r in results] == [h["val_loss"][0], h["val_acc"][-1],
                                           float(h["step"][np.nonzero(h["train_acc"] >= 0.9)[0][0]])]
    assert all(r.passed for r in results)

    sched = load_scenario(DATA / "passing" / "step-schedule.toml")
    sim = Simulation(sched)
    sim.run_to(sched.train.steps)
    lr = sim.history.arrays()["lr"]
    assert lr[:10].tolist() == [0.1] * 10 and np.allclose(lr[10:], 0.01, rtol=1e-12)
    assert all(r.passed for r in check_scenario(sched))

    bad = load_scenario(FAILING)
    sim = Simulation(bad)
    sim.run_to(bad.train.steps)
    results = check_scenario(bad)
    assert [r.passed for r in results] == [True, False]
    assert results[1].actual == sim.history.arrays()["val_acc"][-1] < 0.99


# -- check: exit codes, table, failure lines ---------------------------------------------------------------

def test_check_passing_folder_exits_0_and_lists_every_expectation(in_data, truth):
    result = invoke("check", "passing")
    assert result.exit_code == ExitCode.OK, result.output
    listing, details, summary = report(result.stdout)
    assert list(listing) == ["passing/learns-spiral.toml", "passing/step-schedule.toml"]
    for path, (title, rows) in listing.items():
        sc, results = truth[path]
        assert title == sc.name
        assert rows == [("pass", r.description, fmt(r.actual)) for r in results]
    assert listing["passing/learns-spiral.toml"][1][0] == ("pass", "val_loss > 1 at initial step", "1.108")
    assert details == []
    assert summary == "2 scenario(s), 6 expectation(s): 6 passed, 0 failed"
    assert "FAIL" not in result.stdout and result.stderr == ""


def test_check_with_a_failing_file_exits_1_and_explains_the_failure_once(in_data, truth):
    result = invoke("check", "passing", "failing")
    assert result.exit_code == ExitCode.CHECK_FAILED, result.output
    listing, details, summary = report(result.stdout)
    sc, results = truth["failing/too-optimistic.toml"]
    fail = results[1]
    assert listing["failing/too-optimistic.toml"] == (sc.name, [
        ("pass", "lr == 0.1 throughout", "0.1"), ("FAIL", "val_acc > 0.99 at final step", fmt(fail.actual))])
    assert details == [
        "FAIL failing/too-optimistic.toml expect[1]\n"
        f"  scenario  {sc.name}\n"
        "  claim     val_acc > 0.99 at final step\n"
        f"  measured  {fail.actual:.6g}\n"
        "  expected  > 0.99\n"
        f"  why       {sc.expect[1].why}"]
    assert summary == "3 scenario(s), 8 expectation(s): 7 passed, 1 failed"
    assert result.stdout.count(sc.expect[1].why) == 1


@pytest.mark.parametrize("others", [["passing"], ["passing", "failing"], []])
def test_check_with_an_invalid_file_exits_2_even_with_valid_ones(in_data, others):
    result = invoke("check", *others, "invalid/typo.toml")
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "Traceback" not in result.output
    listing, details, summary = report(result.stdout)
    assert listing["invalid/typo.toml"] == ("", [("ERROR", "invalid: 2 problems, see below", "")])
    error = next(d for d in details if d.startswith("ERROR "))
    lines = error.splitlines()[1:]
    assert error.splitlines()[0] == "ERROR invalid/typo.toml: 2 problems"
    assert all(line.startswith(("  - ", "    ")) for line in lines)  # a long problem wraps under itself
    problems = [" ".join(part.strip() for part in chunk.split("\n"))
                for chunk in "\n".join(lines).replace("\n  - ", "\0  - ").split("\0")]
    assert len(problems) == 2 and all(p.startswith("- ") for p in problems)
    assert "did you mean 'hidden'?" in problems[0] and "did you mean 'val_acc'?" in problems[1]
    for first in (line for line in lines if line.startswith("  - ")):  # told once: not in the list above,
        assert (result.stdout + result.stderr).count(first[4:]) == 1  # not again on stderr
    if "passing" in others:  # the valid files were still checked and reported
        assert ("pass", "lr == 0.1 at initial step", "0.1") in listing["passing/step-schedule.toml"][1]
    assert summary.endswith(", 1 invalid")


def test_check_json_parses_and_matches_the_outcomes(in_data, truth):
    result = invoke("check", "--json", "passing", "failing", "invalid")
    assert result.exit_code == ExitCode.USAGE
    report = json.loads(result.stdout)
    assert report["passed"] is False
    by_path = {s["path"]: s for s in report["scenarios"]}
    assert sorted(by_path) == ["failing/too-optimistic.toml", "invalid/typo.toml", "passing/learns-spiral.toml",
                               "passing/step-schedule.toml"]
    bad = by_path.pop("invalid/typo.toml")
    assert bad["passed"] is False and "hiden" in bad["error"] and bad["expectations"] == []
    for path, s in by_path.items():
        sc, results = truth[path]
        assert s["name"] == sc.name and s["error"] is None
        assert s["passed"] is all(r.passed for r in results)
        assert [(e["index"], e["description"], e["expected"], e["actual"], e["passed"], e["why"])
                for e in s["expectations"]] == [(r.index, r.description, r.expected, r.actual, r.passed, r.why)
                                                for r in results]
    assert [e["passed"] for e in by_path["failing/too-optimistic.toml"]["expectations"]] == [True, False]


def test_check_json_of_passing_files_says_passed(in_data):
    result = invoke("check", "--json", "passing", "diverging")
    assert result.exit_code == ExitCode.OK
    report = json.loads(result.stdout)
    assert report["passed"] is True and all(s["passed"] for s in report["scenarios"])


def test_check_junit_writes_valid_xml_with_the_failure_count(in_data, tmp_path, truth):
    out = tmp_path / "report.xml"
    result = invoke("check", "--junit", str(out), "passing", "failing")
    assert result.exit_code == ExitCode.CHECK_FAILED
    root = ET.parse(out).getroot()
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert sorted(suites) == ["failing/too-optimistic.toml", "passing/learns-spiral.toml",
                              "passing/step-schedule.toml"]
    assert sum(int(s.get("failures")) for s in suites.values()) == 1
    assert sum(int(s.get("tests")) for s in suites.values()) == 8
    assert all(s.get("errors") == "0" for s in suites.values())
    failures = list(root.iter("failure"))
    assert len(failures) == 1
    fail = truth["failing/too-optimistic.toml"][1][1]
    assert failures[0].get("message") == f"expected > 0.99, got {fmt(fail.actual)}"
    cases = [c.get("name") for c in suites["failing/too-optimistic.toml"].iter("testcase")]
    assert cases == ["expect[0] lr == 0.1 throughout", "expect[1] val_acc > 0.99 at final step"]


def test_check_junit_reports_an_invalid_file_as_an_error(in_data, tmp_path):
    out = tmp_path / "report.xml"
    assert invoke("check", "--junit", str(out), "invalid", "passing").exit_code == ExitCode.USAGE
    suites = {s.get("name"): s for s in ET.parse(out).getroot().iter("testsuite")}
    assert suites["invalid/typo.toml"].get("errors") == "1"
    assert "hiden" in suites["invalid/typo.toml"].find("testcase/error").get("message") + \
        suites["invalid/typo.toml"].find("testcase/error").text


def test_check_in_parallel_gives_the_same_results_as_serially():
    """Two real processes: -j 1 and -j 2 (a process pool) on the same files."""
    args = ["check", "--json", "passing", "failing", "diverging"]
    one, two = run_lab(*args, "-j", "1", cwd=DATA), run_lab(*args, "-j", "2", cwd=DATA)
    assert one.returncode == two.returncode == ExitCode.CHECK_FAILED, (one.stderr, two.stderr)
    strip = lambda text: [{k: v for k, v in s.items() if k != "seconds"}  # noqa: E731
                          for s in json.loads(text)["scenarios"]]
    serial, parallel = strip(one.stdout), strip(two.stdout)
    assert serial == parallel
    assert [s["path"] for s in serial] == ["passing/learns-spiral.toml", "passing/step-schedule.toml",
                                           "failing/too-optimistic.toml", "diverging/relu-lr-huge.toml"]
    assert [s["passed"] for s in serial] == [True, True, False, True]


def test_check_a_diverging_run_with_a_per_layer_expectation_does_not_crash(wide, tmp_path):
    text = DIVERGING.read_text().replace('metric = "diverged"\nop = "=="\nvalue = 1',
                                         'metric = "dead_fraction"\nlayer = 1\nop = ">="\nvalue = 0')
    assert "dead_fraction" in text
    path = tmp_path / "diverging-dead.toml"
    path.write_text(text)
    result = invoke("check", str(path))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (ExitCode.OK, ExitCode.CHECK_FAILED)


# -- bundled names -------------------------------------------------------------------------------------------

def test_bundled_name_resolves_from_any_working_directory(tmp_path):
    proc = run_lab("check", "activations/sigmoid-zigzag", cwd=tmp_path)
    assert proc.returncode == ExitCode.OK, proc.stdout + proc.stderr
    listing, _, _ = report(proc.stdout)
    assert list(listing) == ["activations/sigmoid-zigzag"]  # the name, as it is typed
    assert "1 scenario(s), 5 expectation(s): 5 passed, 0 failed" in proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", ["check", "run", "show"])
def test_unknown_name_exits_2_with_did_you_mean(wide, command):
    result = invoke(command, "activations/sigmoid-zigzg")
    assert result.exit_code == ExitCode.USAGE
    assert "activations/sigmoid-zigzg" in result.stderr
    assert "did you mean activations/sigmoid-zigzag" in result.stderr  # the closest first
    assert result.exception is None or isinstance(result.exception, SystemExit)


# -- run: CSV, plots, a diverging run --------------------------------------------------------------------------

def test_run_writes_the_history_as_csv(wide, tmp_path):
    scenario = DATA / "passing" / "learns-spiral.toml"
    out = tmp_path / "out.csv"
    steps = 30  # the file says 100, eval every 25
    result = invoke("run", str(scenario), "--steps", str(steps), "--csv", str(out))
    assert result.exit_code == ExitCode.OK, result.output
    assert f"wrote {steps + 1} rows of history to {out}" in squash(result.stdout)

    sim = Simulation(load_scenario(scenario))
    sim.run_to(steps)
    h = sim.history.arrays()
    with out.open(newline="") as fh:
        rows = list(csv.reader(fh))
    # the last five are measured only with a [transfer] table (source_val_acc) or train.mc_samples
    assert rows[0] == ["step", "lr", "loss", "train_acc", "grad_norm", "val_loss", "val_acc",
                       "source_val_acc", "mc_val_loss", "mc_val_acc", "mc_gap", "mc_score_gap"]
    body = rows[1:]
    assert all(cell in ("", "nan") for r in body for cell in r[7:])  # neither: nothing measured
    assert len(body) == steps + 1
    assert [int(r[0]) for r in body] == list(range(steps + 1))
    assert body[0][1:5] == ["", "", "", ""]  # step 0: only the initial evaluation
    assert [float(body[0][5]), float(body[0][6])] == [h["val_loss"][0], h["val_acc"][0]]
    for i, name in enumerate(("lr", "loss", "train_acc", "grad_norm"), start=1):
        assert [float(r[i]) for r in body[1:]] == h[name].tolist(), name
    val = {int(s): (l, a) for s, l, a in zip(h["val_step"], h["val_loss"], h["val_acc"])}
    assert sorted(val) == [0, 25]
    for r in body:
        if int(r[0]) in val:
            assert (float(r[5]), float(r[6])) == val[int(r[0])]
        else:
            assert r[5:] == [""] * (len(rows[0]) - 5)

    # beside it, every layer's statistics at every recorded step (every step here: 100 steps fit the timeline)
    layers = tmp_path / "out-layers.csv"
    timeline = sim.snapshot().timeline
    assert f"wrote {3 * (steps + 1)} rows of per-layer statistics to {layers}" in squash(result.stdout)
    with layers.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(int(r["step"]), int(r["layer"])) for r in rows] == [(s, i) for s in range(steps + 1) for i in (1, 2, 3)]
    for r in rows:
        stats = timeline.at(int(r["step"])).layers[int(r["layer"]) - 1]
        assert r["kind"] == stats.kind and float(r["weight_std"]) == stats.weight_std


def test_run_plot_prints_charts_and_the_layer_table(wide):
    scenario = DATA / "passing" / "step-schedule.toml"
    result = invoke("run", str(scenario), "--plot")
    assert result.exit_code == ExitCode.OK, result.output
    out = result.stdout
    name = load_scenario(scenario).name
    assert f"loss - {name}" in out
    for i, kind in ((1, "tanh"), (2, "output")):
        assert f"L{i} {kind} activations" in out and f"L{i} gradients (symlog)" in out
    assert "per layer: activations, gradients, flags" in out
    assert row(out, "1", "tanh", "8") and row(out, "2", "output", "3")
    assert out.index("L2 output activations") < out.index("per layer")


def test_diverging_run_exits_0_and_says_where_as_a_real_process(tmp_path):
    proc = run_lab("run", str(DIVERGING), "--csv", str(tmp_path / "h.csv"), cwd=tmp_path)
    sim = Simulation(load_scenario(DIVERGING))
    sim.run_to(40)
    assert sim.diverged
    assert proc.returncode == ExitCode.OK, proc.stderr
    assert f"diverged at step {sim.diverged_at}" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    rows = list(csv.reader((tmp_path / "h.csv").open(newline="")))
    assert len(rows) == 1 + 1 + sim.diverged_at  # header, step 0, steps 1..diverged_at
    assert rows[-1][0] == str(sim.diverged_at) and math.isnan(float(rows[-1][2]))


def test_diverging_run_with_plots_in_process(wide):
    result = invoke("run", str(DIVERGING), "--plot")
    assert result.exit_code == ExitCode.OK, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "diverged at step" in result.stdout and "The run diverged at step" in squash(result.stdout)
    assert "per layer" in result.stdout


# -- list, show, schema --------------------------------------------------------------------------------------------

def test_list_shows_every_bundled_scenario_grouped_by_topic(wide):
    entries = bundled()
    assert entries, "no bundled scenarios found"
    result = invoke("list")
    assert result.exit_code == ExitCode.OK, result.output
    lines = result.stdout.splitlines()
    heading = {}
    for i, line in enumerate(lines):
        if re.fullmatch(r"\S+/", line.strip()):
            heading[line.strip()[:-1]] = i
    assert sorted(heading) == sorted({e.topic for e in entries})
    for e in entries:
        at = next(i for i, line in enumerate(lines) if line.split()[:1] == [e.name])
        # under its own topic heading: the nearest heading above is the entry's topic
        above = max((i, t) for t, i in heading.items() if i < at)
        assert above[1] == e.topic, (e.name, above)
        sc = load_scenario(e.path)
        assert row(lines[at], e.name, sc.name, str(len(sc.expect))), lines[at]


def test_list_prints_full_names_at_80_columns(tmp_path):
    proc = run_lab("list", cwd=tmp_path, columns=80)
    assert proc.returncode == 0
    missing = [e.name for e in bundled() if e.name not in proc.stdout]
    assert not missing, missing


def test_show_prints_the_title_and_the_explanation(wide):
    entry = next(e for e in bundled() if e.name == "activations/sigmoid-zigzag")
    sc = load_scenario(entry.path)
    result = invoke("show", entry.name)
    assert result.exit_code == ExitCode.OK, result.output
    out = squash(result.stdout)
    assert sc.name in out
    first_paragraph = sc.scenario.explain.strip().split("\n\n")[0]
    plain = squash(first_paragraph.replace("**", "").replace("`", ""))
    assert plain in out  # rendered markdown: same words, reflowed
    assert 'name = "centred"' in result.stdout  # and the file itself


def test_schema_prints_json_with_model_and_train(wide):
    result = invoke("schema")
    assert result.exit_code == ExitCode.OK
    schema = json.loads(result.stdout)
    assert {"model", "train", "expect"} <= set(schema["properties"])
    assert "hidden" in schema["$defs"]["ModelSpec"]["properties"]


# -- the report at 60, 80 and 120 columns --------------------------------------------------------------------------

LONG_PATH = "a-folder-with-a-rather-long-name/and-another-one-inside-it/too-optimistic-variant.toml"


def synthetic_outcomes():
    """Every kind of line the report has, without running anything."""
    from lab.report.check import ScenarioOutcome
    from lab.sim.expectations import CheckResult

    return [
        ScenarioOutcome("passing/learns-spiral.toml", "Tiny spiral: a 16-16 ReLU net learns", [
            CheckResult(0, "val_loss > 1 at initial step", True, 1.1079, "> 1", "ln 3"),
            CheckResult(1, "act_mean[layer 2](elu) / act_mean[layer 2](base) > -0.75 throughout", True,
                        0.42723, "> -0.75", "")]),
        ScenarioOutcome(LONG_PATH, "A title long enough to go under a long path rather than beside it", [
            CheckResult(0, "lr == 0.1 throughout", True, 0.1, "== 0.1", ""),
            CheckResult(1, "steps_to(train_acc >= 0.9)(sigmoid) / steps_to(train_acc >= 0.9)(base) > 5 at "
                           "final step", False, 1.0004567, "> 5", "sigmoid's zigzag makes it slower, "
                           "by the lecture's account much slower, than ReLU on this spiral")]),
        ScenarioOutcome("invalid/typo.toml", "", error="invalid/typo.toml: 2 problems\n  - a\n  - b",
                        problems=["model.hiden: unknown key 'hiden' in [model]; did you mean 'hidden'? (allowed: "
                                  "activation, alpha, batchnorm, bias_init, dropconnect, dropout, dropout_mode)",
                                  "expect[0].metric: unknown metric 'val_accuracy'; did you mean 'val_acc'?"]),
        ScenarioOutcome("crash.toml", "Crashes", error="crashed while running: ValueError: shapes (3,) and (4,) "
                                                       "not aligned"),
        ScenarioOutcome("empty.toml", "No claims"),
    ]


@pytest.mark.parametrize("width", [60, 80, 120])
def test_the_report_fits_the_width_and_tells_each_thing_once(width):
    import io

    from lab.report.check import print_report

    outcomes = synthetic_outcomes()
    out = io.StringIO()
    print_report(Console(file=out, width=width, color_system=None), outcomes)
    text = out.getvalue()
    lines = text.splitlines()
    assert all(line == line.rstrip() for line in lines)  # no padding at line ends
    assert [line for line in lines if len(line) > width and LONG_PATH not in line] == []
    for o in outcomes:  # each path whole, alone or first on a line, in the list
        assert any(line == o.path or line.startswith(o.path + "  ") for line in lines), o.path
    # read as prose: without the measured values at the right of the rows
    flat = squash("\n".join(re.sub(r"^(  (?:pass|FAIL) .*?) {2,}\S+$", r"\1", line) for line in lines))
    for o in outcomes:
        assert flat.count(o.name) == (2 if any(not r.passed for r in o.results) else 1) if o.name else True
        for problem in o.problems:
            assert flat.count(problem) == 1
    assert flat.count("shapes (3,) and (4,) not aligned") == 1
    fail = outcomes[1].results[1]
    assert flat.count(fail.description) == 2  # in the list, then in its FAIL paragraph
    assert flat.count(fail.why) == 1
    assert f"FAIL {LONG_PATH} expect[1]" in lines
    assert f"measured 1.00046 expected > 5 why {fail.why}" in flat
    assert "ERROR invalid/typo.toml: 2 problems" in lines and "ERROR crash.toml: crashed while running" in lines
    assert flat.endswith("5 scenario(s), 4 expectation(s): 3 passed, 1 failed, 1 invalid, 1 crashed, "
                         "1 without expectations")
    assert "none no expectations: nothing to check" in flat  # a distinct result, not a pass
    # the measured values share one right edge
    edges = {len(line) for line in lines if re.match(r"  (pass|FAIL) ", line) and re.search(r"\d$", line)}
    assert len(edges) == 1, edges


def test_check_at_80_columns_as_a_real_process():
    proc = run_lab("check", "passing", "failing", "invalid", cwd=DATA, columns=80)
    assert proc.returncode == ExitCode.USAGE
    lines = proc.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), proc.stdout
    assert proc.stderr == ""  # the invalid file's problems are in the report, once
    for path in ("passing/learns-spiral.toml", "passing/step-schedule.toml", "failing/too-optimistic.toml",
                 "invalid/typo.toml"):
        assert any(line.split()[:1] == [path] for line in lines), path
    assert "FAIL failing/too-optimistic.toml expect[1]" in lines
    assert "ERROR invalid/typo.toml: 2 problems" in lines
    assert squash(proc.stdout).count("did you mean 'hidden'?") == 1


@pytest.mark.parametrize("width", [60, 80, 120])
def test_list_fits_the_width_with_whole_names_and_titles(tmp_path, width):
    proc = run_lab("list", cwd=tmp_path, columns=width)
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    flat = squash("\n".join(re.sub(r" {2,}\d+$", "", line) for line in lines))  # without the counts at the right
    for e in bundled():
        name_lines = [line for line in lines if line.split()[:1] == [e.name]]
        assert len(name_lines) == 1, e.name  # whole, on a line of its own or beside its title
        assert squash(load_scenario(e.path).name) in flat
    long = [line for line in lines if len(line) > width]
    assert all(any(e.name in line for e in bundled()) for line in long), long  # only a name too wide for the screen
    assert not long or width < 60
