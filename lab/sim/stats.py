"""Per-layer statistics of a Snapshot (see DESIGN.md "Metrics").

Everything is read from buffers the last training step left behind (activations and
gradients of the current batch, the last update), plus one eval-mode pass over a fixed
probe set for dead units.  Nothing here touches the training random stream, so taking
snapshots can never change a run.
"""

from __future__ import annotations

import numpy as np

from lab.engine.kernels.activations import ACTIVATION_CODES, activation_backward
from lab.engine.network import Network

from .bins import SYMLOG_BINS, activation_bins
from .snapshot import LayerStats

DEAD_SLOPE = 1e-3  # a unit is dead when f'(z) < this for every probe example: it cannot learn
ZERO_THRESHOLD = 1e-3
MAX_SIMILARITY_UNITS = 128
MAX_HISTOGRAM_VALUES = 1 << 16  # weight/update histograms of huge layers use an evenly strided sample
PROBE_MAX = 512
PROBE_MACS_BUDGET = 2e8  # cap the probe's cost for very wide networks


def probe_size(network: Network, n_train: int, batch: int) -> int:
    macs = sum(layer.n_in * layer.fan_out for layer in network.layers)
    return int(min(PROBE_MAX, n_train, max(batch, PROBE_MACS_BUDGET // max(macs, 1))))


def saturated_fraction(kind: str, a: np.ndarray) -> float:
    if kind == "tanh":
        return float(np.mean(np.abs(a) > 0.99))
    if kind == "sigmoid":
        return float(np.mean((a < 0.01) | (a > 0.99)))
    return 0.0


def dead_fraction(network: Network, layer, z: np.ndarray, a: np.ndarray) -> float:
    """Fraction of units whose local slope f'(z) is below DEAD_SLOPE on every probe example."""
    if layer.kind in ("output", "residual", "maxout") or z.shape[0] == 0:
        return 0.0
    slope = network.param(f"slope{layer.index}") if layer.kind == "prelu" else np.zeros(0, network.dtype)
    dz = np.empty_like(z)
    activation_backward(ACTIVATION_CODES[layer.kind], np.ones_like(z), z, a, network.arch.alpha_value,
                        np.ascontiguousarray(slope), dz, np.zeros_like(slope))
    return float(np.mean(np.all(np.abs(dz) < DEAD_SLOPE, axis=0)))


def sign_agreement(dw: np.ndarray) -> float:
    """Mean over units (columns) of the share of incoming weight gradients with the majority sign."""
    pos = (dw > 0).sum(axis=0)
    neg = (dw < 0).sum(axis=0)
    nonzero = pos + neg
    live = nonzero > 0
    if not np.any(live):
        return float("nan")
    return float(np.mean(np.maximum(pos, neg)[live] / nonzero[live]))


def unit_similarity(w: np.ndarray) -> float:
    """Mean pairwise cosine similarity of units' incoming weight vectors (columns of W).

    Two all-zero units count as identical (similarity 1): zero init never breaks symmetry.
    Very wide layers are subsampled to evenly spaced units.
    """
    n = w.shape[1]
    if n < 2:
        return float("nan")
    cols = np.linspace(0, n - 1, min(n, MAX_SIMILARITY_UNITS)).astype(np.int64)
    v = w[:, cols].astype(np.float64)
    norms = np.linalg.norm(v, axis=0)
    zero = norms == 0
    u = v / np.where(zero, 1.0, norms)
    sim = u.T @ u
    both_zero = zero[:, None] & zero[None, :]
    sim = np.where(both_zero, 1.0, sim)
    m = len(cols)
    return float((sim.sum() - np.trace(sim)) / (m * (m - 1)))


def strided_sample(x: np.ndarray, limit: int = MAX_HISTOGRAM_VALUES) -> np.ndarray:
    """At most `limit` entries, evenly strided (deterministic): a 4096x4096 layer's 16.7M
    weights would cost a second per histogram, and a 65k sample has the same shape."""
    flat = x.ravel()
    return flat if flat.size <= limit else flat[:: -(-flat.size // limit)]


def _std(x: np.ndarray) -> float:
    return float(np.std(x, dtype=np.float64)) if x.size else float("nan")


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x, dtype=np.float64)) if x.size else float("nan")


def layer_stats(network: Network, last_update: np.ndarray, probe_x: np.ndarray,
                probe_y: np.ndarray, batch_size: int) -> tuple[LayerStats, ...]:
    """Statistics of every layer from the last training step, and dead units on the probe set."""
    batch_ws = network.batch_ws
    if batch_ws is None:  # no step yet: a gradient pass (no update) on a training-sized batch
        n = min(batch_size, probe_x.shape[0])
        network.loss_and_grads(probe_x[:n], probe_y[:n], train=False)
        batch_ws = network.last_workspace
    network.forward(probe_x, train=False, purpose="probe")
    probe_ws = network.last_workspace
    edges_sym = SYMLOG_BINS.edges
    out = []
    for layer in network.layers:
        a, da = batch_ws.node(layer.out_node), batch_ws.grad_node(layer.out_node)
        spec = layer.weight
        w = network.param(spec.name)
        dw = network.grad(spec.name)
        dW_update = last_update[spec.offset:spec.offset + spec.size]
        w_norm = float(np.linalg.norm(w))
        bins = activation_bins(layer.kind)
        out.append(LayerStats(
            index=layer.index,
            name=f"layer {layer.index} ({layer.kind})",
            kind=layer.kind,
            width=layer.n_out,
            act_mean=_mean(a), act_std=_std(a),
            grad_mean=_mean(da), grad_std=_std(da),
            wgrad_std=_std(dw), weight_std=_std(w),
            update_ratio=float(np.linalg.norm(dW_update)) / w_norm if w_norm > 0 else float("nan"),
            dead_fraction=dead_fraction(network, layer, probe_ws.node(layer.pre_node), probe_ws.node(layer.out_node)),
            saturated_fraction=saturated_fraction(layer.kind, a),
            zero_fraction=float(np.mean(np.abs(a) < ZERO_THRESHOLD)),
            sign_agreement=sign_agreement(dw),
            unit_similarity=unit_similarity(w),
            act_hist=bins.histogram(a), act_edges=bins.edges,
            grad_hist=SYMLOG_BINS.histogram(da), grad_edges=edges_sym,
            weight_hist=SYMLOG_BINS.histogram(strided_sample(w)),
            update_hist=SYMLOG_BINS.histogram(strided_sample(dW_update)),
            value_edges=edges_sym,
        ))
    return tuple(out)
