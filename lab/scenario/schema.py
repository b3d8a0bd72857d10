"""The scenario format, declared once (pydantic v2).

Every field has a default and a description; unknown keys are errors (they are
usually typos).  The JSON Schema for editors is generated from these classes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from lab import vocabulary as V
from lab.metrics import parse_metric

from .consistency import cross_field_problems

# The vocabulary's names, from lab/vocabulary.py (pydantic takes a Literal built at run time).
DataKind = Literal[V.names(V.DATA_KINDS)]  # type: ignore[valid-type]
PreprocessStep = Literal[V.names(V.PREPROCESSING)]  # type: ignore[valid-type]
Activation = Literal[V.names(V.public_activations())]  # type: ignore[valid-type]
InitScheme = Literal[V.names(V.INITS)]  # type: ignore[valid-type]
DropoutMode = Literal[V.names(V.DROPOUT_MODES)]  # type: ignore[valid-type]
Loss = Literal[V.names(V.LOSSES)]  # type: ignore[valid-type]
Optimizer = Literal[V.names(V.OPTIMIZERS)]  # type: ignore[valid-type]
ScheduleKind = Literal[V.names(V.SCHEDULES)]  # type: ignore[valid-type]
Dtype = Literal["float32", "float64"]
TransferPhase = Literal["feature-extraction", "fine-tune"]  # lab/transfer: what each phase freezes and its lr factor
TransferStart = Literal["pretrained", "scratch"]

MAX_WIDTH = 16384
MAX_STEPS = 10_000_000
MAX_SEED = 2**53 - 1  # the largest integer a JSON editor keeps exactly
MAX_LAYERS = 64
MAX_EVENTS = 1000
MAX_VARIANTS = 16
MAX_EXPECT = 256
MAX_SMOOTH = 10_000
MAX_PACE_RATE = 1e6  # steps per second
MAX_PACE_SECONDS = 86_400.0  # a day
MAX_VALUE = 1e300  # expectation values and tolerances: any finite number of a sensible size
NAME = 64  # characters of a variant's name
MAX_MC_SAMPLES = 1000  # dropout masks averaged at an evaluation (TrainSpec.mc_samples)

Width = Annotated[int, Field(ge=1, le=MAX_WIDTH)]
StepNumber = Annotated[int, Field(ge=0, le=MAX_STEPS)]
RunName = Annotated[str, Field(min_length=1, max_length=NAME)]
Factor = Annotated[float, Field(ge=-1e6, le=1e6)]
MIN_MIXUP = 0.01  # see AugmentSpec.mixup


def _printable(allow: str = ""):
    """A validator refusing control characters (other than those in `allow`): a name is printed
    in terminals, where ESC, BEL or CR would move the cursor, clear the screen or hide text."""
    import unicodedata

    def check(value: str) -> str:
        for i, ch in enumerate(value):
            if ch not in allow and unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\u200d":
                names = {0: "NUL", 7: "BEL", 8: "BS", 9: "TAB", 10: "LF", 13: "CR", 27: "ESC", 127: "DEL"}
                name = names.get(ord(ch)) or unicodedata.name(ch, "a control character")
                raise ValueError(f"control character U+{ord(ch):04X} ({name}) at position {i}: not allowed here "
                                 "(a terminal would act on it)")
        return value

    return AfterValidator(check)


Line = Annotated[str, _printable()]  # one line of text: no control characters
Prose = Annotated[str, _printable("\n\t")]  # text of several lines


class Strict(BaseModel):
    # strict: a TOML string "100" is not silently an integer; ints still count as floats.
    # inf/nan are valid TOML floats but never a sensible setting
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class ScenarioMeta(Strict):
    name: Line = Field("Untitled", max_length=200, description="Title shown in the browser and reports "
                                                               "(at most 200 characters).")
    topic: Line = Field("misc", max_length=64, description="Curriculum topic (the folder it lives in).")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="One seed drives data, initialisation, batches and dropout "
                                                        "masks (0 .. 2**53 - 1).")
    explain: Prose = Field("", max_length=20_000, description="Markdown shown beside the run: what to watch and why "
                                                           "(at most 20,000 characters).")
    pace: Annotated[float, Field(gt=0.0, le=MAX_PACE_RATE)] | Annotated[str, Field(max_length=32)] | None = Field(
        None, description="How fast the lab's live run goes at first: steps per second (20, at most 1,000,000), "
                          "the duration of the whole run (\"30s\", at most a day: \"86400s\"), or \"max\" (as "
                          "fast as the machine goes).  Default: the run lasts about 30 s.  Headless runs ignore it.")

    @field_validator("pace")
    @classmethod
    def _pace(cls, value: float | str | None) -> float | str | None:
        from lab.pace import parse_pace

        if value is not None:
            kind, amount = parse_pace(value)  # raises ValueError with the accepted forms
            if kind == "duration" and amount is not None and amount > MAX_PACE_SECONDS:
                raise ValueError(f"pace {value!r}: a run lasts at most {MAX_PACE_SECONDS:.0f}s (a day)")
        return value


class AugmentSpec(Strict):
    flip: bool = Field(False, description="Flip each training image horizontally with probability 1/2.")
    crop_pad: int = Field(0, ge=0, le=8, description="Pad by this many pixels and crop back at a random offset.")
    noise: float = Field(0.0, ge=0.0, le=10.0, description="Std of gaussian noise added to every pixel (<= 10).")
    brightness: float = Field(0.0, ge=0.0, le=100.0, description="Add U(-b, b) to each image (<= 100).")
    contrast: float = Field(0.0, ge=0.0, lt=1.0, description="Scale each image around its mean by U(1-c, 1+c).")
    scale: float = Field(0.0, ge=0.0, lt=1.0, description="Zoom each image about its centre by U(1-s, 1+s) "
                                                          "(bilinear; zeros where a shrunk image leaves a border).")
    cutout: int = Field(0, ge=0, le=32, description="Zero a random square of this side in each image.")
    mixup: float = Field(0.0, ge=0.0, le=10.0, description="Mixup alpha: blend each batch with a shuffled copy, "
                                                           "weight ~ Beta(alpha, alpha); 0 (off) or 0.01 to 10.")

    @field_validator("mixup")
    @classmethod
    def _mixup(cls, value: float) -> float:
        if 0.0 < value < MIN_MIXUP:  # Beta(a, a) for a tiny a is 0 or 1: no blend, only a label swap
            raise ValueError(f"must be 0 (off) or at least {MIN_MIXUP}, found {value:g}: below that the mixing "
                             "weight Beta(alpha, alpha) is almost always exactly 0 or 1, so nothing is blended")
        return value

    def active(self) -> bool:
        return any(v for v in self.model_dump().values())



class DataSpec(Strict):
    kind: DataKind = Field(V.default(V.DATA_KINDS), description="Which data set to generate or load (never downloaded).")
    n: int = Field(600, ge=2, le=1_000_000, description="Number of examples, 2 .. 1,000,000 (real data sets: a "
                                                          "subsample if smaller).")
    classes: int = Field(3, ge=2, le=1000, description="Number of classes (2 .. 1000), for synthetic kinds that "
                                                       "support it.")
    noise: float = Field(0.2, ge=0.0, le=100.0, description="Noise level of synthetic data (0 .. 100).")
    dim: int = Field(2, ge=1, le=MAX_WIDTH, description="Input dimension of random-normal, gaussians and "
                                                        "positive-blobs (1 .. 16384).")
    preprocess: list[PreprocessStep] = Field(default_factory=list, max_length=8,
                                             description="Steps fitted on train only, applied to val (at most 8).")
    pca_components: int | None = Field(None, ge=1, le=MAX_WIDTH, description="Components kept by pca (default: "
                                                                              "all; at most 16384).")
    val_fraction: float = Field(0.2, ge=0.0, le=0.9, description="Fraction held out for validation.")
    augment: AugmentSpec = Field(default_factory=AugmentSpec, description="Training-time augmentation (image data).")
    val_noise: float = Field(0.0, ge=0.0, le=100.0, description="Std of gaussian noise added once to the validation "
                                                              "inputs after preprocessing (a robustness test; training "
                                                              "data untouched; its own seeded stream).")
    shift: float = Field(0.0, ge=-1e6, le=1e6, description="Added to every raw feature (an off-centre data set; "
                                                           "|shift| <= 1e6).")
    scale: Factor | Annotated[list[Factor], Field(min_length=1, max_length=MAX_WIDTH)] = Field(
        1.0, description="Multiplies the raw features: one factor, or one per feature (badly scaled, ill-conditioned); "
                         "each |factor| <= 1e6.")


class ModelSpec(Strict):
    hidden: list[Width] = Field(
        default_factory=lambda: [100], min_length=1, max_length=MAX_LAYERS,
        description="Hidden layer widths: 1 to 64 layers of 1 .. 16384 units.")
    activation: Activation = Field(V.default(V.ACTIVATIONS), description="Activation of every hidden layer.")
    alpha: float | None = Field(None, ge=-10.0, le=10.0, description="leaky_relu slope (0.01) or elu alpha (1.0); "
                                                                     "|alpha| <= 10.")
    maxout_k: int = Field(2, ge=2, le=8, description="Pieces per maxout unit.")
    init: InitScheme = Field(V.default(V.INITS), description="Weight initialisation scheme.")
    init_scale: float | None = Field(None, ge=0.0, le=100.0, description="normal: std; uniform: half-width; "
                                                                         "constant: value; others: gain (<= 100).")
    bias_init: float = Field(0.0, ge=-100.0, le=100.0, description="Initial value of every bias (0.01 against dead "
                                                                   "ReLUs); |bias_init| <= 100.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Drop probability after each hidden activation.")
    dropout_mode: DropoutMode = Field(V.default(V.DROPOUT_MODES), description="inverted, vanilla, or vanilla-noscale (the bug).")
    dropconnect: float = Field(0.0, ge=0.0, lt=1.0, description="Drop probability of each hidden weight.")
    batchnorm: bool = Field(False, description="Batchnorm before each hidden activation.")
    residual: bool = Field(False, description="Residual blocks: hidden[0] projects, then pairs of layers + skip.")
    residual_zero_init: bool = Field(False, description="Zero-initialise the second layer of every block.")
    loss: Loss = Field(V.default(V.LOSSES), description="softmax cross-entropy, mse on one-hot targets, or multiclass hinge.")
    dtype: Dtype = Field("float32", description="Floating-point precision of the engine.")


class ScheduleSpec(Strict):
    kind: ScheduleKind = Field(V.default(V.SCHEDULES), description="Learning-rate schedule.")
    warmup: int = Field(0, ge=0, le=MAX_STEPS, description="Linear warmup steps in front of the schedule.")
    milestones: list[Annotated[float, Field(gt=0, le=MAX_STEPS)]] = Field(
        default_factory=list, max_length=64,
        description="step: steps (>= 1) or fractions of training (< 1) where lr *= factor (at most 64).")
    factor: float = Field(0.1, gt=0.0, le=100.0, description="step: multiplier at each milestone (<= 100).")
    min_lr: float = Field(0.0, ge=0.0, le=1e9, description="cosine/linear: final learning rate (<= 1e9).")
    timescale: int | None = Field(None, ge=1, le=MAX_STEPS,
                                  description="inverse_sqrt: steps before decay starts (default: warmup).")
    total: int | None = Field(None, ge=1, le=MAX_STEPS,
                              description="Steps the schedule spans (cosine/linear decay, milestones "
                                          "given as fractions), counted from `start`; default "
                                          "train.steps - start.")
    start: int = Field(0, ge=0, le=MAX_STEPS,
                       description="The step the schedule starts from: warmup, milestones and decay "
                                   "count from here (a schedule chosen mid-run starts where it was chosen).")


class TrainSpec(Strict):
    optimizer: Optimizer = Field(V.default(V.OPTIMIZERS), description="Update rule.")
    lr: float = Field(0.1, gt=0.0, le=1e9, description="Base (peak) learning rate (<= 1e9: a diverging run "
                                                           "is a lesson too).")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="momentum / nesterov coefficient.")
    beta1: float = Field(0.9, ge=0.0, lt=1.0, description="adam/adamw first-moment decay.")
    beta2: float | None = Field(None, ge=0.0, lt=1.0, description="adam/adamw second-moment decay (0.999), rmsprop decay (0.99).")
    eps: float = Field(1e-8, gt=0.0, le=1.0, description="adam/rmsprop denominator epsilon (<= 1).")
    weight_decay: float = Field(0.0, ge=0.0, le=100.0, description="Decoupled weight decay on W (AdamW style), any "
                                                                   "optimizer (<= 100).")
    l1: float = Field(0.0, ge=0.0, le=100.0, description="L1 penalty coefficient (added to the loss; <= 100).")
    l2: float = Field(0.0, ge=0.0, le=100.0, description="L2 penalty coefficient: + 0.5*l2*sum(W^2) in the loss "
                                                         "(<= 100).")
    clip_norm: float = Field(0.0, ge=0.0, le=1e6, description="Clip the global gradient norm to this (0 = off; "
                                                              "<= 1e6).")
    batch_size: int = Field(64, ge=1, le=65536, description="Examples per step (1 .. 65536; at most the training "
                                                            "rows are used).")
    steps: int = Field(1000, ge=1, le=MAX_STEPS, description="Training steps of a headless run (1 .. 10,000,000).")
    eval_every: int = Field(50, ge=1, le=MAX_STEPS, description="Validation loss/accuracy every this many steps.")
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec, description="Learning-rate schedule.")
    mc_samples: int = Field(0, ge=0, le=MAX_MC_SAMPLES, description="Dropout as an ensemble: at every evaluation "
                            "also average the softmax over this many random dropout masks (mc_val_acc, mc_val_loss, "
                            "mc_gap, mc_score_gap); 0 = off, at most 1000.  Needs loss = softmax.")


class Changes(Strict):
    """What an event or a variant may change; everything optional."""

    lr: float | None = Field(None, gt=0.0, le=1e9)
    optimizer: Optimizer | None = None
    momentum: float | None = Field(None, ge=0.0, lt=1.0)
    weight_decay: float | None = Field(None, ge=0.0, le=100.0)
    l1: float | None = Field(None, ge=0.0, le=100.0)
    l2: float | None = Field(None, ge=0.0, le=100.0)
    clip_norm: float | None = Field(None, ge=0.0, le=1e6)
    batch_size: int | None = Field(None, ge=1, le=65536)
    schedule: ScheduleSpec | None = None
    init: InitScheme | None = None
    init_scale: float | None = Field(None, ge=0.0, le=100.0)
    bias_init: float | None = Field(None, ge=-100.0, le=100.0)
    activation: Activation | None = None
    alpha: float | None = Field(None, ge=-10.0, le=10.0)
    dropout: float | None = Field(None, ge=0.0, lt=1.0)
    dropout_mode: DropoutMode | None = None
    dropconnect: float | None = Field(None, ge=0.0, lt=1.0)
    batchnorm: bool | None = None
    preprocess: list[PreprocessStep] | None = Field(None, max_length=8)
    reinit: bool | None = Field(None, description="Re-initialise the weights with the current scheme.")
    # transfer learning ([transfer]): the target phase, the frozen lower layers, the lr factor
    phase: TransferPhase | None = Field(None, description="Transfer phase: feature-extraction or fine-tune "
                                                          "(brings its own freeze and lr_factor).")
    freeze: int | None = Field(None, ge=0, le=MAX_LAYERS, description="Lower layers frozen (transfer).")
    lr_factor: float | None = Field(None, gt=0.0, le=1e3, description="Learning rate multiplier (transfer).")

    def given(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, exclude_unset=True)


class Event(Strict):
    at: int = Field(..., ge=0, le=MAX_STEPS, description="Step at which the change applies (before that step runs).")
    set: Changes = Field(..., description="The changes, as Simulation.set(**changes).")
    only: list[RunName] | None = Field(
        None, min_length=1, max_length=MAX_VARIANTS + 1,
        description="The runs this event belongs to: 'base' and/or [[variants]] names "
                                        "(default: every run). A saved session marks your changes only = "
                                        "[\"base\"], so the variants keep the scenario's own timeline.")

    def applies_to(self, run: str) -> bool:
        """Whether the run named `run` ('base' or a variant's name) has this event."""
        return self.only is None or run in self.only


class VariantChanges(Changes):
    """A variant starts from step 0, so it may also change what cannot change mid-run:
    the layers, the data set, the training length."""

    hidden: list[Width] | None = Field(None, min_length=1, max_length=MAX_LAYERS)
    maxout_k: int | None = Field(None, ge=2, le=8)
    residual: bool | None = None
    residual_zero_init: bool | None = None
    loss: Loss | None = None
    dtype: Dtype | None = None
    kind: DataKind | None = None
    n: int | None = Field(None, ge=2, le=1_000_000)
    classes: int | None = Field(None, ge=2, le=1000)
    noise: float | None = Field(None, ge=0.0, le=100.0)
    dim: int | None = Field(None, ge=1, le=MAX_WIDTH)
    pca_components: int | None = Field(None, ge=1, le=MAX_WIDTH)
    val_fraction: float | None = Field(None, ge=0.0, le=0.9)
    shift: float | None = Field(None, ge=-1e6, le=1e6)
    scale: Factor | Annotated[list[Factor], Field(min_length=1, max_length=MAX_WIDTH)] | None = None
    augment: AugmentSpec | None = None
    val_noise: float | None = Field(None, ge=0.0, le=100.0)
    steps: int | None = Field(None, ge=1, le=MAX_STEPS)
    eval_every: int | None = Field(None, ge=1, le=MAX_STEPS)
    mc_samples: int | None = Field(None, ge=0, le=MAX_MC_SAMPLES)
    start: TransferStart | None = None
    labels_per_class: int | None = Field(None, ge=1, le=1_000_000)
    source_permute: bool | None = None
    source_steps: int | None = Field(None, ge=0, le=MAX_STEPS)
    ensemble: "EnsembleChanges | None" = Field(
        None, description="[ensemble] keys that differ in this run (merged over the scenario's [ensemble]; e.g. "
                          "members = 1, the cause of an ensemble claim removed).")


class Variant(Strict):
    name: Line = Field(..., min_length=1, max_length=NAME,
                      description="Variant name (at most 64 characters); the unchanged run is 'base'.")
    set: VariantChanges = Field(default_factory=VariantChanges,
                                description="Overrides applied from step 0: any Changes key, and also hidden, "
                                            "residual, residual_zero_init, maxout_k, loss, dtype, the data keys "
                                            "(kind, n, classes, noise, dim, pca_components, val_fraction, shift, "
                                            "scale, augment), steps, eval_every and mc_samples.")


class Expectation(Strict):
    metric: str = Field(..., max_length=200, description="A Snapshot metric: loss, val_acc, dead_fraction (with "
                                                         "layer), or steps_to(train_acc >= 0.9).")
    layer: int | None = Field(None, ge=1, le=MAX_LAYERS + 1,
                              description="Layer number (1 = first hidden, L = output) for per-layer metrics.")
    at: StepNumber | Literal["initial", "final"] | None = Field(
        None, description="Read the metric at this step ('initial' = step 0, 'final' = the last step; default final).")
    by: int | None = Field(None, ge=0, le=MAX_STEPS, description="Holds at some checkpoint <= by.")
    throughout: bool = Field(False, description="Holds at every checkpoint (every eval_every steps and the end).")
    reduce: Literal["min", "max", "mean"] | None = Field(
        None, description="Compare the min/max/mean over the checkpoints (up to `by` if given).")
    op: Literal["<", "<=", ">", ">=", "==", "!="] = Field("<", description="Comparison.")
    value: float = Field(..., ge=-MAX_VALUE, le=MAX_VALUE, description="Right-hand side (|value| <= 1e300).")
    tolerance: float = Field(0.0, ge=0.0, le=MAX_VALUE, description="Slack for == and != (absolute).")
    smooth: int = Field(1, ge=1, le=MAX_SMOOTH, description="Trailing moving average (steps, at most 10,000) "
                                                            "applied to per-step series first.")
    variant: str = Field("base", max_length=NAME, description="Which run the metric is read from.")
    ratio_over: str | None = Field(None, max_length=NAME,
                                   description="Compare metric(variant) / metric(ratio_over variant).")
    difference_over: str | None = Field(None, max_length=NAME,
                                        description="Compare metric(variant) - metric(difference_over variant).")
    why: Prose = Field("", max_length=1000, description="The claim this checks, in a sentence (shown when it fails).")
    control: str | None = Field(None, max_length=NAME,
                                description="A variant with the claim's cause removed: `nnlab check` evaluates the "
                                            "same claim with `variant` replaced by this one, and reports the claim "
                                            "as vacuous (a failure) if it holds there too.")
    robust: bool = Field(True, description="The claim holds at every seed and width `nnlab check --seeds/--widths` "
                                           "tries (false: only at the scenario's own; say why in robust_reason).")
    robust_reason: Prose = Field("", max_length=1000,
                                 description="Why the claim is honestly seed-specific (required with robust = false).")
    align: Literal["step", "epoch"] = Field(
        "step", description="How ratio_over / difference_over pair the runs' values: at the same step (default), "
                            "or at the same epoch (the same number of training examples seen: runs with different "
                            "batch sizes and steps; 'final' is then each run's own end).  epoch reads the metrics "
                            "of the checkpoints (val_*, mc_*, per-layer), not per-step series, and takes no step "
                            "number (at = N, by).")

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        parse_metric(value)
        return value

    @model_validator(mode="after")
    def _one_time_selector(self) -> "Expectation":
        chosen = [name for name, on in (("at", self.at is not None), ("throughout", self.throughout),
                                        ("reduce", self.reduce is not None)) if on]
        if len(chosen) > 1:
            raise ValueError(f"use only one of at, throughout, reduce (found {', '.join(chosen)})")
        if self.by is not None and (self.at is not None or self.throughout):
            raise ValueError("by cannot be combined with at or throughout")
        if self.ratio_over and self.difference_over:
            raise ValueError("use ratio_over or difference_over, not both")
        if not self.robust and not self.robust_reason.strip():
            raise ValueError("robust = false needs robust_reason: why the claim holds only at this seed")
        if self.control is not None and self.control in (self.variant, self.ratio_over, self.difference_over):
            raise ValueError(f"control {self.control!r} is a run the claim already reads: name a variant with the "
                             "cause removed")
        if self.align == "epoch":
            from lab.metrics import STEP_SERIES_METRICS

            ref = parse_metric(self.metric)
            if ref.steps_to is not None or ref.name in STEP_SERIES_METRICS:
                raise ValueError(f"align = \"epoch\" compares checkpoint metrics (val_loss, val_acc, mc_*, "
                                 f"per-layer ones); {self.metric} is a per-step series, numbered by steps")
            if isinstance(self.at, int) or self.by is not None:
                raise ValueError("align = \"epoch\" takes no step number (at = N, by): the runs reach a step at "
                                 "different epochs; use at = \"final\" or \"initial\", throughout or reduce")
        return self


def _axis_field(name: str):
    from lab.search.space import parse_axis

    def check(value: str | None) -> str | None:
        if value is not None:
            parse_axis(name, value)  # ValueError says what is expected
        return value

    return Annotated[str | None, AfterValidator(check)]


def _search_params_model() -> type[BaseModel]:
    """[search.params]: one optional key per setting a variant's `set` accepts that a search can vary."""
    from pydantic import create_model

    from lab.search.space import searchable

    fields = {name: (_axis_field(name), Field(None, max_length=20_000, description=f"The {name} axis: "
                                              "log:LOW:HIGH, linear:LOW:HIGH, int:LOW:HIGH or choice:A,B,..."))
              for name in searchable()}
    return create_model("SearchParams", __base__=Strict, __doc__="The searched settings and their ranges.",
                        **fields)


SearchParams = _search_params_model()
MAX_TRIALS = 100_000  # trials of one stage
MAX_STAGES = 8
SearchMetric = Literal[V.SEARCH_METRICS]  # type: ignore[valid-type]
Sampling = Literal[V.SEARCH_SAMPLINGS]  # type: ignore[valid-type]


class StageSpec(Strict):
    """A further stage: narrow every range around the top_k trials of the stage before, train longer."""

    sampling: Sampling = Field("random", description="random (the notes' advice) or grid.")
    trials: int = Field(10, ge=1, le=MAX_TRIALS, description="Trials of this stage (grid: the most it may hold).")
    points: int | None = Field(None, ge=1, le=1_000_000, description="grid: values per continuous axis "
                                                                     "(default: as many as fit in trials).")
    steps: int | None = Field(None, ge=1, le=MAX_STEPS, description="Training steps of each trial (default: "
                                                                    "twice the stage before's).")
    epochs: float | None = Field(None, gt=0, le=1e6, description="Or: passes over the training set per trial.")
    top_k: int = Field(3, ge=1, le=MAX_TRIALS, description="Narrow around this many best trials of the stage before.")
    margin: float = Field(0.25, ge=0.0, le=10.0, description="Widen the top trials' span by this fraction of it "
                                                             "on each side (at least 5% of the old range).")

    @model_validator(mode="after")
    def _steps_or_epochs(self):
        if self.steps is not None and self.epochs is not None:
            raise ValueError("give steps or epochs, not both")
        return self


class SearchSpec(Strict):
    """[search]: a hyperparameter search over this scenario (`nnlab search`); run and check ignore it."""

    sampling: Sampling = Field("random", description="random (the notes' advice) or grid.")
    trials: int = Field(20, ge=1, le=MAX_TRIALS, description="Trials of the first (coarse) stage; grid: the most "
                                                           "the grid may hold (1 .. 100,000).")
    points: int | None = Field(None, ge=1, le=1_000_000, description="grid: values per continuous axis "
                                                                     "(default: as many as fit in trials).")
    steps: int | None = Field(None, ge=1, le=MAX_STEPS, description="Training steps of each trial (default: "
                                                                    "the scenario's train.steps).")
    epochs: float | None = Field(None, gt=0, le=1e6, description="Or: passes over the training set per trial.")
    metric: SearchMetric = Field(V.VAL_ACC, description="What ranks the trials, read at each trial's end "
                                                        "(loss and train_acc: the mean of the last 10% of steps).")
    direction: Literal["max", "min"] | None = Field(None, description="max or min (default: max for accuracies, "
                                                                      "min for losses); ties go to the lower val_loss.")
    params: SearchParams = Field(default_factory=SearchParams,  # type: ignore[valid-type]
                                 description="The searched settings: name = \"log:1e-4:1\", ...")
    stages: list[StageSpec] = Field(default_factory=list, max_length=MAX_STAGES - 1,
                                    description="Further stages, each narrowing around the best of the one before.")

    @model_validator(mode="after")
    def _steps_or_epochs(self):
        if self.steps is not None and self.epochs is not None:
            raise ValueError("give steps or epochs, not both")
        return self

    @property
    def maximize(self) -> bool:
        return (self.direction or ("max" if self.metric.endswith("acc") else "min")) == "max"

    def param_texts(self) -> dict[str, str]:
        """The searched settings, name -> axis text, in the schema's order."""
        return self.params.model_dump(exclude_none=True)


# -- [ensemble]: several networks whose predictions are averaged (lab/ensemble/) --------------------------
MAX_MEMBERS = 32
ENSEMBLE_MODES = ("seeds", "snapshot")
ENSEMBLE_COMBINE = ("mean", "vote")
# what a listed member may not change: every member is scored on the same validation rows at the same steps
MEMBER_FIXED_KEYS = ("kind", "n", "classes", "noise", "dim", "pca_components", "val_fraction", "shift", "scale",
                     "steps", "eval_every", "ensemble")


class MemberSpec(Strict):
    """[[ensemble.members]]: one member given by its settings (and optionally its own seed)."""

    name: Line | None = Field(None, min_length=1, max_length=NAME, description="Its name in tables (default m1, m2, ...).")
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="Its seed for init, batches and dropout (default: "
                                                                  "the scenario's; the data split is always the "
                                                                  "scenario's).")
    set: VariantChanges = Field(default_factory=VariantChanges,
                                description="Overrides from step 0, as a variant's `set`, except the data and length "
                                            "keys (" + ", ".join(MEMBER_FIXED_KEYS) + "): members share the "
                                            "validation rows and the checkpoints.")

    @field_validator("set")
    @classmethod
    def _same_rows(cls, value: VariantChanges) -> VariantChanges:
        fixed = [k for k in MEMBER_FIXED_KEYS if k in value.given()]
        if fixed:
            raise ValueError(f"a member cannot change {', '.join(fixed)}: every member is scored on the same "
                             "validation rows at the same steps (give the whole ensemble a variant instead)")
        return value


