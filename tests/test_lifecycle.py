"""The one place states change: every allowed move is written and carried by exactly one event,
every other move is refused with nothing written, and a set's final state is decided once.

Each move is made on a real store, from the state the store holds, through every lifecycle call
that can make it; then the feed is held against the store: replaying the events of a whole run
(retries, a lost job settled with the service, a cancel) gives every job's stored status.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qjm_tui.core import store as st
from qjm_tui.core.engine import FakeClock, RetryPolicy
from qjm_tui.core.errors import (
    IllegalMove,
    JobManagerInvalidStateError,
    StoreFullError,
    TransientBackendError,
)
from qjm_tui.core.events import (
    Event,
    EventBus,
    JobSetFinished,
    JobSetStateChanged,
    JobsReset,
    JobStatusChanged,
)
from qjm_tui.core.lifecycle import JOB_MOVES, SET_MOVES, Lifecycle, final_state
from qjm_tui.core.ports import JobStatusInfo
from qjm_tui.core.status import JOB_FINAL, SET_FINAL, JobStatus, SetState
from tests.forge import forge_set
from tests.test_engine import make_set, run_set
from tests.test_engine_refusals import KeepingBackend

NOW = 1_700_000_000.0
FINISHED_AT = NOW + 5.0


@pytest.fixture
def store(tmp_path: Path) -> st.Store:
    s = st.Store(tmp_path / "moves.sqlite", now=lambda: NOW)
    yield s
    s.close()


class Feed:
    """A lifecycle on ``store`` whose events are kept."""

    def __init__(self, store: st.Store) -> None:
        self.events: list[Event] = []
        bus = EventBus()
        bus.subscribe(self.events.append)
        self.life = Lifecycle(store, bus, now=lambda: FINISHED_AT)

    def job_moves(self) -> list[tuple[int, JobStatus, JobStatus]]:
        """(job, old, new) of every job move the events carry."""
        moves: list[tuple[int, JobStatus, JobStatus]] = []
        for e in self.events:
            if isinstance(e, JobStatusChanged):
                moves.append((e.job_index, e.old, e.new))
            elif isinstance(e, JobsReset):
                assert len(e.old) == len(e.job_indices)
                moves += [(i, old, JobStatus.PENDING) for i, old in zip(e.job_indices, e.old, strict=True)]
        return moves

    def set_moves(self) -> list[tuple[SetState | None, SetState]]:
        return [(e.old, e.state) for e in self.events if isinstance(e, JobSetStateChanged)]

    def finished(self) -> list[SetState]:
        return [e.state for e in self.events if isinstance(e, JobSetFinished)]


def _job_in(store: st.Store, status: JobStatus) -> tuple[str, st.JobRow]:
    """A set whose job 0 is in ``status`` as the store holds it (the set owned here)."""
    set_id = make_set(store, 2)
    store.set_job_status(set_id, 0, status, backend_job_id=None if status == JobStatus.PENDING else "b-0")
    return set_id, store.job(set_id, 0)


def _job_calls(new: JobStatus) -> dict[str, Callable[[Lifecycle, str, st.JobRow], Any]]:
    """Every lifecycle call that moves a job to ``new``, by name."""
    calls: dict[str, Callable[[Lifecycle, str, st.JobRow], Any]] = {
        "move_job": lambda life, set_id, job: life.move_job(set_id, job.index, new)}
    if new in JOB_FINAL:
        calls["move_jobs"] = lambda life, set_id, job: life.move_jobs(set_id, [job.index], new)
    if new in (JobStatus.DONE, JobStatus.FAILED):
        error = "experiment 0 failed" if new == JobStatus.FAILED else None
        calls["finish_job"] = lambda life, set_id, job: life.finish_job(
            set_id, job, [{"data": {}}] * job.size, error=error)
    if new == JobStatus.PENDING:
        calls["reset_jobs"] = lambda life, set_id, job: life.reset_jobs(set_id, [job.index])
        calls["claim"] = lambda life, set_id, job: life.claim(set_id, reset={job.status}, keep={1})
    return calls


ALL_JOB_MOVES = [(old, new) for old in JobStatus for new in JobStatus]


@pytest.mark.parametrize(("old", "new"), ALL_JOB_MOVES, ids=[f"{o}>{n}" for o, n in ALL_JOB_MOVES])
def test_a_job_moves_as_the_table_says_and_one_event_carries_each_move(
        store: st.Store, old: JobStatus, new: JobStatus) -> None:
    for name, call in _job_calls(new).items():
        set_id, job = _job_in(store, old)
        feed = Feed(store)
        if new in JOB_MOVES[old]:
            call(feed.life, set_id, job)
            assert feed.job_moves() == [(0, old, new)], name
            after = store.job(set_id, 0)
            assert after.status == new, name
            assert after.finished == (FINISHED_AT if new in JOB_FINAL else job.finished), name
            if new == JobStatus.PENDING and name != "move_job":
                assert after.backend_job_id is None, name
        else:
            before = store.change_seq()
            refused = f"job 0 of job set {set_id} is {old}: it cannot become {new}"
            with pytest.raises(IllegalMove, match=refused):
                call(feed.life, set_id, job)
            assert feed.events == [], name
            assert store.job(set_id, 0) == job, name
            assert store.change_seq() == before, name


def test_the_table_moves_every_status_and_a_done_job_never_moves() -> None:
    assert set(JOB_MOVES) == set(JobStatus)
    assert JOB_MOVES[JobStatus.DONE] == frozenset()
    # only a job not yet with the backend is submitted; final jobs only go back to pending
    assert {old for old, news in JOB_MOVES.items() if JobStatus.SUBMITTING in news} == {JobStatus.PENDING}
    assert JOB_MOVES[JobStatus.FAILED] == JOB_MOVES[JobStatus.CANCELLED] \
        == {JobStatus.PENDING, JobStatus.FAILED}


def test_many_jobs_move_in_one_transaction_or_not_at_all(store: st.Store) -> None:
    set_id = make_set(store, 4)
    store.set_job_status(set_id, 2, JobStatus.DONE)
    feed = Feed(store)
    with pytest.raises(IllegalMove, match="job 2 .* is done: it cannot become cancelled"):
        feed.life.move_jobs(set_id, [0, 1, 2, 3], JobStatus.CANCELLED)
    assert [j.status for j in store.jobs(set_id)] == ["pending", "pending", "done", "pending"]
    assert feed.events == []
    feed.life.move_jobs(set_id, [0, 1, 3], JobStatus.CANCELLED)
    assert feed.job_moves() == [(i, JobStatus.PENDING, JobStatus.CANCELLED) for i in (0, 1, 3)]


# -- job sets ------------------------------------------------------------------------------------


def _set_in(store: st.Store, state: SetState) -> str:
    """A set whose state, as this process reads it, is ``state``."""
    set_id = make_set(store, 2)
    if state == SetState.INTERRUPTED:
        forge_set(store, set_id, owner_pid=None, heartbeat=None)  # let go by its owner
    elif state != SetState.RUNNING:
        store.set_job_set_state(set_id, state, finished=NOW)
    assert store.effective_state(store.get_job_set(set_id)) == state
    return set_id


_COUNTS = {SetState.DONE: {JobStatus.DONE: 2}, SetState.PARTIAL: {JobStatus.DONE: 1, JobStatus.FAILED: 1},
           SetState.FAILED: {JobStatus.FAILED: 2}, SetState.CANCELLED: {JobStatus.CANCELLED: 2}}


def _set_calls(old: SetState, new: SetState) -> dict[str, Callable[[Lifecycle, str], Any]]:
    """Every lifecycle call that moves a set from ``old`` to ``new``, by name."""
    calls: dict[str, Callable[[Lifecycle, str], Any]] = {}
    if new == SetState.RUNNING:
        calls["claim"] = lambda life, set_id: life.claim(set_id)
        if old == SetState.RUNNING:
            calls["start"] = lambda life, set_id: life.start(set_id)
    elif new == SetState.INTERRUPTED:
        calls["release"] = lambda life, set_id: life.release(set_id, "quota used up")
        calls["release_if_possible"] = lambda life, set_id: life.release_if_possible(set_id)
    else:
        take_over = old == SetState.INTERRUPTED
        calls["finish"] = lambda life, set_id: life.finish(
            set_id, _COUNTS[new], cancelled=new == SetState.CANCELLED, take_over=take_over)
        if new == SetState.FAILED:
            calls["crashed"] = lambda life, set_id: life.crashed(set_id)
    return calls


ALL_SET_MOVES = [(old, new) for old in SetState for new in SetState]


@pytest.mark.parametrize(("old", "new"), ALL_SET_MOVES, ids=[f"{o}>{n}" for o, n in ALL_SET_MOVES])
def test_a_set_moves_as_the_table_says_and_one_event_carries_each_move(
        store: st.Store, old: SetState, new: SetState) -> None:
    calls = _set_calls(old, new)
    if old != SetState.RUNNING and new == SetState.INTERRUPTED:
        calls = {}  # only the owner lets a set go: release from any other state is no move
    for name, call in calls.items():
        set_id = _set_in(store, old)
        feed = Feed(store)
        if new in SET_MOVES[old]:
            call(feed.life, set_id)
            assert feed.set_moves() == [(old, new)], name
            assert feed.finished() == ([new] if new in SET_FINAL else []), name
            row = store.get_job_set(set_id)
            assert store.effective_state(row) == new, name
            if new in SET_FINAL:
                assert row.finished == FINISHED_AT, name
                assert isinstance(feed.events[-1], JobSetFinished), name
        else:
            row = store.get_job_set(set_id)
            with pytest.raises(IllegalMove, match=f"job set {set_id} is {old}: it cannot become {new}"):
                call(feed.life, set_id)
            assert feed.events == [], name
            assert store.get_job_set(set_id) == row, name


def test_a_set_let_go_on_a_full_disk_is_published_even_when_the_write_fails(
        store: st.Store, monkeypatch: pytest.MonkeyPatch) -> None:
    set_id = _set_in(store, SetState.RUNNING)

    def full(*args: Any, **kwargs: Any) -> SetState:
        raise StoreFullError(f"{store.path}: the disk holding the store is full")

    monkeypatch.setattr(store, "release", full)
    feed = Feed(store)
    assert feed.life.release_if_possible(set_id) is False
    # the set reads interrupted once this process ends (its heartbeat stops); readers hear it now
    assert feed.set_moves() == [(SetState.RUNNING, SetState.INTERRUPTED)]
    assert store.get_job_set(set_id).state == SetState.RUNNING


def test_the_set_table_moves_every_state() -> None:
    assert set(SET_MOVES) == set(SetState)
    # only a set that runs is let go; a set ends only from running or interrupted (or, every
    # job being done, from any state but done)
    assert {old for old, news in SET_MOVES.items() if SetState.INTERRUPTED in news} == {SetState.RUNNING}
    assert {old for old, news in SET_MOVES.items() if news & {SetState.PARTIAL, SetState.FAILED,
                                                              SetState.CANCELLED}} \
        == {SetState.RUNNING, SetState.INTERRUPTED}
    assert SetState.DONE not in SET_MOVES[SetState.DONE]


def test_a_claim_resets_the_jobs_it_is_asked_to_and_refuses_a_set_another_process_runs(
        store: st.Store) -> None:
    set_id = _set_in(store, SetState.PARTIAL)
    store.set_jobs_status(set_id, [0, 1], JobStatus.FAILED, last_error="qubit 3 is offline")
    feed = Feed(store)
    feed.life.claim(set_id, reset={JobStatus.FAILED}, keep={1}, backend="elsewhere")
    assert feed.job_moves() == [(0, JobStatus.FAILED, JobStatus.PENDING)]
    assert feed.set_moves() == [(SetState.PARTIAL, SetState.RUNNING)]
    assert isinstance(feed.events[0], JobsReset)  # the jobs first: the set runs once they are ready
    row = store.get_job_set(set_id)
    assert row.backend == "elsewhere" and row.finished is None
    fresh, kept = store.jobs(set_id)
    assert (fresh.attempts, fresh.last_error, kept.status) == (0, None, JobStatus.FAILED)

    other = make_set(store, 1)
    forge_set(store, other, owner_pid=1)  # pid 1 lives, and is not this process
    with pytest.raises(JobManagerInvalidStateError, match="being run by process 1"):
        Feed(store).life.claim(other)


@pytest.mark.parametrize("counts", [
    dict(zip((JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED), n, strict=True))
    for n in itertools.product((0, 1, 3), repeat=3)])
@pytest.mark.parametrize("cancelled", [False, True])
def test_a_sets_final_state_is_decided_from_its_jobs(counts: dict[JobStatus, int], cancelled: bool) -> None:
    done, failed, stopped = (counts[s] for s in (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED))
    if cancelled and stopped:
        expected = SetState.CANCELLED
    elif failed or stopped:
        expected = SetState.PARTIAL if done else SetState.FAILED
    else:
        expected = SetState.DONE
    assert final_state(counts, cancelled=cancelled) == expected


# -- the feed, held against the store ------------------------------------------------------------


@pytest.mark.parametrize("reattach", [False, True], ids=["local", "service"])
def test_replaying_the_feed_of_a_whole_run_gives_every_jobs_stored_status(
        store: st.Store, reattach: bool) -> None:
    clock = FakeClock()
    answers: dict[str, list[Any]] = {
        "job-1": [TransientBackendError("timeout")] * 8,  # lost track of: run again or settled
        "job-2": [JobStatusInfo(JobStatus.FAILED, "qubit 3 is offline", retryable=True)],
        "job-3": [JobStatusInfo(JobStatus.RUNNING)],
    }
    backend = KeepingBackend(clock, polls_to_finish=2, status_script=answers, lose_answers=[5],
                             submit_script=[None, None, None, TransientBackendError("reset by peer")])
    backend.can_reattach = lambda: reattach  # type: ignore[method-assign]
    set_id = make_set(store, 6)
    bus = EventBus()
    events: list[Event] = []
    bus.subscribe(events.append)
    runner = run_set(store, backend, clock, set_id, RetryPolicy(max_attempts=4), bus)
    assert runner.final_state in SET_FINAL

    status = {job.index: JobStatus.PENDING for job in store.jobs(set_id)}
    moved = 0
    for e in events:
        if isinstance(e, JobStatusChanged):
            assert status[e.job_index] == e.old, e
            status[e.job_index] = e.new
            moved += 1
        elif isinstance(e, JobsReset):
            for index, old in zip(e.job_indices, e.old, strict=True):
                assert status[index] == old, e
                status[index] = JobStatus.PENDING
    assert status == {job.index: job.status for job in store.jobs(set_id)}
    assert moved > 3 * len(status)  # submitting, queued, (running,) done: every step was seen
    assert [(e.old, e.state) for e in events if isinstance(e, JobSetStateChanged)] \
        == [(SetState.RUNNING, SetState.RUNNING), (SetState.RUNNING, runner.final_state)]
