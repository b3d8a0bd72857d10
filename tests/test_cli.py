"""The `nnlab` command line: default run, scenario files, errors with exit code 2."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from lab.cli import app
from lab.errors import ExitCode, ScenarioError
from lab.scenario.catalog import bundled, resolve

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


# -- examples in the help texts and the docs name scenarios that exist ----------------------------------------

ROOT = Path(__file__).resolve().parents[1]
COMMANDS_TAKING_A_SCENARIO = ("run", "show", "check", "screenshot", "browse", "search")


def help_texts() -> dict[str, str]:
    """Every help text the CLI prints: the app's, each command's and each argument's and option's."""
    group = typer.main.get_command(app)
    texts = {"nnlab": group.help or ""}
    for name, command in group.commands.items():
        texts[f"nnlab {name}"] = command.help or ""
        for param in command.params:
            texts[f"nnlab {name} {param.name}"] = getattr(param, "help", None) or ""
    return texts


def documents() -> dict[str, tuple[str, bool]]:
    """{where: (text, prose?)}: the README, docs/*.md and the help texts are prose, whose `nnlab ...`
    examples are checked too; the sources and pyproject.toml are checked for topic/name mentions only."""
    prose = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    code = [ROOT / "pyproject.toml", *sorted((ROOT / "lab").rglob("*.py"))]
    out = {str(f.relative_to(ROOT)): (f.read_text(encoding="utf-8"), f in prose) for f in prose + code}
    out.update({where: (text, True) for where, text in help_texts().items()})
    return out


def mentions(text: str, prose: bool = True) -> set[str]:
    """Scenario names in a text: `topic/name` for every bundled topic (also as scenarios/topic/name.toml),
    and in prose the argument of an `nnlab run/show/check/screenshot/browse` example, unless a placeholder."""
    topics = "|".join(re.escape(t) for t in sorted({e.topic for e in bundled()}))
    found = {m.group(1) for m in re.finditer(rf"(?<![\w./-])(?:scenarios/)?((?:{topics})/[\w-]+)(?:\.toml)?(?![\w/-]|\.\w)",
                                             text)}
    for m in re.finditer(rf"nnlab (?:{'|'.join(COMMANDS_TAKING_A_SCENARIO)}) +([^\s`|)\]'\"]+)", text if prose else ""):
        arg = m.group(1).rstrip(".,;:")
        if not arg.startswith(("-", "[", "<", "{")) and not re.search(r"[A-Z]", arg):
            found.add(arg)
    return found


def test_the_scanner_finds_names_and_would_catch_a_stale_one():
    assert mentions("e.g. `nnlab run init/xavier-vs-kaiming-relu`, see scenarios/activations/sigmoid-zigzag.toml") \
        == {"init/xavier-vs-kaiming-relu", "activations/sigmoid-zigzag"}
    assert mentions("nnlab run SCENARIO --headless, nnlab check [PATH...], lab/engine/init.py") == set()
    assert mentions("(e.g. init/xavier-tanh)") == {"init/xavier-tanh"}
    assert mentions("np.load('scenarios/after-training/parts-source-seed0.npz')") == set()  # a data file
    with pytest.raises(ScenarioError):
        resolve("init/xavier-tanh")  # the example `nnlab run --help` used to give


def test_every_scenario_named_in_the_help_and_the_docs_exists(monkeypatch):
    monkeypatch.chdir(ROOT)  # a path in the docs is relative to the repository
    named = {(where, name) for where, (text, prose) in documents().items() for name in mentions(text, prose)}
    assert any(name == "init/xavier-vs-kaiming-relu" for _, name in named)  # the scan sees the README's example
    assert any(where == "nnlab run scenario" for where, _ in named)  # and `nnlab run --help`'s
    missing = []
    for where, name in sorted(named):
        try:
            resolve(name)
        except ScenarioError:
            missing.append(f"{where}: {name}")
    assert not missing, "examples that name no scenario:\n" + "\n".join(missing)


# -- a folder given to run/show/screenshot/browse ---------------------------------------------------------------

CHECK_DATA = ROOT / "tests" / "data" / "check_scenarios"


def listed_names(text: str) -> list[str]:
    """The scenario names in a listing (the lines indented by exactly two spaces start with one)."""
    return [line.split()[0] for line in text.splitlines() if re.match(r"  \S", line)]


def assert_lists(text: str, folder: Path) -> None:
    names = listed_names(text)
    files = sorted(folder.rglob("*.toml"))
    assert len(names) == len(files), text
    assert sorted(resolve(n).resolve() for n in names) == [f.resolve() for f in files]  # each can be typed back


@pytest.mark.parametrize("args", [["run"], ["run", "--headless"], ["run", "--steps", "3"], ["screenshot"]])
@pytest.mark.parametrize("folder", ["activations", str(CHECK_DATA / "passing")])
def test_a_folder_without_a_terminal_is_named_and_its_scenarios_listed(args, folder):
    result = runner.invoke(app, [args[0], folder, *args[1:]])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    first = result.stderr.splitlines()[0]
    assert first.startswith("error: ") and "is a folder, not a scenario file" in first
    assert_lists(result.stderr, resolve(folder))
    assert "Is a directory" not in result.output and result.stdout == ""


def test_show_a_folder_lists_its_scenarios():
    result = runner.invoke(app, ["show", "init"])
    assert result.exit_code == ExitCode.OK, result.output
    count = len(list(resolve("init").glob("*.toml")))
    assert result.stdout.splitlines()[0].startswith(f"init: a folder of {count} scenario(s)")
    assert_lists(result.stdout, resolve("init"))


def test_run_a_folder_in_a_terminal_opens_the_browser_on_it(monkeypatch):
    import lab.cli
    import lab.tui.app

    opened = []

    class FakeApp:
        return_code = 0  # as Textual's App after a clean exit

        def __init__(self, paths):
            self.paths = paths

        def run(self):
            opened.append(self.paths)

    monkeypatch.setattr(lab.cli, "_interactive", lambda: True)
    monkeypatch.setattr(lab.tui.app, "make_app", FakeApp)
    folder = CHECK_DATA / "passing"
    assert runner.invoke(app, ["run", str(folder)]).exit_code == ExitCode.OK
    assert runner.invoke(app, ["run", "activations"]).exit_code == ExitCode.OK
    assert opened == [[folder], [resolve("activations")]]
    assert runner.invoke(app, ["run", str(folder), "--headless"]).exit_code == ExitCode.USAGE  # asked for no UI
    assert len(opened) == 2


def test_browse_a_folder_without_a_terminal_lists_it():
    result = runner.invoke(app, ["browse", str(CHECK_DATA / "failing")])
    assert result.exit_code == ExitCode.USAGE
    assert "not a terminal" in result.stderr.splitlines()[0]
    assert_lists(result.stderr, CHECK_DATA / "failing")


@pytest.mark.parametrize("command", ["run", "show", "screenshot", "check"])
def test_a_folder_with_no_scenarios_is_one_line(tmp_path, command):
    (tmp_path / "notes.txt").write_text("not a scenario")
    result = runner.invoke(app, [command, str(tmp_path)])
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.count("\n") == 1 and "no scenario files (*.toml)" in result.stderr
    assert tmp_path.name in result.stderr


# -- raw OS errors become one line that names the file, exit 2 -----------------------------------------------------

def _unreadable(monkeypatch, path: Path) -> None:
    """(The tests may run as root, whom chmod does not stop.)  The loader opens files with os.open."""
    real = os.open

    def fake_open(name, *args, **kwargs):
        if Path(name) == path:
            raise PermissionError(13, "Permission denied", str(name))
        return real(name, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)


def _unsearchable(monkeypatch, path: Path) -> None:
    real = Path.stat

    def stat(self, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)


BAD_FILES = {  # name: (how to make it, words of the message)
    "missing": (lambda p, mp: None, "no such file or bundled scenario"),
    "not-utf8": (lambda p, mp: p.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe"), "not a UTF-8 text file"),
    "not-toml": (lambda p, mp: p.write_text("this is = = not toml\n"), "TOML syntax error"),
    "unreadable": (lambda p, mp: (p.write_text("[model]\n"), _unreadable(mp, p)), "Permission denied"),
    "unsearchable": (lambda p, mp: _unsearchable(mp, p), "Permission denied"),
}


@pytest.mark.parametrize("command", ["run", "show", "screenshot", "check"])
@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_file_is_one_line_naming_it(tmp_path, monkeypatch, command, case):
    path = tmp_path / f"{case}.toml"
    make, words = BAD_FILES[case]
    make(path, monkeypatch)
    result = runner.invoke(app, [command, str(path)])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    if command == "check" and case not in ("missing", "unsearchable"):  # reported in the check report
        assert f"{case}.toml" in result.stdout and words in result.stdout and "1 invalid" in result.stdout
        return
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: ") and f"{case}.toml" in result.stderr and words in result.stderr


@pytest.mark.parametrize("args, option", [
    (["run", "{ok}", "--csv", "{dir}"], "--csv"),
    (["run", "{ok}", "--csv", "{dir}/no/such/out.csv"], "--csv"),
    (["check", "{ok}", "--junit", "{dir}"], "--junit"),
    (["screenshot", "{ok}", "--out", "{dir}"], "--out"),
])
def test_an_output_file_that_cannot_be_written_fails_before_the_work(tmp_path, args, option):
    ok = tmp_path / "ok.toml"
    ok.write_text("[data]\nn = 100\n[model]\nhidden = [4]\n[train]\nsteps = 5\n")
    result = runner.invoke(app, [a.format(ok=ok, dir=tmp_path) for a in args])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert result.stdout == ""  # nothing was trained, checked or drawn
    assert result.stderr.count("\n") == 1 and option in result.stderr and str(tmp_path) in result.stderr


def test_a_csv_that_fails_to_write_after_training_is_one_line(tmp_path, monkeypatch):
    import errno

    import lab.report.export

    def full_disk(history, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(lab.report.export, "write_history_csv", full_disk)
    ok = tmp_path / "ok.toml"
    ok.write_text("[data]\nn = 100\n[model]\nhidden = [4]\n[train]\nsteps = 5\n")
    result = runner.invoke(app, ["run", str(ok), "--csv", str(tmp_path / "h.csv")])
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr == f"error: {tmp_path / 'h.csv'}: cannot write: No space left on device\n"


# -- a reader that stops reading (`nnlab ... | head`) ------------------------------------------------------------

def lab_process(*args: str, cwd: Path, stdout) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="80")
    return subprocess.Popen([sys.executable, "-m", "lab", *args], cwd=cwd, env=env, stdout=stdout,
                            stderr=subprocess.PIPE, text=True)


def assert_quiet(stderr: str) -> None:
    for noise in ("Traceback", "Exception ignored", "BrokenPipeError", "Broken pipe"):
        assert noise not in stderr, stderr


@pytest.mark.parametrize("args, status", [
    (["list"], ExitCode.OK),
    (["schema"], ExitCode.OK),
    (["show", "activations/sigmoid-zigzag"], ExitCode.OK),
    (["check", "passing"], ExitCode.OK),
    (["check", "passing", "failing"], ExitCode.CHECK_FAILED),  # the checks' own status, not the pipe's
    (["check", "invalid"], ExitCode.USAGE),
    (["check", "--json", "failing"], ExitCode.CHECK_FAILED),
])
def test_a_closed_pipe_is_quiet_and_keeps_the_exit_status(args, status):
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first byte: every write fails with EPIPE
    try:
        proc = lab_process(*args, cwd=CHECK_DATA, stdout=write)
    finally:
        os.close(write)
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == status, stderr
    assert_quiet(stderr)


def test_check_finishes_its_work_when_the_pipe_closes(tmp_path):
    read, write = os.pipe()
    os.close(read)
    junit = tmp_path / "report.xml"
    try:
        proc = lab_process("check", "--junit", str(junit), "passing", "failing", cwd=CHECK_DATA, stdout=write)
    finally:
        os.close(write)
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == ExitCode.CHECK_FAILED
    assert_quiet(stderr)
    from xml.etree import ElementTree as ET

    assert sum(int(s.get("tests")) for s in ET.parse(junit).getroot().iter("testsuite")) == 8


@pytest.mark.parametrize("args, lines, status", [
    (["check", "passing"], 3, ExitCode.OK),
    (["list"], 1, ExitCode.OK),
])
def test_piped_into_head(args, lines, status):
    """`nnlab check | head -3`, as a shell runs it: head exits after its lines, nnlab carries on."""
    lab = lab_process(*args, cwd=CHECK_DATA, stdout=subprocess.PIPE)
    head = subprocess.Popen(["head", f"-{lines}"], stdin=lab.stdout, stdout=subprocess.PIPE, text=True)
    lab.stdout.close()  # head alone holds the read end now
    shown, _ = head.communicate(timeout=600)
    stderr = lab.stderr.read()
    lab.wait(timeout=600)
    assert len(shown.splitlines()) == lines
    assert lab.returncode == status, stderr
    assert_quiet(stderr)
