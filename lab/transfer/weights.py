"""Pretrained weights as an .npz: one named array per parameter (W1, b1, ..., W{L}, b{L}, and
gamma{l}/beta{l}/slope{l} where the network has them), as `Network.parameters()` names them,
plus `fingerprint` (the source settings they were trained under) and `source_classes`.

    >>> import numpy as np; f = np.load("source-seed0.npz"); f["W1"].shape
    (64, 100)

Written atomically (lab/files.py): a crash mid-write leaves the old file or the new one.
Read with allow_pickle=False (a file is data, never code) and checked: every array the
network needs present, each of the shape it needs, finite, in a real .npz.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from lab.errors import LabError
from lab.files import write_bytes_atomic

MAX_FILE_BYTES = 1 << 31  # an .npz bigger than 2 GB is not a network this lab could hold
META = ("fingerprint", "source_classes")


def save_weights(path: Path | str, params: dict[str, np.ndarray], *, fingerprint: str = "",
                 source_classes: list[int] | tuple[int, ...] = ()) -> Path:
    """Write `params` (name -> array) and the metadata to `path` atomically; return the path."""
    buf = io.BytesIO()
    arrays = {name: np.ascontiguousarray(value) for name, value in params.items()}
    np.savez(buf, **arrays, fingerprint=np.array(fingerprint),
             source_classes=np.asarray(list(source_classes), dtype=np.int64))
    return write_bytes_atomic(path, buf.getvalue())


def read_fingerprint(path: Path | str) -> str:
    """The fingerprint an .npz this lab wrote records ("" for a file made elsewhere); LabError if the
    file is not a readable .npz."""
    return load_weights(path, {})[1]


def load_weights(path: Path | str, shapes: dict[str, tuple[int, ...]]) -> tuple[dict[str, np.ndarray], str]:
    """The arrays named in `shapes` from the .npz at `path`, checked, and its fingerprint ("" if it
    has none: a file made elsewhere).  Any problem raises LabError naming the file and what is
    wrong (missing arrays, wrong shapes, not an .npz)."""
    path = Path(path)
    where = f"{path}"
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise LabError(f"{where}: cannot read the pretrained weights: {exc.strerror or exc}") from None
    if not path.is_file():
        raise LabError(f"{where}: not a file (pretrained weights are an .npz file)")
    if size > MAX_FILE_BYTES:
        raise LabError(f"{where}: {size:,} bytes is too big for pretrained weights")
    if not zipfile.is_zipfile(path):
        raise LabError(f"{where}: not an .npz file (an .npz is a zip of .npy arrays: save one with "
                       "numpy.savez(path, W1=..., b1=..., ...))")
    try:
        with np.load(path, allow_pickle=False) as f:
            names = set(f.files)
            missing = [n for n in shapes if n not in names]
            if missing:
                raise LabError(f"{where}: missing array(s) {', '.join(missing)}: the network needs "
                               f"{', '.join(shapes)} (found {', '.join(sorted(names)) or 'none'})")
            out = {}
            for name, shape in shapes.items():
                value = f[name]
                if value.shape != tuple(shape):
                    raise LabError(f"{where}: {name} has shape {value.shape}, the network needs {tuple(shape)} "
                                   "(was it pretrained with other hidden sizes, inputs or classes?)")
                if value.dtype.kind not in "fiu":
                    raise LabError(f"{where}: {name} holds {value.dtype}, not numbers")
                value = value.astype(np.float64) if value.dtype.kind in "iu" else value
                if not np.all(np.isfinite(value)):
                    raise LabError(f"{where}: {name} holds non-finite values (inf or nan)")
                out[name] = value
            fingerprint = str(f["fingerprint"]) if "fingerprint" in names and f["fingerprint"].ndim == 0 else ""
    except LabError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise LabError(f"{where}: not a readable .npz file: {exc}") from None
    return out, fingerprint
