"""Simulation: determinism, events and on-the-fly changes, reset, replay, divergence, and the
Snapshot's per-layer metrics checked against plain-numpy computations."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

import lab
from lab.errors import LabError
from lab.scenario.schema import Scenario
from lab.sim.bins import SYMLOG_BINS, activation_bins
from lab.sim.stats import probe_size

SERIES = ("step", "lr", "loss", "train_acc", "grad_norm", "val_step", "val_loss", "val_acc")


def scenario(data=None, model=None, train=None, events=(), seed=0) -> Scenario:
    d = {"kind": "spiral", "n": 200}
    d.update(data or {})
    m = {"hidden": [16, 16], "dtype": "float64"}
    m.update(model or {})
    t = {"steps": 300, "eval_every": 50}
    t.update(train or {})
    return Scenario.model_validate({"scenario": {"seed": seed, "name": "test"}, "data": d, "model": m, "train": t,
                                    "events": list(events)})


def make(**kw) -> lab.Simulation:
    return lab.Simulation(scenario(**kw))


def params_of(sim) -> dict[str, np.ndarray]:
    return {name: value.copy() for name, value in sim.network.parameters()}


def assert_same_run(a, b):
    ha, hb = a.history.arrays(), b.history.arrays()
    for name in SERIES:
        np.testing.assert_array_equal(ha[name], hb[name], err_msg=name)
    pa, pb = params_of(a), params_of(b)
    assert pa.keys() == pb.keys()
    for name in pa:
        np.testing.assert_array_equal(pa[name], pb[name], err_msg=name)
    assert a.step_count == b.step_count


VARIANTS = {
    "plain": {},
    "dropout": {"dropout": 0.3},
    "bn+dropout+dropconnect": {"batchnorm": True, "dropout": 0.2, "dropconnect": 0.1},
    "float32": {"dtype": "float32", "dropout": 0.2},
}


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("model", VARIANTS.values(), ids=VARIANTS.keys())
def test_same_scenario_twice_is_bit_identical(model):
    a, b = make(model=model), make(model=model)
    assert a.step(300) == 300 and b.step(300) == 300
    assert_same_run(a, b)
    h = a.history.arrays()
    assert len(h["loss"]) == 300
    np.testing.assert_array_equal(h["val_step"], np.arange(0, 301, 50))  # at step 0, then every 50 steps
    assert np.all(np.isfinite(h["loss"])) and h["loss"][-20:].mean() < h["loss"][:20].mean()  # it learns


@pytest.mark.parametrize("model", [VARIANTS["plain"], VARIANTS["dropout"]], ids=["plain", "dropout"])
def test_chunking_does_not_change_the_run(model):
    whole = make(model=model)
    whole.step(300)
    ones = make(model=model)
    for _ in range(300):
        assert ones.step(1) == 1
    sevens = make(model=model)
    while sevens.step_count < 300:
        sevens.step(min(7, 300 - sevens.step_count))
    assert_same_run(whole, ones)
    assert_same_run(whole, sevens)


@pytest.mark.parametrize("model", [VARIANTS["plain"], VARIANTS["dropout"]], ids=["plain", "dropout"])
def test_stepping_on_a_thread_is_identical(model):
    main = make(model=model)
    main.step(150)
    other = make(model=model)
    errors = []

    def work():
        try:
            for _ in range(10):
                other.step(15)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    th = threading.Thread(target=work)
    th.start()
    th.join()
    assert not errors
    assert_same_run(main, other)


def test_different_seed_gives_a_different_run():
    a, b = make(seed=0), make(seed=1)
    a.step(50)
    b.step(50)
    assert not np.array_equal(a.history.arrays()["loss"], b.history.arrays()["loss"])


# --------------------------------------------------------------------------- events and set()


def test_scenario_events_apply_at_their_step():
    sim = make(train={"lr": 0.1}, events=[{"at": 20, "set": {"lr": 0.5}}, {"at": 45, "set": {"lr": 0.02}}])
    sim.step(60)
    h = sim.history.arrays()
    np.testing.assert_array_equal(h["step"], np.arange(1, 61))
    lr = h["lr"]
    # "at": the change applies before that step runs: 0-based step 20 is history step 21
    np.testing.assert_array_equal(lr[:20], 0.1)
    np.testing.assert_array_equal(lr[20:45], 0.5)
    np.testing.assert_array_equal(lr[45:], 0.02)
    assert [(e.step, e.changes, e.source) for e in sim.events] == [(20, {"lr": 0.5}, "scenario"),
                                                                   (45, {"lr": 0.02}, "scenario")]


def test_history_lr_follows_schedule():
    sched = {"kind": "cosine", "warmup": 10, "min_lr": 0.001}
    sim = make(train={"lr": 0.2, "steps": 100, "schedule": sched})
    sim.step(120)
    lr = sim.history.arrays()["lr"]
    t = np.arange(120)
    want = np.where(t < 10, 0.2 * (t + 1) / 10,
                    0.001 + (0.2 - 0.001) * (1 + np.cos(math.pi * np.clip((t - 10) / 90, 0, 1))) / 2)
    np.testing.assert_allclose(lr, want, rtol=1e-12)
    assert sim.snapshot().lr == pytest.approx(0.001)  # lr of the next step, past total


def test_set_lr_records_event_and_takes_effect():
    sim = make()
    sim.step(10)
    ev = sim.set(lr=0.03)
    assert ev.step == 10 and ev.changes == {"lr": 0.03} and ev.source == "user"
    assert sim.events[-1] == ev
    sim.step(5)
    lr = sim.history.arrays()["lr"]
    np.testing.assert_array_equal(lr[:10], 0.1)
    np.testing.assert_array_equal(lr[10:], 0.03)
    assert sim.snapshot().events[-1] == ev


def test_set_init_reinitialises_and_resets_optimizer():
    sim = make(train={"optimizer": "momentum"})
    sim.step(20)
    before = params_of(sim)
    assert np.any(sim.trainer.opt_state.m1 != 0) and sim.trainer.opt_state.t[0] == 20
    sim.set(init="xavier")
    after = params_of(sim)
    for name in before:
        if name.startswith("W"):
            assert not np.allclose(before[name], after[name]), name
        else:
            np.testing.assert_array_equal(after[name], 0.0)  # biases back to bias_init
    np.testing.assert_array_equal(sim.trainer.opt_state.m1, 0.0)
    np.testing.assert_array_equal(sim.trainer.opt_state.m2, 0.0)
    assert sim.trainer.opt_state.t[0] == 0
    # xavier on (16, 16): std 1/4
    assert abs(after["W2"].std() / 0.25 - 1) < 0.3
    assert sim.step(10) == 10 and sim.current.model.init == "xavier"


def test_set_reinit_with_same_scheme_draws_new_weights():
    sim = make()
    w0 = sim.network.param("W1").copy()
    sim.set(reinit=True)
    assert not np.array_equal(w0, sim.network.param("W1"))


def test_set_activation_keeps_weights_and_continues():
    sim = make()
    sim.step(30)
    before = params_of(sim)
    old_net = sim.network
    sim.set(activation="leaky_relu")
    assert sim.network is not old_net and sim.network.arch.activation == "leaky_relu"
    after = params_of(sim)
    assert after.keys() == before.keys()
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    sim.network.param("W1")[0, 0] += 1.0  # a copy, not shared with the old network
    assert old_net.param("W1")[0, 0] == before["W1"][0, 0]
    assert sim.step(20) == 20 and sim.step_count == 50
    assert sim.snapshot().layers[0].kind == "leaky_relu"
    assert np.all(np.isfinite(sim.history.arrays()["loss"]))


def test_set_batchnorm_adds_gamma_beta_and_keeps_W():
    sim = make()
    sim.step(30)
    before = params_of(sim)
    sim.set(batchnorm=True)
    after = params_of(sim)
    assert [n for n in after] == ["W1", "b1", "gamma1", "beta1", "W2", "b2", "gamma2", "beta2", "W3", "b3"]
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    for l in (1, 2):
        np.testing.assert_array_equal(after[f"gamma{l}"], 1.0)
        np.testing.assert_array_equal(after[f"beta{l}"], 0.0)
    assert sim.step(20) == 20
    assert not np.array_equal(params_of(sim)["gamma1"], 1.0)  # the new parameters train


@pytest.mark.parametrize("changes", [{"lr": -1}, {"lr": 0}, {"learning_rate": 0.1}, {"activation": "swish"},
                                     {"dropout": 1.0}, {"init": "he"}, {"batch_size": 0}])
def test_invalid_change_raises_lab_error(changes):
    sim = make()
    sim.step(3)
    before = params_of(sim)
    with pytest.raises(LabError):
        sim.set(**changes)
    assert sim.events == [] and sim.current == sim.base
    for name, value in params_of(sim).items():
        np.testing.assert_array_equal(value, before[name])


# --------------------------------------------------------------------------- reset


def test_reset_replays_the_same_initialisation():
    sim = make(model={"dropout": 0.1})
    initial = params_of(sim)
    sim.step(80)
    first = {k: v.copy() for k, v in sim.history.arrays().items()}
    sim.reset()
    assert sim.step_count == 0 and len(sim.history.arrays()["loss"]) == 0 and not sim.diverged
    for name, value in params_of(sim).items():
        np.testing.assert_array_equal(value, initial[name], err_msg=name)
    sim.step(80)
    for name in SERIES:
        np.testing.assert_array_equal(sim.history.arrays()[name], first[name], err_msg=name)
    sim.reset(new_seed=True)
    for name, value in params_of(sim).items():
        if name.startswith("W"):
            assert not np.array_equal(value, initial[name])
    sim.step(80)
    assert not np.array_equal(sim.history.arrays()["loss"], first["loss"])


def test_reset_keeps_user_changes_as_starting_point():
    sim = make()
    sim.step(10)
    sim.set(lr=0.05)
    sim.step(10)
    sim.reset()
    np.testing.assert_array_equal(sim.history.arrays()["lr"], [])
    sim.step(5)
    np.testing.assert_array_equal(sim.history.arrays()["lr"], 0.05)
    # the change stays in the event log: the user's, at step 0, where the run now starts from
    assert [(e.step, e.changes, e.source) for e in sim.events] == [(0, {"lr": 0.05}, "user")]
    fresh = make(train={"lr": 0.05})
    fresh.step(5)
    assert_same_run(sim, fresh)


# --------------------------------------------------------------------------- replay


def test_scenario_with_events_replays_user_changes_bit_identically():
    sim = make(model={"dropout": 0.1}, events=[{"at": 40, "set": {"lr": 0.08}}])
    sim.step(30)
    sim.set(lr=0.05)
    sim.step(30)  # crosses the scenario's own event at 40
    sim.set(activation="leaky_relu")
    sim.step(25)
    sim.set(batch_size=32, optimizer="momentum")
    sim.step(30)
    sim.set(init="xavier")  # re-initialisation draws from a stream keyed by the step
    sim.step(20)
    sim.set(batchnorm=True, dropout=0.2)
    sim.step(40)
    sim.set(reinit=True)
    sim.step(15)
    assert sim.step_count == 190
    sc = sim.scenario_with_events()
    sc = Scenario.model_validate(sc.model_dump())  # survives a round trip through plain data
    assert [e.at for e in sc.events] == [30, 40, 60, 85, 115, 135, 175]
    replay = lab.Simulation(sc)
    replay.run_to(190)
    assert_same_run(sim, replay)
    assert [(e.step, e.changes) for e in replay.events] == [(e.step, e.changes) for e in sim.events]


def overflowing() -> "lab.Simulation":
    """lr * weight_decay overflows: the first update makes the weights infinite (loss itself was finite).
    Files may not say lr = 1e200 (the schema bounds lr <= 1e9, weight_decay <= 100); an API user who
    builds such a scenario without validation still gets a run that diverges and recovers."""
    sc = scenario()
    return lab.Simulation(sc.model_copy(update={"train": sc.train.model_copy(update={"lr": 1e200,
                                                                                     "weight_decay": 1e200})}))


def test_scenario_with_events_replays_a_recovery_from_divergence():
    sim = overflowing()
    sim.step(10)
    assert sim.diverged and sim.diverged_at == 1
    sim.set(init="kaiming", lr=0.1, weight_decay=0.0)
    assert sim.step(20) == 20
    replay = lab.Simulation(sim.scenario_with_events())
    replay.run_to(sim.step_count)
    assert replay.step_count == sim.step_count
    assert_same_run(sim, replay)


def test_scenario_with_events_past_train_steps_is_a_valid_scenario():
    sim = make(train={"steps": 100})
    sim.step(120)
    sim.set(lr=0.05)
    sim.step(10)
    sc = sim.scenario_with_events()
    again = Scenario.model_validate(sc.model_dump())
    replay = lab.Simulation(again)
    replay.run_to(130)
    assert_same_run(sim, replay)


# --------------------------------------------------------------------------- divergence

OVERFLOW = {"model": {"loss": "mse", "activation": "tanh"}, "train": {"lr": 100.0, "eval_every": 1000}}


def test_divergence_is_detected_and_recoverable():
    sim = make(**OVERFLOW)
    ran = sim.step(200)
    assert sim.diverged
    assert sim.diverged_at == ran == sim.step_count and 1 <= ran < 200
    loss = sim.history.arrays()["loss"]
    assert len(loss) == ran and not np.isfinite(loss[-1]) and np.all(np.isfinite(loss[:-1]))
    assert sim.step(10) == 0 and sim.step() == 0  # nothing runs, nothing raises
    assert sim.step_count == ran
    snap = sim.snapshot()
    assert snap.diverged and snap.diverged_at == ran and not np.isfinite(snap.loss)
    assert len(snap.layers) == 3
    sim.set(init="kaiming", lr=0.01)
    assert not sim.diverged and sim.diverged_at is None
    assert sim.step(20) == 20
    assert np.all(np.isfinite(sim.network.params))
    assert np.all(np.isfinite(sim.history.arrays()["loss"][-20:]))
    assert not sim.snapshot().diverged


def test_divergence_from_huge_sgd_lr_with_weight_overflow():
    sim = overflowing()
    assert sim.step(5) == 1 and sim.diverged and sim.diverged_at == 1
    assert not np.all(np.isfinite(sim.network.params))
    snap = sim.snapshot()
    assert snap.diverged and snap.step == 1


def test_divergence_does_not_depend_on_chunking():
    whole = make(**OVERFLOW)
    whole.step(200)
    ones = make(**OVERFLOW)
    for _ in range(200):
        ones.step(1)
    assert ones.diverged == whole.diverged
    assert ones.diverged_at == whole.diverged_at
    assert ones.step_count == whole.step_count


# --------------------------------------------------------------------------- snapshot metrics


def _relu(z):
    return np.maximum(z, 0.0)


def numpy_pass(params, X, y, hidden, act=_relu, dact=lambda z: (z > 0).astype(float)):
    """Forward/backward of the plain MLP (softmax, mean loss) in numpy: z, a, da and dW per layer."""
    L = len(hidden) + 1
    a = X
    zs, acts = [], []
    for l in range(1, L):
        z = a @ params[f"W{l}"] + params[f"b{l}"]
        a = act(z)
        zs.append(z)
        acts.append(a)
    scores = a @ params[f"W{L}"] + params[f"b{L}"]
    B = X.shape[0]
    sh = scores - scores.max(axis=1, keepdims=True)
    p = np.exp(sh) / np.exp(sh).sum(axis=1, keepdims=True)
    loss = -np.mean(np.log(p[np.arange(B), y]))
    d = p.copy()
    d[np.arange(B), y] -= 1
    d /= B
    das = [None] * L
    dWs = [None] * L
    das[L - 1] = d
    inputs = [X, *acts]
    for l in range(L, 0, -1):
        dWs[l - 1] = inputs[l - 1].T @ d
        if l > 1:
            da = d @ params[f"W{l}"].T
            das[l - 2] = da
            d = da * dact(zs[l - 2])
    return loss, zs, [*acts, scores], das, dWs


def my_sign_agreement(dw):
    shares = []
    for j in range(dw.shape[1]):
        col = dw[:, j]
        pos, neg = int((col > 0).sum()), int((col < 0).sum())
        if pos + neg:
            shares.append(max(pos, neg) / (pos + neg))
    return float(np.mean(shares))


def my_unit_similarity(w):
    n = w.shape[1]
    total = 0.0
    for i in range(n):
        for j in range(n):
            if i != j:
                ni, nj = np.linalg.norm(w[:, i]), np.linalg.norm(w[:, j])
                total += 1.0 if ni == 0 and nj == 0 else (w[:, i] @ w[:, j]) / (max(ni, 1e-300) * max(nj, 1e-300))
    return total / (n * (n - 1))


def test_layer_metrics_match_numpy_full_batch():
    """Full batch: the batch is a permutation of the training rows, so every batch statistic
    can be recomputed in numpy from the parameters before the step."""
    sim = make(train={"batch_size": 10_000, "lr": 0.2})
    X, y = sim.data.X_train, sim.data.y_train
    assert sim.trainer.batch_size == X.shape[0]
    sim.step(10)
    before = params_of(sim)
    sim.step(1)
    snap = sim.snapshot()
    after = params_of(sim)
    loss, zs, outs, das, dWs = numpy_pass(before, X, y, (16, 16))
    assert snap.loss == pytest.approx(loss, rel=1e-10)
    B = X.shape[0]
    for l, st in enumerate(snap.layers, start=1):
        a, da, dw = outs[l - 1], das[l - 1], dWs[l - 1]
        w, dW = after[f"W{l}"], after[f"W{l}"] - before[f"W{l}"]
        assert st.index == l and st.width == a.shape[1]
        assert st.kind == ("relu" if l < 3 else "output")
        assert st.act_mean == pytest.approx(a.mean(), rel=1e-9, abs=1e-12)
        assert st.act_std == pytest.approx(a.std(), rel=1e-9)
        assert st.grad_mean == pytest.approx(da.mean(), rel=1e-7, abs=1e-15)
        assert st.grad_std == pytest.approx(da.std(), rel=1e-9)
        assert st.wgrad_std == pytest.approx(dw.std(), rel=1e-9)
        np.testing.assert_allclose(dW, -0.2 * dw, rtol=1e-9, atol=1e-14)  # sgd, for the record
        assert st.weight_std == pytest.approx(np.std(w), rel=1e-12)
        assert st.update_ratio == pytest.approx(np.linalg.norm(dW) / np.linalg.norm(w), rel=1e-9)
        assert st.zero_fraction == pytest.approx(np.mean(np.abs(a) < 1e-3))
        assert st.sign_agreement == pytest.approx(my_sign_agreement(dw), rel=1e-12)
        assert st.unit_similarity == pytest.approx(my_unit_similarity(w), rel=1e-9, abs=1e-12)
        assert st.saturated_fraction == 0.0
        # histograms: fixed edges, outliers into the end bins
        bins = activation_bins(st.kind)
        np.testing.assert_array_equal(st.act_edges, bins.edges)
        want, _ = np.histogram(np.clip(a, bins.lo, bins.hi), bins=np.linspace(bins.lo, bins.hi, bins.count + 1))
        np.testing.assert_array_equal(st.act_hist, want)
        assert st.act_hist.sum() == B * a.shape[1]
        tg = SYMLOG_BINS.transform(da)
        want, _ = np.histogram(np.clip(tg, SYMLOG_BINS.lo, SYMLOG_BINS.hi),
                               bins=np.linspace(SYMLOG_BINS.lo, SYMLOG_BINS.hi, SYMLOG_BINS.count + 1))
        np.testing.assert_array_equal(st.grad_hist, want)
        assert st.weight_hist.sum() == w.size and st.update_hist.sum() == w.size
        np.testing.assert_array_equal(st.value_edges, SYMLOG_BINS.edges)
    # dead units: relu' = 0 (z <= 0) on every example of the probe set, with the parameters now
    n_probe = probe_size(sim.network, X.shape[0], sim.trainer.batch_size)
    _, zs_now, _, _, _ = numpy_pass(after, X[:n_probe], y[:n_probe], (16, 16))
    for l in (1, 2):
        assert snap.layers[l - 1].dead_fraction == pytest.approx(np.mean(np.all(zs_now[l - 1] <= 0, axis=0)))
    assert snap.layers[2].dead_fraction == 0.0


def test_update_ratio_is_of_the_last_step_even_in_a_multi_step_call():
    a = make(model={"dropout": 0.2})
    a.step(4)
    w4 = {l: a.network.param(f"W{l}").copy() for l in (1, 2, 3)}
    a.step(1)
    b = make(model={"dropout": 0.2})
    b.step(5)  # one compiled chunk of 5 steps
    for l, st in zip((1, 2, 3), b.snapshot().layers):
        w5 = b.network.param(f"W{l}")
        want = np.linalg.norm(w5 - w4[l]) / np.linalg.norm(w5)
        assert st.update_ratio == pytest.approx(want, rel=1e-9)
        assert a.snapshot().layers[l - 1].update_ratio == pytest.approx(want, rel=1e-9)
        assert st.weight_std == pytest.approx(np.std(w5), rel=1e-12)


def test_zero_init_never_breaks_symmetry_but_kaiming_does():
    z = make(model={"init": "zeros"})
    z.step(50)
    k = make(model={"init": "kaiming"})
    k.step(50)
    zs, ks = z.snapshot(), k.snapshot()
    for l in (1, 2):
        assert zs.layers[l - 1].unit_similarity == 1.0
        assert abs(ks.layers[l - 1].unit_similarity) < 0.2
        assert ks.layers[l - 1].unit_similarity == pytest.approx(
            my_unit_similarity(k.network.param(f"W{l}")), rel=1e-9, abs=1e-12)


def test_sign_agreement_positive_inputs_vs_centred_inputs():
    pos = make(data={"kind": "positive-blobs", "dim": 8}, train={"batch_size": 1})
    assert pos.data.X_train.min() > 0
    pos.step(20)
    st = pos.snapshot().layers[0]
    # batch 1: dW1 = x^T dz, every input > 0, so each unit's gradients share the sign of its dz
    assert st.sign_agreement == 1.0
    cen = make(data={"kind": "gaussians", "dim": 8}, train={"batch_size": 64})
    cen.step(20)
    st = cen.snapshot().layers[0]
    assert st.sign_agreement < 0.8
    assert st.sign_agreement == pytest.approx(my_sign_agreement(cen.network.grad("W1")), rel=1e-12)


def test_dead_relus_after_absurd_lr_but_not_leaky():
    relu = make(train={"lr": 10.0})
    relu.step(10)
    leaky = make(model={"activation": "leaky_relu"}, train={"lr": 10.0})
    leaky.step(10)
    assert not relu.diverged
    assert relu.snapshot().layers[0].dead_fraction > 0.5
    assert make().snapshot().layers[0].dead_fraction < 0.2  # at initialisation, few are dead
    for st in leaky.snapshot().layers:
        assert st.dead_fraction == 0.0  # f'(z) >= alpha = 0.01 everywhere: never dead


def test_tanh_saturates_with_large_normal_init():
    sim = make(model={"activation": "tanh", "init": "normal", "init_scale": 5.0})
    sim.step(5)
    snap = sim.snapshot()
    assert snap.layers[1].saturated_fraction > 0.5
    calm = make(model={"activation": "tanh", "init": "xavier"})
    calm.step(5)
    assert calm.snapshot().layers[1].saturated_fraction < 0.1


def test_tanh_saturated_fraction_matches_numpy():
    sim = make(model={"activation": "tanh", "init": "normal", "init_scale": 5.0}, train={"batch_size": 10_000})
    before = params_of(sim)
    sim.step(1)
    _, _, outs, _, _ = numpy_pass(before, sim.data.X_train, sim.data.y_train, (16, 16), act=np.tanh,
                                  dact=lambda z: 1 - np.tanh(z) ** 2)
    snap = sim.snapshot()
    for l in (1, 2):
        assert snap.layers[l - 1].saturated_fraction == pytest.approx(np.mean(np.abs(outs[l - 1]) > 0.99))
        hist = snap.layers[l - 1].act_hist
        assert hist.sum() == outs[l - 1].size and len(hist) == len(snap.layers[l - 1].act_edges) - 1


def test_histograms_cover_every_value_with_batch_and_dropout():
    sim = make(model={"dropout": 0.3, "batchnorm": True}, train={"batch_size": 32})
    sim.step(7)
    for st in sim.snapshot().layers:
        assert st.act_hist.sum() == 32 * st.width
        assert st.grad_hist.sum() == 32 * st.width
        w = sim.network.param(f"W{st.index}")
        assert st.weight_hist.sum() == w.size == st.update_hist.sum()
        assert st.act_hist.dtype.kind == "i"


def test_snapshot_before_any_step():
    sim = make()
    snap = sim.snapshot()
    assert snap.step == 0 and np.isnan(snap.loss) and len(snap.layers) == 3
    assert snap.lr == pytest.approx(0.1)
    for st in snap.layers:
        assert st.weight_std == pytest.approx(np.std(sim.network.param(f"W{st.index}")), rel=1e-12)


@pytest.mark.parametrize("model", [VARIANTS["plain"], VARIANTS["bn+dropout+dropconnect"]],
                         ids=["plain", "bn+dropout+dropconnect"])
def test_snapshots_never_change_the_run(model):
    watched = make(model=model)
    watched.snapshot()  # before the first step (a gradient pass on the probe set)
    for _ in range(60):
        watched.step(1)
        watched.snapshot()
    blind = make(model=model)
    blind.step(60)
    assert_same_run(watched, blind)


def test_snapshot_history_and_scalars():
    sim = make()
    sim.step(120)
    snap = sim.snapshot()
    h = sim.history.arrays()
    assert snap.step == 120 and snap.loss == h["loss"][-1] and snap.val_acc == h["val_acc"][-1]
    np.testing.assert_array_equal(h["val_step"], [0, 50, 100])
    for name in SERIES:
        np.testing.assert_array_equal(snap.history[name], h[name])
    assert sim.snapshot() is snap  # cached until the next step
    sim.step(1)
    assert sim.snapshot() is not snap


def test_weight_trace_records_the_zigzag_path():
    """Two weights into one unit, traced every step: with all-positive inputs and batch 1 they
    always move in the same direction; with centred inputs they do not."""
    def path(preprocess):
        sc = Scenario.model_validate({"data": {"kind": "positive-blobs", "n": 200, "dim": 5, "classes": 2,
                                               "preprocess": preprocess},
                                      "model": {"hidden": [8], "activation": "sigmoid"},
                                      "train": {"batch_size": 1, "steps": 60, "lr": 0.1}})
        sim = lab.Simulation(sc)
        w1 = sim.network.param("W1").copy()
        sim.step(60)
        h = sim.history.arrays()
        np.testing.assert_array_equal(h["trace_step"], np.arange(61))
        assert h["w_a"][0] == w1[0, 0] and h["w_b"][0] == w1[1, 0]
        assert h["w_a"][-1] == sim.network.param("W1")[0, 0] and h["w_b"][-1] == sim.network.param("W1")[1, 0]
        moves = np.diff(h["w_a"]) * np.diff(h["w_b"])
        return moves[moves != 0]

    assert np.all(path([]) > 0)
    centred = path(["center"])
    assert np.mean(centred > 0) < 0.9


def test_the_entry_points_fix_the_blas_thread_count_not_the_simulation(tmp_path):
    """GEMM results depend on the BLAS thread count, so every run uses the same one: the CLI
    (and the app, the check workers) cap it; building a Simulation leaves the process alone."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from lab.cli import run_headless
    from lab.engine.threads import DETERMINISTIC_THREADS

    def counts():
        return {info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"}

    with threadpool_limits(limits=2, user_api="blas"):
        make()
        assert counts() == {2}
        run_headless(Scenario.model_validate({"data": {"n": 40}, "model": {"hidden": [4]}, "train": {"steps": 2}}))
        assert counts() == {DETERMINISTIC_THREADS}
