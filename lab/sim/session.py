"""Saving a session: a scenario file that replays it bit for bit and that `nnlab check` passes.

The file's base run is the session: the scenario it started from plus every change made
in it, as [[events]] (marked only = ["base"] when the scenario has variants: the
variants keep the scenario's own timeline and length).  The scenario's claims are then
put to the honest test: `check` (what `nnlab check` runs) on exactly what the file says.
Claims that hold are kept as [[expect]] tables; the others are commented out at the end
of the file, each with the claim in words and the value measured, ready to uncomment.

Checking runs every variant a claim needs, which can take seconds, so a save is two
atomic writes (lab.files.write_text_atomic):

1. `begin_save` at once: the session, every claim commented out as "being checked";
2. `finish_save` after the check: the verdicts (or, if the check was cancelled or
   failed, the claims left commented out with the reason).

Whatever happens in between (a quit, a crash), the file on disk replays the session.
`save_session` does both in one call.  No Textual here: the TUI runs `finish_save` in a
thread worker; tests and scripts call these directly.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from lab.files import write_text_atomic
from lab.scenario.dump import array_entry, dump_scenario
from lab.scenario.schema import Expectation, Scenario

from .expectations import CheckResult, check, describe
from .run import Cancelled
from .simulation import Simulation

Progress = Callable[[int, int, str], None]  # (i, n, run name): before the i-th of n runs


@dataclass(frozen=True)
class SavedSession:
    """A saved session file and what is known about its claims."""

    path: Path
    scenario: Scenario  # the session, with every claim of the scenario it started from
    step: int  # steps the session had run when saved
    source: str = ""  # the scenario file or name the session started from
    results: tuple[CheckResult, ...] | None = None  # None: not checked (yet)
    problem: str = ""  # why the claims were not checked, if they were not

    @property
    def claims(self) -> list[Expectation]:
        return list(self.scenario.expect)

    @property
    def checked(self) -> bool:
        return self.results is not None

    @property
    def kept(self) -> list[Expectation]:
        """The claims written as [[expect]]: those that hold and still fail on their control, as
        `nnlab check` wants them (none before the check)."""
        if self.results is None:
            return []
        return [ex for ex, r in zip(self.scenario.expect, self.results) if r.ok]

    @property
    def dropped(self) -> list[tuple[Expectation, CheckResult]]:
        """The claims that do not hold in the saved run, or hold on their control too, with their results."""
        if self.results is None:
            return []
        return [(ex, r) for ex, r in zip(self.scenario.expect, self.results) if not r.ok]

    def summary(self) -> str:
        """One line for a notice."""
        n = len(self.claims)
        if not n:
            return "no claims to check"
        if self.results is None:
            return f"{n} claim(s) not checked: {self.problem}" if self.problem else f"{n} claim(s) being checked"
        if not self.dropped:
            return f"all {n} claim(s) hold and are kept"
        return (f"{len(self.kept)} of {n} claim(s) kept; {len(self.dropped)} no longer hold after your changes "
                "(commented out in the file, with the values measured)")


def session_scenario(sim: Simulation) -> tuple[Scenario, int]:
    """(the scenario that replays the session, the step it is at), read under the sim's lock."""
    with sim.lock:
        return sim.scenario_with_events(), sim.step_count


def measured(r: CheckResult) -> str:
    if math.isnan(r.actual):
        return "no value (nan: the run never reached that point)"
    return f"{r.actual:.6g}"


def _header(saved: SavedSession) -> str:
    sc = saved.scenario
    lines = [f"Saved from the nnlab run of {saved.source or sc.name!r} at step {saved.step}.",
             f"Replay it headless: nnlab run {saved.path.name} --steps {saved.step}"]
    if sc.variants and any(e.only is not None for e in sc.events):
        lines.append('Its base run is the session: your changes are the [[events]] marked only = ["base"];')
        lines.append("the variants keep the scenario's own timeline and length.")
    n = len(sc.expect)
    if not n:
        return "\n".join(lines)
    if saved.results is None and not saved.problem:
        lines.append(f"Claims: the scenario's {n} claim(s) are being checked on this run (`nnlab check`); until")
        lines.append("then they are commented out below, and this file is rewritten with the verdicts.")
    elif saved.results is None:
        lines.append(f"Claims: not checked ({saved.problem}). The scenario's {n} claim(s) are commented out")
        lines.append(f"below: uncomment them and run `nnlab check {saved.path.name}`.")
    elif not saved.dropped:
        lines.append(f"Claims: all {n} of the scenario's claims hold in this run (checked when saved).")
    else:
        k, d = len(saved.kept), len(saved.dropped)
        lines.append(f"Claims: {k} of the scenario's {n} {'holds' if k == 1 else 'hold'} in this run and "
                     f"{'is' if k == 1 else 'are'} kept (checked when saved);")
        lines.append(f"{d} no longer {'holds' if d == 1 else 'hold'} after this session's changes and "
                     f"{'is' if d == 1 else 'are'} commented out below,")
        lines.append("each with the value measured; uncomment one to check it again.")
    return "\n".join(lines)


