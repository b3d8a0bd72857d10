"""The expectation checker (lab.sim.expectations), each rule against an independent computation.

Every test builds a TINY scenario (spiral n=150, hidden [8] or [16, 16], <= 60 steps), lets
`check()` evaluate it, and recomputes the number the checker should have compared from a
separate `lab.Simulation` of the same scenario: same seed => bit-identical histories and
snapshots, however the steps are chunked.  So most comparisons below are exact.

Semantics pinned here (see lab/sim/expectations.py):
- per-step scalars (lr, loss, train_acc, grad_norm) come from the history, one value per step
  1..N; `at = "initial"` (and `at = 0`) is the first step's value, computed from the initial
  weights; `at = "final"` (the default) the last step's;
- val_loss / val_acc come from the evaluations at step 0 and every eval_every steps;
- per-layer metrics come from snapshots at the checkpoints: step 0, every eval_every, every
  step an expectation names (`at`, `by`), and the end;
- `by`: holds at some checkpoint <= by; `throughout`: holds at every one; `reduce`: min/max/mean
  over the checkpoints (up to `by`), non-finite values ignored;
- `steps_to(...)`: first step the (smoothed) series satisfies the condition, inf if never.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lab import Simulation
from lab.scenario.load import parse_scenario
from lab.scenario.schema import Expectation
from lab.sim.expectations import CheckResult, Recording, check, evaluate, variant_scenarios

STEPS, EVERY = 60, 20


def make(expect=(), variants=(), *, model=None, train=None, data=None, name="tiny spiral"):
    """A tiny scenario; keyword dicts override the defaults section by section."""
    raw = {
        "scenario": {"name": name, "seed": 0},
        "data": {"kind": "spiral", "n": 150, "classes": 3, "noise": 0.2, **(data or {})},
        "model": {"hidden": [8], "activation": "relu", "init": "kaiming", **(model or {})},
        "train": {"optimizer": "momentum", "lr": 0.1, "batch_size": 32, "steps": STEPS, "eval_every": EVERY,
                  **(train or {})},
        "expect": [dict(e) for e in expect],
        "variants": [dict(v) for v in variants],
    }
    return parse_scenario(raw, "<test>")


def sim_at(scenario, step: int) -> Simulation:
    """An independent run, straight to `step` in one call."""
    sim = Simulation(scenario)
    sim.run_to(step)
    return sim


def layer(sim: Simulation, index: int, metric: str) -> float:
    return sim.snapshot().layers[index - 1].metric(metric)


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def by_index(results: list[CheckResult]) -> dict[int, CheckResult]:
    assert [r.index for r in results] == list(range(len(results)))
    return dict(enumerate(results))


@pytest.fixture(scope="module")
def base():
    """The default tiny scenario run to the end, and its history."""
    sc = make()
    sim = sim_at(sc, STEPS)
    h = sim.history.arrays()
    assert np.array_equal(h["step"], np.arange(1, STEPS + 1))
    assert np.array_equal(h["val_step"], np.arange(0, STEPS + 1, EVERY))
    assert not sim.diverged
    return sc, h


# -- at: per-step scalars --------------------------------------------------------------------

@pytest.mark.parametrize("metric", ["loss", "train_acc", "grad_norm", "lr"])
def test_per_step_scalar_at_initial_zero_step_and_final(base, metric):
    _, h = base
    values, steps = h[metric], h["step"]
    want = {"initial": values[0], 0: values[0], 37: values[steps == 37][0], "final": values[-1]}
    expect = [{"metric": metric, "at": at, "op": "==", "value": float(v)} for at, v in want.items()]
    expect.append({"metric": metric, "op": "==", "value": float(values[-1])})  # default: final
    results = check(make(expect))
    for r, v in zip(results, [*want.values(), values[-1]]):
        assert r.actual == v, r
        assert r.passed, r


def test_initial_loss_is_the_first_steps_loss_from_the_initial_weights(base):
    """The first step's loss is computed before any update, so the learning rate cannot change it."""
    _, h = base
    sc = make([{"metric": "loss", "at": "initial", "variant": "hot", "difference_over": "base", "op": "==", "value": 0},
               {"metric": "loss", "at": 2, "variant": "hot", "difference_over": "base", "op": "!=", "value": 0},
               {"metric": "loss", "at": "initial", "op": "==", "value": float(h["loss"][0])}],
              [{"name": "hot", "set": {"lr": 2.0}}])
    one_step = sim_at(sc, 1).history.arrays()["loss"]
    assert one_step.tolist() == [h["loss"][0]]
    r = by_index(check(sc))
    assert r[0].passed and r[0].actual == 0.0
    assert r[1].passed and r[1].actual != 0.0
    assert r[2].passed and r[2].actual == one_step[0]


