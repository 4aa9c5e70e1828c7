"""The app as a whole: the browser lists sets run by the real core, panes follow the selection,
sets run by another process appear and finish live, engine events are coalesced, every key is
in the help and the palette, and an unexpected error goes to the log, not the screen."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from qiskit import QuantumCircuit, qasm2

from qjm_tui import JobManager
from qjm_tui.config import Config
from qjm_tui.core.engine import RetryPolicy
from qjm_tui.tui.app import SET_GROUP, QjmApp, make_app
from qjm_tui.tui.browser import SetBrowser
from qjm_tui.tui.help import HelpScreen


def _bell() -> QuantumCircuit:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return qc


def _column(app: QjmApp, key: str) -> list[str]:
    """One column of the browser's list, top to bottom, as plain text (uncut)."""
    table = app.query_one(SetBrowser).table
    return [table.cells[set_id][key] for set_id in table.order]


def _names(app: QjmApp) -> list[str]:
    return _column(app, "name")


async def _until(pilot, condition, timeout: float = 10.0) -> bool:  # noqa: ANN001
    for _ in range(int(timeout / 0.05)):
        if condition():
            return True
        await pilot.pause(0.05)
    return condition()


def test_lists_sets_and_sees_a_new_one(tmp_path: Path) -> None:
    asyncio.run(_lists_sets_and_sees_a_new_one(tmp_path))


async def _lists_sets_and_sees_a_new_one(tmp_path: Path) -> None:
    store = tmp_path / "qjm.sqlite"
    with JobManager(store, config=Config(executor="threads")) as manager:
        manager.run([_bell()] * 3, backend="aer", name="first", shots=64).results()
    app = make_app(store, config=Config(executor="threads"), watch_interval=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        assert await _until(pilot, lambda: _names(app) == ["first"])
        with JobManager(store, config=Config(executor="threads")) as other:
            other.run([_bell()] * 2, backend="aer", name="second", shots=64).results()
        assert await _until(pilot, lambda: len(_names(app)) == 2)
        assert _names(app) == ["second", "first"], "newest set is listed first"
        assert "done" in _column(app, "state")[0]
        assert app.selected_summary().name == "first", "the cursor stays on its set"
        await pilot.press("up")
        assert await _until(pilot, lambda: app.selected_summary().name == "second"), \
            "the cursor selects the set for the other panes"
        await pilot.press("down")
        assert await _until(pilot, lambda: app.selected_summary().name == "first")
        app.query_one(SetBrowser).redraw()
        await pilot.pause(0.1)
        assert app.selected_summary().name == "first", "a refresh keeps the cursor"
        await pilot.press("q")
    assert app.return_code in (0, None)


def test_empty_store_says_how_to_start_and_help_lists_every_key(tmp_path: Path) -> None:
    asyncio.run(_empty_store_and_help(tmp_path))


async def _empty_store_and_help(tmp_path: Path) -> None:
    app = make_app(tmp_path / "qjm.sqlite", config=Config(executor="threads"), watch_interval=0.1)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        assert "qjm demo" in str(app.query_one("#empty").render())
        active = [b.binding for b in app.active_bindings.values() if b.binding.description]
        await pilot.press("question_mark")
        await pilot.pause(0.2)
        assert isinstance(app.screen, HelpScreen), "? opens the list of keys"
        listed = {description for _, rows in app.screen.groups for _, description in rows}
        for binding in active:
            if binding.show or binding.id:
                assert any(d.split(":")[0] == binding.description for d in listed), binding
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, HelpScreen)


def test_filter_by_state_and_name_and_sort(tmp_path: Path) -> None:
    asyncio.run(_filter_by_state_and_name(tmp_path))


async def _filter_by_state_and_name(tmp_path: Path) -> None:
    store = tmp_path / "qjm.sqlite"
    failing = f"emulator:dir={tmp_path / 'emu'},latency=0,queue=0,run=0,fail=1.0"
    with JobManager(store, config=Config(executor="threads"),
                    retry_policy=RetryPolicy(max_attempts=1, base_delay=0.0, jitter=0.0)) as manager:
        manager.run([_bell()] * 2, backend="aer", name="good", shots=32, job_tags=["nightly"]).results()
        bad = manager.run([_bell()] * 2, backend=failing, name="bad", shots=32)
        bad.results(partial=True)
    app = make_app(store, config=Config(executor="threads"), watch_interval=0.1)
    async with app.run_test(size=(80, 24)) as pilot:
        assert await _until(pilot, lambda: len(_names(app)) == 2)
        await pilot.press("slash", *"state:failed")
        await pilot.pause(0.1)
        assert _names(app) == ["bad"]
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert _names(app) == ["bad", "good"], "newest first"
        await pilot.press("slash", *"tag:nightly")
        await pilot.pause(0.1)
        assert _names(app) == ["good"]
        await pilot.press("escape", "slash", *"goo")
        await pilot.pause(0.1)
        assert _names(app) == ["good"]
        await pilot.press("escape")
        await pilot.press("s")
        await pilot.pause(0.1)
        assert [s.split()[-1] for s in _column(app, "state")] == ["failed", "done"], \
            "by state: the sets that want a look first"
        await pilot.press("S")
        await pilot.pause(0.1)
        assert [s.split()[-1] for s in _column(app, "state")] == ["done", "failed"], "reversed"
        await pilot.press("s")
        await pilot.pause(0.1)
        assert _names(app) == ["bad", "good"], "by name"


