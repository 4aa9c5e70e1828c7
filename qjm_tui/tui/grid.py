"""The selected job set's pane: its figures, a live status grid with one cell per job, a legend
with per-state counts and the details of the job under the grid's cursor.

The grid draws through Textual's line API (``ScrollView.render_line`` returning cached
``Strip`` rows), so a set of 10,000 jobs costs a few hundred short lines, not 10,000 widgets, and
a status change repaints only the rows holding the cells that changed. The pane reads the store
only in thread workers, and only what changed since its last read.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from itertools import groupby

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.cache import LRUCache
from textual.containers import Vertical, VerticalScroll
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static
from textual.worker import get_current_worker

from qjm_tui import views
from qjm_tui.core.store import JobRow, JobSetSummary, Store
from qjm_tui.core.text import error_text, strip_ansi

log = logging.getLogger("qjm_tui.tui")

#: how far back the throughput (experiments per second) looks, in seconds
THROUGHPUT_WINDOW = 30.0
#: how often a running set's elapsed time, ETA and the job's running time are redrawn, in seconds
TICK = 1.0


def terminal_unicode() -> bool:
    """Whether the terminal shows the circles: asks the stream the process started with, since
    a running app replaces ``sys.stdout`` with a capture that has no encoding."""
    return views.unicode_ok(sys.__stdout__)


def job_glyphs(unicode: bool) -> dict[str, str]:
    """The glyph of each job status: the circles where the terminal shows them one cell wide
    each (the grid relies on one cell per job), else the ASCII set."""
    if unicode and all(cell_len(glyph) == 1 for glyph in views.JOB_GLYPHS.values()):
        return views.JOB_GLYPHS
    return views.JOB_GLYPHS_ASCII


class StatusGrid(ScrollView, can_focus=True, inherit_bindings=False):
    """One cell per job of a set, a glyph and a colour per status, laid out row by row to fit
    the widget's width (reflowed on resize), with a cursor cell shown in reverse.

    Drawn with the line API: :meth:`render_line` returns one row of cells as a ``Strip``, kept
    in an LRU cache keyed by row. :meth:`update_statuses` drops and repaints only the rows whose
    cells changed, so a live set costs a few short lines per update, however many jobs it has.
    Cells are jobs in index order: a cell's position is its job's index.
    """

    DEFAULT_CSS = """
    StatusGrid {
        height: 1fr;
        overflow-x: hidden;
        overflow-y: auto;
        scrollbar-gutter: stable;
    }
    """

    _MOVE = Binding.Group("move", compact=True)
    _JUMP = Binding.Group("jump")
    BINDINGS = [
        Binding("left,h", "cursor_left", "Previous job", id="grid.left", group=_MOVE),
        Binding("down,j", "cursor_down", "Job below", id="grid.down", group=_MOVE),
        Binding("up,k", "cursor_up", "Job above", id="grid.up", group=_MOVE),
        Binding("right,l", "cursor_right", "Next job", id="grid.right", group=_MOVE),
        Binding("home", "cursor_first", "First job", id="grid.home", group=_JUMP),
        Binding("end", "cursor_last", "Last job", id="grid.end", group=_JUMP),
        Binding("pageup", "cursor_page_up", "Page up", id="grid.page_up", group=_JUMP),
        Binding("pagedown", "cursor_page_down", "Page down", id="grid.page_down", group=_JUMP),
    ]

    class CursorMoved(Message):
        """The cursor moved to another cell (or the cells were replaced)."""

        def __init__(self, grid: StatusGrid, index: int) -> None:
            super().__init__()
            self.grid = grid
            #: the job index under the cursor
            self.index = index

        @property
        def control(self) -> StatusGrid:
            """The grid whose cursor moved."""
            return self.grid

    def __init__(self, *, unicode: bool | None = None, name: str | None = None,
                 id: str | None = None, classes: str | None = None) -> None:
        """``unicode``: draw circles (True), ASCII (False) or decide from the terminal (None)."""
        super().__init__(name=name, id=id, classes=classes)
        self._glyphs = job_glyphs(terminal_unicode() if unicode is None else unicode)
        self._statuses: list[str] = []
        self._columns = 1
        self._cursor = 0
        self._lines: LRUCache[int, Strip] = LRUCache(maxsize=1024)
        self._styles: dict[tuple[str, bool], Style] = {}

    # -- what it shows -----------------------------------------------------------------------

    @property
    def cell_count(self) -> int:
        """How many cells (jobs) the grid holds."""
        return len(self._statuses)

    @property
    def columns(self) -> int:
        """Cells per row at the current width."""
        return self._columns

    @property
    def row_count(self) -> int:
        """How many rows the cells take at the current width."""
        return -(-len(self._statuses) // self._columns)

    @property
    def cursor(self) -> int:
        """The cell (job index) under the cursor; 0 when the grid is empty."""
        return self._cursor

    def status(self, index: int) -> str:
        """The status the cell of job ``index`` shows."""
        return self._statuses[index]

    def set_statuses(self, statuses: Sequence[str], cursor: int = 0) -> None:
        """Show these cells (one status per job, in index order) instead of the current ones,
        with the cursor on cell ``cursor`` (kept within the cells)."""
        self._statuses = list(statuses)
        self._cursor = min(max(cursor, 0), max(len(self._statuses) - 1, 0))
        self._lines.clear()
        self._reflow()
        self.refresh()
        if self._statuses:
            self.post_message(self.CursorMoved(self, self._cursor))

    def update_statuses(self, changes: Mapping[int, str]) -> None:
        """Show new statuses for some cells (job index -> status). Only the rows holding a
        cell whose status really changed are dropped from the cache, and of those only the
        visible ones are repainted; the rest are drawn afresh when scrolled into view."""
        rows = set()
        for index, status in changes.items():
            if 0 <= index < len(self._statuses) and self._statuses[index] != status:
                self._statuses[index] = status
                rows.add(index // self._columns)
        self._invalidate(rows)

    def move_cursor(self, index: int) -> None:
        """Put the cursor on cell ``index`` (kept within the cells), scroll it into view and
        post :class:`CursorMoved` if it moved."""
        if not self._statuses:
            return
        index = min(max(index, 0), len(self._statuses) - 1)
        if index == self._cursor:
            return
        old, self._cursor = self._cursor, index
        self._invalidate({old // self._columns, index // self._columns})
        self._scroll_to_cursor()
        self.post_message(self.CursorMoved(self, index))

    # -- the line API ------------------------------------------------------------------------

    @property
    def _viewport(self) -> Size:
        """The size cells can be drawn in: the content area less the scrollbar's gutter."""
        width, height = self.size
        return Size(max(width - self.scrollbar_size_vertical, 0),
                    max(height - self.scrollbar_size_horizontal, 0))

    def render_line(self, y: int) -> Strip:
        """Row ``y`` of the viewport: cached per grid row, built from runs of equal cells."""
        row = y + self.scroll_offset.y
        width = self._viewport.width
        if row >= self.row_count:
            return Strip.blank(width, self.rich_style)
        strip = self._lines.get(row)
        if strip is None:
            strip = self._render_row(row, width)
            self._lines[row] = strip
        return strip

    def _render_row(self, row: int, width: int) -> Strip:
        start = row * self._columns
        cells = self._statuses[start:start + self._columns]
        cursor = self._cursor - start
        segments = []
        for (status, is_cursor), run in groupby(range(len(cells)), lambda i: (cells[i], i == cursor)):
            glyph = self._glyphs.get(status, "?")
            segments.append(Segment(glyph * sum(1 for _ in run), self._style(status, is_cursor)))
        return Strip(segments, len(cells)).extend_cell_length(width, self.rich_style)

    def _style(self, status: str, is_cursor: bool) -> Style:
        style = self._styles.get((status, is_cursor))
        if style is None:
            style = self.rich_style + Style.parse(views.JOB_STATUS_STYLES.get(status, ""))
            if is_cursor:
                style += Style(reverse=True)
            self._styles[status, is_cursor] = style
        return style

    def notify_style_update(self) -> None:
        """The widget's styles changed (focus, theme): cached rows and styles are stale."""
        super().notify_style_update()
        self._styles.clear()
        self._lines.clear()

    def _invalidate(self, rows: set[int]) -> None:
        """Drop these rows from the cache and repaint those in view, as few regions as lines."""
        top, height = self.scroll_offset.y, self._viewport.height
        visible = []
        for row in rows:
            self._lines.discard(row)
            if top <= row < top + height:
                visible.append(row)
        if visible:
            width = self.size.width
            self.refresh(*(Region(0, row - top, width, 1) for row in visible))

    # -- layout ------------------------------------------------------------------------------

    def on_resize(self, event: events.Resize) -> None:
        """Reflow the cells to the new width."""
        self._reflow()

    def _reflow(self) -> None:
        columns = max(1, self._viewport.width)
        if columns != self._columns:
            self._columns = columns
            self._lines.clear()
            self.refresh()
        self.virtual_size = Size(columns, self.row_count)
        self._scroll_to_cursor()

    def _scroll_to_cursor(self) -> None:
        row, height = self._cursor // self._columns, self._viewport.height
        top = self.scroll_offset.y
        if height <= 0:
            return
        if row < top:
            self.scroll_to(y=row, animate=False)
        elif row >= top + height:
            self.scroll_to(y=row - height + 1, animate=False)

    # -- keys and mouse ----------------------------------------------------------------------

    def action_cursor_left(self) -> None:
        """Move to the previous job."""
        self.move_cursor(self._cursor - 1)

    def action_cursor_right(self) -> None:
        """Move to the next job."""
        self.move_cursor(self._cursor + 1)

    def action_cursor_up(self) -> None:
        """Move one row up (staying put on the first row)."""
        if self._cursor >= self._columns:
            self.move_cursor(self._cursor - self._columns)

    def action_cursor_down(self) -> None:
        """Move one row down; onto the last job if the row below is shorter."""
        if self._cursor // self._columns < self.row_count - 1:
            self.move_cursor(self._cursor + self._columns)

    def action_cursor_first(self) -> None:
        """Move to the first job."""
        self.move_cursor(0)

    def action_cursor_last(self) -> None:
        """Move to the last job."""
        self.move_cursor(len(self._statuses) - 1)

    def action_cursor_page_up(self) -> None:
        """Move a screenful of rows up, in the same column."""
        rows = min(max(self._viewport.height, 1), self._cursor // self._columns)
        self.move_cursor(self._cursor - rows * self._columns)

    def action_cursor_page_down(self) -> None:
        """Move a screenful of rows down; onto the last job if there are fewer."""
        self.move_cursor(self._cursor + max(self._viewport.height, 1) * self._columns)

    def on_click(self, event: events.Click) -> None:
        """Put the cursor on the clicked cell."""
        offset = event.get_content_offset(self)
        if offset is not None and offset.x < self._columns:
            index = (offset.y + self.scroll_offset.y) * self._columns + offset.x
            if index < len(self._statuses):
                self.move_cursor(index)


class _JobsRead(Message, bubble=False):
    """A worker read jobs of ``set_id`` from the store: all of them (``full``, for load number
    ``load``) or those changed since the pane's last read; ``seq`` is where to read on from."""

    def __init__(self, set_id: str, jobs: list[JobRow], seq: int, *, full: bool, load: int) -> None:
        super().__init__()
        self.set_id = set_id
        self.jobs = jobs
        self.seq = seq
        self.full = full
        self.load = load


class _ReadFailed(Message, bubble=False):
    """A worker could not read the store; ``error`` says why. ``load`` is the load number of a
    failed read of the whole set (0 for a read of changes)."""

    def __init__(self, error: str, load: int) -> None:
        super().__init__()
        self.error = error
        self.load = load


class SetPane(Vertical):
    """The selected job set: title, progress, throughput and ETA, the status grid, a legend
    with per-state counts and the details of the job under the grid's cursor.

    Select a set with :meth:`show_set`; tell the pane it changed with :meth:`refresh_set`. All
    store reads run in thread workers; their results are applied here, on the UI thread.
    """

    DEFAULT_CSS = """
    SetPane {
        height: 1fr;
        padding: 0 1;
    }
    SetPane > #set-empty {
        padding: 1 1;
        color: $text-muted;
    }
    SetPane > #set-title, SetPane > #set-progress, SetPane > #set-legend {
        height: auto;
    }
    SetPane > StatusGrid {
        min-height: 3;
    }
    SetPane > #set-details {
        height: auto;
        max-height: 50%;
        border-top: solid $primary;
    }
    SetPane > #set-details > Static {
        height: auto;
    }
    SetPane.-empty > .set-part {
        display: none;
    }
    SetPane > #set-empty {
        display: none;
    }
    SetPane.-empty > #set-empty {
        display: block;
    }
    """

    class JobHighlighted(Message):
        """The job under the grid's cursor changed: the cursor moved, or the job did."""

        def __init__(self, set_id: str, job: JobRow) -> None:
            super().__init__()
            self.set_id = set_id
            self.job = job

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time,
                 name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        """``store`` is read (only in workers); ``clock`` gives "now" for every time shown."""
        super().__init__(name=name, id=id, classes=classes)
        self.store = store
        self.clock = clock
        self.unicode = terminal_unicode()
        self._glyphs = job_glyphs(self.unicode)
        self._summary: JobSetSummary | None = None
        #: the shown set's jobs in index order; None until the first read of the set arrives
        self._jobs: list[JobRow] | None = None
        self._counts: Counter[str] = Counter()
        self._seq = 0
        self._load = 0
        self._loading = False
        self._changes_wanted = False
        self._samples: deque[tuple[float, int]] = deque()
        self.add_class("-empty")

    def compose(self) -> ComposeResult:
        yield Static(Text("Select a job set"), id="set-empty")
        yield Static(id="set-title", classes="set-part")
        yield Static(id="set-progress", classes="set-part")
        yield StatusGrid(unicode=self.unicode, id="set-grid", classes="set-part")
        yield Static(id="set-legend", classes="set-part")
        with VerticalScroll(id="set-details", classes="set-part"):
            yield Static(id="set-job")

    def on_mount(self) -> None:
        self.set_interval(TICK, self._tick)

    def _tick(self) -> None:
        """Time moves on for a running set even when none of its jobs changes."""
        if self._summary is not None and self._summary.state not in views.SET_FINAL_STATES:
            self._show_figures()
            self._show_job(announce=False)

    @property
    def grid(self) -> StatusGrid:
        """The status grid."""
        return self.query_one(StatusGrid)

    @property
    def summary(self) -> JobSetSummary | None:
        """The shown set as last reported, or None."""
        return self._summary

    @property
    def current_job(self) -> JobRow | None:
        """The job under the grid's cursor, or None (no set, or its jobs not read yet)."""
        if not self._jobs:
            return None
        return self._jobs[min(self.grid.cursor, len(self._jobs) - 1)]

    # -- the set shown -----------------------------------------------------------------------

    def show_set(self, summary: JobSetSummary | None) -> None:
        """Select (or clear, for None) the set to show; reads all its jobs in a thread worker.

        Selecting the set already shown only refreshes it (the cursor stays where it is).
        """
        if summary is not None and self._summary is not None and summary.id == self._summary.id:
            self.refresh_set(summary)
            return
        self._summary = summary
        self._jobs = None
        self._counts = Counter()
        self._samples.clear()
        self._seq = 0
        self._changes_wanted = False
        self._load += 1
        self._loading = False
        self.grid.set_statuses([])
        self.set_class(summary is None, "-empty")
        if summary is None:
            return
        self._add_sample(summary)
        self._show_figures()
        self._show_legend()
        self._start_load()

    def _start_load(self) -> None:
        assert self._summary is not None
        self._loading = True
        self.query_one("#set-job", Static).update(Text("reading jobs…", style="dim"))
        self._read_all(self._summary.id, self._load)

    def refresh_set(self, summary: JobSetSummary) -> None:
        """The set changed in the store: read only the jobs changed since the last read, in a
        thread worker, and repaint only their cells' lines. Ignored unless it is the shown set."""
        if self._summary is None or summary.id != self._summary.id:
            return
        self._summary = summary
        self._add_sample(summary)
        self._show_figures()
        if self._loading:
            self._changes_wanted = True
        elif self._jobs is None:
            self._start_load()
        else:
            self._read_changes(summary.id, self._seq)

    @work(thread=True, exclusive=True, group="set-pane-load", exit_on_error=False)
    def _read_all(self, set_id: str, load: int) -> None:
        """Read every job of the set (the change number first, so nothing after it is missed)."""
        try:
            seq = self.store.change_seq()
            jobs = self.store.jobs(set_id)
        except Exception as exc:  # noqa: BLE001 - shown to the user, never raised into the UI
            log.exception("reading the jobs of %s failed", set_id)
            self.post_message(_ReadFailed(error_text(exc), load))
            return
        if not get_current_worker().is_cancelled:
            self.post_message(_JobsRead(set_id, jobs, seq, full=True, load=load))

    @work(thread=True, exclusive=True, group="set-pane-changes", exit_on_error=False)
    def _read_changes(self, set_id: str, since: int) -> None:
        """Read the set's jobs written after change number ``since``."""
        try:
            jobs, seq = self.store.jobs_changed_since(set_id, since)
        except Exception as exc:  # noqa: BLE001 - shown to the user, never raised into the UI
            log.exception("reading the changed jobs of %s failed", set_id)
            self.post_message(_ReadFailed(error_text(exc), 0))
            return
        if not get_current_worker().is_cancelled:
            self.post_message(_JobsRead(set_id, jobs, seq, full=False, load=0))

    @on(_JobsRead)
    def _apply_read(self, message: _JobsRead) -> None:
        """Apply what a worker read, if it is still about the shown set."""
        if self._summary is None or message.set_id != self._summary.id:
            return
        if message.full:
            if message.load != self._load:
                return
            self._loading = False
            self._apply_all(message.jobs)
            self._seq = message.seq
        elif self._jobs is None:
            return
        else:
            self._apply_changes(message.jobs)
            self._seq = max(self._seq, message.seq)
        if self._changes_wanted:
            self._changes_wanted = False
            self._read_changes(message.set_id, self._seq)

    @on(_ReadFailed)
    def _report_failure(self, message: _ReadFailed) -> None:
        """Say what went wrong; a failed read of the whole set is tried again by the next
        :meth:`refresh_set`."""
        if message.load and message.load == self._load:
            self._loading = False
            self._changes_wanted = False
            self.query_one("#set-job", Static).update(Text("the jobs could not be read", style="red"))
        self.notify(f"Reading the store failed: {message.error}", severity="error")

    def _apply_all(self, jobs: list[JobRow]) -> None:
        """Show every job; the grid's :class:`StatusGrid.CursorMoved` then shows the first."""
        self._jobs = jobs
        self._counts = Counter(job.status for job in jobs)
        self.grid.set_statuses([job.status for job in jobs])
        self._show_legend()
        if not jobs:
            self.query_one("#set-job", Static).update(Text("this set has no jobs", style="dim"))

    def _apply_changes(self, rows: list[JobRow]) -> None:
        """Take rows newer than those held (a read can arrive twice or late: the row's change
        number decides), and repaint only the cells whose status changed."""
        assert self._jobs is not None
        jobs, cursor = self._jobs, self.grid.cursor
        changed: dict[int, str] = {}
        cursor_job_changed = False
        for row in rows:
            if not 0 <= row.index < len(jobs) or row.seq <= jobs[row.index].seq:
                continue
            old, jobs[row.index] = jobs[row.index], row
            if row.status != old.status:
                self._counts[old.status] -= 1
                self._counts[row.status] += 1
                changed[row.index] = row.status
            cursor_job_changed |= row.index == cursor
        if changed:
            self.grid.update_statuses(changed)
            self._show_legend()
        if cursor_job_changed:
            self._show_job()

    @on(StatusGrid.CursorMoved)
    def _cursor_moved(self, message: StatusGrid.CursorMoved) -> None:
        self._show_job()

    # -- what it says ------------------------------------------------------------------------

    def on_resize(self, event: events.Resize) -> None:
        """The progress bar follows the pane's width."""
        self._show_figures()

    def _add_sample(self, summary: JobSetSummary) -> None:
        """Remember (now, experiments done) for the throughput, keeping one sample at or
        before the window's start so the rate spans the whole window."""
        now = self.clock()
        self._samples.append((now, summary.experiments_done))
        while len(self._samples) > 2 and self._samples[1][0] <= now - THROUGHPUT_WINDOW:
            self._samples.popleft()

    def throughput(self) -> tuple[float | None, bool]:
        """Experiments per second, and whether that is over the recent window (True) or the
        whole run (False: a finished set, or too few samples yet); None when unknown."""
        if self._summary is None:
            return None, False
        return self._throughput(views.set_figures(self._summary, self.clock()).elapsed)

    def _throughput(self, elapsed: float) -> tuple[float | None, bool]:
        """:meth:`throughput`, given the set's elapsed time (its figures are already at hand)."""
        summary = self._summary
        assert summary is not None
        if summary.state not in views.SET_FINAL_STATES and len(self._samples) >= 2:
            (t0, done0), (t1, done1) = self._samples[0], self._samples[-1]
            if t1 > t0:
                return (done1 - done0) / (t1 - t0), True
        return (summary.experiments_done / elapsed if elapsed > 0 else None), False

    def _show_figures(self) -> None:
        """The title, the progress bar over experiments, throughput, ETA, elapsed and retries."""
        summary = self._summary
        if summary is None or not self.is_mounted:
            return
        figures = views.set_figures(summary, self.clock())
        glyphs = views.SET_GLYPHS if self.unicode else views.SET_GLYPHS_ASCII
        title = Text()
        title.append(f"{glyphs.get(summary.state, '?')} {summary.state}  ",
                     style=views.SET_STATE_STYLES.get(summary.state, ""))
        title.append(views.printable(summary.name or "-"), style="bold")
        title.append(f"  {views.short_id(summary.id)}  ")
        title.append(views.printable(views.backend_label(summary.backend)))
        jobs = "job" if figures.total_jobs == 1 else "jobs"
        title.append(f"  {figures.total_jobs:,} {jobs}", style="dim")
        self.query_one("#set-title", Static).update(title)

        caption = (f"  {figures.experiments_done:,}/{figures.experiments:,} exp"
                   f"  {int(figures.fraction * 100)}%")
        width = max(10, min(40, self.size.width - len(caption)))
        line = Text()
        line.append(views.progress_bar(figures.fraction, width, self.unicode), style="green")
        line.append(caption + "\n")
        rate, recent = self._throughput(figures.elapsed)
        line.append("- exp/s" if rate is None else f"{rate:,.1f} exp/s" + ("" if recent else " overall"))
        if summary.state not in views.SET_FINAL_STATES:
            eta = figures.eta
            if recent and rate:
                eta = (figures.experiments - figures.experiments_done) / rate
            line.append(f" · ETA {views.duration(eta)}")
        line.append(f" · {views.duration(figures.elapsed)} elapsed · {figures.retries} retries")
        usage = views.set_usage_text(summary)
        if usage:
            line.append(f" · {usage}")
        self.query_one("#set-progress", Static).update(line)

    def _show_legend(self) -> None:
        legend = Text()
        for status in views.JOB_STATUS_ORDER:
            count = self._counts.get(status, 0)
            if count:
                if legend:
                    legend.append("  ")
                legend.append(f"{self._glyphs[status]} {status} {count:,}",
                              style=views.JOB_STATUS_STYLES[status])
        if self._jobs is not None and not legend:
            legend.append("no jobs", style="dim")
        self.query_one("#set-legend", Static).update(legend)

    def _show_job(self, announce: bool = True) -> None:
        """Describe the job under the cursor and, with ``announce``, post :class:`JobHighlighted`."""
        job = self.current_job
        if job is None or self._summary is None:
            return
        self.query_one("#set-job", Static).update(job_details(job, self.clock(), self._glyphs))
        if announce:
            self.post_message(self.JobHighlighted(self._summary.id, job))


def job_details(job: JobRow, now: float, glyphs: Mapping[str, str]) -> Text:
    """What the pane says of one job: index, experiment range, backend job id, status,
    attempts and retries, submitted and finished times, and its error message in full."""
    text = Text()
    text.append(f"job {job.index}", style="bold")
    text.append(f" · experiments {job.start}..{job.stop - 1}")
    if job.round:
        text.append(f" · shots round {job.round}")
    text.append(" · backend id ")
    text.append(views.printable(job.backend_job_id or "-"))
    text.append("\n")
    text.append(f"{glyphs.get(job.status, '?')} {job.status}",
                style=views.JOB_STATUS_STYLES.get(job.status, ""))
    text.append(f" ({views.job_status_phrase(job.status)}) · attempts {job.attempts}"
                f" · retries {job.retries}\n")
    text.append(f"submitted {views.clock_time(job.submitted)} · finished {views.clock_time(job.finished)}")
    if job.status in views.JOB_ACTIVE_STATUSES and job.submitted is not None:
        text.append(f" · running for {views.duration(max(0.0, now - job.submitted))}")
    cost = views.job_cost_text(job)
    if cost:
        text.append(f"\n{cost}")
    if job.last_error:
        label = "error: " if job.status == "failed" else "last error (retried): "
        text.append("\n" + label, style="bold red")
        # line breaks in the message are kept; any other control character is shown escaped
        text.append("\n".join(views.printable(line)
                              for line in strip_ansi(job.last_error).splitlines()))
    return text
