"""A process killed inside ``run()`` before every circuit is stored leaves a set that ends
cleanly: the jobs whose circuits are stored run, the rest fail for good with a message naming
the experiments to run again from their source, and no command recommends one that cannot work.

The child process wraps the real ``Store.add_circuit_block`` so that it SIGKILLs itself as it
starts storing the third block: the kill lands at the same point of ``run()`` on any machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

KILLED_WHILE_STORING = """
import os, signal
from qiskit import QuantumCircuit
from qjm_tui import JobManager
from qjm_tui.config import Config
from qjm_tui.core import store as st

real_add = st.Store.add_circuit_block
def add_then_die(self, job_set_id, start, stop, qpy):
    if start >= 4:  # blocks 0-1 and 2-3 are stored; the kill comes with the third
        print(job_set_id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    real_add(self, job_set_id, start, stop, qpy)
st.Store.add_circuit_block = add_then_die

circuits = []
for i in range(10):
    qc = QuantumCircuit(1, 1, name=f"c{i}")
    if i % 2:
        qc.x(0)
    qc.measure(0, 0)
    circuits.append(qc)
JobManager(config=Config(executor="threads")).run(circuits, backend="aer", shots=20,
                                                  max_experiments_per_job=2)
"""


def qjm(home: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, QJM_HOME=str(home), QJM_EXECUTOR="threads",
               QJM_CONFIG=str(home.parent / "no-config.toml"))
    return subprocess.run([sys.executable, "-m", "qjm_tui.cli", *argv], env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def killed_set(tmp_path: Path) -> tuple[Path, str]:
    home = tmp_path / "home"
    env = dict(os.environ, QJM_HOME=str(home))
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(KILLED_WHILE_STORING)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    return home, proc.stdout.strip()


def test_a_set_killed_while_storing_circuits_ends_and_says_what_to_run_again(
        killed_set: tuple[Path, str]) -> None:
    home, job_set_id = killed_set
    show = qjm(home, "show", job_set_id)
    assert show.returncode == 0, show.stderr
    assert "experiments 4-9 (c4, c5, c6, c7, c8, and 1 more) were never stored" in show.stdout

    resume = qjm(home, "resume", job_set_id, "-q")
    assert resume.returncode == 1, resume.stderr
    assert "experiments 4-9" in resume.stderr and "run them again from their source" in resume.stderr
    assert "qjm retry" not in resume.stderr and "qjm resume" not in resume.stderr

    data = json.loads(qjm(home, "show", job_set_id, "--json").stdout)
    assert data["state"] == "partial"
    results = json.loads(qjm(home, "results", job_set_id, "--json").stdout)["experiments"]
    assert [item["counts"] for item in results[:4]] == [{"0": 20}, {"1": 20}, {"0": 20}, {"1": 20}]
    assert all(item["counts"] is None for item in results[4:])

    for command in ("retry", "resume"):
        again = qjm(home, command, job_set_id, "-q")
        assert again.returncode == 1, again.stderr
        assert "experiments 4-9" in again.stderr
        assert "qjm retry" not in again.stderr and "qjm resume" not in again.stderr
    assert json.loads(qjm(home, "show", job_set_id, "--json").stdout)["state"] == "partial"


def test_retry_right_after_the_kill_also_ends_the_set(killed_set: tuple[Path, str]) -> None:
    home, job_set_id = killed_set
    retry = qjm(home, "retry", job_set_id, "-q")
    assert "qjm retry" not in retry.stderr, retry.stderr
    wait = qjm(home, "wait", job_set_id)
    assert "qjm retry" not in wait.stderr, wait.stderr


def test_index_ranges() -> None:
    from qjm_tui.core.jobset import index_ranges

    assert index_ranges([0, 1, 2, 3, 7, 9, 10, 11, 12]) == "0-3, 7, 9-12"
    assert index_ranges([5]) == "5"
    assert index_ranges([]) == ""
