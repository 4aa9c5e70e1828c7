"""What users read, shared by the command line and the app: durations, relative times, state
glyphs and styles, status phrases, job-set summaries (figures, table cells, the ``--json``
shape), progress text, progress bars and histogram bars.

Everything here is plain text from plain values (no Rich, no Textual, no store access), so the
CLI and the app say the same thing the same way, and tests can check it without a terminal.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qjm_tui.core.progress import Progress
from qjm_tui.core.status import (  # noqa: F401  (the phrases are part of what views offer)
    JOB_ACTIVE,
    JOB_STATUS_PHRASES,
    SET_FINAL,
    elapsed_and_eta,
    job_status_phrase,
)
from qjm_tui.core.store import id_tail
from qjm_tui.core.text import printable, strip_ansi  # every view shows stored text through printable
from qjm_tui.core.usage import (  # noqa: F401  (the usage words are part of what views offer)
    job_usage_phrase,
    seconds_text,
    session_phrase,
    usage_phrase,
)

if TYPE_CHECKING:
    from qjm_tui.core.store import JobEvent, JobRow, JobSetSummary

#: job statuses in the order a legend lists them
JOB_STATUS_ORDER = ("done", "running", "queued", "submitting", "pending", "failed", "cancelled")

#: one glyph per job status, distinct without colour (a circle filling up as the job moves on);
#: and their ASCII fallbacks
JOB_GLYPHS = {"pending": "○", "submitting": "◌", "queued": "◔", "running": "◐", "done": "●",
              "failed": "✗", "cancelled": "⊘"}
JOB_GLYPHS_ASCII = {"pending": ".", "submitting": "s", "queued": "q", "running": "r", "done": "#",
                    "failed": "x", "cancelled": "-"}

#: one glyph per job-set state (partial is a diamond: a half circle would read as running)
SET_GLYPHS = {"running": "◐", "done": "●", "partial": "◆", "failed": "✗", "cancelled": "⊘",
              "interrupted": "‼"}
SET_GLYPHS_ASCII = {"running": "r", "done": "#", "partial": "p", "failed": "x", "cancelled": "-",
                    "interrupted": "!"}

#: job-set states in which nothing runs any more (``interrupted`` can still be resumed)
SET_FINAL_STATES = SET_FINAL

#: job statuses of a job handed to the backend and not yet final
JOB_ACTIVE_STATUSES = JOB_ACTIVE

#: a style per job status and per job-set state: colour names that Rich and Textual both accept
JOB_STATUS_STYLES = {"pending": "dim", "submitting": "blue", "queued": "blue", "running": "cyan",
                     "done": "green", "failed": "red", "cancelled": "yellow"}
SET_STATE_STYLES = {"running": "cyan", "done": "green", "partial": "yellow", "failed": "red",
                    "cancelled": "yellow", "interrupted": "magenta"}

_FULL, _EIGHTHS = "█", " ▏▎▍▌▋▊▉"


def unicode_ok(stream: object = None) -> bool:
    """Whether ``stream`` (stdout by default) can show block and circle glyphs."""
    encoding = getattr(stream if stream is not None else sys.stdout, "encoding", None) or ""
    return encoding.lower().replace("-", "").startswith("utf")


#: what a terminal can draw: every glyph qjm uses; the Linux console's font (box drawing and
#: full blocks, none of the circles); or ASCII only
CHARSETS = ("unicode", "console", "ascii")


def terminal_charset(stream: object = None, term: str | None = None, codeset: str | None = None) -> str:
    """The charset to draw in on the terminal behind ``stream`` (stdout by default), one of
    :data:`CHARSETS`: ``ascii`` when the stream or the locale is not UTF-8 (``LC_ALL=C``: Python
    may write UTF-8 all the same, in its UTF-8 mode, but the terminal was not promised it),
    ``console`` on the Linux console (``TERM=linux``, whose font lacks the state glyphs), else
    ``unicode``. ``term`` and ``codeset`` default to ``$TERM`` and the locale's codeset."""
    if codeset is None:
        import locale

        codeset = locale.nl_langinfo(locale.CODESET) if hasattr(locale, "nl_langinfo") else "utf-8"
    if not unicode_ok(stream) or not codeset.lower().replace("-", "").startswith("utf"):
        return "ascii"
    term = os.environ.get("TERM", "") if term is None else term
    return "console" if term == "linux" else "unicode"


