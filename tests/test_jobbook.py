"""The runner's record of its jobs on its own: each job is in exactly one phase, and each
phase gives its jobs in the order the runner takes them."""

from __future__ import annotations

from concurrent.futures import Future

import pytest

from qjm_tui.core import store as st
from qjm_tui.core.jobbook import JobBook, Phase
from qjm_tui.core.reconcile import Settling
from qjm_tui.core.status import JobStatus


def _rows(n: int) -> list[st.JobRow]:
    return [st.JobRow("s", i, i, i + 1, 8, 0, JobStatus.QUEUED, f"b-{i}", f"tag-{i}", 1, 0, None,
                      None, None, 0.0) for i in range(n)]


def _phases(book: JobBook, n: int) -> dict[int, Phase]:
    """Each job's phase, checked against the phase lists: every job in exactly one."""
    listed = {phase: book.in_phase(phase) for phase in Phase}
    for index in range(n):
        holding = [phase for phase, members in listed.items() if index in members]
        assert holding == [book[index].phase], (index, holding)
    assert sum(book.count(phase) for phase in Phase) == n
    return {index: book[index].phase for index in range(n)}


def test_every_job_starts_idle_and_is_in_one_phase_after_any_move() -> None:
    book = JobBook(_rows(6))
    assert _phases(book, 6) == dict.fromkeys(range(6), Phase.IDLE)
    book.move(0, Phase.READY)
    book.move(1, Phase.WAITING, due=3.0)
    book.move(2, Phase.SUBMITTING, future=Future())
    book.move(3, Phase.AT_SERVICE)
    book.move(4, Phase.FETCHING, future=Future())
    book.move(5, Phase.SETTLING, settling=Settling(None, "lost", 0.0))
    assert _phases(book, 6) == dict(enumerate([Phase.READY, Phase.WAITING, Phase.SUBMITTING,
                                               Phase.AT_SERVICE, Phase.FETCHING, Phase.SETTLING]))
    for index, phase in [(0, Phase.AT_SERVICE), (3, Phase.FETCHING), (4, Phase.AT_SERVICE),
                         (5, Phase.READY), (2, Phase.IDLE), (1, Phase.SETTLING)]:
        book.move(index, phase)
        assert _phases(book, 6)[index] == phase
    assert book[2].future is None, "what went with a phase goes when the job leaves it"
    assert book[0].settling is None and book[5].settling is None


def test_ready_jobs_go_in_queue_order_with_jobs_given_back_at_the_front() -> None:
    book = JobBook(_rows(6))
    for index in (2, 3, 4):
        book.move(index, Phase.READY)
    book.move(5, Phase.READY, front=True)
    assert book.in_phase(Phase.READY) == [5, 2, 3, 4]
    assert book.first_ready() == 5
    book.move(3, Phase.IDLE)  # cancelled from the middle of the queue
    assert book.in_phase(Phase.READY) == [5, 2, 4]
    book.requeue([1, 3])
    assert book.in_phase(Phase.READY) == [1, 2, 3, 4, 5], "a requeue puts the whole queue in order"


def test_retries_come_due_in_time_order_and_go_to_the_front_of_the_queue() -> None:
    book = JobBook(_rows(6))
    book.move(0, Phase.READY)
    for index, due in [(4, 2.0), (1, 5.0), (3, 1.0), (5, 9.0)]:
        book.move(index, Phase.WAITING, due=due)
    assert book.next_due() == 1.0
    assert sorted(book.release_due(2.0)) == [3, 4]
    assert book.in_phase(Phase.READY) == [3, 4, 0]
    book.move(5, Phase.IDLE)  # cancelled while waiting
    assert book.next_due() == 5.0 and book.release_due(4.9) == []
    assert book.release_due(5.0) == [1] and book.next_due() is None
    assert _phases(book, 6)[1] == Phase.READY


def test_the_jobs_at_the_service_are_polled_in_the_order_they_got_there() -> None:
    book = JobBook(_rows(5))
    for index in (3, 0, 4):
        book.move(index, Phase.AT_SERVICE)
    assert book.in_phase(Phase.AT_SERVICE) == [3, 0, 4]
    assert book.count(Phase.AT_SERVICE, Phase.FETCHING) == 3


def test_a_cancel_takes_every_ready_and_waiting_job_at_once() -> None:
    book = JobBook(_rows(5))
    book.move(0, Phase.READY)
    book.move(1, Phase.READY)
    book.move(2, Phase.WAITING, due=1.0)
    book.move(3, Phase.AT_SERVICE)
    assert book.take_all(Phase.READY) + book.take_all(Phase.WAITING) == [0, 1, 2]
    assert _phases(book, 5) == {0: Phase.IDLE, 1: Phase.IDLE, 2: Phase.IDLE, 3: Phase.AT_SERVICE,
                                4: Phase.IDLE}
    with pytest.raises(ValueError, match="not at service"):
        book.take_all(Phase.AT_SERVICE)


def test_jobs_sent_back_read_pending_without_a_backend_id() -> None:
    book = JobBook(_rows(3))
    book.reset_rows([1])
    assert (book[1].row.status, book[1].row.backend_job_id) == (JobStatus.PENDING, None)
    assert book[0].row.backend_job_id == "b-0"
    assert [row.index for row in book.rows()] == [0, 1, 2]
