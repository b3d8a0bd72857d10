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

from lab import vocabulary as V

INIT_SCHEMES = V.names(V.INITS)
DEFAULT_SCALE = {i.name: i.default_scale for i in V.INITS}


# Each scheme of the vocabulary (lab/vocabulary.py) has `_std_<name>`: the std it aims for, from its
# scale s (init_scale, or the scheme's default) and the fans; and may have `_draw_<name>`, when its
# weights are not a normal draw with that std.
def _std_zeros(s: float, fan_in: int, fan_out: int) -> float:
    return 0.0


_std_constant = _std_zeros


def _std_normal(s: float, fan_in: int, fan_out: int) -> float:
    return s


def _std_uniform(s: float, fan_in: int, fan_out: int) -> float:
    return s / math.sqrt(3.0)


def _std_xavier(s: float, fan_in: int, fan_out: int) -> float:
    return s / math.sqrt(fan_in)


_std_lecun = _std_xavier


def _std_glorot(s: float, fan_in: int, fan_out: int) -> float:
    return s * math.sqrt(2.0 / (fan_in + fan_out))


def _std_kaiming(s: float, fan_in: int, fan_out: int) -> float:
    return s * math.sqrt(2.0 / fan_in)


def _std_orthogonal(s: float, fan_in: int, fan_out: int) -> float:
    return s / math.sqrt(max(fan_in, fan_out))


def _draw_zeros(shape: tuple[int, int], rng: np.random.Generator, s: float) -> np.ndarray:
    return np.zeros(shape)


def _draw_constant(shape: tuple[int, int], rng: np.random.Generator, s: float) -> np.ndarray:
    return np.full(shape, float(s))


def _draw_uniform(shape: tuple[int, int], rng: np.random.Generator, s: float) -> np.ndarray:
    return rng.uniform(-s, s, size=shape)


def _draw_orthogonal(shape: tuple[int, int], rng: np.random.Generator, s: float) -> np.ndarray:
    # QR of a Gaussian matrix; fixing the signs of R's diagonal makes Q Haar-distributed.
    fan_in, fan_out = shape
    big, small = max(shape), min(shape)
    q, r = np.linalg.qr(rng.standard_normal((big, small)))
    q *= np.sign(np.diag(r))
    q = q if fan_in >= fan_out else q.T
    return s * q


STD = {name: globals()[f"_std_{name}"] for name in INIT_SCHEMES}
DRAW = {name: globals()[f"_draw_{name}"] for name in INIT_SCHEMES if f"_draw_{name}" in globals()}


def init_std(scheme: str, fan_in: int, fan_out: int, scale: float | None = None) -> float:
    """The standard deviation a scheme aims for (uniform: of the distribution, a/sqrt(3))."""
    if scheme not in STD:
        raise ValueError(f"unknown init scheme {scheme!r}; expected one of {', '.join(INIT_SCHEMES)}")
    s = DEFAULT_SCALE.get(scheme, 1.0) if scale is None else scale
    return STD[scheme](s, fan_in, fan_out)


def init_weight(scheme: str, shape: tuple[int, int], rng: np.random.Generator, scale: float | None = None) -> np.ndarray:
    """A float64 (fan_in, fan_out) matrix drawn from `scheme`."""
    fan_in, fan_out = shape
    if scheme in DRAW:
        return DRAW[scheme](shape, rng, DEFAULT_SCALE.get(scheme, 1.0) if scale is None else scale)
    return rng.standard_normal(shape) * init_std(scheme, fan_in, fan_out, scale)
