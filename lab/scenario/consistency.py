"""Checks that involve more than one key (an event's step against train.steps, an
expectation's variant against [[variants]], augmentation against the data kind, ...).

They work on the plain TOML dict, defensively (any key may hold any TOML value), so the
loader can run them even when some fields are invalid and report every problem of a
file at once; the Scenario model runs the same function on its validated contents.

Every run is checked, not only the base: each [[variants]] entry is the base with its
`set` applied, and every [[events]] entry changes the run it belongs to from its step
on, so the state after each event is checked too.  A problem is reported where it
first appears: the base's as before (`data.augment: ...`), a variant's as
`variants[1] ('deep'): model.hidden: ...`, an event's as
`events[2] (step 300): data.augment: ...` (with `, run 'x'` when only a variant's
timeline reaches it).  These are the failures the engine would otherwise raise at run
time, after the file had been accepted.
"""

from __future__ import annotations

import difflib
from typing import Any

from lab import vocabulary as V
from lab.errors import clip
from lab.metrics import parse_metric

# Each weight costs 21 bytes in float32 (the weight, its gradient, two optimizer moments, the
# last update, a 1-byte regularisation mask): 200 M weights peak at ~4.2 GB.  The memory
# estimate (budget.py) is the real limit; this cap is the last word for a machine with more.
MAX_PARAMETERS = 200_000_000
IMAGE_KINDS = tuple(k.name for k in V.DATA_KINDS if k.image_shape)
# The schema's defaults, for keys a raw file leaves out (tests/test_schema_file.py keeps them equal).
DEFAULTS = {"steps": 1000, "hidden": [100], "dim": 2, "classes": 3, "kind": V.default(V.DATA_KINDS), "maxout_k": 2}
# Features of each data kind before preprocessing (tests/test_scenario_budget.py checks them
# against lab.data); kinds in DIM_KINDS have `dim` features, the other synthetic ones 2.
REAL_FEATURES = {k.name: k.features for k in V.DATA_KINDS if k.source == "real"}
REAL_ROWS = {k.name: k.rows for k in V.DATA_KINDS if k.source == "real"}
DIM_KINDS = tuple(k.name for k in V.DATA_KINDS if k.dim)
MIN_DIM = {k.name: k.min_dim for k in V.DATA_KINDS if k.min_dim > 1}
ARMS = tuple(k.name for k in V.DATA_KINDS if k.arms)
REDUCING = frozenset(p.name for p in V.PREPROCESSING if p.reduces)  # pca, whiten: they need rows, drop images
PIECES = frozenset(a.name for a in V.ACTIVATIONS if a.pieces)  # maxout
SECTIONS = ("data", "model", "train")
EVENT_KEYS_CHECKED = {"preprocess", "activation"}  # the event keys run_problems reads


def _table(raw: Any, key: str) -> dict:
    value = raw.get(key) if isinstance(raw, dict) else None
    return value if isinstance(value, dict) else {}


def _array(raw: Any, key: str) -> list:
    value = raw.get(key) if isinstance(raw, dict) else None
    return value if isinstance(value, list) else []


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _name(value: Any) -> str | None:
    """A string value (a kind, an activation), or None for anything else (a list, a table)."""
    return value if isinstance(value, str) else None


def features_of(kind: Any, dim: Any) -> int | None:
    """Raw features of a data kind (None when the kind or dim is not a valid value)."""
    kind = _name(kind)
    if kind in REAL_FEATURES:
        return REAL_FEATURES[kind]
    if kind in DIM_KINDS:
        return _int(dim)
    return 2 if kind is not None else None


def split_rows(n: int, val_fraction: float) -> tuple[int, int]:
    """(training rows, validation rows), as lab.data.split_indices splits them."""
    n_val = min(int(round(val_fraction * n)), n - 1)
    return n - n_val, n_val


# -- one run's settings ---------------------------------------------------------------------------------

def _defaults() -> dict[str, dict]:
    from .schema import DataSpec, ModelSpec, TrainSpec  # schema imports this module: import when used

    return {"data": DataSpec().model_dump(), "model": ModelSpec().model_dump(), "train": TrainSpec().model_dump()}


def _owners() -> dict[str, str]:
    from .schema import DataSpec, ModelSpec, TrainSpec

    return {**{k: "train" for k in TrainSpec.model_fields}, **{k: "data" for k in DataSpec.model_fields},
            **{k: "model" for k in ModelSpec.model_fields}}


def base_state(raw: Any) -> dict[str, dict]:
    """The data, model and train sections of the base run: the file's keys over the defaults."""
    defaults = _defaults()
    return {s: {**defaults[s], **_table(raw, s)} for s in SECTIONS}


