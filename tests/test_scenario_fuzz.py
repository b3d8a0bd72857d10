"""Fuzz the loader: a mangled scenario file is either a Scenario or a ScenarioError, never a crash.

Start from every bundled scenario (and a few minimal valid ones), apply random edits of
the kinds people and editors make (delete or duplicate a line, swap two characters,
replace a value, insert junk bytes, truncate, misspell a key, flip a number's sign or
scale it), write the bytes to a file and load it.  Loading only: nothing is trained.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from lab.errors import ScenarioError
from lab.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = sorted((ROOT / "scenarios").glob("*/*.toml"))

MINIMAL = [
    b'[scenario]\nname = "minimal"\n',
    b'[scenario]\nname = "tiny"\nseed = 3\n\n[data]\nkind = "moons"\nn = 100\n\n[model]\nhidden = [8, 8]\n'
    b'activation = "tanh"\n\n[train]\noptimizer = "adam"\nlr = 0.01\nsteps = 50\neval_every = 10\n',
    b'[model]\nhidden = [16, 16, 16]\nresidual = true\ndropout = 0.1\n\n[train]\nsteps = 100\n'
    b'schedule = { kind = "step", milestones = [0.5], factor = 0.1 }\n\n'
    b'[[events]]\nat = 50\nset = { lr = 0.01, momentum = 0.5 }\n\n'
    b'[[variants]]\nname = "wide"\nset = { dropout = 0.0 }\n\n'
    b'[[expect]]\nmetric = "dead_fraction"\nlayer = 2\nvariant = "wide"\nop = "<"\nvalue = 0.5\n\n'
    b'[[expect]]\nmetric = "steps_to(train_acc >= 0.9)"\nop = "<"\nvalue = 100\nby = 80\nreduce = "min"\n',
    b'[data]\nkind = "digits"\nn = 300\naugment = { flip = true, cutout = 4 }\n[model]\nhidden = [32]\n',
]
BASES = [p.read_bytes() for p in BUNDLED] + MINIMAL

# Words the schema knows, so that replaced values sometimes pass the type checks and reach the
# cross-field checks.
NAMES = ["relu", "tanh", "maxout", "adam", "sgd", "digits", "spiral", "random-normal", "cosine", "step",
         "initial", "final", "base", "low-lr", "xavier", "inverted", "pca", "dead_fraction", "loss", "val_acc",
         "steps_to(loss <= 0.1)", "steps_to_val_acc(0.9)", ">=", "=="]


def _toml_float(x: float) -> str:
    if x != x:
        return "nan"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    return repr(x)


SCALARS = st.one_of(
    st.integers(-10**20, 10**20).map(str),
    st.sampled_from(["0", "1", "-1", "2", "64", "16384", "10000000", "10000001", "9223372036854775808"]),
    st.floats(allow_nan=True, allow_infinity=True).map(_toml_float),
    st.sampled_from(["0.0", "-0.0", "0.5", "1.0", "1e-8", "1e308", "nan", "inf", "-inf"]),
    st.sampled_from(["true", "false", "1979-05-27", "07:32:00", "1979-05-27T07:32:00Z", "[]", "{}", "[1, 2]",
                     '["relu"]', "[[1]]", '{ lr = 0.1 }', '{ kind = "cosine" }', '""']),
    st.sampled_from(NAMES).map(json.dumps),
    st.text(max_size=12).map(lambda s: json.dumps(s, ensure_ascii=False)),
)

ASSIGNMENT = re.compile(rb"^(\s*[A-Za-z0-9_\"'.-]+\s*=\s*)(.*)$")
KEY = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")
NUMBER = re.compile(rb"(?<![A-Za-z_])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _lines(text: bytes) -> list[bytes]:
    return text.split(b"\n")


@st.composite
def mutation(draw, text: bytes) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["delete_line", "duplicate_line", "swap_chars", "replace_value", "insert_bytes",
                                 "truncate", "change_key", "change_number"]))
    lines = _lines(text)
    if kind == "delete_line":
        i = draw(st.integers(0, len(lines) - 1))
        return kind, b"\n".join(lines[:i] + lines[i + 1:])
    if kind == "duplicate_line":
        i = draw(st.integers(0, len(lines) - 1))
        j = draw(st.integers(0, len(lines)))
        return kind, b"\n".join(lines[:j] + [lines[i]] + lines[j:])
    if kind == "swap_chars" and len(text) >= 2:
        i = draw(st.integers(0, len(text) - 1))
        j = draw(st.one_of(st.just(min(i + 1, len(text) - 1)), st.integers(0, len(text) - 1)))
        b = bytearray(text)
        b[i], b[j] = b[j], b[i]
        return kind, bytes(b)
    if kind == "replace_value":
        candidates = [i for i, line in enumerate(lines) if ASSIGNMENT.match(line)]
        if candidates:
            i = draw(st.sampled_from(candidates))
            head = ASSIGNMENT.match(lines[i]).group(1)
            lines[i] = head + draw(SCALARS).encode("utf-8", "surrogatepass")
            return kind, b"\n".join(lines)
    if kind == "insert_bytes":
        i = draw(st.integers(0, len(text)))
        junk = draw(st.one_of(st.binary(min_size=1, max_size=8),
                              st.sampled_from([b"\x00", b"\xff\xfe", b"\xef\xbb\xbf", b"\r", b"\t", b"[", b"]",
                                               b"\"", b"'''", b"=", b"#", b"\\", b"[[", b"\n[model]\n"])))
        return kind, text[:i] + junk + text[i:]
    if kind == "truncate":
        return kind, text[:draw(st.integers(0, len(text)))]
    if kind == "change_key":
        keys = [m for m in KEY.finditer(text)]
        if keys:
            m = draw(st.sampled_from(keys))
            word = bytearray(m.group())
            op = draw(st.sampled_from(["replace", "delete", "insert", "upper", "swap"]))
            k = draw(st.integers(0, len(word) - 1))
            letter = draw(st.sampled_from(b"abcdefghijklmnopqrstuvwxyz_"))
            if op == "replace":
                word[k] = letter
            elif op == "delete" and len(word) > 1:
                del word[k]
            elif op == "insert":
                word.insert(k, letter)
            elif op == "upper":
                word[k:k + 1] = bytes(word[k:k + 1]).upper()
            elif op == "swap" and k + 1 < len(word):
                word[k], word[k + 1] = word[k + 1], word[k]
            return kind, text[:m.start()] + bytes(word) + text[m.end():]
    if kind == "change_number":
        numbers = [m for m in NUMBER.finditer(text)]
        if numbers:
            m = draw(st.sampled_from(numbers))
            raw = m.group().decode()
            op = draw(st.sampled_from(["negate", "scale", "zero", "fraction", "huge"]))
            if op == "negate":
                new = raw[1:] if raw.startswith("-") else "-" + raw.lstrip("+")
            elif op == "scale":
                new = raw + "0" * draw(st.integers(1, 12)) if "e" not in raw.lower() else raw + "0"
            elif op == "zero":
                new = "0"
            elif op == "fraction":
                new = raw + ".5" if "." not in raw and "e" not in raw.lower() else raw
            else:
                new = "1" + "0" * draw(st.integers(20, 400))
            return kind, text[:m.start()] + new.encode() + text[m.end():]
    return "unchanged", text


@st.composite
def mangled_scenario(draw) -> bytes:
    text = draw(st.sampled_from(BASES))
    for _ in range(draw(st.integers(1, 3))):
        kind, text = draw(mutation(text))
        event(kind)
    return text


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "mangled.toml"


def test_every_base_text_is_valid(tmp_path):
    assert len(BUNDLED) >= 1
    for i, text in enumerate(BASES):
        f = tmp_path / f"base{i}.toml"
        f.write_bytes(text)
        assert isinstance(load_scenario(f), Scenario)


@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=mangled_scenario())
def test_loader_returns_a_scenario_or_raises_scenario_error(scratch, text):
    scratch.write_bytes(text)
    try:
        result = load_scenario(scratch)
    except ScenarioError as exc:
        event("rejected")
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
        assert str(exc).startswith(str(scratch))
        return
    event("accepted")
    assert isinstance(result, Scenario)


# --- a seeded, in-process fuzzer: thousands of hostile edits in a few seconds ---------------------------------
#
# Hypothesis above explores edits of the kinds people make; this one is plain `random` with a fixed seed, so
# it runs the same few thousand files in every CI run, with the edits an attacker (or a fat finger) makes:
# numbers at and past the bounds, sizes that multiply into gigabytes, values of the wrong TOML type in every
# place, deep nesting, long strings, variants and events that change what the base's checks never saw.
# Every file must give a Scenario that fits the memory budget, or a ScenarioError: never another exception.
# A sample of the small accepted files is also built and every event applied, so a check that is missing
# at load time shows up as a run-time error here.

import random  # noqa: E402
import tomllib  # noqa: E402

from lab.scenario.budget import Budget, estimate, memory_problems  # noqa: E402
from lab.scenario.load import parse_scenario  # noqa: E402

FUZZ_SEED = 20261107
FUZZ_FILES = 3000
BUDGET = Budget(2 * 2**30, "the fuzzer's 2 GiB")

HOSTILE_VALUES = [
    0, 1, -1, 2, 3, 7, 64, 65, 1000, 1001, 16384, 16385, 65536, 65537, 10_000_000, 10_000_001, 2**53, 2**63, -2**63,
    10**40, 0.0, -0.0, 0.5, 0.9, 0.95, 1.0, 1e-300, 1e6, 1e9, 1e300, -1e300, True, False, "", "x" * 5000, "relu",
    "spiral", "digits", "pca", "whiten", "max", "30s", "1e999s", "0s", [], [0], [1.0, 2.0], [0.0, 0.0], [16384] * 64,
    [16384, 12000], ["spiral"], {}, {"kind": "spiral"}, {"flip": True}, {"kind": "cosine", "warmup": 10**8},
    [[1]], {"a": {"b": {"c": {}}}},
]
KEYS = {
    "scenario": ["name", "topic", "seed", "explain", "pace"],
    "data": ["kind", "n", "classes", "noise", "dim", "preprocess", "pca_components", "val_fraction", "augment",
             "shift", "scale"],
    "model": ["hidden", "activation", "alpha", "maxout_k", "init", "init_scale", "bias_init", "dropout",
              "dropout_mode", "dropconnect", "batchnorm", "residual", "residual_zero_init", "loss", "dtype"],
    "train": ["optimizer", "lr", "momentum", "beta1", "beta2", "eps", "weight_decay", "l1", "l2", "clip_norm",
              "batch_size", "steps", "eval_every", "schedule"],
}
SIZES = {"n": [2, 100, 5000, 150_000, 1_000_000], "dim": [1, 2, 64, 4096, 16384],
         "hidden": [[8], [100, 100], [4096, 4096], [16384, 12000], [16384] * 8, [16, 16, 16]],
         "batch_size": [1, 64, 8192, 65536], "steps": [1, 100, 60_000, 10_000_000], "eval_every": [1, 50, 10_000],
         "preprocess": [[], ["center"], ["pca"], ["whiten"], ["center", "normalize", "pca", "whiten"]],
         "kind": ["spiral", "random-normal", "gaussians", "digits", "iris", "xor"], "maxout_k": [2, 8],
         "activation": ["relu", "maxout", "tanh"], "pca_components": [1, 10, 16384], "scale": [0.0, 1.0, [1.0, 2.0]],
         "augment": [{}, {"flip": True}, {"cutout": 4}], "dropconnect": [0.0, 0.5], "dtype": ["float32", "float64"]}


def _pick(rng: random.Random, key: str):
    if key in SIZES and rng.random() < 0.7:
        return rng.choice(SIZES[key])
    return rng.choice(HOSTILE_VALUES)


def _section(raw: dict, name: str):
    if not isinstance(raw.get(name), dict):
        raw[name] = {}
    return raw[name]


def _array_of(raw: dict, name: str) -> list:
    if not isinstance(raw.get(name), list):
        raw[name] = []
    return raw[name]


def _hostile(rng: random.Random, base: dict) -> dict:
    raw = json.loads(json.dumps(base))
    for _ in range(rng.choice([1, 1, 1, 2, 3, 6])):
        op = rng.random()
        section = rng.choice(list(KEYS))
        key = rng.choice(KEYS[section])
        if op < 0.45:  # a value somewhere, of any type
            _section(raw, section)[key] = _pick(rng, key)
        elif op < 0.6:  # a variant that changes what the base's checks saw
            changes = {k: _pick(rng, k) for k in rng.sample(["hidden", "kind", "n", "dim", "scale", "augment",
                                                            "residual", "preprocess", "batch_size", "activation",
                                                            "maxout_k", "steps", "dtype"], rng.randint(1, 3))}
            _array_of(raw, "variants").append({"name": f"v{rng.randint(0, 3)}", "set": changes})
        elif op < 0.75:  # an event that changes the run mid-way
            changes = {k: _pick(rng, k) for k in rng.sample(["preprocess", "batch_size", "activation", "dropconnect",
                                                            "batchnorm", "lr", "init"], rng.randint(1, 2))}
            event = {"at": rng.choice([0, 1, 5, 50, 10**8]), "set": changes}
            if rng.random() < 0.3:
                event["only"] = [rng.choice(["base", "v0", "v1", "nobody"])]
            _array_of(raw, "events").append(event)
        elif op < 0.85:  # a claim
            _array_of(raw, "expect").append({
                "metric": rng.choice(["loss", "val_acc", "dead_fraction", "steps_to(loss <= 0.5)", "steps_to_x(1)",
                                      "act_std", "diverged"]),
                **({"layer": rng.choice([1, 2, 65, 100])} if rng.random() < 0.5 else {}),
                **({"smooth": rng.choice([1, 50, 10_000, 10**9])} if rng.random() < 0.3 else {}),
                **({"at": rng.choice([0, "initial", "final", 10, 10**8, -1])} if rng.random() < 0.5 else {}),
                "op": rng.choice(["<", ">=", "=>"]), "value": rng.choice([0.5, 1e301, float("nan"), "1"])})
        elif op < 0.9:  # nest a value deeply
            value = 1
            for _ in range(rng.choice([5, 20, 200])):
                value = [value] if rng.random() < 0.5 else {"a": value}
            _section(raw, section)[key] = value
        elif op < 0.95:  # a whole section of the wrong type
            raw[section] = rng.choice(HOSTILE_VALUES)
        else:  # an unknown key
            _section(raw, section)[key + rng.choice(["_", "s", "X"])] = 1
    return raw


def _tiny(sc: Scenario) -> bool:
    return max(r.peak for r in estimate(sc)) < 80 * 2**20 and sc.data.n <= 5000 and sc.data.kind != "digits"


def test_seeded_fuzzer_thousands_of_hostile_files(monkeypatch):
    """Hostile dicts through the same path as files (parse_scenario; the file-reading limits have their own
    tests).  Accepted ones fit the budget; small accepted ones build and take every event without error."""
    monkeypatch.setenv("NNLAB_MEMORY_BUDGET", "2G")
    from lab import Simulation
    from lab.sim.expectations import variant_scenarios

    rng = random.Random(FUZZ_SEED)
    bases = [tomllib.loads(b.decode()) for b in BASES]
    accepted = rejected = built = 0
    for i in range(FUZZ_FILES):
        raw = _hostile(rng, rng.choice(bases))
        try:
            sc = parse_scenario(raw, f"fuzz{i}.toml")
        except ScenarioError as exc:
            rejected += 1
            assert exc.problems and all(isinstance(p, str) and p and len(p) < 2000 for p in exc.problems), exc
            continue
        accepted += 1
        assert memory_problems(sc, BUDGET) == [], raw
        if built < 40 and _tiny(sc) and rng.random() < 0.5:
            built += 1
            for name, run in variant_scenarios(sc).items():
                sim = Simulation(run.model_copy(update={"events": []}))
                sim.step(2)
                for event in run.events:
                    sim._apply(event.set.given(), source="scenario")  # every change, as if due now
                sim.step(2)
                sim.snapshot()
    print(f"accepted {accepted}, rejected {rejected}, built {built}")
    assert accepted > 300 and rejected > 1000 and built >= 20, (accepted, rejected, built)
