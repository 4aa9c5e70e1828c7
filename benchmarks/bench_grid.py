"""What the set pane's status grid costs with a big job set, measured headless.

Run:  python -m benchmarks.bench_grid [--jobs 10000] [--changes 1000] [--repeats 7]

A ``--jobs``-job set (one experiment per job, on aer) is run by the real core, then shown in
the set pane of a headless app at 120x40. Each round measures:

* render, cold: every visible line of the grid with its row cache emptied;
* render, warm: the same lines again, from the cache;
* cells: ``update_statuses`` with ``--changes`` new statuses, then drawing the lines that
  changed (what a repaint costs the UI thread), and how many lines that was;
* reload, for comparison in the same round: reading the whole set again, replacing every
  cell (``show_set``) and drawing the visible lines, which is what the pane avoids;
* refresh: ``--changes`` jobs get a new status in the store (as the engine writes them), then
  the app's bridge looks at the store until the grid shows them: its worker's read of the
  changed sets and of only the changed jobs, the message, and applying it.

Prints the median of each over ``--repeats`` rounds and the reload/refresh ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from qiskit import QuantumCircuit

from qjm_tui import JobManager
from qjm_tui.config import Config
from qjm_tui.core.store import Store
from qjm_tui.tui.grid import SetPane, StatusGrid
from tests.bridged import BridgedSetPane

#: statuses the changed jobs cycle through, so every round really changes each cell
_CYCLE = ("running", "queued", "done")


def _fill(path: Path, jobs: int) -> str:
    qc = QuantumCircuit(1, 1)
    qc.measure(0, 0)
    with JobManager(path, config=Config(executor="threads")) as manager:
        job_set = manager.run([qc] * jobs, backend="aer", name="bench", shots=4,
                              max_experiments_per_job=1)
        job_set.results()
        return job_set.job_set_id()


def _visible_lines(grid: StatusGrid) -> int:
    return sum(1 for y in range(grid.size.height) if grid.render_line(y).cell_length)


async def _wait(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the pane did not catch up")
        await asyncio.sleep(0.001)


async def _measure(path: Path, set_id: str, changes: int, repeats: int) -> dict[str, list[float]]:
    manager = JobManager(path, config=Config(executor="threads"))
    store = Store(path)
    rng = random.Random(7)
    figures: dict[str, list[float]] = {k: [] for k in
                                       ("cold", "warm", "cells", "lines", "refresh", "reload")}
    app = BridgedSetPane(manager, flush_interval=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.query_one(SetPane)
        pane.show_set(store.summaries([set_id])[0])
        await _wait(lambda: pane.current_job is not None)
        await pilot.pause()
        grid = pane.grid
        n = grid.cell_count
        summary = store.summaries([set_id])[0]
        for round_ in range(repeats):
            grid.notify_style_update()
            start = time.perf_counter()
            _visible_lines(grid)
            figures["cold"].append(time.perf_counter() - start)
            start = time.perf_counter()
            _visible_lines(grid)
            figures["warm"].append(time.perf_counter() - start)

            new = {i: _CYCLE[(round_ + i) % 3] for i in rng.sample(range(n), changes)}
            top, height = grid.scroll_offset.y, grid.size.height
            rows = {i // grid.columns for i in new if top <= i // grid.columns < top + height}
            start = time.perf_counter()
            grid.update_statuses(new)
            for row in rows:
                grid.render_line(row - top)
            figures["cells"].append(time.perf_counter() - start)
            figures["lines"].append(len(rows))

            # reading the whole set again also undoes the cells changed above behind the
            # pane's back, so the refresh below starts from what the store holds
            start = time.perf_counter()
            pane.show_set(None)
            pane.show_set(summary)
            await _wait(lambda: grid.cell_count == n and pane.current_job is not None)
            _visible_lines(grid)
            figures["reload"].append(time.perf_counter() - start)

            wanted = {i: _CYCLE[(round_ + i + 1) % 3] for i in rng.sample(range(n), changes)}
            for status in _CYCLE:
                store.set_jobs_status(set_id, [i for i, s in wanted.items() if s == status], status)
            summary = store.summaries([set_id])[0]
            start = time.perf_counter()
            app.bridge.look()
            await _wait(lambda wanted=wanted: all(grid.status(i) == s for i, s in wanted.items()))
            figures["refresh"].append(time.perf_counter() - start)
    store.close()
    manager.close()
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "qjm.sqlite"
        start = time.perf_counter()
        set_id = _fill(path, args.jobs)
        print(f"ran a {args.jobs:,}-job set on aer in {time.perf_counter() - start:.1f}s")
        figures = asyncio.run(_measure(path, set_id, args.changes, args.repeats))
    med = {k: statistics.median(v) for k, v in figures.items()}
    ms = 1000.0
    print(f"median of {args.repeats} rounds, {args.jobs:,} cells, 120x40:")
    print(f"  render every visible line, cold   {med['cold'] * ms:8.2f} ms")
    print(f"  render every visible line, warm   {med['warm'] * ms:8.2f} ms")
    print(f"  {args.changes:,} cells changed + their lines  {med['cells'] * ms:8.2f} ms"
          f"  ({med['lines']:.0f} visible lines redrawn)")
    print(f"  a look, {args.changes:,} jobs changed          {med['refresh'] * ms:8.2f} ms")
    print(f"  reload the whole set              {med['reload'] * ms:8.2f} ms"
          f"  ({med['reload'] / med['refresh']:.1f}x the refresh)")


if __name__ == "__main__":
    main()