class EnsembleSpec(Strict):
    """[ensemble]: train several members and average their predictions on the validation set."""

    mode: Literal[ENSEMBLE_MODES] = Field("seeds", description="seeds: independent members (member k uses seed "  # type: ignore[valid-type]
                                                               "scenario.seed + k: its own init, batch order and "
                                                               "dropout; the data split is shared); snapshot: members "
                                                               "taken along ONE run at the steps in `at`.")
    members: Annotated[int, Field(ge=1, le=MAX_MEMBERS)] | Annotated[
        list[MemberSpec], Field(min_length=1, max_length=MAX_MEMBERS)] | None = Field(
        None, description="seeds mode: how many members (1 .. 32; default 5), or [[ensemble.members]] tables that "
                          "list each member's settings (they share the scenario's seed unless they give one).")
    combine: Literal[ENSEMBLE_COMBINE] = Field("mean", description="mean: average the members' softmax "  # type: ignore[valid-type]
                                                                  "probabilities (the notes' advice); vote: majority "
                                                                  "vote of their predicted classes (a tie goes to the "
                                                                  "tied class with the higher mean probability, then "
                                                                  "the lower class number).")
    at: list[Annotated[int, Field(ge=1, le=MAX_STEPS)]] | None = Field(
        None, min_length=2, max_length=MAX_MEMBERS,
        description="snapshot mode: the steps (ascending, 2 .. 32 of them, within train.steps) whose weights become "
                    "members, e.g. the ends of cosine cycles.")

    @model_validator(mode="after")
    def _mode_keys(self) -> "EnsembleSpec":
        if self.mode == "snapshot":
            if self.at is None:
                raise ValueError("mode = \"snapshot\" needs at = [steps...]: the steps whose weights become members "
                                 "(e.g. at = [200, 400, 600], the ends of cosine cycles)")
            if self.members is not None:
                raise ValueError("mode = \"snapshot\" takes its members from `at`: leave out members")
            if list(self.at) != sorted(set(self.at)):
                raise ValueError(f"at must be ascending steps without repeats (found {list(self.at)})")
        elif self.at is not None:
            raise ValueError("at is for mode = \"snapshot\"; seeds mode uses members = N")
        return self

    @property
    def size(self) -> int:
        """How many members the ensemble has."""
        if self.mode == "snapshot":
            return len(self.at or ())
        if isinstance(self.members, list):
            return len(self.members)
        return 5 if self.members is None else self.members


