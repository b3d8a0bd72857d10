"""Limits on what a scenario file may ask for: bounded reads, an upper bound on every number,
values quoted short, and the worst files through `nnlab check` under an address-space limit.

The fixtures in tests/data/bad_scenarios/ (tests/test_scenario_errors.py) say what each message
says; here are the cases a fixture file cannot be (devices, FIFOs, files over the size limit,
the environment) and the properties that hold for every field.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import annotated_types
import pytest
from typer.testing import CliRunner

import lab.cli
from lab.errors import ExitCode, ScenarioError
from lab.scenario import load_scenario
from lab.scenario.load import MAX_FILE_BYTES, MAX_PROBLEMS, parse_scenario
from lab.scenario.schema import (AugmentSpec, Changes, DataSpec, Event, Expectation, ModelSpec, ScenarioMeta,
                                 ScheduleSpec, TrainSpec, VariantChanges, json_schema)

ROOT = Path(__file__).resolve().parents[1]
BAD = ROOT / "tests" / "data" / "bad_scenarios"
runner = CliRunner()


@pytest.fixture(autouse=True)
def _budget(monkeypatch):
    monkeypatch.setenv("NNLAB_MEMORY_BUDGET", "2G")


def _problems(raw: dict) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(raw, "inline.toml")
    return info.value.problems


# -- every number has an upper bound, documented in the JSON Schema and enforced ----------------------------

def _walk(node, path=""):
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from _walk(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}[{i}]")


def test_every_number_array_and_string_in_the_json_schema_has_an_upper_bound():
    unbounded = []
    for path, node in _walk(json_schema()):
        kind = node.get("type")
        if kind in ("integer", "number") and not {"maximum", "exclusiveMaximum"} & set(node):
            unbounded.append(path)
        if kind == "array" and "maxItems" not in node:
            unbounded.append(path)
        if kind == "string" and "maxLength" not in node and "enum" not in node and "const" not in node:
            unbounded.append(path)
    assert not unbounded, unbounded


def _bounds(annotation) -> list[tuple[bool, type, float, bool]]:
    """(in a list?, int or float, the bound, inclusive?) of every numeric part of a field's type."""
    out = []

    def visit(ann, in_list, metadata):
        origin, args = typing.get_origin(ann), typing.get_args(ann)
        if origin is typing.Annotated:
            inner = [m for a in args[1:] for m in getattr(a, "metadata", [a])]
            visit(args[0], in_list, metadata + inner)
        elif origin is list:
            visit(args[0], True, [])
        elif args:
            for a in args:
                visit(a, in_list, metadata)
        elif ann in (int, float):
            for m in metadata:
                if isinstance(m, annotated_types.Le):
                    out.append((in_list, ann, m.le, True))
                if isinstance(m, annotated_types.Lt):
                    out.append((in_list, ann, m.lt, False))
            if not any(isinstance(m, (annotated_types.Le, annotated_types.Lt)) for m in metadata):
                out.append((in_list, ann, None, True))

    visit(annotation, False, [])
    return out


def _numeric_fields():
    places = [(ScenarioMeta, "scenario.{}", lambda k, v: {"scenario": {k: v}}),
              (DataSpec, "data.{}", lambda k, v: {"data": {k: v}}),
              (AugmentSpec, "data.augment.{}", lambda k, v: {"data": {"kind": "digits", "augment": {k: v}}}),
              (ModelSpec, "model.{}", lambda k, v: {"model": {k: v}}),
              (TrainSpec, "train.{}", lambda k, v: {"train": {k: v}}),
              (ScheduleSpec, "train.schedule.{}", lambda k, v: {"train": {"schedule": {"kind": "cosine", k: v}}}),
              (Changes, "events[0].set.{}", lambda k, v: {"events": [{"at": 0, "set": {k: v}}]}),
              (VariantChanges, "variants[0].set.{}", lambda k, v: {"variants": [{"name": "v", "set": {k: v}}]}),
              (Event, "events[0].{}", lambda k, v: {"events": [{"at": 0, "set": {"lr": 0.1}, k: v}]}),
              (Expectation, "expect[0].{}", lambda k, v: {"expect": [{"metric": "loss", "op": "<", "value": 1.0,
                                                                       k: v}]})]
    for model, key, make in places:
        for name, info in model.model_fields.items():
            annotation = typing.Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
            for in_list, kind, bound, inclusive in _bounds(annotation):
                yield pytest.param(key.format(name), make, name, in_list, kind, bound, inclusive,
                                   id=f"{key.format(name)}{'[]' if in_list else ''}")


@pytest.mark.parametrize("key, make, name, in_list, kind, bound, inclusive", list(_numeric_fields()))
def test_every_numeric_field_refuses_a_value_past_its_bound(key, make, name, in_list, kind, bound, inclusive):
    assert bound is not None, f"{key} has no upper bound"
    value = bound if not inclusive else (bound + 1 if kind is int else (bound * 10 if bound > 0 else bound + 1.0))
    value = kind(value)
    problems = _problems(make(name, [value] if in_list else value))
    assert any(p.startswith(key) and "<" in p for p in problems), problems
    if inclusive:  # the bound itself is a value the field takes (as far as this field is concerned)
        try:
            parse_scenario(make(name, [kind(bound)] if in_list else kind(bound)), "inline.toml")
        except ScenarioError as exc:
            assert not any(p.startswith(key) and "must be <" in p for p in exc.problems), exc.problems


