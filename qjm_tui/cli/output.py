"""What the command line writes: data on stdout, messages on stderr, tables, JSON, CSV and files,
the exit codes and the one-line error a failure becomes."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import logging
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from qjm_tui.core.errors import (
    JobManagerInputError,
    JobManagerJobNotFound,
    JobManagerUnknownJobSet,
    StoreError,
)
from qjm_tui.core.text import printable

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


def to_json(data: Any, indent: int | None = 2) -> str:
    """``data`` as JSON text, with Qiskit's result values (complex, numpy, dates) converted."""
    from qjm_tui.core.jsonable import jsonable

    return json.dumps(jsonable(data), indent=indent)


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


def csv_text(items: Sequence[dict[str, Any]]) -> str:
    """Counts as CSV, one row per outcome: ``experiment,name,outcome,count``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["experiment", "name", "outcome", "count"])
    for item in items:
        for outcome, count in sorted((item["counts"] or {}).items()):
            writer.writerow([item["index"], item["name"], outcome, count])
    return buffer.getvalue()


def write_output(target: str, text: str) -> None:
    """Write to a file atomically (a reader never sees half a file), or to stdout for '-'."""
    if target == "-":
        sys.stdout.write(printable(text, keep_newlines=True))
        sys.stdout.flush()
        return
    path = Path(target)
    if path.is_dir():
        raise CliError(f"{path}: is a directory; give a file name to -o", EXIT_USAGE)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise CliError(f"{path}: cannot write: {exc.strerror}") from None


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


class LogFileHandler(logging.FileHandler):
    """Appends log records to qjm's log file, made (with its folder) only when a record comes.

    A command that logs nothing leaves nothing on disk; a log file that cannot be written drops
    the record instead of printing a logging traceback over the command's output.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8", delay=True)

    def _open(self) -> TextIO:
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        """Drop the record: the terminal is for the command's own output."""


def log_to_file() -> None:
    """Send the log records of qjm and the libraries it uses (qiskit-ibm-runtime) to the log
    file (``$QJM_HOME/qjm.log``), never to the terminal."""
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
    handler.setLevel(logging.WARNING)
    root.addHandler(handler)
