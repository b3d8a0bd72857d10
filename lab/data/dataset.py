"""``generate`` raw data, ``load_data`` = generate -> seeded split -> preprocess.

Determinism: ``generate`` draws from ``np.random.default_rng(seed)`` and the split
from ``np.random.default_rng([seed, 1])``, an independent stream. Keeping them apart
means that the raw rows do not depend on ``val_fraction`` and that switching the
preprocessing never changes which rows land in train or val, so runs that differ only
in preprocessing are comparable row for row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from lab import vocabulary as V

from .preprocess import Preprocessor
from .real import REAL_KINDS, load_real
from .synthetic import GENERATORS

DATA_KINDS = V.names(V.DATA_KINDS)
assert set(DATA_KINDS) == set(GENERATORS) | set(REAL_KINDS)


@dataclass(frozen=True, eq=False)   # eq=False: == on numpy arrays is elementwise
class Dataset:
    """A preprocessed train/val split, ready for training.

    ``image_shape`` is (C, H, W) when rows are flattened images (digits: (1, 8, 8));
    it becomes None when ``pca``/``whiten`` turned the rows into something else.
    ``preprocessor`` is the one fitted on the training rows, so callers can apply it
    to new points (e.g. a decision-boundary grid) or inspect its statistics.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    n_classes: int
    image_shape: tuple[int, int, int] | None
    name: str
    preprocessor: Preprocessor


def _check_kind(kind: str) -> None:
    if kind not in DATA_KINDS:
        raise ValueError(f"unknown data kind {kind!r}; allowed: {', '.join(DATA_KINDS)}")


def generate(kind: str, n: int, classes: int, noise: float, dim: int, seed: int):
    """Raw data before split/preprocessing: ``(X (n, D) float64, y int64, n_classes, image_shape)``.

    Synthetic kinds return exactly n rows; see each generator in ``synthetic.py`` for
    which of classes/noise/dim it honours. Real sets ignore classes, noise and dim and
    use all rows unless n is smaller (then a seeded subsample of n rows).
    """
    _check_kind(kind)
    n, classes, dim = int(n), int(classes), int(dim)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    if kind in REAL_KINDS:
        return load_real(kind, n, rng)
    fn, honours_classes = GENERATORS[kind]
    if honours_classes and classes < 2:
        raise ValueError(f"{kind!r} needs classes >= 2, got {classes}")
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    X, y, n_classes = fn(n, classes, float(noise), dim, rng)
    return np.ascontiguousarray(X, np.float64), np.ascontiguousarray(y, np.int64), n_classes, None


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train_idx, val_idx); val gets round(val_fraction * n) rows, train >= 1."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    perm = np.random.default_rng([seed, 1]).permutation(n)
    n_val = min(int(round(val_fraction * n)), n - 1)
    return perm[n_val:], perm[:n_val]


def load_data(kind: str = V.default(V.DATA_KINDS), n: int = 600, classes: int = 3, noise: float = 0.2,
              dim: int = 2, preprocess: Sequence[str] = (), val_fraction: float = 0.2,
              seed: int = 0, pca_components: int | None = None, shift: float = 0.0,
              scale: float | Sequence[float] = 1.0) -> Dataset:
    """Generate, distort, split (seeded permutation, not stratified) and preprocess a data set.

    ``scale`` (one factor, or one per feature) and ``shift`` make raw data badly scaled
    and off-centre: x * scale + shift, before the split, so preprocessing sees the same
    distortion a real data set would have.  The preprocessor is fitted on the training
    rows only and applied to both sets.  Same arguments give bit-identical arrays.
    """
    _check_kind(kind)
    pre = Preprocessor(preprocess, pca_components=pca_components)   # validate steps first
    X, y, n_classes, image_shape = generate(kind, n, classes, noise, dim, seed)
    factors = np.asarray(scale, dtype=np.float64)
    if factors.ndim == 1 and factors.size != X.shape[1]:
        raise ValueError(f"scale has {factors.size} factors but the data has {X.shape[1]} features")
    X = X * factors + float(shift)
    pre = Preprocessor(pre.steps, pca_components=pca_components, image_shape=image_shape)
    tr, va = split_indices(len(X), val_fraction, seed)
    X_train = pre.fit_transform(X[tr])
    X_val = pre.transform(X[va])
    return Dataset(
        X_train=X_train, y_train=np.ascontiguousarray(y[tr]),
        X_val=X_val, y_val=np.ascontiguousarray(y[va]),
        n_classes=int(n_classes), image_shape=pre.output_image_shape,
        name=kind, preprocessor=pre,
    )
