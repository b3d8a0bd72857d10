"""What each on-the-fly key changes: pure functions from the current settings to a change.

Kept apart from the widgets so the mapping is testable without a terminal, and so the
TUI and the command palette offer exactly the same changes.
"""

from __future__ import annotations

import math
from typing import Any

from lab import vocabulary as V

# the keys' cycles, from the vocabulary's `key` places
INITS = V.names(V.key_cycle(V.INITS))
ACTIVATIONS = V.names(V.key_cycle(V.ACTIVATIONS))
OPTIMIZERS = V.names(V.key_cycle(V.OPTIMIZERS))
DROPOUT_MODES = V.names(V.key_cycle(V.DROPOUT_MODES))
WEIGHT_DECAYS = (0.0, 1e-4, 1e-3, 1e-2, 1e-1)
PREPROCESSING = tuple(tuple(V.PREPROCESSING[i].name for i in steps) for steps in V.PREPROCESS_CYCLE)
SQRT10 = math.sqrt(10.0)


def schedules(span: int) -> tuple[dict[str, Any], ...]:
    """The schedules `s` cycles through, sized to the `span` of steps they will cover."""
    return tuple({"kind": s.name, **s.cycle(span)} for s in V.key_cycle(V.SCHEDULES))


def horizon(step: int, steps: int) -> int:
    """The steps a schedule chosen at `step` spans: the rest of the run, or (past the end,
    when the run goes on) another run's length."""
    return steps - step if step < steps else steps


def following(options: tuple, current: Any) -> Any:
    """The option after `current` (the first one if `current` is not among them)."""
    try:
        return options[(options.index(current) + 1) % len(options)]
    except ValueError:
        return options[0]


def schedule_name(schedule: dict[str, Any]) -> str:
    warm = f"+warmup {schedule['warmup']}" if schedule.get("warmup") else ""
    start = f" from {schedule['start']}" if schedule.get("start") else ""
    return f"{schedule['kind']}{warm}{start}"


def change_for(action: str, settings: dict[str, Any], step: int = 0) -> dict[str, Any]:
    """The Simulation.set(...) arguments for a key action, given the current settings
    (`Snapshot.settings`: model and train fields, preprocess) and the step it happens at.

    A new init scheme comes with its own scale (Scenario.with_changes drops init_scale).
    A new schedule starts at this step and spans the rest of the run, so choosing one late
    (or after the end) never drops the lr by 100x unannounced."""
    if action == "lr_up":
        return {"lr": settings["lr"] * SQRT10}
    if action == "lr_down":
        return {"lr": settings["lr"] / SQRT10}
    if action == "next_init":
        return {"init": following(INITS, settings["init"])}
    if action == "next_activation":
        return {"activation": following(ACTIVATIONS, settings["activation"])}
    if action in ("dropout_up", "dropout_down"):
        delta = 0.1 if action == "dropout_up" else -0.1
        return {"dropout": round(min(0.9, max(0.0, settings["dropout"] + delta)), 10)}
    if action == "dropout_mode":
        return {"dropout_mode": following(DROPOUT_MODES, settings["dropout_mode"])}
    if action == "batchnorm":
        return {"batchnorm": not settings["batchnorm"]}
    if action == "optimizer":
        return {"optimizer": following(OPTIMIZERS, settings["optimizer"])}
    if action == "schedule":
        span = horizon(step, settings["steps"])
        options = schedules(span)
        kinds = [o["kind"] for o in options]
        current = settings["schedule"]["kind"]
        nxt = options[(kinds.index(current) + 1) % len(options)] if current in kinds else options[0]
        return {"schedule": {**nxt, "start": step, "total": span}}
    if action == "preprocess":
        return {"preprocess": list(following(PREPROCESSING, tuple(settings["preprocess"])))}
    if action == "weight_decay":
        return {"weight_decay": following(WEIGHT_DECAYS, settings["weight_decay"])}
    if action in ("batch_up", "batch_down"):
        return batch_change(settings, up=action == "batch_up")
    if action in TRANSFER_ACTIONS:
        return transfer_change(action, settings)
    raise KeyError(action)


BATCH_FACTOR = 2  # the x / X keys: batch size x2 / /2


def batch_change(settings: dict[str, Any], up: bool) -> dict[str, Any]:
    """The batch size doubled (up) or halved, within 1 .. the training rows (a larger batch
    would be clamped to them anyway); {} when it is already at that end.  The lr is left
    alone: the linear-scaling rule (lr x k for batch x k, with a warm-up) is the student's
    move, with l and s."""
    rows = int(settings.get("train_rows") or settings["batch_size"])
    now = min(int(settings["batch_size"]), rows)
    new = min(rows, now * BATCH_FACTOR) if up else max(1, now // BATCH_FACTOR)
    return {} if new == int(settings["batch_size"]) else {"batch_size": new}


# -- transfer learning (lab/transfer): the phase, the frozen lower layers, the lr factor ------------
TRANSFER_ACTIONS = ("transfer_phase", "freeze_more", "freeze_less", "lr_factor")
LR_FACTORS = (1.0, 0.1, 0.01)  # the notes: fine-tune at ~1/10 of the original learning rate


def transfer_change(action: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The change a transfer key asks for; {} when the run has no [transfer] table (or nothing
    would change: every hidden layer already frozen, say)."""
    t = settings.get("transfer")
    if not t:
        return {}
    hidden = len(settings["hidden"])
    if action == "transfer_phase":
        return {"phase": "fine-tune" if t["phase"] == "feature-extraction" else "feature-extraction"}
    if action == "lr_factor":
        return {"lr_factor": following(LR_FACTORS, t["lr_factor"])}
    frozen = t["frozen"] + (1 if action == "freeze_more" else -1)
    return {"freeze": frozen} if 0 <= frozen <= hidden else {}


def describe_change(changes: dict[str, Any]) -> str:
    """A short line for the event log and the curve markers."""
    parts = []
    for key, value in changes.items():
        if key == "schedule" and isinstance(value, dict):
            value = schedule_name(value)
        elif isinstance(value, float):
            value = f"{value:.3g}"
        elif isinstance(value, list):
            value = "+".join(value) or "none"
        parts.append(f"{key}={value}")
    return " ".join(parts)
