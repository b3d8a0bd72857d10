"""Bad scenario files: every one is rejected with a message a user can act on, and exit code 2.

Each file in tests/data/bad_scenarios/ is one kind of mistake.  The table below says which
words its message must contain: the dotted key, the value found, what is allowed, and the
did-you-mean suggestion where there is one.  A new fixture without a row fails
`test_every_fixture_is_in_the_table`.

Rows may also list `unwanted` spellings (pydantic internals, Python reprs) that must not leak.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

import lab.cli
from lab.errors import ExitCode, ScenarioError
from lab.scenario import Scenario, load_scenario
from lab.scenario.load import parse_scenario

ROOT = Path(__file__).resolve().parents[1]
BAD = Path(__file__).resolve().parent / "data" / "bad_scenarios"

runner = CliRunner()
BUDGET = "2G"  # the memory fixtures' messages say "over the budget of 2 GiB", whatever the machine has


@pytest.fixture(autouse=True)
def _memory_budget(monkeypatch):
    monkeypatch.setenv("NNLAB_MEMORY_BUDGET", BUDGET)

@dataclass(frozen=True)
class Case:
    words: tuple[str, ...]  # each must appear in str(ScenarioError)
    count: int = 1  # number of problems reported
    unwanted: tuple[str, ...] = ()  # must not appear (pydantic internals, Python spellings)


TABLE: dict[str, Case] = {
    # --- not a TOML document -----------------------------------------------------------------
    "syntax_error.toml": Case(("TOML syntax error", "Invalid value", "line 6", "column 6")),
    "duplicate_key.toml": Case(("TOML syntax error", "overwrite", "line 5")),
    "duplicate_table.toml": Case(("TOML syntax error", "twice", "line 5")),
    "empty.toml": Case(("the file is empty", "[scenario] table")),
    "comments_only.toml": Case(("the file is empty", "[scenario] table")),
    "binary_junk.toml": Case(("not a UTF-8 text file", "byte 0", "is this a scenario TOML?")),
    "nul_bytes.toml": Case(("not a text file", "NUL bytes")),
    "deeply_nested.toml": Case(("nested too deeply",)),
    # --- keys and tables -----------------------------------------------------------------------
    "unknown_key.toml": Case(("train.optimiser", "unknown key 'optimiser'", "in [train]", "did you mean 'optimizer'?",
                              "allowed: batch_size, beta1, beta2")),
    "unknown_table.toml": Case(("training", "unknown key 'training' at the top level", "did you mean 'train'?",
                                "allowed: data, ensemble, events, expect, model, scenario, search, train, transfer, "
                                "variants")),
    "wrong_table_type.toml": Case(("model: expected a table", 'found "mlp"', "(a string)")),
    "markup_in_key.toml": Case(("[/x]: unknown key '[/x]' at the top level", "allowed: data")),
    # --- types (strict: no silent conversions) -------------------------------------------------
    "wrong_type.toml": Case(("model.hidden[1]", "expected an integer", 'found "x"', "(a string)")),
    "string_for_number.toml": Case(("train.lr", "expected a number", 'found "0.1"', "(a string)")),
    "float_for_integer.toml": Case(("train.steps", "expected an integer", "found 100.5", "(a float)")),
    "bool_for_integer.toml": Case(("train.batch_size", "expected an integer", "(a boolean)", "found true"),
                                  unwanted=("True",)),
    # --- names with a closed set of values -----------------------------------------------------
    "unknown_activation.toml": Case(("model.activation", "'rleu' is not allowed",
                                     "expected one of sigmoid, tanh, relu, leaky_relu", "did you mean 'relu'?")),
    "unknown_optimizer.toml": Case(("train.optimizer", "'rmsprob' is not allowed",
                                    "sgd, momentum, nesterov, rmsprop, adam, adamw", "did you mean 'rmsprop'?")),
    "unknown_data_kind.toml": Case(("data.kind", "'spirals' is not allowed", "spiral, circles, moons",
                                    "did you mean 'spiral'?")),
    "markup_in_value.toml": Case(("model.activation", "'[bold]relu' is not allowed", "relu")),
    # --- ranges ------------------------------------------------------------------------------------
    "negative_lr.toml": Case(("train.lr", "must be > 0", "found -0.1")),
    "zero_lr.toml": Case(("train.lr", "must be > 0", "found 0.0")),
    "dropout_out_of_range.toml": Case(("model.dropout", "must be < 1", "found 1.0",
                                       "variants[0].set.dropout", "must be >= 0", "found -0.1"), count=2),
    "no_layers.toml": Case(("model.hidden", "needs at least 1 item", "found 0")),
    "too_many_layers.toml": Case(("model.hidden", "at most 64 item", "found 65")),
    "name_control_characters.toml": Case(("scenario.name", "control character U+001B (ESC) at position 1")),
    "variant_name_control_character.toml": Case(("variants[0].name", "control character U+0007 (BEL)")),
    "absurd_sizes.toml": Case(("model.hidden", "about 16,912,531,456 weights; the limit is 200,000,000")),
    # --- events --------------------------------------------------------------------------------
    "event_beyond_steps.toml": Case(("events[0].at", "step 500", "beyond train.steps (100)")),
    "event_missing_set.toml": Case(("events[0].set", "required key is missing")),
    "bad_event_change.toml": Case(("events[0].set.momentun", "unknown key 'momentun'", "did you mean 'momentum'?",
                                   "allowed: activation")),
    "bad_event_value.toml": Case(("events[0].set.lr", "must be > 0", "found -1.0")),
    # --- expectations --------------------------------------------------------------------------
    "expect_unknown_metric.toml": Case(("expect[0].metric", "unknown metric 'val_accuracy'", "did you mean 'val_acc'?",
                                        "scalar: lr, loss", "per layer: n_params, act_mean", "steps_to(train_acc >= 0.9)")),
    "expect_bad_steps_to.toml": Case(("expect[0].metric", "steps_to needs a recorded series", "found 'dead_fraction'",
                                      "train_acc")),
    "expect_unknown_layer.toml": Case(("expect[0].layer", "layer 5 does not exist", "layers 1..3")),
    "expect_layer_missing.toml": Case(("expect[0].layer", "dead_fraction is per layer", "1..3")),
    "expect_layer_not_per_layer.toml": Case(("expect[0].layer", "loss is not a per-layer metric")),
    "expect_unknown_variant.toml": Case(("expect[0].variant", "unknown variant 'lowlr'", "variants: base, low-lr",
                                         "did you mean 'low-lr'?")),
    "expect_conflicting_selectors.toml": Case(("expect[0]", "use only one of at, throughout, reduce",
                                               "found at, throughout")),
    "expect_bad_at.toml": Case(("expect[0].at", '"start"', "an integer or one of initial, final"),
                               unwanted=("expect[0].at.int", "literal[")),
    # --- variants ------------------------------------------------------------------------------
    "duplicate_variant.toml": Case(("variants[1].name", "duplicate variant name 'fast'")),
    # --- cross-field ---------------------------------------------------------------------------
    "residual_bad_widths.toml": Case(("model.hidden", "residual networks need an odd number (>= 3) of equal widths",
                                      "[64, 32, 64]")),
    "augment_non_image.toml": Case(("data.augment", "needs image data", "digits", "not 'spiral'")),
    # --- several at once -----------------------------------------------------------------------
    "many_problems.toml": Case(("scenario.seed", "must be >= 0", "found -1",
                                "data.kind", "did you mean 'spiral'?",
                                "model.hiden", "did you mean 'hidden'?",
                                "model.activation", "did you mean 'relu'?",
                                "train.lr", 'found "0.1"',
                                "train.batch_size", "must be >= 1", "found 0",
                                "6 problems"), count=6),
    "field_and_cross_field_problems.toml": Case(("model.hiden", "did you mean 'hidden'?", "events[0].at",
                                                 "beyond train.steps (100)"), count=2),
    # --- memory: every key in range, the product not (the tests' budget is 2 GiB) --------------------
    "memory_random_normal_20gb.toml": Case(("memory: the base run needs about", "over the budget of 2 GiB",
                                            "NNLAB_MEMORY_BUDGET=2G", "150,000 x 16,384 x 8 B = 18.3 GiB",
                                            "shrink data.n or data.dim")),
    "memory_batch_workspace.toml": Case(("memory: the base run", "batch workspace: 65,536 rows",
                                         "shrink train.batch_size or model.hidden")),
    "memory_near_max_parameters.toml": Case(("memory: the base run", "(building the network)",
                                             "196,656,003 parameters", "shrink model.hidden")),
    "memory_float64_adam.toml": Case(("memory: the base run", "x 41 B", "2 optimizer moments", "shrink model.hidden")),
    "memory_variant_wide.toml": Case(("memory: variant 'wide' (variants[0]) needs about", "shrink model.hidden")),
    "memory_variant_data.toml": Case(("memory: variant 'more-data' (variants[0])", "1,000,000 x 4,096",
                                      "shrink data.n or data.dim")),
    "memory_event_whiten.toml": Case(("memory: the base run", "events[0] (step 10): loading the data",
                                      "whiten: an SVD of 32,000 x 8,000", "leave out pca/whiten")),
    "memory_event_batch_size.toml": Case(("events[0] (step 5): training", "65,536 rows", "shrink train.batch_size")),
    "memory_event_dropconnect.toml": Case(("events[0] (step 5): a new network", "the new network: 144,048,003",
                                           "shrink model.hidden")),
    "memory_pca_svd.toml": Case(("memory: the base run", "pca: an SVD of 24,000 x 12,000", "leave out pca/whiten")),
    "memory_runs_side_by_side.toml": Case(("the 17 runs side by side (the lab's compare view)",
                                           "over the budget of 2 GiB", "use fewer [[variants]]")),
    "memory_expectation_buffers.toml": Case(("nnlab check's record of the claims' series (10,000,000 steps",
                                             "shrink train.steps, or raise train.eval_every")),
    # --- an upper bound on every number (and on lists and strings) -------------------------------------
    "smooth_too_large.toml": Case(("expect[0].smooth", "must be <= 10000", "found 1000000000")),
    "steps_too_many.toml": Case(("train.steps", "must be <= 10000000", "found 10000001")),
    "seed_too_large.toml": Case(("scenario.seed", "must be <= 9007199254740991")),
    "eval_every_too_large.toml": Case(("train.eval_every", "must be <= 10000000", "found 20000000")),
    "noise_too_large.toml": Case(("data.noise", "must be <= 100.0", "found 1000.0")),
    "lr_too_large.toml": Case(("train.lr", "must be <= 1000000000.0", "found 10000000000.0")),
    "weight_decay_too_large.toml": Case(("train.weight_decay", "must be <= 100.0")),
    "warmup_too_large.toml": Case(("train.schedule.warmup", "must be <= 10000000", "found 100000000")),
    "milestone_too_large.toml": Case(("train.schedule.milestones[0]", "must be <= 10000000.0")),
    "schedule_start_too_large.toml": Case(("train.schedule.start", "must be <= 10000000", "found 20000000")),
    "schedule_total_zero.toml": Case(("train.schedule.total", "must be >= 1", "found 0")),
    "pace_too_fast.toml": Case(("scenario.pace", "<= 1000000.0", "found 10000000.0")),
    "pace_too_long.toml": Case(("scenario.pace", "'100000s'", "at most 86400s (a day)")),
    "pace_not_understood.toml": Case(("scenario.pace", "'fast' is not understood", "\"30s\"", "\"max\"")),
    "pca_components_too_large.toml": Case(("data.pca_components", "must be <= 16384", "found 20000")),
    "shift_too_large.toml": Case(("data.shift", "must be <= 1000000.0")),
    "scale_factor_too_large.toml": Case(("data.scale[0]", "must be <= 1000000.0", "found 10000000.0")),
    "scale_too_many_factors.toml": Case(("data.scale: at most 16384 item(s) allowed, found 16385",
                                         "16385 factors given, but random-normal data has 16384 features"), count=2),
    "events_too_many.toml": Case(("events: at most 1000 item(s) allowed, found 1001",)),
    "variants_too_many.toml": Case(("variants: at most 16 item(s) allowed, found 17",)),
    "expect_too_many.toml": Case(("expect: at most 256 item(s) allowed, found 257",)),
    "expect_at_too_large.toml": Case(("expect[0].at", "<= 10000000 or one of initial, final", "found 20000000",
                                      "beyond train.steps (1000)"), count=2),
    "expect_at_negative.toml": Case(("expect[0].at", "expected a value >= 0 or one of initial, final", "found -5")),
    "expect_value_too_large.toml": Case(("expect[0].value", "must be <= 1e+300", "found 1e+301")),
    "expect_layer_too_large.toml": Case(("expect[0].layer", "must be <= 65", "layer 100 does not exist"), count=2),
    "expect_tolerance_too_large.toml": Case(("expect[0].tolerance", "must be <= 1e+300")),
    "name_too_long.toml": Case(("scenario.name", "at most 200 characters allowed, found 100,000"),
                               unwanted=("n" * 100,)),
    "explain_too_long.toml": Case(("scenario.explain", "at most 20000 characters allowed, found 25,000")),
    "variant_name_too_long.toml": Case(("variants[0].name", "at most 64 characters allowed, found 65")),
    "variant_empty_name.toml": Case(("variants[0].name", "must not be empty")),
    "batch_size_too_large.toml": Case(("train.batch_size", "must be <= 65536", "found 65537")),
    "init_scale_too_large.toml": Case(("model.init_scale", "must be <= 100.0", "found 1000.0")),
    "bias_init_too_large.toml": Case(("model.bias_init", "must be >= -100.0", "found -1000.0")),
    "alpha_too_large.toml": Case(("model.alpha", "must be <= 10.0", "found 50.0")),
    "augment_noise_too_large.toml": Case(("data.augment.noise", "must be <= 10.0", "found 50.0")),
    "preprocess_too_many_steps.toml": Case(("data.preprocess", "at most 8 item(s) allowed, found 9")),
    "milestones_too_many.toml": Case(("train.schedule.milestones", "at most 64 item(s) allowed, found 65")),
    "width_too_large.toml": Case(("model.hidden[0]", "must be <= 16384", "found 16385")),
    "classes_too_many.toml": Case(("data.classes", "must be <= 1000", "found 1001",
                                   "a spiral of 600 points in 1001 arms"), count=2),
    "n_too_small.toml": Case(("data.n", "must be >= 2", "found 1", "use n > classes"), count=2),
    "val_fraction_too_large.toml": Case(("data.val_fraction", "must be <= 0.9", "found 0.95")),
    "crop_pad_too_large.toml": Case(("data.augment.crop_pad", "must be <= 8", "found 9")),
    "contrast_one.toml": Case(("data.augment.contrast", "must be < 1.0", "found 1.0")),
    "metric_too_long.toml": Case(("expect[0].metric", "at most 200 characters allowed, found 300")),
    "steps_to_threshold_infinite.toml": Case(("expect[0].metric", "steps_to threshold '1e999' is not a finite number")),
    # --- files that raised a traceback while loading -------------------------------------------------
    "integer_4301_digits.toml": Case(("a number has more than 4300 digits", "no scenario key takes a number"),
                                     unwanted=("sys.set_int_max_str_digits", "ValueError")),
    "dotted_keys_5000_deep.toml": Case(("nested more than 16 deep", "a scenario nests at most 6"),
                                       unwanted=("RecursionError",)),
    "table_header_5000_deep.toml": Case(("nested more than 16 deep",)),
    "inline_tables_deep.toml": Case(("nested too deeply",)),
    "data_kind_array_with_scale.toml": Case(("data.kind", '["spiral"] is not allowed', "expected one of spiral",
                                             "did you mean 'spiral'?"), unwanted=("TypeError", "unhashable")),
    "data_kind_table_with_scale.toml": Case(("data.kind", '{ name = "spiral" } is not allowed', "expected one of"),
                                            unwanted=("TypeError", "unhashable")),
    "variant_kind_array.toml": Case(("variants[0].set.kind", '["iris"] is not allowed', "did you mean 'iris'?")),
    # --- files that loaded, then failed while running: caught at load, for the base, variants, events --
    "scale_zero_normalize.toml": Case(("data.scale", "a factor of 0 makes every feature constant")),
    "scale_zero_whiten.toml": Case(("data.scale", "a factor of 0", "whiten would keep no feature")),
    "pca_two_rows.toml": Case(("data.preprocess", "pca needs at least 2 training rows",
                               "data.n = 2 with val_fraction = 0.5 leaves 1")),
    "whiten_spiral_two_points.toml": Case(("data.n", "a spiral of 2 points in 3 arms puts every point at the centre")),
    "gaussians_dim_1.toml": Case(("data.dim", "gaussians data needs dim >= 2", "found 1")),
    "variant_gaussians_dim_1.toml": Case(("variants[0] ('flat'): data.dim", "needs dim >= 2")),
    "event_pca_on_augmented_digits.toml": Case(("events[0] (step 50): data.augment",
                                                "pca/whiten turn images into other features")),
    "event_whiten_in_one_variant.toml": Case(("events[0] (step 50, run 'aug'): data.augment", "pca/whiten")),
    "variant_pca_on_augmented_digits.toml": Case(("variants[0] ('pca'): data.augment", "pca/whiten")),
    "variant_residual_bad_widths.toml": Case(("variants[0] ('res'): model.hidden",
                                              "residual networks need an odd number (>= 3) of equal widths",
                                              "[64, 32, 64]")),
    "variant_residual_even_layers.toml": Case(("variants[0] ('deeper'): model.hidden", "[16, 16, 16, 16]")),
    "variant_augment_non_image.toml": Case(("variants[0] ('aug'): data.augment", "needs image data", "not 'spiral'")),
    "variant_kind_loses_images.toml": Case(("variants[0] ('toy'): data.augment", "not 'spiral'")),
    "scale_length_mismatch.toml": Case(("data.scale", "3 factors given, but spiral data has 2 features")),
    "variant_scale_length_kind.toml": Case(("variants[0] ('iris'): data.scale",
                                            "2 factors given, but iris data has 4 features")),
    "variant_scale_length_dim.toml": Case(("variants[0] ('wider'): data.scale",
                                           "3 factors given, but random-normal data has 4 features")),
    "event_maxout_parameters.toml": Case(("events[0] (step 10): model.hidden", "262,192,000 weights",
                                          "the limit is 200,000,000")),
    "event_only_unknown_run.toml": Case(("events[0].only", "unknown run 'sloow'", "did you mean 'slow'?",
                                         "runs: base, slow")),
    "variant_deep_parameters.toml": Case(("variants[0] ('deep'): model.hidden", "the limit is 200,000,000")),
    # --- a long wrong value is quoted, not echoed whole ---------------------------------------------------
    "huge_wrong_value.toml": Case(("model.activation", "'relurelu", "(50,002 characters) is not allowed",
                                   "expected one of sigmoid")),
    "huge_unknown_key.toml": Case(("unknown key 'kkkk", "(100,002 characters) in [model]", "allowed: activation")),
    "huge_array_value.toml": Case(("train.lr", "expected a number", "(20,000 items)]", "(an array)")),
    # --- more types, names and selectors --------------------------------------------------------------
    "variant_unknown_key.toml": Case(("variants[0].set.hiden", "unknown key 'hiden'", "did you mean 'hidden'?")),
    "expect_by_beyond_steps.toml": Case(("expect[0].by", "step 500 is beyond train.steps (100)")),
    "expect_ratio_and_difference.toml": Case(("expect[0]", "use ratio_over or difference_over, not both")),
    "expect_by_with_at.toml": Case(("expect[0]", "by cannot be combined with at or throughout")),
    "expect_unknown_op.toml": Case(("expect[0].op", "'=>' is not allowed", "<, <=, >, >=, ==, !=")),
    "bool_for_float.toml": Case(("train.lr", "expected a number", "found true (a boolean)")),
    "date_for_number.toml": Case(("train.lr", "expected a number", "found 1979-05-27 (a date)")),
    "inf_lr.toml": Case(("train.lr", "expected a finite number", "found inf")),
    "nan_expect_value.toml": Case(("expect[0].value", "expected a finite number", "found nan")),
    "schedule_as_string.toml": Case(("train.schedule", "expected a table", 'found "cosine" (a string)')),
    "hidden_not_array.toml": Case(("model.hidden", "expected an array", "found 100 (an integer)")),
    "event_only_empty.toml": Case(("events[0].only", "needs at least 1 item(s), found 0")),
    "event_at_negative.toml": Case(("events[0].at", "must be >= 0", "found -1")),
    "preprocess_unknown.toml": Case(("data.preprocess[0]", "'pcaa' is not allowed", "did you mean 'pca'?")),
    "init_unknown.toml": Case(("model.init", "'he' is not allowed", "kaiming")),
    "dtype_unknown.toml": Case(("model.dtype", "'float16' is not allowed", "float32, float64")),
    "loss_unknown.toml": Case(("model.loss", "'crossentropy' is not allowed", "softmax, mse, hinge")),
    "dropout_mode_unknown.toml": Case(("model.dropout_mode", "'inverse' is not allowed", "did you mean 'inverted'?")),
    "augment_unknown_key.toml": Case(("data.augment.flipp", "unknown key 'flipp' in [data.augment]",
                                      "did you mean 'flip'?")),
}


def fixture_files() -> list[str]:
    return sorted(p.name for p in BAD.iterdir() if p.is_file())


def _params(test: str = ""):
    """The table as pytest params."""
    return [pytest.param(name, case, id=name.removesuffix(".toml")) for name, case in sorted(TABLE.items())]


def _error(name: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load_scenario(BAD / name)
    return info.value


def squash(text: str) -> str:
    """Without whitespace: rich wraps long lines at the terminal width."""
    return "".join(text.split())


# --- the table and the folder agree -------------------------------------------------------------

def test_every_fixture_is_in_the_table():
    files = set(fixture_files())
    assert len(files) >= 100
    missing = sorted(files - set(TABLE))
    stale = sorted(set(TABLE) - files)
    assert not missing, f"fixtures without a row in TABLE (add the words their message must contain): {missing}"
    assert not stale, f"rows in TABLE without a fixture file in {BAD}: {stale}"


def test_binary_junk_is_really_not_utf8():
    data = (BAD / "binary_junk.toml").read_bytes()
    assert data.startswith(b"\x89PNG")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")


# --- the loader's message -----------------------------------------------------------------------

@pytest.mark.parametrize("name, case", _params("load"))
def test_message_names_the_file_the_key_the_value_and_what_is_allowed(name, case):
    err = _error(name)
    text = str(err)
    assert err.path.endswith(name)
    assert name in text
    missing = [w for w in case.words if w not in text]
    assert not missing, f"{name}: message lacks {missing}:\n{text}"
    assert len(err.problems) == case.count, text
    assert text.splitlines()[0].endswith(f"{case.count} problem{'s' if case.count != 1 else ''}")
    assert all(p and "\n" not in p for p in err.problems)


@pytest.mark.parametrize("name, case", [p for p in _params() if p.values[1].unwanted])
def test_message_has_no_python_or_pydantic_spellings(name, case):
    text = str(_error(name))
    assert not any(w in text for w in case.unwanted), text


def test_many_problems_reports_each_problem_once():
    err = _error("many_problems.toml")
    keys = [p.split(":", 1)[0] for p in err.problems]
    assert sorted(keys) == sorted(["scenario.seed", "data.kind", "model.hiden", "model.activation", "train.lr",
                                   "train.batch_size"])
    assert str(err).count("\n  - ") == 6


def test_syntax_error_points_at_the_line_with_the_mistake():
    lines = (BAD / "syntax_error.toml").read_text().splitlines()
    assert "= =" in lines[5]  # line 6, as the message says
    assert "line 6" in str(_error("syntax_error.toml"))


def test_unreadable_path_is_a_scenario_error(tmp_path):
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path)  # a folder
    assert "cannot read the file" in str(info.value)
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "missing.toml")
    assert "missing.toml" in str(info.value) and "cannot read the file" in str(info.value)


# Values TOML can spell that are not numbers a lab should train with.
NON_FINITE = [
    ({"train": {"lr": math.inf}}, "train.lr"),
    ({"model": {"bias_init": math.nan}}, "model.bias_init"),
    ({"model": {"init_scale": math.inf}}, "model.init_scale"),
    ({"data": {"noise": math.inf}}, "data.noise"),
    ({"expect": [{"metric": "loss", "op": "<", "value": math.nan}]}, "expect[0].value"),
]


@pytest.mark.parametrize("raw, key", [pytest.param(*c, id=c[1]) for c in NON_FINITE])
def test_non_finite_numbers_are_rejected(raw, key):
    with pytest.raises(ScenarioError) as info:
        parse_scenario(raw, "inline.toml")
    assert key in str(info.value)


def test_nan_learning_rate_is_rejected():
    with pytest.raises(ScenarioError) as info:
        parse_scenario({"train": {"lr": math.nan}}, "inline.toml")
    assert "train.lr" in str(info.value)


# --- through the CLI (in-process) ----------------------------------------------------------------

def _invoke(*args: str):
    result = runner.invoke(lab.cli.app, list(args))
    crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
    return result, crashed


def _cli_params():
    out = []
    for command in ("run", "check"):
        for p in _params(command):
            name, case = p.values
            out.append(pytest.param(command, name, case, id=f"{command}-{p.id}", marks=p.marks))
    return out


@pytest.mark.parametrize("command, name, case", _cli_params())
def test_cli_exits_2_without_traceback(command, name, case):
    result, crashed = _invoke(command, str(BAD / name))
    assert not crashed, f"{command} {name} raised {result.exception!r}"
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "Traceback" not in result.output
    assert name in squash(result.output)


@pytest.mark.parametrize("name, case", _params("run_verbatim"))
def test_cli_run_prints_every_problem_verbatim(name, case):
    result, crashed = _invoke("run", str(BAD / name))
    assert not crashed, repr(result.exception)
    out = squash(result.output)
    for problem in load_problems(name):
        assert squash(problem) in out, f"`nnlab run` garbled {problem!r}:\n{result.output}"


@pytest.mark.parametrize("name, case", _params("load"))
def test_cli_check_prints_every_problem_verbatim(name, case):
    result, crashed = _invoke("check", str(BAD / name))
    assert not crashed, repr(result.exception)
    out = squash(result.output)
    for problem in load_problems(name):
        assert squash(problem) in out, f"`nnlab check` garbled {problem!r}:\n{result.output}"
    assert "1 invalid" in result.output


def load_problems(name: str) -> list[str]:
    try:
        load_scenario(BAD / name)
    except ScenarioError as exc:
        return exc.problems
    raise AssertionError(f"{name} loaded")


def test_cli_check_reports_every_bad_file_in_the_folder():
    result, crashed = _invoke("check", str(BAD / "unknown_key.toml"), str(BAD / "negative_lr.toml"),
                              str(BAD / "binary_junk.toml"))
    assert not crashed, repr(result.exception)
    assert result.exit_code == ExitCode.USAGE
    assert "3 invalid" in result.output
    for name in ("unknown_key.toml", "negative_lr.toml", "binary_junk.toml"):
        assert name in squash(result.output)


# --- through a real process ----------------------------------------------------------------------

def test_python_dash_m_lab_check_exits_2_with_the_message():
    env = {**os.environ, "COLUMNS": "400", "NO_COLOR": "1"}  # (NNLAB_MEMORY_BUDGET=2G from the fixture)
    out = subprocess.run([sys.executable, "-m", "lab", "check", str(BAD / "many_problems.toml")],
                         capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    both = out.stdout + out.stderr
    assert out.returncode == ExitCode.USAGE, both
    assert "Traceback" not in both
    assert "many_problems.toml: 6 problems" in both
    for problem in load_problems("many_problems.toml"):
        assert problem in both


def test_bundled_scenarios_still_load():
    """The fixtures are bad; the shipped curriculum is good (guards the table against a loader that rejects all)."""
    files = sorted((ROOT / "scenarios").glob("*/*.toml"))
    assert files
    for f in files:
        assert isinstance(load_scenario(f), Scenario)
