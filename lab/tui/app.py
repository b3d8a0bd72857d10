"""The nnlab Textual app: composes screens; no math here (that is lab.sim)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from textual import events
from textual.app import App, SystemCommand
from textual.geometry import Size
from textual.screen import Screen
from textual.timer import Timer

from lab.engine.threads import limit_blas_threads
from lab.engine.warmup import KERNELS, WarmUp, covers
from lab.scenario.schema import Scenario
from lab.tui.screens.base import LabScreen
from lab.tui.screens.too_small import MIN_HEIGHT, MIN_WIDTH, TooSmallScreen

SIZE_SETTLE_SECONDS = 0.15  # a resize this long after the last one decides the notice
TERMINAL_SIZE_POLL_SECONDS = 1.0  # how often the terminal's own size is compared with the app's


class NNLabApp(App):
    CSS_PATH = "lab.tcss"
    TITLE = "nnlab"

    def __init__(self, paths: list[Path] | None = None, scenario: Scenario | None = None, *,
                 source: str = "", output_dir: Path | None = None, autostart: bool = True,
                 warm_up: bool | WarmUp = True, allow_writes: bool = True) -> None:
        super().__init__()
        self.paths = paths or []
        self.start_scenario = scenario
        self.source = source
        self.output_dir = output_dir or Path.cwd()
        self.autostart = autostart
        # False in a shared room (nnlab serve): saving, exporting and screenshots are off
        self.allow_writes = allow_writes
        # the one compilation of the kernels, shared by every screen (tests pass their own, or False)
        self.kernels: WarmUp | None = KERNELS if warm_up is True else (warm_up or None)
        self._size_settle: Timer | None = None  # check_size once resizes stop coming
        self._size_switching = False  # the notice is being pushed or popped
        self._size_handed: Size | None = None  # posted by follow_terminal, not yet received

    def get_default_screen(self) -> Screen:
        # the screen under the browser gets every resize too (lab/tui/screens/base.py says why)
        return LabScreen(id="_default")

    async def on_mount(self) -> None:
        # the same BLAS thread count as headless runs (bit-identical metrics), which also
        # leaves the second core to the UI
        limit_blas_threads()
        from lab.tui.screens.browser import BrowserScreen

        # the browser is always at the bottom, so escape from a scenario opened directly
        # (`nnlab run X`) goes back to the curriculum too
        await self.push_screen(BrowserScreen(self.paths))
        if self.start_scenario is not None:
            from lab.tui.screens.run import RunScreen

            if self.kernels is not None and covers(self.start_scenario):
                self.kernels.start()  # before the screen: its worker waits for it, with progress
            if self.start_scenario.ensemble is not None:  # the members and the ensemble, live
                from lab.tui.screens.ensemble import EnsembleScreen

                await self.push_screen(EnsembleScreen(self.start_scenario, source=self.source,
                                                      running=self.autostart))
            else:
                await self.push_screen(RunScreen(self.start_scenario, source=self.source, autostart=self.autostart))
        elif self.kernels is not None:
            # after the first frame is composed (the compiling thread competes for the GIL); a run
            # screen opened from the browser waits for it instead of compiling beside it
            self.kernels.start()
        self._first_screen_up = True
        self.check_size()  # after the first screen is up, so the notice goes on top of it
        # a resize whose event never arrives is caught within a second (see follow_terminal)
        self.set_interval(TERMINAL_SIZE_POLL_SECONDS, self.follow_terminal)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Every key of the screen the palette was opened from is a command, found by what it
        does ("dropout", "zoom", "lr"), then Textual's own (theme, screenshot, ...)."""
        for key in getattr(screen, "KEYS", ()):
            yield SystemCommand(f"{key.description} ({key.shown})", f"key: {key.shown}",
                                lambda action=key.action: screen.run_action(action))
        for command in super().get_system_commands(screen):
            if self.allow_writes or "screenshot" not in command.title.lower():  # it writes a file
                yield command

    def refuse_writes(self, what: str, say: Callable[[str, str], None]) -> bool:
        """True, after `say` has said why, when this lab may not write files."""
        if not self.allow_writes:
            say(f"{what} is off in this shared lab: nothing is written on the server", "error")
        return not self.allow_writes

    def _handle_exception(self, error: Exception) -> None:
        """An error nobody expected: save every open session first (so nothing the user did is
        lost), then let Textual stop the app with the traceback; the exit status is 1."""
        if not getattr(self, "_saved_on_error", False) and self.allow_writes:
            self._saved_on_error = True
            for path in self.save_sessions_on_error():
                self._exit_renderables.append(f"nnlab stopped on an unexpected error; your session is saved in {path}")
        super()._handle_exception(error)

    def save_sessions_on_error(self) -> list[Path]:
        """Write each run screen's session (claims left unchecked); the paths written."""
        from lab.files import unused_path
        from lab.sim.session import begin_save, finish_save
        from lab.tui.screens.run import RunScreen

        written = []
        for screen in self.screen_stack:
            runner = getattr(screen, "runner", None)
            if not isinstance(screen, RunScreen) or runner is None:
                continue
            try:
                path = unused_path(screen._out_path("-after-error.toml"))
                finish_save(begin_save(runner.sim, path, source=screen.source), cancelled=lambda: True)
                written.append(path)
            except Exception:  # noqa: BLE001 - already failing: a save that fails too must not hide the first error
                continue
        return written

    def action_show_help(self) -> None:
        """The help for the screen on top: its keys, and the scenario it is about."""
        from lab.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def on_resize(self, event: events.Resize) -> None:
        self._size_handed = None  # a size arrived: follow_terminal may hand the next one
        # the event carries the new size; self.size may still be the old one here.  Resizes
        # before the first screen is up are left to on_mount (the notice must go on top).
        if getattr(self, "_first_screen_up", False):
            notice = self._notice()
            if notice is not None:
                notice.show_size(event.size.width, event.size.height)
            # Push or pop the notice once the size has settled, and one change at a time:
            # pushing and popping screens as fast as a dragged window resizes left Textual's
            # Footer recomposing into a removal that never finished, and the app stopped
            # drawing for good (tests/test_tui_resize.py resizes a real pty that fast).
            if self._size_settle is not None:
                self._size_settle.stop()
            self._size_settle = self.set_timer(SIZE_SETTLE_SECONDS, self.check_size)
        # Textual repaints only when the size differs from the last one it saw; a terminal
        # shrunk and grown back between two looks has cut the picture but arrives at the same
        # size, and would keep the cut picture.
        self.call_after_refresh(self.repaint_everything)

    def repaint_everything(self) -> None:
        """Send the whole screen again, every cell, not only what changed."""
        if self.screen_stack:
            self.screen.refresh()

    def _notice(self) -> TooSmallScreen | None:
        return next((s for s in self.screen_stack if isinstance(s, TooSmallScreen)), None)

    def terminal_size(self) -> Size | None:
        """The size a real terminal reports now; None under a headless or web driver (where
        the app's own size is the only truth)."""
        driver = self._driver
        read = getattr(driver, "_get_terminal_size", None)
        if driver is None or driver.is_headless or read is None:
            return None
        try:
            return Size(*read())
        except (OSError, TypeError, ValueError):
            return None

    def follow_terminal(self) -> bool:
        """Hand the app the size its terminal reports when the two differ (once until a resize
        arrives); True if it did.  Once resizes stop, the picture must be the terminal's size: after a
        storm of them a lab in CI once kept drawing at a size its terminal had left (the help
        opened at 120x40 in a 100x30 terminal and stayed so), as if the last resize's event
        never arrived.  Called when resizes settle and once a second (one ioctl)."""
        real = self.terminal_size()
        if real is None or real == self.size or real == self._size_handed:
            return False
        self._size_handed = real
        self.post_message(events.Resize(real, real))
        return True

    def check_size(self) -> None:
        """Cover the screen with a notice below 80x24, and take it away when there is room."""
        if self._size_switching:
            return  # looked at again when the push or pop under way is done
        if self.follow_terminal():
            return  # on_resize looks again once the size it was handed has settled
        width, height = self.size
        small = width < MIN_WIDTH or height < MIN_HEIGHT
        notice = self._notice()
        if small and notice is None:
            switching = self.push_screen(TooSmallScreen())
        elif not small and notice is not None and self.screen is notice:  # modal: nothing is over it
            switching = self.pop_screen()
        else:
            if notice is not None:
                notice.show_size(width, height)
            return
        self._size_switching = True

        async def then_look_again() -> None:
            try:
                await switching
            finally:
                self._size_switching = False
            self.check_size()  # the size may have changed while the screen went up or down

        self.run_worker(then_look_again(), group="size-notice")


def make_app(paths: list[Path] | None = None, scenario: Scenario | None = None, **kwargs) -> NNLabApp:
    """The app as the CLI builds it (tests use the same factory)."""
    return NNLabApp(paths, scenario, **kwargs)
