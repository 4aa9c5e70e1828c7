"""The store refuses files it does not own, migrates its own, and writes atomically."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from qjm_tui.core import store as st
from qjm_tui.core.errors import StoreError
from qjm_tui.core.status import JOB_FINAL, JobStatus, SetState


def test_a_new_store_is_wal_and_versioned(tmp_path: Path) -> None:
    store = st.Store(tmp_path / "a" / "qjm.sqlite")
    assert store.journal_mode == "wal"
    meta = dict(sqlite3.connect(store.path).execute("SELECT key, value FROM meta").fetchall())
    assert meta == {"app": "qjm", "schema_version": str(st.SCHEMA_VERSION)}
    store.close()
    st.Store(tmp_path / "a" / "qjm.sqlite").close()  # reopening is fine


def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "qjm.sqlite"
    path.write_bytes(b"my thesis draft\n" * 10)
    with pytest.raises(StoreError, match="not a qjm store"):
        st.Store(path)
    assert path.read_bytes() == b"my thesis draft\n" * 10


def test_a_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE accounts (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="not a qjm store"):
        st.Store(path)


def test_a_store_from_a_newer_qjm_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "qjm.sqlite"
    st.Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer qjm"):
        st.Store(path)


def test_a_directory_in_place_of_the_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "qjm.sqlite").mkdir()
    with pytest.raises(StoreError, match="is a directory"):
        st.Store(tmp_path / "qjm.sqlite")


def test_creating_a_job_set_is_all_or_nothing(tmp_path: Path) -> None:
    store = st.Store(tmp_path / "qjm.sqlite")
    with pytest.raises(sqlite3.IntegrityError):
        store.create_job_set(job_set_id="x", name="x", tags=[], backend="aer", shots=1,
                             run_options={}, experiment_names=["a", "b"],
                             jobs=[(0, 0, 1, 1, 0), (0, 1, 2, 1, 0)],  # duplicate index
                             circuit_blocks=[])
    assert store.list_job_sets() == []
    assert store.jobs("x") == []


def test_storing_a_job_twice_does_not_double_count(tmp_path: Path) -> None:
    store = st.Store(tmp_path / "qjm.sqlite")
    store.create_job_set(job_set_id="x", name="x", tags=[], backend="aer", shots=1, run_options={},
                         experiment_names=["a", "b"], jobs=[(0, 0, 2, 1, 0)], circuit_blocks=[])
    job = store.jobs("x")[0]
    exp = {"shots": 1, "success": True, "data": {"counts": {"0x0": 1}}, "header": {}}
    store.finish_job("x", job, [exp, exp])
    store.finish_job("x", job, [exp, exp])
    assert store.result_count("x") == 2
    assert store.jobs("x")[0].status == JobStatus.DONE


def test_prefix_matching_escapes_wildcards(tmp_path: Path) -> None:
    store = st.Store(tmp_path / "qjm.sqlite")
    for job_set_id in ("ab_1", "abc2"):
        store.create_job_set(job_set_id=job_set_id, name="n", tags=[], backend="aer", shots=1,
                             run_options={}, experiment_names=["a"], jobs=[(0, 0, 1, 1, 0)],
                             circuit_blocks=[])
    assert store.resolve_id("ab_") == "ab_1"
    assert store.resolve_id("abc") == "abc2"
    with pytest.raises(Exception, match="no job set id starts with 'ab%'"):
        store.resolve_id("ab%")


def test_statuses_are_their_plain_strings() -> None:
    assert "done" == JobStatus.DONE and SetState.INTERRUPTED == "interrupted"
    assert str(JobStatus.QUEUED) == "queued" and f"{SetState.PARTIAL:>8}" == " partial"
    assert json.dumps({"state": SetState.DONE}) == '{"state": "done"}'
    assert "failed" in JOB_FINAL and {"done": 1}.get(JobStatus.DONE) == 1


def test_a_second_job_set_with_the_same_id_is_refused_and_the_first_kept(tmp_path: Path) -> None:
    store = st.Store(tmp_path / "s.sqlite")
    make = dict(tags=[], backend="aer", shots=1, run_options={}, experiment_names=["a"],
                jobs=[(0, 0, 1, 1, 0)], circuit_blocks=[])
    store.create_job_set(job_set_id="same", name="first", **make)
    with pytest.raises(StoreError, match="'same' already exists"):
        store.create_job_set(job_set_id="same", name="second", **make)
    assert store.get_job_set("same").name == "first"
