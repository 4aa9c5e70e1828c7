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
