"""Following a job set until it is final: a live bar on a terminal, plain throttled lines in logs,
and the closing sentence that says how it ended."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from qjm_tui.cli import output
from qjm_tui.cli.output import EXIT_FAILED, EXIT_OK, CliError, err, note
from qjm_tui.core.errors import JobManagerInvalidStateError, JobManagerTimeoutError, JobSetStopped
from qjm_tui.core.events import Event, JobSetFinished
from qjm_tui.core.jobset import unstored_message
from qjm_tui.core.progress import Progress
from qjm_tui.views import duration, progress_line, progress_parts, set_figures

if TYPE_CHECKING:
    from qjm_tui.core.jobset import ManagedJobSet
    from qjm_tui.core.manager import JobManager


class NullView:
    """No progress output (``-q``)."""

    def __enter__(self) -> NullView:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, p: Progress, final: bool = False) -> None:
        """Show ``p``; ``final`` once the set is finished."""
        return None


class LineView(NullView):
    """Plain progress lines for logs: one on each change, at most one a second, and the last."""

    def __init__(self, job_set_id: str) -> None:
        self.job_set_id = job_set_id
        self._last_key: tuple[Any, ...] | None = None
        self._last_time = 0.0

    def update(self, p: Progress, final: bool = False) -> None:
        key = (p.state, p.done, p.failed, p.cancelled, p.running, p.experiments_done, p.retries)
        now = time.monotonic()
        if key == self._last_key or (not final and now - self._last_time < 1.0):
            return
        self._last_key, self._last_time = key, now
        note(progress_line(self.job_set_id, p, final))


class BarView(NullView):
    """A rich progress bar on stderr."""

    def __init__(self, label: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn
        from rich.table import Column

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}",
                       table_column=Column(max_width=20, no_wrap=True, overflow="ellipsis")),
            BarColumn(bar_width=None),
            TextColumn("{task.fields[detail]}", table_column=Column(no_wrap=True)),
            console=Console(file=sys.stderr),
            refresh_per_second=8,
            expand=True,
        )
        self._task = self._progress.add_task(label, total=None, detail="starting")

    def __enter__(self) -> BarView:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, p: Progress, final: bool = False) -> None:
        parts = progress_parts(p, final)
        detail = " · ".join(f"[{style}]{text}[/]" if style else text for text, style in parts)
        self._progress.update(self._task, total=p.total_jobs, completed=p.finished_jobs, detail=detail)


def label(job_set: ManagedJobSet) -> str:
    """``name (id)``, or just the id when the set has no name of its own."""
    name, jid = job_set.name(), job_set.job_set_id()
    return jid if name == jid else f"{name} ({jid})"


def make_view(mode: str, job_set: ManagedJobSet) -> NullView:
    """The progress display for ``mode``: ``none``, ``bar`` or ``lines``."""
    if mode == "none":
        return NullView()
    if mode == "bar":
        # the line above the bar already names the id; the bar keeps its width for progress
        return BarView(job_set.name())
    return LineView(job_set.job_set_id())


def progress_mode(args: argparse.Namespace) -> str:
    """``none`` with ``-q``, a ``bar`` when stderr is a terminal, plain ``lines`` otherwise."""
    if getattr(args, "quiet", False):
        return "none"
    return "bar" if output.stderr_is_terminal() else "lines"


class ChangeWatch:
    """Wakes a follower when one job set changes, from the change feed instead of re-reading.

    A set this process runs publishes every change on the manager's event bus: an event for the
    set wakes the follower at once. A set another process runs (``qjm wait``) changes only in
    the store: about twice a second the watch reads the store's change number (one tiny query)
    and only when it moved asks which sets changed.
    """

    def __init__(self, manager: JobManager, job_set_id: str, poll: float = 0.5) -> None:
        self._store = manager.store
        self._id = job_set_id
        self._poll = poll
        self._wake = threading.Event()
        self._seq = self._store.change_seq()
        #: set when the bus said the set finished (its runner is about to stop)
        self.finished = threading.Event()
        self._unsubscribe = manager.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        # Called on the engine's threads: only flags, never output.
        if event.job_set_id == self._id:
            if isinstance(event, JobSetFinished):
                self.finished.set()
            self._wake.set()

    def close(self) -> None:
        """Stop listening to the bus."""
        self._unsubscribe()

    def __enter__(self) -> ChangeWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait(self, timeout: float) -> bool:
        """Block until the set changed or ``timeout`` seconds passed; True if it changed."""
        end = time.monotonic() + timeout
        while True:
            remaining = end - time.monotonic()
            if self._wake.wait(max(0.0, min(self._poll, remaining))):
                self._wake.clear()
                # The store saw the same change: do not report it a second time.
                self._seq = self._store.change_seq()
                return True
            if self._store_changed():
                return True
            if end - time.monotonic() <= 0:
                return False

    def _store_changed(self) -> bool:
        if self._store.change_seq() == self._seq:
            return False
        changes = self._store.sets_changed_since(self._seq)
        self._seq = changes.seq
        return self._id in changes.changed or self._id in changes.deleted


def read_figures(manager: JobManager, job_set_id: str) -> Progress:
    """The job set's figures now, from one grouped query of the store."""
    found = manager.store.summaries([job_set_id])
    if not found:
        manager.store.get_job_set(job_set_id)  # raises the store's clear "no job set" error
    return set_figures(found[0], time.time())


