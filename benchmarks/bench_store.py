"""What listing and following changes cost in the store: the old way and the change feed, side
by side in one run.

Run:  python -m benchmarks.bench_store [--sets 1000] [--jobs 10000] [--repeats 7]

* Listing ``--sets`` job sets of 10 jobs each. "before" is how ``qjm ls`` listed: every set's
  row (``list_job_sets``), then per set its row again and a full ``jobs()`` load to work out its
  progress. "after" is ``summaries()``: one grouped query for every set.
* Reading what changed in a ``--jobs``-job set after 20 of its jobs changed. "before" reloads
  every job (``jobs()``); "after" reads only the changed ones (``jobs_changed_since``).

The store is filled through the store's own API. Each round measures both ways of a case back
to back (alternating which goes first), so machine noise falls on both; prints medians and the
ratio before/after.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from qjm_tui.core.status import JOB_FINAL, JobStatus
from qjm_tui.core.store import Store
from tests.forge import forge_set


def _fill(store: Store, set_id: str, n_jobs: int, created: float) -> None:
    store.create_job_set(job_set_id=set_id, name=set_id, tags=["bench"], backend="aer", shots=100,
                         run_options={}, experiment_names=[f"c{i}" for i in range(n_jobs)],
                         jobs=[(i, i, i + 1, 100, 0) for i in range(n_jobs)], circuit_blocks=[])
    forge_set(store, set_id, created=created)


def _listing_before(store: Store) -> int:
    shown = []
    for row in store.list_job_sets():
        row = store.get_job_set(row.id)
        jobs = store.jobs(row.id)
        counts: dict[str, int] = {}
        for job in jobs:
            counts[job.status] = counts.get(job.status, 0) + 1
        done = sum(j.size for j in jobs if j.status == JobStatus.DONE)
        open_units = sum(j.size for j in jobs if j.status not in JOB_FINAL)
        shown.append((row.id, store.effective_state(row), counts, done, open_units))
    return len(shown)


def _listing_after(store: Store) -> int:
    return len(store.summaries())


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _pair(before: Callable[[], object], after: Callable[[], object], repeats: int,
          prepare: Callable[[], None] | None = None) -> tuple[list[float], list[float]]:
    if prepare is not None:
        prepare()
    before(), after()  # warm the page cache and the connection
    b_times, a_times = [], []
    for round_ in range(repeats):
        if prepare is not None:
            prepare()
        if round_ % 2:
            a_times.append(_time(after))
            b_times.append(_time(before))
        else:
            b_times.append(_time(before))
            a_times.append(_time(after))
    return b_times, a_times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as home:
        store = Store(Path(home) / "bench.sqlite")
        for n in range(args.sets):
            set_id = f"set-{n:05d}"
            _fill(store, set_id, 10, created=1_700_000_000.0 + n)
            store.set_jobs_status(set_id, list(range(n % 11)), JobStatus.DONE)
        listing = _pair(lambda: _listing_before(store), lambda: _listing_after(store), args.repeats)
        assert _listing_before(store) == _listing_after(store) == args.sets

        _fill(store, "big", args.jobs, created=1_800_000_000.0)
        mark = {"seq": store.change_seq()}
        changed = {"n": 0}

        def twenty_changes() -> None:
            mark["seq"] = store.change_seq()
            for k in range(20):
                index = (changed["n"] * 20 + k) % args.jobs
                store.set_job_status("big", index, JobStatus.RUNNING)
            changed["n"] += 1

        def changes_after() -> None:
            rows, _ = store.jobs_changed_since("big", mark["seq"])
            assert len(rows) == 20, len(rows)

        changes = _pair(lambda: store.jobs("big"), changes_after, args.repeats, prepare=twenty_changes)
        store.close()

    print(f"store: {args.sets} job sets of 10 jobs, plus one of {args.jobs} jobs; "
          f"{args.repeats} rounds, medians")
    print(f"{'case':<44} {'before':>10} {'after':>10} {'before/after':>13}")
    for label, (before, after) in (
            (f"list {args.sets} job sets (ls)", listing),
            (f"read 20 changes of a {args.jobs}-job set", changes)):
        b, a = statistics.median(before), statistics.median(after)
        print(f"{label:<44} {b * 1000:>8.2f}ms {a * 1000:>8.2f}ms {b / a:>12.1f}x")


if __name__ == "__main__":
    main()
