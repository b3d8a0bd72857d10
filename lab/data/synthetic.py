"""Synthetic 2-D (and n-D) toy problems, generated with numpy only.

Each generator has the signature ``(n, classes, noise, dim, rng) -> (X, y, n_classes)``
and draws *only* from the ``rng`` it is given, so a seed fully determines the data
(we implement moons/circles ourselves instead of calling sklearn so that the random
stream is ours and cannot change under a library upgrade).

Every generator returns exactly ``n`` rows, X float64 (n, D) and y int64 (n,).
Class-balanced kinds assign labels ``arange(n) % classes`` style (every class present
once n >= classes); the order does not matter because the split shuffles.
"""

from __future__ import annotations

import numpy as np

from lab import vocabulary as V


def _balanced_counts(n: int, k: int) -> np.ndarray:
    """Split n into k near-equal parts; the first n % k parts get one extra."""
    counts = np.full(k, n // k, dtype=np.int64)
    counts[: n % k] += 1
    return counts


def _ring_centres(classes: int, radius: float, dim: int) -> np.ndarray:
    """Class centres evenly spaced on a circle in the first two coordinates."""
    angles = 2.0 * np.pi * np.arange(classes) / classes
    centres = np.zeros((classes, dim))
    centres[:, 0] = radius * np.cos(angles)
    centres[:, 1] = radius * np.sin(angles)
    return centres


def spiral(n, classes, noise, dim, rng):
    """The CS231n spiral: ``classes`` arms (honoured), 2-D (``dim`` ignored).

    Arm j: r = linspace(0, 1, m_j), t = linspace(4j, 4(j+1), m_j) + randn * noise,
    X = [r sin t, r cos t]. The n points are split as evenly as possible; the
    remainder n % classes is *distributed* (one extra point to the first arms) so the
    caller gets exactly n rows. Noise perturbs only the angle, hence |x| = r <= 1:
    the radius is the "progress along the arm" and the classes are only separable by
    a non-linear boundary - the classic case a linear classifier fails.
    """
    counts = _balanced_counts(n, classes)
    y = np.repeat(np.arange(classes, dtype=np.int64), counts)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    pos = np.arange(n) - starts[y]                      # index within the arm
    denom = np.maximum(counts[y] - 1, 1)                # linspace(0,1,1) == [0]
    frac = pos / denom
    r = frac
    t = 4.0 * y + 4.0 * frac + rng.standard_normal(n) * noise
    X = np.column_stack((r * np.sin(t), r * np.cos(t)))
    return X, y, classes


def circles(n, classes, noise, dim, rng):
    """Two concentric circles (classes fixed at 2, 2-D): outer r=1 is 0, inner r=0.5 is 1.

    Angles are uniform; ``noise`` is the std of isotropic gaussian jitter added to
    each point. Radially separable: a single hidden layer learns it, a linear model
    cannot.
    """
    n_out = n // 2
    y = (np.arange(n) >= n_out).astype(np.int64)
    radius = np.where(y == 0, 1.0, 0.5)
    theta = rng.uniform(0.0, 2.0 * np.pi, n)
    X = np.column_stack((radius * np.cos(theta), radius * np.sin(theta)))
    X += rng.standard_normal((n, 2)) * noise
    return X, y, 2


def moons(n, classes, noise, dim, rng):
    """Two interleaving half circles (classes fixed at 2, 2-D), as sklearn's make_moons.

    Points are evenly spaced along each half circle, then jittered by gaussian noise
    of std ``noise``. Written in numpy so the random stream is under our control.
    """
    n_out = n // 2
    n_in = n - n_out
    t_out = np.linspace(0.0, np.pi, n_out)
    t_in = np.linspace(0.0, np.pi, n_in)
    X = np.concatenate((
        np.column_stack((np.cos(t_out), np.sin(t_out))),
        np.column_stack((1.0 - np.cos(t_in), 0.5 - np.sin(t_in))),
    ))
    y = np.concatenate((np.zeros(n_out, np.int64), np.ones(n_in, np.int64)))
    X += rng.standard_normal((n, 2)) * noise
    return X, y, 2


def xor(n, classes, noise, dim, rng):
    """XOR (classes fixed at 2, 2-D): four gaussian clusters at (+-1, +-1), std ``noise``.

    The label is computed from the *point*, not its cluster: y = 1 where x0 * x1 < 0
    (the signs differ - logical XOR of "x0 > 0" and "x1 > 0"), else 0. So the
    boundary is exactly the two axes even when clusters overlap; the textbook
    problem no single linear unit can solve. Clusters are used in turn so all four
    are populated once n >= 4.
    """
    corners = np.array([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]])
    X = corners[np.arange(n) % 4] + rng.standard_normal((n, 2)) * noise
    y = (X[:, 0] * X[:, 1] < 0).astype(np.int64)
    return X, y, 2


