"""What lets a set grow to a million experiments: circuits read in one pass and never all held,
blocks cut from the files, names kept in chunks, results read a page at a time, exports that
stream. Each piece is checked for giving the same answers as the simple way; the figures at
scale are in benchmarks/bench_million.py.
"""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import pytest
from qiskit import QuantumCircuit, qpy, transpile

from qjm_tui import JobManager
from qjm_tui.config import Config
from qjm_tui.core import results as results_module
from qjm_tui.core import store as st
from qjm_tui.core.errors import JobManagerInputError
from qjm_tui.core.intake import scan
from qjm_tui.exporting import export, to_json
from tests.conftest import basis_state


def _circuits(n: int, prefix: str = "c") -> list[QuantumCircuit]:
    return [basis_state(format(i % 8, "03b"), f"{prefix}{i}") for i in range(n)]


def _load(data: bytes) -> list[QuantumCircuit]:
    return list(qpy.load(io.BytesIO(data)))


def test_qpy_files_and_generators_are_read_once_and_cut_into_the_same_circuits(tmp_path: Path) -> None:
    circuits = _circuits(23)
    first, second = tmp_path / "a.qpy", tmp_path / "b.qpy"
    with open(first, "wb") as fh:
        qpy.dump(circuits[:10], fh)
    with open(second, "wb") as fh:
        qpy.dump(circuits[12:], fh, version=11)  # an older QPY format, mixed with the current one
    loose = (c for c in circuits[10:12])  # a generator between two files
    scanned = scan([first, *loose, second], target_backend=None, spec="aer", transpile=False)
    try:
        assert scanned.count == 23 and scanned.circuits is None
        assert scanned.files == [(0, 10, "file a.qpy"), (12, 23, "file b.qpy")]
        assert scanned.names.names(0, 23) == [c.name for c in circuits]
        # any block, across files, the spool and QPY versions, holds the circuits in order
        for start, stop in [(0, 23), (3, 7), (8, 14), (9, 12), (11, 23), (22, 23)]:
            assert _load(scanned.blocks.qpy(start, stop)) == circuits[start:stop]
    finally:
        scanned.blocks.close()


def test_a_damaged_qpy_file_is_reported_with_the_circuit_and_nothing_stored(tmp_path: Path,
                                                                            manager: JobManager) -> None:
    path = tmp_path / "cut.qpy"
    buffer = io.BytesIO()
    qpy.dump(_circuits(40), buffer)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) * 3 // 4])
    with pytest.raises(JobManagerInputError, match=r"cut.qpy: not a readable QPY file \(truncated or "
                       r"damaged at circuit \d+"):
        manager.run([path], backend="aer")
    wide = QuantumCircuit(40, name="wide")
    wide.measure_all()
    with open(tmp_path / "wide.qpy", "wb") as fh:
        qpy.dump([*_circuits(1500), wide], fh)
    with pytest.raises(JobManagerInputError, match=r"experiment 1500 \('wide'\): uses 40 qubits"):
        manager.run([tmp_path / "wide.qpy"], backend="aer")
    assert manager.store.list_job_sets() == []


def test_a_streamed_set_runs_without_holding_its_circuits(tmp_path: Path) -> None:
    circuits = _circuits(60)
    path = tmp_path / "many.qpy"
    with open(path, "wb") as fh:
        qpy.dump(circuits, fh)
    with JobManager(tmp_path / "s.sqlite", config=Config(executor="threads")) as jm:
        job_set = jm.run([path], backend="aer", shots=20, max_experiments_per_job=7)
        runner = jm._runner(job_set.job_set_id())
        assert runner is None or runner.circuits is None
        results = job_set.results(timeout=60)
        assert [results.get_counts(i) for i in range(60)] == [
            {format(i % 8, "03b"): 20} for i in range(60)]
        assert results.get_counts("c59") == {"011": 20}
        # a generator transpiled on the way, a chunk at a time
        generated = (c for c in circuits[:5])
        job_set = jm.run(generated, backend="aer", shots=10, transpile=True)
        assert job_set.results(timeout=60).get_counts(4) == {"100": 10}


