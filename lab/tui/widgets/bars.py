"""Histograms as block characters: a row of 40 bins costs microseconds, not plotext's ~10 ms.

Counts are fitted to the columns available (adjacent bins summed when there are fewer
columns than bins, a bin spread over several columns when there are more), then drawn
as column heights with the eighth-blocks ▁..█, over one or more text rows.  `axis`
labels the same columns with values, so a reader sees where 0 and the ends are.
"""

from __future__ import annotations

import numpy as np

BLOCKS = " ▁▂▃▄▅▆▇█"


def column_bins(n: int, width: int) -> np.ndarray:
    """For each of `width` columns, the first bin it shows (width + 1 boundaries, the last = n)."""
    return np.floor(np.arange(width + 1) * n / width).astype(np.int64)


def regroup(counts: np.ndarray, width: int) -> np.ndarray:
    """`counts` fitted to exactly `width` columns: adjacent bins summed when width < bins, each
    bin repeated over its columns when width > bins (so the picture fills the space)."""
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.size
    if n == 0 or width <= 0:
        return np.zeros(max(width, 0))
    if width >= n:
        return counts[np.minimum(np.arange(width) * n // width, n - 1)]
    bounds = column_bins(n, width)
    return np.add.reduceat(counts, bounds[:-1])


def block_rows(counts: np.ndarray, width: int, rows: int = 1, log: bool = False) -> list[str]:
    """`rows` strings of `width` characters (top row first); an empty bin stays blank,
    a non-empty one always shows at least ▁ so a lone outlier is not invisible."""
    values = regroup(counts, width)
    if log:
        values = np.log1p(values)
    out = [[" "] * len(values) for _ in range(rows)]
    peak = values.max() if values.size else 0.0
    if peak > 0:
        eighths = np.ceil(values / peak * rows * 8).astype(np.int64)
        for col, level in enumerate(eighths):
            for r in range(rows):  # r = 0 is the bottom row
                fill = int(min(8, max(0, level - 8 * r)))
                out[rows - 1 - r][col] = BLOCKS[fill]
    pad = width - len(values)
    return ["".join(row) + " " * pad for row in out]


def tick_label(v: float, symlog: bool) -> str:
    """A short, whole label: 0, 1, -5, 0.5, 1e-3, -1e2."""
    if v == 0:
        return "0"
    a = abs(v)
    if symlog or a >= 1e4 or a < 1e-2:
        exponent = int(np.floor(np.log10(a) + 1e-9))
        mantissa = int(round(a / 10.0 ** exponent))
        if mantissa == 10:
            mantissa, exponent = 1, exponent + 1
        body = f"1e{exponent}" if mantissa == 1 else f"{mantissa}e{exponent}"
        return ("-" if v < 0 else "") + body
    return f"{v:g}"


def _candidates(edges: np.ndarray, symlog: bool) -> list[tuple[float, ...]]:
    """Groups of tick values, in the order they are wanted (the ends, zero, then symmetric
    pairs): a group is labelled only if all of it fits, so the axis stays symmetric."""
    lo, hi = float(edges[0]), float(edges[-1])
    groups: list[tuple[float, ...]] = [(lo, hi)]
    if lo < 0 < hi:
        groups.append((0.0,))
    if symlog:
        top = int(np.floor(np.log10(max(abs(lo), abs(hi)))))
        coarse = list(range(top - 3, -10, -3))
        fine = [e for e in range(top - 1, -10, -1) if e not in coarse]
        for e in coarse + fine:
            pair = tuple(v for v in (-(10.0 ** e), 10.0 ** e) if lo < v < hi)
            if pair:
                groups.append(pair)
    else:
        span = hi - lo
        groups += [(lo + span / 2,), (lo + span / 4, lo + 3 * span / 4)]
    seen: list[float] = []
    out = []
    for group in groups:
        group = tuple(v for v in group if all(abs(v - w) > 1e-12 * max(1.0, abs(w)) for w in seen))
        if group:
            seen += group
            out.append(group)
    return out


def axis(edges: np.ndarray, width: int, symlog: bool) -> str:
    """`width` characters of tick labels under a histogram of these bin edges drawn by
    block_rows: each label centred on its value's column, whole (never cut mid-number),
    and at least one space between labels.  The ends are always labelled if they fit."""
    edges = np.asarray(edges, dtype=np.float64)
    if width <= 0:
        return ""
    line = [" "] * width
    taken = np.zeros(width, dtype=bool)
    # a value's place: its fraction along the bins, which are uniform in the (symlog) transform
    to_t = (lambda x: np.sign(x) * np.log10(1 + np.abs(x) / 1e-9)) if symlog else (lambda x: x)  # noqa: E731
    lo_t, hi_t = float(to_t(edges[0])), float(to_t(edges[-1]))
    for group in _candidates(edges, symlog):
        placed = []
        for v in group:
            label = tick_label(v, symlog)
            frac = (float(to_t(v)) - lo_t) / (hi_t - lo_t) if hi_t > lo_t else 0.0
            start = min(max(int(round(frac * width - len(label) / 2)), 0), width - len(label))
            if len(label) > width or taken[max(0, start - 1):start + len(label) + 1].any():
                break  # one space between labels, and a group all or nothing
            placed.append((start, label))
            taken[start:start + len(label)] = True
        else:
            for start, label in placed:
                line[start:start + len(label)] = list(label)
            continue
        for start, label in placed:  # give back what this group took
            taken[start:start + len(label)] = False
    return "".join(line)
