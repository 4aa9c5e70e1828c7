"""The job-set browser: every set in the store, newest first, filtered and sorted as you type."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Input, Static

from qjm_tui import views
from qjm_tui.core.store import JobSetSummary

#: the orders ``s`` cycles through: (label, key, descending)
SORTS: list[tuple[str, Callable[[JobSetSummary], object], bool]] = [
    ("newest", lambda s: s.created, True),
    ("name", lambda s: (s.name or "").lower(), False),
    ("state", lambda s: s.state, False),
    ("progress", lambda s: s.fraction, True),
]

#: the table's columns: (key, label)
COLUMNS = [("glyph", ""), ("name", "name"), ("id", "id"), ("backend", "backend"),
           ("created", "created"), ("exps", "exps"), ("progress", "progress"), ("state", "state")]

#: the columns when the browser shares the screen with the other panes
COMPACT_COLUMNS = [("glyph", ""), ("name", "name"), ("backend", "backend"), ("exps", "exps"),
                   ("state", "state")]

EMPTY_TEXT = ("No job sets in this store yet.\n\n"
              "Press n to start one, or run `qjm demo` in another terminal:\n"
              "it runs a demo set on the local simulator and it appears here live.")


def matches(summary: JobSetSummary, query: str) -> bool:
    """Whether a set passes a filter: every word must match; ``state:X`` and ``tag:X`` match
    the state or a tag exactly, any other word a name part, an id prefix, a tag or the backend."""
    for word in query.lower().split():
        if word.startswith("state:"):
            ok = summary.state == word[6:]
        elif word.startswith("tag:"):
            ok = word[4:] in (t.lower() for t in summary.tags)
        else:
            ok = (word in (summary.name or "").lower() or summary.id.lower().startswith(word)
                  or views.short_id(summary.id).startswith(word) or word in summary.backend.lower()
                  or any(word == t.lower() for t in summary.tags))
        if not ok:
            return False
    return True


class SetTable(DataTable[Text]):
    """The browser's table, with vim-style moves besides the arrows."""

    BINDINGS = [
        Binding("down,j", "cursor_down", "Next set", show=False, id="browser.down"),
        Binding("up,k", "cursor_up", "Previous set", show=False, id="browser.up"),
        Binding("home", "scroll_top", "First set", show=False, id="browser.top"),
        Binding("end", "scroll_bottom", "Last set", show=False, id="browser.bottom"),
        Binding("enter", "select_cursor", "Open the set's jobs", show=False, id="browser.open"),
    ]


