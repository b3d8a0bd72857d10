"""Write a Scenario back to TOML (the TUI's "save as scenario").

Only values that differ from the schema's defaults are written, so a saved session reads
like a hand-written file; floats are written with repr, which round-trips exactly, so
the saved file replays the session bit for bit.
"""

from __future__ import annotations

import datetime
from typing import Any

from pydantic import BaseModel

from lab.errors import clip

from .schema import Scenario

SECTIONS = ("scenario", "data", "model", "train")
ARRAYS = ("events", "variants", "expect")
ALWAYS = {"expect": ("op",)}  # written even at their default: a claim reads wrong without its comparison


def toml_value(v: Any, room: int | None = None) -> str:
    """A value's TOML spelling.  With `room` (for messages: one line, cut short), arrays and tables
    stop once about `room` characters are written, a huge integer is described, a multi-line string
    stays on one line and an unknown type is shown with repr; without it, the exact spelling."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        if "\n" in v and room is None:
            return '"""\n' + v.replace("\\", "\\\\").replace('"""', '\\"\\"\\"') + '"""'
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple, dict)):
        if not v:
            return "{}" if isinstance(v, dict) else "[]"
        items = v.items() if isinstance(v, dict) else enumerate(v)
        parts, used = [], 0
        for k, x in items:
            if room is not None and used > room:
                parts.append(f"... ({len(v):,} items)")
                break
            inner = toml_value(x) if room is None else clip(toml_value(x, room - used), max(room - used, 12))
            key = k if room is None else clip(str(k), 40)
            parts.append(f"{key} = {inner}" if isinstance(v, dict) else inner)
            used += len(parts[-1]) + 2
        return "{ " + ", ".join(parts) + " }" if isinstance(v, dict) else "[" + ", ".join(parts) + "]"
    if isinstance(v, (datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, int):
        return f"an integer of {len(str(abs(v)))} digits" if room is not None and abs(v) >= 10**40 else str(v)
    if isinstance(v, float):
        return repr(v)  # round-trips exactly; nan, inf and -inf are TOML's spellings too
    if room is None:
        raise TypeError(f"cannot write {type(v).__name__} to TOML")
    return repr(v)


def dump_scenario(sc: Scenario, header: str = "") -> str:
    data = sc.model_dump(exclude_defaults=True)
    lines = [f"# {line}".rstrip() for line in header.splitlines()] + ([""] if header else [])
    for section in SECTIONS:
        table = data.get(section)
        if not table:
            continue
        lines.append(f"[{section}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in table.items()]
        lines.append("")
    if sc.transfer is not None:  # written even when every key is at its default: it makes the run a transfer
        lines += ["[transfer]", *(f"{k} = {toml_value(v)}" for k, v in
                                  sc.transfer.model_dump(exclude_defaults=True).items()), ""]
    for name in ARRAYS:
        for entry in getattr(sc, name):
            lines += array_entry(name, entry)
            lines.append("")
    if sc.search is not None:
        lines += search_tables(sc.search)
    if sc.ensemble is not None:
        lines += ensemble_tables(sc.ensemble)
    return "\n".join(lines)


def ensemble_tables(ensemble) -> list[str]:
    """[ensemble] (written even when every key is at its default: it makes the scenario an
    ensemble), and each listed member as an [[ensemble.members]] table."""
    given = ensemble.model_dump(exclude_defaults=True)
    listed = isinstance(ensemble.members, list)
    lines = ["[ensemble]", *(f"{k} = {toml_value(v)}" for k, v in given.items() if not (listed and k == "members")),
             ""]
    for member in ensemble.members if listed else ():
        lines += ["[[ensemble.members]]", *(f"{k} = {toml_value(v)}" for k, v in
                                            member.model_dump(exclude_defaults=True).items()), ""]
    return lines


def search_tables(search) -> list[str]:
    """[search], [search.params] and each [[search.stages]], as a person would write them."""
    given = search.model_dump(exclude_defaults=True)
    lines = ["[search]", *(f"{k} = {toml_value(v)}" for k, v in given.items() if k not in ("params", "stages")), ""]
    lines += ["[search.params]", *(f"{k} = {toml_value(v)}" for k, v in search.param_texts().items()), ""]
    for stage in search.stages:
        lines += ["[[search.stages]]", *(f"{k} = {toml_value(v)}" for k, v in stage.model_dump(exclude_defaults=True)
                                         .items()), ""]
    return lines


def array_entry(name: str, entry: BaseModel) -> list[str]:
    """One `[[name]]` table (e.g. an [[expect]] entry) as the lines dump_scenario writes for it."""
    given = entry.model_dump(exclude_defaults=True)
    always = ALWAYS.get(name, ())
    data = {k: given.get(k, v) for k, v in entry.model_dump().items() if k in given or k in always}
    return "\n".join([f"[[{name}]]", *(f"{key} = {toml_value(value)}" for key, value in data.items())]).splitlines()
