"""The search space: one axis per searched setting, and the pure functions on it.

An axis is written as text, in the scenario file and on the command line alike:

    log:1e-4:1        log-uniform between 1e-4 and 1 (sampled uniformly in log10 space)
    linear:0:0.5      uniform between 0 and 0.5
    int:16:256        uniform integers 16 .. 256 (both ends included)
    choice:relu,tanh  one of the listed values (numbers, true/false or names)

Everything here is pure (no processes, no files): sampling (grid and random), narrowing
around the best trials of a stage, the border check and the derived seeds, so the CLI,
the TUI and the tests share one definition.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Iterable, Literal, Sequence

import numpy as np

from lab import vocabulary as V
from lab.errors import finite_number

AXIS_KINDS = V.SEARCH_AXIS_KINDS  # log | linear | int | choice
SAMPLINGS = V.SEARCH_SAMPLINGS  # random | grid
AxisKind = Literal[AXIS_KINDS]  # type: ignore[valid-type]
BORDER = 0.10  # a best value in the outer 10% of its axis is "on the border"
MAX_SEED = 2**31 - 1

# keys a variant's `set` accepts that a search cannot vary: tables, lists other than `hidden`,
# the training length (a stage's own) and one-off actions
NOT_SEARCHABLE = frozenset({"schedule", "augment", "preprocess", "scale", "reinit", "steps"})

Value = float | int | str | bool


def searchable() -> tuple[str, ...]:
    """The parameter names a search may vary: a variant's `set` keys, less the tables."""
    from lab.scenario.schema import VariantChanges  # the schema imports this module

    return tuple(k for k in VariantChanges.model_fields if k not in NOT_SEARCHABLE)


def _check_value(name: str, value: Value) -> Value:
    """`value` as the scenario accepts it for `name`, or ValueError saying why not."""
    from pydantic import ValidationError

    from lab.scenario.schema import VariantChanges

    given = {name: [value] if name == "hidden" else value}
    try:
        VariantChanges(**given)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ValueError(f"{_fmt(value)} is not a valid {name} ({err['msg'].lower()})") from None
    return value


def _integer_field(name: str) -> bool:
    from lab.scenario.schema import VariantChanges

    if name == "hidden":
        return True
    ann = VariantChanges.model_fields[name].annotation
    return int in getattr(ann, "__args__", (ann,)) and float not in getattr(ann, "__args__", (ann,))