def test_the_bounds_are_in_the_descriptions_editors_show():
    text = str(json_schema())
    for words in ("1 .. 10,000,000", "at most 10,000", "1 .. 65536", "1 to 64 layers of 1 .. 16384 units",
                  "at most 1,000,000", "at most a day"):
        assert words in text, words


# -- reading: only regular files, at most a few MB, before anything is read ----------------------------------

@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_devices_are_refused_before_reading(device):
    if not os.path.exists(device):
        pytest.skip(f"no {device}")
    with pytest.raises(ScenarioError) as info:
        load_scenario(device)
    assert info.value.path == device
    assert "it is a character device, not a scenario file" in str(info.value)


def test_a_symlink_to_a_device_is_refused(tmp_path):
    link = tmp_path / "zero.toml"
    link.symlink_to("/dev/zero")
    with pytest.raises(ScenarioError) as info:
        load_scenario(link)
    assert "zero.toml" in str(info.value) and "character device" in str(info.value)


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)  # nobody writes: a plain read would wait forever
    with pytest.raises(ScenarioError) as info:
        load_scenario(fifo)
    assert "pipe.toml" in str(info.value) and "named pipe (FIFO)" in str(info.value)


def test_a_folder_is_refused(tmp_path):
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path)
    assert "cannot read the file: it is a folder" in str(info.value)


def test_a_file_over_the_limit_is_refused_by_its_size(tmp_path):
    big = tmp_path / "big.toml"
    with big.open("wb") as fh:
        fh.truncate(5 * 2**20)  # 5 MB of NULs: refused by size, before the NUL check reads them
    with pytest.raises(ScenarioError) as info:
        load_scenario(big)
    assert str(info.value).splitlines()[1] == ("  - the file is 5.0 MB: a scenario file is at most 4.0 MB "
                                               "(is this a scenario TOML?)")


def test_a_file_at_the_limit_is_read(tmp_path):
    text = '[scenario]\nname = "padded"\n'
    path = tmp_path / "padded.toml"
    path.write_text(text + "#" * (MAX_FILE_BYTES - len(text) - 1) + "\n")
    assert path.stat().st_size == MAX_FILE_BYTES
    assert load_scenario(path).name == "padded"


def test_check_refuses_dev_zero_with_exit_2():
    result = runner.invoke(lab.cli.app, ["check", "/dev/zero"])
    assert result.exit_code == ExitCode.USAGE
    assert "character device" in result.output and "1 invalid" in result.output


# -- long values are quoted short --------------------------------------------------------------------------

def test_a_5_mb_wrong_value_is_cut_in_the_message():
    problems = _problems({"model": {"activation": "x" * 5_000_000}})
    assert len(problems) == 1 and len(problems[0]) < 300, len(problems[0])
    assert "(5,000,002 characters) is not allowed" in problems[0]


def test_a_long_value_in_a_file_is_cut_in_the_message(tmp_path):
    path = tmp_path / "long.toml"
    path.write_text('[data]\nkind = "' + "s" * 3_000_000 + '"\n')
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert len(str(info.value)) < 1000 and "(3,000,002 characters)" in str(info.value)


def test_thousands_of_problems_are_counted_not_listed():
    raw = {"events": [{"at": -1, "set": {"lr": -1.0}} for _ in range(500)]}
    problems = _problems(raw)
    assert len(problems) == MAX_PROBLEMS
    assert problems[-1].startswith("... and ") and "more problems" in problems[-1]


# -- a 200-character name prints quickly and whole (rich's highlighter is quadratic) ----------------------------