# -- at: validation metrics -------------------------------------------------------------------

@pytest.mark.parametrize("metric", ["val_loss", "val_acc"])
def test_val_metric_at_initial_eval_steps_and_final(base, metric):
    sc, h = base
    fresh = Simulation(sc)  # step 0: evaluated on construction, before any training step
    loss0, acc0 = fresh.trainer.evaluate(fresh.data.X_val, fresh.data.y_val)
    at0 = loss0 if metric == "val_loss" else acc0
    assert fresh.history.arrays()[metric].tolist() == [at0]
    want = {"initial": at0, 20: sim_at(sc, 20).history.arrays()[metric][-1],
            40: sim_at(sc, 40).history.arrays()[metric][-1], "final": h[metric][-1]}
    assert want[40] == h[metric][2]
    results = check(make([{"metric": metric, "at": at, "op": "==", "value": float(v)} for at, v in want.items()]))
    for r, v in zip(results, want.values()):
        assert r.actual == v and r.passed, r


# -- at: per-layer metrics from checkpoint snapshots -------------------------------------------

@pytest.mark.parametrize("metric,index", [("act_std", 1), ("dead_fraction", 1), ("weight_std", 2),
                                          ("act_mean", 2), ("update_ratio", 1)])
def test_per_layer_metric_at_initial_named_step_and_final(metric, index):
    sc = make()
    # 30 is not an eval step: naming it adds a checkpoint there
    want = {"initial": layer(Simulation(sc), index, metric), 30: layer(sim_at(sc, 30), index, metric),
            "final": layer(sim_at(sc, STEPS), index, metric)}
    expect = [{"metric": metric, "layer": index, "at": at, "op": ">=", "value": -1e9} for at in want]
    for r, v in zip(check(make(expect)), want.values()):
        assert same(r.actual, v), (r, v)


# -- by -------------------------------------------------------------------------------------------

def test_by_on_a_per_step_series_looks_at_every_step_up_to_by(base):
    _, h = base
    loss, steps = h["loss"], h["step"]
    m30 = float(loss[steps <= 30].min())
    assert loss.min() < m30  # only a later step gets below m30
    r = by_index(check(make([
        {"metric": "loss", "by": 30, "op": "<=", "value": m30},
        {"metric": "loss", "by": 30, "op": "<", "value": m30},
        {"metric": "loss", "by": STEPS, "op": "<", "value": m30},
    ])))
    assert r[0].passed and r[0].actual == m30
    assert not r[1].passed and r[1].actual == m30  # a failed `<` reports the best (lowest) value seen
    first_below = float(loss[np.nonzero(loss < m30)[0][0]])
    assert r[2].passed and r[2].actual == first_below  # a pass reports the first value that holds
    assert r[0].description == f"loss <= {m30:g} by step 30"


