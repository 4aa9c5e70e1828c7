"""The bridge between the store and the app's widgets: what it reads arrives as typed messages,
what piles up is carried by the newest message (and Textual drops the older ones), changes made
while a set's jobs were being read are not lost, and no widget holds a store."""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from qiskit import QuantumCircuit
from textual.app import App
from textual.pilot import Pilot

from qjm_tui import JobManager
from qjm_tui.config import Config
from qjm_tui.core.status import JobStatus
from qjm_tui.core.store import JobRow, JobSetSummary, Store
from qjm_tui.tui.bridge import Unapplied
from qjm_tui.tui.grid import SetPane
from qjm_tui.tui.messages import JobStatusesChanged, SetsChanged
from tests.bridged import BridgedSetPane

TUI = Path(__file__).resolve().parents[1] / "qjm_tui" / "tui"


def _circuit() -> QuantumCircuit:
    qc = QuantumCircuit(1, 1)
    qc.measure(0, 0)
    return qc


@pytest.fixture(name="finished")
def finished_fixture(tmp_path: Path) -> tuple[Path, str]:
    """A store holding one finished set of 40 one-circuit jobs."""
    path = tmp_path / "qjm.sqlite"
    with JobManager(path, config=Config(executor="threads")) as manager:
        job_set = manager.run([_circuit()] * 40, backend="aer", name="forty", shots=4,
                              max_experiments_per_job=1)
        job_set.results()
        return path, job_set.job_set_id()


# -- what piles up ---------------------------------------------------------------------------


def test_the_newest_message_carries_all_that_is_unapplied(finished: tuple[Path, str]) -> None:
    path, set_id = finished
    store = Store(path)
    summary = store.summaries([set_id])[0]
    rows = store.jobs(set_id)
    store.close()
    other = dataclasses.replace(summary, id="other-set")

    def row(index: int, seq: int, status: JobStatus) -> JobRow:
        return dataclasses.replace(rows[index], seq=seq, status=status)

    unapplied = Unapplied()
    unapplied.watch(set_id)
    assert unapplied.add([], []) is None, "a look that found nothing posts nothing"
    first = unapplied.add([summary], [], [row(0, 5, JobStatus.RUNNING)], 5)
    second = unapplied.add([other], ["gone"], [row(0, 7, JobStatus.DONE), row(1, 6, JobStatus.RUNNING)], 7)
    assert first is not None and second is not None
    assert first.can_replace(second) and not first.can_replace(JobStatusesChanged(set_id, [], 0, full=True))
    # the second carries the first's set and the newest row of each job
    assert {s.id for s in second.summaries} == {set_id, "other-set"} and second.deleted == ["gone"]
    assert second.jobs is not None and second.jobs.set_id == set_id and second.jobs.seq == 7
    assert [(r.index, r.seq, r.status) for r in second.jobs.rows] == [(0, 7, "done"), (1, 6, "running")]
    # a row older than the one held does not replace it
    third = unapplied.add([], [], [row(0, 6, JobStatus.QUEUED)], 6)
    assert third is not None and third.jobs is not None
    assert [(r.index, r.seq) for r in third.jobs.rows] == [(0, 7), (1, 6)]

    # the app applied the first (the others were still on their way): what only it carried is
    # forgotten, what came after is carried on
    unapplied.applied(first.generation)
    fourth = unapplied.add([], ["also-gone"])
    assert fourth is not None
    assert {s.id for s in fourth.summaries} == {"other-set"}
    assert sorted(fourth.deleted) == ["also-gone", "gone"]
    assert fourth.jobs is not None and [(r.index, r.seq) for r in fourth.jobs.rows] == [(0, 7), (1, 6)]
    unapplied.applied(fourth.generation)
    fifth = unapplied.add([summary], [])
    assert fifth is not None and fifth.summaries == [summary] and fifth.deleted == [] and fifth.jobs is None
    # the pane shows another set: the changed jobs held for the old one are dropped
    unapplied.add([], [], [row(3, 9, JobStatus.DONE)], 9)
    unapplied.watch("other-set")
    sixth = unapplied.add([other], [])
    assert sixth is not None and sixth.jobs is None


