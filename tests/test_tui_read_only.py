"""The read-only app (``qjm --read-only``, ``qjm serve --read-only``): every action that changes
anything is off and out of sight (keys, footer, help, palette), refused when reached another
way, and the store itself is opened read-only, so a write that got through would fail too.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from qiskit import QuantumCircuit
from textual.pilot import Pilot
from textual.screen import ModalScreen

from qjm_tui import JobManager
from qjm_tui.config import Config
from qjm_tui.core.errors import StoreError
from qjm_tui.core.store import Store
from qjm_tui.tui.actions import READ_ONLY_REFUSAL, SET_BINDINGS
from qjm_tui.tui.app import QjmApp, make_app
from qjm_tui.tui.help import HelpScreen

THREADS = Config(executor="threads")

#: the job-set actions that change something (the store, a file, a running set)
CHANGING = {"new_job_set", "cancel_job_set", "retry_job_set", "resume_job_set", "rename_job_set",
            "tag_job_set", "export_job_set", "delete_job_set", "save_histogram"}


def bell(name: str) -> QuantumCircuit:
    qc = QuantumCircuit(2, name=name)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return qc


def a_done_set(store: Path) -> str:
    with JobManager(store, config=THREADS) as manager:
        job_set = manager.run([bell(f"b{i}") for i in range(3)], backend="aer", name="first", shots=32)
        job_set.results()
        return job_set.job_set_id()


def change_number(store: Path) -> int:
    reader = Store(store, read_only=True)
    try:
        return reader.change_seq()
    finally:
        reader.close()


async def until(pilot: Pilot[int], check, timeout: float = 15.0) -> None:  # noqa: ANN001
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "timed out waiting"
        await pilot.pause(0.05)


def keys_of(action: str) -> str:
    return next(b.key for b in SET_BINDINGS if b.action == action)


def test_the_actions_that_change_something_are_exactly_the_marked_ones() -> None:
    marked = {b.action for b in SET_BINDINGS
              if getattr(getattr(QjmApp, f"action_{b.action}"), "changes_things", False)}
    assert marked == CHANGING
    assert {b.action for b in SET_BINDINGS} - marked == {"copy_job_set_id"}


def test_a_read_only_app_offers_and_does_nothing_that_changes_anything(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "qjm.sqlite"
    set_id = a_done_set(store)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = change_number(store)
    asyncio.run(_read_only(store, set_id))
    assert change_number(store) == before
    assert os.listdir(work) == [], "nothing written where the app runs"


async def _read_only(store: Path, set_id: str) -> None:
    app = make_app(store, config=THREADS, watch_interval=0.1, read_only=True)
    assert app.manager.store.read_only
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.selected_summary() is not None)
        assert app.title == "qjm (read-only)"

        # keys: none of them opens anything or says anything
        for action in sorted(CHANGING):
            await pilot.press(keys_of(action))
            await pilot.pause(0.05)
            assert not isinstance(app.screen, ModalScreen), action
        assert not app._notifications

        # the footer, the help and the palette do not offer them
        active = {b.binding.action for b in app.screen.active_bindings.values()}
        assert not active & CHANGING
        assert "copy_job_set_id" in active
        help_lines = [d for _, rows in app._help_rows() for _, d in rows]
        set_lines = {b.action: f"{b.description}: {b.tooltip}" for b in SET_BINDINGS}
        assert not {set_lines[action] for action in CHANGING} & set(help_lines)
        assert set_lines["copy_job_set_id"] in help_lines
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert not {t for t in titles if t.startswith("Job set: ") and t != "Job set: Copy id"}
        assert "Screenshot" not in titles and "Job set: Copy id" in titles
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")

        # reached another way (an action string, or the method itself): refused, and said so
        for action in sorted(CHANGING):
            assert await app.run_action(action) is False
            getattr(app, f"action_{action}")()
            await pilot.pause(0.05)
            assert not isinstance(app.screen, ModalScreen), action
        refusals = [n for n in app._notifications if n.message == READ_ONLY_REFUSAL]
        assert len(refusals) == len(CHANGING)

        # and the store would refuse a write that got past all of that
        with pytest.raises(StoreError, match="read-only"):
            app.manager.rename_job_set(set_id, "sneaky")


def test_the_same_app_not_read_only_offers_every_action(tmp_path: Path) -> None:
    store = tmp_path / "qjm.sqlite"
    a_done_set(store)
    asyncio.run(_writable(store))


async def _writable(store: Path) -> None:
    app = make_app(store, config=THREADS, watch_interval=0.1)
    assert not app.manager.store.read_only
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.selected_summary() is not None)
        active = {b.binding.action for b in app.screen.active_bindings.values()}
        assert CHANGING <= active
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {f"Job set: {b.description}" for b in SET_BINDINGS} <= titles
        assert "Screenshot" in titles
        help_lines = {d for _, rows in app._help_rows() for _, d in rows}
        assert {f"{b.description}: {b.tooltip}" for b in SET_BINDINGS} <= help_lines
        await pilot.press(keys_of("rename_job_set"))
        await until(pilot, lambda: isinstance(app.screen, ModalScreen))
        await pilot.press("escape")