def test_by_on_validation_and_layer_metrics_uses_the_checkpoints_up_to_by():
    sc = make()
    val = sim_at(sc, 40).history.arrays()["val_acc"]  # evaluations at steps 0, 20, 40
    best = float(val.max())
    # checkpoints up to by=30: 0, 20 and 30 itself (a named step)
    acts = [layer(sim_at(sc, s), 1, "act_std") for s in (0, 20, 30)]
    r = by_index(check(make([
        {"metric": "val_acc", "by": 40, "op": ">=", "value": best},
        {"metric": "val_acc", "by": 40, "op": ">", "value": best},
        {"metric": "act_std", "layer": 1, "by": 30, "op": ">=", "value": max(acts)},
        {"metric": "act_std", "layer": 1, "by": 30, "op": ">", "value": max(acts)},
    ])))
    assert r[0].passed and r[0].actual == best
    assert not r[1].passed and r[1].actual == best  # a failed `>` reports the highest value seen
    assert r[2].passed and r[2].actual == max(acts)
    assert not r[3].passed and r[3].actual == max(acts)


# -- throughout ---------------------------------------------------------------------------------

def test_throughout_holds_at_every_step_or_checkpoint(base):
    sc, h = base
    loss, val = h["loss"], h["val_acc"]
    mid = float(np.median(loss))
    weights = [layer(sim_at(sc, s), 1, "weight_std") for s in (0, 20, 40, 60)]
    r = by_index(check(make([
        {"metric": "loss", "throughout": True, "op": "<", "value": float(loss.max()) + 1},
        {"metric": "loss", "throughout": True, "op": "<", "value": mid},
        {"metric": "val_acc", "throughout": True, "op": ">=", "value": float(val.min())},
        {"metric": "val_acc", "throughout": True, "op": ">", "value": float(val.min())},
        {"metric": "weight_std", "layer": 1, "throughout": True, "op": ">=", "value": min(weights)},
        {"metric": "weight_std", "layer": 1, "throughout": True, "op": ">", "value": min(weights)},
    ])))
    assert r[0].passed and r[0].actual == loss[-1]  # a pass reports the last value
    assert not r[1].passed and r[1].actual == loss[np.nonzero(loss >= mid)[0][0]]  # ...a failure the first bad one
    assert r[2].passed
    assert not r[3].passed and r[3].actual == val[np.nonzero(val <= val.min())[0][0]]
    assert r[4].passed
    assert not r[5].passed and r[5].actual == min(weights)
    assert r[0].description.endswith("throughout")


# -- reduce -------------------------------------------------------------------------------------

def test_reduce_min_max_mean_over_the_run_and_up_to_by(base):
    # `by` on eval steps only: a `by` elsewhere adds a checkpoint, evaluated like the others
    sc, h = base
    loss, steps, val = h["loss"], h["step"], h["val_acc"]
    early = loss[steps <= 40]
    acts = [layer(sim_at(sc, s), 1, "act_std") for s in (0, 20, 40)]
    want = [("loss", None, "min", None, loss.min()), ("loss", None, "max", None, loss.max()),
            ("loss", None, "mean", None, loss.mean()), ("loss", None, "min", 40, early.min()),
            ("loss", None, "max", 40, early.max()), ("loss", None, "mean", 40, early.mean()),
            ("val_acc", None, "mean", None, val.mean()), ("val_acc", None, "max", 20, val[:2].max()),
            ("act_std", 1, "max", 40, max(acts)), ("act_std", 1, "mean", 40, np.mean(acts))]
    expect = []
    for metric, index, how, by, value in want:
        ex = {"metric": metric, "reduce": how, "op": "==", "value": float(value), "tolerance": 1e-12}
        ex.update({"layer": index} if index else {})
        ex.update({"by": by} if by is not None else {})
        expect.append(ex)
    results = check(make(expect))
    for r, (*_, value) in zip(results, want):
        assert r.actual == pytest.approx(float(value), rel=1e-13, abs=0), r
        assert r.passed, r
    assert results[3].description == f"loss == {early.min():g} min over the run up to step 40"


# -- steps_to --------------------------------------------------------------------------------------

