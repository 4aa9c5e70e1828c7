"""Local simulation on a Dask cluster, and the same counts from every executor.

The cluster is a ``distributed.LocalCluster`` on 127.0.0.1 (in-process workers, TCP), made once
for the module and torn down after it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from qiskit import QuantumCircuit
from qiskit.quantum_info import Statevector

from qjm_tui import JobManager
from qjm_tui.backends.local import LocalBackend
from qjm_tui.backends.registry import resolve_spec
from qjm_tui.config import Config
from qjm_tui.core.errors import BackendConfigurationError
from tests.conftest import basis_state

distributed = pytest.importorskip("distributed")

SHOTS = 400
N = 200


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  host="127.0.0.1", protocol="tcp", dashboard_address=None) as lc:
        yield lc


@pytest.fixture(scope="module")
def client(cluster: Any) -> Iterator[Any]:
    with distributed.Client(cluster, set_as_default=False) as c:
        yield c


def _circuits() -> list[QuantumCircuit]:
    """200 three-qubit circuits with different, known output distributions."""
    out = []
    for i in range(N):
        qc = QuantumCircuit(3, 3, name=f"r{i}")
        for q in range(3):
            qc.ry(0.3 + 0.7 * ((i * (q + 1)) % 5), q)
        qc.cx(0, 1)
        qc.measure(range(3), range(3))
        out.append(qc)
    return out


def _run(tmp_path: Path, name: str, executor: Any) -> list[dict[str, int]]:
    with JobManager(tmp_path / f"{name}.sqlite", config=Config(executor=executor)) as jm:
        results = jm.run(_circuits(), backend="aer", shots=SHOTS).results(timeout=300)
        return [results.get_counts(i) for i in range(N)]


def test_same_distributions_on_threads_processes_and_dask(tmp_path: Path, client: Any) -> None:
    from scipy.stats import chi2

    runs = {
        "threads": _run(tmp_path, "threads", "threads"),
        "processes": _run(tmp_path, "processes", "processes"),
        "dask": _run(tmp_path, "dask", client),
    }
    # Homogeneity: one chi-square over every circuit's 3 x outcomes table.
    stat, dof = 0.0, 0
    for i in range(N):
        tables = [runs[k][i] for k in runs]
        for t in tables:
            assert sum(t.values()) == SHOTS
        total = {k: sum(t.get(k, 0) for t in tables) for k in set().union(*tables)}
        common = [[k] for k, n in total.items() if n >= 5 * len(tables)]
        rest = [k for k, n in total.items() if n < 5 * len(tables)]
        bins = common + ([rest] if sum(total[k] for k in rest) >= 5 * len(tables) else [])
        for keys in bins:
            expected = sum(total[k] for k in keys) / len(tables)
            for t in tables:
                stat += (sum(t.get(k, 0) for k in keys) - expected) ** 2 / expected
        dof += (len(tables) - 1) * (len(bins) - 1)
    assert chi2.sf(stat, dof) > 1e-4, (stat, dof)
    print(f"homogeneity: chi2={stat:.0f} dof={dof}")
    # And each executor agrees with the exact probabilities.
    for name, counts in runs.items():
        fit, fit_dof = 0.0, 0
        for i, circuit in enumerate(_circuits()):
            probs = Statevector(circuit.remove_final_measurements(inplace=False)).probabilities_dict()
            # Outcomes expected fewer than 5 times are pooled, as a chi-square test needs.
            rare = [k for k, p in probs.items() if p * SHOTS < 5]
            bins = [([k], p * SHOTS) for k, p in probs.items() if k not in rare]
            if sum(probs[k] for k in rare) * SHOTS >= 5:
                bins.append((rare, sum(probs[k] for k in rare) * SHOTS))
            for keys, expected in bins:
                fit += (sum(counts[i].get(k, 0) for k in keys) - expected) ** 2 / expected
            fit_dof += len(bins) - 1
        assert chi2.sf(fit, fit_dof) > 1e-4, (name, fit, fit_dof)
        print(f"{name}: chi2={fit:.0f} dof={fit_dof}")


def test_dask_address_in_config(tmp_path: Path, cluster: Any) -> None:
    address = cluster.scheduler_address.removeprefix("tcp://")
    config = Config(executor=f"dask://{address}")
    adapter = resolve_spec("aer", config)
    assert isinstance(adapter, LocalBackend) and adapter.executor_name == f"dask://{address}"
    with JobManager(tmp_path / "s.sqlite", config=config) as jm:
        circuits = [basis_state(format(i % 4, "02b"), f"b{i}") for i in range(12)]
        job_set = jm.run(circuits, backend="aer", shots=20, max_experiments_per_job=3)
        results = job_set.results(timeout=120)
    assert [results.get_counts(i) for i in range(12)] == [{format(i % 4, "02b"): 20} for i in range(12)]
    assert len(job_set.managed_jobs()) == 4


def test_identical_jobs_are_separate_runs(client: Any) -> None:
    """Dask must not merge two jobs with the same circuits into one cached task."""
    from qjm_tui.core.ports import JobPayload

    qc = QuantumCircuit(1, 1)
    qc.h(0)
    qc.measure(0, 0)
    backend = LocalBackend("aer", executor=client)
    ids = [backend.submit(JobPayload([qc], 1000)) for _ in range(4)]
    outcomes = [json.loads(backend.result(i)[0])["data"]["counts"].get("0x0", 0) for i in ids]
    assert len(set(outcomes)) > 1
    assert all(abs(o - 500) < 6 * math.sqrt(250) for o in outcomes)


def test_empty_dask_address_is_clear() -> None:
    with pytest.raises(BackendConfigurationError, match="dask://HOST:PORT"):
        resolve_spec("aer", Config(executor="dask://"))
