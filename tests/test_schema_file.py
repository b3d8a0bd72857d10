"""docs/scenario.schema.json (for editors) is the schema the loader enforces, and is up to date."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

import lab.cli
from lab.scenario.schema import json_schema

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_FILE = ROOT / "docs" / "scenario.schema.json"
BUNDLED = sorted((ROOT / "scenarios").glob("*/*.toml"))
BAD = Path(__file__).resolve().parent / "data" / "bad_scenarios"
REGENERATE = "docs/scenario.schema.json is stale: run `nnlab schema > docs/scenario.schema.json` and commit it"


def committed() -> dict:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def test_committed_schema_is_current():
    assert SCHEMA_FILE.is_file(), REGENERATE
    fresh = json_schema()
    old = committed()
    if old != fresh:
        changed = sorted(k for k in set(old.get("$defs", {})) | set(fresh.get("$defs", {}))
                         if old.get("$defs", {}).get(k) != fresh.get("$defs", {}).get(k))
        pytest.fail(f"{REGENERATE} (changed definitions: {', '.join(changed) or 'top level'})", pytrace=False)


def test_nnlab_schema_prints_the_same_schema():
    result = CliRunner().invoke(lab.cli.app, ["schema"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == json_schema()


def test_schema_is_a_valid_draft_2020_12_schema():
    jsonschema = pytest.importorskip("jsonschema")
    schema = committed()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", BUNDLED, ids=[f"{p.parent.name}/{p.stem}" for p in BUNDLED])
def test_bundled_scenario_validates_against_the_json_schema(path):
    jsonschema = pytest.importorskip("jsonschema")
    raw = tomllib.loads(path.read_text(encoding="utf-8"))  # TOML tables/arrays/scalars are JSON-shaped
    errors = sorted(jsonschema.Draft202012Validator(committed()).iter_errors(raw), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_there_are_bundled_scenarios():
    assert BUNDLED, "no scenarios/*/*.toml found"


# Mistakes the editor should flag as you type, like the loader does (cross-field checks are the loader's alone).
EDITOR_CATCHES = ["unknown_key.toml", "unknown_table.toml", "wrong_type.toml", "string_for_number.toml",
                  "float_for_integer.toml", "unknown_activation.toml", "unknown_optimizer.toml", "negative_lr.toml",
                  "zero_lr.toml", "no_layers.toml", "too_many_layers.toml", "dropout_out_of_range.toml",
                  "bad_event_change.toml", "bad_event_value.toml", "event_missing_set.toml", "expect_bad_at.toml"]


@pytest.mark.parametrize("name", EDITOR_CATCHES, ids=[n.removesuffix(".toml") for n in EDITOR_CATCHES])
def test_json_schema_rejects_field_level_mistakes(name):
    jsonschema = pytest.importorskip("jsonschema")
    raw = tomllib.loads((BAD / name).read_text(encoding="utf-8"))
    assert list(jsonschema.Draft202012Validator(committed()).iter_errors(raw)), f"the JSON Schema accepts {name}"


def test_cross_field_defaults_match_the_schema():
    """lab/scenario/consistency.py reads raw files and fills in the schema's defaults itself."""
    from lab.scenario.consistency import DEFAULTS
    from lab.scenario.schema import DataSpec, ModelSpec, TrainSpec

    model, train, data = ModelSpec(), TrainSpec(), DataSpec()
    assert DEFAULTS == {"steps": train.steps, "hidden": model.hidden, "dim": data.dim, "classes": data.classes,
                        "kind": data.kind, "maxout_k": model.maxout_k}
