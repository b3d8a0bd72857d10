"""Every key of the lab, declared once per screen.

A screen's `KEYS` tuple is the single source for its Textual BINDINGS (and so its
footer), the command palette (every key is a command, found by its description), the
help screen's table and the README's key table (tests/test_tui_live.py keeps the README in
step: regenerate it with `python -m lab.tui.keys`).
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding

from lab.tui.controls import DROPOUT_MODES, OPTIMIZERS


@dataclass(frozen=True)
class Key:
    keys: str  # Textual key names, comma-separated ("plus,equals_sign")
    action: str  # the screen's action, e.g. "change('lr_up')"
    label: str  # short label for the footer
    description: str  # what it does, for the help screen, the palette and the README
    display: str = ""  # how the key is written ("+"); default: the first key name
    footer: bool = False  # shown in the footer (the rest: help screen and palette)
    group: str = ""  # heading on the help screen and in the README
    priority: bool = False  # before the focused widget's own binding of the key (e.g. a table's enter)

    @property
    def shown(self) -> str:
        if self.display:
            return self.display
        first = self.keys.split(",")[0]
        return {"space": "space", "question_mark": "?", "escape": "escape"}.get(first, first)

    def binding(self) -> Binding:
        return Binding(self.keys, self.action, self.label, show=self.footer, key_display=self.display or None,
                       priority=self.priority)


def bindings(keys: tuple[Key, ...]) -> list[Binding]:
    return [k.binding() for k in keys]


RUN = "run"
CHANGE = "change the cause"
LOOK = "look closer"
FILES = "keep it"
STEPS = "the step cursor"
APP = "the lab"

RUN_KEYS: tuple[Key, ...] = (
    Key("space", "toggle", "run/pause", "run or pause (at the end: go on past the scenario's steps)", footer=True,
        group=RUN),
    Key("n", "step_once", "step", "one training step, then pause", footer=True, group=RUN),
    Key("plus,equals_sign", "faster", "faster", "faster pace (steps per second)", display="+", footer=True, group=RUN),
    Key("minus", "slower", "slower", "slower pace", display="-", footer=True, group=RUN),
    Key("r", "reset", "replay", "reset to step 0 and replay, same initialisation (your changes are kept)", group=RUN),
    Key("R", "reset_new_seed", "new seed", "reset to step 0 with a new seed (a new initialisation)", group=RUN),
    Key("l", "change('lr_up')", "lr ×√10", "learning rate ×√10", group=CHANGE),
    Key("L", "change('lr_down')", "lr ÷√10", "learning rate ÷√10", group=CHANGE),
    Key("i", "change('next_init')", "init", "next weight initialisation, with its own scale (re-initialises)",
        group=CHANGE),
    Key("a", "change('next_activation')", "activation", "next activation (keeps the weights)", group=CHANGE),
    Key("d", "change('dropout_up')", "dropout +", "dropout +0.1", group=CHANGE),
    Key("D", "change('dropout_down')", "dropout −", "dropout −0.1", group=CHANGE),
    Key("m", "change('dropout_mode')", "dropout mode",
        f"dropout mode: {', '.join(DROPOUT_MODES)} (forgets the test-time scaling)", group=CHANGE),
    Key("b", "change('batchnorm')", "batchnorm", "batchnorm on/off", group=CHANGE),
    Key("t", "change('transfer_phase')", "phase", "transfer learning: feature extraction (hidden layers frozen) or "
        "fine-tune (lr x0.1)", group=CHANGE),
    Key("f", "change('freeze_more')", "freeze +", "transfer learning: freeze one more lower layer", group=CHANGE),
    Key("F", "change('freeze_less')", "freeze −", "transfer learning: unfreeze the highest frozen layer", group=CHANGE),
    Key("u", "change('lr_factor')", "lr factor", "transfer learning: lr factor 1, 0.1 (the notes' fine-tuning "
        "lr), 0.01", group=CHANGE),
    Key("o", "change('optimizer')", "optimizer", f"next optimizer: {', '.join(OPTIMIZERS)}",
        group=CHANGE),
    Key("s", "change('schedule')", "schedule", "next lr schedule, starting now and spanning the rest of the run",
        group=CHANGE),
    Key("p", "change('preprocess')", "preprocessing", "next preprocessing: none, center, center+normalize, pca, whiten",
        group=CHANGE),
    Key("w", "change('weight_decay')", "weight decay", "next weight decay: 0, 1e-4, 1e-3, 1e-2, 1e-1", group=CHANGE),
    Key("x", "change('batch_up')", "batch ×2", "batch size ×2 (at most the training rows; the lr stays: "
        "for the linear-scaling rule raise it too, with l, and warm up, with s)", group=CHANGE),
    Key("X", "change('batch_down')", "batch ÷2", "batch size ÷2 (at least 1)", group=CHANGE),
    Key("h", "toggle_histograms", "weights", "histograms: activations | gradients, or weights | updates", group=LOOK),
    Key("g", "toggle_curve", "loss/acc", "curves: loss or accuracy (both when there is room)", group=LOOK),
    Key("v", "cycle_view", "view", "context panel: explanation, event log, decision boundary, weight path, "
        "lr schedule, activation cost", footer=True, group=LOOK),
    Key("up", "scroll_context(-1)", "scroll up", "scroll the context panel up", display="↑", group=LOOK),
    Key("down", "scroll_context(1)", "scroll down", "scroll the context panel down", display="↓", group=LOOK),
    Key("pageup", "page_layers(-1)", "layers ↑", "previous page of layers (deep networks)", display="pgup", group=LOOK),
    Key("pagedown", "page_layers(1)", "layers ↓", "next page of layers (deep networks)", display="pgdn", group=LOOK),
    Key("z", "zoom", "zoom", "zoom on a layer: full axes, log counts, the histogram over the whole run with a step "
        "cursor", footer=True, group=LOOK),
    Key("c", "compare", "compare", "compare the scenario's variants side by side, in lockstep", group=LOOK),
    Key("S", "search", "search", "search this scenario's hyperparameters (its search table): trials ranked as "
        "they finish, a scatter, border warnings", group=LOOK),
    Key("ctrl+s", "save", "save", "save the session as a scenario file that replays and checks", display="ctrl+s",
        group=FILES),
    Key("e", "export", "export", "export the history (scalars and per-layer statistics) as CSV", group=FILES),
    Key("question_mark", "app.show_help", "help", "help: every key, the table's columns, the scenario", display="?",
        footer=True, group=APP),
    Key("escape", "back", "back", "back to the browser", group=APP),
    Key("q", "app.quit", "quit", "quit the lab", footer=True, group=APP),
)

BROWSER_KEYS: tuple[Key, ...] = (
    Key("enter", "run", "run", "run the highlighted scenario", footer=True, group=RUN),
    Key("S", "search", "search", "search the highlighted scenario's hyperparameters (its search table)",
        footer=True, group=RUN),
    Key("question_mark", "app.show_help", "help", "help", display="?", footer=True, group=APP),
    Key("q", "app.quit", "quit", "quit the lab", footer=True, group=APP),
)

PAGE = 10  # records the zoom's step cursor moves with shift+arrows or the page keys

ZOOM_KEYS: tuple[Key, ...] = (
    Key("left_square_bracket", "layer(-1)", "prev layer", "previous layer", display="[", footer=True, group=LOOK),
    Key("right_square_bracket", "layer(1)", "next layer", "next layer", display="]", footer=True, group=LOOK),
    Key("t", "toggle_quantity", "act/grad", "activations or gradients (weights or updates, after h)", footer=True,
        group=LOOK),
    Key("h", "toggle_family", "weights", "histograms: activations | gradients, or weights | updates", group=LOOK),
    Key("g", "toggle_log", "log", "log counts on/off", footer=True, group=LOOK),
    Key("left", "cursor(-1)", "earlier", "step cursor: the record before (or a click on the over-time view)",
        display="←", footer=True, group=STEPS),
    Key("right", "cursor(1)", "later", "step cursor: the record after (after the last: live)", display="→",
        footer=True, group=STEPS),
    Key("shift+left,pageup", f"cursor(-{PAGE})", f"{PAGE} earlier", f"step cursor: {PAGE} records earlier",
        display="shift+← pgup", group=STEPS),
    Key("shift+right,pagedown", f"cursor({PAGE})", f"{PAGE} later", f"step cursor: {PAGE} records later",
        display="shift+→ pgdn", group=STEPS),
    Key("home", "cursor_start", "step 0", "step cursor: step 0", group=STEPS),
    Key("end", "cursor_live", "live", "step cursor: live (follow the run)", footer=True, group=STEPS),
    Key("question_mark", "app.show_help", "help", "help", display="?", footer=True, group=APP),
    Key("escape,z", "app.pop_screen", "back", "back to the run", display="escape", footer=True, group=APP),
    Key("q", "app.quit", "quit", "quit the lab", footer=True, group=APP),
)

def lockstep_keys(runs: str) -> tuple[Key, ...]:
    """Pause, step, pace and replay for a screen stepping several runs together (`runs`: "variant")."""
    return (
        Key("space", "toggle", "run/pause", f"run or pause every {runs} (at the end: go on past the scenario's "
            "steps)", footer=True, group=RUN),
        Key("n", "step_once", "step", f"one training step of every {runs}, then pause", group=RUN),
        Key("plus,equals_sign", "faster", "faster", "faster pace (steps per second)", display="+", footer=True,
            group=RUN),
        Key("minus", "slower", "slower", "slower pace", display="-", footer=True, group=RUN),
        Key("r", "reset", "replay", f"reset every {runs} to step 0 and replay", footer=True, group=RUN),
    )


COMPARE_KEYS: tuple[Key, ...] = (
    *lockstep_keys("variant"),
    Key("g", "toggle_chart", "loss/acc", "chart: training loss or validation accuracy of every variant", footer=True,
        group=LOOK),
    Key("pageup", "page_layers(-1)", "layers ↑", "previous page of layers (deep networks, many variants)",
        display="pgup", group=LOOK),
    Key("pagedown", "page_layers(1)", "layers ↓", "next page of layers (deep networks, many variants)",
        display="pgdn", group=LOOK),
    Key("h", "toggle_histograms", "weights",
        "histograms in the table (wide terminals): activations | gradients, or weights | updates", group=LOOK),
    Key("question_mark", "app.show_help", "help", "help", display="?", footer=True, group=APP),
    Key("escape,c", "app.pop_screen", "back", "back to the run", display="escape", group=APP),
    Key("q", "app.quit", "quit", "quit the lab", footer=True, group=APP),
)

SEARCH_KEYS: tuple[Key, ...] = (
    Key("enter", "open_trial", "open", "open the highlighted trial in the run screen: its settings, seed and steps "
        "(escape comes back here)", footer=True, group=LOOK, priority=True),
    Key("p", "next_param", "parameter", "scatter: the metric against the next searched parameter", footer=True,
        group=LOOK),
    Key("g", "toggle_chart", "chart", "the scatter in place of the table, and back (short terminals)", footer=True,
        group=LOOK),
    Key("x", "stop", "stop", "stop the search, keeping the trials that finished", group=RUN),
    Key("question_mark", "app.show_help", "help", "help", display="?", footer=True, group=APP),
    Key("escape", "back", "back", "stop the search and go back", display="escape", footer=True, group=APP),
    Key("q", "app.quit", "quit", "quit the lab (stops the search)", footer=True, group=APP),
)

ENSEMBLE_KEYS: tuple[Key, ...] = (
    *lockstep_keys("member"),
    Key("g", "toggle_chart", "acc/loss", "chart: validation accuracy or loss of every member and the ensemble",
        footer=True, group=LOOK),
    Key("question_mark", "app.show_help", "help", "help", display="?", footer=True, group=APP),
    Key("escape", "app.pop_screen", "back", "back to the browser", display="escape", footer=True, group=APP),
    Key("q", "app.quit", "quit", "quit the lab", footer=True, group=APP),
)

HELP_KEYS: tuple[Key, ...] = (
    Key("escape,question_mark", "app.pop_screen", "close", "close the help", display="escape", footer=True, group=APP),
    Key("q", "app.quit", "quit", "quit the lab", footer=True, group=APP),
)


def markdown_table(keys: tuple[Key, ...]) -> str:
    """The README's table of a screen's keys, grouped as on the help screen."""
    lines = ["| key | does |", "|---|---|"]
    for k in keys:
        lines.append(f"| `{k.shown}` | {k.description.replace('|', chr(92) + '|')} |")
    return "\n".join(lines)


README_START = "<!-- keys: generated from lab/tui/keys.py (python -m lab.tui.keys); tests/test_tui_live.py keeps them equal -->"
README_END = "<!-- /keys -->"


def readme_block() -> str:
    return f"{README_START}\n{markdown_table(RUN_KEYS)}\n{README_END}"


if __name__ == "__main__":  # rewrite the README's key table from RUN_KEYS
    from pathlib import Path

    readme = Path(__file__).resolve().parents[2] / "README.md"
    text = readme.read_text(encoding="utf-8")
    start, end = text.index(README_START), text.index(README_END) + len(README_END)
    readme.write_text(text[:start] + readme_block() + text[end:], encoding="utf-8")
    print(f"updated {readme}")
