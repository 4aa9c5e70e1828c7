"""The qjm app: browse the job sets of a store, watch their jobs and results change live.

Three panes, the selection flowing left to right: the job-set browser, the selected set's status
grid (with the details of the job under the cursor), and the results histogram of the selected
experiment. At 120 columns and wider all three are in view; narrower, one pane fills the screen
and Tab or 1 2 3 switch between them (Esc goes back to the list).

The app never calls a backend, and no widget reads the store. The bridge (:mod:`.bridge`) reads
it, in worker threads, only what changed since it last looked: once a second (sets run by other
processes), and sooner when the engine in this process publishes an event (sets started here);
and every few seconds the sets shown running, so a set whose process died reads ``interrupted``
here as soon as the store's rule says so, though nothing was written. What it read comes as
typed messages (:mod:`.messages`) that the app applies to the panes in one batch; the panes ask
for what they show (a set's jobs, the counts, one job) with messages the app hands to the
bridge. Widgets repaint only the lines whose text changed.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.dom import DOMNode
from textual.filter import Monochrome, NoColor
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widget import Widget

from qjm_tui import JobManager, views
from qjm_tui.config import Config, load_config, log_path
from qjm_tui.core.files import LogFileHandler
from qjm_tui.core.store import JobSetSummary, Store
from qjm_tui.tui.actions import SET_BINDINGS, JobSetActions, set_label
from qjm_tui.tui.bars import Entry, KeyBar, TitleBar
from qjm_tui.tui.bridge import Bridge
from qjm_tui.tui.browser import ATTENTION, SetBrowser
from qjm_tui.tui.grid import SetPane, StatusGrid
from qjm_tui.tui.help import HelpScreen
from qjm_tui.tui.histogram import HistogramPane
from qjm_tui.tui.jobview import JobScreen
from qjm_tui.tui.messages import JobStatusesChanged, SetsChanged
from qjm_tui.tui.terminal import charset_driver, output_stream

log = logging.getLogger("qjm_tui.tui")

#: below this width one pane is shown at a time
WIDE = 120
#: from this width the list of sets takes more of the screen (long names)
HUGE = 160


#: the actions that need a selected set (all of the set keys but "new")
SET_ACTIONS = frozenset(b.action for b in SET_BINDINGS if b.action != "new_job_set")

#: the help's heading for the keys that act on the selected job set
SET_GROUP = "The selected job set"

#: the panes' names in the order Tab and 1 2 3 visit them
PANE_LABELS = ("Job sets", "Jobs", "Results")

#: how a set's end is announced: (severity, what is said)
ENDINGS: dict[str, tuple[SeverityLevel, str]] = {
    "done": ("information", "finished"),
    "partial": ("warning", "finished with failed jobs"),
    "failed": ("error", "failed"),
    "cancelled": ("information", "was cancelled"),
    "interrupted": ("warning", "was interrupted (its process stopped); R resumes it"),
}
#: the endings counted as new failures in the title until the set has been looked at
FAILURES = frozenset({"partial", "failed", "interrupted"})


def display_path(path: Path) -> str:
    """A store path as the header shows it: under the home folder as ``~/...``."""
    try:
        return "~/" + str(path.resolve().relative_to(Path.home().resolve()))
    except ValueError:
        return str(path)


def attention_sequence(kind: str, title: str, body: str) -> str:
    """What the terminal is sent to call for attention: a bell, or a desktop notification
    (OSC 9, or OSC 777 with a title); "" for ``none``. Text is made printable and stripped of
    the characters that would end the sequence early."""
    def clean(text: str) -> str:
        return views.printable(text.replace("\x07", "").replace("\x1b", "")).replace(";", ",")

    if kind == "bell":
        return "\x07"
    if kind == "osc9":
        return f"\x1b]9;{clean(title)}: {clean(body)}\x07"
    if kind == "osc777":
        return f"\x1b]777;notify;{clean(title)};{clean(body)}\x07"
    return ""


class QjmApp(JobSetActions, App[int]):
    """The job sets of one store, their jobs and their results, refreshed as the store changes."""

    CSS_PATH = "app.tcss"
    TITLE = "qjm"
    #: the screen gets ``-narrow`` below WIDE columns (one pane at a time) and ``-wide`` above
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (WIDE, "-wide"), (HUGE, "-huge")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True, id="app.interrupt",
                tooltip="quit (asks first while this app runs job sets)"),
        Binding("question_mark", "help", "Help", key_display="?", id="app.help"),
        Binding("tab", "next_pane", "Pane", priority=True, id="app.next_pane",
                tooltip="move to the next pane"),
        Binding("shift+tab", "previous_pane", "Previous pane", show=False, priority=True,
                id="app.previous_pane"),
        Binding("1", "pane(0)", "Show the job sets", show=False, id="app.pane_sets"),
        Binding("2", "pane(1)", "Show the jobs of the set", show=False, id="app.pane_jobs"),
        Binding("3", "pane(2)", "Show the results", show=False, id="app.pane_results"),
    ]

    def __init__(self, manager: JobManager, *, clock: Callable[[], float] = time.time,
                 watch_interval: float = 1.0, flush_interval: float = 0.5,
                 store_label: str | None = None, charset: str | None = None,
                 read_only: bool = False) -> None:
        charset = charset or views.terminal_charset(output_stream())
        super().__init__(driver_class=charset_driver(charset) if charset != "unicode" else None)
        self.manager = manager
        self.read_only = read_only
        self.clock = clock
        #: the app's one reader of the store and listener to the engine
        self.bridge = Bridge(self, manager, watch_interval=watch_interval, flush_interval=flush_interval)
        self.charset = charset
        self.unicode = charset == "unicode"
        self.store_label = store_label or display_path(manager.store.path)
        if read_only:
            self.title = f"{self.TITLE} (read-only)"  # first, so a long store path cannot hide it
        self._pane = 0
        #: the panes take selections only once all of them are mounted
        self._mounted = False
        #: a set started here, to select once the browser lists it
        self._follow: str | None = None
        #: sets that failed (or were interrupted) while the app was open, not yet looked at
        self.unseen_failures: set[str] = set()
        self._started = clock()
        if self.no_color:
            # Without colour means no colour codes at all, not greys standing in for colours.
            self._filters = [NoColor() if isinstance(f, Monochrome) else f for f in self._filters]

    def compose(self) -> ComposeResult:
        self.title_bar = TitleBar(self.store_label, title=self.title, id="title-bar")
        self.browser = SetBrowser(clock=self.clock, unicode=self.unicode, id="browser")
        self.set_pane = SetPane(clock=self.clock, unicode=self.unicode, id="set-pane")
        self.histogram = HistogramPane(unicode=self.unicode, id="histogram")
        self.right = Vertical(self.set_pane, self.histogram, id="right")
        self.panes: tuple[Widget, ...] = (self.browser, self.set_pane, self.histogram)
        yield self.title_bar
        with Horizontal(id="panes"):
            yield self.browser
            yield self.right
        yield KeyBar(id="key-bar")

    def on_mount(self) -> None:
        self._mounted = True
        self.screen.set_class(self.charset != "unicode", f"-{self.charset}")
        self.screen.set_class(self.no_color, "-nocolor")
        self.browser.border_title = "1 Job sets"
        self.set_pane.border_title = "2 Jobs"
        self.histogram.border_title = "3 Results"
        self._show_pane(self._pane)
        self.set_interval(30, self._age_times)
        self.bridge.start()

    def on_unmount(self) -> None:
        self.bridge.stop()

    # -- live updates --------------------------------------------------------------------------

    def on_set_pane_jobs_wanted(self, message: SetPane.JobsWanted) -> None:
        self.bridge.load_jobs(message.set_id, message.load)

    def on_histogram_pane_counts_wanted(self, message: HistogramPane.CountsWanted) -> None:
        self.bridge.read_counts(message.pane, message.request, message.set_id, message.experiment)

    def on_job_screen_job_wanted(self, message: JobScreen.JobWanted) -> None:
        self.bridge.read_job(message.screen, message.set_id, message.index, message.since,
                             message.log_files)

    def on_job_statuses_changed(self, message: JobStatusesChanged) -> None:
        """All the jobs of the set the jobs pane asked for (or why they could not be read)."""
        with self._unless_closing(), self.batch_update():
            self.set_pane.apply_jobs(message)

    def on_sets_changed(self, message: SetsChanged) -> None:
        """What the bridge read from the store: the sets' list, the figures and the grid change
        in one repaint."""
        self.bridge.applied(message)
        with self._unless_closing():
            browser = self.browser
            before = {s.id: browser.rows[s.id].state for s in message.summaries if s.id in browser.rows}
            first_read = not browser.rows
            with self.batch_update():
                browser.apply(message.summaries, message.deleted)
                if self._follow is not None and self.go_to_set(self._follow):
                    self._follow = None
                self.set_pane.apply_sets_changed(message)
                selected = browser.selected
                if selected is not None and any(s.id == selected.id for s in message.summaries):
                    self.histogram.refresh_set(selected)
                if not first_read:
                    self._announce_endings(message.summaries, before)
                self._update_title()

    def _announce_endings(self, summaries: list[JobSetSummary], before: Mapping[str, str]) -> None:
        """Say when a set this app watched (here or in another process) finishes, fails or
        stops: a notice, the configured bell or desktop notification, and for failures a count
        in the title until the set is looked at."""
        for summary in summaries:
            old = before.get(summary.id)
            if old is None and summary.created < self._started:
                continue  # a set from before the app started, seen for the first time
            if (old or "running") != "running" or summary.state not in ENDINGS:
                continue
            severity, what = ENDINGS[summary.state]
            figures = views.set_figures(summary, self.clock())
            detail = f"{figures.experiments_done:,}/{figures.experiments:,} experiments"
            if figures.failed:
                detail += f", {figures.failed:,} of {figures.total_jobs:,} jobs failed"
            self.notify(f"job set {set_label(summary)} {what}: {detail}", title=summary.state,
                        severity=severity, timeout=8)
            self._call_for_attention(f"qjm: job set {summary.state}", f"{set_label(summary)} {what}")
            if summary.state in FAILURES and summary.id != self.browser.table.cursor_id:
                self.unseen_failures.add(summary.id)

    def _call_for_attention(self, title: str, body: str) -> None:
        """Ring the bell or send a desktop notification through the terminal, as configured."""
        sequence = attention_sequence(getattr(self.manager.config, "notify", "none"), title, body)
        if sequence and self._driver is not None and not self.is_headless:
            self._driver.write(sequence)
            self._driver.flush()
        elif sequence:
            self.last_attention = sequence

    def _age_times(self) -> None:
        """Relative times ("3 min ago") age even when nothing changes."""
        with self._unless_closing():
            self.browser.age()

    def _update_title(self) -> None:
        totals: dict[str, int] = {}
        for s in self.browser.rows.values():
            totals[s.state] = totals.get(s.state, 0) + 1
        glyphs = views.SET_GLYPHS if self.unicode else views.SET_GLYPHS_ASCII
        order = sorted(totals, key=lambda s: ATTENTION.index(s) if s in ATTENTION else len(ATTENTION))
        counts = [Entry(f"{totals[state]:,} {state}", f"{glyphs.get(state, '?')}{totals[state]:,}",
                        views.SET_STATE_STYLES.get(state, "")) for state in order]
        self.unseen_failures &= set(self.browser.rows)
        unseen = len(self.unseen_failures)
        alert = None
        if unseen:
            words = "new failure" if unseen == 1 else "new failures"
            alert = Entry(f"{glyphs['failed']} {unseen} {words}", f"{glyphs['failed']}{unseen} new",
                          "bold red")
        self.title_bar.show(counts, alert)

    # -- selection flows left to right ---------------------------------------------------------

    def on_set_browser_selected(self, message: SetBrowser.Selected) -> None:
        if self._mounted:
            with self._unless_closing():
                if message.summary is not None and message.summary.id in self.unseen_failures:
                    self.unseen_failures.discard(message.summary.id)
                    self._update_title()
                self.set_pane.show_set(message.summary)
                self.histogram.show_set(message.summary)
                self.refresh_bindings()  # the set keys come and go with a selection

    @contextlib.contextmanager
    def _unless_closing(self) -> Iterator[None]:
        """Run an update of the panes, unless they are being taken down (the app is closing and
        a read that finished before was still on its way): then there is nothing to update."""
        try:
            yield
        except NoMatches:
            log.debug("a pane update arrived while the panes were being taken down", exc_info=True)

    def on_set_browser_opened(self, message: SetBrowser.Opened) -> None:
        """Enter on a job set opens its jobs."""
        self.action_pane(1)

    def on_set_pane_job_highlighted(self, message: SetPane.JobHighlighted) -> None:
        """The histogram follows the grid: it shows the first experiment of the job under the
        cursor."""
        self.histogram.show_experiment(message.job.start)

    def on_status_grid_job_opened(self, message: StatusGrid.JobOpened) -> None:
        """Enter on a job opens its view."""
        summary = self.set_pane.summary
        if summary is not None:
            self.push_screen(JobScreen(self.manager.store.path, summary, message.index, clock=self.clock,
                                       unicode=self.unicode))

    def selected_summary(self) -> JobSetSummary | None:
        """The job set under the browser's cursor (what every set action acts on), if any."""
        return self.browser.selected

    # -- panes and layout ----------------------------------------------------------------------

    def _show_pane(self, index: int) -> None:
        """Make pane ``index`` the current one and give it the focus, unless it has it."""
        self._mark_active(index)
        target = self.panes[index]
        if target.has_focus or target.has_focus_within:
            if index == 0 and not self.browser.table.has_focus and self.browser.table.display:
                self.browser.table.focus()  # from the filter box: the keys go back to the list
            return
        if index == 0:
            if self.browser.table.display:
                self.browser.table.focus()
            return
        focusable = [w for w in (target, *target.query("*")) if w.can_focus and not w.disabled
                     and w.display]
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

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Pane keys work on the main screen only: in a form or dialog, Tab and Shift+Tab move
        between its fields, and digits are typed."""
        if action in ("next_pane", "previous_pane", "pane"):
            return self.screen is self.screen_stack[0]
        if action in SET_ACTIONS and self._mounted and self.browser.selected is None:
            return False  # no set to act on: the keys are not offered
        return super().check_action(action, parameters)

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

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """The command palette: every action of the app and a jump to each job set by name
        (not Textual's own commands: themes and screenshots are not what qjm is for)."""
        offered: set[str] = set()
        for label, rows in self._binding_table():
            if label == SET_GROUP:
                continue  # the actions' own palette entries, with their longer help, come below
            for keys, b, node in rows:
                action = b.action.split("(")[0]
                if action == "back" or node.check_action(action, ()) is False:
                    continue  # a key for a moment or a place (closing a box, leaving a pane)
                title = f"{b.description} ({keys})"
                if title in offered:
                    continue
                offered.add(title)
                yield SystemCommand(title, b.tooltip or label,
                                    lambda n=node, a=b.action: self.run_action(a, n))
        yield from JobSetActions.get_system_commands(self, screen)
        for summary in self.browser.rows.values():
            name = views.printable(summary.name or summary.id)
            yield SystemCommand(f"Go to job set {name}",
                                f"{views.short_id(summary.id)}  {summary.backend}  {summary.state}",
                                lambda set_id=summary.id: self.go_to_set(set_id))

    def histogram_counts(self) -> tuple[str, dict[str, int]] | None:
        """What the histogram pane shows, as (title, counts), for saving it as a picture."""
        pane = self.histogram
        counts = pane.current_counts
        if counts is None:
            return None
        title = pane.histogram_text().splitlines()[0].strip()
        summary = self.selected_summary()
        return (f"{views.printable(summary.name)}  {title}" if summary else title), counts

    def follow_set(self, set_id: str) -> None:
        """Select a set as soon as the browser lists it (a set just started here)."""
        if not self.go_to_set(set_id):
            self._follow = set_id
            self.bridge.look()

    def go_to_set(self, set_id: str) -> bool:
        """Select a job set in the browser and show its jobs; False if it is not listed (yet)."""
        if self.browser.select(set_id):
            summary = self.browser.rows[set_id]
            self.set_pane.show_set(summary)  # now, so that the jobs pane can take the focus
            self.histogram.show_set(summary)
            self.action_pane(1)
            return True
        return False

    def get_key_display(self, binding: Binding) -> str:
        """A key as the key bar and the help show it; on a terminal without the symbols Textual
        uses (``⏎``), its name."""
        shown = super().get_key_display(binding)
        if not self.unicode and not shown.isascii():
            key = binding.key.split(",")[0]
            return {"left": "<", "right": ">", "up": "^", "down": "v"}.get(key, key.replace("_", " "))
        return shown

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
             charset: str | None = None, read_only: bool = False) -> QjmApp:
    """Build the app on the store at ``store_path`` (None: the configured default store);
    ``charset`` (one of :data:`qjm_tui.views.CHARSETS`) overrides what the terminal says.

    ``read_only``: the app offers no action that changes anything, and opens the store
    read-only, so a write that got through anyway would be refused by the store too."""
    config = config if config is not None else load_config()
    store: Store | Path | None = store_path
    if read_only:
        store = Store(store_path if store_path is not None else config.store_path(), read_only=True)
    return QjmApp(JobManager(store, config=config), clock=clock, watch_interval=watch_interval,
                  flush_interval=flush_interval, store_label=store_label, charset=charset,
                  read_only=read_only)


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
