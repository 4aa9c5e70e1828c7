"""What the tests through the local IBM Quantum service share: starting it with the client's
environment pointed at it, a fast retry policy, circuits whose results are known, and the
witness checks (every chunk ran once, results right)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from qiskit import QuantumCircuit

from qjm_tui import JobManager
from qjm_tui.config import Config
from qjm_tui.core.engine import RetryPolicy
from qjm_tui.core.jobset import ManagedJobSet
from qjm_tui.core.store import JobRow
from qjm_tui.testing.ibm_service import IBMQuantumService

DEVICE = "ibmq_manila"
#: a spec that asks the state of jobs often, as a test wants
SPEC = f"ibm-runtime:{DEVICE},poll=0.05"
#: retries and probes in tenths of a second, not seconds
FAST = RetryPolicy(max_attempts=6, base_delay=0.05, max_delay=0.5, limit_wait=0.3, max_poll_errors=4)


def basis(i: int, width: int = 3) -> QuantumCircuit:
    """A circuit that measures the bits of ``i % 2**width`` (with the device's noise, mostly)."""
    qc = QuantumCircuit(width, width, name=f"c{i}")
    for q in range(width):
        if ((i % (1 << width)) >> q) & 1:
            qc.x(q)
    qc.measure(range(width), range(width))
    return qc


def expected(i: int, width: int = 3) -> str:
    return format(i % (1 << width), f"0{width}b")


StartService = Callable[..., IBMQuantumService]


@pytest.fixture(name="start_ibm")
def start_ibm_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[StartService]:
    """Start a local IBM Quantum service (``fake_manila`` as ``ibmq_manila``; keyword arguments
    go to :class:`IBMQuantumService`) and point this process's environment at it."""
    started: list[IBMQuantumService] = []

    def start(**kwargs: Any) -> IBMQuantumService:
        kwargs.setdefault("job_seconds", 0.05)
        service = IBMQuantumService(kwargs.pop("devices", ["fake_manila"]), **kwargs).start()
        started.append(service)
        for key, value in service.environ().items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        return service

    yield start
    for service in started:
        service.stop()


def manager(path: Path, policy: RetryPolicy = FAST) -> JobManager:
    """A manager on a store at ``path``, with the fast retry policy."""
    return JobManager(path, config=Config(executor="threads"), retry_policy=policy)


def one_circuit_jobs(jm: JobManager, n: int, spec: str = SPEC) -> ManagedJobSet:
    """Run ``n`` basis-state circuits as ``n`` jobs of one circuit each (100 shots, transpiled)."""
    return jm.run([basis(i) for i in range(n)], backend=spec, transpile=True, shots=100,
                  max_experiments_per_job=1)


def runs(ibm: IBMQuantumService, jobs: list[JobRow]) -> dict[int, int]:
    """How many times the service ran each job's circuits to the end, by job index."""
    by_tag = ibm.runs_by_tag("qjm:")
    return {job.index: by_tag.get(job.client_tag, 0) for job in jobs}


def assert_done_once(ibm: IBMQuantumService, jm: JobManager, set_id: str, width: int = 3) -> None:
    """Every job of the set is done, its chunk ran exactly once on the service, and every
    experiment's most frequent outcome is the one its circuit prepares."""
    jobs = jm.store.jobs(set_id)
    assert [j.status for j in jobs] == ["done"] * len(jobs), [(j.index, j.status, j.last_error) for j in jobs]
    assert set(runs(ibm, jobs).values()) == {1}, runs(ibm, jobs)
    results = jm.retrieve_job_set(set_id).results(timeout=5)
    for job in jobs:
        for i in range(job.start, job.stop):
            counts = results.get_counts(i)
            assert max(counts, key=counts.get) == expected(i, width), (i, counts)
