"""What the terminal can show, and a driver that writes only that.

:func:`qjm_tui.views.terminal_charset` says what the terminal draws: every glyph (``unicode``),
the Linux console's font (``console``: box drawing and blocks, no circles) or ASCII only
(``ascii``: output that is not UTF-8, such as ``LC_ALL=C``). The app picks its glyphs from
that, and for the last two it runs on :func:`charset_driver`, which turns whatever else reaches
the terminal (Textual's rounded borders, scrollbars, ellipses, names in other scripts) into
what the terminal shows, cell for cell, instead of escape text like ``\\u256d``.
"""

from __future__ import annotations

import functools
import sys
import unicodedata

from textual.driver import Driver

from qjm_tui import views

#: what the Linux console's font has besides ASCII: code page 437's characters
CONSOLE_CHARS = frozenset(bytes(range(0x80, 0x100)).decode("cp437"))

#: stand-ins, by character, for what a charset lacks (before falling back to shapes and "?")
_STAND_INS = {
    "…": "~", "·": ".", "–": "-", "—": "-", "‘": "'", "’": "'", "“": '"', "”": '"', "×": "x",
    "▲": "^", "▼": "v", "◀": "<", "▶": ">", "→": ">", "←": "<", "↑": "^", "↓": "v", "✓": "v",
    "✗": "x", "‼": "!", "░": "-", "▒": "#", "▓": "#", "█": "#",
}
#: box-drawing stand-ins in the console's font: rounded and heavy lines as its light ones
_CONSOLE_BOX = {"╭": "┌", "╮": "┐", "╰": "└", "╯": "┘", "━": "─", "┃": "│", "┏": "┌", "┓": "┐",
                "┗": "└", "┛": "┘", "╍": "─", "╏": "│", "┅": "─", "┇": "│", "╸": "─", "╺": "─",
                "▔": "▀", "▁": "▄", "▂": "▄", "▃": "▄", "▅": "▄", "▆": "▄", "▇": "█", "▉": "█",
                "▊": "▌", "▋": "▌", "▍": "▌", "▎": "▌", "▏": "▌", "▕": "▐"}


def _box_to_ascii(ch: str) -> str | None:
    """A box-drawing or block character as ASCII (lines to ``-`` and ``|``, the rest to
    ``+``), or None if it is neither."""
    code = ord(ch)
    if 0x2500 <= code <= 0x257F:
        name = unicodedata.name(ch, "")
        if "HORIZONTAL" in name and "VERTICAL" not in name and "AND" not in name:
            return "-"
        if "VERTICAL" in name and "HORIZONTAL" not in name and "AND" not in name:
            return "|"
        if "LEFT" in name and "RIGHT" not in name and "DOWN" not in name and "UP" not in name:
            return "-"
        return "+"
    if 0x2580 <= code <= 0x259F:
        return "#" if ch not in "▔▁" else "_" if ch == "▁" else "-"
    return None


class Translation(dict):  # type: ignore[type-arg]
    """A ``str.translate`` table for one charset, filled as characters come: kept as they
    are if the charset has them, else a stand-in of the same width (a wide character becomes
    two)."""

    def __init__(self, charset: str) -> None:
        super().__init__()
        self.charset = charset

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        self[code] = out = self._stand_in(ch)
        return out

    def _stand_in(self, ch: str) -> str:
        if ch.isascii() or (self.charset == "console" and ch in CONSOLE_CHARS):
            return ch
        if self.charset == "console" and ch in _CONSOLE_BOX:
            return _CONSOLE_BOX[ch]
        out = _STAND_INS.get(ch) or _box_to_ascii(ch)
        if out is None:  # a letter with an accent: the letter (é as e)
            base = unicodedata.normalize("NFKD", ch)[:1]
            out = base if base.isascii() and base.isprintable() and views.cell_width(ch) == 1 else None
        if out is None:
            width = views.cell_width(ch)
            out = "?" * width
        return out


@functools.lru_cache(maxsize=4)
def charset_driver(charset: str) -> type[Driver]:
    """The terminal driver of this platform, writing only what ``charset`` shows."""
    base: type[Driver]
    if sys.platform == "win32":
        from textual.drivers.windows_driver import WindowsDriver as base
    else:
        from textual.drivers.linux_driver import LinuxDriver as base
    table = Translation(charset)

    class CharsetDriver(base):  # type: ignore[valid-type, misc]
        """Writes every frame through the charset's translation table."""

        def write(self, data: str) -> None:
            super().write(data.translate(table))

    CharsetDriver.__name__ = f"{base.__name__}For{charset.title()}"
    return CharsetDriver


def output_stream() -> object:
    """The stream the app draws on: Textual writes to the process's original stderr."""
    return sys.__stderr__
