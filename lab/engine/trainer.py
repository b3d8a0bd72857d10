"""Trainer: the network, its data and optimizer state, stepped in compiled chunks.

It knows nothing of scenarios or events (that is lab.sim); it turns "run n steps at
these learning rates" into one kernel call and hands back the per-step scalars.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .kernels import network as K
from .kernels.augment import N_AUG
from .kernels.losses import LOSS_CODES
from .network import Network
from .optim import OptimizerConfig, OptimizerState


CALL_SECONDS = 0.2
"""The longest one kernel call should run.  A compiled call cannot be interrupted: Ctrl-C,
`q` in the lab and every key wait for the call in progress to return, so callers split
long runs into calls of `steps_per_call()` steps (Simulation.step does), and evaluation
splits itself."""
ASSUMED_MACS_PER_SECOND = 1e9
"""Training speed assumed before the first call is timed: deliberately low (this 2-core
machine does 10-30e9 multiply-adds/s in training), so the first call is short, not long."""
EVAL_BATCH_MACS = 2e9
"""Evaluation batches are 512 rows, fewer for networks so large that 512 rows would take
more than ~0.1-0.2 s (a power of two, decided by the architecture alone: the same bits
every run)."""


class Cancelled(Exception):
    """Raised between kernel calls when the caller's `cancelled()` says so (the lab quitting):
    the run is abandoned half-way and must not be used further."""


@dataclass(frozen=True)
class StepRecord:
    """Scalars of the steps one call ran (arrays of equal length)."""

    loss: np.ndarray
    train_acc: np.ndarray
    grad_norm: np.ndarray
    diverged: bool
    trace: np.ndarray  # (steps, k): the traced parameters after each step


class Trainer:
    def __init__(self, network: Network, X: np.ndarray, y: np.ndarray, batch_size: int,
                 optimizer: OptimizerConfig, rng: np.random.Generator) -> None:
        self.network = network  # replaced (same dtype) when an on-the-fly change rebuilds it
        self.rng = rng  # batches and dropout masks: the training stream
        self.optimizer = optimizer
        self.augment = np.zeros(N_AUG)  # see kernels/augment.py for the layout; zeros = off
        self.image_shape = np.ones(3, dtype=np.int64)
        self.trace_idx = np.zeros(0, dtype=np.int64)  # flat parameter indices recorded every step
        self.first_trained = 0  # parameters before this flat index are frozen (see freeze())
        self.set_data(X, y)
        self.batch_size = batch_size
        self.reset_optimizer()
        self.macs_per_second = ASSUMED_MACS_PER_SECOND  # measured by every run()

    @property
    def batch_size(self) -> int:
        return self._batch

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self._batch = max(1, min(int(value), self.X.shape[0]))

    def set_data(self, X: np.ndarray, y: np.ndarray) -> None:
        """New training data (e.g. after a preprocessing change); restarts the epoch."""
        self.X = np.ascontiguousarray(X, dtype=self.network.dtype)
        self.y = np.ascontiguousarray(y, dtype=np.int64)
        self.perm = np.arange(self.X.shape[0], dtype=np.int64)
        self.cursor = np.array([self.X.shape[0]], dtype=np.int64)  # forces a shuffle first

    def set_augmentation(self, params: np.ndarray, image_shape: tuple[int, int, int] | None) -> None:
        """Augment every training batch (params laid out as kernels/augment.py; zeros = off)."""
        params = np.asarray(params, dtype=np.float64)
        if np.any(params != 0):
            if image_shape is None or int(np.prod(image_shape)) != self.X.shape[1]:
                raise ValueError("augmentation needs image data whose rows are (C, H, W) images")
            self.image_shape = np.asarray(image_shape, dtype=np.int64)
        self.augment = params

    def reset_optimizer(self) -> None:
        self.opt_state = OptimizerState(self.network.plan.n_params, self.network.dtype)
        self.last_update = np.zeros(self.network.plan.n_params, self.network.dtype)

    def freeze(self, layers: int) -> None:
        """Freeze the lowest `layers` layers (0: train every layer): their parameters are never
        updated (the kernel updates the tail of the flat buffer from the first parameter of
        layer layers + 1) and their last update reads 0, so their update ratio is exactly 0."""
        specs = self.network.plan.params
        first = next((s.offset for s in specs if s.layer > layers), self.network.plan.n_params)
        self.first_trained = int(first)
        self.last_update[:first] = 0.0

    # -- how long a call takes -------------------------------------------------------------
    def example_macs(self) -> int:
        """Multiply-adds of one example's forward pass (the dense layers)."""
        return max(1, sum(layer.n_in * layer.fan_out for layer in self.network.layers))

    def step_macs(self) -> int:
        """Multiply-adds of one training step: forward and the two backward products, per example."""
        return 3 * self.batch_size * self.example_macs()

    def steps_per_second(self) -> float:
        """The training speed expected now: the last call's, rescaled to the current network and batch."""
        return self.macs_per_second / self.step_macs()

    def steps_per_call(self, seconds: float = CALL_SECONDS) -> int:
        """How many steps one call may run and still return within about `seconds` (at least 1)."""
        return max(1, int(seconds * self.steps_per_second()))

    def _timed(self, macs: float, start: float) -> None:
        elapsed = time.perf_counter() - start
        if macs > 0 and elapsed > 0:  # the latest call decides: a slow first call (compiling) is forgotten at once
            self.macs_per_second = macs / elapsed

    # -- training and evaluation -------------------------------------------------------------
    def run(self, lrs: np.ndarray) -> StepRecord:
        """Train len(lrs) steps, step i at learning rate lrs[i], in one compiled call (which
        cannot be interrupted: keep len(lrs) <= steps_per_call())."""
        n = int(lrs.shape[0])
        start = time.perf_counter()
        net = self.network
        args = self.train_steps_args(lrs)
        augment, ws, (loss, acc, gnorm, _, _, trace) = args[3], args[4], args[-1]
        augmenting = bool(np.any(augment.params != 0))  # augment_batch compiles only for a run that augments
        if augmenting and ws.links[K.L_AUGMENT, 1] == 0:
            from .warmup import KERNELS

            KERNELS.wait_all()  # a first run compiles it after the first step's kernels: never twice at once
        K.link(ws, net.weights, self.rng, K.TRAINING_LINKS + ((K.L_AUGMENT,) if augmenting else ()), augment)
        done = K.train_steps(*args)
        self._timed(done * self.step_macs(), start)
        net.trained_in(ws)
        # The kernel stops at the first non-finite loss/gradient (before the update) or
        # parameter (after it); the stopping step is counted, so look at it, not at `done`.
        last_bad = done > 0 and not (np.isfinite(loss[done - 1]) and np.isfinite(gnorm[done - 1]))
        diverged = done < n or last_bad or not np.all(np.isfinite(net.params))
        return StepRecord(loss[:done], acc[:done], gnorm[:done], bool(diverged), trace[:done])

    def train_steps_args(self, lrs: np.ndarray) -> tuple:
        """The arguments of kernels/network.train_steps for len(lrs) steps (the warm-up
        compiles the kernel for exactly these types)."""
        n = int(lrs.shape[0])
        net = self.network
        trace = np.full((n, self.trace_idx.size), np.nan)  # a step the kernel stopped at leaves NaN, never garbage
        data = K.Data(self.X, self.y, self.perm, self.cursor)
        augment = K.Augment(self.augment, self.image_shape, np.empty(self.X.shape[1], net.dtype))
        opt = K.Optimizer(self.optimizer.code, self.optimizer.hyper(), self.opt_state.m1, self.opt_state.m2,
                          self.opt_state.t, self.first_trained)
        out = K.Outputs(np.empty(n), np.empty(n), np.empty(n), self.last_update, self.trace_idx, trace)
        return (n, np.ascontiguousarray(lrs, np.float64), data, augment, net.workspace(self.batch_size), net.weights,
                opt, self.rng, LOSS_CODES[net.arch.loss], out)

    def evaluate(self, X: np.ndarray, y: np.ndarray, chunk: int = 512,
                 cancelled: Callable[[], bool] | None = None) -> tuple[float, float]:
        """Eval-mode (loss incl. penalties, accuracy) over a whole set; (nan, nan) if empty.

        Batches of `chunk` rows (fewer for huge networks, see EVAL_BATCH_MACS); a large set
        takes several calls of about CALL_SECONDS each (whole batches per call: the sum comes
        out the same), and `cancelled()` is asked between them (then Cancelled is raised)."""
        if X.shape[0] == 0:
            return float("nan"), float("nan")
        net = self.network
        fits = int(EVAL_BATCH_MACS // self.example_macs())
        if fits < chunk:
            chunk = 1 << max(0, fits.bit_length() - 1)  # the largest power of two that fits, at least 1
        ws = net.workspace(min(chunk, X.shape[0]), "eval")
        Xc = np.ascontiguousarray(X, dtype=net.dtype)
        yc = np.ascontiguousarray(y, np.int64)
        # a forward pass costs about a third of a training step per example (timed on training)
        rows = ws.batch * max(1, int(CALL_SECONDS * 3 * self.macs_per_second / self.example_macs()) // ws.batch)
        total, correct = 0.0, 0
        for start in range(0, X.shape[0], rows):
            if start and cancelled is not None and cancelled():
                raise Cancelled
            total, c = net.evaluate_rows(ws, Xc[start:start + rows], yc[start:start + rows], total)
            correct += c
        return total / X.shape[0] + weight_penalty(net), correct / X.shape[0]


PENALTY_CHUNK = 1 << 20  # float64 entries converted at a time: the penalty costs 8 MB, not 13 bytes a weight


def weight_penalty(net: Network) -> float:
    """0.5 * l2 * sum(W^2) + l1 * sum(|W|) over the weight matrices, in float64; 0 without penalties."""
    if not (net.l1 or net.l2):
        return 0.0
    sq = ab = 0.0
    for spec in net.plan.params:
        if spec.role != "W":
            continue
        flat = net.params[spec.offset:spec.offset + spec.size]
        for start in range(0, flat.size, PENALTY_CHUNK):
            w = flat[start:start + PENALTY_CHUNK].astype(np.float64)
            sq += float(w @ w)
            ab += float(np.abs(w).sum())
    return 0.5 * net.l2 * sq + net.l1 * ab
