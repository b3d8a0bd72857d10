"""Load a scenario TOML file into a validated Scenario, or raise ScenarioError."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ValidationError

from lab.errors import ScenarioError

from .schema import Scenario


def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(str(path), [f"cannot read the file: {exc}"]) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(str(path), [f"TOML syntax error: {exc}"]) from None
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        problems = [f"{_dotted(e['loc'])}: {e['msg']} (found {e.get('input')!r})" for e in exc.errors()]
        raise ScenarioError(str(path), problems) from None
