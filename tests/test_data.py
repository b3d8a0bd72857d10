"""Tests for lab.data: generators, real sets, split and preprocessing.

Expected values are recomputed independently (np.cov, eigvalsh, explicit formulas)
rather than read back from the implementation.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lab.data import (DATA_KINDS, PREPROCESS_STEPS, Dataset, Preprocessor, generate,
                      load_data)

SYNTHETIC = ("spiral", "circles", "moons", "xor", "gaussians", "checkerboard",
             "positive-blobs", "random-normal", "parts")
REAL = ("digits", "iris", "wine", "breast-cancer")
# (rows, features, classes) of the bundled sets, from the sklearn docs
REAL_SIZES = {"digits": (1797, 64, 10), "iris": (150, 4, 3), "wine": (178, 13, 3),
              "breast-cancer": (569, 30, 2)}
TWO_CLASS = ("circles", "moons", "xor", "checkerboard")


def cov(X):
    return np.cov(X, rowvar=False, bias=True).reshape(X.shape[1], X.shape[1])


def expected_shape(kind, n, classes, dim):
    if kind in REAL:
        rows, d, c = REAL_SIZES[kind]
        return min(n, rows), d, c
    d = dim if kind in ("random-normal", "gaussians", "positive-blobs", "parts") else 2
    c = 2 if kind in TWO_CLASS else classes
    return n, d, c


def test_kind_lists():
    assert set(DATA_KINDS) == set(SYNTHETIC) | set(REAL)
    assert PREPROCESS_STEPS == ("center", "normalize", "pca", "whiten")


# --------------------------------------------------------------------------- every kind
@pytest.mark.parametrize("kind", DATA_KINDS)
@pytest.mark.parametrize("n,classes,dim", [(400, 3, 2), (5000, 4, 3)])
def test_shapes_dtypes_labels(kind, n, classes, dim):
    ds = load_data(kind, n=n, classes=classes, dim=dim, val_fraction=0.25, seed=1)
    rows, d, c = expected_shape(kind, n, classes, dim)
    assert isinstance(ds, Dataset) and ds.name == kind
    assert ds.n_classes == c
    assert ds.X_train.shape[1] == ds.X_val.shape[1] == d
    assert len(ds.X_train) + len(ds.X_val) == rows
    assert len(ds.X_val) == round(0.25 * rows)
    assert len(ds.y_train) == len(ds.X_train) and len(ds.y_val) == len(ds.X_val)
    for X in (ds.X_train, ds.X_val):
        assert X.dtype == np.float64 and X.flags.c_contiguous and X.ndim == 2
        assert np.isfinite(X).all()
    for y in (ds.y_train, ds.y_val):
        assert y.dtype == np.int64 and y.ndim == 1
        assert y.min() >= 0 and y.max() < c
    y_all = np.concatenate((ds.y_train, ds.y_val))
    assert np.array_equal(np.unique(y_all), np.arange(c))   # every class present
    assert ds.image_shape == ((1, 8, 8) if kind == "digits" else None)
    assert ds.preprocessor.output_dim == d


@pytest.mark.parametrize("kind", DATA_KINDS)
def test_deterministic(kind):
    a = load_data(kind, n=300, preprocess=("center", "normalize"), seed=7)
    b = load_data(kind, n=300, preprocess=("center", "normalize"), seed=7)
    for f in ("X_train", "y_train", "X_val", "y_val"):
        assert np.array_equal(getattr(a, f), getattr(b, f))
    c = load_data(kind, n=300, preprocess=("center", "normalize"), seed=8)
    assert not np.array_equal(a.X_train, c.X_train)   # at least the split changes


@pytest.mark.parametrize("kind", SYNTHETIC)
def test_synthetic_seed_changes_raw_data(kind):
    X1, y1, *_ = generate(kind, 200, 3, 0.2, 2, 0)
    X1b, y1b, *_ = generate(kind, 200, 3, 0.2, 2, 0)
    X2, *_ = generate(kind, 200, 3, 0.2, 2, 1)
    assert np.array_equal(X1, X1b) and np.array_equal(y1, y1b)
    assert not np.array_equal(X1, X2)


def test_split_independent_of_preprocessing_and_partitions_rows():
    X, y, *_ = generate("wine", 10**6, 0, 0.0, 0, 3)
    ds = load_data("wine", n=10**6, val_fraction=0.3, seed=3)
    both = np.concatenate((ds.X_train, ds.X_val))
    # same multiset of rows, in a shuffled order
    assert not np.array_equal(both, X)
    order = np.lexsort(both.T[::-1]), np.lexsort(X.T[::-1])
    assert np.array_equal(both[order[0]], X[order[1]])
    assert np.array_equal(np.sort(np.concatenate((ds.y_train, ds.y_val))), np.sort(y))
    ds2 = load_data("wine", n=10**6, val_fraction=0.3, seed=3, preprocess=("whiten",))
    assert np.array_equal(ds.y_train, ds2.y_train)


def test_empty_val_and_tiny_n():
    ds = load_data("spiral", n=50, val_fraction=0.0)
    assert ds.X_val.shape == (0, 2) and ds.y_val.shape == (0,)
    assert len(ds.X_train) == 50
    ds = load_data("moons", n=1, val_fraction=0.5)
    assert len(ds.X_train) == 1
    ds = load_data("iris", preprocess=("center", "whiten"), val_fraction=0.0)
    assert ds.X_val.shape == (0, 4)


# --------------------------------------------------------------------------- generators
def test_spiral_geometry_and_counts():
    X, y, c, _ = generate("spiral", 1000, 3, 0.3, 2, 0)
    r = np.hypot(X[:, 0], X[:, 1])
    assert r.min() >= 0 and r.max() <= 1 + 1e-12
    assert r.max() > 1 - 1e-12                      # every arm reaches r = 1
    X, y, c, _ = generate("spiral", 10, 3, 0.0, 2, 0)  # remainder is distributed
    assert len(X) == 10 and sorted(np.bincount(y)) == [3, 3, 4]
    # noise-free arm 0 follows r = linspace(0,1,m), t = linspace(0,4,m)
    m = np.sum(y == 0)
    r, t = np.linspace(0, 1, m), np.linspace(0, 4, m)
    assert np.allclose(X[y == 0], np.column_stack((r * np.sin(t), r * np.cos(t))))


def test_positive_blobs_strictly_positive():
    for noise in (0.2, 3.0):
        X, *_ = generate("positive-blobs", 5000, 5, noise, 3, 0)
        assert X.min() > 0


def test_xor_and_checkerboard_labels():
    X, y, *_ = generate("xor", 2000, 3, 0.5, 2, 0)
    assert np.array_equal(y, (np.sign(X[:, 0]) != np.sign(X[:, 1])).astype(np.int64))
    X, y, *_ = generate("checkerboard", 4000, 5, 0.2, 2, 0)
    assert X.min() >= -2 and X.max() <= 2
    cells = (X[:, :, None] > np.array([-1.0, 0.0, 1.0])).sum(axis=2)   # 0..3 per axis
    assert np.array_equal(y, cells.sum(axis=1) % 2)


def test_circles_moons_gaussians_geometry():
    X, y, *_ = generate("circles", 400, 3, 0.0, 2, 0)
    r = np.hypot(X[:, 0], X[:, 1])
    assert np.allclose(r[y == 0], 1.0) and np.allclose(r[y == 1], 0.5)
    X, y, *_ = generate("moons", 400, 3, 0.0, 2, 0)
    assert np.allclose(np.hypot(X[y == 0, 0], X[y == 0, 1]), 1.0)
    assert np.allclose(np.hypot(X[y == 1, 0] - 1, X[y == 1, 1] - 0.5), 1.0)
    X, y, c, _ = generate("gaussians", 400, 5, 0.0, 2, 0)
    assert c == 5 and np.allclose(np.hypot(X[:, 0], X[:, 1]), 2.0)
    X, y, c, _ = generate("random-normal", 20000, 4, 0.2, 7, 0)
    assert X.shape == (20000, 7)
    assert np.abs(X.mean(0)).max() < 0.05 and np.abs(X.std(0) - 1).max() < 0.05


@pytest.mark.parametrize("kind", REAL)
def test_real_full_and_subsample(kind):
    rows, d, c = REAL_SIZES[kind]
    X, y, nc, shape = generate(kind, 10**6, 99, 5.0, 9, 0)   # classes/noise/dim ignored
    assert X.shape == (rows, d) and nc == c and y.max() == c - 1
    Xs, ys, nc_s, _ = generate(kind, 100, 3, 0.2, 2, 0)
    assert Xs.shape == (100, d) and nc_s == c
    # the subsample is made of real rows with their own labels
    idx = [np.flatnonzero((X == row).all(axis=1)) for row in Xs]
    assert all(len(i) >= 1 and ys[k] in y[i] for k, i in enumerate(idx))
    assert not np.array_equal(Xs, generate(kind, 100, 3, 0.2, 2, 1)[0])


def test_digits_pixels():
    X, y, c, shape = generate("digits", 10**6, 3, 0.2, 2, 0)
    assert shape == (1, 8, 8)
    assert X.min() == 0 and X.max() == 16 and np.array_equal(X, np.round(X))


# --------------------------------------------------------------------------- preprocessing
@pytest.mark.parametrize("kind", ["spiral", "positive-blobs", "wine", "iris"])
def test_center_and_val_uses_train_mean(kind):
    raw = load_data(kind, seed=2)
    ds = load_data(kind, seed=2, preprocess=("center",))
    assert np.abs(ds.X_train.mean(axis=0)).max() < 1e-12
    mu = raw.X_train.mean(axis=0)
    assert np.allclose(ds.X_val, raw.X_val - mu, rtol=0, atol=1e-12)
    assert np.abs(ds.X_val.mean(axis=0)).max() > 1e-6   # val is not re-centred on itself


@pytest.mark.parametrize("kind", ["spiral", "gaussians", "wine", "breast-cancer"])
def test_normalize_gives_unit_std(kind):
    raw = load_data(kind, seed=4)
    ds = load_data(kind, seed=4, preprocess=("center", "normalize"))
    assert np.allclose(ds.X_train.std(axis=0), 1.0, atol=1e-12)
    # val scaled by the *train* std
    expect = (raw.X_val - raw.X_train.mean(0)) / raw.X_train.std(0)
    assert np.allclose(ds.X_val, expect, rtol=1e-12, atol=1e-12)
    assert not np.allclose(ds.X_val.std(axis=0), 1.0, atol=1e-12)


def test_normalize_constant_feature_stays_finite():
    rng = np.random.default_rng(0)
    X = np.column_stack((rng.normal(5, 3, 100), np.full(100, 0.1), np.zeros(100)))
    Z = Preprocessor(["normalize"]).fit_transform(X)
    assert np.isfinite(Z).all()
    assert np.isclose(Z[:, 0].std(), 1.0, atol=1e-12)
    assert np.array_equal(Z[:, 1:], X[:, 1:])          # constant columns divided by 1
    Z = Preprocessor(["center", "normalize"]).fit_transform(X)
    assert np.isfinite(Z).all() and np.abs(Z[:, 1:]).max() < 1e-12


def test_digits_center_is_per_channel():
    raw = load_data("digits", n=10**6, seed=0)
    ds = load_data("digits", n=10**6, seed=0, preprocess=("center",))
    assert ds.image_shape == (1, 8, 8)
    assert abs(ds.X_train.mean()) < 1e-12                       # the one channel mean is 0
    assert np.abs(ds.X_train.mean(axis=0)).max() > 1.0           # but pixel means are not
    assert np.allclose(ds.X_train, raw.X_train - raw.X_train.mean(), atol=1e-12)
    assert np.isfinite(ds.X_train).all()


def test_digits_normalize_per_channel_and_finite():
    ds = load_data("digits", n=10**6, preprocess=("center", "normalize"))
    assert np.isclose(ds.X_train.std(), 1.0, atol=1e-12)
    assert np.isfinite(ds.X_train).all() and np.isfinite(ds.X_val).all()
    assert not np.allclose(ds.X_train.std(axis=0), 1.0)   # per channel, not per pixel


def test_multichannel_center_normalize():
    rng = np.random.default_rng(1)
    # 2 channels of 2x2 pixels, very different per-pixel offsets within a channel
    X = rng.normal(size=(500, 8)) + np.array([0, 10, 20, 30, -5, -6, -7, -8.0])
    p = Preprocessor(("center", "normalize"), image_shape=(2, 2, 2)).fit(X)
    Z = p.transform(X).reshape(500, 2, 4)
    assert np.allclose(Z.mean(axis=(0, 2)), 0, atol=1e-12)
    assert np.allclose(Z.std(axis=(0, 2)), 1, atol=1e-12)
    assert np.abs(Z.mean(axis=0)).max() > 0.5
    with pytest.raises(ValueError):
        Preprocessor(("center",), image_shape=(3, 2, 2)).fit(X)


@pytest.mark.parametrize("kind,k", [("wine", 5), ("digits", 10), ("random-normal", 3)])
def test_pca_reduces_and_orders_by_variance(kind, k):
    raw = load_data(kind, dim=8, seed=5)
    ds = load_data(kind, dim=8, seed=5, preprocess=("pca",), pca_components=k)
    assert ds.X_train.shape[1] == ds.X_val.shape[1] == k == ds.preprocessor.output_dim
    var = ds.X_train.var(axis=0)
    assert np.all(np.diff(var) <= 1e-9 * var[0])
    top = np.sort(np.linalg.eigvalsh(cov(raw.X_train)))[::-1][:k]
    assert np.allclose(var, top, rtol=1e-8)
    assert np.abs(ds.X_train.mean(axis=0)).max() < 1e-9          # centring implied
    assert np.allclose(cov(ds.X_train), np.diag(var), atol=1e-8 * var[0])   # decorrelated
    assert ds.image_shape is None


def test_pca_all_components_is_a_rotation():
    raw = load_data("iris", seed=0)
    ds = load_data("iris", seed=0, preprocess=("pca",))
    assert ds.X_train.shape[1] == 4
    d_raw = np.linalg.norm(raw.X_val[:, None] - raw.X_train[None], axis=2)
    d_pca = np.linalg.norm(ds.X_val[:, None] - ds.X_train[None], axis=2)
    assert np.allclose(d_raw, d_pca, atol=1e-10)


@pytest.mark.parametrize("kind", ["spiral", "gaussians", "wine", "breast-cancer", "digits"])
@pytest.mark.parametrize("steps", [("whiten",), ("center", "normalize", "whiten")])
def test_whiten_gives_identity_covariance(kind, steps):
    ds = load_data(kind, seed=6, preprocess=steps)
    C = cov(ds.X_train)
    assert np.abs(C - np.eye(len(C))).max() < 1e-6
    assert np.isfinite(ds.X_val).all()
    assert not np.allclose(cov(ds.X_val), np.eye(len(C)), atol=1e-6)   # train stats only
    if kind == "digits":   # always-blank pixels give zero-variance directions: dropped
        assert len(C) < 64
    else:
        assert len(C) == ds.X_val.shape[1] == raw_dim(kind)


def raw_dim(kind):
    return REAL_SIZES[kind][1] if kind in REAL else 2


def test_preprocessor_transform_matches_fit_transform():
    raw = load_data("wine", seed=9)
    p = Preprocessor(("normalize", "pca", "whiten"), pca_components=6)
    Z = p.fit_transform(raw.X_train)
    assert p.output_dim == 6
    assert np.allclose(p.transform(raw.X_train), Z, atol=1e-12)
    ds = load_data("wine", seed=9, preprocess=("normalize", "pca", "whiten"), pca_components=6)
    assert np.allclose(ds.X_val, p.transform(raw.X_val), atol=1e-12)
    assert np.allclose(ds.preprocessor.transform(raw.X_val), ds.X_val, atol=0)


# --------------------------------------------------------------------------- errors & misc
def test_unknown_kind_lists_allowed():
    with pytest.raises(ValueError) as e:
        load_data("mnist")
    msg = str(e.value)
    assert "mnist" in msg and all(k in msg for k in DATA_KINDS)
    with pytest.raises(ValueError, match="mnist"):
        generate("mnist", 10, 2, 0.1, 2, 0)


def test_unknown_step_lists_allowed():
    for call in (lambda: Preprocessor(["center", "zca"]),
                 lambda: load_data("spiral", preprocess=("zca",))):
        with pytest.raises(ValueError) as e:
            call()
        msg = str(e.value)
        assert "zca" in msg and all(s in msg for s in PREPROCESS_STEPS)


def test_bad_arguments():
    with pytest.raises(ValueError):
        load_data("spiral", val_fraction=1.0)
    with pytest.raises(ValueError):
        load_data("spiral", n=0)
    with pytest.raises(ValueError):
        Preprocessor(["pca"], pca_components=0)
    with pytest.raises(RuntimeError):
        Preprocessor(["center"]).transform(np.zeros((2, 2)))


def test_dataset_is_frozen():
    ds = load_data("xor", n=40)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.n_classes = 3
