"""The TUI survives what users and their files throw at it (issue: hostile input): nothing
crashes, no user text is read as markup, a failed write says so and keeps the session, and
an error nobody expected still saves the session and exits non-zero."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import lab.scenario.load as load_module
import lab.tui.screens.browser as browser_module
from lab import load_scenario
from lab.tui.app import make_app
from lab.tui.screens.browser import BrowserScreen
from lab.tui.screens.compare import CompareScreen
from lab.tui.screens.help import HelpScreen
from lab.tui.widgets.panels import MessageLine
from tests.test_tui import SIZE, cli_app, run, run_screen, screen_text, tiny, until

MARKUP_NAME = "[link=http://example.com]evil[/link] [/] [bold]x"


def message(screen) -> str:
    return str(screen.query_one(MessageLine).content)


def test_space_again_and_again_after_the_end(tmp_path):
    async def body():
        app = cli_app(tiny(steps=30), tmp_path, autostart=True)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            r = screen.runner
            await until(pilot, lambda: r.ended, "the end")
            for _ in range(3):  # on, off, on: past the end, paused, running again
                await pilot.press("space")
                await until(pilot, lambda: r.pending == 0, "the toggle applied")
            await until(pilot, lambda: r.running, "running again past the end")
            await until(pilot, lambda: r.sim.step_count > 30, "steps past the end")

    run(body)


def test_names_with_markup_and_spaces_are_shown_as_text(tmp_path):
    sc = tiny(steps=30, scenario={"name": MARKUP_NAME}, variants=[{"name": "low lr [/]", "set": {"lr": 0.01}}])

    async def body():
        app = cli_app(sc, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is screen, "back")
            await pilot.press("c")
            await until(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.lockstep.ready,
                        "the compare screen")
            await until(pilot, lambda: "low lr [/]" in screen_text(app), "the variant's name, as written")

    run(body)


def test_the_browser_survives_odd_user_files(tmp_path, monkeypatch):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "a.toml").write_text(f'[scenario]\nname = "{MARKUP_NAME}"\n')
    (folder / "b[x].toml").write_text('[scenario]\nname = "fine"\n')
    (folder / "c.toml").write_text('[scenario]\nname = "explodes"\n')
    real = browser_module.load_scenario

    def loader(path):
        if Path(path).name == "c.toml":
            raise RuntimeError("a loader failure nobody expected")
        return real(path)

    monkeypatch.setattr(browser_module, "load_scenario", loader)

    async def body():
        app = make_app([folder], warm_up=False, autostart=False)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: isinstance(app.screen, BrowserScreen), "the browser")
            browser = app.screen
            mine = [e for e in browser.entries if e.path.parent == folder]
            for entry in mine:
                browser.describe(entry)
                await pilot.pause()
            assert "explodes" not in screen_text(app)
            assert "cannot be read: RuntimeError" in str(browser.query_one("#detail-explain").source)
            browser.describe(mine[0])
            await until(pilot, lambda: "evil" in str(browser.query_one("#detail-title").content), "the name")
            assert "[link=" in str(browser.query_one("#detail-title").content)  # as written, not a link

    run(body)


def test_saving_and_exporting_into_a_folder_that_vanished_say_so_and_keep_the_session(tmp_path):
    out = tmp_path / "out"
    out.mkdir()

    async def body():
        app = make_app(scenario=tiny(), source="tiny.toml", output_dir=out, autostart=False, warm_up=False)
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_screen(pilot)
            r = screen.runner
            await pilot.press("n", "n")
            await until(pilot, lambda: r.sim.step_count == 2 and r.pending == 0, "two steps")
            shutil.rmtree(out)
            await pilot.press("ctrl+s")
            await until(pilot, lambda: "could not save" in message(screen), "the save failure in the message line")
            await pilot.press("e")
            await until(pilot, lambda: "could not export" in message(screen), "the export failure")
            await pilot.press("n")
            await until(pilot, lambda: r.sim.step_count == 3, "the session goes on")
            assert app.screen is screen

    run(body)


def test_an_unexpected_error_saves_the_session_and_exits_non_zero(tmp_path, monkeypatch):
    from lab.tui.screens.run import RunScreen

    def broken(self, lines: int) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(RunScreen, "action_scroll_context", broken)
    sc = tiny()

    async def body():
        app = make_app(scenario=sc, source="tiny.toml", output_dir=tmp_path, autostart=False, warm_up=False)
        with pytest.raises(ZeroDivisionError):
            async with app.run_test(size=SIZE) as pilot:
                screen = await run_screen(pilot)
                await pilot.press("n", "l")
                await until(pilot, lambda: screen.runner.sim.step_count == 1 and screen.runner.pending == 0,
                            "a step and a change")
                await pilot.press("down")  # the bug
                await pilot.pause()
        return app

    app = run(body)
    assert app.return_code == 1
    saved = list(tmp_path.glob("*-after-error*.toml"))
    assert len(saved) == 1
    replay = load_scenario(saved[0])
    assert any(e.set.lr is not None for e in replay.events)  # the change is in the file
    assert load_module  # (the loader reads the file back: it is whole)
