"""The qjm app: browse job sets in a store and watch them change live."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Input, Static

from qjm_tui import JobManager, views
from qjm_tui.config import Config, load_config, log_path
from qjm_tui.core.store import JobSetSummary
from qjm_tui.tui.actions import JobSetActions
from qjm_tui.tui.messages import JobSetsChanged

log = logging.getLogger("qjm_tui.tui")

#: the orders ``s`` cycles through: (label, key, descending)
SORTS: list[tuple[str, Callable[[JobSetSummary], object], bool]] = [
    ("newest", lambda s: s.created, True),
    ("name", lambda s: (s.name or "").lower(), False),
    ("state", lambda s: s.state, False),
    ("progress", lambda s: s.fraction, True),
]


class QjmApp(JobSetActions, App[int]):
    """Lists the job sets of one store, newest first, refreshed as the store changes."""

    CSS_PATH = "app.tcss"
    TITLE = "qjm"
    BINDINGS = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("slash", "filter", "Filter", id="app.filter"),
        Binding("question_mark", "show_help_panel", "Help", id="app.help"),
        Binding("s", "cycle_sort", "Sort", id="app.cycle_sort"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="app.clear_filter"),
    ]

    def __init__(self, manager: JobManager, *, clock: Callable[[], float] = time.time,
                 watch_interval: float = 1.0) -> None:
        super().__init__()
        self.manager = manager
        self.clock = clock
        self.watch_interval = watch_interval
        self._seq = -1
        self._rows: dict[str, JobSetSummary] = {}
        self._sort = 0
        self.sub_title = str(manager.store.path)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(Text("No job sets yet. Start one with `qjm demo` or `qjm run`."), id="empty")
        yield Input(placeholder="filter: name, id prefix, backend, state:failed, tag:nightly",
                    id="filter")
        yield DataTable(id="sets", cursor_type="row", zebra_stripes=True)
        yield Static(id="details", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#sets", DataTable)
        table.add_columns("", "name", "id", "backend", "created", "exps", "progress", "state")
        table.focus()
        self.set_interval(self.watch_interval, self.check_store)
        self.check_store()

    @work(thread=True, exclusive=True, group="watch")
    def check_store(self) -> None:
        """Read only what changed in the store since the last look (in a worker thread)."""
        store = self.manager.store
        try:
            seq = store.change_seq()
            if seq == self._seq:
                return
            changes = store.sets_changed_since(max(self._seq, 0))
            summaries = store.summaries(list(changes.changed)) if changes.changed else []
            self._seq = changes.seq
        except Exception as exc:  # noqa: BLE001 - shown to the user, not raised into the UI
            log.exception("reading the store failed")
            self.call_from_thread(self.notify, f"Reading the store failed: {exc}", severity="error")
            return
        self.post_message(JobSetsChanged(summaries, list(changes.deleted)))

    def on_job_sets_changed(self, message: JobSetsChanged) -> None:
        for set_id in message.deleted:
            self._rows.pop(set_id, None)
        for summary in message.summaries:
            self._rows[summary.id] = summary
        self._redraw()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_details(event.row_key.value if event.row_key else None)

    def selected_summary(self) -> JobSetSummary | None:
        """The job set under the browser's cursor (what every set action acts on), if any."""
        table = self.query_one("#sets", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return self._rows.get(key.value) if key.value is not None else None

    def _show_details(self, set_id: str | None) -> None:
        """Describe the set under the cursor: jobs per status, experiments, retries, tags."""
        summary = self._rows.get(set_id) if set_id else None
        details = self.query_one("#details", Static)
        if summary is None:
            details.update("")
            return
        text = Text()
        text.append(f"{summary.name or '-'}  ", style="bold")
        text.append(f"{summary.id}  {summary.backend}  created {views.iso(summary.created)}\n")
        for state, count in summary.counts.items():
            if count:
                text.append(f"{views.JOB_GLYPHS.get(state, '?')} {state} {count}  ",
                            style=views.JOB_STATUS_STYLES.get(state, ""))
        text.append(f"\nexperiments {summary.experiments_done}/{summary.n_experiments}"
                    f"  jobs {summary.total_jobs}  retries {summary.retries}")
        if summary.tags:
            text.append("  tags " + ", ".join(summary.tags))
        details.update(text)

    def action_cycle_sort(self) -> None:
        """Sort by the next key: newest first, name, state, progress."""
        self._sort = (self._sort + 1) % len(SORTS)
        self.notify(f"sorted by {SORTS[self._sort][0]}", timeout=2)
        self._redraw()

    def action_filter(self) -> None:
        """Show the filter box and type into it; the list narrows as you type."""
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        """Empty and hide the filter box and give the list back the keys."""
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.query_one("#sets", DataTable).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self._redraw()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one("#sets", DataTable).focus()

    def _redraw(self) -> None:
        table = self.query_one("#sets", DataTable)
        now = self.clock()
        selected = (table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
                    if table.row_count else None)
        table.clear()
        wanted = self.query_one("#filter", Input).value
        totals: dict[str, int] = {}
        for s in self._rows.values():
            totals[s.state] = totals.get(s.state, 0) + 1
        self.sub_title = f"{self.manager.store.path}  " + "  ".join(
            f"{state} {n}" for state, n in sorted(totals.items()))
        shown = [s for s in self._rows.values() if matches(s, wanted)]
        _, key, reverse = SORTS[self._sort]
        for s in sorted(shown, key=key, reverse=reverse):
            style = views.SET_STATE_STYLES.get(s.state, "")
            table.add_row(
                Text(views.SET_GLYPHS.get(s.state, "?"), style=style),
                Text(s.name or "-"), Text(views.short_id(s.id)), Text(s.backend),
                views.ago(s.created, now), str(s.n_experiments),
                views.progress_bar(s.fraction, 12), Text(s.state, style=style), key=s.id)
        if selected is not None and selected in table.rows:
            table.move_cursor(row=table.get_row_index(selected))
        if table.row_count:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
            self._show_details(key.value)
        self.query_one("#empty").display = not self._rows
        table.display = bool(self._rows)


def matches(summary: JobSetSummary, query: str) -> bool:
    """Whether a set passes a filter: every word must match; ``state:X`` and ``tag:X`` match
    the state or a tag exactly, any other word a name part, an id prefix or the backend."""
    for word in query.lower().split():
        if word.startswith("state:"):
            ok = summary.state == word[6:]
        elif word.startswith("tag:"):
            ok = word[4:] in (t.lower() for t in summary.tags)
        else:
            ok = (word in (summary.name or "").lower() or summary.id.lower().startswith(word)
                  or views.short_id(summary.id).startswith(word) or word in summary.backend.lower())
        if not ok:
            return False
    return True


def make_app(store_path: Path | None = None, *, clock: Callable[[], float] = time.time,
             config: Config | None = None, watch_interval: float = 1.0) -> QjmApp:
    """Build the app on the store at ``store_path`` (None: the configured default store)."""
    config = config if config is not None else load_config()
    return QjmApp(JobManager(store_path, config=config), clock=clock, watch_interval=watch_interval)


def run_app(store_path: Path | None = None) -> int:
    """Run the app full screen on ``store_path`` (None: the store in $QJM_HOME or the default)."""
    path = log_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(filename=path, level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = make_app(store_path)
    try:
        result = app.run()
    finally:
        app.manager.close()
    return result or 0
