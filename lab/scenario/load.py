"""Load a scenario TOML file into a validated Scenario, or raise ScenarioError.

Errors are written in the file's own words ("table", "array", "integer", `true`),
name the dotted key (`model.hidden[2]`, `events[1].set.lr`), show the value found and
what is allowed, suggest the closest key or value for typos, and list every problem at
once: field problems and the checks between keys (lab/scenario/consistency.py) alike.
"""

from __future__ import annotations

import datetime
import difflib
import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from lab.errors import ScenarioError, clip

from .consistency import cross_field_problems
from .dump import toml_value
from .schema import Scenario

TOML_TYPE = {dict: "a table", list: "an array", str: "a string", int: "an integer", float: "a float",
             bool: "a boolean", datetime.date: "a date", datetime.datetime: "a date-time", datetime.time: "a time"}
EXPECTED = {"int_type": "an integer", "int_parsing": "an integer", "int_from_float": "a whole number",
            "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
            "bool_type": "true or false", "bool_parsing": "true or false", "string_type": "a string",
            "list_type": "an array", "model_type": "a table", "dict_type": "a table",
            "model_attributes_type": "a table"}
BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}

MAX_FILE_BYTES = 4 * 1024 * 1024  # a scenario is a few KB; a saved session with a long explain, tens of KB
MAX_DEPTH = 16  # tables and arrays in tables: a scenario nests 6 deep (variants[0].set.schedule.milestones)
MAX_PROBLEMS = 40  # listed one a line; the rest are counted
VALUE_CHARS = 80  # a value quoted in a message is cut to about this many characters


def toml_type(value: Any) -> str:
    return TOML_TYPE.get(type(value), type(value).__name__)


def toml_repr(value: Any, limit: int = VALUE_CHARS) -> str:
    """A value as it would be written in the file, cut to about `limit` characters."""
    if isinstance(value, (list, dict)):
        return toml_value(value, limit - 20)  # stops itself, and says how many items there are
    return clip(toml_value(value, limit + 1), limit)


def _field_model(model: Any, name: str) -> tuple[bool, type[BaseModel] | None]:
    """(is `name` a key of `model`?, the table class it holds, if any)."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)) or name not in model.model_fields:
        return False, None
    ann = model.model_fields[name].annotation
    args = getattr(ann, "__args__", ())
    candidates = [ann, *args, *(a for arg in args for a in getattr(arg, "__args__", ()))]
    return True, next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)


def clean_loc(loc: tuple) -> tuple:
    """The error's location as keys of the file: pydantic's union-member tags (`int`,
    `literal[...]`) are dropped."""
    out: list = []
    model: Any = Scenario
    for part in loc:
        if isinstance(part, int):
            out.append(part)
            continue
        is_key, inner = _field_model(model, part)
        if not is_key:
            # inside a table this is an unknown key (extra_forbidden): keep it; after a
            # scalar it is a union-member tag: drop it and the rest
            if model is not None:
                out.append(part)
            break
        out.append(part)
        model = inner
    return tuple(out)


def dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        part = part if isinstance(part, int) else clip(str(part), 40)
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _table_class(loc: tuple) -> type[BaseModel] | None:
    model: Any = Scenario
    for part in loc:
        if isinstance(part, int):
            continue
        _, model = _field_model(model, part)
        if model is None:
            return None
    return model


def suggest(word: str, options: list[str]) -> str:
    if len(word) > 100:  # no option is that long
        return ""
    lower = {o.lower(): o for o in options}
    if word.lower() in lower:
        return f"; did you mean {lower[word.lower()]!r}?"
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _literal_options(ctx: dict) -> list[str]:
    return [o.strip().strip("'") for o in str(ctx.get("expected", "")).replace(" or ", ", ").split(",") if o.strip()]


def _wanted(error: dict) -> str:
    """What one error says was expected, in words."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "literal_error":
        return "one of " + ", ".join(_literal_options(ctx))
    if kind in EXPECTED:
        return EXPECTED[kind]
    if kind in BOUNDS:
        return f"a value {BOUNDS[kind]} {next(iter(ctx.values()))}"
    return error["msg"]


