"""`nnlab check` reports: the terminal report, JSON, and JUnit XML for CI systems."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from xml.etree import ElementTree as ET

from rich.console import Console
from rich.text import Text

from lab.report.lines import fits, hang, whole
from lab.sim.expectations import CheckResult


@dataclass
class ScenarioOutcome:
    path: str
    name: str
    results: list[CheckResult] = field(default_factory=list)
    error: str | None = None  # invalid input (the file) or a crash while running
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)  # an invalid file's problems, one a line
    configuration: str = ""  # with --seeds/--widths: "seed 3, widths x2"

    @property
    def passed(self) -> bool:
        return self.error is None and all(r.ok for r in self.results)

    @property
    def invalid(self) -> bool:
        return self.error is not None and bool(self.problems)

    @property
    def unchecked(self) -> bool:
        """A valid file without [[expect]]: nothing was checked (not a pass, not a failure)."""
        return self.error is None and not self.results


def _fmt(x: float, digits: int = 4) -> str:
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return str(x)
    return f"{x:.{digits}g}"


# -- the terminal report ----------------------------------------------------------------------------------
# Paths are typed back by the user, so no line that holds one is ever wrapped here (a path longer
# than the terminal is left to the terminal's own soft wrap); everything else wraps at words, under
# itself.  Each failure and each error is told once, in the paragraphs after the list.

MARKS = {"pass": Text("pass", style="green"), "FAIL": Text("FAIL", style="bold red"),
         "ERROR": Text("ERROR", style="bold red"), "none": Text("none", style="yellow"),
         "VACUOUS": Text("VACUOUS", style="bold yellow")}
LABEL_WIDTH = len("measured")


CLAIM_WIDTH = 80  # on a wide terminal the measured value stays near its claim
NO_CLAIMS = "no expectations: nothing to check"


def _mark(r: CheckResult) -> str:
    return "pass" if r.ok else ("VACUOUS" if r.passed else "FAIL")


def _claim(r: CheckResult) -> str:
    """The claim, and where it held when it was tried in several configurations."""
    if len(r.tried) <= 1:
        return r.description
    required = len(r.tried) if r.robust else 1
    held = required - len(r.failed_at)
    tried = len(r.tried)
    where = (f"held at {held}/{required}" if r.robust else
             f"seed-specific: needed at its own, held at {tried - len(r.missed_at)}/{tried}")
    return f"{r.description}  [{where}" + (f", control held at {len(r.vacuous_at)}" if r.vacuous_at else "") + "]"


def _row(console: Console, mark: str, claim: Text | str, measured: Text | str, widths: tuple[int, int]) -> None:
    left = Text("  ") + (MARKS[mark] if mark else Text("")) + Text(" " * (8 - len(mark)))
    hang(console, left, claim, measured, widths[1], body_width=widths[0])


def _fields(console: Console, rows: list[tuple[str, str]]) -> None:
    for label, value in rows:
        hang(console, Text("  ") + Text(label.ljust(LABEL_WIDTH), style="dim") + Text("  "), value)


def _heading(console: Console, path: str, title: str = "") -> None:
    """The path in bold, and the title beside it if both fit, else under it."""
    head = Text(path, style="bold")
    if title and fits(console, path, "  ", title):
        whole(console, head + Text("  ") + Text(title, style="dim"))
        return
    whole(console, head)
    if title:
        hang(console, "  ", Text(title, style="dim"))


def print_report(console: Console, outcomes: list[ScenarioOutcome]) -> None:
    """Every scenario (its path and title) and its expectations (pass/FAIL, the claim, the value
    measured); then each failure (claim, measured, expected, why) and each error, once."""
    claims = [_claim(r) for o in outcomes for r in o.results]
    none = [NO_CLAIMS] if any(o.unchecked for o in outcomes) else []
    widths = (min(CLAIM_WIDTH, max(map(len, ["expectation", "crashed while running, see below", *none, *claims]))),
              max([LABEL_WIDTH, *(len(_fmt(r.actual)) for o in outcomes for r in o.results)]))
    _row(console, "", Text("expectation", style="bold"), Text("measured", style="bold"), widths)
    for o in outcomes:
        _heading(console, o.path, o.name)
        if o.error is not None:
            what = f"invalid: {len(o.problems)} problem{'s' if len(o.problems) != 1 else ''}" if o.invalid \
                else "crashed while running"
            _row(console, "ERROR", Text(f"{what}, see below", style="red"), "", widths)
        for r in o.results:
            _row(console, _mark(r), _claim(r), _fmt(r.actual), widths)
        if o.unchecked:
            _row(console, "none", Text(NO_CLAIMS, style="dim"), "", widths)
    for o in outcomes:
        for r in o.results:
            if r.ok:
                continue
            console.print()
            mark = _mark(r)
            whole(console, Text.assemble((mark, "bold red" if mark == "FAIL" else "bold yellow"), " ",
                                         (o.path, "bold"), f" expect[{r.index}]"))
            rows = [("scenario", o.name), ("claim", r.description), ("measured", _fmt(r.actual, 6)),
                    ("expected", r.expected)]
            if r.failed_at:
                rows.append(("fails at", f"{'; '.join(r.failed_at)} (of {len(r.tried)} tried)"))
            if r.vacuous:
                where = f" at {'; '.join(r.vacuous_at)}" if len(r.tried) > 1 else ""
                rows.append(("control", f"holds on {r.control!r} too{where} (measured {_fmt(r.control_actual, 6)}): "
                                        "the check does not tell the cause from its absence"))
            _fields(console, rows + ([("why", r.why)] if r.why else []))
        if o.error is not None:
            console.print()
            count = len(o.problems)
            what = f": {count} problem{'s' if count != 1 else ''}" if count else ": crashed while running"
            whole(console, Text.assemble(("ERROR", "bold red"), " ", (o.path, "bold"), what))
            if o.problems:
                for problem in o.problems:
                    hang(console, "  - ", problem)
            else:
                hang(console, "  ", o.error.removeprefix("crashed while running: "))
    if not all(o.passed for o in outcomes):
        console.print()
    hang(console, "", summary_line(outcomes))


def summary_line(outcomes: list[ScenarioOutcome]) -> str:
    n_exp = sum(len(o.results) for o in outcomes)
    n_fail = sum(not r.passed for o in outcomes for r in o.results)
    n_vacuous = sum(r.passed and r.vacuous for o in outcomes for r in o.results)
    n_invalid = sum(o.invalid for o in outcomes)
    n_crashed = sum(o.error is not None and not o.invalid for o in outcomes)
    n_none = sum(o.unchecked for o in outcomes)
    tried = max((len(r.tried) for o in outcomes for r in o.results), default=1)
    return (f"{len(outcomes)} scenario(s), {n_exp} expectation(s)"
            + (f" in {tried} configurations each" if tried > 1 else "")
            + f": {n_exp - n_fail - n_vacuous} passed, {n_fail} failed"
            + (f", {n_vacuous} vacuous" if n_vacuous else "")
            + (f", {n_invalid} invalid" if n_invalid else "") + (f", {n_crashed} crashed" if n_crashed else "")
            + (f", {n_none} without expectations" if n_none else ""))


def to_json(outcomes: list[ScenarioOutcome]) -> str:
    def clean(x):
        return x if not (isinstance(x, float) and (math.isnan(x) or math.isinf(x))) else str(x)

    return json.dumps({
        "passed": all(o.passed for o in outcomes),
        "scenarios": [{
            "path": o.path, "name": o.name, "passed": o.passed, "error": o.error, "seconds": round(o.seconds, 3),
            "checked": not o.unchecked,
            "expectations": [{"index": r.index, "description": r.description, "expected": r.expected,
                              "actual": clean(r.actual), "passed": r.ok, "held": r.passed, "why": r.why,
                              "control": r.control, "control_actual": clean(r.control_actual) if r.control else None,
                              "vacuous": r.vacuous, "robust": r.robust, "tried": list(r.tried),
                              "failed_at": list(r.failed_at), "vacuous_at": list(r.vacuous_at),
                              "missed_at": list(r.missed_at)}
                             for r in o.results],
        } for o in outcomes],
    }, indent=2)


def to_junit(outcomes: list[ScenarioOutcome]) -> str:
    suites = ET.Element("testsuites", name="nnlab check")
    for o in outcomes:
        failures = sum(not r.ok for r in o.results)
        suite = ET.SubElement(suites, "testsuite", name=o.path, tests=str(max(1, len(o.results))),
                              failures=str(failures), errors=str(int(o.error is not None)), time=f"{o.seconds:.3f}")
        if o.error:
            case = ET.SubElement(suite, "testcase", classname=o.path, name="load")
            ET.SubElement(case, "error", message=o.error.splitlines()[0]).text = o.error
            continue
        if o.unchecked:
            case = ET.SubElement(suite, "testcase", classname=o.path, name="expectations")
            ET.SubElement(case, "skipped", message="no expectations: nothing to check")
            suite.set("skipped", "1")
        for r in o.results:
            case = ET.SubElement(suite, "testcase", classname=o.path, name=f"expect[{r.index}] {r.description}")
            if not r.passed:
                where = f" (fails at {'; '.join(r.failed_at)})" if r.failed_at and len(r.tried) > 1 else ""
                ET.SubElement(case, "failure", message=f"expected {r.expected}, got {_fmt(r.actual)}{where}").text = r.why
            elif r.vacuous:
                ET.SubElement(case, "failure", message=f"vacuous: holds on the control {r.control!r} too "
                                                       f"({_fmt(r.control_actual)})").text = r.why
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)
