"""A set pane wired to the app's bridge as the app wires it, without the rest of the app: for
the bridge's tests and the grid benchmark."""

from __future__ import annotations

from textual.app import App, ComposeResult

from qjm_tui import JobManager
from qjm_tui.tui.bridge import Bridge
from qjm_tui.tui.grid import SetPane
from qjm_tui.tui.messages import JobStatusesChanged, SetsChanged


class BridgedSetPane(App[None]):
    """A set pane and a bridge on ``manager``'s store; every SetsChanged applied is recorded
    in ``messages``. The intervals go to the bridge."""

    def __init__(self, manager: JobManager, *, watch_interval: float = 3600,
                 flush_interval: float = 0.05) -> None:
        super().__init__()
        self.bridge = Bridge(self, manager, watch_interval=watch_interval, flush_interval=flush_interval)
        self.messages: list[SetsChanged] = []

    def compose(self) -> ComposeResult:
        yield SetPane()

    def on_mount(self) -> None:
        self.bridge.start()

    def on_unmount(self) -> None:
        self.bridge.stop()

    def on_set_pane_jobs_wanted(self, message: SetPane.JobsWanted) -> None:
        self.bridge.load_jobs(message.set_id, message.load)

    def on_job_statuses_changed(self, message: JobStatusesChanged) -> None:
        self.query_one(SetPane).apply_jobs(message)

    def on_sets_changed(self, message: SetsChanged) -> None:
        self.bridge.applied(message)
        self.messages.append(message)
        with self.batch_update():
            self.query_one(SetPane).apply_sets_changed(message)
