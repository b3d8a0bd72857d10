"""Data preprocessing as in the lecture: center, normalize, PCA, whiten.

Every statistic is fitted on the *training* rows only and then applied unchanged to
validation rows - fitting on validation data would leak it into training. Steps run in
the order given, each fitted on the output of the previous one.

Covariance convention throughout: ``np.cov(X, rowvar=False, bias=True)`` (divide by N).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from lab import vocabulary as V

PREPROCESS_STEPS = V.names(V.PREPROCESSING)
# the steps that change the feature space (an image is no longer one afterwards)
REDUCING = frozenset(p.name for p in V.PREPROCESSING if p.reduces)

# An eigenvalue at or below this fraction of the largest one is "numerically zero".
# Relative, so the test does not depend on the data's units (breast-cancer's real
# eigenvalues span 12 decades). SVD gets singular values right to ~eps * s_max, so a
# singular-value ratio of 1e-9 (eigenvalue ratio 1e-18) keeps every real direction
# while exactly-constant features (ratio ~1e-32) are dropped; whitening error for a
# kept component is ~eps * s_max / s <= 2e-7.
_ZERO_VAR_RTOL = 1e-18


def _check_steps(steps: Sequence[str]) -> tuple[str, ...]:
    if isinstance(steps, str):       # "pca" would otherwise be iterated letter by letter
        steps = (steps,)
    steps = tuple(steps)
    for s in steps:
        if s not in PREPROCESS_STEPS:
            raise ValueError(
                f"unknown preprocessing step {s!r}; allowed: {', '.join(PREPROCESS_STEPS)}"
            )
    return steps


def _per_group(stat_fn, X: np.ndarray, image_shape) -> np.ndarray:
    """A per-feature statistic, or for images one per channel broadcast to its pixels.

    Rows of image data are flattened (C, H, W), so channel c owns the contiguous block
    of H*W features starting at c*H*W.
    """
    if image_shape is None:
        return stat_fn(X, axis=0)
    c, h, w = image_shape
    per_channel = stat_fn(X.reshape(len(X), c, h * w), axis=(0, 2))
    return np.repeat(per_channel, h * w)


def _principal_axes(Xc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of the (bias) covariance of centred data, via SVD.

    SVD of the data rather than eigh of the covariance: small eigenvalues come out
    far more accurately (errors scale with sqrt of the condition number, not with it),
    which is what lets whitening hit the identity to 1e-6 on badly scaled data.
    Returns (eigvals (D,) descending, V (D, D) with components as columns). Signs are
    fixed (largest-|.| entry of each component positive) so results do not depend on
    the LAPACK build.
    """
    n, d = Xc.shape
    _, s, vt = np.linalg.svd(Xc, full_matrices=n < d)   # vt is (D, D) either way
    eig = np.zeros(d)
    eig[: len(s)] = s**2 / n
    big = np.argmax(np.abs(vt), axis=1)
    signs = np.sign(vt[np.arange(d), big])
    signs[signs == 0] = 1.0
    return eig, (vt * signs[:, None]).T


