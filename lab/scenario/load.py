"""Load a scenario TOML file into a validated Scenario, or raise ScenarioError.

Errors are written in the file's own words ("table", "array", "integer"), name the
dotted key (`model.hidden[2]`, `events[1].set.lr`), show the value found and what is
allowed, suggest the closest key or value for typos, and list every problem at once.
"""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from lab.errors import ScenarioError

from .schema import Scenario

TOML_TYPE = {dict: "a table", list: "an array", str: "a string", int: "an integer", float: "a float",
             bool: "a boolean"}
EXPECTED = {"int_type": "an integer", "int_parsing": "an integer", "int_from_float": "a whole number",
            "float_type": "a number", "float_parsing": "a number", "bool_type": "true or false",
            "bool_parsing": "true or false", "string_type": "a string", "list_type": "an array",
            "model_type": "a table", "dict_type": "a table", "model_attributes_type": "a table"}


def toml_type(value: Any) -> str:
    for py, name in TOML_TYPE.items():
        if type(value) is py:
            return name
    return type(value).__name__


def dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The schema class whose table `loc` points into (for did-you-mean on keys)."""
    model: Any = Scenario
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return None
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        candidates = [ann, *args, *(a for arg in args for a in getattr(arg, "__args__", ()))]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return None
    return model


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def describe(error: dict) -> str:
    """One pydantic error, in the scenario file's words."""
    loc = tuple(error["loc"])
    key = dotted(loc)
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        options = sorted(parent.model_fields) if parent else []
        table = dotted(loc[:-1])
        where = f"in [{table}]" if loc[:-1] else "at the top level"
        allowed = f" (allowed: {', '.join(options)})" if options else ""
        return f"{key}: unknown key {loc[-1]!r} {where}{_suggest(str(loc[-1]), options)}{allowed}"
    if kind == "literal_error":
        options = [o.strip().strip("'") for o in str(ctx.get("expected", "")).replace(" or ", ", ").split(",")]
        return (f"{key}: {value!r} is not allowed; expected one of {', '.join(options)}"
                f"{_suggest(str(value), options)}")
    if kind == "missing":
        return f"{key}: required key is missing"
    if kind in EXPECTED:
        return f"{key}: expected {EXPECTED[kind]}, found {value!r} ({toml_type(value)})"
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
    if kind in bounds:
        limit = next(iter(ctx.values()))
        return f"{key}: must be {bounds[kind]} {limit}, found {value!r}"
    if kind == "too_short":
        return f"{key}: needs at least {ctx.get('min_length')} item(s), found {len(value) if value is not None else 0}"
    if kind == "too_long":
        return f"{key}: at most {ctx.get('max_length')} item(s) allowed, found {len(value) if value is not None else '?'}"
    if kind == "value_error":
        return f"{key}: {str(ctx.get('error', error['msg']))}" if loc else str(ctx.get("error", error["msg"]))
    return f"{key}: {error['msg']} (found {value!r})"


def parse_scenario(raw: dict, source: str = "<scenario>") -> Scenario:
    """Validate a TOML-shaped dict; every problem is reported at once in a ScenarioError."""
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        problems = [line for e in exc.errors() for line in describe(e).splitlines()]
        raise ScenarioError(source, problems) from None


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ScenarioError(str(path), [f"cannot read the file: {exc.strerror or exc}"]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(str(path), [f"not a UTF-8 text file (byte {exc.start}): is this a scenario TOML?"]) from None
    if "\x00" in text:
        raise ScenarioError(str(path), ["not a text file (it contains NUL bytes): is this a scenario TOML?"])
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(str(path), [f"TOML syntax error: {exc}"]) from None
    if not raw:
        raise ScenarioError(str(path), ["the file is empty: a scenario needs at least a [scenario] table with a name"])
    return parse_scenario(raw, str(path))
