"""The app on the terminals users have: the Linux console (TERM=linux), ASCII-only output
(LC_ALL=C), no colour (NO_COLOR). Each is run for real, as ``qjm`` in a pseudo-terminal, on a
copy of the busy store, and the bytes it writes are checked: only what that terminal shows,
no escaped code points, no colour codes without colour."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from qjm_tui import views
from qjm_tui.tui.terminal import CONSOLE_CHARS, Translation
from tests.snapshots.busy import BusyStore

REPO = Path(__file__).resolve().parents[1]


def start_in_pty(home: Path, env: dict[str, str], size: tuple[int, int] = (100, 30)
                 ) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``qjm`` (the app) on the store in ``home``, in a pseudo-terminal of ``size``, with
    these variables set; returns the process and the terminal's file descriptor."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
    full = {**os.environ, "QJM_HOME": str(home), "QJM_CONFIG": str(home / "none.toml"),
            "PYTHONPATH": os.pathsep.join(sys.path), "TERM": "xterm-256color", **env}
    if "NO_COLOR" not in env:
        full.pop("NO_COLOR", None)
    child = subprocess.Popen([sys.executable, "-m", "qjm_tui"], stdin=slave, stdout=slave, stderr=slave,
                             env=full, cwd=REPO, close_fds=True, start_new_session=True)
    os.close(slave)
    return child, master


def read_all(masters: dict[str, int], out: dict[str, bytes], until: float,
             done: callable = lambda data: False) -> None:  # type: ignore[valid-type]
    """Read what each terminal is sent into ``out`` until the time ``until``, or until
    ``done(data)`` holds for every one."""
    while time.monotonic() < until and not all(done(out[name]) for name in masters):
        ready, _, _ = select.select(list(masters.values()), [], [], 0.1)
        for name, fd in masters.items():
            if fd in ready:
                try:
                    out[name] += os.read(fd, 65536)
                except OSError:
                    pass


def plain(data: bytes) -> bytes:
    """Terminal output without its control sequences."""
    return re.sub(rb"\x1b(\[[0-9;?<>=$]*[ -/]*[@-~]|\][^\x07]*\x07|[@-_])", b"", data)


def run_apps(busy_store: BusyStore, folder: Path, runs: dict[str, dict[str, str]]) -> dict[str, bytes]:
    """Run the app side by side in each environment of ``runs``: its first screen, then ``2``
    (the jobs pane), then ``q``; returns all each one wrote."""
    children, masters = {}, {}
    for name, env in runs.items():
        busy_store.copy(folder / name)
        children[name], masters[name] = start_in_pty(folder / name, env)
    out = {name: b"" for name in runs}
    try:
        read_all(masters, out, time.monotonic() + 30, lambda data: b"Quit" in plain(data))
        for fd in masters.values():
            os.write(fd, b"2")
        read_all(masters, out, time.monotonic() + 1.5)
        for fd in masters.values():
            os.write(fd, b"q")
        read_all(masters, out, time.monotonic() + 2)
        for child in children.values():
            child.wait(timeout=10)
    finally:
        for name, child in children.items():
            if child.poll() is None:
                child.kill()
                child.wait()
            os.close(masters[name])
    return out


def test_charset_follows_the_locale_the_stream_and_term() -> None:
    class Stream:
        def __init__(self, encoding: str) -> None:
            self.encoding = encoding

    assert views.terminal_charset(Stream("utf-8"), "xterm-256color", "UTF-8") == "unicode"
    assert views.terminal_charset(Stream("utf-8"), "linux", "UTF-8") == "console"
    assert views.terminal_charset(Stream("utf-8"), "xterm", "ANSI_X3.4-1968") == "ascii", \
        "LC_ALL=C: Python's UTF-8 mode writes UTF-8, but the terminal was not promised it"
    assert views.terminal_charset(Stream("ascii"), "xterm", "UTF-8") == "ascii"


def test_the_translation_keeps_every_cell() -> None:
    text = "╭─ 1 Job sets ──╮│●◐◔○✗⊘‼◆ ▏▎█░… · é 量子 ⏎"
    for charset, allowed in (("ascii", set()), ("console", CONSOLE_CHARS)):
        out = text.translate(Translation(charset))
        assert all(ch.isascii() or ch in allowed for ch in out), (charset, out)
        assert views.cell_width(out) == views.cell_width(text), (charset, out)
    assert "é".translate(Translation("ascii")) == "e"
    assert "╭─╮".translate(Translation("console")) == "┌─┐", "square corners on the console"


def test_glyphs_tell_every_status_apart() -> None:
    for glyphs in (views.JOB_GLYPHS, views.JOB_GLYPHS_ASCII, views.SET_GLYPHS, views.SET_GLYPHS_ASCII):
        assert len(set(glyphs.values())) == len(glyphs), glyphs
    assert views.JOB_GLYPHS["queued"] != views.JOB_GLYPHS["submitting"]
    assert views.SET_GLYPHS["partial"] not in "◐◑◒◓", "partial is no half circle beside running's"


def test_ascii_only_the_linux_console_and_no_colour_for_real(busy_store: BusyStore, tmp_path: Path) -> None:
    runs = {
        "ascii": {"LC_ALL": "C", "PYTHONCOERCECLOCALE": "0", "LANG": "C"},
        "console": {"TERM": "linux"},
        "nocolor": {"NO_COLOR": "1"},
    }
    out = run_apps(busy_store, tmp_path, runs)

    data = out["ascii"]
    assert b"Quit" in plain(data), "the app drew its screen"
    assert all(b < 0x80 for b in data), "only ASCII to an ASCII terminal"
    assert b"\\u" not in data and b"\\x" not in data, "no code points spelled out"
    assert b"+-" in plain(data) and b"# done" in plain(data)

    text = out["console"].decode("utf-8")
    strange = {ch for ch in text if not ch.isascii() and ch not in CONSOLE_CHARS}
    assert not strange, f"characters the console's font lacks: {strange}"
    assert "┌" in text and "╭" not in text, "square corners"

    data = out["nocolor"]
    colours = re.findall(rb"\x1b\[[0-9;]*?(?:38|48);[25];[0-9;]*m", data)
    assert not colours, f"colour codes without colour: {colours[:3]}"
    assert b"done" in plain(data) and b"interrupted" in plain(data), "the states still read, by their words"
