"""History as CSV: one row per step, validation columns filled at evaluation steps."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

COLUMNS = ("step", "lr", "loss", "train_acc", "grad_norm", "val_loss", "val_acc")


def write_history_csv(history: dict[str, np.ndarray], path: str | Path) -> int:
    """Write the kept history; return the number of rows.  Step 0 carries the initial evaluation.

    The history is a window of the last steps (a ring buffer): when its first step is not step 1
    the file starts there too, without step 0's row, and the caller says it is a window."""
    val = {int(s): (l, a) for s, l, a in zip(history["val_step"], history["val_loss"], history["val_acc"])}
    rows = []
    whole = history["step"].size == 0 or history["step"][0] <= 1
    if 0 in val and whole:
        rows.append([0, "", "", "", "", *val[0]])
    for i, step in enumerate(history["step"].astype(np.int64)):
        v = val.get(int(step), ("", ""))
        rows.append([int(step), history["lr"][i], history["loss"][i], history["train_acc"][i], history["grad_norm"][i], *v])
    path = Path(path)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        writer.writerows([[repr(float(x)) if isinstance(x, (float, np.floating)) else x for x in row] for row in rows])
    return len(rows)
