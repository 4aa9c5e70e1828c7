"""The qjm app: browse the job sets of a store, watch their jobs and results change live.

Three panes, the selection flowing left to right: the job-set browser, the selected set's status
grid (with the details of the job under the cursor), and the results histogram of the selected
experiment. At 120 columns and wider all three are in view; narrower, one pane fills the screen
and Tab or 1 2 3 switch between them.

The app never calls a backend. It reads the store, in worker threads, only what changed since it
last looked: it checks the store's change number once a second (sets run by other processes),
and sooner when the engine in this process publishes an event (sets started here). Events come
far faster than a screen can paint, so they only mark the store "dirty"; a timer turns that into
at most a few reads and repaints a second.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.dom import DOMNode
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Header

from qjm_tui import JobManager, views
from qjm_tui.config import Config, load_config, log_path
from qjm_tui.core.events import Event
from qjm_tui.core.files import LogFileHandler
from qjm_tui.core.store import JobSetSummary, Store
from qjm_tui.tui.actions import SET_BINDINGS, JobSetActions
from qjm_tui.tui.browser import SetBrowser
from qjm_tui.tui.grid import SetPane
from qjm_tui.tui.help import HelpScreen
from qjm_tui.tui.histogram import KEYS_HINT, HistogramPane
from qjm_tui.tui.messages import JobSetsChanged

log = logging.getLogger("qjm_tui.tui")

#: below this width one pane is shown at a time
WIDE = 120

#: the help's heading for the keys that act on the selected job set
SET_GROUP = "The selected job set"

#: the panes' names in the order Tab and 1 2 3 visit them
PANE_LABELS = ("Job sets", "Jobs", "Results")


def display_path(path: Path) -> str:
    """A store path as the header shows it: under the home folder as ``~/...``."""
    try:
        return "~/" + str(path.resolve().relative_to(Path.home().resolve()))
    except ValueError:
        return str(path)


class QjmApp(JobSetActions, App[int]):
    """The job sets of one store, their jobs and their results, refreshed as the store changes."""

    CSS_PATH = "app.tcss"
    TITLE = "qjm"
    #: the screen gets ``-narrow`` below WIDE columns (one pane at a time) and ``-wide`` above
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (WIDE, "-wide")]
    BINDINGS = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("tab", "next_pane", "Next pane", priority=True, id="app.next_pane"),
        Binding("shift+tab", "previous_pane", "Previous pane", show=False, priority=True,
                id="app.previous_pane"),
        Binding("1", "pane(0)", "Show the job sets", show=False, id="app.pane_sets"),
        Binding("2", "pane(1)", "Show the jobs of the set", show=False, id="app.pane_jobs"),
        Binding("3", "pane(2)", "Show the results", show=False, id="app.pane_results"),
    ]

    def __init__(self, manager: JobManager, *, clock: Callable[[], float] = time.time,
                 watch_interval: float = 1.0, flush_interval: float = 0.5,
                 store_label: str | None = None, read_only: bool = False) -> None:
        super().__init__()
        self.manager = manager
        self.read_only = read_only
        self.clock = clock
        self.watch_interval = watch_interval
        self.flush_interval = flush_interval
        self.unicode = views.unicode_ok(sys.__stdout__)
        self.store_label = store_label or display_path(manager.store.path)
        if read_only:
            self.title = f"{self.TITLE} (read-only)"  # first, so a long store path cannot hide it
        self._seq = -1
        self._pane = 0
        self._dirty = threading.Event()
        self._unsubscribe: Callable[[], None] | None = None
        #: the panes take selections only once all of them are mounted
        self._mounted = False
        #: a set started here, to select once the browser lists it
        self._follow: str | None = None
        self.sub_title = self.store_label

    def compose(self) -> ComposeResult:
        self.browser = SetBrowser(clock=self.clock, unicode=self.unicode, id="browser")
        self.set_pane = SetPane(self.manager.store, clock=self.clock, id="set-pane")
        self.histogram = HistogramPane(self.manager.store, unicode=self.unicode, id="histogram")
        self.right = Vertical(self.set_pane, self.histogram, id="right")
        self.panes: tuple[Widget, ...] = (self.browser, self.set_pane, self.histogram)
        yield Header(icon="")
        with Horizontal(id="panes"):
            yield self.browser
            yield self.right
        yield Footer()

    def on_mount(self) -> None:
        self._unsubscribe = self.manager.subscribe(self._on_engine_event)
        self._mounted = True
        self.browser.border_title = "1 Job sets"
        self.set_pane.border_title = "2 Jobs"
        self.histogram.border_title = "3 Results"
        self._show_pane(self._pane)
        self.set_interval(self.watch_interval, self.check_store)
        self.set_interval(self.flush_interval, self._flush_changes)
        self.set_interval(30, self._age_times)
        self.check_store()

    def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()

    # -- live updates --------------------------------------------------------------------------

    def _on_engine_event(self, event: Event) -> None:
        """Called on engine threads: only note that something changed (no UI work here)."""
        self._dirty.set()

    def _flush_changes(self) -> None:
        """A few times a second: if the engine said something changed, read what did."""
        if self._dirty.is_set():
            self._dirty.clear()
            self.check_store()

    @work(thread=True, exclusive=True, group="watch", exit_on_error=False)
    def check_store(self) -> None:
        """Read only what changed in the store since the last look (in a worker thread)."""
        store = self.manager.store
        try:
            seq = store.change_seq()
            if seq == self._seq:
                return
            changes = store.sets_changed_since(max(self._seq, 0))
            summaries = store.summaries(list(changes.changed)) if changes.changed else []
        except Exception as exc:  # noqa: BLE001 - shown to the user, not raised into the UI
            log.exception("reading the store failed")
            self.call_from_thread(self.notify, f"Reading the store failed: {views.printable(str(exc))}. "
                                  "The app keeps trying; see the log for details.",
                                  severity="error")
            return
        finally:
            store.release_thread_connection()
        self._seq = changes.seq
        self.post_message(JobSetsChanged(summaries, list(changes.deleted)))

    def on_job_sets_changed(self, message: JobSetsChanged) -> None:
        with self._unless_closing():
            browser = self.browser
            browser.apply(message.summaries, message.deleted)
            if self._follow is not None and self.go_to_set(self._follow):
                self._follow = None
            selected = browser.selected
            if selected is not None and any(s.id == selected.id for s in message.summaries):
                self.set_pane.refresh_set(selected)
                self.histogram.refresh_set(selected)
            self._update_title()

    def _age_times(self) -> None:
        """Relative times ("3 min ago") age even when nothing changes."""
        with self._unless_closing():
            self.browser.redraw()

    def _update_title(self) -> None:
        totals: dict[str, int] = {}
        for s in self.browser.rows.values():
            totals[s.state] = totals.get(s.state, 0) + 1
        order = ["running", "interrupted", "partial", "failed", "cancelled", "done"]
        counts = " · ".join(f"{totals[state]} {state}" for state in sorted(
            totals, key=lambda s: order.index(s) if s in order else len(order)))
        self.sub_title = f"{self.store_label}  {counts}" if counts else self.store_label

    # -- selection flows left to right ---------------------------------------------------------

    def on_set_browser_selected(self, message: SetBrowser.Selected) -> None:
        if self._mounted:
            with self._unless_closing():
                self.set_pane.show_set(message.summary)
                self.histogram.show_set(message.summary)

    @contextlib.contextmanager
    def _unless_closing(self) -> Iterator[None]:
        """Run an update of the panes, unless they are being taken down (the app is closing and
        a read that finished before was still on its way): then there is nothing to update."""
        try:
            yield
        except NoMatches:
            log.debug("a pane update arrived while the panes were being taken down", exc_info=True)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a job set opens its jobs."""
        self.action_pane(1)

    def on_set_pane_job_highlighted(self, message: SetPane.JobHighlighted) -> None:
        """The histogram follows the grid: it shows the first experiment of the job under the
        cursor."""
        self.histogram.show_experiment(message.job.start)

    def selected_summary(self) -> JobSetSummary | None:
        """The job set under the browser's cursor (what every set action acts on), if any."""
        return self.browser.selected

    # -- panes and layout ----------------------------------------------------------------------

    def _show_pane(self, index: int) -> None:
        """Make pane ``index`` the current one and give it the focus, unless it has it."""
        self._mark_active(index)
        target = self.panes[index]
        if target.has_focus or target.has_focus_within:
            return
        focusable = [w for w in (target, *target.query("*")) if w.can_focus and not w.disabled]
        if focusable:
            focusable[0].focus()

    def _mark_active(self, index: int) -> None:
        """Mark the current pane (on narrow screens the only one shown)."""
        self._pane = index
        for n, pane in enumerate(self.panes):
            pane.set_class(n == index, "-active")
        self.right.set_class(index > 0, "-active")

    def action_pane(self, index: int) -> None:
        """Show (on narrow screens) and focus one pane: 0 sets, 1 jobs, 2 results."""
        self._show_pane(index)

    def action_next_pane(self) -> None:
        """Move to the next pane, wrapping around."""
        self._show_pane((self._current_pane() + 1) % len(self.panes))

    def action_previous_pane(self) -> None:
        """Move to the previous pane, wrapping around."""
        self._show_pane((self._current_pane() - 1) % len(self.panes))

    def _current_pane(self) -> int:
        focused = self.focused
        for n, pane in enumerate(self.panes):
            if focused is not None and (focused is pane or pane in focused.ancestors):
                return n
        return self._pane

    def on_descendant_focus(self) -> None:
        """Clicking or tabbing into a pane makes it the current one."""
        current = self._current_pane()
        if current != self._pane:
            self._mark_active(current)

    # -- help, palette, errors -----------------------------------------------------------------

    def action_help(self) -> None:
        """Open the list of every key."""
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self._help_rows()))

    def all_bindings(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """Every key of the app, grouped by pane: (group, [(keys, description)])."""
        return [(group, [(keys, b.description) for keys, b, _ in rows])
                for group, rows in self._binding_table()]

    def _help_rows(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """What the help lists: each key with its description and, where a binding has one,
        its longer explanation (its tooltip)."""
        return [(group, [(keys, f"{b.description}: {b.tooltip}" if b.tooltip else b.description)
                         for keys, b, _ in rows])
                for group, rows in self._binding_table()]

    def _binding_table(self) -> list[tuple[str, list[tuple[str, Binding, DOMNode]]]]:
        """Every binding with a description, grouped by pane, as (keys shown, remapped by the
        keymap; the binding; the node it acts on)."""
        set_ids = {b.id for b in SET_BINDINGS}
        everywhere = [(self, b) for b in self._bindings_of(type(self))]
        groups: list[tuple[str, list[tuple[DOMNode, Binding]]]] = [
            ("Everywhere", [(w, b) for w, b in everywhere if b.id not in set_ids]),
            (SET_GROUP, [(w, b) for w, b in everywhere if b.id in set_ids])]
        for pane, label in zip(self.panes, PANE_LABELS, strict=True):
            groups.append((label, [(w, b) for w in [pane, *pane.query("*")]
                                   for b in self._bindings_of(type(w), own_only=True)]))
        out = []
        for label, bindings in groups:
            rows, seen = [], set()
            for widget, b in bindings:
                if not b.description or (b.id or b.action) in seen:
                    continue
                if widget is self and not self.offers(b.action):
                    continue  # an action a read-only app does not offer
                seen.add(b.id or b.action)
                keys = self._keymap.get(b.id, b.key) if b.id else b.key
                shown = ", ".join(self.get_key_display(Binding(k.strip(), "")) for k in keys.split(","))
                rows.append((shown, b, widget))
            out.append((label, rows))
        return out

    @staticmethod
    def _bindings_of(cls: type, own_only: bool = False) -> list[Binding]:
        """The bindings a class declares (its own, or with those it inherits from qjm classes)."""
        out: list[Binding] = []
        for klass in reversed(cls.__mro__ if not own_only else (cls,)):
            if klass.__module__.startswith("qjm_tui"):
                for b in klass.__dict__.get("BINDINGS", []):
                    out.append(b if isinstance(b, Binding) else Binding(*b))
        return out

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The command palette: every action of the app and a jump to each job set by name."""
        for label, rows in self._binding_table():
            if label == SET_GROUP:
                continue  # the actions' own palette entries, with their longer help, come below
            for keys, b, node in rows:
                yield SystemCommand(f"{b.description} ({keys})", label,
                                    lambda n=node, a=b.action: self.run_action(a, n))
        for summary in self.browser.rows.values():
            name = views.printable(summary.name or summary.id)
            yield SystemCommand(f"Go to job set {name}",
                                f"{views.short_id(summary.id)}  {summary.backend}  {summary.state}",
                                lambda set_id=summary.id: self.go_to_set(set_id))
        yield from super().get_system_commands(screen)

    def histogram_counts(self) -> tuple[str, dict[str, int]] | None:
        """What the histogram pane shows, as (title, counts), for saving it as a picture."""
        pane = self.histogram
        counts = pane.current_counts
        if counts is None:
            return None
        title = pane.histogram_text().splitlines()[0].replace(KEYS_HINT, "").strip()
        summary = self.selected_summary()
        return (f"{views.printable(summary.name)}  {title}" if summary else title), counts

    def follow_set(self, set_id: str) -> None:
        """Select a set as soon as the browser lists it (a set just started here)."""
        if not self.go_to_set(set_id):
            self._follow = set_id
            self.check_store()

    def go_to_set(self, set_id: str) -> bool:
        """Select a job set in the browser and show its jobs; False if it is not listed (yet)."""
        if self.browser.select(set_id):
            self.action_pane(1)
            return True
        return False

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        """Show a notification. Its text is never read as markup: messages carry names and
        errors from the store and from services, which must show as they are."""
        super().notify(views.printable(message), title=views.printable(title), severity=severity,
                       timeout=timeout, markup=False)

    def _handle_exception(self, error: Exception) -> None:
        """An unexpected error: the traceback goes to the log file, the user gets one line."""
        log.error("unexpected error in the app", exc_info=error)
        if self.is_headless:
            super()._handle_exception(error)
            return
        message = (f"qjm stopped on an unexpected error: {views.printable(str(error))}\n"
                   f"The details are in {log_path()}; your job sets are safe in the store.")
        self.exit(return_code=1, message=Text(message, style="red"))


def make_app(store_path: Path | None = None, *, clock: Callable[[], float] = time.time,
             config: Config | None = None, watch_interval: float = 1.0,
             flush_interval: float = 0.5, store_label: str | None = None,
             read_only: bool = False) -> QjmApp:
    """Build the app on the store at ``store_path`` (None: the configured default store).

    ``read_only``: the app offers no action that changes anything, and opens the store
    read-only, so a write that got through anyway would be refused by the store too."""
    config = config if config is not None else load_config()
    store: Store | Path | None = store_path
    if read_only:
        store = Store(store_path if store_path is not None else config.store_path(), read_only=True)
    return QjmApp(JobManager(store, config=config), clock=clock, watch_interval=watch_interval,
                  flush_interval=flush_interval, store_label=store_label, read_only=read_only)


def run_app(store_path: Path | None = None, *, read_only: bool = False) -> int:
    """Run the app full screen on ``store_path`` (None: the store in $QJM_HOME or the default);
    ``read_only`` for an app that only looks (see :func:`make_app`)."""
    logging.basicConfig(handlers=[LogFileHandler(log_path())], level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = make_app(store_path, read_only=read_only)
    try:
        result = app.run()
    finally:
        app.manager.close()
    return result or 0
