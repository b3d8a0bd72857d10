"""Small real data sets, read from the files scikit-learn ships with its wheel.

Only the ``load_*`` functions are used: they read bundled files, so the lab never
touches the network (``fetch_*`` would download). sklearn is imported lazily because
it costs about a second, which synthetic-only runs should not pay.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from lab import vocabulary as V

# name -> (sklearn loader name, image_shape), from the vocabulary's real data kinds
_SOURCES = {k.name: (k.loader, k.image_shape) for k in V.DATA_KINDS if k.source == "real"}

REAL_KINDS = tuple(_SOURCES)


@lru_cache(maxsize=None)
def _load_cached(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse a bundled file once per process (digits' csv parse is not free)."""
    import sklearn.datasets as skd

    X, y = getattr(skd, _SOURCES[kind][0])(return_X_y=True)
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.int64)
    X.flags.writeable = False   # the cache is shared: guard it against callers
    y.flags.writeable = False
    return X, y


def load_real(kind: str, n: int, rng: np.random.Generator):
    """Return ``(X, y, n_classes, image_shape)`` for a bundled data set.

    All rows are used unless ``n`` is smaller than the set, in which case a seeded
    subsample of ``n`` rows (drawn from ``rng``, kept in file order) is returned -
    handy for quick runs and for "less data" experiments. digits keeps its pixel
    values 0..16 as float64; rows are the flattened (1, 8, 8) image.
    """
    X, y = _load_cached(kind)
    if n < len(X):
        idx = np.sort(rng.permutation(len(X))[:n])
        X, y = X[idx], y[idx]
    else:
        X, y = X.copy(), y.copy()
    n_classes = int(_load_cached(kind)[1].max()) + 1   # from the full set, not the subsample
    return X, y, n_classes, _SOURCES[kind][1]