def test_panes_switch_at_80x24_and_all_show_at_120x40(tmp_path: Path) -> None:
    asyncio.run(_panes(tmp_path))


async def _panes(tmp_path: Path) -> None:
    store = tmp_path / "qjm.sqlite"
    with JobManager(store, config=Config(executor="threads")) as manager:
        manager.run([_bell()] * 2, backend="aer", name="one", shots=32).results()
    app = make_app(store, config=Config(executor="threads"), watch_interval=0.1)
    async with app.run_test(size=(80, 24)) as pilot:
        assert await _until(pilot, lambda: _names(app) == ["one"])
        shown = lambda: [p for p in ("browser", "set-pane", "histogram")  # noqa: E731
                         if app.query_one(f"#{p}").region.area]
        assert shown() == ["browser"]
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert shown() == ["set-pane"], "Enter opens the set's jobs"
        await pilot.press("tab")
        await pilot.pause(0.1)
        assert shown() == ["histogram"]
        await pilot.press("tab")
        await pilot.pause(0.1)
        assert shown() == ["browser"], "Tab wraps around"
        await pilot.press("3")
        await pilot.pause(0.1)
        assert shown() == ["histogram"]
        await pilot.press("1")
        await pilot.pause(0.1)
        assert shown() == ["browser"]
        await pilot.resize_terminal(120, 40)
        await pilot.pause(0.2)
        assert shown() == ["browser", "set-pane", "histogram"], "wide screens show all three"
        await pilot.press("2")
        await pilot.pause(0.1)
        assert app.focused is not None and app.query_one("#set-pane") in (app.focused, *app.focused.ancestors)


def test_palette_offers_every_action_and_jumps_to_a_set(tmp_path: Path) -> None:
    asyncio.run(_palette(tmp_path))


async def _palette(tmp_path: Path) -> None:
    store = tmp_path / "qjm.sqlite"
    with JobManager(store, config=Config(executor="threads")) as manager:
        manager.run([_bell()], backend="aer", name="alpha", shots=16).results()
        manager.run([_bell()], backend="aer", name="beta", shots=16).results()
    app = make_app(store, config=Config(executor="threads"), watch_interval=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        assert await _until(pilot, lambda: len(_names(app)) == 2)
        assert await _until(pilot, lambda: app.histogram.experiment is not None)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        momentary = {"Clear filter", "Close the go-to box", "Back"}  # keys for a moment or a place
        for group, rows in app.all_bindings():
            for keys, description in rows:
                wanted = f"Job set: {description}" if group == SET_GROUP else f"{description} ({keys})"
                assert (wanted in titles) != (description in momentary), wanted
        assert not any(t == "Theme" or t.startswith("Cancel (") for t in titles), \
            "no command the app does not explain"
        assert "Go to job set alpha" in titles
        assert app.selected_summary().name == "beta"
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"go to job set alpha")
        await pilot.pause(0.5)
        await pilot.press("enter")
        assert await _until(pilot, lambda: app.selected_summary().name == "alpha")


def test_a_set_run_by_another_process_appears_and_finishes_live(tmp_path: Path) -> None:
    asyncio.run(_other_process(tmp_path))