class Preprocessor:
    """A fitted-on-train pipeline of preprocessing steps.

    Parameters
    ----------
    steps : names from ``PREPROCESS_STEPS``, applied in order.
    pca_components : number of components the ``pca`` step keeps (default: all D;
        values above D are clamped to D).
        Only the ``pca`` step uses it; put ``pca`` before ``whiten`` to whiten fewer.
    image_shape : (C, H, W) when rows are flattened images. ``center``/``normalize``
        then use one statistic per channel (the lecture's "subtract the per-channel
        mean") instead of one per pixel. After ``pca``/``whiten`` rows are no longer
        images, so later steps fall back to per-feature statistics.

    Steps
    -----
    center    : subtract the train mean.
    normalize : divide by the train std; a (numerically) zero std divides by 1, so a
                constant feature stays finite instead of becoming NaN/Inf.
    pca       : subtract the train mean (implied) and project onto the top
                ``pca_components`` principal components, ordered by variance.
    whiten    : subtract the train mean, rotate onto all principal components and divide
                each by sqrt(eigenvalue) exactly - no epsilon, so the train covariance
                becomes the identity. Components with numerically zero variance
                (eigenvalue <= 1e-18 * largest, i.e. singular value <= 1e-9 * largest)
                are *dropped*: dividing by ~0 would blow up rounding noise, and zeroing
                them would leave 0s on the covariance diagonal.
                ``output_dim`` therefore can be < D (digits' blank corner pixels).
    """

    def __init__(self, steps: Sequence[str] = (), pca_components: int | None = None,
                 image_shape: tuple[int, int, int] | None = None):
        self.steps = _check_steps(steps)
        if pca_components is not None and int(pca_components) < 1:
            raise ValueError(f"pca_components must be >= 1, got {pca_components}")
        self.pca_components = None if pca_components is None else int(pca_components)
        self.image_shape = None if image_shape is None else tuple(int(v) for v in image_shape)
        self.params: list[dict] = []          # one dict of fitted arrays per step
        self.input_dim: int | None = None
        self.output_dim: int | None = None
        self.output_image_shape = self.image_shape   # None once pca/whiten has run

    # -- fitting ---------------------------------------------------------------
    def fit(self, X: np.ndarray) -> "Preprocessor":
        self.fit_transform(X)
        return self

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        X = np.array(X, dtype=np.float64, order="C", ndmin=2)   # always a copy
        if len(X) == 0:
            raise ValueError("cannot fit a Preprocessor on zero rows")
        d = X.shape[1]
        shape = self.image_shape
        if shape is not None and int(np.prod(shape)) != d:
            raise ValueError(f"image_shape {shape} does not match {d} features")
        self.input_dim, self.params = d, []
        for step in self.steps:
            p = getattr(self, f"_fit_{step}")(X, shape)
            self.params.append(p)
            X = self._apply(step, p, X)
            if step in REDUCING:
                shape = None
        self.output_dim, self.output_image_shape = X.shape[1], shape
        return np.ascontiguousarray(X)

    def _fit_center(self, X, shape):
        return {"mean": _per_group(np.mean, X, shape)}

    def _fit_normalize(self, X, shape):
        std = _per_group(np.std, X, shape)
        rms = np.sqrt(_per_group(np.mean, X * X, shape))
        # std == 0, or rounding noise of a constant feature (std ~ ulp * value)
        std = np.where(std <= 1e-12 * rms, 1.0, std)
        return {"std": std}

    def _fit_pca(self, X, shape):
        mean = X.mean(axis=0)
        eig, V = _principal_axes(X - mean)
        k = X.shape[1] if self.pca_components is None else min(self.pca_components, X.shape[1])
        return {"mean": mean, "components": np.ascontiguousarray(V[:, :k]),
                "explained_variance": eig[:k]}

    def _fit_whiten(self, X, shape):
        mean = X.mean(axis=0)
        eig, V = _principal_axes(X - mean)
        keep = eig > _ZERO_VAR_RTOL * eig[0] if eig[0] > 0 else np.zeros(len(eig), bool)
        # fold the 1/sqrt(eigenvalue) into the projection: one matmul at transform time
        W = V[:, keep] / np.sqrt(eig[keep])
        return {"mean": mean, "components": np.ascontiguousarray(W),
                "explained_variance": eig[keep]}

    # -- applying ----------------------------------------------------------------
    @staticmethod
    def _apply(step: str, p: dict, X: np.ndarray) -> np.ndarray:
        if "components" in p:  # pca and whiten
            return (X - p["mean"]) @ p["components"]
        if "std" in p:  # normalize
            return X / p["std"]
        return X - p["mean"]  # center

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Apply the train-fitted steps to new rows (e.g. the validation set)."""
        if self.input_dim is None:
            raise RuntimeError("Preprocessor.transform called before fit")
        X = np.array(X, dtype=np.float64, order="C", ndmin=2)
        if X.shape[1] != self.input_dim:
            raise ValueError(f"expected {self.input_dim} features, got {X.shape[1]}")
        for step, p in zip(self.steps, self.params):
            X = self._apply(step, p, X)
        return np.ascontiguousarray(X)

    def __repr__(self) -> str:
        return (f"Preprocessor(steps={self.steps!r}, pca_components={self.pca_components!r}, "
                f"image_shape={self.image_shape!r})")
