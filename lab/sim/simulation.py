"""Simulation: one run of a scenario, stepped, changed on the fly, observed through Snapshots.

scenario --build--> Simulation --step()--> Snapshot --> views
                        ^  set(...)
                        +-- events (the scenario's timeline, or a key press)

Determinism: the seed feeds independent streams (data, initialisation, training), so
the same scenario, events and seed give bit-identical metrics however the steps are
chunked, on whichever thread.  Snapshots only read; they never draw random numbers.

Every layer's statistics are recorded at a fixed cadence of training steps (the timeline,
lab.sim.history.LayerTimeline, bounded): compiled chunks end at record steps as they do at
evaluations, so a record is of its exact step however the run is chunked.  A record shows
the state training went on from: taken once the step's changes (scenario events, `set`)
are applied, and taken again if a change comes at that step later.  Records are computed
lazily, at the next step or snapshot, and a snapshot at a record step reuses them.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import replace
from typing import Any, Callable

import numpy as np
from pydantic import ValidationError

from lab import vocabulary as V
from lab.data import load_data
from lab.engine.architecture import Architecture
from lab.engine.init import init_std
from lab.engine.network import Network
from lab.engine.optim import OptimizerConfig
from lab.engine.schedules import Schedule, learning_rates
from lab.engine.trainer import Cancelled, Trainer
from lab.errors import LabError
from lab.scenario.load import problems_of
from lab.scenario.schema import TRANSFER_KEYS, Changes, Scenario

from .history import TIMELINE_CAPACITY, History, LayerTimeline, starting_cadence
from .snapshot import Event, LayerStats, Record, Snapshot
from .stats import layer_stats, probe_size

INIT_STREAM, TRAIN_STREAM = 2, 3  # the data module uses streams seed and [seed, 1]
MC_STREAM = 4  # [seed, MC_STREAM, step]: the dropout masks of the Monte-Carlo evaluation at a step
VAL_NOISE_STREAM = 5  # [seed, VAL_NOISE_STREAM]: data.val_noise, drawn once per data set
HISTOGRAMS = ("act_hist", "grad_hist", "weight_hist", "update_hist")
MAX_CHUNK = 4096  # steps per compiled call: bounds the per-step records a call returns (budget.py counts it)
GRID_CHUNK = 1024  # decision-grid rows per forward pass (budget.py counts a workspace of this many)

ARCH_KEYS = {"activation", "alpha", "dropout", "dropout_mode", "dropconnect", "batchnorm"}
INIT_KEYS = {"init", "init_scale", "bias_init", "reinit"}
OPTIMIZER_KEYS = {"optimizer", "momentum", "weight_decay", "l1", "l2", "clip_norm"}
# changes that leave the network's outputs and gradients on a batch as they are
STATS_NEUTRAL_KEYS = {"lr", "schedule", "optimizer", "momentum", "weight_decay", "clip_norm", "batch_size"}


def _frozen_counts(counts: np.ndarray) -> np.ndarray:
    out = counts.astype(np.int32)
    out.setflags(write=False)
    return out


def architecture_of(sc: Scenario, input_dim: int, classes: int) -> Architecture:
    m = sc.model
    return Architecture(input_dim=input_dim, classes=classes, hidden=tuple(m.hidden), activation=m.activation,
                        alpha=m.alpha, maxout_k=m.maxout_k, batchnorm=m.batchnorm, dropout=m.dropout,
                        dropout_mode=m.dropout_mode, dropconnect=m.dropconnect, residual=m.residual,
                        residual_zero_init=m.residual_zero_init, loss=m.loss)


def optimizer_of(sc: Scenario) -> OptimizerConfig:
    t = sc.train
    return OptimizerConfig(t.optimizer, momentum=t.momentum, beta1=t.beta1, beta2=t.beta2, eps=t.eps,
                           weight_decay=t.weight_decay, l1=t.l1, l2=t.l2, clip_norm=t.clip_norm)


def scheduled_lrs(schedule: dict[str, Any], lr: float, train_steps: int, steps: np.ndarray) -> np.ndarray:
    """The lr at each (0-based) step of `steps` under a schedule given as ScheduleSpec fields
    (as in Snapshot.settings["schedule"]): the Simulation and the lr view share this."""
    sch = Schedule(schedule["kind"], schedule["warmup"], tuple(schedule["milestones"]), schedule["factor"],
                   schedule["min_lr"], schedule["timescale"], schedule["start"])
    span = schedule["total"] or max(1, train_steps - schedule["start"])
    return learning_rates(sch, lr, span, steps)


class Simulation:
    """A scenario being trained.  Not thread-safe by itself: one thread steps it at a time
    (the TUI's worker); `lock` is there for callers that share it.

    timeline_capacity: records of every layer kept at most (0: record none, as
    `nnlab check` does, which reads only its own checkpoints).
    cancelled: asked between kernel calls (a thread worker's is_cancelled); True raises
    Cancelled, and the run, abandoned half-way, is not to be used further.
    Bit-identical to `nnlab run --headless` under the same BLAS thread count: call
    lab.engine.threads.limit_blas_threads() first, as the CLI and the app do."""

    def __init__(self, scenario: Scenario, *, history_capacity: int = 50_000,
                 timeline_capacity: int = TIMELINE_CAPACITY, cancelled: Callable[[], bool] | None = None):
        self.cancelled = cancelled
        # GEMM's summation order depends on the BLAS thread count: the entry points (CLI, app,
        # check workers) cap it with lab.engine.threads.limit_blas_threads(), not this constructor
        from lab.scenario.budget import require_memory

        require_memory(scenario)  # before anything is allocated (the loader checked every run already)
        self.original = scenario
        self.lock = threading.RLock()
        self._history_capacity = history_capacity
        self._timeline_capacity = timeline_capacity
        self._overrides: dict[str, Any] = {}  # every change the user made, for reset()
        self._build(scenario)

    # -- construction -------------------------------------------------------------------
    def _build(self, scenario: Scenario, seed_offset: int = 0, start: dict[str, Any] | None = None) -> None:
        """A fresh run of `scenario` at step 0; `start`: the user's changes, applied at step 0 as
        their event (after the scenario's own step-0 events, before the step-0 evaluation),
        exactly as a saved session's replay applies them."""
        self.base = scenario  # what step 0 looks like; user events are relative to it
        self.current = scenario
        self.seed = scenario.seed + seed_offset
        self.step_count = 0
        self.examples_seen = 0  # training examples stepped over (batch size x steps, summed): epochs = / train rows
        self.diverged = False
        self.diverged_at: int | None = None
        self.history = History(self._history_capacity)
        self.layer_timeline = LayerTimeline(self._timeline_capacity,
                                            starting_cadence(scenario.train.steps, self._timeline_capacity))
        self._record_due = self.layer_timeline.recording  # step 0 is recorded (lazily: at the next step or snapshot)
        self._layers_now: tuple[LayerStats, ...] | None = None  # statistics of the state now, once computed
        self.events: list[Event] = []
        self._timeline = sorted((e for e in scenario.events if e.applies_to("base")), key=lambda e: e.at)
        self._next_event = 0
        self._reinits = 0
        self._snapshot: Snapshot | None = None
        self.data = self._load_data(scenario)
        dtype = np.float32 if scenario.model.dtype == "float32" else np.float64
        self.network = Network(architecture_of(scenario, self.data.X_train.shape[1], self.data.n_classes), dtype,
                               l1=scenario.train.l1, l2=scenario.train.l2)
        self.network.initialize(scenario.model.init, self._init_rng(), scale=scenario.model.init_scale,
                                bias=scenario.model.bias_init)
        self.trainer = Trainer(self.network, self.data.X_train, self.data.y_train, scenario.train.batch_size,
                               optimizer_of(scenario), np.random.default_rng([self.seed, TRAIN_STREAM]))
        self.transfer = None
        if scenario.transfer is not None:  # transfer learning: source weights, frozen layers (lab/transfer)
            from lab.transfer.session import TransferSession

            self.transfer = TransferSession(self, scenario)
        self._set_augmentation(scenario)
        self._set_trace()
        self._set_probe()
        self._apply_due_events()
        if start:  # only what still differs from the run as it stands at step 0
            start = {k: v for k, v in start.items() if self.current.with_changes({k: v}) != self.current}
        if start:
            self._apply(start, source="user")
        self._evaluate()  # validation metrics at step 0: where the run starts from

    def _load_data(self, sc: Scenario):
        if sc.transfer is not None:  # the target task, preprocessed as the source task (lab/transfer)
            from lab.transfer.session import target_data

            return target_data(self, sc)
        d = sc.data
        try:
            data = load_data(d.kind, n=d.n, classes=d.classes, noise=d.noise, dim=d.dim,
                             preprocess=tuple(d.preprocess), val_fraction=d.val_fraction, seed=self.seed,
                             pca_components=d.pca_components, shift=d.shift, scale=d.scale)
        except ValueError as exc:  # the loader's checks should have said so; never a traceback
            raise LabError(f"{sc.name}: data: {exc}") from None
        if data.X_train.shape[1] == 0:
            raise LabError(f"{sc.name}: data.preprocess: whiten kept no feature: the training rows do not vary "
                           "(raise data.noise or data.n, or leave out whiten)")
        if d.val_noise > 0:  # the same noise for every run of a seed: runs differ only in what they learnt
            noise = np.random.default_rng([self.seed, VAL_NOISE_STREAM]).standard_normal(data.X_val.shape)
            data = dataclasses.replace(data, X_val=(data.X_val + d.val_noise * noise).astype(data.X_val.dtype))
        return data

    def _set_trace(self) -> None:
        """Follow W1[0, 0] and W1[1, 0]: two weights into the same first-layer unit, whose
        path shows the zigzag (both must move the same way when inputs are all positive)."""
        w1 = self.network.layers[0].weight
        if w1.shape[0] >= 2:
            self.trainer.trace_idx = np.array([w1.offset, w1.offset + w1.shape[1]], dtype=np.int64)
            self.history.record_trace(self.step_count, self.network.params[self.trainer.trace_idx][None, :])
        else:
            self.trainer.trace_idx = np.zeros(0, dtype=np.int64)

    def _set_augmentation(self, sc: Scenario) -> None:
        a = sc.data.augment
        params = np.array([float(a.flip), a.crop_pad, a.noise, a.brightness, a.contrast, a.cutout, a.mixup, a.scale])
        self.trainer.set_augmentation(params, self.data.image_shape)

    def _init_rng(self) -> np.random.Generator:
        """The first initialisation replays exactly on reset; each later re-init gets its own stream."""
        key = [self.seed, INIT_STREAM] if self._reinits == 0 else [self.seed, INIT_STREAM, self.step_count, self._reinits]
        self._reinits += 1
        return np.random.default_rng(key)

    def _set_probe(self) -> None:
        n = probe_size(self.network, self.data.X_train.shape[0], self.trainer.batch_size)
        self._probe_x = self.data.X_train[:n]
        self._probe_y = self.data.y_train[:n]

    # -- stepping -------------------------------------------------------------------------
    def lr_at(self, steps: np.ndarray) -> np.ndarray:
        t = self.current.train
        lrs = scheduled_lrs(t.schedule.model_dump(), t.lr, t.steps, steps)
        return lrs if self.current.transfer is None else lrs * self.current.transfer.factor()

    def step(self, n: int = 1) -> int:
        """Train up to n steps (fewer if the run diverges); return how many ran.

        Steps run in compiled chunks that end at scenario events and evaluations, so the
        result does not depend on n, and last at most about trainer.CALL_SECONDS each, so
        Ctrl-C (or a cancelled worker, between calls) stops a long n promptly.
        """
        done = 0
        with self.lock:
            while done < n and not self.diverged:
                if self.cancelled is not None and self.cancelled():
                    raise Cancelled
                self._flush_record()
                chunk = n - done
                every = self.current.train.eval_every
                chunk = min(chunk, every - self.step_count % every, MAX_CHUNK, self.trainer.steps_per_call())
                if self.layer_timeline.recording:
                    chunk = min(chunk, self.layer_timeline.steps_to_next(self.step_count))
                if self._next_event < len(self._timeline):
                    chunk = min(chunk, self._timeline[self._next_event].at - self.step_count)
                steps = np.arange(self.step_count, self.step_count + chunk)
                lrs = self.lr_at(steps)
                rec = self.trainer.run(lrs)
                ran = len(rec.loss)
                self.history.record_steps(self.step_count + 1, lrs[:ran], rec.loss, rec.train_acc, rec.grad_norm)
                self.history.record_trace(self.step_count + 1, rec.trace)
                self.step_count += ran
                self.examples_seen += ran * self.trainer.batch_size
                done += ran
                self._snapshot = None
                self._layers_now = None
                if self.layer_timeline.due(self.step_count):
                    self._record_due = True
                if rec.diverged:
                    self.diverged = True
                    self.diverged_at = self.step_count
                elif self.step_count % every == 0:
                    self._evaluate()
                # events due now still apply after a divergence: one may re-initialise and
                # let the run go on, exactly as it would have in the session being replayed
                self._apply_due_events()
        return done

    def run_to(self, step: int) -> None:
        """Step until `step` steps are done (or the run diverges)."""
        self.step(max(0, step - self.step_count))

    def evaluate_now(self) -> None:
        """Record validation metrics at the current step, unless that step already has them."""
        with self.lock:
            if self.history.series[V.VAL_STEP].last() != self.step_count:
                self._evaluate()
                self._snapshot = None

    def _evaluate(self, replace: bool = False) -> None:
        loss, acc = self.trainer.evaluate(self.data.X_val, self.data.y_val, cancelled=self.cancelled)
        extra = self._mc_evaluate() or {}
        if self.transfer is not None:
            extra[V.SOURCE_VAL_ACC] = self.transfer.source_val_acc(self)
        if replace and self.history.series[V.VAL_STEP].last() == self.step_count:
            self.history.replace_last_val(loss, acc, extra)
        else:
            self.history.record_val(self.step_count, loss, acc, extra)

    def _mc_evaluate(self) -> dict[str, float] | None:
        """Dropout as an ensemble (train.mc_samples > 0): the Monte-Carlo average over random
        masks against the single network, on the validation set.  Its masks come from a
        stream of their own, keyed by the step, so the metrics at a step do not depend on how
        often the run was evaluated before (a check's extra checkpoints, a paused TUI)."""
        samples = self.current.train.mc_samples
        if not samples or self.data.X_val.shape[0] == 0:
            return None
        from lab.engine.mc_dropout import mc_evaluate
        from lab.engine.trainer import weight_penalty

        rng = np.random.default_rng([self.seed, MC_STREAM, self.step_count])
        r = mc_evaluate(self.network, self.data.X_val, self.data.y_val, samples, rng, cancelled=self.cancelled)
        return {V.MC_VAL_LOSS: r.loss + weight_penalty(self.network), V.MC_VAL_ACC: r.acc, V.MC_GAP: r.gap,
                V.MC_SCORE_GAP: r.score_gap}

    def _apply_due_events(self) -> None:
        while self._next_event < len(self._timeline) and self._timeline[self._next_event].at <= self.step_count:
            event = self._timeline[self._next_event]
            self._next_event += 1
            self._apply(event.set.given(), source="scenario")

    # -- on-the-fly changes -------------------------------------------------------------------
    def set(self, **changes: Any) -> Event:
        """Apply a change now (before the next step) and record it as an event.

        Keys are those of `lab.scenario.Changes`: lr, optimizer, momentum, weight_decay, l1, l2,
        clip_norm, batch_size, schedule, init (re-initialises), init_scale, bias_init, reinit,
        activation, alpha, dropout, dropout_mode, dropconnect, batchnorm, preprocess.
        """
        try:
            given = Changes(**changes).given()
        except ValidationError as exc:
            raise LabError(f"invalid change: {'; '.join(problems_of(exc))}") from None
        if self.current.transfer is None and set(given) & TRANSFER_KEYS:
            raise LabError(f"invalid change: {', '.join(sorted(set(given) & TRANSFER_KEYS))}: only a scenario with a "
                           "[transfer] table has transfer phases")
        with self.lock:
            self._check_memory(given)
            self._overrides.update({k: v for k, v in given.items() if k != "reinit"})
            event = self._apply(given, source="user")
            if self.step_count == 0:  # step 0's evaluation describes the network step 1 starts from,
                self._evaluate(replace=True)  # as in a replay, where step-0 events come before it
            return event

    def _check_memory(self, given: dict[str, Any]) -> None:
        """Refuse (ScenarioError) a change whose new data or network would not fit the memory budget."""
        from lab.scenario.budget import MEMORY_KEYS, require_memory

        keys = set(given) & MEMORY_KEYS
        if keys:
            require_memory(self.current, states=[("", self.current, set()),
                                                 ("this change", self.current.with_changes(given), keys)],
                           what=f"{self.current.name}: {', '.join(sorted(keys))}")

    def _apply(self, given: dict[str, Any], source: str) -> Event:
        old = self.current
        new = old.with_changes(given)
        keys = set(given)
        self.current = new
        rebuild = bool(keys & ARCH_KEYS) or "preprocess" in keys
        if "preprocess" in keys:
            self.data = self._load_data(new)
            self.trainer.set_data(self.data.X_train, self.data.y_train)
            self.trainer.batch_size = new.train.batch_size
            self._set_augmentation(new)
        if rebuild:
            net = Network(architecture_of(new, self.data.X_train.shape[1], self.data.n_classes), self.network.dtype,
                          l1=new.train.l1, l2=new.train.l2)
            net.initialize(new.model.init, self._init_rng(), scale=new.model.init_scale, bias=new.model.bias_init)
            net.copy_matching_from(self.network)  # keep what fits: the run continues
            self.network = net
            self.trainer.network = net
            self.trainer.reset_optimizer()
            self._set_trace()
        if keys & INIT_KEYS:
            self.network.initialize(new.model.init, self._init_rng(), scale=new.model.init_scale,
                                    bias=new.model.bias_init)
            self._set_trace()  # the path restarts from the new weights
            self.trainer.reset_optimizer()
            self.diverged, self.diverged_at = False, None  # fresh weights: the run can go on
        if keys & OPTIMIZER_KEYS:
            self.trainer.optimizer = optimizer_of(new)
            self.network.l1, self.network.l2 = new.train.l1, new.train.l2
            if new.train.optimizer != old.train.optimizer:
                self.trainer.reset_optimizer()
        if "batch_size" in keys:
            self.trainer.batch_size = new.train.batch_size
        if rebuild or "batch_size" in keys:
            self._set_probe()
        if self.transfer is not None:  # frozen layers by the settings now (a rebuilt network has new offsets)
            self.transfer.apply(self, new, rebuild)
        if keys - STATS_NEUTRAL_KEYS:
            # the last training batch's activations and gradients describe the network before
            # this change: the next snapshot takes its statistics from a fresh gradient pass
            # (eval mode, no update, no random draws), so every number shown is of the same state
            self.network.batch_ws = None
        event = Event(self.step_count, dict(given), source)
        self.events.append(event)
        self._snapshot = None
        self._layers_now = None
        if self.layer_timeline.last_step == self.step_count:
            self._record_due = True  # the record of this step shows the state training goes on from
        return event

    def user_changes(self) -> dict[str, Any]:
        """Every change the user has made so far, merged (what `reset` keeps): a copy."""
        with self.lock:
            return dict(self._overrides)

    def reset(self, *, new_seed: bool = False) -> None:
        """Back to step 0 with the settings in force now and the same initialisation
        (a new one with new_seed=True).  The scenario's own events replay; the user's
        changes become the starting point: one user event at step 0, which stays in the
        event log and in a saved session (a replay applies it exactly the same way, so an
        init change kept through resets gives the same weights every time)."""
        with self.lock:
            offset = (self.seed - self.original.seed + 1) if new_seed else (self.seed - self.original.seed)
            start = Changes(**self._overrides).given() if self._overrides else None
            if start and "schedule" in start:  # a schedule chosen mid-run spans the replay from step 0
                start["schedule"] = {**start["schedule"], "start": 0, "total": None}
            self._build(self.original, seed_offset=offset, start=start)

    # -- observing ----------------------------------------------------------------------------
    def _current_layers(self) -> tuple[LayerStats, ...]:
        """Every layer's statistics now (computed once per state: a record and a snapshot of
        the same step share them).  Shared, so their histograms are read-only, and kept as
        int32 (a count never nears 2**31; the timeline's memory shrinks by a third)."""
        if self._layers_now is None:
            with np.errstate(all="ignore"):  # a diverged run has inf/nan weights: stats say so, quietly
                layers = layer_stats(self.network, self.trainer.last_update, self._probe_x, self._probe_y,
                                     self.trainer.batch_size)
            self._layers_now = tuple(replace(s, **{name: _frozen_counts(getattr(s, name)) for name in HISTOGRAMS})
                                     for s in layers)
        return self._layers_now

    def _flush_record(self) -> None:
        """Take the record due at this step, if one is."""
        if self._record_due:
            self._record_due = False
            self.layer_timeline.add(Record(self.step_count, self._current_layers()))

    def snapshot(self) -> Snapshot:
        """An immutable picture of the run now (cached until the next step or change): every
        number in it describes the same state."""
        with self.lock:
            if self._snapshot is None:
                self._flush_record()  # a record due now and this snapshot share their statistics
                self._snapshot = self._take_snapshot()
            return self._snapshot

    def _take_snapshot(self) -> Snapshot:
        h = self.history
        last = lambda name: h.series[name].last()  # noqa: E731
        layers = self._current_layers()
        m = self.current.model
        first = self.network.layers[0].weight.shape  # (fan_in, fan_out) of layer 1
        settings = {**m.model_dump(), **self.current.train.model_dump(),
                    "preprocess": list(self.current.data.preprocess), "seed": self.seed,
                    "init_std": init_std(m.init, first[0], first[1], m.init_scale),
                    "inputs_positive": self._inputs_positive(), "train_rows": int(self.data.X_train.shape[0])}
        if self.transfer is not None:
            settings["transfer"] = self.transfer.settings(self)
        return Snapshot(
            step=self.step_count,
            lr=float(self.lr_at(np.array([self.step_count]))[0]),
            loss=last(V.LOSS), train_acc=last(V.TRAIN_ACC), grad_norm=last(V.GRAD_NORM),
            val_loss=last(V.VAL_LOSS), val_acc=last(V.VAL_ACC),
            diverged=self.diverged, diverged_at=self.diverged_at,
            layers=layers, history=h.arrays(), events=tuple(self.events),
            scenario_name=self.current.name, settings=settings, timeline=self.layer_timeline.freeze(),
        )

    def _inputs_positive(self) -> bool:
        """Whether every training input the network sees is >= 0 (the zigzag's condition)."""
        if getattr(self, "_positive_for", None) is not self.data:
            self._positive_for, self._positive = self.data, bool(self.data.X_train.size and self.data.X_train.min() >= 0)
        return self._positive

    def decision_grid(self, nx: int, ny: int):
        """The predicted class over an nx x ny grid spanning the training inputs (2-D inputs
        only, in the space the network sees, i.e. after preprocessing); None otherwise.

        Returns (xs (nx,), ys (ny,) top row first, classes (ny, nx) int).
        """
        X = self.data.X_train
        if X.shape[1] != 2 or X.shape[0] == 0:
            return None
        lo, hi = X.min(axis=0), X.max(axis=0)
        pad = 0.05 * np.maximum(hi - lo, 1e-9)
        xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], nx)
        ys = np.linspace(hi[1] + pad[1], lo[1] - pad[1], ny)
        gx, gy = np.meshgrid(xs, ys)
        points = np.column_stack([gx.ravel(), gy.ravel()])
        classes = np.empty(points.shape[0], dtype=np.int64)
        with self.lock, np.errstate(all="ignore"):  # in chunks: a big panel on a wide network stays small
            for start in range(0, points.shape[0], GRID_CHUNK):
                part = points[start:start + GRID_CHUNK]
                rows = min(GRID_CHUNK, points.shape[0])  # one workspace size: the last chunk is padded
                padded = part if len(part) == rows else np.vstack([part, np.repeat(part[-1:], rows - len(part), 0)])
                classes[start:start + part.shape[0]] = np.argmax(
                    self.network.forward(padded, purpose="grid"), axis=1)[:part.shape[0]]
        return xs, ys, classes.reshape(ny, nx)

    def scenario_with_events(self) -> Scenario:
        """The scenario that replays this session headless: the base plus every user event.

        The base run is the session; the user's events are marked only = ["base"] when
        there are variants, which keep the scenario's own timeline and length."""
        from lab.scenario.schema import Event as EventSpec

        only = ["base"] if self.base.variants else None
        user = [EventSpec(at=e.step, set=Changes(**e.changes), only=only) for e in self.events if e.source == "user"]
        merged = sorted([*self.base.events, *user], key=lambda e: e.at)
        base = self.base
        if self.seed != base.seed:  # reset with a new seed (R)
            base = base.model_copy(update={"scenario": base.scenario.model_copy(update={"seed": self.seed})})
        # a session may run past train.steps; the replay must reach as far, with every
        # schedule (the base's and the events') still spanning the original length
        steps = max([self.base.train.steps, self.step_count, *(e.at for e in merged)])
        if steps == self.base.train.steps:
            return base.model_copy(update={"events": merged})

        def pinned(schedule):
            span = max(1, self.base.train.steps - schedule.start)
            return schedule if schedule.total else schedule.model_copy(update={"total": span})

        merged = [e if e.set.schedule is None else
                  e.model_copy(update={"set": e.set.model_copy(update={"schedule": pinned(e.set.schedule)})})
                  for e in merged]
        train = self.base.train.model_copy(update={"steps": steps, "schedule": pinned(self.base.train.schedule)})
        longer = base.model_copy(update={"events": merged, "train": train})

        def unchanged(variant):  # a variant runs as long as it did, on the schedule it had
            was, now = self.base.with_changes(variant.set).train, longer.with_changes(variant.set).train
            keep = {"steps": was.steps} if now.steps != was.steps else {}
            if (now.schedule.model_copy(update={"total": now.schedule.total or was.steps})
                    != was.schedule.model_copy(update={"total": was.schedule.total or was.steps})):
                keep["schedule"] = was.schedule
            return variant.model_copy(update={"set": variant.set.model_copy(update=keep)}) if keep else variant

        return longer.model_copy(update={"variants": [unchanged(v) for v in self.base.variants]})
