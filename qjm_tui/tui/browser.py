"""The job-set browser: every set in the store, filtered and sorted as you type.

The list is drawn with Textual's line API (:class:`SetList`): one cached line per set, column
widths worked out from the width the list has and the sets it shows, so the state (glyph and
word, or percentage) and every number are always whole and in view, and the name is what gets
cut (in the middle: names that differ only at their end stay apart). A change repaints only
the lines of the sets that changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Input, Static

from qjm_tui import views
from qjm_tui.core.store import JobSetSummary

#: set states in the order the state sort lists them: those that want a look first
ATTENTION = ("running", "interrupted", "failed", "partial", "cancelled", "done")


def _attention(summary: JobSetSummary) -> tuple[int, float]:
    rank = ATTENTION.index(summary.state) if summary.state in ATTENTION else len(ATTENTION)
    return rank, -summary.created


@dataclass(frozen=True)
class Sort:
    """One order of the list: its name, the column that shows the marker, the key, and whether
    it runs high to low unless reversed."""

    label: str
    column: str
    key: Callable[[JobSetSummary], tuple[Any, ...]]
    descending: bool


#: the orders ``s`` cycles through (``S`` reverses the current one)
SORTS = [
    Sort("newest", "created", lambda s: (s.created, s.id), True),
    Sort("state", "state", _attention, False),
    Sort("name", "name", lambda s: ((s.name or "").lower(), s.id), False),
    Sort("experiments", "exps", lambda s: (s.n_experiments, s.created), True),
    Sort("progress", "state", lambda s: (s.fraction, s.created), True),
]


@dataclass(frozen=True)
class Column:
    """A column of the list: key, header label, width in cells, and right-aligned or not."""

    key: str
    label: str
    width: int
    right: bool = False


#: every column, in the order shown, with its header label
LABELS = {"name": "name", "id": "id", "backend": "backend", "created": "created", "exps": "exps",
          "state": "state"}
#: the columns shown when there is room, most wanted first (name, exps and state always are)
OPTIONAL = ("id", "created", "backend")
#: the narrowest a name is cut to before an optional column is left out
NAME_MIN = 18
#: the widest the backend column gets (longer specs are cut)
BACKEND_MAX = 20
#: cells between two columns
GAP = 2
#: cells before the first column
MARGIN = 1

EMPTY_TEXT = ("No job sets in this store yet.\n\n"
              "Press n to start one, or run `qjm demo` in another terminal:\n"
              "it runs a demo set on the local simulator and it appears here live.")


def matches(summary: JobSetSummary, query: str) -> bool:
    """Whether a set passes a filter: every word must match; ``state:X`` and ``tag:X`` match
    the state or a tag exactly, any other word a name part, a short id (or an id from its
    date on, see :func:`qjm_tui.views.id_matches`), a tag or the backend."""
    for word in query.lower().split():
        if word.startswith("state:"):
            ok = summary.state == word[6:]
        elif word.startswith("tag:"):
            ok = word[4:] in (t.lower() for t in summary.tags)
        else:
            ok = (word in (summary.name or "").lower() or views.id_matches(summary.id, word)
                  or word in summary.backend.lower() or any(word == t.lower() for t in summary.tags))
        if not ok:
            return False
    return True


def set_cells(summary: JobSetSummary, now: float, unicode: bool) -> dict[str, str]:
    """A set's cells as the list shows them, uncut: the state cell is its glyph and word, or
    its percentage done while it runs."""
    glyphs = views.SET_GLYPHS if unicode else views.SET_GLYPHS_ASCII
    words = views.percent(summary.fraction) if summary.state == "running" else summary.state
    return {
        "name": views.printable(summary.name or summary.id),
        "id": views.short_id(summary.id),
        "backend": views.printable(views.backend_label(summary.backend)),
        "created": views.ago(summary.created, now),
        "exps": f"{summary.n_experiments:,}",
        "state": f"{glyphs.get(summary.state, '?')} {words}",
    }


def layout_columns(width: int, rows: Iterable[dict[str, str]], labels: dict[str, str]) -> list[Column]:
    """The columns that fit ``width`` cells, and their widths, for these rows' cells.

    The state and experiments columns are always as wide as their widest cell (nothing is cut
    there); the optional columns are added, most wanted first, while the name keeps at least
    :data:`NAME_MIN` cells; the name takes what is left (and is cut to fit)."""
    rows = list(rows)

    def need(key: str) -> int:
        widest = max((views.cell_width(r[key]) for r in rows), default=0)
        return max(widest, views.cell_width(labels[key]))

    fixed = {"state": need("state"), "exps": need("exps")}
    chosen: dict[str, int] = {}
    used = MARGIN + fixed["state"] + fixed["exps"] + 2 * GAP
    for key in OPTIONAL:
        wanted = min(need(key), BACKEND_MAX) if key == "backend" else need(key)
        if width - used - wanted - GAP >= min(NAME_MIN, need("name")):
            chosen[key] = wanted
            used += wanted + GAP
    name = max(width - used, 1)
    widths = {"name": name, **chosen, **fixed}
    return [Column(key, labels[key], widths[key], right=key == "exps")
            for key in LABELS if key in widths]


def render_cells(cells: dict[str, str], columns: list[Column]) -> list[str]:
    """Each column's text for one row, cut and padded to the column's width."""
    out = []
    for column in columns:
        text = cells[column.key]
        keep_end = max(8, column.width // 3) if column.key == "name" else 0
        text = views.fit(text, column.width, keep_end)
        pad = " " * (column.width - views.cell_width(text))
        out.append(pad + text if column.right else text + pad)
    return out


class SetList(ScrollView, can_focus=True, inherit_bindings=False):
    """The sets, one line each, in the columns :func:`layout_columns` gives for its width.

    Each line is cached; :meth:`show` works out which lines changed (content, order, column
    widths) and repaints only those that are in view.
    """

    DEFAULT_CSS = """
    SetList {
        height: 1fr;
        overflow-x: hidden;
        overflow-y: auto;
        scrollbar-size-vertical: 1;
        scrollbar-gutter: stable;
    }
    SetList > .set-list--cursor {
        background: $block-cursor-blurred-background;
    }
    SetList:focus > .set-list--cursor {
        background: $block-cursor-background;
        color: $block-cursor-foreground;
        text-style: bold;
    }
    """
    COMPONENT_CLASSES = {"set-list--cursor"}

    BINDINGS = [
        Binding("down,j", "cursor_down", "Next set", show=False, id="browser.down"),
        Binding("up,k", "cursor_up", "Previous set", show=False, id="browser.up"),
        Binding("home", "cursor_first", "First set", show=False, id="browser.top"),
        Binding("end", "cursor_last", "Last set", show=False, id="browser.bottom"),
        Binding("pageup", "page_up", "Page up", show=False, id="browser.page_up"),
        Binding("pagedown", "page_down", "Page down", show=False, id="browser.page_down"),
        Binding("enter", "open", "Open", id="browser.open", tooltip="open the set's jobs"),
    ]

    class Highlighted(Message):
        """The cursor moved to another set (None: the list is empty)."""

        def __init__(self, set_id: str | None) -> None:
            super().__init__()
            self.set_id = set_id

    class Opened(Message):
        """Enter (or a double click) on a set."""

        def __init__(self, set_id: str) -> None:
            super().__init__()
            self.set_id = set_id

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.order: list[str] = []
        self.cells: dict[str, dict[str, str]] = {}
        self.styles_of: dict[str, str] = {}
        self.columns: list[Column] = []
        self.labels = dict(LABELS)
        self.cursor_id: str | None = None
        self._index: dict[str, int] = {}
        self._lines: dict[str, tuple[tuple[object, ...], Strip]] = {}
        self._announced: str | None = None

    # -- what it shows -----------------------------------------------------------------------

    @property
    def cursor(self) -> int:
        """The index of the set under the cursor (0 when the list is empty)."""
        if self.cursor_id is None or self.cursor_id not in self._index:
            return 0
        return self._index[self.cursor_id]

    def show(self, order: list[str], cells: dict[str, dict[str, str]], styles: dict[str, str],
             labels: dict[str, str]) -> None:
        """Show these sets in this order (their cells and state styles by id), with these
        column labels; repaint only the lines that changed."""
        old_order, old_columns = self.order, self.columns
        self.order, self.cells, self.styles_of, self.labels = order, cells, styles, labels
        self._index = {set_id: n for n, set_id in enumerate(order)}
        self.columns = layout_columns(self._width(), (cells[i] for i in order), labels)
        if self.cursor_id not in self._index:
            self.cursor_id = order[0] if order else None
        self.virtual_size = Size(self._width(), len(order))
        if self.columns != old_columns or len(order) != len(old_order):
            self.refresh()
        else:
            changed = {n for n, set_id in enumerate(order)
                       if n >= len(old_order) or old_order[n] != set_id
                       or self._key(set_id) != self._lines.get(set_id, ((),))[0]}
            self._repaint(changed)
        self._scroll_to_cursor()
        self._announce()

    def move_to(self, set_id: str) -> bool:
        """Put the cursor on a set shown; False if it is not shown."""
        if set_id not in self._index:
            return False
        self._move(self._index[set_id])
        return True

    # -- the line API ------------------------------------------------------------------------

    def _width(self) -> int:
        return max(self.size.width - self.scrollbar_size_vertical, 0) if self.size.width else 80

    def _key(self, set_id: str) -> tuple[object, ...]:
        """What a set's line depends on: its cells, style, the columns and the cursor."""
        cursor = set_id == self.cursor_id
        return (tuple(self.cells[set_id].values()), self.styles_of.get(set_id, ""), tuple(self.columns),
                cursor, cursor and self.has_focus)

    def render_line(self, y: int) -> Strip:
        row = y + self.scroll_offset.y
        width = self._width()
        if row >= len(self.order):
            return Strip.blank(width, self.rich_style)
        set_id = self.order[row]
        key = self._key(set_id)
        cached = self._lines.get(set_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        strip = self._render_row(set_id, width)
        self._lines[set_id] = (key, strip)
        return strip

    def _render_row(self, set_id: str, width: int) -> Strip:
        base = self.rich_style
        if set_id == self.cursor_id:
            base = base + self.get_component_rich_style("set-list--cursor")
            if getattr(self.app, "no_color", False):
                base += Style(reverse=True)  # without colour, a cursor in reverse video
        texts = render_cells(self.cells[set_id], self.columns)
        segments = [Segment(" " * MARGIN, base)]
        for n, (column, text) in enumerate(zip(self.columns, texts, strict=True)):
            if n:
                segments.append(Segment(" " * GAP, base))
            style = base
            if column.key == "state":
                style = base + Style.parse(self.styles_of.get(set_id, "") or "none")
            segments.append(Segment(text, style))
        return Strip(segments).crop_extend(0, width, base)

    def _repaint(self, rows: set[int]) -> None:
        top, height = self.scroll_offset.y, self.scrollable_content_region.height
        regions = [Region(0, row - top, self.size.width, 1) for row in rows if top <= row < top + height]
        if regions:
            self.refresh(*regions)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._lines.clear()

    def on_resize(self, event: events.Resize) -> None:
        if self.order:
            self.columns = layout_columns(self._width(), (self.cells[i] for i in self.order), self.labels)
            self.virtual_size = Size(self._width(), len(self.order))
            self.refresh()
            self._scroll_to_cursor()
        self.post_message(self.ColumnsChanged())

    class ColumnsChanged(Message):
        """The columns were laid out anew (the header follows)."""

    def on_focus(self) -> None:
        self._repaint({self.cursor})

    def on_blur(self) -> None:
        self._repaint({self.cursor})

    # -- the cursor --------------------------------------------------------------------------

    def _move(self, index: int) -> None:
        if not self.order:
            return
        index = min(max(index, 0), len(self.order) - 1)
        old = self.cursor
        self.cursor_id = self.order[index]
        self._repaint({old, index})
        self._scroll_to_cursor()
        self._announce()

    def _scroll_to_cursor(self) -> None:
        height = self.scrollable_content_region.height
        if height <= 0 or not self.order:
            return
        row, top = self.cursor, self.scroll_offset.y
        if row < top:
            self.scroll_to(y=row, animate=False)
        elif row >= top + height:
            self.scroll_to(y=row - height + 1, animate=False)

    def _announce(self) -> None:
        if self.cursor_id != self._announced:
            self._announced = self.cursor_id
            self.post_message(self.Highlighted(self.cursor_id))

    def action_cursor_down(self) -> None:
        """Move to the next set."""
        self._move(self.cursor + 1)

    def action_cursor_up(self) -> None:
        """Move to the previous set."""
        self._move(self.cursor - 1)

    def action_cursor_first(self) -> None:
        """Move to the first set."""
        self._move(0)

    def action_cursor_last(self) -> None:
        """Move to the last set."""
        self._move(len(self.order) - 1)

    def action_page_up(self) -> None:
        """Move a screenful up."""
        self._move(self.cursor - max(self.scrollable_content_region.height, 1))

    def action_page_down(self) -> None:
        """Move a screenful down."""
        self._move(self.cursor + max(self.scrollable_content_region.height, 1))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open":
            return self.cursor_id is not None
        return True

    def action_open(self) -> None:
        """Open the set under the cursor."""
        if self.cursor_id is not None:
            self.post_message(self.Opened(self.cursor_id))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        index = offset.y + self.scroll_offset.y
        if index < len(self.order):
            self._move(index)
            if event.chain == 2:
                self.action_open()


class SetBrowser(Vertical):
    """Lists job sets; the set under the cursor is the selection the other panes show."""

    DEFAULT_CSS = """
    SetBrowser > #sets-header {
        height: 1;
        color: $text-muted;
        text-style: bold;
    }
    """

    BINDINGS = [
        Binding("slash", "filter", "Filter", id="browser.filter",
                tooltip="filter by name, short id, tag, backend; state:failed tag:nightly"),
        Binding("s", "cycle_sort", "Sort", id="browser.sort",
                tooltip="sort by the next key: newest, state, name, experiments, progress"),
        Binding("S", "reverse_sort", "Reverse", show=False, id="browser.reverse_sort",
                tooltip="reverse the order"),
        Binding("escape", "clear_filter", "Clear filter", id="browser.clear_filter"),
    ]

    class Selected(Message):
        """The set under the cursor changed (another row, or new figures for the same row)."""

        def __init__(self, summary: JobSetSummary | None) -> None:
            super().__init__()
            self.summary = summary

    class Opened(Message):
        """Enter on a set: show its jobs."""

    def __init__(self, *, clock: Callable[[], float] = time.time, unicode: bool = True,
                 id: str | None = None) -> None:
        super().__init__(id=id)
        self.clock = clock
        self.unicode = unicode
        self.rows: dict[str, JobSetSummary] = {}
        self.sort = 0
        self.reverse = False
        self._cells: dict[str, dict[str, str]] = {}
        self._header = ""
        self._title = ""
        self._subtitle = ""

    def compose(self) -> ComposeResult:
        # disabled while hidden, so that nothing focuses it but the filter key
        yield Input(placeholder="filter: name, short id, tag, backend, state:failed tag:nightly",
                    id="filter", disabled=True)
        yield Static(EMPTY_TEXT, id="empty", markup=False)
        yield Static("", id="sets-header", markup=False)
        yield SetList(id="sets")

    @property
    def table(self) -> SetList:
        """The list of sets."""
        return self.query_one(SetList)

    @property
    def selected(self) -> JobSetSummary | None:
        """The set under the cursor, if any."""
        set_id = self.table.cursor_id
        return self.rows.get(set_id) if set_id else None

    def apply(self, summaries: Iterable[JobSetSummary], deleted: Iterable[str] = ()) -> None:
        """Take in sets that are new or changed and forget deleted ones, then redraw."""
        for set_id in deleted:
            self.rows.pop(set_id, None)
            self._cells.pop(set_id, None)
        now = self.clock()
        for summary in summaries:
            self.rows[summary.id] = summary
            self._cells[summary.id] = set_cells(summary, now, self.unicode)
        self.redraw()

    def age(self) -> None:
        """Relative times ("3 min ago") move on: redraw the lines whose text changed."""
        now = self.clock()
        self._cells = {set_id: set_cells(s, now, self.unicode) for set_id, s in self.rows.items()}
        self.redraw()

    def select(self, set_id: str) -> bool:
        """Move the cursor to a set (clearing a filter that hides it); False if it is not known."""
        if set_id not in self.rows:
            return False
        if not self.table.move_to(set_id):
            self.query_one("#filter", Input).value = ""
            self.redraw()
            self.table.move_to(set_id)
        return True

    def visible_order(self) -> list[str]:
        """The ids shown, in the order shown: filtered, then sorted by the current sort."""
        wanted = self.query_one("#filter", Input).value
        shown = [s for s in self.rows.values() if matches(s, wanted)]
        sort = SORTS[self.sort]
        return [s.id for s in sorted(shown, key=sort.key, reverse=sort.descending != self.reverse)]

    def redraw(self) -> None:
        """Show the current rows; only lines whose text changed are repainted."""
        order = self.visible_order()
        sort = SORTS[self.sort]
        descending = sort.descending != self.reverse
        marker = ("▼" if descending else "▲") if self.unicode else ("v" if descending else "^")
        labels = {**LABELS, sort.column: f"{LABELS[sort.column]} {marker}"}
        styles = {set_id: views.SET_STATE_STYLES.get(self.rows[set_id].state, "") for set_id in order}
        table = self.table
        table.show(order, {i: self._cells[i] for i in order}, styles, labels)
        self._show_header()
        empty = not self.rows
        self.query_one("#empty").display = empty
        table.display = not empty
        self.query_one("#sets-header").display = not empty
        wanted = self.query_one("#filter", Input).value.strip()
        self._set_titles(f"1 Job sets ({len(order):,}" + (f" of {len(self.rows):,})" if wanted else ")"),
                         f"{sort.label} {marker}" + (f" · /{views.printable(wanted)}" if wanted else ""))

    def _set_titles(self, title: str, subtitle: str) -> None:
        # a border title that is set again repaints the whole pane: only when it changed
        if title != self._title:
            self._title = self.border_title = title
        if subtitle != self._subtitle:
            self._subtitle = self.border_subtitle = subtitle

    def _show_header(self) -> None:
        table = self.table
        labels = {c.key: c.label for c in table.columns}
        header = " " * MARGIN + (" " * GAP).join(render_cells(labels, table.columns))
        if header != self._header:
            self._header = header
            self.query_one("#sets-header", Static).update(header)

    def on_set_list_columns_changed(self, message: SetList.ColumnsChanged) -> None:
        message.stop()
        self._show_header()

    def on_set_list_highlighted(self, message: SetList.Highlighted) -> None:
        message.stop()
        self.post_message(self.Selected(self.rows.get(message.set_id) if message.set_id else None))

    def on_set_list_opened(self, message: SetList.Opened) -> None:
        message.stop()
        self.post_message(self.Opened())

    def action_cycle_sort(self) -> None:
        """Sort by the next key: newest, state (those wanting a look first), name, experiments,
        progress."""
        self.sort = (self.sort + 1) % len(SORTS)
        self.reverse = False
        self.redraw()

    def action_reverse_sort(self) -> None:
        """Reverse the current order."""
        self.reverse = not self.reverse
        self.redraw()

    def action_filter(self) -> None:
        """Show the filter box and type into it; the list narrows as you type."""
        box = self.query_one("#filter", Input)
        box.display = True
        box.disabled = False
        box.focus()

    def action_clear_filter(self) -> None:
        """Empty and hide the filter box and give the list back the keys."""
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        box.disabled = True
        self.table.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "clear_filter":
            box = self.query_one("#filter", Input)
            return bool(box.display or box.value)
        return True

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.redraw()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.table.focus()