class EnsembleChanges(Strict):
    """A variant's `set.ensemble`: any [ensemble] key, merged over the scenario's table (the result
    is checked as an [ensemble] table)."""

    mode: Literal[ENSEMBLE_MODES] | None = None  # type: ignore[valid-type]
    members: Annotated[int, Field(ge=1, le=MAX_MEMBERS)] | Annotated[
        list[MemberSpec], Field(min_length=1, max_length=MAX_MEMBERS)] | None = None
    combine: Literal[ENSEMBLE_COMBINE] | None = None  # type: ignore[valid-type]
    at: list[Annotated[int, Field(ge=1, le=MAX_STEPS)]] | None = Field(None, min_length=2, max_length=MAX_MEMBERS)


VariantChanges.model_rebuild()
Variant.model_rebuild()
MemberSpec.model_rebuild()
EnsembleSpec.model_rebuild()


def merged_ensemble(base: EnsembleSpec | None, changes: dict[str, Any]) -> EnsembleSpec:
    """A variant's [ensemble]: the scenario's with the variant's keys over it (ValueError if invalid)."""
    from pydantic import ValidationError

    given = base.model_dump(exclude_defaults=True) if base is not None else {}
    if "mode" in changes and changes["mode"] != (base.mode if base is not None else "seeds"):
        given = {k: v for k, v in given.items() if k == "combine"}  # another mode: its own keys only
    try:
        return EnsembleSpec(**{**given, **changes})
    except ValidationError as exc:
        raise ValueError("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None


def ensemble_problems(sc: "Scenario") -> list[str]:
    """What [ensemble] asks that this scenario cannot give: snapshot steps past the end of a run,
    ensemble metrics without an [ensemble] table."""
    from lab.metrics import ENSEMBLE_SERIES_METRICS

    problems = []
    ens = sc.ensemble
    runs = [("", sc.ensemble, sc.train.steps)]
    for i, v in enumerate(sc.variants):
        if v.set.ensemble is not None:
            try:
                runs.append((f" (variants[{i}] {v.name!r})", merged_ensemble(ens, v.set.given()["ensemble"]),
                             v.set.steps or sc.train.steps))
            except ValueError as exc:
                problems.append(f"variants[{i}].set.ensemble: {exc}")
    for where, spec, steps in runs[1:]:
        late = [s for s in (spec.at or ()) if s > steps]
        if late:
            problems.append(f"ensemble.at{where}: step(s) {', '.join(map(str, late))} after the run's last step {steps}")
    if ens is None and len(runs) == 1:
        for i, ex in enumerate(sc.expect):
            if parse_metric(ex.metric).name in ENSEMBLE_SERIES_METRICS:
                problems.append(f"expect[{i}].metric: {ex.metric} needs an [ensemble] table (e.g. members = 5)")
        return problems
    if ens is not None and ens.at is not None:
        runs = [("", sc.train.steps)] + [(f" (variant {v.name!r} has {v.set.steps})", v.set.steps)
                                         for v in sc.variants if v.set.steps is not None]
        for where, steps in runs:
            late = [s for s in ens.at if s > steps]
            if late:
                problems.append(f"ensemble.at: step(s) {', '.join(map(str, late))} after the run's last step "
                                f"{steps}{where}")
    return problems


class Scenario(Strict):
    scenario: ScenarioMeta = Field(default_factory=ScenarioMeta)
    data: DataSpec = Field(default_factory=DataSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    events: list[Event] = Field(default_factory=list, max_length=MAX_EVENTS)
    variants: list[Variant] = Field(default_factory=list, max_length=MAX_VARIANTS)
    expect: list[Expectation] = Field(default_factory=list, max_length=MAX_EXPECT)
    search: SearchSpec | None = Field(None, description="A hyperparameter search over this scenario "
                                                        "(`nnlab search`); run and check ignore it.")
    transfer: TransferSpec | None = Field(None, description="Transfer learning: pretrain on a source task, then "
                                                            "train on the target task ([data]); see docs/transfer.md.")
    ensemble: EnsembleSpec | None = Field(None, description="Train several members and average their predictions "
                                                            "(model ensembles, snapshot ensembles).")

    @model_validator(mode="after")
    def _consistent(self) -> "Scenario":
        problems = cross_field_problems(self.model_dump()) + ensemble_problems(self)
        from lab.transfer.spec import event_problems_without_transfer, transfer_problems

        problems = problems + (transfer_problems(self) if self.transfer is not None
                               else event_problems_without_transfer(self))
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def seed(self) -> int:
        return self.scenario.seed

    @property
    def name(self) -> str:
        return self.scenario.name

    def with_changes(self, changes: Changes | dict[str, Any]) -> "Scenario":
        """This scenario with `changes` applied to the sections they belong to."""
        given = changes.given() if isinstance(changes, Changes) else VariantChanges(**changes).given()
        sections = {"model": dict(self.model.model_dump()), "train": dict(self.train.model_dump()),
                    "data": dict(self.data.model_dump())}
        owner = {**{k: "train" for k in TrainSpec.model_fields}, **{k: "data" for k in DataSpec.model_fields},
                 **{k: "model" for k in ModelSpec.model_fields}}
        if "init" in given and "init_scale" not in given:
            sections["model"]["init_scale"] = None  # a named scheme brings its own scale
        transfer_keys = set(given) & TRANSFER_KEYS
        if transfer_keys:  # the transfer section's keys (a scenario without [transfer] cannot take them)
            if self.transfer is None:
                raise ValueError(f"{', '.join(sorted(transfer_keys))}: only a scenario with a [transfer] table "
                                 "has transfer phases")
            changed = {k: given.pop(k) for k in transfer_keys}
            if "phase" in changed:  # a phase brings its own freeze and lr factor unless given with it
                changed = {"freeze": None, "lr_factor": None, **changed}
            transfer = TransferSpec(**{**self.transfer.model_dump(), **changed})
            return self.model_copy(update={"transfer": transfer}).with_changes(given)
        ensemble = given.pop("ensemble", None)  # a variant's [ensemble] keys (merged_ensemble)
        for key, value in given.items():
            if key == "reinit":
                continue
            sections[owner[key]][key] = value.model_dump() if isinstance(value, BaseModel) else value
        extra = {"ensemble": merged_ensemble(self.ensemble, ensemble)} if ensemble is not None else {}
        return self.model_copy(update={"model": ModelSpec(**sections["model"]), "train": TrainSpec(**sections["train"]),
                                       "data": DataSpec(**sections["data"]), **extra})


def json_schema() -> dict:
    """The JSON Schema of scenario files (a committed copy lives in docs/scenario.schema.json)."""
    schema = Scenario.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "nnlab scenario"
    return schema


# -- transfer learning (lab/transfer) -------------------------------------------------------------
class SourceData(Strict):
    """[transfer.source]: how the source task's data differ from [data] (a key left out: as in [data])."""

    kind: DataKind | None = Field(None, description="Data set of the source task (default: data.kind).")
    n: int | None = Field(None, ge=2, le=1_000_000, description="Rows generated for the source task.")
    classes: int | None = Field(None, ge=2, le=1000, description="Classes of a synthetic source set.")
    noise: float | None = Field(None, ge=0.0, le=100.0, description="Noise of a synthetic source set.")
    dim: int | None = Field(None, ge=1, le=MAX_WIDTH, description="Input dimension of a synthetic source set "
                                                                  "(must equal the target's).")


ClassList = Annotated[list[Annotated[int, Field(ge=0, le=999)]], Field(max_length=1000)]


class TransferSpec(Strict):
    """[transfer]: pretrain the same hidden layers on a source task, then train on the target task ([data])."""

    source_classes: ClassList = Field(default_factory=list, description="The source task's classes of the data "
                                      "set, relabelled 0.. in this order (default: every class).")
    target_classes: ClassList = Field(default_factory=list, description="The target task's classes of [data], "
                                      "relabelled 0.. in this order (default: every class).")
    labels_per_class: int | None = Field(None, ge=1, le=1_000_000, description="Target training rows per class "
                                         "(a few labels); the other target rows are the validation set.  Default: "
                                         "split by data.val_fraction.")
    source: SourceData = Field(default_factory=SourceData, description="The source task's own data settings "
                               "(default: the same data as the target, other classes).")
    source_permute: bool = Field(False, description="Permute the source task's input features by a fixed random "
                                 "permutation: a source that shares no features with the target (a control).")
    source_steps: int = Field(1000, ge=0, le=MAX_STEPS, description="Pretraining steps on the source task.")
    source_lr: float | None = Field(None, gt=0.0, le=1e9, description="Pretraining learning rate (default: "
                                                                      "train.lr).")
    pretrained: str = Field("source-seed{seed}.npz", min_length=1, max_length=1000, description="The source "
                            "weights (.npz: W1, b1, ...), relative to the scenario's folder; {seed} is replaced by "
                            "the seed.  Made by pretraining when missing.")
    start: TransferStart = Field("pretrained", description="pretrained (the source weights) or scratch (a fresh "
                                                           "initialisation: the control).")
    phase: TransferPhase = Field("fine-tune", description="feature-extraction (hidden layers frozen, lr factor 1) "
                                 "or fine-tune (nothing frozen, lr factor 0.1); an event may switch it.")
    freeze: int | None = Field(None, ge=0, le=MAX_LAYERS, description="Lower layers frozen (default: the "
                               "phase's: every hidden layer for feature-extraction, none for fine-tune).")
    lr_factor: float | None = Field(None, gt=0.0, le=1e3, description="Multiplies the learning rate (default: "
                                    "the phase's: 1 for feature-extraction, 0.1 for fine-tune).")

    def frozen_layers(self, hidden_layers: int) -> int:
        """The lower layers frozen now (at most the hidden ones: the new head always trains)."""
        default = hidden_layers if self.phase == "feature-extraction" else 0
        return min(hidden_layers, default if self.freeze is None else self.freeze)

    def factor(self) -> float:
        """The learning rate multiplier now."""
        return (1.0 if self.phase == "feature-extraction" else 0.1) if self.lr_factor is None else self.lr_factor


TRANSFER_KEYS = frozenset({"phase", "freeze", "lr_factor", "start", "labels_per_class", "source_permute",
                           "source_steps"})
Scenario.model_rebuild()
