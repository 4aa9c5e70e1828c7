"""What qjm's machinery costs: the seed's circuits through qjm and through raw Aer, side by side.

Run:  python -m benchmarks.bench_overhead [--circuits 2000] [--repeats 5]

Both sides get the same 2,000 pre-transpiled random 5-qubit depth-4 measured circuits at 1024
shots. "raw" is one ``AerSimulator().run(circuits).result()``; "qjm" is the whole path: split,
store the circuits (QPY) and the intent, run on the default local executor, store every
result, read them back (``results()``) and take every experiment's counts. One warm-up round
of each goes first (imports, the worker pool), then the two alternate so machine noise falls on
both. Prints medians and the ratio qjm/raw (lower is better; <= 1.05 is the target).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--circuits", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--shots", type=int, default=1024)
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    from qiskit import transpile
    from qiskit.circuit.random import random_circuit
    from qiskit_aer import AerSimulator

    from qjm_tui import JobManager
    from qjm_tui.config import Config

    simulator = AerSimulator()
    circuits = [random_circuit(5, 4, measure=True, seed=i) for i in range(args.circuits)]
    circuits = transpile(circuits, backend=simulator, seed_transpiler=1)

    def raw() -> float:
        start = time.perf_counter()
        result = simulator.run(circuits, shots=args.shots).result()
        [result.get_counts(i) for i in range(len(circuits))]
        return time.perf_counter() - start

    with tempfile.TemporaryDirectory() as home:
        manager = JobManager(Path(home) / "bench.sqlite", config=Config())

        def qjm() -> float:
            start = time.perf_counter()
            job_set = manager.run(circuits, backend="aer", shots=args.shots)
            results = job_set.results()
            [results.get_counts(i) for i in range(len(circuits))]
            return time.perf_counter() - start

        raw()
        qjm()
        raw_times, qjm_times = [], []
        for _ in range(args.repeats):
            raw_times.append(raw())
            qjm_times.append(qjm())
        jobs = len(manager.job_sets()[0].managed_jobs())
        manager.close()

    raw_median = statistics.median(raw_times)
    qjm_median = statistics.median(qjm_times)
    print(f"{args.circuits} circuits x {args.shots} shots, {args.repeats} rounds each, alternating")
    print(f"raw AerSimulator.run : median {raw_median:.3f} s  ({', '.join(f'{t:.2f}' for t in raw_times)})")
    print(f"qjm end to end       : median {qjm_median:.3f} s  ({', '.join(f'{t:.2f}' for t in qjm_times)})"
          f"  [{jobs} jobs]")
    print(f"ratio qjm/raw        : {qjm_median / raw_median:.3f}")


if __name__ == "__main__":
    main()
