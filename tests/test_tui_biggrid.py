"""A big set's grid: where the view is ("jobs 1,201–1,400 of 2,000"), n and N to the next and
previous failed or running job, and follow mode keeping the running jobs in view, on a set of
2,000 jobs the real core runs on a stalled emulator (the first finishes, the second runs on,
the rest wait); failures are written to the store as the set's runner writes them."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path

from qiskit import QuantumCircuit
from textual.pilot import Pilot

from qjm_tui import JobManager
from qjm_tui.config import Config
from qjm_tui.core.status import JobStatus
from qjm_tui.core.store import Store
from qjm_tui.tui.app import make_app

JOBS = 2_000


async def until(pilot: Pilot[int], check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.05)


def test_position_next_failed_or_running_and_follow(tmp_path: Path) -> None:
    qc = QuantumCircuit(1, 1)
    qc.measure(0, 0)
    path = tmp_path / "qjm.sqlite"
    stalled = f"emulator:dir={tmp_path / 'emu'},latency=0,queue=0,run=0,stall=1,max_jobs=1,advertise=1"
    runner = JobManager(path, config=Config(executor="threads"))
    job_set = runner.run([qc] * JOBS, backend=stalled, name="big", shots=4, max_experiments_per_job=1)
    set_id = job_set.job_set_id()
    deadline = time.monotonic() + 30
    while runner.store.status_counts(set_id).get("running") != 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    writer = Store(path)
    for index in (700, 1500):
        writer.set_job_status(set_id, index, JobStatus.FAILED, last_error="the device went away")

    async def go() -> None:
        app = make_app(path, config=Config(executor="threads"), watch_interval=0.1)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.go_to_set(set_id), "the set")
            pane = app.set_pane
            await until(pilot, lambda: pane.grid.cell_count == JOBS
                        and pane.grid.status(1500) == "failed", "the jobs")
            grid = pane.grid
            await until(pilot, lambda: grid.columns > 1 and grid.visible_range()[1] > grid.columns,
                        "the grid laid out")

            def position() -> str:
                return str(pane.query_one("#set-position").render())

            # the read-out follows the grid's size as the panes settle
            await until(pilot, lambda: position().startswith(f"jobs 1–{grid.visible_range()[1] + 1:,} of "),
                        "the read-out")
            first, last = grid.visible_range()
            assert first == 0 and 0 < last < JOBS - 1
            assert position().startswith(f"jobs 1–{last + 1:,} of {JOBS:,}"), position()
            visits = []
            for key in ("n", "n", "n", "n", "N"):
                await pilot.press(key)
                await pilot.pause(0.05)
                visits.append(grid.cursor)
            assert visits == [1, 700, 1500, 1, 1500], "failed and running jobs, wrapping around"
            first, last = grid.visible_range()
            assert first <= 1500 <= last, "the jump scrolls the job into view"
            shown = [int(n.replace(",", "")) for n in re.findall(r"[\d,]+", position())[:3]]
            assert shown == [first + 1, last + 1, JOBS], position()

            await pilot.press("home")
            await pilot.press("f")
            await pilot.pause(0.1)
            assert "following" in position()
            assert grid.visible_range()[0] == 0, "the running job 1 is in view: nothing moves"
            # the run moves on far out of view, as its runner writes it
            writer.set_jobs_status(set_id, list(range(1, 1600)), JobStatus.DONE)
            writer.set_job_status(set_id, 1600, JobStatus.RUNNING)
            await until(pilot, lambda: grid.visible_range()[0] <= 1600 <= grid.visible_range()[1],
                        "the view to follow the run")
            assert grid.cursor == 0, "the cursor stays where it was put"
            await pilot.press("f")
            assert "following" not in position()
            writer.set_job_status(set_id, 1600, JobStatus.DONE)
            writer.set_jobs_status(set_id, list(range(1601, 1990)), JobStatus.DONE)
            writer.set_job_status(set_id, 1990, JobStatus.RUNNING)
            await until(pilot, lambda: grid.status(1990) == "running", "the change")
            first, last = grid.visible_range()
            assert first <= 1600 <= last, "not following any more: the view stays"
        app.manager.close()

    try:
        asyncio.run(go())
    finally:
        writer.close()
        runner.close(cancel=True, timeout=30)
