"""The source and target tasks of a transfer scenario.

Both come from the bundled or generated data ([data], never downloaded):

- the target task: the rows of [data] whose class is in `target_classes`, relabelled 0.. in
  that order; with `labels_per_class`, that many rows of each class (a seeded draw) are the
  training set and every other target row is the validation set (a few labels, judged on
  many);
- the source task: the rows whose class is in `source_classes` (of the same data set, or of
  [transfer.source]'s own data), relabelled likewise, split by data.val_fraction; with
  `source_permute`, its (preprocessed) input features are shuffled by one fixed permutation (a
  source that shares no features with the target).

Preprocessing is fitted on the source task's training rows and applied to both tasks: the
pretrained layers expect their inputs as they saw them (the notes: make the inputs match
what the pretrained model was trained on).  Random streams: the data of the target come
from [seed], the source's own data from [seed, 11], the permutation from [seed, 12], the
source split from [seed, 13], the target's labelled rows from [seed, 14].
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from lab.data.dataset import Dataset, generate, split_indices
from lab.data.preprocess import Preprocessor
from lab.errors import LabError

from .spec import kind_classes, own_source_data, source_settings

if TYPE_CHECKING:
    from lab.scenario.schema import Scenario

SOURCE_DATA, PERMUTATION, SOURCE_SPLIT, TARGET_LABELS = 11, 12, 13, 14


def _subset(X: np.ndarray, y: np.ndarray, classes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The rows of `classes`, labels replaced by their position in `classes`."""
    code = np.full(int(max(classes)) + 1 if classes else 0, -1, dtype=np.int64)
    code[np.asarray(classes, dtype=np.int64)] = np.arange(len(classes))
    keep = np.nonzero((y < code.size) & (code[np.minimum(y, code.size - 1)] >= 0))[0]
    return X[keep], code[y[keep]]


def _raw(settings: dict, seed, scale, shift) -> tuple[np.ndarray, np.ndarray, int, tuple | None]:
    X, y, n_classes, image_shape = generate(settings["kind"], settings["n"], settings["classes"], settings["noise"],
                                            settings["dim"], seed)
    factors = np.asarray(scale, dtype=np.float64)
    if factors.ndim == 1 and factors.size != X.shape[1]:
        raise ValueError(f"scale has {factors.size} factors but the data has {X.shape[1]} features")
    return X * factors + float(shift), y, n_classes, image_shape


def labelled_rows(y: np.ndarray, classes: list[int], per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx): `per_class` rows of each class (labels 0.. in the order of `classes`,
    a seeded draw), the rest for validation."""
    order = np.random.default_rng([seed, TARGET_LABELS]).permutation(y.size)
    train = []
    for c, name in enumerate(classes):
        rows = order[y[order] == c]
        if rows.size <= per_class:
            raise LabError(f"transfer.labels_per_class: target class {name} has {rows.size} row(s); "
                           f"{per_class} labelled rows per class leave none to validate on "
                           "(lower labels_per_class or raise data.n)")
        train.append(rows[:per_class])
    train_idx = np.sort(np.concatenate(train))
    val_idx = np.setdiff1d(np.arange(y.size), train_idx)
    return train_idx, val_idx


def tasks(sc: "Scenario", seed: int) -> tuple[Dataset, Dataset]:
    """(source, target) datasets of a transfer scenario at `seed`, preprocessed alike (see the module)."""
    t, d = sc.transfer, sc.data
    try:
        X, y, n_all, image_shape = _raw({"kind": d.kind, "n": d.n, "classes": d.classes, "noise": d.noise,
                                         "dim": d.dim}, seed, d.scale, d.shift)
        if own_source_data(sc):
            src = source_settings(sc)
            Xs_all, ys_all, n_src_all, _ = _raw(src, [seed, SOURCE_DATA], 1.0, 0.0)
        else:
            Xs_all, ys_all, n_src_all = X, y, n_all
    except ValueError as exc:
        raise LabError(f"{sc.name}: data: {exc}") from None
    source_classes = list(t.source_classes) or list(range(n_src_all))
    target_classes = list(t.target_classes) or list(range(n_all))
    Xs, ys = _subset(Xs_all, ys_all, source_classes)
    Xt, yt = _subset(X, y, target_classes)
    for what, rows, classes in (("source", ys, source_classes), ("target", yt, target_classes)):
        if rows.size < 2 or np.unique(rows).size < 2:
            raise LabError(f"{sc.name}: transfer: the {what} task has {rows.size} row(s) of "
                           f"{np.unique(rows).size} class(es) {classes}: raise data.n")
    s_train, s_val = split_indices(len(Xs), d.val_fraction, [seed, SOURCE_SPLIT])
    if t.labels_per_class is not None:
        t_train, t_val = labelled_rows(yt, target_classes, t.labels_per_class, seed)
    else:
        t_train, t_val = split_indices(len(Xt), d.val_fraction, seed)
    pre = Preprocessor(tuple(d.preprocess), pca_components=d.pca_components, image_shape=image_shape)
    try:
        Xs_train = pre.fit_transform(Xs[s_train])
    except ValueError as exc:
        raise LabError(f"{sc.name}: data.preprocess: {exc}") from None
    Xs_val = pre.transform(Xs[s_val])
    shape = pre.output_image_shape
    if t.source_permute:  # after preprocessing: the target's inputs are scaled as they should be
        order = np.random.default_rng([seed, PERMUTATION]).permutation(Xs_train.shape[1])
        Xs_train, Xs_val = np.ascontiguousarray(Xs_train[:, order]), np.ascontiguousarray(Xs_val[:, order])

    def dataset(name, Xtr, ytr, Xva, yva, classes):
        return Dataset(X_train=Xtr, y_train=np.ascontiguousarray(ytr), X_val=Xva, y_val=np.ascontiguousarray(yva),
                       n_classes=len(classes), image_shape=shape, name=name, preprocessor=pre)

    source = dataset(f"{src_name(sc)} classes {source_classes}", Xs_train, ys[s_train], Xs_val,
                     ys[s_val], source_classes)
    target = dataset(f"{d.kind} classes {target_classes}", pre.transform(Xt[t_train]), yt[t_train],
                     pre.transform(Xt[t_val]), yt[t_val], target_classes)
    return source, target


def src_name(sc: "Scenario") -> str:
    return source_settings(sc)["kind"] + (" (permuted)" if sc.transfer.source_permute else "")


def n_source_classes(sc: "Scenario") -> int:
    t = sc.transfer
    src = source_settings(sc)
    return len(t.source_classes) or kind_classes(src["kind"], src["classes"])
