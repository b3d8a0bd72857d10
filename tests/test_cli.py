"""The `nnlab` command line: default run, scenario files, errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from lab.cli import app
from lab.errors import ExitCode

runner = CliRunner()


def test_run_prints_summary_and_layer_table(tmp_path):
    scenario = tmp_path / "tiny.toml"
    scenario.write_text('[scenario]\nname = "tiny tanh"\n[data]\nn = 120\n[model]\nhidden = [8, 6]\n'
                        'activation = "tanh"\n[train]\nsteps = 40\neval_every = 20\n')
    result = runner.invoke(app, ["run", str(scenario)])
    assert result.exit_code == 0, result.output
    assert "tiny tanh" in result.output
    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("#") and "kind" in line)
    rows = [line.split() for line in lines[header + 2:header + 5]]
    assert [r[:3] for r in rows] == [["1", "tanh", "8"], ["2", "tanh", "6"], ["3", "output", "3"]]
    assert any(line.split()[:2] == ["step", "40"] for line in lines)


def test_steps_option_overrides_the_scenario(tmp_path):
    scenario = tmp_path / "s.toml"
    scenario.write_text("[data]\nn = 100\n[model]\nhidden = [4]\n[train]\nsteps = 500\n")
    result = runner.invoke(app, ["run", str(scenario), "--steps", "7"])
    assert result.exit_code == 0, result.output
    assert any(line.split()[:2] == ["step", "7"] for line in result.output.splitlines())


def test_bad_scenario_exits_2_without_traceback(tmp_path):
    scenario = tmp_path / "bad.toml"
    scenario.write_text("[model]\nhiden = [4]\n")
    result = runner.invoke(app, ["run", str(scenario)])
    assert result.exit_code == ExitCode.USAGE
    assert "bad.toml" in result.output and "hiden" in result.output
    assert "Traceback" not in result.output


def test_missing_file_exits_2(tmp_path):
    result = runner.invoke(app, ["run", str(tmp_path / "nope.toml")])
    assert result.exit_code == ExitCode.USAGE
    assert "nope.toml" in result.output


def test_python_dash_m_lab_runs_as_a_real_process(tmp_path):
    scenario = tmp_path / "s.toml"
    scenario.write_text("[data]\nn = 100\n[model]\nhidden = [4]\n[train]\nsteps = 5\n")
    out = subprocess.run([sys.executable, "-m", "lab", "run", str(scenario)], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    assert "output" in out.stdout
