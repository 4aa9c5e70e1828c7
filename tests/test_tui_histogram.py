"""The results histogram pane, on sets the real core ran: stepping, go-to, the combined view,
folding the tail into "other (N)", and experiments that have no counts saying why."""

from __future__ import annotations

import asyncio
from pathlib import Path

from qiskit import QuantumCircuit
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Input
from textual.worker import WorkerState

from qjm_tui import JobManager, views
from qjm_tui.config import Config
from qjm_tui.core.engine import RetryPolicy
from qjm_tui.core.store import JobSetSummary, Store
from qjm_tui.tui.histogram import KEYS_HINT, HistogramBars, HistogramPane
from qjm_tui.tui.messages import CountsRead
from qjm_tui.tui.readmodel import read_combined, read_experiment
from tests.conftest import basis_state
from tests.tui_screen import cell_slice, screen_lines

NO_RETRY = RetryPolicy(max_attempts=1, base_delay=0.0, jitter=0.0)


class Host(App[None]):
    """Just the pane, focused. The pane reads nothing: what it asks for is read from ``store``
    with the read model the app's bridge uses, and given to it as the bridge gives it."""

    def __init__(self, store: Store, unicode: bool = True) -> None:
        super().__init__()
        self.store = store
        self.unicode = unicode
        self.asked: list[tuple[str, int | None]] = []

    def compose(self) -> ComposeResult:
        yield HistogramPane(unicode=self.unicode, id="histogram")

    def on_histogram_pane_counts_wanted(self, message: HistogramPane.CountsWanted) -> None:
        self.asked.append((message.set_id, message.experiment))
        if message.experiment is None:
            reading = read_combined(self.store, message.set_id, lambda: False)
        else:
            reading = read_experiment(self.store, message.set_id, message.experiment)
        assert reading is not None
        message.pane.post_message(CountsRead(message.request, reading))

    def on_mount(self) -> None:
        self.query_one(HistogramPane).focus()


def summary(store: Store, set_id: str) -> JobSetSummary:
    return store.summaries([set_id])[0]


async def settle(pilot: Pilot[None]) -> None:
    """Let the pane's reads finish and their results land on screen."""
    for _ in range(500):
        await pilot.pause()
        if not any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in pilot.app.workers):
            break
        await asyncio.sleep(0.01)
    await pilot.pause()


def bar_lines(pane: HistogramPane) -> list[list[str]]:
    """The bar lines on show, split into words (the title line left out)."""
    return [line.split() for line in pane.histogram_text().splitlines()[1:]]


def uniform(qubits: int, name: str) -> QuantumCircuit:
    qc = QuantumCircuit(qubits, qubits, name=name)
    qc.h(range(qubits))
    qc.measure(range(qubits), range(qubits))
    return qc


def test_steps_through_experiments_within_bounds(tmp_path: Path) -> None:
    asyncio.run(_steps_through_experiments_within_bounds(tmp_path))


