"""What a runner knows of each of its jobs: one record per job, carrying its phase.

A job's *status* is what the store and every reader see (pending, queued, done...). Its
*phase* is what the runner is doing with it now, which the status alone cannot tell: a pending
job may be ready to go, waiting out a retry's backoff, or being settled with the service; a
queued one may be polled or have its result fetched. :class:`JobBook` holds the records and,
for each phase, its jobs in the order the runner takes them (ready: queue order, with jobs
given back at the front; waiting: by when their retry is due; the rest: in the order they
entered the phase), so every question the runner asks is answered without a scan.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from qjm_tui.core.reconcile import Settling
from qjm_tui.core.status import JobStatus
from qjm_tui.core.store import JobRow


class Phase(Enum):
    """What the runner is doing with a job."""

    #: nothing: the job is final, or nothing is to be done with it now
    IDLE = "idle"
    #: to be submitted, in queue order
    READY = "ready"
    #: a retry waits out its backoff (until ``due``)
    WAITING = "waiting"
    #: a submit call is under way on the runner's pool (``future``)
    SUBMITTING = "submitting"
    #: the service holds it (``backend_id``): it is polled
    AT_SERVICE = "at service"
    #: done at the service; its result is being fetched (``future``)
    FETCHING = "fetching"
    #: its fate is being settled with the service (``settling``): nothing is submitted meanwhile
    SETTLING = "settling"


#: the phases whose jobs are kept in order of entry
_ORDERED = (Phase.SUBMITTING, Phase.AT_SERVICE, Phase.FETCHING, Phase.SETTLING)


@dataclass(eq=False, slots=True)
class TrackedJob:
    """One job of the runner's set: its row as stored, its phase and what goes with it."""

    row: JobRow
    phase: Phase = Phase.IDLE
    #: the backend job followed (at the service, fetching)
    backend_id: str | None = None
    #: the submit call (submitting) or the result fetch (fetching) under way
    future: Future[Any] | None = None
    #: when a waiting retry may go (clock seconds)
    due: float = 0.0
    #: how the job is being settled (settling)
    settling: Settling | None = None
    #: when the followed job is next asked its state (clock seconds): at once when it reaches
    #: the service, then once per poll interval however often the runner wakes
    poll_at: float = 0.0
    #: status checks (or fetches) of the followed job that failed in a row
    poll_errors: int = 0
    #: backend jobs of this job that reported done, and those whose result could not be fetched
    done_ids: frozenset[str] = frozenset()
    unfetchable: frozenset[str] = frozenset()
    #: the job was cancelled on its own (the rest of the set goes on)
    cancel_asked: bool = False

    @property
    def index(self) -> int:
        return self.row.index


