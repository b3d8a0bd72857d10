"""The pace of a live run: how many training steps per second a person watches.

A run in the lab exists to be watched, so it starts at a pace a person can follow: the
scenario's own (`[scenario] pace`: steps per second, a duration for the whole run such
as "30s", or "max"), or else one that makes the whole run last about WATCH_SECONDS.
`+`/`-` move through PACES (1-2-5 steps per decade, then no limit).  Headless runs ignore
the pace: it never changes what a run computes, only when the steps happen.
"""

from __future__ import annotations

import math
import re

WATCH_SECONDS = 30.0  # a default run lasts this long: inside the 20-40 s a lesson can follow
MIN_PACE = 0.5  # steps/s: slower than this, nothing seems to happen
PACES: tuple[float | None, ...] = (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, None)
MAX = None  # no limit: as fast as the machine goes

_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*s\s*$")


def parse_pace(value: float | int | str) -> tuple[str, float | None]:
    """("rate", steps/s), ("duration", seconds) or ("max", None); ValueError says what is accepted."""
    if isinstance(value, bool):
        raise ValueError("pace must be steps per second (20), a duration (\"30s\") or \"max\"")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"pace {value!r} steps/s must be a positive number")
        return "rate", float(value)
    text = str(value).strip().lower()
    if text == "max":
        return "max", None
    m = _DURATION.match(text)
    if m and float(m.group(1)) > 0:
        return "duration", float(m.group(1))
    raise ValueError(f"pace {value!r} is not understood: write steps per second (20), the duration of the whole "
                     f"run (\"30s\") or \"max\"")


def initial_pace(pace: float | str | None, steps: int) -> float | None:
    """Steps per second a live run starts at (None = no limit)."""
    if pace is None:
        return max(MIN_PACE, steps / WATCH_SECONDS)
    kind, amount = parse_pace(pace)
    if kind == "max":
        return None
    if kind == "duration":
        return max(MIN_PACE, steps / amount)
    return amount


def faster(pace: float | None) -> float | None:
    """The next pace up the scale (None = no limit stays None)."""
    if pace is None:
        return None
    return next((p for p in PACES if p is None or p > pace * 1.0001), None)


def slower(pace: float | None) -> float | None:
    """The next pace down the scale; the slowest stays."""
    if pace is None:
        return PACES[-2]
    below = [p for p in PACES if p is not None and p < pace / 1.0001]
    return below[-1] if below else PACES[0]


def describe(pace: float | None) -> str:
    """'20/s', '0.5/s', '1.2k/s' or 'max'."""
    if pace is None:
        return "max"
    if pace >= 1000:
        return f"{pace / 1000:.3g}k/s"
    return f"{pace:.3g}/s"
