"""Job sets survive their process: retrieval by id from a new process, and resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from qjm_tui import JobManager
from qjm_tui.config import Config
from qjm_tui.core import store as st
from qjm_tui.core.status import JobStatus
from tests.forge import forge_set

REPO = Path(__file__).resolve().parents[1]

SEED_SCRIPT = """
import json, sys
from qiskit import transpile
from qiskit.circuit.random import random_circuit
from qiskit_aer import AerSimulator
from qjm_tui import IBMQJobManager

circs = [random_circuit(num_qubits=5, depth=4, measure=True, seed=i) for i in range(1000)]
circs = transpile(circs, backend=AerSimulator(), seed_transpiler=1)
job_manager = IBMQJobManager()
job_set_foo = job_manager.run(circs, backend="aer", name="foo", max_experiments_per_job=150,
                              seed_simulator=11)
results = job_set_foo.results()
print(json.dumps({"id": job_set_foo.job_set_id(), "jobs": len(job_set_foo.managed_jobs()),
                  "counts5": results.get_counts(5),
                  "all": [results.get_counts(i) for i in range(1000)]}))
"""

RETRIEVE_SCRIPT = """
import json, sys
from qjm_tui import IBMQJobManager
job_set = IBMQJobManager().retrieve_job_set(job_set_id=sys.argv[1])
results = job_set.results()
print(json.dumps({"state": job_set.state(), "counts5": results.get_counts(5),
                  "all": [results.get_counts(i) for i in range(1000)],
                  "attempts": [j.attempts for j in job_set.managed_jobs()]}))
"""


def _python(code: str, *args: str, env: dict[str, str], timeout: float = 300) -> dict:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["QJM_HOME"] = str(home)
    env["PYTHONWARNINGS"] = "ignore"
    return env


def test_seed_scenario_then_retrieval_from_a_new_process(isolated_home: Path) -> None:
    env = _env(isolated_home)
    first = _python(SEED_SCRIPT, env=env)
    assert first["jobs"] == 7  # 1000 circuits at most 150 per job
    assert sum(first["counts5"].values()) == 1024
    second = _python(RETRIEVE_SCRIPT, first["id"], env=env)
    assert second["state"] == "done"
    assert second["counts5"] == first["counts5"]
    assert second["all"] == first["all"]
    assert second["attempts"] == [1] * 7  # nothing was run again


KILLED_SCRIPT = """
import sys
from qiskit import QuantumCircuit
from qjm_tui import JobManager
from qjm_tui.backends.local import LocalBackend

circuits = []
for i in range(60):
    qc = QuantumCircuit(3, 3, name=f"c{i}")
    for q in range(3):
        if (i >> q) & 1:
            qc.x(q)
    qc.measure(range(3), range(3))
    circuits.append(qc)
backend = LocalBackend("aer", executor="threads", workers=1)
# memory=True makes each job return every shot, so the jobs take long enough for the kill to land
# half-way even when the machine is idle
job_set = JobManager().run(circuits, backend=backend, max_experiments_per_job=1, shots=50_000,
                           memory=True)
print(job_set.job_set_id(), flush=True)
job_set.wait()
"""


def test_sigkill_half_way_then_resume_in_a_new_process(isolated_home: Path) -> None:
    env = _env(isolated_home)
    errors = (isolated_home.parent / "killed-stderr.txt").open("w+")
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(KILLED_SCRIPT)], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=errors, text=True)
    try:
        job_set_id = proc.stdout.readline().strip()
        errors.seek(0)
        assert job_set_id, errors.read()
        store = st.Store(isolated_home / "qjm.sqlite")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = store.status_counts(job_set_id).get(JobStatus.DONE, 0)
            if 10 <= done:
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    errors.close()
    done_before = store.status_counts(job_set_id).get(JobStatus.DONE, 0)
    assert 10 <= done_before < 60, (f"the kill must land half-way, it came after {done_before} of 60 "
                                    f"jobs; {store.status_counts(job_set_id)}")
    done_jobs_before = {j.index: j.finished for j in store.jobs(job_set_id) if j.status == JobStatus.DONE}

    with JobManager(isolated_home / "qjm.sqlite", config=Config(executor="threads")) as jm:
        job_set = jm.retrieve_job_set(job_set_id)
        assert job_set.state() == "interrupted", store.get_job_set(job_set_id)
        job_set.resume()
        results = job_set.results(timeout=300)
        assert results.success, job_set.report()
        for i in range(60):
            expected = format(i % 8, "03b")
            assert results.get_counts(i) == {expected: 50_000}
        # exactly one result per experiment, and finished jobs were not run again
        assert store.result_count(job_set_id) == 60
        after = {j.index: j.finished for j in store.jobs(job_set_id)}
        assert all(after[i] == t for i, t in done_jobs_before.items())
        assert job_set.state() == "done"
    store.close()


def test_wait_on_an_interrupted_set_says_to_resume(tmp_path: Path) -> None:
    store = st.Store(tmp_path / "s.sqlite")
    store.create_job_set(job_set_id="dead-1", name="d", tags=[], backend="aer", shots=10,
                         run_options={}, experiment_names=["a"], jobs=[(0, 0, 1, 10, 0)],
                         circuit_blocks=[])
    forge_set(store, "dead-1", owner_pid=2**22 + 12345)  # no such process
    with JobManager(store, config=Config(executor="threads")) as jm:
        job_set = jm.retrieve_job_set("dead-1")
        assert job_set.state() == "interrupted"
        with pytest.raises(Exception, match="call resume"):
            job_set.wait(1)
        # the circuits never reached the store: resume says so instead of guessing
        job_set.resume(backend="aer")
        job_set.wait(30)
        assert "experiment 0 (a) were never stored" in job_set.error_messages()
        assert job_set.state() == "failed"
