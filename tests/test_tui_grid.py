"""The job-set pane and its status grid, on sets the real core ran: one cell per job, keys
move the cursor and the details follow, a failed job's error in full, live updates that repaint
only the changed rows, and a grid of thousands of jobs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from qiskit import QuantumCircuit
from textual.app import App, ComposeResult
from textual.geometry import Region
from textual.pilot import Pilot
from textual.strip import Strip
from textual.widgets import Static

from qjm_tui import JobManager, views
from qjm_tui.config import Config
from qjm_tui.core.engine import RetryPolicy
from qjm_tui.core.store import JobSetSummary, Store
from qjm_tui.tui import grid as grid_module
from qjm_tui.tui.grid import SetPane, StatusGrid
from qjm_tui.tui.messages import JobStatusesChanged

#: the frozen "now" every pane here is given (an hour after the sets ran)
NOW = time.time() + 3600


def _one_qubit() -> QuantumCircuit:
    qc = QuantumCircuit(1, 1)
    qc.h(0)
    qc.measure(0, 0)
    return qc


class _Host(App[None]):
    """The smallest app that mounts a set pane, recording the jobs it highlights. The pane reads
    nothing: when it asks for a set's jobs, the host answers with a message as the app's bridge
    does (from ``store``, or with ``failure`` when one is set); later changes are fed to it."""

    def __init__(self, store: Store, clock: Callable[[], float] = lambda: NOW) -> None:
        super().__init__()
        self.store = store
        self.clock = clock
        self.highlighted: list[tuple[str, int]] = []
        self.asked: list[tuple[str | None, int]] = []
        self.failure: str | None = None

    def compose(self) -> ComposeResult:
        yield SetPane(clock=self.clock)

    def on_set_pane_job_highlighted(self, message: SetPane.JobHighlighted) -> None:
        self.highlighted.append((message.set_id, message.job.index))

    def on_set_pane_jobs_wanted(self, message: SetPane.JobsWanted) -> None:
        self.asked.append((message.set_id, message.load))
        if message.set_id is None:
            return
        pane = self.query_one(SetPane)
        if self.failure is not None:
            pane.post_message(JobStatusesChanged(message.set_id, [], 0, full=True, load=message.load,
                                                 error=self.failure))
            return
        seq = self.store.change_seq()
        pane.post_message(JobStatusesChanged(message.set_id, self.store.jobs(message.set_id), seq,
                                             full=True, load=message.load))


def _changes(store: Store, set_id: str, since: int) -> tuple[JobStatusesChanged, int]:
    """The set's jobs written after change number ``since``, as the bridge sends them."""
    rows, seq = store.jobs_changed_since(set_id, since)
    return JobStatusesChanged(set_id, rows, seq, full=False), seq


async def _until(pilot: Pilot[None], condition: Callable[[], bool], what: str,
                 timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.05)


def _finished_set(path: Path, circuits: int, name: str, shots: int, per_job: int) -> str:
    """Run ``circuits`` one-qubit circuits on aer to the end in a store at ``path``; the set's id."""
    with JobManager(path, config=Config(executor="threads")) as manager:
        job_set = manager.run([_one_qubit()] * circuits, backend="aer", name=name, shots=shots,
                              max_experiments_per_job=per_job)
        job_set.results()
        return job_set.job_set_id()


def _summary(store: Store, set_id: str) -> JobSetSummary:
    return store.summaries([set_id])[0]


def _text(pane: SetPane, selector: str) -> str:
    return str(pane.query_one(selector, Static).render())


def _record_rendered_rows(grid: StatusGrid) -> list[int]:
    """Make the grid note the grid row of every line it renders from now on."""
    rows: list[int] = []
    render_line = grid.render_line

    def recording(y: int) -> Strip:
        rows.append(y + grid.scroll_offset.y)
        return render_line(y)

    grid.render_line = recording  # type: ignore[method-assign]
    return rows


async def _show(pilot: Pilot[None], pane: SetPane, summary: JobSetSummary) -> None:
    pane.show_set(summary)
    await _until(pilot, lambda: pane.current_job is not None, "the set's jobs to be read")
    await pilot.pause()


def test_cells_keys_and_details(tmp_path: Path) -> None:
    asyncio.run(_cells_keys_and_details(tmp_path))