def _final_state(job_set: ManagedJobSet, watch: ChangeWatch) -> str | None:
    """The set's final state, or None while it runs; CliError if it is interrupted."""
    try:
        # Once the bus said "finished", the runner stops in a moment: wait for it.
        return job_set.wait(timeout=5.0 if watch.finished.is_set() else 0.0)
    except JobManagerTimeoutError:
        return None
    except JobSetStopped as exc:
        raise CliError(str(exc)) from None
    except JobManagerInvalidStateError:
        if job_set.state() == "interrupted":
            raise CliError(
                f"job set {job_set.job_set_id()} is interrupted: the process running it "
                f"ended; run `qjm resume {job_set.job_set_id()}` to finish it") from None
        raise


#: the least time between two redraws: many events in a burst cost one redraw
MIN_REDRAW = 0.1
#: the most time between two redraws, so elapsed time and the estimate keep moving
MAX_REDRAW = 1.0


def follow(manager: JobManager, job_set: ManagedJobSet, mode: str, timeout: float | None = None,
           view: NullView | None = None) -> str:
    """Wait for the job set to be final, showing its progress; returns the final state.

    ``mode`` picks the display (see :func:`make_view`); ``view`` gives one instead.

    The display follows the change feed (see :class:`ChangeWatch`): it is redrawn when the set
    changes, at most ten times a second however many changes arrive, and once a second
    otherwise. Raises JobManagerTimeoutError after ``timeout`` seconds, and CliError for an
    interrupted set (nobody is running it, so waiting would never end).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    jid = job_set.job_set_id()
    view = view if view is not None else make_view(mode, job_set)
    with view, ChangeWatch(manager, jid) as watch:
        figures = read_figures(manager, jid)
        view.update(figures)
        last_draw = time.monotonic()
        while (state := _final_state(job_set, watch)) is None:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise JobManagerTimeoutError(
                    f"job set {jid} did not finish within {timeout:g} seconds (state: {job_set.state()})")
            step = MAX_REDRAW if deadline is None else min(MAX_REDRAW, deadline - now)
            changed = watch.wait(step)
            # Let a burst of changes gather: at most one redraw per MIN_REDRAW (the end of the
            # set is shown at once).
            pause = last_draw + MIN_REDRAW - time.monotonic()
            if changed and pause > 0:
                watch.finished.wait(pause)
            figures = read_figures(manager, jid) if changed else replace(
                figures, elapsed=figures.elapsed + time.monotonic() - last_draw)
            view.update(figures)
            last_draw = time.monotonic()
        view.update(read_figures(manager, jid), final=True)
        return state


def outcome(manager: JobManager, job_set: ManagedJobSet, state: str, quiet: bool = False) -> int:
    """Say how a finished job set ended (on stderr); 0 if it is done, else 1."""
    jid = job_set.job_set_id()
    p = read_figures(manager, jid)
    if state == "done":
        if not quiet:
            note(f"job set {jid} done: {p.total_jobs} jobs, {p.experiments} experiments "
                 f"in {duration(p.elapsed)}")
        return EXIT_OK
    note(f"job set {jid} {state}: {p.done} of {p.total_jobs} jobs done, {p.failed} failed, "
         f"{p.cancelled} cancelled; {p.experiments_done}/{p.experiments} experiments have results")
    unrunnable = job_set.unrunnable_jobs()
    errors = job_set.error_messages()
    if unrunnable:
        # Said once, not per job; these jobs can never run, so no command is offered for them.
        err(f"  {unstored_message(manager.store.get_job_set(jid), job_set.unstored_experiments())}")
        if p.failed + p.cancelled > len(unrunnable):
            err(f"  other jobs failed too: see `qjm show {jid}`")
    elif errors:
        lines = errors.splitlines()
        for line in lines[:6]:
            err(f"  {line}")
        if len(lines) > 6:
            err(f"  ... see `qjm show {jid}`")
    if state in ("partial", "failed", "cancelled") and p.failed + p.cancelled > len(unrunnable):
        err(f"  run `qjm retry {jid}` to run the failed and cancelled jobs again")
    return EXIT_FAILED
