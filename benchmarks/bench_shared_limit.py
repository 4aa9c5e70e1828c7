"""Many processes start job sets at once against one service whose job limit is not published.

``--processes`` processes, forked at the same moment from one that has imported qjm (so the
figure is about pacing, not interpreter start-up), each run one job set of ``--jobs`` jobs on the
emulated service (``--run`` seconds per job, at most ``--limit`` in flight, the limit not
advertised), all on one store. The figures: the time until every process has its set done, and
the refusals the service counted. The script uses only qjm's public API, so it measures whatever
checkout is first on PYTHONPATH:

    python benchmarks/bench_shared_limit.py --processes 20 --run 2 --limit 5
    PYTHONPATH=/path/to/other/checkout python benchmarks/bench_shared_limit.py ...
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=1, help="jobs in each process's set")
    parser.add_argument("--run", type=float, default=2.0, help="seconds each job runs")
    parser.add_argument("--limit", type=int, default=5, help="jobs the service takes at once")
    args = parser.parse_args()

    import qiskit_aer  # noqa: F401 - imported once, before the processes are forked
    from qiskit import QuantumCircuit

    import qjm_tui
    from qjm_tui import JobManager
    from qjm_tui.config import Config

    work = Path(tempfile.mkdtemp(prefix="qjm-shared-limit-"))
    store, service = work / "qjm.sqlite", work / "service"
    spec = (f"emulator:dir={service},latency=0.05,queue=0,run={args.run},max_jobs={args.limit},"
            "advertise=0,max_per_job=1")
    circuit = QuantumCircuit(1, 1)
    circuit.x(0)
    circuit.measure(0, 0)
    JobManager(store, config=Config(executor="threads")).run([circuit], backend=spec, shots=8).wait()

    started = time.monotonic()
    children = []
    for _ in range(args.processes):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                manager = JobManager(store, config=Config(executor="threads"))
                state = manager.run([circuit] * args.jobs, backend=spec, shots=8).wait(1800)
                code = 0 if state == "done" else 1
                manager.close()
            except BaseException:  # noqa: BLE001 - reported by the exit code
                code = 2
            os._exit(code)
        children.append(pid)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    took = time.monotonic() - started
    events = sqlite3.connect(service / "emulator.sqlite")
    refused = events.execute("SELECT COUNT(*) FROM events WHERE kind='refused'").fetchone()[0]
    print(json.dumps({"processes": args.processes, "jobs": args.jobs, "run": args.run,
                      "limit": args.limit, "seconds": round(took, 1), "refused": refused,
                      "failed_processes": sum(1 for c in codes if c),
                      "bound_seconds": -(-args.processes * args.jobs // args.limit) * args.run,
                      "qjm": str(Path(qjm_tui.__file__).parent)}))


if __name__ == "__main__":
    main()
