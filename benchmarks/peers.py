"""The lab's training step written in PyTorch (CPU, eager) and JAX (CPU, jit + lax.scan).

Both peers do exactly the work one engine step does (`Trainer.run`, kernels/network.py
`train_steps`), on the same float32 data and starting weights:

1. the next minibatch: rows `perm[cursor:cursor + B]` of the same 2048-row set, where `perm`
   is reshuffled with numpy's `Generator.shuffle` when fewer than B rows are left
   (`IndexStream`: the engine's own sequence, draw for draw, from the same seed); drawing
   the indices is part of every timed call, as the engine's shuffle is part of its step;
2. forward `x @ W + b`, relu/tanh on the hidden layers, softmax cross-entropy loss (batch
   mean) and accuracy;
3. backward to every weight and bias (never to the data);
4. the global gradient norm `sqrt(sum of every gradient entry squared)`;
5. momentum SGD: `v = mu*v - lr*g; p += v`;
6. the step's loss, accuracy and gradient norm recorded (returned per step, as
   `Trainer.run` returns them).

What the engine does that the peers skip, to their advantage: it stops at the first
non-finite loss, gradient norm or parameter (the parameter check is folded into the update
pass); the peers only check the recorded losses and norms after each chunk.

Import torch and jax only through `load_peers()`: it limits their threads first.
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np

DTYPE = np.float32
INSTALL_HINT = "pip install -e '.[peers]'"
# XLA:CPU on one thread: no Eigen thread pool for the products, one intra-op thread.  In jax
# 0.10 these alone leave XLA's pool at one thread per allowed CPU: pin_to_one_core() before
# the import is what sizes it to one (the pool follows the CPU affinity at start).
JAX_THREAD_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


# -- the minibatch sequence ------------------------------------------------------------------
class IndexStream:
    """The engine's minibatch rows: walk a permutation of range(n_rows), B rows a step,
    reshuffling it (numpy's `Generator.shuffle`, as the engine's kernel does, draw for
    draw) when fewer than B rows are left; the first step shuffles first."""

    def __init__(self, n_rows: int, batch: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.perm = np.arange(n_rows, dtype=np.int64)
        self.cursor = n_rows
        self.batch = batch

    def take(self, n: int) -> np.ndarray:
        """The rows of the next n steps, (n, B) int64."""
        B, N = self.batch, self.perm.size
        out = np.empty((n, B), np.int64)
        for s in range(n):
            if self.cursor + B > N:
                self.rng.shuffle(self.perm)
                self.cursor = 0
            out[s] = self.perm[self.cursor:self.cursor + B]
            self.cursor += B
        return out


# -- loading the peers ---------------------------------------------------------------------------
def limit_threads(threads: int) -> list[str]:
    """Set the environment that caps torch's and JAX's threads; must run before they are
    imported (JAX reads XLA_FLAGS once).  Returns warnings (a peer imported too early)."""
    warnings = []
    if "jax" in sys.modules:
        warnings.append("jax was imported before the benchmark could limit its threads: its thread "
                        "count is whatever it chose")
    elif threads == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_cpu_multi_thread_eigen" not in flags:
            os.environ["XLA_FLAGS"] = (flags + " " + JAX_THREAD_FLAGS).strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    return warnings


def load_peers(threads: int) -> tuple[dict, list[str]]:
    """Import whichever of torch and jax is installed, limited to `threads` threads.

    Returns ({"torch": module or None, "jax": module or None}, notes)."""
    notes = limit_threads(threads)
    peers: dict = {"torch": None, "jax": None}
    try:
        import torch
    except ImportError:
        pass
    else:
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError:  # only allowed before torch's first parallel work
            if torch.get_num_interop_threads() != threads:
                notes.append(f"torch's inter-op pool was already started with "
                             f"{torch.get_num_interop_threads()} threads")
        peers["torch"] = torch
    try:
        import jax
    except ImportError:
        pass
    else:
        jax.config.update("jax_enable_x64", False)
        peers["jax"] = jax
    return peers, notes


# -- pinning ---------------------------------------------------------------------------------
def pin_to_one_core() -> tuple[int | None, object]:
    """Pin every thread of this process (and so every thread started later) to one CPU of
    the allowed set, with os.sched_setaffinity; returns (cpu, a function that undoes it),
    cpu None where the OS does not allow it."""
    if not hasattr(os, "sched_setaffinity"):
        return None, lambda: None
    try:
        allowed = sorted(os.sched_getaffinity(0))
        cpu = allowed[-1]
        tids = [int(t) for t in os.listdir("/proc/self/task")] if os.path.isdir("/proc/self/task") else [0]
        for tid in tids:
            try:
                os.sched_setaffinity(tid, {cpu})
            except ProcessLookupError:  # a thread that ended meanwhile
                pass
    except OSError:
        return None, lambda: None

    def undo() -> None:
        tids_now = [int(t) for t in os.listdir("/proc/self/task")] if os.path.isdir("/proc/self/task") else [0]
        for tid in tids_now:
            try:
                os.sched_setaffinity(tid, allowed)
            except OSError:
                pass

    return cpu, undo


# -- PyTorch, eager ------------------------------------------------------------------------------
class TorchMLP:
    """The step in PyTorch eager mode, written for speed on the CPU.

    Parameters are plain leaf tensors (W as (n_in, n_out), so a layer is one `torch.addmm`);
    autograd (`loss.backward()`) computes the gradients; the norm is
    `torch.nn.utils.get_total_norm` (one `_foreach_norm` over the gradient list, then the
    norm of those norms); the update is the three `_foreach` kernels torch.optim.SGD's
    foreach path runs, in the lab's form `v = mu*v - lr*g; p += v`.
    """

    def __init__(self, torch, weights, activation: str, X: np.ndarray, y: np.ndarray, batch: int,
                 momentum: float, seed: int) -> None:
        self.torch = torch
        self.act = {"relu": torch.relu, "tanh": torch.tanh}[activation]
        self.W = [torch.tensor(np.array(W, DTYPE), requires_grad=True) for W, _ in weights]
        self.b = [torch.tensor(np.array(b, DTYPE), requires_grad=True) for _, b in weights]
        self.params = [p for pair in zip(self.W, self.b) for p in pair]
        self.velocity = [torch.zeros_like(p) for p in self.params]
        self.X = torch.from_numpy(np.ascontiguousarray(X, DTYPE))
        self.y = torch.from_numpy(np.ascontiguousarray(y, np.int64))
        self.mu = momentum
        self.batches = IndexStream(X.shape[0], batch, seed)
        norm = getattr(torch.nn.utils, "get_total_norm", None)
        self._norm = ((lambda gs: norm(gs, 2.0, foreach=True)) if norm is not None else
                      (lambda gs: torch.linalg.vector_norm(torch.stack(torch._foreach_norm(gs)))))

    def train(self, n: int, lr: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """n steps at learning rate lr; (loss, accuracy, gradient norm) per step."""
        torch, F = self.torch, self.torch.nn.functional
        idx = torch.from_numpy(self.batches.take(n))
        W, b, params, vel, act, mu = self.W, self.b, self.params, self.velocity, self.act, self.mu
        last = len(W) - 1
        losses, accs, norms = [], [], []
        for s in range(n):
            rows = idx[s]
            h = self.X.index_select(0, rows)
            yb = self.y.index_select(0, rows)
            for l in range(last):
                h = act(torch.addmm(b[l], h, W[l]))
            scores = torch.addmm(b[last], h, W[last])
            loss = F.cross_entropy(scores, yb)
            for p in params:
                p.grad = None
            loss.backward()
            grads = [p.grad for p in params]
            with torch.no_grad():
                norms.append(self._norm(grads))
                accs.append((scores.argmax(1) == yb).sum())
                losses.append(loss.detach())
                torch._foreach_mul_(vel, mu)
                torch._foreach_add_(vel, grads, alpha=-lr)
                torch._foreach_add_(params, vel)
        B = idx.shape[1]
        return (torch.stack(losses).numpy().astype(np.float64), torch.stack(accs).numpy() / B,
                torch.stack(norms).numpy().astype(np.float64))

    def weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(W.detach().numpy().copy(), b.detach().numpy().copy()) for W, b in zip(self.W, self.b)]


# -- JAX, jit + lax.scan -------------------------------------------------------------------------
class JaxMLP:
    """The step in JAX: one jitted call per chunk of steps, `lax.scan` over the chunk.

    The scan carries (params, velocity); each iteration gathers its rows (`X[idx]`),
    runs `jax.value_and_grad` of the softmax cross-entropy (`jax.nn.log_softmax`, batch
    mean; accuracy as auxiliary output), the global norm of the gradient pytree, and the
    momentum update, and emits (loss, accuracy, norm): every per-step output is returned,
    so XLA cannot drop any of it.  Parameters and velocity are donated (updated in place);
    X and y live on the device for the whole run; the chunk's indices and learning rates
    are passed in per call (one compile per chunk length, at the untimed warm-up).
    """

    def __init__(self, jax, weights, activation: str, X: np.ndarray, y: np.ndarray, batch: int,
                 momentum: float, seed: int) -> None:
        import jax.numpy as jnp
        from jax import lax

        self.jax, self.jnp = jax, jnp
        act = {"relu": jax.nn.relu, "tanh": jnp.tanh}[activation]
        self.params = [(jnp.asarray(np.array(W, DTYPE)), jnp.asarray(np.array(b, DTYPE))) for W, b in weights]
        self.velocity = jax.tree_util.tree_map(jnp.zeros_like, self.params)
        self.X = jax.device_put(np.ascontiguousarray(X, DTYPE))
        self.y = jax.device_put(np.ascontiguousarray(y, np.int32))
        self.batches = IndexStream(X.shape[0], batch, seed)
        mu = np.float32(momentum)

        def loss_fn(params, xb, yb):
            h = xb
            for W, b in params[:-1]:
                h = act(h @ W + b)
            W, b = params[-1]
            scores = h @ W + b
            logp = jax.nn.log_softmax(scores, axis=1)
            loss = -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))
            acc = jnp.mean((jnp.argmax(scores, axis=1) == yb).astype(jnp.float32))
            return loss, acc

        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

        def chunk(params, velocity, X, y, idx, lrs):
            def step(carry, xs):
                params, velocity = carry
                rows, lr = xs
                (loss, acc), grads = grad_fn(params, X[rows], y[rows])
                leaves = jax.tree_util.tree_leaves(grads)
                gnorm = jnp.sqrt(sum(jnp.vdot(g, g) for g in leaves))
                velocity = jax.tree_util.tree_map(lambda v, g: mu * v - lr * g, velocity, grads)
                params = jax.tree_util.tree_map(lambda p, v: p + v, params, velocity)
                return (params, velocity), (loss, acc, gnorm)

            (params, velocity), out = lax.scan(step, (params, velocity), (idx, lrs))
            return params, velocity, out

        self._chunk = jax.jit(chunk, donate_argnums=(0, 1))

    def train(self, n: int, lr: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """n steps at learning rate lr; (loss, accuracy, gradient norm) per step."""
        idx = self.batches.take(n).astype(np.int32)
        lrs = np.full(n, lr, DTYPE)
        self.params, self.velocity, (loss, acc, gnorm) = self._chunk(self.params, self.velocity, self.X, self.y,
                                                                     idx, lrs)
        # np.asarray waits for the result: the timed call ends when the chunk has run
        return (np.asarray(loss).astype(np.float64), np.asarray(acc).astype(np.float64),
                np.asarray(gnorm).astype(np.float64))

    def weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(np.array(W), np.array(b)) for W, b in self.params]


PEER_CLASSES = {"torch": TorchMLP, "jax": JaxMLP}
PEER_LABELS = {"torch": "PyTorch eager", "jax": "JAX jit+scan"}


def build_peer(name: str, module, weights, activation: str, X: np.ndarray, y: np.ndarray, batch: int,
               momentum: float, seed: int):
    return PEER_CLASSES[name](module, weights, activation, X, y, batch, momentum, seed)


def check_finite(name: str, records: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    loss, _, gnorm = records
    if not (math.isfinite(float(loss[-1])) and math.isfinite(float(gnorm[-1]))):
        raise RuntimeError(f"{name} diverged; timings would be meaningless")


__all__ = ["IndexStream", "INSTALL_HINT", "load_peers", "pin_to_one_core", "TorchMLP", "JaxMLP", "PEER_CLASSES",
           "PEER_LABELS", "build_peer", "check_finite"]
