"""Weight initialisation schemes (lecture: "Weight Initialization").

Every scheme draws W of shape (fan_in, fan_out); `scale` means, per scheme:
  zeros        ignored                 constant   the value (default 0.1)
  normal       the std (default 0.01)  uniform    half-width a of U(-a, a) (default 0.05)
  xavier       gain on std 1/sqrt(fan_in)  (the lecture's "Xavier", as in CS231n)
  glorot       gain on std sqrt(2/(fan_in+fan_out))  (Glorot & Bengio's original)
  kaiming      gain on std sqrt(2/fan_in)  (He et al., for ReLU)
  lecun        gain on std 1/sqrt(fan_in)  (the init SELU's self-normalisation assumes)
  orthogonal   gain on a random orthogonal matrix (Saxe et al.)
"""

from __future__ import annotations

import math

import numpy as np

INIT_SCHEMES = ("zeros", "constant", "normal", "uniform", "xavier", "glorot", "kaiming", "lecun", "orthogonal")

DEFAULT_SCALE = {"constant": 0.1, "normal": 0.01, "uniform": 0.05}


def init_std(scheme: str, fan_in: int, fan_out: int, scale: float | None = None) -> float:
    """The standard deviation a scheme aims for (uniform: of the distribution, a/sqrt(3))."""
    s = DEFAULT_SCALE.get(scheme, 1.0) if scale is None else scale
    if scheme == "zeros":
        return 0.0
    if scheme == "constant":
        return 0.0
    if scheme == "normal":
        return s
    if scheme == "uniform":
        return s / math.sqrt(3.0)
    if scheme in ("xavier", "lecun"):
        return s / math.sqrt(fan_in)
    if scheme == "glorot":
        return s * math.sqrt(2.0 / (fan_in + fan_out))
    if scheme == "kaiming":
        return s * math.sqrt(2.0 / fan_in)
    if scheme == "orthogonal":
        return s / math.sqrt(max(fan_in, fan_out))
    raise ValueError(f"unknown init scheme {scheme!r}; expected one of {', '.join(INIT_SCHEMES)}")


def init_weight(scheme: str, shape: tuple[int, int], rng: np.random.Generator, scale: float | None = None) -> np.ndarray:
    """A float64 (fan_in, fan_out) matrix drawn from `scheme`."""
    fan_in, fan_out = shape
    s = DEFAULT_SCALE.get(scheme, 1.0) if scale is None else scale
    if scheme == "zeros":
        return np.zeros(shape)
    if scheme == "constant":
        return np.full(shape, float(s))
    if scheme == "uniform":
        return rng.uniform(-s, s, size=shape)
    if scheme == "orthogonal":
        # QR of a Gaussian matrix; fixing the signs of R's diagonal makes Q Haar-distributed.
        big, small = max(shape), min(shape)
        q, r = np.linalg.qr(rng.standard_normal((big, small)))
        q *= np.sign(np.diag(r))
        q = q if fan_in >= fan_out else q.T
        return s * q
    return rng.standard_normal(shape) * init_std(scheme, fan_in, fan_out, scale)