def _fmt(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _short(f"{value:.4g}")
    return str(value)


def _short(text: str) -> str:
    """1e-05 -> 1e-5, 1e+06 -> 1e6: numbers as a person writes them in a range."""
    mantissa, e, exponent = text.partition("e")
    return f"{mantissa}e{int(exponent)}" if e else text


def bound_text(x: float) -> str:
    """A range's end: powers of ten as 1e-4 (but 1, 10, 100, 1000 as such), others to 6 digits."""
    if x > 0:
        exp = math.log10(x)
        if abs(exp - round(exp)) < 1e-9 and not 0 <= round(exp) <= 3:
            return f"1e{round(exp)}"
    return _short(f"{x:.6g}")


def _choice_value(text: str) -> Value:
    t = text.strip()
    if t in ("true", "false"):
        return t == "true"
    for kind in (int, float):
        try:
            return kind(t)
        except ValueError:
            pass
    return t


@dataclass(frozen=True)
class Axis:
    """One searched setting: its name, its kind and its range (or its choices)."""

    name: str
    kind: AxisKind
    low: float = 0.0
    high: float = 0.0
    choices: tuple[Value, ...] = ()
    integer: bool = False  # the setting takes integers (batch_size, hidden): values are rounded

    def __str__(self) -> str:
        if self.kind == "choice":
            return "choice:" + ",".join(_fmt(c) for c in self.choices)
        if self.kind == "int":
            return f"int:{int(self.low)}:{int(self.high)}"
        return f"{self.kind}:{bound_text(self.low)}:{bound_text(self.high)}"

    # -- scale ------------------------------------------------------------------------------------
    def _scaled(self, value: float) -> float:
        return math.log10(value) if self.kind == "log" else float(value)

    def _unscaled(self, x: float) -> float:
        return 10.0 ** x if self.kind == "log" else x

    def position(self, value: Value) -> float:
        """Where `value` lies on the axis, 0 (low) .. 1 (high), in the axis's own scale (log axes in
        log space; a choice by its place in the list)."""
        if self.kind == "choice":
            i = self.choices.index(value) if value in self.choices else 0
            return 0.5 if len(self.choices) == 1 else i / (len(self.choices) - 1)
        lo, hi = self._scaled(self.low), self._scaled(self.high)
        if hi == lo:
            return 0.5
        return (self._scaled(float(value)) - lo) / (hi - lo)

    def value_at(self, u: float) -> Value:
        """The value at position u in [0, 1] (the inverse of `position`)."""
        if self.kind == "choice":
            i = min(int(u * len(self.choices)), len(self.choices) - 1)
            return self.choices[i]
        if self.kind == "int":
            lo, hi = int(self.low), int(self.high)
            return min(lo + int(u * (hi - lo + 1)), hi)
        lo, hi = self._scaled(self.low), self._scaled(self.high)
        value = self._unscaled(lo + u * (hi - lo))
        value = min(max(value, self.low), self.high)  # 10**log10(x) may miss x by an ulp
        return int(round(value)) if self.integer else float(value)

    def grid(self, points: int) -> list[Value]:
        """`points` values evenly spaced in the axis's scale, ends included (all choices; at most
        every integer of an int axis)."""
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int":
            lo, hi = int(self.low), int(self.high)
            n = min(points, hi - lo + 1)
            return list(dict.fromkeys(int(round(v)) for v in np.linspace(lo, hi, n)))
        if points == 1:
            return [self.value_at(0.5)]
        values = [self.value_at(i / (points - 1)) for i in range(points)]
        return list(dict.fromkeys(values))

    def grid_size(self, points: int) -> int:
        if self.kind == "choice":
            return len(self.choices)
        if self.kind == "int":
            return min(points, int(self.high) - int(self.low) + 1)
        return points

    def sample(self, rng: np.random.Generator) -> Value:
        """One value drawn uniformly in the axis's scale (log-uniform for log axes)."""
        if self.kind == "choice":
            return self.choices[int(rng.integers(len(self.choices)))]
        if self.kind == "int":
            return int(rng.integers(int(self.low), int(self.high) + 1))
        return self.value_at(float(rng.random()))


def parse_axis(name: str, text: str) -> Axis:
    """The axis `text` describes for the setting `name`, or ValueError saying what is expected."""
    names = searchable()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown parameter {name!r}{hint} (searchable: {', '.join(names)})")
    if not isinstance(text, str):
        raise ValueError(f"expected a string such as \"log:1e-4:1\", found {text!r}")
    kind, _, rest = text.strip().partition(":")
    if kind not in AXIS_KINDS:
        raise ValueError(f"{text!r}: expected KIND:LOW:HIGH or choice:A,B,... with KIND one of "
                         f"{', '.join(AXIS_KINDS)} (e.g. \"log:1e-4:1\")")
    integer = _integer_field(name)
    if kind == "choice":
        choices = tuple(dict.fromkeys(_choice_value(c) for c in rest.split(",") if c.strip()))
        if not choices:
            raise ValueError(f"{text!r}: a choice needs at least one value, e.g. \"choice:relu,tanh\"")
        if len(choices) > 1000:
            raise ValueError(f"{text!r}: at most 1000 choices")
        for c in choices:
            _check_value(name, float(c) if isinstance(c, int) and not isinstance(c, bool) and not integer else c)
        choices = tuple(float(c) if isinstance(c, int) and not isinstance(c, bool) and not integer else c
                        for c in choices)
        return Axis(name, "choice", choices=choices, integer=integer)
    parts = rest.split(":")
    if len(parts) != 2:
        raise ValueError(f"{text!r}: expected {kind}:LOW:HIGH, e.g. \"{kind}:{'1e-4:1' if kind == 'log' else '0:1'}\"")
    low, high = finite_number(parts[0], "low"), finite_number(parts[1], "high")
    if kind == "log" and low <= 0:
        raise ValueError(f"{text!r}: a log axis needs 0 < low < high (log of {low:g} is undefined)")
    if low >= high:
        raise ValueError(f"{text!r}: low must be below high (found low {low:g} >= high {high:g})")
    if kind == "int":
        if not integer and name != "hidden":
            raise ValueError(f"{text!r}: {name} is not a whole number; use log or linear")
        if low != int(low) or high != int(high):
            raise ValueError(f"{text!r}: an int axis needs whole numbers")
    for bound in (low, high):
        _check_value(name, int(bound) if integer else bound)
    if integer and kind == "log" and int(round(high)) - int(round(low)) < 1:
        raise ValueError(f"{text!r}: {name} takes whole numbers; the range holds only one")
    return Axis(name, kind, float(low), float(high), integer=integer)  # type: ignore[arg-type]


# -- sampling -------------------------------------------------------------------------------------------

def stage_rng(seed: int, stage: int) -> np.random.Generator:
    """The generator that samples stage `stage` of a search whose scenario seed is `seed`."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(0x5EA2C4, stage)))


def trial_seed(seed: int, index: int) -> int:
    """The scenario seed trial `index` trains with: derived from the scenario's `seed`, so a search
    is reproducible, and different for each trial."""
    state = np.random.SeedSequence(entropy=seed, spawn_key=(0x7121A1, index)).generate_state(1, np.uint32)
    return int(state[0]) & MAX_SEED


def grid_points(axes: Sequence[Axis], trials: int) -> int:
    """Points per continuous axis so the full grid has at most `trials` points (at least 2)."""
    fixed = math.prod(a.grid_size(1 << 30) for a in axes if a.kind in ("choice",))
    free = [a for a in axes if a.kind != "choice"]
    if not free:
        return 1
    k = 2
    while math.prod(a.grid_size(k + 1) for a in free) * fixed <= trials and k < 1_000_000:
        if all(a.grid_size(k + 1) == a.grid_size(k) for a in free):
            break  # every int axis is exhausted
        k += 1
    return k


def grid_size(axes: Sequence[Axis], points: int) -> int:
    return math.prod(a.grid_size(points) for a in axes)


def sample(axes: Sequence[Axis], sampling: str, trials: int, rng: np.random.Generator,
           points: int | None = None) -> list[dict[str, Value]]:
    """The settings of one stage: `trials` random draws, or the full grid (`points` values per
    continuous axis, by default as many as keep the grid within `trials`)."""
    if sampling == "grid":
        k = points if points is not None else grid_points(axes, trials)
        out: list[dict[str, Value]] = [{}]
        for axis in axes:
            out = [{**row, axis.name: v} for row in out for v in axis.grid(k)]
        return out
    return [{axis.name: axis.sample(rng) for axis in axes} for _ in range(trials)]


# -- narrowing and the border ---------------------------------------------------------------------------

def narrow(axis: Axis, values: Iterable[Value], margin: float = 0.25) -> Axis:
    """`axis` narrowed around `values` (the top trials' values): their span in the axis's scale,
    widened by `margin` of that span on each side (at least 5% of the old width), within the old
    range.  A choice keeps the choices the top trials used."""
    values = list(values)
    if not values:
        return axis
    if axis.kind == "choice":
        kept = tuple(c for c in axis.choices if c in values)
        return Axis(axis.name, "choice", choices=kept or axis.choices, integer=axis.integer)
    pos = [axis.position(v) for v in values]
    lo, hi = min(pos), max(pos)
    pad = max(margin * (hi - lo), 0.05)
    lo, hi = max(0.0, lo - pad), min(1.0, hi + pad)
    if axis.kind == "log":
        a, b = math.log10(axis.low), math.log10(axis.high)
        new_low, new_high = 10 ** (a + lo * (b - a)), 10 ** (a + hi * (b - a))
    else:
        new_low, new_high = axis.low + lo * (axis.high - axis.low), axis.low + hi * (axis.high - axis.low)
    new_low, new_high = max(new_low, axis.low), min(new_high, axis.high)
    if axis.kind == "int" or axis.integer:
        new_low, new_high = math.floor(new_low), math.ceil(new_high)
        if new_high <= new_low:
            new_high = min(new_low + 1, axis.high)
            new_low = new_high - 1
    return Axis(axis.name, axis.kind, float(new_low), float(new_high), integer=axis.integer)


def border_side(axis: Axis, value: Value, border: float = BORDER) -> str | None:
    """"low" or "high" when `value` lies in the outer `border` of the axis (in its scale), else None.
    Choices have no border."""
    if axis.kind == "choice":
        return None
    if axis.kind == "int" and int(axis.high) - int(axis.low) < 2:
        return None  # every value of a two-point axis is an end
    p = axis.position(value)
    if p <= border:
        return "low"
    if p >= 1.0 - border:
        return "high"
    return None


def border_warnings(axes: Sequence[Axis], best_params: dict[str, Value], border: float = BORDER) -> list[str]:
    """One line per parameter whose best value lies in the outer 10% of its range, naming the side
    to extend (the notes' "careful with best values on border")."""
    out = []
    for axis in axes:
        if axis.name not in best_params:
            continue
        value = best_params[axis.name]
        side = border_side(axis, value, border)
        if side is None:
            continue
        edge, way = ("bottom", "downward") if side == "low" else ("top", "upward")
        out.append(f"{axis.name}: best {_fmt(value)} is at the {edge} edge of {axis} — extend the range {way} "
                   "(the best may lie outside it)")
    return out
