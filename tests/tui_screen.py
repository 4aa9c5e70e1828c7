"""Reading the app's screen as a user sees it: the lines of text on the terminal, and checks
that what a user must read there is whole."""

from __future__ import annotations

import io
import re

from rich.console import Console
from textual.app import App


def screen_lines(app: App) -> list[str]:  # type: ignore[type-arg]
    """The screen as lines of plain text, exactly as wide as the terminal (every cell, the
    dialogs and the screens beneath them included)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", record=True, legacy_windows=False, safe_box=False)
    update = app.screen._compositor.render_update(full=True, screen_stack=app._background_screens,
                                                  simplify=True)
    console.print(update)
    return console.export_text(styles=False).rstrip("\n").split("\n")


#: a number as the app writes it: digits with thousands separators
NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+|\d+")


def whole_numbers(text: str, numbers: list[int]) -> bool:
    """Whether every one of ``numbers`` is in ``text`` whole (``10,000``, not ``10,0``)."""
    found = {int(n.replace(",", "")) for n in NUMBER.findall(text)}
    return all(n in found for n in numbers)


def cell_slice(line: str, start: int, stop: int) -> str:
    """The characters of ``line`` in cells ``start`` to ``stop - 1`` (a wide character takes
    two cells)."""
    from qjm_tui.views import cell_width

    out, x = [], 0
    for ch in line:
        w = cell_width(ch)
        if x >= start and x + w <= stop:
            out.append(ch)
        x += w
    return "".join(out)
