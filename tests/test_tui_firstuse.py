"""What a newcomer meets in the app's first minutes, each on a store the real core filled:
every field of every form reached by keyboard, a set whose process died read as interrupted
within seconds, focus that stays where keys are expected, Ctrl+C through the quit question,
notices when sets end, Esc back to the list, the job view, sorting, filtering and naming."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from qiskit import qasm2
from textual.pilot import Pilot
from textual.widgets import Input

from qjm_tui import JobManager
from qjm_tui.config import Config
from qjm_tui.core.engine import RetryPolicy
from qjm_tui.core.store import Store
from qjm_tui.tui.app import QjmApp, attention_sequence, make_app
from qjm_tui.tui.browser import SetList
from qjm_tui.tui.dialogs import ExportDialog, QuitDialog
from qjm_tui.tui.forms import NewJobSetForm
from qjm_tui.tui.grid import StatusGrid
from qjm_tui.tui.jobview import JobScreen
from tests.conftest import bell
from tests.tui_screen import screen_lines

THREADS = Config(executor="threads")
REPO = Path(__file__).resolve().parents[1]


async def until(pilot: Pilot[int], check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.05)


def done_sets(store: Path, *names: str, ids: list[str] | None = None) -> list[str]:
    """Sets of these names, run to the end on aer (with these ids, if given)."""
    given = iter(ids or [])
    with JobManager(store, config=THREADS, new_id=(lambda: next(given)) if ids else None) as manager:
        ids = []
        for name in names:
            job_set = manager.run([bell()] * 2, backend="aer", name=name, shots=16, job_tags=["base"])
            job_set.results()
            ids.append(job_set.job_set_id())
        return ids


def focus_ring(app: QjmApp) -> str:
    focused = app.focused
    return (focused.id or type(focused).__name__) if focused is not None else "-"


# -- forms and dialogs: every field by keyboard ------------------------------------------------


def test_tab_shift_tab_up_and_down_reach_every_field_of_every_form(tmp_path: Path) -> None:
    store = tmp_path / "qjm.sqlite"
    done_sets(store, "one")

    async def cycle(pilot: Pilot[int], app: QjmApp, key: str, steps: int) -> list[str]:
        seen = [focus_ring(app)]
        for _ in range(steps):
            await pilot.press(key)
            await pilot.pause()
            seen.append(focus_ring(app))
        return seen

    async def go() -> None:
        app = make_app(store, config=THREADS, watch_interval=0.1)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: app.selected_summary() is not None, "the set")
            await pilot.press("n")
            await until(pilot, lambda: isinstance(app.screen, NewJobSetForm), "the form")
            fields = ["files", "backend", "backend-spec", "shots", "name", "tags", "per-job", "transpile",
                      "start", "back"]
            forward = await cycle(pilot, app, "tab", len(fields))
            assert forward[:len(fields)] == fields and forward[-1] == "files", forward
            backward = await cycle(pilot, app, "shift+tab", len(fields))
            assert backward == ["files", *reversed(fields)], backward
            down = await cycle(pilot, app, "down", len(fields))
            assert down[:len(fields)] == fields, down
            up = await cycle(pilot, app, "up", 2)
            assert up == ["files", "back", "start"], up
            assert isinstance(app.screen, NewJobSetForm), "the keys never left the form"
            assert app._pane == 0, "and never moved the panes behind it"
            footer = screen_lines(app)[-1]
            assert "esc Back" in footer and "Filter" not in footer, f"the form's keys: {footer!r}"
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, NewJobSetForm), "the form to close")

            await pilot.press("e")
            await until(pilot, lambda: isinstance(app.screen, ExportDialog), "the export dialog")
            fields = ["path", "export", "back", "format"]
            assert await cycle(pilot, app, "tab", 4) == [*fields, "path"]
            assert await cycle(pilot, app, "up", 4) == ["path", "format", "back", "export", "path"]
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, ExportDialog), "the dialog to close")
        app.manager.close()

    asyncio.run(go())


# -- a dead runner -----------------------------------------------------------------------------

RUNNER = """
import sys, time
from qiskit import QuantumCircuit
from qjm_tui import JobManager
from qjm_tui.config import Config
qc = QuantumCircuit(1, 1); qc.measure(0, 0)
manager = JobManager(sys.argv[1], config=Config(executor="threads"))
job_set = manager.run([qc] * 6, backend=sys.argv[2], name="doomed-runner", shots=8, max_experiments_per_job=1)
print(job_set.job_set_id(), flush=True)
time.sleep(600)
"""


def test_a_set_whose_process_died_reads_interrupted_within_seconds_and_resumes(tmp_path: Path) -> None:
    store = tmp_path / "qjm.sqlite"
    stalled = f"emulator:dir={tmp_path / 'emu'},latency=0,queue=0,run=0,stall=2,max_jobs=1,advertise=1"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(RUNNER), str(store), stalled],
                             env=env, stdout=subprocess.PIPE, text=True, cwd=REPO)

    async def go() -> None:
        set_id = child.stdout.readline().strip()
        app = make_app(store, config=THREADS)  # the app's own intervals
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: set_id in app.browser.rows
                        and app.browser.rows[set_id].state == "running", "the set running", 30)
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            killed = time.monotonic()
            await until(pilot, lambda: app.browser.rows[set_id].state == "interrupted",
                        "the app to see the set interrupted", 10)
            assert time.monotonic() - killed < 5, "within a few seconds"
            assert app.set_pane.summary.state == "interrupted", "the jobs pane says so too"
            assert "R resumes it" in str(app.set_pane.query_one("#set-rate").render())
            await pilot.press("R")
            await until(pilot, lambda: any("resuming job set" in n.message for n in app._notifications),
                        "R to resume it")
            await until(pilot, lambda: app.manager.running_here(set_id), "the set to run here")
            app.manager.cancel_job_set(set_id)
            app.manager.wait_all(timeout=30)
        app.manager.close()

    try:
        asyncio.run(go())
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


# -- focus, Ctrl+C, notices --------------------------------------------------------------------


def test_after_a_filter_the_pane_keys_give_the_list_its_keys(tmp_path: Path) -> None:
    store = tmp_path / "qjm.sqlite"
    done_sets(store, "alpha", "beta", "gamma")

    async def go() -> None:
        app = make_app(store, config=THREADS, watch_interval=0.1)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: len(app.browser.rows) == 3, "the sets")
            await pilot.press("slash", *"a", "enter")  # a filter, kept; the list has the keys
            await pilot.press("enter")  # open the set
            await pilot.pause(0.2)
            assert app._pane == 1
            await pilot.press("1")
            await pilot.pause(0.2)
            assert isinstance(app.focused, SetList), focus_ring(app)
            await pilot.press("s")
            await pilot.pause(0.2)
            assert app.query_one("#filter", Input).value == "a", "s sorted, it was not typed"
            assert app.browser.sort == 1
        app.manager.close()

    asyncio.run(go())


def test_ctrl_c_quits_through_the_quit_question(tmp_path: Path) -> None:
    store = tmp_path / "qjm.sqlite"
    done_sets(store, "one")
    slow = f"emulator:dir={tmp_path / 'emu'},latency=0,queue=0,run=0,stall=1,max_jobs=1,advertise=1"

    async def go() -> None:
        app = make_app(store, config=THREADS, watch_interval=0.1)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.selected_summary() is not None, "the set")
            job_set = app.manager.run([bell()] * 3, backend=slow, name="here", shots=8,
                                      max_experiments_per_job=1)
            await pilot.press("ctrl+c")
            await until(pilot, lambda: isinstance(app.screen, QuitDialog), "the quit question")
            assert not any("[b]" in n.message for n in app._notifications), "no stock toast"
            await pilot.press("s")
            await until(pilot, lambda: not isinstance(app.screen, QuitDialog), "staying")
            assert app.is_running
            app.manager.cancel_job_set(job_set.job_set_id())
            app.manager.wait_all(timeout=30)
            await pilot.press("ctrl+c")  # nothing runs here now: quit at once
            await pilot.pause(0.3)
        assert app.return_code in (0, None) and not app.is_running
        app.manager.close()

    asyncio.run(go())


def test_a_set_ending_elsewhere_is_announced_and_failures_counted_until_seen(
        tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from tests.test_tui_wire import CountingDriver, headless

    store = tmp_path / "qjm.sqlite"
    done_sets(store, "before")
    config = tmp_path / "config.toml"
    config.write_text('[app]\nnotify = "osc777"\n')
    monkeypatch.setenv("QJM_CONFIG", str(config))
    monkeypatch.setattr(headless, "HeadlessDriver", CountingDriver)
    sent: list[str] = []
    monkeypatch.setattr(CountingDriver, "write", lambda self, data: sent.append(data))
    failing = f"emulator:dir={tmp_path / 'emu'},latency=0,queue=0,run=0,fail=1.0"

    async def go() -> None:
        app = make_app(store, watch_interval=0.1)
        assert app.manager.config.notify == "osc777"
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.selected_summary() is not None, "the set")
            with JobManager(store, config=THREADS,
                            retry_policy=RetryPolicy(max_attempts=1, base_delay=0, jitter=0)) as other:
                good = other.run([bell()], backend="aer", name="good-one", shots=8)
                bad = other.run([bell()], backend=failing, name="bad-one", shots=8)
                good.results()
                bad.results(partial=True)
            await until(pilot, lambda: len(app._notifications) >= 2, "the notices")
            messages = " | ".join(n.message for n in app._notifications)
            assert "good-one" in messages and "finished" in messages, messages
            assert "bad-one" in messages and "failed" in messages, messages
            assert any("\x1b]777;notify;qjm: job set failed;" in data for data in sent), \
                "a desktop notification through the terminal"
            assert "1 new failure" in screen_lines(app)[0], screen_lines(app)[0]
            assert app.browser.select(bad.job_set_id())
            await pilot.pause(0.3)
            assert "new failure" not in screen_lines(app)[0], "seen: the count goes"
        app.manager.close()

    asyncio.run(go())
    assert attention_sequence("bell", "t", "b") == "\x07"
    assert attention_sequence("osc9", "qjm", "a;b\x1b") == "\x1b]9;qjm: a,b\x07"
    assert attention_sequence("none", "t", "b") == ""


# -- moving around, the job view ---------------------------------------------------------------


def test_esc_and_backspace_go_back_to_the_list_on_a_narrow_screen(tmp_path: Path) -> None:
    store = tmp_path / "qjm.sqlite"
    done_sets(store, "one")

    async def go() -> None:
        app = make_app(store, config=THREADS, watch_interval=0.1)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.selected_summary() is not None, "the set")
            for pane, back in ((1, "escape"), (2, "backspace"), (1, "backspace"), (2, "escape")):
                await pilot.press(str(pane + 1))
                await pilot.pause(0.1)
                assert app._pane == pane
                await pilot.press(back)
                await pilot.pause(0.1)
                assert app._pane == 0 and isinstance(app.focused, SetList), (pane, back)
                assert app.browser.region.area, "the list is on screen"
        app.manager.close()

    asyncio.run(go())


def test_enter_on_a_job_shows_every_attempt_the_error_its_backend_id_and_log_lines(
        tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    home = tmp_path / "home"
    home.mkdir()
    circuit = tmp_path / "bell.qasm"
    circuit.write_text(qasm2.dumps(bell()))
    config = tmp_path / "config.toml"
    config.write_text("[retry]\nmax_attempts = 3\nbase_delay = 0\njitter = 0\n")
    env = {**os.environ, "QJM_HOME": str(home), "QJM_CONFIG": str(config),
           "PYTHONPATH": os.pathsep.join(sys.path)}
    failing = f"emulator:dir={tmp_path / 'emu'},latency=0,queue=0,run=0,fail=1.0,seed=4"
    proc = subprocess.run([sys.executable, "-m", "qjm_tui", "run", str(circuit), str(circuit),
                           "--max-per-job", "1", "-b", failing, "-n", "always-failing", "-q"],
                          env=env, capture_output=True, text=True, timeout=180, cwd=REPO)
    assert proc.returncode != 0 or "failed" in proc.stdout + proc.stderr
    store = home / "qjm.sqlite"
    monkeypatch.setenv("QJM_HOME", str(home))  # where the run logged
    set_id = Store(store).summaries()[0].id
    job = Store(store).job(set_id, 1)
    assert job.attempts == 3 and job.status == "failed"

    async def go() -> None:
        app = make_app(store, config=THREADS, watch_interval=0.1)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.selected_summary() is not None, "the set")
            await pilot.press("enter")
            await until(pilot, lambda: app.set_pane.current_job is not None, "the jobs")
            app.set_pane.grid.focus()
            await pilot.press("right", "enter")
            await until(pilot, lambda: isinstance(app.screen, JobScreen)
                        and app.screen.reading is not None, "the job view")
            view = app.screen
            assert [a.number for a in view.reading.attempts] == [1, 2, 3]
            ids = [a.backend_job_id for a in view.reading.attempts]
            assert all(ids) and len(set(ids)) == 3, "each attempt with its own backend id"
            assert [a.outcome for a in view.reading.attempts] == ["retried", "retried", "failed"]
            text = "\n".join(screen_lines(app))
            for backend_id in ids:
                assert backend_id in text
            assert "gave up after 3 attempts" in text, "the error in full"
            await pilot.resize_terminal(80, 24)
            await pilot.pause(0.3)
            lines = screen_lines(app)
            for attempt in view.reading.attempts:  # each error starts on its attempt's line
                error = " ".join(attempt.error.split())
                assert any(f"#{attempt.number} {attempt.outcome}: {error[:30]}" in line
                           for line in lines), (attempt, lines)
            assert view.reading.log_lines and all(f"job set {set_id}: job 1 (" in line
                                                  for line in view.reading.log_lines)
            assert any(ids[0] in line for line in view.reading.log_lines), "the log names the ids"
            await pilot.press("y")
            assert app.clipboard == ids[-1], "y copies the backend job id"
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, JobScreen), "back to the grid")
            assert isinstance(app.focused, StatusGrid)
        app.manager.close()

    asyncio.run(go())


# -- smaller things ----------------------------------------------------------------------------


def test_the_sort_is_marked_and_reversed_and_a_lone_digit_filters_no_id(tmp_path: Path) -> None:
    store = tmp_path / "qjm.sqlite"
    tails = ("aa01bb01", "cc02dd02", "ee03ff03")  # none starts with a 2
    done_sets(store, "first", "second", "run 2", ids=[f"20261125-09301{n}-{t}" for n, t in enumerate(tails)])

    async def go() -> None:
        app = make_app(store, config=THREADS, watch_interval=0.1)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: len(app.browser.rows) == 3, "the sets")
            await pilot.pause(0.2)
            header = screen_lines(app)[2]
            assert "created ▼" in header, header
            await pilot.press("S")
            await pilot.pause(0.2)
            assert "created ▲" in screen_lines(app)[2]
            names = [app.browser.rows[i].name for i in app.browser.table.order]
            assert names == ["first", "second", "run 2"], "oldest first, reversed"
            await pilot.press("slash", "2")
            await pilot.pause(0.2)
            assert [app.browser.rows[i].name for i in app.browser.table.order] == ["run 2"], \
                "a lone 2 matches the name with a 2, not every id of 2026"
        app.manager.close()

    asyncio.run(go())


def test_a_set_started_without_a_name_is_named_after_its_files(tmp_path: Path) -> None:
    store = tmp_path / "qjm.sqlite"
    done_sets(store, "one")
    circuit = tmp_path / "grover_3q.qasm"
    circuit.write_text(qasm2.dumps(bell()))

    async def go() -> None:
        app = make_app(store, config=THREADS, watch_interval=0.1)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: app.selected_summary() is not None, "the set")
            await pilot.press("n")
            await until(pilot, lambda: isinstance(app.screen, NewJobSetForm), "the form")
            form = app.screen
            form.query_one("#files", Input).value = str(circuit)
            form.query_one("#shots", Input).value = "8"
            form.query_one("#files", Input).focus()
            await pilot.press("enter")
            await until(pilot, lambda: any(s.name == "grover_3q" for s in app.browser.rows.values()),
                        "the set named after its file")
            app.manager.wait_all(timeout=30)
        app.manager.close()

    asyncio.run(go())


def test_the_first_dialog_opens_at_once_and_keys_typed_before_stay_out_of_it(tmp_path: Path) -> None:
    from textual import events

    from qjm_tui.tui.dialogs import TextPrompt

    store = tmp_path / "qjm.sqlite"
    done_sets(store, "one")

    async def go() -> None:
        app = make_app(store, config=THREADS, watch_interval=0.1)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: app.histogram.current_counts is not None, "the histogram")
            start = time.perf_counter()
            # H and, at once, more keys: typed while the prompt was on its way
            for key, char in (("H", "H"), ("x", "x"), ("y", "y")):
                app.post_message(events.Key(key, char))
            await until(pilot, lambda: isinstance(app.screen, TextPrompt), "the prompt")
            assert time.perf_counter() - start < 1.0, "the first dialog opens at once"
            await pilot.pause(0.3)
            field = app.screen.query_one(Input)
            assert field.value.endswith(".svg"), f"keys typed before it opened landed in it: {field.value!r}"
            await pilot.press("end", "z")
            assert field.value.endswith(".svgz"), "keys typed once it is open do"
            await pilot.press("escape")
        app.manager.close()

    asyncio.run(go())