def describe(error: dict, loc: tuple | None = None) -> str:
    """One pydantic error, in the scenario file's words."""
    loc = clean_loc(tuple(error["loc"])) if loc is None else loc
    key = dotted(loc)
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    found = toml_repr(value)
    if kind == "extra_forbidden":
        parent = _table_class(loc[:-1])
        options = sorted(parent.model_fields) if parent else []
        where = f"in [{dotted(loc[:-1])}]" if loc[:-1] else "at the top level"
        allowed = f" (allowed: {', '.join(options)})" if options else ""
        return f"{key}: unknown key {clip(repr(loc[-1]), 40)} {where}{suggest(str(loc[-1]), options)}{allowed}"
    if kind == "literal_error":
        options = _literal_options(ctx)
        shown = clip(repr(value), VALUE_CHARS) if isinstance(value, str) else toml_repr(value)
        hint = suggest(value if isinstance(value, str) else str(value[0] if isinstance(value, list) and value else ""),
                       options)
        return f"{key}: {shown} is not allowed; expected one of {', '.join(options)}{hint}"
    if kind == "missing":
        return f"{key}: required key is missing"
    if kind in EXPECTED:
        return f"{key}: expected {EXPECTED[kind]}, found {found} ({toml_type(value)})"
    if kind in BOUNDS:
        return f"{key}: must be {BOUNDS[kind]} {next(iter(ctx.values()))}, found {found}"
    if kind == "too_short":
        return f"{key}: needs at least {ctx.get('min_length')} item(s), found {len(value) if value is not None else 0}"
    if kind == "too_long":
        return f"{key}: at most {ctx.get('max_length')} item(s) allowed, found {len(value) if value is not None else '?'}"
    if kind == "string_too_short":
        return f"{key}: must not be empty"
    if kind == "string_too_long":
        return f"{key}: at most {ctx.get('max_length')} characters allowed, found {len(value):,}"
    if kind == "value_error":
        message = str(ctx.get("error", error["msg"]))
        return f"{key}: {message}" if loc else message
    return f"{key}: {clip(error['msg'], 200)} (found {found})"


def problems_of(exc: ValidationError) -> list[str]:
    """Every error as a line; the branches of one union (int | "initial") become one problem."""
    groups: dict[tuple, list[dict]] = {}
    for e in exc.errors():
        groups.setdefault(clean_loc(tuple(e["loc"])), []).append(e)
    out: list[str] = []
    for loc, errors in groups.items():
        tagged = len(errors) > 1 and all(len(e["loc"]) > len(loc) for e in errors)
        listed = [e for e in errors if any(isinstance(p, str) and p.startswith("list[")
                                           for p in e["loc"][len(loc):len(loc) + 1])]
        if tagged and isinstance(errors[0].get("input"), list) and listed:
            # an array where "a number or an array" is allowed: what is wrong inside the array
            for e in listed:
                inner = tuple(p for p in e["loc"][len(loc) + 1:] if isinstance(p, int))
                out.extend(describe(e, loc + inner).splitlines())
        elif tagged:  # one value failed every member of a union
            value = errors[0].get("input")
            wanted = " or ".join(dict.fromkeys(_wanted(e) for e in errors))
            out.append(f"{dotted(loc)}: expected {wanted}, found {toml_repr(value)}")
        else:
            out.extend(line for e in errors for line in describe(e, loc).splitlines())
    return out


