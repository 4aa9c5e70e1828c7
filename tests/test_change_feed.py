"""The store's change feed: change numbers, "what changed since", one-query summaries, and the
event bus's numbering."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from qjm_tui.core import store as st
from qjm_tui.core.engine import RetryPolicy
from qjm_tui.core.errors import JobManagerInvalidStateError, TransientBackendError
from qjm_tui.core.events import (
    Event,
    EventBus,
    JobSetDeleted,
    JobSetFinished,
    JobSetRenamed,
    JobSetStateChanged,
    JobStatusChanged,
)
from qjm_tui.core.manager import JobManager
from qjm_tui.core.ports import BackendLimits, ExecutionBackend, JobPayload, JobStatusInfo
from qjm_tui.core.status import JobStatus, SetState
from tests.conftest import bell


def _make(store: st.Store, set_id: str, n_jobs: int = 4, created_offset: float = 0.0) -> None:
    store.create_job_set(job_set_id=set_id, name=f"n-{set_id}", tags=["t"], backend="aer", shots=10,
                         run_options={}, experiment_names=[f"c{i}" for i in range(2 * n_jobs)],
                         jobs=[(i, 2 * i, 2 * i + 2, 10, 0) for i in range(n_jobs)], circuit_blocks=[])
    if created_offset:
        with store._tx() as tx:
            tx.execute("UPDATE job_sets SET created = created + ? WHERE id=?", (created_offset, set_id))


def test_jobs_changed_since_returns_only_what_changed(tmp_path: Path) -> None:
    store = st.Store(tmp_path / "s.sqlite")
    _make(store, "a", n_jobs=10)
    rows, seq = store.jobs_changed_since("a", 0)
    assert [r.index for r in rows] == list(range(10))
    assert store.jobs_changed_since("a", seq) == ([], seq)
    store.set_job_status("a", 3, JobStatus.RUNNING)
    store.set_jobs_status("a", [5, 7], JobStatus.QUEUED)
    rows, seq2 = store.jobs_changed_since("a", seq)
    assert [(r.index, r.status) for r in rows] == [(3, "running"), (5, "queued"), (7, "queued")]
    assert seq2 > seq and all(r.seq > seq for r in rows)
    store.finish_job("a", store.job("a", 3), [{"data": {}}, {"data": {}}])
    rows, _ = store.jobs_changed_since("a", seq2)
    assert [(r.index, r.status) for r in rows] == [(3, "done")]


def test_sets_changed_since_sees_creation_job_changes_updates_and_deletion(tmp_path: Path) -> None:
    store = st.Store(tmp_path / "s.sqlite")
    start = store.change_seq()
    _make(store, "a")
    _make(store, "b")
    changes = store.sets_changed_since(start)
    assert sorted(changes.changed) == ["a", "b"] and changes.deleted == []
    seq = changes.seq
    store.set_job_status("b", 0, JobStatus.RUNNING)  # a job's change marks its set
    assert store.sets_changed_since(seq).changed == ["b"]
    seq = store.change_seq()
    store.rename_job_set("a", "renamed")
    assert store.sets_changed_since(seq).changed == ["a"]
    seq = store.change_seq()
    store.delete_job_set("a")
    changes = store.sets_changed_since(seq)
    assert changes.changed == [] and changes.deleted == ["a"]
    # a heartbeat is not a change anyone needs to repaint for
    seq = store.change_seq()
    store.heartbeat("b")
    assert store.change_seq() == seq


def test_change_numbers_come_from_other_processes_too(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = st.Store(path)
    _make(store, "a")
    before = store.change_seq()
    version = store.data_version()
    # another connection (as another process would) writes
    other = st.Store(path)
    other.set_job_status("a", 1, JobStatus.RUNNING)
    other.close()
    assert store.data_version() != version
    rows, _ = store.jobs_changed_since("a", before)
    assert [r.index for r in rows] == [1]


def test_summaries_are_one_query_with_counts_progress_and_newest_first(tmp_path: Path) -> None:
    store = st.Store(tmp_path / "s.sqlite")
    _make(store, "old", created_offset=-100)
    _make(store, "new")
    store.finish_job("new", store.job("new", 0), [{"data": {}}, {"data": {}}])
    store.set_job_status("new", 1, JobStatus.FAILED, retries=2, last_error="x")
    store.set_job_set_state("old", SetState.DONE)
    statements: list[str] = []
    store._connect().set_trace_callback(statements.append)
    summaries = store.summaries()
    store._connect().set_trace_callback(None)
    assert len(statements) == 1
    assert [s.id for s in summaries] == ["new", "old"]
    new = summaries[0]
    assert new.counts == {"done": 1, "failed": 1, "pending": 2} and new.total_jobs == 4
    assert new.experiments_done == 2 and new.n_experiments == 8 and new.retries == 2
    assert new.fraction == 0.25 and new.tags == ["t"]
    assert summaries[1].state == "done"
    assert [s.id for s in store.summaries(["old"])] == ["old"]


def test_a_version_1_store_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(st._MIGRATIONS[0])
    conn.execute("INSERT INTO meta VALUES ('app', 'qjm'), ('schema_version', '1')")
    conn.execute("INSERT INTO job_sets (id, name, backend, n_experiments, state, created, updated)"
                 " VALUES ('x', 'x', 'aer', 1, 'done', 1.0, 1.0)")
    conn.commit()
    conn.close()
    store = st.Store(path)
    assert store.get_job_set("x").seq == 0
    store.rename_job_set("x", "y")
    assert store.sets_changed_since(0).changed == ["x"]


def test_bus_numbers_events_without_gaps_and_in_order_across_threads() -> None:
    bus = EventBus(clock=lambda: 42.0)
    seen: list[int] = []
    bus.subscribe(lambda e: seen.append(e.seq))

    def publish_many(worker: int) -> None:
        for i in range(200):
            bus.publish(JobStatusChanged("s", i, "pending", "queued"))

    threads = [threading.Thread(target=publish_many, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == list(range(1, 801))
    stamped = bus.publish(JobSetRenamed("s", name="n"))
    assert stamped.seq == 801 and stamped.time == 42.0 and bus.last_seq == 801


# -- the manager's feed: every kind of change, in order, numbered without gaps -----------------


class ScriptedService(ExecutionBackend):
    """A backend whose jobs do what the test says: a first submission that fails for a passing
    reason, jobs that fail for good, and jobs held in the queue until released."""

    spec = "scripted"
    poll_interval = 0.01

    def __init__(self) -> None:
        super().__init__()
        self.flaky_once: set[int] = set()
        self.failing: set[int] = set()
        self.hold = threading.Event()
        self.submitted: list[str] = []

    def limits(self) -> BackendLimits:
        return BackendLimits(max_experiments_per_job=1)

    def submit(self, payload: JobPayload) -> str:
        index = int(payload.tags[-1].rsplit(":", 1)[1])
        if index in self.flaky_once:
            self.flaky_once.discard(index)
            raise TransientBackendError("connection reset by the service")
        self.submitted.append(payload.tags[-1])
        return f"{payload.tags[-1]}#{len(self.submitted)}"

    def status(self, job_id: str) -> JobStatusInfo:
        index = int(job_id.split("#")[0].rsplit(":", 1)[1])
        if index in self.failing:
            return JobStatusInfo(JobStatus.FAILED, "qubit 3 is offline")
        if self.hold.is_set():
            return JobStatusInfo(JobStatus.QUEUED)
        return JobStatusInfo(JobStatus.DONE)

    def result(self, job_id: str) -> list[dict[str, Any]]:
        return [{"shots": 10, "success": True, "data": {"counts": {"0x0": 10}}, "header": {"name": job_id}}]

    def cancel(self, job_id: str) -> bool:
        return True


class CrashingService(ScriptedService):
    """A backend that breaks the runner itself (not a job): the crash path."""

    spec = "crashing"

    def add_listener(self, listener: Any) -> None:
        raise RuntimeError("the adapter's event hook is broken")


def _until(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_feed_carries_every_change_in_order_after_the_store_has_it(tmp_path: Path) -> None:
    service, crashing = ScriptedService(), CrashingService()
    adapters = {"scripted": service, "crashing": crashing}
    ids = iter(f"set-{n}" for n in range(1, 100))
    fixed_time = 1_700_000_000.0

    def manager(path: Path) -> JobManager:
        return JobManager(path, backends=adapters.__getitem__, now=lambda: fixed_time,
                          new_id=lambda: next(ids),
                          retry_policy=RetryPolicy(base_delay=0.01, max_delay=0.01, jitter=0.0))

    jm = manager(tmp_path / "store.sqlite")
    events: list[Event] = []
    mismatches: list[str] = []

    def check_and_keep(event: Event) -> None:
        # Subscribers run right after the write: the store must already show the change.
        store = jm.store
        if isinstance(event, JobStatusChanged):
            stored = store.job(event.job_set_id, event.job_index).status
            if stored != event.new:
                mismatches.append(f"{event}: store has {stored}")
        elif isinstance(event, JobSetRenamed) and store.get_job_set(event.job_set_id).name != event.name:
            mismatches.append(f"{event}: not in the store")
        elif isinstance(event, JobSetDeleted) and any(r.id == event.job_set_id
                                                      for r in store.list_job_sets()):
            mismatches.append(f"{event}: still in the store")
        events.append(event)

    jm.subscribe(check_and_keep)

    # 1. a set with a retried job and a failed one
    service.flaky_once, service.failing = {1}, {2}
    first = jm.run([bell(f"b{i}") for i in range(3)], backend="scripted", name="first", shots=10)
    assert first.job_set_id() == "set-1"
    assert first.wait(30) == SetState.PARTIAL
    # 2. rename, retag, then retry the failed job
    first.update_name("renamed")
    first.update_tags(additional_tags=["keep"])
    service.failing.clear()
    assert first.retry_failed().wait(30) == SetState.DONE
    # 3. cancel a running set
    service.hold.set()
    second = jm.run([bell(f"c{i}") for i in range(2)], backend="scripted", shots=10)
    _until(lambda: sum(isinstance(e, JobStatusChanged) and e.job_set_id == "set-2"
                       and e.new == JobStatus.QUEUED for e in events) == 2)
    assert second.cancel()
    assert second.wait(30) == SetState.CANCELLED
    # 4. cancel an interrupted set: another manager in this process lets its set go
    other = manager(tmp_path / "store.sqlite")
    third = other.run([bell(f"d{i}") for i in range(2)], backend="scripted", shots=10)
    _until(lambda: len(other.store.job_indices("set-3", [JobStatus.QUEUED])) == 2)
    other.detach()
    assert jm.retrieve_job_set("set-3").state() == SetState.INTERRUPTED
    assert jm.retrieve_job_set(third.job_set_id()).cancel()
    service.hold.clear()
    # 5. the crash path, then deletion
    broken = jm.run([bell("e")], backend="crashing", shots=10)
    with pytest.raises(JobManagerInvalidStateError, match="internal error"):
        broken.wait(30)
    first.delete()

    assert mismatches == []
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert {e.time for e in events} == {fixed_time}

    def kinds(set_id: str) -> list[str]:
        out: list[str] = []
        for e in events:
            if e.job_set_id != set_id:
                continue
            name = type(e).__name__
            if isinstance(e, JobStatusChanged):
                name += f":{e.old}>{e.new}"
            elif isinstance(e, (JobSetStateChanged, JobSetFinished)):
                name += f":{e.state}"
            if not out or out[-1] != name:
                out.append(name)
        return out

    one = kinds("set-1")
    assert one[:2] == ["JobSetCreated", "JobSetStateChanged:running"]
    assert "JobRetryScheduled" in one
    assert one.index("JobStatusChanged:queued>failed") < one.index("JobSetStateChanged:partial")
    tail = one[one.index("JobSetFinished:partial") + 1:]
    assert tail[:4] == ["JobSetRenamed", "JobSetTagsChanged", "JobsReset", "JobSetStateChanged:running"]
    assert tail[-3:] == ["JobSetStateChanged:done", "JobSetFinished:done", "JobSetDeleted"]
    two = kinds("set-2")
    assert two[-4:] == ["CancelRequested", "JobStatusChanged:queued>cancelled",
                        "JobSetStateChanged:cancelled", "JobSetFinished:cancelled"]
    # an interrupted set is claimed (it runs here while its jobs are cancelled), then cancelled
    assert kinds("set-3") == ["JobSetStateChanged:running", "CancelRequested",
                              "JobStatusChanged:queued>cancelled", "JobSetStateChanged:cancelled",
                              "JobSetFinished:cancelled"]
    assert kinds("set-4") == ["JobSetCreated", "JobSetStateChanged:failed", "JobSetFinished:failed"]
    jm.close()


def test_a_running_set_cannot_be_deleted(tmp_path: Path) -> None:
    service = ScriptedService()
    service.hold.set()
    jm = JobManager(tmp_path / "store.sqlite", backends=lambda spec: service)
    job_set = jm.run([bell("a")], backend="scripted", shots=10)
    with pytest.raises(JobManagerInvalidStateError, match="running in this process"):
        job_set.delete()
    job_set.cancel()
    job_set.wait(30)
    job_set.delete()
    assert jm.job_sets() == []
    jm.close()
