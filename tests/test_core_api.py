"""Every public method of JobManager, ManagedJobSet and ManagedResults, on the local simulator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from qiskit import QuantumCircuit, qpy
from qiskit.providers import JobStatus
from qiskit.result import Result

import qjm_tui
from qjm_tui import (
    IBMQJobManager,
    JobManager,
    JobManagerError,
    JobManagerInputError,
    JobManagerInvalidStateError,
    JobManagerJobNotFound,
    JobManagerTimeoutError,
    JobManagerUnknownJobSet,
    ManagedJob,
    ManagedJobSet,
    ManagedResultDataNotAvailable,
    ManagedResults,
)
from qjm_tui.config import Config
from qjm_tui.core.events import JobSetFinished, JobStatusChanged
from qjm_tui.core.status import JobStatus as Status
from tests.conftest import basis_state, bell


def test_the_original_names_are_exported() -> None:
    assert IBMQJobManager is JobManager
    for name in ("IBMQJobManagerInvalidStateError", "IBMQJobManagerTimeoutError",
                 "IBMQJobManagerJobNotFound", "IBMQJobManagerUnknownJobSet",
                 "IBMQManagedResultDataNotAvailable"):
        assert issubclass(getattr(qjm_tui, name), JobManagerError)
    assert issubclass(ManagedResultDataNotAvailable, JobManagerError)


def test_run_splits_and_combines_results_in_the_global_order(manager: JobManager) -> None:
    bits = [format(i, "03b") for i in range(8)] * 3
    circuits = [basis_state(b, name=f"c{i}") for i, b in enumerate(bits)]
    job_set = manager.run(circuits, backend="aer", name="basis", max_experiments_per_job=5,
                          shots=200)
    assert isinstance(job_set, ManagedJobSet)
    results = job_set.results(timeout=60)
    assert isinstance(results, ManagedResults)
    assert results.success
    assert [len(range(j.start_index, j.end_index + 1)) for j in job_set.managed_jobs()] == [5] * 4 + [4]
    for i, b in enumerate(bits):
        assert results.get_counts(i) == {b: 200}
    # by name and by the circuit itself
    assert results.get_counts("c3") == {bits[3]: 200}
    assert results.get_counts(circuits[9]) == {bits[9]: 200}
    combined = results.combine_results()
    assert isinstance(combined, Result)
    assert combined.get_counts(17) == {bits[17]: 200}
    assert len(combined.results) == len(bits)


def test_identity_name_tags_and_their_updates(manager: JobManager) -> None:
    job_set = manager.run([bell()], backend="aer", name="first", job_tags=["a", "b"], shots=10)
    job_set.wait(60)
    assert job_set.name() == "first"
    assert job_set.tags() == ["a", "b"]
    assert job_set.update_name("second") == "second"
    assert job_set.update_tags(additional_tags=["c"]) == ["a", "b", "c"]
    assert job_set.update_tags(removal_tags=["a"]) == ["b", "c"]
    assert job_set.update_tags(replacement_tags=["z"]) == ["z"]
    again = manager.retrieve_job_set(job_set.job_set_id())
    assert again.name() == "second" and again.tags() == ["z"]
    with pytest.raises(JobManagerInputError):
        job_set.update_name("  ")
    with pytest.raises(JobManagerInputError):
        job_set.update_tags(additional_tags="not-a-list")


def test_statuses_jobs_and_job_lookup(manager: JobManager) -> None:
    circuits = [bell(f"b{i}") for i in range(7)]
    job_set = manager.run(circuits, backend="aer", max_experiments_per_job=3, shots=10)
    job_set.wait(60)
    assert job_set.statuses() == [JobStatus.DONE] * 3
    jobs = job_set.jobs()
    assert all(isinstance(j, ManagedJob) and j.job_id() for j in jobs)
    job, index = job_set.job(4)
    assert (job.index, index) == (1, 1)
    job, index = job_set.job("b6")
    assert (job.index, index) == (2, 0)
    job, index = job_set.job(circuits[0])
    assert (job.index, index) == (0, 0)
    assert job.status() == JobStatus.DONE
    with pytest.raises(JobManagerJobNotFound):
        job_set.job(7)
    with pytest.raises(JobManagerJobNotFound):
        job_set.job("nope")
    assert job_set.error_messages() is None


def test_progress_and_report(manager: JobManager) -> None:
    job_set = manager.run([bell(f"b{i}") for i in range(6)], backend="aer", name="rep",
                          max_experiments_per_job=2, shots=10)
    job_set.wait(60)
    progress = job_set.progress()
    assert (progress.total_jobs, progress.done, progress.failed, progress.pending) == (3, 3, 0, 0)
    assert progress.experiments_done == progress.experiments == 6
    assert progress.eta == 0.0 and progress.fraction == 1.0 and progress.state == "done"
    report = job_set.report()
    assert "Job set name: rep" in report and "Successful jobs: 3" in report
    assert "Detail report:" in report and "experiments: 4-5" in report
    assert "Detail report:" not in job_set.report(detailed=False)
    assert job_set.job_set_id() in manager.report()


def test_job_sets_lists_newest_first_and_filters_by_name(manager: JobManager) -> None:
    a = manager.run([bell()], backend="aer", name="a", shots=5)
    b = manager.run([bell()], backend="aer", name="b", shots=5)
    a.wait(60)
    b.wait(60)
    ids = [s.job_set_id() for s in manager.job_sets()]
    assert ids.index(b.job_set_id()) < ids.index(a.job_set_id())
    assert [s.job_set_id() for s in manager.job_sets(name="a")] == [a.job_set_id()]


def test_retrieve_by_unique_prefix_and_clear_errors(manager: JobManager) -> None:
    job_set = manager.run([bell()], backend="aer", shots=5)
    job_set.wait(60)
    prefix = job_set.job_set_id()[:-3]
    assert manager.retrieve_job_set(prefix).job_set_id() == job_set.job_set_id()
    with pytest.raises(JobManagerUnknownJobSet, match="no job set id starts with"):
        manager.retrieve_job_set("19990101")
    with pytest.raises(JobManagerUnknownJobSet):
        manager.retrieve_job_set("")


def test_ambiguous_prefix_is_an_error(manager: JobManager) -> None:
    first = manager.run([bell()], backend="aer", shots=5)
    second = manager.run([bell()], backend="aer", shots=5)
    first.wait(60)
    second.wait(60)
    with pytest.raises(JobManagerUnknownJobSet, match="ambiguous"):
        manager.retrieve_job_set("20")


def test_memory_statevector_unitary_and_data(manager: JobManager) -> None:
    measured = bell("m")
    job_set = manager.run([measured], backend="aer", shots=16, memory=True)
    results = job_set.results(timeout=60)
    memory = results.get_memory(0)
    assert len(memory) == 16 and set(memory) <= {"00", "11"}
    assert "counts" in results.data(0)

    sv = QuantumCircuit(1, name="sv")
    sv.h(0)
    sv.save_statevector()
    state = manager.run([sv], backend="aer", shots=1).results(timeout=60).get_statevector(0)
    assert np.allclose(np.abs(np.asarray(state)) ** 2, [0.5, 0.5])

    un = QuantumCircuit(1, name="un")
    un.x(0)
    un.save_unitary()
    unitary = manager.run([un], backend="aer", shots=1, method="unitary").results(timeout=60)
    assert np.allclose(np.asarray(unitary.get_unitary(0)), [[0, 1], [1, 0]])
    with pytest.raises(ManagedResultDataNotAvailable):
        results.get_statevector(0)


def test_shots_above_the_backend_maximum_are_merged(tmp_path: Path) -> None:
    config = Config(executor="threads")
    with JobManager(tmp_path / "s.sqlite", config=config) as jm:
        from qjm_tui.backends.local import LocalBackend

        backend = LocalBackend("aer", executor="threads", max_shots=300)
        job_set = jm.run([basis_state("01"), bell("b")], backend=backend, shots=700, memory=True)
        results = job_set.results(timeout=60)
        assert results.get_counts(0) == {"01": 700}
        assert sum(results.get_counts(1).values()) == 700
        assert len(results.get_memory(1)) == 700
        rounds = sorted({j.shots_round for j in job_set.managed_jobs()})
        assert rounds == [0, 1, 2]


def test_bad_input_is_rejected_before_anything_is_stored(manager: JobManager, tmp_path: Path) -> None:
    before = len(manager.job_sets())
    wide = QuantumCircuit(6, name="wide")
    wide.h(range(6))
    wide.measure_all()
    cases = [
        (dict(experiments=[bell()], shots=0), "shots must be a positive integer"),
        (dict(experiments=[bell()], shots=-5), "shots must be a positive integer"),
        (dict(experiments=[bell()], shots=2.5), "shots must be a positive integer"),
        (dict(experiments=[], shots=10), "no experiments"),
        (dict(experiments=[bell(), "not-a-file.qasm"], shots=10), "not-a-file.qasm: no such file"),
        (dict(experiments=[bell(), 42], shots=10), "experiment 1"),
        (dict(experiments=[bell()], max_experiments_per_job=0), "max_experiments_per_job"),
        (dict(experiments=[bell()], job_tags="solo"), "job_tags"),
        (dict(experiments=[bell()], backend="warp-drive"), "unknown backend 'warp-drive'"),
        (dict(experiments=[wide], backend="aer:fake_manila"), "uses 6 qubits but backend"),
        (dict(experiments=[bell()], shots=10, noise_model=object()), "run options"),
    ]
    for kwargs, message in cases:
        kwargs.setdefault("backend", "aer")
        with pytest.raises(JobManagerInputError, match=message):
            manager.run(**kwargs)
    assert len(manager.job_sets()) == before


def test_operations_the_backend_cannot_run_and_transpile(manager: JobManager) -> None:
    qc = QuantumCircuit(2, 2, name="needs-translation")
    qc.h(0)
    qc.cy(0, 1)
    qc.measure([0, 1], [0, 1])
    with pytest.raises(JobManagerInputError, match=r"experiment 0 \('needs-translation'\).*cy.*transpile"):
        manager.run([qc], backend="aer:fake_manila", shots=50)
    job_set = manager.run([qc], backend="aer:fake_manila", shots=50, transpile=True)
    assert sum(job_set.results(timeout=120).get_counts(0).values()) == 50


def test_files_are_loaded_in_order(manager: JobManager, tmp_path: Path) -> None:
    qasm2 = tmp_path / "one.qasm"
    qasm2.write_text('OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\n'
                     'x q[0];\nmeasure q -> c;\n')
    qasm3 = tmp_path / "three.qasm"
    qasm3.write_text('OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] c;\n'
                     'x q[1];\nc = measure q;\n')
    qpy_file = tmp_path / "many.qpy"
    with qpy_file.open("wb") as fh:
        qpy.dump([basis_state("11", "q11"), basis_state("00", "q00")], fh)
    job_set = manager.run([str(qasm2), qasm3, qpy_file], backend="aer", shots=20)
    results = job_set.results(timeout=60)
    assert [results.get_counts(i) for i in range(4)] == [{"01": 20}, {"10": 20}, {"11": 20}, {"00": 20}]
    assert results.get_counts("one") == {"01": 20}
    assert results.get_counts("q00") == {"00": 20}


def test_events_are_published_for_status_changes(manager: JobManager) -> None:
    events = []
    unsubscribe = manager.subscribe(events.append)
    job_set = manager.run([bell(f"b{i}") for i in range(4)], backend="aer", max_experiments_per_job=2,
                          shots=5)
    job_set.wait(60)
    unsubscribe()
    done = [e for e in events if isinstance(e, JobStatusChanged) and e.new == Status.DONE]
    assert sorted(e.job_index for e in done) == [0, 1]
    assert any(isinstance(e, JobSetFinished) and e.state == "done" for e in events)


def test_failed_experiments_raise_clear_errors_and_retry_failed_reruns_them(manager: JobManager) -> None:
    job_set = manager.run([bell(f"b{i}") for i in range(4)], backend="aer", max_experiments_per_job=2,
                          shots=10)
    job_set.wait(60)
    store = manager.store
    # Simulate a job lost to a backend failure after the fact.
    store.set_job_status(job_set.job_set_id(), 1, Status.FAILED, last_error="device went offline")
    with store._tx() as tx:
        tx.execute("DELETE FROM results WHERE job_set_id=? AND experiment>=2", (job_set.job_set_id(),))
    results = job_set.results(partial=True)
    assert not results.success
    assert results.get_counts(0)
    with pytest.raises(ManagedResultDataNotAvailable, match="device went offline"):
        results.get_counts(3)
    with pytest.raises(ManagedResultDataNotAvailable, match="cannot be combined"):
        results.combine_results()
    assert "device went offline" in job_set.error_messages()
    job_set.retry_failed()
    results = job_set.results(timeout=60)
    assert results.success and sum(results.get_counts(3).values()) == 10
    assert job_set.error_messages() is None


def test_cancel_stops_a_running_set(tmp_path: Path) -> None:
    from qjm_tui.backends.local import LocalBackend

    with JobManager(tmp_path / "c.sqlite", config=Config(executor="threads")) as jm:
        backend = LocalBackend("aer", executor="threads", workers=1)
        circuits = [bell(f"b{i}") for i in range(400)]
        job_set = jm.run(circuits, backend=backend, max_experiments_per_job=1, shots=2000)
        assert job_set.cancel() is True
        state = job_set.wait(60)
        assert state in ("cancelled", "done")
        progress = job_set.progress()
        assert progress.cancelled + progress.done == progress.total_jobs
        assert progress.cancelled > 0
        # cancelling a finished set does nothing
        assert job_set.cancel() is False


def test_wait_times_out_with_a_clear_error(tmp_path: Path) -> None:
    from qjm_tui.backends.local import LocalBackend

    with JobManager(tmp_path / "t.sqlite", config=Config(executor="threads")) as jm:
        backend = LocalBackend("aer", executor="threads", workers=1)
        job_set = jm.run([bell(f"b{i}") for i in range(200)], backend=backend,
                         max_experiments_per_job=1, shots=5000)
        with pytest.raises(JobManagerTimeoutError, match="did not finish within"):
            job_set.results(timeout=0.01)
        job_set.cancel()


def test_resume_of_a_running_set_is_refused(manager: JobManager) -> None:
    from qjm_tui.backends.local import LocalBackend

    backend = LocalBackend("aer", executor="threads", workers=1)
    job_set = manager.run([bell(f"b{i}") for i in range(100)], backend=backend,
                          max_experiments_per_job=1, shots=2000)
    with pytest.raises(JobManagerInvalidStateError, match="already running"):
        job_set.resume()
    job_set.cancel()
    job_set.wait(60)


def test_a_qiskit_backend_object_works_and_resume_asks_for_it_again(manager: JobManager) -> None:
    from qiskit.providers.basic_provider import BasicSimulator

    backend = BasicSimulator()
    job_set = manager.run([basis_state("10")], backend=backend, shots=30)
    assert job_set.results(timeout=60).get_counts(0) == {"10": 30}
    assert job_set.backend_spec().startswith("object:")
    manager.store.set_job_status(job_set.job_set_id(), 0, Status.FAILED, last_error="x")
    with pytest.raises(JobManagerError, match="pass the same backend again"):
        job_set.retry_failed()
    job_set.retry_failed(backend=backend)
    assert job_set.results(timeout=60).get_counts(0) == {"10": 30}


def test_results_are_plain_json_in_the_store(manager: JobManager) -> None:
    job_set = manager.run([bell()], backend="aer", shots=8)
    job_set.wait(60)
    stored = manager.store.results(job_set.job_set_id())
    json.dumps(stored)  # nothing pickled, nothing opaque
    assert stored[0][0]["shots"] == 8


def test_counts_are_formatted_exactly_as_qiskit_formats_them(manager: JobManager) -> None:
    from qiskit import ClassicalRegister, QuantumRegister
    from qiskit_aer import AerSimulator

    q = QuantumRegister(3)
    a, b = ClassicalRegister(1, "a"), ClassicalRegister(2, "b")
    qc = QuantumCircuit(q, a, b, name="two-registers")
    qc.x(0)
    qc.h(2)
    qc.measure(q[0], a[0])
    qc.measure([q[1], q[2]], b)
    ours = manager.run([qc], backend="aer", shots=300, seed_simulator=5).results(timeout=60).get_counts(0)
    theirs = AerSimulator().run(qc, shots=300, seed_simulator=5).result().get_counts(0)
    assert ours == theirs
    assert all(" " in key for key in ours)


def test_finished_runs_let_go_of_circuits_and_connections(manager: JobManager) -> None:
    """A long session (the TUI, a notebook) must not pile up circuits or SQLite handles."""
    for _ in range(5):
        job_set = manager.run([bell(f"b{i}") for i in range(4)], backend="aer",
                              max_experiments_per_job=2, shots=5)
        job_set.wait(60)
        assert not manager.running_here(job_set.job_set_id())
        assert manager.active() == []  # finished runners (their circuits and jobs) are dropped
    assert len(manager.store._connections) <= 2


def test_a_thread_that_read_the_store_leaves_no_connection_behind(manager: JobManager) -> None:
    import gc
    import threading

    manager.store.list_job_sets()
    before = len(manager.store._connections)
    readers = [threading.Thread(target=manager.store.list_job_sets) for _ in range(5)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    gc.collect()
    assert len(manager.store._connections) == before
