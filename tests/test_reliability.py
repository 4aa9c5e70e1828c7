"""No job runs twice: resume reconciles with every job the service holds for a job, status errors
lead to a cancel and a reconcile instead of a blind resubmission, an unreachable status endpoint
fails the job instead of multiplying work, and nothing is submitted after a cancel."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from qiskit import QuantumCircuit

from qjm_tui import JobManager
from qjm_tui.backends.emulator import EmulatorBackend
from qjm_tui.config import Config
from qjm_tui.core import store as st
from qjm_tui.core.circuits import circuits_to_qpy
from qjm_tui.core.engine import RetryPolicy
from qjm_tui.core.ports import JobPayload
from qjm_tui.core.status import JobStatus, SetState
from tests.conftest import basis_state, executions_per_chunk
from tests.forge import forge_set

FAST = RetryPolicy(max_attempts=10, base_delay=0.05, max_delay=0.5, limit_wait=0.1, max_poll_errors=8)


def basis_circuits(n: int) -> list[QuantumCircuit]:
    """``n`` circuits whose counts are one known bitstring each: experiment i measures i mod 8."""
    return [basis_state(format(i % 8, "03b"), name=f"c{i}") for i in range(n)]


# -- item 1: resume reconciles with every job the service holds for the tag --------------------


@pytest.mark.parametrize(("earlier", "new_submissions", "cancelled"), [
    (["fail", "ok"], 0, 0),        # a retry had succeeded after a failed attempt: adopt it
    (["fail", "ok", "ok"], 0, 1),  # two attempts still queued: adopt the newest, cancel the other
    (["fail"], 1, 0),              # only a failed attempt: nothing can finish, submit once
    ([], 1, 0),                    # the service never took it: submit once
])
def test_resume_reconciles_with_every_job_the_service_holds_for_the_tag(
        tmp_path: Path, earlier: list[str], new_submissions: int, cancelled: int) -> None:
    service = tmp_path / "service"
    spec = f"emulator:dir={service},latency=0,queue=0.3,run=0.05,max_jobs=0"
    circuits = basis_circuits(2)
    store = st.Store(tmp_path / "store.sqlite")
    # The store as a process killed while submitting leaves it: the job's intent is written
    # (submitting, second attempt), its backend id never was.
    store.create_job_set(job_set_id="crashed-1", name="crashed", tags=[], backend=spec, shots=20,
                         run_options={}, experiment_names=[c.name for c in circuits],
                         jobs=[(0, 0, 2, 20, 0)], circuit_blocks=[(0, 2, circuits_to_qpy(circuits))])
    [job] = store.jobs("crashed-1")
    store.set_job_status("crashed-1", 0, JobStatus.SUBMITTING, attempts=len(earlier) or 1)
    forge_set(store, "crashed-1", owner_pid=2**22 + 12345)  # no such process
    for fate in earlier:
        # A failed attempt has ended by the time the new process looks; good ones are queued.
        attempt = EmulatorBackend(f"dir={service},latency=0,max_jobs=0," + (
            "queue=0,run=0,fail=1" if fate == "fail" else "queue=0.5,run=0.05"))
        attempt.submit(JobPayload(circuits, 20, {}, [job.client_tag]))

    with JobManager(store, config=Config(executor="threads"), retry_policy=FAST) as manager:
        job_set = manager.retrieve_job_set("crashed-1")
        assert job_set.state() == SetState.INTERRUPTED
        assert job_set.resume().wait(60) == SetState.DONE
        results = job_set.results()
        assert [results.get_counts(i) for i in range(2)] == [{"000": 20}, {"001": 20}]

    emulator = EmulatorBackend(f"dir={service}")
    records = emulator.jobs()
    assert len(records) == len(earlier) + new_submissions
    assert sum(1 for r in records if r["cancelled_at"] is not None) == cancelled
    assert executions_per_chunk(emulator.jobs(), store.jobs("crashed-1")) == {("crashed-1", 0, 2): 1}
    store.close()


# -- item 2: status errors lead to a cancel and a reconcile, never to a blind resubmission ------


def test_eighty_percent_status_errors_run_no_chunk_twice(tmp_path: Path) -> None:
    service = tmp_path / "service"
    spec = (f"emulator:dir={service},latency=0.01,queue=0.2,run=0.1,max_jobs=0,max_per_job=2,"
            "status_error=0.8,seed=5")
    with JobManager(tmp_path / "store.sqlite", config=Config(executor="threads"),
                    retry_policy=FAST) as manager:
        job_set = manager.run(basis_circuits(20), backend=spec, shots=16)
        assert job_set.wait(120) == SetState.DONE, job_set.error_messages()
        results = job_set.results()
        assert all(results.get_counts(i) == {format(i % 8, "03b"): 16} for i in range(20))
        jobs = manager.store.jobs(job_set.job_set_id())
    runs = executions_per_chunk(EmulatorBackend(f"dir={service}").jobs(), jobs)
    assert len(runs) == 10
    ran_twice = sum(1 for n in runs.values() if n > 1)
    assert ran_twice == 0, runs


def test_a_status_endpoint_that_is_always_down_fails_the_jobs_without_resubmitting(
        tmp_path: Path) -> None:
    service = tmp_path / "service"
    spec = (f"emulator:dir={service},latency=0.01,queue=0.1,run=0.05,max_jobs=0,max_per_job=2,"
            "status_error=1")
    policy = RetryPolicy(max_attempts=4, base_delay=0.05, max_delay=0.2, max_poll_errors=4)
    with JobManager(tmp_path / "store.sqlite", config=Config(executor="threads"),
                    retry_policy=policy) as manager:
        job_set = manager.run(basis_circuits(20), backend=spec, shots=16)
        assert job_set.wait(120) == SetState.FAILED
        errors = [j.last_error for j in manager.store.jobs(job_set.job_set_id())]
    assert len(EmulatorBackend(f"dir={service}").jobs()) == 10  # one per job, never more
    assert all(e and "status" in e and "not submitted again" in e for e in errors), errors
    # and says what the service answered, so whoever reads it knows why
    assert all("the last said: emulated service error: status query timed out" in e for e in errors), errors


# -- item 5: nothing is submitted after a cancel -----------------------------------------------


def test_nothing_is_accepted_after_cancel_returns(tmp_path: Path) -> None:
    service = tmp_path / "service"
    spec = f"emulator:dir={service},latency=0.02,queue=0,run=0,max_jobs=0,max_per_job=1"
    emulator = EmulatorBackend(f"dir={service}")
    with JobManager(tmp_path / "store.sqlite", config=Config(executor="threads")) as manager:
        job_set = manager.run(basis_circuits(300), backend=spec, shots=8)
        deadline = time.monotonic() + 60
        while len(emulator.jobs()) < 20:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert job_set.cancel()
        cancelled_at = time.time()
        assert job_set.wait(60) == SetState.CANCELLED
    accepted = [r["accepted"] for r in emulator.jobs()]
    assert len(accepted) < 300
    late = [t - cancelled_at for t in accepted if t > cancelled_at]
    assert late == [], f"{len(late)} jobs accepted after the cancel"