async def _cells_keys_and_details(tmp_path: Path) -> None:
    path = tmp_path / "qjm.sqlite"
    set_id = _finished_set(path, 90, "walk", shots=16, per_job=3)
    store = Store(path)
    jobs = store.jobs(set_id)
    app = _Host(store)
    async with app.run_test(size=(40, 24)) as pilot:
        pane = app.query_one(SetPane)
        assert "Select a job set" in _text(pane, "#set-empty")
        assert pane.current_job is None
        await _show(pilot, pane, _summary(store, set_id))
        grid = pane.grid
        assert grid.cell_count == len(jobs) == 30, "one cell per job"
        assert not pane.query_one("#set-empty").display
        assert "walk" in _text(pane, "#set-title")
        assert "90/90 exp" in _text(pane, "#set-progress")
        assert "done 30" in _text(pane, "#set-legend")
        columns = grid.columns
        assert columns == 40 - 2 - 2, "cells fill the pane's width less padding and scrollbar"
        grid.focus()

        async def press(*keys: str) -> int:
            await pilot.press(*keys)
            await pilot.pause()
            return grid.cursor

        assert await press("l") == 1
        assert pane.current_job == jobs[1]
        assert "job 1 · experiments 3–5" in _text(pane, "#set-job")
        assert jobs[1].backend_job_id in _text(pane, "#set-job")
        assert (set_id, 1) == app.highlighted[-1], "the pane says which job is highlighted"
        assert await press("right", "h") == 1
        assert await press("end") == 29
        assert "job 29 · experiments 87–89" in _text(pane, "#set-job")
        assert await press("home") == 0
        assert await press("k") == 0, "up from the first row stays put"
        await pilot.click(StatusGrid, offset=(5, 0))
        await pilot.pause()
        assert grid.cursor == 5 and pane.current_job == jobs[5], "a click picks the cell"

    # a narrow pane: several rows, so up/down and paging move by whole rows
    app = _Host(store)
    async with app.run_test(size=(12, 60)) as pilot:
        pane = app.query_one(SetPane)
        await _show(pilot, pane, _summary(store, set_id))
        grid = pane.grid
        columns = grid.columns
        assert columns == 8 and grid.row_count == 4
        grid.focus()
        await pilot.press(*"lllllll", "j")
        await pilot.pause()
        assert grid.cursor == 7 + columns
        await pilot.press("down")
        await pilot.pause()
        assert grid.cursor == 7 + 2 * columns
        await pilot.press("down")
        await pilot.pause()
        assert grid.cursor == 29, "below a shorter last row the cursor lands on the last job"
        await pilot.press("up", "k")
        await pilot.pause()
        assert grid.cursor == 29 - 2 * columns
        await pilot.press("pageup")
        await pilot.pause()
        assert grid.cursor == (29 - 2 * columns) % columns, "page up stops on the first row"
        await pilot.press("pagedown")
        await pilot.pause()
        assert grid.cursor == 29
        assert pane.current_job == jobs[29]
        statuses = [grid.status(i) for i in range(grid.cell_count)]
        assert statuses == [job.status for job in jobs]

        await pilot.resize_terminal(22, 60)
        await pilot.pause()
        assert grid.columns == 18 and grid.row_count == 2, "cells reflow to the new width"
        assert grid.cursor == 29 and pane.current_job == jobs[29], "the cursor keeps its job"


