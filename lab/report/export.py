"""A run as CSV, two files written side by side (each atomically: a temporary file in the
same folder, then os.replace, so a reader never sees half a file):

- the history, `NAME.csv`: one row per step, validation columns filled at evaluation steps;
- the per-layer statistics over time, `NAME-layers.csv` (`layers_path`), in long format:
  one row per recorded step and layer, `step, layer, kind, width` and one column per
  per-layer metric (lab.metrics.LAYER_METRICS), at every step of `Snapshot.layer_frames`:
  the timeline's records, and the Snapshot's own statistics when they are newer.
"""

from __future__ import annotations

import csv
import os
import uuid
from pathlib import Path

import numpy as np

from lab import vocabulary as V
from lab.metrics import EVAL_SERIES_METRICS, LAYER_METRICS, STEP_SERIES_METRICS
from lab.sim.snapshot import Snapshot

COLUMNS = ("step", *STEP_SERIES_METRICS, *EVAL_SERIES_METRICS)
LAYER_COLUMNS = ("step", "layer", "kind", "width", *LAYER_METRICS)


def _cell(x):
    return repr(float(x)) if isinstance(x, (float, np.floating)) else x


def _write_rows(path: str | Path, header, rows) -> None:
    """Write a CSV atomically: a temporary file beside `path`, renamed over it when complete."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with tmp.open("x", newline="") as fh:  # created with the usual permissions (mkstemp's are 0600)
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows([[_cell(x) for x in row] for row in rows])
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_history_csv(history: dict[str, np.ndarray], path: str | Path) -> int:
    """Write the kept history; return the number of rows.  Step 0 carries the initial evaluation.

    The history is a window of the last steps (a ring buffer): when its first step is not step 1
    the file starts there too, without step 0's row, and the caller says it is a window."""
    val = {int(s): v for s, *v in zip(history[V.VAL_STEP], *(history[m] for m in EVAL_SERIES_METRICS))}
    rows = []
    whole = history["step"].size == 0 or history["step"][0] <= 1
    if 0 in val and whole:
        rows.append([0, *([""] * len(STEP_SERIES_METRICS)), *val[0]])
    for i, step in enumerate(history["step"].astype(np.int64)):
        v = val.get(int(step), [""] * len(EVAL_SERIES_METRICS))
        rows.append([int(step), *(history[m][i] for m in STEP_SERIES_METRICS), *v])
    _write_rows(path, COLUMNS, rows)
    return len(rows)


def write_layers_csv(snap: Snapshot, path: str | Path) -> int:
    """Write every layer's statistics at every recorded step; return the number of rows."""
    rows = [[step, s.index, s.kind, s.width, *(s.metric(m) for m in LAYER_METRICS)]
            for step, layers in snap.layer_frames() for s in layers]
    _write_rows(path, LAYER_COLUMNS, rows)
    return len(rows)


def layers_path(path: str | Path) -> Path:
    """Where the per-layer file of history file `path` goes: `X-history.csv` -> `X-layers.csv`,
    `X.csv` -> `X-layers.csv`."""
    path = Path(path)
    return path.with_name(f"{path.stem.removesuffix('-history')}-layers{path.suffix}")


def write_run_csv(snap: Snapshot, path: str | Path) -> tuple[tuple[Path, int], tuple[Path, int]]:
    """Both files of a run: ((history path, rows), (per-layer path, rows))."""
    path = Path(path)
    history_rows = write_history_csv(snap.history, path)
    layers = layers_path(path)
    return (path, history_rows), (layers, write_layers_csv(snap, layers))