def gaussians(n, classes, noise, dim, rng):
    """``classes`` isotropic gaussian blobs (honoured), std = ``noise``, in ``dim`` >= 2 dims.

    Centres lie on a circle of radius 2 in the first two coordinates; extra
    dimensions (``dim`` > 2, honoured) are centred at 0 and carry pure noise - a
    knob for "more features, same signal". Labels are balanced.
    """
    if dim < 2:
        raise ValueError(f"'gaussians' needs dim >= 2, got {dim}")
    y = (np.arange(n) % classes).astype(np.int64)
    X = _ring_centres(classes, 2.0, dim)[y] + rng.standard_normal((n, dim)) * noise
    return X, y, classes


def checkerboard(n, classes, noise, dim, rng):
    """Uniform points in [-2, 2]^2 labelled by the parity of their cell on a 4x4 board.

    ``classes`` is ignored (always 2), ``noise`` and ``dim`` are ignored: the board is
    already hard (8 disjoint regions per class) and a clean boundary makes it easy
    to see what the network has or has not carved out.
    """
    X = rng.uniform(-2.0, 2.0, (n, 2))
    cell = np.clip(np.floor(X + 2.0), 0, 3).astype(np.int64)   # unit cells 0..3
    y = (cell[:, 0] + cell[:, 1]) % 2
    return X, y.astype(np.int64), 2


def positive_blobs(n, classes, noise, dim, rng):
    """Like ``gaussians`` (``classes`` and ``dim`` honoured) but every value is > 0.

    Centres are on a circle of radius 2 around (3, 3, ...) so their coordinates are
    >= 1; any jitter that still crosses zero is reflected with abs(). All-positive
    inputs make every weight gradient of a unit share one sign, which is the
    sigmoid "zig-zag" update pattern from the lecture - that is what this set is for.
    """
    X, y, k = gaussians(n, classes, noise, dim, rng)
    X = np.abs(X + 3.0)
    assert X.min() > 0.0, "positive-blobs must be strictly positive"
    return X, y, k


def random_normal(n, classes, noise, dim, rng):
    """X ~ N(0, 1) of shape (n, ``dim``) (honoured), labels uniform in ``classes`` (honoured).

    No structure to learn: it exists for weight-initialisation experiments, where one
    watches activation statistics through depth on unit-variance inputs. ``noise`` is
    ignored. Labels are i.i.d. uniform, so a tiny n may miss a class.
    """
    X = rng.standard_normal((n, dim))
    y = rng.integers(0, classes, n, dtype=np.int64)
    return X, y, classes


# name -> (generator, honours `classes`): each synthetic data kind of the vocabulary, by the
# function of its name ("positive-blobs" -> positive_blobs)
def parts(n, classes, noise, dim, rng):
    """Rows built from parts that every class shares: ``classes`` and ``dim`` (>= 2) honoured.

    Only the first m = max(2, dim // 8) features carry signal; the rest are noise.  There are
    k = m parts, each a fixed random pattern over those m features (the rows of
    A, k x m, standard normal).  Each class is a random choice of parts (each present with
    probability 1/2); an example shows its class's parts, each flipped (dropped, or an extra
    one added) with probability 0.05; every feature gets gaussian noise of std ``noise``:
    x[:m] = h @ A + noise * randn, x[m:] = noise * randn.  Which features matter, and the
    parts they show, are the same for every class: a network that learned them on one group
    of classes has them for any other, which the transfer-learning scenarios need (source and
    target tasks: two groups of classes of one data set).  Labels are balanced.
    """
    if dim < 2:
        raise ValueError(f"'parts' needs dim >= 2, got {dim}")
    m = max(2, dim // 8)
    k = m
    A = rng.standard_normal((k, m))
    prototypes = rng.random((classes, k)) < 0.5
    y = (np.arange(n) % classes).astype(np.int64)
    shown = prototypes[y] ^ (rng.random((n, k)) < 0.05)
    X = rng.standard_normal((n, dim)) * noise
    X[:, :m] += shown.astype(np.float64) @ A
    return X, y, classes


GENERATORS = {k.name: (globals()[k.name.replace("-", "_")], k.classes is None)
              for k in V.DATA_KINDS if k.source == "synthetic"}
