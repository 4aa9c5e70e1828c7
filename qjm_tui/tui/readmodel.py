"""What the app reads from the store for its panes, off the UI thread: the counts of one
experiment or of all of them (as the core assembles them: shots rounds merged, failures
explained, so what the pane shows is what ``ManagedJobSet.results()`` and ``qjm results`` give)
and one job in full with its attempts and its lines in the log file.

Plain functions of a :class:`~qjm_tui.core.store.Store`; no Textual. The bridge
(:mod:`qjm_tui.tui.bridge`) runs them in its workers and hands what they return to the widgets.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from qjm_tui import views
from qjm_tui.core.errors import ManagedResultDataNotAvailable
from qjm_tui.core.jobset import stored_results
from qjm_tui.core.status import JOB_FINAL, JobStatus
from qjm_tui.core.store import JobRow, Store
from qjm_tui.core.text import error_text, strip_ansi


@dataclass(frozen=True)
class Reading:
    """What one read of the store found for the pane: counts to draw, or why there are none."""

    set_id: str
    experiment: int | None  #: None for the combined view
    names: Sequence[str] | None  #: the set's experiment names (None if the read failed)
    counts: dict[str, int] | None
    reason: str | None = None  #: why there are no counts
    failed: bool = False  #: the reason is a failure (not something still to come)
    covered: int = 0  #: experiments summed in the combined view


def read_experiment(store: Store, set_id: str, index: int) -> Reading:
    """The counts of one experiment, or why it has none: its job is not finished yet, its job
    failed (with the job's error), or the experiment failed inside a finished job."""
    row = store.get_job_set(set_id)
    # The names are read from the store as asked for; the one shown is read here, off the UI
    # thread (a million names are never all read).
    names = row.experiment_names
    if index < len(names):
        _ = names[index]
    results = stored_results(store, set_id, partial=True, experiments=[index], row=row)
    try:
        counts = dict(results.get_counts(index))
    except ManagedResultDataNotAvailable as exc:
        if index in results.available():  # a result is stored: the experiment itself failed
            return Reading(set_id, index, names, None, _sentence(error_text(exc)), failed=True)
        reason, failed = why_no_result(store.jobs_holding(set_id, index), index,
                                       _sentence(error_text(exc)))
        return Reading(set_id, index, names, None, reason, failed)
    return Reading(set_id, index, names, counts)


def why_no_result(jobs: list[JobRow], index: int, otherwise: str) -> tuple[str, bool]:
    """Why experiment ``index`` has no stored result, from the jobs that hold it (one per shots
    round), and whether that is a failure; ``otherwise`` when its jobs do not tell."""
    holding = [job for job in jobs if job.start <= index < job.stop]
    for job in holding:
        if job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
            verb = "failed" if job.status == JobStatus.FAILED else "was cancelled"
            error = strip_ansi(job.last_error or "").strip()
            detail = f": {error}" if error else "."
            return f"Job {job.index} ({_span(job)}) {verb}{detail}", True
    for job in holding:
        if job.status not in JOB_FINAL:
            return f"No counts yet: job {job.index} ({_span(job)}) is {job.status}.", False
    return otherwise, False


def _sentence(text: str) -> str:
    """The core's message (``experiment 3 failed on the backend: ...``) as a sentence."""
    return text[:1].upper() + text[1:]


def _span(job: JobRow) -> str:
    return f"experiments {job.start}-{job.stop - 1}" if job.size > 1 else f"experiment {job.start}"


def read_combined(store: Store, set_id: str, cancelled: Callable[[], bool]) -> Reading | None:
    """The counts of every experiment of the set that has counts, summed (None if
    ``cancelled`` before the end: a big set is a long read, and a newer one replaces it)."""
    row = store.get_job_set(set_id)
    names = row.experiment_names
    results = stored_results(store, set_id, partial=True, row=row)
    total: dict[str, int] = {}
    covered = 0
    for index in results.iter_available():
        if cancelled():
            return None
        try:
            counts = results.get_counts(index)
        except ManagedResultDataNotAvailable:
            continue  # failed inside its job: nothing to add
        covered += 1
        for outcome, count in counts.items():
            total[outcome] = total.get(outcome, 0) + count
    if not covered:
        return Reading(set_id, None, names, None, "No experiment of this job set has counts.")
    return Reading(set_id, None, names, total, covered=covered)


#: how much of the end of the log file is searched for the job's lines (bytes)
LOG_TAIL = 8 * 1024 * 1024
#: the most log lines shown (the latest)
LOG_LINES = 200


def log_lines_about(path: Path, set_id: str, index: int, backend_ids: set[str]) -> list[str]:
    """The lines of the log file at ``path`` about job ``index`` of a set: those naming the
    set and the job (``job set ID: job N (...)``) or one of its backend job ids; read from
    the last :data:`LOG_TAIL` bytes, the latest :data:`LOG_LINES` kept. None for no file."""
    try:
        with open(path, "rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - LOG_TAIL))
            data = file.read()
    except OSError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    if size > LOG_TAIL:
        lines = lines[1:]  # the first line is probably cut
    own = f"job set {set_id}: job {index} ("
    found = [line for line in lines
             if own in line or any(job_id in line for job_id in backend_ids)]
    return found[-LOG_LINES:]


@dataclass(frozen=True)
class JobReading:
    """What one read found: the job, its attempts and its log lines (or why there are none)."""

    job: JobRow | None
    attempts: list[views.Attempt]
    log_lines: list[str]
    seq: int
    error: str | None = None


def read_job(store: Store, set_id: str, index: int, since: int,
             log_files: Sequence[Path]) -> JobReading | None:
    """Job ``index`` of the set, its attempts and the lines of ``log_files`` about it; None when
    the store has not changed since change number ``since`` (-1: read in any case)."""
    now_seq = store.change_seq()
    if now_seq == since:
        return None
    job = store.job(set_id, index)
    attempts = views.job_attempts(job, store.job_history(set_id, index))
    ids = {a.backend_job_id for a in attempts if a.backend_job_id}
    if job.backend_job_id:
        ids.add(job.backend_job_id)
    lines = [line for path in log_files for line in
             log_lines_about(path, set_id, index, ids)][-LOG_LINES:]
    return JobReading(job, attempts, lines, now_seq)
