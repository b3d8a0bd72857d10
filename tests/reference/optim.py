"""Plain-numpy oracle of the optimizer updates in docs/network.md.

state is a plain dict, {} before the first step:
    {"t": steps taken, "v": {name: velocity / second moment}, "m": {name: first moment}}
("v" is the velocity for momentum/nesterov, the squared-gradient average c for rmsprop
and the second moment for adam/adamw).
"""

from __future__ import annotations

import numpy as np

OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw")


def clip_global_norm(grads: dict[str, np.ndarray], clip_norm: float) -> dict[str, np.ndarray]:
    """If clip_norm > 0 and ||g|| > clip_norm (norm over all parameters), scale g by clip_norm/||g||."""
    g = {k: np.array(v, dtype=np.float64) for k, v in grads.items()}
    if clip_norm > 0:
        norm = float(np.sqrt(sum(float(np.sum(v * v)) for v in g.values())))
        if norm > clip_norm:
            g = {k: v * (clip_norm / norm) for k, v in g.items()}
    return g


def reference_optimizer_step(name, params, grads, state, lr, *, momentum=0.9, beta1=0.9, beta2=0.999,
                             eps=1e-8, weight_decay=0.0, clip_norm=0.0):
    """One update of every parameter; returns (new_params, new_state). Inputs are not mutated."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}")
    state = state or {}
    t = int(state.get("t", 0)) + 1
    old_v = state.get("v", {})
    old_m = state.get("m", {})
    g = clip_global_norm(grads, clip_norm)
    mu = momentum

    new_params: dict[str, np.ndarray] = {}
    new_v: dict[str, np.ndarray] = {}
    new_m: dict[str, np.ndarray] = {}
    for key, p0 in params.items():
        p = np.array(p0, dtype=np.float64)  # copy
        gk = g[key]
        if weight_decay > 0 and key.startswith("W"):
            p = p - lr * weight_decay * p  # decoupled decay, W matrices only, before the update
        v = np.array(old_v.get(key, np.zeros_like(p)), dtype=np.float64)
        if name == "sgd":
            p = p - lr * gk
        elif name == "momentum":
            v = mu * v - lr * gk
            p = p + v
        elif name == "nesterov":
            v_prev = v
            v = mu * v - lr * gk
            p = p + (-mu * v_prev + (1.0 + mu) * v)
        elif name == "rmsprop":
            v = beta2 * v + (1.0 - beta2) * gk**2
            p = p - lr * gk / (np.sqrt(v) + eps)
        else:  # adam, adamw
            m = np.array(old_m.get(key, np.zeros_like(p)), dtype=np.float64)
            m = beta1 * m + (1.0 - beta1) * gk
            v = beta2 * v + (1.0 - beta2) * gk**2
            m_hat = m / (1.0 - beta1**t)
            v_hat = v / (1.0 - beta2**t)
            p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
            new_m[key] = m
        if name != "sgd":
            new_v[key] = v
        new_params[key] = p
    new_state = {"t": t, "v": new_v, "m": new_m}
    return new_params, new_state
