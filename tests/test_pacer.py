"""The learned job limit on its own, without a runner: what a refusal teaches, when a probe
for more room may go, and how the limit is shared through the store by every set on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from qjm_tui.core import store as st
from qjm_tui.core.clock import FakeClock
from qjm_tui.core.pacing import OTHERS_EVERY, Pacer
from qjm_tui.core.retry import RetryPolicy
from qjm_tui.core.status import JobStatus
from tests.test_engine import make_set

POLICY = RetryPolicy(limit_wait=5.0, max_delay=60.0)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[st.Store]:
    s = st.Store(tmp_path / "pacing.sqlite")
    yield s
    s.close()


def _pacer(store: st.Store, clock: FakeClock, set_id: str | None = None, backend: str = "scripted") -> Pacer:
    pacer = Pacer(store, backend, set_id or make_set(store, 1), clock, POLICY)
    pacer.start()
    return pacer


def _hold(store: st.Store, set_id: str, n: int, status: JobStatus = JobStatus.QUEUED) -> None:
    """The first ``n`` jobs of the set are with the service."""
    for index in range(n):
        store.set_job_status(set_id, index, status, backend_job_id=f"{set_id}-{index}")


def test_without_a_refusal_no_limit_is_known_and_nothing_is_held_back(store: st.Store) -> None:
    pacer = _pacer(store, FakeClock())
    assert pacer.cap() is None
    assert pacer.allows(held=500, submitting=True)
    assert pacer.probe_due() is None


def test_a_refusal_is_the_limit_until_a_probe_finds_more_room(store: st.Store) -> None:
    clock = FakeClock()
    pacer = _pacer(store, clock)
    pacer.submitting(3, held=3)
    assert pacer.probe is None, "no limit known: no probe"
    assert pacer.ended(3) is False
    pacer.refused(3, probe=False)
    assert pacer.cap() == 3
    assert pacer.allows(held=2, submitting=True), "below the limit a slot is used at once"
    assert not pacer.allows(held=3, submitting=False)
    assert pacer.probe_due() == pytest.approx(5.0)

    clock.t += 5.0
    assert pacer.allows(held=3, submitting=False), "the wait is over: one probe"
    assert not pacer.allows(held=3, submitting=True), "one probe at a time"
    pacer.submitting(7, held=3)
    assert pacer.probe == 7
    pacer.accepted(7, accepted=4)
    assert (pacer.probe, pacer.cap(), pacer.probe_wait) == (None, 4, 5.0)


def test_each_refused_probe_doubles_the_wait_up_to_the_maximum_delay(store: st.Store) -> None:
    clock = FakeClock()
    pacer = _pacer(store, clock)
    pacer.refused(2, probe=False)
    waits = []
    for index in range(6):
        clock.t = pacer.probe_at
        pacer.submitting(index, held=2)
        assert pacer.ended(index) is True
        pacer.refused(2, probe=True)
        waits.append(pacer.probe_at - clock.t)
    assert waits == [10.0, 20.0, 40.0, 60.0, 60.0, 60.0]
    assert pacer.cap() == 2


def test_a_refusal_is_shared_with_every_set_on_the_store_and_a_new_runner_starts_with_it(
        store: st.Store) -> None:
    clock = FakeClock()
    first, second = make_set(store, 4), make_set(store, 4)
    _hold(store, first, 2)
    _hold(store, second, 1)
    store.set_job_status(second, 1, JobStatus.SUBMITTING)  # not accepted yet: not in the limit
    a = _pacer(store, clock, first)
    a.refused(2, probe=False)
    # what the service held when it refused: ours and the other set's accepted job
    assert store.learned_limit("scripted") == 3
    assert store.learned_limit("elsewhere") is None

    third = make_set(store, 4)
    c = _pacer(store, clock, third)
    assert c.shared == 3
    # the others hold 2 + 1 accepted and 1 being submitted: no room for this set
    assert c.cap() == 0
    assert c.probe_due() == pytest.approx(5.0), "the limit is known: no probe before the usual wait"
    assert _pacer(store, clock, make_set(store, 1), backend="elsewhere").cap() is None


def test_what_the_other_sets_hold_is_read_at_most_every_quarter_second(store: st.Store) -> None:
    clock = FakeClock()
    store.learn_limit("scripted", 4)
    other = make_set(store, 4)
    pacer = _pacer(store, clock)
    assert pacer.cap() == 4
    _hold(store, other, 3)
    assert pacer.cap() == 4, "read again only after a while"
    clock.t += OTHERS_EVERY
    assert pacer.cap() == 1
    _hold(store, other, 3, JobStatus.DONE)
    clock.t += OTHERS_EVERY
    assert pacer.cap() == 4, "their jobs ended: the room is ours"


def test_an_acceptance_past_the_shared_limit_raises_it_for_everyone(store: st.Store) -> None:
    clock = FakeClock()
    store.learn_limit("scripted", 2)
    other = make_set(store, 4)
    _hold(store, other, 1)
    pacer = _pacer(store, clock)
    assert pacer.cap() == 1
    pacer.submitting(0, held=1)
    assert pacer.probe == 0
    pacer.accepted(0, accepted=2)
    assert store.learned_limit("scripted") == 3
    assert pacer.probe is None
