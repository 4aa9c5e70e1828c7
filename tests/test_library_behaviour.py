"""The library behaves as users of the original IBMQJobManager expect, method by method."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from collections import Counter
from pathlib import Path

import pytest
from qiskit import QuantumCircuit
from qiskit.exceptions import QiskitError
from qiskit.providers import JobStatus

import qjm_tui
from qjm_tui import JobManager
from qjm_tui.backends.registry import resolve_spec
from qjm_tui.config import Config
from qjm_tui.core.errors import (
    JobManagerInvalidStateError,
    JobManagerUnknownJobSet,
    ManagedResultDataNotAvailable,
)
from tests.conftest import basis_state, bell

REPO = Path(__file__).resolve().parents[1]


def _wide(n: int = 22) -> QuantumCircuit:
    qc = QuantumCircuit(n, n, name="wide")
    qc.h(range(n))
    qc.measure(range(n), range(n))
    return qc


# -- 1. errors are Qiskit errors ---------------------------------------------------------------


def test_every_job_manager_error_is_a_qiskit_error(manager: JobManager) -> None:
    exported = [getattr(qjm_tui, name) for name in qjm_tui.__all__]
    errors = [e for e in exported if isinstance(e, type) and issubclass(e, Exception)]
    assert len(errors) >= 12 and all(issubclass(e, QiskitError) for e in errors)
    with pytest.raises(QiskitError) as caught:
        manager.retrieve_job_set("no-such-set")
    assert isinstance(caught.value, JobManagerUnknownJobSet)
    # the message reads as a sentence, not as QiskitError's quoted repr
    assert str(caught.value).startswith("no job set id starts with 'no-such-set'")


# -- 2. a failed experiment inside a finished job ----------------------------------------------


def test_an_experiment_that_failed_inside_a_finished_job_fails_the_job(manager: JobManager) -> None:
    # Aer runs the small circuits and fails the wide one (its statevector needs 64 MB).
    job_set = manager.run([bell("a"), bell("b"), bell("c"), _wide()], backend="aer", shots=20,
                          max_experiments_per_job=2, max_memory_mb=1, method="statevector")
    assert job_set.wait(120) == "partial"
    statuses = job_set.statuses()
    assert statuses == [JobStatus.DONE, JobStatus.ERROR]
    errors = job_set.error_messages()
    assert errors is not None and "experiment 3 failed" in errors and "memory" in errors
    report = job_set.report()
    assert "Failed jobs: 1" in report and "experiment 3 failed" in report
    results = job_set.results()
    assert not results.success
    assert sum(results.get_counts(0).values()) == 20
    with pytest.raises(ManagedResultDataNotAvailable, match="its job 1 was failed"):
        results.get_counts(2)  # in the failed job: only given with partial=True
    partial = job_set.results(partial=True)
    assert sum(partial.get_counts(2).values()) == 20
    with pytest.raises(ManagedResultDataNotAvailable, match="experiment 3 failed on the backend"):
        partial.get_counts(3)


def test_a_set_whose_only_job_lost_an_experiment_reads_failed(manager: JobManager) -> None:
    job_set = manager.run([bell("a"), _wide()], backend="aer", shots=10, max_memory_mb=1,
                          method="statevector", max_experiments_per_job=2)
    assert job_set.wait(120) == "failed"
    assert [j.store_status() for j in job_set.managed_jobs()] == ["failed"]
    assert sum(job_set.results(partial=True).get_counts("a").values()) == 10


# -- 3. results explain themselves from their own snapshot ---------------------------------------


def test_an_early_snapshot_says_it_is_a_snapshot(manager: JobManager, tmp_path: Path) -> None:
    spec = f"emulator:latency=0,queue=0.6,run=0.1,max_jobs=0,dir={tmp_path / 'emu'}"
    job_set = manager.run([basis_state("01"), basis_state("10")], backend=spec, shots=5,
                          max_experiments_per_job=1)
    early = job_set.results(wait=False)
    job_set.wait(60)
    with pytest.raises(ManagedResultDataNotAvailable) as caught:
        early.get_counts(1)
    message = str(caught.value)
    assert "when these results were read" in message and "call results() again" in message
    assert job_set.results().get_counts(1) == {"10": 5}


def test_partial_results_wait_for_every_job_as_the_original_did(manager: JobManager, tmp_path: Path) -> None:
    spec = f"emulator:latency=0,queue=0.3,run=0.1,max_jobs=0,dir={tmp_path / 'emu'}"
    job_set = manager.run([basis_state("1"), basis_state("0")], backend=spec, shots=5,
                          max_experiments_per_job=1)
    results = job_set.results(partial=True)
    assert job_set.state() == "done" and results.success


# -- 4. run, exit, retrieve later --------------------------------------------------------------

_RUN_AND_END = """
import sys
from qiskit import QuantumCircuit
from qjm_tui import JobManager
from qjm_tui.config import Config

