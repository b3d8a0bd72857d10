"""Optimizer settings and state (the update itself is the kernel in kernels/optim.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab import vocabulary as V

from .kernels import optim as K

OPTIMIZERS = V.names(V.OPTIMIZERS)


@dataclass(frozen=True)
class OptimizerConfig:
    name: str = V.default(V.OPTIMIZERS)
    momentum: float = 0.9  # momentum, nesterov
    beta1: float = 0.9  # adam, adamw
    beta2: float | None = None  # adam/adamw 0.999; rmsprop's decay 0.99 (CS231n)
    eps: float = 1e-8
    weight_decay: float = 0.0  # decoupled (p -= lr*wd*p on W), any optimizer
    l1: float = 0.0  # penalties added to the loss
    l2: float = 0.0
    clip_norm: float = 0.0  # 0 = no clipping

    def __post_init__(self) -> None:
        if self.name not in K.OPTIMIZER_CODES:
            raise ValueError(f"unknown optimizer {self.name!r}; expected one of {', '.join(OPTIMIZERS)}")

    @property
    def code(self) -> int:
        return K.OPTIMIZER_CODES[self.name]

    @property
    def beta2_value(self) -> float:
        if self.beta2 is not None:
            return self.beta2
        return V.optimizer(self.name).beta2

    def hyper(self) -> np.ndarray:
        h = np.zeros(K.N_HYPER, dtype=np.float64)
        h[K.H_MOMENTUM] = self.momentum
        h[K.H_BETA1] = self.beta1
        h[K.H_BETA2] = self.beta2_value
        h[K.H_EPS] = self.eps
        h[K.H_WEIGHT_DECAY] = self.weight_decay
        h[K.H_L1] = self.l1
        h[K.H_L2] = self.l2
        h[K.H_CLIP] = self.clip_norm
        return h


class OptimizerState:
    """First and second moment buffers (velocity, cache) and the step count, per parameter entry."""

    def __init__(self, n_params: int, dtype) -> None:
        self.m1 = np.zeros(n_params, dtype)
        self.m2 = np.zeros(n_params, dtype)
        self.t = np.zeros(1, np.int64)

    def reset(self) -> None:
        self.m1[:] = 0.0
        self.m2[:] = 0.0
        self.t[0] = 0
