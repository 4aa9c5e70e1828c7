"""Cleaning text that comes from elsewhere (Qiskit errors, services) before users read it."""

from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    """Remove terminal colour codes (Qiskit puts them in some error texts)."""
    return _ANSI.sub("", text)


def error_text(exc: BaseException) -> str:
    """An exception as one clean message: its text without colour codes, else its class name."""
    return strip_ansi(str(exc)).strip() or type(exc).__name__


def printable(text: str, keep_newlines: bool = False) -> str:
    """``text`` safe to show on a terminal: every character that is not printable (escape
    sequences, bell, carriage return, newline, the bidirectional overrides that reorder what is
    shown) written as its escape, such as ``\\x1b``. Text from a store written before names
    were checked, or from a service, can then neither move the cursor, retitle the window nor
    fake other lines. ``keep_newlines`` keeps newlines and tabs, for text that is several lines
    on purpose."""
    if keep_newlines:
        return "\n".join(_escaped(line, "\t") for line in text.split("\n"))
    return _escaped(text, "")


def _escaped(text: str, kept: str) -> str:
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in kept else repr(c)[1:-1] for c in text)
