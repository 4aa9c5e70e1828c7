"""The store's change feed: change numbers, "what changed since", one-query summaries, and the
event bus's numbering."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from qjm_tui.core import store as st
from qjm_tui.core.events import EventBus, JobSetRenamed, JobStatusChanged
from qjm_tui.core.status import JobStatus, SetState


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
    store.update_job("a", 3, status=JobStatus.RUNNING)
    store.update_jobs("a", [5, 7], status=JobStatus.QUEUED)
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
    store.update_job("b", 0, status=JobStatus.RUNNING)  # a job's change marks its set
    assert store.sets_changed_since(seq).changed == ["b"]
    seq = store.change_seq()
    store.update_job_set("a", name="renamed")
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
    other.update_job("a", 1, status=JobStatus.RUNNING)
    other.close()
    assert store.data_version() != version
    rows, _ = store.jobs_changed_since("a", before)
    assert [r.index for r in rows] == [1]


def test_summaries_are_one_query_with_counts_progress_and_newest_first(tmp_path: Path) -> None:
    store = st.Store(tmp_path / "s.sqlite")
    _make(store, "old", created_offset=-100)
    _make(store, "new")
    store.finish_job("new", store.job("new", 0), [{"data": {}}, {"data": {}}])
    store.update_job("new", 1, status=JobStatus.FAILED, retries=2, last_error="x")
    store.update_job_set("old", state=SetState.DONE)
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
    store.update_job_set("x", name="y")
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
