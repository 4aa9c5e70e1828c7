"""The app's job-set actions, driven by keys through the real app, each checked in the store.

Stores are filled by the real core on aer and the emulator; the app acts through the same core
calls as the CLI.
"""

from __future__ import annotations

import asyncio
import csv
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from qiskit import QuantumCircuit, qasm2
from qiskit.result import Result
from textual.pilot import Pilot
from textual.widgets import Input, Select, Static

from qjm_tui import JobManager
from qjm_tui.cli import main
from qjm_tui.config import Config, ConfigError, load_config
from qjm_tui.core.store import Store
from qjm_tui.tui.actions import SET_BINDINGS, parse_tag_edit
from qjm_tui.tui.app import QjmApp, make_app
from qjm_tui.tui.dialogs import ConfirmDialog, ExportDialog, QuitDialog, TextPrompt
from qjm_tui.tui.forms import NewJobSetForm, PathSuggester

THREADS = Config(executor="threads")


def bell(name: str = "bell", qubits: int = 2) -> QuantumCircuit:
    qc = QuantumCircuit(qubits, name=name)
    qc.h(0)
    for q in range(1, qubits):
        qc.cx(0, q)
    qc.measure_all()
    return qc


def slow_emulator(tmp_path: Path) -> str:
    """An emulator whose jobs take a while, so a set is still running when a key is pressed."""
    return f"emulator:dir={tmp_path / 'service'},latency=0.2,queue=0.3,run=0.2,max_jobs=2"


def done_set(store: Path, name: str = "first", n: int = 3) -> str:
    with JobManager(store, config=THREADS) as manager:
        job_set = manager.run([bell(f"b{i}") for i in range(n)], backend="aer", name=name, shots=32,
                              job_tags=["base"])
        job_set.results()
        return job_set.job_set_id()


def state_of(store: Path, set_id: str) -> str:
    reader = Store(store)
    try:
        return reader.summaries([set_id])[0].state
    finally:
        reader.close()


async def until(pilot: Pilot[int], check: Callable[[], bool], timeout: float = 15.0) -> None:
    """Let the app run until ``check()`` holds; fail the test if it never does."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        await pilot.pause(0.05)


async def wait_selected(app: QjmApp, pilot: Pilot[int]) -> None:
    await until(pilot, lambda: app.selected_summary() is not None)


async def settle(pilot: Pilot[int]) -> None:
    """Let the app's store watcher catch up before the test leaves the app (it reads the store
    every 0.1 s here), so no change is still on its way while the app shuts down."""
    await pilot.pause(0.4)


def selected(app: QjmApp) -> tuple[str, str] | None:
    """The id and state of the set under the browser's cursor."""
    summary = app.selected_summary()
    return (summary.id, summary.state) if summary is not None else None


def run(coro_fn: Callable[..., object], *args: object) -> None:
    asyncio.run(coro_fn(*args))  # type: ignore[arg-type]


# -- rename, tags, copy id ---------------------------------------------------------------------


def test_rename_tags_and_copy_id(tmp_path: Path) -> None:
    run(_rename_tags_and_copy_id, tmp_path)