def test_results_read_a_page_at_a_time_give_what_the_whole_set_gives(
        manager: JobManager, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(results_module, "PAGE", 4)
    monkeypatch.setattr(results_module, "PAGES_KEPT", 2)
    monkeypatch.setattr(results_module, "PARSED_CACHE_SIZE", 3)
    monkeypatch.setattr(results_module, "AVAILABLE_WINDOW", 3)
    circuits = _circuits(19)
    # shots above the backend's maximum: every experiment in three rounds
    from qjm_tui.backends.local import LocalBackend

    backend = LocalBackend("aer", executor="threads", max_shots=40)
    job_set = manager.run(circuits, backend=backend, shots=100, max_experiments_per_job=5)
    results = job_set.results(timeout=60)
    assert results.success and results.available() == list(range(19))
    for i in [18, 0, 7, 8, 3, 18, 12]:
        assert results.get_counts(i) == {format(i % 8, "03b"): 100}
    combined = results.combine_results()
    assert [combined.get_counts(i) for i in range(19)] == [results.get_counts(i) for i in range(19)]
    assert results.count_available() == 19 and results.missing() == (0, None)
    only = job_set.results(experiments=range(5, 10))
    assert only.available() == [5, 6, 7, 8, 9] and not only.success
    assert only.count_available() == 5 and only.missing() == (14, 0)
    assert list(only.iter_available(within=(7, 12))) == [7, 8, 9]
    picked = job_set.results(experiments=[11, 2, 17])
    assert picked.available() == [2, 11, 17] and picked.count_available() == 3


def test_exports_stream_the_same_bytes_the_whole_document_would_be(manager: JobManager) -> None:
    job_set = manager.run(_circuits(9), backend="aer", shots=16, max_experiments_per_job=4)
    job_set.wait(timeout=60)
    text = export(manager, job_set, "json").text
    data = json.loads(text)
    assert text == to_json(data) + "\n"
    assert [e["counts"] for e in data["experiments"]] == [{format(i % 8, "03b"): 16} for i in range(9)]
    text = export(manager, job_set, "qiskit").text
    from qiskit.result import Result

    results = job_set.results()
    expected = results.combine_results().to_dict()
    assert text == to_json(expected) + "\n"
    assert Result.from_dict(json.loads(text)).get_counts(8) == {"000": 16}
    partial = export(manager, job_set, "qiskit", partial=True).text
    assert partial == to_json(results.to_dict()) + "\n"


def test_names_are_read_a_chunk_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(st, "NAME_CHUNK", 5)
    store = st.Store(tmp_path / "s.sqlite")
    names = [f"n{i}" for i in range(23)] + ["n3"]
    store.create_job_set(job_set_id="x", name="x", tags=[], backend="b", shots=1, run_options={},
                         experiment_names=names, jobs=[(0, 0, 24, 1, 0)], circuit_blocks=[])
    chunks = store._connect().execute("SELECT start, stop FROM experiment_names WHERE job_set_id='x'"
                                      " ORDER BY start").fetchall()
    assert chunks == [(0, 5), (5, 10), (10, 15), (15, 20), (20, 24)]
    row = store.get_job_set("x")
    stored = row.experiment_names
    assert len(stored) == 24 and list(stored) == names and stored == names
    assert stored[7] == "n7" and stored[-1] == "n3" and stored[3:6] == ["n3", "n4", "n5"]
    assert stored.index("n3") == 3 and stored.find("n3") == [3, 23] and "n22" in stored
    assert "nope" not in stored
    with pytest.raises(IndexError):
        stored[24]


def test_a_schema_2_store_is_migrated_with_its_names(tmp_path: Path) -> None:
    path = tmp_path / "v2.sqlite"
    conn = sqlite3.connect(path)
    for script in st._MIGRATIONS[:2]:
        conn.executescript(script)
    conn.execute("INSERT INTO meta VALUES ('app', 'qjm'), ('schema_version', '2')")
    conn.execute("INSERT INTO job_sets (id, name, backend, n_experiments, experiment_names, state,"
                 " created, updated) VALUES ('old', 'old', 'aer', 3, '[\"a\", \"b\", \"c\"]', 'done', 1, 1)")
    conn.execute("INSERT INTO jobs (job_set_id, idx, start, stop, status, client_tag, updated)"
                 " VALUES ('old', 0, 0, 3, 'done', 't', 1)")
    conn.commit()
    conn.close()
    store = st.Store(path)
    row = store.get_job_set("old")
    assert list(row.experiment_names) == ["a", "b", "c"] and row.experiment_names.index("c") == 2
    assert store.jobs("old")[0].estimated_seconds is None
    store.delete_job_set("old")
    assert store._connect().execute("SELECT COUNT(*) FROM experiment_names").fetchone()[0] == 0


def test_a_recovered_store_gives_every_set_its_names_in_chunks(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """qjm doctor copies name chunks; a chunk lost with the damage is named "" (indices kept),
    and names a store older than the chunks kept on the set's row are moved into chunks."""
    from qjm_tui.core.repair import _names_in_chunks

    monkeypatch.setattr(st, "NAME_CHUNK", 5)
    path = tmp_path / "s.sqlite"
    store = st.Store(path)
    for set_id, n in (("lost", 12), ("old", 3)):
        store.create_job_set(job_set_id=set_id, name=set_id, tags=[], backend="b", shots=1,
                             run_options={}, experiment_names=[f"n{i}" for i in range(n)],
                             jobs=[(0, 0, n, 1, 0)], circuit_blocks=[])
    store.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DELETE FROM experiment_names WHERE job_set_id='lost' AND start=5")
    conn.execute("DELETE FROM experiment_names WHERE job_set_id='old'")
    conn.execute("""UPDATE job_sets SET experiment_names='["x", "y", "z"]' WHERE id='old'""")
    _names_in_chunks(conn)
    conn.close()
    store = st.Store(path)
    lost = store.get_job_set("lost").experiment_names
    assert list(lost) == ["n0", "n1", "n2", "n3", "n4", "", "", "", "", "", "n10", "n11"]
    assert lost[7] == "" and lost.index("n10") == 10
    assert list(store.get_job_set("old").experiment_names) == ["x", "y", "z"]
    store.close()


def test_blocks_are_handed_out_once_and_held_only_within_a_budget() -> None:
    from qjm_tui.core.manager import _BlockTracker

    tracker = _BlockTracker(keep_bytes=10)
    tracker.add(0, 2, b"abcdef")
    tracker.add(2, 4, b"ghijkl")  # over the budget: only "stored" is kept
    assert tracker.ready(0, 2) == b"abcdef"
    assert tracker.ready(0, 2) == b""  # asked again (a retry): read it from the store
    assert tracker.ready(2, 4) == b""
    assert tracker.ready(4, 6) is None


def test_transpiled_circuits_of_a_file_go_through_the_spool(tmp_path: Path) -> None:
    from qiskit_aer import AerSimulator

    circuit = QuantumCircuit(2, 2, name="needs-work")
    circuit.h(0)
    circuit.ch(0, 1)
    circuit.measure([0, 1], [0, 1])
    path = tmp_path / "raw.qpy"
    with open(path, "wb") as fh:
        qpy.dump([circuit] * 3, fh)
    backend = AerSimulator()
    scanned = scan([path], target_backend=backend, spec="aer", transpile=True)
    try:
        loaded = _load(scanned.blocks.qpy(0, 3))
        assert [c.name for c in loaded] == ["needs-work"] * 3
        assert loaded[0] == transpile(circuit, backend)
    finally:
        scanned.blocks.close()


def test_the_file_size_cap_applies_to_files_read_whole_not_to_streamed_qpy(tmp_path: Path) -> None:
    """max_circuit_file_mb bounds what is read into memory at once: OpenQASM over it is
    refused before it is parsed; a QPY file over it is read a circuit at a time and accepted."""
    circuits = _circuits(4000)
    big_qpy = tmp_path / "big.qpy"
    with open(big_qpy, "wb") as fh:
        qpy.dump(circuits, fh)
    assert big_qpy.stat().st_size > 1_000_000
    scanned = scan(big_qpy, target_backend=None, spec="aer", transpile=False, max_file_mb=1)
    try:
        assert scanned.count == len(scanned.names) == 4000
    finally:
        scanned.blocks.close()
    big_qasm = tmp_path / "big.qasm"
    big_qasm.write_text('OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[1];\n' + "// padding\n" * 100_000)
    with pytest.raises(JobManagerInputError, match="larger than 1 MB"):
        scan(big_qasm, target_backend=None, spec="aer", transpile=False, max_file_mb=1)
