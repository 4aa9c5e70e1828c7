"""Pacing under IBM Quantum's pending-jobs limit, measured against the local IBM Quantum service.

Run:  python -m benchmarks.bench_ibm_pacing [--jobs 60] [--limit 5] [--seconds 1.0] [--repeats 3]
                                              [--poll 0.25 --poll 5] [--answer 429|400]

Each round is a fresh process, as a user's script runs: ``run()`` of ``--jobs`` one-circuit jobs
on ``ibm-runtime:ibmq_manila`` (batch mode) through the unmodified qiskit-ibm-runtime client,
then ``wait()``. The service (:mod:`qjm_tui.testing.ibm_service`, in this process) refuses a
job while ``--limit`` jobs are pending, worded as ``--answer`` says, and runs each job for
``--seconds``. qjm is not told the limit: it learns it from the refusals. The jobs run without
the device's noise unless ``--noise`` is given: the noisy simulation takes the service's own CPU
(about 0.26 s a job here), which slows its answers and would be counted against qjm.

Printed per poll interval (the ``poll=`` spec option; IBM's default is 5 s), medians over the
rounds: the makespan as the service saw it (first job accepted to last job finished) and as
the user saw it (``run()`` called to the set done, sign-in and transpilation included), the
bound ceil(J/L) x t and their ratio, the refusals, and the jobs accepted twice (the same job's
tag on two accepted jobs; want 0), from the service's own record.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def child(jobs: int, poll: float, home: str) -> None:
    """The measured process: run the set and print the wall time and its state as JSON."""
    from qiskit import QuantumCircuit

    from qjm_tui import JobManager
    from qjm_tui.config import Config

    circuit = QuantumCircuit(1, 1, name="pace")
    circuit.x(0)
    circuit.measure(0, 0)
    manager = JobManager(Path(home) / "qjm.sqlite", config=Config(executor="threads"))
    start = time.perf_counter()
    job_set = manager.run([circuit] * jobs, backend=f"ibm-runtime:ibmq_manila,poll={poll:g}",
                          transpile=True, shots=16, max_experiments_per_job=1)
    state = job_set.wait()
    wall = time.perf_counter() - start
    manager.close()
    print(json.dumps({"wall": wall, "state": state}))


def one_round(args: argparse.Namespace, poll: float) -> dict[str, Any]:
    from qjm_tui.testing.ibm_service import IBMQuantumService

    with IBMQuantumService(["fake_manila"], max_pending_jobs=args.limit, limit_answer=args.answer,
                           job_seconds=args.seconds, noise=args.noise) as ibm, \
            tempfile.TemporaryDirectory() as home:
        env = {**os.environ, **ibm.environ(), "QJM_HOME": home, "PYTHONPATH": str(REPO),
               "PYTHONWARNINGS": "ignore"}
        env.pop("NO_PROXY", None)
        env.pop("no_proxy", None)
        proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_ibm_pacing", "--child",
                               "--jobs", str(args.jobs), "--poll", str(poll), "--home", home],
                              capture_output=True, text=True, env=env, cwd=REPO, timeout=3600)
        if proc.returncode != 0:
            raise SystemExit(f"the measured process failed:\n{proc.stderr[-3000:]}")
        measured = json.loads(proc.stdout.strip().splitlines()[-1])
        records = ibm.jobs()
        per_tag = Counter(tag for r in records for tag in r["tags"] if tag.startswith("qjm:"))
        first = min(r["created"] for r in records)
        last = max(r["finished"] for r in records if r["finished"] is not None)
        # Jobs pending at the service over the span: how well the limit's room was used.
        events = sorted([(r["created"], 1) for r in records]
                        + [(r["finished"], -1) for r in records if r["finished"] is not None])
        level, peak, area, at = 0, 0, 0.0, first
        for moment, step in events:
            area += level * (moment - at)
            level, at = level + step, moment
            peak = max(peak, level)
        # How long a slot freed by a finished job stayed empty: from the latest finish before
        # each later job's acceptance to that acceptance (the poll interval and a submission's
        # round trips are in it).
        finishes = sorted(r["finished"] for r in records if r["finished"] is not None)
        refill = [r["created"] - max(f for f in finishes if f <= r["created"])
                  for r in records if any(f <= r["created"] for f in finishes)]
        ran = [r["finished"] - r["started"] for r in records if r["started"] and r["finished"]]
        return {"state": measured["state"], "wall": measured["wall"], "service_span": last - first,
                "job_time": statistics.median(ran),
                "peak_pending": peak, "mean_pending": area / (last - first),
                "refill": statistics.median(refill) if refill else None,
                "refused": ibm.refusals()["limit"], "accepted": len(records),
                "accepted_twice": sum(1 for n in per_tag.values() if n > 1),
                "batches": len(ibm.sessions()),
                # what the service counts against the account: each job's state asked
                "status_calls": sum(1 for r in ibm.requests() if r.method == "GET"
                                    and r.path.startswith("/api/v1/jobs/") and r.path.count("/") == 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=60)
    parser.add_argument("--limit", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--poll", type=float, action="append")
    parser.add_argument("--answer", choices=("429", "400"), default="429")
    parser.add_argument("--noise", action="store_true",
                        help="simulate with the device's noise (about 0.26 s of the service's own CPU "
                             "per job here, which slows its answers to the client)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.jobs, args.poll[0], args.home)
        return 0
    bound = math.ceil(args.jobs / args.limit) * args.seconds
    print(f"J={args.jobs} jobs, L={args.limit} pending at most, t={args.seconds:g} s each "
          f"({args.answer} refusals): bound ceil(J/L) x t = {bound:g} s; {args.repeats} rounds")
    for poll in args.poll or [0.25, 5.0]:
        rounds = [one_round(args, poll) for _ in range(args.repeats)]
        span = statistics.median(r["service_span"] for r in rounds)
        wall = statistics.median(r["wall"] for r in rounds)
        refill = statistics.median(r["refill"] for r in rounds)
        job_time = statistics.median(r["job_time"] for r in rounds)
        print(f"poll={poll:g} s: service makespan {span:.1f} s ({span / bound:.2f}x the bound), "
              f"a freed slot refilled after {refill:.2f} s (median), jobs took {job_time:.2f} s "
              "(median), "
              f"run() to done {wall:.1f} s; refused {statistics.median(r['refused'] for r in rounds):g} "
              f"(rounds: {[r['refused'] for r in rounds]}), accepted twice "
              f"{max(r['accepted_twice'] for r in rounds)}, states {sorted({r['state'] for r in rounds})}, "
              f"batches {[r['batches'] for r in rounds]}, job state calls "
              f"{statistics.median(r['status_calls'] for r in rounds):g}")
        print("  rounds: " + "; ".join(f"span {r['service_span']:.1f} s, wall {r['wall']:.1f} s, "
                                       f"pending peak {r['peak_pending']} mean {r['mean_pending']:.1f}"
                                       for r in rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
