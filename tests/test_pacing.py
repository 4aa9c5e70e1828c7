"""Pacing against a real (emulated) service whose job limit is not published.

The engine's own logic is tested on a fake clock in test_engine.py; here the emulator keeps its
own record of every submission, so the count of refusals is what the service saw.
"""

from __future__ import annotations

from pathlib import Path

from qiskit import QuantumCircuit

from qjm_tui import JobManager
from qjm_tui.backends.emulator import EmulatorBackend
from qjm_tui.config import Config
from qjm_tui.core.engine import RetryPolicy


def test_an_unpublished_limit_costs_a_few_refusals_not_one_per_poll(tmp_path: Path) -> None:
    limit, jobs = 3, 24
    circuit = QuantumCircuit(1, 1)
    circuit.x(0)
    circuit.measure(0, 0)
    spec = (f"emulator:latency=0.01,queue=0,run=0.15,max_jobs={limit},advertise=0,max_per_job=1,"
            f"dir={tmp_path / 'emu'}")
    # limit_wait is long, so no probe for more room falls inside this run: what is counted is
    # what learning the limit costs.
    manager = JobManager(tmp_path / "qjm.sqlite", config=Config(executor="threads"),
                         retry_policy=RetryPolicy(limit_wait=60.0))
    job_set = manager.run([circuit] * jobs, backend=spec, shots=8)
    assert job_set.wait(timeout=60) == "done"
    results = job_set.results()
    assert all(results.get_counts(i) == {"1": 8} for i in range(jobs))
    manager.close()
    service = EmulatorBackend(f"dir={tmp_path / 'emu'}")
    kinds = [s["kind"] for s in service.submissions()]
    # Only the submissions under way when the service first said "limit reached" are refused:
    # no more than the limit itself (before the fix: several refusals per job).
    assert kinds.count("accepted") == jobs
    assert kinds.count("refused") <= limit, kinds
    assert service.max_concurrency() == limit
    service.close()


LEARN_THEN_RUN = """
import sys
from qiskit import QuantumCircuit
from qjm_tui import JobManager
from qjm_tui.config import Config
from qjm_tui.core.engine import RetryPolicy

circuit = QuantumCircuit(1, 1)
circuit.x(0)
circuit.measure(0, 0)
manager = JobManager(sys.argv[1], config=Config(executor="threads"),
                     retry_policy=RetryPolicy(limit_wait=60.0))
job_set = manager.run([circuit] * 9, backend=sys.argv[2], shots=8)
assert job_set.wait(timeout=120) == "done"
print(job_set.job_set_id())
manager.close()
"""


def test_processes_on_one_store_share_the_limit_one_of_them_learned(tmp_path: Path) -> None:
    """A process that starts after another learned the service's limit does not learn it again
    with refusals of its own: the limit is kept in the store."""
    import subprocess
    import sys

    limit = 3
    spec = (f"emulator:latency=0.01,queue=0,run=0.3,max_jobs={limit},advertise=0,max_per_job=1,"
            f"dir={tmp_path / 'emu'}")
    store = tmp_path / "qjm.sqlite"
    repo = Path(__file__).resolve().parents[1]
    env = {**__import__("os").environ, "PYTHONPATH": str(repo), "PYTHONWARNINGS": "ignore"}
    ids = []
    for _ in range(2):  # two processes, one after the other
        proc = subprocess.run([sys.executable, "-c", LEARN_THEN_RUN, str(store), spec], env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        ids.append(proc.stdout.split()[-1])
    service = EmulatorBackend(f"dir={tmp_path / 'emu'}")
    refused = {set_id: sum(1 for s in service.submissions() if s["kind"] == "refused"
                           and any(tag.startswith(f"qjm:{set_id}:") for tag in s["tags"]))
               for set_id in ids}
    service.close()
    assert refused[ids[0]] >= 1, "the first process learned the limit from refusals"
    # Before: the second process learned it again, from refusals of its own.
    assert refused[ids[1]] == 0, refused
