"""The help screen: every key of the app, grouped by the pane it works in."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from qjm_tui.tui.bars import KeyBar

INTRO = ("qjm keeps every job set in its store; this app shows them live. "
         "Keys work in the pane named above them; Ctrl+P finds any action or job set by name.")


class HelpScreen(ModalScreen[None]):
    """Lists every key with what it does; any of Escape, q or ? closes it."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 80; max-width: 100%; height: auto; max-height: 100%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    """
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close help", id="help.close")]

    def __init__(self, groups: list[tuple[str, list[tuple[str, str]]]]) -> None:
        super().__init__()
        self.groups = groups

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for n, (group, rows) in enumerate(self.groups):
            if not rows:
                continue
            if n:
                table.add_row("", "")
            table.add_row(Text(group, style="bold underline"), "")
            for keys, description in rows:
                table.add_row(Text(keys), Text(description))
        with VerticalScroll() as scroll:
            scroll.border_title = "Keys"
            scroll.border_subtitle = "Esc closes"
            yield Static(Text(INTRO, style="dim"))
            yield Static(table)
        yield KeyBar()