class _Counter(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.applied: list[int] = []

    def on_sets_changed(self, message: SetsChanged) -> None:
        self.applied.append(message.generation)


def test_messages_that_pile_up_are_applied_once_the_newest() -> None:
    async def run() -> None:
        app = _Counter()
        async with app.run_test() as pilot:
            # posted while the app is busy (in this call): they wait in its queue together
            def post_three() -> None:
                for generation in (1, 2, 3):
                    app.post_message(SetsChanged(generation, [], []))

            app.call_later(post_three)
            await pilot.pause()
            await pilot.pause()
            assert app.applied == [3]
            app.post_message(SetsChanged(4, [], []))
            await pilot.pause()
            assert app.applied == [3, 4]

    asyncio.run(run())


# -- the bridge on a real store --------------------------------------------------------------


async def _until(pilot: Pilot[None], condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.02)


def _summary(store: Store, set_id: str) -> JobSetSummary:
    return store.summaries([set_id])[0]


def test_changes_from_another_process_arrive_as_one_message(finished: tuple[Path, str]) -> None:
    path, set_id = finished

    async def run() -> None:
        other = Store(path)  # writes as another process would: no event reaches this one
        with JobManager(path, config=Config(executor="threads")) as manager:
            app = BridgedSetPane(manager)
            async with app.run_test(size=(60, 20)) as pilot:
                pane = app.query_one(SetPane)
                await _until(pilot, lambda: app.bridge.idle, "the first look")
                assert [s.id for m in app.messages for s in m.summaries] == [set_id]
                pane.show_set(_summary(other, set_id))
                await _until(pilot, lambda: pane.grid.cell_count == 40, "the set's jobs")
                app.messages.clear()

                other.set_jobs_status(set_id, [3, 17, 30], JobStatus.RUNNING)
                app.bridge.look()
                await _until(pilot, lambda: all(pane.grid.status(i) == "running" for i in (3, 17, 30)),
                             "the grid to show the changes")
                [message] = app.messages
                assert [s.id for s in message.summaries] == [set_id]
                assert message.summaries[0].counts.get("running") == 3
                assert message.jobs is not None and [r.index for r in message.jobs.rows] == [3, 17, 30]
                assert pane.summary is not None and pane.summary.counts.get("running") == 3

                app.messages.clear()
                app.bridge.look()
                await _until(pilot, lambda: app.bridge.idle, "a look that finds nothing")
                assert app.messages == [], "nothing changed, nothing posted"
        other.close()

    asyncio.run(run())


def test_changes_made_while_the_jobs_are_read_are_not_lost(finished: tuple[Path, str]) -> None:
    """The read of all the set's jobs takes long (a big set, a busy disk) and the set changes
    meanwhile: the look that sees the change cannot read the changed jobs yet; they are read
    as soon as the read of all of them lands, with no further change to the set."""
    path, set_id = finished

    async def run() -> None:
        other = Store(path)
        with JobManager(path, config=Config(executor="threads")) as manager:
            app = BridgedSetPane(manager)
            store = app.bridge.store
            read_all = store.jobs
            release = threading.Event()
            reading = threading.Event()

            def slow_jobs(job_set_id: str) -> list[JobRow]:
                rows = read_all(job_set_id)  # read now, handed over late
                reading.set()
                release.wait(20)
                return rows

            store.jobs = slow_jobs  # type: ignore[method-assign]
            async with app.run_test(size=(60, 20)) as pilot:
                pane = app.query_one(SetPane)
                await _until(pilot, lambda: app.bridge.idle, "the first look")
                pane.show_set(_summary(other, set_id))
                await _until(pilot, reading.is_set, "the read of all the jobs to start")
                other.set_jobs_status(set_id, [5, 6], JobStatus.CANCELLED)
                app.bridge.look()
                await _until(pilot, lambda: app.bridge.idle and app.messages[-1].summaries[0]
                             .counts.get("cancelled") == 2, "the look that sees the change")
                assert app.messages[-1].jobs is None, "the jobs are still being read"
                release.set()
                await _until(pilot, lambda: pane.grid.cell_count == 40, "the jobs read")
                await _until(pilot, lambda: pane.grid.status(5) == pane.grid.status(6) == "cancelled",
                             "the changes made meanwhile")
                assert all(pane.grid.status(i) == "done" for i in range(40) if i not in (5, 6))
        other.close()

    asyncio.run(run())


# -- no widget reads the store ---------------------------------------------------------------


def test_no_widget_holds_or_reads_a_store() -> None:
    """Only the bridge and its read model read the store; the app's actions go through the
    manager. No other module of the app imports the Store class or reaches for ``.store`` (a
command line's ``args.store`` is a path)."""
    allowed = {"bridge.py", "readmodel.py", "app.py", "actions.py"}
    found: list[str] = []
    for path in sorted(TUI.glob("*.py")):
        if path.name in allowed:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and any(a.name == "Store" for a in node.names):
                found.append(f"{path.name}:{node.lineno} imports Store")
            if (isinstance(node, ast.Attribute) and node.attr == "store"
                    and not (isinstance(node.value, ast.Name) and node.value.id == "args")):
                found.append(f"{path.name}:{node.lineno} reads .store")
    assert found == []
