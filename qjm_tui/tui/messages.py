"""The messages the bridge (:mod:`qjm_tui.tui.bridge`) posts: what it read from the store, typed.

A message that can pile up (the app busy drawing while the store changes fast) carries all that
an older one of its kind still waiting carries, so the newer replaces the older
(:meth:`~textual.message.Message.can_replace`) and the app applies only the latest.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.message import Message

from qjm_tui.core.store import JobRow, JobSetSummary
from qjm_tui.tui.readmodel import JobReading, Reading


class JobStatusesChanged(Message):
    """Jobs of set ``set_id`` as read from the store, in index order: every one of them
    (``full``, the read numbered ``load`` that the jobs pane asked for) or those written since
    the last read. ``seq`` is the store's change number they were read at; ``error`` says why a
    read of the whole set failed (then ``rows`` is empty). A row is newer than the one held
    only if its own change number is larger, so a read that arrives twice changes nothing."""

    def __init__(self, set_id: str, rows: Sequence[JobRow], seq: int, *, full: bool, load: int = 0,
                 error: str | None = None) -> None:
        super().__init__()
        self.set_id = set_id
        self.rows = list(rows)
        self.seq = seq
        self.full = full
        self.load = load
        self.error = error

    def can_replace(self, message: Message) -> bool:
        """A newer read of a whole set supersedes this one (the pane takes the newest load)."""
        return self.full and isinstance(message, JobStatusesChanged) and message.full


class SetsChanged(Message):
    """Job sets created or changed (``summaries``, their state now) or deleted in the store,
    and the changed jobs of the set the jobs pane shows (``jobs``, or None). It holds everything
    read since the last one the app applied (``generation`` numbers them), so a newer one
    replaces an older one still waiting."""

    def __init__(self, generation: int, summaries: Sequence[JobSetSummary], deleted: Sequence[str],
                 jobs: JobStatusesChanged | None = None) -> None:
        super().__init__()
        self.generation = generation
        self.summaries = list(summaries)
        self.deleted = list(deleted)
        self.jobs = jobs

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SetsChanged)


class CountsRead(Message, bubble=False):
    """The counts of the experiment on show (or of all, combined), or why there are none; for
    the histogram pane's read number ``request``."""

    def __init__(self, request: int, reading: Reading) -> None:
        super().__init__()
        self.request = request
        self.reading = reading

    def can_replace(self, message: Message) -> bool:
        """The pane shows only its latest read."""
        return isinstance(message, CountsRead)


class JobRead(Message, bubble=False):
    """One job in full, as the job view asked for it."""

    def __init__(self, reading: JobReading) -> None:
        super().__init__()
        self.reading = reading

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, JobRead)
