"""The lab's vocabulary, declared once: every activation, init scheme, optimizer, schedule
kind, dropout mode, preprocessing step, data kind, loss and metric is one entry here,
holding what the rest of the lab needs (kernel code, defaults, histogram range, saturation
and dead rules, key-cycle place, table column, number format, alert rule, docs line).

Everything else derives from these entries: the scenario schema's `Literal`s, the kernels'
name -> code tables (the kernels keep their int constants; tests/test_vocabulary.py checks
they agree), the TUI's key cycles, the per-layer table's columns, the CSV columns,
`lab.metrics.parse_metric`, the tables in docs/ and the tests' parameter lists.

Named `vocabulary` rather than `catalog`: `lab.scenario.catalog` is the catalogue of
scenario *files* (bundled and user folders), a different thing.

Plain Python: no numpy, numba or Textual at import.  `register` adds an entry; it must run
before the modules that derive from the vocabulary are imported (they derive at import).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable


@dataclass(frozen=True)
class Activation:
    name: str
    code: int  # lab/engine/kernels/activations.py: NAME.upper() == code
    formula: str  # f(z), for docs/network.md
    notes: str = ""
    alpha: float | None = None  # default of ModelSpec.alpha for this activation
    act_range: tuple[float, float] | None = None  # fixed histogram range (None: the wide -5..5)
    saturated: tuple[float, float] | None = None  # a < low or a > high is in the flat region
    can_die: bool = True  # dead_fraction applies (a slope f'(z) that can be ~0 everywhere)
    pieces: bool = False  # each unit is the max of maxout_k pieces (a dense layer maxout_k times wider)
    learned_slope: bool = False  # a learned slope per unit (parameter slope{l})
    linear_negative: bool = False  # f(z) = s*z for z <= 0 (s: alpha if it takes one, else 0): negative_slope is s
    key: int | None = None  # place in the `a` key's cycle (None: not in it)
    public: bool = True  # allowed in scenario files (identity is the output layer's, internal)
    default: bool = False  # the schema's default


@dataclass(frozen=True)
class Init:
    name: str
    scale: str  # what init_scale means for it (docs)
    default_scale: float = 1.0  # init_scale when not given (a gain for the std-based schemes)
    random: bool = True  # draws random weights (the settings line shows their std)
    absolute: bool = False  # init_scale is the weights' own size, not a gain (a large one can diverge)
    draw_bytes: int = 8  # bytes per weight numpy allocates while drawing (the memory estimate)
    key: int | None = None  # place in the `i` key's cycle
    default: bool = False


@dataclass(frozen=True)
class Optimizer:
    name: str
    code: int  # lab/engine/kernels/optim.py
    update: str  # the update rule, for docs/network.md
    moments: int  # state buffers of the size of the parameters it keeps (memory estimate)
    beta2: float = 0.999  # the default second-moment decay (rmsprop: its decay)
    momentum: bool = False  # uses the momentum coefficient
    key: int | None = None
    default: bool = False


@dataclass(frozen=True)
class Schedule:
    name: str
    doc: str
    cycle: Callable[[int], dict] | None = None  # its settings in the `s` key's cycle, given the span
    key: int | None = None
    default: bool = False


@dataclass(frozen=True)
class DropoutMode:
    name: str
    code: int  # lab/engine/kernels/regularizers.py
    train: str  # docs/network.md's dropout table
    eval: str
    key: int | None = None
    default: bool = False


@dataclass(frozen=True)
class Loss:
    name: str
    code: int  # lab/engine/kernels/losses.py
    doc: str  # docs/network.md's loss table: the first cell and the value
    value: str
    default: bool = False


@dataclass(frozen=True)
class Preprocess:
    name: str
    doc: str
    reduces: bool  # changes the feature space (pca, whiten): needs enough rows, drops image shape
    components: bool = False  # keeps pca_components of the principal axes (else all)


@dataclass(frozen=True)
class DataKind:
    name: str
    source: str  # "synthetic" (lab/data/synthetic.py: the function of this name) or "real" (scikit-learn's files)
    classes: int | None = None  # its fixed number of classes (None: the `classes` key decides)
    dim: bool = False  # synthetic: has `dim` features (the others have 2)
    min_dim: int = 1  # the smallest `dim` its geometry allows
    arms: bool = False  # classes are arms from a common centre: needs n > classes
    features: int = 2  # real: features per row
    rows: int = 0  # real: rows in the file
    loader: str = ""  # real: the sklearn.datasets function
    image_shape: tuple[int, int, int] | None = None  # real: (C, H, W) when rows are images
    default: bool = False


@dataclass(frozen=True)
class Metric:
    """A metric of the Snapshot.  Per-layer ones are LayerStats fields; `column` puts them in
    the per-layer table (header, format, meaning, caption words, widest usual cell, drop
    priority: lower is dropped first when the table does not fit)."""

    name: str
    per_layer: bool
    doc: str = ""
    series: str = ""  # scalar: "step" (recorded every step) or "eval" (every eval_every steps)
    header: str = ""  # per-layer table column header ("" = not in the table)
    column: int | None = None  # place among the table's metric columns
    fmt: str = "{:.3g}"  # "{...}" format, or "%" for a percentage
    brief: str = ""
    width: int = 0
    drop: int = 0
    alert: tuple[float, str] | None = None  # (threshold, style): flagged when value >= threshold
    csv: bool = True  # scalar: a column of the history CSV


ACTIVATIONS: list[Activation] = [
    Activation("sigmoid", 0, "1/(1+exp(-z))", act_range=(0.0, 1.0), saturated=(0.01, 0.99), key=8),
    Activation("tanh", 1, "tanh(z)", act_range=(-1.0, 1.0), saturated=(-0.99, 0.99), key=7),
    Activation("relu", 2, "max(0, z)", "f'(0) = 0", linear_negative=True, key=0, default=True),
    Activation("leaky_relu", 3, "z if z > 0 else alpha*z", "`alpha` (default 0.01)", alpha=0.01,
               linear_negative=True, key=1),
    Activation("prelu", 4, "z if z > 0 else s_j*z", "s_j = `slope{l}[j]`, learned; dL/ds_j = sum over batch of "
               "dout*z where z <= 0", learned_slope=True, key=2),
    Activation("elu", 5, "z if z > 0 else alpha*(exp(z)-1)", "`alpha` (default 1.0)", alpha=1.0, key=3),
    Activation("selu", 6, "lam*(z if z > 0 else a*(exp(z)-1))", "lam = 1.0507009873554805, a = 1.6732632423543772",
               key=4),
    Activation("gelu", 7, "0.5*z*(1+erf(z/sqrt(2)))", "exact (erf), not the tanh approximation", key=5),
    Activation("maxout", 8, "a[:, j] = max(z[:, j*k:(j+1)*k])", "`maxout_k` pieces (default 2); units' pieces are "
               "contiguous; gradient to the first argmax", can_die=False, pieces=True, key=6),
    Activation("identity", 9, "z", "the output layer's scores", can_die=False, public=False),
]

INITS: list[Init] = [
    Init("zeros", "ignored", random=False, key=7),
    Init("constant", "the value", 0.1, random=False, absolute=True),
    Init("normal", "the std", 0.01, absolute=True, key=5),
    Init("uniform", "half-width a of U(-a, a)", 0.05, absolute=True, key=6),
    Init("xavier", "gain on std 1/sqrt(fan_in)  (the lecture's \"Xavier\", as in CS231n)", key=1),
    Init("glorot", "gain on std sqrt(2/(fan_in+fan_out))  (Glorot & Bengio's original)", key=2),
    Init("kaiming", "gain on std sqrt(2/fan_in)  (He et al., for ReLU)", key=0, default=True),
    Init("lecun", "gain on std 1/sqrt(fan_in)  (the init SELU's self-normalisation assumes)", key=3),
    Init("orthogonal", "gain on a random orthogonal matrix (Saxe et al.)", draw_bytes=40, key=4),  # QR's copies
]

OPTIMIZERS: list[Optimizer] = [
    Optimizer("sgd", 0, "p -= lr*g", 0, key=0, default=True),
    Optimizer("momentum", 1, "v = mu*v - lr*g; p += v", 1, momentum=True, key=1),
    Optimizer("nesterov", 2, "v_prev = v; v = mu*v - lr*g; p += -mu*v_prev + (1+mu)*v", 1, momentum=True, key=2),
    Optimizer("rmsprop", 3, "c = beta2*c + (1-beta2)*g**2; p -= lr*g/(sqrt(c)+eps)", 1, beta2=0.99, key=3),  # CS231n
    Optimizer("adam", 4, "m = beta1*m + (1-beta1)*g; v = beta2*v + (1-beta2)*g**2; "
              "p -= lr*(m/(1-beta1**t))/(sqrt(v/(1-beta2**t))+eps)", 2, key=4),
    Optimizer("adamw", 5, "adam, and first p -= lr*weight_decay*p on W matrices (decoupled decay)", 2, key=5),
]

SCHEDULES: list[Schedule] = [
    Schedule("constant", "lr", lambda span: {}, key=0, default=True),
    Schedule("step", "lr *= factor at each milestone", lambda span: {"milestones": [0.5, 0.75], "factor": 0.1}, key=1),
    Schedule("cosine", "cosine decay to min_lr", lambda span: {"warmup": max(1, span // 20)}, key=2),
    Schedule("linear", "linear decay to min_lr", lambda span: {}, key=3),
    Schedule("inverse_sqrt", "lr*sqrt(timescale/t) after timescale steps",
             lambda span: {"timescale": max(1, span // 10)}, key=4),
]

DROPOUT_MODES: list[DropoutMode] = [
    DropoutMode("inverted", 0, "a*m/q", "a", key=0, default=True),
    DropoutMode("vanilla", 1, "a*m", "a*q", key=1),
    DropoutMode("vanilla-noscale", 2, "a*m", "a (the classic bug: forgetting the test-time scaling)", key=2),
]

LOSSES: list[Loss] = [
    Loss("softmax", 0, "softmax (cross-entropy)", "mean over batch of -log softmax(scores)[y] (computed with the "
         "max-shift)", default=True),
    Loss("mse", 1, "mse", "mean over all B*C elements of (scores - t)**2"),
    Loss("hinge", 2, "hinge (multiclass SVM)", "mean over batch of sum_{j != y} max(0, s_j - s_y + 1)"),
]

PREPROCESSING: list[Preprocess] = [
    Preprocess("center", "subtract the training mean", False),
    Preprocess("normalize", "divide by the training std", False),
    Preprocess("pca", "project on the top pca_components principal axes", True, components=True),
    Preprocess("whiten", "PCA-whiten: decorrelated, unit-variance features", True),
]
# what the `p` key cycles through: pipelines of steps, by their place in PREPROCESSING
PREPROCESS_CYCLE: tuple[tuple[int, ...], ...] = ((), (0,), (0, 1), (2,), (3,))

DATA_KINDS: list[DataKind] = [
    DataKind("spiral", "synthetic", arms=True, default=True),
    DataKind("circles", "synthetic", classes=2),
    DataKind("moons", "synthetic", classes=2),
    DataKind("xor", "synthetic", classes=2),
    DataKind("gaussians", "synthetic", dim=True, min_dim=2),
    DataKind("checkerboard", "synthetic", classes=2),
    DataKind("positive-blobs", "synthetic", dim=True, min_dim=2),
    DataKind("random-normal", "synthetic", dim=True),
    DataKind("parts", "synthetic", dim=True, min_dim=2),  # classes share parts: transfer learning
    DataKind("digits", "real", 10, features=64, rows=1797, loader="load_digits", image_shape=(1, 8, 8)),
    DataKind("iris", "real", 3, features=4, rows=150, loader="load_iris"),
    DataKind("wine", "real", 3, features=13, rows=178, loader="load_wine"),
    DataKind("breast-cancer", "real", 2, features=30, rows=569, loader="load_breast_cancer"),
]

# the scalar series' names: code reads a history by these, never by a literal
STEP, LR, LOSS, TRAIN_ACC, GRAD_NORM = "step", "lr", "loss", "train_acc", "grad_norm"  # every step
VAL_STEP, VAL_LOSS, VAL_ACC = "val_step", "val_loss", "val_acc"  # every eval_every steps
SOURCE_VAL_ACC = "source_val_acc"  # transfer learning (lab/transfer): every eval_every steps

# hyperparameter search (lab/search/space.py, the [search] table): how an axis is scaled,
# how a stage samples, what ranks the trials (metrics read at a trial's end)
SEARCH_AXIS_KINDS: tuple[str, ...] = ("log", "linear", "int", "choice")
SEARCH_SAMPLINGS: tuple[str, ...] = ("random", "grid")
SEARCH_METRICS: tuple[str, ...] = (VAL_ACC, VAL_LOSS, TRAIN_ACC, LOSS)

DEAD_ALERT = 0.5
SATURATED_ALERT = 0.5

METRICS: list[Metric] = [
    # scalars, in the history CSV's order
    Metric(LR, False, "the learning rate used at the step", series="step"),
    Metric(LOSS, False, "training loss of the step's batch (with the penalties)", series="step"),
    Metric(TRAIN_ACC, False, "accuracy on the step's batch", series="step"),
    Metric(GRAD_NORM, False, "global norm of the gradient (before clipping)", series="step"),
    Metric(VAL_LOSS, False, "validation loss, every eval_every steps", series="eval"),
    Metric(VAL_ACC, False, "validation accuracy, every eval_every steps", series="eval"),
    Metric(SOURCE_VAL_ACC, False, "transfer: the source task's validation accuracy of the current hidden layers "
           "under the source's output layer (how much of the source task is kept), every eval_every steps",
           series="eval"),
    Metric("diverged", False, "1 once the loss or a parameter is not finite", csv=False),
    # per layer, in the layers CSV's order
    Metric("n_params", True, "trainable parameters of the layer: W and b, and any maxout pieces, PReLU slopes, "
           "batchnorm scale and shift", header="params", column=-1, fmt="{:,.0f}", brief="parameters", width=7,
           drop=-1),
    Metric("act_mean", True, "mean of the activations", header="mean", column=0, fmt="{:.2g}", width=8, drop=4),
    Metric("act_std", True, "std of the activations: collapsing toward 0 or growing with depth is a bad init",
           header="std", column=1, fmt="{:.2g}", width=7, drop=8),
    Metric("grad_mean", True, "mean of dL/da"),
    Metric("grad_std", True, "std of dL/da, the gradient flowing back into the layer: vanishing or exploding",
           header="grad", column=2, fmt="{:.1e}", width=7, drop=6),
    Metric("wgrad_std", True, "std of dL/dW"),
    Metric("weight_std", True, "std of W"),
    Metric("update_ratio", True, "||last update of W|| / ||W||: the rule of thumb is about 1e-3", header="upd/w",
           column=7, fmt="{:.1e}", brief="||dW||/||W|| (aim ~1e-3)", width=7, drop=5),
    Metric("dead_fraction", True, "units whose slope f'(z) < 1e-3 on every probe example: they never learn again",
           header="dead", column=3, fmt="%", brief="f'(z)<1e-3 on every probe example", width=4, drop=9,
           alert=(DEAD_ALERT, "bold red")),
    Metric("off_fraction", True, "units whose pre-activation z <= 0 on every probe example, whatever the "
           "activation: a leaky unit there is not dead (it still gets alpha times the gradient) but it is stuck "
           "on its small negative slope", header="off", column=4, fmt="%", brief="z<=0 on every probe example",
           width=4, drop=1),
    Metric("saturated_fraction", True, "activations in a flat region: |tanh| > 0.99, sigmoid < 0.01 or > 0.99 "
           "(gradient ~0)", header="sat", column=5, fmt="%", brief="|tanh|>.99 / sigmoid<.01|>.99", width=4, drop=7,
           alert=(SATURATED_ALERT, "bold yellow")),
    Metric("zero_fraction", True, "activations with |a| < 1e-3 (near zero)", header="~0", column=6, fmt="%",
           brief="|a|<1e-3", width=4, drop=2),
    Metric("sign_agreement", True, "share of a unit's weight gradients with the same sign: 1 = the zigzag regime",
           header="sign", column=8, fmt="{:.2f}", brief="grad sign agreement", width=4, drop=3),
    Metric("unit_similarity", True, "mean cosine similarity of units' incoming weights: 1 = symmetry never broken",
           header="sim", column=9, fmt="{:.2f}", brief="unit similarity", width=5, drop=1),
    # not table columns (see their notes in lab/sim/stats.py): in claims, the layers CSV and `nnlab check`
    Metric("weight_zero_fraction", True, "weights W with |w| < 1e-3 (near zero): what L1 drives up; a layer of "
           "std s drawn at random has about 0.8e-3/s of them"),
    Metric("negative_slope", True, "the activation's slope for z < 0, mean over the layer's units: PReLU's "
           "learned s_j (parameter slope{l}, 0.25 at init), leaky_relu's fixed alpha, relu's 0; NaN (\"-\") "
           "where the negative side is not a line (sigmoid, tanh, elu, selu, gelu, maxout, the output layer)"),
    # an [ensemble]'s validation metrics, at every checkpoint (lab/ensemble/)
    Metric("ensemble_val_acc", False, "validation accuracy of the ensemble's prediction (mean of the members' "
           "softmax probabilities, or their vote)", series="ensemble", csv=False),
    Metric("ensemble_val_loss", False, "validation cross-entropy of the members' averaged probabilities",
           series="ensemble", csv=False),
    Metric("member_val_acc_mean", False, "mean of the members' validation accuracies", series="ensemble", csv=False),
    Metric("member_val_acc_best", False, "the best member's validation accuracy", series="ensemble", csv=False),
    Metric("member_val_loss_mean", False, "mean of the members' validation cross-entropies", series="ensemble",
           csv=False),
    Metric("ensemble_gain_mean", False, "ensemble_val_acc - member_val_acc_mean: what averaging adds to the "
           "average member", series="ensemble", csv=False),
    Metric("ensemble_gain_best", False, "ensemble_val_acc - member_val_acc_best: > 0 when the ensemble beats even "
           "its best member", series="ensemble", csv=False),
    Metric("ensemble_loss_drop", False, "member_val_loss_mean - ensemble_val_loss: how much averaging the "
           "probabilities lowers the loss (never below 0; 0 when the members agree exactly)", series="ensemble",
           csv=False),
]

# dropout as an ensemble (lab/engine/mc_dropout.py): recorded at every evaluation when train.mc_samples > 0
# (NaN otherwise); "single" is the usual test-time network (vanilla: x q; inverted: as is)
MC_VAL_LOSS, MC_VAL_ACC, MC_GAP, MC_SCORE_GAP = "mc_val_loss", "mc_val_acc", "mc_gap", "mc_score_gap"
METRICS += [
    Metric(MC_VAL_LOSS, False, "validation cross-entropy of the Monte-Carlo average: the softmax probabilities "
           "averaged over train.mc_samples random dropout masks (plus the penalties, as val_loss)", series="eval"),
    Metric(MC_VAL_ACC, False, "validation accuracy of the Monte-Carlo average over random dropout masks",
           series="eval"),
    Metric(MC_GAP, False, "mean over validation examples of 0.5*sum_c |p_mc - p_single|: the probability the "
           "single rescaled network moves away from the Monte-Carlo average (0 .. 1)", series="eval"),
    Metric(MC_SCORE_GAP, False, "mean |s_mc - s_single| / mean |s_single| over validation scores: 0 in "
           "expectation when only linear layers follow the dropout (MC noise ~ 1/sqrt(mc_samples))", series="eval"),
]


# -- derived views ---------------------------------------------------------------------------
def names(entries: Iterable) -> tuple[str, ...]:
    """The names of `entries`, in declaration order (the order of the schema and the docs)."""
    return tuple(e.name for e in entries)


def public_activations() -> list[Activation]:
    return [a for a in ACTIVATIONS if a.public]


def codes(entries: Iterable) -> dict[str, int]:
    """name -> kernel code (the kernels' *_CODES tables)."""
    return {e.name: e.code for e in entries}


def key_cycle(entries: Iterable) -> tuple:
    """The entries a key cycles through, in their `key` order."""
    return tuple(sorted((e for e in entries if e.key is not None), key=lambda e: e.key))


def default(entries: Iterable) -> str:
    """The name of the entry marked default (the schema's default)."""
    (name,) = [e.name for e in entries if getattr(e, "default", False)]
    return name


def by_name(entries: Iterable, name: str):
    for e in entries:
        if e.name == name:
            return e
    raise KeyError(name)


def activation(name: str) -> Activation:
    return by_name(ACTIVATIONS, name)


def init(name: str) -> Init:
    return by_name(INITS, name)


def optimizer(name: str) -> Optimizer:
    return by_name(OPTIMIZERS, name)


def data_kind(name: str) -> DataKind:
    return by_name(DATA_KINDS, name)


def layer_metrics() -> tuple[str, ...]:
    return tuple(m.name for m in METRICS if m.per_layer)


def scalar_metrics() -> tuple[str, ...]:
    return tuple(m.name for m in METRICS if not m.per_layer)


def series_metrics(kind: str = "step") -> tuple[str, ...]:
    """The scalar metrics recorded every step ("step") or at every evaluation ("eval")."""
    return tuple(m.name for m in METRICS if m.series == kind)


def table_metrics() -> tuple[Metric, ...]:
    return tuple(sorted((m for m in METRICS if m.column is not None), key=lambda m: m.column))


_KINDS = {Activation: ACTIVATIONS, Init: INITS, Optimizer: OPTIMIZERS, Schedule: SCHEDULES,
          DropoutMode: DROPOUT_MODES, Loss: LOSSES, Preprocess: PREPROCESSING, DataKind: DATA_KINDS, Metric: METRICS}


def register(entry) -> None:
    """Add an entry (an Activation, Init, ... or Metric).  Call it before importing the modules
    that derive from the vocabulary (lab.scenario, lab.engine, lab.tui, lab.report): they
    build their tables at import.  An entry with a kernel code also needs its kernel branch."""
    entries = _KINDS[type(entry)]
    if any(e.name == entry.name for e in entries):
        raise ValueError(f"{entry.name!r} is already registered")
    if hasattr(entry, "code") and any(e.code == entry.code for e in entries):
        raise ValueError(f"code {entry.code} of {entry.name!r} is taken")
    entries.append(entry)


# -- docs ---------------------------------------------------------------------------------------
def _table(header: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["|" + "|".join(f" {cell} " if cell else " " for cell in row) + "|" for row in rows]
    return "\n".join(lines)


def docs_tables() -> dict[str, str]:
    """The tables of docs/network.md, by heading; tests/test_vocabulary.py checks the file has them."""
    return {
        "activations": _table(("name", "f(z)", "notes"),
                              ((a.name, a.formula, a.notes) for a in public_activations())),
        "dropout": _table(("dropout_mode", "train", "eval"), ((d.name, d.train, d.eval) for d in DROPOUT_MODES)),
        "losses": _table(("loss", "value"), ((s.doc, s.value) for s in LOSSES)),
        "optimizers": _table(("name", "update"), ((o.name, o.update) for o in OPTIMIZERS)),
    }
