"""`nnlab check` reports: a terminal table, JSON, and JUnit XML for CI systems."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from xml.etree import ElementTree as ET

from rich import box
from rich.markup import escape
from rich.table import Table

from lab.sim.expectations import CheckResult


@dataclass
class ScenarioOutcome:
    path: str
    name: str
    results: list[CheckResult] = field(default_factory=list)
    error: str | None = None  # invalid input (the file) or a crash while running
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.error is None and all(r.passed for r in self.results)


def _fmt(x: float) -> str:
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return str(x)
    return f"{x:.4g}"


def check_table(outcomes: list[ScenarioOutcome]) -> Table:
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, title_justify="left")
    for col in ("scenario", "expectation", "expected", "actual", ""):
        t.add_column(col, overflow="fold")
    for o in outcomes:
        if o.error:
            t.add_row(escape(o.path), f"[red]{escape(o.error)}[/]", "", "", "[bold red]ERROR[/]")
            continue
        for i, r in enumerate(o.results):
            mark = "[green]pass[/]" if r.passed else "[bold red]FAIL[/]"
            t.add_row(escape(o.path) if i == 0 else "", escape(r.description), escape(r.expected), _fmt(r.actual), mark)
        if not o.results:
            t.add_row(escape(o.path), "[dim](no expectations)[/]", "", "", "[green]pass[/]")
    return t


def failure_lines(outcomes: list[ScenarioOutcome]) -> list[str]:
    """One paragraph per failed expectation: which scenario, which expectation, expected vs actual, why."""
    lines = []
    for o in outcomes:
        for r in o.results:
            if not r.passed:
                lines.append(f"FAIL {o.path} (\"{o.name}\") expect[{r.index}]: {r.description}: "
                             f"expected {r.expected}, got {_fmt(r.actual)}" + (f" - {r.why}" if r.why else ""))
    return lines


def to_json(outcomes: list[ScenarioOutcome]) -> str:
    def clean(x):
        return x if not (isinstance(x, float) and (math.isnan(x) or math.isinf(x))) else str(x)

    return json.dumps({
        "passed": all(o.passed for o in outcomes),
        "scenarios": [{
            "path": o.path, "name": o.name, "passed": o.passed, "error": o.error, "seconds": round(o.seconds, 3),
            "expectations": [{"index": r.index, "description": r.description, "expected": r.expected,
                              "actual": clean(r.actual), "passed": r.passed, "why": r.why} for r in o.results],
        } for o in outcomes],
    }, indent=2)


def to_junit(outcomes: list[ScenarioOutcome]) -> str:
    suites = ET.Element("testsuites", name="nnlab check")
    for o in outcomes:
        failures = sum(not r.passed for r in o.results)
        suite = ET.SubElement(suites, "testsuite", name=o.path, tests=str(max(1, len(o.results))),
                              failures=str(failures), errors=str(int(o.error is not None)), time=f"{o.seconds:.3f}")
        if o.error:
            case = ET.SubElement(suite, "testcase", classname=o.path, name="load")
            ET.SubElement(case, "error", message=o.error.splitlines()[0]).text = o.error
            continue
        for r in o.results:
            case = ET.SubElement(suite, "testcase", classname=o.path, name=f"expect[{r.index}] {r.description}")
            if not r.passed:
                ET.SubElement(case, "failure", message=f"expected {r.expected}, got {_fmt(r.actual)}").text = r.why
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)
