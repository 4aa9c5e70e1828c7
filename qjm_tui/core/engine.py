"""The background submission engine: pacing, retries, polling, cancel, events.

One :class:`JobSetRunner` thread drives one job set. It submits jobs in order while the backend
has free slots (its concurrent-job limit, and any "limit reached" answer), retries passing
failures with bounded exponential backoff and jitter, never retries a permanent failure, polls
the jobs in flight, stores each job's results as soon as that job is done, and can be cancelled
at any moment. Every state change is written to the store first and then published as an event.

Time comes from a :class:`Clock`, so tests drive retries and backoff with :class:`FakeClock`
instead of sleeping.
"""

from __future__ import annotations

import heapq
import json
import logging
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Literal

from qjm_tui.core import store as st
from qjm_tui.core.circuits import circuits_from_qpy
from qjm_tui.core.errors import (
    AccessRefused,
    BackendLimitReached,
    PermanentBackendError,
    StoreFullError,
    TransientBackendError,
)
from qjm_tui.core.events import (
    CancelRequested,
    EventBus,
    JobRetryScheduled,
    JobSetFinished,
    JobSetStateChanged,
    JobsReset,
    JobStatusChanged,
)
from qjm_tui.core.ports import ExecutionBackend, JobPayload, JobStatusInfo
from qjm_tui.core.status import JOB_FINAL, JobStatus, SetState
from qjm_tui.core.text import error_text, strip_ansi

log = logging.getLogger(__name__)

#: seconds between the owner's heartbeats, which also pick up cancel requests from other processes
HEARTBEAT_INTERVAL = 1.0

#: seconds between two reads of what the store's other sets hold at the backend
_OTHERS_EVERY = 0.25


class Clock:
    """Real time: monotonic seconds, and waiting on an event."""

    def now(self) -> float:
        return time.monotonic()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(timeout)


