"""The command line's progress follows the change feed: events for sets this process runs, the
store's change number for sets another manager (or process) runs; redraws are coalesced."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from qjm_tui import JobManager
from qjm_tui.cli.progress import ChangeWatch, LineView, NullView, follow
from qjm_tui.config import Config
from qjm_tui.core.events import Event, JobStatusChanged
from qjm_tui.core.progress import Progress

from .conftest import bell


class RecordingView(NullView):
    """Keeps every update the follower draws (the display under test is the follower's)."""

    def __init__(self) -> None:
        self.updates: list[tuple[Progress, bool]] = []

    def update(self, p: Progress, final: bool = False) -> None:
        self.updates.append((p, final))


def count_events(manager: JobManager) -> list[Event]:
    events: list[Event] = []
    manager.subscribe(events.append)
    return events


def test_a_set_run_here_is_followed_from_its_events(manager: JobManager) -> None:
    events = count_events(manager)
    job_set = manager.run([bell(f"b{i}") for i in range(40)], backend="aer", shots=32,
                          max_experiments_per_job=1)
    view = RecordingView()
    assert follow(manager, job_set, "bar", view=view) == "done"
    *drawn, (last, final) = view.updates
    assert final and (last.finished_jobs, last.total_jobs, last.experiments_done) == (40, 40, 40)
    assert not any(f for _, f in drawn)
    finished = [p.finished_jobs for p, _ in view.updates]
    assert finished == sorted(finished)  # never goes back
    status_changes = [e for e in events if isinstance(e, JobStatusChanged)]
    assert len(status_changes) >= 80  # each job at least submitted and done
    assert len(view.updates) < len(status_changes) / 2


def test_a_set_run_by_another_manager_is_followed_through_the_store(store_path: Path) -> None:
    runner = JobManager(store_path, config=Config(executor="threads"))
    watcher = JobManager(store_path, config=Config(executor="threads"))
    try:
        watcher_events = count_events(watcher)
        job_set = runner.run([bell(f"b{i}") for i in range(30)], backend="emulator:latency=0.01,queue=0.05,"
                             "run=0.02,max_jobs=30", shots=32, max_experiments_per_job=1)
        view = RecordingView()
        assert follow(watcher, watcher.retrieve_job_set(job_set.job_set_id()), "bar", view=view) == "done"
        assert watcher_events == []  # nothing reached the watcher's bus: it read the store
        last, final = view.updates[-1]
        assert final and (last.finished_jobs, last.total_jobs) == (30, 30)
        assert len(view.updates) < 30
    finally:
        runner.close(cancel=True)
        watcher.close(cancel=True)


def test_the_store_watch_wakes_only_for_its_set(store_path: Path) -> None:
    runner = JobManager(store_path, config=Config(executor="threads"))
    watcher = JobManager(store_path, config=Config(executor="threads"))
    try:
        mine = runner.run([bell()], backend="aer", shots=16)
        other = runner.run([bell()], backend="aer", shots=16)
        mine.wait(timeout=60)
        other.wait(timeout=60)
        with ChangeWatch(watcher, mine.job_set_id(), poll=0.05) as watch:
            assert watch.wait(0.2) is False  # nothing changed
            other.update_name("someone else's")
            assert watch.wait(0.2) is False
            rename = threading.Timer(0.1, mine.update_name, ("renamed",))
            rename.start()
            started = time.monotonic()
            assert watch.wait(5.0) is True
            assert time.monotonic() - started < 2.0
            rename.join(10)
    finally:
        runner.close(cancel=True)
        watcher.close(cancel=True)


def test_plain_lines_end_with_every_job_done(manager: JobManager, capsys: pytest.CaptureFixture[str]) -> None:
    job_set = manager.run([bell(f"b{i}") for i in range(12)], backend="aer", shots=32,
                          max_experiments_per_job=3)
    jid = job_set.job_set_id()
    assert follow(manager, job_set, "lines", view=LineView(jid)) == "done"
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(line.startswith(f"qjm: {jid}: ") for line in lines)
    assert lines[-1].startswith(f"qjm: {jid}: done: 4/4 jobs done, 12/12 experiments, ")
