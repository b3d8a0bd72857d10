"""Benchmark workloads, each built three ways over the same shapes:

* the **engine**: `lab.engine` Network + Trainer (numba kernels, one compiled call per chunk);
* a **plain-numpy reference** (`NumpyMLP`): the same minibatch step written as compact,
  vectorised numpy (gather, forward, softmax cross-entropy, backward, global gradient norm,
  momentum update), so "engine vs numpy" compares against what a reader of CS231n would write;
* the **GEMM floor** (`GemmFloor`): only the matrix multiplies of that step, in numpy with
  preallocated `out=` buffers, i.e. the time no implementation calling the same BLAS can beat
  by much.  Per dense layer l (x = its input, W (n_in, n_out), dz = gradient of its output):
  forward `x @ W`; backward `x.T @ dz` (dW) and `dz @ W.T` (dx, skipped for the first layer,
  as the engine skips it: nobody needs the gradient of the data).

Everything here is plain Python/numpy; timing and printing live in `benchmarks.run`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

DTYPE = np.float32


# -- workload descriptions ----------------------------------------------------------------
@dataclass(frozen=True)
class Workload:
    """A network shape and what one timed "step" of it is.

    mode "train":   one minibatch training step (momentum SGD, softmax loss).
    mode "forward": one eval-mode forward of a batch; also measured as one call of
                    `lab.sim.stats.layer_stats` (the per-layer statistics of a Snapshot)
                    whose probe set is that batch, so its probe forward is the eval
                    forward: the extra row "<name>+stats".
    `steps` steps run per timed call (one `Trainer.run` chunk for the engine).
    """

    name: str
    summary: str
    input_dim: int
    hidden: tuple[int, ...]
    classes: int
    batch: int
    activation: str = "relu"
    mode: str = "train"
    steps: int = 100
    repeats: int = 7
    n_train: int = 2048
    lr: float = 1e-3
    momentum: float = 0.9
    seed: int = 0

    @property
    def widths(self) -> list[int]:
        return [self.input_dim, *self.hidden, self.classes]

    @property
    def shape(self) -> str:
        return "-".join(str(w) for w in self.widths)

    @property
    def init_scheme(self) -> str:
        return "kaiming" if self.activation == "relu" else "xavier"

    @property
    def n_matrices(self) -> int:
        return len(self.widths) - 1

    def gemm_flops(self) -> float:
        """Floating-point operations of the GEMM floor of one step."""
        w = self.widths
        fwd = sum(2.0 * self.batch * a * b for a, b in zip(w[:-1], w[1:]))
        if self.mode != "train":
            return fwd
        dx = sum(2.0 * self.batch * a * b for a, b in zip(w[1:-1], w[2:]))
        return 2 * fwd + dx


WORKLOADS: dict[str, Workload] = {
    wl.name: wl
    for wl in (
        Workload("small", "2-100-100-3 relu, batch 64, momentum: training steps",
                 2, (100, 100), 3, 64, steps=2000, repeats=7),
        Workload("digits", "64-256-256-10 relu, batch 128, momentum: training steps (random data, digits' shape)",
                 64, (256, 256), 10, 128, steps=200, repeats=7),
        Workload("mnist", "784-512-512-10 relu, batch 128, momentum: training steps (random data, MNIST's shape)",
                 784, (512, 512), 10, 128, steps=50, repeats=7),
        Workload("deep-forward", "7 dense 4096x4096 tanh, batch 16: eval forward (and + layer_stats)",
                 4096, (4096,) * 6, 4096, 16, activation="tanh", mode="forward", steps=4, repeats=5,
                 n_train=256),
        Workload("deep-train", "6 dense 1024x1024 tanh, batch 16, momentum: one training step",
                 1024, (1024,) * 5, 1024, 16, activation="tanh", steps=10, repeats=7, n_train=512),
    )
}

# Quick mode: tiny step counts, 2 repeats, and the deep networks narrowed to 512.
_QUICK = {
    "small": dict(steps=50, repeats=2),
    "digits": dict(steps=10, repeats=2),
    "mnist": dict(steps=3, repeats=2),
    "deep-forward": dict(input_dim=512, hidden=(512,) * 6, classes=512, steps=2, repeats=2, n_train=64),
    "deep-train": dict(input_dim=512, hidden=(512,) * 5, classes=512, steps=2, repeats=2, n_train=64),
}


def get_workloads(quick: bool = False, only: str | None = None) -> list[Workload]:
    names = [only] if only else list(WORKLOADS)
    out = []
    for name in names:
        if name not in WORKLOADS:
            raise KeyError(f"unknown workload {name!r}; expected one of {', '.join(WORKLOADS)}")
        wl = WORKLOADS[name]
        out.append(replace(wl, **_QUICK[name]) if quick else wl)
    return out


def make_data(wl: Workload) -> tuple[np.ndarray, np.ndarray]:
    """Random standard-normal inputs and uniform labels of the workload's shape (seeded)."""
    rng = np.random.default_rng(wl.seed + 100)
    X = rng.standard_normal((wl.n_train, wl.input_dim), dtype=DTYPE)
    y = rng.integers(0, wl.classes, wl.n_train).astype(np.int64)
    return X, y