async def _rename_tags_and_copy_id(tmp_path: Path) -> None:
    store = tmp_path / "qjm.sqlite"
    set_id = done_set(store)
    app = make_app(store, config=THREADS, watch_interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_selected(app, pilot)
        await pilot.press("E")
        await until(pilot, lambda: isinstance(app.screen, TextPrompt))
        app.screen.query_one(Input).value = "renamed"
        await pilot.press("enter")
        with JobManager(store, config=THREADS) as reader:
            await until(pilot, lambda: reader.retrieve_job_set(set_id).name() == "renamed")
            await pilot.press("E")
            await until(pilot, lambda: isinstance(app.screen, TextPrompt))
            app.screen.query_one(Input).value = "   "
            await pilot.press("enter")
            await until(pilot, lambda: any("must be a non-empty string" in n.message
                                           for n in app._notifications))
            assert reader.retrieve_job_set(set_id).name() == "renamed", "a bad name changes nothing"
            await pilot.press("t")
            await until(pilot, lambda: isinstance(app.screen, TextPrompt))
            await pilot.press(*"+nightly +x -base")
            await pilot.press("enter")
            await until(pilot, lambda: reader.retrieve_job_set(set_id).tags() == ["nightly", "x"])
            await pilot.press("t")
            await until(pilot, lambda: isinstance(app.screen, TextPrompt))
            await pilot.press(*"-x")
            await pilot.press("enter")
            await until(pilot, lambda: reader.retrieve_job_set(set_id).tags() == ["nightly"])
            await settle(pilot)
        await pilot.press("y")
        assert app.clipboard == set_id


def test_every_action_is_in_the_command_palette(tmp_path: Path) -> None:
    run(_palette, tmp_path)


async def _palette(tmp_path: Path) -> None:
    store = tmp_path / "qjm.sqlite"
    set_id = done_set(store)
    app = make_app(store, config=THREADS, watch_interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_selected(app, pilot)
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        assert {f"Job set: {b.description}" for b in SET_BINDINGS} <= set(commands)
        commands["Job set: Copy id"].callback()
        await until(pilot, lambda: app.clipboard == set_id)


def test_tag_edit_line() -> None:
    assert parse_tag_edit("+a -b c") == (None, ["a", "c"], ["b"])
    assert parse_tag_edit("a, b") == (["a", "b"], [], [])
    assert parse_tag_edit("") == (None, [], []), "an empty line changes nothing"
    assert parse_tag_edit("-*") == ([], [], []), "-* removes every tag"
    assert parse_tag_edit("-* +a") == (["a"], [], [])


# -- cancel, retry, resume, delete -------------------------------------------------------------


def test_cancel_asks_then_cancels_and_retry_runs_the_rest(tmp_path: Path) -> None:
    run(_cancel_then_retry, tmp_path)


async def _cancel_then_retry(tmp_path: Path) -> None:
    store = tmp_path / "qjm.sqlite"
    runner = JobManager(store, config=THREADS)
    job_set = runner.run([bell(f"b{i}") for i in range(6)], backend=slow_emulator(tmp_path),
                         max_experiments_per_job=1, shots=16)
    set_id = job_set.job_set_id()
    app = make_app(store, config=THREADS, watch_interval=0.1)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_selected(app, pilot)
            await pilot.press("x")
            await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
            body = str(app.screen.query_one("#body", Static).render())
            assert "jobs will be cancelled" in body and "keep their results" in body
            await pilot.click("#yes")
            assert job_set.wait(timeout=20) == "cancelled"
            runner.close()
            await until(pilot, lambda: selected(app) == (set_id, "cancelled"))
            await pilot.press("r")
            await until(pilot, lambda: state_of(store, set_id) == "done", timeout=30)
            await settle(pilot)
    finally:
        runner.close(cancel=True)
    with JobManager(store, config=THREADS) as reader:
        results = reader.retrieve_job_set(set_id).results(timeout=5)
        assert all(sum(results.get_counts(i).values()) == 16 for i in range(6))


def test_resume_finishes_an_interrupted_set(tmp_path: Path) -> None:
    run(_resume, tmp_path)


async def _resume(tmp_path: Path) -> None:
    store = tmp_path / "qjm.sqlite"
    runner = JobManager(store, config=THREADS)
    set_id = runner.run([bell(f"b{i}") for i in range(4)], backend=slow_emulator(tmp_path),
                        max_experiments_per_job=1, shots=16).job_set_id()
    runner.detach()
    assert state_of(store, set_id) == "interrupted"
    app = make_app(store, config=THREADS, watch_interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_selected(app, pilot)
        await pilot.press("R")
        await until(pilot, lambda: state_of(store, set_id) == "done", timeout=30)
        await pilot.press("R")
        await pilot.pause(0.1)
        assert any("not interrupted" in n.message for n in app._notifications)
        await settle(pilot)


def test_delete_refuses_a_running_set_and_removes_a_finished_one(tmp_path: Path) -> None:
    run(_delete, tmp_path)


async def _delete(tmp_path: Path) -> None:
    store = tmp_path / "qjm.sqlite"
    done_id = done_set(store)
    runner = JobManager(store, config=THREADS)
    running = runner.run([bell(f"b{i}") for i in range(4)], backend=slow_emulator(tmp_path),
                         max_experiments_per_job=1, shots=16)
    app = make_app(store, config=THREADS, watch_interval=0.1)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: (selected(app) or ("",))[0] == running.job_set_id())
            await pilot.press("D")
            await pilot.pause(0.1)
            assert not isinstance(app.screen, ConfirmDialog)
            assert any("is running" in n.message for n in app._notifications)
            await pilot.press("down")
            await until(pilot, lambda: (selected(app) or ("",))[0] == done_id)
            await pilot.press("D")
            await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
            await pilot.press("y")
            await until(pilot, lambda: done_id not in {s.id for s in runner.store.summaries()})
            await settle(pilot)
        assert running.job_set_id() in {s.id for s in runner.store.summaries()}
    finally:
        runner.close(cancel=True)


# -- export and the histogram picture ----------------------------------------------------------


def test_export_json_csv_and_qiskit_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run(_export, tmp_path)


async def _export(tmp_path: Path) -> None:
    store = tmp_path / "qjm.sqlite"
    set_id = done_set(store, name="sweep 1")
    app = make_app(store, config=THREADS, watch_interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_selected(app, pilot)
        for fmt, name in (("json", "sweep_1.json"), ("csv", "sweep_1.csv"),
                          ("qiskit", "sweep_1.result.json")):
            await pilot.press("e")
            await until(pilot, lambda: isinstance(app.screen, ExportDialog))
            app.screen.query_one("#format", Select).value = fmt
            await pilot.pause(0.05)
            assert app.screen.query_one("#path", Input).value == str(tmp_path / name), \
                "the default file is named after the set and follows the format"
            await pilot.press("enter")
            await until(pilot, (tmp_path / name).exists)
    data = json.loads((tmp_path / "sweep_1.json").read_text())
    assert data["id"] == set_id and [e["shots"] for e in data["experiments"]] == [32, 32, 32]
    rows = list(csv.DictReader((tmp_path / "sweep_1.csv").open()))
    assert sum(int(r["count"]) for r in rows) == 96
    result = Result.from_dict(json.loads((tmp_path / "sweep_1.result.json").read_text()))
    assert sum(result.get_counts(2).values()) == 32


def test_save_histogram_svg(tmp_path: Path) -> None:
    run(_save_histogram, tmp_path)


async def _save_histogram(tmp_path: Path) -> None:
    store = tmp_path / "qjm.sqlite"
    set_id = done_set(store)
    with JobManager(store, config=THREADS) as reader:
        counts = reader.retrieve_job_set(set_id).results(timeout=5).get_counts(0)
    app = make_app(store, config=THREADS, watch_interval=0.1)
    target = tmp_path / "bell.svg"
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_selected(app, pilot)
        await until(pilot, lambda: app.histogram_counts() is not None)
        assert app.histogram_counts()[1] == counts, "the histogram on screen is experiment 0's"
        await pilot.press("H")
        await until(pilot, lambda: isinstance(app.screen, TextPrompt))
        app.screen.query_one(Input).value = str(target)
        await pilot.press("enter")
        await until(pilot, target.exists)
    svg = target.read_text()
    assert svg.startswith("<svg") and "Experiment" in svg
    assert all(outcome in svg for outcome in counts)


# -- the new-set form --------------------------------------------------------------------------


def test_new_set_form_errors_leave_the_store_unchanged(tmp_path: Path) -> None:
    run(_form_errors, tmp_path)


async def _form_errors(tmp_path: Path) -> None:
    store = tmp_path / "qjm.sqlite"
    done_set(store)
    bad = tmp_path / "bad.qasm"
    bad.write_text('OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\nh q[0]\ncx q[0],q[1];\n')
    wide = tmp_path / "wide.qasm"
    wide.write_text(qasm2.dumps(bell("wide", qubits=6)))
    good = tmp_path / "good.qasm"
    good.write_text(qasm2.dumps(bell("good")))
    before = (Store(store).change_seq(), store.read_bytes())
    app = make_app(store, config=THREADS, watch_interval=0.1)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NewJobSetForm))
        form = app.screen
        assert app.focused is form.query_one("#files", Input), "the files field has the focus"

        async def error_after(field: str, **values: str) -> str:
            for name, value in values.items():
                form.query_one(f"#{name}", Input).value = value
            form.query_one("#files", Input).focus()
            await pilot.press("enter")
            await until(pilot, lambda: not form.query_one("#start").disabled
                        and form.query_one(f"#{field}-error", Static).display)
            return str(form.query_one(f"#{field}-error", Static).render())

        message = await error_after("files", files=str(bad))
        assert message.strip() == f"{bad}:5:1: needed ';', but instead saw an identifier"
        message = await error_after("backend", files=str(wide), **{"backend-spec": "aer:fake_manila"})
        assert "uses 6 qubits but backend aer:fake_manila has 5" in message, message
        message = await error_after("shots", files=str(good), **{"backend-spec": "", "shots": "0"})
        assert message.strip() == "shots must be a positive integer, got 0"
        message = await error_after("files", files=str(tmp_path / "*.qpy"), shots="8")
        assert "no file matches" in message
        message = await error_after("name", files=str(good), name="two\tlines")
        assert message.strip() == ("the job set's name contains the control character '\\t'; "
                                   "use printable text")
        await pilot.press("escape")
    assert (Store(store).change_seq(), store.read_bytes()) == before, "nothing was stored"


def test_new_set_form_starts_a_set_that_finishes(tmp_path: Path) -> None:
    run(_form_starts, tmp_path)


async def _form_starts(tmp_path: Path) -> None:
    store = tmp_path / "qjm.sqlite"
    circuits = tmp_path / "circuits"
    circuits.mkdir()
    for i in range(3):
        (circuits / f"c{i}.qasm").write_text(qasm2.dumps(bell(f"c{i}")))
    earlier = done_set(store)
    app = make_app(store, config=THREADS, watch_interval=0.1)
    async with app.run_test(size=(100, 40)) as pilot:
        await until(pilot, lambda: selected(app) is not None and selected(app)[0] == earlier)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NewJobSetForm))
        form = app.screen
        form.query_one("#shots", Input).value = "64"
        form.query_one("#name", Input).value = "from the form"
        form.query_one("#tags", Input).value = "ui, quick"
        form.query_one("#files", Input).value = f"{circuits}/*.qasm"
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, NewJobSetForm))
        assert any("started job set from the form" in n.message for n in app._notifications)
        await until(pilot, lambda: app.selected_summary().name == "from the form")
        await until(pilot, lambda: Store(store).summaries()[0].state == "done")
        await settle(pilot)
    summary = Store(store).summaries()[0]
    assert (summary.name, summary.tags, summary.n_experiments, summary.shots) == \
        ("from the form", ["ui", "quick"], 3, 64)


