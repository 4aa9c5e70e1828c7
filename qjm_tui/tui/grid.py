"""The selected job set's pane: its figures, a live status grid with one cell per job, a legend
with per-state counts and the details of the job under the grid's cursor.

The grid draws through Textual's line API (``ScrollView.render_line`` returning cached
``Strip`` rows), so a set of 10,000 jobs costs a few hundred short lines, not 10,000 widgets, and
a status change repaints only the rows holding the cells that changed. The pane reads no store:
the app's bridge (:mod:`qjm_tui.tui.bridge`) gives it the set's jobs, then only those that changed.
"""

from __future__ import annotations

import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from itertools import groupby

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.cache import LRUCache
from textual.containers import Vertical, VerticalScroll
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static

from qjm_tui import views
from qjm_tui.core.store import JobRow, JobSetSummary
from qjm_tui.tui.messages import JobStatusesChanged, SetsChanged

#: how far back the throughput (experiments per second) looks, in seconds
THROUGHPUT_WINDOW = 30.0
#: the shortest span of samples the recent throughput is taken over; until then the rate is
#: the whole run's (a set just opened would otherwise read 0.0 exp/s between two finishes)
THROUGHPUT_MIN_SPAN = 5.0
#: how often a running set's elapsed time, ETA and the job's running time are redrawn, in seconds
TICK = 1.0