# -- the engine ----------------------------------------------------------------------------
class EngineModel:
    """The lab engine on a workload: Network + Trainer, exactly as the app drives them."""

    def __init__(self, wl: Workload, X: np.ndarray, y: np.ndarray) -> None:
        from lab.engine.architecture import Architecture
        from lab.engine.network import Network
        from lab.engine.optim import OptimizerConfig
        from lab.engine.trainer import Trainer

        self.wl = wl
        arch = Architecture(input_dim=wl.input_dim, classes=wl.classes, hidden=wl.hidden,
                            activation=wl.activation)
        self.network = Network(arch, DTYPE)
        self.network.initialize(wl.init_scheme, np.random.default_rng(wl.seed))
        self.trainer = Trainer(self.network, X, y, batch_size=wl.batch,
                               optimizer=OptimizerConfig("momentum", momentum=wl.momentum),
                               rng=np.random.default_rng(wl.seed + 1))
        self.x_eval = np.ascontiguousarray(X[:wl.batch])
        self.y_eval = np.ascontiguousarray(y[:wl.batch])
        self._stats_ready = False

    def weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(W, b) views per dense layer, in forward order."""
        return [(self.network.param(f"W{l}"), self.network.param(f"b{l}"))
                for l in range(1, self.wl.n_matrices + 1)]

    def train(self, n: int) -> None:
        rec = self.trainer.run(np.full(n, self.wl.lr))
        if rec.diverged:
            raise RuntimeError(f"{self.wl.name}: the engine diverged; timings would be meaningless")

    def forward(self, n: int) -> None:
        for _ in range(n):
            self.network.forward(self.x_eval, train=False)

    # the per-layer statistics of a Snapshot, with the eval batch as the probe set
    def prepare_stats(self) -> None:
        """One training step at a negligible learning rate, so `network.batch_ws` and
        `trainer.last_update` exist (layer_stats reads them)."""
        self.trainer.run(np.full(1, 1e-12))
        self._stats_ready = True

    def forward_and_stats(self, n: int) -> None:
        """n calls of layer_stats: each runs one eval-mode forward of x_eval (its probe
        pass, for dead units) plus every statistic; no separate eval forward."""
        if not self._stats_ready:
            self.prepare_stats()
        for _ in range(n):
            self.layer_stats()

    def layer_stats(self):
        """`lab.sim.stats.layer_stats` as the Simulation calls it, with the eval batch (rows
        and labels) as the probe set.  For deep-forward that is also the probe size the
        Simulation would pick (`probe_size` caps the probe's cost on wide networks)."""
        from lab.sim.stats import layer_stats

        return layer_stats(self.network, self.trainer.last_update, self.x_eval, self.y_eval,
                           batch_size=self.wl.batch)


# -- the plain-numpy reference --------------------------------------------------------------
class NumpyMLP:
    """Dense relu/tanh network with a softmax loss and momentum SGD, in vectorised numpy.

    One `train_step` does what one engine step does: take the next minibatch of a shuffled
    permutation (reshuffled when exhausted), forward, softmax cross-entropy loss and
    accuracy, backward, the global gradient norm, and v = mu*v - lr*g; p += v.
    """

    def __init__(self, weights, activation: str, X: np.ndarray, y: np.ndarray, batch: int,
                 momentum: float = 0.9, seed: int = 0, copy: bool = True) -> None:
        if activation not in ("relu", "tanh"):
            raise ValueError("the numpy reference implements relu and tanh only")
        self.relu = activation == "relu"
        conv = (lambda a: np.array(a, DTYPE)) if copy else (lambda a: np.asarray(a, DTYPE))
        self.W = [conv(W) for W, _ in weights]
        self.b = [conv(b) for _, b in weights]
        self.params = [p for pair in zip(self.W, self.b) for p in pair]
        self.velocity = [np.zeros_like(p) for p in self.params] if copy else []
        self.X, self.y, self.B, self.mu = X, y, batch, momentum
        self.rng = np.random.default_rng(seed)
        self.perm = np.arange(X.shape[0])
        self.cursor = X.shape[0]

    def _next_batch(self) -> tuple[np.ndarray, np.ndarray]:
        if self.cursor + self.B > self.X.shape[0]:
            self.rng.shuffle(self.perm)
            self.cursor = 0
        idx = self.perm[self.cursor:self.cursor + self.B]
        self.cursor += self.B
        return self.X[idx], self.y[idx]

    def forward(self, x: np.ndarray) -> list[np.ndarray]:
        """Inputs of every dense layer, then the scores (L + 1 arrays)."""
        nodes = [x]
        last = len(self.W) - 1
        for l, (W, b) in enumerate(zip(self.W, self.b)):
            z = nodes[-1] @ W
            z += b
            if l < last:
                np.maximum(z, 0, out=z) if self.relu else np.tanh(z, out=z)
            nodes.append(z)
        return nodes

    def train_step(self, lr: float) -> tuple[float, float, float]:
        x, y = self._next_batch()
        nodes = self.forward(x)
        scores = nodes[-1]
        B = x.shape[0]
        rows = np.arange(B)
        shifted = scores - scores.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        norm = e.sum(axis=1, keepdims=True)
        loss = float(np.mean(np.log(norm[:, 0]) - shifted[rows, y]))
        acc = float(np.mean(scores.argmax(axis=1) == y))
        dz = e / norm
        dz[rows, y] -= 1.0
        dz /= B
        grads = [None] * len(self.params)
        for l in range(len(self.W) - 1, -1, -1):
            a = nodes[l]
            grads[2 * l] = a.T @ dz
            grads[2 * l + 1] = dz.sum(axis=0)
            if l > 0:
                da = dz @ self.W[l].T
                if self.relu:
                    da *= a > 0  # a = relu(z) > 0 exactly where z > 0
                else:
                    da *= 1.0 - a * a
                dz = da
        gnorm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
        for p, v, g in zip(self.params, self.velocity, grads):
            v *= self.mu
            v -= lr * g
            p += v
        return loss, acc, gnorm

    def train(self, n: int, lr: float) -> None:
        for _ in range(n):
            self.train_step(lr)

    def forward_and_stats(self, x: np.ndarray) -> list[dict]:
        """Eval forward, then for every layer's output node: mean, std, zero and saturated
        fractions and a 40-bin histogram (the per-node statistics, with no weight statistics)."""
        nodes = self.forward(x)[1:]
        out = []
        for l, a in enumerate(nodes):
            tanh = not self.relu and l < len(nodes) - 1
            lo, hi = (-1.0, 1.0) if tanh else (-5.0, 5.0)
            idx = np.floor((a.ravel() - lo) * (40 / (hi - lo))).astype(np.int64)
            np.clip(idx, 0, 39, out=idx)
            out.append(dict(mean=float(a.mean(dtype=np.float64)), std=float(a.std(dtype=np.float64)),
                            zero=float(np.mean(np.abs(a) < 1e-3)),
                            saturated=float(np.mean(np.abs(a) > 0.99)) if tanh else 0.0,
                            hist=np.bincount(idx, minlength=40)))
        return out


# -- the GEMM floor ----------------------------------------------------------------------
class GemmFloor:
    """Only the matrix multiplies of a step, into preallocated buffers (`np.matmul(out=)`)."""

    def __init__(self, widths: list[int], batch: int, weights: list[np.ndarray] | None = None,
                 seed: int = 0) -> None:
        rng = np.random.default_rng(seed + 7)
        pairs = list(zip(widths[:-1], widths[1:]))
        if weights is None:  # std 1/sqrt(n_in) keeps values O(1) through the layers
            weights = [(rng.standard_normal((a, b), dtype=DTYPE) / np.sqrt(a)).astype(DTYPE) for a, b in pairs]
        self.W = list(weights)
        self.a = [rng.standard_normal((batch, w), dtype=DTYPE) for w in widths]  # node values
        self.d = [rng.standard_normal((batch, w), dtype=DTYPE) for w in widths]  # node gradients
        self.dW = [np.empty((a, b), DTYPE) for a, b in pairs]

    def forward(self, n: int) -> None:
        W, a = self.W, self.a
        for _ in range(n):
            for l in range(len(W)):
                np.matmul(a[l], W[l], out=a[l + 1])

    def train(self, n: int) -> None:
        W, a, d, dW = self.W, self.a, self.d, self.dW
        for _ in range(n):
            for l in range(len(W)):
                np.matmul(a[l], W[l], out=a[l + 1])
            for l in range(len(W) - 1, -1, -1):
                np.matmul(a[l].T, d[l + 1], out=dW[l])
                if l > 0:
                    np.matmul(d[l + 1], W[l].T, out=d[l])


# -- cases: what run.py times -----------------------------------------------------------------
@dataclass
class Side:
    """One implementation of a case: fn(n) runs n steps; `steps` of them per timed call."""

    fn: Callable[[int], object]
    steps: int


@dataclass
class Case:
    """One table row: the three sides of one kind of step."""

    name: str
    what: str  # what one step is
    engine: Side
    numpy: Side
    gemm: Side
    flops: float  # of the GEMM floor, per step
    engine_model: EngineModel | None = None  # for run.py's --diagnose
    repeats: int | None = None  # cap on the workload's repeats (slow rows)


def build_cases(wl: Workload) -> list[Case]:
    """Build the engine, numpy and GEMM-floor sides of a workload (allocates everything)."""
    X, y = make_data(wl)
    eng = EngineModel(wl, X, y)
    if wl.mode == "train":
        ref = NumpyMLP(eng.weights(), wl.activation, X, y, wl.batch, wl.momentum, wl.seed + 1)
        floor = GemmFloor(wl.widths, wl.batch, seed=wl.seed)
        return [Case(wl.name, "training step", Side(eng.train, wl.steps),
                     Side(lambda n: ref.train(n, wl.lr), wl.steps), Side(floor.train, wl.steps),
                     wl.gemm_flops(), eng)]
    # forward: the numpy reference reads the engine's weights (views; it never writes them)
    ref = NumpyMLP(eng.weights(), wl.activation, X, y, wl.batch, copy=False)
    floor = GemmFloor(wl.widths, wl.batch, weights=ref.W, seed=wl.seed)
    x = eng.x_eval

    def ref_forward(n: int) -> None:
        for _ in range(n):
            ref.forward(x)

    def ref_stats(n: int) -> None:
        for _ in range(n):
            ref.forward_and_stats(x)

    eng.prepare_stats()
    return [
        Case(wl.name, "eval forward", Side(eng.forward, wl.steps), Side(ref_forward, wl.steps),
             Side(floor.forward, wl.steps), wl.gemm_flops(), eng),
        Case(wl.name + "+stats", "layer_stats, probe = eval batch", Side(eng.forward_and_stats, 1),
             Side(ref_stats, wl.steps), Side(floor.forward, wl.steps), wl.gemm_flops(), eng, repeats=3),
    ]


__all__ = ["Workload", "WORKLOADS", "get_workloads", "make_data", "EngineModel", "NumpyMLP", "GemmFloor",
           "Side", "Case", "build_cases", "DTYPE"]
