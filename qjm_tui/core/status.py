"""The one status vocabulary: what a job and a job set can be.

Members are strings (``"done" == JobStatus.DONE``), so the store keeps them as plain text, JSON
and the command line show the plain value, and rows read back compare equal to the members.
Adapters report their jobs with the same :class:`JobStatus` members (queued, running, done,
failed, cancelled); the engine adds pending and submitting for jobs not yet with a backend.
"""

from __future__ import annotations

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