async def _steps_through_experiments_within_bounds(tmp_path: Path) -> None:
    bits = ["000", "001", "010", "011"]
    with JobManager(tmp_path / "qjm.sqlite", config=Config(executor="threads")) as manager:
        job_set = manager.run([basis_state(b) for b in bits], backend="aer", name="basis", shots=64)
        job_set.results()
        app = Host(manager.store)
        async with app.run_test(size=(80, 20)) as pilot:
            pane = app.query_one(HistogramPane)
            assert pane.experiment is None and "No job set selected" in pane.histogram_text()
            await pilot.press("right_square_bracket", "c", "g")
            assert pane.experiment is None and not pane.combined, "no set: the keys do nothing"
            assert not app.query_one("#histogram-go-to", Input).display
            pane.show_set(summary(manager.store, job_set.job_set_id()))
            await settle(pilot)
            assert pane.experiment == 0 and not pane.combined
            assert pane.current_counts == {"000": 64}
            title = pane.histogram_text().splitlines()[0]
            assert title.startswith("Experiment 0  basis_000  64 shots"), title
            for width in (80, 61, 52, 44, 36):  # the key hints on the title line: whole ones only
                await pilot.resize_terminal(width, 20)
                await settle(pilot)
                part = app.query_one("#histogram-title").region
                shown = cell_slice(screen_lines(app)[part.y], part.x, part.right).rstrip()
                assert shown.endswith(("64 shots", *KEYS_HINT)), (width, shown)
            await pilot.resize_terminal(80, 20)
            await settle(pilot)
            # 80 columns: "000", two spaces, the bar, two spaces, "64 100.0%"
            assert bar_lines(pane) == [["000", "█" * 64, "64", "100.0%"]]
            for expected in (1, 2, 3, 3):
                await pilot.press("right_square_bracket")
                await settle(pilot)
                assert pane.experiment == expected
                assert pane.current_counts == {bits[expected]: 64}
                assert f"Experiment {expected}  basis_{bits[expected]}" in pane.histogram_text()
            for expected in (2, 1, 0, 0):
                await pilot.press("left_square_bracket")
                await settle(pilot)
                assert pane.experiment == expected and pane.current_counts == {bits[expected]: 64}
            pane.show_experiment(2)
            pane.show_set(summary(manager.store, job_set.job_set_id()))
            await settle(pilot)
            assert pane.experiment == 2, "the same set again keeps the experiment"
            pane.show_set(None)
            await settle(pilot)
            assert pane.experiment is None and pane.current_counts is None


def test_go_to_by_index_and_by_name(tmp_path: Path) -> None:
    asyncio.run(_go_to_by_index_and_by_name(tmp_path))


async def _go_to_by_index_and_by_name(tmp_path: Path) -> None:
    with JobManager(tmp_path / "qjm.sqlite", config=Config(executor="threads")) as manager:
        names = [f"c{i}" for i in range(5)] + ["[b]odd[/b]"]
        job_set = manager.run([basis_state(format(i, "03b"), name=n) for i, n in enumerate(names)],
                              backend="aer", shots=32)
        job_set.results()
        app = Host(manager.store)
        async with app.run_test(size=(80, 20)) as pilot:
            pane = app.query_one(HistogramPane)
            pane.show_set(summary(manager.store, job_set.job_set_id()))
            await settle(pilot)
            box = app.query_one("#histogram-go-to", Input)
            assert not box.display
            await pilot.press("g")
            assert box.display and box.has_focus
            await pilot.press("4", "enter")
            await settle(pilot)
            assert pane.experiment == 4 and pane.current_counts == {"100": 32}
            assert not box.display and pane.has_focus
            await pilot.press("g", *"c2", "enter")
            await settle(pilot)
            assert pane.experiment == 2 and pane.current_counts == {"010": 32}
            await pilot.press("g", *"[b]odd[/b]", "enter")
            await settle(pilot)
            assert pane.experiment == 5 and pane.current_counts == {"101": 32}
            shown = str(app.query_one("#histogram-title").render())
            assert shown.startswith("Experiment 5  [b]odd[/b]  32 shots"), "a name is never markup"
            await pilot.press("g", *"nope", "enter")
            await settle(pilot)
            assert box.display, "an unknown name leaves the box open to correct it"
            assert pane.histogram_text().splitlines()[-1] == (
                "no experiment 'nope' in this job set (it has experiments 0 to 5)")
            await pilot.press("ctrl+u", *"9", "enter")
            await settle(pilot)
            assert "no experiment 9 in this job set" in pane.histogram_text()
            await pilot.press("escape")
            await settle(pilot)
            assert not box.display and pane.has_focus and pane.experiment == 5
            assert "no experiment" not in pane.histogram_text()


def test_combined_view_sums_every_experiment(tmp_path: Path) -> None:
    asyncio.run(_combined_view_sums_every_experiment(tmp_path))


