"""Messages the app posts to itself, named for what happened."""

from __future__ import annotations

from textual.message import Message

from qjm_tui.core.store import JobSetSummary


class JobSetsChanged(Message):
    """Job sets were created or changed in the store; ``summaries`` are their new state."""

    def __init__(self, summaries: list[JobSetSummary], deleted: list[str]) -> None:
        super().__init__()
        self.summaries = summaries
        self.deleted = deleted
