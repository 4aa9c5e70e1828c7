"""Shared fixtures: an isolated store and config per test, and small circuits."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from qiskit import QuantumCircuit

from qjm_tui import JobManager
from qjm_tui.config import Config
from qjm_tui.core.store import JobRow


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own QJM_HOME and no user config file."""
    home = tmp_path / "qjm-home"
    monkeypatch.setenv("QJM_HOME", str(home))
    monkeypatch.setenv("QJM_CONFIG", str(tmp_path / "no-such-config.toml"))
    for var in ("QJM_BACKEND", "QJM_SHOTS", "QJM_EXECUTOR", "QISKIT_IBM_TOKEN", "QISKIT_IBM_INSTANCE"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store.sqlite"


@pytest.fixture
def manager(store_path: Path) -> JobManager:
    """A manager on the threads executor (no pool start-up cost in small tests)."""
    jm = JobManager(store_path, config=Config(executor="threads"))
    yield jm
    jm.close(cancel=True)


def bell(name: str = "bell", flip: bool = False) -> QuantumCircuit:
    """A Bell-pair circuit; with ``flip`` an X first, so it measures only 01/10."""
    qc = QuantumCircuit(2, 2, name=name)
    if flip:
        qc.x(0)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure([0, 1], [0, 1])
    return qc


def basis_state(bits: str, name: str | None = None) -> QuantumCircuit:
    """A circuit that deterministically measures ``bits`` (qubit 0 is the rightmost bit)."""
    n = len(bits)
    qc = QuantumCircuit(n, n, name=name or f"basis_{bits}")
    for i, bit in enumerate(reversed(bits)):
        if bit == "1":
            qc.x(i)
    qc.measure(range(n), range(n))
    return qc


def executions_per_chunk(records: list[dict[str, Any]], jobs: list[JobRow]
                         ) -> Counter[tuple[str, int, int]]:
    """How many times the emulated service ran each chunk (a job's experiment range) to a good
    end, from its record (``EmulatorBackend.jobs()``) and the store's job rows.

    A job cancelled before its finish time, planned to fail, or planned to lose its result
    delivered nothing; every other accepted job that reached its finish time ran its chunk.
    """
    ranges = {job.client_tag: (job.job_set_id, job.start, job.stop) for job in jobs}
    now = time.time()
    runs: Counter[tuple[str, int, int]] = Counter()
    for record in records:
        if record["fate"] != "ok" or record["cancelled_at"] is not None or record["finish_at"] > now:
            continue
        for tag in record["tags"]:
            if tag in ranges:
                runs[ranges[tag]] += 1
    return runs


@pytest.fixture(scope="session")
def busy_store(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """The busy store (tests/snapshots/busy.py), built once per session by the real core; its
    running sets run until the session ends. Tests take copies (``busy_store.copy(folder)``)."""
    from tests.snapshots.busy import build

    busy = build(tmp_path_factory.mktemp("busy") / "store")
    yield busy
    busy.close()