class FakeClock(Clock):
    """Time that moves only when the engine waits: tests see every delay without sleeping."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = start
        self.waits: list[float] = []

    def now(self) -> float:
        return self.t

    def wait(self, event: threading.Event, timeout: float) -> bool:
        if event.is_set():
            return True
        self.waits.append(timeout)
        self.t += timeout
        return False


@dataclass(frozen=True)
class RetryPolicy:
    """How passing failures are retried.

    A job is submitted at most ``max_attempts`` times. The n-th retry waits
    ``min(max_delay, base_delay * 2**(n-1))`` reduced by up to ``jitter`` of itself, so many
    clients retrying at once spread out instead of hitting the service together.
    """

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0
    jitter: float = 0.5
    #: consecutive transient errors while polling or fetching before the job is resubmitted
    max_poll_errors: int = 8
    #: after "limit reached", how long until one submission probes for more room than the jobs
    #: of ours then in flight (a job of ours finishing frees a slot at once, without this wait);
    #: each refused probe doubles the wait, up to ``max_delay``
    limit_wait: float = 5.0

    def delay(self, retry: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        bound = min(self.max_delay, self.base_delay * (2 ** (retry - 1)))
        return bound * (1.0 - self.jitter * rng.random())


#: what reconciling a job with the service decided (see :meth:`JobSetRunner._reconcile`)
Verdict = Literal["adopt", "submit", "unknown"]


@dataclass
class _Blind:
    """A job whose fate the service cannot tell now: nothing is submitted for it meanwhile.

    ``known`` is its last backend id; ``reason`` why it is being settled (None: a resume found
    it open); ``since`` the wall-clock time the first check failed.
    """

    known: str | None
    reason: str | None
    since: float
    rounds: int = 0
    due: float = 0.0


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
        self._on_finished = on_finished
        self._wake = threading.Event()
        self._cancel = threading.Event()
        self._detach = threading.Event()
        self._cancel_jobs_lock = threading.Lock()
        self._jobs_to_cancel: set[int] = set()
        self._cancelled_jobs: set[int] = set()
        self.finished = threading.Event()
        #: the set's final state, or ``interrupted`` after :meth:`detach`
        self.final_state: SetState | None = None
        self.error: BaseException | None = None

        row = store.get_job_set(job_set_id)
        self.shots = row.shots
        self.run_options = row.run_options
        self.tags = row.tags
        all_jobs = list(jobs) if jobs is not None else store.jobs(job_set_id)
        self.jobs: dict[int, st.JobRow] = {j.index: j for j in all_jobs}
        limit = backend.limits().max_concurrent_jobs
        caps = [c for c in (limit, max_concurrent) if c]
        self.max_in_flight = min(caps) if caps else None

        self._pending: deque[int] = deque()
        self._delayed: list[tuple[float, int]] = []
        self._in_flight: dict[int, str] = {}
        self._submitting: dict[int, Future[str]] = {}
        self._fetching: dict[int, Future[list[dict[str, Any]]]] = {}
        self._poll_errors: dict[int, int] = {}
        #: jobs being settled with the service, which cannot tell their fate now
        self._blind: dict[int, _Blind] = {}
        #: backend jobs that reported done, and those of them whose result could not be fetched
        self._done_seen: set[str] = set()
        self._unfetchable: set[str] = set()
        #: backend jobs a reconcile found ended (failed or cancelled: that never changes), so
        #: later reconciles of the same job do not ask about them again
        self._ended: dict[str, str] = {}
        #: what the service last said when a status check or a search failed
        self._last_check_error: str | None = None
        #: guards the cancel flag against submissions: a submission starts only while holding it
        #: and finding no cancel, and cancel() sets the flag under it
        self._submit_gate = threading.Condition()
        #: the threads now inside a backend submit call
        self._submit_threads: set[int] = set()
        #: jobs of ours the service holds when it last said "limit reached" and nothing since
        #: showed more room: the learned concurrent limit (None until the first refusal)
        self._learned_cap: int | None = None
        #: the jobs the store's sets together may have in flight at this backend, as runners
        #: on this store learned it (read now, so a new runner does not learn it again)
        self._shared_limit: int | None = store.learned_limit(backend.spec)
        self._others_count = 0
        self._others_read = -_OTHERS_EVERY
        self._probe_at = 0.0
        self._probe_wait = self.policy.limit_wait
        self._probe: int | None = None  # the job sent to probe for room above the learned limit
        self._pool_size = 0
        self._pool: ThreadPoolExecutor | None = None
        self._last_heartbeat = 0.0
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
        return not (self._pending or self._delayed or self._submitting or self._blind)

    def open_jobs(self) -> int:
        """How many jobs have not reached a final state."""
        return sum(1 for j in self.jobs.values() if j.status not in JOB_FINAL)

    def wake(self) -> None:
        """Something may have changed (called by the backend from any thread)."""
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
                self.store.update_job_set(self.job_set_id, state=SetState.FAILED, finished=self.now())
                self.final_state = SetState.FAILED
                self.bus.publish(JobSetStateChanged(self.job_set_id, SetState.FAILED))
                self.bus.publish(JobSetFinished(self.job_set_id, SetState.FAILED))
            except Exception:
                log.exception("could not record the failure of %s", self.job_set_id)
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            self.backend.remove_listener(self.wake)
            # Whoever still holds this runner (to read its outcome) must not hold the set's
            # circuits, jobs or this thread's store connection.
            self.circuits = None
            self._blocks_ready = None
            self.jobs = {}
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
        try:
            self.store.release(self.job_set_id)
        except Exception:  # the disk is still full: the set reads interrupted once this process ends
            log.warning("could not record that job set %s is interrupted", self.job_set_id)
        self.bus.publish(JobSetStateChanged(self.job_set_id, SetState.INTERRUPTED))

    def _prepare(self) -> None:
        self.backend.add_listener(self.wake)
        if not self.backend.inline_submit:
            workers = min(self.max_in_flight or 8, 8)
            self._pool_size = workers
            self._pool = ThreadPoolExecutor(workers, thread_name_prefix=f"qjm-io-{self.job_set_id}")
        self._last_heartbeat = self.clock.now()
        if self._shared_limit is not None:
            # The limit is known: no probe for more room before the usual wait.
            self._probe_at = self.clock.now() + self._probe_wait
        self.bus.publish(JobSetStateChanged(self.job_set_id, SetState.RUNNING))
        earlier = [j.session_id for j in sorted(self.jobs.values(), key=lambda j: j.submitted or 0.0)
                   if j.session_id]
        try:
            self.backend.start_group(self.job_set_id, list(dict.fromkeys(reversed(earlier)))[::-1])
        except Exception as exc:
            log.warning("the backend could not take up the set's earlier batch: %s", exc)
        reset = []
        reattach = self.backend.can_reattach()
        for index in sorted(self.jobs):
            job = self.jobs[index]
            if job.status == JobStatus.PENDING and not (reattach and job.attempts):
                self._pending.append(index)
            elif job.status not in (JobStatus.PENDING, JobStatus.SUBMITTING, JobStatus.QUEUED,
                                    JobStatus.RUNNING):
                continue
            elif not reattach:
                reset.append(index)
            elif job.backend_job_id and job.attempts == 1 and job.status != JobStatus.PENDING:
                # Submitted once, and the service's id for it recorded: there is no other attempt.
                self._in_flight[index] = job.backend_job_id
            else:
                # An earlier process submitted this job at least once: the service may hold
                # several attempts (a failed one, a retry that succeeded, one whose id was never
                # recorded). Settle with all of them before anything is submitted again.
                verdict, job_id = self._reconcile(index, job.backend_job_id)
                if verdict == "adopt":
                    self._adopt(index, job_id)
                elif verdict == "unknown":
                    self._blind[index] = _Blind(job_id, None, self.now())
                elif job.status == JobStatus.PENDING:
                    self._pending.append(index)
                else:
                    reset.append(index)
        if reset:
            # Jobs this process cannot follow (an interrupted submission the backend does not
            # have, or a job that died with the process that ran it) are run again.
            self._reset(reset)

    def _reset(self, indices: list[int]) -> None:
        """Make jobs pending again, to be submitted as if for the first time."""
        self.store.update_jobs(self.job_set_id, indices, status=JobStatus.PENDING, backend_job_id=None)
        for index in indices:
            self.jobs[index] = replace(self.jobs[index], status=JobStatus.PENDING, backend_job_id=None)
        self.bus.publish(JobsReset(self.job_set_id, tuple(indices)))
        self._pending = deque(sorted({*self._pending, *indices}))

    # -- reconciling with the service --------------------------------------------------------

    def _reconcile(self, index: int, known: str | None) -> tuple[Verdict, str | None]:
        """Settle a job with every job the service holds for its client tag.

        ``adopt`` (with an id): one of them succeeded, or none did and one is still queued or
        running; that one is followed and the others still queued or running are cancelled.
        ``submit``: none of them can finish (failed, cancelled, forgotten, or none at all).
        ``unknown``: the service cannot say now (a search or status check fails), so nothing
        may be submitted yet; ``known`` (the job's last id) is returned for the caller to
        keep. A job whose result could not be fetched (:attr:`_unfetchable`) never counts.
        """
        job = self.jobs[index]
        try:
            found = self.backend.find([job.client_tag])
        except Exception as exc:
            self._last_check_error = error_text(exc)
            log.warning("could not search the service for %s: %s", job.client_tag, exc)
            return "unknown", known
        candidates = [i for i in dict.fromkeys([*([known] if known else []), *found])
                      if i not in self._unfetchable]
        states = {job_id: self._state_of(job_id) for job_id in candidates}
        done = [i for i, s in states.items() if s == JobStatus.DONE]
        active = [i for i, s in states.items() if s in (JobStatus.QUEUED, JobStatus.RUNNING)]
        unknown = [i for i, s in states.items() if s is None]
        if done:
            chosen = done[0]
            stray = [*active, *unknown]
        elif unknown:
            return "unknown", known
        elif active:
            chosen = active[0]  # the job's own last id first, when it is still active
            stray = active[1:]
        else:
            return "submit", None
        for job_id in stray:
            self._try_cancel(job_id)
        return "adopt", chosen

    def _state_of(self, job_id: str) -> JobStatus | None:
        """The state of a backend job, asking up to ``max_poll_errors`` times; None if every
        check failed. A job the service does not know counts as failed. A job found ended
        before is not asked about again."""
        if job_id in self._ended:
            return self._ended[job_id]
        tries = max(1, self.policy.max_poll_errors)
        for _ in range(tries):
            try:
                state = self.backend.status(job_id).state
            except PermanentBackendError:
                state = JobStatus.FAILED
            except Exception as exc:
                self._last_check_error = error_text(exc)
                log.debug("status of %s: %s", job_id, exc)
                continue
            if state in (JobStatus.FAILED, JobStatus.CANCELLED):
                self._ended[job_id] = state
            return state
        log.warning("the service did not tell the state of job %s in %d tries; the last said: %s",
                    job_id, tries, self._last_check_error)
        return None

    def _adopt(self, index: int, job_id: str | None) -> None:
        """Follow ``job_id`` as the job's backend job from now on."""
        assert job_id is not None
        self._in_flight[index] = job_id
        self._poll_errors.pop(index, None)
        if self.jobs[index].backend_job_id != job_id or self.jobs[index].status not in (
                JobStatus.QUEUED, JobStatus.RUNNING):
            self._set_status(index, JobStatus.QUEUED, backend_job_id=job_id)

    def _lost_track(self, index: int, job_id: str, message: str) -> None:
        """``max_poll_errors`` checks of a job failed in a row: stop the job unless it is known
        to have finished (then its result is lost: never adopt it again), and settle with the
        service before anything is submitted again."""
        del self._in_flight[index]
        self._poll_errors.pop(index, None)
        if job_id in self._done_seen:
            self._unfetchable.add(job_id)
        else:
            self._try_cancel(job_id)
        if not self.backend.can_reattach():
            self._retry_later(index, message)
            return
        self._blind[index] = _Blind(job_id, message, self.now())
        self._settle_blind(index)

    def _settle_blind(self, index: int) -> None:
        """Reconcile a job whose fate was unknown; back off while the service cannot say,
        and fail the job once ``max_attempts`` rounds could not (rather than run it twice)."""
        blind = self._blind[index]
        verdict, job_id = self._reconcile(index, blind.known)
        if verdict == "adopt":
            del self._blind[index]
            self._adopt(index, job_id)
        elif verdict == "submit":
            del self._blind[index]
            if blind.reason is None:
                self._reset([index])
            else:
                self._retry_later(index, blind.reason)
        else:
            blind.rounds += 1
            if blind.rounds >= self.policy.max_attempts:
                del self._blind[index]
                where = f"job {blind.known} may still run there; a cancel was sent" if blind.known \
                    else "it may have been taken"
                said = f" (the last said: {self._last_check_error})" if self._last_check_error else ""
                self._fail(index, f"the service answered none of {blind.rounds} rounds of status "
                                  f"checks over {self.now() - blind.since:.0f} s{said}, so the job was "
                                  f"not submitted again ({where})"
                           + (f"; before that: {blind.reason}" if blind.reason else ""))
                if blind.known:
                    self._try_cancel(blind.known)
            else:
                blind.due = self.clock.now() + self.policy.delay(blind.rounds, self.rng)

    def _settle_due(self) -> None:
        now = self.clock.now()
        for index in [i for i, b in self._blind.items() if b.due <= now]:
            self._settle_blind(index)

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
            in_flight = len(self._in_flight)
            if not self._stop_following:
                self._poll()
                self._collect_fetches()
            if len(self._in_flight) < in_flight:
                self._slot_wait_until = 0.0  # a job of ours left the backend: its slot is free
            if self._group_open and self.all_submitted() and not self.cancelled:
                self._end_group()
            self._heartbeat()
            if self._stopped is not None and not self.cancelled and (self._stop_following or not (
                    self._in_flight or self._fetching or self._blind or self._submitting)):
                self._await_submissions()
                return
            if not (self._pending or self._delayed or self._in_flight or self._submitting
                    or self._fetching or self._blind):
                return
            self.clock.wait(self._wake, self._next_timeout())

    def _next_timeout(self) -> float:
        timeout = self.backend.poll_interval if (self._in_flight or self._submitting
                                                 or self._fetching) else 1.0
        now = self.clock.now()
        if self._delayed:
            timeout = min(timeout, max(0.0, self._delayed[0][0] - now))
        if self._pending and self._probe_at > now:
            timeout = min(timeout, self._probe_at - now)
        if self._blind:
            timeout = min(timeout, max(0.0, min(b.due for b in self._blind.values()) - now))
        return max(timeout, 0.0)

    def _heartbeat(self) -> None:
        now = self.clock.now()
        if now - self._last_heartbeat >= HEARTBEAT_INTERVAL:
            self._last_heartbeat = now
            if self.store.heartbeat(self.job_set_id) and not self.cancelled:
                self.bus.publish(CancelRequested(self.job_set_id))
                self.cancel()

    # -- submission --------------------------------------------------------------------------

    def _accepted(self) -> int:
        """Jobs of ours the service holds: accepted and not known to be done (a job whose
        result is being fetched has already left the service's queue)."""
        return len(self._in_flight) - len(self._fetching)

    def _held(self) -> int:
        """Slots at the service that are ours or may be: accepted jobs, submissions under way
        and jobs whose fate the service cannot tell now."""
        return self._accepted() + len(self._submitting) + len(self._blind)

    def _slots_free(self) -> bool:
        held = self._held()
        if self.max_in_flight is not None and held >= self.max_in_flight:
            return False
        if self._pool is not None:
            under_way = len(self._submitting)
            if under_way >= self._pool_size:
                return False  # no backlog of submissions the service may refuse all at once
            cap = self._cap()
            if self.max_in_flight is None and cap is None and under_way >= max(1, self._accepted()):
                # An unknown limit: no more submissions under way than the service has taken,
                # so the first "limit reached" answers a few of them, not a flood.
                return False
        cap = self._cap()
        if cap is None or held < cap:
            return True
        # At the learned limit: one probe at a time, and only once its wait is over.
        return not self._submitting and self.clock.now() >= self._probe_at

    def _release_delayed(self) -> None:
        now = self.clock.now()
        ready = []
        while self._delayed and self._delayed[0][0] <= now:
            ready.append(heapq.heappop(self._delayed)[1])
        for index in sorted(ready, reverse=True):
            self._pending.appendleft(index)

    def _submit_ready(self) -> None:
        while self._pending and self._slots_free() and not self.cancelled and not self._detach.is_set() \
                and self._stopped is None:
            index = self._pending[0]
            try:
                payload = self._payload(index)
            except PermanentBackendError as exc:
                self._pending.popleft()
                self._fail(index, error_text(exc))
                continue
            if payload is None:  # its circuits are still being stored
                return
            self._pending.popleft()
            cap = self._cap()
            if cap is not None and self._held() >= cap:
                self._probe = index
            job = self.jobs[index]
            self._set_status(index, JobStatus.SUBMITTING, attempts=job.attempts + 1,
                             submitted=self.now())
            self._group_open = True
            if self._pool is None:
                try:
                    job_id = self._submit_unless_cancelled(payload)
                except _SubmissionStopped:
                    self._set_status(index, JobStatus.CANCELLED, finished=self.now())
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
                self._submitting[index] = future

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
        job = self.jobs[index]
        tags = [*self.tags, job.client_tag]
        if self._blocks_ready is not None:
            block = self._blocks_ready(job.start, job.stop)
            if block is None:
                return None
        else:
            block = None
        if self.circuits is not None:
            circuits = self.circuits[job.start:job.stop]
            exact = (block or None) if job.round == 0 else None
            return JobPayload(circuits, job.shots, dict(self.run_options), tags, qpy=exact,
                              group=self.job_set_id)
        blocks = self.store.circuit_blocks(self.job_set_id, job.start, job.stop)
        if len(blocks) == 1 and blocks[0][0] == job.start and blocks[0][1] == job.stop:
            qpy = blocks[0][2]
            return JobPayload(circuits_from_qpy(qpy), job.shots, dict(self.run_options), tags, qpy=qpy,
                              group=self.job_set_id)
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
        done = [(i, f) for i, f in self._submitting.items() if f.done()]
        # Acceptances first, so a refusal in the same batch sees every job the service took.
        done.sort(key=lambda item: item[1].exception() is not None)
        for index, future in done:
            del self._submitting[index]
            try:
                job_id = future.result()
            except _SubmissionStopped:
                self._set_status(index, JobStatus.CANCELLED, finished=self.now())
                continue
            except Exception as exc:
                self._submit_failed(index, exc)
                continue
            if self.cancelled or index in self._cancelled_jobs:
                self._try_cancel(job_id)
                self._set_status(index, JobStatus.CANCELLED, backend_job_id=job_id, finished=self.now())
                continue
            self._submitted(index, job_id)
        return bool(done)

    def _submitted(self, index: int, job_id: str) -> None:
        self._in_flight[index] = job_id
        self._poll_errors.pop(index, None)
        self._set_status(index, JobStatus.QUEUED, backend_job_id=job_id)
        if index == self._probe:
            self._probe = None
        accepted = self._accepted()
        cap = self._cap()
        if cap is not None and accepted > cap:
            # The service took more than we thought it would: that much room, at least.
            self._learned_cap = accepted
            self._share_limit(accepted + self._others_accepted())
            self._probe_wait = self.policy.limit_wait

    def _submit_failed(self, index: int, exc: BaseException) -> None:
        message = error_text(exc)
        probe = index == self._probe
        if probe:
            self._probe = None
        if isinstance(exc, (BackendLimitReached, AccessRefused)):
            # Not the job's fault: give the attempt back and wait for a slot (or, refused for
            # good, leave it for a resume).
            job = self.jobs[index]
            self._set_status(index, JobStatus.PENDING, attempts=max(job.attempts - 1, 0))
            self._pending.appendleft(index)
            if isinstance(exc, AccessRefused):
                self._stop(message)
            else:
                self._limit_reached(probe)
            return
        if isinstance(exc, TransientBackendError):
            if self.backend.can_reattach():
                # The service may have taken the job and only the answer got lost: look for it
                # by its tag before anything is submitted again.
                self._blind[index] = _Blind(None, message, self.now())
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
            self.store.update_job_set(self.job_set_id, stop_reason=message)

    def _limit_reached(self, probe: bool) -> None:
        """Learn the service's limit from a refusal: no more jobs in flight than ours now.

        A job of ours finishing frees a slot for the next one at once. Only a probe, after
        ``limit_wait`` (doubling while probes are refused), tries for more room, in case the
        refusal came while other clients held slots that are free again.
        """
        if probe:
            self._probe_wait = min(self._probe_wait * 2, max(self.policy.max_delay,
                                                             self.policy.limit_wait))
        self._learned_cap = self._accepted()
        self._share_limit(self._learned_cap + self._others_accepted())
        self._probe_at = self.clock.now() + self._probe_wait

    # The learned limit is shared through the store: a refusal tells every runner on this store
    # how many jobs its sets together may have in flight at the backend, and a runner that
    # starts reads it, instead of finding it out with refusals of its own.

    def _cap(self) -> int | None:
        """How many jobs of ours the service should hold now: the limit runners on this store
        learned less what the other sets hold there; else what this runner learned alone;
        None while no limit is known."""
        if self._shared_limit is None:
            return self._learned_cap
        return max(self._shared_limit - self._others(), 0)

    def _others(self) -> int:
        """Jobs the store's other running sets have in flight at this backend, or are
        submitting there (read at most every ``_OTHERS_EVERY`` seconds)."""
        now = self.clock.now()
        if now - self._others_read >= _OTHERS_EVERY:
            self._others_count = self.store.jobs_in_flight(self.backend.spec, self.job_set_id)
            self._others_read = now
        return self._others_count

    def _others_accepted(self) -> int:
        """Jobs the service has accepted from the store's other running sets, now: with ours,
        what it held when it refused or accepted one more."""
        return self.store.jobs_in_flight(self.backend.spec, self.job_set_id, accepted_only=True)

    def _share_limit(self, limit: int) -> None:
        if limit != self._shared_limit:
            self._shared_limit = limit
            self.store.learn_limit(self.backend.spec, limit)

    def _retry_later(self, index: int, message: str) -> None:
        job = self.jobs[index]
        if job.attempts >= self.policy.max_attempts:
            tries = "1 attempt" if job.attempts == 1 else f"{job.attempts} attempts"
            self._fail(index, f"gave up after {tries}; last error: {message}")
            return
        retry = job.retries + 1
        delay = self.policy.delay(retry, self.rng)
        self._set_status(index, JobStatus.PENDING, backend_job_id=None, retries=retry, last_error=message)
        heapq.heappush(self._delayed, (self.clock.now() + delay, index))
        self.bus.publish(JobRetryScheduled(self.job_set_id, index, job.attempts + 1, delay, message))

    def _fail(self, index: int, message: str) -> None:
        self._in_flight.pop(index, None)
        self._set_status(index, JobStatus.FAILED, last_error=message, finished=self.now())

    # -- polling and results -----------------------------------------------------------------

    def _poll(self) -> None:
        for index, job_id in list(self._in_flight.items()):
            if index in self._fetching:
                continue
            try:
                info = self.backend.status(job_id)
            except Exception as exc:
                self._poll_error(index, exc)
                continue
            if info.state != JobStatus.DONE:  # a done job's error count goes on until its result is in
                self._poll_errors.pop(index, None)
            self._note_details(index, info)
            if info.state == JobStatus.DONE:
                self._done_seen.add(job_id)
                self._fetch(index, job_id)
            elif info.state == JobStatus.FAILED:
                del self._in_flight[index]
                message = info.message or "the backend reported the job failed"
                if info.retryable:
                    self._retry_later(index, message)
                else:
                    self._fail(index, message)
            elif info.state == JobStatus.CANCELLED:
                del self._in_flight[index]
                if self.cancelled or index in self._cancelled_jobs:
                    self._set_status(index, JobStatus.CANCELLED, finished=self.now())
                else:
                    self._retry_later(index, info.message or "the job was cancelled outside qjm")
            elif info.state == JobStatus.RUNNING and self.jobs[index].status != JobStatus.RUNNING:
                self._set_status(index, JobStatus.RUNNING)

    def _note_details(self, index: int, info: JobStatusInfo) -> None:
        """Record what the service says the job costs and where it runs, when that changed."""
        job = self.jobs[index]
        fields = {name: value for name, value in (
            ("usage", info.usage), ("usage_estimate", info.usage_estimate),
            ("session_id", info.session_id), ("session_mode", info.session_mode))
            if value is not None and value != getattr(job, name)}
        if fields:
            self.store.update_job(self.job_set_id, index, **fields)
            self.jobs[index] = replace(job, **fields)

    def _poll_error(self, index: int, exc: BaseException) -> None:
        if isinstance(exc, AccessRefused):
            # Nothing more can be asked of the service: leave the job where it is (its id is
            # stored) for a resume to follow.
            self._stop(error_text(exc), following=True)
            return
        if isinstance(exc, PermanentBackendError):
            self._in_flight.pop(index, None)
            self._fail(index, error_text(exc))
            return
        if isinstance(exc, BackendLimitReached):
            # The service asks us to slow down (HTTP 429): it has not lost the job, so this
            # never counts towards giving the job up (and running it again); ask next time.
            return
        count = self._poll_errors.get(index, 0) + 1
        self._poll_errors[index] = count
        if count >= self.policy.max_poll_errors:
            self._lost_track(index, self._in_flight[index], f"lost track of the job: {error_text(exc)}")

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
            self._fetching[index] = future

    def _collect_fetches(self) -> None:
        for index, future in list(self._fetching.items()):
            if not future.done():
                continue
            del self._fetching[index]
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
            self._in_flight.pop(index, None)
            self._fail(index, error_text(exc))
        else:
            self._poll_error(index, exc)

    def _store_result(self, index: int, experiments: list[dict[str, Any]]) -> None:
        job = self.jobs[index]
        self._in_flight.pop(index, None)
        if len(experiments) != job.size:
            self._fail(index, f"the backend returned {len(experiments)} results for "
                              f"{job.size} circuits")
            return
        failures = experiment_failures(experiments, job.start)
        if failures:
            # The results that did come back are kept; the job (so the set) is not a success.
            more = f"; and {len(failures) - 3} more" if len(failures) > 3 else ""
            message = "; ".join(failures[:3]) + more
            self.store.finish_job(self.job_set_id, job, experiments, error=message)
            self._record(index, JobStatus.FAILED, finished=self.now(), last_error=message)
            return
        self.store.finish_job(self.job_set_id, job, experiments)
        self._record(index, JobStatus.DONE, finished=self.now(), last_error=None)

    # -- cancel and finish -------------------------------------------------------------------

    def _cancel_everything(self) -> None:
        for index in list(self._pending) + [i for _, i in self._delayed]:
            self._set_status(index, JobStatus.CANCELLED, finished=self.now())
        self._pending.clear()
        self._delayed.clear()
        for index, blind in list(self._blind.items()):
            if blind.known:
                self._try_cancel(blind.known)
            del self._blind[index]
            self._set_status(index, JobStatus.CANCELLED, finished=self.now())
        for index, job_id in list(self._in_flight.items()):
            if index in self._fetching:
                continue  # already done; let its results land
            self._try_cancel(job_id)
            del self._in_flight[index]
            self._set_status(index, JobStatus.CANCELLED, finished=self.now())

    def _cancel_requested_jobs(self) -> None:
        with self._cancel_jobs_lock:
            wanted, self._jobs_to_cancel = self._jobs_to_cancel, set()
        for index in sorted(wanted):
            if index not in self.jobs or self.jobs[index].status in JOB_FINAL:
                continue
            self._cancelled_jobs.add(index)
            if index in self._pending:
                self._pending.remove(index)
            elif any(i == index for _, i in self._delayed):
                self._delayed = [d for d in self._delayed if d[1] != index]
                heapq.heapify(self._delayed)
            elif index in self._in_flight and index not in self._fetching:
                self._try_cancel(self._in_flight.pop(index))
            elif index in self._blind:
                known = self._blind.pop(index).known
                if known:
                    self._try_cancel(known)
            elif index in self._submitting or index in self._fetching:
                continue  # settled when the submission or the result comes back
            self._set_status(index, JobStatus.CANCELLED, finished=self.now())

    def _try_cancel(self, job_id: str) -> None:
        try:
            self.backend.cancel(job_id)
        except Exception as exc:
            log.warning("cancelling backend job %s failed: %s", job_id, exc)

    def _await_submissions(self) -> None:
        """Let the submit calls under way return, and record their ids (or failures)."""
        for future in list(self._submitting.values()):
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
        self.store.release(self.job_set_id, reason)
        self.final_state = SetState.INTERRUPTED
        self.bus.publish(JobSetStateChanged(self.job_set_id, SetState.INTERRUPTED))

    def _finish(self) -> None:
        if self._group_open:
            self._end_group()
        counts: dict[str, int] = {}
        for job in self.jobs.values():
            counts[job.status] = counts.get(job.status, 0) + 1
        if self.cancelled and counts.get(JobStatus.CANCELLED):
            state = SetState.CANCELLED
        elif counts.get(JobStatus.FAILED) or counts.get(JobStatus.CANCELLED):
            state = SetState.PARTIAL if counts.get(JobStatus.DONE) else SetState.FAILED
        else:
            state = SetState.DONE
        self.store.update_job_set(self.job_set_id, state=state, finished=self.now())
        self.final_state = state
        self.bus.publish(JobSetStateChanged(self.job_set_id, state))
        self.bus.publish(JobSetFinished(self.job_set_id, state))

    # -- bookkeeping -------------------------------------------------------------------------

    def _set_status(self, index: int, status: str, **fields: Any) -> None:
        self.store.update_job(self.job_set_id, index, status=status, **fields)
        self._record(index, status, **fields)

    def _record(self, index: int, status: str, **fields: Any) -> None:
        old = self.jobs[index]
        values = {"status": status, **{k: v for k, v in fields.items() if k != "idx"}}
        self.jobs[index] = replace(old, **values)
        if old.status != status:
            self.bus.publish(JobStatusChanged(self.job_set_id, index, old.status, status,
                                              self.jobs[index].backend_job_id,
                                              self.jobs[index].last_error))


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