def terminal_unicode() -> bool:
    """Whether the terminal shows the circles: asks the stream the app draws on (the process's
    original stderr; a running app replaces ``sys.stdout`` with a capture that has no encoding)."""
    return views.terminal_charset(sys.__stderr__) == "unicode"


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
    _JUMP = Binding.Group("jump", compact=True)
    BINDINGS = [
        Binding("left,h", "cursor_left", "Previous job", id="grid.left", group=_MOVE),
        Binding("down,j", "cursor_down", "Job below", id="grid.down", group=_MOVE),
        Binding("up,k", "cursor_up", "Job above", id="grid.up", group=_MOVE),
        Binding("right,l", "cursor_right", "Next job", id="grid.right", group=_MOVE),
        Binding("home", "cursor_first", "First job", show=False, id="grid.home", group=_JUMP),
        Binding("end", "cursor_last", "Last job", show=False, id="grid.end", group=_JUMP),
        Binding("pageup", "cursor_page_up", "Page up", show=False, id="grid.page_up", group=_JUMP),
        Binding("pagedown", "cursor_page_down", "Page down", show=False, id="grid.page_down", group=_JUMP),
        Binding("enter", "open_job", "Open job", id="grid.open",
                tooltip="every attempt, the full error, the backend's id and the log lines of the job"),
        Binding("n", "next_notable", "Next failed/running", key_display="n", id="grid.next",
                tooltip="move to the next failed or running job"),
        Binding("N", "previous_notable", "Previous", show=False, id="grid.previous",
                tooltip="move to the previous failed or running job"),
    ]

    #: the statuses ``n`` and ``N`` stop at: jobs that failed, and jobs with the backend
    NOTABLE = frozenset({"failed", "submitting", "queued", "running"})

    class JobOpened(Message):
        """Enter on a cell: open the job's view."""

        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

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

    def show_cell(self, index: int) -> None:
        """Scroll so that cell ``index`` is in view (near the top), unless it is already."""
        first, last = self.visible_range()
        if self._statuses and not first <= index <= last:
            self.scroll_to(y=max(index // self._columns - 1, 0), animate=False)

    def visible_range(self) -> tuple[int, int]:
        """The first and last job index of the rows in view ((0, -1) when empty)."""
        if not self._statuses:
            return 0, -1
        top = self.scroll_offset.y
        height = max(self._viewport.height, 1)
        first = top * self._columns
        last = min((top + height) * self._columns, len(self._statuses)) - 1
        return first, last

    def find(self, statuses: frozenset[str], start: int, step: int) -> int | None:
        """The first job from ``start`` on (``step`` 1) or back (``step`` -1), wrapping
        around, whose status is one of ``statuses``; None if there is none."""
        count = len(self._statuses)
        for offset in range(count):
            index = (start + step * offset) % count
            if self._statuses[index] in statuses:
                return index
        return None

    def set_statuses(self, statuses: Sequence[str], cursor: int = 0) -> None:
        """Show these cells (one status per job, in index order) instead of the current ones,
        with the cursor on cell ``cursor`` (kept within the cells)."""
        self._statuses = list(statuses)
        self._cursor = min(max(cursor, 0), max(len(self._statuses) - 1, 0))
        self._lines.clear()
        self._reflow()
        self.refresh()
        self.post_message(self.ViewMoved())
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

    class ViewMoved(Message):
        """The rows in view changed (scrolled, reflowed or new cells)."""

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if round(old_value) != round(new_value):
            self.post_message(self.ViewMoved())

    def on_resize(self, event: events.Resize) -> None:
        """Reflow the cells to the new width."""
        self._reflow()
        self.post_message(self.ViewMoved())

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

    def action_open_job(self) -> None:
        """Open the view of the job under the cursor."""
        if self._statuses:
            self.post_message(self.JobOpened(self._cursor))

    def action_next_notable(self) -> None:
        """Move to the next failed or running job (wrapping around)."""
        self._jump(1)

    def action_previous_notable(self) -> None:
        """Move to the previous failed or running job (wrapping around)."""
        self._jump(-1)

    def _jump(self, step: int) -> None:
        if not self._statuses:
            return
        found = self.find(self.NOTABLE, self._cursor + step, step)
        if found is None:
            self.notify("No failed or running job in this set", timeout=2)
        else:
            self.move_cursor(found)

    def on_click(self, event: events.Click) -> None:
        """Put the cursor on the clicked cell."""
        offset = event.get_content_offset(self)
        if offset is not None and offset.x < self._columns:
            index = (offset.y + self.scroll_offset.y) * self._columns + offset.x
            if index < len(self._statuses):
                self.move_cursor(index)


class SetPane(Vertical):
    """The selected job set: title, progress, throughput and ETA, the status grid, a legend
    with per-state counts and the details of the job under the grid's cursor.

    Select a set with :meth:`show_set`; tell the pane it changed with :meth:`refresh_set`. The
    pane reads nothing itself: it asks for the set's jobs (:class:`SetPane.JobsWanted`, which the
    app hands to its bridge) and is given them, and then the changed ones, as
    :class:`~qjm_tui.tui.messages.JobStatusesChanged` (see :meth:`apply_jobs`).
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
    SetPane > #set-title, SetPane > #set-progress, SetPane > #set-rate, SetPane > #set-legend,
    SetPane > #set-position {
        height: 1;
    }
    SetPane > #set-position {
        color: $text-muted;
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

    BINDINGS = [
        Binding("f", "toggle_follow", "Follow", id="set.follow",
                tooltip="keep the running jobs in view as the set runs (the cursor stays put)"),
        Binding("escape,backspace", "back", "Back", show=False, id="set.back",
                tooltip="back to the list of job sets"),
    ]

    class JobHighlighted(Message):
        """The job under the grid's cursor changed: the cursor moved, or the job did."""

        def __init__(self, set_id: str, job: JobRow) -> None:
            super().__init__()
            self.set_id = set_id
            self.job = job

    class JobsWanted(Message):
        """The pane wants every job of ``set_id`` (its read number ``load``), and then the
        changed ones as they change; None: it shows no set, and wants none."""

        def __init__(self, set_id: str | None, load: int) -> None:
            super().__init__()
            self.set_id = set_id
            self.load = load

    def __init__(self, *, clock: Callable[[], float] = time.time, unicode: bool | None = None,
                 name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        """``clock`` gives "now" for every time shown; ``unicode``: draw circles and blocks
        (True), ASCII (False) or ask the terminal (None)."""
        super().__init__(name=name, id=id, classes=classes)
        self.clock = clock
        self.unicode = terminal_unicode() if unicode is None else unicode
        self._glyphs = job_glyphs(self.unicode)
        self._summary: JobSetSummary | None = None
        #: the shown set's jobs in index order; None until the first read of the set arrives
        self._jobs: list[JobRow] | None = None
        self._counts: Counter[str] = Counter()
        self._load = 0
        self._loading = False
        self._samples: deque[tuple[float, int]] = deque()
        #: keep the running jobs in view (``f``)
        self.follow = False
        #: what each Static shows now: one is updated only when its text changes
        self._shown: dict[str, Text] = {}
        #: when the figures were last shown (monotonic seconds)
        self._shown_at = 0.0
        self.add_class("-empty")

    def compose(self) -> ComposeResult:
        yield Static(Text("Select a job set"), id="set-empty")
        yield Static(id="set-title", classes="set-part")
        yield Static(id="set-progress", classes="set-part")
        yield Static(id="set-rate", classes="set-part")
        yield StatusGrid(unicode=self.unicode, id="set-grid", classes="set-part")
        yield Static(id="set-legend", classes="set-part")
        yield Static(id="set-position", classes="set-part")
        with VerticalScroll(id="set-details", classes="set-part"):
            yield Static(id="set-job")

    def on_mount(self) -> None:
        self.set_interval(TICK, self._tick)

    def _tick(self) -> None:
        """Time moves on for a running set even when none of its jobs changes (when they do,
        the figures are shown with the changes: one repaint, not two)."""
        if (self._summary is not None and self._summary.state == "running"
                and time.monotonic() - self._shown_at >= TICK * 0.9):
            self._show_figures()
            self._show_job(announce=False)

    def _put(self, part: str, text: Text, layout: bool = False) -> None:
        """Show ``text`` in the Static ``#part``, unless it shows it already (an update repaints
        the whole Static; a layout only where its height may change)."""
        if self._shown.get(part) == text:
            return
        self._shown[part] = text
        self.query_one(f"#{part}", Static).update(text, layout=layout)
        if layout:  # the grid may be given more or fewer lines: say again which jobs are in view
            self.call_after_refresh(self._show_position)

    def action_toggle_follow(self) -> None:
        """Keep the running jobs in view as the set runs (or stop doing so)."""
        self.follow = not self.follow
        self._follow_now()
        self._show_position()

    def action_back(self) -> None:
        """Back to the list of job sets."""
        show = getattr(self.app, "action_pane", None)
        if show is not None:
            show(0)

    def _follow_now(self) -> None:
        """In follow mode, keep the front of the run in view: the first job with the backend
        (else the first one still to run). The view moves only when the front leaves it, a
        screenful at a time, and the cursor stays where the user put it."""
        if not self.follow or not self._jobs:
            return
        grid = self.grid
        front = grid.find(frozenset(views.JOB_ACTIVE_STATUSES), 0, 1)
        if front is None:
            front = grid.find(frozenset({"pending"}), 0, 1)
        if front is not None:
            grid.show_cell(front)

    def _show_position(self) -> None:
        """Which jobs are in view, of how many; and whether the grid follows the run."""
        grid = self.grid
        first, last = grid.visible_range()
        total = grid.cell_count
        text = Text(no_wrap=True, overflow="ellipsis")
        if total:
            text.append(f"jobs {first + 1:,}–{last + 1:,} of {total:,}" if (first, last) != (0, total - 1)
                        else f"all {total:,} jobs in view")
            text.append("  following" if self.follow else "", style="bold")
        self._put("set-position", text)

    @on(StatusGrid.ViewMoved)
    def _view_moved(self, message: StatusGrid.ViewMoved) -> None:
        message.stop()
        self._show_position()

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
        """Select (or clear, for None) the set to show, and ask for all its jobs.

        Selecting the set already shown only refreshes it (the cursor stays where it is).
        """
        if summary is not None and self._summary is not None and summary.id == self._summary.id:
            self.refresh_set(summary)
            return
        self._summary = summary
        self._jobs = None
        self._counts = Counter()
        self._samples.clear()
        self._load += 1
        self._loading = False
        self.grid.set_statuses([])
        self.set_class(summary is None, "-empty")
        if summary is None:
            self.post_message(self.JobsWanted(None, self._load))
            return
        self._add_sample(summary)
        self._show_figures()
        self._show_legend()
        self._start_load()

    def _start_load(self) -> None:
        assert self._summary is not None
        self._loading = True
        self._put("set-job", Text("reading jobs…", style="dim"), layout=True)
        self.post_message(self.JobsWanted(self._summary.id, self._load))

    def refresh_set(self, summary: JobSetSummary) -> None:
        """The set changed in the store: show its new figures (its changed jobs come as
        :class:`JobStatusesChanged`). Ignored unless it is the shown set; a set whose jobs could
        not be read is asked for again."""
        if self._summary is None or summary.id != self._summary.id:
            return
        self._summary = summary
        self._add_sample(summary)
        self._show_figures()
        if self._jobs is None and not self._loading:
            self._load += 1
            self._start_load()

    def apply_sets_changed(self, message: SetsChanged) -> None:
        """What a look at the store found: the shown set's new figures and its changed jobs."""
        if self._summary is not None:
            shown = self._summary.id
            for summary in message.summaries:
                if summary.id == shown:
                    self.refresh_set(summary)
        if message.jobs is not None:
            self.apply_jobs(message.jobs)

    def on_job_statuses_changed(self, message: JobStatusesChanged) -> None:
        """Jobs given to the pane itself (the app applies its own with :meth:`apply_jobs`)."""
        message.stop()
        with self.app.batch_update():
            self.apply_jobs(message)

    def apply_jobs(self, message: JobStatusesChanged) -> None:
        """Show jobs read from the store, if they are of the shown set: all of them (the read
        it asked for last), or changed ones, repainting only their cells' lines."""
        if self._summary is None or message.set_id != self._summary.id:
            return
        if message.full:
            if message.load != self._load:
                return
            self._loading = False
            if message.error is not None:
                self._put("set-job", Text("the jobs could not be read", style="red"), layout=True)
                self.notify(f"Reading the store failed: {message.error}", severity="error")
                return
            self._apply_all(message.rows)
        elif self._jobs is not None:
            self._apply_changes(message.rows)

    def _apply_all(self, jobs: list[JobRow]) -> None:
        """Show every job; the grid's :class:`StatusGrid.CursorMoved` then shows the first."""
        self._jobs = jobs
        self._counts = Counter(job.status for job in jobs)
        self.grid.set_statuses([job.status for job in jobs])
        self._show_legend()
        self._follow_now()
        if not jobs:
            self._put("set-job", Text("this set has no jobs", style="dim"), layout=True)

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
            self._follow_now()
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
        whole run (False: a finished set, or samples spanning under THROUGHPUT_MIN_SPAN yet);
        None when unknown."""
        if self._summary is None:
            return None, False
        return self._throughput(views.set_figures(self._summary, self.clock()).elapsed)

    def _throughput(self, elapsed: float) -> tuple[float | None, bool]:
        """:meth:`throughput`, given the set's elapsed time (its figures are already at hand)."""
        summary = self._summary
        assert summary is not None
        if summary.state not in views.SET_FINAL_STATES and len(self._samples) >= 2:
            (t0, done0), (t1, done1) = self._samples[0], self._samples[-1]
            if t1 - t0 >= THROUGHPUT_MIN_SPAN:
                return (done1 - done0) / (t1 - t0), True
        return (summary.experiments_done / elapsed if elapsed > 0 else None), False

    def _show_figures(self) -> None:
        """The title, the progress bar over experiments, throughput, ETA, elapsed and retries."""
        summary = self._summary
        if summary is None or not self.is_mounted:
            return
        self._shown_at = time.monotonic()
        figures = views.set_figures(summary, self.clock())
        glyphs = views.SET_GLYPHS if self.unicode else views.SET_GLYPHS_ASCII
        width = max(self.size.width - 2, 20)
        jobs = "job" if figures.total_jobs == 1 else "jobs"
        state = f"{glyphs.get(summary.state, '?')} {summary.state}  "
        count = f"  {figures.total_jobs:,} {jobs}"
        ident = f"  {views.short_id(summary.id)}"
        fixed = views.cell_width(state) + views.cell_width(count)
        # the name keeps at least 12 cells: the backend gives way first, then the short id
        extras = next((e for e in (f"{ident}  {views.printable(views.backend_label(summary.backend))}",
                                   ident) if width - fixed - views.cell_width(e) >= 12), "")
        room = width - fixed - views.cell_width(extras)
        name = views.printable(summary.name or "-")
        title = Text(no_wrap=True, overflow="ellipsis")
        title.append(state, style=views.SET_STATE_STYLES.get(summary.state, ""))
        title.append(views.fit(name, max(room, 12), keep_end=max(8, room // 3)), style="bold")
        title.append(extras)
        title.append(count, style="dim")
        self._put("set-title", title)

        caption = (f"  {figures.experiments_done:,}/{figures.experiments:,} exp"
                   f"  {views.percent(figures.fraction)}")
        bar_width = max(10, min(40, width - len(caption)))
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(views.progress_bar(figures.fraction, bar_width, self.unicode), style="green")
        line.append(caption)
        self._put("set-progress", line)
        rate, recent = self._throughput(figures.elapsed)
        parts = ["- exp/s" if rate is None else f"{rate:,.1f} exp/s" + ("" if recent else " overall")]
        if summary.state == "running":
            eta = figures.eta
            if recent and rate:
                eta = (figures.experiments - figures.experiments_done) / rate
            parts.append(f"ETA {views.duration(eta)}")
        elif summary.state == "interrupted":
            parts.append("stopped: R resumes it")
        parts += [f"{views.duration(figures.elapsed)} elapsed", views.retries_text(figures.retries)]
        usage = views.set_usage_text(summary)
        if usage:
            parts.append(usage)
        shown: list[str] = []
        for part in parts:
            if views.cell_width(" · ".join([*shown, part])) > width:
                break
            shown.append(part)
        self._put("set-rate", Text(" · ".join(shown), no_wrap=True, overflow="ellipsis"))

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
        legend.no_wrap, legend.overflow = True, "ellipsis"
        self._put("set-legend", legend)

    def _show_job(self, announce: bool = True) -> None:
        """Describe the job under the cursor and, with ``announce``, post :class:`JobHighlighted`."""
        job = self.current_job
        if job is None or self._summary is None:
            return
        self._put("set-job", job_details(job, self.clock(), self._glyphs), layout=True)
        if announce:
            self.post_message(self.JobHighlighted(self._summary.id, job))


def job_details(job: JobRow, now: float, glyphs: Mapping[str, str]) -> Text:
    """What the pane says of the job under the cursor: :func:`qjm_tui.views.job_facts` on a few
    lines (``label value`` joined by dots; the status with its glyph; an error in full on lines
    of its own, its line breaks kept)."""
    text = Text()
    line: list[tuple[str, str]] = []

    def flush() -> None:
        if line:
            if text:
                text.append("\n")
            for n, (words, style) in enumerate(line):
                if n:
                    text.append(" · ")
                text.append(words, style=style)
            line.clear()

    for fact in views.job_facts(job, now):
        if fact.label == "job":
            line.append((f"job {fact.value}", "bold"))
        elif fact.label == "status":
            flush()
            line.append((f"{glyphs.get(job.status, '?')} {fact.value}", fact.style))
        elif "\n" in fact.value or fact.label.startswith(("error", "last error")):
            flush()
            text.append(("\n" if text else "") + fact.label + ": ", style="bold " + (fact.style or ""))
            text.append(fact.value)
        else:
            line.append((f"{fact.label} {fact.value}", fact.style))
    flush()
    return text
