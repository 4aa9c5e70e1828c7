"""Settling a job with the service on its own, without a runner: which attempt is followed,
which are cancelled, when the job is submitted again, when nothing may be, and what a runner
taking up a set does with each job."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest

from qjm_tui.core import store as st
from qjm_tui.core.errors import PermanentBackendError, TransientBackendError
from qjm_tui.core.ports import BackendLimits, ExecutionBackend, JobPayload, JobStatusInfo
from qjm_tui.core.reconcile import Settlement, Settling, on_resume, reconcile, state_of
from qjm_tui.core.retry import RetryPolicy
from qjm_tui.core.status import JobStatus

TAG = "qjm-set-0"


class Service(ExecutionBackend):
    """A service holding jobs under tags, each in a state; ``failing`` ids answer a status
    check with a passing error that many times (-1: always); ``forgotten`` ids are unknown."""

    def __init__(self, jobs: dict[str, JobStatus], *, failing: dict[str, int] | None = None,
                 forgotten: Sequence[str] = (), search_fails: bool = False) -> None:
        super().__init__()
        self.jobs = dict(jobs)
        self.failing = dict(failing or {})
        self.forgotten = set(forgotten)
        self.search_fails = search_fails
        self.checks: list[str] = []

    def limits(self) -> BackendLimits:
        return BackendLimits()

    def submit(self, payload: JobPayload) -> str:
        raise AssertionError("settling never submits")

    def find(self, tags: Sequence[str]) -> list[str]:
        if self.search_fails:
            raise TransientBackendError("search timed out")
        return list(self.jobs) if tags == [TAG] else []

    def status(self, job_id: str) -> JobStatusInfo:
        self.checks.append(job_id)
        if job_id in self.forgotten:
            raise PermanentBackendError(f"job {job_id} not found")
        left = self.failing.get(job_id, 0)
        if left:
            self.failing[job_id] = left - 1
            raise TransientBackendError("503 service unavailable")
        return JobStatusInfo(self.jobs[job_id])

    def result(self, job_id: str) -> list[dict[str, Any]]:
        raise AssertionError("settling fetches nothing")

    def cancel(self, job_id: str) -> bool:
        raise AssertionError("reconcile leaves cancelling to its caller")


D, Q, R, F, C = JobStatus.DONE, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILED, JobStatus.CANCELLED


def test_a_success_is_followed_and_every_other_attempt_still_active_is_stray() -> None:
    service = Service({"a": F, "b": Q, "c": D, "d": R, "e": D})
    assert reconcile(service, TAG, "b") == Settlement("adopt", "c", ("b", "d"))


def test_without_a_success_the_jobs_own_active_attempt_comes_first() -> None:
    service = Service({"a": Q, "b": F, "c": R})
    assert reconcile(service, TAG, "c") == Settlement("adopt", "c", ("a",))
    assert reconcile(service, TAG, None) == Settlement("adopt", "a", ("c",))


def test_a_job_the_service_never_took_or_that_cannot_finish_is_submitted_again() -> None:
    assert reconcile(Service({}), TAG, None) == Settlement("submit")
    service = Service({"a": F, "b": C}, forgotten=["z"])
    assert reconcile(service, TAG, "z") == Settlement("submit"), "an id the service forgot counts as failed"


def test_nothing_may_be_submitted_while_the_service_cannot_say() -> None:
    assert reconcile(Service({"a": Q}, search_fails=True), TAG, "a") == Settlement("unknown", "a")
    # one attempt's state unknown and none done: it may be the one that succeeds
    service = Service({"a": F, "b": Q}, failing={"b": -1})
    assert reconcile(service, TAG, None, checks=3) == Settlement("unknown", None)
    assert service.checks.count("b") == 3, "each state is asked up to `checks` times"


def test_a_passing_error_is_asked_again_and_an_unknown_attempt_is_stray_next_to_a_success() -> None:
    service = Service({"a": D, "b": Q}, failing={"a": 2, "b": -1})
    assert reconcile(service, TAG, None, checks=3) == Settlement("adopt", "a", ("b",))
    assert state_of(Service({"x": R}, failing={"x": 1}), "x", checks=1)[0] is None


def test_an_attempt_found_ended_is_not_asked_again_and_an_unanswered_round_says_why() -> None:
    ended: dict[str, JobStatus] = {}
    service = Service({"a": F, "b": Q}, failing={"b": -1})
    settled = reconcile(service, TAG, None, checks=2, ended=ended)
    assert settled == Settlement("unknown", None) and settled.said
    assert ended == {"a": JobStatus.FAILED}
    reconcile(service, TAG, None, checks=2, ended=ended)
    assert service.checks.count("a") == 1, "a failed attempt stays failed: asked once"
    assert service.checks.count("b") == 4


def test_an_attempt_whose_result_could_not_be_fetched_never_counts() -> None:
    service = Service({"a": D, "b": F})
    assert reconcile(service, TAG, "a", unfetchable={"a"}) == Settlement("submit")
    assert "a" not in service.checks


def test_a_job_unanswered_for_max_attempts_rounds_fails_with_what_may_still_run() -> None:
    policy = RetryPolicy(max_attempts=4, base_delay=1.0, jitter=0.0)
    settling = Settling("job-7", "lost track of the job: 503", since=1000.0)
    dues = []
    for now in (10.0, 20.0, 30.0):
        assert settling.unanswered(policy, random.Random(0), now) is False
        dues.append(settling.due - now)
    assert dues == [1.0, 2.0, 4.0], "the rounds back off as retries do"
    assert settling.unanswered(policy, random.Random(0), 40.0) is True
    assert settling.give_up_message(1042.0) == (
        "the service answered none of 4 rounds of status checks over 42 s, so the job was not "
        "submitted again (job job-7 may still run there; a cancel was sent); before that: "
        "lost track of the job: 503")
    assert Settling(None, None, 0.0, rounds=2).give_up_message(5.0).endswith("(it may have been taken)")


def _job(status: JobStatus, attempts: int, backend_job_id: str | None = None) -> st.JobRow:
    return st.JobRow("s", 0, 0, 1, 8, 0, status, backend_job_id, TAG, attempts, 0, None, None, None, 0.0)


@pytest.mark.parametrize(("status", "attempts", "job_id", "reattach", "action"), [
    (JobStatus.PENDING, 0, None, True, "ready"),
    (JobStatus.PENDING, 0, None, False, "ready"),
    (JobStatus.PENDING, 2, None, False, "ready"),
    (JobStatus.PENDING, 1, None, True, "settle"),      # given back after a try the service may hold
    (JobStatus.SUBMITTING, 1, None, True, "settle"),   # interrupted before the id was recorded
    (JobStatus.QUEUED, 1, "b-1", True, "follow"),
    (JobStatus.RUNNING, 1, "b-1", True, "follow"),
    (JobStatus.QUEUED, 2, "b-2", True, "settle"),      # an earlier attempt may have run too
    (JobStatus.QUEUED, 1, "b-1", False, "reset"),      # died with the process that ran it
    (JobStatus.SUBMITTING, 1, None, False, "reset"),
    (JobStatus.DONE, 1, "b-1", True, None),
    (JobStatus.FAILED, 5, "b-5", True, None),
    (JobStatus.CANCELLED, 1, None, False, None),
])
def test_what_a_runner_taking_up_a_set_does_with_each_job(
        status: JobStatus, attempts: int, job_id: str | None, reattach: bool, action: str | None) -> None:
    assert on_resume(_job(status, attempts, job_id), reattach) == action
