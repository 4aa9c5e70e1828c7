"""The view of one job (Enter on a cell of the status grid): what :func:`qjm_tui.views.job_facts`
says of it, every attempt with its times, backend job id and outcome, the error in full, and the
lines of qjm's log file about the job. ``y`` copies the backend's job id.

The screen asks for the job (:class:`JobScreen.JobWanted`), which the app's bridge reads in a
thread worker (:func:`qjm_tui.tui.readmodel.read_job`), and asks again while the job may still
change.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static

from qjm_tui import views
from qjm_tui.config import log_path
from qjm_tui.core.store import JobRow, JobSetSummary
from qjm_tui.tui.bars import KeyBar
from qjm_tui.tui.messages import JobRead
from qjm_tui.tui.readmodel import JobReading


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

    class JobWanted(Message):
        """The screen wants job ``index`` of ``set_id`` read, unless the store is unchanged since
        change number ``since`` (-1: read it), with the lines about it in ``log_files``; the
        answer is a :class:`~qjm_tui.tui.messages.JobRead` posted to ``screen``."""

        def __init__(self, screen: JobScreen, set_id: str, index: int, since: int,
                     log_files: list[Path]) -> None:
            super().__init__()
            self.screen = screen
            self.set_id = set_id
            self.index = index
            self.since = since
            self.log_files = log_files

    def __init__(self, store_path: Path, summary: JobSetSummary, index: int, *,
                 clock: Callable[[], float], unicode: bool = True, log_file: Path | None = None) -> None:
        """``store_path``: where the store is (a ``qjm.log`` beside it is searched too)."""
        super().__init__()
        self.summary = summary
        self.index = index
        self.clock = clock
        self.unicode = unicode
        self.log_file = log_file or log_path()
        #: the log files searched: qjm's (``$QJM_HOME``'s), and one beside the store, where a
        #: store in its own folder has the log of the processes that ran its sets
        beside = store_path.parent / "qjm.log"
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

    def _read(self, since: int) -> None:
        self.post_message(self.JobWanted(self, self.summary.id, self.index, since, self.log_files))

    @on(JobRead)
    def _show(self, message: JobRead) -> None:
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
