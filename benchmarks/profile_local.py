"""Where local throughput goes: the pieces of qjm's path and of raw Aer, timed one by one.

Run:  python -m benchmarks.profile_local [--circuits 2000] [--repeats 3]

On the seed's circuits (random, 5 qubits, depth 4, measured, transpiled; 1,024 shots), in one
process on one core each: QPY and pickle both ways (what shipping circuits to a worker costs),
Aer's Python-side assembly (it holds the GIL), one raw ``AerSimulator().run`` with one and with
two parallel experiments, and a worker's whole job (``run_local_job`` on QPY, results as JSON).
Best of ``--repeats``; the figures explain the scenarios benchmark's local ratios.
"""

from __future__ import annotations

import argparse
import io
import pickle
import time
import warnings
from collections.abc import Callable
from typing import Any


def best(repeats: int, work: Callable[[], Any]) -> float:
    """The fastest of ``repeats`` runs of ``work``, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--circuits", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    from qiskit import qpy, transpile
    from qiskit.circuit.random import random_circuit
    from qiskit_aer import AerSimulator
    from qiskit_aer.backends.aer_compiler import assemble_circuits

    from qjm_tui.backends.local import run_local_job

    simulator = AerSimulator()
    circuits = transpile([random_circuit(5, 4, measure=True, seed=i) for i in range(args.circuits)],
                         backend=simulator, seed_transpiler=1)
    buffer = io.BytesIO()
    qpy.dump(circuits, buffer)
    qpy_bytes = buffer.getvalue()
    pickled = pickle.dumps(circuits, protocol=pickle.HIGHEST_PROTOCOL)
    simulator.run(circuits[:50], shots=1024).result()
    n = args.circuits

    def dump_qpy() -> None:
        qpy.dump(circuits, io.BytesIO())

    rows = [
        ("QPY write (the store needs it)", best(args.repeats, dump_qpy)),
        ("QPY read (a worker's first step)", best(args.repeats, lambda: qpy.load(io.BytesIO(qpy_bytes)))),
        ("pickle write", best(args.repeats, lambda: pickle.dumps(circuits, pickle.HIGHEST_PROTOCOL))),
        ("pickle read", best(args.repeats, lambda: pickle.loads(pickled))),
        ("Aer assembly (Python, holds the GIL)", best(args.repeats, lambda: assemble_circuits(circuits))),
        ("raw AerSimulator.run, 1 experiment at a time",
         best(args.repeats, lambda: simulator.run(circuits, shots=1024).result())),
        ("raw AerSimulator.run, 2 parallel experiments",
         best(args.repeats, lambda: simulator.run(circuits, shots=1024, max_parallel_experiments=2,
                                                  max_parallel_threads=2).result())),
        ("a worker's job: QPY read, Aer (1 thread), results as JSON",
         best(args.repeats, lambda: run_local_job("aer", qpy_bytes, 1024, {"max_parallel_threads": 1},
                                                  as_text=True))),
    ]
    print(f"{n} circuits, 1,024 shots, best of {args.repeats}:")
    for label, seconds in rows:
        print(f"  {label:<58} {seconds:6.3f} s")


if __name__ == "__main__":
    main()
