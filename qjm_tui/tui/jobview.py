"""The view of one job (Enter on a cell of the status grid): what :func:`qjm_tui.views.job_facts`
says of it, every attempt with its times, backend job id and outcome, the error in full, and the
lines of qjm's log file about the job. ``y`` copies the backend's job id.

Everything is read in a thread worker, and read again while the job may still change.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static

from qjm_tui import views
from qjm_tui.config import log_path
from qjm_tui.core.store import JobRow, JobSetSummary, Store
from qjm_tui.core.text import error_text
from qjm_tui.tui.bars import KeyBar

log = logging.getLogger("qjm_tui.tui")

#: how much of the end of the log file is searched for the job's lines (bytes)
LOG_TAIL = 8 * 1024 * 1024
#: the most log lines shown (the latest)
LOG_LINES = 200


def log_lines_about(path: Path, set_id: str, index: int, backend_ids: set[str]) -> list[str]:
    """The lines of the log file at ``path`` about job ``index`` of a set: those naming the
    set and the job (``job set ID: job N (...)``) or one of its backend job ids; read from
    the last :data:`LOG_TAIL` bytes, the latest :data:`LOG_LINES` kept. None for no file."""
    try:
        with open(path, "rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - LOG_TAIL))
            data = file.read()
    except OSError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    if size > LOG_TAIL:
        lines = lines[1:]  # the first line is probably cut
    own = f"job set {set_id}: job {index} ("
    found = [line for line in lines
             if own in line or any(job_id in line for job_id in backend_ids)]
    return found[-LOG_LINES:]


@dataclass(frozen=True)
class JobReading:
    """What one read found: the job, its attempts and its log lines (or why there are none)."""

    job: JobRow | None
    attempts: list[views.Attempt]
    log_lines: list[str]
    seq: int
    error: str | None = None


class JobScreen(ModalScreen[None]):
    """One job of a set, in full; Esc, q or Backspace go back to the grid."""

    DEFAULT_CSS = """
    JobScreen {
        align: center middle;
    }
    JobScreen > VerticalScroll {
        width: 100%;
        height: 1fr;
        border: round $primary;
        background: $surface;
        padding: 0 1;
    }
    JobScreen Static {
        height: auto;
        margin-bottom: 1;
    }
    JobScreen #job-log {
        color: $text-muted;
    }
    """
    BINDINGS = [
        Binding("escape,q,backspace", "dismiss", "Back", id="job.back", tooltip="back to the grid"),
        Binding("y", "copy_backend_id", "Copy backend id", id="job.copy_backend_id",
                tooltip="copy the backend's job id to the clipboard (OSC 52, works over SSH)"),
        Binding("r", "reread", "Read again", show=False, id="job.reread"),
    ]

    class Read(Message, bubble=False):
        """A worker read the job."""

        def __init__(self, reading: JobReading) -> None:
            super().__init__()
            self.reading = reading

    def __init__(self, store: Store, summary: JobSetSummary, index: int, *,
                 clock: Callable[[], float], unicode: bool = True, log_file: Path | None = None) -> None:
        super().__init__()
        self.store = store
        self.summary = summary
        self.index = index
        self.clock = clock
        self.unicode = unicode
        self.log_file = log_file or log_path()
        #: the log files searched: qjm's (``$QJM_HOME``'s), and one beside the store, where a
        #: store in its own folder has the log of the processes that ran its sets
        beside = store.path.parent / "qjm.log"
        self.log_files = [self.log_file] + ([beside] if beside.resolve() != self.log_file.resolve() else [])
        self.reading: JobReading | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            name = views.printable(self.summary.name or self.summary.id)
            scroll.border_title = f"Job {self.index:,} of {views.short_id(self.summary.id)} {name}"
            scroll.border_subtitle = "y copies the backend job id · Esc back"
            yield Static(Text("reading the job…", style="dim"), id="job-facts")
            yield Static(id="job-attempts")
            yield Static(id="job-log")
        yield KeyBar()

    def on_mount(self) -> None:
        self._read(-1)
        self.set_interval(1.0, self._check)

    def _check(self) -> None:
        """While the job may change, read it again when the store did."""
        reading = self.reading
        if reading is not None and reading.job is not None and reading.job.status in ("done", "failed",
                                                                                      "cancelled"):
            return
        self._read(reading.seq if reading else -1)

    def action_reread(self) -> None:
        """Read the job (and the log file) again."""
        self._read(-1)

    @work(thread=True, exclusive=True, group="job-view", exit_on_error=False)
    def _read(self, seq: int) -> None:
        store = self.store
        try:
            now_seq = store.change_seq()
            if now_seq == seq:
                return
            job = store.job(self.summary.id, self.index)
            attempts = views.job_attempts(job, store.job_history(self.summary.id, self.index))
            ids = {a.backend_job_id for a in attempts if a.backend_job_id}
            if job.backend_job_id:
                ids.add(job.backend_job_id)
            lines = [line for path in self.log_files for line in
                     log_lines_about(path, self.summary.id, self.index, ids)][-LOG_LINES:]
            reading = JobReading(job, attempts, lines, now_seq)
        except Exception as exc:  # noqa: BLE001 - said on the screen, never raised into the UI
            log.exception("reading job %s of %s failed", self.index, self.summary.id)
            reading = JobReading(None, [], [], seq, error_text(exc))
        finally:
            store.release_thread_connection()
        self.post_message(self.Read(reading))

    @on(Read)
    def _show(self, message: Read) -> None:
        reading = self.reading = message.reading
        facts = self.query_one("#job-facts", Static)
        if reading.job is None:
            facts.update(Text(f"The job could not be read: {reading.error}", style="red"))
            return
        facts.update(self._facts_table(reading.job))
        self.query_one("#job-attempts", Static).update(self._attempts_table(reading.attempts))
        self.query_one("#job-log", Static).update(self._log_text(reading.log_lines))

    def _facts_table(self, job: JobRow) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for fact in views.job_facts(job, self.clock()):
            table.add_row(Text(fact.label), Text(fact.value, style=fact.style))
        return table

    def _attempts_table(self, attempts: list[views.Attempt]) -> Group | Text:
        """The attempts as a table, and each attempt's error under it, as wide as the view
        (in a column of the table an error would wrap a word or two to the line at 80 columns)."""
        if not attempts:
            return Text("Not submitted yet.", style="dim")
        table = Table(title="Attempts", title_justify="left", title_style="bold", box=None,
                      padding=(0, 2), header_style="bold", expand=False)
        for column in ("#", "submitted", "backend job id", "ended", "outcome"):
            table.add_column(column, no_wrap=True)
        errors = Text()
        for a in attempts:
            style = views.JOB_STATUS_STYLES.get(a.outcome, "red" if a.outcome == "retried" else "")
            table.add_row(str(a.number), views.clock_time(a.submitted),
                          views.printable(a.backend_job_id or "-"), views.clock_time(a.ended),
                          Text(a.outcome, style=style))
            error = views.printable(" ".join((a.error or "").split()))
            if error:
                errors.append("\n" if errors else "")
                errors.append(f"#{a.number} {a.outcome}: ", style=f"bold {style}".strip())
                errors.append(error)
        return Group(table, errors) if errors else Group(table)

    def _log_text(self, lines: list[str]) -> Text:
        where = views.printable(str(self.log_file))
        if not lines:
            return Text(f"No lines about this job in {where}.")
        count = "1 line" if len(lines) == 1 else f"{len(lines)} lines"
        text = Text(f"{count} about this job in {where}:\n", style="bold")
        text.append("\n".join(views.printable(line) for line in lines), style="")
        return text

    def action_copy_backend_id(self) -> None:
        """Copy the backend's job id (OSC 52, so it works over SSH)."""
        job = self.reading.job if self.reading else None
        if job is None or not job.backend_job_id:
            self.notify("This job has no backend job id yet", severity="warning", timeout=3)
            return
        self.app.copy_to_clipboard(job.backend_job_id)
        self.notify(f"copied {job.backend_job_id}", timeout=3)
