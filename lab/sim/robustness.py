"""Claims across seeds and sizes: `nnlab check --seeds N --widths 0.5,2`.

A claim of the curriculum is a claim about training, not about one lucky initialisation:
each scenario is checked at N seeds (its own seed, then the next N-1) and, with widths, with
every hidden width scaled (the scenario's own widths always among them).  Per claim the
report says where it held; a claim marked `robust = false` (with its reason) must hold only
in the scenario's own configuration, every other claim everywhere.  A claim with a
`control` must also fail on its control everywhere it is required to hold.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from lab.scenario.schema import Scenario

from .expectations import CheckResult

MAX_SEEDS = 100
MAX_WIDTH_FACTOR = 8.0


@dataclass(frozen=True)
class Config:
    """One configuration a scenario is checked in: a seed offset and a width factor."""

    seed_offset: int = 0
    width: float = 1.0

    @property
    def own(self) -> bool:
        """The scenario as written."""
        return self.seed_offset == 0 and self.width == 1.0

    def label(self, own_seed: int) -> str:
        """"seed 3", "seed 3, widths x2" (own_seed: the scenario's own seed)."""
        text = f"seed {own_seed + self.seed_offset}"
        return text if self.width == 1.0 else f"{text}, widths x{self.width:g}"


def configs(seeds: int = 1, widths: tuple[float, ...] = ()) -> list[Config]:
    """The scenario's own configuration first, then the other seeds, each at every width."""
    factors = [1.0, *(w for w in dict.fromkeys(widths) if w != 1.0)]
    return [Config(k, w) for w in factors for k in range(seeds)]


def parse_widths(text: str) -> tuple[float, ...]:
    """"0.5,2" -> (0.5, 2.0); a ValueError says what is wrong."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            w = float(part)
        except ValueError:
            raise ValueError(f"--widths: {part!r} is not a number (expected factors like 0.5,2)") from None
        if not 0 < w <= MAX_WIDTH_FACTOR:
            raise ValueError(f"--widths: {part} is outside 0 < factor <= {MAX_WIDTH_FACTOR:g}")
        out.append(w)
    if not out:
        raise ValueError("--widths: expected factors like 0.5,2")
    return tuple(out)


def _scaled(hidden: list[int], factor: float) -> list[int]:
    return [max(1, round(h * factor)) for h in hidden]


def scenario_at(scenario: Scenario, config: Config, source: str = "<scenario>") -> Scenario:
    """The scenario in a configuration: another seed; every hidden width (the base's and each
    variant's own) scaled, re-validated and held against the memory budget like a file
    (a ScenarioError names the configuration)."""
    if config.own:
        return scenario
    meta = scenario.scenario.model_copy(update={"seed": scenario.seed + config.seed_offset})
    if config.width == 1.0:
        return scenario.model_copy(update={"scenario": meta})
    from lab.scenario.load import parse_scenario

    raw = scenario.model_dump(exclude_none=True)
    raw["scenario"]["seed"] = meta.seed
    raw["model"]["hidden"] = _scaled(scenario.model.hidden, config.width)
    for variant in raw.get("variants", []):
        if variant.get("set", {}).get("hidden") is not None:
            variant["set"]["hidden"] = _scaled(variant["set"]["hidden"], config.width)
    return parse_scenario(raw, f"{source} ({config.label(scenario.seed)})")


def tally(runs: list[tuple[Config, str, list[CheckResult]]]) -> list[CheckResult]:
    """One result per claim from its results in every configuration (config, its label,
    results): the own configuration's numbers, passed if it held wherever it must (everywhere,
    or only there if not robust), vacuous if its control held too wherever it must hold."""
    own = next(results for config, _, results in runs if config.own)
    merged = []
    for i, first in enumerate(own):
        required = [(label, results[i]) for c, label, results in runs if first.robust or c.own]
        failed = tuple(label for label, r in required if not r.passed)
        vacuous = tuple(label for label, r in required if r.vacuous)
        missed = tuple(label for _, label, results in runs if not results[i].passed)
        merged.append(replace(first, passed=not failed, vacuous=bool(vacuous),
                              tried=tuple(label for _, label, _ in runs), failed_at=failed, vacuous_at=vacuous,
                              missed_at=missed))
    return merged
