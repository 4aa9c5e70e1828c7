"""The engine when a service refuses the account (quota, credentials), loses the answer to a
submission it took, or groups a set's jobs (a batch): on the fake clock and the scripted backend
of ``test_engine``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qjm_tui.core import store as st
from qjm_tui.core.engine import FakeClock, RetryPolicy
from qjm_tui.core.errors import AccessRefused, TransientBackendError
from qjm_tui.core.ports import JobPayload, JobStatusInfo
from qjm_tui.core.status import JobStatus, SetState
from tests.test_engine import ScriptedBackend, make_set, run_set, store  # noqa: F401  (fixture)


class KeepingBackend(ScriptedBackend):
    """A scripted service that keeps its jobs (so it can be searched by tag), whose answers to
    chosen submissions are lost after it took the job, and which groups a set's jobs."""

    def __init__(self, clock: FakeClock, *, lose_answers: Sequence[int] = (), **kwargs: Any) -> None:
        super().__init__(clock, **kwargs)
        self.lose_answers = set(lose_answers)
        self.groups: list[tuple[str, str, list[str]]] = []
        self.status_extra: dict[str, dict[str, Any]] = {}

    def can_reattach(self) -> bool:
        return True

    def submit(self, payload: JobPayload) -> str:
        job_id = super().submit(payload)
        if len(self.attempt_times) in self.lose_answers:
            raise TransientBackendError("the connection dropped before the answer came")
        return job_id

    def find(self, tags: Sequence[str]) -> list[str]:
        return [job_id for job_id, payload in self.payloads.items() if set(tags) <= set(payload.tags)]

    def status(self, job_id: str) -> JobStatusInfo:
        info = super().status(job_id)
        extra = self.status_extra.get(job_id, {})
        return JobStatusInfo(info.state, info.message, info.retryable, **extra)

    def start_group(self, group: str, earlier: Sequence[str]) -> None:
        self.groups.append(("start", group, list(earlier)))

    def end_group(self, group: str) -> None:
        self.groups.append(("end", group, []))


def test_a_refused_account_stops_submitting_and_leaves_the_set_resumable(store: st.Store) -> None:  # noqa: F811
    clock = FakeClock()
    quota = AccessRefused("IBM Quantum refused new jobs: the usage quota is used up (error code 4317)")
    backend = KeepingBackend(clock, submit_script=[None, None, quota], polls_to_finish=3)
    set_id = make_set(store, 5)
    runner = run_set(store, backend, clock, set_id)
    jobs = store.jobs(set_id)
    assert [j.status for j in jobs] == ["done", "done", "pending", "pending", "pending"]
    # The refused job is not charged an attempt, and nothing was tried after the refusal.
    assert jobs[2].attempts == 0 and len(backend.attempt_times) == 3
    row = store.get_job_set(set_id)
    assert runner.final_state == SetState.INTERRUPTED and row.stop_reason == str(quota)
    assert store.effective_state(row) == SetState.INTERRUPTED
    store.claim(set_id)  # a resume takes the set up again: the reason is gone
    assert store.get_job_set(set_id).stop_reason is None


def test_a_refusal_while_following_jobs_releases_the_set_at_once(store: st.Store) -> None:  # noqa: F811
    clock = FakeClock()
    refused = AccessRefused("IBM Quantum no longer accepts the credentials (HTTP 401)")
    backend = KeepingBackend(clock, polls_to_finish=5, status_script={"job-0": [refused]})
    set_id = make_set(store, 2)
    runner = run_set(store, backend, clock, set_id)
    jobs = store.jobs(set_id)
    assert runner.final_state == SetState.INTERRUPTED
    assert store.get_job_set(set_id).stop_reason == str(refused)
    # Both jobs stay with the service, their ids kept for a resume to follow.
    assert [(j.status, j.backend_job_id) for j in jobs] == [("queued", "job-0"), ("queued", "job-1")]
    assert backend.cancelled == []


