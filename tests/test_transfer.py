"""Transfer learning (lab/transfer): frozen layers, the .npz weights, phases, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from lab.cli import app
from lab.engine.architecture import Architecture
from lab.engine.network import Network
from lab.engine.optim import OptimizerConfig
from lab.engine.trainer import Trainer
from lab.errors import LabError, ScenarioError
from lab.scenario.load import load_scenario
from lab.scenario.schema import Scenario
from lab.sim.run import run
from lab.sim.simulation import Simulation
from lab.transfer.pretrain import ensure_pretrained, fingerprint, source_shapes
from lab.transfer.weights import load_weights, save_weights
from tests.gradcheck import eval_numerical_gradient, rel_error

runner = CliRunner()


def tiny(tmp_path, **transfer) -> dict:
    """A small transfer scenario: parts data, classes 0-3 as the source, 4-5 as the target."""
    return {"scenario": {"name": "tiny transfer", "seed": 0},
            "data": {"kind": "parts", "n": 600, "classes": 6, "dim": 32, "noise": 0.3,
                     "preprocess": ["center", "normalize"]},
            "model": {"hidden": [12, 10], "activation": "relu", "init": "kaiming"},
            "train": {"optimizer": "momentum", "lr": 0.05, "batch_size": 16, "steps": 60, "eval_every": 20,
                      "weight_decay": 0.01, "l2": 0.001},
            "transfer": {"source_classes": [0, 1, 2, 3], "target_classes": [4, 5], "labels_per_class": 5,
                         "source_steps": 200, "pretrained": str(tmp_path / "src-{seed}.npz"), **transfer}}


def sc_of(raw: dict) -> Scenario:
    return Scenario.model_validate(raw)


# -- freezing ------------------------------------------------------------------------------------
def test_frozen_layers_stay_bit_identical_and_their_update_ratio_is_zero(tmp_path):
    sim = Simulation(sc_of(tiny(tmp_path, phase="fine-tune", freeze=1)))
    before = {n: v.copy() for n, v in sim.network.parameters()}
    sim.step(60)
    after = dict(sim.network.parameters())
    assert np.array_equal(after["W1"], before["W1"]) and np.array_equal(after["b1"], before["b1"])
    assert not np.array_equal(after["W2"], before["W2"]) and not np.array_equal(after["W3"], before["W3"])
    ratios = [layer.update_ratio for layer in sim.snapshot().layers]
    assert ratios[0] == 0.0 and ratios[1] > 0 and ratios[2] > 0
    assert sim.snapshot().settings["transfer"]["frozen"] == 1


def test_feature_extraction_freezes_every_hidden_layer_then_an_event_unfreezes(tmp_path):
    raw = tiny(tmp_path, phase="feature-extraction")
    raw["events"] = [{"at": 30, "set": {"phase": "fine-tune"}}]
    sim = Simulation(sc_of(raw))
    body = {n: v.copy() for n, v in sim.network.parameters() if n[-1] in "12"}
    sim.step(30)
    assert all(np.array_equal(sim.network.param(n), v) for n, v in body.items())
    snap = sim.snapshot()  # the event at 30 has applied: fine-tune, nothing frozen, lr x0.1
    assert snap.settings["transfer"]["frozen"] == 0 and snap.settings["transfer"]["phase"] == "fine-tune"
    lrs = sim.history.series["lr"].values()
    assert lrs[0] == pytest.approx(0.05) and snap.lr == pytest.approx(0.005)
    sim.step(30)
    assert not np.array_equal(sim.network.param("W1"), body["W1"])
    assert sim.history.series["lr"].values()[-1] == pytest.approx(0.005)


def test_a_frozen_step_matches_a_plain_numpy_update_of_the_trained_layers():
    """One SGD step with layer 1 frozen and gradient clipping, against numpy: the frozen
    parameters are untouched, the others move by -lr * g * clip / ||g of the trained ones||."""
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((24, 5)), rng.integers(0, 3, 24)
    net = Network(Architecture(input_dim=5, classes=3, hidden=(7, 6), activation="tanh"), np.float64)
    net.initialize("xavier", np.random.default_rng(1))
    start = net.params.copy()
    _, grads = net.loss_and_grads(X, y)
    trainer = Trainer(net, X, y, 24, OptimizerConfig("sgd", clip_norm=0.05), np.random.default_rng(0))
    trainer.freeze(1)
    trainer.run(np.array([0.1]))
    names = [n for n, _ in net.parameters()]
    trained = np.concatenate([g.ravel() for n, g in zip(names, grads) if not n.endswith("1")])
    scale = min(1.0, 0.05 / np.linalg.norm(trained))
    assert scale < 1.0  # the clip is active: the norm is the trained layers' alone
    for name, g in zip(names, grads):
        new, old = net.param(name), start[net._by_name[name].offset:][:g.size].reshape(g.shape)
        if name.endswith("1"):
            assert np.array_equal(new, old)
        else:
            np.testing.assert_allclose(new, old - 0.1 * scale * g, rtol=1e-10, atol=1e-13)
    assert np.all(trainer.last_update[:net._by_name["W2"].offset] == 0)


def test_gradients_are_unchanged_by_freezing():
    """Freezing changes which parameters are updated, never the gradient: loss_and_grads of a
    network with frozen layers still matches centred differences."""
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((6, 4)), rng.integers(0, 3, 6)
    net = Network(Architecture(input_dim=4, classes=3, hidden=(5,), activation="tanh"), np.float64)
    net.initialize("xavier", np.random.default_rng(2))
    trainer = Trainer(net, X, y, 6, OptimizerConfig("sgd"), np.random.default_rng(0))
    trainer.freeze(1)
    _, grads = net.loss_and_grads(X, y)
    for (name, value), g in zip(net.parameters(), grads):
        num = eval_numerical_gradient(lambda _: net.loss_and_grads(X, y)[0], value)
        assert rel_error(g, num) < 1e-6, name


# -- weights files ---------------------------------------------------------------------------------
def test_npz_round_trip_is_exact(tmp_path):
    params = {"W1": np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32),
              "b1": np.arange(4, dtype=np.float32)}
    path = save_weights(tmp_path / "w.npz", params, fingerprint="abc", source_classes=[1, 2])
    with np.load(path) as f:  # a plain numpy file a user can open
        assert set(f.files) == {"W1", "b1", "fingerprint", "source_classes"}
    loaded, fp = load_weights(path, {"W1": (3, 4), "b1": (4,)})
    assert fp == "abc"
    for name, value in params.items():
        assert loaded[name].dtype == value.dtype and np.array_equal(loaded[name], value)


@pytest.mark.parametrize("make, words", [
    (lambda p: np.savez(p, W1=np.zeros((3, 5)), b1=np.zeros(4)), ["W1 has shape (3, 5)", "needs (3, 4)"]),
    (lambda p: np.savez(p, W1=np.zeros((3, 4))), ["missing array(s) b1"]),
    (lambda p: p.write_text("W1 = 1\n"), ["not an .npz file"]),
    (lambda p: np.savez(p, W1=np.full((3, 4), np.nan), b1=np.zeros(4)), ["W1 holds non-finite"]),
])
def test_bad_weight_files_give_clear_errors(tmp_path, make, words):
    path = tmp_path / "bad.npz"
    make(path)
    with pytest.raises(LabError) as err:
        load_weights(path, {"W1": (3, 4), "b1": (4,)})
    assert str(path) in str(err.value) and all(w in str(err.value) for w in words)


def test_a_scenario_with_a_bad_weights_file_exits_2(tmp_path):
    raw = tiny(tmp_path)
    np.savez(tmp_path / "src-0.npz", W1=np.zeros((2, 2)))
    toml = tmp_path / "bad.toml"
    toml.write_text(_toml(raw))
    result = runner.invoke(app, ["run", str(toml), "--headless"])
    assert result.exit_code == 2, result.output
    assert "missing array(s)" in result.output


# -- pretraining and determinism -----------------------------------------------------------------
def test_same_seed_same_bits_whether_the_weights_were_just_made_or_loaded(tmp_path):
    sc = sc_of(tiny(tmp_path, phase="feature-extraction"))
    path = tmp_path / "src-0.npz"
    first = run(sc, timeline=False).sim
    assert path.exists() and "saved" in first.transfer.origin
    second = run(sc, timeline=False).sim
    assert "loaded" in second.transfer.origin
    for key in ("loss", "val_acc", "val_loss", "source_val_acc"):
        assert np.array_equal(first.history.series[key].values(), second.history.series[key].values()), key
    assert np.array_equal(first.network.params, second.network.params)


def test_the_file_holds_the_source_networks_named_arrays(tmp_path):
    sc = sc_of(tiny(tmp_path))
    weights, _ = ensure_pretrained(sc, 0)
    with np.load(tmp_path / "src-0.npz") as f:
        assert {"W1", "b1", "W2", "b2", "W3", "b3"} <= set(f.files)
        assert f["W3"].shape == (10, 4)  # the source head: 4 source classes
        assert str(f["fingerprint"]) == fingerprint(sc, 0)
    assert set(source_shapes(sc, 0)) == {"W1", "b1", "W2", "b2", "W3", "b3"}


def test_a_file_made_for_other_settings_is_kept_and_the_source_pretrained_afresh(tmp_path):
    raw = tiny(tmp_path)
    ensure_pretrained(sc_of(raw), 0)
    made = (tmp_path / "src-0.npz").read_bytes()
    raw["transfer"]["source_steps"] = 40
    weights, origin = ensure_pretrained(sc_of(raw), 0)
    assert "other settings" in origin and (tmp_path / "src-0.npz").read_bytes() == made
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    raw["transfer"]["pretrained"] = str(fresh / "w.npz")
    again, _ = ensure_pretrained(sc_of(raw), 0)
    assert all(np.array_equal(weights[k], again[k]) for k in weights)


def test_source_val_acc_is_the_pretrained_accuracy_while_frozen_and_nan_from_scratch(tmp_path):
    sc = sc_of(tiny(tmp_path, phase="feature-extraction"))
    sim = run(sc, timeline=False).sim
    acc = sim.history.series["source_val_acc"].values()
    assert np.all(acc == acc[0]) and 0.5 < acc[0] <= 1.0
    from lab.transfer.pretrain import SourceSimulation

    source = SourceSimulation(sc, 0, timeline_capacity=0)
    run(source, 200)
    assert source.history.series["val_acc"].last() == acc[0]
    scratch = run(sc_of(tiny(tmp_path, start="scratch")), timeline=False).sim
    assert np.all(np.isnan(scratch.history.series["source_val_acc"].values()))


def test_source_val_acc_is_a_checkable_metric(tmp_path):
    raw = tiny(tmp_path, phase="fine-tune", lr_factor=1.0)
    raw["expect"] = [{"metric": "source_val_acc", "at": "initial", "op": ">", "value": 0.5}]
    toml = tmp_path / "c.toml"
    toml.write_text(_toml(raw))
    result = runner.invoke(app, ["check", str(toml)])
    assert result.exit_code == 0, result.output


# -- validation ----------------------------------------------------------------------------------
@pytest.mark.parametrize("change, words", [
    ({"transfer": {"source_classes": [0, 1], "target_classes": [1, 2]}}, "share class(es) [1]"),
    ({"transfer": {"source_classes": [0, 9]}}, "class 9 does not exist"),
    ({"transfer": {"freeze": 3}}, "transfer.freeze: 3 layers"),
    ({"transfer": {"pretrained": "w.txt"}}, "must name an .npz file"),
    ({"transfer": {"pretrained": "w-{run}.npz"}}, "only placeholder allowed is {seed}"),
    ({"transfer": {"phase": "warm-up"}}, "phase"),
    ({"transfer": None, "events": [{"at": 1, "set": {"freeze": 1}}]}, "need a [transfer] table"),
])
def test_bad_transfer_tables_are_refused_clearly_with_exit_2(tmp_path, change, words):
    raw = tiny(tmp_path)
    for key, value in change.items():
        if value is None:
            raw.pop(key)
        elif isinstance(value, dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    toml = tmp_path / "bad.toml"
    toml.write_text(_toml(raw))
    with pytest.raises(ScenarioError) as err:
        load_scenario(toml)
    assert words in str(err.value)
    assert runner.invoke(app, ["check", str(toml)]).exit_code == 2


def test_a_relative_weights_file_is_beside_the_scenario(tmp_path):
    raw = tiny(tmp_path)
    raw["transfer"]["pretrained"] = "w-{seed}.npz"
    toml = tmp_path / "s.toml"
    toml.write_text(_toml(raw))
    sc = load_scenario(toml)
    assert sc.transfer.pretrained == str(tmp_path / "w-{seed}.npz")


def test_the_memory_estimate_counts_pretraining_and_the_source_task(tmp_path):
    from lab.scenario.budget import estimate

    phases = [p.name for p in estimate(sc_of(tiny(tmp_path)))[0].phases]
    assert any(p.startswith("pretraining the source task") for p in phases)
    training = [p for p in estimate(sc_of(tiny(tmp_path)))[0].phases if p.name == "training"][0]
    assert any("source validation rows" in t.what for t in training.terms)


def test_freeze_and_lr_factor_are_on_the_fly_changes_recorded_for_replay(tmp_path):
    sc = sc_of(tiny(tmp_path, phase="fine-tune"))
    sim = Simulation(sc)
    sim.step(20)
    sim.set(freeze=2, lr_factor=0.5)
    sim.step(20)
    replay = Simulation(sim.scenario_with_events())
    replay.run_to(40)
    assert np.array_equal(replay.network.params, sim.network.params)
    assert sim.snapshot().settings["transfer"]["frozen"] == 2
    with pytest.raises(LabError):
        Simulation(sc_of({k: v for k, v in tiny(tmp_path).items() if k != "transfer"})).set(freeze=1)


def _toml(raw: dict) -> str:
    """A scenario dict as TOML (tables of values, arrays of tables), valid or not."""
    from lab.scenario.dump import toml_value

    def inline(v):
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {inline(x)}" for k, x in v.items()) + " }"
        return toml_value(v)

    lines = []
    for name, table in raw.items():
        for entry in table if isinstance(table, list) else [table]:
            lines.append(f"[[{name}]]" if isinstance(table, list) else f"[{name}]")
            lines += [f"{k} = {inline(v)}" for k, v in entry.items()]
    return "\n".join(lines) + "\n"


def test_too_few_rows_for_the_labels_per_class_is_a_clear_error(tmp_path):
    raw = tiny(tmp_path, labels_per_class=60)  # 600 rows / 6 classes: 100 a class, ~100 each target class
    raw["transfer"]["labels_per_class"] = 200
    with pytest.raises(LabError, match=r"target class 4 has \d+ row\(s\); 200 labelled rows per class"):
        Simulation(sc_of(raw))


def test_a_file_made_for_another_network_is_not_an_error_but_a_user_file_of_wrong_shape_is(tmp_path):
    raw = tiny(tmp_path)
    ensure_pretrained(sc_of(raw), 0)
    raw["model"]["hidden"] = [6, 10]  # other shapes: the file (this lab's, fingerprinted) is for another network
    _, origin = ensure_pretrained(sc_of(raw), 0)
    assert "other settings" in origin
    np.savez(tmp_path / "src-0.npz", W1=np.zeros((32, 12)), b1=np.zeros(12), W2=np.zeros((6, 10)),
             b2=np.zeros(10), W3=np.zeros((10, 4)), b3=np.zeros(4))  # made elsewhere: checked
    with pytest.raises(LabError, match=r"W1 has shape \(32, 12\), the network needs \(32, 6\)"):
        ensure_pretrained(sc_of(raw), 0)
