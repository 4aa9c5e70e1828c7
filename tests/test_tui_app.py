"""The app lists job sets run by the real core, newest first, and picks up new ones live."""

from __future__ import annotations

import asyncio
from pathlib import Path

from qiskit import QuantumCircuit
from textual.widgets import DataTable, HelpPanel

from qjm_tui import JobManager
from qjm_tui.config import Config
from qjm_tui.core.engine import RetryPolicy
from qjm_tui.tui.app import make_app


def _bell() -> QuantumCircuit:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return qc


def test_lists_sets_and_sees_a_new_one(tmp_path: Path) -> None:
    asyncio.run(_lists_sets_and_sees_a_new_one(tmp_path))


async def _lists_sets_and_sees_a_new_one(tmp_path: Path) -> None:
    store = tmp_path / "qjm.sqlite"
    with JobManager(store, config=Config(executor="threads")) as manager:
        manager.run([_bell()] * 3, backend="aer", name="first", shots=64).results()
    app = make_app(store, config=Config(executor="threads"), watch_interval=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.3)
        table = app.query_one("#sets", DataTable)
        assert table.row_count == 1
        assert "first" in str(table.get_row_at(0)[1])
        with JobManager(store, config=Config(executor="threads")) as other:
            other.run([_bell()] * 2, backend="aer", name="second", shots=64).results()
        for _ in range(30):
            await pilot.pause(0.1)
            if table.row_count == 2:
                break
        assert table.row_count == 2
        assert "second" in str(table.get_row_at(0)[1]), "newest set is listed first"
        assert "done" in str(table.get_row_at(0)[7])
        await pilot.press("down")
        await pilot.pause(0.1)
        assert "first" in str(app.query_one("#details").render()), "the cursor drives the details"
        app._redraw()
        await pilot.pause(0.2)
        assert "first" in str(app.query_one("#details").render()), "a refresh keeps the cursor"
        await pilot.press("q")
    assert app.return_code in (0, None)


def test_empty_store_says_how_to_start(tmp_path: Path) -> None:
    asyncio.run(_empty_store_says_how_to_start(tmp_path))


async def _empty_store_says_how_to_start(tmp_path: Path) -> None:
    app = make_app(tmp_path / "qjm.sqlite", config=Config(executor="threads"), watch_interval=0.1)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        assert "qjm demo" in str(app.query_one("#empty").render())
        await pilot.press("question_mark")
        await pilot.pause(0.2)
        assert app.query(HelpPanel), "? opens the list of keys"


def test_filter_by_state_and_name(tmp_path: Path) -> None:
    asyncio.run(_filter_by_state_and_name(tmp_path))


async def _filter_by_state_and_name(tmp_path: Path) -> None:
    store = tmp_path / "qjm.sqlite"
    failing = f"emulator:dir={tmp_path / 'emu'},latency=0,queue=0,run=0,fail=1.0"
    with JobManager(store, config=Config(executor="threads"),
                    retry_policy=RetryPolicy(max_attempts=1, base_delay=0.0, jitter=0.0)) as manager:
        manager.run([_bell()] * 2, backend="aer", name="good", shots=32).results()
        bad = manager.run([_bell()] * 2, backend=failing, name="bad", shots=32)
        bad.results(partial=True)
    app = make_app(store, config=Config(executor="threads"), watch_interval=0.1)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        table = app.query_one("#sets", DataTable)
        assert table.row_count == 2
        await pilot.press("slash", *"state:failed")
        await pilot.pause(0.1)
        assert table.row_count == 1, (app.query_one("#filter").value,
                                      [s.state for s in app._rows.values()])
        assert "bad" in str(table.get_row_at(0)[1])
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert table.row_count == 2
        await pilot.press("slash", *"goo")
        await pilot.pause(0.1)
        assert [str(table.get_row_at(i)[1]) for i in range(table.row_count)] == ["good"]
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert [str(table.get_row_at(i)[1]) for i in range(2)] == ["bad", "good"], "newest first"
        await pilot.press("s")
        await pilot.pause(0.1)
        assert [str(table.get_row_at(i)[1]) for i in range(2)] == ["bad", "good"], "by name"
        await pilot.press("s")
        await pilot.pause(0.1)
        assert [str(table.get_row_at(i)[7]) for i in range(2)] == ["done", "failed"], "by state"
