"""Pictures of the new-set form, the cancel question and the quit dialog at 80x24.

Each is shown over a bare screen, so the picture changes only when the dialog does. The cancel
question is asked about a set the real core stored (on an emulator whose queue holds the jobs,
so none has finished), with a fixed id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from qiskit import QuantumCircuit
from textual.app import App
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Input, Static

from qjm_tui import JobManager
from qjm_tui.config import Config
from qjm_tui.tui.actions import cancel_dialog
from qjm_tui.tui.dialogs import QuitDialog
from qjm_tui.tui.forms import NewJobSetForm

THREADS = Config(executor="threads")


class DialogHost(App[None]):
    """An empty app that opens one dialog."""

    def __init__(self, dialog: Screen[Any]) -> None:
        super().__init__()
        self.dialog = dialog

    def on_mount(self) -> None:
        self.push_screen(self.dialog)


def bell() -> QuantumCircuit:
    qc = QuantumCircuit(2, name="bell")
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return qc


def test_new_set_form_empty(snap_compare: Any, tmp_path: Path) -> None:
    with JobManager(tmp_path / "qjm.sqlite", config=THREADS) as manager:
        assert snap_compare(DialogHost(NewJobSetForm(manager)), terminal_size=(80, 24))


def test_new_set_form_with_an_error(snap_compare: Any, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("bad.qasm").write_text('OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\nh q[0]\ncx q[0],q[1];\n')

    async def submit_bad_file(pilot: Pilot[None]) -> None:
        form = pilot.app.screen
        form.query_one("#files", Input).value = "bad.qasm"
        await pilot.press("enter")
        for _ in range(200):
            if form.query_one("#files-error", Static).display:
                break
            await pilot.pause(0.02)

    with JobManager(tmp_path / "qjm.sqlite", config=THREADS) as manager:
        assert snap_compare(DialogHost(NewJobSetForm(manager)), terminal_size=(80, 24),
                            run_before=submit_bad_file)


def test_cancel_question(snap_compare: Any, tmp_path: Path) -> None:
    manager = JobManager(tmp_path / "qjm.sqlite", config=THREADS,
                         new_id=lambda: "20261125-093000-8c1e5a7b")
    spec = f"emulator:dir={tmp_path / 'service'},latency=0,queue=60,max_jobs=0"
    job_set = manager.run([bell()] * 6, backend=spec, name="sweep-0412", max_experiments_per_job=2,
                          shots=16)
    manager.detach()
    reader = JobManager(tmp_path / "qjm.sqlite", config=THREADS)
    try:
        summary = reader.store.summaries([job_set.job_set_id()])[0]
        assert summary.state == "interrupted" and summary.counts.get("done", 0) == 0
        assert snap_compare(DialogHost(cancel_dialog(summary)), terminal_size=(80, 24))
    finally:
        reader.close()


def test_quit_dialog(snap_compare: Any) -> None:
    assert snap_compare(DialogHost(QuitDialog(["sweep-0412", "nightly-qv"])), terminal_size=(80, 24))
