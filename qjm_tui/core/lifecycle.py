"""The one place a job or a job set changes state.

:data:`JOB_MOVES` and :data:`SET_MOVES` are the moves each can make. :class:`Lifecycle` has one
call per kind of change: it checks the move against the state as stored (the store does the
check and the write in one transaction, so a state another process or thread wrote meanwhile is
never overwritten by a move it forbids), and then publishes the one event that carries it. It
also decides a set's final state (:func:`final_state`). The engine and the manager change states
only through here; nothing else calls the store's status setters. (``qjm doctor`` marks failed
the done jobs whose results a damaged store lost in the recovered copy it builds, before any
process opens it as a store: no move and no event, the sets' states decided by :func:`final_state`.)

Which event carries which move (see ``core/events.py``):

- a job's move: :class:`JobStatusChanged`; jobs sent back to pending together (a retry, a
  resume, a job run again from scratch): one :class:`JobsReset` with their old statuses;
- a set's move: :class:`JobSetStateChanged`, followed by one :class:`JobSetFinished` when the
  state is final.

Changes that are not moves have their own events: what a job costs and where it runs
(:class:`JobDetailsChanged`), why a set stops submitting (:class:`JobSetStopping`) and a
request to cancel (:class:`CancelRequested`). A set's birth and its deletion are written by the
manager (``JobSetCreated``, ``JobSetDeleted``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from qjm_tui.core import store as st
from qjm_tui.core.events import (
    CancelRequested,
    EventBus,
    JobDetailsChanged,
    JobSetFinished,
    JobSetStateChanged,
    JobSetStopping,
    JobsReset,
    JobStatusChanged,
)
from qjm_tui.core.status import JOB_FINAL, SET_FINAL, JobStatus, SetState
from qjm_tui.core.store import KEEP, Keep
from qjm_tui.core.text import strip_ansi

log = logging.getLogger(__name__)

_J = JobStatus
_S = SetState

#: the statuses a job can move to from each status. A job with the backend can be found in
#: any of the backend's states (the service is the truth) or sent back to pending to run
#: again; a job is adopted as queued when the service turns out to hold it (also under a new
#: id: queued -> queued); a final job moves only back to pending (retry) or, when its circuits
#: were never stored, to failed for good. A done job never moves.
JOB_MOVES: Mapping[JobStatus, frozenset[JobStatus]] = {
    _J.PENDING: frozenset({_J.PENDING, _J.SUBMITTING, _J.QUEUED, _J.FAILED, _J.CANCELLED}),
    _J.SUBMITTING: frozenset({_J.PENDING, _J.QUEUED, _J.RUNNING, _J.DONE, _J.FAILED, _J.CANCELLED}),
    _J.QUEUED: frozenset({_J.PENDING, _J.QUEUED, _J.RUNNING, _J.DONE, _J.FAILED, _J.CANCELLED}),
    _J.RUNNING: frozenset({_J.PENDING, _J.QUEUED, _J.DONE, _J.FAILED, _J.CANCELLED}),
    _J.DONE: frozenset(),
    _J.FAILED: frozenset({_J.PENDING, _J.FAILED}),
    _J.CANCELLED: frozenset({_J.PENDING, _J.FAILED}),
}

#: the states a job set can move to from each state (``interrupted`` as read: running, but
#: nobody runs it). A running set is taken up by its runner (running -> running), ends in a
#: final state or is let go (interrupted); an interrupted set is claimed again (resume,
#: cancel) or, every job being final, ends; a finished set is claimed again to retry its
#: jobs that did not succeed (a set that reads done has none, unless one was changed since),
#: and any becomes done once every job is.
SET_MOVES: Mapping[SetState, frozenset[SetState]] = {
    _S.RUNNING: frozenset({_S.RUNNING, _S.INTERRUPTED, *SET_FINAL}),
    _S.INTERRUPTED: frozenset({_S.RUNNING, _S.DONE, _S.PARTIAL, _S.FAILED}),
    _S.DONE: frozenset({_S.RUNNING}),
    _S.PARTIAL: frozenset({_S.RUNNING, _S.DONE}),
    _S.FAILED: frozenset({_S.RUNNING, _S.DONE}),
    _S.CANCELLED: frozenset({_S.RUNNING, _S.DONE}),
}


def _sources(table: Mapping[Any, frozenset[Any]]) -> dict[Any, frozenset[Any]]:
    return {new: frozenset(old for old, news in table.items() if new in news) for new in table}


#: for each status, the statuses a job may be in to move to it
JOB_SOURCES: Mapping[JobStatus, frozenset[JobStatus]] = _sources(JOB_MOVES)
#: for each state, the states a set may be in to move to it
SET_SOURCES: Mapping[SetState, frozenset[SetState]] = _sources(SET_MOVES)


def final_state(counts: Mapping[JobStatus, int], *, cancelled: bool = False) -> SetState:
    """A set's state once every job is final, from how many jobs end in each status.

    ``cancelled``: the set was cancelled as a whole; it ends ``cancelled`` if that stopped
    any job. Otherwise a set with any job failed or cancelled is ``partial`` if some job is
    done and ``failed`` if none is; else it is ``done``.
    """
    if cancelled and counts.get(JobStatus.CANCELLED):
        return SetState.CANCELLED
    if counts.get(JobStatus.FAILED) or counts.get(JobStatus.CANCELLED):
        return SetState.PARTIAL if counts.get(JobStatus.DONE) else SetState.FAILED
    return SetState.DONE


class Lifecycle:
    """Moves jobs and sets of one store, publishing each move on ``bus``; ``now`` gives the
    wall-clock time written as jobs' and sets' finish times."""

    def __init__(self, store: st.Store, bus: EventBus, now: Callable[[], float] | None = None) -> None:
        self.store = store
        self.bus = bus
        self.now = now or time.time

    # -- jobs --------------------------------------------------------------------------------

    def move_job(self, job_set_id: str, index: int, status: JobStatus, *,
                 backend_job_id: str | None | Keep = KEEP, attempts: int | Keep = KEEP,
                 retries: int | Keep = KEEP, last_error: str | None | Keep = KEEP,
                 submitted: float | None | Keep = KEEP) -> st.JobRow:
        """Move one job to ``status`` (a final status stamps its finish time); returns its row."""
        old, row = self.store.set_job_status(
            job_set_id, index, status, allowed_from=JOB_SOURCES[status], backend_job_id=backend_job_id,
            attempts=attempts, retries=retries, last_error=last_error, submitted=submitted,
            finished=self.now() if status in JOB_FINAL else KEEP)
        self._job_moved(job_set_id, old, row)
        return row

    def move_jobs(self, job_set_id: str, indices: Sequence[int], status: JobStatus, *,
                  last_error: str | None | Keep = KEEP) -> None:
        """Move several jobs to the same final status in one transaction (a cancel or a
        failure of many at once); one event per job."""
        if not indices:
            return
        assert status in JOB_FINAL, "several jobs at once move to a final status only"
        old = self.store.set_jobs_status(job_set_id, indices, status, allowed_from=JOB_SOURCES[status],
                                         last_error=last_error, finished=self.now())
        for index, (before, backend_job_id) in old.items():
            self.bus.publish(JobStatusChanged(job_set_id, index, before, status, backend_job_id,
                                              None if last_error is KEEP else last_error))

    def reset_jobs(self, job_set_id: str, indices: Sequence[int]) -> None:
        """Send jobs back to pending without a backend id, to be submitted as if for the
        first time (their attempts count on); one :class:`JobsReset`."""
        if not indices:
            return
        old = self.store.set_jobs_status(job_set_id, indices, JobStatus.PENDING,
                                         allowed_from=JOB_SOURCES[JobStatus.PENDING], backend_job_id=None)
        self.bus.publish(JobsReset(job_set_id, tuple(old), tuple(status for status, _id in old.values())))

    def finish_job(self, job_set_id: str, job: st.JobRow, experiments: Sequence[dict[str, Any] | str],
                   error: str | None = None) -> st.JobRow:
        """Store a finished job's results and move it to done (or, with ``error``: some of its
        experiments failed, to failed, its results kept), in one transaction."""
        status = JobStatus.FAILED if error else JobStatus.DONE
        old, row = self.store.finish_job(job_set_id, job, experiments, error,
                                         allowed_from=JOB_SOURCES[status], finished=self.now())
        self._job_moved(job_set_id, old, row)
        return row

    def note_details(self, job_set_id: str, index: int, *, usage: float | None | Keep = KEEP,
                     usage_estimate: float | None | Keep = KEEP, session_id: str | None | Keep = KEEP,
                     session_mode: str | None | Keep = KEEP) -> st.JobRow:
        """Record what the service says a job costs and where it runs; returns its row."""
        row = self.store.set_job_details(job_set_id, index, usage=usage, usage_estimate=usage_estimate,
                                         session_id=session_id, session_mode=session_mode)
        self.bus.publish(JobDetailsChanged(job_set_id, index, row.usage, row.usage_estimate,
                                           row.session_id, row.session_mode))
        return row

    def _job_moved(self, job_set_id: str, old: JobStatus, row: st.JobRow) -> None:
        self.bus.publish(JobStatusChanged(job_set_id, row.index, old, row.status, row.backend_job_id,
                                          row.last_error))
        if old != row.status:
            _log_move(job_set_id, old, row)

    # -- job sets ----------------------------------------------------------------------------

    def start(self, job_set_id: str) -> None:
        """A runner takes up the set this process owns (running -> running)."""
        self._move_set(job_set_id, SetState.RUNNING)

    def claim(self, job_set_id: str, *, reset: Collection[JobStatus] = (), keep: Collection[int] = (),
              backend: str | None = None) -> None:
        """Make this process the set's owner and the set running again (resume, retry, or a
        cancel of a set nobody runs), if no other live process runs it; in the same
        transaction move it to ``backend`` and send its jobs in a status of ``reset`` (but
        those in ``keep``) back to pending, as if never tried.

        Raises JobManagerInvalidStateError naming the owner if another process runs the set.
        """
        old, moved = self.store.claim(job_set_id, allowed_from=SET_SOURCES[SetState.RUNNING],
                                      backend=backend, reset=reset, keep=keep,
                                      reset_from=JOB_SOURCES[JobStatus.PENDING])
        if moved:
            self.bus.publish(JobsReset(job_set_id, tuple(moved), tuple(moved.values())))
        self.bus.publish(JobSetStateChanged(job_set_id, SetState.RUNNING, old))

    def finish(self, job_set_id: str, counts: Mapping[JobStatus, int], *, cancelled: bool = False,
               take_over: bool = False) -> SetState:
        """End the set, every job being final: its state is decided by :func:`final_state`
        from its jobs' ``counts``. ``take_over``: the set is interrupted, and ends here for
        everyone (only if no other live process runs it). Returns the final state."""
        state = final_state(counts, cancelled=cancelled)
        self._move_set(job_set_id, state, take_over=take_over)
        return state

    def crashed(self, job_set_id: str) -> None:
        """The set's runner stopped on an internal error: the set fails."""
        self._move_set(job_set_id, SetState.FAILED)

    def release(self, job_set_id: str, reason: str | None = None) -> None:
        """Let the set go without finishing it: it reads interrupted (resumable) to everyone,
        with ``reason`` when it stopped for one (see :meth:`stop_submitting`)."""
        old = self.store.release(job_set_id, reason, allowed_from=SET_SOURCES[SetState.INTERRUPTED])
        self.bus.publish(JobSetStateChanged(job_set_id, SetState.INTERRUPTED, old))

    def release_if_possible(self, job_set_id: str) -> bool:
        """Let the set go when the store may not take the write (a full disk): the move is
        published either way, since a set whose owner stops beating reads interrupted to
        everyone once this process ends. Returns whether it was written."""
        try:
            old: SetState | None = self.store.release(job_set_id,
                                                      allowed_from=SET_SOURCES[SetState.INTERRUPTED])
            written = True
        except Exception:
            old, written = SetState.RUNNING, False
        self.bus.publish(JobSetStateChanged(job_set_id, SetState.INTERRUPTED, old))
        return written

    def stop_submitting(self, job_set_id: str, reason: str) -> None:
        """The service refused the account: the set submits nothing more, and every reader
        sees why at once."""
        self.store.set_stop_reason(job_set_id, reason)
        self.bus.publish(JobSetStopping(job_set_id, reason))

    def request_cancel(self, job_set_id: str, *, through_store: bool = False) -> None:
        """Someone asked for the set to be cancelled. ``through_store``: another process runs
        it, and its runner reads the request with its next heartbeat."""
        if through_store:
            self.store.request_cancel(job_set_id)
        self.bus.publish(CancelRequested(job_set_id))

    def _move_set(self, job_set_id: str, state: SetState, *, take_over: bool = False) -> None:
        final = state in SET_FINAL
        old = self.store.set_job_set_state(job_set_id, state, allowed_from=SET_SOURCES[state],
                                           finished=self.now() if final else KEEP, take_over=take_over)
        self.bus.publish(JobSetStateChanged(job_set_id, state, old))
        if final:
            self.bus.publish(JobSetFinished(job_set_id, state))


def _log_move(job_set_id: str, old: JobStatus, job: st.JobRow) -> None:
    """Note in the log what a user may look for later about one job (the app's job view shows
    these lines): its submission with the backend's id, a retry or a failure with the error, a
    cancel."""
    status = job.status
    error = " ".join(strip_ansi(job.last_error or "").split())[:300]
    if status == JobStatus.QUEUED and old == JobStatus.SUBMITTING:
        what = f"submitted as backend job {job.backend_job_id}"
    elif status == JobStatus.PENDING and error and old != JobStatus.PENDING:
        what = f"to be retried after: {error}"
    elif status == JobStatus.FAILED:
        what = f"failed: {error or 'no reason given'}"
    elif status == JobStatus.CANCELLED:
        what = "cancelled"
    else:
        return
    log.info("job set %s: job %d (attempt %d): %s", job_set_id, job.index, job.attempts, what)