async def _other_process(tmp_path: Path) -> None:
    store = tmp_path / "qjm.sqlite"
    circuit = tmp_path / "bell.qasm"
    circuit.write_text(qasm2.dumps(_bell()))
    emulator = f"emulator:dir={tmp_path / 'emu'},latency=0.05,queue=0.2,run=0.2"
    env = {**os.environ, "QJM_HOME": str(tmp_path), "PYTHONPATH": os.pathsep.join(sys.path)}
    app = make_app(store, config=Config(executor="threads"), watch_interval=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        assert _names(app) == []
        child = subprocess.Popen(
            [sys.executable, "-m", "qjm_tui", "run", str(circuit), str(circuit), str(circuit),
             "--max-per-job", "1", "-b", emulator, "-n", "elsewhere", "-q"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert await _until(pilot, lambda: _names(app) == ["elsewhere"], timeout=30)
            states = set()

            def finished() -> bool:
                summary = app.selected_summary()
                states.add(summary.state)
                return summary.state == "done"

            assert await _until(pilot, finished, timeout=60), states
            assert "running" in states, "the set was seen while it ran, not only at the end"
            assert app.selected_summary().experiments_done == 3
        finally:
            out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err.decode()


def test_engine_events_are_coalesced_into_a_few_store_reads(tmp_path: Path) -> None:
    asyncio.run(_coalesced(tmp_path))


async def _coalesced(tmp_path: Path) -> None:
    store = tmp_path / "qjm.sqlite"
    app = make_app(store, config=Config(executor="threads"), watch_interval=60, flush_interval=0.2)
    reads = []
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        original = app.manager.store.change_seq
        app.manager.store.change_seq = lambda: reads.append(1) or original()  # type: ignore[method-assign]
        events = []
        app.manager.subscribe(events.append)
        job_set = app.manager.run([_bell()] * 60, backend="aer", name="busy", shots=16,
                                  max_experiments_per_job=1)
        await asyncio.to_thread(job_set.results)
        assert await _until(pilot, lambda: _names(app) == ["busy"]
                            and app.selected_summary().state == "done")
        assert len(events) >= 60, "the engine published an event per job change"
        assert len(reads) < len(events) / 4, (len(reads), len(events))


def test_an_unexpected_error_goes_to_the_log_not_the_terminal(
        tmp_path: Path, monkeypatch, caplog) -> None:  # noqa: ANN001
    """Outside tests (not headless) an error ends the app with one line pointing at the log,
    and the traceback is logged; no Rich traceback is left to print on the terminal."""
    app = make_app(tmp_path / "qjm.sqlite", config=Config(executor="threads"))
    exits = []
    original_exit = app.exit
    monkeypatch.setattr(app, "exit", lambda **kw: exits.append(kw) or original_exit(**kw))
    with caplog.at_level("ERROR", logger="qjm_tui.tui"):
        asyncio.run(_fail_inside(app, monkeypatch))
    assert app.return_code == 1
    assert len(exits) == 1 and "deliberate failure" in str(exits[0]["message"])
    assert "log" in str(exits[0]["message"]) and "Traceback" not in str(exits[0]["message"])
    assert any(r.exc_info and "deliberate failure" in str(r.exc_info[1]) for r in caplog.records)


async def _fail_inside(app: QjmApp, monkeypatch) -> None:  # noqa: ANN001
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.1)
        monkeypatch.setattr(QjmApp, "is_headless", property(lambda self: False))
        try:
            raise RuntimeError("deliberate failure")
        except RuntimeError as exc:
            app._handle_exception(exc)
        await pilot.pause(0.1)


def test_no_color_turns_colour_off_and_states_still_read(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """With NO_COLOR set the app draws through Textual's colour-removing filter, and the states
    are still told apart: by glyph and by word."""
    from textual.filter import Monochrome, NoColor

    store = tmp_path / "qjm.sqlite"
    failing = f"emulator:dir={tmp_path / 'emu'},latency=0,queue=0,run=0,fail=1.0"
    with JobManager(store, config=Config(executor="threads"),
                    retry_policy=RetryPolicy(max_attempts=1, base_delay=0.0, jitter=0.0)) as manager:
        manager.run([_bell()] * 2, backend="aer", name="good", shots=32).results()
        manager.run([_bell()] * 2, backend=failing, name="bad", shots=32).results(partial=True)
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(store, config=Config(executor="threads"), watch_interval=0.1)

    async def draw() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await _until(pilot, lambda: len(_names(app)) == 2)
            assert any(isinstance(f, (Monochrome, NoColor)) for f in app.get_line_filters())
            assert _column(app, "state") == ["✗ failed", "● done"]

    asyncio.run(draw())


def test_notifications_show_names_as_they_are(tmp_path: Path) -> None:
    """A set name with markup and control characters is shown literally in a notification."""

    async def go() -> None:
        app = make_app(tmp_path / "qjm.sqlite", config=Config(executor="threads"))
        async with app.run_test(size=(80, 24)) as pilot:
            app.query_one(SetBrowser).notify("renamed to [b]bold[/b]\x1b[2J")
            await pilot.pause(0.2)
            shown = [n.message for n in app._notifications]
            assert shown == ["renamed to [b]bold[/b]\\x1b[2J"]
            assert all(not n.markup for n in app._notifications)

    asyncio.run(go())