async def _combined_view_sums_every_experiment(tmp_path: Path) -> None:
    bits = ["00", "01", "01", "11", "01"]
    with JobManager(tmp_path / "qjm.sqlite", config=Config(executor="threads")) as manager:
        job_set = manager.run([basis_state(b, name=f"e{i}") for i, b in enumerate(bits)],
                              backend="aer", shots=100, max_experiments_per_job=2)
        job_set.results()
        app = Host(manager.store, unicode=False)
        async with app.run_test(size=(80, 20)) as pilot:
            pane = app.query_one(HistogramPane)
            pane.show_set(summary(manager.store, job_set.job_set_id()))
            await pilot.press("right_square_bracket")
            await settle(pilot)
            await pilot.press("c")
            await settle(pilot)
            assert pane.combined and pane.experiment == 1
            assert pane.current_counts == {"00": 100, "01": 300, "11": 100}
            assert pane.histogram_text().splitlines()[0].startswith(
                "Combined  5 of 5 experiments  500 shots")
            assert [line[0] for line in bar_lines(pane)] == ["01", "00", "11"], "most frequent first"
            assert [line[2:] for line in bar_lines(pane)] == [["300", "60.0%"], ["100", "20.0%"],
                                                              ["100", "20.0%"]]
            # 80 columns less "01", "300", "60.0%" and the gaps leave 64 for the longest bar
            assert [line[1] for line in bar_lines(pane)] == ["#" * 64, views.bar(1 / 3, 64, False),
                                                             views.bar(1 / 3, 64, False)]
            await pilot.press("c")
            await settle(pilot)
            assert not pane.combined and pane.current_counts == {"01": 100}
            await pilot.press("c", "right_square_bracket")
            await settle(pilot)
            assert not pane.combined and pane.experiment == 1, "stepping leaves the combined view"


def test_folds_the_tail_into_other(tmp_path: Path) -> None:
    asyncio.run(_folds_the_tail_into_other(tmp_path))


async def _folds_the_tail_into_other(tmp_path: Path) -> None:
    with JobManager(tmp_path / "qjm.sqlite", config=Config(executor="threads")) as manager:
        job_set = manager.run([uniform(6, "uniform")], backend="aer", shots=4000)
        expected = dict(job_set.results().get_counts(0))
        assert len(expected) == 64
        app = Host(manager.store)
        async with app.run_test(size=(80, 16)) as pilot:
            pane = app.query_one(HistogramPane)
            pane.show_set(summary(manager.store, job_set.job_set_id()))
            await settle(pilot)
            assert pane.current_counts == expected
            rows = app.query_one(HistogramBars).content_size.height
            lines = bar_lines(pane)
            assert len(lines) == rows == 15, "one line for the title, every other line a bar"
            ordered = sorted(expected.items(), key=lambda kv: (-kv[1], kv[0]))
            assert [(line[0], int(line[2])) for line in lines[:-1]] == ordered[:rows - 1]
            other = lines[-1]
            assert other[:2] == ["other", f"({64 - (rows - 1)})"]
            folded = sum(count for _, count in ordered[rows - 1:])
            assert other[3] == f"{folded:,}", "counts with thousands separators"
            assert sum(int(line[2]) for line in lines[:-1]) + folded == 4000
            await pilot.resize_terminal(80, 10)
            await settle(pilot)
            assert len(bar_lines(pane)) == 9 and bar_lines(pane)[-1][1] == "(56)", "refolded to fit"


def test_failed_job_shows_its_error(tmp_path: Path) -> None:
    asyncio.run(_failed_job_shows_its_error(tmp_path))


async def _failed_job_shows_its_error(tmp_path: Path) -> None:
    failing = f"emulator:dir={tmp_path / 'emu'},latency=0,queue=0,run=0,fail=1.0"
    with JobManager(tmp_path / "qjm.sqlite", config=Config(executor="threads"),
                    retry_policy=NO_RETRY) as manager:
        job_set = manager.run([basis_state("01"), basis_state("10")], backend=failing, shots=16,
                              max_experiments_per_job=1)
        job_set.results(partial=True)
        jobs = manager.store.jobs(job_set.job_set_id())
        assert [j.status for j in jobs] == ["failed", "failed"] and jobs[1].last_error
        app = Host(manager.store)
        async with app.run_test(size=(100, 20)) as pilot:
            pane = app.query_one(HistogramPane)
            pane.show_set(summary(manager.store, job_set.job_set_id()))
            await pilot.press("right_square_bracket")
            await settle(pilot)
            assert pane.current_counts is None
            text = " ".join(pane.histogram_text().split())
            assert f"Job 1 (experiment 1) failed: {jobs[1].last_error}" in text
            await pilot.press("c")
            await settle(pilot)
            assert "No experiment of this job set has counts." in pane.histogram_text()