def changed(state: dict[str, dict], changes: Any, owners: dict[str, str] | None = None) -> dict[str, dict]:
    """`state` with a variant's or an event's `set` applied (as Scenario.with_changes does)."""
    owners = owners or _owners()
    out = {s: dict(state[s]) for s in SECTIONS}
    if not isinstance(changes, dict):
        return out
    if "init" in changes and "init_scale" not in changes:
        out["model"]["init_scale"] = None
    for key, value in changes.items():
        if key in owners and value is not None:
            out[owners[key]][key] = value
    return out


def run_problems(state: dict[str, dict]) -> list[str]:
    """What would fail when a run with these settings is built or trained, in the file's words."""
    problems: list[str] = []
    data, model, train = state["data"], state["model"], state["train"]
    kind = _name(data.get("kind"))
    hidden = model.get("hidden")
    hidden = [w for w in hidden if _int(w)] if isinstance(hidden, list) else DEFAULTS["hidden"]
    preprocess = [p for p in data.get("preprocess") or [] if isinstance(p, str)] \
        if isinstance(data.get("preprocess"), list) else []
    n = _int(data.get("n"))
    val_fraction = _number(data.get("val_fraction"))

    augment = data.get("augment")
    if isinstance(augment, dict) and any(v for v in augment.values() if not isinstance(v, (dict, list))):
        if kind is not None and kind not in IMAGE_KINDS:
            problems.append(f"data.augment: augmentation needs image data ({', '.join(IMAGE_KINDS)}), not {kind!r}")
        elif REDUCING & set(preprocess):
            problems.append("data.augment: pca/whiten turn images into other features; augmentation needs images")

    features = features_of(kind, data.get("dim"))
    scale = data.get("scale")
    if isinstance(scale, list):
        if features is not None and len(scale) != features:
            problems.append(f"data.scale: {len(scale)} factors given, but {kind} data has {features} features")
    factors = [_number(f) for f in (scale if isinstance(scale, list) else [scale])]
    if factors and all(f == 0.0 for f in factors):
        problems.append("data.scale: a factor of 0 makes every feature constant: there is nothing to learn "
                        "(and whiten would keep no feature at all)")

    classes_given = _int(data.get("classes"))
    if kind in ARMS and n is not None and classes_given is not None and n <= classes_given:
        problems.append(f"data.n: a spiral of {n} points in {classes_given} arms puts every point at the centre "
                        "(each arm starts there): use n > classes")

    if kind in MIN_DIM and (dim := _int(data.get("dim"))) is not None and 1 <= dim < MIN_DIM[kind]:
        problems.append(f"data.dim: {kind} data needs dim >= {MIN_DIM[kind]} (its classes sit on a circle), found {dim}")

    if n is not None and val_fraction is not None and 0.0 <= val_fraction < 1.0 and REDUCING & set(preprocess):
        rows = min(n, REAL_ROWS.get(kind, n))
        n_train, _ = split_rows(rows, val_fraction)
        if n_train < 2:
            step = next(s for s in preprocess if s in REDUCING)
            problems.append(f"data.preprocess: {step} needs at least 2 training rows; data.n = {n} with "
                            f"val_fraction = {val_fraction:g} leaves {n_train}")

    uneven = len(hidden) < 3 or len(hidden) % 2 == 0 or any(w != hidden[0] for w in hidden)
    if model.get("residual") is True and uneven:
        problems.append(f"model.hidden: residual networks need an odd number (>= 3) of equal widths (found "
                        f"{clip(str(hidden))}): the first layer projects the input, then pairs of layers form blocks")

    classes = _int(data.get("classes")) or DEFAULTS["classes"]
    width_in = features if kind in DIM_KINDS and features else 64
    widths = [width_in, *hidden, classes]
    k = (_int(model.get("maxout_k")) or 2) if _name(model.get("activation")) in PIECES else 1
    n_params = sum(a * b * k for a, b in zip(widths[:-1], widths[1:]))
    if n_params > MAX_PARAMETERS:
        problems.append(f"model.hidden: the model would have about {n_params:,} weights; the limit is "
                        f"{MAX_PARAMETERS:,} (use fewer or narrower layers)")
    mc = _int(train.get("mc_samples"))
    softmax = V.default(V.LOSSES)
    if mc and _name(model.get("loss")) not in (None, softmax):
        problems.append(f"train.mc_samples: the Monte-Carlo dropout average is of softmax probabilities; it needs "
                        f"model.loss = {softmax!r}, not {model.get('loss')!r} (or mc_samples = 0)")
    return problems


