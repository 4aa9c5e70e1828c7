"""How far a job set has got: one type for the library, the command line and the app.

Jobs are counted by where they are: not yet handed to the backend (``unsubmitted``), with it
but not running (``queued``: being submitted or waiting in its queue), ``running``, and the
final ``done``, ``failed`` and ``cancelled``. The original job manager's report calls every job
not running yet ``pending`` (:attr:`Progress.pending`); listings count the jobs the backend
holds (:attr:`Progress.active`). Progress itself is measured in experiments (x shots rounds):
jobs may differ in size.
"""

from __future__ import annotations

from dataclasses import dataclass

from qjm_tui.core.status import SET_FINAL, JobStatus, SetState, elapsed_and_eta
from qjm_tui.core.store import JobSetSummary


@dataclass(frozen=True)
class Progress:
    """A job set's figures at one moment."""

    state: SetState
    total_jobs: int
    done: int
    failed: int
    cancelled: int
    #: running at the backend now
    running: int
    #: with the backend but not running yet: being submitted, or in its queue
    queued: int
    #: not handed to the backend yet
    unsubmitted: int
    experiments: int
    experiments_done: int
    retries: int
    elapsed: float
    #: seconds left, estimated from the pace so far (None until some job is done)
    eta: float | None

    @classmethod
    def of(cls, summary: JobSetSummary, now: float, state: SetState | None = None) -> Progress:
        """The figures of the set ``summary`` describes, at wall-clock time ``now``; ``state``
        overrides the summary's (a set this process runs reads running however its heartbeat
        looks)."""
        state = summary.state if state is None else state
        counts = summary.counts
        elapsed, eta = elapsed_and_eta(summary.units, summary.created, summary.finished,
                                       state in SET_FINAL, now)
        return cls(
            state=state, total_jobs=summary.total_jobs, done=counts.get(JobStatus.DONE, 0),
            failed=counts.get(JobStatus.FAILED, 0), cancelled=counts.get(JobStatus.CANCELLED, 0),
            running=counts.get(JobStatus.RUNNING, 0),
            queued=counts.get(JobStatus.SUBMITTING, 0) + counts.get(JobStatus.QUEUED, 0),
            unsubmitted=counts.get(JobStatus.PENDING, 0), experiments=summary.n_experiments,
            experiments_done=summary.experiments_done, retries=summary.retries, elapsed=elapsed, eta=eta,
        )

    @property
    def finished_jobs(self) -> int:
        """Jobs in a final status: done, failed or cancelled."""
        return self.done + self.failed + self.cancelled

    @property
    def pending(self) -> int:
        """Jobs not running yet, handed to the backend or not (the original report's count)."""
        return self.unsubmitted + self.queued

    @property
    def active(self) -> int:
        """Jobs the backend holds and that are not final: queued or running."""
        return self.queued + self.running

    @property
    def fraction(self) -> float:
        """Experiments done as a fraction of all (1.0 for an empty set)."""
        return self.experiments_done / self.experiments if self.experiments else 1.0

    @property
    def jobs_fraction(self) -> float:
        """Jobs finished (whatever their end) as a fraction of all (1.0 for a set of none)."""
        return self.finished_jobs / self.total_jobs if self.total_jobs else 1.0