def cell_width(text: str) -> int:
    """How many terminal cells ``text`` takes: two for each wide (East Asian) character, none
    for combining marks."""
    return sum(_char_width(ch) for ch in text)


@functools.lru_cache(maxsize=4096)
def _char_width(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def fit(text: str, width: int, keep_end: int = 0) -> str:
    """``text`` cut to at most ``width`` cells with an ellipsis where it was cut; with
    ``keep_end``, the cut is in the middle and that many cells of the end are kept (names that
    differ only at their end stay apart)."""
    if cell_width(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    keep_end = min(keep_end, (width - 1) // 2)
    tail = ""
    if keep_end:
        for ch in reversed(text):
            if cell_width(tail) + _char_width(ch) > keep_end:
                break
            tail = ch + tail
    head, room = "", width - 1 - cell_width(tail)
    for ch in text:
        if cell_width(head) + _char_width(ch) > room:
            break
        head += ch
    return head + "…" + tail


def backend_label(spec: str) -> str:
    """A backend spec as a listing shows it: ``aer:fake_manila`` and ``ibm-runtime:ibm_kyiv``
    as they are, but a spec with options (``emulator:dir=...,latency=0``) by its kind alone;
    the whole spec is in ``qjm show``."""
    kind, sep, rest = spec.partition(":")
    return kind if sep and "=" in rest else spec


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, with an ellipsis where it was cut."""
    return text if len(text) <= width else text[:max(width - 1, 0)] + "…"


def duration(seconds: float | None) -> str:
    """A short duration: ``4.1s``, ``3m05s``, ``2h07m``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def ago(timestamp: float, now: float) -> str:
    """How long before ``now`` a moment was, as a person says it: ``just now``, ``3 min ago``,
    ``5 h ago``, ``2 d ago``."""
    seconds = max(0.0, now - timestamp)
    if seconds < 45:
        return "just now"
    if seconds < 3600:
        return f"{max(1, round(seconds / 60))} min ago"
    if seconds < 86400:
        return f"{round(seconds / 3600)} h ago"
    return f"{round(seconds / 86400)} d ago"


def iso(timestamp: float | None) -> str | None:
    """A timestamp as local ISO 8601 text to the second (None stays None)."""
    if timestamp is None:
        return None
    return dt.datetime.fromtimestamp(timestamp, tz=dt.timezone.utc).astimezone().isoformat(
        timespec="seconds")


def clock_time(timestamp: float | None) -> str:
    """A timestamp as local ``HH:MM:SS`` (``-`` when unknown)."""
    if timestamp is None:
        return "-"
    return dt.datetime.fromtimestamp(timestamp).strftime("%H:%M:%S")


def bar(fraction: float, width: int, unicode: bool = True) -> str:
    """A horizontal bar ``width`` cells long at most, in eighths of a cell where the terminal
    can show them; empty cells are spaces (the caller pads or draws a track)."""
    fraction = min(max(fraction, 0.0), 1.0)
    eighths = int(round(fraction * width * 8))
    if not unicode:
        return "#" * (eighths // 8)
    return _FULL * (eighths // 8) + (_EIGHTHS[eighths % 8] if eighths % 8 else "")


def retries_text(retries: int) -> str:
    """``1 retry``, ``3 retries``."""
    return f"{retries:,} {'retry' if retries == 1 else 'retries'}"


def percent(fraction: float) -> str:
    """A fraction done as a whole percentage, rounded down: 100% only once everything is done,
    and the same figure wherever a set's progress is shown."""
    return f"{int(min(max(fraction, 0.0), 1.0) * 100)}%"


def progress_bar(fraction: float, width: int, unicode: bool = True) -> str:
    """A progress bar exactly ``width`` cells wide: filled part, then a light track."""
    filled = bar(fraction, width, unicode)
    return filled + ("░" if unicode else "-") * (width - len(filled))


@dataclass(frozen=True)
class HistogramRow:
    """One bar of a histogram: an outcome (or ``other (N)``), its count and probability."""

    label: str
    count: int
    probability: float
    folded: int = 0  #: how many outcomes an "other" row stands for (0 for a real outcome)


def histogram_rows(counts: dict[str, int], max_rows: int = 16) -> list[HistogramRow]:
    """Counts as rows, most frequent first (ties by outcome); beyond ``max_rows`` the rest is
    folded into one ``other`` row, so the rows always add up to every shot."""
    total = sum(counts.values())
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(ordered) > max_rows:
        keep, rest = ordered[:max(max_rows - 1, 1)], ordered[max(max_rows - 1, 1):]
    else:
        keep, rest = ordered, []
    rows = [HistogramRow(k, c, c / total if total else 0.0) for k, c in keep]
    if rest:
        folded = sum(c for _, c in rest)
        rows.append(HistogramRow(f"other ({len(rest)})", folded, folded / total if total else 0.0,
                                 folded=len(rest)))
    return rows


@dataclass(frozen=True)
class HistogramCells:
    """One histogram row as text cells, each padded to the widths of its histogram so rows line
    up: the outcome, its count, its probability as a percentage, and how long its bar is."""

    label: str
    count: str
    percent: str
    fraction: float  #: of the most frequent row, whose bar fills the width
    folded: int = 0  #: how many outcomes an "other" row stands for (0 for a real outcome)

    def bar_text(self, width: int, unicode: bool = True) -> str:
        """This row's bar for a histogram whose longest bar is ``width`` cells."""
        return bar(self.fraction, width, unicode)


def histogram_cells(counts: dict[str, int], max_rows: int = 16) -> list[HistogramCells]:
    """Counts as the cells of a text histogram (rows as :func:`histogram_rows` gives them).

    The one text-bar renderer: the CLI's :func:`histogram_lines` and the app's histogram pane
    both lay out these cells, so they show the same rows, figures and bars.
    """
    rows = histogram_rows(counts, max_rows)
    top = max((r.count for r in rows), default=0)
    label_width = max((len(r.label) for r in rows), default=0)
    count_width = len(f"{top:,}")
    return [HistogramCells(r.label.rjust(label_width), f"{r.count:,}".rjust(count_width),
                           f"{r.probability * 100:5.1f}%", r.count / top if top else 0.0, r.folded)
            for r in rows]


def histogram_lines(counts: dict[str, int], width: int = 40, max_rows: int = 16,
                    unicode: bool | None = None) -> list[str]:
    """Counts as text bars, one line each: ``outcome  count  percent  bar``.

    Bars are scaled to the largest row, so the most frequent outcome fills ``width``.
    """
    if not counts:
        return ["  (no counts)"]
    unicode = unicode_ok() if unicode is None else unicode
    return [f"  {c.label} {c.count} {c.percent} {c.bar_text(width, unicode)}".rstrip()
            for c in histogram_cells(counts, max_rows)]


# -- job sets ------------------------------------------------------------------------------


def set_figures(summary: JobSetSummary, now: float) -> Progress:
    """The figures of a job set at time ``now`` (see :class:`~qjm_tui.core.progress.Progress`):
    what ``qjm ls``, the progress display and the app's job-set list show."""
    return Progress.of(summary, now)


def job_set_summary(summary: JobSetSummary, now: float, run_options: dict[str, Any] | None = None,
                    jobs: Sequence[JobRow] | None = None) -> dict[str, Any]:
    """A job set as plain data: the ``--json`` shape of ``qjm ls``, ``show``, ``report`` and
    ``wait``; with ``jobs``, a ``job_list`` of each job (see :func:`job_summary`)."""
    f = set_figures(summary, now)
    data: dict[str, Any] = {
        "id": summary.id,
        "name": summary.name,
        "tags": list(summary.tags),
        "backend": summary.backend,
        "state": f.state,
        "shots": summary.shots,
        "run_options": dict(run_options or {}),
        "created": iso(summary.created),
        "finished": iso(summary.finished) if f.state in SET_FINAL_STATES else None,
        "elapsed": round(f.elapsed, 3),
        "eta": None if f.eta is None else round(f.eta, 3),
        "experiments": f.experiments,
        "experiments_done": f.experiments_done,
        # running: every job the backend holds; pending: those not handed to it yet
        "jobs": {"total": f.total_jobs, "done": f.done, "failed": f.failed, "cancelled": f.cancelled,
                 "running": f.active, "pending": f.unsubmitted},
        "retries": f.retries,
        # quantum seconds as the service reported them; the estimate covers jobs still to run
        "usage": {"quantum_seconds": summary.usage, "estimated_seconds": summary.usage_estimate},
        "stopped": summary.stop_reason,
        # qjm's estimate of the time on the backend, from its instruction durations (None: none)
        "estimated_time": summary.estimated_seconds,
    }
    if jobs is not None:
        data["job_list"] = [job_summary(job) for job in jobs]
    return data


def job_summary(job: JobRow) -> dict[str, Any]:
    """One backend job as plain data (experiment range inclusive, as the original API has it)."""
    return {
        "index": job.index,
        "first_experiment": job.start,
        "last_experiment": job.stop - 1,
        "shots_round": job.round,
        "status": job.status,
        "backend_job_id": job.backend_job_id,
        "attempts": job.attempts,
        "retries": job.retries,
        "error": job.last_error,
        "session": {"mode": job.session_mode, "id": job.session_id} if job.session_id else None,
        "usage": {"quantum_seconds": job.usage, "estimated_seconds": job.usage_estimate},
        "estimated_time": job.estimated_seconds,
    }


@dataclass(frozen=True)
class Fact:
    """One thing said about a job: a label, its value and a style name for the value (or "")."""

    label: str
    value: str
    style: str = ""


def job_facts(job: JobRow, now: float) -> list[Fact]:
    """What the app says of one job, in order: the one place job details come from (the set
    pane's details of the job under the cursor and the job view both show these), so a new
    field is added here once."""
    facts = [Fact("job", f"{job.index:,}"),
             Fact("experiments", f"{job.start:,}–{job.stop - 1:,}" if job.size > 1 else f"{job.start:,}")]
    if job.round:
        facts.append(Fact("shots round", str(job.round)))
    facts += [Fact("status", f"{job.status} ({job_status_phrase(job.status)})",
                   JOB_STATUS_STYLES.get(job.status, "")),
              Fact("backend job id", printable(job.backend_job_id or "-")),
              Fact("attempts", f"{job.attempts}" + (f" ({job.retries} retried)" if job.retries else "")),
              Fact("submitted", clock_time(job.submitted)),
              Fact("finished", clock_time(job.finished))]
    if job.status in JOB_ACTIVE_STATUSES and job.submitted is not None:
        facts.append(Fact("running for", duration(max(0.0, now - job.submitted))))
    if job.session_id:
        facts.append(Fact(job.session_mode or "session", printable(job.session_id)))
    usage = job_usage_phrase(job.usage, job.usage_estimate)
    if usage is not None:
        facts.append(Fact("QPU", usage))
    if job.last_error:
        label = "error" if job.status == "failed" else "last error (retried)"
        lines = strip_ansi(job.last_error).splitlines()
        facts.append(Fact(label, "\n".join(printable(line) for line in lines), JOB_STATUS_STYLES["failed"]))
    return facts


@dataclass(frozen=True)
class Attempt:
    """One submission of a job: when, under which backend job id, how and when it ended."""

    number: int
    submitted: float | None
    backend_job_id: str | None
    ended: float | None
    outcome: str  #: a job status, or "retried" for an attempt that failed and was tried again
    error: str | None


def job_attempts(job: JobRow, history: Sequence[JobEvent]) -> list[Attempt]:
    """A job's attempts, oldest first, from its history (:meth:`Store.job_history`); a job
    without a history (made before the store kept them) gets one line from its row."""
    attempts: dict[int, dict[str, Any]] = {}
    for event in history:
        if event.attempt <= 0:
            continue
        a = attempts.setdefault(event.attempt, {"submitted": None, "backend_job_id": None, "ended": None,
                                                "outcome": event.status, "error": None})
        if event.status == "submitting" or a["submitted"] is None:
            a["submitted"] = a["submitted"] or event.time
        a["backend_job_id"] = event.backend_job_id or a["backend_job_id"]
        if event.status == "pending":  # back in the queue: this attempt ended and is retried
            a.update(outcome="retried", ended=event.time, error=event.error)
        else:
            a["outcome"] = event.status
            if event.status in ("done", "failed", "cancelled"):
                a.update(ended=event.time, error=event.error)
    if not attempts and job.attempts:
        return [Attempt(job.attempts, job.submitted, job.backend_job_id, job.finished, job.status,
                        job.last_error)]
    return [Attempt(n, **a) for n, a in sorted(attempts.items())]


@dataclass(frozen=True)
class JobSetCells:
    """One job set as the cells of a listing row (``qjm ls``, the app's job-set list)."""

    id: str
    short_id: str  #: the id's random tail, enough to tell sets apart in one store
    name: str
    state: str
    glyph: str
    style: str  #: a style name from :data:`SET_STATE_STYLES`
    jobs: str  #: ``done/total``, with ``(N failed)`` when some failed
    experiments: str  #: ``done/total``
    percent: str  #: experiments done, as ``42%``
    backend: str
    created: str  #: relative: ``3 min ago``
    tags: str  #: comma-separated


def short_id(set_id: str) -> str:
    """The part of a job-set id that tells sets apart (ids start with their creation time):
    its random tail, which every ``qjm`` command taking an id accepts as well as the id."""
    return id_tail(set_id)


def id_matches(set_id: str, word: str) -> bool:
    """Whether a filter word names a job set by id: the start of its short id, or the start of
    the whole id once it is as long as a date (``20261125``), so a lone digit matches names and
    numbers, not every id of the year."""
    word = word.lower()
    return short_id(set_id).lower().startswith(word) or (len(word) >= 8 and set_id.lower().startswith(word))


def job_set_cells(summary: JobSetSummary, now: float, unicode: bool = True) -> JobSetCells:
    """The text of each cell of a job set's listing row at time ``now``."""
    f = set_figures(summary, now)
    jobs = f"{f.done}/{f.total_jobs}" + (f" ({f.failed} failed)" if f.failed else "")
    glyphs = SET_GLYPHS if unicode else SET_GLYPHS_ASCII
    return JobSetCells(
        id=printable(summary.id), short_id=printable(short_id(summary.id)), name=printable(summary.name),
        state=f.state,
        glyph=glyphs.get(f.state, "?"), style=SET_STATE_STYLES.get(f.state, ""), jobs=jobs,
        experiments=f"{f.experiments_done}/{f.experiments}", percent=percent(f.fraction),
        backend=printable(summary.backend), created=ago(summary.created, now),
        tags=printable(",".join(summary.tags)),
    )


def set_usage_text(summary: JobSetSummary) -> str | None:
    """A set's quantum time for one line of a pane: ``QPU 12.5 s``, ``QPU about 4.0 s
    (estimated)``; None when the service reported nothing."""
    phrase = usage_phrase(summary.usage, summary.usage_estimate)
    return None if phrase is None else f"QPU {phrase}"


def job_cost_text(job: JobRow) -> str | None:
    """Where a job ran, what it cost and what qjm estimated it would, for its details:
    ``batch 3f2a... · QPU 0.3 s · estimated 0.4 s from durations``; None when there is none of
    them (the service said nothing, and the backend publishes no instruction durations)."""
    parts = [session_phrase(job.session_mode, job.session_id),
             None if (u := job_usage_phrase(job.usage, job.usage_estimate)) is None else f"QPU {u}",
             None if job.estimated_seconds is None
             else f"estimated {seconds_text(job.estimated_seconds)} from durations"]
    shown = [printable(p) for p in parts if p]
    return " · ".join(shown) if shown else None


def progress_line(job_set_id: str, p: Progress, final: bool = False) -> str:
    """The one-line progress of a job set, as written to logs: ``ID: running: 3/8 jobs done,
    1 failed, 40/100 experiments, 12.0s, about 20.0s left``."""
    extra = "".join(f", {n} {label}" for n, label in
                    ((p.failed, "failed"), (p.cancelled, "cancelled"), (p.retries, "retries")) if n)
    eta = f", about {duration(p.eta)} left" if p.eta and not final else ""
    return (f"{job_set_id}: {p.state}: {p.done}/{p.total_jobs} jobs done{extra}, "
            f"{p.experiments_done}/{p.experiments} experiments, {duration(p.elapsed)}{eta}")


def progress_parts(p: Progress, final: bool = False) -> list[tuple[str, str | None]]:
    """The parts of a progress bar's caption, each with the style to show it in (or None):
    ``4/8 jobs``, ``40/100 exp``, ``1 failed``, ``12.0s``, ``~20.0s left`` or the final state."""
    parts: list[tuple[str, str | None]] = [(f"{p.finished_jobs}/{p.total_jobs} jobs", None),
                                           (f"{p.experiments_done}/{p.experiments} exp", None)]
    if p.failed:
        parts.append((f"{p.failed} failed", JOB_STATUS_STYLES["failed"]))
    if p.cancelled:
        parts.append((f"{p.cancelled} cancelled", JOB_STATUS_STYLES["cancelled"]))
    if p.retries:
        parts.append((retries_text(p.retries), None))
    parts.append((duration(p.elapsed), None))
    if p.eta and not final:
        parts.append((f"~{duration(p.eta)} left", None))
    if final:
        parts.append((p.state, None))
    return parts