# -- quitting ----------------------------------------------------------------------------------


def _start_from_form(app: QjmApp, files: str, backend: str) -> None:
    """Fill the form the app opened and submit it."""
    form = app.screen
    form.query_one("#files", Input).value = files
    form.query_one("#backend-spec", Input).value = backend
    form.query_one("#per-job", Input).value = "1"
    form.query_one("#shots", Input).value = "16"


async def _app_running_a_set(tmp_path: Path, pilot: Pilot[int], app: QjmApp) -> str:
    source = tmp_path / "c.qasm"
    source.write_text(qasm2.dumps(bell("c")))
    await pilot.press("n")
    await until(pilot, lambda: isinstance(app.screen, NewJobSetForm))
    _start_from_form(app, " ".join([str(source)] * 8), slow_emulator(tmp_path))
    app.screen.query_one("#files", Input).focus()
    await pilot.press("enter")
    await until(pilot, lambda: bool(app.manager.active()))
    return app.manager.active()[0]


def test_quit_without_running_sets_quits_at_once(tmp_path: Path) -> None:
    run(_quit_at_once, tmp_path)


async def _quit_at_once(tmp_path: Path) -> None:
    done_set(tmp_path / "qjm.sqlite")
    app = make_app(tmp_path / "qjm.sqlite", config=THREADS, watch_interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("q")
        await pilot.pause(0.1)
        assert not app.is_running


def test_quit_stay_then_cancel(tmp_path: Path) -> None:
    run(_quit_stay_then_cancel, tmp_path)


async def _quit_stay_then_cancel(tmp_path: Path) -> None:
    store = tmp_path / "qjm.sqlite"
    app = make_app(store, config=THREADS, watch_interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        set_id = await _app_running_a_set(tmp_path, pilot, app)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitDialog))
        await pilot.press("s")
        await pilot.pause(0.2)
        assert app.is_running and app.manager.active() == [set_id]
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitDialog))
        await pilot.press("c")
        await until(pilot, lambda: not app.is_running, timeout=30)
    assert state_of(store, set_id) == "cancelled"


