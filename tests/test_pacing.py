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
