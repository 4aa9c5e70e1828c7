"""Small modal screens the job-set actions ask through: confirm, a line of text, export, quit.

Each returns its answer with ``dismiss`` (None or False when the user backs out with Escape),
so the action that pushed it decides what to do; none of them touches the store.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from textual import _time, events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static
from textual.widgets._select import SelectOverlay

from qjm_tui.exporting import FORMATS, SUFFIXES, default_export_path
from qjm_tui.tui.bars import KeyBar

Answer = TypeVar("Answer")


class FreshInput(Input):
    """A text field that takes only keys pressed once its dialog is open: keys typed while the
    dialog was on its way were meant for the screen before it, not for this field."""

    async def _on_key(self, event: events.Key) -> None:
        if event.time < getattr(self.screen, "opened_at", 0.0):
            event.stop()
            event.prevent_default()
            return
        await super()._on_key(event)


class Dialog(ModalScreen[Answer]):
    """A modal screen whose every field is reached by Tab and Shift+Tab (the screen's own
    keys) and by Down and Up, with a key bar of its own keys along the bottom. Its text
    fields are :class:`FreshInput`: keys typed before it opened do not land in them."""

    #: when the dialog was shown (Textual's event clock)
    opened_at = float("inf")

    def on_mount(self) -> None:
        self.opened_at = _time.get_time()

    BINDINGS = [
        Binding("tab", "app.focus_next", "Next field", id="dialog.tab"),
        Binding("down", "field(1)", "Next field", show=False, priority=True, id="dialog.next_field"),
        Binding("up", "field(-1)", "Previous field", show=False, priority=True, id="dialog.previous_field"),
    ]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "field":  # an open drop-down list takes Up and Down itself
            return not isinstance(self.focused, SelectOverlay)
        return True

    def action_field(self, step: int) -> None:
        """Move to the next (1) or previous (-1) field."""
        if step > 0:
            self.focus_next()
        else:
            self.focus_previous()

    def compose_key_bar(self) -> ComposeResult:
        """The key bar; every dialog yields it after its content."""
        yield KeyBar()

DIALOG_CSS = """
    align: center middle;
    & > Vertical {
        width: 72;
        max-width: 100%;
        height: auto;
        border: thick $primary;
        background: $surface;
        padding: 1 2;
    }
    .title { text-style: bold; margin-bottom: 1; }
    .error { color: $error; height: auto; }
    Horizontal { height: auto; margin-top: 1; }
    Button { margin-right: 1; }
"""


class ConfirmDialog(Dialog[bool]):
    """Ask yes or no about one action; True only on an explicit yes."""

    DEFAULT_CSS = f"ConfirmDialog {{{DIALOG_CSS}}}"
    BINDINGS = [Binding("escape,n", "dismiss(False)", "Back", id="dialog.back"),
                Binding("y", "dismiss(True)", "Yes", id="dialog.yes")]

    def __init__(self, title: str, body: str, confirm: str) -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.confirm = confirm

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="title")
            yield Static(self.body, id="body", markup=False)
            with Horizontal():
                yield Button(f"{self.confirm} (y)", id="yes", variant="error")
                yield Button("Back (n)", id="no")
        yield from self.compose_key_bar()

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    @on(Button.Pressed)
    def answer(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class TextPrompt(Dialog["str | None"]):
    """Ask for one line of text (a name, tags, a path); Enter answers, Escape backs out."""

    DEFAULT_CSS = f"TextPrompt {{{DIALOG_CSS}}}"
    BINDINGS = [Binding("escape", "dismiss(None)", "Back", id="dialog.back")]

    def __init__(self, title: str, value: str = "", placeholder: str = "", hint: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.value = value
        self.placeholder = placeholder
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="title")
            yield FreshInput(self.value, placeholder=self.placeholder, id="text")
            yield Static(self.hint, classes="hint", markup=False)
        yield from self.compose_key_bar()

    @on(Input.Submitted)
    def submit(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)


class ExportDialog(Dialog["tuple[str, Path] | None"]):
    """Ask for an export format and a file; the path follows the format until it is edited."""

    DEFAULT_CSS = f"ExportDialog {{{DIALOG_CSS}}}"
    BINDINGS = [Binding("escape", "dismiss(None)", "Back", id="dialog.back")]

    def __init__(self, set_name: str, folder: Path) -> None:
        super().__init__()
        self.set_name = set_name
        self.folder = folder

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Export the results of {self.set_name}", classes="title")
            yield Select([(f"{name}: {what}", name) for name, what in FORMATS.items()],
                         value="json", allow_blank=False, id="format")
            yield FreshInput(str(default_export_path(self.set_name, "json", self.folder)), id="path")
            yield Static("", id="path-error", classes="error", markup=False)
            with Horizontal():
                yield Button("Export", id="export", variant="primary")
                yield Button("Back", id="back")
        yield from self.compose_key_bar()

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()

    @on(Select.Changed, "#format")
    def follow_format(self, event: Select.Changed) -> None:
        path = self.query_one("#path", Input)
        fmt = str(event.value)
        if any(path.value.endswith(suffix) for suffix in SUFFIXES.values()):
            stem = path.value
            for suffix in sorted(SUFFIXES.values(), key=len, reverse=True):
                if stem.endswith(suffix):
                    stem = stem[: -len(suffix)]
                    break
            path.value = stem + SUFFIXES[fmt]

    @on(Input.Submitted, "#path")
    @on(Button.Pressed, "#export")
    def submit(self) -> None:
        text = self.query_one("#path", Input).value.strip()
        if not text:
            self.query_one("#path-error", Static).update("give a file to write the results to")
            return
        path = Path(text).expanduser()
        if path.is_dir():
            self.query_one("#path-error", Static).update(f"{path}: is a directory; give a file name")
            return
        self.dismiss((str(self.query_one("#format", Select).value), path))

    @on(Button.Pressed, "#back")
    def back(self) -> None:
        self.dismiss(None)


class QuitDialog(Dialog[str]):
    """Ask what becomes of the job sets this app runs when it quits: ``"background"`` (a
    detached process finishes them), ``"cancel"`` or ``"stay"``."""

    DEFAULT_CSS = f"QuitDialog {{{DIALOG_CSS}}}"
    BINDINGS = [Binding("escape,s", "dismiss('stay')", "Stay", id="quit.stay"),
                Binding("k", "dismiss('background')", "Keep running", id="quit.background"),
                Binding("c", "dismiss('cancel')", "Cancel them", id="quit.cancel")]

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self.names = names

    def compose(self) -> ComposeResult:
        count = len(self.names)
        sets = "1 job set" if count == 1 else f"{count} job sets"
        with Vertical():
            yield Label(f"This app is running {sets}", classes="title")
            yield Static(", ".join(self.names) + "\n\nKeep them running in a background process "
                         "(it finishes them; `qjm wait ID` follows one), cancel them (finished "
                         "results are kept), or stay in the app? Ctrl+C again keeps them running.",
                         id="body", markup=False)
            with Horizontal():
                yield Button("Keep running (k)", id="background", variant="primary")
                yield Button("Cancel them (c)", id="cancel", variant="error")
                yield Button("Stay (s)", id="stay")
        yield from self.compose_key_bar()

    def on_mount(self) -> None:
        self.query_one("#stay", Button).focus()

    @on(Button.Pressed)
    def answer(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id or "stay")
