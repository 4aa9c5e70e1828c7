"""The results histogram pane: the counts of one experiment of a job set as horizontal bars.

The pane is handed a job set (:meth:`HistogramPane.show_set`) and asks for the counts on show
(:class:`HistogramPane.CountsWanted`); the app's bridge reads them from the store as the core
assembles them (:mod:`qjm_tui.tui.readmodel`: shots rounds merged, failures explained), so what
it shows is what ``ManagedJobSet.results()`` and ``qjm results`` give. Bars are laid out
by :func:`qjm_tui.views.histogram_cells`, the same renderer the command line draws with.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Static

from qjm_tui import views
from qjm_tui.core.errors import JobManagerJobNotFound
from qjm_tui.core.results import not_found
from qjm_tui.core.store import JobSetSummary
from qjm_tui.tui.messages import CountsRead
from qjm_tui.tui.readmodel import Reading

#: the keys the title line names where there is room (the key bar shows them as remapped)
KEYS_HINT = ("[ ] step", "g go to", "c combined")


class HistogramBars(Widget):
    """The bars (or the reason there are none) of the counts on show, fitted to the size:
    as many rows as there are lines, the rest folded into one ``other (N)`` row."""

    COMPONENT_CLASSES = {"histogram--label", "histogram--bar", "histogram--other",
                         "histogram--waiting", "histogram--failed"}

    def __init__(self, unicode: bool, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.unicode = unicode
        self.counts: dict[str, int] | None = None
        self.reason = ""
        self.failed = False

    def show(self, counts: dict[str, int] | None, reason: str = "", failed: bool = False) -> None:
        """Draw these counts, or say ``reason`` when there are none."""
        self.counts, self.reason, self.failed = counts, reason, failed
        self.refresh()

    def lines(self) -> list[Text]:
        """The lines drawn at the current size: ``label  bar  count percent`` per row."""
        if self.counts is None:
            style = "histogram--failed" if self.failed else "histogram--waiting"
            return [Text(views.printable(self.reason), style=self.get_component_rich_style(style))]
        if not self.counts:
            return [Text("(no outcomes)")]
        width, height = self.content_size
        cells = views.histogram_cells(self.counts, max(height, 1))
        first = cells[0]
        bar_width = max(width - len(first.label) - len(first.count) - len(first.percent) - 5, 1)
        label_style = self.get_component_rich_style("histogram--label")
        other_style = self.get_component_rich_style("histogram--other")
        bar_style = self.get_component_rich_style("histogram--bar")
        lines = []
        for cell in cells:
            line = Text(no_wrap=True, overflow="crop")
            line.append(views.printable(cell.label), other_style if cell.folded else label_style)
            line.append("  ")
            line.append(cell.bar_text(bar_width, self.unicode).ljust(bar_width), bar_style)
            line.append(f"  {cell.count} {cell.percent}")
            lines.append(line)
        return lines

    def render(self) -> Text:
        text = Text("\n").join(self.lines())
        text.no_wrap = self.counts is not None
        return text


class HistogramPane(Widget, can_focus=True):
    """The counts of the selected experiment of a job set as horizontal bars, most frequent
    first, with a title line; ``[``/``]`` step, ``g`` goes to an experiment by index or circuit
    name, ``c`` sums every experiment that has counts.

    Experiments without counts say why: their job is still to run, failed (the job's error),
    or the experiment failed inside its job.
    """

    DEFAULT_CSS = """
    HistogramPane {
        layout: vertical;
        height: 1fr;
    }
    HistogramPane > #histogram-title {
        height: 1;
    }
    HistogramPane:focus-within > #histogram-title {
        background: $boost;
    }
    HistogramPane > HistogramBars {
        height: 1fr;
    }
    HistogramPane > #histogram-go-to {
        display: none;
    }
    HistogramPane > #histogram-go-to-error {
        display: none;
        height: auto;
        color: $text-error;
    }
    HistogramBars > .histogram--label {
        text-style: bold;
    }
    HistogramBars > .histogram--bar {
        color: $accent;
    }
    HistogramBars > .histogram--other {
        text-style: italic;
    }
    HistogramBars > .histogram--waiting {
        color: $text-muted;
    }
    HistogramBars > .histogram--failed {
        color: $text-error;
    }
    """

    BINDINGS = [
        Binding("left_square_bracket", "previous", "Prev exp", key_display="[", id="histogram.previous",
                tooltip="Show the previous experiment"),
        Binding("right_square_bracket", "next", "Next exp", key_display="]", id="histogram.next",
                tooltip="Show the next experiment"),
        Binding("g", "go_to", "Go to", id="histogram.go_to",
                tooltip="Go to an experiment by index or circuit name"),
        Binding("c", "toggle_combined", "Combined", id="histogram.combined",
                tooltip="Sum the counts of every experiment that has them"),
        Binding("escape", "cancel_go_to", "Close the go-to box", id="histogram.cancel_go_to"),
        Binding("escape,backspace", "back", "Back", show=False, id="histogram.back",
                tooltip="back to the list of job sets"),
    ]

    class CountsWanted(Message):
        """The pane wants the counts of experiment ``experiment`` of ``set_id`` (None: of all,
        summed), as its read number ``request``; the answer is a
        :class:`~qjm_tui.tui.messages.CountsRead` posted to the pane."""

        def __init__(self, pane: HistogramPane, request: int, set_id: str, experiment: int | None) -> None:
            super().__init__()
            self.pane = pane
            self.request = request
            self.set_id = set_id
            self.experiment = experiment

    def __init__(self, *, unicode: bool = True, name: str | None = None,
                 id: str | None = None, classes: str | None = None) -> None:
        """``unicode``: draw bars in block glyphs, else in ``#`` (for terminals without them;
        the app decides, as stdout is not the terminal once it runs)."""
        super().__init__(name=name, id=id, classes=classes)
        self._summary: JobSetSummary | None = None
        self._experiment: int | None = None
        self._combined = False
        self._names: Sequence[str] = ()
        self._shown: Reading | None = None
        self._title = Text("No job set selected", no_wrap=True, overflow="ellipsis")
        # Reads are numbered; one for the same view as the read under way is not started but
        # remembered (``_again``) and run when that one lands, so a stream of refreshes
        # costs one read at a time and every read that is started gets shown.
        self._request = 0
        self._in_flight: tuple[str, int | None] | None = None
        self._again = False
        self._go_to_open = False
        self._unicode = unicode

    def compose(self) -> ComposeResult:
        yield Static(self._title, id="histogram-title")
        yield HistogramBars(self._unicode, id="histogram-bars")
        yield Input(placeholder="experiment index or circuit name", id="histogram-go-to")
        yield Static(id="histogram-go-to-error")

    # -- what the app calls ------------------------------------------------------------------

    @property
    def experiment(self) -> int | None:
        """The experiment selected (also while the combined view is on); None without a set."""
        return self._experiment

    @property
    def combined(self) -> bool:
        """Whether the pane sums every experiment of the set instead of showing one."""
        return self._combined

    @property
    def current_counts(self) -> dict[str, int] | None:
        """The counts on show (the sums in the combined view); None when there are none."""
        return dict(self._shown.counts) if self._shown and self._shown.counts is not None else None

    def histogram_text(self) -> str:
        """The text on show, plain: the title line, then the bars or the reason there are none."""
        lines = [self._title.plain, *(line.plain for line in self.query_one(HistogramBars).lines())]
        error = self.query_one("#histogram-go-to-error", Static)
        if error.display:
            lines.append(str(error.render()))
        return "\n".join(lines)

    def show_set(self, summary: JobSetSummary | None) -> None:
        """Show (or clear) a set: its experiment 0, or keep the index if it is the same set.

        Like every method here that changes what is on show, call it once the pane is mounted.
        """
        if summary is not None and self._summary is not None and summary.id == self._summary.id:
            self.refresh_set(summary)
            return
        self._summary = summary
        self._experiment = 0 if summary is not None and summary.n_experiments else None
        self._combined = False
        self._names = ()
        self._shown = None
        self._close_go_to()
        if summary is None:
            self._request += 1  # a read under way is for a set no longer on show
            self._in_flight = None
            self._draw(Text("No job set selected"), None, "")
        elif self._experiment is None:
            self._draw(Text("This job set has no experiments"), None, "")
        else:
            self._read_current()
        self.refresh_bindings()

    def refresh_set(self, summary: JobSetSummary) -> None:
        """The set changed in the store (new results may exist): re-read only if what is on screen
        can have changed (the current experiment has no counts yet, or the combined view)."""
        if self._summary is None or summary.id != self._summary.id:
            return
        self._summary = summary
        shown = self._shown
        if (self._combined or shown is None or shown.counts is None
                or (shown.set_id, shown.experiment) != self._target()):
            self._read_current()

    def show_experiment(self, index: int) -> None:
        """Show experiment ``index`` of the set on show (leaving the combined view).

        Raises :class:`~qjm_tui.core.errors.JobManagerJobNotFound` for an index the set lacks.
        """
        if self._summary is None or not 0 <= index < self._summary.n_experiments:
            raise not_found(index, self._summary.n_experiments if self._summary else 0)
        self._experiment = index
        self._combined = False
        self._read_current()

    # -- keys --------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel_go_to":
            return self._go_to_open
        if action == "back":
            return not self._go_to_open
        if action in ("previous", "next", "go_to", "toggle_combined"):
            return self._experiment is not None
        return True

    def action_back(self) -> None:
        """Back to the list of job sets."""
        show = getattr(self.app, "action_pane", None)
        if show is not None:
            show(0)

    def action_previous(self) -> None:
        """Show the experiment before this one (from the combined view: the one selected)."""
        self._step(-1)

    def action_next(self) -> None:
        """Show the experiment after this one (from the combined view: the one selected)."""
        self._step(1)

    def _step(self, delta: int) -> None:
        if self._summary is None or self._experiment is None:
            return
        index = self._experiment if self._combined else self._experiment + delta
        if 0 <= index < self._summary.n_experiments:
            self.show_experiment(index)
        else:
            self.app.bell()

    def action_toggle_combined(self) -> None:
        """Switch between the selected experiment and the sum over every finished one."""
        if self._experiment is None:
            return
        self._combined = not self._combined
        self._read_current()

    def action_go_to(self) -> None:
        """Open the box that takes an experiment index or circuit name."""
        box = self.query_one("#histogram-go-to", Input)
        box.value = ""
        box.display = self._go_to_open = True
        box.focus()
        self.refresh_bindings()

    def action_cancel_go_to(self) -> None:
        """Close the go-to box without moving."""
        self._close_go_to()
        self.focus()

    @on(Input.Changed, "#histogram-go-to")
    def _go_to_changed(self, event: Input.Changed) -> None:
        event.stop()  # typing here filters nothing elsewhere
        self.query_one("#histogram-go-to-error", Static).display = False

    @on(Input.Submitted, "#histogram-go-to")
    def _go_to_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            index = self._resolve(event.value)
        except JobManagerJobNotFound as exc:
            error = self.query_one("#histogram-go-to-error", Static)
            error.update(Text(str(exc)))
            error.display = True
            return
        self._close_go_to()
        self.focus()
        self.show_experiment(index)

    def _resolve(self, text: str) -> int:
        """An experiment given as typed: an index if all digits (and in range), else a circuit
        name (the first experiment of that name); the core's clear error if neither."""
        text = text.strip()
        n = self._summary.n_experiments if self._summary else 0
        if text.isdigit() and int(text) < n:
            return int(text)
        if text in self._names:
            return self._names.index(text)
        raise not_found(int(text) if text.isdigit() else text, n)

    def _close_go_to(self) -> None:
        self._go_to_open = False
        self.query_one("#histogram-go-to", Input).display = False
        self.query_one("#histogram-go-to-error", Static).display = False
        self.refresh_bindings()

    # -- reading and drawing -----------------------------------------------------------------

    def _target(self) -> tuple[str, int | None] | None:
        """What is to be on show: (set id, experiment index or None for the combined view)."""
        if self._summary is None or self._experiment is None:
            return None
        return self._summary.id, None if self._combined else self._experiment

    def _read_current(self) -> None:
        target = self._target()
        if target is None:
            return
        if target == self._in_flight:
            self._again = True
            return
        self._in_flight, self._again = target, False
        self._request += 1
        self.post_message(self.CountsWanted(self, self._request, *target))

    def on_counts_read(self, message: CountsRead) -> None:
        if message.request != self._request:
            return  # a newer read replaced this one
        self._in_flight = None
        reading = message.reading
        if reading.names is not None:
            self._names = reading.names
        self._shown = reading
        self._draw(self._title_for(reading), reading.counts, reading.reason or "", reading.failed)
        if self._again:
            self._read_current()

    def _title_for(self, reading: Reading) -> Text:
        title = Text(no_wrap=True, overflow="ellipsis")
        shots = sum(reading.counts.values()) if reading.counts is not None else None
        if reading.experiment is None:
            n = self._summary.n_experiments if self._summary else 0
            title.append("Combined", style="bold")
            title.append(f"  {reading.covered:,} of {n:,} experiments")
        else:
            title.append(f"Experiment {reading.experiment}", style="bold")
            if reading.experiment < len(self._names):
                title.append(f"  {views.printable(self._names[reading.experiment])}")
            if shots is None and self._summary is not None:
                shots = self._summary.shots
        if shots is not None:
            title.append(f"  {shots:,} shots")
        return title

    def _titled(self, title: Text) -> Text:
        """The title with as many of the key hints as fit the pane's width, each whole."""
        width = self.size.width
        line = title.copy()
        hints: list[str] = []
        for hint in KEYS_HINT:
            if line.cell_len + 3 + len(" · ".join([*hints, hint])) > width:
                break
            hints.append(hint)
        if hints:
            line.append("   " + " · ".join(hints), style="dim")
        return line

    def on_resize(self) -> None:
        self.query_one("#histogram-title", Static).update(self._titled(self._title), layout=False)

    def _draw(self, title: Text, counts: dict[str, int] | None, reason: str, failed: bool = False) -> None:
        bars = self.query_one(HistogramBars)
        if (title, counts, reason, failed) == (self._title, bars.counts, bars.reason, bars.failed):
            return  # the same again: nothing to repaint
        self._title = title
        self.query_one("#histogram-title", Static).update(self._titled(title), layout=False)
        bars.show(counts, reason, failed)
