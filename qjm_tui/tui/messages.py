"""Messages the app posts to itself, named for what happened."""

from __future__ import annotations

from textual.message import Message

from qjm_tui.core.store import JobRow, JobSetSummary


class JobSetsChanged(Message):
    """Job sets were created or changed in the store; ``summaries`` are their new state.

    ``jobs`` are the jobs of set ``jobs_of`` written after the change number the set pane had
    read up to, read in the same look at the store (so one repaint shows both), and ``jobs_seq``
    the number to read on from; None when they were not read."""

    def __init__(self, summaries: list[JobSetSummary], deleted: list[str], *,
                 jobs_of: str | None = None, jobs: list[JobRow] | None = None, jobs_seq: int = 0) -> None:
        super().__init__()
        self.summaries = summaries
        self.deleted = deleted
        self.jobs_of = jobs_of
        self.jobs = jobs
        self.jobs_seq = jobs_seq