def test_steps_to_long_and_shorthand_forms(base):
    _, h = base
    steps, acc, loss = h["step"], h["train_acc"], h["loss"]
    first = lambda mask: float(steps[np.nonzero(mask)[0][0]])  # noqa: E731
    assert acc[0] < 0.6 <= acc.max() and loss.min() <= 0.8 < loss[0]
    val_best = float(h["val_acc"].max())
    assert h["val_acc"][0] < val_best
    val_first = float(h["val_step"][np.nonzero(h["val_acc"] >= val_best)[0][0]])
    want = [("steps_to(train_acc >= 0.6)", first(acc >= 0.6)),
            ("steps_to_train_acc(0.6)", first(acc >= 0.6)),  # shorthand: >= for accuracies
            ("steps_to_loss(0.8)", first(loss <= 0.8)),  # ... and <= for everything else
            ("steps_to(loss < 0.8)", first(loss < 0.8)),
            (f"steps_to(val_acc >= {val_best!r})", val_first)]
    results = check(make([{"metric": m, "op": "==", "value": v} for m, v in want]))
    for r, (metric, v) in zip(results, want):
        assert r.actual == v and r.passed, (metric, r)


def test_steps_to_never_reached_is_inf():
    r = by_index(check(make([
        {"metric": "steps_to(train_acc > 1.0)", "op": "<", "value": 1000},
        {"metric": "steps_to(train_acc > 1.0)", "op": ">", "value": 1000},
        {"metric": "steps_to_loss(0.0)", "op": "<=", "value": STEPS},
    ])))
    assert r[0].actual == math.inf and not r[0].passed
    assert r[1].actual == math.inf and r[1].passed
    assert r[2].actual == math.inf and not r[2].passed


# -- smooth ---------------------------------------------------------------------------------------

