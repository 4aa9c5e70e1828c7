"""The background submission engine: pacing, retries, polling, cancel, events.

One :class:`JobSetRunner` thread drives one job set. It submits jobs in order while the backend
has free slots (its concurrent-job limit, and any "limit reached" answer), retries passing
failures with bounded exponential backoff and jitter, never retries a permanent failure, polls
the jobs in flight, stores each job's results as soon as that job is done, and can be cancelled
at any moment. Every state change goes through the lifecycle (``core/lifecycle.py``): written
to the store first, then published as an event.

The runner keeps one record per job, carrying its phase (``core/jobbook.py``), and asks its
policies: when to retry (``core/retry.py``), how many jobs the service should hold
(``core/pacing.py``) and what became of a job this process cannot tell (``core/reconcile.py``).
Time comes from a :class:`~qjm_tui.core.clock.Clock`, so tests drive retries and backoff with
:class:`~qjm_tui.core.clock.FakeClock` instead of sleeping.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from qjm_tui.core import store as st
from qjm_tui.core.circuits import QpyCircuits, circuits_from_qpy
from qjm_tui.core.clock import Clock
from qjm_tui.core.clock import FakeClock as FakeClock  # re-exported: tests drive runners with it
from qjm_tui.core.errors import (
    AccessRefused,
    BackendLimitReached,
    PermanentBackendError,
    StoreFullError,
    TransientBackendError,
)
from qjm_tui.core.events import EventBus, JobRetryScheduled
from qjm_tui.core.jobbook import JobBook, Phase, TrackedJob
from qjm_tui.core.lifecycle import Lifecycle
from qjm_tui.core.pacing import Pacer
from qjm_tui.core.ports import ExecutionBackend, ExperimentResult, JobPayload, JobStatusInfo
from qjm_tui.core.reconcile import Settlement, Settling, on_resume, reconcile
from qjm_tui.core.retry import RetryPolicy as RetryPolicy  # re-exported: where callers find it
from qjm_tui.core.retry import gave_up
from qjm_tui.core.status import JOB_FINAL, JobStatus, SetState
from qjm_tui.core.store import KEEP, Keep
from qjm_tui.core.text import error_text, strip_ansi

log = logging.getLogger(__name__)

#: seconds between the owner's heartbeats, which also pick up cancel requests from other processes
HEARTBEAT_INTERVAL = 1.0


#: the phases of a job the runner still has something to do with
_BUSY = tuple(phase for phase in Phase if phase is not Phase.IDLE)


class _SubmissionStopped(Exception):
    """A submission refused because the set was cancelled before it started."""


class JobSetRunner(threading.Thread):
    """Drives one job set to completion on one backend.

    ``circuits`` are the job set's circuits in memory when this process created it; on resume
    they are ``None`` and each job's circuits are read back from the store. The caller owns
    the set in the store (it created or claimed it) before starting the runner. ``now`` gives
    the wall-clock time written as jobs' submitted and finished times; ``on_finished`` is
    called (from the runner's thread) once it has stopped, for whatever reason.
    """

    def __init__(
        self,
        store: st.Store,
        bus: EventBus,
        job_set_id: str,
        backend: ExecutionBackend,
        *,
        circuits: Sequence[Any] | None = None,
        jobs: Sequence[st.JobRow] | None = None,
        clock: Clock | None = None,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
        max_concurrent: int | None = None,
        blocks_ready: Callable[[int, int], bytes | None] | None = None,
        now: Callable[[], float] | None = None,
        on_finished: Callable[[JobSetRunner], None] | None = None,
    ) -> None:
        super().__init__(name=f"qjm-runner-{job_set_id}", daemon=True)
        self.store = store
        self.bus = bus
        self.job_set_id = job_set_id
        self.backend = backend
        self.circuits = circuits
        self.clock = clock or Clock()
        self.policy = policy or RetryPolicy()
        self.rng = rng or random.Random()
        self._blocks_ready = blocks_ready
        self.now = now or time.time
        #: every state change of the set and its jobs goes through here
        self.life = Lifecycle(store, bus, self.now)
        self._on_finished = on_finished
        self._wake = threading.Event()
        self._cancel = threading.Event()
        self._detach = threading.Event()
        self._cancel_jobs_lock = threading.Lock()
        self._jobs_to_cancel: set[int] = set()
        self.finished = threading.Event()
        #: the set's final state, or ``interrupted`` after :meth:`detach`
        self.final_state: SetState | None = None
        self.error: BaseException | None = None

        row = store.get_job_set(job_set_id)
        self.shots = row.shots
        self.run_options = row.run_options
        self.tags = row.tags
        all_jobs = list(jobs) if jobs is not None else store.jobs(job_set_id)
        #: every job of the set, each with its phase (see :class:`~qjm_tui.core.jobbook.Phase`)
        self.book = JobBook(all_jobs)
        #: backend jobs a settling found failed or cancelled (that never changes): not asked again
        self._ended: dict[str, JobStatus] = {}
        limit = backend.limits().max_concurrent_jobs
        # An executor takes every job handed to it and holds each one's circuits until it runs:
        # one that asks for only a few queued at a time (the local pool) gets only those.
        queue = getattr(backend, "queue_depth", None)
        caps = [c for c in (limit, max_concurrent, queue) if isinstance(c, int) and c > 0]
        self.max_in_flight = min(caps) if caps else None

        #: guards the cancel flag against submissions: a submission starts only while holding it
        #: and finding no cancel, and cancel() sets the flag under it
        self._submit_gate = threading.Condition()
        #: the threads now inside a backend submit call
        self._submit_threads: set[int] = set()
        #: the learned job limit (shared through the store) and its probes for more room
        self.pacer = Pacer(store, backend.spec, job_set_id, self.clock, self.policy)
        self._pool_size = 0
        self._pool: ThreadPoolExecutor | None = None
        self._last_heartbeat = 0.0
        #: the backend said a job may have changed: ask every job, not only those whose turn it is
        self._ask_all = False
        #: why the service refused the account (AccessRefused): nothing more is submitted, and
        #: once nothing can be followed any more the set is left resumable with this reason
        self._stopped: str | None = None
        #: the refusal came while following jobs: they cannot be followed either
        self._stop_following = False
        #: jobs were submitted since the backend's group (a batch) was last ended
        self._group_open = False

    # -- control -----------------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop submitting, cancel every job in flight, and finish as cancelled.

        Returns once no submission is under way (other than one this thread is making, when a
        backend cancels from inside its submit): every job the service accepted for this set
        was accepted before then (and is cancelled by the runner), none after.
        """
        me = threading.get_ident()
        with self._submit_gate:
            self._cancel.set()
            self._submit_gate.wait_for(lambda: not self._submit_threads - {me})
        self._wake.set()

    def cancel_job(self, index: int) -> None:
        """Cancel one job (the rest of the set goes on); takes effect at the next loop turn."""
        with self._cancel_jobs_lock:
            self._jobs_to_cancel.add(index)
        self._wake.set()

    def detach(self) -> None:
        """Stop without finishing: submit nothing more, let submissions already under way
        return and record their backend ids, then give the set up in the store, where it reads
        ``interrupted`` (resumable). Jobs with the backend keep running there."""
        self._detach.set()
        self._wake.set()

    def all_submitted(self) -> bool:
        """Whether every job has been handed to the backend (or has ended)."""
        return not self.book.count(Phase.READY, Phase.WAITING, Phase.SUBMITTING, Phase.SETTLING)

    def open_jobs(self) -> int:
        """How many jobs have not reached a final state."""
        return sum(1 for row in self.book.rows() if row.status not in JOB_FINAL)

    def wake(self) -> None:
        """Something may have changed (from any thread): the runner looks at once."""
        self._wake.set()

    def _job_may_have_changed(self) -> None:
        """The backend says a job may have changed (from any thread; local backends do, as
        their jobs finish): every job it holds is asked at once, whatever its turn."""
        self._ask_all = True
        self._wake.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    # -- main loop ---------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._prepare()
            self._loop()
            if self._stopped is not None and not self.cancelled:
                self._end_group()
                self._release(self._stopped)
            elif self._detach.is_set() and not self.cancelled:
                self._release()
            else:
                self._finish()
        except BaseException as exc:  # recorded so wait() can report it
            full = exc if isinstance(exc, StoreFullError) else st.store_problem(exc, self.store.path)
            if isinstance(full, StoreFullError):
                self._stopped_by_full_disk(full)
                return
            log.exception("runner for %s failed", self.job_set_id)
            self.error = exc
            try:
                self.life.crashed(self.job_set_id)
                self.final_state = SetState.FAILED
            except Exception:
                log.exception("could not record the failure of %s", self.job_set_id)
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            self.backend.remove_listener(self._job_may_have_changed)
            # Whoever still holds this runner (to read its outcome) must not hold the set's
            # circuits, jobs or this thread's store connection.
            self.circuits = None
            self._blocks_ready = None
            self.book = JobBook(())
            self.store.release_thread_connection()
            if self._on_finished is not None:
                self._on_finished(self)
            self.finished.set()

    def _stopped_by_full_disk(self, error: StoreFullError) -> None:
        """The store could not take a write: stop here and leave the set resumable (jobs a
        remote service holds go on there, and a resume reattaches to them and fetches their
        results), not failed with jobs still running."""
        log.error("job set %s stopped: %s; it is interrupted, and resuming it once there is "
                  "space continues it", self.job_set_id, error)
        self.error = error
        self.final_state = SetState.INTERRUPTED
        if not self.life.release_if_possible(self.job_set_id):
            # the disk is still full: the set reads interrupted once this process ends
            log.warning("could not record that job set %s is interrupted", self.job_set_id)

    def _prepare(self) -> None:
        self.backend.add_listener(self._job_may_have_changed)
        if not self.backend.inline_submit:
            workers = min(self.max_in_flight or 8, 8)
            self._pool_size = workers
            self._pool = ThreadPoolExecutor(workers, thread_name_prefix=f"qjm-io-{self.job_set_id}")
        self._last_heartbeat = self.clock.now()
        self.pacer.start()
        self.life.start(self.job_set_id)
        earlier = [j.session_id for j in sorted(self.book.rows(), key=lambda j: j.submitted or 0.0)
                   if j.session_id]
        try:
            self.backend.start_group(self.job_set_id, list(dict.fromkeys(reversed(earlier)))[::-1])
        except Exception as exc:
            log.warning("the backend could not take up the set's earlier batch: %s", exc)
        reset = []
        reattach = self.backend.can_reattach()
        for index in self.book.indices():
            job = self.book[index].row
            action = on_resume(job, reattach)
            if action == "ready":
                self.book.move(index, Phase.READY)
            elif action == "reset":
                reset.append(index)
            elif action == "follow":
                assert job.backend_job_id is not None
                self._follow(index, job.backend_job_id)
            elif action == "settle":
                # An earlier process submitted this job at least once: the service may hold
                # several attempts. Settle with all of them before anything is submitted again.
                settled = self._reconcile(index, job.backend_job_id)
                if settled.verdict == "adopt":
                    self._adopt(index, settled.job_id)
                elif settled.verdict == "unknown":
                    self.book.move(index, Phase.SETTLING, settling=Settling(settled.job_id, None, self.now()))
                elif job.status == JobStatus.PENDING:
                    self.book.move(index, Phase.READY)
                else:
                    reset.append(index)
        if reset:
            # Jobs this process cannot follow (an interrupted submission the backend does not
            # have, or a job that died with the process that ran it) are run again.
            self._reset(reset)

    def _reset(self, indices: list[int]) -> None:
        """Make jobs pending again, to be submitted as if for the first time."""
        self.life.reset_jobs(self.job_set_id, indices)
        self.book.reset_rows(indices)
        self.book.requeue(indices)

    # -- reconciling with the service --------------------------------------------------------

    def _reconcile(self, index: int, known: str | None) -> Settlement:
        """Settle a job with every job the service holds for its client tag (see
        :func:`~qjm_tui.core.reconcile.reconcile`), cancelling the other attempts still active.
        A backend job whose result could not be fetched never counts."""
        job = self.book[index]
        settled = reconcile(self.backend, job.row.client_tag, known, unfetchable=job.unfetchable,
                            checks=self.policy.max_poll_errors, ended=self._ended)
        for job_id in settled.stray:
            self._try_cancel(job_id)
        return settled

    def _follow(self, index: int, job_id: str) -> TrackedJob:
        """Poll ``job_id`` as the job's backend job from now on."""
        job = self.book.move(index, Phase.AT_SERVICE)
        job.backend_id = job_id
        job.poll_errors = 0
        return job

    def _adopt(self, index: int, job_id: str | None) -> None:
        """Follow ``job_id`` as the job's backend job from now on."""
        assert job_id is not None
        row = self._follow(index, job_id).row
        if row.backend_job_id != job_id or row.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
            self._set_status(index, JobStatus.QUEUED, backend_job_id=job_id)

    def _lost_track(self, index: int, job_id: str, message: str) -> None:
        """``max_poll_errors`` checks of a job failed in a row: stop the job unless it is known
        to have finished (then its result is lost: never adopt it again), and settle with the
        service before anything is submitted again."""
        job = self.book.move(index, Phase.IDLE)
        job.poll_errors = 0
        if job_id in job.done_ids:
            job.unfetchable |= {job_id}
        else:
            self._try_cancel(job_id)
        if not self.backend.can_reattach():
            self._retry_later(index, message)
            return
        self.book.move(index, Phase.SETTLING, settling=Settling(job_id, message, self.now()))
        self._settle_blind(index)

    def _settle_blind(self, index: int) -> None:
        """Reconcile a job whose fate was unknown; back off while the service cannot say,
        and fail the job once ``max_attempts`` rounds could not (rather than run it twice)."""
        blind = self.book[index].settling
        assert blind is not None
        settled = self._reconcile(index, blind.known)
        if settled.verdict == "adopt":
            self._adopt(index, settled.job_id)
        elif settled.verdict == "submit":
            self.book.move(index, Phase.IDLE)
            if blind.reason is None:
                self._reset([index])
            else:
                self._retry_later(index, blind.reason)
        elif blind.unanswered(self.policy, self.rng, self.clock.now(), settled.said):
            self._fail(index, blind.give_up_message(self.now()))
            if blind.known:
                self._try_cancel(blind.known)

    def _settle_due(self) -> None:
        now = self.clock.now()
        for index in [i for i in self.book.in_phase(Phase.SETTLING) if self._settling(i).due <= now]:
            self._settle_blind(index)

    def _settling(self, index: int) -> Settling:
        settling = self.book[index].settling
        assert settling is not None
        return settling

    def _loop(self) -> None:
        while True:
            self._wake.clear()
            if self._detach.is_set() and not self.cancelled:
                self._await_submissions()
                return
            self._cancel_requested_jobs()
            if self.cancelled:
                self._cancel_everything()
            else:
                self._release_delayed()
                self._settle_due()
                self._submit_ready()
            if self._collect_submissions() and not self.cancelled:
                # A submission that came back leaves room for the next one now, not a poll
                # interval later (IBM's is 5 s).
                self._submit_ready()
            if not self._stop_following:
                self._poll()
                self._collect_fetches()
            if self._group_open and self.all_submitted() and not self.cancelled:
                self._end_group()
            self._heartbeat()
            if self._stopped is not None and not self.cancelled and (self._stop_following or not
                    self.book.count(Phase.AT_SERVICE, Phase.FETCHING, Phase.SETTLING, Phase.SUBMITTING)):
                self._await_submissions()
                return
            if not self.book.count(*_BUSY):
                return
            self.clock.wait(self._wake, self._next_timeout())

    def _next_timeout(self) -> float:
        book = self.book
        now = self.clock.now()
        timeout = self.backend.poll_interval if book.count(Phase.SUBMITTING, Phase.FETCHING) else 1.0
        followed = book.in_phase(Phase.AT_SERVICE) if not self._stop_following else []
        if followed:
            timeout = min(timeout, min(book[i].poll_at for i in followed) - now)
        due = book.next_due()
        if due is not None:
            timeout = min(timeout, max(0.0, due - now))
        probe_due = self.pacer.probe_due()
        if book.count(Phase.READY) and probe_due is not None:
            timeout = min(timeout, probe_due)
        settling = book.in_phase(Phase.SETTLING)
        if settling:
            timeout = min(timeout, max(0.0, min(self._settling(i).due for i in settling) - now))
        return max(timeout, 0.0)

    def _heartbeat(self) -> None:
        now = self.clock.now()
        if now - self._last_heartbeat >= HEARTBEAT_INTERVAL:
            self._last_heartbeat = now
            if self.store.heartbeat(self.job_set_id) and not self.cancelled:
                self.life.request_cancel(self.job_set_id)
                self.cancel()

    # -- submission --------------------------------------------------------------------------

    def _accepted(self) -> int:
        """Jobs of ours the service holds: accepted and not known to be done (a job whose
        result is being fetched has already left the service's queue)."""
        return self.book.count(Phase.AT_SERVICE)

    def _held(self) -> int:
        """Slots at the service that are ours or may be: accepted jobs, submissions under way
        and jobs whose fate the service cannot tell now."""
        return self._accepted() + self.book.count(Phase.SUBMITTING, Phase.SETTLING)

    def _slots_free(self) -> bool:
        held = self._held()
        if self.max_in_flight is not None and held >= self.max_in_flight:
            return False
        if self._pool is not None:
            under_way = self.book.count(Phase.SUBMITTING)
            if under_way >= self._pool_size:
                return False  # no backlog of submissions the service may refuse all at once
            if self.max_in_flight is None and self.pacer.cap() is None \
                    and under_way >= max(1, self._accepted()):
                # An unknown limit: no more submissions under way than the service has taken,
                # so the first "limit reached" answers a few of them, not a flood.
                return False
        return self.pacer.allows(held, self.book.count(Phase.SUBMITTING) > 0)

    def _release_delayed(self) -> None:
        self.book.release_due(self.clock.now())

    def _submit_ready(self) -> None:
        while (index := self.book.first_ready()) is not None and self._slots_free() and not self.cancelled \
                and not self._detach.is_set() and self._stopped is None:
            try:
                payload = self._payload(index)
            except PermanentBackendError as exc:
                self._fail(index, error_text(exc))
                continue
            if payload is None:  # its circuits are still being stored
                return
            self.book.move(index, Phase.IDLE)
            self.pacer.submitting(index, self._held())
            job = self.book[index].row
            self._set_status(index, JobStatus.SUBMITTING, attempts=job.attempts + 1,
                             submitted=self.now())
            self._group_open = True
            if self._pool is None:
                try:
                    job_id = self._submit_unless_cancelled(payload)
                except _SubmissionStopped:
                    self._set_status(index, JobStatus.CANCELLED)
                    return
                except Exception as exc:
                    self._submit_failed(index, exc)
                    if isinstance(exc, (BackendLimitReached, AccessRefused)):
                        return
                    continue
                self._submitted(index, job_id)
            else:
                future = self._pool.submit(self._submit_unless_cancelled, payload)
                future.add_done_callback(lambda _f: self._wake.set())
                self.book.move(index, Phase.SUBMITTING, future=future)

    def _submit_unless_cancelled(self, payload: JobPayload) -> str:
        """Submit, unless the set was cancelled: checked under the lock cancel() takes, so no
        submission starts once a cancel is requested, and cancel() waits for those under way."""
        with self._submit_gate:
            if self._cancel.is_set():
                raise _SubmissionStopped
            self._submit_threads.add(threading.get_ident())
        try:
            return self.backend.submit(payload)
        finally:
            with self._submit_gate:
                self._submit_threads.discard(threading.get_ident())
                self._submit_gate.notify_all()

    def _payload(self, index: int) -> JobPayload | None:
        job = self.book[index].row
        tags = [*self.tags, job.client_tag]
        if self._blocks_ready is not None:
            block = self._blocks_ready(job.start, job.stop)
            if block is None:
                return None
        else:
            block = None
        if self.circuits is not None:
            exact = (block or None) if job.round == 0 else None
            return JobPayload(self.circuits[job.start:job.stop], job.shots, dict(self.run_options), tags,
                              qpy=exact, group=self.job_set_id)
        if block:
            # just stored by this process: loaded only if the adapter needs circuit objects
            return JobPayload(QpyCircuits(block, job.size), job.shots, dict(self.run_options), tags,
                              qpy=block, group=self.job_set_id)
        blocks = self.store.circuit_blocks(self.job_set_id, job.start, job.stop)
        if len(blocks) == 1 and blocks[0][0] == job.start and blocks[0][1] == job.stop:
            qpy = blocks[0][2]
            return JobPayload(QpyCircuits(qpy, job.size), job.shots, dict(self.run_options), tags,
                              qpy=qpy, group=self.job_set_id)
        circuits: list[Any] = []
        for start, _stop, qpy in blocks:
            loaded = circuits_from_qpy(qpy)
            circuits.extend(loaded[max(job.start - start, 0):job.stop - start])
        if len(circuits) != job.size:
            raise PermanentBackendError(
                f"the circuits of experiments {job.start}-{job.stop - 1} are not in the store "
                "(the process that created the job set ended before storing them); run them again"
            )
        return JobPayload(circuits, job.shots, dict(self.run_options), tags, group=self.job_set_id)

    def _collect_submissions(self) -> bool:
        """Record the submissions that came back (ids or failures); whether any did."""
        done = [(i, f) for i, f in self._futures(Phase.SUBMITTING) if f.done()]
        # Acceptances first, so a refusal in the same batch sees every job the service took.
        done.sort(key=lambda item: item[1].exception() is not None)
        for index, future in done:
            self.book.move(index, Phase.IDLE)
            try:
                job_id = future.result()
            except _SubmissionStopped:
                self._set_status(index, JobStatus.CANCELLED)
                continue
            except Exception as exc:
                self._submit_failed(index, exc)
                continue
            if self.cancelled or self.book[index].cancel_asked:
                self._try_cancel(job_id)
                self._set_status(index, JobStatus.CANCELLED, backend_job_id=job_id)
                continue
            self._submitted(index, job_id)
        return bool(done)

    def _futures(self, phase: Phase) -> list[tuple[int, Future[Any]]]:
        """The jobs submitting or fetching, each with the call under way."""
        futures = []
        for index in self.book.in_phase(phase):
            future = self.book[index].future
            assert future is not None
            futures.append((index, future))
        return futures

    def _submitted(self, index: int, job_id: str) -> None:
        self._follow(index, job_id)
        self._set_status(index, JobStatus.QUEUED, backend_job_id=job_id)
        self.pacer.accepted(index, self._accepted())

    def _submit_failed(self, index: int, exc: BaseException) -> None:
        message = error_text(exc)
        probe = self.pacer.ended(index)
        if isinstance(exc, (BackendLimitReached, AccessRefused)):
            # Not the job's fault: give the attempt back and wait for a slot (or, refused for
            # good, leave it for a resume).
            job = self.book[index].row
            self._set_status(index, JobStatus.PENDING, attempts=max(job.attempts - 1, 0))
            self.book.move(index, Phase.READY, front=True)
            if isinstance(exc, AccessRefused):
                self._stop(message)
            else:
                self.pacer.refused(self._accepted(), probe=probe)
            return
        if isinstance(exc, TransientBackendError):
            if self.backend.can_reattach():
                # The service may have taken the job and only the answer got lost: look for it
                # by its tag before anything is submitted again.
                self.book.move(index, Phase.SETTLING, settling=Settling(None, message, self.now()))
                self._settle_blind(index)
                return
            self._retry_later(index, message)
            return
        self._fail(index, message)

    def _stop(self, message: str, following: bool = False) -> None:
        """The service refused the account (see :class:`AccessRefused`): submit nothing more.
        The reason is stored at once, so every reader of the set sees why it stops."""
        self._stop_following = self._stop_following or following
        if self._stopped is None:
            self._stopped = message
            log.warning("job set %s stops submitting: %s", self.job_set_id, message)
            self.life.stop_submitting(self.job_set_id, message)

    def _retry_later(self, index: int, message: str) -> None:
        job = self.book[index].row
        retry = self.policy.next_retry(job.attempts, job.retries, self.rng)
        if retry is None:
            self._fail(index, gave_up(job.attempts, message))
            return
        self._set_status(index, JobStatus.PENDING, backend_job_id=None, retries=retry.number,
                         last_error=message)
        self.book.move(index, Phase.WAITING, due=self.clock.now() + retry.delay)
        self.bus.publish(JobRetryScheduled(self.job_set_id, index, job.attempts + 1, retry.delay, message))

    def _fail(self, index: int, message: str) -> None:
        self.book.move(index, Phase.IDLE)
        self._set_status(index, JobStatus.FAILED, last_error=message)

    # -- polling and results -----------------------------------------------------------------

    def _poll(self) -> None:
        """Ask the service the state of each job it holds whose turn it is (see ``poll_at``), or
        of every one when the backend said a job may have changed."""
        now = self.clock.now()
        ask_all, self._ask_all = self._ask_all, False
        for index in self.book.in_phase(Phase.AT_SERVICE):
            job = self.book[index]
            job_id = job.backend_id
            if (job.phase is not Phase.AT_SERVICE or job_id is None
                    or (job.poll_at > now and not ask_all)):
                continue
            job.poll_at = now + self.backend.poll_interval
            try:
                info = self.backend.status(job_id)
            except Exception as exc:
                self._poll_error(index, exc)
                continue
            if info.state != JobStatus.DONE:  # a done job's error count goes on until its result is in
                job.poll_errors = 0
            self._note_details(index, info)
            if info.state == JobStatus.DONE:
                job.done_ids |= {job_id}
                self._fetch(index, job_id)
            elif info.state == JobStatus.FAILED:
                self.book.move(index, Phase.IDLE)
                message = info.message or "the backend reported the job failed"
                if info.retryable:
                    self._retry_later(index, message)
                else:
                    self._fail(index, message)
            elif info.state == JobStatus.CANCELLED:
                self.book.move(index, Phase.IDLE)
                if self.cancelled or job.cancel_asked:
                    self._set_status(index, JobStatus.CANCELLED)
                else:
                    self._retry_later(index, info.message or "the job was cancelled outside qjm")
            elif info.state == JobStatus.RUNNING and job.row.status != JobStatus.RUNNING:
                self._set_status(index, JobStatus.RUNNING)

    def _note_details(self, index: int, info: JobStatusInfo) -> None:
        """Record what the service says the job costs and where it runs, when that changed."""
        job = self.book[index].row
        usage, estimate = _news(info.usage, job.usage), _news(info.usage_estimate, job.usage_estimate)
        session, mode = _news(info.session_id, job.session_id), _news(info.session_mode, job.session_mode)
        if any(value is not KEEP for value in (usage, estimate, session, mode)):
            self.book.update(self.life.note_details(self.job_set_id, index, usage=usage,
                                                    usage_estimate=estimate, session_id=session,
                                                    session_mode=mode))

    def _poll_error(self, index: int, exc: BaseException) -> None:
        if isinstance(exc, AccessRefused):
            # Nothing more can be asked of the service: leave the job where it is (its id is
            # stored) for a resume to follow.
            self._stop(error_text(exc), following=True)
            return
        if isinstance(exc, PermanentBackendError):
            self._fail(index, error_text(exc))
            return
        if isinstance(exc, BackendLimitReached):
            # The service asks us to slow down (HTTP 429): it has not lost the job, so this
            # never counts towards giving the job up (and running it again); ask next time.
            return
        job = self.book[index]
        job.poll_errors += 1
        if job.poll_errors >= self.policy.max_poll_errors:
            assert job.backend_id is not None
            self._lost_track(index, job.backend_id, f"lost track of the job: {error_text(exc)}")

    def _fetch(self, index: int, job_id: str) -> None:
        self._wake.set()  # the job has left the service: its slot can take the next one now
        if self._pool is None:
            try:
                experiments = self.backend.result(job_id)
            except Exception as exc:
                self._fetch_failed(index, exc)
                return
            self._store_result(index, experiments)
        else:
            future = self._pool.submit(self.backend.result, job_id)
            future.add_done_callback(lambda _f: self._wake.set())
            self.book.move(index, Phase.FETCHING, future=future)

    def _collect_fetches(self) -> None:
        for index, future in self._futures(Phase.FETCHING):
            if not future.done():
                continue
            self.book.move(index, Phase.AT_SERVICE)  # followed still, until its result is in
            try:
                experiments = future.result()
            except Exception as exc:
                self._fetch_failed(index, exc)
                continue
            self._store_result(index, experiments)

    def _fetch_failed(self, index: int, exc: BaseException) -> None:
        if isinstance(exc, AccessRefused):
            self._poll_error(index, exc)
        elif isinstance(exc, PermanentBackendError):
            self._fail(index, error_text(exc))
        else:
            self._poll_error(index, exc)

    def _store_result(self, index: int, experiments: Sequence[ExperimentResult]) -> None:
        job = self.book.move(index, Phase.IDLE).row
        if len(experiments) != job.size:
            self._fail(index, f"the backend returned {len(experiments)} results for "
                              f"{job.size} circuits")
            return
        failures = experiment_failures(experiments, job.start)
        if failures:
            # The results that did come back are kept; the job (so the set) is not a success.
            more = f"; and {len(failures) - 3} more" if len(failures) > 3 else ""
            message = "; ".join(failures[:3]) + more
            self.book.update(self.life.finish_job(self.job_set_id, job, experiments, error=message))
            return
        self.book.update(self.life.finish_job(self.job_set_id, job, experiments))

    # -- cancel and finish -------------------------------------------------------------------

    def _cancel_everything(self) -> None:
        for index in self.book.take_all(Phase.READY) + self.book.take_all(Phase.WAITING):
            self._set_status(index, JobStatus.CANCELLED)
        for index in self.book.in_phase(Phase.SETTLING):
            known = self._settling(index).known
            if known:
                self._try_cancel(known)
            self.book.move(index, Phase.IDLE)
            self._set_status(index, JobStatus.CANCELLED)
        # (a job whose result is being fetched is done already: its results land)
        for index in self.book.in_phase(Phase.AT_SERVICE):
            job_id = self.book[index].backend_id
            assert job_id is not None
            self._try_cancel(job_id)
            self.book.move(index, Phase.IDLE)
            self._set_status(index, JobStatus.CANCELLED)

    def _cancel_requested_jobs(self) -> None:
        with self._cancel_jobs_lock:
            wanted, self._jobs_to_cancel = self._jobs_to_cancel, set()
        for index in sorted(wanted):
            if index not in self.book or self.book[index].row.status in JOB_FINAL:
                continue
            job = self.book[index]
            job.cancel_asked = True
            phase = job.phase
            if phase in (Phase.SUBMITTING, Phase.FETCHING):
                continue  # settled when the submission or the result comes back
            known = job.backend_id if phase is Phase.AT_SERVICE \
                else self._settling(index).known if phase is Phase.SETTLING else None
            self.book.move(index, Phase.IDLE)
            if known:
                self._try_cancel(known)
            self._set_status(index, JobStatus.CANCELLED)

    def _try_cancel(self, job_id: str) -> None:
        try:
            self.backend.cancel(job_id)
        except Exception as exc:
            log.warning("cancelling backend job %s failed: %s", job_id, exc)

    def _await_submissions(self) -> None:
        """Let the submit calls under way return, and record their ids (or failures)."""
        for _index, future in self._futures(Phase.SUBMITTING):
            try:
                future.result()
            except Exception:
                pass  # recorded by _collect_submissions
        self._collect_submissions()

    def _end_group(self) -> None:
        """Tell the backend the set's jobs are all submitted (it closes a batch)."""
        self._group_open = False
        try:
            self.backend.end_group(self.job_set_id)
        except Exception as exc:
            log.warning("closing the backend's batch for %s failed: %s", self.job_set_id, exc)

    def _release(self, reason: str | None = None) -> None:
        self.life.release(self.job_set_id, reason)
        self.final_state = SetState.INTERRUPTED

    def _finish(self) -> None:
        if self._group_open:
            self._end_group()
        counts: dict[JobStatus, int] = {}
        for job in self.book.rows():
            counts[job.status] = counts.get(job.status, 0) + 1
        self.final_state = self.life.finish(self.job_set_id, counts, cancelled=self.cancelled)

    # -- bookkeeping -------------------------------------------------------------------------

    def _set_status(self, index: int, status: JobStatus, *, backend_job_id: str | None | Keep = KEEP,
                    attempts: int | Keep = KEEP, retries: int | Keep = KEEP,
                    last_error: str | None | Keep = KEEP, submitted: float | None | Keep = KEEP) -> None:
        self.book.update(self.life.move_job(self.job_set_id, index, status, backend_job_id=backend_job_id,
                                            attempts=attempts, retries=retries, last_error=last_error,
                                            submitted=submitted))


_T = TypeVar("_T")


def _news(reported: _T | None, known: _T | None) -> _T | Keep:
    """What the service reported, if it is news; else KEEP (the stored value stands)."""
    return reported if reported is not None and reported != known else KEEP


_FAILED_MARK = re.compile(r'"success"\s*:\s*false')


def experiment_failures(experiments: Sequence[dict[str, Any] | str], first: int) -> list[str]:
    """What failed among a finished job's experiments (numbered from ``first``), one phrase each.

    A backend can finish a job while some of its circuits failed (Aer reports
    ``success: false`` per experiment). Results sent as JSON text are parsed only when the text
    says so, so the common all-good case costs a scan, not a parse.
    """
    failures = []
    for offset, exp in enumerate(experiments):
        if isinstance(exp, str):
            if not _FAILED_MARK.search(exp):
                continue
            exp = json.loads(exp)
        if exp.get("success", True) is False:
            name = (exp.get("header") or {}).get("name")
            label = f"experiment {first + offset}" + (f" ({name})" if name else "")
            reason = strip_ansi(str(exp.get("status") or "no reason given")).strip()
            failures.append(f"{label} failed: {reason}")
    return failures
