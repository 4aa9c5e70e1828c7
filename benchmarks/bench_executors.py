"""Benchmark: qjm's local executors against one raw ``AerSimulator().run`` (not a test).

Runs the same list of small circuits, in one process, through:

* ``raw``       — ``AerSimulator().run(circuits, shots=...).result()``, the floor to compare with;
* ``processes`` — ``JobManager.run(..., backend="aer")`` on the warm forkserver process pool;
* ``threads``   — the same on the thread pool;

each ``--repeats`` times in turn (so drift hits every variant alike), and prints the median
wall time of each and the ratios. qjm's figures include everything a user waits for: validating,
splitting, storing every circuit (QPY) and every result in SQLite, and scheduling.

    python benchmarks/bench_executors.py                 # 5000 circuits, 3 repeats
    python benchmarks/bench_executors.py --circuits 1000 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def make_circuits(n: int, seed: int = 1) -> list[Any]:
    """``n`` small random circuits (2-4 qubits, a dozen gates, measured)."""
    from qiskit import QuantumCircuit

    rng = random.Random(seed)
    out = []
    for i in range(n):
        width = rng.randint(2, 4)
        qc = QuantumCircuit(width, width, name=f"c{i}")
        for _ in range(12):
            kind = rng.random()
            q = rng.randrange(width)
            if kind < 0.4:
                qc.ry(rng.uniform(0, 3.14), q)
            elif kind < 0.6:
                qc.h(q)
            else:
                qc.cx(q, (q + 1) % width)
        qc.measure(range(width), range(width))
        out.append(qc)
    return out


def run_raw(circuits: list[Any], shots: int) -> float:
    from qiskit_aer import AerSimulator

    start = time.perf_counter()
    result = AerSimulator().run(circuits, shots=shots).result()
    assert len(result.results) == len(circuits)
    return time.perf_counter() - start


def run_qjm(circuits: list[Any], shots: int, executor: str, folder: Path) -> float:
    from qjm_tui import JobManager
    from qjm_tui.config import Config

    store = folder / f"{executor}-{time.monotonic_ns()}.sqlite"
    start = time.perf_counter()
    with JobManager(store, config=Config(executor=executor)) as jm:
        job_set = jm.run(circuits, backend="aer", shots=shots)
        results = job_set.results(timeout=3600)
        assert len(results.available()) == len(circuits)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--circuits", type=int, default=5000)
    parser.add_argument("--shots", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    from qjm_tui.backends.local import default_workers, shared_process_pool

    circuits = make_circuits(args.circuits)
    print(f"{args.circuits} circuits, {args.shots} shots, {args.repeats} repeats, "
          f"{default_workers()} workers, python {sys.version.split()[0]}")
    shared_process_pool()  # start-up is paid once per process, as in any long-lived session
    run_raw(circuits[:50], args.shots)  # warm Aer in this process too
    times: dict[str, list[float]] = {"raw": [], "processes": [], "threads": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for rep in range(args.repeats):
            times["raw"].append(run_raw(circuits, args.shots))
            times["processes"].append(run_qjm(circuits, args.shots, "processes", folder))
            times["threads"].append(run_qjm(circuits, args.shots, "threads", folder))
            print(f"  repeat {rep + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()))
    med = {k: statistics.median(v) for k, v in times.items()}
    print("medians: " + ", ".join(f"{k} {v:.2f}s" for k, v in med.items()))
    print(f"processes / raw     = {med['processes'] / med['raw']:.2f}")
    print(f"threads / raw       = {med['threads'] / med['raw']:.2f}")
    print(f"threads / processes = {med['threads'] / med['processes']:.2f}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    sys.exit(main())