class SetBrowser(Vertical):
    """Lists job sets; the set under the cursor is the selection the other panes show.

    Rows are updated in place when only their contents change, and rebuilt only when the order
    or the filter changes, so a store with many sets redraws cheaply as one of them runs."""

    BINDINGS = [
        Binding("slash", "filter", "Filter", id="browser.filter"),
        Binding("s", "cycle_sort", "Sort", id="browser.sort"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="browser.clear_filter"),
    ]

    class Selected(Message):
        """The set under the cursor changed (another row, or new figures for the same row)."""

        def __init__(self, summary: JobSetSummary | None) -> None:
            super().__init__()
            self.summary = summary

    def __init__(self, *, clock: Callable[[], float] = time.time, unicode: bool = True,
                 id: str | None = None) -> None:
        super().__init__(id=id)
        self.clock = clock
        self.unicode = unicode
        self.rows: dict[str, JobSetSummary] = {}
        self.sort = 0
        self._order: list[str] = []
        self._selected: str | None = None
        self.columns = COLUMNS

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter: name, id, tag, backend, state:failed tag:nightly",
                    id="filter")
        yield Static(Text(EMPTY_TEXT), id="empty")
        yield SetTable(id="sets", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.set_compact(False)

    def on_resize(self) -> None:
        self.set_compact(self.size.width < 70)

    def set_compact(self, compact: bool) -> None:
        """Show all columns (the browser has the screen) or the few that fit beside the other
        panes: name, backend, experiments and state (with the percentage while running)."""
        columns = COMPACT_COLUMNS if compact else COLUMNS
        if columns is self.columns and self.table.columns:
            return
        self.columns = columns
        table = self.table
        table.clear(columns=True)
        for key, label in columns:
            table.add_column(label, key=key)
        self._order = []
        self.redraw()

    @property
    def table(self) -> SetTable:
        """The table of sets."""
        return self.query_one(SetTable)

    @property
    def selected(self) -> JobSetSummary | None:
        """The set under the cursor, if any."""
        return self.rows.get(self._selected) if self._selected else None

    def apply(self, summaries: Iterable[JobSetSummary], deleted: Iterable[str] = ()) -> None:
        """Take in sets that are new or changed and forget deleted ones, then redraw."""
        for set_id in deleted:
            self.rows.pop(set_id, None)
        changed = []
        for summary in summaries:
            self.rows[summary.id] = summary
            changed.append(summary.id)
        self.redraw(changed)

    def select(self, set_id: str) -> bool:
        """Move the cursor to a set (clearing a filter that hides it); False if it is not known."""
        if set_id not in self.rows:
            return False
        if set_id not in self._order:
            self.query_one("#filter", Input).value = ""
            self.redraw()
        self.table.move_cursor(row=self._order.index(set_id))
        return True

    def visible_order(self) -> list[str]:
        """The ids shown, in the order shown: filtered, then sorted by the current sort."""
        wanted = self.query_one("#filter", Input).value
        shown = [s for s in self.rows.values() if matches(s, wanted)]
        _, key, reverse = SORTS[self.sort]
        return [s.id for s in sorted(shown, key=key, reverse=reverse)]

    def redraw(self, changed: Iterable[str] | None = None) -> None:
        """Show the current rows: cells updated in place when the order is unchanged, the
        table rebuilt (keeping the cursor on its set) when it is not. ``changed`` limits the
        in-place update to those sets; None refreshes every row (relative times age)."""
        table = self.table
        order = self.visible_order()
        now = self.clock()
        if order == self._order:
            ids = self._order if changed is None else [i for i in changed if i in table.rows]
            for set_id in ids:
                for (key, _), cell in zip(self.columns, self._cells(self.rows[set_id], now), strict=True):
                    table.update_cell(set_id, key, cell)
        else:
            table.clear()
            for set_id in order:
                table.add_row(*self._cells(self.rows[set_id], now), key=set_id)
            self._order = order
            if self._selected in order:
                table.move_cursor(row=order.index(self._selected), animate=False)
        self._show_empty()
        wanted = self.query_one("#filter", Input).value.strip()
        self.border_title = f"1 Job sets ({len(order)}" + (f" of {len(self.rows)})" if wanted else ")")
        self.border_subtitle = f"{SORTS[self.sort][0]} first" + (f" · /{wanted}" if wanted else "")
        self._announce()

    def _cells(self, s: JobSetSummary, now: float) -> list[Text]:
        style = views.SET_STATE_STYLES.get(s.state, "")
        glyphs = views.SET_GLYPHS if self.unicode else views.SET_GLYPHS_ASCII
        if self.columns is COMPACT_COLUMNS:
            state = f"{s.fraction:.0%}" if s.state == "running" else s.state
            return [Text(glyphs.get(s.state, "?"), style=style),
                    Text(views.clip(views.printable(s.name or "-"), 18)),
                    Text(views.clip(views.printable(s.backend), 14)),
                    Text(f"{s.n_experiments:,}", justify="right"), Text(state, style=style)]
        return [Text(glyphs.get(s.state, "?"), style=style), Text(views.printable(s.name or "-")),
                Text(views.short_id(s.id)), Text(views.printable(s.backend)),
                Text(views.ago(s.created, now)), Text(f"{s.n_experiments:,}", justify="right"),
                Text(views.progress_bar(s.fraction, 12, self.unicode)), Text(s.state, style=style)]

    def _show_empty(self) -> None:
        empty = not self.rows
        self.query_one("#empty").display = empty
        self.table.display = not empty

    def _announce(self) -> None:
        """Tell the app which set is under the cursor if that, or its figures, changed."""
        table = self.table
        set_id = None
        if table.row_count:
            set_id = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        self._selected = set_id
        self.post_message(self.Selected(self.rows.get(set_id) if set_id else None))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if event.row_key.value != self._selected:
            self._announce()

    def action_cycle_sort(self) -> None:
        """Sort by the next key: newest first, name, state, progress."""
        self.sort = (self.sort + 1) % len(SORTS)
        self.notify(f"Job sets sorted by {SORTS[self.sort][0]}", timeout=2)
        self.redraw()

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
        self.table.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.redraw()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.table.focus()