def test_experiment_failed_inside_a_finished_job(tmp_path: Path) -> None:
    asyncio.run(_experiment_failed_inside_a_finished_job(tmp_path))


async def _experiment_failed_inside_a_finished_job(tmp_path: Path) -> None:
    # Aer runs the small circuits and fails the one that needs more memory than it may use,
    # all in one job: the job is marked failed and the other experiments keep their counts.
    too_big = QuantumCircuit(24, name="too_big")
    too_big.h(range(24))
    too_big.t(range(24))
    too_big.measure_all()
    with JobManager(tmp_path / "qjm.sqlite", config=Config(executor="threads")) as manager:
        job_set = manager.run([basis_state("01"), too_big, basis_state("10")], backend="aer",
                              shots=50, max_memory_mb=16, max_experiments_per_job=3)
        job_set.results(partial=True)
        app = Host(manager.store)
        async with app.run_test(size=(100, 20)) as pilot:
            pane = app.query_one(HistogramPane)
            pane.show_set(summary(manager.store, job_set.job_set_id()))
            await pilot.press("right_square_bracket")
            await settle(pilot)
            text = " ".join(pane.histogram_text().split())
            assert pane.current_counts is None
            assert "Experiment 1 failed on the backend:" in text and "Insufficient memory" in text
            await pilot.press("right_square_bracket")
            await settle(pilot)
            assert pane.current_counts == {"10": 50}
            await pilot.press("c")
            await settle(pilot)
            assert pane.current_counts == {"01": 50, "10": 50}
            assert pane.histogram_text().startswith("Combined  2 of 3 experiments  100 shots")


def test_running_set_shows_bars_once_its_results_arrive(tmp_path: Path) -> None:
    asyncio.run(_running_set_shows_bars_once_its_results_arrive(tmp_path))


async def _running_set_shows_bars_once_its_results_arrive(tmp_path: Path) -> None:
    slow = f"emulator:dir={tmp_path / 'emu'},latency=0,queue=0,run=1.5"
    with JobManager(tmp_path / "qjm.sqlite", config=Config(executor="threads")) as manager:
        job_set = manager.run([basis_state("110"), basis_state("011")], backend=slow, shots=20,
                              max_experiments_per_job=2)
        set_id = job_set.job_set_id()
        app = Host(manager.store)
        async with app.run_test(size=(100, 20)) as pilot:
            pane = app.query_one(HistogramPane)
            pane.show_set(summary(manager.store, set_id))
            await settle(pilot)
            text = pane.histogram_text()
            assert pane.current_counts is None
            assert any(f"No counts yet: job 0 (experiments 0-1) is {status}." in text
                       for status in ("pending", "submitting", "queued", "running")), text
            job_set.results()
            pane.refresh_set(summary(manager.store, set_id))
            await settle(pilot)
            assert pane.current_counts == {"110": 20}
            assert pane.histogram_text().startswith("Experiment 0  basis_110  20 shots")
            asked = len(app.asked)
            pane.refresh_set(summary(manager.store, set_id))
            await settle(pilot)
            assert len(app.asked) == asked, "counts on show do not change: nothing to re-read"
            await pilot.press("c")
            await settle(pilot)
            assert pane.current_counts == {"110": 20, "011": 20}
            pane.refresh_set(summary(manager.store, set_id))
            await settle(pilot)
            assert app.asked[asked + 1:] == [(set_id, None)], \
                "the combined view may change with every new result"
