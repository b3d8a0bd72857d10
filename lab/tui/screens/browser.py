"""The browser: the curriculum by topic, each scenario's explanation and file; Enter runs it."""

from __future__ import annotations

from pathlib import Path

from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Footer, Markdown, Static, Tree

from lab.errors import ScenarioError
from lab.scenario import load_scenario
from lab.scenario.catalog import Entry, bundled, scenario_files
from lab.tui.keys import BROWSER_KEYS, bindings
from lab.tui.screens.base import LabScreen
from lab.tui.widgets.warmup import WarmUpLine


def entries_for(paths: list[Path]) -> list[Entry]:
    """The bundled curriculum, plus every scenario under the given folders/files."""
    out = list(bundled())
    for root in paths:
        base = root if root.is_dir() else root.parent
        for f in scenario_files([root]):
            rel = f.relative_to(base).with_suffix("")
            topic = f"{base.name}/" + (rel.parts[0] if len(rel.parts) > 1 else "")
            out.append(Entry(rel.as_posix(), topic.rstrip("/"), f))
    return out


class BrowserScreen(LabScreen):
    KEYS = BROWSER_KEYS
    BINDINGS = bindings(BROWSER_KEYS)
    DEFAULT_CSS = """
    BrowserScreen #browser { height: 1fr; }
    BrowserScreen Tree { width: 36; min-width: 28; border-right: solid $primary; }
    BrowserScreen #detail { width: 1fr; padding: 0 1; }
    BrowserScreen #detail-title { text-style: bold; }
    BrowserScreen #banner { height: 1; background: $boost; padding: 0 1; }
    """

    def __init__(self, paths: list[Path] | None = None) -> None:
        super().__init__()
        self.entries = entries_for(paths or [])

    def compose(self) -> ComposeResult:
        yield Static(" [b]nnlab[/b]  pick a scenario (↑↓, Enter runs it, S searches it, ? help)", id="banner")
        # the kernels compiling on a first run (Enter meanwhile opens the run, which waits for them)
        yield WarmUpLine(getattr(self.app, "kernels", None), id="warm-up")
        with Horizontal(id="browser"):
            tree: Tree = Tree("scenarios", id="tree")
            tree.show_root = False
            topics: dict[str, object] = {}
            for entry in self.entries:
                node = topics.get(entry.topic)
                if node is None:
                    node = topics[entry.topic] = tree.root.add(Text(entry.topic, style="bold"), expand=True)
                node.add_leaf(Text(entry.name.split("/")[-1]), data=entry)  # file names are never markup
            yield tree
            with VerticalScroll(id="detail"):
                yield Static(id="detail-title")
                yield Markdown(id="detail-explain")
                yield Static(id="detail-file")
        yield Footer()

    def on_mount(self) -> None:
        tree = self.query_one(Tree)
        tree.focus()
        first = next((n for n in tree.root.children for n in n.children), None)
        if first is not None:
            tree.move_cursor(first)
            self.describe(first.data)

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        if isinstance(event.node.data, Entry):
            self.describe(event.node.data)

    def on_tree_node_selected(self, event: Tree.NodeSelected) -> None:
        if isinstance(event.node.data, Entry):
            self.open(event.node.data)

    def describe(self, entry: Entry) -> None:
        title = self.query_one("#detail-title", Static)
        explain = self.query_one("#detail-explain", Markdown)
        try:
            sc = load_scenario(entry.path)
        except Exception as exc:  # noqa: BLE001 - any file may be in a user's folder: show why, never crash
            if not isinstance(exc, ScenarioError):
                exc = ScenarioError(str(entry.path), [f"cannot be read: {type(exc).__name__}: {exc}"])
            title.update(Text(f"{entry.name}: invalid scenario", style="red"))
            explain.update("```\n" + str(exc) + "\n```")
            self.query_one("#detail-file", Static).update("")
            return
        title.update(Text.assemble(sc.name, (f"  ({entry.name}, {len(sc.expect)} checks)", "dim")))
        explain.update(sc.scenario.explain or "_No explanation._")
        self.query_one("#detail-file", Static).update(
            Syntax(entry.path.read_text(encoding="utf-8"), "toml", theme="ansi_dark", word_wrap=True))

    def action_run(self) -> None:
        node = self.query_one(Tree).cursor_node
        if node is not None and isinstance(node.data, Entry):
            self.open(node.data)

    def action_search(self) -> None:
        """The highlighted scenario's hyperparameter search (its [search] table), live."""
        from lab.tui.screens.search import SearchScreen

        node = self.query_one(Tree).cursor_node
        if node is None or not isinstance(node.data, Entry):
            self.notify("highlight a scenario first", severity="warning")
            return
        entry = node.data
        try:
            sc = load_scenario(entry.path)
        except Exception as exc:  # noqa: BLE001 - as in describe
            self.notify(str(exc), title="invalid scenario", severity="error", markup=False)
            return
        if sc.search is None:
            self.notify(f"{entry.name} has no [search] table (procedure/search-lr-l2 has one)", title="nothing to search",
                        severity="warning", markup=False)
            return
        self.app.push_screen(SearchScreen(sc, source=entry.name))

    def open(self, entry: Entry) -> None:
        from lab.tui.screens.run import RunScreen

        try:
            sc = load_scenario(entry.path)
        except Exception as exc:  # noqa: BLE001 - as in describe
            self.notify(str(exc), title="invalid scenario", severity="error", markup=False)
            return
        if sc.ensemble is not None:  # the members and the ensemble, live (lab/tui/screens/ensemble.py)
            from lab.tui.screens.ensemble import EnsembleScreen

            self.app.push_screen(EnsembleScreen(sc, source=entry.name, running=getattr(self.app, "autostart", True)))
            return
        self.app.push_screen(RunScreen(sc, source=entry.name, autostart=getattr(self.app, "autostart", True)))