def test_a_long_name_is_printed_whole_without_highlighting(tmp_path):
    name = "[0.1, 2e-3] (x) 'y' " * 10
    path = tmp_path / "named.toml"
    path.write_text(f'[scenario]\nname = "{name}"\n[model]\nhidden = [4]\n[train]\nsteps = 3\n')
    result = runner.invoke(lab.cli.app, ["run", str(path), "--headless"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    # whole and not read as markup; the console's width was fixed when lab.cli was first imported,
    # so in a shared test process the name may be wrapped: compare with whitespace collapsed
    assert " ".join(name.split()) in " ".join(result.output.split())


# -- run-time input errors and files without claims in `nnlab check` -------------------------------------------

def test_an_input_error_found_while_running_is_invalid_not_a_crash(tmp_path, monkeypatch):
    """A file that loads and then meets a problem only the data show (whiten on rows that do not vary)."""
    import lab.sim.expectations
    from lab.errors import LabError

    def degenerate(scenario, **kw):
        raise LabError(f"{scenario.name}: data.preprocess: whiten kept no feature: the training rows do not vary")

    monkeypatch.setattr(lab.sim.expectations, "check", degenerate)
    path = tmp_path / "flat.toml"
    path.write_text('[scenario]\nname = "flat"\n[[expect]]\nmetric = "loss"\nop = "<"\nvalue = 9.0\n')
    result = runner.invoke(lab.cli.app, ["check", str(path)])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "1 invalid" in result.output and "crashed" not in result.output
    assert "whiten kept no feature" in result.output


def test_a_file_without_claims_is_a_distinct_result(tmp_path):
    path = tmp_path / "quiet.toml"
    path.write_text('[scenario]\nname = "quiet"\n[model]\nhidden = [4]\n')
    result = runner.invoke(lab.cli.app, ["check", str(path)], env={"COLUMNS": "120"})
    assert result.exit_code == ExitCode.OK, result.output
    assert "none" in result.output and "no expectations: nothing to check" in result.output
    assert result.output.rstrip().endswith("0 passed, 0 failed, 1 without expectations")
    as_json = runner.invoke(lab.cli.app, ["check", str(path), "--json"])
    assert '"checked": false' in as_json.output


# -- a CSV that is a window says so --------------------------------------------------------------------------

def test_the_csv_message_says_when_it_is_a_window(tmp_path, monkeypatch):
    from lab.sim.simulation import Simulation

    monkeypatch.setitem(Simulation.__init__.__kwdefaults__, "history_capacity", 100)
    path = tmp_path / "tiny.toml"
    path.write_text('[model]\nhidden = [4]\n[train]\nsteps = 250\n')
    out = tmp_path / "h.csv"
    result = runner.invoke(lab.cli.app, ["run", str(path), "--csv", str(out)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # (the console may wrap: its width was fixed at import)
    assert "a window, steps 151 to 250 of 250" in said
    assert "steps before the window are not in the file" in said
    rows = out.read_text().splitlines()
    assert rows[1].startswith("151,") and rows[-1].startswith("250,")


# -- the worst files through `nnlab check`, in a process with a small address space ------------------------------

WORST = ["memory_random_normal_20gb.toml", "memory_batch_workspace.toml", "memory_near_max_parameters.toml",
         "memory_variant_wide.toml", "memory_variant_data.toml", "memory_event_whiten.toml", "memory_pca_svd.toml",
         "memory_event_dropconnect.toml", "memory_runs_side_by_side.toml", "memory_expectation_buffers.toml",
         "variant_deep_parameters.toml", "absurd_sizes.toml", "smooth_too_large.toml", "integer_4301_digits.toml",
         "dotted_keys_5000_deep.toml", "deeply_nested.toml", "huge_array_value.toml", "name_too_long.toml"]
ADDRESS_SPACE = 1536 * 2**20  # the lab itself reserves ~0.6 GB of address space (numba, BLAS)


def _prlimited(args: list[str], budget: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NNLAB_MEMORY_BUDGET"}
    env.update({"COLUMNS": "250", "NO_COLOR": "1", "PYTHONPATH": str(ROOT)})
    if budget:
        env["NNLAB_MEMORY_BUDGET"] = budget
    cmd = ["prlimit", f"--as={ADDRESS_SPACE}", sys.executable, "-m", "lab", *args]
    # the timeout is a safety net against a hang, not a measure of speed
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)


needs_prlimit = pytest.mark.skipif(shutil.which("prlimit") is None or sys.platform != "linux",
                                   reason="needs prlimit (util-linux)")


@needs_prlimit
def test_the_worst_files_exit_2_with_a_message_under_an_address_space_limit():
    files = [str(BAD / name) for name in WORST] + ["/dev/zero"]
    out = _prlimited(["check", *files], budget="512M")
    both = out.stdout + out.stderr
    assert out.returncode == ExitCode.USAGE, both
    assert "Traceback" not in both and "MemoryError" not in both and "crashed" not in both
    assert f"{len(files)} invalid" in both
    assert both.count("over the budget of 512 MiB (NNLAB_MEMORY_BUDGET=512M)") >= 10
    for name in WORST:
        assert name in both


@needs_prlimit
def test_without_a_budget_set_the_address_space_limit_is_the_budget():
    out = _prlimited(["check", str(BAD / "memory_near_max_parameters.toml")], budget=None)
    both = out.stdout + out.stderr
    assert out.returncode == ExitCode.USAGE, both
    assert "80% of the address space ulimit -v leaves" in both and "Traceback" not in both


@needs_prlimit
def test_a_scenario_just_inside_the_budget_runs_under_the_limit(tmp_path):
    """The estimate is the rule: what it lets through must then fit (here 300 MB of data and split)."""
    path = tmp_path / "inside.toml"
    path.write_text('[data]\nkind = "random-normal"\nn = 12000\ndim = 1000\n[model]\nhidden = [32]\n'
                    '[train]\nsteps = 5\n[[expect]]\nmetric = "loss"\nop = ">"\nvalue = 0.0\n')
    out = _prlimited(["check", str(path)], budget="512M")
    assert out.returncode == ExitCode.OK, out.stdout + out.stderr
    assert "1 passed" in out.stdout
