"""How much memory a scenario needs, worked out before anything is allocated.

Pure arithmetic on a validated Scenario: no array is created and the engine (numba) is not
imported, so the browser can describe a file at once.  `layout` counts parameters, node
widths and per-batch caches the way lab/engine/architecture.py lays them out (a test
holds the two equal on many architectures).

Every run is estimated: the base, each [[variants]] entry, and each of them through its
timeline, since an event may switch preprocessing (the data are built again while the old
copy is still held) or change the network (a second network is built before the first is
let go) or raise the batch size (another workspace).  A run's estimate is the largest of
its phases:

- loading the data: the raw rows three times over (generated, scaled, shifted), or the
  split and the preprocessing (an SVD for pca/whiten: the matrix, a copy, U, V and LAPACK's
  work area);
- building the network: the data held, the parameters, their gradients and the
  initialiser's float64 temporaries;
- training: the data held (float64 split, the trainer's copy in the model's dtype), the
  parameters, gradients, both optimizer moments, the last update and the regularisation
  mask; a workspace (every node's values and gradients, dropout/batchnorm/maxout caches,
  dropconnect's masked weights) for each batch size in use, the evaluation chunk, the probe
  set, the first snapshot's gradient pass and the decision grid; the statistics'
  temporaries; the history (and the copies snapshots hand out); the buffers `nnlab check`
  keeps for the expectations;
- each event that reloads the data or rebuilds the network: what the run held just
  before, plus the new data or the new network.

Every phase gets a 10% margin.  The scenario needs its largest run, and, since the lab's
compare view holds every run at once, the runs side by side: the sum of their steady
(training) footprints plus the largest one-off peak.  Both must fit in the budget: by
default half of the memory available now (MemAvailable, or the cgroup's limit if lower),
and never more than 80% of the address space a `ulimit -v` / `prlimit --as` leaves;
NNLAB_MEMORY_BUDGET (e.g. "2G", "512M", "75%") sets it.  The estimate leaves out the lab
itself (Python, numpy, numba and the compiled kernels: about 180 MB resident).

The model counts resident pages: numpy's zeros are not resident until written, so the
moments an optimizer never writes (sgd's) and the gradient buffers of evaluation-only
workspaces are left out.  Measured against peak RSS (benchmarks/memory_estimate.py, the
table in docs/scenarios.md, and tests/test_scenario_budget.py): never below what a run
used, and 1.13 to 1.71 times it for runs of 100 MB and more.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache

from lab import vocabulary as V
from lab.errors import ScenarioError

from .consistency import DIM_KINDS, REAL_FEATURES, REAL_ROWS, split_rows
from .schema import Scenario

FRACTION = 0.5  # of the memory available, by default
MARGIN = 0.10  # added to every phase: allocator slack, small temporaries the model does not list
ENV = "NNLAB_MEMORY_BUDGET"
RLIMIT_SHARE = 0.8  # of the address space left under a `ulimit -v`: numba and BLAS reserve more later

# What the Simulation keeps (lab/sim/simulation.py, history.py, stats.py, network.py); a test
# checks these against the modules.
HISTORY_CAPACITY = 50_000
VAL_CAPACITY = 5_000
HISTORY_STEP_SERIES = 8  # step, lr, loss, train_acc, grad_norm, trace_step, w_a, w_b
HISTORY_VAL_SERIES = 1 + len(V.series_metrics("eval"))  # val_step and every eval metric
HISTORY_COPIES = 3  # the rings, the latest snapshot's copy, the one a view still holds
TIMELINE_CAPACITY = 256  # records of every layer (lab.sim.history)
TIMELINE_BINS = 40 + 3 * 88  # an activation histogram and three symlog ones per layer and record
TIMELINE_RECORD_OVERHEAD = 1024  # a LayerStats and its four array headers, measured ~0.9 KB
EVAL_CHUNK = 512
MC_CHUNK = 256  # lab.engine.mc_dropout.MC_CHUNK (the engine is not imported here)
PROBE_MAX = 512
GRID_ROWS = 1024  # decision-grid chunk (2-D inputs only)
MAX_CHUNK = 4096  # steps per compiled call: per-step records of one call
WORKSPACES_KEPT = 9  # Network keeps this many (batch, purpose) workspaces
STATS_SAMPLE = 1 << 16
SIMILARITY_UNITS = 128
REAL_CLASSES = {k.name: k.classes for k in V.DATA_KINDS if k.source == "real"}
TWO_CLASS_KINDS = tuple(k.name for k in V.DATA_KINDS if k.source == "synthetic" and k.classes == 2)
SKLEARN_BYTES = 80 * 2**20  # importing scikit-learn's loaders (real data sets): 63 MiB resident, measured
BOOKKEEPING = 24 * 2**20  # a run's Python objects, snapshots, histograms: 12-29 MiB measured on tiny runs
REBUILD_KEYS = {"activation", "alpha", "dropout", "dropout_mode", "dropconnect", "batchnorm", "preprocess"}
MEMORY_KEYS = REBUILD_KEYS | {"batch_size", "optimizer"}  # the changes that can make a run bigger
MOMENTS = {o.name: o.moments for o in V.OPTIMIZERS}  # buffers each writes


# -- the network's layout, without the engine ------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    """Sizes of a network, as lab.engine.architecture.build_plan and op_tables lay it out."""

    n_params: int
    n_state: int
    node_units: int  # sum of node widths: values (and gradients) per row of a batch
    aux_fixed: int  # aux entries that do not grow with the batch (dropconnect masks, bn 1/std)
    aux_per_row: int  # aux entries per row (dropout masks, bn xhat)
    iaux_per_row: int  # int64 entries per row (maxout argmax)
    max_weight: int  # entries of the largest weight matrix
    max_width: int  # the widest node
    max_fan_in: int

    def workspace_bytes(self, rows: int, itemsize: int) -> int:
        """A workspace a gradient pass runs in (training, the first snapshot's pass)."""
        return (itemsize * (2 * self.node_units * rows + self.aux_fixed + self.aux_per_row * rows)
                + 8 * self.iaux_per_row * rows + 24 * rows)

    def forward_bytes(self, rows: int, itemsize: int) -> int:
        """The pages an eval-mode forward pass touches (evaluation, probe, decision grid): node
        values only; gradients and the masks' caches are allocated but never written."""
        return itemsize * self.node_units * rows + 8 * self.iaux_per_row * rows + 24 * rows


@lru_cache(maxsize=1024)
def layout(input_dim: int, classes: int, hidden: tuple[int, ...], activation: str = V.default(V.ACTIVATIONS), maxout_k: int = 2,
           batchnorm: bool = False, dropout: float = 0.0, dropconnect: float = 0.0,
           residual: bool = False) -> Layout:
    params = state = nodes = aux_fixed = aux_row = iaux_row = max_w = 0
    max_width = max_fan_in = input_dim
    nodes = input_dim

    def layer(n_in: int, h: int, with_activation: bool) -> None:
        nonlocal params, state, nodes, aux_fixed, aux_row, iaux_row, max_w, max_width, max_fan_in
        max_fan_in = max(max_fan_in, n_in)
        maxout = with_activation and V.activation(activation).pieces
        fan_out = h * maxout_k if maxout else h
        params += n_in * fan_out + fan_out
        max_w = max(max_w, n_in * fan_out)
        nodes += fan_out
        max_width = max(max_width, fan_out)
        if dropconnect > 0:
            aux_fixed += 2 * n_in * fan_out
        if batchnorm:
            params += 2 * fan_out
            nodes += fan_out
            state += 2 * fan_out
            aux_row += fan_out
            aux_fixed += fan_out
        if not with_activation:
            return
        if V.activation(activation).learned_slope:
            params += h
        nodes += h
        if maxout:
            iaux_row += h
        if dropout > 0:
            nodes += h
            aux_row += h

    n_in = input_dim
    if residual:
        h0 = hidden[0]
        layer(n_in, h0, True)
        for _ in range(len(hidden[1:]) // 2):
            layer(h0, h0, True)
            layer(h0, h0, False)
            nodes += h0  # the block's sum
        n_in = h0
    else:
        for h in hidden:
            layer(n_in, h, True)
            n_in = h
    params += n_in * classes + classes
    max_w = max(max_w, n_in * classes)
    nodes += classes
    return Layout(params, state, nodes, aux_fixed, aux_row, iaux_row, max_w, max(max_width, classes),
                  max(max_fan_in, n_in))


# -- one run ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Term:
    what: str  # in words, with the numbers that make it
    nbytes: int
    shrink: str = ""  # the keys that make it smaller


@dataclass(frozen=True)
class Phase:
    name: str
    terms: tuple[Term, ...]

    @cached_property
    def total(self) -> int:
        return sum(t.nbytes for t in self.terms)


@dataclass(frozen=True)
class RunEstimate:
    run: str  # "base" or a variant's name
    where: str  # "the base run" / "variant 'wide' (variants[0])"
    phases: tuple[Phase, ...]

    @cached_property
    def peak_phase(self) -> Phase:
        return max(self.phases, key=lambda p: p.total)

    @property
    def peak(self) -> int:
        return self.peak_phase.total

    @property
    def steady(self) -> int:
        """The largest training footprint: what the run holds while it trains."""
        return max((p.total for p in self.phases if p.name.startswith("training")), default=self.peak)


@dataclass(frozen=True)
class _Data:
    rows: int
    n_train: int
    n_val: int
    raw_features: int
    features: int  # after preprocessing
    params: int  # float64 entries of the fitted preprocessor
    real: bool


def _data(sc: Scenario) -> _Data:
    d = sc.data
    real = d.kind in REAL_FEATURES
    rows = min(d.n, REAL_ROWS[d.kind]) if real else d.n
    raw = REAL_FEATURES[d.kind] if real else (d.dim if d.kind in DIM_KINDS else 2)
    n_train, n_val = split_rows(rows, d.val_fraction)
    features, params = raw, 0
    for step in d.preprocess:
        p = V.by_name(V.PREPROCESSING, step)
        if p.reduces:  # a projection (features x k) and the mean; whiten keeps every component
            k = min(d.pca_components or features, features) if p.components else features
            params += features * k + features
            features = k
        else:
            params += features
    return _Data(rows, n_train, n_val, raw, features, params, real)


def _classes(sc: Scenario) -> int:
    kind = sc.data.kind
    return REAL_CLASSES.get(kind) or (2 if kind in TWO_CLASS_KINDS else sc.data.classes)


def _svd_bytes(rows: int, cols: int) -> int:
    """numpy's svd (gesdd) of a rows x cols float64 matrix: a copy, U, V^T, the work area,
    the signed copy of V^T and the centred input it is given."""
    m = min(rows, cols)
    full = rows < cols  # preprocess.py asks for full matrices then, so V is cols x cols
    u = rows * (rows if full else m)
    vt = cols * cols if full else m * cols
    work = 3 * m * m + max(rows, cols, 4 * m * m + 4 * m)
    return 8 * (2 * rows * cols + u + 2 * vt + work)


def _load_terms(sc: Scenario, data: _Data) -> list[Term]:
    """The peak while the data are generated, split and preprocessed."""
    n, D, nt = data.rows, data.raw_features, data.n_train
    dims = f"n x features = {n:,} x {D:,} x 8 B = {size(8 * n * D)}"
    # numpy elides the temporary of `X * scale + shift`: two copies, measured
    generate = 2 * 8 * n * D + 8 * n
    features, step_peak, step_what = D, 0, ""
    for step in sc.data.preprocess:  # center and normalize add nothing to the split's peak (measured)
        p = V.by_name(V.PREPROCESSING, step)
        if p.reduces:
            cost = _svd_bytes(nt, features) + 8 * nt * features
            if cost > step_peak:
                step_peak, step_what = cost, f"{step}: an SVD of {nt:,} x {features:,}"
        if p.components:
            features = min(sc.data.pca_components or features, features)
    split = 8 * n * D + 2 * 8 * nt * D + 8 * n
    terms = []
    if generate >= split + step_peak:
        terms.append(Term(f"data: {dims}, twice while generated and scaled", generate,
                          "data.n or data.dim"))
    else:
        terms.append(Term(f"data: {dims}, {split / (8 * n * D):.1f} times over with the training split", split,
                          "data.n or data.dim"))
        if step_peak:
            terms.append(Term(f"data.preprocess {step_what} (float64)", step_peak,
                              "data.n or data.dim, or leave out pca/whiten"))
    if data.real:
        terms.append(Term("scikit-learn's data loader", SKLEARN_BYTES))
    return terms


def _held_data_terms(sc: Scenario, data: _Data, itemsize: int) -> list[Term]:
    split = 8 * (data.n_train + data.n_val) * data.features + 8 * data.rows + 8 * data.params
    copy = itemsize * data.n_train * data.features + 16 * data.n_train
    dims = f"{data.rows:,} rows x {data.features:,} features"
    return [Term(f"data held: {dims} (float64 split + the trainer's {sc.model.dtype} copy)", split + copy,
                 "data.n or data.dim")]


def _layout(sc: Scenario, data: _Data) -> Layout:
    m = sc.model
    return layout(data.features, _classes(sc), tuple(m.hidden), m.activation, m.maxout_k, m.batchnorm, m.dropout,
                  m.dropconnect, m.residual)


def _network_terms(sc: Scenario, lay: Layout, itemsize: int, optimizer: bool = True,
                   label: str = "network") -> list[Term]:
    # numpy's zeros are not resident until written: sgd never writes the moments' buffers
    moments = MOMENTS[sc.train.optimizer] if optimizer else 0
    per = (2 + moments + optimizer) * itemsize + 1
    held = ["weights", "gradients"] + ([f"{moments} optimizer moment{'s' if moments > 1 else ''}"] if moments else []) \
        + (["the last update"] if optimizer else [])
    return [Term(f"{label}: {lay.n_params:,} parameters x {per} B ({', '.join(held)})",
                 per * lay.n_params + itemsize * lay.n_state, "model.hidden")]


def _init_term(sc: Scenario, lay: Layout) -> Term:
    per = V.init(sc.model.init).draw_bytes  # numpy elides the temporary of normal(...) * std
    return Term(f"initialisation: float64 temporaries of the largest weight matrix ({lay.max_weight:,})",
                per * lay.max_weight, "model.hidden")


def _workspace_terms(sc: Scenario, data: _Data, lay: Layout, itemsize: int, batches: list[int]) -> list[Term]:
    terms = []
    train_rows = [min(b, data.n_train) for b in batches]
    train = sum(lay.workspace_bytes(b, itemsize) for b in train_rows)
    units = f"{lay.node_units:,} values a row"
    shown = ", ".join(f"{b:,}" for b in train_rows)
    terms.append(Term(f"batch workspace: {shown} rows x {units} (values and gradients)"
                      + (", with dropconnect's masked weights" if sc.model.dropconnect > 0 else ""),
                      train, "train.batch_size or model.hidden"
                      + (" (or model.dropconnect = 0)" if sc.model.dropconnect > 0 else "")))
    probe = min(PROBE_MAX, data.n_train)
    forward = [min(EVAL_CHUNK, data.n_val) if data.n_val else 0, probe, GRID_ROWS if data.features == 2 else 0]
    # the snapshot before the first step (or after a change) runs a gradient pass on its own workspace
    terms.append(Term("evaluation, probe, first-snapshot and decision-grid workspaces",
                      sum(lay.forward_bytes(r, itemsize) for r in forward if r)
                      + lay.workspace_bytes(min(max(train_rows), probe), itemsize) - itemsize * lay.aux_fixed,
                      "model.hidden"))
    # the dead-unit test's temporaries on the probe; the unit sample of W and dW; the weight sample
    stats = (3 * itemsize * probe * lay.max_width + 2 * itemsize * lay.max_fan_in * SIMILARITY_UNITS
             + 3 * 8 * STATS_SAMPLE + lay.n_params)  # (+ the trainer's is-finite test: a byte a parameter)
    terms.append(Term("snapshot statistics' temporaries", stats, "model.hidden"))
    if sc.train.mc_samples and data.n_val:  # lab/engine/mc_dropout.py: a chunk's nodes (twice: the fixed
        rows = min(MC_CHUNK, data.n_val)  # prefix and a sample's), its masks, and four (N, C) float64 sums
        terms.append(Term(f"Monte-Carlo dropout evaluation: {rows:,} rows x {lay.node_units:,} values, and the "
                          f"averaged probabilities and scores of {data.n_val:,} rows",
                          2 * itemsize * lay.node_units * rows + 8 * lay.max_width * rows
                          + 4 * 8 * data.n_val * _classes(sc), "train.mc_samples = 0, or model.hidden"))
    return terms


def history_bytes() -> int:
    return HISTORY_COPIES * 8 * (HISTORY_STEP_SERIES * HISTORY_CAPACITY + HISTORY_VAL_SERIES * VAL_CAPACITY)


def timeline_bytes(sc: Scenario) -> int:
    """The live run's per-layer timeline (lab.sim.history.LayerTimeline): at most TIMELINE_CAPACITY
    records of every layer, each its int32 histograms and a LayerStats object."""
    layers = len(sc.model.hidden) + 1
    return TIMELINE_CAPACITY * layers * (4 * TIMELINE_BINS + TIMELINE_RECORD_OVERHEAD)


def _fixed_terms(sc: Scenario) -> list[Term]:
    chunk = 5 * 8 * min(sc.train.eval_every, sc.train.steps, MAX_CHUNK)
    return [Term(f"history ({HISTORY_CAPACITY:,} steps kept, and snapshots' copies) and bookkeeping",
                 history_bytes() + chunk + BOOKKEEPING),
            Term(f"per-layer timeline ({TIMELINE_CAPACITY} records of every layer)", timeline_bytes(sc))]


def expectation_bytes(sc: Scenario, run: str) -> int:
    """What `nnlab check` keeps for the claims about `run` (lab/sim/expectations.py: every value
    of each per-step series a claim reads, and each claimed metric at every checkpoint)."""
    from lab.metrics import LAYER_METRICS, STEP_SERIES_METRICS, parse_metric

    series, pairs, extra = set(), set(), set()
    for ex in sc.expect:
        if run not in (ex.variant, ex.ratio_over, ex.difference_over):
            continue
        ref = parse_metric(ex.metric)
        if ref.name in LAYER_METRICS:
            pairs.add((ref.name, ex.layer))
        elif ref.name in STEP_SERIES_METRICS:
            series.add(ref.name)
        extra |= {s for s in (ex.at, ex.by) if isinstance(s, int)}
    if not any(run in (e.variant, e.ratio_over, e.difference_over) for e in sc.expect):
        return 0
    steps, every = sc.train.steps, sc.train.eval_every
    checkpoints = steps // every + len(extra) + 3
    per_step = 8 * steps * (len(series) + 1) if series else 0  # the series and their step numbers
    smooth = max((8 * (2 * steps + ex.smooth) for ex in sc.expect if ex.smooth > 1), default=0)  # while evaluated
    # at each checkpoint: its step (twice: as checkpoints and as val_step), the examples seen, each eval metric,
    # each layer claim
    return per_step + smooth + 8 * checkpoints * (3 + len(V.series_metrics("eval")) + len(pairs))


def _expect_term(sc: Scenario, run: str) -> list[Term]:
    nbytes = expectation_bytes(sc, run)
    if not nbytes:
        return []
    return [Term(f"nnlab check's record of the claims' series ({sc.train.steps:,} steps, a checkpoint every "
                 f"{sc.train.eval_every:,})", nbytes, "train.steps, or raise train.eval_every")]


def _states(sc: Scenario, run: str) -> list[tuple[str, Scenario, set[str]]]:
    """(label, settings, keys changed) at the start and after each event of `run` that matters."""
    out = [("", sc, set())]
    for i, event in sorted(enumerate(sc.events), key=lambda ie: ie[1].at):
        if not event.applies_to(run):
            continue
        given = {k: v for k, v in event.set.given().items() if k in MEMORY_KEYS}
        if not given:
            continue
        out.append((f"events[{i}] (step {event.at})", _with(out[-1][1], given), set(given)))
    return out


def _with(sc: Scenario, given: dict) -> Scenario:
    """Scenario.with_changes for the memory keys (values the schema has already checked), without
    validating again: a file may have a thousand events in each of 17 runs."""
    owners = {"preprocess": "data", "batch_size": "train", "optimizer": "train"}
    parts: dict[str, dict] = {}
    for key, value in given.items():
        parts.setdefault(owners.get(key, "model"), {})[key] = value
    return sc.model_copy(update={name: getattr(sc, name).model_copy(update=u) for name, u in parts.items()})


def estimate_run(sc: Scenario, run: str = "base", where: str = "the base run", *,
                 states: list[tuple[str, Scenario, set[str]]] | None = None) -> RunEstimate:
    """The phases of one run: `sc` holds the run's own settings (a variant already applied);
    its events are those that apply to `run`."""
    states = states if states is not None else _states(sc, run)
    phases: list[Phase] = []
    fixed = _fixed_terms(sc) + _expect_term(sc, run)
    held: list[Term] = []
    batches: list[int] = []
    for label, state, keys in states:
        itemsize = 4 if state.model.dtype == "float32" else 8
        data = _data(state)
        lay = _layout(state, data)
        prefix = f"{label}: " if label else ""
        if not label or "preprocess" in keys:
            phases.append(Phase(f"{prefix}loading the data", tuple(held + _load_terms(state, data) + fixed)))
        data_terms = _held_data_terms(state, data, itemsize)
        if not label or keys & REBUILD_KEYS:
            built = _network_terms(state, lay, itemsize, optimizer=bool(label),
                                   label="the new network" if label else "network") + [_init_term(state, lay)]
            if label:  # the old run is still held while the new network is built
                phases.append(Phase(f"{prefix}a new network", tuple(held + built)))
                batches = []
            else:
                phases.append(Phase("building the network", tuple(data_terms + built + fixed)))
        batches = (batches + [state.train.batch_size])[-WORKSPACES_KEPT:]
        held = data_terms + _network_terms(state, lay, itemsize) + _workspace_terms(state, data, lay, itemsize,
                                                                                   batches) + fixed
        if state.transfer is not None:  # the source task kept beside the target (lab/transfer/budget.py)
            from lab.transfer.budget import held_terms

            held = held + held_terms(state, lay)
        phases.append(Phase(f"{prefix}training", tuple(held)))
    if sc.transfer is not None:  # the source task is pretrained first, as a run of its own
        from lab.transfer.budget import pretraining_phases

        phases = pretraining_phases(sc) + phases
    return RunEstimate(run, where, tuple(Phase(p.name, (*p.terms, Term(
        f"margin: {MARGIN:.0%} for what the arithmetic leaves out", int(MARGIN * p.total)))) for p in phases))


def estimate(sc: Scenario) -> list[RunEstimate]:
    """The base run and every variant (runs that would allocate the same are worked out once)."""
    runs = [("base", sc, "the base run")] + [(v.name, sc.with_changes(v.set), f"variant {v.name!r} (variants[{i}])")
                                             for i, v in enumerate(sc.variants)]
    seen: dict[tuple, RunEstimate] = {}
    out = []
    for name, run, where in runs:
        t = run.train
        key = (run.data.model_dump_json(), run.model.model_dump_json(), t.batch_size, t.optimizer, t.steps,
               run.transfer.model_dump_json() if run.transfer is not None else "",
               t.eval_every, t.mc_samples, tuple(i for i, e in enumerate(run.events) if e.applies_to(name)),
               expectation_bytes(run, name))
        if key not in seen:
            seen[key] = estimate_run(run, name, where)
        out.append(RunEstimate(name, where, seen[key].phases))
    return out


def together(runs: list[RunEstimate]) -> int:
    """Every run at once (the compare view): their training footprints and the largest one-off peak."""
    return sum(r.steady for r in runs) + max((r.peak - r.steady for r in runs), default=0)


# -- the budget ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Budget:
    nbytes: int
    source: str  # in words, for the message


_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_size(text: str, available: int | None = None) -> int:
    """'2G', '512M', '1.5GiB', '3000000000' or '75%' (of `available`) as bytes; ValueError otherwise."""
    t = text.strip().lower().replace(" ", "")
    m = re.fullmatch(r"([0-9]*\.?[0-9]+)(%|[kmgt]?)(i?b)?", t)
    if not m or (m.group(2) == "%" and m.group(3)):
        raise ValueError(f"{ENV}={text!r}: write a size such as 2G, 512M or 75% (of the memory available)")
    amount = float(m.group(1))
    if m.group(2) == "%":
        if available is None:
            raise ValueError(f"{ENV}={text!r}: the memory available is unknown here; give a size such as 2G")
        return int(available * amount / 100)
    return int(amount * _UNITS[m.group(2)])


def _meminfo(key: str) -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room() -> int | None:
    """Bytes the cgroup (v2) lets this process still use, if it has a limit."""
    try:
        with open("/proc/self/cgroup", encoding="ascii") as fh:
            path = next((line.strip().split("::", 1)[1] for line in fh if line.startswith("0::")), None)
        if path is None:
            return None
        base = "/sys/fs/cgroup" + path.rstrip("/")
        with open(base + "/memory.max", encoding="ascii") as fh:
            limit = fh.read().strip()
        if limit == "max":
            return None
        with open(base + "/memory.current", encoding="ascii") as fh:
            return max(0, int(limit) - int(fh.read().strip()))
    except (OSError, ValueError, StopIteration):
        return None


def available_memory() -> int | None:
    """Bytes the machine can give now: MemAvailable, or less if the cgroup's limit is nearer."""
    found = [v for v in (_meminfo("MemAvailable"), _cgroup_room()) if v is not None]
    if not found:
        try:
            found = [os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")]
        except (ValueError, OSError, AttributeError):
            return None
    return min(found)


def _address_space_room() -> int | None:
    """Under `ulimit -v` / `prlimit --as`: the address space still free (a share of it)."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError):
        return None
    if soft == resource.RLIM_INFINITY:
        return None
    used = None
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            used = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
    except (OSError, ValueError, StopIteration):
        pass
    return max(0, int(RLIMIT_SHARE * (soft - (used or 0))))


def memory_budget() -> Budget:
    """The bytes a scenario may use, and where that number comes from."""
    available = available_memory()
    env = os.environ.get(ENV, "").strip()
    if env:
        nbytes = parse_size(env, available)
        budget = Budget(nbytes, f"{ENV}={env}")
    elif available is not None:
        budget = Budget(int(FRACTION * available), f"half the {size(available)} available now; "
                                                   f"{ENV} sets it")
    else:
        budget = Budget(4 * 2**30, f"4 GiB, as the memory available is unknown; {ENV} sets it")
    room = _address_space_room()
    if room is not None and room < budget.nbytes:
        budget = Budget(room, f"{RLIMIT_SHARE:.0%} of the address space ulimit -v leaves; {ENV} cannot raise it")
    return budget


def size(n: float) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}" if n / scale < 1000 else f"{n / scale:,.0f} {unit}"
    return f"{int(n)} B"


def _dominant(phase: Phase) -> str:
    terms = sorted(phase.terms, key=lambda t: -t.nbytes)
    shown = [terms[0]] + [t for t in terms[1:3] if t.nbytes >= 0.2 * phase.total]
    return "; ".join(f"{t.what} = {size(t.nbytes)}" + (f": shrink {t.shrink}" if t.shrink else "") for t in shown)


def memory_problems(sc: Scenario, budget: Budget | None = None) -> list[str]:
    """[] when every run fits the budget, alone and side by side; else what needs the memory."""
    try:
        budget = budget or memory_budget()
    except ValueError as exc:
        return [str(exc)]
    runs = estimate(sc)
    worst = max(runs, key=lambda r: r.peak)
    if worst.peak > budget.nbytes:
        phase = worst.peak_phase
        return [f"memory: {worst.where} needs about {size(worst.peak)} ({phase.name}), over the budget of "
                f"{size(budget.nbytes)} ({budget.source}). Most of it: {_dominant(phase)}"]
    if sc.ensemble is not None or any(v.set.ensemble is not None for v in sc.variants):
        # N members = N networks, and their kept probabilities (lab/ensemble/)
        need, what = ensemble_bytes(sc, runs)
        if need > budget.nbytes:
            return [f"memory: the [ensemble] needs about {size(need)} ({what}), over the budget of "
                    f"{size(budget.nbytes)} ({budget.source}): use fewer members, a smaller model or data, or "
                    "a larger train.eval_every"]
    if len(runs) > 1 and together(runs) > budget.nbytes:
        big = sorted(runs, key=lambda r: -r.steady)[:3]
        return [f"memory: the {len(runs)} runs side by side (the lab's compare view) need about "
                f"{size(together(runs))}, over the budget of {size(budget.nbytes)} ({budget.source}). Largest: "
                + ", ".join(f"{r.where} {size(r.steady)}" for r in big)
                + ": shrink them, or use fewer [[variants]]"]
    return []


def require_memory(sc: Scenario, states: list[tuple[str, Scenario, set[str]]] | None = None,
                   what: str | None = None) -> None:
    """Raise ScenarioError unless one run of `sc` (as a Simulation runs it: the base and the
    events that apply to it) fits the budget."""
    try:
        budget = memory_budget()
    except ValueError as exc:  # a malformed NNLAB_MEMORY_BUDGET
        raise ScenarioError(what or f"scenario {sc.name!r}", [str(exc)]) from None
    run = estimate_run(sc, states=states)
    if run.peak > budget.nbytes:
        phase = run.peak_phase
        raise ScenarioError(what or f"scenario {sc.name!r}",
                            [f"memory: the run needs about {size(run.peak)} ({phase.name}), over the budget of "
                             f"{size(budget.nbytes)} ({budget.source}). Most of it: {_dominant(phase)}"])


# -- [ensemble] ------------------------------------------------------------------------------------------

def ensemble_bytes(sc: Scenario, runs: list[RunEstimate] | None = None) -> tuple[int, str]:
    """What an [ensemble] holds at once, in bytes, and in words: the largest run's members side by
    side (the lab's ensemble view steps them together: N members = N networks with their data,
    each with its own history), the largest one-off peak, and the members' validation
    probabilities a headless run keeps for every run (float64, members x checkpoints x
    validation rows x classes; a snapshot ensemble keeps only its snapshots)."""
    runs = runs if runs is not None else estimate(sc)
    scenarios = [sc, *(sc.with_changes(v.set) for v in sc.variants)]
    held, probs, most = 0, 0, 1
    for run, each in zip(runs, scenarios):
        e = each.ensemble
        trained = (e.size if e.mode == "seeds" else 1) if e is not None else 1
        kept = (e.size if e.mode == "snapshot" else e.size * (each.train.steps // each.train.eval_every + 2)) \
            if e is not None else 0
        probs += kept * _data(each).n_val * _classes(each) * 8
        if trained * run.steady > held:
            held, most = trained * run.steady, trained
    peak = max((r.peak - r.steady for r in runs), default=0)
    return held + peak + probs, (f"{most} member(s) side by side = {size(held)}; their validation probabilities "
                                 f"{size(probs)}")