def test_failed_job_details_show_the_whole_error(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    asyncio.run(_failed_job_details(tmp_path, monkeypatch))


async def _failed_job_details(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "qjm.sqlite"
    failing = f"emulator:dir={tmp_path / 'emu'},latency=0,queue=0,run=0,fail=1.0"
    with JobManager(path, config=Config(executor="threads"),
                    retry_policy=RetryPolicy(max_attempts=1, base_delay=0.0, jitter=0.0)) as manager:
        job_set = manager.run([_one_qubit()] * 3, backend=failing, name="doomed", shots=16,
                              max_experiments_per_job=1)
        job_set.results(partial=True)
        set_id = job_set.job_set_id()
    store = Store(path)
    jobs = store.jobs(set_id)
    assert {job.status for job in jobs} == {"failed"}
    error = jobs[2].last_error
    assert error and len(error) > 60, "an error long enough to need wrapping"

    monkeypatch.setattr(grid_module, "terminal_unicode", lambda: False)
    app = _Host(store)
    async with app.run_test(size=(50, 30)) as pilot:
        pane = app.query_one(SetPane)
        await _show(pilot, pane, _summary(store, set_id))
        grid = pane.grid
        assert "x failed 3" in _text(pane, "#set-legend"), "ASCII glyphs where circles can't show"
        assert grid.render_line(0).text.rstrip() == "xxx"
        grid.focus()
        await pilot.press("end")
        await pilot.pause()
        assert grid.cursor == 2
        details = pane.query_one("#set-job", Static)
        text = _text(pane, "#set-job")
        assert "failed" in text and f"attempts {jobs[2].attempts}" in text
        assert f"error: {error}" in text, "the whole error, not a cut"
        on_screen = " ".join(strip.text.strip() for strip in details.render_lines(
            Region(0, 0, details.size.width, details.size.height)))
        assert " ".join(error.split()) in " ".join(on_screen.split()), "wrapped, every word shown"
        assert pane.query_one("#set-details").size.height >= details.size.height, "nothing cut off"


def test_a_read_that_failed_says_so_and_is_asked_for_again(tmp_path: Path) -> None:
    asyncio.run(_read_failed(tmp_path))


async def _read_failed(tmp_path: Path) -> None:
    path = tmp_path / "qjm.sqlite"
    set_id = _finished_set(path, 6, "six", shots=16, per_job=1)
    store = Store(path)
    app = _Host(store)
    app.failure = "database is locked"
    async with app.run_test(size=(60, 20)) as pilot:
        pane = app.query_one(SetPane)
        summary = _summary(store, set_id)
        pane.show_set(summary)
        await _until(pilot, lambda: "could not be read" in _text(pane, "#set-job"), "the failure said")
        assert pane.current_job is None and app.asked == [(set_id, 1)]
        app.failure = None
        pane.refresh_set(summary)
        await _until(pilot, lambda: pane.current_job is not None, "the jobs read again")
        assert app.asked == [(set_id, 1), (set_id, 2)] and pane.grid.cell_count == 6
        pane.post_message(JobStatusesChanged(set_id, [], 0, full=True, load=1))
        await pilot.pause()
        assert pane.grid.cell_count == 6, "the answer to an older read is not taken"
        pane.show_set(None)
        await pilot.pause()
        assert app.asked[-1] == (None, 3), "a pane showing no set wants no jobs"


def test_live_update_repaints_only_changed_rows(tmp_path: Path) -> None:
    asyncio.run(_live_update(tmp_path))


async def _live_update(tmp_path: Path) -> None:
    path = tmp_path / "qjm.sqlite"
    # jobs that wait a minute in the emulator's queue, so nothing changes unless the test says
    waiting = f"emulator:dir={tmp_path / 'emu'},latency=0,queue=60,run=0,max_jobs=0"
    manager = JobManager(path, config=Config(executor="threads"))
    try:
        job_set = manager.run([_one_qubit()] * 120, backend=waiting, name="live", shots=16,
                              max_experiments_per_job=1)
        set_id = job_set.job_set_id()
        store = Store(path)
        app = _Host(store)
        async with app.run_test(size=(40, 24)) as pilot:
            await _until(pilot, lambda: store.status_counts(set_id) == {"queued": 120},
                         "every job to be queued")
            pane = app.query_one(SetPane)
            await _show(pilot, pane, _summary(store, set_id))
            grid = pane.grid
            columns = grid.columns
            assert grid.row_count == 4 and "queued 120" in _text(pane, "#set-legend")
            rendered = _record_rendered_rows(grid)

            seq = store.change_seq()
            queued = store.jobs(set_id)
            other = manager.run([_one_qubit()] * 2, backend="aer", name="other", shots=16)
            other.results()
            pane.refresh_set(_summary(store, other.job_set_id()))
            pane.post_message(_changes(store, other.job_set_id(), 0)[0])
            pane.refresh_set(_summary(store, set_id))
            pane.post_message(_changes(store, set_id, seq)[0])
            await pilot.pause(1.2)
            assert rendered == [], "another set running, nothing new, or time passing repaints no cell"

            cancelled = [1, 2 * columns + 1]
            for index in cancelled:
                assert manager.cancel_job(set_id, index)
            await _until(pilot, lambda: store.status_counts(set_id).get("cancelled") == 2,
                         "the two jobs to be cancelled")
            pane.refresh_set(_summary(store, set_id))
            changes, seq = _changes(store, set_id, seq)
            assert sorted(row.index for row in changes.rows) == cancelled
            pane.post_message(changes)
            await _until(pilot, lambda: all(grid.status(i) == "cancelled" for i in cancelled),
                         "the grid to show the cancelled jobs")
            # the same read arriving again, or an older row of a job, changes nothing
            pane.post_message(JobStatusesChanged(set_id, changes.rows, seq, full=False))
            pane.post_message(JobStatusesChanged(set_id, [queued[1]], seq, full=False))
            await pilot.pause(0.2)
            assert sorted(set(rendered)) == [0, 2], "only the rows holding changed cells"
            assert rendered.count(0) == 1 and rendered.count(2) == 1, "each repainted once"
            legend = _text(pane, "#set-legend")
            assert "queued 118" in legend and "cancelled 2" in legend, "the counts follow"
            assert [grid.status(i) for i in range(120)] == [j.status for j in store.jobs(set_id)]

            grid.focus()
            await pilot.press("l")
            await pilot.pause()
            assert "cancelled" in _text(pane, "#set-job")
            assert app.highlighted[-1] == (set_id, 1)
    finally:
        manager.close(cancel=True)


def test_throughput_over_a_sliding_window(tmp_path: Path) -> None:
    asyncio.run(_throughput(tmp_path))


async def _throughput(tmp_path: Path) -> None:
    path = tmp_path / "qjm.sqlite"
    # the device finishes its first 8 jobs after a second and stalls on the other 12
    stalling = f"emulator:dir={tmp_path / 'emu'},latency=0,queue=0,run=1,max_jobs=0,stall=8"
    manager = JobManager(path, config=Config(executor="threads"))
    try:
        job_set = manager.run([_one_qubit()] * 20, backend=stalling, name="pace", shots=16,
                              max_experiments_per_job=1)
        set_id = job_set.job_set_id()
        store = Store(path)
        before = _summary(store, set_id)
        now = [time.time()]
        app = _Host(store, clock=lambda: now[0])
        async with app.run_test(size=(80, 30)) as pilot:
            await _until(pilot, lambda: store.status_counts(set_id).get("done") == 8,
                         "the first eight jobs to finish")
            after = _summary(store, set_id)
            assert after.state == "running" and after.experiments_done > before.experiments_done
            pane = app.query_one(SetPane)
            await _show(pilot, pane, before)
            now[0] += 1  # a second after it was opened, nothing new: the whole run's rate
            pane.refresh_set(before)
            await pilot.pause()
            assert "exp/s overall" in _text(pane, "#set-rate"), _text(pane, "#set-rate")
            now[0] += 9
            pane.refresh_set(after)
            pane.post_message(_changes(store, set_id, 0)[0])
            await pilot.pause()
            rate = (after.experiments_done - before.experiments_done) / 10
            progress = _text(pane, "#set-progress") + "\n" + _text(pane, "#set-rate")
            assert f"{rate:,.1f} exp/s ·" in progress, progress
            assert f"ETA {views.duration((20 - after.experiments_done) / rate)}" in progress
            assert "8/20 exp" in progress
            await _until(pilot, lambda: "done 8" in _text(pane, "#set-legend"), "the legend")
            assert "running 12" in _text(pane, "#set-legend")

            now[0] += 40
            pane.refresh_set(after)
            await pilot.pause()
            assert "0.0 exp/s" in _text(pane, "#set-rate"), "nothing done in the last 30 s"
    finally:
        manager.close(cancel=True)


def _many_jobs_grid(tmp_path: Path, jobs: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grid_module, "terminal_unicode", lambda: True)
    asyncio.run(_many_jobs(tmp_path, jobs))


async def _many_jobs(tmp_path: Path, count: int) -> None:
    path = tmp_path / "qjm.sqlite"
    set_id = _finished_set(path, count, "many", shots=4, per_job=1)
    store = Store(path)
    app = _Host(store)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.query_one(SetPane)
        await _show(pilot, pane, _summary(store, set_id))
        grid = pane.grid
        assert grid.cell_count == count
        assert grid.row_count == -(-count // grid.columns)
        assert f"done {count:,}" in _text(pane, "#set-legend")
        full = views.JOB_GLYPHS["done"] * grid.columns
        assert grid.render_line(0).text.rstrip() == full
        grid.focus()
        await pilot.press("end")
        await pilot.pause()
        assert grid.cursor == count - 1 and pane.current_job.index == count - 1
        last = grid.row_count - 1
        y = last - grid.scroll_offset.y
        assert 0 <= y < grid.size.height, "the cursor's row is scrolled into view"
        tail = count - last * grid.columns
        assert grid.render_line(y).text.rstrip() == views.JOB_GLYPHS["done"] * tail


def test_two_thousand_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _many_jobs_grid(tmp_path, 2_000, monkeypatch)


@pytest.mark.slow
def test_ten_thousand_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _many_jobs_grid(tmp_path, 10_000, monkeypatch)
