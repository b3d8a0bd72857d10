"""The bundled curriculum: scenario files found by name (`init/xavier-tanh-healthy`) or by path.

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


def short_name(path: Path) -> str:
    """How to show a scenario file or folder so that a user can type it back into `nnlab`:
    its bundled name (`init/xavier-tanh-healthy`, a topic `init`), else the path relative to
    the working directory, else to the home directory (`~/...`), else the path itself."""
    try:
        full = path.resolve()
    except OSError:
        return str(path)
    root = bundled_root()
    try:
        rel = full.relative_to(root.resolve())
    except (ValueError, OSError):
        pass
    else:
        if rel.parts and (full.is_dir() or full.suffix == ".toml"):
            return (rel.with_suffix("") if full.suffix == ".toml" else rel).as_posix()
    for base, prefix in ((Path.cwd, ""), (Path.home, "~/")):
        try:
            return prefix + full.relative_to(base()).as_posix()
        except (ValueError, RuntimeError, OSError):  # not below it, or no home directory
            continue
    return str(path)


def entries_in(folder: Path) -> list[Entry]:
    """The scenarios under a folder (recursed), named as short_name() shows them, grouped by
    the folder that holds each."""
    return [Entry(short_name(f), short_name(f.parent), f) for f in scenario_files([folder])]


def _exists(p: Path) -> bool:
    try:
        return p.exists()
    except OSError as exc:  # e.g. a folder on the way that may not be searched
        raise ScenarioError(str(p), [f"cannot open: {exc.strerror or exc}"]) from None


def resolve(name_or_path: str | Path) -> Path:
    """A scenario path from a path, a bundled name or a bundled topic (its folder);
    ScenarioError (exit 2) if none exists."""
    p = Path(name_or_path)
    if _exists(p):
        return p
    name = str(name_or_path).removesuffix(".toml")
    for entry in bundled():
        if entry.name == name or entry.path.stem == name:
            return entry.path
    topic = bundled_root() / name.strip("/")
    if name.strip("/") in {e.topic for e in bundled()} and topic.is_dir():
        return topic
    names = [e.name for e in bundled()]
    import difflib

    close = difflib.get_close_matches(name, names, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else " (bundled: run `nnlab list`)"
    raise ScenarioError(str(name_or_path), [f"no such file or bundled scenario{hint}"])
