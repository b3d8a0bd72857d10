"""plotext charts of a Snapshot for stdout: useful in a CI log or a dumb terminal.

Histograms are drawn from the engine's fixed-edge counts (bar charts), never re-binned
by plotext, which would be slow and would move the edges between frames.
"""

from __future__ import annotations

import re

import numpy as np

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def plain(text: str) -> str:
    """Without terminal colour codes (plotext emits them even with the clear theme)."""
    return _ANSI.sub("", text)

from lab import vocabulary as V
from lab.sim.snapshot import Snapshot


def _tick_labels(edges: np.ndarray, symlog: bool, n: int = 5) -> tuple[list[float], list[str]]:
    idx = np.linspace(0, edges.size - 1, n).round().astype(int)
    pos = [float(i) for i in idx]
    if symlog:
        labels = ["0" if abs(edges[i]) < 1e-9 else f"{edges[i]:.0e}" for i in idx]
    else:
        labels = [f"{edges[i]:.2g}" for i in idx]
    return pos, labels


def loss_chart(snap: Snapshot, width: int = 80, height: int = 15) -> str:
    import plotext as plt

    h = snap.history
    plt.clear_figure()
    plt.plotsize(width, height)
    plt.theme("clear")
    steps, loss = h[V.STEP], h[V.LOSS]
    finite = np.isfinite(loss)
    if finite.any():
        plt.plot(steps[finite].tolist(), loss[finite].tolist(), label="train loss", marker="braille")
    vfinite = np.isfinite(h[V.VAL_LOSS])
    if vfinite.any():
        plt.plot(h[V.VAL_STEP][vfinite].tolist(), h[V.VAL_LOSS][vfinite].tolist(), label="val loss", marker="braille")
    for e in snap.events:
        if e.step > 0:
            plt.vline(e.step)
    plt.title(f"loss - {snap.scenario_name}")
    plt.xlabel("step")
    return plt.build()


def histogram_chart(counts: np.ndarray, edges: np.ndarray, title: str, symlog: bool, width: int = 40,
                    height: int = 10) -> str:
    import plotext as plt

    plt.clear_figure()
    plt.plotsize(width, height)
    plt.theme("clear")
    centres = list(range(counts.size))
    plt.bar([c + 0.5 for c in centres], counts.tolist(), width=1.0, marker="sd")
    pos, labels = _tick_labels(edges, symlog)
    plt.xticks(pos, labels)
    plt.yticks([0, int(counts.max()) if counts.size else 1])
    plt.title(title)
    return plt.build()


def layer_charts(snap: Snapshot, width: int = 80) -> list[str]:
    """Activation and gradient histograms, side by side, one row per layer."""
    out = []
    half = max(30, width // 2)
    for s in snap.layers:
        act = histogram_chart(s.act_hist, s.act_edges, f"L{s.index} {s.kind} activations", symlog=False, width=half)
        grad = histogram_chart(s.grad_hist, s.grad_edges, f"L{s.index} gradients (symlog)", symlog=True, width=half)
        out.append("\n".join(a + b for a, b in zip(act.splitlines(), grad.splitlines())))
    return out
