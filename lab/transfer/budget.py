"""What a transfer scenario adds to the memory estimate (lab/scenario/budget.py calls in).

- Pretraining the source task comes first, as a run of its own (the source scenario: its
  data, the same model, transfer.source_steps): each of its phases is a phase of the
  transfer run, named "pretraining the source task: ...".  Its Simulation is let go before
  the target's is built.
- Loading: both tasks are generated and split at once (the source's own data too, when
  [transfer.source] gives it).
- While the target trains it keeps the source task's validation rows, the source weights
  (loaded or just trained) and the source network that measures source_val_acc, with its
  evaluation workspace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .spec import kind_classes, kind_features, source_settings

if TYPE_CHECKING:
    from lab.scenario.budget import Phase, Term
    from lab.scenario.schema import Scenario

EVAL_ROWS = 512  # session.py evaluates the source task in chunks of at most this many rows


def pretraining_phases(sc: "Scenario") -> list["Phase"]:
    """The source task's run, phase by phase (none for a run that starts from scratch)."""
    from lab.scenario.budget import Phase, estimate_run

    from .pretrain import source_scenario

    if sc.transfer.start == "scratch":
        return []
    est = estimate_run(source_scenario(sc, sc.seed), "source", "the source task")
    return [Phase(f"pretraining the source task: {p.name}", p.terms) for p in est.phases]


def held_terms(sc: "Scenario", lay) -> list["Term"]:
    """What the target run holds for the source task (lay: the target network's Layout)."""
    from lab.scenario.budget import Term, layout

    t = sc.transfer
    src = source_settings(sc)
    features = kind_features(src["kind"], src["dim"])
    rows = src["n"]
    itemsize = 4 if sc.model.dtype == "float32" else 8
    classes = len(t.source_classes) or kind_classes(src["kind"], src["classes"])
    m = sc.model
    net = layout(features, classes, tuple(m.hidden), m.activation, m.maxout_k,
                 m.batchnorm, m.dropout, m.dropconnect, m.residual)
    loading = 3 * 8 * rows * features  # generated, scaled, split (float64)
    held = 8 * rows * features + 8 * rows  # the source rows kept (val) and their labels: at most all of them
    weights = 8 * net.n_params + 2 * itemsize * net.n_params + net.forward_bytes(EVAL_ROWS, itemsize)
    return [Term(f"transfer: the source task's rows ({rows:,} x {features:,}) while both tasks are split", loading,
                 "transfer.source.n or data.n"),
            Term(f"transfer: source validation rows, source weights and network ({net.n_params:,} parameters)",
                 held + weights, "model.hidden")]
