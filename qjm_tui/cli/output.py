"""What the command line writes: data on stdout, messages on stderr, tables, JSON, CSV and files,
the exit codes and the one-line error a failure becomes."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO, cast

from qjm_tui.core.errors import (
    JobManagerInputError,
    JobManagerJobNotFound,
    JobManagerUnknownJobSet,
    StoreError,
)
from qjm_tui.core.files import LogFileHandler, describe_os_error, write_file
from qjm_tui.core.text import printable
from qjm_tui.exporting import to_json

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A failure reported as one line on stderr, with the exit code it stands for."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def exit_code_for(exc: BaseException) -> int:
    """2 for bad input (the user can fix the command or point it at a usable store), 1 for the rest."""
    if isinstance(exc, CliError):
        return exc.code
    if isinstance(exc, (JobManagerInputError, JobManagerUnknownJobSet, JobManagerJobNotFound, StoreError)):
        return EXIT_USAGE
    return EXIT_FAILED


def out(text: str = "") -> None:
    """One line of data on stdout; control characters in it are shown escaped (text read from a
    store or a service never acts on the terminal)."""
    sys.stdout.write(printable(text, keep_newlines=True) + "\n")
    sys.stdout.flush()


def err(text: str) -> None:
    """One line on stderr, control characters escaped as in :func:`out`."""
    sys.stderr.write(printable(text, keep_newlines=True) + "\n")
    sys.stderr.flush()


def note(text: str) -> None:
    """A message for the user on stderr: ``qjm: <text>``."""
    err(f"qjm: {text}")


def log_line(text: str) -> None:
    """A timestamped line on stderr (a detached child's stderr is the log file)."""
    err(f"{dt.datetime.now().isoformat(timespec='seconds')} qjm[{os.getpid()}]: {text}")


def print_json(data: Any) -> None:
    """``data`` as JSON on stdout."""
    out(to_json(data))


def stderr_is_terminal() -> bool:
    """Whether progress can be a live bar (stderr is a terminal)."""
    return sys.stderr.isatty()


def stdout_is_terminal() -> bool:
    """Whether tables can be drawn with rich (stdout is a terminal)."""
    return sys.stdout.isatty()


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A table: rich on a terminal; aligned plain columns (greppable, no wrapping) otherwise."""
    if stdout_is_terminal():
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, header_style="bold", pad_edge=False)
        for header in headers:
            # One line per row, however narrow the terminal: long names end in an ellipsis.
            table.add_column(header, no_wrap=True, overflow="ellipsis")
        for row in rows:
            # Text, not markup: a stored "[red]" is shown as it is, never as a colour.
            table.add_row(*(Text(printable(cell)) for cell in row))
        Console(file=sys.stdout).print(table)
        return
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    for line in [headers, *rows]:
        out("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())


def write_output(target: str, text: str | Callable[[TextIO], Any]) -> Any:
    """Write ``text`` where ``-o`` says, through the one safe write (:func:`write_file`): '-' is
    stdout (control characters escaped, as all output is), a device or FIFO is written through,
    a symlink followed, a regular file replaced whole. ``text`` may be a function that writes
    to the open file (see :func:`~qjm_tui.exporting.write_atomically`); its answer is returned.
    A failure is exit 2 naming the place."""
    if target == "-":
        if isinstance(text, str):
            text = printable(text, keep_newlines=True)
        else:
            writer = text

            def escaped(fh: TextIO) -> Any:
                return writer(cast(TextIO, EscapedStream(fh)))

            text = escaped
    try:
        return write_file(target, text)
    except OSError as exc:
        place = "standard output" if target == "-" else target
        if isinstance(exc, IsADirectoryError):
            raise CliError(f"{place}: is a directory; give a file name to -o", EXIT_USAGE) from None
        raise CliError(f"{place}: cannot write: {describe_os_error(exc)}", EXIT_USAGE) from None


class EscapedStream:
    """Writes to a terminal stream with control characters shown escaped (as ``out`` does)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(printable(text, keep_newlines=True))


@contextlib.contextmanager
def warnings_as_notes() -> Iterator[None]:
    """Show Python warnings as ``qjm: warning: ...`` lines instead of source excerpts."""
    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        err(f"qjm: warning: {message}")

    with warnings.catch_warnings():
        warnings.showwarning = show
        # qiskit-ibm-runtime warns about one fake device whenever the device list is built;
        # it says nothing about the backend the user asked for.
        warnings.filterwarnings("ignore", message="Properties of fake_", category=UserWarning)
        # Deprecation notices are for developers of the libraries qjm uses, not for its users.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
        yield


def log_to_file() -> None:
    """Send the log records of qjm and the libraries it uses (qiskit-ibm-runtime) to the log
    file (``$QJM_HOME/qjm.log``), never to the terminal. The app's own logging setup then finds
    the root logger configured and keeps this."""
    from qjm_tui.config import log_path

    root = logging.getLogger()
    path = log_path()
    for old in [h for h in root.handlers if isinstance(h, LogFileHandler)]:
        if Path(old.baseFilename) == path.absolute():
            return
        root.removeHandler(old)
        old.close()
    handler = LogFileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s[%(process)d] %(levelname)s: %(message)s"))
    root.addHandler(handler)
    # qjm's own notes down to INFO (the app logs what it does); other libraries from WARNING,
    # the root logger's level.
    logging.getLogger("qjm_tui").setLevel(logging.INFO)
