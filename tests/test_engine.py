"""The engine's pacing, retry, backoff and cancel logic, on a fake clock and a scripted backend.

The runner is driven synchronously (``runner.run()`` in the test thread) so every decision is
deterministic: the fake clock only moves when the engine waits.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qjm_tui.core import store as st
from qjm_tui.core.engine import FakeClock, JobSetRunner, RetryPolicy
from qjm_tui.core.errors import (
    BackendLimitReached,
    PermanentBackendError,
    TransientBackendError,
)
from qjm_tui.core.events import EventBus, JobRetryScheduled, JobSetFinished, JobStatusChanged
from qjm_tui.core.ports import BackendLimits, ExecutionBackend, JobPayload, JobStatusInfo
from qjm_tui.core.split import plan_jobs
from qjm_tui.core.status import JobStatus, SetState


class ScriptedBackend(ExecutionBackend):
    """A backend whose answers are scripted per call, recording what the engine did.

    ``submit_script`` is consumed one entry per submit call: an exception to raise, or None to
    accept. A job finishes after ``polls_to_finish`` status calls. ``status_script`` maps a job
    id to answers (exceptions or JobStatusInfo) used before the normal behaviour.
    ``service_limit`` refuses a submission ("limit reached") while that many jobs are active,
    without declaring the limit in ``limits()`` (unless ``max_concurrent`` says so too).
    """

    def __init__(self, clock: FakeClock, *, max_concurrent: int | None = None,
                 submit_script: list[BaseException | None] | None = None,
                 polls_to_finish: int = 1,
                 status_script: dict[str, list[Any]] | None = None,
                 on_submit: Callable[[int], None] | None = None,
                 service_limit: int | None = None) -> None:
        super().__init__()
        self.spec = "scripted"
        self.poll_interval = 0.5
        self.clock = clock
        self.max_concurrent = max_concurrent
        self.submit_script = list(submit_script or [])
        self.polls_to_finish = polls_to_finish
        self.status_script = {k: list(v) for k, v in (status_script or {}).items()}
        self.on_submit = on_submit
        self.service_limit = service_limit
        self.refusals: list[tuple[float, int]] = []  # (time, jobs active) of each refusal
        self.submits: list[tuple[float, str]] = []   # (time, job id) of accepted submissions
        self.attempt_times: list[float] = []          # time of every submit call
        self.polls: dict[str, int] = {}
        self.active: set[str] = set()
        self.max_active = 0
        self.cancelled: list[str] = []
        self.payloads: dict[str, JobPayload] = {}

    def limits(self) -> BackendLimits:
        return BackendLimits(max_concurrent_jobs=self.max_concurrent)

    def submit(self, payload: JobPayload) -> str:
        self.attempt_times.append(self.clock.now())
        if self.on_submit is not None:
            self.on_submit(len(self.attempt_times))
        if self.submit_script:
            outcome = self.submit_script.pop(0)
            if outcome is not None:
                raise outcome
        if self.service_limit is not None and len(self.active) >= self.service_limit:
            self.refusals.append((self.clock.now(), len(self.active)))
            raise BackendLimitReached(f"{len(self.active)} jobs in flight, the limit is {self.service_limit}")
        job_id = f"job-{len(self.submits)}"
        self.submits.append((self.clock.now(), job_id))
        self.payloads[job_id] = payload
        self.active.add(job_id)
        self.max_active = max(self.max_active, len(self.active))
        return job_id

    def status(self, job_id: str) -> JobStatusInfo:
        script = self.status_script.get(job_id)
        if script:
            answer = script.pop(0)
            if isinstance(answer, BaseException):
                raise answer
            if answer.state != JobStatus.QUEUED:
                self.active.discard(job_id)
            return answer
        self.polls[job_id] = self.polls.get(job_id, 0) + 1
        if self.polls[job_id] >= self.polls_to_finish:
            self.active.discard(job_id)
            return JobStatusInfo(JobStatus.DONE)
        return JobStatusInfo(JobStatus.QUEUED)

    def result(self, job_id: str) -> list[dict[str, Any]]:
        payload = self.payloads[job_id]
        return [{"shots": payload.shots, "success": True, "header": {"name": c},
                 "data": {"counts": {"0x0": payload.shots}}} for c in payload.circuits]

    def cancel(self, job_id: str) -> bool:
        self.cancelled.append(job_id)
        self.active.discard(job_id)
        return True


def make_set(store: st.Store, n_jobs: int, per_job: int = 2) -> str:
    """A job set of ``n_jobs`` jobs whose 'circuits' are plain labels."""
    n = n_jobs * per_job
    plan = plan_jobs(n, BackendLimits(), shots=100, max_experiments_per_job=per_job)
    job_set_id = st.new_job_set_id()
    store.create_job_set(job_set_id=job_set_id, name="t", tags=["x"], backend="scripted", shots=100,
                         run_options={}, experiment_names=[f"c{i}" for i in range(n)],
                         jobs=[(j.index, j.start, j.stop, j.shots, j.round) for j in plan],
                         circuit_blocks=[])
    return job_set_id


@pytest.fixture
def store(tmp_path: Path) -> st.Store:
    s = st.Store(tmp_path / "engine.sqlite")
    yield s
    s.close()


def run_set(store: st.Store, backend: ScriptedBackend, clock: FakeClock, job_set_id: str,
            policy: RetryPolicy | None = None, bus: EventBus | None = None) -> JobSetRunner:
    n = store.get_job_set(job_set_id).n_experiments
    runner = JobSetRunner(store, bus or EventBus(), job_set_id, backend,
                          circuits=[f"c{i}" for i in range(n)], clock=clock,
                          policy=policy or RetryPolicy(), rng=random.Random(1))
    runner.run()
    assert runner.error is None
    return runner


def test_every_job_runs_once_and_results_are_stored(store: st.Store) -> None:
    clock = FakeClock()
    backend = ScriptedBackend(clock)
    job_set_id = make_set(store, 4)
    runner = run_set(store, backend, clock, job_set_id)
    assert runner.final_state == SetState.DONE
    assert len(backend.submits) == 4
    assert store.result_count(job_set_id) == 8
    assert {j.status for j in store.jobs(job_set_id)} == {JobStatus.DONE}
    # the client tag travels with each job so a crashed client can find it again
    assert all(any(t.startswith("qjm:") for t in p.tags) for p in backend.payloads.values())


def test_never_more_jobs_in_flight_than_the_backend_allows(store: st.Store) -> None:
    clock = FakeClock()
    backend = ScriptedBackend(clock, max_concurrent=3, polls_to_finish=3)
    job_set_id = make_set(store, 10)
    run_set(store, backend, clock, job_set_id)
    assert backend.max_active == 3
    assert len(backend.submits) == 10


def test_transient_submit_errors_back_off_exponentially_with_jitter(store: st.Store) -> None:
    clock = FakeClock()
    errors = [TransientBackendError("service busy")] * 3
    backend = ScriptedBackend(clock, submit_script=errors)
    job_set_id = make_set(store, 1)
    policy = RetryPolicy(max_attempts=5, base_delay=2.0, max_delay=100.0, jitter=0.5)
    events: list[Any] = []
    bus = EventBus()
    bus.subscribe(events.append)
    runner = run_set(store, backend, clock, job_set_id, policy, bus)
    assert runner.final_state == SetState.DONE
    gaps = [b - a for a, b in zip(backend.attempt_times, backend.attempt_times[1:], strict=False)]
    # retry n waits between half and all of base * 2**(n-1)
    for n, gap in enumerate(gaps, start=1):
        bound = 2.0 * 2 ** (n - 1)
        assert bound * 0.5 <= gap <= bound + 1e-9
    retries = [e for e in events if isinstance(e, JobRetryScheduled)]
    assert [e.attempt for e in retries] == [2, 3, 4]
    job = store.jobs(job_set_id)[0]
    assert job.retries == 3 and job.attempts == 4 and job.status == JobStatus.DONE


def test_backoff_is_bounded_by_the_maximum_delay() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=10.0, jitter=0.0)
    rng = random.Random(0)
    assert [policy.delay(n, rng) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_retries_stop_after_max_attempts_and_keep_the_message(store: st.Store) -> None:
    clock = FakeClock()
    backend = ScriptedBackend(clock, submit_script=[TransientBackendError("timeout talking")] * 5)
    job_set_id = make_set(store, 2)
    runner = run_set(store, backend, clock, job_set_id, RetryPolicy(max_attempts=3, base_delay=0.1))
    assert runner.final_state == SetState.PARTIAL
    jobs = store.jobs(job_set_id)
    failed = [j for j in jobs if j.status == JobStatus.FAILED]
    assert len(failed) == 1
    assert failed[0].attempts == 3
    assert "gave up after 3 attempts" in failed[0].last_error
    assert "timeout talking" in failed[0].last_error


def test_permanent_failure_is_never_retried(store: st.Store) -> None:
    clock = FakeClock()
    backend = ScriptedBackend(clock, submit_script=[PermanentBackendError("bad circuit: foo gate")])
    job_set_id = make_set(store, 3)
    runner = run_set(store, backend, clock, job_set_id)
    assert len(backend.attempt_times) == 3  # one call per job, none repeated
    first = store.jobs(job_set_id)[0]
    assert first.status == JobStatus.FAILED and first.attempts == 1
    assert first.last_error == "bad circuit: foo gate"
    assert runner.final_state == SetState.PARTIAL


def test_limit_reached_waits_for_a_slot_without_spending_attempts(store: st.Store) -> None:
    clock = FakeClock()
    backend = ScriptedBackend(clock, submit_script=[None, BackendLimitReached("5 jobs max")] * 2)
    job_set_id = make_set(store, 2)
    policy = RetryPolicy(max_attempts=1, limit_wait=7.0)
    runner = run_set(store, backend, clock, job_set_id, policy)
    assert runner.final_state == SetState.DONE
    assert [j.attempts for j in store.jobs(job_set_id)] == [1, 1]


def test_a_slot_freed_by_our_own_job_is_used_without_waiting_out_limit_wait(store: st.Store) -> None:
    clock = FakeClock()
    # Two slots (advertised), each job takes three polls (1.5 s). The service refuses once
    # anyway (say another client's job held a slot a moment): the next job must go as soon as
    # one of ours is done, not after limit_wait.
    backend = ScriptedBackend(clock, max_concurrent=2, polls_to_finish=3,
                              submit_script=[None, BackendLimitReached("2 jobs max")])
    job_set_id = make_set(store, 4)
    policy = RetryPolicy(limit_wait=100.0)
    runner = run_set(store, backend, clock, job_set_id, policy)
    assert runner.final_state == SetState.DONE
    assert len(backend.submits) == 4
    assert max(clock.waits) < policy.limit_wait
    # three rounds of 1.5 s (the refusal cost the second slot one round), far from 100 s
    assert clock.t <= 3 * 1.5 + 0.5
    refused_at = backend.attempt_times[1]
    next_submit = backend.submits[1][0]
    assert next_submit - refused_at <= 1.5


def test_an_unadvertised_limit_is_learned_from_a_few_refusals(store: st.Store) -> None:
    clock = FakeClock()
    # A service that takes 3 jobs at once and does not say so; 30 jobs of 1.5 s each.
    backend = ScriptedBackend(clock, polls_to_finish=3, service_limit=3)
    job_set_id = make_set(store, 30)
    policy = RetryPolicy(limit_wait=5.0, max_delay=60.0)
    runner = run_set(store, backend, clock, job_set_id, policy)
    assert runner.final_state == SetState.DONE
    assert len(backend.submits) == 30
    assert backend.max_active == 3
    # One refusal teaches the limit; then only the occasional probe for more room, further
    # apart each time it is refused: 5 s, 10 s, 20 s after the refusal before it.
    assert len(backend.refusals) <= 4, backend.refusals
    gaps = [b[0] - a[0] for a, b in zip(backend.refusals, backend.refusals[1:], strict=False)]
    assert gaps == sorted(gaps)
    # the set takes the bound ceil(30 / 3) rounds of 1.5 s, give or take a poll per round
    assert clock.t <= 10 * (1.5 + 0.5)


def test_a_limit_learned_too_low_grows_again_when_the_service_has_room(store: st.Store) -> None:
    clock = FakeClock()
    # The first refusal comes with one job of ours in flight (another client held the other
    # slots); later the service takes four. A probe finds the room and the set uses it.
    backend = ScriptedBackend(clock, polls_to_finish=3, service_limit=4,
                              submit_script=[None, BackendLimitReached("busy")])
    job_set_id = make_set(store, 40)
    runner = run_set(store, backend, clock, job_set_id, RetryPolicy(limit_wait=5.0))
    assert runner.final_state == SetState.DONE
    assert backend.max_active == 4
    assert len(backend.refusals) <= 4, backend.refusals


def test_failed_job_reported_retryable_is_resubmitted(store: st.Store) -> None:
    clock = FakeClock()
    backend = ScriptedBackend(
        clock, status_script={"job-0": [JobStatusInfo(JobStatus.FAILED, "node lost", retryable=True)]})
    job_set_id = make_set(store, 1)
    run_set(store, backend, clock, job_set_id, RetryPolicy(base_delay=0.01))
    assert len(backend.submits) == 2
    job = store.jobs(job_set_id)[0]
    assert job.status == JobStatus.DONE and job.retries == 1


def test_failed_job_not_retryable_keeps_the_backend_message(store: st.Store) -> None:
    clock = FakeClock()
    backend = ScriptedBackend(
        clock, status_script={"job-0": [JobStatusInfo(JobStatus.FAILED, "qubit 7 out of range")]})
    job_set_id = make_set(store, 1)
    runner = run_set(store, backend, clock, job_set_id)
    assert runner.final_state == SetState.FAILED
    assert store.jobs(job_set_id)[0].last_error == "qubit 7 out of range"


def test_transient_status_errors_are_tolerated_then_the_job_completes(store: st.Store) -> None:
    clock = FakeClock()
    backend = ScriptedBackend(
        clock, status_script={"job-0": [TransientBackendError("502")] * 3})
    job_set_id = make_set(store, 1)
    runner = run_set(store, backend, clock, job_set_id)
    assert runner.final_state == SetState.DONE
    assert len(backend.submits) == 1


def test_cancel_mid_submission_stops_everything(store: st.Store) -> None:
    clock = FakeClock()
    holder: dict[str, JobSetRunner] = {}

    def cancel_on_third_submit(count: int) -> None:
        if count == 3:
            holder["runner"].cancel()

    backend = ScriptedBackend(clock, polls_to_finish=50, on_submit=cancel_on_third_submit)
    job_set_id = make_set(store, 8)
    runner = JobSetRunner(store, EventBus(), job_set_id, backend,
                          circuits=[f"c{i}" for i in range(16)], clock=clock, rng=random.Random(1))
    holder["runner"] = runner
    runner.run()
    assert runner.final_state == SetState.CANCELLED
    statuses = [j.status for j in store.jobs(job_set_id)]
    assert statuses.count(JobStatus.CANCELLED) == 8
    # the jobs already at the backend were cancelled there too
    assert sorted(backend.cancelled) == sorted(job_id for _, job_id in backend.submits)
    assert len(backend.attempt_times) <= 4


def test_events_follow_every_status_change(store: st.Store) -> None:
    clock = FakeClock()
    backend = ScriptedBackend(clock)
    job_set_id = make_set(store, 2)
    events: list[Any] = []
    bus = EventBus()
    bus.subscribe(events.append)
    run_set(store, backend, clock, job_set_id, bus=bus)
    changes = [(e.job_index, e.old, e.new) for e in events if isinstance(e, JobStatusChanged)]
    assert (0, JobStatus.PENDING, JobStatus.SUBMITTING) in changes
    assert (0, JobStatus.SUBMITTING, JobStatus.QUEUED) in changes
    assert (0, JobStatus.QUEUED, JobStatus.DONE) in changes
    assert isinstance(events[-1], JobSetFinished) and events[-1].state == SetState.DONE


def test_a_broken_subscriber_does_not_stop_the_engine(store: st.Store) -> None:
    clock = FakeClock()
    bus = EventBus()

    def broken(_event: Any) -> None:
        raise RuntimeError("subscriber bug")

    bus.subscribe(broken)
    runner = run_set(store, ScriptedBackend(clock), clock, make_set(store, 2), bus=bus)
    assert runner.final_state == SetState.DONE


def test_cancel_request_from_another_process_is_picked_up(store: st.Store) -> None:
    clock = FakeClock()
    job_set_id = make_set(store, 4)

    def request_cancel(count: int) -> None:
        if count == 2:
            # what `ManagedJobSet.cancel()` does when another process owns the set
            store.request_cancel(job_set_id)

    backend = ScriptedBackend(clock, max_concurrent=1, polls_to_finish=10, on_submit=request_cancel)
    runner = run_set(store, backend, clock, job_set_id)
    assert runner.final_state == SetState.CANCELLED


def test_results_are_stored_as_each_job_finishes_not_in_order(store: st.Store) -> None:
    clock = FakeClock()
    backend = ScriptedBackend(
        clock, status_script={"job-0": [JobStatusInfo(JobStatus.QUEUED)] * 4})
    job_set_id = make_set(store, 3)
    events: list[Any] = []
    bus = EventBus()
    bus.subscribe(events.append)
    run_set(store, backend, clock, job_set_id, bus=bus)
    done_order = [e.job_index for e in events if isinstance(e, JobStatusChanged) and e.new == JobStatus.DONE]
    assert done_order == [1, 2, 0]


def test_each_job_is_asked_its_state_once_per_poll_interval(store: st.Store) -> None:
    """Every submission that returns, every fetch, wakes the runner; the jobs at the service
    are still asked only when their turn comes (at once on arrival, then once per poll
    interval), not once per wake: a service counts each status call against the account."""
    clock = FakeClock()
    # jobs 0 and 3 finish early (each fetch wakes the runner while the others wait)
    early = {"job-0": [JobStatusInfo(JobStatus.DONE)],
             "job-3": [JobStatusInfo(JobStatus.QUEUED), JobStatusInfo(JobStatus.DONE)]}
    backend = ScriptedBackend(clock, polls_to_finish=4, status_script=early)
    asked: dict[str, list[float]] = {}
    status = backend.status

    def recording(job_id: str) -> JobStatusInfo:
        asked.setdefault(job_id, []).append(clock.now())
        return status(job_id)

    backend.status = recording  # type: ignore[method-assign]
    job_set_id = make_set(store, 12)
    runner = run_set(store, backend, clock, job_set_id)
    assert runner.final_state == SetState.DONE
    assert sorted(asked) == sorted(job_id for _t, job_id in backend.submits)
    for job_id, times in asked.items():
        assert len(times) == len(early.get(job_id, [None] * 4)), (job_id, times)
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert all(gap >= backend.poll_interval - 1e-9 for gap in gaps), (job_id, times)


def test_a_backend_that_says_a_job_changed_has_every_job_asked_at_once(store: st.Store) -> None:
    """Local backends call their listeners as a job finishes: the runner asks at once (their
    status calls cost nothing), not at the job's next turn."""
    clock = FakeClock()
    backend = ScriptedBackend(clock, polls_to_finish=2)
    asked: list[tuple[float, str]] = []
    status = backend.status

    def recording(job_id: str) -> JobStatusInfo:
        asked.append((clock.now(), job_id))
        if len(asked) == 1:
            backend._notify()  # as a local backend does when a job's future completes
        return status(job_id)

    backend.status = recording  # type: ignore[method-assign]
    job_set_id = make_set(store, 1)
    runner = run_set(store, backend, clock, job_set_id)
    assert runner.final_state == SetState.DONE
    assert asked == [(0.0, "job-0"), (0.0, "job-0")], "asked again at once, and done"
