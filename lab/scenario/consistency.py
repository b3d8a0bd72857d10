"""Checks that involve more than one key (an event's step against train.steps, an
expectation's variant against [[variants]], ...).

They work on the plain TOML dict, defensively, so the loader can run them even when
some fields are invalid and report every problem of a file at once; the Scenario model
runs the same function on its validated contents.
"""

from __future__ import annotations

import difflib
from typing import Any

from lab.metrics import parse_metric

MAX_PARAMETERS = 200_000_000  # ~800 MB of float32 weights: beyond that the machine would swap
IMAGE_KINDS = ("digits",)
# The schema's defaults, for keys a raw file leaves out (tests/test_schema_file.py keeps them equal).
DEFAULTS = {"steps": 1000, "hidden": [100], "dim": 2, "classes": 3, "kind": "spiral", "maxout_k": 2}


def _table(raw: Any, key: str) -> dict:
    value = raw.get(key) if isinstance(raw, dict) else None
    return value if isinstance(value, dict) else {}


def _array(raw: Any, key: str) -> list:
    value = raw.get(key) if isinstance(raw, dict) else None
    return value if isinstance(value, list) else []


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def cross_field_problems(raw: dict) -> list[str]:
    """Problems between keys, in the file's words; [] when consistent (or undecidable)."""
    problems: list[str] = []
    train, model, data = _table(raw, "train"), _table(raw, "model"), _table(raw, "data")
    steps = _int(train.get("steps", DEFAULTS["steps"])) or DEFAULTS["steps"]
    hidden = model.get("hidden", DEFAULTS["hidden"])
    hidden = [w for w in hidden if _int(w)] if isinstance(hidden, list) else DEFAULTS["hidden"]

    for i, event in enumerate(_array(raw, "events")):
        at = _int(event.get("at")) if isinstance(event, dict) else None
        if at is not None and at > steps:
            problems.append(f"events[{i}].at: step {at} is beyond train.steps ({steps})")

    names = ["base"]
    depth = {"base": len(hidden) + 1}  # layers per run: a variant may set its own `hidden`
    for i, variant in enumerate(_array(raw, "variants")):
        name = variant.get("name") if isinstance(variant, dict) else None
        if isinstance(name, str):
            if name in names:
                problems.append(f"variants[{i}].name: duplicate variant name {name!r}")
            names.append(name)
            own = _table(variant, "set").get("hidden")
            depth[name] = len(own) + 1 if isinstance(own, list) and own else len(hidden) + 1
    known = list(dict.fromkeys(names))
    for i, event in enumerate(_array(raw, "events")):
        only = event.get("only") if isinstance(event, dict) else None
        for name in only if isinstance(only, list) else []:
            if isinstance(name, str) and name not in known:
                close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                problems.append(f"events[{i}].only: unknown run {name!r}{hint} (runs: {', '.join(known)})")
    for i, ex in enumerate(_array(raw, "expect")):
        if not isinstance(ex, dict):
            continue
        for key in ("variant", "ratio_over", "difference_over"):
            name = ex.get(key)
            if isinstance(name, str) and name not in known:
                close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                problems.append(f"expect[{i}].{key}: unknown variant {name!r}{hint} (variants: {', '.join(known)})")
        try:
            ref = parse_metric(ex["metric"]) if isinstance(ex.get("metric"), str) else None
        except ValueError:
            ref = None  # the field check reports it
        runs = [n for n in (ex.get("variant", "base"), ex.get("ratio_over"), ex.get("difference_over"))
                if isinstance(n, str) and n in depth]
        n_layers = min((depth[n] for n in runs), default=len(hidden) + 1)
        layer = _int(ex.get("layer"))
        if ref is not None and ref.per_layer and ex.get("layer") is None:
            problems.append(f"expect[{i}].layer: {ex['metric']} is per layer: say which layer (1..{n_layers})")
        if ref is not None and not ref.per_layer and ex.get("layer") is not None:
            problems.append(f"expect[{i}].layer: {ex['metric']} is not a per-layer metric")
        if layer is not None and layer > n_layers:
            problems.append(f"expect[{i}].layer: layer {layer} does not exist (the model has layers 1..{n_layers})")
        for key in ("at", "by"):
            step = _int(ex.get(key))
            if step is not None and step > steps:
                problems.append(f"expect[{i}].{key}: step {step} is beyond train.steps ({steps})")

    augment = _table(data, "augment")
    if any(v for v in augment.values()):
        kind = data.get("kind", DEFAULTS["kind"])
        preprocess = data.get("preprocess", [])
        if kind not in IMAGE_KINDS:
            problems.append(f"data.augment: augmentation needs image data ({', '.join(IMAGE_KINDS)}), not {kind!r}")
        elif isinstance(preprocess, list) and {"pca", "whiten"} & set(map(str, preprocess)):
            problems.append("data.augment: pca/whiten turn images into other features; augmentation needs images")

    scale = data.get("scale")
    if isinstance(scale, list):
        kind = data.get("kind", DEFAULTS["kind"])
        features = {"iris": 4, "wine": 13, "breast-cancer": 30, "digits": 64}.get(
            kind, _int(data.get("dim", DEFAULTS["dim"])) if kind in ("random-normal", "gaussians", "positive-blobs") else 2)
        if features is not None and len(scale) != features:
            problems.append(f"data.scale: {len(scale)} factors given, but {kind} data has {features} features")

    if model.get("residual") is True and (len(hidden) < 3 or len(hidden) % 2 == 0 or any(w != hidden[0] for w in hidden)):
        problems.append(f"model.hidden: residual networks need an odd number (>= 3) of equal widths (found {hidden}): "
                        "the first layer projects the input, then pairs of layers form blocks")

    dim = _int(data.get("dim", DEFAULTS["dim"])) or DEFAULTS["dim"]
    classes = _int(data.get("classes", DEFAULTS["classes"])) or DEFAULTS["classes"]
    kind = data.get("kind", DEFAULTS["kind"])
    widths = [dim if kind in ("random-normal", "gaussians", "positive-blobs") else 64, *hidden, classes]
    k = (_int(model.get("maxout_k", DEFAULTS["maxout_k"])) or 2) if model.get("activation") == "maxout" else 1
    n_params = sum(a * b * k for a, b in zip(widths[:-1], widths[1:]))
    if n_params > MAX_PARAMETERS:
        problems.append(f"model.hidden: the model would have about {n_params:,} weights; the limit is "
                        f"{MAX_PARAMETERS:,} (use fewer or narrower layers)")
    return problems
