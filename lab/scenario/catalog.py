"""The bundled curriculum: scenario files found by name (`init/xavier-tanh`) or by path.

In a source checkout the files are in `scenarios/` at the top of the repository; the
wheel ships the same folder as the package `lab.scenarios` (see pyproject.toml).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lab.errors import ScenarioError


def bundled_root() -> Path:
    """Where the bundled scenarios live (source checkout or installed wheel)."""
    try:
        import lab.scenarios as pkg  # the wheel (and editable installs) map scenarios/ here

        return Path(next(iter(pkg.__path__)))
    except ImportError:
        return Path(__file__).resolve().parents[2] / "scenarios"


@dataclass(frozen=True)
class Entry:
    name: str  # "topic/stem"
    topic: str
    path: Path


def scenario_files(paths: list[Path]) -> list[Path]:
    """Every .toml under the given files and folders (folders recursed), sorted."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*.toml") if q.is_file()))
        else:
            out.append(p)
    return out


def bundled(root: Path | None = None) -> list[Entry]:
    root = root or bundled_root()
    entries = []
    for path in scenario_files([root]) if root.exists() else []:
        rel = path.relative_to(root).with_suffix("")
        topic = rel.parts[0] if len(rel.parts) > 1 else "misc"
        entries.append(Entry(rel.as_posix(), topic, path))
    return entries


def resolve(name_or_path: str | Path) -> Path:
    """A scenario path from a path or a bundled name; ScenarioError (exit 2) if neither exists."""
    p = Path(name_or_path)
    if p.exists():
        return p
    name = str(name_or_path).removesuffix(".toml")
    for entry in bundled():
        if entry.name == name or entry.path.stem == name:
            return entry.path
    names = [e.name for e in bundled()]
    import difflib

    close = difflib.get_close_matches(name, names, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else f" (bundled: run `nnlab list`)"
    raise ScenarioError(str(name_or_path), [f"no such file or bundled scenario{hint}"])