class JobBook:
    """The runner's jobs by index, and for each phase its jobs in the order they are taken."""

    def __init__(self, rows: Iterable[JobRow]) -> None:
        self._jobs: dict[int, TrackedJob] = {row.index: TrackedJob(row) for row in rows}
        self._ready: deque[int] = deque()
        self._waiting: list[tuple[float, int]] = []  # a heap by due time
        self._ordered: dict[Phase, dict[int, None]] = {phase: {} for phase in _ORDERED}

    def __getitem__(self, index: int) -> TrackedJob:
        return self._jobs[index]

    def __contains__(self, index: object) -> bool:
        return index in self._jobs

    def indices(self) -> list[int]:
        """Every job's index, in order."""
        return sorted(self._jobs)

    def rows(self) -> Iterator[JobRow]:
        """Every job's row as the runner last wrote or read it."""
        return (job.row for job in list(self._jobs.values()))

    def update(self, row: JobRow) -> None:
        """The job's row as just written."""
        self._jobs[row.index].row = row

    # -- phases ------------------------------------------------------------------------------

    def count(self, *phases: Phase) -> int:
        """How many jobs are in any of ``phases``."""
        return sum(self._size(phase) for phase in phases)

    def _size(self, phase: Phase) -> int:
        if phase is Phase.READY:
            return len(self._ready)
        if phase is Phase.WAITING:
            return len(self._waiting)
        if phase is Phase.IDLE:
            return len(self._jobs) - sum(self._size(p) for p in Phase if p is not Phase.IDLE)
        return len(self._ordered[phase])

    def in_phase(self, phase: Phase) -> list[int]:
        """The jobs in ``phase``, in the order the runner takes them (waiting: as held)."""
        if phase is Phase.READY:
            return list(self._ready)
        if phase is Phase.WAITING:
            return [index for _due, index in self._waiting]
        if phase is Phase.IDLE:
            return [i for i, job in self._jobs.items() if job.phase is Phase.IDLE]
        return list(self._ordered[phase])

    def first_ready(self) -> int | None:
        """The job to submit next, if any."""
        return self._ready[0] if self._ready else None

    def next_due(self) -> float | None:
        """When the first waiting retry is due, if any."""
        return self._waiting[0][0] if self._waiting else None

    def move(self, index: int, phase: Phase, *, front: bool = False, due: float = 0.0,
             future: Future[Any] | None = None, settling: Settling | None = None) -> TrackedJob:
        """Move a job to ``phase``: to the back of the ready queue (the front with ``front``),
        waiting until ``due``, submitting or fetching with ``future``, or settling."""
        job = self._jobs[index]
        self._leave(job)
        job.phase = phase
        if phase is Phase.READY:
            if front:
                self._ready.appendleft(index)
            else:
                self._ready.append(index)
        elif phase is Phase.WAITING:
            job.due = due
            heapq.heappush(self._waiting, (due, index))
        elif phase is not Phase.IDLE:
            self._ordered[phase][index] = None
        if phase in (Phase.SUBMITTING, Phase.FETCHING):
            job.future = future
        elif phase is Phase.SETTLING:
            job.settling = settling
        return job

    def _leave(self, job: TrackedJob) -> None:
        index, phase = job.index, job.phase
        if phase is Phase.READY:
            if self._ready[0] == index:
                self._ready.popleft()
            else:
                self._ready.remove(index)
        elif phase is Phase.WAITING:
            if self._waiting[0][1] == index:
                heapq.heappop(self._waiting)
            else:
                self._waiting = [w for w in self._waiting if w[1] != index]
                heapq.heapify(self._waiting)
        elif phase is not Phase.IDLE:
            del self._ordered[phase][index]
        job.future = None
        job.settling = None
        job.phase = Phase.IDLE

    def release_due(self, now: float) -> list[int]:
        """Move the waiting jobs whose retry is due by ``now`` to the front of the ready
        queue, in index order; returns them."""
        due = []
        while self._waiting and self._waiting[0][0] <= now:
            due.append(heapq.heappop(self._waiting)[1])
        for index in sorted(due, reverse=True):
            job = self._jobs[index]
            job.phase = Phase.READY
            self._ready.appendleft(index)
        return due

    def requeue(self, indices: Iterable[int]) -> None:
        """Make ``indices`` ready too, the whole queue in index order."""
        indices = list(indices)
        for index in indices:
            self._leave(self._jobs[index])
        ready = sorted({*self._ready, *indices})
        self._ready = deque(ready)
        for index in ready:
            self._jobs[index].phase = Phase.READY

    def take_all(self, phase: Phase) -> list[int]:
        """Move every job in ``phase`` (ready or waiting) to idle at once; returns them in
        the order they were held."""
        taken = self.in_phase(phase)
        if phase is Phase.READY:
            self._ready.clear()
        elif phase is Phase.WAITING:
            self._waiting.clear()
        else:
            raise ValueError(f"take_all is for the ready and waiting phases, not {phase.value}")
        for index in taken:
            self._jobs[index].phase = Phase.IDLE
        return taken

    def reset_rows(self, indices: Iterable[int]) -> None:
        """The jobs were sent back to pending without a backend id."""
        for index in indices:
            job = self._jobs[index]
            job.row = replace(job.row, status=JobStatus.PENDING, backend_job_id=None)
