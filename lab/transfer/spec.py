"""Cross-field checks of [transfer] (the schema checks each key alone)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lab import vocabulary as V

if TYPE_CHECKING:
    from lab.scenario.schema import Scenario


def kind_classes(kind: str, classes: int) -> int:
    """How many classes a data kind has (real sets and two-class kinds fix it; the others take `classes`)."""
    entry = V.data_kind(kind)
    return entry.classes if entry.classes is not None else classes


def kind_features(kind: str, dim: int) -> int:
    """Raw features per row of a data kind."""
    entry = V.data_kind(kind)
    if entry.source == "real":
        return entry.features
    return dim if entry.dim else 2


def source_settings(sc: "Scenario") -> dict:
    """The source task's data settings: [data] overridden by [transfer.source]."""
    d, src = sc.data, sc.transfer.source
    out = {"kind": d.kind, "n": d.n, "classes": d.classes, "noise": d.noise, "dim": d.dim}
    out.update({k: v for k, v in src.model_dump().items() if v is not None})
    return out


def own_source_data(sc: "Scenario") -> bool:
    """Whether the source task is drawn from its own data (not the target's data set)."""
    return any(v is not None for v in sc.transfer.source.model_dump().values())


def transfer_problems(sc: "Scenario") -> list[str]:
    """What is wrong between [transfer] and the rest of the scenario, in the file's words."""
    t = sc.transfer
    problems: list[str] = []
    src = source_settings(sc)
    n_target = kind_classes(sc.data.kind, sc.data.classes)
    n_source = kind_classes(src["kind"], src["classes"])
    for key, chosen, n, where in (("source_classes", t.source_classes, n_source, f"the source data ({src['kind']})"),
                                  ("target_classes", t.target_classes, n_target, f"data.kind {sc.data.kind!r}")):
        bad = [c for c in chosen if c >= n]
        if bad:
            problems.append(f"transfer.{key}: class {bad[0]} does not exist: {where} has classes 0 .. {n - 1}")
        if len(set(chosen)) != len(chosen):
            problems.append(f"transfer.{key}: a class is listed twice ({chosen})")
        if chosen and len(set(chosen)) < 2:
            problems.append(f"transfer.{key}: a task needs at least 2 classes (found {chosen})")
    if not own_source_data(sc):
        both = set(t.source_classes or range(n_source)) & set(t.target_classes or range(n_target))
        if both:
            problems.append(f"transfer: source_classes and target_classes share class(es) {sorted(both)[:10]} of the "
                            "same data set: the target's validation rows would be the source's training rows; "
                            "choose disjoint classes, or give the source its own data ([transfer.source])")
    f_src, f_tgt = kind_features(src["kind"], src["dim"]), kind_features(sc.data.kind, sc.data.dim)
    if f_src != f_tgt:
        problems.append(f"transfer.source: the source data have {f_src} input features and the target data {f_tgt}: "
                        "the pretrained first layer needs the same inputs (set transfer.source.dim or kind)")
    hidden = len(sc.model.hidden)
    if t.freeze is not None and t.freeze > hidden:
        problems.append(f"transfer.freeze: {t.freeze} layers, but the network has {hidden} hidden layer(s) "
                        f"(at most {hidden}: the new output layer always trains)")
    for i, event in enumerate(sc.events):
        f = event.set.freeze
        if f is not None and f > hidden:
            problems.append(f"events[{i}].set.freeze: {f} layers, but the network has {hidden} hidden layer(s) "
                            f"(at most {hidden})")
    if not t.pretrained.endswith(".npz"):
        problems.append(f"transfer.pretrained: {t.pretrained!r} must name an .npz file")
    try:
        t.pretrained.format(seed=0)
    except (KeyError, IndexError, ValueError):
        problems.append(f"transfer.pretrained: {t.pretrained!r}: the only placeholder allowed is {{seed}}")
    return problems


def event_problems_without_transfer(sc: "Scenario") -> list[str]:
    """Transfer keys in events or variants of a scenario that has no [transfer] table."""
    from lab.scenario.schema import TRANSFER_KEYS

    problems = []
    for i, event in enumerate(sc.events):
        keys = sorted(set(event.set.given()) & TRANSFER_KEYS)
        if keys:
            problems.append(f"events[{i}].set: {', '.join(keys)} need a [transfer] table")
    for i, variant in enumerate(sc.variants):
        keys = sorted(set(variant.set.given()) & TRANSFER_KEYS)
        if keys:
            problems.append(f"variants[{i}].set: {', '.join(keys)} need a [transfer] table")
    if sc.search is not None:
        keys = sorted(set(sc.search.param_texts()) & TRANSFER_KEYS)
        if keys:
            problems.append(f"search.params: {', '.join(keys)} need a [transfer] table")
    return problems