circuits = []
for i in range(6):
    qc = QuantumCircuit(1, 1, name=f"c{i}")
    if i % 2:
        qc.x(0)
    qc.measure(0, 0)
    circuits.append(qc)
manager = JobManager(sys.argv[1], config=Config(executor="threads"))
job_set = manager.run(circuits, backend=sys.argv[2], max_experiments_per_job=1, shots=7)
print(job_set.job_set_id(), flush=True)
"""


def _run_and_end(store: Path, spec: str) -> tuple[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(_RUN_AND_END), str(store), spec],
                          capture_output=True, text=True, timeout=120, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip(), proc.stderr


def test_a_script_that_runs_locally_and_ends_still_stores_every_result(tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite"
    set_id, stderr = _run_and_end(store, "aer")
    assert f"waiting for job set {set_id} to finish" in stderr
    manager = JobManager(store, config=Config(executor="threads"))
    job_set = manager.retrieve_job_set(set_id)
    assert job_set.state() == "done"
    counts = job_set.results()
    assert [counts.get_counts(i) for i in range(6)] == [{"0": 7}, {"1": 7}] * 3
    manager.close()


def test_a_script_on_a_remote_backend_ends_and_results_reattach_later(tmp_path: Path) -> None:
    store, emu_dir = tmp_path / "s.sqlite", tmp_path / "emu"
    spec = f"emulator:latency=0,queue=0.5,run=0.5,max_jobs=0,dir={emu_dir}"
    set_id, stderr = _run_and_end(store, spec)
    assert f"job set {set_id}:" in stderr and "go on at emulator" in stderr
    manager = JobManager(store, config=Config(executor="threads"))
    job_set = manager.retrieve_job_set(set_id)
    assert job_set.state() == "interrupted"
    results = job_set.results(timeout=60)  # reattaches by itself
    assert results.success and results.get_counts(1) == {"1": 7}
    emulator = resolve_spec(spec)
    accepted = Counter(e["tags"][-1] for e in emulator.submissions() if e["kind"] == "accepted")
    assert len(accepted) == 6 and set(accepted.values()) == {1}, accepted  # none ran twice
    manager.close()


def test_ctrl_c_while_waiting_at_exit_leaves_a_warning_saying_how_to_finish(tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite"
    spec = f"emulator:latency=0,queue=30,run=0.1,max_jobs=0,dir={tmp_path / 'emu'}"
    # A backend that cannot reattach is waited on to the end: make the emulator look local.
    script = _RUN_AND_END.replace("job_set = manager.run(", (
        "from qjm_tui.backends import emulator\n"
        "emulator.EmulatorBackend.can_reattach = lambda self: False\n"
        "job_set = manager.run("))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), str(store), spec],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    set_id = child.stdout.readline().strip()
    assert set_id, child.stderr.read()
    line = child.stderr.readline()
    assert "waiting for job set" in line, line
    child.send_signal(signal.SIGINT)
    _, rest = child.communicate(timeout=60)
    assert f"job set {set_id} is interrupted" in rest and f"qjm resume {set_id}" in rest


# -- 5. retrieve_jobs and the backend's own jobs ------------------------------------------------


def test_retrieve_jobs_and_managed_jobs_reach_the_backend_job(manager: JobManager, tmp_path: Path) -> None:
    spec = f"emulator:latency=0,queue=0.1,run=0.1,max_jobs=0,dir={tmp_path / 'emu'}"
    job_set = manager.run([basis_state("1"), basis_state("0")], backend=spec, shots=9,
                          max_experiments_per_job=1)
    job_set.wait(60)
    assert job_set.retrieve_jobs() is None
    backend_job = job_set.managed_jobs()[0].job()
    assert backend_job is not None and backend_job.job_id() == job_set.managed_jobs()[0].job_id()
    assert backend_job.status() == JobStatus.DONE
    assert backend_job.result().get_counts(0) == {"1": 9}
    assert job_set.managed_jobs()[1].result().get_counts(1) == {"0": 9}


def test_cancelling_one_job_cancels_only_it_and_it_is_not_resubmitted(manager: JobManager,
                                                                       tmp_path: Path) -> None:
    spec = f"emulator:latency=0,queue=2,run=0.1,max_jobs=0,dir={tmp_path / 'emu'}"
    job_set = manager.run([basis_state("1"), basis_state("0")], backend=spec, shots=3,
                          max_experiments_per_job=1)
    deadline = time.monotonic() + 30
    while job_set.managed_jobs()[1].job_id() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    backend_job = job_set.managed_jobs()[1].job()
    assert backend_job is not None and backend_job.cancel()
    assert job_set.wait(60) == "partial"
    assert [j.store_status() for j in job_set.managed_jobs()] == ["done", "cancelled"]
    emulator = resolve_spec(spec)
    assert sum(1 for e in emulator.submissions() if e["kind"] == "accepted") == 2


# -- 6. smaller differences -------------------------------------------------------------------


def test_update_tags_with_no_arguments_raises(manager: JobManager) -> None:
    job_set = manager.run([bell()], backend="aer", shots=5, job_tags=["a"])
    with pytest.raises(JobManagerInvalidStateError, match="update_tags"):
        job_set.update_tags()
    assert job_set.update_tags(replacement_tags=[]) == []
    job_set.wait(60)


def test_job_sets_and_report_cover_this_manager_unless_asked_for_the_store(manager: JobManager,
                                                                          store_path: Path) -> None:
    other = JobManager(store_path, config=Config(executor="threads"))
    theirs = other.run([bell()], backend="aer", shots=5, name="theirs")
    theirs.wait(60)
    mine = manager.run([bell()], backend="aer", shots=5, name="mine")
    mine.wait(60)
    assert [s.name() for s in manager.job_sets()] == ["mine"]
    assert "theirs" not in manager.report()
    assert {s.name() for s in manager.job_sets(whole_store=True)} == {"mine", "theirs"}
    assert "theirs" in manager.report(whole_store=True)
    manager.retrieve_job_set(theirs.job_set_id())
    assert {s.name() for s in manager.job_sets()} == {"mine", "theirs"}
    other.close()


def test_job_share_level_is_accepted_with_a_deprecation_warning(manager: JobManager) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        job_set = manager.run([bell()], backend="aer", shots=5, job_share_level="project")
    assert any(issubclass(w.category, DeprecationWarning) and "job_share_level" in str(w.message)
               for w in caught)
    assert job_set.wait(60) == "done"
    assert "job_share_level" not in manager.store.get_job_set(job_set.job_set_id()).run_options


def test_a_queued_job_counts_as_pending_in_the_report(manager: JobManager, tmp_path: Path) -> None:
    spec = f"emulator:latency=0,queue=30,run=0.1,max_jobs=0,dir={tmp_path / 'emu'}"
    job_set = manager.run([bell()], backend=spec, shots=5)
    deadline = time.monotonic() + 30
    while job_set.managed_jobs()[0].store_status() != "queued" and time.monotonic() < deadline:
        time.sleep(0.05)
    report = job_set.report()
    assert "Pending jobs: 1" in report and "Running jobs: 0" in report
    job_set.cancel()


# -- 7. the loose-token warning ----------------------------------------------------------------


@pytest.mark.parametrize("python_warnings", ["", "ignore"])
def test_a_readable_config_with_a_token_is_warned_about_once(tmp_path: Path, python_warnings: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[ibm]\ntoken = "not-a-real-token"\n')
    config.chmod(0o644)
    # PYTHONWARNINGS=ignore, as many Qiskit users set it, used to hide the warning.
    env = {**os.environ, "PYTHONPATH": str(REPO), "QJM_CONFIG": str(config),
           "QJM_HOME": str(tmp_path / "home"), "QISKIT_IBM_TOKEN": "another-token",
           "PYTHONWARNINGS": python_warnings}
    proc = subprocess.run([sys.executable, "-m", "qjm_tui.cli", "ls"], capture_output=True,
                          text=True, env=env, timeout=60, cwd=REPO)
    assert proc.stderr.count("can be read by other users") == 1, proc.stderr
    assert f"chmod 600 {config}" in proc.stderr
    assert "not-a-real-token" not in proc.stderr + proc.stdout