def mc_problems(raw: Any) -> list[str]:
    """An expectation on an mc_* metric reads a run whose train.mc_samples is 0 (it would read NaN)."""
    base = _int(_table(raw, "train").get("mc_samples")) or 0
    samples = {"base": base}
    for variant in _array(raw, "variants"):
        if isinstance(variant, dict) and isinstance(variant.get("name"), str):
            own = _int(_table(variant, "set").get("mc_samples"))
            samples[variant["name"]] = base if own is None else own
    problems = []
    for i, ex in enumerate(_array(raw, "expect")):
        metric = ex.get("metric") if isinstance(ex, dict) else None
        if not isinstance(metric, str):
            continue
        try:
            name = parse_metric(metric).name
        except ValueError:
            continue
        if name not in (V.MC_VAL_LOSS, V.MC_VAL_ACC, V.MC_GAP, V.MC_SCORE_GAP):
            continue
        for key in ("variant", "ratio_over", "difference_over"):
            run = ex.get(key, "base" if key == "variant" else None)
            if isinstance(run, str) and samples.get(run) == 0:
                where = "train.mc_samples" if run == "base" else "the variant's set.mc_samples"
                problems.append(f"expect[{i}].metric: {metric} reads run {clip(repr(run))}, whose mc_samples is 0 "
                                f"(set {where} to the number of dropout masks to average, e.g. 100)")
    return problems


def _runs(raw: Any) -> list[tuple[str, str, Any]]:
    """(run name, where its settings come from, its `set`) for the base and every variant."""
    runs: list[tuple[str, str, Any]] = [("base", "", None)]
    for i, variant in enumerate(_array(raw, "variants")):
        if isinstance(variant, dict):
            name = variant.get("name") if isinstance(variant.get("name"), str) else f"variants[{i}]"
            runs.append((name, f"variants[{i}] ({clip(repr(name))})", _table(variant, "set")))
    return runs


def timeline_problems(raw: Any) -> list[str]:
    """run_problems for the base, each variant, and the state after each event of each run."""
    owners = _owners()
    base = base_state(raw)
    problems = run_problems(base)
    seen = set(problems)
    events = sorted(((i, e) for i, e in enumerate(_array(raw, "events")) if isinstance(e, dict)),
                    key=lambda ie: _int(ie[1].get("at")) or 0)
    for name, where, changes in _runs(raw):
        state = base if changes is None else changed(base, changes, owners)
        if changes is not None:
            for p in run_problems(state):
                if p not in seen:
                    problems.append(f"{where}: {p}")
                    seen.add(p)
        for i, event in events:
            only = event.get("only")
            if isinstance(only, list) and name not in only:
                continue
            set_ = _table(event, "set")
            if not set_.keys() & EVENT_KEYS_CHECKED:  # an lr or a momentum cannot make a run fail
                continue
            state = changed(state, set_, owners)
            at = _int(event.get("at"))
            for p in run_problems(state):
                if p not in seen:
                    run = "" if name == "base" else f", run {clip(repr(name))}"
                    problems.append(f"events[{i}] (step {at if at is not None else '?'}{run}): {p}")
                    seen.add(p)
    return problems


def cross_field_problems(raw: dict) -> list[str]:
    """Problems between keys, in the file's words; [] when consistent (or undecidable)."""
    problems: list[str] = []
    train, model = _table(raw, "train"), _table(raw, "model")
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
                problems.append(f"variants[{i}].name: duplicate variant name {clip(repr(name))}")
            names.append(name)
            own = _table(variant, "set").get("hidden")
            depth[name] = len(own) + 1 if isinstance(own, list) and own else len(hidden) + 1
    known = list(dict.fromkeys(names))
    for i, event in enumerate(_array(raw, "events")):
        only = event.get("only") if isinstance(event, dict) else None
        for name in only if isinstance(only, list) else []:
            if isinstance(name, str) and name not in known:
                problems.append(f"events[{i}].only: unknown run {clip(repr(name))}{_hint(name, known)} "
                                f"(runs: {clip(', '.join(known), 200)})")
    for i, ex in enumerate(_array(raw, "expect")):
        if not isinstance(ex, dict):
            continue
        for key in ("variant", "ratio_over", "difference_over", "control"):
            name = ex.get(key)
            if isinstance(name, str) and name not in known:
                problems.append(f"expect[{i}].{key}: unknown variant {clip(repr(name))}{_hint(name, known)} "
                                f"(variants: {clip(', '.join(known), 200)})")
        try:
            ref = parse_metric(ex["metric"]) if isinstance(ex.get("metric"), str) else None
        except ValueError:
            ref = None  # the field check reports it
        runs = [n for n in (ex.get("variant", "base"), ex.get("ratio_over"), ex.get("difference_over"),
                            ex.get("control")) if isinstance(n, str) and n in depth]
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

    problems.extend(timeline_problems(raw))
    problems.extend(mc_problems(raw))
    return problems


def _hint(name: str, known: list[str]) -> str:
    if len(name) > 200:
        return ""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
