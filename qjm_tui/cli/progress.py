"""Following a job set until it is final: a live bar on a terminal, plain throttled lines in logs,
and the closing sentence that says how it ended."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from qjm_tui.cli import output
from qjm_tui.cli.output import EXIT_FAILED, EXIT_OK, CliError, err, note
from qjm_tui.core.errors import JobManagerInvalidStateError, JobManagerTimeoutError
from qjm_tui.views import duration

if TYPE_CHECKING:
    from qjm_tui.core.jobset import ManagedJobSet, Progress


class NullView:
    """No progress output (``-q``)."""

    def __enter__(self) -> NullView:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, p: Progress, final: bool = False) -> None:
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
        extra = "".join(f", {n} {label}" for n, label in
                        ((p.failed, "failed"), (p.cancelled, "cancelled"), (p.retries, "retries")) if n)
        eta = f", about {duration(p.eta)} left" if p.eta and not final else ""
        note(f"{self.job_set_id}: {p.state}: {p.done}/{p.total_jobs} jobs done{extra}, "
             f"{p.experiments_done}/{p.experiments} experiments, {duration(p.elapsed)}{eta}")


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
        parts = [f"{p.finished_jobs}/{p.total_jobs} jobs", f"{p.experiments_done}/{p.experiments} exp"]
        if p.failed:
            parts.append(f"[red]{p.failed} failed[/]")
        if p.cancelled:
            parts.append(f"[yellow]{p.cancelled} cancelled[/]")
        if p.retries:
            parts.append(f"{p.retries} retries")
        parts.append(duration(p.elapsed))
        if p.eta and not final:
            parts.append(f"~{duration(p.eta)} left")
        if final:
            parts.append(p.state)
        self._progress.update(self._task, total=p.total_jobs, completed=p.finished_jobs,
                              detail=" · ".join(parts))


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


def follow(job_set: ManagedJobSet, mode: str, timeout: float | None = None) -> str:
    """Wait for the job set to be final, showing its progress; returns the final state.

    Raises JobManagerTimeoutError after ``timeout`` seconds, and CliError for an interrupted
    set (nobody is running it, so waiting would never end).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    with make_view(mode, job_set) as view:
        while True:
            step = 0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic()))
            try:
                state = job_set.wait(timeout=step)
            except JobManagerTimeoutError:
                view.update(job_set.progress())
                if deadline is not None and time.monotonic() >= deadline:
                    raise JobManagerTimeoutError(
                        f"job set {job_set.job_set_id()} did not finish within {timeout:g} seconds "
                        f"(state: {job_set.state()})") from None
                continue
            except JobManagerInvalidStateError:
                if job_set.state() == "interrupted":
                    raise CliError(
                        f"job set {job_set.job_set_id()} is interrupted: the process running it "
                        f"ended; run `qjm resume {job_set.job_set_id()}` to finish it") from None
                raise
            view.update(job_set.progress(), final=True)
            return state


def outcome(job_set: ManagedJobSet, state: str, quiet: bool = False) -> int:
    """Say how a finished job set ended (on stderr); 0 if it is done, else 1."""
    p = job_set.progress()
    jid = job_set.job_set_id()
    if state == "done":
        if not quiet:
            note(f"job set {jid} done: {p.total_jobs} jobs, {p.experiments} experiments "
                 f"in {duration(p.elapsed)}")
        return EXIT_OK
    note(f"job set {jid} {state}: {p.done} of {p.total_jobs} jobs done, {p.failed} failed, "
         f"{p.cancelled} cancelled; {p.experiments_done}/{p.experiments} experiments have results")
    errors = job_set.error_messages()
    if errors:
        lines = errors.splitlines()
        for line in lines[:6]:
            err(f"  {line}")
        if len(lines) > 6:
            err(f"  ... see `qjm show {jid}`")
    if state in ("partial", "failed", "cancelled"):
        err(f"  run `qjm retry {jid}` to run the failed and cancelled jobs again")
    return EXIT_FAILED
