"""Histograms as block characters: a row of 40 bins costs microseconds, not plotext's ~10 ms.

Counts are regrouped to the columns available (adjacent bins summed), then drawn as
column heights with the eighth-blocks ▁..█, over one or more text rows.
"""

from __future__ import annotations

import numpy as np

BLOCKS = " ▁▂▃▄▅▆▇█"


def regroup(counts: np.ndarray, width: int) -> np.ndarray:
    """Sum adjacent bins so that `counts` fits `width` columns (never more columns than bins)."""
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.size
    if width >= n or n == 0:
        return counts
    starts = np.linspace(0, n, width, endpoint=False).astype(np.int64)
    return np.add.reduceat(counts, starts)


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
