"""The per-layer timeline: every layer's statistics recorded at a fixed cadence of training
steps, bounded (thinned when full, so it spans step 0 to now), exact (a record is what
layer_stats says of a fresh replay to its step), independent of chunking, shared by
Snapshots without copies, and exported as CSV beside the history."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from lab.metrics import LAYER_METRICS
from lab.report.export import LAYER_COLUMNS, _write_rows, layers_path, write_run_csv
from lab.scenario.schema import Scenario
from lab.sim import Simulation
from lab.sim.history import TIMELINE_CAPACITY, LayerTimeline, starting_cadence
from lab.sim.snapshot import LayerStats, Record
from lab.sim.stats import layer_stats

ARRAYS = ("act_hist", "act_edges", "grad_hist", "grad_edges", "weight_hist", "update_hist", "value_edges")


def scenario(steps: int = 300, model=None, events=(), train=None) -> Scenario:
    m = {"hidden": [16, 16], "dtype": "float64"}
    m.update(model or {})
    t = {"steps": steps, "eval_every": 50}
    t.update(train or {})
    return Scenario.model_validate({"scenario": {"seed": 0, "name": "timeline"},
                                    "data": {"kind": "spiral", "n": 200}, "model": m, "train": t,
                                    "events": list(events)})


def same_value(a, b) -> bool:
    return (a == b) or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def assert_same_layers(a: tuple[LayerStats, ...], b: tuple[LayerStats, ...], where: str = "") -> None:
    assert len(a) == len(b), where
    for sa, sb in zip(a, b):
        for name in ("index", "name", "kind", "width", *LAYER_METRICS):
            assert same_value(getattr(sa, name), getattr(sb, name)), f"{where} layer {sa.index} {name}"
        for name in ARRAYS:
            np.testing.assert_array_equal(getattr(sa, name), getattr(sb, name), err_msg=f"{where} {name}")


def assert_same_timeline(a, b) -> None:
    np.testing.assert_array_equal(a.steps, b.steps)
    assert a.every == b.every
    for ra, rb in zip(a.records, b.records):
        assert_same_layers(ra.layers, rb.layers, f"step {ra.step}")


# -- the cadence and its bound --------------------------------------------------------------------------
@pytest.mark.parametrize("steps,every", [(1, 1), (100, 1), (255, 1), (256, 2), (300, 2), (600, 3), (1000, 4),
                                         (2000, 8), (5000, 20), (1_000_000, 4000), (997, 4)])
def test_starting_cadence_fits_the_run_in_the_capacity(steps, every):
    assert starting_cadence(steps, TIMELINE_CAPACITY) == every
    assert steps // every + 1 <= TIMELINE_CAPACITY  # a run of train.steps never thins
    assert steps // every + 1 > min(steps, TIMELINE_CAPACITY // 4)  # ...and fills a good part of it


def test_a_long_run_keeps_at_most_capacity_records_spanning_step_0_to_now():
    sim = Simulation(scenario(steps=100, model={"dtype": "float32"}))  # cadence 1 at first
    sim.step(100_000)
    tl = sim.snapshot().timeline
    assert tl.capacity == TIMELINE_CAPACITY and TIMELINE_CAPACITY // 2 <= len(tl) <= TIMELINE_CAPACITY
    steps = tl.steps
    assert steps[0] == 0 and 100_000 - tl.every < steps[-1] <= 100_000  # from step 0 to the latest record step
    assert np.all(np.diff(steps) == tl.every) and tl.every > 1  # evenly spaced, thinned several times
    assert len(sim.layer_timeline) == len(tl)


def test_thinning_keeps_every_other_record_with_its_exact_values():
    sim = Simulation(scenario(steps=70), timeline_capacity=8)  # records at 0, 10, ..., 70: full
    sim.step(70)
    before = sim.snapshot().timeline
    assert before.every == 10 and list(before.steps) == list(range(0, 71, 10))
    copies = {r.step: [{n: np.array(getattr(s, n)) for n in ARRAYS} | {m: s.metric(m) for m in LAYER_METRICS}
                       for s in r.layers] for r in before.records}

    sim.step(10)  # step 80 is due: keep 0, 20, 40, 60, then record 80, every 20 steps from now on
    after = sim.snapshot().timeline
    assert after.every == 20 and list(after.steps) == [0, 20, 40, 60, 80]
    for r in after.records[:-1]:
        assert r is before.records[r.step // 10]  # the very record, not a recomputation
        for s, kept in zip(r.layers, copies[r.step]):
            for name in ARRAYS:
                np.testing.assert_array_equal(getattr(s, name), kept[name])
            for name in LAYER_METRICS:
                assert same_value(s.metric(name), kept[name])

    sim.step(1000)
    tl = sim.snapshot().timeline
    assert len(tl) <= 8 and tl.steps[0] == 0 and 1080 - tl.every < tl.steps[-1] <= 1080


def test_layer_timeline_alone():
    tl = LayerTimeline(capacity=4, every=1)
    for step in range(5):
        assert tl.due(step)
        tl.add(Record(step, ()))
    assert [r.step for r in tl.freeze().records] == [0, 2, 4] and tl.every == 2  # thinned at step 4
    assert not tl.due(5) and tl.steps_to_next(5) == 1
    frozen = tl.freeze()
    assert tl.freeze() is frozen  # cached until a change
    again = Record(4, ())
    tl.add(again)  # a second record of the latest step replaces it
    assert tl.freeze().records[-1] is again and len(tl) == 3
    with pytest.raises(ValueError):
        tl.add(Record(2, ()))
    off = LayerTimeline(capacity=0)
    off.add(Record(0, ()))
    assert not off.recording and len(off.freeze()) == 0 and off.freeze().every == 0


# -- exactness -------------------------------------------------------------------------------------------------
VARIANTS = {"plain": {}, "dropout+batchnorm": {"dropout": 0.3, "batchnorm": True}}


@pytest.mark.parametrize("model", VARIANTS.values(), ids=VARIANTS.keys())
def test_the_timeline_does_not_depend_on_chunking_and_never_changes_the_run(model):
    events = [{"at": 101, "set": {"lr": 0.3}}, {"at": 150, "set": {"activation": "tanh"}}]
    whole = Simulation(scenario(model=model, events=events))
    whole.step(300)
    ones = Simulation(scenario(model=model, events=events))
    for _ in range(300):
        ones.step(1)
        if ones.step_count % 7 == 0:
            ones.snapshot()  # a snapshot between steps changes nothing either
    sevens = Simulation(scenario(model=model, events=events))
    while sevens.step_count < 300:
        sevens.step(min(7, 300 - sevens.step_count))
    reference = whole.snapshot().timeline
    assert list(reference.steps) == list(range(0, 301, 2))
    for other in (ones, sevens):
        assert_same_timeline(reference, other.snapshot().timeline)
    blind = Simulation(scenario(model=model, events=events), timeline_capacity=0)
    blind.step(300)
    assert len(blind.snapshot().timeline) == 0
    for name in ("loss", "train_acc", "grad_norm", "val_loss"):
        np.testing.assert_array_equal(whole.history.arrays()[name], blind.history.arrays()[name], err_msg=name)
    np.testing.assert_array_equal(whole.network.params, blind.network.params)


def test_a_record_is_what_layer_stats_says_of_a_fresh_replay_to_its_step():
    events = [{"at": 100, "set": {"activation": "tanh"}}, {"at": 151, "set": {"lr": 0.5}}]
    sc = scenario(events=events, model={"dropout": 0.2})
    sim = Simulation(sc)
    sim.step(300)
    tl = sim.snapshot().timeline
    for step in (0, 2, 100, 150, 152, 300):
        record = tl.at(step)
        assert record.step == step
        fresh = Simulation(sc, timeline_capacity=0)
        fresh.run_to(step)
        with np.errstate(all="ignore"):
            expected = layer_stats(fresh.network, fresh.trainer.last_update, fresh._probe_x, fresh._probe_y,
                                   fresh.trainer.batch_size)
        assert_same_layers(record.layers, expected, f"step {step}")
    assert tl.at(100).layers[0].kind == "tanh" and tl.at(98).layers[0].kind == "relu"  # after the step's event


def test_a_change_at_a_record_step_re_records_it_so_the_saved_session_replays_the_same_timeline():
    sim = Simulation(scenario())
    sim.step(100)
    first = sim.snapshot().timeline.records[-1]  # step 100, taken by this snapshot
    assert first.step == 100 and first.layers[0].kind == "relu"
    sim.set(activation="tanh")
    sim.step(51)
    sim.set(lr=0.3)  # step 151: not a record step
    sim.step(49)
    tl = sim.snapshot().timeline
    assert tl.at(100) is not first and tl.at(100).layers[0].kind == "tanh"  # the state training went on from
    replay = Simulation(sim.scenario_with_events())
    replay.step(200)
    assert_same_timeline(tl, replay.snapshot().timeline)


def test_a_diverging_run_records_up_to_its_divergence_and_on_after_a_recovery():
    sim = Simulation(scenario(model={"loss": "mse", "activation": "tanh"}, train={"lr": 100.0}))
    sim.step(300)
    assert sim.diverged and sim.diverged_at < 300
    tl = sim.snapshot().timeline
    assert tl.steps[0] == 0 and sim.diverged_at - tl.every < tl.steps[-1] <= sim.diverged_at
    sim.set(init="kaiming", lr=0.01)
    sim.step(300 - sim.step_count)
    tl = sim.snapshot().timeline
    assert list(tl.steps) == list(range(0, 301, 2))  # no record step skipped


# -- sharing ----------------------------------------------------------------------------------------------------
def test_snapshots_share_the_records_and_their_arrays_are_read_only():
    sim = Simulation(scenario())
    a = sim.snapshot()
    assert [r.step for r in a.timeline.records] == [0]
    assert a.timeline.records[0].layers is a.layers  # the snapshot at a record step reuses the record's stats
    sim.step(1)  # step 1 is not a record step (every 2)
    b = sim.snapshot()
    assert b.timeline is a.timeline  # nothing new: the same immutable timeline, not a copy
    sim.step(1)
    c = sim.snapshot()
    assert len(c.timeline) == 2 and c.timeline.records[0] is a.timeline.records[0]
    with pytest.raises(ValueError):
        c.timeline.records[0].layers[0].act_hist[0] = 1  # shared, so read-only


def test_layer_frames_end_with_the_live_statistics_when_newer_than_the_last_record():
    sim = Simulation(scenario())
    sim.step(5)  # records at 0, 2, 4; live at 5
    snap = sim.snapshot()
    frames = snap.layer_frames()
    assert [step for step, _ in frames] == [0, 2, 4, 5] and frames[-1][1] is snap.layers
    sim.step(1)
    assert [step for step, _ in sim.snapshot().layer_frames()] == [0, 2, 4, 6]


# -- CSV ----------------------------------------------------------------------------------------------------------
def test_the_layers_csv_holds_every_layer_at_every_recorded_step(tmp_path):
    sim = Simulation(scenario())
    sim.step(45)
    snap = sim.snapshot()
    (hist_path, hist_rows), (path, rows) = write_run_csv(snap, tmp_path / "run.csv")
    assert hist_path == tmp_path / "run.csv" and hist_rows == 46
    assert path == tmp_path / "run-layers.csv" == layers_path(hist_path)
    with path.open(newline="") as fh:
        table = list(csv.reader(fh))
    assert tuple(table[0]) == LAYER_COLUMNS == ("step", "layer", "kind", "width", *LAYER_METRICS)
    body = table[1:]
    frames = snap.layer_frames()  # records at 0, 2, ..., 44, then the live statistics at 45
    assert [s for s, _ in frames] == [*range(0, 45, 2), 45]
    assert len(body) == rows == len(frames) * 3
    for row, (step, stats) in zip(body, [(step, s) for step, layers in frames for s in layers]):
        assert (int(row[0]), int(row[1]), row[2], int(row[3])) == (step, stats.index, stats.kind, stats.width)
        for name, cell in zip(LAYER_METRICS, row[4:]):
            assert same_value(float(cell), stats.metric(name)), (step, name)  # repr round-trips exactly
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-layers.csv", "run.csv"]  # no temporary left


def test_layers_path_names():
    assert layers_path("out/x-20260101-history.csv").name == "x-20260101-layers.csv"
    assert layers_path("h.csv").name == "h-layers.csv"
    assert layers_path("plain").name == "plain-layers"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("old\n")

    def rows():
        yield [1]
        raise OSError("disk full")

    with pytest.raises(OSError):
        _write_rows(path, ["a"], rows())
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["h.csv"]