def _note(saved: SavedSession, i: int, ex: Expectation) -> list[str]:
    """Why claim i is commented out ([] if it is not)."""
    if saved.results is None:
        return [f"{'not checked' if saved.problem else 'being checked'}: {describe(ex)}"]
    r = saved.results[i]
    if r.ok:
        return []
    claim = r.description + (f' ("{ex.why}")' if ex.why else "")
    if r.passed:  # it holds, but so it does on its control: it no longer tells the cause apart
        return [f"dropped: {claim}",
                f"measured {measured(r)} in this run, and {r.control_actual:.6g} on its control {r.control!r}: "
                "after this session's changes it holds there too."]
    return [f"dropped: {claim}",
            f"measured {measured(r)} in this run: it no longer holds after this session's changes."]


def render(saved: SavedSession) -> str:
    """The file's text: the session, then the claims in their order: those that hold as
    [[expect]] tables, the others commented out, each under a line that says why."""
    sc = saved.scenario
    lines = [dump_scenario(sc.model_copy(update={"expect": []}), _header(saved)).rstrip("\n")]
    for i, ex in enumerate(sc.expect):
        note = _note(saved, i, ex)
        entry = array_entry("expect", ex)
        lines += ["", *(f"# {line}" for line in note), *((f"# {line}".rstrip() for line in entry) if note else entry)]
    return "\n".join(lines) + "\n"


def begin_save(sim: Simulation, path: Path | str, *, source: str = "") -> SavedSession:
    """Write the session to `path` now (atomically), every claim commented out as being checked.

    The session is read under the simulation's lock; the file replays it from here on,
    whatever becomes of the check.  Raises OSError if the file cannot be written."""
    sc, step = session_scenario(sim)
    saved = SavedSession(Path(path), sc, step, source)
    if not sc.expect:  # nothing to check: this is the final file
        saved = replace(saved, results=())
    write_text_atomic(saved.path, render(saved))
    return saved


def finish_save(saved: SavedSession, *, progress: Progress | None = None,
                cancelled: Callable[[], bool] | None = None) -> SavedSession:
    """Check the claims on the saved scenario and rewrite the file (atomically) with the verdicts.

    The check runs on the scenario as the file states it (the text with every claim in,
    parsed back), so `nnlab check FILE` finds what this found.  If `cancelled()` turns
    true, or the check fails, the claims stay commented out with the reason.  Raises
    OSError if the file cannot be written."""
    if saved.results is not None:
        return saved
    try:
        everything = replace(saved, results=tuple(CheckResult(i, "", True, math.nan, "")
                                                  for i in range(len(saved.claims))))
        as_written = Scenario.model_validate(tomllib.loads(render(everything)))
        results = check(as_written, progress=progress, cancelled=cancelled)
        done = replace(saved, results=tuple(results))
    except Cancelled:
        done = replace(saved, problem="the lab closed before the check finished")
    except Exception as exc:  # noqa: BLE001 - the session is saved either way; say why the claims were not checked
        done = replace(saved, problem=f"the check crashed: {type(exc).__name__}: {exc}")
    write_text_atomic(done.path, render(done))
    return done


def save_session(sim: Simulation, path: Path | str, *, source: str = "", progress: Progress | None = None,
                 cancelled: Callable[[], bool] | None = None) -> SavedSession:
    """begin_save then finish_save: the file with the verdicts, in one call."""
    return finish_save(begin_save(sim, path, source=source), progress=progress, cancelled=cancelled)
