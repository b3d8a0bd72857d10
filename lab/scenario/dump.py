"""Write a Scenario back to TOML (the TUI's "save as scenario").

Only values that differ from the schema's defaults are written, so a saved session reads
like a hand-written file; floats are written with repr, which round-trips exactly, so
the saved file replays the session bit for bit.
"""

from __future__ import annotations

import datetime
from typing import Any

from pydantic import BaseModel

from .schema import Scenario

SECTIONS = ("scenario", "data", "model", "train")
ARRAYS = ("events", "variants", "expect")
ALWAYS = {"expect": ("op",)}  # written even at their default: a claim reads wrong without its comparison


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int,)):
        return str(v)
    if isinstance(v, float):
        return repr(v) if v == v and v not in (float("inf"), float("-inf")) else ("nan" if v != v else ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        if "\n" in v:
            return '"""\n' + v.replace("\\", "\\\\").replace('"""', '\\"\\"\\"') + '"""'
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        if not v:
            return "{}"
        return "{ " + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, (datetime.date, datetime.time)):
        return v.isoformat()
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dump_scenario(sc: Scenario, header: str = "") -> str:
    data = sc.model_dump(exclude_defaults=True)
    lines = [f"# {line}".rstrip() for line in header.splitlines()] + ([""] if header else [])
    for section in SECTIONS:
        table = data.get(section)
        if not table:
            continue
        lines.append(f"[{section}]")
        lines += [f"{key} = {_value(value)}" for key, value in table.items()]
        lines.append("")
    for name in ARRAYS:
        for entry in getattr(sc, name):
            lines += array_entry(name, entry)
            lines.append("")
    return "\n".join(lines)


def array_entry(name: str, entry: BaseModel) -> list[str]:
    """One `[[name]]` table (e.g. an [[expect]] entry) as the lines dump_scenario writes for it."""
    given = entry.model_dump(exclude_defaults=True)
    always = ALWAYS.get(name, ())
    data = {k: given.get(k, v) for k, v in entry.model_dump().items() if k in given or k in always}
    return "\n".join([f"[[{name}]]", *(f"{key} = {_value(value)}" for key, value in data.items())]).splitlines()