def test_a_lost_answer_is_settled_by_tag_and_the_job_is_followed_not_submitted_again(
        store: st.Store) -> None:  # noqa: F811
    clock = FakeClock()
    backend = KeepingBackend(clock, lose_answers=[2])
    set_id = make_set(store, 3)
    run_set(store, backend, clock, set_id, policy=RetryPolicy(base_delay=0.1))
    jobs = store.jobs(set_id)
    assert [j.status for j in jobs] == ["done"] * 3
    assert [job_id for _, job_id in backend.submits] == ["job-0", "job-1", "job-2"]  # one each
    assert jobs[1].backend_job_id == "job-1" and jobs[1].attempts == 1 and jobs[1].retries == 0


def test_the_group_starts_with_the_earlier_batches_and_ends_once_all_are_submitted(
        store: st.Store) -> None:  # noqa: F811
    clock = FakeClock()
    backend = KeepingBackend(clock, polls_to_finish=2)
    backend.status_extra = {f"job-{i}": {"session_id": "b2", "session_mode": "batch", "usage": 1.5,
                                         "usage_estimate": 2.0} for i in range(3)}
    set_id = make_set(store, 3)
    store.set_job_details(set_id, 0, session_id="b1")
    store.set_job_status(set_id, 0, JobStatus.PENDING, submitted=1.0)
    store.set_job_details(set_id, 1, session_id="b0")
    store.set_job_status(set_id, 1, JobStatus.PENDING, submitted=0.5)
    run_set(store, backend, clock, set_id)
    assert backend.groups[0] == ("start", set_id, ["b0", "b1"])
    assert [g[0] for g in backend.groups] == ["start", "end"]
    jobs = store.jobs(set_id)
    assert {(j.session_id, j.session_mode, j.usage, j.usage_estimate) for j in jobs} == {
        ("b2", "batch", 1.5, 2.0)}
    summary = store.summaries([set_id])[0]
    assert summary.usage == 4.5 and summary.usage_estimate is None
    assert all(p.group == set_id for p in backend.payloads.values())
    assert JobStatus.DONE == jobs[0].status


def test_a_service_asking_to_slow_down_never_makes_a_done_job_run_again(store: st.Store) -> None:  # noqa: F811
    """Fetching a done job's result refused ten times in a row with "too many requests" (more
    than ``max_poll_errors``): the result is fetched in the end, and the job is not run again."""
    from qjm_tui.core.errors import BackendLimitReached

    clock = FakeClock()
    backend = KeepingBackend(clock)
    refusals = [BackendLimitReached("429 Too Many Requests")] * 10
    real_result = backend.result

    def result(job_id: str) -> list[dict[str, Any]]:
        if refusals:
            raise refusals.pop()
        return real_result(job_id)

    backend.result = result  # type: ignore[method-assign]
    set_id = make_set(store, 1)
    run_set(store, backend, clock, set_id, policy=RetryPolicy(max_poll_errors=3))
    assert [j.status for j in store.jobs(set_id)] == ["done"] and len(backend.submits) == 1


def test_a_job_found_ended_is_not_asked_about_again_when_a_later_attempt_is_settled(
        store: st.Store) -> None:  # noqa: F811
    """Every settle asks about each job the service holds for the job's tag; one seen failed or
    cancelled stays so, and asking again would only give a flaky service one more way to leave
    the job unsettled."""
    clock = FakeClock()
    lost = TransientBackendError("status query timed out")

    class CancellingBackend(KeepingBackend):
        def __init__(self) -> None:
            super().__init__(clock, status_script={"job-0": [lost] * 3, "job-1": [lost] * 3})
            self.asked: dict[str, int] = {}

        def status(self, job_id: str) -> JobStatusInfo:
            self.asked[job_id] = self.asked.get(job_id, 0) + 1
            if job_id in self.cancelled and not self.status_script.get(job_id):
                return JobStatusInfo(JobStatus.CANCELLED)
            return super().status(job_id)

    backend = CancellingBackend()
    set_id = make_set(store, 1)
    run_set(store, backend, clock, set_id, policy=RetryPolicy(base_delay=0.1, max_poll_errors=3))
    [job] = store.jobs(set_id)
    # job-0 and job-1 each lost track (three failed checks), were cancelled and found cancelled
    assert backend.cancelled == ["job-0", "job-1"]
    assert (job.status, job.backend_job_id, job.attempts) == ("done", "job-2", 3)
    # job-0 was asked three times while followed and once when settled, not again for job-1
    assert backend.asked["job-0"] == 4 and backend.asked["job-1"] == 4