def test_quit_keeps_sets_running_in_a_background_process(tmp_path: Path) -> None:
    run(_quit_background, tmp_path)


async def _quit_background(tmp_path: Path) -> None:
    store = tmp_path / "qjm.sqlite"
    app = make_app(store, config=THREADS, watch_interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        set_id = await _app_running_a_set(tmp_path, pilot, app)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitDialog))
        await pilot.press("k")
        await until(pilot, lambda: not app.is_running, timeout=60)
    with JobManager(store, config=THREADS) as watcher:
        deadline = time.monotonic() + 60
        while state_of(store, set_id) != "done":
            assert time.monotonic() < deadline, f"still {state_of(store, set_id)}"
            time.sleep(0.2)
        results = watcher.retrieve_job_set(set_id).results(timeout=5)
        assert all(sum(results.get_counts(i).values()) == 16 for i in range(8))


# -- keys --------------------------------------------------------------------------------------


def test_keymap_from_the_config_file(tmp_path: Path) -> None:
    config_file = tmp_path / "config.toml"
    config_file.write_text('executor = "threads"\n[keys]\n"set.rename" = "N"\n"set.nope" = "z"\n')
    run(_keymap, tmp_path, load_config(config_file))


async def _keymap(tmp_path: Path, config: Config) -> None:
    store = tmp_path / "qjm.sqlite"
    done_set(store)
    app = make_app(store, config=config, watch_interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_selected(app, pilot)
        assert any("'set.nope'" in n.message and "no binding has this id" in n.message
                   for n in app._notifications), "an unknown id is named"
        await pilot.press("E")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, TextPrompt), "the old key no longer renames"
        await pilot.press("N")
        await until(pilot, lambda: isinstance(app.screen, TextPrompt))


