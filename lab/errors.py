"""Errors a user can act on, and the exit codes that are part of the CLI's API."""

from __future__ import annotations

import math
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    CHECK_FAILED = 1
    USAGE = 2  # invalid input: a bad scenario file, a bad option
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)


class LabError(Exception):
    """An error caused by the user's input, reported without a traceback."""


class ScenarioError(LabError):
    def __init__(self, path: str, problems: list[str]):
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))

    def __str__(self) -> str:
        lines = [f"{self.path}: {len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


def clip(text: str, limit: int = 80) -> str:
    """`text`, or its start and a note of its length when it is longer than `limit` characters:
    a message quotes the user's values, and a 5 MB value must not become a 5 MB message."""
    if len(text) <= limit:
        return text
    return f"{text[:max(limit - 20, 10)]}... ({len(text):,} characters)"


def finite_number(text: str, what: str) -> float:
    """`text` as a finite float, or a ValueError saying which value (`what`) is not one."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what} {clip(repr(text))} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{what} {clip(repr(text))} is not a finite number")
    return value