def _capped(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    rest = len(problems) - MAX_PROBLEMS + 1
    return problems[:MAX_PROBLEMS - 1] + [f"... and {rest:,} more problems (fix the ones above first)"]


def _depth(raw: Any) -> int:
    """How deep tables and arrays nest (without recursion: a hostile file nests thousands deep)."""
    deepest, stack = 0, [(raw, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            deepest = max(deepest, depth + 1)
            if deepest > MAX_DEPTH:
                return deepest
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))
    return deepest


def parse_scenario(raw: dict, source: str = "<scenario>", *, check_memory: bool = True) -> Scenario:
    """Validate a TOML-shaped dict; every problem is reported at once in a ScenarioError.

    A valid scenario is then held against the memory budget (lab/scenario/budget.py): every
    run, and every event's effect on it, must fit before anything is allocated."""
    if _depth(raw) > MAX_DEPTH:
        raise ScenarioError(source, [f"tables or arrays are nested more than {MAX_DEPTH} deep: a scenario "
                                     "nests at most 6 (variants[0].set.schedule.milestones)"])
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        problems = problems_of(exc)
    except RecursionError:
        problems = ["arrays or tables are nested too deeply to be a scenario"]
    else:
        if check_memory:
            from .budget import memory_problems

            problems = memory_problems(scenario)
            if problems:
                raise ScenarioError(source, problems)
        return scenario
    # pydantic skips the checks between keys while a field is invalid: run them anyway
    for line in cross_field_problems(raw):
        if line not in problems:
            problems.append(line)
    raise ScenarioError(source, _capped(problems)) from None


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.0f} KB"


FILE_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
              (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"))


def _not_a_file(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in FILE_KINDS if test(mode)), "not a regular file")
    return f"cannot read the file: it is {kind}, not a scenario file"


def read_scenario_bytes(path: str | Path) -> bytes:
    """The bytes of a scenario file, refusing before reading anything that is not a regular
    file (a folder, /dev/zero, a FIFO that would block forever) or is over MAX_FILE_BYTES."""
    name = str(path)
    too_big = (f"the file is {{}}: a scenario file is at most {_size(MAX_FILE_BYTES)} (is this a scenario "
               "TOML?)")
    try:
        st = os.stat(path)  # before opening: opening a device or a FIFO may block or have effects
        problem = _not_a_file(st.st_mode)
        if problem:
            raise ScenarioError(name, [problem])
        if st.st_size > MAX_FILE_BYTES:
            raise ScenarioError(name, [too_big.format(_size(st.st_size))])
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
        with os.fdopen(fd, "rb") as fh:
            problem = _not_a_file(os.fstat(fh.fileno()).st_mode)  # replaced since the stat?
            if problem:
                raise ScenarioError(name, [problem])
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ScenarioError(name, [f"cannot read the file: {exc.strerror or exc}"]) from None
    if len(data) > MAX_FILE_BYTES:  # it grew while we read it
        raise ScenarioError(name, [too_big.format(f"over {_size(MAX_FILE_BYTES)}")])
    return data


def read_scenario_text(path: str | Path) -> str:
    """The text of a scenario file (read as load_scenario reads it), or ScenarioError."""
    data = read_scenario_bytes(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(str(path), [f"not a UTF-8 text file (byte {exc.start}): is this a scenario TOML?"]) from None
    if "\x00" in text:
        raise ScenarioError(str(path), ["not a text file (it contains NUL bytes): is this a scenario TOML?"])
    return text


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    text = read_scenario_text(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(str(path), [f"TOML syntax error: {clip(str(exc), 200)}"]) from None
    except RecursionError:
        raise ScenarioError(str(path), ["arrays or tables are nested too deeply to be a scenario"]) from None
    except ValueError as exc:  # int(): "Exceeds the limit (4300 digits) for integer string conversion"
        if "digits" in str(exc):
            raise ScenarioError(str(path), ["a number has more than 4300 digits: no scenario key takes a number "
                                            "that long"]) from None
        raise ScenarioError(str(path), [f"cannot read the TOML: {clip(str(exc), 200)}"]) from None
    if not raw:
        raise ScenarioError(str(path), ["the file is empty: a scenario needs at least a [scenario] table with a name"])
    return beside(parse_scenario(raw, str(path)), path)


def beside(scenario: Scenario, path: Path) -> Scenario:
    """A scenario read from `path` with its relative file names (transfer.pretrained) made relative
    to the file's folder, so it finds them from any working directory."""
    t = scenario.transfer
    if t is None or Path(t.pretrained).is_absolute():
        return scenario
    pretrained = str(path.resolve().parent / t.pretrained)
    return scenario.model_copy(update={"transfer": t.model_copy(update={"pretrained": pretrained})})
