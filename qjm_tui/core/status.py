"""The one status vocabulary: what a job and a job set can be.

Members are strings (``"done" == JobStatus.DONE``), so the store keeps them as plain text, JSON
and the command line show the plain value, and rows read back compare equal to the members.
Adapters report their jobs with the same :class:`JobStatus` members (queued, running, done,
failed, cancelled); the engine adds pending and submitting for jobs not yet with a backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum


class _Text(str, Enum):
    """A str-valued enum whose ``str()`` and format give the plain value."""

    def __str__(self) -> str:
        return str.__str__(self)

    def __format__(self, spec: str) -> str:
        return str.__format__(str.__str__(self), spec)


class JobStatus(_Text):
    """A backend job's status. ``pending`` has not been submitted; ``submitting`` has its
    intent written but no backend id yet (the window a crash can leave behind)."""

    PENDING = "pending"
    SUBMITTING = "submitting"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class SetState(_Text):
    """A job set's state. ``interrupted`` is derived on read: running, but its owner is gone."""

    RUNNING = "running"
    DONE = "done"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


#: job statuses that never change again (until a retry resets the job)
JOB_FINAL = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED})
#: job statuses of a job that is with the backend (or on its way there)
JOB_ACTIVE = frozenset({JobStatus.SUBMITTING, JobStatus.QUEUED, JobStatus.RUNNING})
#: job-set states that never change again (until a retry or resume)
SET_FINAL = frozenset({SetState.DONE, SetState.PARTIAL, SetState.FAILED, SetState.CANCELLED})

#: what a job's status means, in words (the phrases of the original job manager's report)
JOB_STATUS_PHRASES: Mapping[str, str] = {
    JobStatus.PENDING: "job is waiting to be submitted",
    JobStatus.SUBMITTING: "job is being submitted",
    JobStatus.QUEUED: "job is queued",
    JobStatus.RUNNING: "job is actively running",
    JobStatus.DONE: "job has successfully run",
    JobStatus.FAILED: "job incurred error",
    JobStatus.CANCELLED: "job has been cancelled",
}


def job_status_phrase(status: str) -> str:
    """The phrase for a job status (the status itself for one this vocabulary does not know)."""
    return JOB_STATUS_PHRASES.get(status, status)


def elapsed_and_eta(units: Mapping[JobStatus, int], created: float, finished: float | None, final: bool,
                    now: float) -> tuple[float, float | None]:
    """A job set's elapsed time and estimated time left, from its experiment x shots-round
    units per job status (jobs may differ in size).

    Elapsed runs to ``finished`` once the set is ``final``, else to ``now``. The time left is
    the elapsed time scaled by what is still open against what is finished: 0 when every job is
    final, unknown (None) until some job is done.
    """
    elapsed = max(0.0, (finished if final and finished is not None else now) - created)
    total = sum(units.values())
    still_open = sum(n for status, n in units.items() if status not in JOB_FINAL)
    if still_open == 0:
        return elapsed, 0.0
    if not units.get(JobStatus.DONE, 0):
        return elapsed, None
    return elapsed, elapsed * still_open / max(total - still_open, 1)
