"""What the histogram pane's reads cost on a big job set (not a test).

Run:  python -m benchmarks.bench_histogram [--experiments 10000] [--per-job 10] [--repeats 5]

Runs one set of small measured circuits on Aer (``--per-job`` experiments a job, so the set
has many jobs as a remote run would), then times, each ``--repeats`` times in turn, the two
reads the pane makes in its worker thread: one experiment's counts (a step with ``[``/``]``,
at experiments spread over the set) and the combined view (every experiment summed). Prints
the median and worst of each: a step should stay well under the 100 ms a keypress may take.
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
    parser.add_argument("--experiments", type=int, default=10_000)
    parser.add_argument("--per-job", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    from qiskit import QuantumCircuit

    from qjm_tui import JobManager
    from qjm_tui.config import Config
    from qjm_tui.tui.readmodel import read_combined, read_experiment

    circuits = []
    for i in range(args.experiments):
        qc = QuantumCircuit(3, 3, name=f"c{i}")
        qc.h(i % 3)
        qc.measure(range(3), range(3))
        circuits.append(qc)
    with tempfile.TemporaryDirectory() as folder, \
            JobManager(Path(folder) / "bench.sqlite", config=Config(executor="threads")) as manager:
        started = time.perf_counter()
        job_set = manager.run(circuits, backend="aer", shots=64, max_experiments_per_job=args.per_job)
        job_set.results()
        print(f"ran {args.experiments:,} experiments in {len(manager.store.jobs(job_set.job_set_id())):,}"
              f" jobs: {time.perf_counter() - started:.1f} s")
        set_id = job_set.job_set_id()
        step = max(args.experiments // 50, 1)
        steps: list[float] = []
        combined: list[float] = []
        for _ in range(args.repeats):
            for index in range(0, args.experiments, step):
                started = time.perf_counter()
                read_experiment(manager.store, set_id, index)
                steps.append(time.perf_counter() - started)
            started = time.perf_counter()
            read_combined(manager.store, set_id, lambda: False)
            combined.append(time.perf_counter() - started)
    print(f"one experiment: median {statistics.median(steps) * 1000:.1f} ms, "
          f"worst {max(steps) * 1000:.1f} ms ({len(steps)} reads)")
    print(f"combined view:  median {statistics.median(combined) * 1000:.0f} ms, "
          f"worst {max(combined) * 1000:.0f} ms ({len(combined)} reads)")


if __name__ == "__main__":
    main()