def test_keys_table_with_a_bad_value_is_a_config_error(tmp_path: Path) -> None:
    config_file = tmp_path / "config.toml"
    config_file.write_text('[keys]\n"set.rename" = 3\n')
    with pytest.raises(ConfigError, match=r"config.toml: \[keys\] 'set.rename' must be a key"):
        load_config(config_file)


def test_qjm_config_shows_the_effective_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    config_file = tmp_path / "config.toml"
    config_file.write_text('[keys]\n"set.rename" = "N"\n')
    monkeypatch.setenv("QJM_CONFIG", str(config_file))
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert '"set.rename" = "N"' in out and '"set.cancel" = "x"' in out
    assert main(["config", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["keys"]["set.retry"] == "r"
    config_file.write_text('[keys]\n"set.nope" = "z"\n')
    assert main(["config"]) == 2
    assert "[keys] 'set.nope': no binding has this id" in capsys.readouterr().err


def test_process_pool_starts_under_a_captured_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside the app sys.stderr has no descriptor (fileno() is -1); the local backend's pool
    start gives multiprocessing a real one for that moment and puts the capture back."""
    import io
    import sys

    from qjm_tui.backends.local import _stderr_with_a_descriptor

    class Capture(io.StringIO):
        def fileno(self) -> int:
            return -1

    capture = Capture()
    monkeypatch.setattr(sys, "stderr", capture)
    with _stderr_with_a_descriptor():
        assert sys.stderr.fileno() >= 0
    assert sys.stderr is capture


def test_path_completion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "circuits").mkdir()
    (tmp_path / "circuits" / "bell.qasm").write_text("")
    (tmp_path / "circuits" / "ghz.qasm").write_text("")
    monkeypatch.chdir(tmp_path)
    suggest = PathSuggester().get_suggestion
    assert asyncio.run(suggest("cir")) == "circuits/"
    assert asyncio.run(suggest("circuits/g")) == "circuits/ghz.qasm"
    assert asyncio.run(suggest("circuits/bell.qasm circuits/g")) == "circuits/bell.qasm circuits/ghz.qasm"
    assert asyncio.run(suggest(f"{tmp_path}/circuits/b")) == f"{tmp_path}/circuits/bell.qasm"
    assert asyncio.run(suggest("circuits/*.q")) is None
    assert asyncio.run(suggest("nothing/here")) is None