def trailing_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last `window` values at each step (of the values so far, before `window`)."""
    return np.array([sum(float(values[j]) for j in range(max(i - window + 1, 0), i + 1)) / min(window, i + 1)
                     for i in range(values.size)])


def test_smooth_is_a_trailing_moving_average(base):
    _, h = base
    loss, steps = h["loss"], h["step"]
    smooth = trailing_mean(loss, 5)
    assert smooth[2] == pytest.approx((loss[0] + loss[1] + loss[2]) / 3)  # warming up: the steps so far
    threshold = float(np.quantile(smooth, 0.3))
    first = float(steps[np.nonzero(smooth <= threshold)[0][0]])
    assert first != float(steps[np.nonzero(loss <= threshold)[0][0]])  # smoothing changes the answer
    want = [({"at": "initial"}, loss[0]), ({"at": 3}, smooth[2]), ({}, smooth[-1]),
            ({"reduce": "max"}, smooth.max())]
    expect = [{"metric": "loss", "smooth": 5, "op": ">", "value": 0, **sel} for sel, _ in want]
    expect.append({"metric": f"steps_to_loss({threshold!r})", "smooth": 5, "op": "==", "value": first})
    results = check(make(expect))
    for r, (_, v) in zip(results, want):
        assert r.actual == pytest.approx(float(v), rel=1e-12), r
    assert results[-1].actual == first and results[-1].passed


# -- ratio_over / difference_over -------------------------------------------------------------------

def test_ratio_and_difference_over_variants():
    variants = [{"name": "slow", "set": {"lr": 0.01}}, {"name": "tanh", "set": {"activation": "tanh"}}]
    sc = make(variants=variants)
    runs = variant_scenarios(sc)
    assert runs["slow"] == sc.with_changes({"lr": 0.01}) and runs["slow"].train.lr == 0.01
    base, slow, tanh = (sim_at(runs[n], STEPS) for n in ("base", "slow", "tanh"))
    hb, hs, ht = (s.history.arrays() for s in (base, slow, tanh))
    assert hb["loss"][-1] != hs["loss"][-1]
    act30 = {n: layer(sim_at(runs[n], 30), 1, "act_std") for n in ("base", "tanh")}
    # ratios are taken step by step, then reduced: max over steps <= 20 of slow_t / base_t
    early_ratio = float((hs["loss"][hs["step"] <= 20] / hb["loss"][hb["step"] <= 20]).max())
    want = [
        ({"metric": "loss", "ratio_over": "slow"}, hb["loss"][-1] / hs["loss"][-1]),
        ({"metric": "loss", "variant": "slow", "ratio_over": "base"}, hs["loss"][-1] / hb["loss"][-1]),
        ({"metric": "val_acc", "difference_over": "slow"}, hb["val_acc"][-1] - hs["val_acc"][-1]),
        ({"metric": "act_std", "layer": 1, "at": 30, "variant": "tanh", "difference_over": "base"},
         act30["tanh"] - act30["base"]),
        ({"metric": "act_std", "layer": 1, "at": 30, "variant": "tanh", "ratio_over": "base"},
         act30["tanh"] / act30["base"]),
        ({"metric": "loss", "reduce": "max", "by": 20, "variant": "slow", "ratio_over": "base"},
         early_ratio),
        ({"metric": "train_acc", "at": "initial", "variant": "tanh", "difference_over": "slow"},
         ht["train_acc"][0] - hs["train_acc"][0]),
    ]
    results = check(make([{**sel, "op": "==", "value": float(v)} for sel, v in want], variants))
    for r, (sel, v) in zip(results, want):
        assert r.actual == v and r.passed, (sel, r)
    assert results[1].description == f"loss(slow) / loss(base) == {want[1][1]:g} at final step"
    assert results[2].description.startswith("val_acc(base) - val_acc(slow) ==")


# -- tolerance and the six operators ---------------------------------------------------------------------

def test_tolerance_applies_to_eq_and_ne(base):
    _, h = base
    loss = float(h["loss"][-1])
    off = loss + 1e-6
    r = by_index(check(make([
        {"metric": "lr", "op": "==", "value": 0.1},
        {"metric": "loss", "op": "==", "value": off},
        {"metric": "loss", "op": "==", "value": off, "tolerance": 1e-5},
        {"metric": "loss", "op": "==", "value": off, "tolerance": 1e-7},
        {"metric": "loss", "op": "!=", "value": off},
        {"metric": "loss", "op": "!=", "value": off, "tolerance": 1e-5},
        {"metric": "loss", "op": "!=", "value": off, "tolerance": 1e-7},
        {"metric": "loss", "op": "<", "value": loss, "tolerance": 1.0},  # ignored by ordering ops
    ])))
    assert [r[i].passed for i in range(8)] == [True, False, True, False, True, False, True, False]
    assert all(r[i].actual == loss for i in range(1, 8))


@pytest.mark.parametrize("op,passes_at,fails_at", [
    ("<", [+1], [0, -1]),
    ("<=", [0, +1], [-1]),
    (">", [-1], [0, +1]),
    (">=", [0, -1], [+1]),
    ("==", [0], [-1, +1]),
    ("!=", [-1, +1], [0]),
])
def test_each_operator_passes_and_fails_where_it_should(base, op, passes_at, fails_at):
    """value = actual + k * 1e-3 for k in passes_at (must pass) and fails_at (must fail)."""
    _, h = base
    actual = float(h["loss"][-1])
    cases = [(k, True) for k in passes_at] + [(k, False) for k in fails_at]
    values = [actual + k * 1e-3 if k else actual for k, _ in cases]
    results = check(make([{"metric": "loss", "op": op, "value": v} for v in values]))
    for r, (k, should_pass), v in zip(results, cases, values):
        assert r.passed is should_pass, (op, k, r)
        assert r.actual == actual and r.expected == f"{op} {v:g}"


def test_a_failure_carries_index_description_expected_actual_and_why(base):
    _, h = base
    why = "a tiny net cannot fit the spiral in 60 steps"
    r = check(make([{"metric": "lr", "op": "==", "value": 0.1},
                    {"metric": "val_acc", "op": ">", "value": 0.99, "why": why}]))
    assert r[0].passed and r[0].why == ""
    fail = r[1]
    assert not fail.passed and fail.index == 1 and fail.error is None
    assert fail.description == "val_acc > 0.99 at final step"
    assert fail.expected == "> 0.99"
    assert fail.actual == h["val_acc"][-1]
    assert fail.why == why


# -- a diverging run --------------------------------------------------------------------------------------

DIVERGE = {"model": {"hidden": [16, 16], "activation": "relu"}, "train": {"optimizer": "sgd", "lr": 1e6, "steps": 40,
                                                                         "eval_every": 10}}


@pytest.fixture(scope="module")
def diverging():
    sc = make(**DIVERGE)
    sim = sim_at(sc, 40)
    assert sim.diverged and 1 < sim.diverged_at < 10, "lr = 1e6 should blow this net up in a few steps"
    return sim.diverged_at, sim.history.arrays()


def test_diverged_metric_is_1_at_the_final_checkpoint(diverging):
    at, h = diverging
    assert h["step"].tolist() == list(range(1, at + 1))  # the history stops at the diverging step
    r = by_index(check(make([
        {"metric": "diverged", "op": "==", "value": 1},
        {"metric": "diverged", "at": "initial", "op": "==", "value": 0},
        {"metric": "diverged", "throughout": True, "op": "==", "value": 0},
        {"metric": "diverged", "by": 20, "op": "==", "value": 1},
    ], **DIVERGE)))
    assert r[0].passed and r[0].actual == 1.0
    assert r[1].passed and r[1].actual == 0.0
    assert not r[2].passed and r[2].actual == 1.0
    assert r[3].passed
    healthy = check(make([{"metric": "diverged", "op": "==", "value": 0}]))[0]
    assert healthy.passed and healthy.actual == 0.0


def test_a_per_step_metric_after_divergence_is_nan_and_fails(diverging):
    at, h = diverging
    r = by_index(check(make([
        {"metric": "loss", "at": 20, "op": "<", "value": 1e30},
        {"metric": "loss", "at": 20, "op": "!=", "value": 0},  # nan fails every operator, != too
        {"metric": "loss", "at": 20, "op": ">", "value": -1e30},
        {"metric": "loss", "at": at - 1, "op": "==", "value": float(h["loss"][at - 2])},
        {"metric": "loss", "reduce": "max", "op": "==", "value": float(np.nanmax(h["loss"]))},
    ], **DIVERGE)))
    for i in range(3):
        assert math.isnan(r[i].actual) and not r[i].passed, r[i]
    assert math.isfinite(r[3].actual) and r[3].passed  # before the divergence the history is there
    assert r[4].passed  # reduce ignores the non-finite values


def test_per_layer_metric_of_a_diverged_run_does_not_crash(diverging):
    at, _ = diverging
    sc = make([{"metric": "dead_fraction", "layer": 1, "op": ">=", "value": 0}], **DIVERGE)
    expected = layer(sim_at(sc, 40), 1, "dead_fraction")
    result = check(sc)[0]
    assert same(result.actual, expected)


# -- evaluate() on a hand-made Recording -----------------------------------------------------------------

def recording(name: str, loss: list[float]) -> Recording:
    n = len(loss)
    hist = {"step": np.arange(1, n + 1, dtype=float), "lr": np.full(n, 0.1), "loss": np.array(loss),
            "train_acc": np.zeros(n), "grad_norm": np.zeros(n), "val_step": np.array([0.0]),
            "val_loss": np.array([1.0]), "val_acc": np.array([0.5])}
    return Recording(name, hist, [0, n], final_step=n)


def test_evaluate_on_a_hand_made_recording():
    runs = {"base": recording("base", [3.0, 2.0, 1.0]), "zero": recording("zero", [1.0, 1.0, 0.0])}
    ex = lambda **kw: Expectation(**{"metric": "loss", "op": "<", "value": 0.0, **kw})  # noqa: E731
    assert evaluate(ex(at=2, op="==", value=2.0), 0, runs).passed
    assert evaluate(ex(by=2, op="<=", value=2.0), 0, runs).actual == 2.0
    assert evaluate(ex(reduce="mean", op="==", value=2.0), 0, runs).passed
    assert evaluate(ex(ratio_over="zero", op=">", value=1e300), 0, runs).actual == math.inf  # 1 / 0
    assert math.isnan(evaluate(ex(variant="zero", ratio_over="zero"), 0, runs).actual)  # 0 / 0


def test_negative_ratio_over_zero_is_minus_inf():
    runs = {"base": recording("base", [-3.0, -2.0, -1.0]), "zero": recording("zero", [1.0, 1.0, 0.0])}
    result = evaluate(Expectation(metric="loss", ratio_over="zero", op="<", value=-5.0), 0, runs)
    assert result.actual == -math.inf and result.passed


# -- time selectors combined with ratio_over / difference_over ------------------------------------------

@pytest.mark.parametrize("selector", [{"throughout": True}, {"by": 5}])
def test_throughout_and_by_apply_to_ratios(selector):
    variants = [{"name": "slow", "set": {"lr": 0.01}}]
    sc = make(variants=variants)
    hb, hs = (sim_at(s, STEPS).history.arrays() for s in variant_scenarios(sc).values())
    ratio = hb["loss"] / hs["loss"]
    assert ratio[0] == 1.0 and ratio[-1] < 0.9  # same first loss; base learns faster
    # ratio < 0.9 fails at step 1 (so throughout fails) and at every step up to 5 (so by=5 fails)
    assert (ratio[:5] >= 0.9).all()
    result = check(make([{"metric": "loss", "ratio_over": "slow", "op": "<", "value": 0.9, **selector}], variants))[0]
    assert not result.passed, result


# -- validation metrics at steps that are not evaluation steps ----------------------------------------------

def test_val_metric_at_a_named_step_that_is_not_an_eval_step():
    sc = make([{"metric": "val_acc", "at": 30, "op": ">=", "value": 0}])
    sim = sim_at(sc, 30)
    _, acc30 = sim.trainer.evaluate(sim.data.X_val, sim.data.y_val)
    result = check(sc)[0]
    assert result.actual == acc30 and result.passed


def test_final_val_metric_is_evaluated_at_the_end():
    sc = make([{"metric": "val_loss", "op": ">", "value": 0}], train={"steps": 50})
    sim = sim_at(sc, 50)
    loss50, _ = sim.trainer.evaluate(sim.data.X_val, sim.data.y_val)
    assert loss50 != sim.history.arrays()["val_loss"][-1]  # the stale step-40 value differs
    assert check(sc)[0].actual == loss50


def test_variants_can_change_the_layers_and_the_data():
    """A variant starts at step 0, so it may change what an event cannot: `hidden`, the data set."""
    sc = make([{"metric": "act_std", "layer": 3, "variant": "deep", "op": ">", "value": 0.0},
               {"metric": "val_acc", "variant": "moons", "op": ">=", "value": 0.0}],
              [{"name": "deep", "set": {"hidden": [8, 8]}}, {"name": "moons", "set": {"kind": "moons", "n": 120}}])
    runs = variant_scenarios(sc)
    assert runs["deep"].model.hidden == [8, 8] and runs["moons"].data.kind == "moons"
    results = check(sc)
    deep = Simulation(runs["deep"])
    deep.run_to(sc.train.steps)
    assert results[0].actual == deep.snapshot().layers[2].act_std  # layer 3 exists only in the variant
    assert all(r.passed for r in results)
